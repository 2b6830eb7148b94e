//! `cpr -c --dry-run` (a preview that stops nothing, and agrees with the checkpoint) and
//! the progress bar of `cpr -c` / `cpr -r` on a terminal.
//!
//! Run them alone: `cargo test --test dryrun` (they take the global lock).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::*;
use cpr::ops::{self, CheckpointOptions, Observer, Phase, Progress};
use nix::sys::signal::Signal;
use serde_json::Value;

/// `cpr -c DIR/NAME -p IDLIST --dry-run extra...`.
fn dry_run(s: &Scratch, name: &str, idlist: &str, extra: &[&str]) -> Output {
    let sf = s.join(name);
    let mut args = vec!["-c", sf.to_str().unwrap(), "-p", idlist, "--dry-run"];
    args.extend(extra);
    cpr(&args)
}

/// The `cpr: ` lines of standard error.
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `cpr args` while watching `pid`: it must never be seen stopped or traced while
/// cpr runs (each look reads its state and tracer from /proc; one look at least).
fn run_watching(pid: i32, args: &[&str]) -> Output {
    let child = cpr_command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cpr");
    let cpr_pid = child.id() as i32;
    loop {
        let (state, tracer) = proc_status(pid).expect("the workload is gone");
        assert!(
            !matches!(state, 'T' | 't'),
            "the dry run stopped process {pid} (state {state})"
        );
        assert_eq!(tracer, 0, "the dry run traced process {pid}");
        if proc_status(cpr_pid).is_none_or(|(s, _)| s == 'Z') {
            break;
        }
    }
    child.wait_with_output().expect("wait for cpr")
}

