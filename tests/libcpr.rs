//! libcpr: the C library, its SIGCKPT/SIGRESTART protocol with cpr, and the guide's
//! examples, through C programs in tests/workloads/lib_*.c linked against libcpr.so.
//!
//! The protocol tests drive `cpr::engine::cooperate` directly (what the engine calls
//! before freezing and on restart), so they need no checkpoint. Tests that take a real
//! checkpoint say so in their name (`..._checkpoint...`/`..._restart...`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::interactive::Interactive;
use common::{ROOT, TIMEOUT, build_with_libcpr, cpr_bin, is_alive};
use cpr::engine::cooperate::{self, SIGCKPT, SIGRESTART};
use cpr::error::Kind;

/// libcpr's workloads, built against libcpr.so (built first).
fn program(name: &str) -> PathBuf {
    build_with_libcpr(&format!("{name}.c"))
}

/// Starts lib_NAME with `args` and waits for its `ready`.
fn start(name: &str, args: &[&str]) -> Interactive {
    Interactive::start(&program(name), args)
}

fn notify(pid: i32, timeout: Duration) -> cpr::Result<()> {
    cooperate::notify_checkpoint(&[pid], timeout)
}

#[test]
fn atcheckpoint_and_atrestart_functions_run_first_in_first_out() {
    let w = start("lib_aware", &["fifo"]);
    assert!(cooperate::handles(w.pid(), SIGCKPT).unwrap());
    assert!(cooperate::handles(w.pid(), SIGRESTART).unwrap());
    notify(w.pid(), TIMEOUT).unwrap();
    w.wait_line("ckpt 3");
    assert_eq!(w.after_ready(), ["ckpt 1", "ckpt 2", "ckpt 3"]);
    // what the engine does on restart
    cooperate::queue_restart(w.pid()).unwrap();
    w.wait_line("restart 3");
    assert_eq!(
        w.after_ready(),
        [
            "ckpt 1",
            "ckpt 2",
            "ckpt 3",
            "restart 1",
            "restart 2",
            "restart 3"
        ]
    );
    // a second checkpoint runs them again
    notify(w.pid(), TIMEOUT).unwrap();
    w.wait_lines("ckpt 3", 2);
    w.quit();
}

#[test]
fn programs_without_handlers_never_get_sigckpt_or_sigrestart() {
    // linked with libcpr but registering nothing
    let w = start("lib_aware", &["plain"]);
    assert!(!cooperate::handles(w.pid(), SIGCKPT).unwrap());
    assert!(!cooperate::handles(w.pid(), SIGRESTART).unwrap());
    notify(w.pid(), TIMEOUT).unwrap();
    // not linked with libcpr at all
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = sleeper.id() as i32;
    notify(pid, TIMEOUT).unwrap();
    // SIGCKPT would have killed them (the default action of a real-time signal)
    assert!(is_alive(pid));
    w.quit();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_critical_section_holds_the_checkpoint_until_the_program_leaves_it() {
    let mut w = start("lib_aware", &["cs"]);
    let pid = w.pid();
    let waiter = std::thread::spawn(move || notify(pid, TIMEOUT));
    // wait until the request has reached the program and is held
    let deadline = Instant::now() + TIMEOUT;
    let mut asked = 0;
    loop {
        w.send("status");
        asked += 1;
        w.wait_until(|lines| lines.iter().filter(|l| l.starts_with("status")).count() >= asked);
        if w.output().iter().any(|l| l == "status pending") {
            break;
        }
        assert!(Instant::now() < deadline, "never pending: {:?}", w.output());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !w.output().iter().any(|l| l == "ckpt 1"),
        "{:?}",
        w.output()
    );
    assert!(!waiter.is_finished(), "the checkpoint did not wait");
    w.send("leave");
    waiter.join().unwrap().unwrap();
    w.wait_line("left-cs");
    let out: Vec<String> = w
        .after_ready()
        .into_iter()
        .filter(|l| !l.starts_with("status"))
        .collect();
    assert_eq!(out, ["leaving-cs", "ckpt 1", "left-cs"]);
    w.quit();
}

#[test]
fn a_critical_section_longer_than_the_timeout_fails_the_checkpoint() {
    let mut w = start("lib_aware", &["cs"]);
    let e = notify(w.pid(), Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind, Kind::CheckpointError);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "Checkpoint error: process {} did not finish its SIGCKPT handlers within 1 s",
            w.pid()
        )),
        "{text}"
    );
    assert!(text.contains("critical section"), "{text}");
    // the program runs on; leaving runs the late request's functions harmlessly
    w.send("leave");
    w.wait_line("left-cs");
    w.quit();
}

