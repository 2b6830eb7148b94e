//! The check before release: what the kernel now says about every restored process
//! (stopped, all of it in place but registers) is compared with what its statefile says.
//! A difference fails the whole restart, naming the process, the object and both values:
//! a process never runs with a state other than its saved one without a word. It reads
//! /proc only (no page data), so it is always on.
//!
//! One row of `CHECKS` per object kind; a kind's check lives here or, for the kinds with
//! a module of their own (memory map, descriptor table), in that module as
//! `verify_restored`, called from its row.

use std::collections::BTreeMap;

use super::RestoreContext;
use super::fork::Made;
use super::tracer::Restored;
use super::validate::Image;
use crate::engine::objects::pstree::Role;
use crate::engine::objects::threads::ThreadRecord;
use crate::error::{Error, Kind, Result};
use crate::proc::{ProcDir, status};

/// One restored process as the checks see it.
pub(super) struct Subject<'a> {
    pub img: &'a Image,
    /// Its PID in this world, and its /proc directory.
    pub pid: i32,
    pub dir: ProcDir,
    /// /proc/PID/status and /proc/PID/stat, read once (the main thread's too).
    pub status: String,
    pub stat: crate::proc::Stat,
    /// Its threads in this world with their records, main thread first.
    pub threads: Vec<(i32, &'a ThreadRecord)>,
    /// /proc/TID/status of each of `threads`, read once for every check.
    pub thread_status: Vec<String>,
    /// Original PID to PID in this world, for every node of the restored tree.
    pub pids: &'a BTreeMap<i32, i32>,
    /// Original PID to original process group, for every node of the restored tree.
    pub groups: &'a BTreeMap<i32, i32>,
    /// `-j`: the roots joined cpr's session on purpose.
    pub interactive: bool,
    /// What the process said of its descriptors once restored (fds_verify::ask_injected).
    pub fds_asked: Option<&'a [crate::engine::objects::fds_verify::Asked]>,
}

type Check = fn(&Subject) -> Result<()>;

/// Every object kind compared, with what the errors call it. The memory map and the
/// descriptor table slot in as one row each, their check in their own module:
/// `("memory map", |s| memory::verify_restored(s.pid, &s.img.mm))`,
/// `("descriptors", |s| files::verify_restored(s.pid, &s.img.core.fds))`, each returning
/// an error like [`differs`]'s (Checkpoint error, the object, both values).
const CHECKS: &[(&str, Check)] = &[
    ("process tree", tree),
    ("credentials", credentials),
    ("seccomp", |s| {
        crate::engine::objects::seccomp::verify_restored(&s.threads, &s.thread_status)
    }),
    ("resource limits", limits),
    ("umask", umask),
    ("directories", directories),
    ("process attributes", attributes),
    ("thread names", names),
    ("scheduling", scheduling),
    ("signals", signals),
    ("POSIX timers", posix_timers),
    ("descriptors", |s| {
        crate::engine::objects::fds_verify::verify_restored(s.pid, &s.img.core.fds, s.fds_asked)
    }),
    ("memory map", |s| {
        crate::engine::objects::memory::verify_restored(s.pid, &s.img.mm)
    }),
];

/// Where every node of the restored tree is now, and its original group.
pub(super) struct Known {
    /// Original PID to PID in this world.
    pids: BTreeMap<i32, i32>,
    /// Original PID to original process group.
    groups: BTreeMap<i32, i32>,
    interactive: bool,
}

pub(super) fn known(ctx: &RestoreContext, made: &Made, interactive: bool) -> Known {
    Known {
        pids: ctx
            .plan
            .nodes
            .iter()
            .zip(&made.pids)
            .map(|(node, &now)| (node.pid, now))
            .collect(),
        groups: ctx.plan.nodes.iter().map(|n| (n.pid, n.pgid)).collect(),
        interactive,
    }
}

/// Sets the PIDs to None when dropped unset: a tracer thread waiting for them to check
/// its process gives up instead of waiting for ever (the restart failed).
pub(super) struct KnownOrNone<'a>(pub &'a std::sync::OnceLock<Option<Known>>);

impl Drop for KnownOrNone<'_> {
    fn drop(&mut self) {
        let _ = self.0.set(None);
    }
}

