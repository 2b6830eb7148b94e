//! ID designators (`123`, `123:GID`, `345:SID`, `567:HID`, `789:SGP`, ...) and their
//! resolution against /proc into one set of processes.
//!
//! Parsing (`parse_idlist`) is pure. Resolution reads /proc once for the list of all
//! processes (when a group, session, tree or share group is named), then each target's own
//! files through a descriptor held on its `/proc/PID` directory, so that the files read for
//! one process all come from the same process. Processes that vanish meanwhile are left
//! out; a designator all of whose processes vanished is `No such process`.
//!
//! Share groups (`:SGP`): IRIX `sproc()` children share their parent's address space; on
//! Linux these are the process's threads plus any child made with `CLONE_VM` but without
//! `CLONE_THREAD`. Candidates are the processes whose memory layout in `/proc/PID/stat`
//! (code, data, heap, stack, argument and environment addresses, all fields of the shared
//! `mm`) equals the named process's; `kcmp(KCMP_VM)` then tells real sharers from `fork()`
//! children that merely kept the same layout. Only on a kernel without kcmp (`ENOSYS`)
//! does the layout comparison decide alone, and then an unchanged `fork()` child is taken
//! in too.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::error::{Error, Kind, Result};
use crate::proc::{ProcDir, Stat};

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
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Designator {
    pub id: u64,
    pub id_type: IdType,
    /// An IRIX ID (ASH, JID) typed in hexadecimal: shown back the same way.
    #[serde(default)]
    pub typed_hex: bool,
}

impl PartialEq for Designator {
    /// The same ID of the same type, however it was typed.
    fn eq(&self, other: &Designator) -> bool {
        self.id == other.id && self.id_type == other.id_type
    }
}

impl Eq for Designator {}

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

/// Pids are below the kernel's `PID_MAX_LIMIT` (4 Mi on 64-bit), whatever `pid_max` says.
pub const PID_LIMIT: u64 = 1 << 22;

const VALID_TYPES: &str = "PID, GID, SID, HID, SGP, ASH, JID";

impl IdType {
    /// The name used in `-p` lists and attribute files: `PID`, `GID`, ...
    pub fn name(self) -> &'static str {
        match self {
            IdType::Pid => "PID",
            IdType::Gid => "GID",
            IdType::Sid => "SID",
            IdType::Ash => "ASH",
            IdType::Jid => "JID",
            IdType::Hid => "HID",
            IdType::Sgp => "SGP",
        }
    }

    /// The type a name stands for, in any case: `gid` and `GID` are `IdType::Gid`.
    pub fn from_name(name: &str) -> Option<IdType> {
        [
            IdType::Pid,
            IdType::Gid,
            IdType::Sid,
            IdType::Ash,
            IdType::Jid,
            IdType::Hid,
            IdType::Sgp,
        ]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Whether the ID is a Linux process, group or session ID (not an IRIX-only one).
    pub fn is_linux(self) -> bool {
        !matches!(self, IdType::Ash | IdType::Jid)
    }

    /// Why an IRIX-only type is refused.
    fn irix_only(self) -> Option<&'static str> {
        match self {
            IdType::Ash => Some("ASH (IRIX array session) is not supported on Linux"),
            IdType::Jid => Some("JID (IRIX job) is not supported on Linux"),
            _ => None,
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Designator {
    /// As a user would type it: `123`, `123:GID`, `0x8000abcd00001111:ASH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id_type {
            IdType::Pid => write!(f, "{}", self.id),
            IdType::Ash | IdType::Jid if self.typed_hex => {
                write!(f, "{:#x}:{}", self.id, self.id_type)
            }
            t => write!(f, "{}:{t}", self.id),
        }
    }
}

impl Designator {
    /// The subject of errors about this designator: `-p 123:GID`.
    fn subject(&self) -> String {
        format!("-p {self}")
    }
}

