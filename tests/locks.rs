//! File locks across checkpoint and restart (guide, "Open Files and Devices": "All file
//! locks are also restored at restart. If the file regions that the restarting process
//! needs to lock have already been locked by another process, CPR tries to acquire the
//! locks a few times before it aborts the restart.")
//!
//! tests/workloads/lk_locks.c holds a flock, a POSIX record lock and an OFD lock, and
//! checks from a child process, before the checkpoint and after the restart, that other
//! processes see exactly those locks.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cpr::engine::objects::locks::{LockKind, LockType};
use cpr::statefile::{CoreRecord, Statefile, Verify, core_path};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long a test waits for something that should happen at once before failing.
const PATIENCE: Duration = Duration::from_secs(60);

fn cpr() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cpr"))
}

fn program() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lk_locks");
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/workloads/lk_locks.c");
        let o = Command::new("cc")
            .args(["-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run cc");
        assert!(
            o.status.success(),
            "cc lk_locks: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // restored processes are orphaned to the test: it must be able to reap them
        nix::sys::prctl::set_child_subreaper(true).unwrap();
        out
    })
}

/// Every process a test started: killed and reaped at the end, pass or fail.
#[derive(Default)]
struct Guard {
    children: Vec<Child>,
    /// Restored processes (children of the test only as their subreaper).
    orphans: Vec<i32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for &pid in &self.orphans {
            // only a process still ours: a PID that ended may have been reused
            let p = Pid::from_raw(pid);
            if waitpid(p, Some(WaitPidFlag::WNOHANG)) == Ok(WaitStatus::StillAlive) {
                let _ = kill(p, Signal::SIGKILL);
                let _ = waitpid(p, None);
            }
        }
    }
}

/// A test's directory: the locked files a, b, c, the workload's output, the statefile.
struct Setup {
    dir: tempfile::TempDir,
    guard: Guard,
}

impl Setup {
    fn new() -> Setup {
        program();
        Setup {
            dir: tempfile::tempdir().unwrap(),
            guard: Guard::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Starts lk_locks with `args` after the mode and directory, its output in `out`;
    /// returns when it printed `line` (failing on FAIL or an early end).
    fn start(&mut self, mode: &str, args: &[&str], out: &str, line: &str) -> i32 {
        let child = Command::new(program())
            .arg(mode)
            .arg(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(self.path(out)).unwrap())
            .stderr(File::create(self.path(&format!("{out}.err"))).unwrap())
            .env("HOME", self.dir.path())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        self.guard.children.push(child);
        self.wait_line(out, line);
        pid
    }

    fn wait_line(&mut self, out: &str, line: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.output(out);
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(!text.contains("FAIL"), "{out}: {text}");
            assert!(Instant::now() < deadline, "{out}: no {line} in {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cpr(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cpr());
        c.args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        c
    }

    fn statefile(&self) -> String {
        self.path("sf").to_string_lossy().into_owned()
    }

    /// `cpr -c` (WILL EXIT), then waits until the original is gone and its locks with it.
    fn checkpoint(&mut self, pid: i32) {
        let o = self
            .cpr(&["-c", &self.statefile(), "-p", &pid.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "cpr -c: {}", text(&o));
        let i = self
            .guard
            .children
            .iter()
            .position(|c| c.id() as i32 == pid)
            .unwrap();
        let mut child = self.guard.children.remove(i);
        child.wait().unwrap();
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    /// `cpr -r`; whatever it restores (PID `pid`) is the test's to end.
    fn restart(&mut self, pid: i32) -> Output {
        let o = self.cpr(&["-r", &self.statefile()]).output().unwrap();
        self.guard.orphans.push(pid);
        o
    }

    /// After a successful restart: GO, then PASS from the restored process, which ends.
    fn finish(&mut self, pid: i32) {
        File::create(self.path("GO")).unwrap();
        self.wait_line("out", "PASS");
        let status = waitpid(Pid::from_raw(pid), None).unwrap();
        assert_eq!(status, WaitStatus::Exited(Pid::from_raw(pid), 0));
        self.guard.orphans.retain(|p| *p != pid);
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Processes other than `except` with a descriptor open on a file of `dir`.
fn users_of(dir: &Path, except: &[i32]) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if except.contains(&pid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.starts_with(dir)))
        {
            out.push(pid);
        }
    }
    out
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

    let o = s.restart(pid);
    assert!(o.status.success(), "cpr -r: {}", text(&o));
    s.finish(pid);
}

#[test]
fn a_posix_lock_on_a_mapped_file_survives_the_restart() {
    // the restart opens mapped files for mmap and closes them after; closing any
    // descriptor of a file drops the process's POSIX locks on it
    let mut s = Setup::new();
    let pid = s.start("run", &["mmap"], "out", "READY");
    s.checkpoint(pid);
    let o = s.restart(pid);
    assert!(o.status.success(), "cpr -r: {}", text(&o));
    s.finish(pid);
}

/// Another process takes a lock of `kind` between checkpoint and restart.
fn restart_while_blocked(kind: &str, file: &str, expect: &str) {
    let mut s = Setup::new();
    let pid = s.start("run", &[], "out", "READY");
    s.checkpoint(pid);
    let blocker = s.start("hold", &[kind], "blocker", "HELD");

    let o = s.restart(pid);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "cpr -r: {}", text(&o));
    assert!(err.contains("Resource busy"), "{err}");
    assert!(err.contains(expect), "{err}");
    assert!(
        err.contains(&format!("({}): ", s.path(file).display())),
        "{err}"
    );
    assert!(err.contains("is held by another process"), "{err}");
    // nothing half-restored is left: no process but the blocker has the files open
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(users_of(s.dir.path(), &[blocker]), Vec::<i32>::new());
    assert!(!s.output("out").contains("PASS"));

    // the statefile is still good once the blocker is gone
    let i = s
        .guard
        .children
        .iter()
        .position(|c| c.id() as i32 == blocker)
        .unwrap();
    let mut b = s.guard.children.remove(i);
    b.kill().unwrap();
    b.wait().unwrap();
    let o = s.restart(pid);
    assert!(o.status.success(), "cpr -r: {}", text(&o));
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

    let restart = s
        .cpr(&["-r", &s.statefile()])
        .stdout(File::create(s.path("restart.out")).unwrap())
        .stderr(File::create(s.path("restart.err")).unwrap())
        .spawn()
        .unwrap();
    s.guard.children.push(restart);
    s.guard.orphans.push(pid);
    // the restore child (FORK ORIGINAL: the original PID) found the lock taken and
    // sleeps between attempts: now the blocker goes
    let deadline = Instant::now() + PATIENCE;
    loop {
        if matches!(
            syscall_of(pid),
            Some(n) if n == libc::SYS_clock_nanosleep || n == libc::SYS_nanosleep
        ) {
            break;
        }
        let r = s.guard.children.last_mut().unwrap();
        assert!(
            r.try_wait().unwrap().is_none(),
            "cpr -r ended first: {}",
            s.output("restart.err")
        );
        assert!(Instant::now() < deadline, "the restore never retried");
        std::thread::sleep(Duration::from_millis(2));
    }
    let i = s
        .guard
        .children
        .iter()
        .position(|c| c.id() as i32 == blocker)
        .unwrap();
    let mut b = s.guard.children.remove(i);
    b.kill().unwrap();
    b.wait().unwrap();

    let mut r = s.guard.children.pop().unwrap();
    let status = r.wait().unwrap();
    assert!(
        status.success(),
        "cpr -r: {status:?}: {}",
        s.output("restart.err")
    );
    s.finish(pid);
}