#[test]
fn a_temporary_refusal_fails_this_checkpoint_only() {
    let mut w = start("lib_aware", &["refuse-temp"]);
    let e = notify(w.pid(), TIMEOUT).unwrap_err();
    assert_eq!(e.kind, Kind::ResourceBusy);
    assert_eq!(
        e.to_string(),
        format!(
            "Resource busy: process {} refused the checkpoint temporarily; try again later",
            w.pid()
        )
    );
    w.wait_line("refusing for now");
    // the functions after the refusing one did not run
    w.send("asked");
    w.wait_line("asked 1");
    assert!(!w.output().iter().any(|l| l == "ckpt 1"));
    notify(w.pid(), TIMEOUT).unwrap();
    w.wait_line("ckpt 1");
    assert_eq!(
        w.after_ready(),
        ["refusing for now", "asked 1", "accepting", "ckpt 1"]
    );
    w.quit();
}

#[test]
fn a_permanent_refusal_fails_every_checkpoint() {
    let mut w = start("lib_aware", &["refuse-perm"]);
    for _ in 0..2 {
        let e = notify(w.pid(), TIMEOUT).unwrap_err();
        assert_eq!(e.kind, Kind::CheckpointError);
        assert_eq!(
            e.to_string(),
            format!(
                "Checkpoint error: process {} refused the checkpoint permanently",
                w.pid()
            )
        );
    }
    // the functions ran once; the second request was refused without them
    w.send("asked");
    w.wait_line("asked 1");
    assert!(!w.output().iter().any(|l| l == "ckpt 1"));
    w.quit();
}

#[test]
fn a_stuck_handler_fails_the_checkpoint_after_the_timeout_and_the_process_runs_on() {
    let w = start("lib_aware", &["stuck"]);
    let e = notify(w.pid(), Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.kind, Kind::CheckpointError);
    assert_eq!(
        e.to_string(),
        format!(
            "Checkpoint error: process {} did not finish its SIGCKPT handlers within 1 s",
            w.pid()
        )
    );
    w.wait_line("stuck");
    assert!(is_alive(w.pid()));
}

#[test]
fn examples_3_1_to_3_4_close_at_checkpoint_and_reopen_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cdrom-data");
    std::fs::write(&file, "abcdefghijkl").unwrap();
    let mut w = start("lib_examples", &["handlers", file.to_str().unwrap()]);
    w.send("read");
    w.wait_line("data: abcd");
    notify(w.pid(), TIMEOUT).unwrap();
    w.wait_line("checkpoint: socket closed");
    w.send("read");
    w.wait_line("file: closed");
    cooperate::queue_restart(w.pid()).unwrap();
    w.wait_line("restart: socket reconnected");
    w.send("read");
    w.wait_line("data: efgh");
    assert_eq!(
        w.after_ready(),
        [
            "data: abcd",
            "checkpoint: closed at offset 4",
            "checkpoint: socket closed",
            "file: closed",
            "restart: reopened at offset 4",
            "restart: socket reconnected",
            "data: efgh"
        ]
    );
    w.quit();
}

/// Runs lib_examples; (exit code, stdout, stderr).
/// A HOME whose `.cpr` lets cpr checkpoint the test's workloads, which talk to the test
/// through pipes: those are reopened as /dev/null on restart.
fn pipe_tolerant_home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("libcpr-home");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(".cpr"),
            "CKPT * {\n    FILE: \"pipe:*\": IGNORE\n}\n",
        )
        .unwrap();
        dir
    })
    .clone()
}

