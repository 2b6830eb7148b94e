//! End-to-end tests of the engine: real programs are checkpointed with `cpr -c`, their
//! originals end, `cpr -r` brings them back, and the programs check their own state
//! (memory, files, threads, registers, signals, timers) and report PASS or FAIL. These are
//! the acceptance tests of the ptrace engine.
//!
//! Run them alone: `cargo test --test engine` (they take a global lock and run one at a
//! time; they need root or ptrace rights over their own children).

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

/// `cpr -c STATEFILE -p PID [extra...]`, which must succeed; with the default WILL EXIT
/// (or -k) the original must then disappear. Returns the statefile.
fn checkpoint(s: &Scratch, name: &str, pid: i32, extra: &[&str]) -> PathBuf {
    let continues = extra.contains(&"-g") || extra.contains(&"--attributes");
    // WILL EXIT: the original is gone (we reap it: it was our child).
    let gone: &[i32] = if continues { &[] } else { &[pid] };
    checkpoint_set(s, name, &pid.to_string(), extra, gone)
}

/// `cpr -r STATEFILE`, which must succeed and leave `pid` running under its original PID,
/// re-parented to this test (the nearest child subreaper), not to cpr.
fn restart(statefile: &Path, pid: i32) {
    restart_ok(statefile);
    assert!(is_alive(pid), "process {pid} is not running after restart");
    assert_eq!(
        ppid(pid),
        Some(std::process::id() as i32),
        "restarted process {pid} should be re-parented to the test (child subreaper)"
    );
}

/// The common path: start, READY, checkpoint (WILL EXIT), restart, GO, PASS.
fn simple_round_trip(s: &Scratch, program: &Path, args: &[String]) -> String {
    let (w, _) = spawn_ready(s, program, args);
    let sf = checkpoint(s, "ckpt", w.pid, &[]);
    restart(&sf, w.pid);
    s.go();
    expect_pass_and_exit(&w)
}

/// `simple_round_trip` of tests/workloads/SOURCE, its control directory its one argument,
/// under the serial lock.
fn round_trip_of(source: &str) -> String {
    let _s = serial();
    let s = Scratch::new();
    simple_round_trip(&s, &build(source), &[ctl(&s)])
}

/// bigheap.c with a heap of `mib` MiB, READY.
fn bigheap(s: &Scratch, mib: u32) -> Workload {
    spawn_ready(s, &build("bigheap.c"), &[ctl(s), mib.to_string()]).0
}

/// `cpr -c DIR/ckpt -p IDLIST` must fail (`what`) with one `cpr:` line naming every one of
/// `needles`, and leave nothing in DIR (created if need be).
fn refused_checkpoint(dir: &Path, idlist: &str, what: &str, needles: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    let sf = dir.join("ckpt");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", idlist]);
    assert_failure(&out, what, needles, false);
    assert_eq!(
        dir_entries(dir),
        Vec::<String>::new(),
        "{what}: no statefile may be left"
    );
}

/// Checkpoints `pid` (WILL EXIT) under the attribute file `attributes`, if any, into
/// `<scratch>/ckpt`; the original is gone after it either way.
fn checkpoint_under(s: &Scratch, pid: i32, attributes: Option<&str>) -> PathBuf {
    let Some(text) = attributes else {
        return checkpoint(s, "ckpt", pid, &[]);
    };
    let attrs = s.attributes(text);
    let sf = checkpoint(s, "ckpt", pid, &["--attributes", attrs.to_str().unwrap()]);
    wait_pid_gone(pid, TIMEOUT);
    sf
}

/// Sends SIGUSR1 to a bigheap-like workload and waits for its `PASS check=N`.
fn check(w: &Workload, n: u32) -> String {
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, &format!("PASS check={n}"), TIMEOUT)
}

/// Lines "count N" of a log must be exactly 1..=n; returns n.
fn assert_consecutive_counts(log: &Path) -> u64 {
    let lines = read_lines(log);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            line,
            &format!("count {}", i + 1),
            "{} line {} breaks the sequence",
            log.display(),
            i + 1
        );
    }
    lines.len() as u64
}

// ---------------------------------------------------------------------------------------
// One workload each