impl TargetSet {
    /// The checkpoint owner: the real uid common to all processes, with their common real
    /// gid (or, when their gids differ, the real gid of the lowest pid). `None` when the
    /// processes have several owners, or there are none.
    pub fn owner(&self) -> Option<(u32, u32)> {
        let mut procs = self.processes.values();
        let first = procs.next()?;
        let uid = first.uids[0];
        if procs.any(|p| p.uids[0] != uid) {
            return None;
        }
        Some((uid, first.gids[0]))
    }

    /// The pids, in ascending order.
    pub fn pids(&self) -> Vec<i32> {
        self.processes.keys().copied().collect()
    }
}

/// Parses a comma-separated designator list: `1113,1225,1397:HID`, `0x1f:GID`.
pub fn parse_idlist(text: &str) -> Result<Vec<Designator>> {
    if text.trim().is_empty() {
        return Err(Error::with_detail(
            format!("-p '{text}'"),
            Kind::InvalidArgument,
            "the ID list is empty",
        ));
    }
    text.split(',')
        .map(|item| {
            if item.trim().is_empty() {
                Err(Error::with_detail(
                    format!("-p {text}"),
                    Kind::InvalidArgument,
                    "empty item in the ID list",
                ))
            } else {
                parse_designator(item)
            }
        })
        .collect()
}

/// Parses one `ID[:TYPE]`; TYPE defaults to PID.
pub fn parse_designator(item: &str) -> Result<Designator> {
    let trimmed = item.trim();
    let invalid =
        |detail: String| Error::with_detail(format!("-p {trimmed}"), Kind::InvalidArgument, detail);
    let (id_text, id_type) = match trimmed.split_once(':') {
        None => (trimmed, IdType::Pid),
        Some((id, ty)) => match IdType::from_name(ty.trim()) {
            Some(t) => (id.trim(), t),
            None => {
                return Err(invalid(format!(
                    "unknown ID type '{}'; valid types are {VALID_TYPES}",
                    ty.trim()
                )));
            }
        },
    };
    let id = parse_id(id_text).ok_or_else(|| {
        invalid(format!(
            "'{id_text}' is not an ID: give a decimal number or 0x and hexadecimal digits"
        ))
    })?;
    if id_type.is_linux() && (id == 0 || id >= PID_LIMIT) {
        return Err(invalid(format!(
            "a {id_type} must be between 1 and {}",
            PID_LIMIT - 1
        )));
    }
    Ok(Designator {
        id,
        id_type,
        typed_hex: id_text.starts_with("0x") || id_text.starts_with("0X"),
    })
}

/// A decimal or `0x` hexadecimal unsigned number, nothing else (no sign, no spaces).
fn parse_id(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Reads one process's IDs from /proc. A thread ID reads its process.
pub fn process_ids(pid: i32) -> Result<ProcessIds> {
    process_ids_and_status(pid).map(|(ids, _)| ids)
}

/// `process_ids`, and the process's /proc/PID/status as read for them (the checks that
/// follow need it too).
fn process_ids_and_status(pid: i32) -> Result<(ProcessIds, String)> {
    let dir = ProcDir::open(pid)?;
    let text = dir.status_text()?;
    let status = dir.parsed("status", &text, crate::proc::status::parse)?;
    if status.tgid != pid {
        return process_ids_and_status(status.tgid);
    }
    let stat = dir.stat()?;
    let tids = dir.tids()?;
    let ids = ProcessIds {
        pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        uids: status.uids,
        gids: status.gids,
        tids,
    };
    Ok((ids, text))
}

/// Every user process in /proc (kernel threads left out), by pid. Processes that vanish
/// while being read are left out.
pub(crate) fn scan_processes() -> Result<BTreeMap<i32, Stat>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").map_err(|e| Error::io("/proc", e))? {
        let entry = entry.map_err(|e| Error::io("/proc", e))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = match ProcDir::open(pid).and_then(|dir| dir.stat()) {
            Ok(stat) => stat,
            Err(e) if e.kind == Kind::NoSuchProcess => continue,
            Err(e) => return Err(e),
        };
        if !stat.is_kernel_thread() {
            all.insert(pid, stat);
        }
    }
    Ok(all)
}

