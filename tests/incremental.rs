//! Incremental and live checkpoints (`--parent`, `-g`): a workload (incr.c) that
//! rewrites part of its memory at each step checks every page after restart against
//! the generation it had at the checkpoint restarted from.
//!
//! Run them alone: `cargo test --test incremental`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use nix::sys::signal::Signal;

/// incr.c with `mib` MiB, READY; `busy`: stepping all the time.
fn incr(s: &Scratch, mib: u32, busy: bool) -> Workload {
    incr_with(s, mib, if busy { "busy" } else { "" })
}

/// incr.c with `mib` MiB and mode `mode` (`busy`, `pipe` or none), READY.
fn incr_with(s: &Scratch, mib: u32, mode: &str) -> Workload {
    let mut args = vec![ctl(s), mib.to_string()];
    if !mode.is_empty() {
        args.push(mode.into());
    }
    spawn_ready(s, &build("incr.c"), &args).0
}

/// What of cpr's dirty tracking process `pid` shows: its userfaultfd descriptors and
/// the mappings registered with one.
fn tracking_seen(pid: i32) -> (usize, usize) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.display().to_string().contains("userfaultfd"))
        .count();
    let registered = fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("VmFlags:") && l.split_whitespace().any(|f| f == "uw"))
        .count();
    (fds, registered)
}

/// One step of the workload (SIGUSR2), waited for.
fn step(w: &Workload, n: u32) {
    signal(w.pid, Signal::SIGUSR2);
    wait_for_line(&w.log, &format!("STEP {n}"), TIMEOUT);
}

/// `cpr -c DIR/NAME -p PID extra...` with `env`, which must succeed.
fn checkpoint(s: &Scratch, name: &str, pid: i32, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let sf = s.join(name);
    let mut cmd = cpr_command();
    cmd.args(["-c", sf.to_str().unwrap(), "-p", &pid.to_string()])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cpr");
    assert_success(&out, &format!("cpr -c {name} {extra:?}"));
    sf
}