#[test]
fn counter_log_continues_without_gap_or_duplicate() {
    let _s = serial();
    let s = Scratch::new();
    let log = s.join("count.log");
    let (w, _) = spawn_ready(
        &s,
        &build("counter.c"),
        &[ctl(&s), log.display().to_string()],
    );
    wait_until("5 counts", TIMEOUT, || read_lines(&log).len() >= 5);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    // The original is gone: what the log holds now is what it held at the checkpoint.
    let at_checkpoint = assert_consecutive_counts(&log);
    restart(&sf, w.pid);
    wait_until("counting after restart", TIMEOUT, || {
        read_lines(&log).len() as u64 >= at_checkpoint + 5
    });
    s.go();
    let pass = expect_pass_and_exit(&w);
    let total = assert_consecutive_counts(&log);
    assert!(total >= at_checkpoint + 5);
    assert_eq!(field(&pass, "count"), Some(total.to_string().as_str()));
}

#[test]
fn bigheap_256mib_survives() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 256);
    check(&w, 1);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    assert!(
        tree_size(&sf) >= 256 << 20,
        "a statefile of {} bytes cannot hold a 256 MiB heap",
        tree_size(&sf)
    );
    restart(&sf, w.pid);
    let line = check(&w, 2);
    assert_eq!(field(&line, "pid"), Some(w.pid.to_string().as_str()));
}

#[test]
fn threads_keep_tids_tls_and_counts() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("threads.c"), &[ctl(&s)]);
    wait_for_nth_line(&w.log, "progress", 3, TIMEOUT);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    let before = count_lines(&w.log, "progress");
    restart(&sf, w.pid);
    let line = wait_for_nth_line(&w.log, "progress", before + 2, TIMEOUT);
    let max: u64 = field(&line, "max")
        .and_then(|v| v.parse().ok())
        .expect("max=");
    s.go_with(&(max + 3000).to_string());
    let pass = expect_pass_and_exit(&w);
    assert_eq!(
        field(&pass, "target"),
        Some((max + 3000).to_string().as_str())
    );
}

#[test]
fn simd_registers_and_mxcsr_survive() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("simd.c"), &[ctl(&s)]);
    let avx = field(&ready, "avx") == Some("1");
    if !avx {
        eprintln!("this CPU has no AVX: checking xmm0..xmm15 and MXCSR only");
    }
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    restart(&sf, w.pid);
    signal(w.pid, Signal::SIGUSR1);
    let pass = expect_pass_and_exit(&w);
    assert!(
        pass.contains(if avx { "avx" } else { "sse-only" }),
        "{pass}"
    );
}

#[test]
fn pending_and_queued_signals_survive() {
    let pass = round_trip_of("sigpending.c");
    assert!(pass.contains("rtmin=111,222"), "{pass}");
}

#[test]
fn sigaltstack_and_sigaction_flags_survive() {
    round_trip_of("sigaltstack.c");
}

/// Sleeps of 6 s, checkpointed about 2 s in, restarted 1 s later: the sleep must end about
/// 4 s after restart (the time it had left), not at once and not 6 s later.
fn sleeper(mode: &str) {
    const SECS: f64 = 6.0;
    let _s = serial();
    let s = Scratch::new();
    let w = spawn(
        &s,
        &build("sleeper.c"),
        &[ctl(&s), mode.into(), (SECS as u32).to_string()],
    );
    let start_line = wait_for_line(&w.log, "START", TIMEOUT);
    let start: f64 = start_line[6..].trim().parse().expect("START time");
    let wait = start + 2.0 - now();
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    let c0 = now();
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    let c1 = now();
    // The process froze somewhere in [c0, c1]: so much of its sleep was left.
    let (left_min, left_max) = (SECS - (c1 - start), SECS - (c0 - start));
    assert!(
        left_min > 1.0,
        "the checkpoint took too long to test anything"
    );
    std::thread::sleep(Duration::from_secs(1));
    let r0 = now();
    restart(&sf, w.pid);
    let r1 = now();
    let end_line = wait_for_line(&w.log, "END", TIMEOUT);
    let end: f64 = end_line[4..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("END time");
    expect_pass_and_exit(&w);
    assert!(
        end >= r0 + left_min - 0.1,
        "{mode}: ended {:.2} s after restart, but {left_min:.2} s were left",
        end - r0
    );
    assert!(
        end <= r1 + left_max + 1.0,
        "{mode}: ended {:.2} s after restart, but only {left_max:.2} s were left",
        end - r1
    );
}

#[test]
fn sleep_keeps_its_remaining_time() {
    sleeper("sleep");
}

#[test]
fn alarm_keeps_its_remaining_time() {
    sleeper("alarm");
}

#[test]
fn itimer_keeps_its_remaining_time() {
    sleeper("itimer");
}

#[test]
fn rust_counter_with_hashmap_and_thread() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("rust_counter.rs"), &[ctl(&s)]);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    let before = count_lines(&w.log, "progress");
    restart(&sf, w.pid);
    wait_for_nth_line(&w.log, "progress", before + 3, TIMEOUT);
    s.go();
    expect_pass_and_exit(&w);
}

