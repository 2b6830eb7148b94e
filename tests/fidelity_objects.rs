//! One kernel object comes back as one object of the same kind (issue 9): a deleted file
//! or a memfd both mapped and open as a descriptor, and a memfd held only as a
//! descriptor. The workload is tests/workloads/obj_identity.c; it checks its own state
//! after restart (writes through one reference read through the other, fstatfs,
//! F_GET_SEALS, /proc/self/fd) and prints PASS or FAIL.

mod common;

use common::*;

/// Starts obj_identity in `mode`, READY, checkpoint (WILL EXIT, with its child if it
/// forked one), restart, GO: it must PASS.
fn round_trip(mode: &str) {
    let _g = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("obj_identity.c"), &[ctl(&s), mode.into()]);
    let mut gone = vec![w.pid];
    gone.extend(field(&ready, "child").and_then(|c| c.parse::<i32>().ok()));
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn deleted_file_mapped_and_open_comes_back_as_one_file() {
    round_trip("deleted");
}

#[test]
fn memfd_held_as_a_descriptor_comes_back_as_a_sealed_named_memfd() {
    round_trip("memfd");
}

#[test]
fn memfd_mapped_and_open_comes_back_as_one_memfd() {
    round_trip("both");
}
