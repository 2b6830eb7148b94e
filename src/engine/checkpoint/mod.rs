//! `cpr -c`: the checkpoint as a list of phases, one function each (see `checkpoint`).
//!
//! Any failure before WILL lets every process run on untouched and leaves no statefile.

mod dump;
mod freeze;
mod policies;
mod precopy;
pub mod preview;
mod will;

use std::path::PathBuf;

use super::objects::memory::{self, MmRecord};
use super::objects::{incremental, pstree, shared_fds, shmem, sysv_shm as shm, tracking};
use super::timer::Timer;
use crate::attrfile::AttrFile;
use crate::engine::options::CheckpointOptions;
use crate::engine::progress::{Phase, Progress};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{
    self, CoreRecord, Flags, Manifest, Owner, ProcessSummary, StatefileWriter, core_path, mm_path,
};
use crate::target::{self, Designator, TargetSet};

/// What to checkpoint, and how.
struct Targets {
    designators: Vec<Designator>,
    set: TargetSet,
    attributes: AttrFile,
    owner: Owner,
}

pub fn checkpoint(options: &CheckpointOptions, progress: &Progress) -> Result<PathBuf> {
    let mut timer = Timer::new();
    let targets = resolve_targets(options)?;
    if options.force {
        // -f must not replace a statefile an incremental one needs
        incremental::refuse_if_depended_on(&options.statefile)?;
    }
    timer.lap("find the processes");
    let pinned = crate::engine::privilege::Pinned::pin(&targets.set.pids());
    notify_handlers(&targets, options)?;
    timer.lap("SIGCKPT handlers");
    // -g: memory copied while the processes run, the stop saves what changed since
    let precopied = precopy::run(&targets, options, &pinned, progress)?;
    timer.lap("live pre-copy (processes running)");
    let mut armed = precopied.is_some();
    let result = stop_and_dump(
        options, progress, &targets, &pinned, precopied, &mut timer, &mut armed,
    );
    if result.is_err() && armed {
        // nothing of cpr's stays in processes whose checkpoint failed
        precopy::disarm(&targets, &pinned);
    }
    result
}