// ---------------------------------------------------------------------------------------
// Programs no one here wrote

#[test]
fn python_dict_state_survives() {
    let _s = serial();
    let s = Scratch::new();
    let script = Path::new(WORKLOADS).join("dict_loop.py");
    simple_round_trip(&s, &python(), &[script.display().to_string(), ctl(&s)]);
}

/// A Python signal handler runs after restart (CPython installs it with SA_ONSTACK).
#[test]
fn python_signal_handler_runs_after_restart() {
    let _s = serial();
    let s = Scratch::new();
    let script = Path::new(WORKLOADS).join("signal_handler.py");
    let pass = simple_round_trip(&s, &python(), &[script.display().to_string(), ctl(&s)]);
    assert!(pass.contains("handled=2"), "{pass}");
}

#[test]
fn bash_loop_survives() {
    let _s = serial();
    let s = Scratch::new();
    let script = Path::new(WORKLOADS).join("count_loop.sh");
    let pass = simple_round_trip(
        &s,
        Path::new("/bin/bash"),
        &[script.display().to_string(), ctl(&s)],
    );
    let n = assert_consecutive_counts(&s.join("count.log"));
    assert_eq!(field(&pass, "count"), Some(n.to_string().as_str()));
}

#[test]
fn sqlite_session_mid_transaction_survives() {
    let _s = serial();
    let s = Scratch::new();
    let script = Path::new(WORKLOADS).join("sqlite_loop.py");
    let db = s.join("db.sqlite");
    let pass = simple_round_trip(
        &s,
        &python(),
        &[
            script.display().to_string(),
            ctl(&s),
            db.display().to_string(),
        ],
    );
    let rows: u64 = field(&pass, "rows")
        .and_then(|v| v.parse().ok())
        .expect("rows=");
    // A fresh sqlite3 sees every row, consistent.
    let sql = "SELECT count(*), min(n), max(n), sum(sq) FROM t; PRAGMA integrity_check;";
    let out = match std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(sql)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(!in_ci(), "sqlite3 is needed in CI: {e}");
            eprintln!("sqlite3 not found; the database was checked from python only");
            return;
        }
    };
    assert!(out.status.success(), "sqlite3: {}", describe(&out));
    let sum = rows * (rows + 1) * (2 * rows + 1) / 6;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{rows}|1|{rows}|{sum}\nok\n")
    );
}

// ---------------------------------------------------------------------------------------
// Files and directories

#[derive(Debug)]
struct FdReport {
    off: u64,
    acc: String,
    append: bool,
    cloexec: bool,
    /// The file as seen through the fd.
    content: String,
    /// The file as seen through its path.
    disk: String,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("\\x escape") as char);
            }
            other => panic!("bad escape \\{other:?}"),
        }
    }
    out
}

const R0: &str = "abcdefghij";
const A0: &str = "line1\n";
const RW0: &str = "0123456789ABCDEFGHIJ";
const R1: &str = "ABCDEFGHIJKLMNOP";
const W1: &str = "changed-by-test\n";
const A1: &str = "line1\nline2\nextern\n";
const RW1: &str = "zyxwvutsrqponmlkjihgfedcba";
/// At the checkpoint (after the workload's own reads and writes).
const W_CKPT: &str = "hello\n";
const A_CKPT: &str = "line1\nline2\n";

