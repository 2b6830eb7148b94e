//! Processes stopped by job control (SIGSTOP, SIGTSTP) at checkpoint time come back
//! stopped, and their parent still sees the stop and can continue them.

mod common;

use common::*;
use nix::sys::signal::Signal;

/// Waits until `pid` is stopped by job control (not in a tracing stop) and untraced.
fn wait_job_stopped(pid: i32) {
    wait_until(
        &format!("process {pid} stopped and untraced"),
        TIMEOUT,
        || proc_status(pid) == Some(('T', 0)),
    );
}

/// A child stopped by SIGTSTP is checkpointed with its parent (`-p PGID:GID`) and
/// restarted: it is stopped again, its parent's waitpid(WUNTRACED) reports the stop, the
/// parent continues it with SIGCONT, and it checks its memory and exits.
#[test]
fn a_stopped_child_comes_back_stopped_for_its_parent() {
    let _serial = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("jobstop.c"), &[ctl(&s)]);
    let kid: i32 = field(&ready, "child").unwrap().parse().unwrap();
    wait_job_stopped(kid);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:GID", w.pid), &[], &[w.pid, kid]);
    assert_success(&restart_all(&[&sf]), "cpr -r of the stopped job");
    wait_job_stopped(kid);
    assert_running_untraced(w.pid);
    s.go();
    wait_for_line(&w.log, "PASS stopped_by=", TIMEOUT);
    wait_for_line(&w.log, "PASS child", TIMEOUT);
}

/// A process stopped by SIGSTOP (from outside, with no parent of its own in the
/// checkpoint) comes back stopped; SIGCONT lets it go on, its memory intact.
#[test]
fn a_stopped_process_comes_back_stopped() {
    let _serial = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("survivor.c"), &[ctl(&s), "4".into()]);
    signal(w.pid, Signal::SIGSTOP);
    wait_job_stopped(w.pid);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    assert_success(&restart_all(&[&sf]), "cpr -r of the stopped process");
    wait_job_stopped(w.pid);
    signal(w.pid, Signal::SIGCONT);
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, "PASS check=1 ", TIMEOUT);
}

/// Whether `sig` is pending for the whole of process `pid` (ShdPnd).
fn pending_shared(pid: i32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig as i32 - 1)) != 0)
}

/// A stopped process with a second SIGSTOP pending takes it as soon as cpr runs a call in
/// it: the checkpoint failed with "signal SIGSTOP during injected syscall". Now it
/// succeeds (-g), and the process is left stopped, untraced; continued, it passes its
/// self-check.
#[test]
fn a_stop_signal_taken_during_the_checkpoint_is_kept() {
    let _serial = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("survivor.c"), &[ctl(&s), "4".into()]);
    signal(w.pid, Signal::SIGSTOP);
    wait_job_stopped(w.pid);
    signal(w.pid, Signal::SIGSTOP);
    wait_until("a pending SIGSTOP", TIMEOUT, || {
        pending_shared(w.pid, Signal::SIGSTOP)
    });
    checkpoint_set(&s, "ckpt", &w.pid.to_string(), &["-g"], &[]);
    wait_job_stopped(w.pid);
    signal(w.pid, Signal::SIGCONT);
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, "PASS check=1 ", TIMEOUT);
}
