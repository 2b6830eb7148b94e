//! The process record: identity (IDs, command line), resource limits, working and root
//! directories, umask, personality, nice value and scheduling policy, restored natively
//! in the restore child. The credentials in the record are creds.rs's, both ways.

use serde::{Deserialize, Serialize};

use crate::attrfile::DirAction;
use crate::error::{Context, Error, Kind, Result};
use crate::proc::{ProcDir, Stat};
use crate::sys::Caps;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub comm: String,
    pub args: Vec<String>,
    pub exe: String,
    pub cwd: String,
    pub root: String,
    pub umask: u32,
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub caps: Caps,
    /// (resource, soft, hard)
    pub rlimits: Vec<(i32, u64, u64)>,
    pub personality: u64,
    pub nice: i32,
    pub sched_policy: i32,
    pub sched_priority: i32,
    pub dumpable: bool,
    /// The signal that had stopped it by job control (SIGSTOP, SIGTSTP, ...), 0 when it
    /// ran; it comes back stopped (engine/restart/release.rs).
    #[serde(default)]
    pub job_stop: i32,
    /// /proc/PID/oom_score_adj (`None`: an older statefile).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// The audit login uid (`None`: unset, or an older statefile).
    #[serde(default)]
    pub loginuid: Option<u32>,
    /// PR_SET_THP_DISABLE (`THP_enabled: 0` in status).
    #[serde(default)]
    pub thp_disabled: bool,
    /// membarrier(2) registrations (the mask MEMBARRIER_CMD_GET_REGISTRATIONS gives).
    #[serde(default)]
    pub membarrier: u32,
    /// /proc/PID/coredump_filter (`None`: an older statefile, cpr's is kept).
    #[serde(default)]
    pub coredump_filter: Option<u32>,
    /// The nice value of the autogroup of a session leader (`None`: not a leader, no
    /// autogroups, or an older statefile).
    #[serde(default)]
    pub autogroup_nice: Option<i32>,
}

/// The audit login uid of a process that never had one.
const LOGINUID_UNSET: u32 = u32::MAX;

const RLIMITS: [i32; 16] = [
    libc::RLIMIT_CPU as i32,
    libc::RLIMIT_FSIZE as i32,
    libc::RLIMIT_DATA as i32,
    libc::RLIMIT_STACK as i32,
    libc::RLIMIT_CORE as i32,
    libc::RLIMIT_RSS as i32,
    libc::RLIMIT_NPROC as i32,
    libc::RLIMIT_NOFILE as i32,
    libc::RLIMIT_MEMLOCK as i32,
    libc::RLIMIT_AS as i32,
    libc::RLIMIT_LOCKS as i32,
    libc::RLIMIT_SIGPENDING as i32,
    libc::RLIMIT_MSGQUEUE as i32,
    libc::RLIMIT_NICE as i32,
    libc::RLIMIT_RTPRIO as i32,
    libc::RLIMIT_RTTIME as i32,
];

/// The record of the stopped process of `dir`, whose stat file says `stat`.
pub fn dump(dir: &ProcDir, stat: &Stat) -> Result<ProcessRecord> {
    let pid = dir.pid();
    let who = format!("process {pid}");
    let status = dir.status_text()?;
    // prlimit on another user's process needs CAP_SYS_RESOURCE, which root may lack;
    // /proc/PID/limits says the same to anyone who may trace the process
    let from_proc = match dir.read_text("limits") {
        Ok(text) => Some(dir.parsed("limits", &text, crate::proc::limits::parse)?),
        Err(_) => None,
    };
    let mut rlimits = Vec::new();
    for (i, r) in RLIMITS.into_iter().enumerate() {
        let (soft, hard) = match crate::sys::prlimit(pid, r, None) {
            Ok(l) => l,
            Err(e) => *from_proc
                .as_ref()
                .and_then(|l| l.get(i))
                .ok_or_else(|| Error::errno(format!("{who}: resource limits"), e))?,
        };
        rlimits.push((r, soft, hard));
    }
    let creds = super::creds::dump(dir, &status)?;
    Ok(ProcessRecord {
        pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        comm: stat.comm.clone(),
        args: dir.cmdline()?,
        exe: dir.link("exe")?,
        cwd: dir.link("cwd")?,
        root: dir.link("root")?,
        // no Umask line: a kernel before 4.7 (a zombie has none either, but is not
        // dumped here); the mask new processes get by default
        umask: dir
            .parsed("status", &status, crate::proc::status::umask)?
            .unwrap_or(0o022),
        uids: creds.uids,
        gids: creds.gids,
        groups: creds.groups,
        caps: creds.caps,
        rlimits,
        personality: dir.personality()?,
        nice: stat.nice,
        sched_policy: stat.policy as i32,
        sched_priority: stat.rt_priority as i32,
        dumpable: true,
        job_stop: 0,
        membarrier: 0,
        coredump_filter: Some(coredump_filter(dir)?),
        autogroup_nice: if stat.session == pid {
            autogroup_nice(dir)?
        } else {
            None
        },
        oom_score_adj: Some(number(dir, "oom_score_adj")?),
        loginuid: dir
            .read_text_if_present("loginuid")?
            .map(|t| dir.parsed("loginuid", &t, parse_number))
            .transpose()?
            .filter(|&u| u != LOGINUID_UNSET),
        thp_disabled: dir.parsed("status", &status, |t| {
            crate::proc::status::field(t, "THP_enabled")
                .map(|v| parse_number::<u32>(v).map(|e| e == 0))
                .unwrap_or(Ok(false))
        })?,
    })
}

