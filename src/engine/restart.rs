//! `cpr -r`: the restart as a list of phases.
//!
//! 1. validate every statefile named (revision, checksums, owner) and read its records
//! 2. check the PIDs FORK ORIGINAL needs are free
//! 3. per process: fork a copy of cpr with the original PID; in it, restore natively
//!    what lives in the kernel (files, directories, limits, dispositions), map a scratch
//!    page where the image has a hole, and wait
//! 4. the tracer replaces the copy's address space with the image, creates the threads
//!    with their TIDs, gives each its kernel state, then credentials, last
//! 5. only when every process of every statefile is ready: registers, and all run
//!
//! If anything fails, every process created so far is killed: nothing half-restored runs.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::Path;

use super::checkpoint::{CoreRecord, core_path, mm_path, pages_path};
use super::memory::{self, MmRecord, Scratch};
use super::ptrace::{self, Gate, Injector, SYSCALL_INT3};
use super::{files, process, procfs, shm, signals, threads};
use crate::attrfile::ForkAction;
use crate::error::{Context, Error, Kind, Result};
use crate::ops::RestartOptions;
use crate::statefile::Statefile;
use crate::statefile::reader::Verify;

/// One process of a statefile, as read.
struct Image {
    statefile: Statefile,
    core: CoreRecord,
    mm: MmRecord,
}

/// A restored process, stopped, waiting for release.
struct Restored {
    pid: i32,
    /// (tid in this world, its record)
    threads: Vec<(i32, usize)>,
    image: usize,
    released: bool,
}