/// The checkpoint from the freeze on; `armed` becomes true once dirty tracking is
/// armed in the processes.
fn stop_and_dump(
    options: &CheckpointOptions,
    progress: &Progress,
    targets: &Targets,
    pinned: &crate::engine::privilege::Pinned,
    precopied: Option<precopy::Precopied>,
    timer: &mut Timer,
    armed: &mut bool,
) -> Result<PathBuf> {
    let stopped = std::time::Instant::now();
    progress.phase(Phase::Freeze, None);
    let (mut frozen, zombies) = freeze::freeze_targets(targets)?;
    target::confirm_frozen(&frozen.pids(), pinned, crate::engine::options::caller_uid())?;
    let policies = policies::resolve(&frozen.pids(), &targets.attributes, options.will)?;
    refuse_shared_address_spaces(&frozen.pids())?;
    // each thread's status, read once here for the checks, the filters and the dump
    let statuses = crate::engine::objects::process::check_unrestorable(&frozen.pids())?;
    crate::engine::objects::seccomp::suspend_filters_known(
        frozen.threads.values().flatten(),
        libc::PTRACE_O_TRACESYSGOOD,
        &statuses,
    )?;
    timer.lap("freeze");

    // TCP connections read in repair mode: let go when this ends, unless WILL says so
    let net = super::objects::inet_sockets::NetLock::begin();
    let mut chain = open_parent(options, &frozen.pids(), targets);
    let mut writer = match precopied {
        Some(p) => {
            chain.precopy = p.processes;
            chain.live = Some(p.live);
            p.writer
        }
        None => StatefileWriter::create(&options.statefile, options.force, targets.owner)?,
    };
    writer.set_progress(progress.clone());
    writer.compress_pages = options.compress;
    if options.will == Some(crate::attrfile::WillAction::Cont) {
        // -g: the processes run on before the commit, whose fsync writes everything
        // then; while they are stopped, nothing waits for the disk
        writer.set_writeback(false);
    }
    progress.check_cancelled(&options.statefile.display().to_string())?;
    progress.phase(Phase::Dump, preview::page_bytes(&frozen.pids(), progress));
    let mut dumped = dump::dump_all(
        &mut frozen,
        &policies,
        options,
        &mut writer,
        &mut chain,
        &statuses,
    )?;
    chain.parent_opened()?;
    timer.lap("dump processes (page data written and fsync'd)");
    progress.check_cancelled(&options.statefile.display().to_string())?;
    progress.phase(Phase::Shared, None);
    collect_shared(&mut dumped, zombies, &mut writer, options)?;
    // POSIX message queues, once each (their registrations on the records: before those)
    super::objects::posix_mqueue::dump_queues(&mut dumped, &mut writer)
        .ctx(options.statefile.display())?;
    timer.lap("shared descriptors and memory, message queues");
    let summaries = write_records(&dumped, &mut writer)?;
    timer.lap("records written");
    // SysV shared memory segments the processes attach, saved once each
    shm::dump_segments(
        dumped
            .iter()
            .map(|(core, mm)| (core.process.pid, mm.vmas.as_slice())),
        &mut writer,
    )
    .ctx(options.statefile.display())?;
    // SysV semaphore sets and message queues the processes use (sysv_sem.rs, sysv_msg.rs)
    super::objects::sysv_sem::dump_sets(&frozen.pids(), &mut writer)
        .ctx(options.statefile.display())?;
    super::objects::sysv_msg::dump_queues(&frozen.pids(), &mut writer)
        .ctx(options.statefile.display())?;
    timer.lap("SysV shared memory, semaphores, message queues");

    // nothing further reads another process: an installed cpr gives up its capabilities
    crate::engine::privilege::drop_all();
    // durable before anything happens to the originals
    progress.check_cancelled(&options.statefile.display().to_string())?;
    progress.phase(Phase::Commit, None);
    let will = policies::overall_will(options.will, &policies);
    if will == crate::attrfile::WillAction::Cont {
        // everything is copied: the processes run on (tracking armed for the next
        // checkpoint) while the statefile is made durable
        *armed = true;
        arm_tracking(&chain.plan_tracking());
        net.finish(|pid| {
            policies
                .get(&pid)
                .is_none_or(|p| p.will == crate::attrfile::WillAction::Cont)
        });
        will::apply(frozen, &policies);
        let stop_ms = stopped.elapsed().as_secs_f64() * 1e3;
        timer.lap(&format!(
            "tracking armed, processes released (stopped {stop_ms:.1} ms)"
        ));
        chain
            .live
            .get_or_insert(incremental::LiveRecord {
                rounds: 0,
                stop_ms: 0.0,
                precopied_bytes: 0,
            })
            .stop_ms = stop_ms;
        write_chain(&chain, &mut writer, options)?;
        let path = commit(writer, options, targets, will, summaries)?;
        timer.lap("commit (fsync)");
        return Ok(path);
    }
    if chain.parent.is_some() {
        write_chain(&chain, &mut writer, options)?;
    }
    let path = commit(writer, options, targets, will, summaries)?;
    timer.lap("commit (fsync)");
    net.finish(|pid| {
        policies
            .get(&pid)
            .is_none_or(|p| p.will == crate::attrfile::WillAction::Cont)
    });
    will::apply(frozen, &policies);
    timer.lap("processes ended or released");
    Ok(path)
}

/// `--parent OLD`: the parent statefile, checked against the frozen processes `pids`,
/// opened on a thread of its own while the dump begins (`Builder::opening`).
fn open_parent(
    options: &CheckpointOptions,
    pids: &[i32],
    targets: &Targets,
) -> incremental::Builder {
    let Some(path) = options.parent.clone() else {
        return incremental::Builder::new(None);
    };
    let new = options.statefile.clone();
    let pids = pids.to_vec();
    let owner = targets.owner;
    let caller = crate::engine::options::caller_uid();
    incremental::Builder::opening(move || {
        let mut timer = Timer::new();
        let parent = incremental::open_parent(&path, &new, &pids, owner, caller);
        timer.lap("parent chain read (beside the dump)");
        parent
    })
}

/// `chain.json`, for an incremental checkpoint or one after which the processes run on
/// (`-g`: it can be a parent). A child is recorded among its parent's dependents first.
fn write_chain(
    chain: &incremental::Builder,
    writer: &mut StatefileWriter,
    options: &CheckpointOptions,
) -> Result<()> {
    let record = chain.record()?;
    if let Some(parent) = &record.parent {
        incremental::record_dependent(parent, &options.statefile)?;
    }
    writer.write_json(incremental::CHAIN, &record)
}

