//! Forking the tree: cpr forks the roots, each restore child (a copy of cpr) forks its
//! own children with their PIDs, takes its session and group, restores natively what
//! lives in the kernel, maps a scratch page where the image has a hole, reports over its
//! status pipe (`protocol`), and waits for the tracer.

use std::io::BufReader;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::RestoreContext;
use super::protocol::{self, ChildMessage, ChildReady, Failure};
use super::validate::Image;
use crate::attrfile::ForkAction;
use crate::engine::objects::cow_pages::{self, Member, Premaps};
use crate::engine::objects::memory::{self, Backing, MmRecord, Scratch};
use crate::engine::objects::pstree::{Role, SessionOp};
use crate::engine::objects::{files, locks, mapped_files, process, signals};
use crate::engine::ptrace::{BATCH_RUNNER, SYSCALL_INT3};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::pages_path;

/// The processes made so far. Dropped before `disarm`, it kills them all (and collects
/// them), so that nothing half-restored runs.
pub(super) struct Made {
    /// Every node's PID in this world, in node order (as far as they reported).
    pub pids: Vec<i32>,
    /// Forked by cpr itself.
    created: Vec<i32>,
    armed: bool,
}

/// A restore child that is ready for the tracer.
pub(super) struct Child {
    pub pid: i32,
    /// Index into the images.
    pub image: usize,
    pub ready: ChildReady,
}

impl Made {
    /// The processes run on their own now: returns every node's PID.
    pub fn disarm(mut self) -> Vec<i32> {
        self.armed = false;
        std::mem::take(&mut self.pids)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if self.armed {
            let mut all = self.pids.clone();
            all.extend_from_slice(&self.created);
            kill_pids(&all);
        }
    }
}

/// Status pipes of the nodes that have not said they are ready yet.
pub(super) struct Pending {
    pipes: Vec<Status>,
}

/// One node's status pipe, and what it has said so far.
struct Status {
    node: usize,
    input: BufReader<std::fs::File>,
    /// Its PID is known.
    created: bool,
}

/// Forks the roots of the plan (their restore children fork the rest). cpr itself is
/// still single-threaded here: the tracer threads start only after its own forks. Each
/// node says its PID on its status pipe (`collect_ready` reads it).
pub(super) fn fork_roots(ctx: &mut RestoreContext) -> Result<(Made, Pending)> {
    let mut status_r = Vec::new();
    for _ in &ctx.plan.nodes {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("restart: pipe")?;
        status_r.push(BufReader::new(std::fs::File::from(r)));
        ctx.status_w.push(Some(crate::sys::CloseOnce::new(w)));
    }
    let mut made = Made {
        // 0 until the node says its PID
        pids: vec![0; ctx.plan.nodes.len()],
        created: Vec::new(),
        armed: true,
    };
    for &root in &ctx.plan.roots {
        let pid = spawn(ctx, root, false, None)
            .map_err(|e| e.context(format!("process {}", ctx.plan.nodes[root].pid)))?;
        made.created.push(pid);
    }
    // only the children hold the write ends now: a child that dies unreported is EOF
    ctx.status_w.clear();
    ctx.opened.clear();
    let pipes = status_r
        .into_iter()
        .enumerate()
        .map(|(n, r)| Status {
            node: n,
            input: r,
            created: false,
        })
        .collect();
    Ok((made, Pending { pipes }))
}