/// Compares one restored process with its record (by the tracer thread that restored
/// it, as soon as it has); the first difference is the error.
pub(super) fn verify_process(
    statefiles: &[crate::statefile::Statefile],
    known: &Known,
    img: &Image,
    r: &Restored,
) -> Result<()> {
    let Some(&(pid, _)) = r.threads.first() else {
        return Ok(());
    };
    let in_statefile = |e: Error| {
        e.context(format!("process {}", img.core.process.pid))
            .context(statefiles[img.sf].path.display())
    };
    let dir = ProcDir::open(pid).map_err(in_statefile)?;
    let status = dir.status_text().map_err(in_statefile)?;
    let thread_status = r
        .threads
        .iter()
        .map(|&(tid, _)| match tid == pid {
            true => Ok(status.clone()),
            false => ProcDir::open(tid).and_then(|d| d.status_text()),
        })
        .collect::<Result<Vec<_>>>()
        .map_err(in_statefile)?;
    let subject = Subject {
        img,
        pid,
        status,
        stat: dir.stat().map_err(in_statefile)?,
        dir,
        threads: r
            .threads
            .iter()
            .map(|&(tid, idx)| (tid, &img.core.threads[idx]))
            .collect(),
        thread_status,
        pids: &known.pids,
        groups: &known.groups,
        interactive: known.interactive,
        fds_asked: r.fds_asked.as_deref(),
    };
    for (what, check) in CHECKS {
        check(&subject).map_err(|e| in_statefile(e.context(what)))?;
    }
    Ok(())
}

/// What spans processes: zombies, and descriptions shared between processes; each
/// process itself was checked by `verify_process`.
pub(super) fn verify_between(
    ctx: &RestoreContext,
    made: &Made,
    known: &Known,
    restored: &[Restored],
) -> Result<()> {
    zombies(ctx, made, &known.pids, &known.groups, known.interactive)?;
    shared_descriptions(ctx, restored)
}

/// Descriptors of different processes share an open file description after restart
/// exactly where they did at checkpoint (shared ids count within one statefile).
fn shared_descriptions(ctx: &RestoreContext, restored: &[Restored]) -> Result<()> {
    for (sf, statefile) in ctx.statefiles.iter().enumerate() {
        let procs: Vec<(i32, &[crate::engine::objects::files::FdRecord])> = restored
            .iter()
            .filter(|r| ctx.images[r.image].sf == sf)
            .filter_map(|r| {
                let &(pid, _) = r.threads.first()?;
                Some((pid, ctx.images[r.image].core.fds.as_slice()))
            })
            .collect();
        crate::engine::objects::fds_verify::verify_shared(&procs).map_err(|e| {
            e.context("descriptors shared between processes")
                .context(statefile.path.display())
        })?;
    }
    Ok(())
}

/// Every zombie's group and session, as `tree` checks a live process's.
fn zombies(
    ctx: &RestoreContext,
    made: &Made,
    pids: &BTreeMap<i32, i32>,
    groups: &BTreeMap<i32, i32>,
    interactive: bool,
) -> Result<()> {
    if interactive {
        return Ok(());
    }
    let now = |id: i32| pids.get(&id).copied();
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        let (Role::Zombie(z), Some(&pid)) = (node.role, made.pids.get(n)) else {
            continue;
        };
        let who = |e: Error| {
            e.context(format!("zombie {}", z.pid))
                .context(ctx.statefiles[0].path.display())
        };
        let stat = ProcDir::open(pid).and_then(|d| d.stat()).map_err(who)?;
        if own_group(groups, z.ppid, z.pid, z.pgid) || pids.contains_key(&z.pgid) {
            let pgid = now(z.pgid).unwrap_or(z.pgid);
            same("process group", pgid, stat.pgrp).map_err(who)?;
        }
        if let Some(sid) = now(z.sid) {
            same("session", sid, stat.session).map_err(who)?;
        }
        same("exit status", z.status, stat.exit_code).map_err(who)?;
    }
    Ok(())
}

/// The error for one difference: `object`, as saved and as restored.
pub(super) fn differs(
    object: impl std::fmt::Display,
    saved: impl std::fmt::Debug,
    now: impl std::fmt::Debug,
) -> Error {
    Error::with_detail(
        object.to_string(),
        Kind::CheckpointError,
        format!("restored as {now:?}, the statefile says {saved:?}; nothing was released"),
    )
}