/// Runs files.c under FILE policy `policy` (None: the default) for DATA/*, changes every
/// file between checkpoint and restart, and returns what the restarted process saw, and
/// the scratch directory (the data is in `data/`).
fn files_round_trip(policy: Option<&str>) -> (HashMap<String, FdReport>, Scratch) {
    let s = Scratch::new();
    let data = s.join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("r.txt"), R0).unwrap();
    fs::write(data.join("a.txt"), A0).unwrap();
    fs::write(data.join("rw.txt"), RW0).unwrap();
    let log = s.join("out.log");
    let w = spawn_silent(
        &s,
        &build("files.c"),
        &[ctl(&s), data.display().to_string()],
        log.clone(),
    );
    wait_for_line(&log, "READY", TIMEOUT);
    let attributes = policy.map(|action| {
        format!(
            "CKPT PID {} {{\n    FILE: \"{}/*\": {action}\n    WILL: EXIT\n}}\n",
            w.pid,
            data.display()
        )
    });
    let sf = checkpoint_under(&s, w.pid, attributes.as_deref());
    fs::write(data.join("r.txt"), R1).unwrap();
    fs::write(data.join("w.txt"), W1).unwrap();
    fs::write(data.join("a.txt"), A1).unwrap();
    fs::write(data.join("rw.txt"), RW1).unwrap();
    restart(&sf, w.pid);
    s.go();
    expect_pass_and_exit(&w);
    let mut reports = HashMap::new();
    for line in read_lines(&log).iter().filter(|l| l.starts_with("FD ")) {
        let name = line.split_whitespace().nth(1).unwrap().to_string();
        let get = |k: &str| field(line, k).unwrap_or_else(|| panic!("{k}= in {line}"));
        reports.insert(
            name,
            FdReport {
                off: get("off").parse().unwrap(),
                acc: get("acc").to_string(),
                append: get("append") == "1",
                cloexec: get("cloexec") == "1",
                content: unescape(get("content")),
                disk: unescape(get("disk")),
            },
        );
    }
    assert_eq!(reports.len(), 4, "four FD reports expected");
    // Whatever the policy, each fd is opened as it was.
    for (name, acc, append, cloexec) in [
        ("r.txt", "r", false, true),
        ("w.txt", "w", false, false),
        ("a.txt", "w", true, false),
        ("rw.txt", "rw", false, false),
    ] {
        let r = &reports[name];
        assert_eq!(
            (r.acc.as_str(), r.append, r.cloexec),
            (acc, append, cloexec),
            "{name}: open flags changed: {r:?}"
        );
    }
    (reports, s)
}

fn assert_offsets(reports: &HashMap<String, FdReport>, want: [u64; 4], policy: &str) {
    for (name, off) in ["r.txt", "w.txt", "a.txt", "rw.txt"].iter().zip(want) {
        assert_eq!(reports[*name].off, off, "{policy}: offset of {name}");
    }
}

fn assert_contents(reports: &HashMap<String, FdReport>, want: [&str; 4], policy: &str, disk: bool) {
    for (name, text) in ["r.txt", "w.txt", "a.txt", "rw.txt"].iter().zip(want) {
        let r = &reports[*name];
        let got = if disk { &r.disk } else { &r.content };
        assert_eq!(
            got,
            text,
            "{policy}: {name} as seen through its {}",
            if disk { "path" } else { "fd" }
        );
    }
}

/// MERGE (the default): reopen the same file at the saved offset; the changes show.
#[test]
fn file_merge_is_the_default() {
    let _s = serial();
    let (r, _scratch) = files_round_trip(None);
    assert_offsets(&r, [3, 6, 12, 5], "MERGE");
    assert_contents(&r, [R1, W1, A1, RW1], "MERGE", false);
    assert_contents(&r, [R1, W1, A1, RW1], "MERGE", true);
}

#[test]
fn file_merge_explicit() {
    let _s = serial();
    let (r, _scratch) = files_round_trip(Some("MERGE"));
    assert_offsets(&r, [3, 6, 12, 5], "MERGE");
    assert_contents(&r, [R1, W1, A1, RW1], "MERGE", false);
}

/// IGNORE: reopened as originally opened, at offset zero.
#[test]
fn file_ignore_reopens_at_offset_zero() {
    let _s = serial();
    let (r, _scratch) = files_round_trip(Some("IGNORE"));
    assert_offsets(&r, [0, 0, 0, 0], "IGNORE");
    // Files opened read-only or read-write without O_TRUNC keep the changed content.
    assert_eq!(r["r.txt"].content, R1);
    assert_eq!(r["rw.txt"].content, RW1);
}