/// Reads every node's status pipe as lines arrive: first its PID (into `made`; once
/// every node has said it, `all_created` is told), then, for a process, that it is
/// ready, which hands it to `ready` at once, in whatever order they get there: the
/// tracer threads restore the first processes while the last are still being forked.
/// The first failure is the error, once every node that was made has said its PID (so
/// that dropping `made` kills exactly what was made).
pub(super) fn collect_ready(
    ctx: &RestoreContext,
    made: &mut Made,
    mut pending: Pending,
    mut all_created: impl FnMut(&Made),
    mut ready: impl FnMut(Child),
) -> Result<()> {
    let mut uncreated = pending.pipes.len();
    if uncreated == 0 {
        all_created(made);
    }
    let outcome = (|| -> Result<()> {
        while !pending.pipes.is_empty() {
            for k in due_pipes(&pending)?.into_iter().rev() {
                // highest first, so that removing keeps the lower indices valid
                let status = &mut pending.pipes[k];
                let n = status.node;
                let who = format!("process {}", ctx.plan.nodes[n].pid);
                if !status.created {
                    let pid = protocol::expect_created(&mut status.input, &who)
                        .map_err(|e| e.context(ctx.statefiles[0].path.display()))?;
                    made.pids[n] = pid;
                    status.created = true;
                    uncreated -= 1;
                    if uncreated == 0 {
                        all_created(made);
                    }
                    if !matches!(ctx.plan.nodes[n].role, Role::Process(_)) {
                        pending.pipes.swap_remove(k);
                    }
                    continue;
                }
                let mut status = pending.pipes.swap_remove(k);
                let Role::Process(i) = ctx.plan.nodes[n].role else {
                    continue;
                };
                let img = &ctx.images[i];
                let mapped: Vec<String> = mapped_files::list(&img.mm.vmas)
                    .into_iter()
                    .map(|m| m.path)
                    .collect();
                let r =
                    protocol::expect_ready(&mut status.input, &who, &mapped, &mem_inos(&img.mm))
                        .map_err(|e| e.context(ctx.statefiles[img.sf].path.display()))?;
                ready(Child {
                    pid: made.pids[n],
                    image: i,
                    ready: r,
                });
            }
        }
        Ok(())
    })();
    if outcome.is_err() {
        // every node made says its PID before anything else (or its pipe ends: it was
        // never made, or died): learn all of them, so that none is left running
        for status in pending.pipes.iter_mut().filter(|s| !s.created) {
            let who = format!("process {}", ctx.plan.nodes[status.node].pid);
            if let Ok(pid) = protocol::expect_created(&mut status.input, &who) {
                made.pids[status.node] = pid;
            }
        }
    }
    outcome
}

/// The pipes with something to read: those with a line buffered already, else those
/// poll finds readable (or ended).
fn due_pipes(pending: &Pending) -> Result<Vec<usize>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let buffered: Vec<usize> = (0..pending.pipes.len())
        .filter(|&k| !pending.pipes[k].input.buffer().is_empty())
        .collect();
    if !buffered.is_empty() {
        return Ok(buffered);
    }
    let mut fds: Vec<PollFd> = pending
        .pipes
        .iter()
        .map(|s| PollFd::new(s.input.get_ref().as_fd(), PollFlags::POLLIN))
        .collect();
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => {
                r.ctx("restart: poll")?;
                break;
            }
        }
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
        .map(|(k, _)| k)
        .collect())
}

fn kill_pids(pids: &[i32]) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    // 0 is a node that never said its PID: kill(0) would be our own group
    let pids: Vec<i32> = pids.iter().copied().filter(|&p| p > 0).collect();
    let pids = &pids[..];
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // Collect our children and tracees, so that none is left even as a zombie of ours;
    // the threads we trace first: their process is not reaped before they are. Never a
    // blocking wait: a thread not yet listed when we looked (or a tracee another of our
    // threads reaped) must not leave cpr waiting for ever, so look again each round,
    // for a few seconds at most; whatever is left then dies with its SIGKILL anyway.
    // Gone: reaped now, or not ours to reap (a grandchild) and dead already, so that
    // nothing of the failed restart still runs when cpr returns; a stop is not an end.
    let reaped = |id: i32| match waitpid(
        nix::unistd::Pid::from_raw(id),
        Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG),
    ) {
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => true,
        Err(_) => crate::proc::ProcDir::open(id)
            .and_then(|d| d.stat())
            .map_or(true, |st| st.is_dead()),
        Ok(_) => false,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut left: Vec<i32> = pids.to_vec();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        left.retain(|&pid| {
            let tids = crate::proc::ProcDir::open(pid)
                .and_then(|d| d.tids())
                .unwrap_or_default();
            for tid in tids.into_iter().filter(|&t| t != pid) {
                reaped(tid);
            }
            !reaped(pid)
        });
        if !left.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The shared memory objects a process maps, each once.
fn mem_inos(mm: &MmRecord) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for v in &mm.vmas {
        if let Backing::SharedMem { ino, .. } = v.backing
            && !out.contains(&ino)
        {
            out.push(ino);
        }
    }
    out
}

