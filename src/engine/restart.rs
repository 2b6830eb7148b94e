//! `cpr -r`: the restart as a list of phases.
//!
//! 1. validate every statefile named (revision, owner, every record's checksum) and read
//!    its records; the bulk page data is checked in parallel with step 5, before release
//! 2. check the PIDs FORK ORIGINAL needs are free; plan who forks whom (pstree)
//! 3. open what processes share (pipes with their data, inherited descriptions, shared
//!    memory) once, in cpr: the processes inherit them
//! 4. fork the tree: each process is a copy of cpr with its original PID, forked by its
//!    restored parent; it takes its session and group, forks its own children, restores
//!    natively what lives in the kernel (files, directories, limits, dispositions), maps
//!    a scratch page where the image has a hole, reports, and waits
//! 5. the tracer replaces each copy's address space with the image, creates the threads
//!    with their TIDs, gives each its kernel state, then credentials, last
//! 6. only when every process of every statefile is ready: registers, and all run
//!
//! If anything fails, every process created so far is killed: nothing half-restored runs.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::time::Instant;

use super::checkpoint::{CoreRecord, core_path, mm_path, pages_path};
use super::objects::memory::{self, Backing, MmRecord, Scratch};
use super::objects::pstree::{self, Role, SessionOp};
use super::ptrace::{self, Gate, Injector, SYSCALL_INT3};
use super::objects::shared::{self, OpenedShared, SharedTable};
use super::objects::{files, locks, process, signals, sysv_shm as shm, threads};
use super::procfs;
use crate::attrfile::ForkAction;
use crate::error::{Context, Error, Kind, Result};
use crate::ops::RestartOptions;
use crate::statefile::Statefile;
use crate::statefile::reader::Verify;

/// One process of a statefile, as read.
struct Image {
    /// Index of its statefile.
    sf: usize,
    core: CoreRecord,
    mm: MmRecord,
}

/// Everything a restore child needs; it is a copy of cpr, so it has all of it.
struct RestoreContext {
    statefiles: Vec<Statefile>,
    images: Vec<Image>,
    plan: pstree::Plan,
    opened: Vec<OpenedShared>,
    /// Status pipe of each node: its write end.
    status_w: Vec<Option<crate::sys::CloseOnce>>,
    tty: Option<String>,
}

/// A restored process, stopped, waiting for release.
struct Restored {
    /// (tid in this world, its record)
    threads: Vec<(i32, usize)>,
    image: usize,
}

/// Phase timings on stderr with CPR_TIMING set (for benchmarks).
pub(crate) struct Timer(Option<Instant>, Instant);

impl Timer {
    pub(crate) fn new() -> Timer {
        let now = Instant::now();
        Timer(std::env::var_os("CPR_TIMING").map(|_| now), now)
    }
    pub(crate) fn lap(&mut self, what: &str) {
        if self.0.is_some() {
            let now = Instant::now();
            eprintln!(
                "cpr: timing: {what}: {:.1} ms",
                (now - self.1).as_secs_f64() * 1e3
            );
            self.1 = now;
        }
    }
}

fn is_pages(rel: &str) -> bool {
    rel.ends_with("/pages") || rel.starts_with("shared/mem-")
}