/// In the tracer, once the image is in place and before the credentials: chroot by
/// injection (the working directory, set natively, stays where it is).
pub fn restore_root(
    rec: &ProcessRecord,
    rdir: DirAction,
    inj: &crate::engine::ptrace::Injector,
    scratch: &mut crate::engine::ptrace::RemoteScratch,
) -> Result<()> {
    if rdir != DirAction::Replace || rec.root == "/" {
        return Ok(());
    }
    let mut path = rec.root.clone().into_bytes();
    path.push(0);
    let mut s = scratch.frame();
    let at = s.put(&path)?;
    inj.check("chroot", libc::SYS_chroot, [at.as_u64(), 0, 0, 0, 0, 0])
        .map_err(|e| e.context(format!("root directory {}", rec.root)))?;
    Ok(())
}

/// Refuses, before any call is injected into them, what a process of the set (live ones,
/// each once) has that cpr cannot restore: a thread under seccomp (a filter could kill it
/// on an injected call) or with syscall user dispatch on, or tables shared with another
/// process.
pub fn refuse_unrestorable(live: &[i32]) -> Result<()> {
    check_unrestorable(live).map(|_| ())
}

/// The /proc/TID/status text of threads, by TID.
pub type ThreadStatuses = std::collections::BTreeMap<i32, String>;

/// `refuse_unrestorable`, returning the status of every thread it read (of a frozen set:
/// it holds for the whole dump, and is not read again).
pub fn check_unrestorable(live: &[i32]) -> Result<ThreadStatuses> {
    let mut statuses = ThreadStatuses::new();
    for &pid in live {
        let dir = ProcDir::open(pid)?;
        for tid in dir.tids()? {
            let thread = ProcDir::open(tid)?;
            let text = thread.status_text()?;
            super::creds::refuse_seccomp(&thread, &text)?;
            statuses.insert(tid, text);
            if crate::engine::ptrace::syscall_user_dispatch_on(tid) == Some(true) {
                return Err(Error::with_detail(
                    format!("thread {tid}"),
                    Kind::CheckpointError,
                    "syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH) is on: cpr's calls in it could raise SIGSYS, and it is not restored",
                ));
            }
        }
    }
    refuse_shared_tables(live)?;
    Ok(statuses)
}

/// Refuses processes of the set (live ones, each once) that share a descriptor table,
/// a filesystem context or signal handlers (clone with CLONE_FILES, CLONE_FS or
/// CLONE_SIGHAND, without CLONE_VM): each comes back with its own.
fn refuse_shared_tables(live: &[i32]) -> Result<()> {
    use crate::sys::kcmp::{Table, sharing_pair};
    for (table, what) in [
        (Table::Files, "one descriptor table (CLONE_FILES)"),
        (
            Table::Fs,
            "one root, working directory and umask (CLONE_FS)",
        ),
        (Table::Sighand, "one set of signal handlers (CLONE_SIGHAND)"),
    ] {
        if let Some((a, b)) = sharing_pair(live, Some(table)) {
            return Err(Error::with_detail(
                format!("processes {a} and {b}"),
                Kind::CheckpointError,
                format!("they share {what}, which cpr does not restore"),
            ));
        }
    }
    Ok(())
}

/// A number alone in a /proc file.
fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| crate::proc::malformed("value", format!("'{}' is not a number", text.trim())))
}

/// /proc/PID/coredump_filter: hexadecimal.
fn coredump_filter(dir: &ProcDir) -> Result<u32> {
    dir.parsed("coredump_filter", &dir.read("coredump_filter")?, |t| {
        u32::from_str_radix(t.trim(), 16).map_err(|_| {
            crate::proc::malformed("value", format!("'{}' is not hexadecimal", t.trim()))
        })
    })
}

/// /proc/PID/autogroup's nice value (`None`: a kernel without autogroups).
pub fn autogroup_nice(dir: &ProcDir) -> Result<Option<i32>> {
    dir.read_text_if_present("autogroup")?
        .map(|t| dir.parsed("autogroup", &t, crate::proc::autogroup::nice))
        .transpose()
}

