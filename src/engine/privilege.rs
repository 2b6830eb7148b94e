//! Who cpr acts for, and with what privilege. Three cases:
//!
//! - root (real uid 0): the IRIX superuser, who may checkpoint and restart anyone's.
//! - an ordinary user and no privilege at all: whatever the kernel lets that user do to
//!   their own processes (ptrace of their dumpable processes, as Yama allows; no
//!   /proc/PID/map_files; restart with FORK ANY; no executable link set back).
//! - an ordinary user running a cpr installed with the file capabilities
//!   `cap_checkpoint_restore` and `cap_sys_ptrace` (`etc/install`): a privileged program,
//!   which keeps only those two, enforces the IRIX rules itself (target.rs, the
//!   restart's authority check) and drops them when the work that needs them is done.
//!
//! Neither capability lets cpr past file permissions, so every file a user names is
//! opened with that user's own rights (the filesystem uid stays the caller's).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

use crate::error::{Error, Kind, Result};
use crate::proc::status;
use crate::sys::Caps;

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_CHECKPOINT_RESTORE: u32 = 40;
/// The capabilities an installed cpr may hold when an ordinary user runs it.
pub const INSTALLED: u64 = (1 << CAP_SYS_PTRACE) | (1 << CAP_CHECKPOINT_RESTORE);

/// The kind of caller cpr runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Root,
    /// An ordinary user, cpr holding (some of) `INSTALLED`.
    Capable,
    /// An ordinary user, no capability.
    Unprivileged,
}

/// The real uid and gid of the caller.
pub fn caller() -> (u32, u32) {
    (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    )
}

/// The groups user `uid` may act as: for cpr's own caller its real and effective gid and
/// supplementary groups; for another user (a library caller checking for someone else)
/// the primary group and groups of the user database.
pub fn caller_groups(uid: u32) -> Vec<u32> {
    if uid != caller().0 {
        return user_groups(uid);
    }
    let mut groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    groups.push(nix::unistd::getgid().as_raw());
    groups.push(nix::unistd::getegid().as_raw());
    groups
}

/// The primary group of user `uid` and the groups of the group database it is in.
pub fn user_groups(uid: u32) -> Vec<u32> {
    let mut groups = Vec::new();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        groups.push(user.gid.as_raw());
        if let Ok(name) = std::ffi::CString::new(user.name)
            && let Ok(list) = nix::unistd::getgrouplist(&name, user.gid)
        {
            groups.extend(list.into_iter().map(|g| g.as_raw()));
        }
    }
    groups
}

/// The capability sets of the calling thread.
pub fn own_caps() -> Caps {
    if let Ok(caps) = crate::sys::capget() {
        return caps;
    }
    let text = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let get = |key| status::mask(&text, key).unwrap_or(0);
    Caps {
        inheritable: get("CapInh"),
        permitted: get("CapPrm"),
        effective: get("CapEff"),
    }
}

/// Whether the calling thread has `cap` in its effective set.
pub fn has(cap: u32) -> bool {
    own_caps().effective & (1 << cap) != 0
}

pub fn mode() -> Mode {
    if caller().0 == 0 {
        Mode::Root
    } else if own_caps().effective & INSTALLED != 0 {
        Mode::Capable
    } else {
        Mode::Unprivileged
    }
}

/// For an ordinary user: keeps at most `INSTALLED`, nothing inheritable. Called first
/// thing, before any thread exists, so that every thread of cpr is limited alike. Root
/// keeps what it has.
pub fn limit() -> Result<()> {
    if caller().0 == 0 {
        return Ok(());
    }
    let caps = own_caps();
    let keep = caps.permitted & INSTALLED;
    if caps.permitted != keep || caps.inheritable != 0 || caps.effective != keep {
        crate::sys::capset(&Caps {
            inheritable: 0,
            permitted: keep,
            effective: keep,
        })
        .map_err(|e| Error::errno("cpr: dropping capabilities", e))?;
    }
    if keep != 0 {
        // A program with file capabilities starts undumpable, which makes the /proc files
        // of cpr and of its restore children root's: neither cpr nor the children could
        // read them with the user's rights. Dumpable is safe: no process of the user may
        // trace cpr or read its memory all the same, since ptrace and /proc/PID/mem also
        // need the tracer to hold every capability cpr holds (or CAP_SYS_PTRACE).
        nix::sys::prctl::set_dumpable(true)
            .map_err(|e| Error::errno("cpr: prctl(PR_SET_DUMPABLE)", e))?;
    }
    Ok(())
}