pub fn restart(options: &RestartOptions) -> Result<()> {
    // 1. validate everything before creating anything
    let caller = crate::ops::caller_uid();
    let mut images = Vec::new();
    for path in &options.statefiles {
        let sf = Statefile::open(path, Verify::Full)?;
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
                statefile: sf.clone(),
                core,
                mm,
            });
        }
    }
    // 2. FORK ORIGINAL needs the PIDs and TIDs free
    for img in &images {
        if img.core.policies.fork == ForkAction::Original {
            for t in &img.core.threads {
                if Path::new(&format!("/proc/{}", t.tid)).exists() {
                    return Err(Error::with_detail(
                        img.statefile.path.display().to_string(),
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
    // SysV shared memory segments with their shmids, before any process (engine/shm.rs)
    let shm_segments =
        shm::restore_segments(&images.iter().map(|i| &i.statefile).collect::<Vec<_>>())?;
    // 3-4. create and restore, all stopped
    let tty = if options.interactive {
        controlling_tty()
    } else {
        None
    };
    let mut restored: Vec<Restored> = Vec::new();
    for (i, img) in images.iter().enumerate() {
        match restore_one(img, i, options.interactive, tty.as_deref()) {
            Ok(r) => restored.push(r),
            Err(e) => {
                kill_all(&mut restored);
                return Err(e.context(img.statefile.path.display()));
            }
        }
    }
    // 5. release together
    for r in &restored {
        let img = &images[r.image];
        for (tid, idx) in &r.threads {
            if let Err(e) = threads::restore_registers(&img.core.threads[*idx], *tid) {
                kill_all(&mut restored);
                return Err(e.context(img.statefile.path.display()));
            }
        }
    }
    // every process attached its segments: those removed at checkpoint are marked again
    shm_segments.finish();
    for r in restored.iter_mut() {
        for (tid, _) in &r.threads {
            let _ = ptrace::detach(*tid, 0);
        }
        r.released = true;
    }
    if options.interactive {
        wait_foreground(&restored)?;
    }
    Ok(())
}

fn kill_all(restored: &mut [Restored]) {
    for r in restored.iter_mut() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(r.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(r.pid), None);
        r.released = true;
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

/// `-j`: the restored processes are the caller's foreground job; cpr waits for them and
/// exits with the status of the first one.
fn wait_foreground(restored: &[Restored]) -> Result<()> {
    use nix::sys::wait::{WaitStatus, waitpid};
    let first = restored.first().map(|r| r.pid).unwrap_or(0);
    if first == 0 {
        return Ok(());
    }
    let pgid = nix::unistd::Pid::from_raw(first);
    let _ = nix::unistd::tcsetpgrp(std::io::stdin(), pgid);
    let mut status = 0;
    for r in restored {
        loop {
            match waitpid(nix::unistd::Pid::from_raw(r.pid), None) {
                Ok(WaitStatus::Exited(_, c)) => {
                    if r.pid == first {
                        status = c;
                    }
                    break;
                }
                Ok(WaitStatus::Signaled(_, s, _)) => {
                    if r.pid == first {
                        status = 128 + s as i32;
                    }
                    break;
                }
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
    // the terminal back to cpr's own group
    let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
    if status != 0 {
        std::process::exit(status);
    }
    Ok(())
}

/// What the child tells the tracer when it is ready.
struct ChildReady {
    scratch: u64,
    pages_fd: i32,
    file_fds: Vec<(String, i32)>,
}

impl ChildReady {
    fn message(&self) -> String {
        let mut s = format!("OK {} {}", self.scratch, self.pages_fd);
        for (_, fd) in &self.file_fds {
            s.push_str(&format!(" {fd}"));
        }
        s
    }
}

fn restore_one(
    img: &Image,
    index: usize,
    interactive: bool,
    tty: Option<&str>,
) -> Result<Restored> {
    let rec = &img.core.process;
    let who = format!("process {}", rec.pid);
    // where the child's scratch page may go: a hole of the image, not used by cpr
    let mine = procfs::read_maps(std::process::id() as i32)?;
    let candidates: Vec<u64> = memory::scratch_candidates(&img.mm.vmas)
        .into_iter()
        .filter(|c| {
            mine.iter()
                .all(|m| c + Scratch::SIZE <= m.start || *c >= m.end)
        })
        .collect();
    let mapped = memory::mapped_files(&img.mm.vmas);
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx("restart: pipe")?;
    let want_pid = if img.core.policies.fork == ForkAction::Original {
        Some(rec.pid)
    } else {
        None
    };
    let child = crate::sys::fork_with_pid(want_pid).map_err(|e| match e {
        nix::errno::Errno::EEXIST => Error::with_detail(
            &who,
            Kind::ResourceBusy,
            format!("PID {} is in use", rec.pid),
        ),
        e => Error::errno(&who, e).detail("creating the process"),
    })?;
    if child == 0 {
        drop(rd);
        // the status pipe lives above every descriptor the image uses
        let top = img.core.fds.iter().map(|f| f.fd).max().unwrap_or(2) + 1;
        let status =
            nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_DUPFD(top)).unwrap_or(wr.as_raw_fd());
        let err = match child_restore(img, &candidates, &mapped, status, interactive, tty) {
            Err(e) => e,
        };
        let mut out = std::fs::File::from(crate::sys::own_fd(status));
        let _ = out.write_all(format!("ERR {err}").as_bytes());
        std::process::exit(1);
    }
    drop(wr);
    let mut restored = Restored {
        pid: child,
        threads: vec![(child, 0)],
        image: index,
        released: false,
    };
    let result = (|| -> Result<()> {
        let mut msg = String::new();
        std::fs::File::from(rd)
            .read_to_string(&mut msg)
            .ctx(format!("{who}: restart child"))?;
        let ready = parse_ready(&msg, &mapped).map_err(|e| e.context(&who))?;
        ptrace::seize(
            child,
            libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
        )
        .ctx(&who)?;
        ptrace::interrupt(child).ctx(&who)?;
        ptrace::wait_for_stop(child)?;
        finish_in_tracer(img, child, &ready, &mut restored)
    })();
    if let Err(e) = result {
        kill_all(std::slice::from_mut(&mut restored));
        return Err(e);
    }
    Ok(restored)
}

fn parse_ready(msg: &str, mapped: &[memory::MappedFile]) -> Result<ChildReady> {
    if let Some(err) = msg.strip_prefix("ERR ") {
        // the child's error is already one line in cpr's form: keep it as the detail
        return Err(Error::with_detail(
            "",
            Kind::CheckpointError,
            err.to_string(),
        ));
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
    })
}

/// In the child, a copy of cpr about to become the image: everything that can be done
/// natively. Signals stay blocked until release.
fn child_restore(
    img: &Image,
    candidates: &[u64],
    mapped: &[memory::MappedFile],
    status_fd: i32,
    interactive: bool,
    tty: Option<&str>,
) -> Result<std::convert::Infallible> {
    crate::sys::set_sigmask(!0).ctx("blocking signals")?;
    let rec = &img.core.process;
    let max_fd = img
        .core
        .fds
        .iter()
        .map(|f| f.fd)
        .max()
        .unwrap_or(2)
        .max(status_fd);
    // the descriptors cpr keeps until the image is in place live above the image's
    let (_, nofile_hard) =
        crate::sys::prlimit(0, libc::RLIMIT_NOFILE as i32, None).unwrap_or((1024, 1024));
    let _ = crate::sys::prlimit(
        0,
        libc::RLIMIT_NOFILE as i32,
        Some((nofile_hard, nofile_hard)),
    );
    let mut next = max_fd + 1;
    let mut place = |fd: i32| -> Result<i32> {
        let high = nix::fcntl::fcntl(
            crate::sys::borrow_raw(fd),
            nix::fcntl::FcntlArg::F_DUPFD(next),
        )
        .ctx("placing a descriptor")?;
        crate::sys::close(fd);
        next = high + 1;
        Ok(high)
    };
    let status_high = status_fd;
    let pages = std::fs::File::open(img.statefile.file(&pages_path(rec.pid))).ctx("page data")?;
    let pages_fd = place(pages.into_raw_fd())?;
    let mut file_fds = Vec::new();
    for m in mapped {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(m.writable)
            .open(&m.path)
            .ctx(format!("mapped file {} (component unavailable)", m.path))?;
        file_fds.push((m.path.clone(), place(f.into_raw_fd())?));
    }
    // session and group: without -j the process leaves cpr's terminal and job control
    if interactive {
        let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
    } else {
        let _ = nix::unistd::setsid();
    }
    let mut keep: Vec<i32> = vec![status_high, pages_fd];
    keep.extend(file_fds.iter().map(|(_, fd)| *fd));
    files::restore(&img.core.fds, &img.statefile, &keep, tty)?;
    process::restore_native(rec, img.core.policies.cdir, img.core.policies.rdir)?;
    signals::restore_actions(&img.core.signals)?;
    // the scratch page: code for injected calls, then argument space
    let mut scratch = 0;
    for &c in candidates {
        if let Ok(a) = crate::sys::mmap_fixed_noreplace(
            c,
            Scratch::SIZE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ) {
            scratch = a;
            break;
        }
    }
    if scratch == 0 {
        return Err(Error::with_detail(
            "",
            Kind::NotEnoughSpace,
            "no room for the restore scratch page",
        ));
    }
    crate::sys::write_own_memory(scratch, &SYSCALL_INT3);
    // status_high is the write end: report on it
    let mut out = std::fs::File::from(crate::sys::own_fd(status_high));
    let ready = ChildReady {
        scratch,
        pages_fd,
        file_fds,
    };
    let _ = out.write_all(ready.message().as_bytes());
    drop(out);
    crate::sys::pause_forever();
}

/// In the tracer: the image replaces the stopped child's memory; threads, signals,
/// credentials follow.
fn finish_in_tracer(
    img: &Image,
    child: i32,
    ready: &ChildReady,
    restored: &mut Restored,
) -> Result<()> {
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
        ready.pages_fd,
    )?;
    set_mm(&main, child, img, scratch, &ready.file_fds)?;
    for (_, fd) in &ready.file_fds {
        main.call(libc::SYS_close, [*fd as u64, 0, 0, 0, 0, 0])?;
    }
    main.call(libc::SYS_close, [ready.pages_fd as u64, 0, 0, 0, 0, 0])?;
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
        let inj = if tid == child {
            Injector::new(child, Gate::Int3(scratch.base))?
        } else {
            Injector::new(tid, Gate::Int3(scratch.base))?
        };
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
    let mut args = Vec::new();
    let fields = [
        flags,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        if tid.is_some() { tid_addr } else { 0 },
        if tid.is_some() { 1 } else { 0 },
        0,
    ];
    for x in fields {
        args.extend_from_slice(&x.to_ne_bytes());
    }
    ptrace::write_mem(pid, args_addr, &args)?;
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
