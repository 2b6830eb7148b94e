//! One module per kind of object a process holds, each with its dump and its restore side
//! by side, and the records it writes.

pub mod events;
pub mod files;
pub mod locks;
pub mod mapped_files;
pub mod memory;
pub mod process;
pub mod pstree;
pub mod shared;
pub mod signals;
pub mod sysv_shm;
pub mod threads;
pub mod tty;