#[test]
fn dry_run_of_a_safe_workload_stops_nothing_and_says_yes() {
    let _s = serial();
    let s = Scratch::new();
    let log = s.join("count.log");
    let (w, _) = spawn_ready(
        &s,
        &build("counter.c"),
        &[ctl(&s), log.display().to_string()],
    );
    let sf = s.join("ckpt");
    let pid = w.pid.to_string();
    let args = ["-c", sf.to_str().unwrap(), "-p", &pid, "--dry-run"];
    let out = run_watching(w.pid, &args);
    assert_success(&out, "dry run of counter.c");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would succeed") && text.contains(&format!("process {pid}")),
        "{}",
        describe(&out)
    );
    assert!(text.contains(log.to_str().unwrap()), "{}", describe(&out));
    assert!(!sf.exists(), "a dry run wrote a statefile");
    assert_eq!(
        dir_entries(s.path())
            .iter()
            .filter(|n| n.contains("ckpt"))
            .count(),
        0,
        "a dry run left something beside the statefile"
    );
    assert_running_untraced(w.pid);
    // it went on counting without a gap: it checks its own log
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn dry_run_json_lists_descriptors_with_their_file_policy() {
    let _s = serial();
    let s = Scratch::new();
    let log = s.join("count.log");
    let (w, _) = spawn_ready(
        &s,
        &build("counter.c"),
        &[ctl(&s), log.display().to_string()],
    );
    let attrs = s.attributes(&format!(
        "CKPT PID {} {{\n    FILE: \"{}\": REPLACE\n    WILL: CONT\n}}\n",
        w.pid,
        log.display()
    ));
    let pid = w.pid.to_string();
    let out = dry_run(
        &s,
        "ckpt",
        &pid,
        &["--json", "--attributes", attrs.to_str().unwrap()],
    );
    assert_success(&out, "dry run --json");
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["would_succeed"], Value::Bool(true));
    assert_eq!(v["will"], "Cont");
    let procs = v["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0]["pid"], w.pid);
    let fds = procs[0]["descriptors"].as_array().expect("descriptors");
    let logfd = fds
        .iter()
        .find(|d| d["path"] == log.to_str().unwrap())
        .unwrap_or_else(|| panic!("the log is not listed: {v}"));
    assert_eq!(logfd["action"], "Replace");
    assert!(logfd["saved_bytes"].as_u64().unwrap() > 0, "{logfd}");
    assert!(
        !procs[0]["mappings"].as_array().unwrap().is_empty(),
        "no mappings: {v}"
    );
    assert!(v["estimated_bytes"].as_u64().unwrap() > 0);
    assert_running_untraced(w.pid);
    // a process that does not exist: still JSON, with the checkpoint's error
    let gone = free_pid().to_string();
    let out = dry_run(&s, "other", &gone, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(v["would_succeed"], Value::Bool(false));
    let message = v["refusals"][0]["message"].as_str().unwrap();
    assert!(message.contains("No such process"), "{v}");
    assert_eq!(error_lines(&out), vec![format!("cpr: {message}")]);
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn dry_run_refuses_a_socket_as_the_checkpoint_does() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("socket.c"), &[ctl(&s)]);
    let pid = w.pid.to_string();
    let preview = dry_run(&s, "ckpt", &pid, &[]);
    assert_eq!(preview.status.code(), Some(1), "{}", describe(&preview));
    let refused = error_lines(&preview);
    assert!(
        refused
            .iter()
            .any(|l| l.contains(&format!("process {pid} fd "))
                && l.contains("Checkpoint error")
                && l.contains("a socket is not checkpoint safe")),
        "the socket is not named: {}",
        describe(&preview)
    );
    let text = String::from_utf8_lossy(&preview.stdout);
    assert!(text.contains("would fail"), "{}", describe(&preview));
    assert_running_untraced(w.pid);

    let sf = s.join("ckpt");
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid]);
    assert_failure(
        &real,
        "checkpoint of socket.c",
        &["Checkpoint error"],
        false,
    );
    assert!(
        refused.contains(&error_lines(&real)[0]),
        "the dry run does not say what the checkpoint says:\n{}\n{}",
        describe(&preview),
        describe(&real)
    );
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn dry_run_refuses_a_device_as_the_checkpoint_does() {
    let _s = serial();
    let s = Scratch::new();
    // sleeper.c holding a pseudo-terminal master (/dev/ptmx) as fd 3 without its slave
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec 3<>/dev/ptmx; exec \"$0\" \"$1\" sleep 1000")
        .arg(build("sleeper.c"))
        .arg(ctl(&s));
    let w = spawn_command(&s, cmd, s.join("out.log"));
    wait_for_line(&w.log, "READY", TIMEOUT);
    let pid = w.pid.to_string();
    let preview = dry_run(&s, "ckpt", &pid, &["--json"]);
    assert_eq!(preview.status.code(), Some(1), "{}", describe(&preview));
    let v: Value = serde_json::from_slice(&preview.stdout).expect("--json prints JSON");
    assert_eq!(v["would_succeed"], Value::Bool(false));
    let refusal = &v["refusals"][0];
    assert_eq!(refusal["pid"], w.pid);
    assert_eq!(refusal["fd"], 3);
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains("a pty master whose slave is not open in the checkpoint"),
        "{v}"
    );
    assert_running_untraced(w.pid);
    let sf = s.join("ckpt");
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid]);
    assert_failure(&real, "checkpoint of /dev/ptmx", &["a pty master"], false);
    assert_eq!(error_lines(&real)[0], format!("cpr: {message}"));
    assert_running_untraced(w.pid);
}