/// `saved` == `now`, or the difference as an error.
fn same<T: PartialEq + std::fmt::Debug>(
    object: impl std::fmt::Display,
    saved: T,
    now: T,
) -> Result<()> {
    if saved == now {
        Ok(())
    } else {
        Err(differs(object, saved, now))
    }
}

impl Subject<'_> {
    fn parsed<T>(&self, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        self.dir.parsed("status", &self.status, parse)
    }

    /// /proc/TID of one of its threads and its status text; the main thread's are
    /// those read already.
    fn thread_dir(&self, tid: i32) -> Result<Option<ProcDir>> {
        if tid == self.pid {
            return Ok(None);
        }
        ProcDir::open(tid).map(Some)
    }

    /// Where the original ID `id` is now: the same PID, or its node's in this world.
    fn now(&self, id: i32) -> i32 {
        self.pids.get(&id).copied().unwrap_or(id)
    }
}

/// Parent, process group and session. A parent outside the set is whoever restarts it;
/// a group or session whose leader is neither in the set nor recreated by a helper is
/// the restarting cpr's (as the guide has it); with `-j` the roots are in cpr's session.
fn tree(s: &Subject) -> Result<()> {
    let rec = &s.img.core.process;
    let stat = &s.stat;
    same("PID", s.now(rec.pid), s.pid)?;
    let mut tids: Vec<i32> = s.threads.iter().map(|&(tid, _)| tid).collect();
    if let Some(others) = tids.get_mut(1..) {
        others.sort_unstable();
    }
    same("threads", tids, s.dir.tids()?)?;
    if s.pids.contains_key(&rec.ppid) && rec.ppid != rec.pid {
        same("parent", s.now(rec.ppid), stat.ppid)?;
    }
    if s.interactive {
        return Ok(());
    }
    if s.pids.contains_key(&rec.pgid) || own_group(s.groups, rec.ppid, rec.pid, rec.pgid) {
        same("process group", s.now(rec.pgid), stat.pgrp)?;
    }
    if s.pids.contains_key(&rec.sid) {
        same("session", s.now(rec.sid), stat.session)?;
    }
    Ok(())
}

/// Whether a process (or zombie) whose parent is in the restored tree was in a group
/// other than its parent's: that group must come back, even when its leader had exited
/// and its PID could not be taken again by a helper (pstree.rs).
fn own_group(groups: &BTreeMap<i32, i32>, ppid: i32, pid: i32, pgid: i32) -> bool {
    ppid != pid && groups.get(&ppid).is_some_and(|&g| g != pgid)
}

/// Every thread's IDs, groups, capability sets and no_new_privs (securebits are not in
/// /proc: restore checks each prctl it makes).
fn credentials(s: &Subject) -> Result<()> {
    let rec = &s.img.core.process;
    for (&(tid, t), text) in s.threads.iter().zip(&s.thread_status) {
        let own = s.thread_dir(tid)?;
        let dir = own.as_ref().unwrap_or(&s.dir);
        let read = |key: &str| {
            dir.parsed("status", text, |x| status::mask(x, key))
                .map(Hex)
        };
        let who = format!("thread {}", t.tid);
        let (uids, gids, groups, caps) = match &t.creds {
            Some(c) => (c.uids, c.gids, &c.groups, c.caps),
            None => (rec.uids, rec.gids, &rec.groups, rec.caps),
        };
        same(
            format_args!("{who} uids"),
            uids,
            dir.parsed("status", text, |x| status::ids(x, "Uid"))?,
        )?;
        same(
            format_args!("{who} gids"),
            gids,
            dir.parsed("status", text, |x| status::ids(x, "Gid"))?,
        )?;
        let mut groups = groups.clone();
        groups.sort_unstable();
        let mut now = dir.parsed("status", text, status::groups)?;
        now.sort_unstable();
        same(format_args!("{who} supplementary groups"), groups, now)?;
        let mut sets = vec![
            ("CapInh", caps.inheritable),
            ("CapPrm", caps.permitted),
            ("CapEff", caps.effective),
        ];
        if let Some(c) = &t.creds {
            sets.extend([("CapBnd", c.bounding), ("CapAmb", c.ambient)]);
            let nnp: u32 = dir.parsed("status", text, |x| status::number(x, "NoNewPrivs"))?;
            same(format_args!("{who} no_new_privs"), c.no_new_privs, nnp != 0)?;
        }
        for (key, saved) in sets {
            same(
                format_args!("{who} capabilities {key}"),
                Hex(saved),
                read(key)?,
            )?;
        }
    }
    Ok(())
}