fn example(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(program("lib_examples"))
        .args(args)
        .env("HOME", pipe_tolerant_home())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ckpt_create_reports_errors_through_errno_and_ckpt_errmsg() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("sf");
    let sf = sf.to_str().unwrap();
    // no such process: found by the checkpointing child, reported back
    let missing = (cpr::target::PID_LIMIT - 1).to_string();
    let (code, out, err) = example(&["create", sf, &missing, "1"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!("Checkpointing id {missing} (type PID)")),
        "{out}"
    );
    assert!(out.contains("Failed to checkpoint process"), "{out}");
    assert!(
        err.contains(&format!(
            "errno {} (No such process): -p {missing}: No such process",
            libc::ESRCH
        )),
        "{err}"
    );
    // an unknown ID type
    let (code, _, err) = example(&["create", sf, "1", "99"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("errno {} ", libc::EINVAL)), "{err}");
    assert!(err.contains("unknown ID type 0x63"), "{err}");
    // ASH is IRIX only
    let (code, out, err) = example(&["create", sf, "1", "4"]);
    assert_eq!(code, 1);
    assert!(out.contains("(type ASH)"), "{out}");
    assert!(err.contains("not supported on Linux"), "{err}");
    assert!(!Path::new(sf).exists());
}

#[test]
fn example_3_9_ckpt_setup_is_a_no_op() {
    assert_eq!(example(&["setup"]).0, 0);
}

// ---- with a real checkpoint (need the engine and the statefile) ----

#[test]
fn examples_3_5_to_3_8_checkpoint_stat_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("ckptEx");
    let sf_s = sf.to_str().unwrap();
    let w = start("lib_aware", &["fifo"]);
    let pid = w.pid().to_string();
    let (code, out, err) = example(&["create", sf_s, &pid, "1", "cont"]);
    assert_eq!(code, 0, "{out}{err}");
    // the checkpoint ran the program's atcheckpoint functions first
    w.wait_line("ckpt 3");
    let (code, out, err) = example(&["stat", sf_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Information About Statefile {sf_s}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(" PID,PPID:\t\t{pid},{}", std::process::id())),
        "{out}"
    );
    assert!(out.contains("lib_aware fifo"), "{out}");
    assert!(out.contains(" Checkpointed @\t"), "{out}");
    let (code, out, err) = example(&["remove", sf_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!sf.exists());
    w.quit();
}

#[test]
fn ckpt_stat_reads_a_statefile_written_by_cpr_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("ckptCpr");
    let w = start("lib_aware", &["plain"]);
    let o = Command::new(cpr_bin())
        .arg("-c")
        .arg(&sf)
        .args(["-p", &w.pid().to_string(), "-g"])
        .arg("--attributes")
        .arg(pipe_tolerant_home().join(".cpr"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, out, err) = example(&["stat", sf.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(" PID,PPID:\t\t{},", w.pid())),
        "{out}"
    );
    assert!(out.contains("lib_aware plain"), "{out}");
    assert!(out.contains(" Num of Openfiles:\t"), "{out}");
    w.quit();
}

#[test]
fn a_self_checkpointing_loop_killed_and_restarted_finishes_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("loop");
    let clean = dir.path().join("clean.out");
    let out = dir.path().join("restarted.out");
    let total = "200000";
    let status = Command::new(program("lib_selfloop"))
        .env("HOME", pipe_tolerant_home())
        .args([
            prefix.to_str().unwrap(),
            "0",
            total,
            clean.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let expected = std::fs::read_to_string(&clean).unwrap();

    // checkpoint every 50000 iterations; stop after the second and be killed there
    let mut child = Command::new(program("lib_selfloop"))
        .env("HOME", pipe_tolerant_home())
        .args([
            prefix.to_str().unwrap(),
            "50000",
            total,
            out.to_str().unwrap(),
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for k in 1..=2 {
        let line = lines.next().and_then(|l| l.ok());
        assert_eq!(
            line.as_deref(),
            Some(format!("checkpointed {k}").as_str()),
            "lib_selfloop failed (its stderr is above)"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists());

    let second = format!("{}.2", prefix.display());
    let (code, o, e) = example(&["restart", &second]);
    assert_eq!(code, 0, "{o}{e}");
    let deadline = Instant::now() + TIMEOUT;
    while std::fs::read_to_string(&out).map_or(true, |s| !s.ends_with('\n')) {
        assert!(
            Instant::now() < deadline,
            "the restarted loop never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
}

#[test]
fn the_man_pages_render_cleanly() {
    for page in ["man/ckpt_create.3", "man/atcheckpoint.3"] {
        let o = Command::new("man")
            .env("MANWIDTH", "80")
            .args(["--warnings", "-l"])
            .arg(Path::new(ROOT).join(page))
            .stdout(Stdio::null())
            .output()
            .expect("run man");
        assert!(o.status.success(), "{page}");
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{page}");
    }
}
