//! Process attributes come back identical, or the restart is refused: scheduling,
//! capabilities, process groups and sessions, and the check before release that compares
//! every restored process with its statefile. Each workload sets its state, is
//! checkpointed and restarted, then checks itself with the calls a program would use.
//!
//! Run them alone: `cargo test --test fidelity_process` (they take the global lock).

mod common;

use common::*;

/// start, READY, checkpoint (WILL EXIT), restart, GO, PASS: returns the PASS line.
fn round_trip(source: &str) -> String {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build(source), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w)
}

/// Policy, real-time priority, nice and CPU affinity of each thread of a process (one
/// SCHED_BATCH, one SCHED_FIFO, one SCHED_IDLE, each on its own CPUs).
#[test]
fn scheduling_of_every_thread() {
    let pass = round_trip("fp_sched.c");
    assert!(pass.contains("fifo: policy 1/1 priority 7/7"), "{pass}");
}
