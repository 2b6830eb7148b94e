//! The fast paths of the page data (issue 12): compressed page data (`cpr -c
//! --compress`), and the restart's page fill split between the restored process and
//! cpr. Each is checked the one way that counts: the workload compares every byte of its
//! memory after the restart. Nothing here is timed.

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

/// Bytes of the statefile's page files (proc/*/pages).
fn pages_size(sf: &Path) -> u64 {
    walkdir::WalkDir::new(sf.join("proc"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "pages")
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// 48 MiB that compress in three quarters of the pages (runs, zeros, text) and not in the
/// rest: with --compress the page data is stored in well under its size, `cpr -i` shows
/// the ratio (text and JSON), and after restart every page is what it was; checkpointed
/// again without --compress, the page data is stored whole and restarts as well.
#[test]
fn compressed_and_plain_page_data_restart_every_page() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("mem_compressible.c"), &[ctl(&s), "48".into()]);
    check(&w, 1);
    let sf = checkpoint_set(&s, "packed", &w.pid.to_string(), &["--compress"], &[w.pid]);
    let stored = pages_size(&sf);
    assert!(
        stored < 32 << 20,
        "48 MiB of mostly compressible memory stored in {stored} bytes"
    );
    let info = cpr(&["-i", sf.to_str().unwrap()]);
    assert_success(&info, "cpr -i");
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("Page data:") && text.contains("compressed (lz4)") && text.contains("ratio"),
        "cpr -i should show the compression: {text}"
    );
    let json = cpr(&["-i", "--json", sf.to_str().unwrap()]);
    assert_success(&json, "cpr -i --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let v = if v.is_array() { &v[0] } else { &v };
    assert_eq!(v["compression"]["method"], "lz4", "cpr -i --json: {v}");
    assert_eq!(v["compression"]["stored_bytes"], stored);
    restart_ok(&sf);
    check(&w, 2);

    let plain = checkpoint_set(&s, "plain", &w.pid.to_string(), &[], &[w.pid]);
    assert!(pages_size(&plain) >= 48 << 20);
    let info = cpr(&["-i", plain.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&info.stdout).contains("Page data:"));
    restart_ok(&plain);
    check(&w, 3);
    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
}

/// Memory that does not compress (bigheap's pseudo-random heap) is stored as it is under
/// --compress, chunk by chunk, not grown by more than the chunk headers; it restarts
/// intact, several times from one statefile.
#[test]
fn incompressible_memory_under_compress_is_stored_and_restarts() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bigheap.c"), &[ctl(&s), "40".into()]);
    check(&w, 1);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &["--compress"], &[w.pid]);
    let stored = pages_size(&sf);
    assert!(
        (40 << 20..(42 << 20) + 4096).contains(&stored),
        "40 MiB of random heap (+1 MiB bss) stored in {stored} bytes"
    );
    // each restart is the process as it was after its first check
    for n in 1..=2 {
        restart_ok(&sf);
        signal(w.pid, Signal::SIGUSR1);
        wait_for_nth_line(&w.log, "PASS check=2", n, TIMEOUT);
        signal(w.pid, Signal::SIGKILL);
        wait_pid_gone(w.pid, TIMEOUT);
    }
}

/// 3000 one-page mappings, every other one read-only, named where the kernel allows: the
/// restart's calls for them (one mmap each, then protections and names) run in several
/// batches of many calls; every page and name comes back, and the mappings stay apart
/// (the read-only ones were not made writable, or neighbours would have merged).
#[test]
fn thousands_of_mappings_restart_through_batches() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("mem_many.c"), &[ctl(&s), "3000".into()]);
    check(&w, 1);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    check(&w, 2);
    signal(w.pid, Signal::SIGKILL);
    wait_pid_gone(w.pid, TIMEOUT);
}