/// Workloads of tests/workloads with their arguments: `{ctl}` is the control directory
/// (first when not named), `{scratch}` the test's scratch directory (a path under it
/// ending in `/` is made a directory, another is made an empty file). Python and shell
/// scripts run under their interpreter; the rest are built. The dry run and the
/// checkpoint must agree on each.
const AGREEMENT: &[(&str, &[&str])] = &[
    ("bench_shared.c", &["4", "2"]),
    ("bench_threads.c", &["4"]),
    ("bench_tiny.c", &[]),
    ("bench_tree.c", &["3"]),
    ("bigheap.c", &["8"]),
    ("clonevm.c", &[]),
    ("condvar.c", &[]),
    ("count_loop.sh", &[]),
    ("creds.c", &[]),
    ("cwd.c", &["{scratch}"]),
    ("dict_loop.py", &[]),
    ("ev_counts.c", &[]),
    ("ev_epoll.c", &[]),
    ("ev_inotify.c", &["{scratch}/watched/", "{scratch}/file"]),
    ("ev_ptimer.c", &[]),
    ("ev_refuse.c", &[]),
    ("ev_signalfd.c", &[]),
    ("ev_watches.c", &["{scratch}"]),
    ("forkchurn.c", &[]),
    ("lk_locks.c", &["run"]),
    ("protections.c", &[]),
    ("ps_append.c", &["{scratch}/append.txt"]),
    ("ps_daemon.c", &[]),
    ("ps_locks.c", &["run", "{ctl}"]),
    ("ps_shmem.c", &["7"]),
    ("ps_tree.c", &[]),
    ("ps_widow.c", &[]),
    ("ps_zombie.c", &[]),
    ("rust_counter.rs", &[]),
    ("shm_segment.c", &["create", "0"]),
    ("sigaltstack.c", &[]),
    ("sigpending.c", &[]),
    ("simd.c", &[]),
    ("sleeper.c", &["sleep", "100"]),
    ("socket.c", &[]),
    ("sqlite_loop.py", &["{ctl}", "{scratch}/db.sqlite"]),
    ("threads.c", &[]),
];

/// The program and arguments that run workload `source` with the `extra` arguments.
fn workload_command(
    s: &Scratch,
    source: &str,
    extra: &[&str],
) -> (std::path::PathBuf, Vec<String>) {
    let here = s.path().display().to_string();
    let mut args: Vec<String> = Vec::new();
    for a in extra {
        let arg = a.replace("{ctl}", &ctl(s)).replace("{scratch}", &here);
        if a.starts_with("{scratch}/") {
            match arg.strip_suffix('/') {
                Some(dir) => std::fs::create_dir_all(dir).unwrap(),
                None => std::fs::write(&arg, b"").unwrap(),
            }
        }
        args.push(arg.trim_end_matches('/').to_string());
    }
    if !extra.contains(&"{ctl}") {
        args.insert(0, ctl(s));
    }
    let script = Path::new(WORKLOADS).join(source).display().to_string();
    if source.ends_with(".py") {
        args.insert(0, script);
        (python(), args)
    } else if source.ends_with(".sh") {
        args.insert(0, script);
        ("bash".into(), args)
    } else {
        (build(source), args)
    }
}

/// Starts workload `source`, runs the dry run and the checkpoint (`-g`) of its tree, and
/// asserts they agree; returns whether the checkpoint refused it.
fn assert_agreement(source: &str, extra: &[&str]) -> bool {
    let s = Scratch::new();
    let (program, args) = workload_command(&s, source, extra);
    let (w, ready) = spawn_ready(&s, &program, &args);
    let pid = ready
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{source}: READY without a pid: {ready}"));
    let idlist = format!("{pid}:HID");
    let preview = dry_run(&s, "ckpt", &idlist, &["-g"]);
    let sf = s.join("ckpt");
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &idlist, "-g"]);
    assert_eq!(
        preview.status.code(),
        real.status.code(),
        "{source}: the dry run and the checkpoint disagree:\n{}\n{}",
        describe(&preview),
        describe(&real)
    );
    let refused = !real.status.success();
    if refused {
        let said = error_lines(&real);
        assert!(
            error_lines(&preview).contains(&said[0]),
            "{source}: the dry run does not name what the checkpoint refused:\n{}\n{}",
            describe(&preview),
            describe(&real)
        );
    }
    eprintln!("{source}: both exit {:?}", real.status.code());
    assert_running_untraced(pid.parse().unwrap());
    drop(w);
    refused
}