/// For an ordinary user: gives up every capability of the calling thread, for good,
/// once the work that needed them is done.
pub fn drop_all() {
    if caller().0 != 0 && own_caps().permitted != 0 {
        // reducing one's own sets cannot be refused
        let _ = crate::sys::capset(&Caps::default());
    }
}

/// The value of /proc/sys/kernel/yama/ptrace_scope, if Yama is there.
pub fn yama_scope() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Adds to a refused ptrace attach what stands in the way, when it is the kernel's
/// ptrace policy rather than ownership (which target.rs checked before).
pub fn explain_attach(e: Error) -> Error {
    if mode() == Mode::Root || has(CAP_SYS_PTRACE) {
        return e;
    }
    explain_attach_under(e, yama_scope())
}

/// `explain_attach` for a caller without CAP_SYS_PTRACE under Yama's `scope`.
fn explain_attach_under(e: Error, scope: Option<u32>) -> Error {
    if !matches!(e.kind, Kind::NotPermitted | Kind::PermissionDenied) {
        return e;
    }
    let why = match scope {
        Some(1) => {
            "Yama ptrace_scope is 1 (/proc/sys/kernel/yama/ptrace_scope): an ordinary user may \
             only trace their own descendants; run the job under cpr's parent shell with \
             ptrace_scope 0, or use a cpr installed with capabilities (see cpr(1), SECURITY)"
        }
        Some(2) => {
            "Yama ptrace_scope is 2 (/proc/sys/kernel/yama/ptrace_scope): only a process with \
             CAP_SYS_PTRACE may trace; use a cpr installed with capabilities (see cpr(1), SECURITY)"
        }
        Some(3) => {
            "Yama ptrace_scope is 3 (/proc/sys/kernel/yama/ptrace_scope): no process may trace \
             another on this system"
        }
        _ => return e,
    };
    Error {
        detail: Some(match e.detail {
            Some(d) => format!("{d}; {why}"),
            None => why.to_string(),
        }),
        ..e
    }
}

/// Pidfds of the targets, opened before their credentials were checked: while a pidfd's
/// process is alive its PID cannot name another process, so what cpr then attaches to
/// by PID is the process it checked.
#[derive(Default)]
pub struct Pinned(BTreeMap<i32, OwnedFd>);

impl Pinned {
    /// Opens a pidfd for each of `pids` (those already gone are left out: the freeze
    /// reports them).
    pub fn pin(pids: &[i32]) -> Pinned {
        Pinned(
            pids.iter()
                .filter_map(|&pid| Some((pid, crate::sys::pidfd_open(pid).ok()?)))
                .collect(),
        )
    }

    /// Whether `pid` was pinned.
    pub fn pinned(&self, pid: i32) -> bool {
        self.0.contains_key(&pid)
    }

    /// Whether `pid` was pinned and its process is still the one pinned.
    pub fn holds(&self, pid: i32) -> bool {
        self.0
            .get(&pid)
            .is_some_and(|fd| crate::sys::pidfd_alive(fd.as_fd()))
    }
}

/// The metadata of the file process `pid` maps at `start..end`, named `path` in its maps.
/// Through /proc/PID/map_files (the very file mapped, even if its path was replaced)
/// where cpr may open it (CAP_CHECKPOINT_RESTORE); else the file at `path`, which must be
/// the one mapped: same device and inode as /proc/PID/maps shows.
pub fn mapped_file_metadata(
    pid: i32,
    start: u64,
    end: u64,
    path: &str,
) -> Result<std::fs::Metadata> {
    let subject = || format!("process {pid}: mapped file {path}");
    let link = format!("/proc/{pid}/map_files/{start:x}-{end:x}");
    match std::fs::metadata(&link) {
        Ok(meta) => return Ok(meta),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(Error::io(subject(), e)),
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(subject(), e))?;
    check_mapped_identity(pid, start, path, &meta)?;
    Ok(meta)
}