/// Returns 0, or with `-j` the exit status of the job (as a shell would report it).
pub fn restart(options: &RestartOptions, deferred: crate::sys::DeferTermination) -> Result<i32> {
    let mut timer = Timer::new();
    // 1. validate everything but the bulk data before creating anything
    let caller = crate::ops::caller_uid();
    let mut statefiles = Vec::new();
    let mut images = Vec::new();
    let mut tables = Vec::new();
    let mut trees = Vec::new();
    for path in &options.statefiles {
        let sf = Statefile::open(path, Verify::Sizes)?;
        sf.verify_files(|rel| !is_pages(rel))?;
        let owner = sf.manifest.owner.uid;
        if caller != 0 && (caller != owner || owner == 0) {
            return Err(Error::with_detail(
                path.display().to_string(),
                Kind::NotPermitted,
                format!("checkpointed by uid {owner}; only that user or root may restart it"),
            ));
        }
        for p in &sf.manifest.processes {
            let core: CoreRecord = sf.read_json(&core_path(p.pid))?;
            let mm: MmRecord = sf.read_json(&mm_path(p.pid))?;
            images.push(Image {
                sf: statefiles.len(),
                core,
                mm,
            });
        }
        tables.push(if sf.entry(shared::TABLE).is_some() {
            sf.read_json::<SharedTable>(shared::TABLE)?
        } else {
            SharedTable::default()
        });
        trees.push(if sf.entry(pstree::TREE).is_some() {
            sf.read_json::<pstree::TreeRecord>(pstree::TREE)?
        } else {
            Default::default()
        });
        statefiles.push(sf);
    }
    timer.lap("read and check records");
    // 2. FORK ORIGINAL needs the PIDs and TIDs free. A PID held only by a zombie that
    // its new parent (init, often) has yet to reap is waited for, briefly.
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    for (s, tree) in trees.iter().enumerate() {
        // zombies come back with their PIDs too
        for z in &tree.zombies {
            while pid_taken(z.pid) == Some(true) && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if pid_taken(z.pid).is_some() {
                return Err(Error::with_detail(
                    statefiles[s].path.display().to_string(),
                    Kind::ResourceBusy,
                    format!(
                        "PID {} (an unreaped child at the checkpoint) is in use",
                        z.pid
                    ),
                ));
            }
        }
    }
    for img in &images {
        if img.core.policies.fork == ForkAction::Original {
            for t in &img.core.threads {
                while pid_taken(t.tid) == Some(true) && Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                if pid_taken(t.tid).is_some() {
                    return Err(Error::with_detail(
                        statefiles[img.sf].path.display().to_string(),
                        Kind::ResourceBusy,
                        format!(
                            "PID {} is in use (FORK ORIGINAL; FORK ANY in the attribute file allows another PID)",
                            t.tid
                        ),
                    ));
                }
            }
        }
    }
    let mut plan = pstree::Plan::default();
    for (s, _) in statefiles.iter().enumerate() {
        let ids: Vec<(usize, pstree::Ids)> = images
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
            &trees[s].zombies,
            options.interactive,
            &|pid| pid_taken(pid).is_none(),
        );
    }
    // SysV shared memory segments with their shmids, before any process (engine/shm.rs)
    let shm_segments = shm::restore_segments(&statefiles.iter().collect::<Vec<_>>())?;
    // 3. what the processes share
    let tty = if options.interactive {
        controlling_tty()
    } else {
        None
    };
    let mut opened = Vec::new();
    for (s, sf) in statefiles.iter().enumerate() {
        opened.push(
            shared::open_all(&tables[s], sf, tty.as_deref())
                .map_err(|e| e.context(sf.path.display()))?,
        );
    }
    timer.lap("open shared objects");
    // 4. fork the tree
    let mut status_r: Vec<Option<OwnedFd>> = Vec::new();
    let mut status_w: Vec<Option<crate::sys::CloseOnce>> = Vec::new();
    for _ in &plan.nodes {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("restart: pipe")?;
        status_r.push(Some(r));
        status_w.push(Some(crate::sys::CloseOnce::new(w)));
    }
    let mut ctx = RestoreContext {
        statefiles,
        images,
        plan,
        opened,
        status_w,
        tty,
    };
    let mut created: Vec<i32> = Vec::new();
    for &root in &ctx.plan.roots.clone() {
        let node = &ctx.plan.nodes[root];
        match spawn(&ctx, root, false) {
            Ok(pid) => created.push(pid),
            Err(e) => {
                kill_pids(&created);
                return Err(e.context(format!("process {}", node.pid)));
            }
        }
    }
    // only the children hold the write ends now: a child that dies unreported is EOF
    ctx.status_w.clear();
    ctx.opened.clear();
    let mut pids: Vec<Option<i32>> = vec![None; ctx.plan.nodes.len()];
    let mut readers: Vec<Option<BufReader<std::fs::File>>> = status_r
        .into_iter()
        .map(|r| r.map(|r| BufReader::new(std::fs::File::from(r))))
        .collect();
    let fail = |pids: &[Option<i32>], created: &[i32], e: Error| -> Error {
        let mut all: Vec<i32> = pids.iter().flatten().copied().collect();
        all.extend_from_slice(created);
        kill_pids(&all);
        e
    };
    // every node says its PID first (so that a failure can kill exactly what was made)
    for n in 0..ctx.plan.nodes.len() {
        let line = read_line(readers[n].as_mut().unwrap());
        match line
            .strip_prefix("PID ")
            .and_then(|p| p.trim().parse().ok())
        {
            Some(pid) => pids[n] = Some(pid),
            None => {
                let who = format!("process {}", ctx.plan.nodes[n].pid);
                let e = match line.strip_prefix("ERR ") {
                    Some(msg) => decode_error(msg).context(who),
                    None => Error::with_detail(who, Kind::CheckpointError, "was not created"),
                };
                return Err(fail(
                    &pids,
                    &created,
                    e.context(ctx.statefiles[0].path.display()),
                ));
            }
        }
    }
    let mut ready: Vec<Option<ChildReady>> = (0..ctx.plan.nodes.len()).map(|_| None).collect();
    for n in 0..ctx.plan.nodes.len() {
        let Role::Process(i) = ctx.plan.nodes[n].role else {
            continue;
        };
        let line = read_line(readers[n].as_mut().unwrap());
        let sf = &ctx.statefiles[ctx.images[i].sf];
        match parse_ready(
            &line,
            &memory::mapped_files(&ctx.images[i].mm.vmas),
            &mem_inos(&ctx.images[i].mm),
        ) {
            Ok(r) => ready[n] = Some(r),
            Err(e) => {
                return Err(fail(
                    &pids,
                    &created,
                    e.context(format!("process {}", ctx.plan.nodes[n].pid))
                        .context(sf.path.display()),
                ));
            }
        }
    }
    drop(readers);
    timer.lap("create processes");
    // the bulk data is checked while the address spaces are built
    let check_sfs: Vec<Statefile> = ctx.statefiles.clone();
    let verifier = std::thread::spawn(move || -> Result<()> {
        for sf in &check_sfs {
            sf.verify_files(is_pages)?;
        }
        Ok(())
    });
    // 5. address spaces, threads, kernel state, credentials
    let mut restored: Vec<Restored> = Vec::new();
    for n in 0..ctx.plan.nodes.len() {
        let Role::Process(i) = ctx.plan.nodes[n].role else {
            continue;
        };
        let pid = pids[n].unwrap();
        let img = &ctx.images[i];
        let mut r = Restored {
            threads: vec![(pid, 0)],
            image: i,
        };
        let res = (|| -> Result<()> {
            ptrace::seize(
                pid,
                libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
            )
            .ctx(format!("process {pid}"))?;
            ptrace::interrupt(pid).ctx(format!("process {pid}"))?;
            ptrace::wait_for_stop(pid)?;
            finish_in_tracer(
                img,
                &ctx.statefiles[img.sf],
                pid,
                ready[n].as_ref().unwrap(),
                &mut r,
            )
        })();
        if let Err(e) = res {
            let _ = verifier.join();
            return Err(fail(
                &pids,
                &created,
                e.context(format!("process {}", img.core.process.pid))
                    .context(ctx.statefiles[img.sf].path.display()),
            ));
        }
        restored.push(r);
    }
    timer.lap("restore address spaces");
    match verifier.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(&pids, &created, e)),
        Err(_) => {
            return Err(fail(
                &pids,
                &created,
                Error::with_detail("restart", Kind::CheckpointError, "page data check failed"),
            ));
        }
    }
    timer.lap("page data checked");
    // 6. release together
    for r in &restored {
        let img = &ctx.images[r.image];
        for (tid, idx) in &r.threads {
            if let Err(e) = threads::restore_registers(&img.core.threads[*idx], *tid) {
                return Err(fail(
                    &pids,
                    &created,
                    e.context(ctx.statefiles[img.sf].path.display()),
                ));
            }
        }
    }
    // every process attached its segments: those removed at checkpoint are marked again
    shm_segments.finish();
    for r in &restored {
        for (tid, _) in &r.threads {
            let _ = ptrace::detach(*tid, 0);
        }
    }
    timer.lap("release");
    // helpers have done their part: collect them
    for (n, node) in ctx.plan.nodes.iter().enumerate() {
        if node.role == Role::Helper && ctx.plan.roots.contains(&n) {
            if let Some(pid) = pids[n] {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
        }
    }
    // the processes run: cpr may be interrupted again
    drop(deferred);
    if options.interactive {
        let fg: Vec<i32> = ctx.plan.roots.iter().filter_map(|&n| pids[n]).collect();
        return Ok(wait_foreground(&fg));
    }
    Ok(0)
}

