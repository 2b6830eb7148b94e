//! ID designators (`123`, `123:GID`, `345:SID`, `567:HID`, `789:SGP`, ...) and their
//! resolution against /proc into one set of processes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::error::Result;

/// The kind of ID a designator or an attribute-file block names (guide, table 1-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IdType {
    /// A process ID (or a thread ID, meaning its process).
    Pid,
    /// A process group.
    Gid,
    /// A session.
    Sid,
    /// IRIX array session: parsed, refused on Linux.
    Ash,
    /// IRIX job: parsed, refused on Linux.
    Jid,
    /// The tree rooted at the process.
    Hid,
    /// The processes sharing the process's address space (threads, CLONE_VM children).
    Sgp,
}

/// One `ID[:TYPE]` of a `-p` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Designator {
    pub id: u64,
    pub id_type: IdType,
}

/// What cpr knows of one target process at resolution time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIds {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Real, effective, saved, filesystem uid (from /proc/PID/status).
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    /// All thread IDs, the main thread first.
    pub tids: Vec<i32>,
}

/// The de-duplicated set of processes the designators name, by PID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSet {
    pub processes: BTreeMap<i32, ProcessIds>,
}

/// Parses a comma-separated designator list: `1113,1225,1397:HID`, `0x1f:GID`.
pub fn parse_idlist(text: &str) -> Result<Vec<Designator>> {
    todo!("issue 2: parse {text}")
}

/// Resolves designators against /proc. `caller_uid` is the real uid of the caller: a
/// non-root caller may only name processes whose real and effective uids are its own;
/// several owners need root.
pub fn resolve(designators: &[Designator], caller_uid: u32) -> Result<TargetSet> {
    todo!("issue 2: resolve {designators:?} for {caller_uid}")
}

/// Reads one process's IDs from /proc.
pub fn process_ids(pid: i32) -> Result<ProcessIds> {
    todo!("issue 2: /proc/{pid}")
}
