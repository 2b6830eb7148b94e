//! `cpr -r`: the restart as a list of phases, one function each (see `restart`).
//!
//! The processes are forked by cpr itself, each a copy of cpr with its original PID
//! that restores natively what lives in the kernel (`fork`); the tracer then replaces
//! each copy's address space with the image (`tracer`). Nothing runs until every process
//! of every statefile is ready (`release`). If anything fails, every process created so
//! far is killed: nothing half-restored runs.

mod authority;
mod fork;
mod lazy;
mod owner_rights;
mod pids;
mod protocol;
mod release;
mod stop_signal;
mod tracer;
pub mod validate;
mod verify;

use super::objects::pstree::{self, Plan};
use super::objects::shared_fds::{self, OpenedShared};
use super::objects::{sysv_shm as shm, tty};
use super::timer::Timer;
use crate::engine::options::RestartOptions;
use crate::engine::progress::{Phase, Progress};
use crate::error::{Error, Kind, Result};
use crate::statefile::Statefile;
use fork::Made;
use std::sync::OnceLock;
use tracer::Restored;
use validate::{Image, Loaded};

/// Everything a restore child needs; it is a copy of cpr, so it has all of it.
struct RestoreContext {
    statefiles: Vec<Statefile>,
    images: Vec<Image>,
    plan: Plan,
    /// Per statefile: what its processes share, open in cpr; they inherit it.
    opened: Vec<OpenedShared>,
    /// Status pipe of each node: its write end.
    status_w: Vec<Option<crate::sys::CloseOnce>>,
    tty: Option<String>,
    /// `--lazy`: large private memory is filled after release (lazy.rs).
    lazy: bool,
}

/// Returns 0, or with `-j` the exit status of the job (as a shell would report it).
pub fn restart(
    options: &RestartOptions,
    deferred: crate::sys::DeferTermination,
    progress: &Progress,
) -> Result<i32> {
    let mut timer = Timer::new();
    progress.phase(Phase::Validate, None);
    let mut loaded = validate::load(&options.statefiles, crate::engine::options::caller_uid())?;
    override_policies(&mut loaded, options);
    if options.lazy {
        lazy::refuse(&loaded)?;
    }
    timer.lap("read and check records");
    pids::wait_for_pids(&loaded)?;
    let plan = plan_tree(&loaded, options.interactive);
    // SysV shared memory segments with their shmids, before any process
    let shm_segments = shm::restore_segments(&loaded.statefiles.iter().collect::<Vec<_>>())?;
    let sem_sets =
        super::objects::sysv_sem::restore_sets(&loaded.statefiles.iter().collect::<Vec<_>>())?;
    let msg_queues =
        super::objects::sysv_msg::restore_queues(&loaded.statefiles.iter().collect::<Vec<_>>())?;
    let mq_queues = super::objects::posix_mqueue::restore_queues(
        &loaded.statefiles.iter().collect::<Vec<_>>(),
    )?;
    let tty = if options.interactive {
        tty::controlling_tty()
    } else {
        None
    };
    let mut opened = open_shared(&loaded, tty.as_deref())?;
    // TCP connections stay in repair mode until the processes are ready (cpr keeps them:
    // the shared objects are given up once the processes inherited them)
    let repairing: Vec<_> = opened
        .iter_mut()
        .map(|o| std::mem::take(&mut o.inet_repairing))
        .collect();
    timer.lap("open shared objects");

    let mut ctx = RestoreContext {
        statefiles: loaded.statefiles,
        images: loaded.images,
        plan,
        opened,
        status_w: Vec::new(),
        tty,
        lazy: options.lazy,
    };
    progress.phase(Phase::Create, None);
    // the filler is forked while cpr has one thread (lazy.rs)
    let filler = if options.lazy {
        Some(lazy::prepare(&ctx)?)
    } else {
        None
    };
    let (made, pending) = fork::fork_roots(&mut ctx)?;
    timer.lap("fork the roots");
    let (pids, filler) = restore_and_release(
        &ctx,
        made,
        pending,
        filler,
        &repairing,
        shm_segments,
        options.interactive,
        &mut timer,
        progress,
    )?;
    timer.lap("release");
    if let Some(pid) = filler {
        eprintln!("cpr: lazy restart: memory filled in the background by process {pid}");
    }
    sem_sets.finish();
    msg_queues.finish();
    mq_queues.finish();
    crate::engine::privilege::drop_all();
    release::collect_helpers(&ctx.plan, &pids);
    // before a -j job takes the terminal
    progress.finish();
    // the processes run: cpr may be interrupted again
    drop(deferred);
    if options.interactive {
        let fg: Vec<i32> = ctx
            .plan
            .roots
            .iter()
            .filter_map(|&n| pids.get(n).copied())
            .collect();
        return Ok(tty::wait_foreground(&fg));
    }
    Ok(0)
}

/// The restart options (`--any-pid`, `--no-cwd`, `--no-root`, cview's choices) override
/// the FORK, CDIR and RDIR policies the statefile recorded, for every process, before
/// anything reads them.
fn override_policies(loaded: &mut Loaded, options: &RestartOptions) {
    for img in &mut loaded.images {
        let policies = &mut img.core.policies;
        if options.any_pid {
            policies.fork = crate::attrfile::ForkAction::Any;
        }
        if options.no_cwd {
            policies.cdir = crate::attrfile::DirAction::Ignore;
        }
        if options.no_root {
            policies.rdir = crate::attrfile::DirAction::Ignore;
        }
    }
}