/// Whether a PID is in use: `Some(true)` by a zombie about to be reaped, `Some(false)`
/// by anything else, `None` when it is free.
fn pid_taken(pid: i32) -> Option<bool> {
    if let Ok(stat) = procfs::read_stat(pid) {
        return Some(stat.state() == 'Z' || stat.state() == 'X');
    }
    // a PID that no process has can still be held as the ID of a live process group
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => None,
        _ => Some(false),
    }
}

fn read_line(r: &mut BufReader<std::fs::File>) -> String {
    let mut s = String::new();
    let _ = r.read_line(&mut s);
    s
}

fn kill_pids(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // collect our children and tracees, so that none is left even as a zombie of ours
    for &pid in pids {
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::__WALL),
        );
    }
}

fn controlling_tty() -> Option<String> {
    let t = std::fs::read_link("/proc/self/fd/0").ok()?;
    let s = t.to_string_lossy().into_owned();
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        Some(s)
    } else {
        None
    }
}

/// `-j`: the restored processes are the caller's foreground job, and cpr stands for
/// them in the shell's job control, as `sudo` or `script` do: when the job stops
/// (Ctrl-Z), cpr stops too, and when the shell continues cpr (`fg`), cpr gives the job
/// the terminal back and continues it. cpr ends with the status of the first process.
fn wait_foreground(roots: &[i32]) -> i32 {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{Pid, getpgrp, tcsetpgrp};
    let Some(&first) = roots.first() else {
        return 0;
    };
    let job = nix::unistd::getpgid(Some(Pid::from_raw(first))).unwrap_or(Pid::from_raw(first));
    let tty = std::io::stdin();
    // ignoring SIGTTOU lets cpr hand the terminal over while not in the foreground
    let _ = crate::sys::ignore_signal(libc::SIGTTOU);
    let _ = tcsetpgrp(&tty, job);
    let mut left: Vec<i32> = roots.to_vec();
    let mut status = 0;
    while !left.is_empty() {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, c)) => {
                if pid.as_raw() == first {
                    status = c;
                }
                left.retain(|p| *p != pid.as_raw());
            }
            Ok(WaitStatus::Signaled(pid, s, _)) => {
                if pid.as_raw() == first {
                    status = 128 + s as i32;
                }
                left.retain(|p| *p != pid.as_raw());
            }
            Ok(WaitStatus::Stopped(..)) => {
                // the job stopped: so does cpr, with the terminal back to its shell
                let _ = tcsetpgrp(&tty, getpgrp());
                let _ = kill(nix::unistd::getpid(), Signal::SIGSTOP);
                // continued (fg): the job goes on in the foreground
                let _ = tcsetpgrp(&tty, job);
                let _ = killpg(job, Signal::SIGCONT);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    let _ = tcsetpgrp(&tty, getpgrp());
    let _ = crate::sys::default_signal(libc::SIGTTOU);
    status
}