/// APPEND: offset at the new end of each file.
#[test]
fn file_append_seeks_to_the_new_end() {
    let _s = serial();
    let (r, _scratch) = files_round_trip(Some("APPEND"));
    assert_offsets(
        &r,
        [
            R1.len() as u64,
            W1.len() as u64,
            A1.len() as u64,
            RW1.len() as u64,
        ],
        "APPEND",
    );
    assert_contents(&r, [R1, W1, A1, RW1], "APPEND", false);
}

/// REPLACE: the files are put back as they were at the checkpoint.
#[test]
fn file_replace_restores_the_saved_content() {
    let _s = serial();
    let (r, s) = files_round_trip(Some("REPLACE"));
    let saved = [R0, W_CKPT, A_CKPT, RW0];
    assert_offsets(&r, [3, 6, 12, 5], "REPLACE");
    assert_contents(&r, saved, "REPLACE", false);
    assert_contents(&r, saved, "REPLACE", true);
    for (name, text) in ["r.txt", "w.txt", "a.txt", "rw.txt"].iter().zip(saved) {
        assert_eq!(fs::read_to_string(s.join("data").join(name)).unwrap(), text);
    }
}

/// SUBSTITUTE: the process sees the saved copies; the original paths keep the changes.
#[test]
fn file_substitute_leaves_the_originals_alone() {
    let _s = serial();
    let (r, s) = files_round_trip(Some("SUBSTITUTE"));
    let changed = [R1, W1, A1, RW1];
    assert_offsets(&r, [3, 6, 12, 5], "SUBSTITUTE");
    assert_contents(&r, [R0, W_CKPT, A_CKPT, RW0], "SUBSTITUTE", false);
    assert_contents(&r, changed, "SUBSTITUTE", true);
    for (name, text) in ["r.txt", "w.txt", "a.txt", "rw.txt"].iter().zip(changed) {
        assert_eq!(fs::read_to_string(s.join("data").join(name)).unwrap(), text);
    }
}

fn cwd_after_restart(attributes: Option<&str>) -> (PathBuf, PathBuf, PathBuf) {
    let s = Scratch::new();
    let wd = s.join("wd");
    let elsewhere = s.join("elsewhere");
    fs::create_dir(&wd).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    let (w, _) = spawn_ready(&s, &build("cwd.c"), &[ctl(&s), wd.display().to_string()]);
    let attributes = attributes.map(|text| text.replace("PIDHERE", &w.pid.to_string()));
    let sf = checkpoint_under(&s, w.pid, attributes.as_deref());
    let out = cpr_command()
        .arg("-r")
        .arg(&sf)
        .current_dir(&elsewhere)
        .output()
        .expect("run cpr");
    assert_success(&out, "cpr -r");
    s.go();
    let line = wait_for_line(&w.log, "CWD ", TIMEOUT);
    expect_pass_and_exit(&w);
    let cwd = PathBuf::from(line.strip_prefix("CWD ").unwrap());
    (
        cwd,
        wd.canonicalize().unwrap(),
        elsewhere.canonicalize().unwrap(),
    )
}

#[test]
fn cdir_replace_restores_the_working_directory() {
    let _s = serial();
    let (cwd, wd, _) = cwd_after_restart(None);
    assert_eq!(cwd, wd);
}

#[test]
fn cdir_ignore_takes_the_restarting_directory() {
    let _s = serial();
    let (cwd, _, elsewhere) = cwd_after_restart(Some("CKPT PID PIDHERE {\n    CDIR: IGNORE\n}\n"));
    assert_eq!(cwd, elsewhere);
}

// ---------------------------------------------------------------------------------------
// Statefiles, policies, failures

#[test]
fn restart_twice_leaves_the_statefile_unchanged() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 32);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    let before = tree_hashes(&sf);
    assert!(before.contains_key("MANIFEST"));

    restart(&sf, w.pid);
    signal(w.pid, Signal::SIGUSR1);
    wait_for_nth_line(&w.log, "PASS check=1", 1, TIMEOUT);
    assert_eq!(tree_hashes(&sf), before, "restart changed the statefile");

    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
    restart(&sf, w.pid);
    signal(w.pid, Signal::SIGUSR1);
    let line = wait_for_nth_line(&w.log, "PASS check=1", 2, TIMEOUT);
    assert_eq!(field(&line, "pid"), Some(w.pid.to_string().as_str()));
    assert_eq!(
        tree_hashes(&sf),
        before,
        "the second restart changed the statefile"
    );
}

