//! The records of a statefile, by file (see `layout`). `CoreRecord` is the format's own;
//! the records of one object kind live with that kind's dump and restore, and are named
//! here so that the whole format can be read from one place.

use serde::{Deserialize, Serialize};

use crate::attrfile::ProcessPolicies;
use crate::engine::objects::{files, locks, posix_timers, process, signals, threads};

pub use super::format::Manifest;
pub use crate::engine::objects::memory::MmRecord;
pub use crate::engine::objects::posix_mqueue::MqIndex;
pub use crate::engine::objects::pstree::TreeRecord;
pub use crate::engine::objects::shared_fds::SharedTable;
pub use crate::engine::objects::sysv_sem::SemIndex;
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

impl super::format::ProcessSummary {
    /// The MANIFEST's summary of a process, from its core record. Restart compares the
    /// two: `cpr -i` shows the summary, so a record that says otherwise is refused.
    pub fn of(core: &CoreRecord) -> super::format::ProcessSummary {
        let p = &core.process;
        super::format::ProcessSummary {
            pid: p.pid,
            ppid: p.ppid,
            pgid: p.pgid,
            sid: p.sid,
            uids: p.uids,
            gids: p.gids,
            command: p.comm.clone(),
            args: p.args.clone(),
            cwd: p.cwd.clone(),
            root: p.root.clone(),
            threads: core.threads.len(),
            open_files: files::summaries(&core.fds),
            policies: core.policies.clone(),
        }
    }
}

/// Whether a path from a record is absolute and normalised: starts with `/`, and has
/// no empty, `.` or `..` component and no NUL. Restart opens such paths as given, so
/// one that is relative (resolved against cpr's own directory) or climbs is refused.
pub fn is_normal_absolute(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some("") => true,
        Some(rest) => rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0')),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_normal_absolute;

    #[test]
    fn only_absolute_normal_paths() {
        for good in [
            "/",
            "/etc",
            "/usr/lib/x.so",
            "/tmp/a (deleted)",
            "/a/.b/..c",
        ] {
            assert!(is_normal_absolute(good), "{good:?}");
        }
        for bad in [
            "",
            "etc",
            "../../etc/shadow",
            "/etc/../shadow",
            "/./etc",
            "//etc",
            "/etc/",
            "/a\0b",
            "./x",
        ] {
            assert!(!is_normal_absolute(bad), "{bad:?}");
        }
    }
}