/// `cpr -i SF` as text.
fn info(sf: &Path) -> String {
    let out = cpr(&["-i", sf.to_str().unwrap()]);
    assert_success(&out, "cpr -i");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes of the page data of process `pid` in statefile `sf` (with what a live
/// checkpoint copied before its stop).
fn pages_size(sf: &Path, pid: i32) -> u64 {
    ["pages", "precopy"]
        .iter()
        .filter_map(|f| fs::metadata(sf.join(format!("proc/{pid}/{f}"))).ok())
        .map(|m| m.len())
        .sum()
}

fn kill(pid: i32) {
    signal(pid, Signal::SIGKILL);
    wait_pid_gone(pid, TIMEOUT);
}

/// Restarts `sf` (the process `pid` must be gone), asks for check `check` and expects
/// it to pass with the workload at step `step`; the restored process holds no
/// userfaultfd of cpr's.
fn restart_expect(sf: &Path, w: &Workload, step: u32) {
    restart_ok(sf);
    let fds: Vec<String> = fs::read_dir(format!("/proc/{}/fd", w.pid))
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .collect();
    assert!(
        !fds.iter().any(|l| l.contains("userfaultfd")),
        "restored from {}: {fds:?}",
        sf.display()
    );
    signal(w.pid, Signal::SIGUSR1);
    // each restored process writes at the log offset of its checkpoint
    let line = wait_for_line(&w.log, &format!("check=1 step={step} "), TIMEOUT);
    assert!(line.starts_with("PASS"), "{}: {line}", sf.display());
}

#[test]
fn chain_of_three_restarts_from_each_link() {
    let _s = serial();
    let s = Scratch::new();
    let w = incr(&s, 32, false);
    let c1 = checkpoint(&s, "c1", w.pid, &["-g"], &[]);
    step(&w, 1);
    let c2 = checkpoint(
        &s,
        "c2",
        w.pid,
        &["-g", "--parent", c1.to_str().unwrap()],
        &[],
    );
    step(&w, 2);
    let c3 = checkpoint(
        &s,
        "c3",
        w.pid,
        &["-g", "--parent", c2.to_str().unwrap()],
        &[],
    );
    step(&w, 3);
    let (full, second, third) = (
        pages_size(&c1, w.pid),
        pages_size(&c2, w.pid),
        pages_size(&c3, w.pid),
    );
    eprintln!("page data: full {full}, second {second}, third {third} bytes");
    // a tenth of the pages is written per step
    assert!(
        second < full / 4 && third < full / 4,
        "{full} {second} {third}"
    );
    let shown = info(&c3);
    assert!(
        shown.contains(c2.to_str().unwrap()) && shown.contains(c1.to_str().unwrap()),
        "{shown}"
    );
    assert!(
        shown.contains("userfaultfd write-protect tracking"),
        "{shown}"
    );
    for (sf, at) in [(&c3, 2), (&c2, 1), (&c1, 0)] {
        kill(w.pid);
        restart_expect(sf, &w, at);
    }
    kill(w.pid);
}

#[test]
fn forced_page_comparison_finds_the_same_changes() {
    let _s = serial();
    let s = Scratch::new();
    let w = incr(&s, 16, false);
    let c1 = checkpoint(&s, "c1", w.pid, &["-g"], &[]);
    step(&w, 1);
    let parent = ["-g", "--parent", c1.to_str().unwrap()];
    let c2 = checkpoint(&s, "c2", w.pid, &parent, &[("CPR_DIRTY", "compare")]);
    assert!(info(&c2).contains("comparison with the parent (CPR_DIRTY=compare)"));
    assert!(pages_size(&c2, w.pid) < pages_size(&c1, w.pid) / 4);
    step(&w, 2);
    // tracking re-armed by c2: a child of c1 must not trust it (c2 re-armed it since)
    let c3 = checkpoint(
        &s,
        "c3",
        w.pid,
        &["-k", "--parent", c1.to_str().unwrap()],
        &[],
    );
    wait_pid_gone(w.pid, TIMEOUT);
    assert!(
        info(&c3).contains("no dirty tracking armed"),
        "{}",
        info(&c3)
    );
    restart_expect(&c3, &w, 2);
    kill(w.pid);
    restart_expect(&c2, &w, 1);
    kill(w.pid);
}

/// A workload, its `-g` checkpoint c1, one step, and c2 after c1 (`-k`: the workload is
/// gone). The workload is returned for its guard.
fn parent_and_child(s: &Scratch) -> (Workload, PathBuf, PathBuf) {
    let w = incr(s, 4, false);
    let c1 = checkpoint(s, "c1", w.pid, &["-g"], &[]);
    step(&w, 1);
    let c2 = checkpoint(
        s,
        "c2",
        w.pid,
        &["-k", "--parent", c1.to_str().unwrap()],
        &[],
    );
    wait_pid_gone(w.pid, TIMEOUT);
    (w, c1, c2)
}

#[test]
fn parent_with_dependents_is_not_deleted() {
    let _s = serial();
    let s = Scratch::new();
    let (_w, c1, c2) = parent_and_child(&s);
    let out = cpr(&["-D", c1.to_str().unwrap()]);
    assert_failure(
        &out,
        "cpr -D of a parent",
        &["Resource busy", c2.to_str().unwrap()],
        false,
    );
    assert!(c1.join("MANIFEST").is_file());
    // nor is it replaced by -f
    // its own scratch directory: a READY in a shared log would not be its own
    let s_other = Scratch::new();
    let other = incr(&s_other, 4, false);
    let pid = other.pid.to_string();
    let out = cpr(&["-c", c1.to_str().unwrap(), "-f", "-g", "-p", &pid]);
    assert_failure(&out, "cpr -c -f over a parent", &["Resource busy"], false);
    kill(other.pid);
    assert_success(&cpr(&["-D", c2.to_str().unwrap()]), "cpr -D of the child");
    assert_success(
        &cpr(&["-D", c1.to_str().unwrap()]),
        "cpr -D of the parent after",
    );
    assert!(!c1.exists() && !c2.exists());
}

#[test]
fn changed_parent_is_refused_at_restart() {
    let _s = serial();
    let s = Scratch::new();
    let (w, c1, c2) = parent_and_child(&s);
    // another checkpoint of the parent's name: not the parent c2 was taken after
    let mut manifest = fs::read(c1.join("MANIFEST")).unwrap();
    manifest.push(b'\n');
    fs::write(c1.join("MANIFEST"), manifest).unwrap();
    let out = cpr(&["-r", c2.to_str().unwrap()]);
    assert_failure(&out, "restart after a changed parent", &["c1"], false);
    assert!(!is_alive(w.pid), "nothing may run after a refused restart");
}

#[test]
fn parent_of_other_processes_is_refused() {
    let _s = serial();
    let s = Scratch::new();
    let a = incr(&s, 4, false);
    // its own scratch directory: a READY in a shared log would not be its own
    let s_b = Scratch::new();
    let b = incr(&s_b, 4, false);
    let ca = checkpoint(&s, "ca", a.pid, &["-g"], &[]);
    let sf = s.join("cb");
    let out = cpr(&[
        "-c",
        sf.to_str().unwrap(),
        "-p",
        &b.pid.to_string(),
        "-g",
        "--parent",
        ca.to_str().unwrap(),
    ]);
    assert_failure(
        &out,
        "a parent of another process",
        &["ca", "holds processes"],
        false,
    );
    assert!(!sf.exists());
    kill(a.pid);
    kill(b.pid);
}

#[test]
fn live_checkpoint_of_a_busy_writer_restarts_consistent() {
    let _s = serial();
    let s = Scratch::new();
    let w = incr(&s, 32, true);
    let l1 = checkpoint(&s, "l1", w.pid, &["-g"], &[]);
    let shown = info(&l1);
    assert!(
        shown.contains("Stop time:") && shown.contains("copied while running"),
        "{shown}"
    );
    assert!(l1.join(format!("proc/{}/precopy", w.pid)).is_file());
    kill(w.pid);
    restart_ok(&l1);
    // the memory as it was at the stop: every page agrees with its generation
    signal(w.pid, Signal::SIGUSR1);
    let line = wait_for_line(&w.log, "check=1 ", TIMEOUT);
    assert!(line.starts_with("PASS"), "{line}");
    kill(w.pid);
}

#[test]
fn failed_live_checkpoint_leaves_no_tracking() {
    let _s = serial();
    let s = Scratch::new();
    let w = incr_with(&s, 16, "pipe");
    let sf = s.join("l1");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string(), "-g"]);
    assert_failure(
        &out,
        "a live checkpoint of a process with a pipe out",
        &["pipe"],
        false,
    );
    assert!(!sf.exists());
    assert_eq!(tracking_seen(w.pid), (0, 0), "after a failed checkpoint");
    // and after one that succeeds, the process keeps exactly one, for the next; its own
    // scratch directory, so that its READY is not the first workload's line in a shared
    // log (the checkpoint then caught it before its SIGUSR1 handler, and the check
    // killed it: a flaky failure)
    let s2 = Scratch::new();
    let ok = incr(&s2, 16, false);
    checkpoint(&s2, "l2", ok.pid, &["-g"], &[]);
    assert_eq!(tracking_seen(ok.pid).0, 1);
    signal(ok.pid, Signal::SIGUSR1);
    assert!(wait_for_line(&ok.log, "check=1 ", TIMEOUT).starts_with("PASS"));
    kill(ok.pid);
    kill(w.pid);
}

