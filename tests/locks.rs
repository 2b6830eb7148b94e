//! File locks across checkpoint and restart (guide, "Open Files and Devices": "All file
//! locks are also restored at restart. If the file regions that the restarting process
//! needs to lock have already been locked by another process, CPR tries to acquire the
//! locks a few times before it aborts the restart.")
//!
//! tests/workloads/lk_locks.c holds a flock, a POSIX record lock and an OFD lock, and
//! checks from a child process, before the checkpoint and after the restart, that other
//! processes see exactly those locks.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;
use cpr::engine::objects::locks::{LockKind, LockType};
use cpr::statefile::{CoreRecord, Statefile, Verify, core_path};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// A test's session: in its scratch directory the locked files a, b, c, each process's
/// log, the statefile. Every process it started (originals, restored copies, blockers,
/// `cpr -r`) names the directory and is killed and reaped when it goes.
struct Setup {
    t: Session,
}

impl Setup {
    fn new() -> Setup {
        Setup { t: Session::new() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path(name)
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Starts `lk_locks CTL mode args...`, its output in `out`; returns when it printed
    /// `line` (failing on FAIL).
    fn start(&mut self, mode: &str, args: &[&str], out: &str, line: &str) -> i32 {
        let mut argv = vec![ctl(&self.t.s), mode.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let w = spawn_to(&self.t.s, &build("lk_locks.c"), &argv, self.path(out));
        wait_for_line(&w.log, line, TIMEOUT);
        self.t.keep(w)
    }

    fn statefile(&self) -> String {
        self.path("sf").to_string_lossy().into_owned()
    }

    /// `cpr -c` (WILL EXIT), then waits until the original is gone and its locks with it.
    fn checkpoint(&mut self, pid: i32) {
        checkpoint_set(&self.t.s, "sf", &pid.to_string(), &[], &[pid]);
    }

    /// `cpr -r`; whatever it restores is the scratch directory's to end.
    fn restart(&mut self) -> Output {
        restart_all(&[&self.path("sf")])
    }

    /// After a successful restart: GO, then PASS from the restored process, which ends.
    fn finish(&mut self, pid: i32) {
        self.t.s.go();
        wait_for_line(&self.path("out"), "PASS", TIMEOUT);
        assert_eq!(
            wait_exit(pid, TIMEOUT),
            Some(0),
            "the restored process's end"
        );
    }
}

/// Kills our child `pid` and reaps exactly it (a `cpr -r` child may still be waited for).
fn end(pid: i32) {
    signal(pid, Signal::SIGKILL);
    let status = waitpid(Pid::from_raw(pid), None).expect("waitpid");
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "{status:?}"
    );
}

/// Processes other than `except` with a descriptor open on a file of `dir`.
fn users_of(dir: &Path, except: &[i32]) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|pid| !except.contains(pid))
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.starts_with(dir)))
            })
        })
        .collect()
}

#[test]
fn flock_posix_and_ofd_locks_are_held_again_after_restart() {
    let mut s = Setup::new();
    let pid = s.start("run", &[], "out", "READY");
    s.checkpoint(pid);

    // what the statefile says: each lock on the descriptor that held it
    let sf = Statefile::open(&s.path("sf"), Verify::Full).unwrap();
    let core: CoreRecord = sf.read_json(&core_path(pid)).unwrap();
    let fd_of = |name: &str| {
        let p = s.path(name).to_string_lossy().into_owned();
        core.fds.iter().find(|f| f.path == p).unwrap().fd
    };
    let got: Vec<_> = core
        .locks
        .iter()
        .map(|l| (l.fd, l.kind, l.lock_type, l.start, l.end))
        .collect();
    assert_eq!(
        got,
        vec![
            (fd_of("a"), LockKind::Flock, LockType::Write, 0, None),
            (fd_of("b"), LockKind::Posix, LockType::Write, 100, Some(199)),
            (fd_of("c"), LockKind::Ofd, LockType::Read, 0, None),
        ]
    );

    let o = s.restart();
    assert!(o.status.success(), "cpr -r: {}", describe(&o));
    s.finish(pid);
}

#[test]
fn a_posix_lock_on_a_mapped_file_survives_the_restart() {
    // the restart opens mapped files for mmap and closes them after; closing any
    // descriptor of a file drops the process's POSIX locks on it
    let mut s = Setup::new();
    let pid = s.start("run", &["mmap"], "out", "READY");
    s.checkpoint(pid);
    let o = s.restart();
    assert!(o.status.success(), "cpr -r: {}", describe(&o));
    s.finish(pid);
}

/// Another process takes a lock of `kind` between checkpoint and restart.
fn restart_while_blocked(kind: &str, file: &str, expect: &str) {
    let mut s = Setup::new();
    let pid = s.start("run", &[], "out", "READY");
    s.checkpoint(pid);
    let blocker = s.start("hold", &[kind], "blocker", "HELD");

    let o = s.restart();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "cpr -r: {}", describe(&o));
    assert!(err.contains("Resource busy"), "{err}");
    assert!(err.contains(expect), "{err}");
    assert!(
        err.contains(&format!("({}): ", s.path(file).display())),
        "{err}"
    );
    assert!(err.contains("is held by another process"), "{err}");
    // nothing half-restored is left: no process but the blocker has the files open
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(users_of(s.t.s.path(), &[blocker]), Vec::<i32>::new());
    assert!(!s.output("out").contains("PASS"));

    // the statefile is still good once the blocker is gone
    end(blocker);
    let o = s.restart();
    assert!(o.status.success(), "cpr -r: {}", describe(&o));
    s.finish(pid);
}

#[test]
fn restart_fails_with_resource_busy_when_another_process_holds_the_posix_range() {
    restart_while_blocked("posix", "b", "POSIX WRITE lock 100-199");
}

#[test]
fn restart_fails_with_resource_busy_when_another_process_holds_the_flock() {
    restart_while_blocked("flock", "a", "FLOCK WRITE lock 0-EOF");
}

#[test]
fn restart_fails_with_resource_busy_when_another_process_holds_the_ofd_range() {
    restart_while_blocked("ofd", "c", "OFD READ lock 0-EOF");
}

/// The system call a process is in, from /proc/PID/syscall (None when running or gone).
fn syscall_of(pid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

#[test]
fn restart_waits_for_a_lock_released_while_it_retries() {
    let mut s = Setup::new();
    let pid = s.start("run", &[], "out", "READY");
    s.checkpoint(pid);
    let blocker = s.start("hold", &["posix"], "blocker", "HELD");

    let mut restart = cpr_command()
        .args(["-r", &s.statefile()])
        .stdout(File::create(s.path("restart.out")).unwrap())
        .stderr(File::create(s.path("restart.err")).unwrap())
        .spawn()
        .unwrap();
    // the restore child (FORK ORIGINAL: the original PID) found the lock taken and
    // sleeps between attempts: now the blocker goes
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if matches!(
            syscall_of(pid),
            Some(n) if n == libc::SYS_clock_nanosleep || n == libc::SYS_nanosleep
        ) {
            break;
        }
        assert!(
            restart.try_wait().unwrap().is_none(),
            "cpr -r ended first: {}",
            s.output("restart.err")
        );
        assert!(Instant::now() < deadline, "the restore never retried");
        std::thread::sleep(Duration::from_millis(2));
    }
    end(blocker);

    let status = restart.wait().unwrap();
    assert!(
        status.success(),
        "cpr -r: {status:?}: {}",
        s.output("restart.err")
    );
    s.finish(pid);
}
