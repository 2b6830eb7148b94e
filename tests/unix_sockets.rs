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

// ---- named, listening and accepted sockets (unix_server.c) ------------------------------

/// Starts unix_server; returns it and its client's pid.
fn start_server(s: &Scratch) -> (Workload, i32) {
    let (w, ready) = spawn_ready(s, &build("unix_server.c"), &[ctl(s)]);
    let child = field(&ready, "child")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no child= in {ready:?}"));
    (w, child)
}

fn server_round_trip(before_restart: impl FnOnce(&Scratch)) {
    let _l = serial();
    let s = Scratch::new();
    let (w, child) = start_server(&s);
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &[], &[w.pid, child]);
    // the originals left their socket files behind: restart takes them back
    assert!(s.join("listen.sock").exists());
    let info = cpr(&["-i", &sf.display().to_string()]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("listening (backlog 5, 1 waiting)")
            && text.contains("waiting to be accepted")
            && text.contains("accepted, connected in the checkpoint"),
        "{}",
        describe(&info)
    );
    before_restart(&s);
    restart_ok(&sf);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert_eq!(line, "PASS server", "{:?}", read_lines(&w.log));
    assert_eq!(count_lines(&w.log, "FAIL"), 0);
}

#[test]
fn a_listening_server_comes_back_with_its_accepted_and_waiting_connections() {
    server_round_trip(|_| {});
}

#[test]
fn a_removed_socket_file_is_made_again_with_its_mode() {
    server_round_trip(|s| std::fs::remove_file(s.join("listen.sock")).unwrap());
}

#[test]
fn a_bound_path_taken_at_restart_fails_cleanly_naming_it() {
    let _l = serial();
    let s = Scratch::new();
    let (w, child) = start_server(&s);
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &[], &[w.pid, child]);
    // the originals left their socket files; those the restart binds before it meets the
    // taken name are removed again when it fails: any left is an original's
    use std::os::unix::fs::MetadataExt;
    let inode = |name: &str| std::fs::metadata(s.join(name)).ok().map(|m| m.ino());
    let before = [inode("listen.sock"), inode("dgp.sock")];
    let path = s.join("dgc.sock");
    std::fs::remove_file(&path).unwrap();
    let taker = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "restart",
        &["Address already in use", &path.display().to_string()],
        false,
    );
    assert!(!is_alive(w.pid) && !is_alive(child));
    for (name, was) in ["listen.sock", "dgp.sock"].into_iter().zip(before) {
        let now = inode(name);
        assert!(
            now.is_none() || now == was,
            "{name} made by the failed restart"
        );
    }
    drop(taker);
    std::fs::remove_file(&path).unwrap();
    restart_ok(&sf);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS server");
}

#[test]
fn a_restart_beside_the_running_originals_finds_their_names_in_use() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = start_server(&s);
    // -g: the originals run on, bound to their names (FORK ANY: their PIDs are no obstacle)
    let attrs = s.attributes("CKPT * { FORK: ANY }");
    let extra = ["-g", "--attributes", attrs.to_str().unwrap()];
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &extra, &[]);
    let out = restart_all(&[&sf]);
    let names: Vec<String> = ["listen.sock", "dgp.sock", "dgc.sock"]
        .iter()
        .map(|n| format!("'{}': Address already in use", s.join(n).display()))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_failure(&out, "restart", &names, true);
    // the originals' socket files are theirs still
    assert!(s.join("listen.sock").exists() && s.join("dgp.sock").exists());
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS server");
}

// ---- peers outside the checkpoint: the SOCKET policy (unix_client.c) --------------------

/// An outside server at `<scratch>/outside.sock` and unix_client connected to it;
/// returns them with the first connection (stream) and its "before" line read.
struct Outside {
    path: std::path::PathBuf,
    stream: Option<std::os::unix::net::UnixListener>,
    dgram: Option<std::os::unix::net::UnixDatagram>,
    first: Option<std::os::unix::net::UnixStream>,
    w: Workload,
}

fn outside(s: &Scratch, kind: &str) -> Outside {
    use std::io::BufRead;
    let path = s.join("outside.sock");
    let (stream, dgram) = if kind == "stream" {
        (
            Some(std::os::unix::net::UnixListener::bind(&path).unwrap()),
            None,
        )
    } else {
        (
            None,
            Some(std::os::unix::net::UnixDatagram::bind(&path).unwrap()),
        )
    };
    let (w, _) = spawn_ready(
        s,
        &build("unix_client.c"),
        &[ctl(s), path.display().to_string(), kind.to_string()],
    );
    let first = stream.as_ref().map(|l| {
        let (c, _) = l.accept().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(&c).read_line(&mut line).unwrap();
        assert_eq!(line, "before\n");
        c
    });
    if let Some(d) = &dgram {
        let mut buf = [0u8; 64];
        let n = d.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"before\n");
    }
    Outside {
        path,
        stream,
        dgram,
        first,
        w,
    }
}