/// What a restore child tells the tracer when it is ready.
struct ChildReady {
    scratch: u64,
    pages_fd: i32,
    file_fds: Vec<(String, i32)>,
    mem_fds: Vec<(u64, i32)>,
}

impl ChildReady {
    fn message(&self) -> String {
        let mut s = format!("OK {} {}", self.scratch, self.pages_fd);
        for (_, fd) in &self.file_fds {
            s.push_str(&format!(" {fd}"));
        }
        for (_, fd) in &self.mem_fds {
            s.push_str(&format!(" {fd}"));
        }
        s.push('\n');
        s
    }
}

/// The shared memory objects a process maps, each once.
fn mem_inos(mm: &MmRecord) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for v in &mm.vmas {
        if let Backing::SharedMem { ino, .. } = v.backing {
            if !out.contains(&ino) {
                out.push(ino);
            }
        }
    }
    out
}

fn parse_ready(msg: &str, mapped: &[memory::MappedFile], mems: &[u64]) -> Result<ChildReady> {
    if let Some(err) = msg.strip_prefix("ERR ") {
        return Err(decode_error(err));
    }
    let mut it = msg
        .strip_prefix("OK ")
        .unwrap_or("")
        .split_whitespace()
        .map(|s| s.parse::<u64>().unwrap_or(0));
    let scratch = it.next().unwrap_or(0);
    let pages_fd = it.next().unwrap_or(0) as i32;
    let file_fds = mapped
        .iter()
        .map(|m| (m.path.clone(), it.next().unwrap_or(0) as i32))
        .collect();
    let mem_fds = mems
        .iter()
        .map(|&ino| (ino, it.next().unwrap_or(0) as i32))
        .collect();
    if scratch == 0 {
        return Err(Error::with_detail(
            "",
            Kind::CheckpointError,
            "the restart child ended before it was ready",
        ));
    }
    Ok(ChildReady {
        scratch,
        pages_fd,
        file_fds,
        mem_fds,
    })
}