/// A compressed statefile cannot be a parent (its pages are not at raw offsets); a
/// live checkpoint with `--compress`, and an incremental one on a plain parent, come
/// back with every page.
#[test]
fn compression_with_live_and_incremental_checkpoints() {
    let _s = serial();
    let s = Scratch::new();
    let w = incr(&s, 32, false);
    let packed = checkpoint(&s, "packed", w.pid, &["-g", "--compress"], &[]);
    step(&w, 1);
    let sf = s.join("after-packed");
    let out = cpr(&[
        "-c",
        sf.to_str().unwrap(),
        "-p",
        &w.pid.to_string(),
        "-g",
        "--parent",
        packed.to_str().unwrap(),
    ]);
    assert_failure(
        &out,
        "a compressed parent",
        &["packed", "compressed"],
        false,
    );
    assert!(!sf.exists());
    let plain = checkpoint(&s, "plain", w.pid, &["-g"], &[]);
    step(&w, 2);
    let child = checkpoint(
        &s,
        "child",
        w.pid,
        &["-g", "--compress", "--parent", plain.to_str().unwrap()],
        &[],
    );
    step(&w, 3);
    kill(w.pid);
    restart_expect(&child, &w, 2);
    kill(w.pid);
    restart_expect(&packed, &w, 0);
    kill(w.pid);
}
