//! The records of a statefile, by file (see `layout`). `CoreRecord` is the format's own;
//! the records of one object kind live with that kind's dump and restore, and are named
//! here so that the whole format can be read from one place.

use serde::{Deserialize, Serialize};

use crate::attrfile::ProcessPolicies;
use crate::engine::objects::{files, locks, posix_timers, process, signals, threads};

pub use super::format::Manifest;
pub use crate::engine::objects::memory::MmRecord;
pub use crate::engine::objects::pstree::TreeRecord;
pub use crate::engine::objects::shared_fds::SharedTable;
pub use crate::engine::objects::sysv_shm::ShmIndex;

/// `proc/<pid>/core.json`: everything of a process but its memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreRecord {
    pub process: process::ProcessRecord,
    pub threads: Vec<threads::ThreadRecord>,
    pub signals: signals::SignalsRecord,
    pub fds: Vec<files::FdRecord>,
    pub policies: ProcessPolicies,
    /// File locks held through `fds` (guide: "All file locks are also restored").
    /// Added during revision 1 (a statefile without it had none).
    #[serde(default)]
    pub locks: Vec<locks::LockRecord>,
    /// Added during revision 1 (a statefile without it had none).
    #[serde(default)]
    pub posix_timers: Vec<posix_timers::PosixTimer>,
}