/// Refuses `meta`, of the file now at `path`, unless it is the file process `pid` maps
/// at `start`: same device and inode as /proc/PID/maps shows.
fn check_mapped_identity(pid: i32, start: u64, path: &str, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let subject = || format!("process {pid}: mapped file {path}");
    let maps = crate::proc::ProcDir::open(pid)?.maps()?;
    let line = maps
        .iter()
        .find(|m| m.start == start)
        .ok_or_else(|| Error::with_detail(subject(), Kind::NoSuchFile, "mapping gone"))?;
    let dev = format!(
        "{:02x}:{:02x}",
        libc::major(meta.dev()),
        libc::minor(meta.dev())
    );
    if dev != line.dev || meta.ino() != line.inode {
        return Err(Error::with_detail(
            subject(),
            Kind::CheckpointError,
            format!(
                "the file now at that path (device {dev}, inode {}) is not the one mapped \
                 (device {}, inode {}); without CAP_CHECKPOINT_RESTORE cpr cannot read the \
                 mapped file itself",
                meta.ino(),
                line.dev,
                line.inode
            ),
        ));
    }
    Ok(())
}

/// The file process `pid` maps at `start..end`, named `path` in its maps, opened for
/// reading: through /proc/PID/map_files where cpr may, else by path, and then only if
/// the file opened is the one mapped (device and inode of /proc/PID/maps).
pub fn open_mapped_file(pid: i32, start: u64, end: u64, path: &str) -> Result<std::fs::File> {
    let subject = || format!("process {pid}: mapped file {path}");
    let link = format!("/proc/{pid}/map_files/{start:x}-{end:x}");
    match std::fs::File::open(&link) {
        Ok(file) => return Ok(file),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => return Err(Error::io(subject(), e)),
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(subject(), e))?;
    let meta = file.metadata().map_err(|e| Error::io(subject(), e))?;
    check_mapped_identity(pid, start, path, &meta)?;
    Ok(file)
}

/// Whether a restore child (a copy of cpr, with its capabilities) may give its image
/// back its executable link with PR_SET_MM_MAP: that needs CAP_CHECKPOINT_RESTORE.
pub fn can_set_exe() -> bool {
    may_checkpoint_restore()
}

/// What the kernel asks for the checkpoint/restore operations: CAP_CHECKPOINT_RESTORE,
/// or CAP_SYS_ADMIN (the only one before Linux 5.9).
fn may_checkpoint_restore() -> bool {
    let effective = own_caps().effective;
    effective & ((1 << CAP_CHECKPOINT_RESTORE) | (1 << CAP_SYS_ADMIN)) != 0
}

/// Whether `groups` are cpr's own supplementary groups, in any order.
pub fn same_groups(groups: &[u32]) -> bool {
    let mut mine: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let mut theirs = groups.to_vec();
    mine.sort_unstable();
    mine.dedup();
    theirs.sort_unstable();
    theirs.dedup();
    mine == theirs
}

/// Whether cpr may create a process or thread with a PID of its choosing (clone3
/// `set_tid`): FORK ORIGINAL, and the helpers that recreate groups and sessions.
pub fn can_choose_pids() -> bool {
    may_checkpoint_restore()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capget_says_what_status_says() {
        let text = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let get = |key| status::mask(&text, key).unwrap();
        let caps = crate::sys::capget().unwrap();
        assert_eq!(
            (caps.inheritable, caps.permitted, caps.effective),
            (get("CapInh"), get("CapPrm"), get("CapEff"))
        );
    }

    #[test]
    fn a_refused_attach_names_yamas_scope() {
        let refused = || Error::new("thread 5", Kind::NotPermitted);
        for scope in 1..=3 {
            let e = explain_attach_under(refused(), Some(scope));
            let text = e.to_string();
            assert!(text.contains(&format!("ptrace_scope is {scope}")), "{text}");
        }
        // no Yama, or scope 0: the kernel's refusal is ownership's, already explained
        assert_eq!(explain_attach_under(refused(), Some(0)).detail, None);
        assert_eq!(explain_attach_under(refused(), None).detail, None);
        let gone = Error::new("thread 5", Kind::NoSuchProcess);
        assert_eq!(explain_attach_under(gone, Some(1)).detail, None);
    }

    #[test]
    fn a_pinned_process_is_held_until_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let pinned = Pinned::pin(&[pid]);
        assert!(pinned.pinned(pid) && pinned.holds(pid));
        assert!(!pinned.pinned(pid + 1) && !pinned.holds(pid + 1));
        child.kill().unwrap();
        child.wait().unwrap();
        // its PID may name another process now: the pidfd says it is not the same
        assert!(pinned.pinned(pid) && !pinned.holds(pid));
    }

    #[test]
    fn groups_compare_as_sets() {
        let mut mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        mine.reverse();
        assert!(same_groups(&mine));
        mine.push(u32::MAX - 7);
        assert!(!same_groups(&mine));
    }
}