#[test]
fn dry_run_agrees_with_the_checkpoint_on_every_workload() {
    let _s = serial();
    let mut refused = 0;
    for &(source, extra) in AGREEMENT {
        if assert_agreement(source, extra) {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "no workload was refused: the list tests one side only"
    );
}

/// A pipe to a process outside the checkpoint, and a statefile that exists already:
/// refused by both, with the same words.
#[test]
fn dry_run_agrees_on_an_outside_pipe_and_an_existing_statefile() {
    let _s = serial();
    let s = Scratch::new();
    // sleeper.c with its standard output a pipe to this test
    let mut held = Command::new(build("sleeper.c"))
        .args([ctl(&s).as_str(), "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sleeper.c");
    let _guard = KillOnDrop::new(held.id() as i32, s.path());
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(held.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .expect("READY from sleeper.c");
    assert!(ready.starts_with("READY"), "{ready}");
    let pid = held.id().to_string();
    let sf = s.join("ckpt");
    let preview = dry_run(&s, "ckpt", &pid, &[]);
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid]);
    assert_failure(&real, "checkpoint of a pipe to outside", &["pipe:["], false);
    assert_eq!(preview.status.code(), Some(1), "{}", describe(&preview));
    assert!(
        error_lines(&preview).contains(&error_lines(&real)[0]),
        "{}\n{}",
        describe(&preview),
        describe(&real)
    );
    assert_running_untraced(held.id() as i32);
    let _ = held.kill();
    let _ = held.wait();

    let (w, _) = spawn_ready(&s, &build("sigpending.c"), &[ctl(&s)]);
    std::fs::create_dir(&sf).unwrap();
    let pid = w.pid.to_string();
    let preview = dry_run(&s, "ckpt", &pid, &[]);
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid, "-g"]);
    assert_failure(
        &real,
        "checkpoint over an existing name",
        &["File exists"],
        false,
    );
    assert_eq!(
        error_lines(&preview),
        error_lines(&real),
        "{}",
        describe(&preview)
    );
    // with -f the checkpoint goes ahead over it (it is not a statefile: refused too)
    let forced = dry_run(&s, "ckpt", &pid, &["-f"]);
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid, "-g", "-f"]);
    assert_eq!(
        forced.status.code(),
        real.status.code(),
        "{}\n{}",
        describe(&forced),
        describe(&real)
    );
    assert_running_untraced(w.pid);
}

/// `script` runs `command` on a pseudo-terminal; returns all it printed.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    assert!(
        out.status.success(),
        "{command} on a terminal failed: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `HOME=<empty> cpr args...` as one shell command.
fn cpr_line(args: &[&str]) -> String {
    let mut line = format!("HOME={} {}", empty_home_of_cpr(), cpr_bin());
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// The HOME `cpr_command` gives cpr (no `.cpr` there).
fn empty_home_of_cpr() -> String {
    let cmd = cpr_command();
    cmd.get_envs()
        .find(|(k, _)| *k == "HOME")
        .and_then(|(_, v)| v)
        .map(|v| v.to_string_lossy().into_owned())
        .expect("cpr_command sets HOME")
}

fn assert_no_bar(output: &str, what: &str) {
    assert!(
        !output.contains('%') && !output.contains("writing") && !output.contains("restoring"),
        "{what} printed a progress bar: {output:?}"
    );
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "64".to_string()]);
    let pid = w.pid.to_string();
    let sf = |n: &str| s.join(n).display().to_string();

    let preview = dry_run(&s, "plain", &pid, &["--json"]);
    assert_success(&preview, "dry run of bigheap.c");
    let v: Value = serde_json::from_slice(&preview.stdout).expect("--json prints JSON");
    let estimate = v["estimated_bytes"].as_u64().unwrap();

    // not on a terminal: nothing on standard error
    let out = cpr(&["-c", &sf("plain"), "-p", &pid, "-g"]);
    assert_success(&out, "cpr -c, not on a terminal");
    assert!(out.stderr.is_empty(), "{}", describe(&out));
    // the estimate holds the heap and no more than the statefile (records aside)
    let size = tree_size(&s.join("plain"));
    assert!(
        estimate >= 64 << 20 && estimate <= size,
        "estimated {estimate} bytes, the statefile has {size}"
    );
    // on a terminal with -q: nothing either
    let quiet = on_a_terminal(&cpr_line(&["-q", "-c", &sf("quiet"), "-p", &pid, "-g"]));
    assert!(Path::new(&sf("quiet")).join("MANIFEST").is_file());
    assert_no_bar(&quiet, "cpr -q -c");
    assert!(quiet.is_empty(), "cpr -q -c printed {quiet:?}");

    // on a terminal: the bar, with the phase, the bytes and the rate
    let shown = on_a_terminal(&cpr_line(&["-c", &sf("bar"), "-p", &pid]));
    assert!(
        shown.contains("writing") && shown.contains("100%") && shown.contains("iB/s"),
        "no progress bar: {shown:?}"
    );
    wait_pid_gone(w.pid, TIMEOUT);
    let back = on_a_terminal(&cpr_line(&["-r", &sf("bar")]));
    assert!(
        back.contains("restoring") && back.contains("MiB"),
        "no progress bar for the restart: {back:?}"
    );
    // the restarted heap is the one saved
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, "PASS check=1", TIMEOUT);
}