/// Forks node `n` (with its original PID where FORK ORIGINAL asks); returns its PID.
fn spawn(ctx: &RestoreContext, n: usize, clone_parent: bool) -> Result<i32> {
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
        run_node(ctx, n);
    }
    Ok(child)
}

/// The life of a restore child until the tracer takes over: never returns.
fn run_node(ctx: &RestoreContext, n: usize) -> ! {
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
    let _ = status.write_all(format!("PID {}\n", nix::unistd::getpid()).as_bytes());
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
        for &s in &node.siblings {
            spawn(ctx, s, true)?;
        }
        for &c in &node.children {
            spawn(ctx, c, false)?;
        }
        // the forked ones have their copies: close ours
        for &k in &subtree {
            if k != n {
                if let Some(w) = &ctx.status_w[k] {
                    w.close();
                }
            }
        }
        match node.role {
            Role::Zombie(z) => become_zombie(z.status),
            Role::Helper => std::process::exit(0),
            Role::Process(i) => child_restore(ctx, &ctx.images[i], status.as_raw_fd()),
        }
    })();
    match result {
        Ok(ready) => {
            let _ = status.write_all(ready.message().as_bytes());
            drop(status);
            crate::sys::pause_forever();
        }
        Err(e) => {
            let _ = status.write_all(format!("ERR {}\n", encode_error(&e)).as_bytes());
        }
    }
    std::process::exit(1);
}

/// An error as one line for the status pipe: subject, IRIX message, detail.
fn encode_error(e: &Error) -> String {
    let clean = |s: &str| s.replace(['\n', '\x1f'], " ");
    format!(
        "{}\x1f{}\x1f{}",
        clean(&e.subject),
        e.kind.message(),
        clean(e.detail.as_deref().unwrap_or(""))
    )
}

fn decode_error(line: &str) -> Error {
    let mut parts = line.trim_end().splitn(3, '\x1f');
    let subject = parts.next().unwrap_or("").to_string();
    let kind = parts
        .next()
        .and_then(Kind::from_message)
        .unwrap_or(Kind::CheckpointError);
    let detail = parts.next().filter(|d| !d.is_empty()).map(str::to_string);
    Error {
        subject,
        kind,
        detail,
    }
}

/// Ends the way a zombie had ended, so that its parent reaps the same status.
fn become_zombie(status: i32) -> ! {
    let sig = status & 0x7f;
    if sig != 0 && sig != 0x7f {
        let _ = crate::sys::rt_sigaction(sig, Some(&crate::sys::KernelSigaction::default()), None);
        let _ = crate::sys::set_sigmask(0);
        let _ = nix::sys::signal::raise(
            nix::sys::signal::Signal::try_from(sig).unwrap_or(nix::sys::signal::Signal::SIGKILL),
        );
    }
    // without running cpr's exit handlers: this process is not cpr any more
    crate::sys::exit_now((status >> 8) & 0xff);
}

