//! PostgreSQL from the Debian package, as its users run it: a cluster with default
//! settings (TCP on localhost, a UNIX socket, SysV and anonymous shared memory, dynamic
//! shared memory in /dev/shm) and a connected `psql` session, checkpointed as a whole
//! hierarchy and restarted. The same session goes on (same backend, same connection), a
//! query and an insert work, and new connections over TCP and the UNIX socket are served.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(60);

/// The newest installed server's bin directory; `None` (a skip) outside CI.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").is_file())
        .collect();
    versions.sort();
    let found = versions.pop();
    if found.is_none() {
        assert!(
            !in_ci(),
            "PostgreSQL is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: PostgreSQL is not installed");
    }
    found
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the postgres user")
}

/// Runs `sh -c script` as postgres in a session of its own.
fn as_postgres(script: &str) -> Command {
    let mut cmd = Command::new("setsid");
    cmd.args(["setpriv", "--init-groups"])
        .arg(format!("--reuid={}", id_of("-u")))
        .arg(format!("--regid={}", id_of("-g")))
        .args(["sh", "-c", script]);
    cmd
}

/// Every descendant of `leader`, and it.
fn tree(leader: i32) -> Vec<i32> {
    let mut all = vec![leader];
    let mut i = 0;
    while i < all.len() {
        let pid = all[i];
        for task in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        i += 1;
    }
    all
}

/// Kills the cluster's whole tree when the test ends, pass or fail.
struct Cluster {
    leader: i32,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid in tree(self.leader) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        reap_children();
    }
}

/// Sends SQL to the psql session through its FIFO (psql reads it as its stdin).
fn send(fifo: &Path, sql: &str) {
    let deadline = Instant::now() + WAIT;
    let mut f = loop {
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(f) => break f,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("psql does not read {}: {e}", fifo.display()),
        }
    };
    f.write_all(sql.as_bytes()).expect("write to psql");
}

/// The value of the `TAG|value` line psql printed for a `SELECT 'TAG', value`.
fn answer(out: &Path, tag: &str) -> String {
    let line = wait_for_line(out, &format!("{tag}|"), WAIT);
    line.split_once('|').unwrap().1.trim().to_string()
}

fn psql(bin: &Path, host: &str, port: u16, sql: &str) -> String {
    let out = as_postgres(&format!(
        "{}/psql -h {host} -p {port} -d postgres -X -q -A -t -c \"{sql}\"",
        bin.display()
    ))
    .output()
    .expect("psql");
    assert!(
        out.status.success(),
        "psql -h {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn postgresql_cluster_and_its_psql_session_survive_checkpoint_and_restart() {
    let Some(bin) = server_bin() else { return };
    let _l = serial();
    become_subreaper();
    let s = Scratch::new();
    s.open_to_other_users();
    // the server writes its socket, logs and psql's output here
    nix::unistd::chown(
        s.path(),
        Some(nix::unistd::Uid::from_raw(id_of("-u"))),
        Some(nix::unistd::Gid::from_raw(id_of("-g"))),
    )
    .expect("chown the scratch directory");
    let dir = s.path().display().to_string();
    let (data, fifo, out) = (s.join("data"), s.join("in"), s.join("psql.out"));
    let initdb = as_postgres(&format!(
        "{}/initdb -D {} -A trust -U postgres --no-sync >{dir}/initdb.log 2>&1",
        bin.display(),
        data.display()
    ))
    .status()
    .expect("initdb");
    assert!(
        initdb.success(),
        "initdb: {}",
        fs::read_to_string(s.join("initdb.log")).unwrap_or_default()
    );
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o666)).unwrap();
    let port = 40000 + (std::process::id() % 20000) as u16;

    // The server with its default settings but our port and socket directory; a FIFO
    // writer that stays (so psql never sees end of input); psql reading the FIFO.
    let script = format!(
        "{bin}/postgres -D {data} -k {dir} -p {port} >{dir}/server.log 2>&1 &
         while [ ! -S {dir}/.s.PGSQL.{port} ]; do sleep 0.1; done
         sleep 1000000 >{fifo} &
         {bin}/psql -h {dir} -p {port} -d postgres -X -q -A -t <{fifo} >{out} 2>&1 &
         wait",
        bin = bin.display(),
        data = data.display(),
        fifo = fifo.display(),
        out = out.display(),
    );
    let mut start = as_postgres(&script);
    start.stdin(std::process::Stdio::null());
    // the cluster's own stdout and stderr: a file its owner may open as it has it
    let log = s.join("start.log");
    fs::write(&log, "").unwrap();
    nix::unistd::chown(
        &log,
        Some(nix::unistd::Uid::from_raw(id_of("-u"))),
        Some(nix::unistd::Gid::from_raw(id_of("-g"))),
    )
    .unwrap();
    let w = spawn_command(&s, start, log);
    let _cluster = Cluster { leader: w.pid };

    send(
        &fifo,
        "SELECT 'PID', pg_backend_pid();\nCREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 1000);\nSELECT 'READY', count(*) FROM t;\n",
    );
    assert_eq!(answer(&out, "READY"), "1000");
    let backend = answer(&out, "PID");
    let postmaster = fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let postmaster: i32 = postmaster.lines().next().unwrap().trim().parse().unwrap();
    let maps = fs::read_to_string(format!("/proc/{postmaster}/maps")).unwrap();
    assert!(
        maps.contains("/dev/shm/PostgreSQL."),
        "the cluster should use dynamic shared memory in /dev/shm:\n{maps}"
    );
    let before = tree(w.pid);
    assert!(
        before.len() >= 8,
        "server, its workers, psql and its backend: {before:?}"
    );

    let sf = s.join("pg.statefile");
    let ckpt = cpr(&["-c", sf.to_str().unwrap(), "-p", &format!("{}:HID", w.pid)]);
    assert_success(&ckpt, "cpr -c of the cluster");
    for &pid in &before {
        wait_pid_gone(pid, WAIT);
    }
    restart_ok(&sf);
    let mut after = tree(w.pid);
    let mut expected = before.clone();
    after.sort();
    expected.sort();
    assert_eq!(after, expected, "the same processes come back");

    // The same session: same backend (so the same connection), its table, an insert.
    send(
        &fifo,
        "SELECT 'PID2', pg_backend_pid();\nSELECT 'COUNT', count(*) FROM t;\nINSERT INTO t VALUES (1001);\nSELECT 'SUM', sum(x) FROM t;\n",
    );
    assert_eq!(
        answer(&out, "PID2"),
        backend,
        "psql's connection is the one it had"
    );
    assert_eq!(answer(&out, "COUNT"), "1000");
    assert_eq!(answer(&out, "SUM"), "501501");
    // New connections, over the UNIX socket and TCP.
    assert_eq!(psql(&bin, &dir, port, "SELECT count(*) FROM t"), "1001");
    assert_eq!(
        psql(&bin, "localhost", port, "SELECT max(x) FROM t"),
        "1001"
    );
    let log = fs::read_to_string(s.join("psql.out")).unwrap_or_default();
    assert!(
        !log.contains("ERROR") && !log.contains("FATAL"),
        "psql said:\n{log}"
    );
}