/// Cancels once `after` bytes have been reported; records the phases seen.
struct CancelAfter {
    after: u64,
    seen: std::sync::Mutex<(Vec<Phase>, u64)>,
}

impl Observer for CancelAfter {
    fn phase(&self, phase: Phase, _total: Option<u64>) {
        self.seen.lock().unwrap().0.push(phase);
    }
    fn bytes(&self, bytes: u64) {
        self.seen.lock().unwrap().1 += bytes;
    }
    fn cancelled(&self) -> bool {
        self.seen.lock().unwrap().1 >= self.after
    }
}

/// The library's progress observer (what cview uses): it sees the phases and bytes of a
/// checkpoint, and cancelling one mid-way leaves the target running, untouched, and no
/// statefile. With -g, the 64 MiB are first copied while the process runs (pre-copy).
#[test]
fn library_progress_observer_sees_and_cancels_a_checkpoint() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "64".to_string()]);
    let options = |name: &str| CheckpointOptions {
        statefile: s.join(name),
        idlist: w.pid.to_string(),
        force: false,
        will: Some(cpr::attrfile::WillAction::Cont),
        upgrade: false,
        attributes: Some(cpr::attrfile::AttrFile::default()),
        handler_timeout: None,
        openfile_distribute: false,
        parent: None,
        compress: false,
    };
    let watcher = Arc::new(CancelAfter {
        after: 16 << 20,
        seen: Default::default(),
    });
    let err = ops::checkpoint_with_progress(&options("cancelled"), &Progress::new(watcher.clone()))
        .expect_err("a cancelled checkpoint must fail");
    assert!(err.to_string().contains("Operation canceled"), "{err}");
    assert!(
        !s.join("cancelled").exists(),
        "a cancelled checkpoint left a statefile"
    );
    assert_eq!(
        dir_entries(s.path())
            .iter()
            .filter(|n| n.contains("cancelled"))
            .count(),
        0
    );
    assert_running_untraced(w.pid);
    let (phases, bytes) = watcher.seen.lock().unwrap().clone();
    assert_eq!(phases, vec![Phase::Precopy], "{phases:?}");
    assert!(
        (16 << 20..64 << 20).contains(&bytes),
        "{bytes} bytes before the cancel"
    );
    // its heap is still whole
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, "PASS check=1", TIMEOUT);

    // not cancelled: every phase, and at least the heap written
    let watcher = Arc::new(CancelAfter {
        after: u64::MAX,
        seen: Default::default(),
    });
    ops::checkpoint_with_progress(&options("whole"), &Progress::new(watcher.clone()))
        .expect("checkpoint");
    let (phases, bytes) = watcher.seen.lock().unwrap().clone();
    assert_eq!(
        phases,
        vec![
            Phase::Precopy,
            Phase::Freeze,
            Phase::Dump,
            Phase::Shared,
            Phase::Commit
        ]
    );
    assert!(bytes >= 64 << 20, "{bytes} bytes reported");
    assert_running_untraced(w.pid);
}
