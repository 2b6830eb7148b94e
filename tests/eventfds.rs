//! Event and wait objects through a real checkpoint and restart: an epoll loop over an
//! eventfd and a timerfd, a signalfd, POSIX timers; and the refusal of io_uring/perf_event
//! descriptors. Workloads are tests/workloads/ev_*.c; each verifies its own state and
//! prints PASS or FAIL. /proc/PID/fdinfo shows eventfd counts and inotify watch
//! descriptors in hexadecimal: the counts and watch numbers below need two hex digits
//! or more, so that reading them as decimal fails.

mod common;

use common::*;

/// Starts `tests/workloads/NAME.c` with the scratch directory as its control directory;
/// `extra`: names in the scratch directory passed as further arguments, created first (as
/// directories when they end in '/').
fn start(s: &Scratch, name: &str, extra: &[&str]) -> Workload {
    let mut args = vec![s.ctl().to_path_buf()];
    for e in extra {
        let p = s.join(e.trim_end_matches('/'));
        if e.ends_with('/') {
            std::fs::create_dir(&p).unwrap();
        } else {
            std::fs::write(&p, b"").unwrap();
        }
        args.push(p);
    }
    spawn(s, &build(&format!("{name}.c")), &args)
}

/// Checkpoints (WILL EXIT), waits until the original is gone, restarts.
fn checkpoint_and_restart(s: &Scratch, w: &Workload) {
    let sf = checkpoint_set(s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    assert!(is_alive(w.pid), "restored process {} is not running", w.pid);
}

/// PASS (not FAIL) from the workload.
fn expect_pass(w: &Workload) {
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(line.starts_with("PASS"), "{line}");
}

/// The common path: READY, checkpoint, restart, GO (then `after_go`), PASS.
fn round_trip(name: &str, extra: &[&str], after_go: impl FnOnce(&Workload)) {
    let _g = serial();
    let s = Scratch::new();
    let w = start(&s, name, extra);
    wait_for_line(&w.log, "READY", TIMEOUT);
    checkpoint_and_restart(&s, &w);
    s.go();
    after_go(&w);
    expect_pass(&w);
}

#[test]
fn epoll_eventfd_timerfd_survive_restart() {
    round_trip("ev_epoll", &[], |_| {});
}

#[test]
fn signalfd_receives_a_signal_after_restart() {
    round_trip("ev_signalfd", &[], |w| {
        cpr::sys::sigqueue::sigqueue(w.pid, libc::SIGUSR1, 77).expect("sigqueue");
    });
}

#[test]
fn posix_timer_keeps_id_and_fires_after_restart() {
    round_trip("ev_ptimer", &[], |_| {});
}

#[test]
fn inotify_watches_keep_their_numbers() {
    round_trip("ev_inotify", &["watched/", "file"], |_| {});
}

#[test]
fn eventfd_counts_above_nine_keep_their_exact_value() {
    // 16, 26, 1000, 2^64-2, and 26 in a semaphore eventfd
    round_trip("ev_counts", &[], |_| {});
}

#[test]
fn inotify_watch_numbers_above_nine_survive_restart() {
    // watches 1..20 less 2, 11 and 15
    round_trip("ev_watches", &["dirs/"], |_| {});
}

#[test]
fn io_uring_or_perf_descriptor_is_refused_and_process_runs_on() {
    let _g = serial();
    let s = Scratch::new();
    let w = start(&s, "ev_refuse", &[]);
    let ready = wait_for_line(&w.log, "READY", TIMEOUT);
    let kind = field(&ready, "kind").unwrap_or_else(|| panic!("{ready}"));
    let sf = s.join("ckpt");
    let o = cpr(&[
        "-c".as_ref(),
        sf.as_os_str(),
        "-p".as_ref(),
        w.pid.to_string().as_ref(),
    ]);
    assert!(!o.status.success(), "cpr -c succeeded: {}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Checkpoint error"), "{}", describe(&o));
    assert!(
        err.contains(kind) && err.contains(&format!("process {}", w.pid)),
        "{}",
        describe(&o)
    );
    assert!(!sf.exists(), "a statefile was left");
    assert!(is_alive(w.pid), "the process did not survive the refusal");
    let (state, tracer) = proc_status(w.pid).expect("the process is there");
    assert_eq!(tracer, 0, "the process is still traced");
    // running or asleep (under load it may be runnable), never left stopped
    assert!(matches!(state, 'S' | 'R'), "process state {state}");
}
