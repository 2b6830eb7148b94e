//! Freezing: every thread of every target seized and stopped, until the set is stable;
//! and the syscall instruction the dump injects its calls through.

use std::collections::BTreeMap;

use super::Targets;
use crate::engine::objects::pstree;
use crate::engine::ptrace;
use crate::error::{Error, Kind, Result};
use crate::proc::ProcDir;
use crate::target;

/// The frozen processes. Dropped without `kill`, it lets them all run on.
#[derive(Default)]
pub(super) struct Freezer {
    /// pid -> its thread IDs (main thread first), all seized and stopped.
    pub threads: BTreeMap<i32, Vec<i32>>,
    /// pid -> the signal that stopped it, for processes stopped by job control.
    pub job_stopped: BTreeMap<i32, i32>,
    done: bool,
}

/// Freezes the targets. A set named by group, session or tree is looked up again once
/// frozen, so that processes forked meanwhile are caught too. Returns the frozen
/// processes and the zombies (unreaped children) among the targets.
pub(super) fn freeze_targets(targets: &Targets) -> Result<(Freezer, Vec<pstree::Zombie>)> {
    let designators = &targets.designators;
    let mut frozen = Freezer::default();
    let mut zombies: Vec<pstree::Zombie> = Vec::new();
    let mut current = targets.set.clone();
    loop {
        let mut live = Vec::new();
        for &pid in current.processes.keys() {
            if frozen.threads.contains_key(&pid) || zombies.iter().any(|z| z.pid == pid) {
                continue;
            }
            match pstree::zombie(pid) {
                Some(z) => zombies.push(z),
                None => live.push(pid),
            }
        }
        if live.is_empty() {
            break;
        }
        let named: Vec<i32> = designators
            .iter()
            .filter(|d| d.id_type == target::IdType::Pid)
            .map(|d| d.id as i32)
            .collect();
        for pid in frozen.freeze(&live, &|pid| !named.contains(&pid))? {
            // it ended meanwhile: an unreaped child is kept as a zombie, else it is gone
            if let Some(z) = pstree::zombie(pid) {
                zombies.push(z);
            }
        }
        if designators.iter().all(|d| d.id_type == target::IdType::Pid) {
            break;
        }
        // a tree (`:HID`) grows only by children of its processes: when every child of
        // the frozen ones is known, looking the whole set up again finds nothing new
        if designators
            .iter()
            .all(|d| matches!(d.id_type, target::IdType::Pid | target::IdType::Hid))
            && children_known(&frozen, &zombies)
        {
            break;
        }
        current = target::resolve(designators, crate::engine::options::caller_uid())?;
    }
    // a zombie seen before its parent was frozen may have been reaped since: only those
    // still there (their parents now frozen) are the parents' to reap after restart
    zombies.retain(|z| pstree::zombie(z.pid).is_some());
    Ok((frozen, zombies))
}

impl Freezer {
    /// The frozen processes, in PID order.
    pub fn pids(&self) -> Vec<i32> {
        self.threads.keys().copied().collect()
    }

