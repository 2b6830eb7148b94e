//! Helpers for the end-to-end tests: build the workloads, run them, run `cpr`, wait for
//! their output, and clean up whatever is left even when a test fails.
//!
//! Workload protocol (see tests/workloads/wl.h): a workload takes its control directory as
//! first argument (the test's scratch directory), prints `READY <pid> ...` once it is in its
//! main loop, and after the test restarts it checks itself when `GO` appears in the control
//! directory (or on a signal), printing `PASS ...` (exit 0) or `FAIL ...` (exit 1). The
//! libcpr workloads are driven through their stdin instead: [`interactive`].
//!
//! The test process makes itself a child subreaper, so that restarted processes (which
//! `cpr -r` leaves behind when it exits) re-parent to it and it can reap them. The tests
//! take a global lock (`serial()`): they reap with `waitpid(-1)`, checkpoint big heaps on a
//! small machine, and some need a PID to be free.

#![allow(dead_code)]

pub mod group;
pub mod interactive;
pub mod user;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long any single wait in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The top of the source tree.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const WORKLOADS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/workloads");
const TARGET_TMP: &str = env!("CARGO_TARGET_TMPDIR");

pub fn cpr_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cpr")
}

/// In CI a missing facility is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

static SERIAL: Mutex<()> = Mutex::new(());
static SUBREAPER: Once = Once::new();

/// Makes this process a child subreaper (once), so that orphaned descendants of the
/// processes a test starts come back to it to be reaped, and marks the descriptors it
/// inherited close-on-exec.
pub fn become_subreaper() {
    SUBREAPER.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("prctl(PR_SET_CHILD_SUBREAPER)");
        // descriptors this test process inherited (a pipe from the shell or CI runner)
        // must not reach the workloads: a pipe to outside would make them uncheckpointable
        for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            if let Some(fd) = fd.file_name().to_str().and_then(|s| s.parse::<i32>().ok())
                && fd > 2
            {
                let _ = cpr::sys::set_cloexec(fd, true);
            }
        }
    });
}

/// Takes the lock that runs the engine tests one at a time, and makes this process a child
/// subreaper ([`become_subreaper`]).
pub fn serial() -> MutexGuard<'static, ()> {
    become_subreaper();
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wall-clock seconds, as the workloads print them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

pub fn has_cpu_flag(flag: &str) -> bool {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == flag))
}

// ---------------------------------------------------------------------------------------
// Building workloads

fn build_dir() -> PathBuf {
    let dir = Path::new(TARGET_TMP).join("workloads");
    fs::create_dir_all(&dir).expect("create the workload build directory");
    dir
}

/// Compiles `tests/workloads/<source>` (a `.c` or `.rs` file) once per run of the test
/// binary and returns the executable. C warnings are errors.
pub fn build(source: &str) -> PathBuf {
    build_with(source, &[])
}

/// Builds libcpr (`cargo build -p libcpr`) once, then `tests/workloads/<source>` against
/// include/ckpt.h and libcpr.so (found at run time through an rpath).
pub fn build_with_libcpr(source: &str) -> PathBuf {
    let lib = libcpr_dir();
    build_with(
        source,
        &[
            "-I".into(),
            format!("{ROOT}/include"),
            "-L".into(),
            lib.display().to_string(),
            "-lcpr".into(),
            format!("-Wl,-rpath,{}", lib.display()),
        ],
    )
}

/// Where `cargo build -p libcpr` puts libcpr.so: target/debug, beside the test binary's
/// deps/ directory. Builds it the first time.
pub fn libcpr_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "libcpr", "--manifest-path"])
            .arg(Path::new(ROOT).join("Cargo.toml"))
            .status()
            .expect("run cargo build -p libcpr");
        assert!(status.success(), "cargo build -p libcpr failed");
        // the test binary is target/debug/deps/NAME-HASH
        let exe = std::env::current_exe().expect("the test binary's path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .to_path_buf();
        assert!(
            dir.join("libcpr.so").exists(),
            "no libcpr.so in {}",
            dir.display()
        );
        dir
    })
    .clone()
}