/// In the child, a copy of cpr about to become the image: everything that can be done
/// natively. Signals stay blocked until release.
fn child_restore(
    ctx: &RestoreContext,
    img: &Image,
    status_fd: i32,
) -> Result<ChildReady> {
    let rec = &img.core.process;
    let sf = &ctx.statefiles[img.sf];
    let opened = &ctx.opened_for(img.sf);
    let max_fd = img.core.fds.iter().map(|f| f.fd).max().unwrap_or(2);
    // the descriptors cpr keeps until the image is in place live above the image's
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
    let status_high = status_fd;
    let pages = std::fs::File::open(sf.file(&pages_path(rec.pid))).ctx("page data")?;
    let pages_fd = place(pages.as_raw_fd())?;
    drop(pages);
    let mut file_fds = Vec::new();
    for m in memory::mapped_files(&img.mm.vmas) {
        // a program or library that changed since the checkpoint: its saved copy (-u)
        let real = super::objects::mapped_files::resolve(&img.mm.components, &m.path, sf)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(m.writable)
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
    let mut keep: Vec<i32> = vec![status_high, pages_fd];
    keep.extend(file_fds.iter().map(|(_, fd)| *fd));
    keep.extend(mem_fds.iter().map(|(_, fd)| *fd));
    let shared_fd = |id: u32| opened.and_then(|o| o.file_fd(id));
    files::restore(&img.core.fds, sf, &keep, ctx.tty.as_deref(), &shared_fd)?;
    locks::restore_native(&img.core.locks)?;
    process::restore_native(rec, img.core.policies.cdir, img.core.policies.rdir)?;
    signals::restore_actions(&img.core.signals)?;
    // the scratch page: code for injected calls, then argument space; in a hole of the
    // image that this copy of cpr does not use either
    let mine = procfs::read_maps(std::process::id() as i32)?;
    let mut scratch = None;
    for c in memory::scratch_candidates(&img.mm.vmas) {
        if mine
            .iter()
            .any(|m| c < m.end && m.start < c + Scratch::SIZE)
        {
            continue;
        }
        if let Ok(a) = crate::sys::mmap_fixed_noreplace(
            c,
            Scratch::SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ) {
            scratch = Some(a);
            break;
        }
    }
    let Some(mut scratch) = scratch else {
        return Err(Error::with_detail(
            "",
            Kind::NotEnoughSpace,
            "no room for the restore scratch page",
        ));
    };
    scratch
        .write_at(0, &SYSCALL_INT3)
        .ctx("restore scratch page")?;
    Ok(ChildReady {
        scratch: scratch.addr(),
        pages_fd,
        file_fds,
        mem_fds,
    })
}

impl RestoreContext {
    fn opened_for(&self, sf: usize) -> Option<&OpenedShared> {
        self.opened.get(sf)
    }
}

/// In the tracer: the image replaces the stopped child's memory; threads, signals,
/// credentials follow.
fn finish_in_tracer(
    img: &Image,
    sf: &Statefile,
    child: i32,
    ready: &ChildReady,
    restored: &mut Restored,
) -> Result<()> {
    let _ = sf;
    let scratch = Scratch {
        base: ready.scratch,
        size: Scratch::SIZE,
    };
    let main = Injector::new(child, Gate::Int3(scratch.base))?;
    // cpr's glibc registered rseq in the child: the kernel would write to that area,
    // soon unmapped, on every return to user space
    let rseq = ptrace::get_rseq(child)?;
    if rseq.abi_pointer != 0 {
        main.check(
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
        )?;
    }
    memory::restore(
        &main,
        child,
        &img.mm,
        scratch,
        &ready.file_fds,
        &ready.mem_fds,
        ready.pages_fd,
    )?;
    set_mm(&main, child, img, scratch, &ready.file_fds)?;
    for fd in ready
        .file_fds
        .iter()
        .map(|(_, fd)| *fd)
        .chain(ready.mem_fds.iter().map(|(_, fd)| *fd))
    {
        main.call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
    }
    main.call(libc::SYS_close, [ready.pages_fd as u64, 0, 0, 0, 0, 0])?;
    // anything else cpr's copy still had open (its status pipe, if the interrupt came
    // before it closed it) is not the image's
    let theirs: Vec<i32> = img.core.fds.iter().map(|f| f.fd).collect();
    for fd in std::fs::read_dir(format!("/proc/{child}/fd"))
        .ctx(format!("process {child}"))?
        .flatten()
    {
        if let Some(fd) = fd.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            if !theirs.contains(&fd) {
                main.call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
            }
        }
    }
    locks::restore_posix_injected(&main, child, scratch.data(), &img.core.locks)?;
    // threads, with their TIDs (FORK ORIGINAL) or any
    let original = img.core.policies.fork == ForkAction::Original;
    for (idx, t) in img.core.threads.iter().enumerate().skip(1) {
        let tid = create_thread(
            &main,
            child,
            scratch,
            if original { Some(t.tid) } else { None },
        )?;
        restored.threads.push((tid, idx));
    }
    for (tid, idx) in restored.threads.clone() {
        let inj = Injector::new(tid, Gate::Int3(scratch.base))?;
        threads::restore_kernel_state(&img.core.threads[idx], &inj, scratch.data(), child)?;
    }
    let mut signals_rec = img.core.signals.clone();
    if super::cooperate::wants_restart_signal(&signals_rec.actions) {
        // SIGRESTART handlers run before anything else of the program
        let info =
            super::cooperate::restart_siginfo(std::process::id() as i32, crate::ops::caller_uid());
        signals_rec.shared_pending.insert(0, threads::hex(&info));
    }
    signals::restore_pending_and_timers(&signals_rec, &main, child, scratch.data())?;
    super::objects::events::restore_posix_timers(&img.core.posix_timers, &main, child, scratch.data())?;
    // credentials last
    process::restore_credentials(&img.core.process, &main, child, scratch.data())?;
    // the scratch page goes; its own syscall instruction runs the munmap, stopping at the
    // syscall exit so nothing executes there afterwards
    let last = Injector::new(child, Gate::SyscallInsn(scratch.base))?;
    last.check(
        "munmap scratch",
        libc::SYS_munmap,
        [scratch.base, scratch.size, 0, 0, 0, 0],
    )?;
    Ok(())
}