/// The restored process's /proc/PID/coredump_filter, for the check before release.
pub fn coredump_filter_of(dir: &ProcDir) -> Result<u32> {
    coredump_filter(dir)
}

fn number<T: std::str::FromStr>(dir: &ProcDir, name: &str) -> Result<T> {
    dir.parsed(name, &dir.read(name)?, parse_number)
}

/// In the restore child, on itself: OOM score adjustment, audit login uid, THP disabled.
/// Its own /proc files are root's: called before it takes the statefile owner's file
/// identity (restart/owner_rights.rs).
pub fn restore_attributes(rec: &ProcessRecord) -> Result<()> {
    let who = format!("process {}", rec.pid);
    if let Some(adj) = rec.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(format!("{who}: oom_score_adj {adj}"))?;
    }
    // where login uids are immutable, even writing the same one again is refused
    let mine = std::fs::read_to_string("/proc/self/loginuid").ok();
    if let Some(uid) = rec
        .loginuid
        .filter(|u| mine.as_deref().map(str::trim) != Some(&u.to_string()))
    {
        std::fs::write("/proc/self/loginuid", uid.to_string())
            .ctx(format!("{who}: audit login uid {uid}"))?;
    }
    // set either way: cpr's own setting is inherited through fork
    crate::sys::prctl::prctl_int(libc::PR_SET_THP_DISABLE, u64::from(rec.thp_disabled))
        .map_err(|e| Error::errno(format!("{who}: PR_SET_THP_DISABLE"), e))?;
    if let Some(filter) = rec.coredump_filter {
        std::fs::write("/proc/self/coredump_filter", format!("{filter:#x}"))
            .ctx(format!("{who}: coredump_filter {filter:#x}"))?;
    }
    super::membarrier::restore(rec.membarrier, &who)?;
    restore_autogroup(rec, &who)
}

/// A session leader's autogroup nice value. Only where it leads its session here (made
/// by setsid, its autogroup is new and its own): otherwise the group is cpr's session's.
fn restore_autogroup(rec: &ProcessRecord, who: &str) -> Result<()> {
    let Some(nice) = rec.autogroup_nice else {
        return Ok(());
    };
    if !(-20..=19).contains(&nice) {
        return Err(crate::statefile::reader::damaged_record(format_args!(
            "{who}: autogroup nice {nice}"
        )));
    }
    let me = nix::unistd::getpid();
    if nix::unistd::getsid(None).ok() != Some(me) {
        return Ok(());
    }
    std::fs::write("/proc/self/autogroup", nice.to_string())
        .ctx(format!("{who}: autogroup nice {nice}"))?;
    Ok(())
}

/// In the restore child: what the process is, except credentials. Runs as root before
/// the address space is replaced.
pub fn restore_native(rec: &ProcessRecord, cdir: DirAction) -> Result<()> {
    let who = format!("process {}", rec.pid);
    // the root directory is the tracer's to change (`restore_root`): this copy of cpr
    // still reads its own /proc until it waits
    if cdir == DirAction::Replace {
        let dir =
            std::fs::File::open(&rec.cwd).ctx(format!("{who}: working directory {}", rec.cwd))?;
        nix::unistd::fchdir(&dir).ctx(format!("{who}: working directory {}", rec.cwd))?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(rec.umask));
    for &(r, soft, hard) in &rec.rlimits {
        if let Err(e) = crate::sys::prlimit(0, r, Some((soft, hard))) {
            let (_, my_hard) = crate::sys::prlimit(0, r, None).unwrap_or((0, 0));
            if hard > my_hard {
                return Err(Error::with_detail(
                    who,
                    Kind::NotPermitted,
                    format!(
                        "resource limit {r}: hard limit {hard} is above cpr's own {my_hard} and this system denies raising it (no CAP_SYS_RESOURCE)"
                    ),
                ));
            }
            return Err(Error::errno(format!("{who}: resource limit {r}"), e));
        }
    }
    // set even when 0: cpr's own (setarch -R cpr ...) is inherited through fork
    nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(
        rec.personality as i32,
    ))
    .ctx(format!("{who}: personality"))?;
    if crate::sys::setpriority_self(rec.nice) < 0 {
        return Err(Error::errno(
            format!("{who}: nice {}", rec.nice),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_reads_this_process() {
        // (the /proc/PID/limits parser is tested in crate::proc::limits)
        let me = std::process::id() as i32;
        let dir = ProcDir::open(me).unwrap();
        let rec = dump(&dir, &dir.stat().unwrap()).unwrap();
        assert_eq!(rec.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(rec.uids[0], nix::unistd::getuid().as_raw());
        assert_eq!(rec.rlimits.len(), RLIMITS.len());
        assert_eq!(rec.personality, 0);
        assert!(!rec.args.is_empty() && rec.exe.starts_with('/'));
    }
}
