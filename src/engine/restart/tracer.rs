//! The tracer's part of the restore: each stopped restore child's address space is
//! replaced by the image (by calls injected from its scratch page), its threads created
//! with their TIDs, its kernel state given back, its credentials last.

use std::sync::{Arc, Mutex, mpsc};

use super::fork::Child;
use super::protocol::ChildReady;
use super::validate::Image;
use crate::attrfile::ForkAction;
use crate::engine::objects::memory::{self, Scratch};
use crate::engine::objects::{creds, locks, posix_timers, signals, threads};
use crate::engine::progress::Progress;
use crate::engine::ptrace::{self, Gate, Injector};
use crate::error::{Context, Result};

/// Most tracer threads a restart makes (a larger set shares them).
const MAX_TRACERS: usize = 256;

/// A restored process, stopped, waiting for release.
pub(super) struct Restored {
    /// (tid in this world, its record)
    pub threads: Vec<(i32, usize)>,
    pub image: usize,
    /// Lazy restart: the memory left to the filler (lazy_pages.rs).
    pub lazy: Option<crate::engine::objects::lazy_pages::Registered>,
    /// What it said of its descriptors, for the check (fds_verify::ask_injected).
    pub fds_asked: Option<Vec<crate::engine::objects::fds_verify::Asked>>,
}

/// The tracer threads (one per process, at most `MAX_TRACERS`): each takes the next
/// ready process, restores and checks it, and stays its tracer (only the thread that
/// attached may act on a tracee) until release: it then gives its processes their
/// registers and lets them go, when told. One per process, as each process of a CRIU
/// restore restores itself: a tracer waiting for its child to run an injected call holds
/// up no other process, and on a busy machine, where the CPUs are shared per thread, the
/// restart's share does not shrink to a thread per CPU (with 2 threads on 2 CPUs a 100
/// process tree restarted in 0.34-0.44 s beside other work, with one per process in
/// 0.26-0.27 s, the same minute).
pub(super) struct Crew<'scope> {
    jobs: Option<mpsc::Sender<Child>>,
    outcomes: mpsc::Receiver<Result<Restored>>,
    orders: Vec<mpsc::Sender<Order>>,
    done: mpsc::Receiver<Result<()>>,
    handles: Vec<std::thread::ScopedJoinHandle<'scope, ()>>,
    given: usize,
}

enum Order {
    /// Every thread its registers, FPU state and signal mask.
    Registers,
    /// Let them run.
    Detach,
}

/// What the tracer threads read of the restart's context (the rest of it is not theirs
/// to share).
pub(super) struct Parts<'a> {
    pub statefiles: &'a [crate::statefile::Statefile],
    pub images: &'a [Image],
    /// `--lazy`: large private memory is left to the filler (lazy.rs).
    pub lazy: bool,
}

/// The check of one process, once restored.
pub(super) type Check<'a> = &'a (dyn Fn(&Image, &Restored) -> Result<()> + Sync);