/// Arms the dirty tracking `Builder::plan_tracking` planned (and the chain record
/// names), while the processes are still frozen. A process where it fails is simply not
/// tracked: its next incremental checkpoint compares pages instead.
fn arm_tracking(plan: &[(i32, Vec<i32>, i32)]) {
    for (pid, old, fd) in plan {
        if let Ok(regs) = crate::engine::ptrace::get_regs(*pid) {
            let _ = tracking::arm(*pid, &regs, old, *fd);
        }
    }
}

/// The designators resolved to processes the caller may checkpoint; the attribute file.
fn resolve_targets(options: &CheckpointOptions) -> Result<Targets> {
    let designators = target::parse_idlist(&options.idlist)?;
    let set = target::resolve(&designators, crate::engine::options::caller_uid())?;
    let attributes = match &options.attributes {
        Some(a) => a.clone(),
        None => AttrFile::load_default()?,
    };
    let (uid, gid) = set.owner().unwrap_or((0, 0));
    Ok(Targets {
        designators,
        set,
        attributes,
        owner: Owner { uid, gid },
    })
}

/// Programs that asked for it prepare first (SIGCKPT handlers), bounded in time.
fn notify_handlers(targets: &Targets, options: &CheckpointOptions) -> Result<()> {
    super::cooperate::notify_checkpoint(
        &targets.set.pids(),
        options
            .handler_timeout
            .unwrap_or(super::cooperate::DEFAULT_HANDLER_TIMEOUT),
    )
}

/// Processes sharing one address space (CLONE_VM without CLONE_THREAD, a vfork child
/// before its exec) would come back with two: refused rather than split.
fn refuse_shared_address_spaces(live: &[i32]) -> Result<()> {
    match crate::sys::kcmp::sharing_pair(live, None) {
        Some((a, b)) => Err(Error::with_detail(
            format!("processes {a} and {b}"),
            Kind::CheckpointError,
            "they share one address space (CLONE_VM or vfork), which cpr does not restore",
        )),
        None => Ok(()),
    }
}

/// What the processes share, saved once: descriptors (pipes with their data, inherited
/// descriptions), shared memory, and the zombies of the tree.
fn collect_shared(
    dumped: &mut [(CoreRecord, MmRecord)],
    zombies: Vec<pstree::Zombie>,
    writer: &mut StatefileWriter,
    options: &CheckpointOptions,
) -> Result<()> {
    let in_statefile = |e: Error| e.context(options.statefile.display());
    let mut table = {
        let mut procs: Vec<shared_fds::ProcessFds<'_>> = dumped
            .iter_mut()
            .map(|(core, _)| shared_fds::ProcessFds {
                pid: core.process.pid,
                fds: &mut core.fds,
                policies: &core.policies,
            })
            .collect();
        shared_fds::collect(&mut procs, writer).map_err(in_statefile)?
    };
    let mut maps: Vec<(i32, &mut Vec<memory::Vma>)> = dumped
        .iter_mut()
        .map(|(c, mm)| (c.process.pid, &mut mm.vmas))
        .collect();
    shmem::collect_memory(&mut maps, &mut table, writer).map_err(in_statefile)?;
    writer.write_json(shared_fds::TABLE, &table)?;
    writer.write_json(pstree::TREE, &pstree::TreeRecord { zombies })
}

/// Each process's records; returns the manifest's summary of each.
fn write_records(
    dumped: &[(CoreRecord, MmRecord)],
    writer: &mut StatefileWriter,
) -> Result<Vec<ProcessSummary>> {
    let mut summaries = Vec::new();
    for (core, mm) in dumped {
        let pid = core.process.pid;
        writer.write_json(&mm_path(pid), mm)?;
        writer.write_json(&core_path(pid), core)?;
        summaries.push(ProcessSummary::of(core));
    }
    Ok(summaries)
}

/// The manifest, last: the statefile is fsync'd and renamed into place.
fn commit(
    writer: StatefileWriter,
    options: &CheckpointOptions,
    targets: &Targets,
    will: crate::attrfile::WillAction,
    summaries: Vec<ProcessSummary>,
) -> Result<PathBuf> {
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
        owner: targets.owner,
        designators: options.idlist.clone(),
        flags: Flags {
            will,
            upgrade: options.upgrade,
            compression: writer.compress_pages.then(|| statefile::PageCompression {
                method: statefile::compress::LZ4.to_string(),
                raw_bytes: writer.pages_raw_bytes,
            }),
        },
        processes: summaries,
        files: Vec::new(),
    };
    writer.commit(manifest)
}
