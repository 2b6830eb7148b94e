//! UNIX socketpairs between the processes of a checkpoint, end to end: a parent and its
//! child (tests/workloads/unix_pair.c) with data in flight both ways are checkpointed
//! with `-p PGID:GID` (WILL EXIT), restarted, and check every byte and message boundary,
//! the shutdown state, O_NONBLOCK and SO_SNDBUF themselves, then go on talking. Sockets
//! cpr cannot bring back (descriptors in flight, a peer outside) are refused with the
//! processes left running and their data untouched.

mod common;

use common::*;

/// Starts unix_pair in `mode`; returns it and its child's pid.
fn start(s: &Scratch, mode: &str) -> (Workload, i32) {
    let (w, ready) = spawn_ready(s, &build("unix_pair.c"), &[ctl(s), mode.to_string()]);
    let child = field(&ready, "child")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no child= in {ready:?}"));
    (w, child)
}

fn round_trip(mode: &str) {
    let _l = serial();
    let s = Scratch::new();
    let (w, child) = start(&s, mode);
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &[], &[w.pid, child]);
    let table: cpr::engine::objects::shared_fds::SharedTable =
        serde_json::from_str(&std::fs::read_to_string(sf.join("shared/table.json")).unwrap())
            .unwrap();
    // two pairs: the conversation, with 8 messages each way, and the one shut down
    let socks = &table.unix_sockets;
    assert_eq!(socks.len(), 4, "{socks:?}");
    let messages: usize = socks.iter().map(|r| r.lengths.len()).sum();
    assert!(messages >= 2, "data in flight saved: {socks:?}");
    for r in socks.iter().filter(|r| !r.lengths.is_empty()) {
        let saved = std::fs::metadata(sf.join(r.data.as_deref().unwrap())).unwrap();
        assert_eq!(saved.len() as usize, r.lengths.iter().sum::<usize>());
    }
    if mode != "stream" {
        assert_eq!(
            socks.iter().filter(|r| r.lengths.len() == 8).count(),
            2,
            "{socks:?}"
        );
    }
    restart_ok(&sf);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert_eq!(line, format!("PASS {mode}"));
    assert_eq!(count_lines(&w.log, "FAIL"), 0);
}

#[test]
fn a_stream_socketpair_comes_back_with_its_bytes_in_flight_and_shutdown() {
    round_trip("stream");
}

#[test]
fn a_datagram_socketpair_comes_back_with_its_messages_in_order() {
    round_trip("dgram");
}

#[test]
fn a_seqpacket_socketpair_comes_back_with_its_message_boundaries() {
    round_trip("seqpacket");
}

/// The checkpoint of `id` is refused naming `needles`; the workload then passes (nothing
/// was consumed).
fn refused_then_passes(s: &Scratch, w: &Workload, id: &str, needles: &[&str]) {
    let sf = s.join("sf");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", id]);
    assert_failure(&out, "checkpoint", needles, false);
    assert!(!sf.join("MANIFEST").exists());
    assert_running_untraced(w.pid);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(line.starts_with("PASS"), "{line}");
}

#[test]
fn a_descriptor_in_flight_is_refused_and_not_dropped() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = start(&s, "rights");
    let id = format!("{}:GID", w.pid);
    refused_then_passes(
        &s,
        &w,
        &id,
        &["Checkpoint error", "SCM_RIGHTS", "not checkpoint safe"],
    );
}

#[test]
fn a_socket_whose_peer_is_outside_is_refused() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = start(&s, "stream");
    // the parent alone: its child holds the other ends
    refused_then_passes(
        &s,
        &w,
        &w.pid.to_string(),
        &[
            "Checkpoint error",
            &format!("process {}", w.pid),
            "outside the checkpoint",
        ],
    );
}

#[test]
fn the_dry_run_names_a_socket_whose_peer_is_outside() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = start(&s, "stream");
    let out = cpr(&[
        "-c",
        &s.join("sf").display().to_string(),
        "-p",
        &w.pid.to_string(),
        "--dry-run",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("outside the checkpoint") && text.contains("UNIX stream socket"),
        "{text}"
    );
    s.go();
    wait_for_line(&w.log, "PASS", TIMEOUT);
}

#[test]
fn the_originals_keep_their_queued_data_when_they_continue() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = start(&s, "seqpacket");
    // -g (WILL CONT): the originals go on, after every queue was read through MSG_PEEK
    checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &["-g"], &[]);
    assert_running_untraced(w.pid);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert_eq!(line, "PASS seqpacket");
}