#[test]
fn checkpoint_a_restarted_process_again() {
    let _s = serial();
    let s = Scratch::new();
    let log = s.join("count.log");
    let (w, _) = spawn_ready(
        &s,
        &build("counter.c"),
        &[ctl(&s), log.display().to_string()],
    );
    let first = checkpoint(&s, "first", w.pid, &[]);
    let n1 = assert_consecutive_counts(&log);
    restart(&first, w.pid);
    wait_until("counting after the first restart", TIMEOUT, || {
        read_lines(&log).len() as u64 >= n1 + 5
    });
    let second = checkpoint(&s, "second", w.pid, &[]);
    let n2 = assert_consecutive_counts(&log);
    assert!(n2 >= n1 + 5);
    restart(&second, w.pid);
    wait_until("counting after the second restart", TIMEOUT, || {
        read_lines(&log).len() as u64 >= n2 + 5
    });
    s.go();
    expect_pass_and_exit(&w);
    assert!(assert_consecutive_counts(&log) >= n2 + 5);
}

#[test]
fn fork_any_restarts_beside_the_running_original() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 8);
    let attrs = s.attributes(&format!(
        "CKPT PID {} {{\n    FORK: ANY\n    WILL: CONT\n}}\n",
        w.pid
    ));
    let sf = checkpoint(
        &s,
        "ckpt",
        w.pid,
        &["-g", "--attributes", attrs.to_str().unwrap()],
    );
    assert_running_untraced(w.pid);

    let out = cpr(&[Path::new("-r"), &sf]);
    assert_success(&out, "cpr -r with FORK ANY");
    let others: Vec<i32> = s.processes().into_iter().filter(|p| *p != w.pid).collect();
    assert_eq!(
        others.len(),
        1,
        "one new process expected, found {others:?}"
    );
    let copy = others[0];
    let _guard = KillOnDrop::new(copy, s.path());
    assert_eq!(ppid(copy), Some(std::process::id() as i32));

    signal(copy, Signal::SIGUSR1);
    wait_for_line(&w.log, &format!("PASS check=1 pid={copy} "), TIMEOUT);
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, &format!("PASS check=1 pid={} ", w.pid), TIMEOUT);
    assert_running_untraced(w.pid);
    assert_running_untraced(copy);
}

#[test]
fn fork_original_refused_while_the_pid_is_taken() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 8);
    let sf = checkpoint(&s, "ckpt", w.pid, &["-g"]);
    assert_running_untraced(w.pid);

    let out = cpr(&[Path::new("-r"), &sf]);
    assert_failure(
        &out,
        "cpr -r while the PID is taken",
        &["Resource busy", &w.pid.to_string()],
        true,
    );
    reap_children();
    assert_eq!(s.processes(), vec![w.pid], "nothing new may run");
    assert_running_untraced(w.pid);
    check(&w, 1);
}

#[test]
fn force_overwrites_and_kill_ends_the_original() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 8);
    check(&w, 1);
    let sf = checkpoint(&s, "ckpt", w.pid, &["-g"]);
    let first = tree_hashes(&sf);
    check(&w, 2);

    let args = ["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string(), "-g"];
    let out = cpr(&args);
    assert_failure(
        &out,
        "checkpoint over an existing statefile",
        &["File exists"],
        false,
    );
    assert_eq!(
        tree_hashes(&sf),
        first,
        "a refused checkpoint changed the statefile"
    );
    assert_running_untraced(w.pid);

    checkpoint(&s, "ckpt", w.pid, &["-f", "-k"]);
    assert_ne!(tree_hashes(&sf), first, "-f did not replace the statefile");
    restart(&sf, w.pid);
    signal(w.pid, Signal::SIGUSR1);
    // The heap and the counter of checks are those of the second checkpoint.
    wait_for_line(&w.log, "PASS check=3", TIMEOUT);
}

