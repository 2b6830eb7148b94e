//! Event and wait objects through a real checkpoint and restart: an epoll loop over an
//! eventfd and a timerfd, a signalfd, POSIX timers; and the refusal of io_uring/perf_event
//! descriptors. Workloads are tests/workloads/ev_*.c; each verifies its own state and
//! prints PASS or FAIL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long to wait for something that should happen at once before failing.
const PATIENCE: Duration = Duration::from_secs(60);

/// Checkpoints in one test process at a time: PIDs are reused and reaping is global.
static SERIAL: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn program(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ev-workloads");
        std::fs::create_dir_all(&out).unwrap();
        for name in [
            "ev_epoll",
            "ev_signalfd",
            "ev_ptimer",
            "ev_refuse",
            "ev_inotify",
        ] {
            let o = Command::new("cc")
                .args(["-Wall", "-Wextra", "-Werror", "-o"])
                .arg(out.join(name))
                .arg(root().join("tests/workloads").join(format!("{name}.c")))
                .output()
                .expect("run cc");
            assert!(
                o.status.success(),
                "cc {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        out
    });
    dir.join(name)
}

/// Reaps whatever children and adopted orphans have ended.
fn reap() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(s) = waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

fn alive(pid: i32) -> bool {
    reap();
    // a zombie is gone for our purposes
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: i32) {
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        reap();
        assert!(start.elapsed() < PATIENCE, "process {pid} did not go away");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A workload started with stdin /dev/null and stdout/stderr in a file; killed on drop
/// (whichever process now has its PID: the original or the restored one).
struct Workload {
    pid: i32,
    out: PathBuf,
    dir: tempfile::TempDir,
}

impl Workload {
    /// `extra`: names in the workload's directory passed as further arguments, created
    /// first (as directories when they end in '/').
    fn start(name: &str, with_trigger: bool, extra: &[&str]) -> Workload {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let f = std::fs::File::create(&out).unwrap();
        let mut cmd = Command::new(program(name));
        if with_trigger {
            cmd.arg(dir.path().join("trigger"));
        }
        for e in extra {
            let p = dir.path().join(e.trim_end_matches('/'));
            if e.ends_with('/') {
                std::fs::create_dir(&p).unwrap();
            } else {
                std::fs::write(&p, b"").unwrap();
            }
            cmd.arg(p);
        }
        // reaped by `reap` (waitpid(-1)), as is the restored process that takes its PID
        #[allow(clippy::zombie_processes)]
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .expect("start workload");
        Workload {
            pid: child.id() as i32,
            out,
            dir,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output has a line starting with one of `prefixes`; returns it.
    fn wait_line(&self, prefixes: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let text = self.output();
            if let Some(l) = text
                .lines()
                .find(|l| prefixes.iter().any(|p| l.starts_with(p)))
            {
                return l.to_string();
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {prefixes:?} from the workload; output:\n{text}"
            );
            reap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn statefile(&self) -> PathBuf {
        self.dir.path().join("ckpt")
    }

    fn trigger(&self) {
        std::fs::write(self.dir.path().join("trigger"), b"").unwrap();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let start = Instant::now();
        while alive(self.pid) && start.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn cpr(args: &[&str], sf: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpr"))
        .args(args)
        .arg(sf)
        .stdin(Stdio::null())
        .output()
        .expect("run cpr")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Checkpoints (WILL EXIT), waits until the original is gone, restarts.
fn checkpoint_and_restart(w: &Workload) {
    let sf = w.statefile();
    let pid = w.pid.to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_cpr"))
        .args(["-c"])
        .arg(&sf)
        .args(["-p", &pid])
        .stdin(Stdio::null())
        .output()
        .expect("run cpr -c");
    assert!(o.status.success(), "cpr -c: {}", text(&o));
    wait_gone(w.pid);
    let o = cpr(&["-r"], &sf);
    assert!(o.status.success(), "cpr -r: {}", text(&o));
    assert!(alive(w.pid), "restored process {} is not running", w.pid);
}

fn expect_pass(w: &Workload) {
    let line = w.wait_line(&["PASS", "FAIL"]);
    assert!(line.starts_with("PASS"), "{line}\n{}", w.output());
}

#[test]
fn epoll_eventfd_timerfd_survive_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Workload::start("ev_epoll", true, &[]);
    w.wait_line(&["READY"]);
    checkpoint_and_restart(&w);
    w.trigger();
    expect_pass(&w);
}

#[test]
fn signalfd_receives_a_signal_after_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Workload::start("ev_signalfd", true, &[]);
    w.wait_line(&["READY"]);
    checkpoint_and_restart(&w);
    w.trigger();
    cpr::sys::sigqueue::sigqueue(w.pid, libc::SIGUSR1, 77).expect("sigqueue");
    expect_pass(&w);
}

#[test]
fn posix_timer_keeps_id_and_fires_after_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Workload::start("ev_ptimer", true, &[]);
    w.wait_line(&["READY"]);
    checkpoint_and_restart(&w);
    w.trigger();
    expect_pass(&w);
}

#[test]
fn inotify_watches_keep_their_numbers() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Workload::start("ev_inotify", true, &["watched/", "file"]);
    w.wait_line(&["READY", "FAIL"]);
    checkpoint_and_restart(&w);
    w.trigger();
    expect_pass(&w);
}

#[test]
fn io_uring_or_perf_descriptor_is_refused_and_process_runs_on() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Workload::start("ev_refuse", false, &[]);
    let ready = w.wait_line(&["READY", "FAIL"]);
    let kind = ready
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("{ready}"));
    let sf = w.statefile();
    let o = Command::new(env!("CARGO_BIN_EXE_cpr"))
        .args(["-c"])
        .arg(&sf)
        .args(["-p", &w.pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run cpr -c");
    assert!(!o.status.success(), "cpr -c succeeded: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Checkpoint error"), "{}", text(&o));
    assert!(
        err.contains(kind) && err.contains(&format!("process {}", w.pid)),
        "{}",
        text(&o)
    );
    assert!(!sf.exists(), "a statefile was left");
    assert!(alive(w.pid), "the process did not survive the refusal");
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.pid)).unwrap();
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .map(str::trim);
    assert_eq!(tracer, Some("0"), "the process is still traced");
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string();
    assert!(state.starts_with('S'), "process state {state}");
}