/// Who forks whom, so that parents, groups, sessions and zombies come back.
fn plan_tree(loaded: &Loaded, interactive: bool) -> Plan {
    let mut plan = Plan::default();
    for s in 0..loaded.statefiles.len() {
        let ids: Vec<(usize, pstree::Ids)> = loaded
            .images
            .iter()
            .enumerate()
            .filter(|(_, i)| i.sf == s)
            .map(|(n, i)| {
                let p = &i.core.process;
                (
                    n,
                    pstree::Ids {
                        pid: p.pid,
                        ppid: p.ppid,
                        pgid: p.pgid,
                        sid: p.sid,
                    },
                )
            })
            .collect();
        let base = ids.first().map(|(n, _)| *n).unwrap_or(0);
        let only: Vec<pstree::Ids> = ids.iter().map(|(_, i)| *i).collect();
        pstree::plan(
            &mut plan,
            &only,
            base,
            &loaded.trees[s].zombies,
            interactive,
            // a helper takes a chosen PID, which needs CAP_CHECKPOINT_RESTORE
            &|pid| crate::engine::privilege::can_choose_pids() && pids::is_free(pid),
        );
    }
    plan
}

/// What the processes share (pipes with their data, inherited descriptions, shared
/// memory), opened once, in cpr: the processes inherit it.
fn open_shared(loaded: &Loaded, tty: Option<&str>) -> Result<Vec<OpenedShared>> {
    let mut opened = Vec::new();
    for (s, sf) in loaded.statefiles.iter().enumerate() {
        // with the owner's file access rights, like the restore children's opens
        let rec = loaded
            .images
            .iter()
            .find(|i| i.sf == s)
            .map(|i| &i.core.process);
        opened.push(
            owner_rights::with(sf, rec, || shared_fds::open_all(&loaded.tables[s], sf, tty))
                .map_err(|e| e.context(sf.path.display()))?,
        );
    }
    Ok(opened)
}

/// Address spaces, threads, kernel state, credentials, each process by a tracer thread
/// as soon as it is ready (`tracer::Crew`), and checked; the bulk page data is checked
/// meanwhile, and must be sound before anything is released. Then all are released
/// together; returns every node's PID.
#[allow(clippy::too_many_arguments)]
fn restore_and_release(
    ctx: &RestoreContext,
    made: Made,
    pending: fork::Pending,
    filler: Option<lazy::Prepared>,
    repairing: &[super::objects::inet_sockets::Repairing],
    shm_segments: shm::Segments,
    interactive: bool,
    timer: &mut Timer,
    progress: &Progress,
) -> Result<(Vec<i32>, Option<i32>)> {
    // with --lazy the filler checks the page data before it serves any (lazy.rs)
    let pages = (!ctx.lazy).then(|| validate::check_pages(&ctx.statefiles, &ctx.images));
    let total = ctx.images.iter().map(|i| i.mm.pages_bytes).sum();
    progress.phase(Phase::Restore, Some(total));
    // every node's PID in this world, which the checks need, is known only once the
    // last is forked; the tracer threads restore the first ones meanwhile (None: the
    // restart failed before)
    let known: OnceLock<Option<verify::Known>> = OnceLock::new();
    let parts = tracer::Parts {
        statefiles: &ctx.statefiles,
        images: &ctx.images,
        lazy: ctx.lazy,
    };
    let statefiles = &ctx.statefiles[..];
    let check = |img: &validate::Image, r: &Restored| match known.wait() {
        Some(known) => verify::verify_process(statefiles, known, img, r),
        None => Err(Error::with_detail(
            "restart",
            Kind::CheckpointError,
            "abandoned: another process failed",
        )),
    };
    let processes = ctx
        .plan
        .nodes
        .iter()
        .filter(|n| matches!(n.role, pstree::Role::Process(_)))
        .count();
    std::thread::scope(|scope| -> Result<(Vec<i32>, Option<i32>)> {
        let mut made = made;
        // whatever happens, no tracer thread waits for ever for the PIDs
        let _unblock = verify::KnownOrNone(&known);
        let mut crew = tracer::Crew::start(scope, &parts, progress, &check, processes);
        let restored = fork::collect_ready(
            ctx,
            &mut made,
            pending,
            |made| {
                let _ = known.set(Some(verify::known(ctx, made, interactive)));
            },
            |c| crew.give(c),
        )
        .and_then(|()| crew.restored());
        let mut restored = match restored {
            Ok(r) => r,
            Err(e) => {
                let _ = known.set(None);
                drop(crew);
                drop(made);
                if let Some(p) = pages {
                    let _ = p.wait();
                }
                return Err(e);
            }
        };
        timer.lap("create processes, restore address spaces");
        if let Some(p) = pages {
            p.wait()?;
            timer.lap("page data checked");
        }
        let Some(Some(known)) = known.get() else {
            unreachable!("every process restored: every PID is known")
        };
        verify::verify_between(ctx, &made, known, &restored)?;
        timer.lap("check before release");
        let filler = match filler {
            Some(prepared) => {
                let pid = lazy::start(ctx, prepared, &mut restored)?;
                timer.lap("start lazy filler");
                pid
            }
            None => None,
        };
        for r in repairing {
            r.finish()?;
        }
        progress.phase(Phase::Release, None);
        if interactive && let Some(&first) = ctx.plan.roots.first().and_then(|&n| made.pids.get(n))
        {
            tty::hand_over(first);
        }
        let pids =
            release::release(ctx, made, crew, &restored, shm_segments).inspect_err(|_| {
                if interactive {
                    tty::take_back();
                }
            })?;
        Ok((pids, filler))
    })
}