fn limits(s: &Subject) -> Result<()> {
    let now = s.dir.limits()?;
    for &(resource, soft, hard) in &s.img.core.process.rlimits {
        if let Some(&l) = usize::try_from(resource).ok().and_then(|r| now.get(r)) {
            same(format_args!("limit {resource}"), (soft, hard), l)?;
        }
    }
    Ok(())
}

fn umask(s: &Subject) -> Result<()> {
    match s.parsed(status::umask)? {
        Some(now) => same("umask", Oct(s.img.core.process.umask), Oct(now)),
        None => Ok(()),
    }
}

/// The working and root directories, where the policies put them back.
fn directories(s: &Subject) -> Result<()> {
    let (rec, policies) = (&s.img.core.process, &s.img.core.policies);
    if policies.rdir == crate::attrfile::DirAction::Replace {
        same(
            "root directory",
            rec.root.as_str(),
            s.dir.link("root")?.as_str(),
        )?;
    }
    if policies.cdir == crate::attrfile::DirAction::Replace {
        same(
            "working directory",
            rec.cwd.as_str(),
            s.dir.link("cwd")?.as_str(),
        )?;
    }
    Ok(())
}

/// OOM score adjustment, audit login uid, THP disabled (parent-death signal and
/// child-subreaper flag are not in /proc: restore checks the prctl that sets them).
fn attributes(s: &Subject) -> Result<()> {
    let rec = &s.img.core.process;
    let number = |name: &str| -> Result<i64> {
        let text = s.dir.read(name)?;
        s.dir.parsed(name, &text, |t| {
            t.trim()
                .parse()
                .map_err(|_| crate::proc::malformed(name, "not a number"))
        })
    };
    if let Some(adj) = rec.oom_score_adj {
        same("oom_score_adj", i64::from(adj), number("oom_score_adj")?)?;
    }
    if let Some(uid) = rec.loginuid {
        same("audit login uid", i64::from(uid), number("loginuid")?)?;
    }
    same(
        "personality",
        Hex(rec.personality),
        Hex(s.dir.personality()?),
    )?;
    if let Some(enabled) = status::field(&s.status, "THP_enabled") {
        same("THP disabled", rec.thp_disabled, enabled == "0")?;
    }
    if let Some(nice) = rec.autogroup_nice
        && s.stat.session == s.pid
    {
        same(
            "autogroup nice",
            Some(nice),
            crate::engine::objects::process::autogroup_nice(&s.dir)?,
        )?;
    }
    if let Some(filter) = rec.coredump_filter {
        same(
            "coredump_filter",
            Hex(u64::from(filter)),
            Hex(u64::from(
                crate::engine::objects::process::coredump_filter_of(&s.dir)?,
            )),
        )?;
    }
    Ok(())
}

/// Every thread's name (comm), as the kernel shortens it.
fn names(s: &Subject) -> Result<()> {
    for &(tid, t) in &s.threads {
        if t.comm.is_empty() {
            continue;
        }
        // restore sets the first 15 bytes (the kernel keeps no more)
        let saved = String::from_utf8_lossy(&t.comm.as_bytes()[..t.comm.len().min(15)])
            .trim_end()
            .to_string();
        same(
            format_args!("thread {} name", t.tid),
            saved,
            s.dir.thread_comm(tid)?,
        )?;
    }
    Ok(())
}

