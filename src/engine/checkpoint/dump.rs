//! The dump of each frozen process: what only the process can tell (by injected calls),
//! its memory and page data, its descriptors, locks and the rest of its record.

use std::collections::BTreeMap;

use super::freeze::Freezer;
use crate::attrfile::ProcessPolicies;
use crate::engine::objects::memory::{self, MmRecord};
use crate::engine::objects::{
    files, incremental, locks, mapped_files, posix_timers, process, signals, threads,
};
use crate::engine::options::CheckpointOptions;
use crate::engine::ptrace::{self, Injector, Regs, RemoteAddr, RemoteScratch};
use crate::error::{Error, Result};
use crate::proc::{ProcDir, Stat};
use crate::statefile::StatefileWriter;
use crate::statefile::{CoreRecord, pages_path};

/// Dumps every frozen process (page data written as it goes); their records are
/// returned, to be completed with what they share and written.
pub(super) fn dump_all(
    frozen: &mut Freezer,
    policies: &BTreeMap<i32, ProcessPolicies>,
    options: &CheckpointOptions,
    writer: &mut StatefileWriter,
    chain: &mut incremental::Builder,
    statuses: &process::ThreadStatuses,
) -> Result<Vec<(CoreRecord, MmRecord)>> {
    let in_statefile = |e: Error| e.context(options.statefile.display());
    let mut upgrade_copies = Vec::new();
    // pages shared copy-on-write with a parent process are saved once, with the
    // parent's; not with a parent statefile, a pre-copy or compressed page data (the
    // restart reads them at raw offsets of this statefile's page files)
    let shared = if chain.has_parent() || !chain.precopy.is_empty() || options.compress {
        BTreeMap::new()
    } else {
        shared_pages(frozen).map_err(in_statefile)?
    };
    // The calls injected into each process (ptrace requests, which only this thread,
    // the tracer, may make) go on here while a second thread reads what /proc and the
    // memory of the processes already asked tell, and writes it: both CPUs work.
    let pids = frozen.pids();
    let (tx, rx) = std::sync::mpsc::channel::<(i32, Asked)>();
    let (shared, upgrade_copies) = (&shared, &mut upgrade_copies);
    let (finished, asking) = std::thread::scope(|scope| {
        // /proc/locks and smaps are slow to read: read while others are dumped (smaps
        // of a process once it is asked: the injected calls that map memory would wait
        // for its walk)
        let flags = memory::read_flags_ahead();
        let mut ahead = ReadAhead {
            locks: locks::Table::read_ahead(),
            flags: flags.clone(),
        };
        let worker = scope.spawn(move || -> Result<Vec<(CoreRecord, MmRecord)>> {
            let mut dumped = Vec::new();
            // the VmFlags still being read, given to their records once every process
            // is dumped: one process's smaps (slow for much memory, even shared) is read
            // while the next ones are dumped
            let mut pending = Vec::new();
            let none = Vec::new();
            for (pid, asked) in rx {
                let cow = shared.get(&pid).unwrap_or(&none);
                let (core, mut mm, flags) =
                    finish_process(pid, asked, &policies[&pid], cow, writer, chain, &mut ahead)
                        .map_err(in_statefile)?;
                mm.components =
                    mapped_files::dump(pid, &mm.vmas, options.upgrade, writer, upgrade_copies)
                        .map_err(in_statefile)?;
                pending.push(flags);
                dumped.push((core, mm));
            }
            let mut timer = crate::engine::timer::Timer::new();
            for ((_, mm), flags) in dumped.iter_mut().zip(pending) {
                flags
                    .map_or(Ok(()), |f| f.finish(&mut mm.vmas))
                    .map_err(in_statefile)?;
            }
            timer.lap("  VmFlags (smaps) waited for");
            Ok(dumped)
        });
        let mut asking = Ok(());
        for &pid in &pids {
            let mut timer = crate::engine::timer::Timer::new();
            let asked = ask_stopped(pid, &frozen.threads[&pid], statuses);
            timer.lap(&format!("  process {pid}: injected calls"));
            match asked {
                // the worker stopped at a failure: it says which
                Ok(asked) => {
                    flags.request(pid);
                    if tx.send((pid, asked)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    asking = Err(in_statefile(e));
                    break;
                }
            }
        }
        drop(tx);
        let finished = worker.join().unwrap_or_else(|_| {
            Err(Error::with_detail(
                "checkpoint",
                crate::error::Kind::CheckpointError,
                "the thread dumping the processes failed",
            ))
        });
        (finished, asking)
    });
    asking?;
    let mut dumped = finished?;
    for d in &mut dumped {
        d.0.process.job_stop = frozen
            .job_stopped
            .get(&d.0.process.pid)
            .copied()
            .unwrap_or(0);
    }
    Ok(dumped)
}

/// For each process whose parent is in the set too: the address ranges of its pages
/// that are still the parent's (cow_pages.rs), found before any page is read.
fn shared_pages(frozen: &Freezer) -> Result<BTreeMap<i32, Vec<(u64, u64)>>> {
    let pids = frozen.pids();
    let mut out = BTreeMap::new();
    let mut parents = crate::engine::objects::cow_pages::Parents::default();
    for &pid in &pids {
        let ppid = ProcDir::open(pid)?.stat()?.ppid;
        if ppid != pid && pids.contains(&ppid) {
            let ranges =
                crate::engine::objects::cow_pages::shared_with_parent(pid, ppid, &mut parents)?;
            out.insert(pid, ranges);
        }
    }
    Ok(out)
}

/// What the injected calls of one stopped process tell (its threads `tids`, main first,
/// their status in `statuses` where read already), its registers and masks with them.
fn ask_stopped(pid: i32, tids: &[i32], statuses: &process::ThreadStatuses) -> Result<Asked> {
    let regs: Vec<Regs> = tids
        .iter()
        .map(|t| ptrace::get_regs(*t))
        .collect::<Result<_>>()?;
    let masks: Vec<u64> = tids
        .iter()
        .map(|t| ptrace::get_sigmask(*t))
        .collect::<Result<_>>()?;
    ask_process(pid, tids, &regs, &masks, statuses)
}

/// One process, once asked (`ask_stopped`): what /proc tells, memory, then descriptors
/// and the rest. No ptrace request: this runs beside the asking of the next process.
fn finish_process(
    pid: i32,
    asked: Asked,
    policies: &ProcessPolicies,
    inherited: &[(u64, u64)],
    writer: &mut StatefileWriter,
    chain: &mut incremental::Builder,
    ahead: &mut ReadAhead,
) -> Result<(CoreRecord, MmRecord, Option<memory::Pending>)> {
    let mut timer = crate::engine::timer::Timer::new();
    // what /proc tells, through one held directory, its stat read once
    let dir = ProcDir::open(pid)?;
    let stat = dir.stat()?;
    let mut proc_rec = process::dump(&dir, &stat)?;
    proc_rec.membarrier = asked.membarrier;
    proc_rec.dumpable = asked.dumpable;
    timer.lap(&format!("  process {pid}: /proc records"));
    let (mm, flags) = dump_memory(
        &dir,
        &stat,
        &proc_rec.exe,
        asked.brk,
        inherited,
        writer,
        chain,
        &ahead.flags,
    )?;
    // files and the rest
    let fds = files::dump(pid, policies, writer)?;
    let locks = locks::dump(pid, &fds, &mut ahead.locks)?;
    timer.lap(&format!("  process {pid}: descriptors, locks"));
    let core = CoreRecord {
        process: proc_rec,
        threads: asked.threads,
        signals: asked.signals,
        fds,
        policies: policies.clone(),
        locks,
        posix_timers: asked.posix_timers,
    };
    Ok((core, mm, flags))
}

/// What /proc tells slowly, being read on threads of their own from the start.
struct ReadAhead {
    locks: locks::Table,
    flags: memory::FlagsAhead,
}

/// What only the process itself can tell.
struct Asked {
    signals: signals::SignalsRecord,
    brk: u64,
    threads: Vec<threads::ThreadRecord>,
    posix_timers: Vec<posix_timers::PosixTimer>,
    membarrier: u32,
    /// PR_GET_DUMPABLE is 1 (0: made undumpable, 2: after a change of credentials).
    dumpable: bool,
}

/// Asks the process by calls injected through a trampoline that puts everything back
/// should cpr vanish (`ptrace::checkpoint_gate`), with scratch space mapped for the
/// purpose and removed after. Where the vDSO has no room for the trampoline, it is
/// written on the mapped page, and only that mapping and its removal go through the
/// vDSO's bare syscall instruction.
fn ask_process(
    pid: i32,
    tids: &[i32],
    regs: &[Regs],
    masks: &[u64],
    statuses: &process::ThreadStatuses,
) -> Result<Asked> {
    let first_gate = ptrace::checkpoint_gate(pid)?;
    let asked = ask_through(first_gate, pid, tids, regs, masks, statuses);
    let removed = ptrace::remove_vdso_trampoline(pid, first_gate);
    let asked = asked?;
    removed?;
    Ok(asked)
}

/// The questions of `ask_process`, the first call (the mapping) through `first_gate`.
fn ask_through(
    first_gate: ptrace::Gate,
    pid: i32,
    tids: &[i32],
    regs: &[Regs],
    masks: &[u64],
    statuses: &process::ThreadStatuses,
) -> Result<Asked> {
    const SCRATCH_LEN: u64 = 3 * memory::PAGE;
    let area = memory::PAGE + SCRATCH_LEN;
    let resume: Vec<Regs> = regs.iter().map(threads::resume_regs).collect();
    let first = Injector::transient(pid, first_gate, &resume[0])?;
    // executable only if the trampoline is to be written there
    let prot = match first_gate {
        ptrace::Gate::Trampoline(_) => libc::PROT_READ | libc::PROT_WRITE,
        _ => libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
    };
    let base = RemoteAddr::from(first.check(
        "mmap scratch",
        libc::SYS_mmap,
        [
            0,
            area,
            prot as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?);
    let mut scratch = RemoteScratch::new(pid, base + memory::PAGE, SCRATCH_LEN);
    let injected = (|| -> Result<(signals::SignalsRecord, u64, Vec<threads::ThreadRecord>, _)> {
        let gate = match first_gate {
            ptrace::Gate::Trampoline(_) => first_gate,
            _ => ptrace::install_trampoline(pid, base)?,
        };
        // questions in batches, each ended by a signal the process ignores: the process's
        // own in one (dispositions, timers, brk, membarrier, dumpable), then each thread's
        let status = statuses.get(&pid).map(String::as_str);
        let batch_signal = batch_signals(pid, status)?;
        let main_mask = tids.iter().position(|&t| t == pid).map_or(!0, |i| masks[i]);
        let main = first.through(gate);
        let (sig, brk, membarrier, dumpable) = {
            let mut s = scratch.frame();
            let mut q = ptrace::Questions::default();
            let signals_asked = signals::ask(pid, status, &mut q, &mut s)?;
            let brk = q.ask("brk", libc::SYS_brk, [0; 6]);
            let membarrier = crate::engine::objects::membarrier::ask(&mut q);
            let dumpable = q.ask(
                "prctl(PR_GET_DUMPABLE)",
                libc::SYS_prctl,
                [libc::PR_GET_DUMPABLE as u64, 0, 0, 0, 0, 0],
            );
            let answers = q.run(
                &main
                    .through(gate)
                    .with_batch_signal(batch_signal(main_mask)),
                &mut s,
            )?;
            (
                signals::answer(pid, signals_asked, &answers, &s)?,
                answers.checked(brk)?,
                crate::engine::objects::membarrier::registrations(answers.raw(membarrier))?,
                answers.checked(dumpable)? == 1,
            )
        };
        let mut trecs = Vec::new();
        for (i, &tid) in tids.iter().enumerate() {
            let inj = if tid == pid {
                main.through(gate)
            } else {
                Injector::transient(tid, gate, &resume[i])?
            }
            .with_batch_signal(batch_signal(masks[i]));
            trecs.push(threads::dump(
                tid,
                pid,
                &regs[i],
                masks[i],
                &inj,
                &mut scratch,
                statuses.get(&tid).map(String::as_str),
            )?);
        }
        let posix_timers = posix_timers::dump(pid, &main, &mut scratch);
        Ok((sig, brk, trecs, (posix_timers, membarrier, dumpable)))
    })();
    first.check(
        "munmap scratch",
        libc::SYS_munmap,
        [base.as_u64(), area, 0, 0, 0, 0],
    )?;
    let (signals, brk, threads, (posix_timers, membarrier, dumpable)) = injected?;
    Ok(Asked {
        signals,
        brk,
        threads,
        posix_timers: posix_timers?,
        membarrier,
        dumpable,
    })
}

/// For process `pid` (from its /proc status, `status` where read already: what it
/// ignores and catches, its seccomp mode): the signal ending a batch of questions in a
/// thread blocking a given mask (`ptrace::batch_signal`).
fn batch_signals(pid: i32, status: Option<&str>) -> Result<impl Fn(u64) -> Option<i32>> {
    let dir = ProcDir::open(pid)?;
    let text = dir.status_or(status)?;
    let (ignored, caught, seccomp) = dir.parsed("status", &text, |t| {
        Ok((
            crate::proc::status::mask(t, "SigIgn")?,
            crate::proc::status::mask(t, "SigCgt")?,
            crate::proc::status::number::<u32>(t, "Seccomp").unwrap_or(0),
        ))
    })?;
    Ok(move |blocked| ptrace::batch_signal(ignored, caught, blocked, seccomp))
}

/// The mappings and their page data (written to `proc/<pid>/pages`).
#[allow(clippy::too_many_arguments)]
fn dump_memory(
    dir: &ProcDir,
    stat: &Stat,
    exe: &str,
    brk: u64,
    inherited: &[(u64, u64)],
    writer: &mut StatefileWriter,
    chain: &mut incremental::Builder,
    flags: &memory::FlagsAhead,
) -> Result<(MmRecord, Option<memory::Pending>)> {
    let pid = dir.pid();
    let mut timer = crate::engine::timer::Timer::new();
    // the VmFlags (smaps, slow to read) come meanwhile: the pages do not depend on them
    let (mut vmas, flags) = memory::plan_ahead(pid, Some(flags))?;
    let mut flags = Some(flags);
    timer.lap(&format!("  process {pid}: memory plan"));
    // an incremental checkpoint saves only what changed since its parent
    chain.select(pid, &mut vmas)?;
    if !inherited.is_empty() {
        // which mappings may share pages with the parent process depends on the flags
        flags.take().map_or(Ok(()), |f| f.finish(&mut vmas))?;
    }
    // pages shared copy-on-write with the parent are saved with the parent's
    crate::engine::objects::cow_pages::mark_inherited(&mut vmas, inherited);
    timer.lap(&format!("  process {pid}: pages selected"));
    let mut sink = writer.create_file(&pages_path(pid))?;
    let compress = writer.compress_pages;
    let dumped = memory::dump_pages(pid, &vmas, &mut sink, compress);
    if dumped.is_err() {
        // a mapping the flags refuse may be why its pages could not be read: that first
        flags.take().map_or(Ok(()), |f| f.finish(&mut vmas))?;
    }
    let pages_bytes = dumped?;
    writer.pages_raw_bytes += pages_bytes;
    writer.finish_file(sink)?;
    timer.lap(&format!(
        "  process {pid}: page data ({} MiB)",
        pages_bytes >> 20
    ));
    let mm = MmRecord {
        fields: memory::mm_fields(stat, brk),
        auxv: memory::read_auxv(dir)?,
        exe: exe.to_string(),
        pages_bytes,
        compression: compress.then(|| crate::statefile::compress::LZ4.to_string()),
        vmas,
        components: Vec::new(),
    };
    // the flags, when still being read, are given by the caller (`dump_all`)
    Ok((mm, flags))
}
