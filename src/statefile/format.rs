//! Statefile format types. Every change to a record bumps `REVISION`.
//!
//! Revisions:
//! - 1: the first format. While it was current, records gained fields, each with a
//!   default for statefiles written without it (`CoreRecord::locks`, `posix_timers`,
//!   `FdRecord::shared`, `MmRecord::components`), enum variants (`FdKind::Pipe`, `Event`,
//!   `Backing::SharedMem`, `SysvShm`) and optional files (`pstree.json`,
//!   `shared/table.json`, `shared/pipe-*`, `shared/mem-*`, `shared/shm*`,
//!   `files/upgrade/*`). Every revision-1 statefile therefore reads as revision 2.
//! - 2: the same records, with the file names in one table (`layout`). While it was
//!   current: `FileEntry::sha256` (absent: not authenticated) and the optional
//!   `MANIFEST.mac` (`auth`), which older cprs of revision 2 ignore.
//! - 3: `MmRecord::compression` (`cpr -c --compress`): a compressed pages file, which a
//!   cpr of revision 2 would take for the page data itself, so it must refuse it. Also
//!   new in 3, each a field with a default or a new variant or file, which a cpr of
//!   revision 2 would ignore or refuse as damaged, so it must not read them: `Vma::cow`
//!   (pages saved with the parent process) and `Vma::inherited` (pages in the parent
//!   statefile, `chain.json`, `proc/<pid>/precopy*`); `FdKind::InetSocket` and
//!   `shared/inet-*`; UNIX listeners, accepted and waiting connections; the SOCKET
//!   policies; `FdKind::MQueue` and `shared/mqueue.json`; `SetRecord::undo` (SysV
//!   semaphore undo adjustments); `FdKind::RemovedDevice`; `ProcessRecord::membarrier`.
//!   The records of revision 2 read as revision 3.

use serde::{Deserialize, Serialize};

use crate::attrfile::{FileAction, ProcessPolicies, WillAction};

/// Format revision this cpr writes, stored in MANIFEST and checked on read.
pub const REVISION: u32 = 3;

/// The oldest revision this cpr reads (see the list above); it reads every revision from
/// this one to `REVISION`.
pub const OLDEST_READABLE: u32 = 1;

pub use super::layout::MANIFEST;

/// Who owns the checkpoint (the owner of all target processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Options the checkpoint was taken with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// What happened to the originals.
    pub will: WillAction,
    /// `-u`: executables and libraries were saved.
    pub upgrade: bool,
    /// `--compress`: how the page data was compressed, and its size before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<PageCompression>,
}

/// Compressed page data (statefile/compress.rs), for `cpr -i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCompression {
    pub method: String,
    /// Bytes of page data of every process before compression.
    pub raw_bytes: u64,
}

/// One open file of a process, as `cpr -i` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFileSummary {
    pub fd: i32,
    pub path: String,
    /// The disposition restart applies.
    pub action: FileAction,
    /// For an object that is not a file (a socket), what restart does with it, in words;
    /// `cpr -i` shows it instead of `action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
}

/// One process, as `cpr -i` and `ckpt_stat` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Real, effective, saved, filesystem.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    /// Short command name (comm).
    pub command: String,
    /// The argument list as `ps -o args` shows it.
    pub args: Vec<String>,
    pub cwd: String,
    pub root: String,
    pub threads: usize,
    pub open_files: Vec<OpenFileSummary>,
    /// The policies restart applies to this process.
    pub policies: ProcessPolicies,
}

/// One file of the statefile with its size and checksum (xxh3-64, hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the statefile directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub xxh3: String,
    /// SHA-256 (hex) of a record (not of bulk page data), which the MANIFEST's MAC
    /// covers (`auth`). Added during revision 2 (absent: not authenticated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// MANIFEST: what the statefile holds. Written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub revision: u32,
    pub cpr_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub host: String,
    /// `uname -r` of the checkpointing kernel.
    pub kernel: String,
    pub owner: Owner,
    /// The `-p` list as given.
    pub designators: String,
    pub flags: Flags,
    pub processes: Vec<ProcessSummary>,
    /// Every other file of the statefile. Filled by the writer on commit.
    pub files: Vec<FileEntry>,
}