/// The process a PID-like designator roots at: the thread group of the thread it names.
/// Refuses kernel threads and cpr itself.
fn root_process(d: &Designator, me: i32) -> Result<Stat> {
    let not_found = || Error::new(d.subject(), Kind::NoSuchProcess);
    let tid = d.id as i32;
    let status = match ProcDir::open(tid).and_then(|dir| dir.status()) {
        Ok(status) => status,
        Err(e) if e.kind == Kind::NoSuchProcess => return Err(not_found()),
        Err(e) => return Err(e.context(d.subject())),
    };
    let stat = match ProcDir::open(status.tgid).and_then(|dir| dir.stat()) {
        Ok(stat) => stat,
        Err(e) if e.kind == Kind::NoSuchProcess => return Err(not_found()),
        Err(e) => return Err(e.context(d.subject())),
    };
    if stat.is_kernel_thread() {
        return Err(Error::with_detail(
            d.subject(),
            Kind::InvalidArgument,
            format!("process {} is a kernel thread", stat.pid),
        ));
    }
    if stat.pid == me {
        return Err(cannot_checkpoint_self(d));
    }
    Ok(stat)
}

fn cannot_checkpoint_self(d: &Designator) -> Error {
    Error::with_detail(
        d.subject(),
        Kind::InvalidArgument,
        "cpr cannot checkpoint itself",
    )
}

/// `root` and all its descendants in `all`.
fn descendants(all: &BTreeMap<i32, Stat>, root: i32) -> BTreeSet<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for stat in all.values() {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    let mut tree = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if tree.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    tree
}

/// `root` and the processes sharing its address space (see the module documentation).
fn share_group(all: &BTreeMap<i32, Stat>, root: &Stat) -> Result<BTreeSet<i32>> {
    let mut group = BTreeSet::from([root.pid]);
    if root.is_dead() || root.mm_layout == [0; 10] {
        return Ok(group);
    }
    let candidates = all.values().filter(|s| {
        s.pid != root.pid && !s.is_dead() && !s.is_kernel_thread() && s.mm_layout == root.mm_layout
    });
    for candidate in candidates {
        match crate::sys::kcmp::same_vm(Pid::from_raw(root.pid), Pid::from_raw(candidate.pid)) {
            Ok(true) | Err(Errno::ENOSYS) => {
                group.insert(candidate.pid);
            }
            Ok(false) => {}
            // Gone, or not ours to inspect (and so not ours to checkpoint either).
            Err(Errno::ESRCH | Errno::EPERM | Errno::EACCES) => {}
            Err(e) => {
                return Err(Error::errno(
                    format!("kcmp of processes {} and {}", root.pid, candidate.pid),
                    e,
                ));
            }
        }
    }
    Ok(group)
}

