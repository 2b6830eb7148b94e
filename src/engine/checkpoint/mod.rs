//! `cpr -c`: the checkpoint as a list of phases.
//!
//! 1. resolve the designators, read the attribute file
//! 2. freeze every thread of every process (seize + interrupt, until the set is stable)
//! 3. per process: what only the process can tell (injected calls), memory, files, the rest
//! 4. commit the statefile (fsync'd, renamed into place)
//! 5. WILL: EXIT/KILL end the originals; CONT lets them run on
//!
//! Any failure before 5 lets every process run on untouched and leaves no statefile.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::objects::memory::{self, MmRecord};
use super::ptrace::{self, Gate, Injector, Regs};
use super::objects::{files, locks, process, pstree, shared, signals, sysv_shm as shm, threads};
use super::procfs;
use super::timer::Timer;
use crate::attrfile::{AttrFile, ProcessPolicies, WillAction};
use crate::error::{Context, Error, Kind, Result};
use crate::ops::CheckpointOptions;
use crate::statefile::{self, Flags, Manifest, Owner, ProcessSummary, StatefileWriter};
use crate::target;

/// `proc/<pid>/core.json`: everything of a process but its memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreRecord {
    pub process: process::ProcessRecord,
    pub threads: Vec<threads::ThreadRecord>,
    pub signals: signals::SignalsRecord,
    pub fds: Vec<files::FdRecord>,
    pub policies: ProcessPolicies,
    /// File locks held through `fds` (guide: "All file locks are also restored").
    #[serde(default)]
    pub locks: Vec<locks::LockRecord>,
    #[serde(default)]
    pub posix_timers: Vec<super::objects::events::PosixTimer>,
}

pub fn core_path(pid: i32) -> String {
    format!("proc/{pid}/core.json")
}
pub fn mm_path(pid: i32) -> String {
    format!("proc/{pid}/mm.json")
}
pub fn pages_path(pid: i32) -> String {
    format!("proc/{pid}/pages")
}

/// The frozen processes. Dropped without `kill`, it lets them all run on.
#[derive(Default)]
struct Freezer {
    /// pid -> its thread IDs (main thread first), all seized and stopped.
    threads: BTreeMap<i32, Vec<i32>>,
    /// Threads whose registers injection changed: the registers to put back.
    /// Threads whose registers or signal mask the dump changed: what to put back.
    touched: Vec<(i32, Regs, u64)>,
    done: bool,
}