fn set_mm(
    inj: &Injector,
    pid: i32,
    img: &Image,
    scratch: Scratch,
    file_fds: &[(String, i32)],
) -> Result<()> {
    let f = &img.mm.fields;
    let mut auxv = Vec::new();
    for w in &img.mm.auxv {
        auxv.extend_from_slice(&w.to_ne_bytes());
    }
    let auxv_addr = scratch.data() + 512;
    let exe_fd = file_fds
        .iter()
        .find(|(p, _)| *p == img.mm.exe)
        .map(|(_, fd)| *fd as u32)
        .unwrap_or(u32::MAX);
    let map = crate::sys::PrctlMmMap {
        start_code: f.start_code,
        end_code: f.end_code,
        start_data: f.start_data,
        end_data: f.end_data,
        start_brk: f.start_brk,
        brk: f.brk,
        start_stack: f.start_stack,
        arg_start: f.arg_start,
        arg_end: f.arg_end,
        env_start: f.env_start,
        env_end: f.env_end,
        auxv: auxv_addr,
        auxv_size: auxv.len() as u32,
        exe_fd,
    };
    let bytes = map.to_bytes();
    ptrace::write_mem(pid, scratch.data(), &bytes)?;
    ptrace::write_mem(pid, auxv_addr, &auxv)?;
    inj.check(
        "prctl(PR_SET_MM_MAP)",
        libc::SYS_prctl,
        [
            libc::PR_SET_MM as u64,
            libc::PR_SET_MM_MAP as u64,
            scratch.data(),
            bytes.len() as u64,
            0,
            0,
        ],
    )?;
    Ok(())
}

/// A new thread of the restoring process by an injected clone3; it starts stopped
/// (PTRACE_O_TRACECLONE) and gets its registers at release.
fn create_thread(main: &Injector, pid: i32, scratch: Scratch, tid: Option<i32>) -> Result<i32> {
    let flags = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM) as u64;
    let args_addr = scratch.data() + 1024;
    let tid_addr = scratch.data() + 1024 + 128;
    let args = crate::sys::CloneArgs {
        flags,
        set_tid: if tid.is_some() { tid_addr } else { 0 },
        set_tid_size: if tid.is_some() { 1 } else { 0 },
        ..Default::default()
    };
    let args = crate::sys::KernelStruct::as_bytes(&args);
    ptrace::write_mem(pid, args_addr, args)?;
    ptrace::write_mem(pid, tid_addr, &tid.unwrap_or(0).to_ne_bytes())?;
    let new = main
        .check(
            "clone3 (thread)",
            libc::SYS_clone3,
            [args_addr, args.len() as u64, 0, 0, 0, 0],
        )
        .map_err(|e| match (e.kind, tid) {
            (Kind::FileExists, Some(t)) => Error::with_detail(
                format!("process {pid}"),
                Kind::ResourceBusy,
                format!("TID {t} is in use"),
            ),
            _ => e,
        })? as i32;
    // the new thread's first stop
    loop {
        match ptrace::wait(new)? {
            ptrace::Stop::EventStop(_) | ptrace::Stop::Signal(_) => break,
            ptrace::Stop::Exited(_) | ptrace::Stop::Killed(_) => {
                return Err(Error::with_detail(
                    format!("thread {new}"),
                    Kind::CheckpointError,
                    "ended at creation",
                ));
            }
            _ => ptrace::cont(new, 0).ctx(format!("thread {new}"))?,
        }
    }
    Ok(new)
}
