//! TCP and UDP sockets, end to end. A server and its client on loopback in one process
//! group (tests/workloads/inet_loopback.c), with data unread both ways, part of it still
//! unsent, and a connection waiting in the accept queue, are checkpointed with
//! `-p PGID:GID`, restarted, and check every byte, their options and the waiting
//! connection themselves; an IPv6 UDP pair likewise with its datagrams. A client of a
//! server outside the checkpoint (run by the test: it echoes lines) goes by the SOCKET
//! policy: REFUSE, REPAIR, RECONNECT, CLOSE; a restart fails whole when an address is
//! taken or a REPAIR peer is gone.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;

fn loopback_round_trip(mode: &str) {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("inet_loopback.c"), &[ctl(&s), mode.to_string()]);
    let mut gone = vec![w.pid];
    if let Some(child) = field(&ready, "child").and_then(|v| v.parse().ok()) {
        gone.push(child);
    }
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &[], &gone);
    let table: cpr::engine::objects::shared_fds::SharedTable =
        serde_json::from_str(&std::fs::read_to_string(sf.join("shared/table.json")).unwrap())
            .unwrap();
    let socks = &table.inet_sockets;
    if mode == "udp6" {
        assert_eq!(socks.len(), 2, "{socks:?}");
        assert!(socks.iter().all(|r| r.datagrams.len() == 3), "{socks:?}");
    } else if mode == "udp4shut" {
        let mut shut: Vec<u8> = socks.iter().map(|r| r.shutdown).collect();
        shut.sort();
        assert_eq!(shut, [1, 2], "{socks:?}");
    } else {
        use cpr::engine::objects::inet_sockets::Disposition;
        // the listener, both ends of the accepted connection, the waiting client
        assert_eq!(socks.len(), 4, "{socks:?}");
        let repaired: Vec<_> = socks
            .iter()
            .filter(|r| r.how == Disposition::Repaired { outside: false })
            .collect();
        assert_eq!(repaired.len(), 2, "{socks:?}");
        let unsent: u32 = repaired
            .iter()
            .map(|r| r.tcp.as_ref().unwrap().unsent)
            .sum();
        assert!(
            unsent > 0,
            "part of the server's data was never sent: {socks:?}"
        );
        assert!(
            socks
                .iter()
                .any(|r| matches!(r.how, Disposition::Waiting { .. })),
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
fn a_tcp_server_and_client_on_ipv4_loopback_come_back_with_their_data_and_waiting_connection() {
    loopback_round_trip("tcp4");
}

#[test]
fn a_tcp_server_and_client_on_ipv6_loopback_come_back_with_their_data_and_waiting_connection() {
    loopback_round_trip("tcp6");
}

#[test]
fn an_ipv6_udp_pair_comes_back_with_its_datagrams_in_order() {
    loopback_round_trip("udp6");
}

/// zdtm socket_udp_shutdown: a UDP socket shut down for writing could send again after
/// restart.
#[test]
fn udp_sockets_come_back_shut_down_as_they_were() {
    loopback_round_trip("udp4shut");
}

#[test]
fn connections_read_in_repair_mode_work_on_when_the_originals_continue() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(
        &s,
        &build("inet_loopback.c"),
        &[ctl(&s), "tcp4".to_string()],
    );
    // -g (WILL CONT): repair mode and the input hold are let go before they run on
    checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &["-g"], &[]);
    assert_running_untraced(w.pid);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert_eq!(line, "PASS tcp4");
}

#[test]
fn a_restart_whose_listening_address_is_taken_fails_naming_it() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(
        &s,
        &build("inet_loopback.c"),
        &[ctl(&s), "tcp4".to_string()],
    );
    let port: u16 = field(&ready, "port").unwrap().parse().unwrap();
    let child: i32 = field(&ready, "child").unwrap().parse().unwrap();
    let sf = checkpoint_set(&s, "sf", &format!("{}:GID", w.pid), &[], &[w.pid, child]);
    let squatter = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "restart",
        &[&format!("tcp:127.0.0.1:{port}"), "Address already in use"],
        false,
    );
    assert!(s.processes().is_empty(), "{:?}", s.processes());
    drop(squatter);
    restart_ok(&sf);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS tcp4");
}