impl Freezer {
    /// Seizes and stops every thread of `pids` (added to those already frozen).
    /// `may_vanish`: processes found through a group, session or tree, which may end
    /// before they are caught; those are left out and returned.
    fn freeze(&mut self, pids: &[i32], may_vanish: &dyn Fn(i32) -> bool) -> Result<Vec<i32>> {
        let f = self;
        for &pid in pids {
            f.threads.insert(pid, Vec::new());
        }
        let mut vanished = Vec::new();
        // seize until a pass finds no new thread: threads created meanwhile are caught
        loop {
            let mut new = 0;
            for (&pid, seized) in f.threads.iter_mut() {
                if vanished.contains(&pid) {
                    continue;
                }
                let tids = match procfs::thread_ids(pid) {
                    Ok(t) => t,
                    Err(_) if may_vanish(pid) => {
                        vanished.push(pid);
                        continue;
                    }
                    Err(_) => {
                        return Err(Error::with_detail(
                            format!("process {pid}"),
                            Kind::NoSuchProcess,
                            "exited during checkpoint",
                        ));
                    }
                };
                for tid in tids {
                    if seized.contains(&tid) {
                        continue;
                    }
                    match ptrace::seize_and_stop(tid, libc::PTRACE_O_TRACESYSGOOD) {
                        Ok(()) => {
                            seized.push(tid);
                            new += 1;
                        }
                        // a thread that ended between listing and seizing
                        Err(e) if e.kind == Kind::NoSuchProcess && tid != pid => continue,
                        // a process that is ending (a zombie cannot be seized)
                        Err(_) if tid == pid && may_vanish(pid) && !alive(pid) => {
                            vanished.push(pid);
                            break;
                        }
                        Err(e) => return Err(e.context(format!("process {pid}"))),
                    }
                }
                // main thread first
                if let Some(i) = seized.iter().position(|t| *t == pid) {
                    let t = seized.remove(i);
                    seized.insert(0, t);
                }
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

    /// Lets every process run on: registers put back (calls they were in re-issued),
    /// then detached.
    fn release(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for (tid, regs, mask) in &self.touched {
            let _ = ptrace::set_regs(*tid, &threads::resume_regs(regs));
            let _ = ptrace::set_sigmask(*tid, *mask);
        }
        for tids in self.threads.values() {
            for &tid in tids {
                let _ = ptrace::detach(tid, 0);
            }
        }
    }

    /// Ends every process (WILL EXIT / KILL) and waits until they are gone.
    fn kill(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for &pid in self.threads.keys() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for tids in self.threads.values() {
            // collect each tracee's end so none lingers as traced; a thread-group leader
            // reports only after its other threads, so those first
            for &tid in tids.iter().rev() {
                let _ = ptrace::wait(tid);
            }
        }
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    procfs::read_stat(pid).is_ok_and(|s| s.state() != 'Z' && s.state() != 'X')
}

/// Finds a `syscall` instruction in the process's vDSO: injection goes through it, so
/// the target's own code is never written.
fn syscall_gate(pid: i32) -> Result<u64> {
    let maps = procfs::read_maps(pid)?;
    let vdso = maps.iter().find(|m| m.path == "[vdso]").ok_or_else(|| {
        Error::with_detail(
            format!("process {pid}"),
            Kind::CheckpointError,
            "no vDSO to run system calls through",
        )
    })?;
    let code = ptrace::read_mem(pid, vdso.start, (vdso.end - vdso.start) as usize)?;
    code.windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|off| vdso.start + off as u64)
        .ok_or_else(|| {
            Error::with_detail(
                format!("process {pid}"),
                Kind::CheckpointError,
                "no syscall instruction in the vDSO",
            )
        })
}

pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    let mut timer = Timer::new();
    // 1. what to checkpoint, and how
    let designators = target::parse_idlist(&options.idlist)?;
    let set = target::resolve(&designators, crate::ops::caller_uid())?;
    let attributes = match &options.attributes {
        Some(a) => a.clone(),
        None => AttrFile::load_default()?,
    };
    let (uid, gid) = set.owner().unwrap_or((0, 0));
    let owner = Owner { uid, gid };

    // programs that asked for it prepare first (SIGCKPT handlers), bounded in time
    super::cooperate::notify_checkpoint(
        &set.pids(),
        options
            .handler_timeout
            .unwrap_or(super::cooperate::DEFAULT_HANDLER_TIMEOUT),
    )?;

    // 2. freeze; a set named by group, session or tree is looked up again once frozen,
    // so that processes forked meanwhile are caught too
    let mut frozen = Freezer::default();
    let mut zombies: Vec<pstree::Zombie> = Vec::new();
    let mut current = set;
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
        current = target::resolve(&designators, crate::ops::caller_uid())?;
    }
    // a zombie seen before its parent was frozen may have been reaped since: only those
    // still there (their parents now frozen) are the parents' to reap after restart
    zombies.retain(|z| pstree::zombie(z.pid).is_some());
    let mut policies: BTreeMap<i32, ProcessPolicies> = BTreeMap::new();
    for &pid in frozen.threads.keys() {
        let ids = target::process_ids(pid)?;
        let mut p = attributes.policies_for(&ids, &ancestors(pid));
        if let Some(w) = options.will {
            p.will = w;
        }
        policies.insert(pid, p);
    }
    let will = options
        .will
        .unwrap_or_else(|| policies.values().next().map(|p| p.will).unwrap_or_default());
    // processes sharing one address space (CLONE_VM without CLONE_THREAD, a vfork child
    // before its exec) would come back with two: refused rather than split
    let live: Vec<i32> = frozen.threads.keys().copied().collect();
    for (i, &a) in live.iter().enumerate() {
        for &b in &live[i + 1..] {
            if crate::sys::kcmp::same_vm(
                nix::unistd::Pid::from_raw(a),
                nix::unistd::Pid::from_raw(b),
            )
            .unwrap_or(false)
            {
                return Err(Error::with_detail(
                    format!("processes {a} and {b}"),
                    Kind::CheckpointError,
                    "they share one address space (CLONE_VM or vfork), which cpr does not restore",
                ));
            }
        }
    }
    timer.lap("freeze");

    // 3. dump every process, then what they share
    let mut writer = StatefileWriter::create(&options.statefile, options.force, owner)?;
    let in_statefile = |e: Error| e.context(options.statefile.display());
    let mut dumped = Vec::new();
    let pids: Vec<i32> = frozen.threads.keys().copied().collect();
    let mut upgrade_copies = Vec::new();
    for &pid in &pids {
        let tids = frozen.threads[&pid].clone();
        let d = dump_process(
            pid,
            &tids,
            &policies[&pid],
            &mut writer,
            &mut frozen.touched,
        )
        .and_then(|(core, mut mm)| {
            mm.components = super::objects::mapped_files::dump(
                pid,
                &mm.vmas,
                options.upgrade,
                &mut writer,
                &mut upgrade_copies,
            )?;
            Ok((core, mm))
        })
        .map_err(in_statefile)?;
        dumped.push(d);
    }
    timer.lap("dump processes (page data written and fsync'd)");
    let mut table = {
        let mut procs: Vec<shared::ProcessFds<'_>> = dumped
            .iter_mut()
            .map(|(core, _)| shared::ProcessFds {
                pid: core.process.pid,
                fds: &mut core.fds,
                policies: &core.policies,
            })
            .collect();
        shared::collect(&mut procs, &mut writer).map_err(in_statefile)?
    };
    {
        let mut maps: Vec<(i32, &mut Vec<memory::Vma>)> = dumped
            .iter_mut()
            .map(|(c, mm)| (c.process.pid, &mut mm.vmas))
            .collect();
        shared::collect_memory(&mut maps, &mut table, &mut writer).map_err(in_statefile)?;
    }
    writer.write_json(shared::TABLE, &table)?;
    writer.write_json(pstree::TREE, &pstree::TreeRecord { zombies })?;
    let mut summaries = Vec::new();
    for (core, mm) in &dumped {
        let pid = core.process.pid;
        writer.write_json(&mm_path(pid), mm)?;
        writer.write_json(&core_path(pid), core)?;
        let p = &core.process;
        summaries.push(ProcessSummary {
            pid,
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
        });
    }
    // SysV shared memory segments the processes attach, saved once each (engine/shm.rs)
    shm::dump_segments(&pids, &mut writer).ctx(options.statefile.display())?;
    timer.lap("shared objects (pipes, shared memory, SysV shm)");

    // 4. commit: durable before anything happens to the originals
    let manifest = Manifest {
        revision: statefile::REVISION,
        cpr_version: env!("CARGO_PKG_VERSION").to_string(),
        created: chrono::Utc::now().to_rfc3339(),
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        owner,
        designators: options.idlist.clone(),
        flags: Flags {
            will,
            upgrade: options.upgrade,
        },
        processes: summaries,
        files: Vec::new(),
    };
    let path = writer.commit(manifest)?;
    timer.lap("commit (fsync)");

    // 5. WILL
    let all_cont = policies.values().all(|p| p.will == WillAction::Cont);
    if all_cont {
        frozen.release();
    } else {
        // processes with CONT run on; the others end
        let cont: Vec<i32> = policies
            .iter()
            .filter(|(_, p)| p.will == WillAction::Cont)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in cont {
            if let Some(tids) = frozen.threads.remove(&pid) {
                for (tid, regs, mask) in frozen.touched.iter().filter(|(t, _, _)| tids.contains(t))
                {
                    let _ = ptrace::set_regs(*tid, &threads::resume_regs(regs));
                    let _ = ptrace::set_sigmask(*tid, *mask);
                }
                for tid in tids {
                    let _ = ptrace::detach(tid, 0);
                }
            }
        }
        frozen.kill();
    }
    Ok(path)
}

fn ancestors(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut cur = pid;
    while let Ok(s) = procfs::read_stat(cur) {
        let ppid = s.field(4) as i32;
        if ppid <= 0 || out.contains(&ppid) {
            break;
        }
        out.push(ppid);
        cur = ppid;
    }
    out
}

fn dump_process(
    pid: i32,
    tids: &[i32],
    policies: &ProcessPolicies,
    writer: &mut StatefileWriter,
    touched: &mut Vec<(i32, Regs, u64)>,
) -> Result<(CoreRecord, MmRecord)> {
    let who = format!("process {pid}");
    let regs: Vec<Regs> = tids
        .iter()
        .map(|t| ptrace::get_regs(*t))
        .collect::<Result<_>>()?;
    // Signals arriving while calls are injected stay pending (and are saved as pending)
    // rather than being taken, mid-injection, by a thread: every mask fully blocked
    // until release, which puts the masks back.
    let masks: Vec<u64> = tids
        .iter()
        .map(|t| ptrace::get_sigmask(*t))
        .collect::<Result<_>>()?;
    for (i, &tid) in tids.iter().enumerate() {
        touched.push((tid, regs[i], masks[i]));
        ptrace::set_sigmask(tid, !0)?;
    }
    // What only the process can tell, by calls injected through its vDSO's syscall
    // instruction, with a scratch page mapped for the purpose and removed after.
    let gate = Gate::SyscallInsn(syscall_gate(pid)?);
    let main = Injector::new(pid, gate)?;
    let scratch = main.check(
        "mmap scratch",
        libc::SYS_mmap,
        [
            0,
            3 * memory::PAGE,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?;
    let injected = (|| -> Result<(signals::SignalsRecord, u64, Vec<threads::ThreadRecord>)> {
        let sig = signals::dump(pid, &main, scratch)?;
        let brk = main.check("brk", libc::SYS_brk, [0; 6])?;
        let mut trecs = Vec::new();
        for (i, &tid) in tids.iter().enumerate() {
            let rec = if tid == pid {
                threads::dump(
                    tid,
                    pid,
                    &regs[i],
                    masks[i],
                    &main,
                    scratch + 2 * memory::PAGE,
                )?
            } else {
                let inj = Injector::new(tid, gate)?;
                threads::dump(
                    tid,
                    pid,
                    &regs[i],
                    masks[i],
                    &inj,
                    scratch + 2 * memory::PAGE,
                )?
            };
            trecs.push(rec);
        }
        Ok((sig, brk, trecs))
    })();
    let posix_timers = super::objects::events::dump_posix_timers(pid, &main, scratch);
    main.check(
        "munmap scratch",
        libc::SYS_munmap,
        [scratch, 3 * memory::PAGE, 0, 0, 0, 0],
    )?;
    let (signals_rec, brk, thread_recs) = injected?;
    let posix_timers = posix_timers?;

    // memory
    let vmas = memory::plan(pid)?;
    let mut sink = writer.create_file(&pages_path(pid))?;
    let pages_bytes = memory::dump_pages(pid, &vmas, &mut sink)?;
    writer.finish_file(sink)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .ctx(&who)?;
    let mm = MmRecord {
        fields: memory::mm_fields(pid, brk)?,
        auxv: memory::read_auxv(pid)?,
        exe,
        pages_bytes,
        vmas,
        components: Vec::new(),
    };
    // files and the rest
    let fds = files::dump(pid, policies, writer)?;
    let locks = locks::dump(pid, &fds)?;
    let proc_rec = process::dump(pid)?;
    let core = CoreRecord {
        process: proc_rec,
        threads: thread_recs,
        signals: signals_rec,
        fds,
        policies: policies.clone(),
        locks,
        posix_timers,
    };
    Ok((core, mm))
}