/// Forks node `n` (with its original PID where FORK ORIGINAL asks); returns its PID.
fn spawn(
    ctx: &RestoreContext,
    n: usize,
    clone_parent: bool,
    lender: Option<&Premaps>,
) -> Result<i32> {
    let node = &ctx.plan.nodes[n];
    let original = match node.role {
        Role::Process(i) => ctx.images[i].core.policies.fork == ForkAction::Original,
        _ => true,
    };
    let child = crate::sys::fork_with_pid(original.then_some(node.pid), clone_parent).map_err(
        |e| match e {
            nix::errno::Errno::EEXIST => Error::with_detail(
                format!("process {}", node.pid),
                Kind::ResourceBusy,
                format!("PID {} is in use", node.pid),
            ),
            e => Error::errno(format!("process {}", node.pid), e).detail("creating the process"),
        },
    )?;
    if child == 0 {
        run_node(ctx, n, lender);
    }
    // the child sets its group too; whichever runs first, its group exists before the
    // parent forks the next child, which may join it (as a shell does)
    let group = match node.session {
        SessionOp::NewGroup => Some(child),
        SessionOp::JoinGroup(g) => Some(g),
        _ => None,
    };
    if let Some(g) = group.filter(|_| !clone_parent) {
        let _ = nix::unistd::setpgid(
            nix::unistd::Pid::from_raw(child),
            nix::unistd::Pid::from_raw(g),
        );
    }
    Ok(child)
}

/// The life of a restore child until the tracer takes over: never returns.
fn run_node(ctx: &RestoreContext, n: usize, lender: Option<&Premaps>) -> ! {
    let _ = crate::sys::set_sigmask(!0);
    let node = &ctx.plan.nodes[n];
    let subtree = ctx.plan.subtree(n);
    // status pipes: only ours and those of the processes we fork stay open
    let mut mine: Option<std::fs::File> = None;
    for (k, w) in ctx.status_w.iter().enumerate() {
        if let Some(w) = w {
            if k == n {
                mine = Some(std::fs::File::from(w.try_clone().expect("status pipe")));
            } else if !subtree.contains(&k) {
                w.close();
            }
        }
    }
    let mut status = mine.expect("own status pipe");
    // above every descriptor the image uses, so that restoring them never touches it
    if let Role::Process(i) = node.role {
        let top = ctx.images[i]
            .core
            .fds
            .iter()
            .map(|f| f.fd)
            .max()
            .unwrap_or(2)
            + 1;
        if let Ok(high) = crate::sys::dup_above(status.as_raw_fd(), top, true) {
            status = std::fs::File::from(high);
        }
    }
    let _ = protocol::send(
        &mut status,
        &ChildMessage::Created {
            pid: nix::unistd::getpid().as_raw(),
        },
    );
    let result = (|| -> Result<ChildReady> {
        match node.session {
            SessionOp::Setsid => {
                nix::unistd::setsid().ctx("setsid")?;
            }
            SessionOp::NewGroup => {
                let _ = nix::unistd::setpgid(
                    nix::unistd::Pid::from_raw(0),
                    nix::unistd::Pid::from_raw(0),
                );
            }
            SessionOp::JoinGroup(g) => {
                // best effort: the group may not exist in this world
                let _ = nix::unistd::setpgid(
                    nix::unistd::Pid::from_raw(0),
                    nix::unistd::Pid::from_raw(g),
                );
            }
            SessionOp::Keep => {}
        }
        // pages shared with the children, in place before they are forked
        let premaps = match node.role {
            Role::Process(i) => premap_node(ctx, i, lender)?,
            _ => None,
        };
        for &s in &node.siblings {
            spawn(ctx, s, true, None)?;
        }
        let mut helpers = Vec::new();
        for &c in &node.children {
            let pid = spawn(ctx, c, false, premaps.as_ref())?;
            if ctx.plan.nodes[c].role == Role::Helper {
                helpers.push(pid);
            }
        }
        // a helper that made a group again has forked its members: not a child to keep
        for pid in helpers {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        // a group led by one of our children exists only now
        if let SessionOp::JoinGroup(g) = node.session
            && nix::unistd::getpgrp().as_raw() != g
        {
            let _ =
                nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(g));
        }
        // the forked ones have their copies: close ours
        for &k in &subtree {
            if k != n
                && let Some(w) = &ctx.status_w[k]
            {
                w.close();
            }
        }
        match node.role {
            Role::Zombie(z) => become_zombie(z.status),
            Role::Helper => std::process::exit(0),
            Role::Process(i) => {
                child_restore(ctx, &ctx.images[i], status.as_raw_fd()).map(|mut ready| {
                    ready.premapped = premaps.map(|p| p.regions).unwrap_or_default();
                    ready
                })
            }
        }
    })();
    // the dispositions last: from then on the child only waits for the tracer
    let result: Result<std::convert::Infallible> = result.and_then(|ready| {
        let Role::Process(i) = node.role else {
            unreachable!("only a process is made ready")
        };
        let line = protocol::encode(&ChildMessage::Ready(ready)).ctx("ready message")?;
        let out = status.try_clone().ctx("status pipe")?;
        match signals::restore_actions_and_wait(&ctx.images[i].core.signals, out, &line) {
            Err(e) => Err(e),
        }
    });
    let Err(e) = result;
    let _ = protocol::send(&mut status, &ChildMessage::Failed(Failure::new(&e)));
    std::process::exit(1);
}