/// Policy, priority, nice and CPUs of every thread.
fn scheduling(s: &Subject) -> Result<()> {
    let rec = &s.img.core.process;
    for (&(tid, t), text) in s.threads.iter().zip(&s.thread_status) {
        let own = s.thread_dir(tid)?;
        let dir = own.as_ref().unwrap_or(&s.dir);
        // a thread's own stat: /proc/TID/stat adds up every thread of the process (the
        // main thread's, read once, has its own policy, priority and nice)
        let stat = match &own {
            None => std::borrow::Cow::Borrowed(&s.stat),
            Some(d) => {
                let name = format!("task/{tid}/stat");
                std::borrow::Cow::Owned(d.parsed(
                    &name,
                    &d.read(&name)?,
                    crate::proc::stat::parse,
                )?)
            }
        };
        let now = (stat.policy as i32, stat.rt_priority as i32, stat.nice);
        let who = format_args!("thread {}", t.tid);
        match &t.sched {
            Some(saved) => {
                same(
                    format_args!("{who} policy, priority, nice"),
                    (saved.policy, saved.priority, saved.nice),
                    now,
                )?;
                let cpus = dir.parsed("status", text, status::cpu_list)?;
                same(format_args!("{who} CPU affinity"), saved.cpus_here()?, cpus)?;
            }
            None => same(
                format_args!("{who} policy, priority, nice"),
                (rec.sched_policy, rec.sched_priority, rec.nice),
                now,
            )?,
        }
    }
    Ok(())
}

/// Dispositions (ignored, caught), the shared pending set and each thread's pending set.
/// The masks are the release's to set. An extra SIGCHLD may be pending: children that
/// exit during the restore (zombies, helpers) send it while signals are blocked.
fn signals(s: &Subject) -> Result<()> {
    let rec = &s.img.core.signals;
    let bit = |sig: i32| 1u64 << (sig - 1);
    let (mut ignored, mut caught) = (0, 0);
    for (sig, act) in &rec.actions {
        match act.handler {
            0 => {}
            1 => ignored |= bit(*sig),
            _ => caught |= bit(*sig),
        }
    }
    same(
        "ignored signals",
        Hex(ignored),
        Hex(s.parsed(|t| status::mask(t, "SigIgn"))?),
    )?;
    same(
        "caught signals",
        Hex(caught),
        Hex(s.parsed(|t| status::mask(t, "SigCgt"))?),
    )?;
    let mut pending = pending_mask(&rec.shared_pending)?;
    if crate::engine::cooperate::wants_restart_signal(&rec.actions) {
        pending |= bit(crate::engine::cooperate::SIGRESTART);
    }
    let now = s.parsed(|t| status::mask(t, "ShdPnd"))?;
    same(
        "pending signals",
        Hex(pending),
        Hex(now & !(bit(libc::SIGCHLD) & !pending)),
    )?;
    for (&(tid, t), text) in s.threads.iter().zip(&s.thread_status) {
        let own = s.thread_dir(tid)?;
        let dir = own.as_ref().unwrap_or(&s.dir);
        let now = dir.parsed("status", text, |t| status::mask(t, "SigPnd"))?;
        same(
            format_args!("thread {} pending signals", t.tid),
            Hex(pending_mask(&t.pending)?),
            Hex(now),
        )?;
    }
    Ok(())
}

fn pending_mask(queue: &[String]) -> Result<u64> {
    let mut mask = 0;
    for info in queue {
        let (sig, _) = crate::engine::objects::threads::decode_siginfo(info)?;
        mask |= 1u64 << (sig - 1);
    }
    Ok(mask)
}

/// IDs, clocks, signals and values of the POSIX timers (their time left keeps running).
fn posix_timers(s: &Subject) -> Result<()> {
    let key = |id, clock, signo, sival, notify| (id, clock, signo, Hex(sival), notify);
    let saved: Vec<_> = s
        .img
        .core
        .posix_timers
        .iter()
        .map(|t| key(t.id, t.clock, t.signo, t.sival, t.notify))
        .collect();
    let mut now: Vec<_> = s
        .dir
        .timers()?
        .iter()
        .map(|t| key(t.id, t.clock, t.signo, t.sival, t.notify))
        .collect();
    if now.is_empty() && !saved.is_empty() && s.dir.read_text_if_present("timers")?.is_none() {
        // a kernel without /proc/PID/timers: nothing to compare with
        return Ok(());
    }
    now.sort_by_key(|k| k.0);
    let mut saved = saved;
    saved.sort_by_key(|k| k.0);
    same("timers", saved, now)
}

/// A mask shown as the kernel shows it.
#[derive(PartialEq)]
struct Hex(u64);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(PartialEq)]
struct Oct(u32);

impl std::fmt::Debug for Oct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}