impl<'scope> Crew<'scope> {
    pub fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        ctx: &'env Parts<'env>,
        progress: &'env Progress,
        check: Check<'env>,
        processes: usize,
    ) -> Crew<'scope> {
        let n = processes.clamp(1, MAX_TRACERS);
        let (jobs, job_rx) = mpsc::channel::<Child>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (out_tx, outcomes) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let mut orders = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..n {
            let (order_tx, order_rx) = mpsc::channel();
            orders.push(order_tx);
            let job_rx = job_rx.clone();
            let out_tx = out_tx.clone();
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                let mut mine: Vec<Restored> = Vec::new();
                loop {
                    let job = job_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(child)) = job else { break };
                    let r = restore_checked(ctx, &child, progress, check);
                    if let Ok(r) = &r {
                        // the lazy registration goes to the caller, not kept here
                        mine.push(Restored {
                            threads: r.threads.clone(),
                            image: r.image,
                            lazy: None,
                            fds_asked: None,
                        });
                    }
                    if out_tx.send(r).is_err() {
                        return;
                    }
                }
                // ours until release; a dropped order channel is an abort (the processes
                // are killed by whoever dropped it)
                while let Ok(order) = order_rx.recv() {
                    match order {
                        Order::Registers => {
                            let _ = done_tx.send(registers(ctx, &mine));
                        }
                        Order::Detach => {
                            for r in &mine {
                                for (tid, _) in &r.threads {
                                    let _ = ptrace::detach(*tid, 0);
                                }
                            }
                            return;
                        }
                    }
                }
            });
            // fewer threads than wanted (a thread limit): those made share the work; none
            // at all is the restart's error ("a tracer thread ended early")
            match spawned {
                Ok(h) => handles.push(h),
                Err(_) => {
                    orders.pop();
                    break;
                }
            }
        }
        Crew {
            jobs: Some(jobs),
            outcomes,
            orders,
            done,
            handles,
            given: 0,
        }
    }

    /// A process is ready: the next free tracer thread takes it.
    pub fn give(&mut self, child: Child) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(child);
            self.given += 1;
        }
    }

    /// Every process given, restored and checked (in the order they finished); the
    /// first failure is the error.
    pub fn restored(&mut self) -> Result<Vec<Restored>> {
        self.jobs = None;
        let mut all = Vec::with_capacity(self.given);
        let mut first_err = None;
        for _ in 0..self.given {
            match self.outcomes.recv() {
                Ok(Ok(r)) => all.push(r),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(crate::error::Error::with_detail(
                        "restart",
                        crate::error::Kind::CheckpointError,
                        "a tracer thread ended early",
                    ));
                    break;
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(all),
        }
    }

    /// Every restored thread gets its registers (each tracer thread its own).
    pub fn registers(&self) -> Result<()> {
        for o in &self.orders {
            let _ = o.send(Order::Registers);
        }
        let mut outcome = Ok(());
        for _ in &self.orders {
            let r = self.done.recv().unwrap_or_else(|_| {
                Err(crate::error::Error::with_detail(
                    "restart",
                    crate::error::Kind::CheckpointError,
                    "a tracer thread ended early",
                ))
            });
            if outcome.is_ok() {
                outcome = r;
            }
        }
        outcome
    }

    /// Lets every process run, and waits until the tracer threads have.
    pub fn detach(self) {
        for o in &self.orders {
            let _ = o.send(Order::Detach);
        }
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// The registers of every thread of `restored`.
fn registers(ctx: &Parts, restored: &[Restored]) -> Result<()> {
    for r in restored {
        let img = &ctx.images[r.image];
        for (tid, idx) in &r.threads {
            threads::restore_registers(&img.core.threads[*idx], *tid)
                .map_err(|e| e.context(ctx.statefiles[img.sf].path.display()))?;
        }
    }
    Ok(())
}

/// One process restored, then compared with its record.
fn restore_checked(
    ctx: &Parts,
    child: &Child,
    progress: &Progress,
    check: Check,
) -> Result<Restored> {
    let img = &ctx.images[child.image];
    let mut r = Restored {
        threads: vec![(child.pid, 0)],
        image: child.image,
        lazy: None,
        fds_asked: None,
    };
    let p = &img.core.process;
    let parent_restored = p.ppid != p.pid
        && ctx
            .images
            .iter()
            .any(|i| i.sf == img.sf && i.core.process.pid == p.ppid);
    restore_one(img, child, parent_restored, ctx.lazy, &mut r, progress).map_err(|e| {
        e.context(format!("process {}", img.core.process.pid))
            .context(ctx.statefiles[img.sf].path.display())
    })?;
    check(img, &r)?;
    Ok(r)
}

fn restore_one(
    img: &Image,
    child: &Child,
    parent_restored: bool,
    lazy: bool,
    r: &mut Restored,
    progress: &Progress,
) -> Result<()> {
    let pid = child.pid;
    ptrace::seize(
        pid,
        libc::PTRACE_O_TRACECLONE
            | libc::PTRACE_O_TRACESYSGOOD
            | libc::PTRACE_O_EXITKILL
            | crate::engine::objects::seccomp::tracer_option(&img.core.threads)?,
    )
    .ctx(format!("process {pid}"))?;
    ptrace::interrupt(pid).ctx(format!("process {pid}"))?;
    ptrace::wait_for_stop(pid)?;
    // traced now: SIGTRAP may be let through (the threads it makes inherit the mask)
    ptrace::set_sigmask(pid, ptrace::ALL_BUT_SIGTRAP).ctx(format!("process {pid}"))?;
    finish_in_tracer(img, pid, &child.ready, parent_restored, lazy, r, progress)
}

/// In the tracer: the image replaces the stopped child's memory; threads, signals,
/// credentials follow.
fn finish_in_tracer(
    img: &Image,
    child: i32,
    ready: &ChildReady,
    parent_restored: bool,
    lazy: bool,
    restored: &mut Restored,
    progress: &Progress,
) -> Result<()> {
    let mut scratch = Scratch::new(child, ready.scratch);
    // the child's own pages file, for cpr's share of the page fill (without it, the
    // child reads it all)
    let pages_file = std::fs::File::open(format!("/proc/{child}/fd/{}", ready.pages_fd)).ok();
    let main = Injector::new(child, scratch.gate())?.with_runner(scratch.runner());
    memory::restore(
        &main,
        memory::Around {
            first: unregister_rseq(child)?,
            last: close_cpr_fds(img),
        },
        child,
        &img.mm,
        &mut scratch,
        &ready.file_fds,
        &ready.mem_fds,
        memory::PageData {
            fd: ready.pages_fd,
            progress,
            inherited: &inherited_reads(img, ready)?,
            file: pages_file,
            premapped: &ready.premapped,
            lazy: lazy.then(|| crate::engine::objects::lazy_pages::Request {
                out: &mut restored.lazy,
                hot: img
                    .core
                    .threads
                    .iter()
                    .filter(|t| t.rseq.abi_pointer != 0)
                    .flat_map(|t| {
                        [
                            t.rseq.abi_pointer,
                            t.rseq.abi_pointer + t.rseq.abi_size as u64 - 1,
                        ]
                    })
                    .collect(),
            }),
        },
    )?;
    locks::restore_posix_injected(&main, &mut scratch.args, &img.core.locks)?;
    // threads, with their TIDs (FORK ORIGINAL) or any
    let original = img.core.policies.fork == ForkAction::Original;
    let wanted: Vec<Option<i32>> = img
        .core
        .threads
        .iter()
        .skip(1)
        .map(|t| original.then_some(t.tid))
        .collect();
    let tids = threads::create_all(&main, &mut scratch.args, &wanted)?;
    restored.threads.extend(tids.into_iter().zip(1..));
    for (tid, idx) in restored.threads.clone() {
        let inj = Injector::new(tid, scratch.gate())?.with_runner(scratch.runner());
        threads::restore_kernel_state(&img.core.threads[idx], &inj, &mut scratch.args)?;
    }
    let mut signals_rec = img.core.signals.clone();
    if crate::engine::cooperate::wants_restart_signal(&signals_rec.actions) {
        // SIGRESTART handlers run before anything else of the program
        let info = crate::engine::cooperate::restart_siginfo(
            std::process::id() as i32,
            crate::engine::options::caller_uid(),
        );
        signals_rec.shared_pending.insert(0, threads::hex(&info));
    }
    signals::restore_pending_and_timers(&signals_rec, &main, child, &mut scratch.args)?;
    posix_timers::restore(&img.core.posix_timers, &main, &mut scratch.args)?;
    for (tid, idx) in &restored.threads {
        threads::restore_sched(&img.core.threads[*idx], &img.core.process, *tid)?;
    }
    crate::engine::objects::process::restore_root(
        &img.core.process,
        img.core.policies.rdir,
        &main,
        &mut scratch.args,
    )?;
    // seccomp filters, while each thread still has cpr's privilege to install them
    for (tid, idx) in &restored.threads {
        let inj = Injector::new(*tid, scratch.gate())?;
        crate::engine::objects::seccomp::restore(&img.core.threads, *idx, &inj, &mut scratch.args)
            .map_err(|e| e.context(format!("thread {}", img.core.threads[*idx].tid)))?;
    }
    // credentials last, each thread its own
    for (tid, idx) in &restored.threads {
        let inj = Injector::new(*tid, scratch.gate())?.with_runner(scratch.runner());
        let t = &img.core.threads[*idx];
        creds::restore(&img.core.process, t.creds.as_ref(), &inj, &mut scratch.args)
            .map_err(|e| e.context(format!("thread {}", t.tid)))?;
        threads::restore_after_creds(t, &inj, parent_restored)
            .map_err(|e| e.context(format!("thread {}", t.tid)))?;
    }
    // the descriptor table is final: what the check compares, asked while the runner is
    // there
    let inj = Injector::new(child, scratch.gate())?.with_runner(scratch.runner());
    restored.fds_asked = Some(crate::engine::objects::fds_verify::ask_injected(
        &inj,
        &mut scratch.args,
        &img.core.fds,
    )?);
    // the scratch page goes; its own syscall instruction runs the munmap, stopping at the
    // syscall exit so nothing executes there afterwards
    let last = Injector::new(child, Gate::SyscallInsn(scratch.base()))?;
    last.check(
        "munmap scratch",
        libc::SYS_munmap,
        [scratch.base().as_u64(), Scratch::SIZE, 0, 0, 0, 0],
    )?;
    Ok(())
}

/// cpr's glibc registered rseq in the child: the kernel would write to that area, soon
/// unmapped, on every return to user space. The call that unregisters it, to run first
/// in the round trip that unmaps cpr's mappings.
fn unregister_rseq(child: i32) -> Result<ptrace::Batch> {
    let rseq = ptrace::get_rseq(child)?;
    let mut batch = ptrace::Batch::new();
    if rseq.abi_pointer != 0 {
        batch.check(
            "rseq unregister",
            libc::SYS_rseq,
            [
                rseq.abi_pointer,
                rseq.abi_size as u64,
                1, /* RSEQ_FLAG_UNREGISTER */
                rseq.signature as u64,
                0,
                0,
            ],
            None,
        );
    }
    Ok(batch)
}

/// The child's descriptor of each earlier statefile's page data with what to read from it.
fn inherited_reads(
    img: &Image,
    ready: &ChildReady,
) -> Result<Vec<(i32, crate::engine::objects::incremental::Reads)>> {
    if ready.chain_fds.len() != img.inherited.len() {
        return Err(crate::error::Error::with_detail(
            format!("process {}", img.core.process.pid),
            crate::error::Kind::CheckpointError,
            "restart child did not open the parent statefiles' page data",
        ));
    }
    Ok(ready
        .chain_fds
        .iter()
        .zip(&img.inherited)
        .map(|(fd, p)| (*fd, p.reads.clone()))
        .collect())
}

/// The calls that close what the child opened for the tracer, and anything else cpr's
/// copy still had open (its status pipe, if the interrupt came before it closed it):
/// every number that is not the image's, by close_range over the gaps between the
/// image's numbers (no listing of /proc/PID/fd). They run last in the restore of the
/// address space, after PR_SET_MM_MAP has taken the executable's descriptor.
fn close_cpr_fds(img: &Image) -> ptrace::Batch {
    let mut batch = ptrace::Batch::new();
    for (first, last) in crate::engine::objects::files::gaps(img.core.fds.iter().map(|f| f.fd)) {
        batch.call(
            libc::SYS_close_range,
            [first as u64, last as u64, 0, 0, 0, 0],
        );
    }
    batch
}