/// Resolves designators against /proc. `caller_uid` is the real uid of the caller: a
/// non-root caller may only name processes whose real and effective uids are its own;
/// several owners need root.
///
/// cpr itself is never a target: naming it (`PID`, or as the root of `HID` or `SGP`) is
/// `Invalid argument`; inside a group, session or tree it is silently left out.
pub fn resolve(designators: &[Designator], caller_uid: u32) -> Result<TargetSet> {
    if designators.is_empty() {
        return Err(Error::with_detail(
            "-p",
            Kind::InvalidArgument,
            "no process named",
        ));
    }
    if let Some(d) = designators.iter().find(|d| !d.id_type.is_linux()) {
        let why = d.id_type.irix_only().unwrap_or("not supported on Linux");
        return Err(Error::with_detail(d.subject(), Kind::InvalidArgument, why));
    }
    let me = std::process::id() as i32;
    let needs_scan = designators.iter().any(|d| d.id_type != IdType::Pid);
    let all = if needs_scan {
        scan_processes()?
    } else {
        BTreeMap::new()
    };

    // Which processes each designator names.
    let mut named: Vec<(&Designator, BTreeSet<i32>)> = Vec::new();
    for d in designators {
        let id = d.id as i32;
        let pids: BTreeSet<i32> = match d.id_type {
            IdType::Pid => BTreeSet::from([root_process(d, me)?.pid]),
            IdType::Gid | IdType::Sid => {
                let members: BTreeSet<i32> = all
                    .values()
                    .filter(|s| {
                        if d.id_type == IdType::Gid {
                            s.pgrp == id
                        } else {
                            s.session == id
                        }
                    })
                    .map(|s| s.pid)
                    .collect();
                if members.len() == 1 && members.contains(&me) {
                    return Err(cannot_checkpoint_self(d));
                }
                members
            }
            IdType::Hid => descendants(&all, root_process(d, me)?.pid),
            IdType::Sgp => share_group(&all, &root_process(d, me)?)?,
            IdType::Ash | IdType::Jid => unreachable!("refused above"),
        };
        named.push((d, pids.into_iter().filter(|&pid| pid != me).collect()));
    }

    let mut set = TargetSet::default();
    for (d, pids) in &named {
        let mut found = false;
        for &pid in pids {
            if set.processes.contains_key(&pid) {
                found = true;
                continue;
            }
            match process_ids_and_status(pid) {
                Ok((ids, status)) => {
                    refuse_unstoppable(&ids, &status, me).map_err(|e| e.context(d.subject()))?;
                    found = true;
                    set.processes.insert(ids.pid, ids);
                }
                Err(e) if e.kind == Kind::NoSuchProcess => {}
                Err(e) => return Err(e.context(d.subject())),
            }
        }
        if !found {
            return Err(Error::new(d.subject(), Kind::NoSuchProcess));
        }
    }
    check_permission(&set, caller_uid)?;
    Ok(set)
}

/// Refuses, before anything is attached, a process a checkpoint must not stop: PID 1
/// (every orphan's reaper: stopped, it stops the system), the init of a PID namespace
/// (stopped, the namespace hangs; ended, every process in it ends), and a process that
/// another tracer holds, any of its threads (ptrace allows one; `me`, cpr itself, may
/// already hold it).
/// `status`: the process's /proc/PID/status, as read for `ids`.
pub fn refuse_unstoppable(ids: &ProcessIds, status: &str, me: i32) -> Result<()> {
    let pid = ids.pid;
    let ns_pids = crate::proc::status::ns_pids(status)?;
    let refuse = |detail: String| {
        Err(Error::with_detail(
            format!("process {pid}"),
            Kind::NotPermitted,
            detail,
        ))
    };
    if pid == 1 {
        return refuse("it is init (PID 1); stopping it would stop the system".into());
    }
    if ns_pids.last() == Some(&1) {
        return refuse(
            "it is the init of its PID namespace (PID 1 there); stopping it would stop \
             the namespace"
                .into(),
        );
    }
    for &tid in &ids.tids {
        refuse_traced(pid, tid, (tid == pid).then_some(status), me)?;
    }
    Ok(())
}

/// `Resource busy` if thread `tid` of process `pid` is traced by another process than
/// `me`, naming it.
/// `status`: the thread's /proc/TID/status, if read already.
pub fn refuse_traced(pid: i32, tid: i32, status: Option<&str>, me: i32) -> Result<()> {
    match tracer_of(tid, status) {
        Ok(Some((tracer, comm))) if tracer != me => {
            let who = if tid == pid {
                "it".to_string()
            } else {
                format!("its thread {tid}")
            };
            Err(Error::with_detail(
                format!("process {pid}"),
                Kind::ResourceBusy,
                format!("{who} is already being traced by process {tracer} ({comm})"),
            ))
        }
        // a thread that ended meanwhile is not in the way
        _ => Ok(()),
    }
}

/// The process tracing `pid` and its command name, if any. TracerPid names the tracing
/// thread; its process is what is returned.
/// `status`: its /proc/PID/status, if read already.
pub fn tracer_of(pid: i32, status: Option<&str>) -> Result<Option<(i32, String)>> {
    let read;
    let text = match status {
        Some(text) => text,
        None => {
            read = ProcDir::open(pid)?.status_text()?;
            &read
        }
    };
    let tracer: i32 = crate::proc::status::number(text, "TracerPid")?;
    if tracer == 0 {
        return Ok(None);
    }
    let Ok(dir) = ProcDir::open(tracer) else {
        return Ok(Some((tracer, "?".into())));
    };
    let process = dir.status().map(|s| s.tgid).unwrap_or(tracer);
    let comm = dir
        .read("comm")
        .map(|c| c.trim_end().to_string())
        .unwrap_or_else(|_| "?".into());
    Ok(Some((process, comm)))
}

