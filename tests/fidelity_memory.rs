//! Memory comes back exactly as it was (issue 9): contents of every kind of mapping,
//! advice and locks (smaps VmFlags), memfds, mapped deleted files; what cannot come back
//! identically is refused at checkpoint. Each workload checks its own state after restart
//! with what a program would use (reading bytes back, /proc/self/smaps, fstatfs,
//! fcntl(F_GET_SEALS), SEEK_HOLE).
//!
//! Run them alone: `cargo test --test fidelity_memory` (they take the global lock).

mod common;

use std::path::PathBuf;

use common::*;

/// Start `source` (its control directory its one argument), READY, checkpoint (WILL
/// EXIT), restart, GO: it must PASS.
fn round_trip(source: &str) -> String {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build(source), &[ctl(&s)]);
    let sf: PathBuf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w)
}

/// Private file mappings partly written, then grown, shrunk, moved, or with the file
/// grown under them; shared file, shared anonymous and /dev/zero mappings: every page
/// holds the bytes it held.
#[test]
fn every_mapping_kind_keeps_its_bytes() {
    round_trip("mem_contents.c");
}

/// A large mapping written in stretches with holes between, parts of it read-only and
/// PROT_NONE: restart fills it from both CPUs (the child's part faulted in ahead of its
/// preadv, stretch by stretch), every written page holds its bytes, every hole stays
/// unpopulated, the protections stay.
#[test]
fn a_sparse_heap_with_protected_parts_keeps_its_bytes_and_holes() {
    round_trip("mem_sparse.c");
}

/// madvise advice, mlock and mlock2(MLOCK_ONFAULT), MAP_NORESERVE show the same smaps
/// VmFlags after restart; a MAP_GROWSDOWN mapping still grows; MADV_WIPEONFORK and
/// MADV_DONTFORK still act on the next fork.
#[test]
fn advice_locks_and_growth_survive() {
    round_trip("mem_advice.c");
}

/// A mapping whose VmFlags say it cannot come back as it was (MAP_DROPPABLE: "dp") is
/// refused at checkpoint with "Checkpoint error" naming the process and the mapping; no
/// statefile is left and the process runs on.
#[test]
fn unrestorable_memory_is_refused() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("mem_droppable.c"), &[ctl(&s)]);
    let addr = field(&ready, "addr").expect("addr").to_string();
    let sf = s.join("ckpt");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string()]);
    let pid = format!("process {}", w.pid);
    assert_failure(
        &out,
        "checkpoint of droppable memory",
        &["Checkpoint error", &pid, &addr, "'dp'"],
        false,
    );
    assert!(!sf.exists(), "no statefile may be left");
    assert_running_untraced(w.pid);
    s.go();
    expect_pass_and_exit(&w);
}

/// A memfd mapped shared and private (past its end) comes back a memfd on tmpfs with its
/// name, size, seals, holes and bytes, one object behind both mappings; a file deleted
/// while mapped shared and private comes back one file, "(deleted)" at its path, with its
/// mode, size, holes and bytes.
#[test]
fn memfds_and_deleted_files_stay_what_they_were() {
    round_trip("mem_objects.c");
}

/// A shared mapping that could be made writable (its file open read-write) still can
/// after restart, and one that could not (open read-only, the file deleted since) still
/// cannot.
#[test]
fn shared_mappings_keep_whether_they_may_become_writable() {
    round_trip("mem_maywrite.c");
}

/// A process that unmapped its vDSO (not its vvar pages) has none after restart.
#[test]
fn an_unmapped_vdso_stays_unmapped() {
    round_trip("mem_novdso.c");
}

/// The bytes of every file of statefile `sf`.
fn statefile_bytes(sf: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(sf).expect("statefile directory") {
        let e = e.expect("statefile entry");
        let meta = e.metadata().expect("statefile entry");
        total += if meta.is_dir() {
            statefile_bytes(&e.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A parent that filled 64 MiB and forked three children, each of which wrote 8 pages
/// of its own, one of them a grandchild that wrote 8 more: after restart every page a
/// process did not write is again its parent's very page (pagemap), each process holds
/// its bytes, and the statefile holds about one copy of the 64 MiB, not five (issue 9,
/// zdtm cow00).
#[test]
fn pages_shared_copy_on_write_after_fork_stay_shared() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("mem_cow.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid]);
    let bytes = statefile_bytes(&sf);
    assert!(
        bytes < 96 << 20,
        "statefile holds {bytes} bytes for 64 MiB shared by 4 processes"
    );
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}