/// Ends the way a zombie had ended, so that its parent reaps the same status.
fn become_zombie(status: i32) -> ! {
    let sig = status & 0x7f;
    if sig != 0 && sig != 0x7f {
        let _ = crate::sys::default_signal(sig);
        let _ = crate::sys::set_sigmask(0);
        let _ = nix::sys::signal::raise(
            nix::sys::signal::Signal::try_from(sig).unwrap_or(nix::sys::signal::Signal::SIGKILL),
        );
    }
    // without running cpr's exit handlers: this process is not cpr any more
    crate::sys::exit_now((status >> 8) & 0xff);
}

/// In the child, a copy of cpr about to become the image: everything that can be done
/// natively; returns what the tracer needs. Signals stay blocked until release.
fn child_restore(ctx: &RestoreContext, img: &Image, status_fd: i32) -> Result<ChildReady> {
    let rec = &img.core.process;
    let sf = &ctx.statefiles[img.sf];
    let opened = ctx.opened.get(img.sf);
    // reads the statefile: before the descriptors are restored
    crate::engine::objects::sysv_sem::restore_undo(sf, rec.pid)?;
    process::restore_attributes(rec)?;
    super::owner_rights::take(sf, rec)?;
    let (pages_fd, file_fds, mem_fds) = open_image_fds(ctx, img, status_fd)?;
    let mut keep: Vec<i32> = vec![status_fd, pages_fd];
    keep.extend(file_fds.iter().map(|(_, fd)| *fd));
    keep.extend(mem_fds.iter().map(|(_, fd)| *fd));
    let chain_fds = open_chain_fds(img, keep.iter().copied().max().unwrap_or(2) + 1)?;
    keep.extend(&chain_fds);
    let shared_fd = |id: u32| opened.and_then(|o| o.file_fd(id));
    files::restore(&img.core.fds, sf, &keep, ctx.tty.as_deref(), &shared_fd)?;
    locks::restore_native(&img.core.locks)?;
    crate::engine::objects::posix_mqueue::restore_notify(&img.core.fds)?;
    process::restore_native(rec, img.core.policies.cdir)?;
    let mut scratch = map_scratch(img)?;
    scratch
        .write_at(0, &SYSCALL_INT3)
        .ctx("restore scratch page")?;
    scratch
        .write_at(Scratch::RUNNER_OFFSET, &BATCH_RUNNER)
        .ctx("restore scratch page")?;
    Ok(ChildReady {
        scratch: scratch.addr().into(),
        pages_fd,
        file_fds,
        mem_fds,
        chain_fds,
        premapped: Vec::new(),
    })
}

/// Image `i`'s private anonymous mappings that it shares with its parent or its
/// children, made and filled before its children are forked (cow_pages.rs).
fn premap_node(
    ctx: &RestoreContext,
    i: usize,
    lender: Option<&Premaps>,
) -> Result<Option<Premaps>> {
    let img = &ctx.images[i];
    let same: Vec<usize> = (0..ctx.images.len())
        .filter(|&j| ctx.images[j].sf == img.sf)
        .collect();
    let members: Vec<Member<'_>> = same
        .iter()
        .map(|&j| Member {
            pid: ctx.images[j].core.process.pid,
            ppid: ctx.images[j].core.process.ppid,
            mm: &ctx.images[j].mm,
        })
        .collect();
    let pid = img.core.process.pid;
    let lent: Vec<(u64, u64)> = members
        .iter()
        .filter(|m| m.ppid == pid && m.pid != pid)
        .flat_map(|m| {
            m.mm.vmas.iter().flat_map(|v| {
                v.cow
                    .iter()
                    .map(|&(f, c)| (v.start + f * memory::PAGE, v.start + (f + c) * memory::PAGE))
            })
        })
        .collect();
    let who = same.iter().position(|&j| j == i).unwrap_or(0);
    let sources = if img.mm.vmas.iter().any(|v| !v.cow.is_empty()) {
        cow_pages::sources(&members, who)?
    } else {
        Vec::new()
    };
    if lent.is_empty() && sources.is_empty() {
        return Ok(None);
    }
    let sf = &ctx.statefiles[img.sf];
    let open_pages = |p: i32| sf.open_file(&pages_path(p));
    // with the statefile owner's file access rights, as every path of a record
    let open_mapped = |path: &str| -> Result<std::fs::File> {
        super::owner_rights::with(sf, Some(&img.core.process), || {
            let real = mapped_files::resolve(&img.mm.components, path, sf)?;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&real)
                .ctx(format!("mapped file {path} (component unavailable)"))
        })
    };
    cow_pages::premap(&cow_pages::PremapInput {
        pid,
        mm: &img.mm,
        lent,
        parent: lender.filter(|l| l.pid == img.core.process.ppid),
        sources,
        open_pages: &open_pages,
        open_mapped: &open_mapped,
    })
}