/// `build` with `extra` arguments to cc after the source (for C sources only).
fn build_with(source: &str, extra: &[String]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(exe) = built.get(source) {
        return exe.clone();
    }
    let src = Path::new(WORKLOADS).join(source);
    let stem = src
        .file_stem()
        .and_then(OsStr::to_str)
        .expect("workload name");
    let exe = build_dir().join(stem);
    // Build under a name of our own, then rename: other test binaries may build too.
    let tmp = build_dir().join(format!(".{stem}.{}", std::process::id()));
    let mut cmd;
    if source.ends_with(".rs") {
        cmd = Command::new("rustc");
        cmd.args(["-O", "--edition", "2021", "-o"])
            .arg(&tmp)
            .arg(&src);
    } else {
        cmd = Command::new("cc");
        cmd.args(["-O1", "-g", "-pthread", "-Wall", "-Wextra", "-Werror"]);
        // AVX code is emitted only by the asm, which checks the CPU at run time; let the
        // compiler use AVX2 only where the CPU has it.
        if stem == "simd" && has_cpu_flag("avx2") {
            cmd.arg("-mavx2");
        }
        cmd.arg("-o").arg(&tmp).arg(&src).args(extra);
    }
    let out = cmd.output().expect("run the compiler");
    assert!(
        out.status.success(),
        "building {source} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &exe).expect("rename the built workload");
    built.insert(source.to_string(), exe.clone());
    exe
}

/// A python3 interpreter (the real one, not a pyenv shim that execs it).
pub fn python() -> PathBuf {
    let system = Path::new("/usr/bin/python3");
    if system.exists() {
        return system.to_path_buf();
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

// ---------------------------------------------------------------------------------------
// Scratch directories and guards

/// A fresh directory under target/tmp. Its path is in the command line of every workload a
/// test starts (the control directory), so on drop it SIGKILLs and reaps every process
/// whose command line names it — originals, restarted copies, stopped or traced ones —
/// and then removes itself.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("cpr-e2e-")
            .tempdir_in(TARGET_TMP)
            .expect("create a scratch directory");
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Lets other users reach this directory and every directory above it up to the
    /// target's tmp directory (mode 0755): for workloads that run as, or are restarted
    /// with the rights of, another user.
    pub fn open_to_other_users(&self) {
        use std::os::unix::fs::PermissionsExt;
        let mut dir = self.path().to_path_buf();
        while dir.starts_with(TARGET_TMP) {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
            dir.pop();
        }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The control directory given to workloads (the scratch directory itself).
    pub fn ctl(&self) -> &Path {
        self.dir.path()
    }

    /// Creates `GO`: the workload may now check itself.
    pub fn go(&self) {
        self.go_with("");
    }

    /// Creates `GO` with `content`, atomically (write aside, rename).
    pub fn go_with(&self, content: &str) {
        let tmp = self.join(".GO.tmp");
        fs::write(&tmp, content).expect("write GO");
        fs::rename(&tmp, self.join("GO")).expect("rename GO");
    }

    /// Writes an attribute file and returns its path.
    pub fn attributes(&self, text: &str) -> PathBuf {
        let path = self.join("attributes.cpr");
        fs::write(&path, text).expect("write the attribute file");
        path
    }

    /// Live (not zombie) processes whose command line names this scratch directory.
    pub fn processes(&self) -> Vec<i32> {
        processes_naming(self.path())
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for pid in processes_naming(self.path()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_naming(self.path()).is_empty() && Instant::now() < deadline {
            reap_children();
            std::thread::sleep(Duration::from_millis(20));
        }
        reap_children();
    }
}

/// Every PID in /proc now (processes, not threads), in ascending order.
pub fn all_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort();
    pids
}

/// A PID no process has now: the highest free one below pid_max.
pub fn free_pid() -> i32 {
    let max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("pid_max number");
    (300..max)
        .rev()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free PID")
}

/// Live processes (not zombies, not this one) whose command line contains `marker`.
pub fn processes_naming(marker: &Path) -> Vec<i32> {
    let marker = marker.as_os_str().as_encoded_bytes();
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && is_alive(pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker))
        })
        .collect()
}

/// SIGKILLs a process on drop (if it still exists and is still this test's: its command
/// line names `marker`), so that nothing stays behind, stopped or running.
pub struct KillOnDrop {
    pub pid: i32,
    marker: PathBuf,
}