    /// Seizes and stops every thread of `pids` (added to those already frozen).
    /// `may_vanish`: processes found through a group, session or tree, which may end
    /// before they are caught; those are left out and returned.
    fn freeze(&mut self, pids: &[i32], may_vanish: &dyn Fn(i32) -> bool) -> Result<Vec<i32>> {
        let f = self;
        for &pid in pids {
            f.threads.insert(pid, Vec::new());
        }
        let mut vanished = Vec::new();
        // seize until a pass finds no new thread: threads created meanwhile are caught.
        // Every new thread of a pass is seized and interrupted first, then waited for:
        // they stop side by side, not one after the other.
        loop {
            let mut new = 0;
            let mut interrupted: Vec<(i32, i32)> = Vec::new();
            let mut failure = None;
            'procs: for (&pid, seized) in f.threads.iter() {
                if vanished.contains(&pid) {
                    continue;
                }
                let tids = match ProcDir::open(pid).and_then(|d| d.tids()) {
                    Ok(t) => t,
                    Err(_) if may_vanish(pid) => {
                        vanished.push(pid);
                        continue;
                    }
                    Err(_) => {
                        failure = Some(Error::with_detail(
                            format!("process {pid}"),
                            Kind::NoSuchProcess,
                            "exited during checkpoint",
                        ));
                        break;
                    }
                };
                for tid in tids {
                    if seized.contains(&tid) {
                        continue;
                    }
                    // never PTRACE_O_EXITKILL: a cpr that is killed must leave its
                    // targets running (the injected calls keep them resumable)
                    match ptrace::seize_and_interrupt(tid, libc::PTRACE_O_TRACESYSGOOD) {
                        Ok(()) => interrupted.push((pid, tid)),
                        // a thread that ended between listing and seizing
                        Err(e) if e.kind == Kind::NoSuchProcess && tid != pid => continue,
                        // a process that is ending (a zombie cannot be seized)
                        Err(_) if tid == pid && may_vanish(pid) && !alive(pid) => {
                            vanished.push(pid);
                            break;
                        }
                        Err(e) => {
                            failure = Some(refused_seize(pid, tid, e));
                            break 'procs;
                        }
                    }
                }
            }
            // every thread interrupted is waited for, even after a failure: none is left
            // seized and running
            for (pid, tid) in interrupted {
                let Some(seized) = f.threads.get_mut(&pid) else {
                    continue;
                };
                match ptrace::wait_for_stop(tid) {
                    Ok(sig) => {
                        if tid == pid && sig != libc::SIGTRAP {
                            f.job_stopped.insert(pid, sig);
                        }
                        seized.push(tid);
                        new += 1;
                    }
                    // a thread that ended between seizing and its stop
                    Err(e) if e.kind == Kind::NoSuchProcess && tid != pid => continue,
                    Err(_) if tid == pid && may_vanish(pid) && !alive(pid) => {
                        if !vanished.contains(&pid) {
                            vanished.push(pid);
                        }
                    }
                    Err(e) => {
                        if failure.is_none() {
                            failure = Some(refused_seize(pid, tid, e));
                        }
                    }
                }
            }
            for (&pid, seized) in f.threads.iter_mut() {
                // main thread first
                if let Some(i) = seized.iter().position(|t| *t == pid) {
                    let t = seized.remove(i);
                    seized.insert(0, t);
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if new == 0 {
                break;
            }
        }
        for pid in &vanished {
            if let Some(tids) = f.threads.remove(pid) {
                for tid in tids {
                    let _ = ptrace::detach(tid, 0);
                }
            }
        }
        // threads that ended while stopped are dropped from the lists
        for (&pid, tids) in f.threads.iter_mut() {
            tids.retain(|t| {
                *t == pid || std::path::Path::new(&format!("/proc/{pid}/task/{t}")).exists()
            });
        }
        Ok(vanished)
    }

    /// Lets one process run on (WILL CONT): detached and no longer frozen. Its registers
    /// and masks are its own already: every injected call put them back at once.
    pub fn let_run(&mut self, pid: i32) {
        if let Some(tids) = self.threads.remove(&pid) {
            for tid in tids {
                let _ = ptrace::detach(tid, 0);
            }
        }
    }

    /// Lets every process run on.
    pub fn release(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for pid in self.pids() {
            self.let_run(pid);
        }
    }

    /// Ends every process (WILL EXIT / KILL) and waits until they are gone.
    pub fn kill(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        // (taken before the kill: a pidfd names the process, never a later one with its PID)
        let pidfds: Vec<_> = self
            .threads
            .keys()
            .filter_map(|&pid| crate::sys::pidfd_open(pid).ok())
            .collect();
        for &pid in self.threads.keys() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::scope(|scope| {
            // the dying processes free their memory faster with a second CPU at it; the
            // waits below end only once it is free (a restart right after needs the PIDs)
            let _ = std::thread::Builder::new().spawn_scoped(scope, || {
                for fd in &pidfds {
                    use std::os::fd::AsFd;
                    let _ = crate::sys::process_mrelease(fd.as_fd());
                }
            });
            for tids in self.threads.values() {
                // collect each tracee's end so none lingers as traced; a thread-group
                // leader reports only after its other threads, so those first
                for &tid in tids.iter().rev() {
                    let _ = ptrace::wait(tid);
                }
            }
        });
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.release();
    }
}

/// Why thread `tid` of process `pid` could not be seized: another tracer took it since
/// it was resolved, or `e` as it is.
fn refused_seize(pid: i32, tid: i32, e: Error) -> Error {
    match target::refuse_traced(pid, tid, None, std::process::id() as i32) {
        Err(busy) => busy,
        // not another tracer: say what the kernel's ptrace rules (Yama) allow, if they refused
        Ok(()) => crate::engine::privilege::explain_attach(e).context(format!("process {pid}")),
    }
}

/// Whether every child of every frozen thread (/proc/PID/task/TID/children, exact while
/// the thread is stopped) is frozen or a known zombie; false when a list cannot be read.
fn children_known(frozen: &Freezer, zombies: &[pstree::Zombie]) -> bool {
    frozen.threads.iter().all(|(pid, tids)| {
        tids.iter().all(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")).is_ok_and(|text| {
                text.split_whitespace().all(|c| {
                    c.parse::<i32>().is_ok_and(|c| {
                        frozen.threads.contains_key(&c) || zombies.iter().any(|z| z.pid == c)
                    })
                })
            })
        })
    })
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    ProcDir::open(pid)
        .and_then(|d| d.stat())
        .is_ok_and(|s| s.state != 'Z' && s.state != 'X')
}