#[test]
fn socket_refuses_checkpoint_and_keeps_running() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("socket.c"), &[ctl(&s)]);
    let port: u16 = field(&ready, "port")
        .and_then(|p| p.parse().ok())
        .expect("port=");
    wait_for_line(&w.log, "tick 3", TIMEOUT);
    refused_checkpoint(
        &s.join("ck"),
        &w.pid.to_string(),
        "checkpoint of a TCP socket",
        &["Checkpoint error"],
    );
    assert_running_untraced(w.pid);
    // It still makes progress and still listens.
    let ticks = count_lines(&w.log, "tick ");
    wait_for_line(&w.log, &format!("tick {}", ticks + 3), TIMEOUT);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the socket still listens");
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn no_space_fails_cleanly_and_the_original_lives() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 256);
    let Some(mount) = TmpfsMount::new(&s.join("small"), "16m") else {
        return;
    };
    // Default WILL EXIT: the original must still survive a failed checkpoint.
    refused_checkpoint(
        &mount.path,
        &w.pid.to_string(),
        "checkpoint into a full tmpfs",
        &["No space left on device"],
    );
    assert_running_untraced(w.pid);
    check(&w, 1);
    drop(mount);
}

#[test]
fn damaged_statefile_restarts_nothing() {
    let _s = serial();
    let s = Scratch::new();
    let w = bigheap(&s, 16);
    let sf = checkpoint(&s, "ckpt", w.pid, &[]);
    // Flip one byte in the middle of the biggest file (the page data).
    let (victim, _) = walkdir::WalkDir::new(&sf)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != "MANIFEST")
        .map(|e| (e.path().to_path_buf(), e.metadata().unwrap().len()))
        .max_by_key(|(_, len)| *len)
        .expect("a data file in the statefile");
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    fs::write(&victim, bytes).unwrap();

    let out = cpr(&[Path::new("-r"), &sf]);
    assert_failure(&out, "restart of a damaged statefile", &["cpr: "], false);
    wait_until("no restarted process left", TIMEOUT, || {
        s.processes().is_empty()
    });
    assert!(
        !is_alive(w.pid),
        "process {} runs after a failed restart",
        w.pid
    );
}

/// Two processes sharing one address space (clone with CLONE_VM, not a thread) cannot be
/// restored as they were: the checkpoint is refused, both run on untraced.
#[test]
fn clone_vm_children_are_refused_and_run_on() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("clonevm.c"), &[ctl(&s)]);
    let child: i32 = field(&ready, "child")
        .and_then(|p| p.parse().ok())
        .expect("child=");
    refused_checkpoint(
        &s.join("ck"),
        &format!("{}:HID", w.pid),
        "checkpoint of CLONE_VM processes",
        &["Checkpoint error", "share one address space"],
    );
    assert_running_untraced(w.pid);
    assert_running_untraced(child);
    s.go();
    expect_pass_and_exit(&w);
}

/// PROT_NONE memory that holds data, read-only and mlock'ed memory, and a guard
/// reservation come back with their data, protections and lock.
#[test]
fn protections_data_and_locks_of_memory_survive() {
    round_trip_of("protections.c");
}

/// Mutexes and condition variables in use (threads blocked in futex waits at the
/// checkpoint) go on working: handoffs stay in order, a blocked lock is granted.
#[test]
fn futex_waits_in_progress_go_on() {
    round_trip_of("condvar.c");
}

/// A process of another user comes back with its own credentials, not root's: real,
/// effective and saved IDs, groups, no capabilities.
#[test]
fn another_users_process_keeps_its_credentials() {
    use std::os::unix::process::CommandExt;
    let _s = serial();
    let s = Scratch::new();
    // the workload (uid 65534) must reach its control directory
    s.open_to_other_users();
    let mut cmd = std::process::Command::new(build("creds.c"));
    cmd.arg(ctl(&s)).uid(65534).gid(65534);
    let w = spawn_command(&s, cmd, s.join("out.log"));
    let (pid, log) = (w.pid, &w.log);
    let ready = wait_for_line(log, "READY", TIMEOUT);
    assert!(ready.contains("uid=65534"), "{ready}");
    // root restarts the user's files with the user's rights: its output is its own
    std::os::unix::fs::chown(log, Some(65534), Some(65534)).unwrap();
    let sf = checkpoint(&s, "ckpt", pid, &[]);
    restart(&sf, pid);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid}"
    );
    s.go();
    let pass = wait_for_line(log, "PASS", TIMEOUT);
    assert!(pass.contains("uid 65534"), "{pass}");
}

/// A tree whose children are born and die all the time, checkpointed with :HID: the set
/// is looked up again once frozen, children caught exiting come back as zombies, and the
/// parent reaps every child with its own exit code after restart.
#[test]
fn tree_with_children_born_and_dying_mid_checkpoint() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("forkchurn.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid]);
    restart(&sf, w.pid);
    s.go();
    expect_pass_and_exit(&w);
}
