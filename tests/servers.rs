//! Real servers no one here wrote, installed from Debian packages (.ci/run), checkpointed
//! whole with a client connected and restarted. Redis: a session of its own
//! (tests/workloads/redis_session.py) holding redis-server and a client that keeps one
//! TCP connection to it and filled its data set through it; checkpointed with
//! `-p SID:SID`, restarted, the data set is served to a new client (redis-cli) and the
//! held connection is still the one the server knows by name.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A TCP port of 127.0.0.1 free right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_comes_back_serving_its_data_set_with_its_client_still_connected() {
    if !Path::new("/usr/bin/redis-server").exists() || !Path::new("/usr/bin/redis-cli").exists() {
        assert!(
            !in_ci(),
            "redis-server and redis-cli are installed by .ci/run"
        );
        eprintln!("skipped: redis-server or redis-cli is not installed");
        return;
    }
    let _l = serial();
    let s = Scratch::new();
    let port = free_port();
    let script = Path::new(WORKLOADS).join("redis_session.py");
    let keys = 10000;
    let (w, ready) = spawn_ready(
        &s,
        &python(),
        &[
            script.display().to_string(),
            ctl(&s),
            port.to_string(),
            keys.to_string(),
        ],
    );
    let redis: i32 = field(&ready, "redis").unwrap().parse().unwrap();
    // its command line names the scratch directory (--dir), so this finds it
    let _server = KillOnDrop::new(redis, s.path());
    assert_eq!(redis_cli(port, &["DBSIZE"]), (keys + 2).to_string());
    let sf = checkpoint_set(&s, "sf", &format!("{}:SID", w.pid), &[], &[w.pid, redis]);
    restart_ok(&sf);
    // a new client is served the data set by the restored listening socket
    assert_eq!(redis_cli(port, &["DBSIZE"]), (keys + 2).to_string());
    assert_eq!(redis_cli(port, &["GET", "key:4321"]), "value:4321");
    assert_eq!(redis_cli(port, &["HGET", "hash", "a"]), "1");
    // the held connection checks itself
    s.go();
    assert_eq!(wait_for_line(&w.log, "PASS", TIMEOUT), "PASS redis");
    assert_eq!(count_lines(&w.log, "FAIL"), 0);
}