fn checkpoint_with(s: &Scratch, pid: i32, policy: &str) -> std::path::PathBuf {
    let attrs = s.attributes(&format!(
        "CKPT * {{ SOCKET: \"unix:{}\": {policy} }}",
        s.join("outside.sock").display()
    ));
    checkpoint_set(
        s,
        "sf",
        &pid.to_string(),
        &["--attributes", attrs.to_str().unwrap()],
        &[pid],
    )
}

#[test]
fn an_outside_peer_is_refused_by_default_and_with_repair() {
    let _l = serial();
    let s = Scratch::new();
    let o = outside(&s, "stream");
    let address = format!("unix:{}", o.path.display());
    let sf = s.join("sf").display().to_string();
    let pid = o.w.pid.to_string();
    let out = cpr(&["-c", &sf, "-p", &pid]);
    assert_failure(
        &out,
        "checkpoint",
        &["Checkpoint error", &address, "outside the checkpoint"],
        false,
    );
    let preview = cpr(&["-c", &sf, "-p", &pid, "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&preview.stderr).contains(&address),
        "{}",
        describe(&preview)
    );
    let attrs = s.attributes(&format!("CKPT * {{ SOCKET: \"{address}\": REPAIR }}"));
    let out = cpr(&[
        "-c",
        &sf,
        "-p",
        &pid,
        "--attributes",
        attrs.to_str().unwrap(),
    ]);
    assert_failure(&out, "checkpoint", &["REPAIR", "RECONNECT or CLOSE"], false);
    assert_running_untraced(o.w.pid);
    // the same connection goes on
    s.go_with("still");
    assert_eq!(wait_for_line(&o.w.log, "PASS", TIMEOUT), "PASS still");
    use std::io::Read;
    let mut rest = String::new();
    o.first.as_ref().unwrap().read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "after\n");
    drop(o.stream);
}

#[test]
fn reconnect_connects_a_new_stream_to_the_outside_server() {
    use std::io::BufRead;
    let _l = serial();
    let s = Scratch::new();
    let o = outside(&s, "stream");
    // the dry run agrees with the checkpoint: the policy makes the socket acceptable
    let attrs = s.attributes(&format!(
        "CKPT * {{ SOCKET: \"unix:{}\": RECONNECT }}",
        o.path.display()
    ));
    let preview = cpr(&[
        "-c",
        &s.join("sf").display().to_string(),
        "-p",
        &o.w.pid.to_string(),
        "--dry-run",
        "--attributes",
        attrs.to_str().unwrap(),
    ]);
    assert_eq!(preview.status.code(), Some(0), "{}", describe(&preview));
    let sf = checkpoint_with(&s, o.w.pid, "RECONNECT");
    let info = cpr(&["-i", &sf.display().to_string()]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("RECONNECT to"),
        "{}",
        describe(&info)
    );
    restart_ok(&sf);
    let (c, _) = o.stream.as_ref().unwrap().accept().unwrap();
    s.go_with("reconnect");
    let mut line = String::new();
    std::io::BufReader::new(&c).read_line(&mut line).unwrap();
    assert_eq!(line, "after\n");
    assert_eq!(wait_for_line(&o.w.log, "PASS", TIMEOUT), "PASS reconnect");
}

#[test]
fn reconnect_fails_cleanly_naming_the_path_when_nothing_listens() {
    let _l = serial();
    let s = Scratch::new();
    let o = outside(&s, "stream");
    let sf = checkpoint_with(&s, o.w.pid, "RECONNECT");
    drop(o.stream);
    std::fs::remove_file(&o.path).unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(&out, "restart", &[&o.path.display().to_string()], false);
    assert!(!is_alive(o.w.pid));
}

#[test]
fn reconnect_takes_a_dev_log_style_datagram_socket_to_its_receiver_again() {
    let _l = serial();
    let s = Scratch::new();
    let o = outside(&s, "dgram");
    let sf = checkpoint_with(&s, o.w.pid, "RECONNECT");
    restart_ok(&sf);
    s.go_with("reconnect");
    assert_eq!(wait_for_line(&o.w.log, "PASS", TIMEOUT), "PASS reconnect");
    let mut buf = [0u8; 64];
    let n = o.dgram.as_ref().unwrap().recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"after\n");
}

#[test]
fn close_brings_back_a_socket_whose_peer_is_gone() {
    let _l = serial();
    let s = Scratch::new();
    let o = outside(&s, "stream");
    let sf = checkpoint_with(&s, o.w.pid, "CLOSE");
    drop(o.first);
    restart_ok(&sf);
    s.go_with("close");
    assert_eq!(wait_for_line(&o.w.log, "PASS", TIMEOUT), "PASS close");
    drop(o.stream);
}