/// A line echo server outside the checkpoint; it keeps its connections to drop them.
struct EchoServer {
    port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl EchoServer {
    fn start() -> EchoServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let kept = conns.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                kept.lock().unwrap().push(c.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut out = c.try_clone().unwrap();
                    for line in BufReader::new(c).lines() {
                        let Ok(line) = line else { break };
                        if out.write_all(format!("{line}\n").as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        EchoServer { port, conns }
    }

    fn accepted(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Closes every connection it has (the peer of a checkpointed client goes away).
    fn drop_connections(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn start_client(s: &Scratch, server: &EchoServer, expect: &str) -> Workload {
    let (w, _) = spawn_ready(
        s,
        &build("inet_client.c"),
        &[ctl(s), server.port.to_string(), expect.to_string()],
    );
    w
}

fn checkpoint_with_policy(s: &Scratch, w: &Workload, action: &str) -> std::path::PathBuf {
    let attrs = s.attributes(&format!(
        "CKPT PID {} {{\n    SOCKET: \"tcp:127.0.0.1:*\": {action}\n}}\n",
        w.pid
    ));
    checkpoint_set(
        s,
        "sf",
        &w.pid.to_string(),
        &["--attributes", attrs.to_str().unwrap()],
        &[w.pid],
    )
}

#[test]
fn a_connection_to_an_outside_server_is_refused_by_default() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let w = start_client(&s, &server, "echo");
    let sf = s.join("sf");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", &w.pid.to_string()]);
    assert_failure(
        &out,
        "checkpoint",
        &[
            "Checkpoint error",
            &format!("tcp:127.0.0.1:{}", server.port),
            "REFUSE",
        ],
        false,
    );
    assert!(!sf.join("MANIFEST").exists());
    assert_running_untraced(w.pid);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS echo");
}

#[test]
fn a_connection_to_an_outside_server_comes_back_as_it_was_under_repair() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let w = start_client(&s, &server, "echo");
    let sf = checkpoint_with_policy(&s, &w, "REPAIR");
    restart_ok(&sf);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS echo");
    // the same connection: the server never accepted another
    assert_eq!(server.accepted(), 1);
}

#[test]
fn a_restart_under_repair_fails_whole_when_the_peer_is_gone() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let w = start_client(&s, &server, "echo");
    let sf = checkpoint_with_policy(&s, &w, "REPAIR");
    server.drop_connections();
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "restart",
        &[&format!("tcp:127.0.0.1:{}", server.port), "is gone"],
        false,
    );
    assert!(s.processes().is_empty(), "{:?}", s.processes());
}

#[test]
fn a_connection_to_an_outside_server_is_made_anew_under_reconnect() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let w = start_client(&s, &server, "echo");
    let sf = checkpoint_with_policy(&s, &w, "RECONNECT");
    restart_ok(&sf);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS echo");
    assert_eq!(server.accepted(), 2);
}

#[test]
fn a_connection_to_an_outside_server_comes_back_closed_under_close() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let w = start_client(&s, &server, "eof");
    let sf = checkpoint_with_policy(&s, &w, "CLOSE");
    restart_ok(&sf);
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS eof");
}

#[test]
fn the_dry_run_and_info_say_what_becomes_of_each_socket() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(
        &s,
        &build("inet_loopback.c"),
        &[ctl(&s), "tcp4".to_string()],
    );
    let child: i32 = field(&ready, "child").unwrap().parse().unwrap();
    let id = format!("{}:GID", w.pid);
    let sf = s.join("sf");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", &id, "--dry-run"]);
    assert_success(&out, "dry run");
    let text = String::from_utf8_lossy(&out.stdout);
    for what in [
        "listening again on its address",
        "connection restored with its peer (TCP repair)",
        "connected again into its server's accept queue",
    ] {
        assert!(text.contains(what), "{what}: {text}");
    }
    let sf = checkpoint_set(&s, "sf", &id, &[], &[w.pid, child]);
    let out = cpr(&["-i", &sf.display().to_string()]);
    assert_success(&out, "cpr -i");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Sockets:") && text.contains("(backlog 7)"),
        "{text}"
    );
    assert_eq!(text.matches("| tcp4 |").count(), 4, "{text}");
    // and in the descriptor table of the client
    assert_eq!(
        text.matches("connected again into its server's accept queue")
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn a_netlink_socket_is_refused_unless_the_socket_policy_closes_it() {
    let _l = serial();
    let s = Scratch::new();
    // a listening TCP socket and a netlink socket
    let (w, ready) = spawn_ready(&s, &build("socket.c"), &[ctl(&s)]);
    let port: u16 = field(&ready, "port").unwrap().parse().unwrap();
    let sf = s.join("sf");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", &w.pid.to_string()]);
    assert_failure(&out, "checkpoint", &["Checkpoint error", "netlink"], false);
    assert_running_untraced(w.pid);
    let attrs = s.attributes(&format!("CKPT PID {} {{\n    SOCKET: CLOSE\n}}\n", w.pid));
    let sf = checkpoint_set(
        &s,
        "sf",
        &w.pid.to_string(),
        &["--attributes", attrs.to_str().unwrap()],
        &[w.pid],
    );
    let out = cpr(&["-i", &sf.display().to_string()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("netlink:0"),
        "{}",
        describe(&out)
    );
    restart_ok(&sf);
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the socket listens again");
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS socket");
}

#[test]
fn a_checkpoint_that_fails_after_repair_mode_leaves_the_connection_working() {
    let _l = serial();
    let s = Scratch::new();
    let server = EchoServer::start();
    let (w, ready) = spawn_ready(
        &s,
        &build("inet_client.c"),
        &[
            ctl(&s),
            server.port.to_string(),
            "echo".into(),
            "udp".into(),
        ],
    );
    let udp: u16 = field(&ready, "udp").unwrap().parse().unwrap();
    // a datagram from outside, queued and never read: refused once the connection to
    // the server is already held in repair mode
    let outsider = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    outsider.send_to(b"unread", ("127.0.0.1", udp)).unwrap();
    let attrs = s.attributes(&format!(
        "CKPT PID {} {{\n    SOCKET: \"tcp:127.0.0.1:*\": REPAIR\n}}\n",
        w.pid
    ));
    let sf = s.join("sf");
    let out = cpr(&[
        "-c",
        &sf.display().to_string(),
        "-p",
        &w.pid.to_string(),
        "--attributes",
        attrs.to_str().unwrap(),
    ]);
    assert_failure(
        &out,
        "checkpoint",
        &["Checkpoint error", "outside the checkpoint", "datagram"],
        false,
    );
    assert_running_untraced(w.pid);
    // the connection left repair mode and got its input back
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS echo");
}