/// Only the owner of all targets, or root, may checkpoint them (guide, chapter 1,
/// "Definition of Terms": checkpoint owner).
pub fn check_permission(set: &TargetSet, caller_uid: u32) -> Result<()> {
    if caller_uid == 0 {
        return Ok(());
    }
    let owners: BTreeSet<u32> = set.processes.values().map(|p| p.uids[0]).collect();
    if owners.len() > 1 {
        let list: Vec<String> = owners.iter().map(u32::to_string).collect();
        return Err(Error::with_detail(
            "",
            Kind::NotPermitted,
            format!(
                "processes have several owners (uids {}), only root may checkpoint them",
                list.join(", ")
            ),
        ));
    }
    let groups = crate::engine::privilege::caller_groups(caller_uid);
    for p in set.processes.values() {
        check_own_process(p, caller_uid, &groups)?;
    }
    Ok(())
}

/// An ordinary user may checkpoint only a process that is entirely theirs (guide: "only
/// the checkpoint owner or superuser"; processes "with setuid credential" are not): every
/// uid the caller's, every gid the caller's or one of their groups, no capability, and
/// dumpable — a process that changed credentials through a setuid, setgid or
/// file-capability program is not, and the files under /proc/PID are then root's.
fn check_own_process(p: &ProcessIds, caller_uid: u32, groups: &[u32]) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::with_detail(
            format!("process {}", p.pid),
            Kind::NotPermitted,
            format!("{why}; only its owner or root may checkpoint it"),
        ))
    };
    if p.uids.iter().any(|&u| u != caller_uid) {
        let [r, e, s, f] = p.uids;
        return refuse(format!(
            "it runs as uids {r}/{e}/{s}/{f} (real/effective/saved/fs), not all uid {caller_uid}"
        ));
    }
    if let Some(g) = p.gids.iter().find(|g| !groups.contains(g)) {
        return refuse(format!(
            "it runs with gid {g}, which is not one of the caller's groups"
        ));
    }
    let dir = ProcDir::open(p.pid)?;
    let status = dir.status_text()?;
    for key in ["CapPrm", "CapEff", "CapAmb"] {
        let mask = dir.parsed("status", &status, |t| crate::proc::status::mask(t, key))?;
        if mask != 0 {
            return refuse(format!("it holds capabilities ({key} {mask:#x})"));
        }
    }
    // the files under /proc/PID of an undumpable process are root's
    let owner = std::fs::metadata(dir.path("stat"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .map_err(|e| Error::io(format!("process {}", p.pid), e))?;
    if owner != caller_uid {
        return refuse(
            "it is not dumpable: it changed credentials (a setuid, setgid or file-capability program) or made itself undumpable".into(),
        );
    }
    Ok(())
}

/// After the freeze, for an ordinary user: every frozen process is still one the caller
/// may checkpoint, and each one pinned at resolution (`pinned`) is the very process
/// resolved, so that a PID reused meanwhile by another user's process is let go before
/// anything of it is read.
pub fn confirm_frozen(
    pids: &[i32],
    pinned: &crate::engine::privilege::Pinned,
    caller_uid: u32,
) -> Result<()> {
    if caller_uid == 0 {
        return Ok(());
    }
    let groups = crate::engine::privilege::caller_groups(caller_uid);
    for &pid in pids {
        if pinned.pinned(pid) && !pinned.holds(pid) {
            return Err(Error::with_detail(
                format!("process {pid}"),
                Kind::NoSuchProcess,
                "it exited during the checkpoint and its PID names another process now",
            ));
        }
        check_own_process(&process_ids(pid)?, caller_uid, &groups)?;
    }
    Ok(())
}
