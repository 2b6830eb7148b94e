//! Lazy restart (`cpr -r --lazy`, issue 12): cpr returns once the processes run and a
//! filler process brings their memory in on demand and in the background. Each test
//! checks the one thing that counts: the workload compares every word of its memory
//! after the restart. Nothing here is timed.

mod common;

use std::path::Path;

use common::*;
use nix::sys::signal::Signal;

/// Sends SIGUSR1 to a workload that checks all its memory on it, and waits for its
/// `PASS check=N`.
fn check(w: &Workload, n: u32) -> String {
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, &format!("PASS check={n}"), TIMEOUT)
}

/// `cpr -r --lazy SF`, which must succeed; returns the filler's PID from its line.
fn restart_lazy(sf: &Path) -> i32 {
    restart_lazy_with(sf, &[])
}

/// `restart_lazy` with more environment (`CPR_LAZY_FILL=faults`).
fn restart_lazy_with(sf: &Path, env: &[(&str, &str)]) -> i32 {
    let out = cpr_command()
        .envs(env.iter().copied())
        .args(["-r".as_ref(), "--lazy".as_ref(), sf.as_os_str()])
        .output()
        .expect("run cpr");
    assert_success(&out, &format!("cpr -r --lazy {}", sf.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("cpr: lazy restart: memory filled in the background by process "))
        .unwrap_or_else(|| panic!("no filler line: {}", describe(&out)));
    line.rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no filler PID in {line:?}"))
}

/// The descriptor numbers process `pid` has open.
fn fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort();
    v
}

/// A 192 MiB heap restarted lazily: every word of heap, bss and stack is what it was,
/// twice (the second check after the filler is surely done), and the restored process
/// has exactly the descriptors it had (the userfaultfd descriptor does not show).
#[test]
fn large_heap_restarts_lazily_with_every_word() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "192".into()]);
    check(&w, 1);
    let before = fds(w.pid);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    let filler = restart_lazy(&sf);
    assert_eq!(fds(w.pid), before, "descriptors of the restored process");
    check(&w, 2);
    wait_pid_gone(filler, TIMEOUT);
    check(&w, 3);
    assert_eq!(count_lines(&w.log, "FAIL"), 0);
    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
}

/// Two processes restarted lazily from one statefile: one filler serves both, and both
/// check all their memory.
#[test]
fn several_processes_restart_lazily() {
    let _s = serial();
    let s = Scratch::new();
    let prog = build("bigheap.c");
    let a = spawn_to(&s, &prog, &[ctl(&s), "64".into()], s.join("a.log"));
    let b = spawn_to(&s, &prog, &[ctl(&s), "96".into()], s.join("b.log"));
    wait_for_line(&a.log, "READY", TIMEOUT);
    wait_for_line(&b.log, "READY", TIMEOUT);
    let ids = format!("{},{}", a.pid, b.pid);
    let sf = checkpoint_set(&s, "ckpt", &ids, &[], &[a.pid, b.pid]);
    restart_lazy(&sf);
    check(&a, 1);
    check(&b, 1);
    for w in [&a, &b] {
        signal(w.pid, Signal::SIGKILL);
        wait_pid_gone(w.pid, TIMEOUT);
    }
}

/// Compressed page data is not restarted lazily: one line naming the statefile, and
/// nothing restarted; the eager restart of the same statefile works.
#[test]
fn compressed_statefile_is_refused_for_lazy_restart() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "8".into()]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &["--compress"], &[w.pid]);
    let out = cpr(&["-r".as_ref(), "--lazy".as_ref(), sf.as_os_str()]);
    assert_failure(
        &out,
        "cpr -r --lazy of compressed page data",
        &[&sf.display().to_string(), "compressed"],
        false,
    );
    assert!(!is_alive(w.pid), "nothing restarted");
    restart_ok(&sf);
    check(&w, 1);
    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
}

/// With faults served alone (`CPR_LAZY_FILL=faults`: nothing copied in the background),
/// every word the workload checks came in through a fault, and all are right.
#[test]
fn memory_served_by_faults_alone_is_whole() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "64".into()]);
    check(&w, 1);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    let filler = restart_lazy_with(&sf, &[("CPR_LAZY_FILL", "faults")]);
    check(&w, 2);
    check(&w, 3);
    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
    // with its process gone the filler ends too
    wait_pid_gone(filler, TIMEOUT);
}

/// The filler killed before it is done (it serves faults only, so it is not done until
/// the workload touched every page): the keeper kills the restored process, which never
/// runs on with pages missing (it would print FAIL on its check, or PASS on zeros).
#[test]
fn killed_filler_takes_the_restored_processes_with_it() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "64".into()]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    let filler = restart_lazy_with(&sf, &[("CPR_LAZY_FILL", "faults")]);
    assert!(
        is_alive(filler),
        "the filler serving faults alone is not done"
    );
    signal(filler, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
    assert_eq!(count_lines(&w.log, "FAIL"), 0, "ran with pages missing");
    assert_eq!(
        count_lines(&w.log, "PASS"),
        0,
        "checked memory it did not have"
    );
}