/// The page data of the statefiles an incremental image takes pages from, opened at
/// `from` and above (kept for the tracer like the image's own).
fn open_chain_fds(img: &Image, from: i32) -> Result<Vec<i32>> {
    let mut fds = Vec::new();
    let mut next = from;
    for p in &img.inherited {
        let f = p.link.open_file(&p.rel)?;
        let high = crate::sys::dup_above(f.as_raw_fd(), next, false)
            .ctx("placing a descriptor")?
            .into_raw_fd();
        next = high + 1;
        fds.push(high);
    }
    Ok(fds)
}

/// What the tracer maps the image from, opened above every descriptor of the image
/// (cpr keeps them until the image is in place): the page data, each mapped file, each
/// shared memory object.
#[allow(clippy::type_complexity)]
fn open_image_fds(
    ctx: &RestoreContext,
    img: &Image,
    status_fd: i32,
) -> Result<(i32, Vec<(String, i32)>, Vec<(u64, i32)>)> {
    let sf = &ctx.statefiles[img.sf];
    let opened = ctx.opened.get(img.sf);
    let max_fd = img.core.fds.iter().map(|f| f.fd).max().unwrap_or(2);
    let (_, nofile_hard) =
        crate::sys::prlimit(0, libc::RLIMIT_NOFILE as i32, None).unwrap_or((1024, 1024));
    let _ = crate::sys::prlimit(
        0,
        libc::RLIMIT_NOFILE as i32,
        Some((nofile_hard, nofile_hard)),
    );
    let mut next = max_fd.max(status_fd) + 1;
    // the copies stay open at their numbers for the tracer (no Rust value owns them)
    let mut place = |fd: i32| -> Result<i32> {
        let high = crate::sys::dup_above(fd, next, false)
            .ctx("placing a descriptor")?
            .into_raw_fd();
        next = high + 1;
        Ok(high)
    };
    let pages = sf.open_file(&pages_path(img.core.process.pid))?;
    let pages_fd = place(pages.as_raw_fd())?;
    drop(pages);
    let mut file_fds = Vec::new();
    for m in mapped_files::list(&img.mm.vmas) {
        // a program or library that changed since the checkpoint: its saved copy (-u)
        let real = mapped_files::resolve(&img.mm.components, &m.path, sf)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(m.writable)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&real)
            .ctx(format!("mapped file {} (component unavailable)", m.path))?;
        file_fds.push((m.path.clone(), place(f.as_raw_fd())?));
        drop(f);
    }
    let mut mem_fds = Vec::new();
    for ino in mem_inos(&img.mm) {
        let fd = opened.and_then(|o| o.mem_fd(ino)).ok_or_else(|| {
            Error::with_detail(
                "",
                Kind::CheckpointError,
                format!("shared memory {ino} missing from the statefile"),
            )
        })?;
        mem_fds.push((ino, place(fd)?));
    }
    Ok((pages_fd, file_fds, mem_fds))
}

/// The scratch page: code for injected calls, then argument space; in a hole of the
/// image that this copy of cpr does not use either (MAP_FIXED_NOREPLACE refuses a place that overlaps a mapping of ours,
/// so /proc/self/maps need not be read first).
fn map_scratch(img: &Image) -> Result<crate::sys::FreshMapping> {
    for c in memory::scratch_candidates(&img.mm.vmas) {
        if let Ok(a) = crate::sys::mmap_fixed_noreplace(
            c,
            Scratch::SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ) {
            return Ok(a);
        }
    }
    Err(Error::with_detail(
        "",
        Kind::NotEnoughSpace,
        "no room for the restore scratch page",
    ))
}