impl KillOnDrop {
    pub fn new(pid: i32, marker: &Path) -> KillOnDrop {
        KillOnDrop {
            pid,
            marker: marker.to_path_buf(),
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if processes_naming(&self.marker).contains(&self.pid) {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while is_alive(self.pid) && Instant::now() < deadline {
                reap_children();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// What one end-to-end test holds: the serial lock, its scratch directory, and the
/// workloads it started there (each ended when the session goes, and then everything else
/// that names the directory).
pub struct Session {
    workloads: Vec<Workload>,
    pub s: Scratch,
    _serial: MutexGuard<'static, ()>,
}

impl Session {
    /// Takes the serial lock ([`serial`]) and makes a fresh scratch directory.
    pub fn new() -> Session {
        Session {
            _serial: serial(),
            s: Scratch::new(),
            workloads: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.s.join(name)
    }

    /// Keeps `w` until the session ends; returns its PID.
    pub fn keep(&mut self, w: Workload) -> i32 {
        let pid = w.pid;
        self.workloads.push(w);
        pid
    }
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

/// A tmpfs mounted for the length of a test; unmounted (lazily) on drop.
pub struct TmpfsMount {
    pub path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `path`. `None` when this
    /// machine does not let us (outside CI only).
    pub fn new(path: &Path, size: &str) -> Option<TmpfsMount> {
        fs::create_dir_all(path).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(!in_ci(), "cannot mount a tmpfs in CI: {why}");
            eprintln!("skipped: cannot mount a tmpfs: {why}");
            return None;
        }
        Some(TmpfsMount {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

// ---------------------------------------------------------------------------------------
// Running workloads

/// A workload started by a test. Its stdout and stderr go to `log` (opened O_APPEND, so a
/// restarted copy running beside its original does not overwrite its lines).
pub struct Workload {
    pub pid: i32,
    pub log: PathBuf,
    _guard: KillOnDrop,
}

/// Starts `program args...` with stdin on /dev/null, stdout and stderr appended to
/// `<scratch>/out.log`. The first argument should be the control directory.
pub fn spawn<S: AsRef<OsStr>>(scratch: &Scratch, program: &Path, args: &[S]) -> Workload {
    spawn_to(scratch, program, args, scratch.join("out.log"))
}

/// `spawn` with stdout and stderr appended to `log` (one log per process of a test).
pub fn spawn_to<S: AsRef<OsStr>>(
    scratch: &Scratch,
    program: &Path,
    args: &[S],
    log: PathBuf,
) -> Workload {
    spawn_with(scratch, program, args, log, &[])
}

/// `spawn_to` with the variables `env` added to the workload's environment.
pub fn spawn_with<S: AsRef<OsStr>>(
    scratch: &Scratch,
    program: &Path,
    args: &[S],
    log: PathBuf,
    env: &[(&str, &str)],
) -> Workload {
    let mut cmd = Command::new(program);
    cmd.args(args).envs(env.iter().copied());
    spawn_command(scratch, cmd, log)
}

/// Starts `cmd` (a program, its arguments and whatever else the test set: another user, a
/// process group of its own) with stdin on /dev/null, stdout and stderr appended to `log`.
pub fn spawn_command(scratch: &Scratch, mut cmd: Command, log: PathBuf) -> Workload {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("open the workload log");
    cmd.stdout(file.try_clone().expect("dup the log"))
        .stderr(file);
    start(scratch, cmd, log)
}

/// Starts `program args...` with stdin, stdout and stderr all on /dev/null; its reports go
/// wherever it writes them (`log`).
pub fn spawn_silent<S: AsRef<OsStr>>(
    scratch: &Scratch,
    program: &Path,
    args: &[S],
    log: PathBuf,
) -> Workload {
    let mut cmd = Command::new(program);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    start(scratch, cmd, log)
}

/// Starts `cmd`, stdin on /dev/null, guarded by a [`KillOnDrop`] that names the scratch
/// directory.
fn start(scratch: &Scratch, mut cmd: Command, log: PathBuf) -> Workload {
    // reaped with waitpid (reap_children, wait_exit), as is the restarted copy that
    // takes its PID: the Child handle is dropped without waiting
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", Path::new(cmd.get_program()).display()));
    let pid = child.id() as i32;
    Workload {
        pid,
        log,
        _guard: KillOnDrop::new(pid, scratch.path()),
    }
}

pub fn read_lines(log: &Path) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    text.lines().map(str::to_string).collect()
}

/// Waits until the `n`-th line (1-based) containing `pattern` appears in `log` and returns
/// it. Fails at once if the workload reports `FAIL`, and after `timeout`. Does not reap:
/// a workload that exits keeps its exit status for `wait_exit`.
pub fn wait_for_nth_line(log: &Path, pattern: &str, n: usize, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let lines = read_lines(log);
        if let Some(fail) = lines.iter().find(|l| l.starts_with("FAIL")) {
            panic!(
                "the workload failed: {fail}\n--- {}:\n{}",
                log.display(),
                tail(&lines)
            );
        }
        if let Some(line) = lines.iter().filter(|l| l.contains(pattern)).nth(n - 1) {
            return line.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no line #{n} with '{pattern}' in {} after {timeout:?}:\n{}",
                log.display(),
                tail(&lines)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_for_line(log: &Path, pattern: &str, timeout: Duration) -> String {
    wait_for_nth_line(log, pattern, 1, timeout)
}

/// How many lines of `log` contain `pattern`.
pub fn count_lines(log: &Path, pattern: &str) -> usize {
    read_lines(log)
        .iter()
        .filter(|l| l.contains(pattern))
        .count()
}

fn tail(lines: &[String]) -> String {
    let start = lines.len().saturating_sub(30);
    lines[start..].join("\n")
}

/// Waits until `cond` holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `key=` in a line of `k=v` words.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

// ---------------------------------------------------------------------------------------
// Processes

/// Reaps every child that has exited (any child: restarted processes re-parent to us).
pub fn reap_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// State letter and TracerPid from /proc/PID/status; `None` if it does not exist.
pub fn proc_status(pid: i32) -> Option<(char, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut state = '?';
    let mut tracer = -1;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("State:") {
            state = v.trim().chars().next().unwrap_or('?');
        } else if let Some(v) = line.strip_prefix("TracerPid:") {
            tracer = v.trim().parse().unwrap_or(-1);
        }
    }
    Some((state, tracer))
}

/// The parent of `pid`.
pub fn ppid(pid: i32) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Exists and is not a zombie (or dead).
pub fn is_alive(pid: i32) -> bool {
    matches!(proc_status(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// Asserts that `pid` runs freely: alive, not stopped, not traced.
pub fn assert_running_untraced(pid: i32) {
    let (state, tracer) = proc_status(pid).unwrap_or_else(|| panic!("process {pid} is gone"));
    assert!(
        !matches!(state, 't' | 'T' | 'Z' | 'X'),
        "process {pid} is in state {state}"
    );
    assert_eq!(tracer, 0, "process {pid} is still traced by {tracer}");
}

/// Reaps (any child, non-blocking, in a loop) until /proc/PID no longer exists: the PID
/// is free again. PID 1 reaps orphans slowly here, so this may take a while.
pub fn wait_pid_gone(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        reap_children();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still exists after {timeout:?}: {:?}",
            proc_status(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for our child `pid` to exit and returns its exit code (panics if a signal killed
/// it). `None` if it is not our child (then waits until it is gone).
pub fn wait_exit(pid: i32, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => panic!("process {pid} was killed by {sig}"),
            Ok(_) => {}
            Err(Errno::ECHILD) => {
                wait_pid_gone(pid, deadline.saturating_duration_since(Instant::now()));
                return None;
            }
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not exit in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn signal(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill {pid} {sig}: {e}"));
}

// ---------------------------------------------------------------------------------------
// Running cpr

/// An empty HOME, so that no `$HOME/.cpr` of the machine changes the policies.
fn empty_home() -> PathBuf {
    let home = Path::new(TARGET_TMP).join("empty-home");
    fs::create_dir_all(&home).expect("create the empty HOME");
    home
}

/// `cpr` ready to run: HOME without a `.cpr`, stdin on /dev/null.
pub fn cpr_command() -> Command {
    let mut cmd = Command::new(cpr_bin());
    cmd.env("HOME", empty_home()).stdin(Stdio::null());
    cmd
}

/// Runs `cpr args...` and returns what it did.
pub fn cpr<S: AsRef<OsStr>>(args: &[S]) -> Output {
    cpr_command().args(args).output().expect("run cpr")
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout:\n{}--- stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// Exit status 1 and one line `cpr: ...` on stderr that contains every one of `needles`
/// (any one of them, if `any`).
pub fn assert_failure(out: &Output, what: &str, needles: &[&str], any: bool) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail with status 1: {}",
        describe(out)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: the error should be one line: {}",
        describe(out)
    );
    assert!(
        lines[0].starts_with("cpr: "),
        "{what}: the error should start with 'cpr: ': {}",
        describe(out)
    );
    let found = |n: &&str| lines[0].contains(n);
    let ok = if any {
        needles.iter().any(found)
    } else {
        needles.iter().all(found)
    };
    assert!(
        ok,
        "{what}: the error should name {needles:?}: {}",
        describe(out)
    );
}

// ---------------------------------------------------------------------------------------
// Checkpoint and restart of workloads

/// The control directory of `s` as a workload's first argument.
pub fn ctl(s: &Scratch) -> String {
    s.ctl().display().to_string()
}

/// [`spawn`]s `program args...` and waits for its READY line; returns the workload and
/// that line.
pub fn spawn_ready<S: AsRef<OsStr>>(s: &Scratch, program: &Path, args: &[S]) -> (Workload, String) {
    let w = spawn(s, program, args);
    let ready = wait_for_line(&w.log, "READY", TIMEOUT);
    (w, ready)
}

/// `cpr -c <scratch>/NAME -p IDLIST extra...`, which must succeed and write a MANIFEST;
/// then every PID of `gone` must disappear (WILL EXIT; they are reaped). Returns the
/// statefile.
pub fn checkpoint_set(
    s: &Scratch,
    name: &str,
    idlist: &str,
    extra: &[&str],
    gone: &[i32],
) -> PathBuf {
    let sf = s.join(name);
    let mut args: Vec<String> = vec![
        "-c".into(),
        sf.display().to_string(),
        "-p".into(),
        idlist.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = cpr(&args);
    assert_success(&out, &format!("cpr {}", args.join(" ")));
    assert!(
        sf.join("MANIFEST").is_file(),
        "{} has no MANIFEST",
        sf.display()
    );
    for &pid in gone {
        wait_pid_gone(pid, TIMEOUT);
    }
    sf
}

/// `cpr -r SF...`.
pub fn restart_all(sfs: &[&Path]) -> Output {
    let mut args: Vec<&OsStr> = vec!["-r".as_ref()];
    args.extend(sfs.iter().map(|p| p.as_os_str()));
    cpr(&args)
}

/// `cpr -r SF`, which must succeed.
pub fn restart_ok(sf: &Path) {
    let out = restart_all(&[sf]);
    assert_success(&out, &format!("cpr -r {}", sf.display()));
}

/// After GO (or a signal), the workload prints PASS and exits 0; returns the PASS line.
pub fn expect_pass_and_exit(w: &Workload) -> String {
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    let code = wait_exit(w.pid, TIMEOUT);
    assert_eq!(code, Some(0), "workload exit status after {line}");
    line
}

// ---------------------------------------------------------------------------------------
// Statefiles

/// Every file under `dir` (relative path) with its size and xxh3 hash.
pub fn tree_hashes(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.expect("walk the statefile");
        if !entry.file_type().is_file() {
            continue;
        }
        let data = fs::read(entry.path()).expect("read a statefile file");
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("under the statefile")
            .display()
            .to_string();
        map.insert(rel, (data.len() as u64, xxhash_rust::xxh3::xxh3_64(&data)));
    }
    map
}

/// Total size of the files under `dir`.
pub fn tree_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Names in `dir` (hidden ones too).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A MANIFEST entry remade for `bytes`, as a forger who edited that file would remake it:
/// size, xxh3 and, where the entry lists one, SHA-256 (only the MAC needs a key).
pub fn remake_manifest_entry(entry: &mut serde_json::Value, bytes: &[u8]) {
    use sha2::Digest;
    entry["size"] = bytes.len().into();
    entry["xxh3"] = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)).into();
    if entry.get("sha256").is_some_and(|v| !v.is_null()) {
        let sha: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        entry["sha256"] = sha.into();
    }
}
