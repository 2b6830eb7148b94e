//! POSIX message queues across checkpoint and restart, end to end: a real program
//! (tests/workloads/posix_mq.c) is checkpointed with the real `cpr` binary, restarted,
//! and checks its queue (limits, flags, mode, messages in priority order, notification)
//! itself.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use common::*;
use cpr::engine::objects::posix_mqueue::MqIndex;
use cpr::sys::mqueue as mq;

/// A test's processes (ended with its session) and its queue, removed at the end.
struct World {
    name: String,
    t: Session,
}

impl World {
    fn new(n: u32) -> World {
        World {
            t: Session::new(),
            name: format!("/cpr-test-{}-{n}", std::process::id()),
        }
    }

    fn out(&self) -> PathBuf {
        self.t.path("w.out")
    }

    /// Starts the workload in `role` on the test's queue; returns its PID.
    fn start(&mut self, role: &str) -> i32 {
        let args = [ctl(&self.t.s), role.to_string(), self.name.clone()];
        let w = spawn_with(&self.t.s, &build("posix_mq.c"), &args, self.out(), &[]);
        let pid = self.t.keep(w);
        wait_for_line(&self.out(), "READY", TIMEOUT);
        pid
    }

    fn go_and_pass(&self) {
        self.t.s.go();
        let line = wait_for_line(&self.out(), "PASS", TIMEOUT);
        assert!(line.starts_with("PASS"), "{line}");
    }

    /// The queue's messages as a process would receive them, (priority, body); the queue
    /// keeps them.
    fn messages(&self) -> Vec<(u32, Vec<u8>)> {
        let q = mq::open(&self.name, libc::O_RDWR | libc::O_NONBLOCK, 0, None).unwrap();
        let mut out = Vec::new();
        while let Ok(m) = mq::receive(&q, 64) {
            out.push(m);
        }
        for (prio, body) in &out {
            mq::send(&q, *prio, body).unwrap();
        }
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = mq::unlink(&self.name);
    }
}

/// The six messages of the `queue` role, in the order a receiver gets them.
fn expected() -> Vec<(u32, Vec<u8>)> {
    vec![
        (5, b"five".to_vec()),
        (5, b"five-b".to_vec()),
        (3, vec![b'y'; 64]),
        (1, b"one".to_vec()),
        (1, b"one-b".to_vec()),
        (0, vec![]),
    ]
}

fn saved(sf: &Path) -> MqIndex {
    serde_json::from_str(&std::fs::read_to_string(sf.join("shared/mqueue.json")).unwrap()).unwrap()
}

#[test]
fn a_posix_message_queue_comes_back_with_its_messages_attributes_and_notification() {
    let mut w = World::new(1);
    let p = w.start("queue");
    let sf = checkpoint_set(&w.t.s, "sf", &p.to_string(), &[], &[p]);
    let index = saved(&sf);
    assert_eq!(index.queues.len(), 1, "saved once: {index:?}");
    let q = &index.queues[0];
    assert_eq!(
        (q.name.as_str(), q.mode, q.maxmsg, q.msgsize),
        (w.name.as_str(), 0o640, 6, 64)
    );
    let got: Vec<(u32, Vec<u8>)> = q
        .messages
        .iter()
        .map(|m| (m.prio, m.body.clone()))
        .collect();
    assert_eq!(got, expected());
    let info = cpr(&["-i", sf.to_str().unwrap()]);
    assert_success(&info, "cpr -i");
    let shown = String::from_utf8_lossy(&info.stdout);
    let line = format!(
        "POSIX message queue {}: mode 0640, uid 0, gid 0, 6 message(s)",
        w.name
    );
    assert!(shown.contains(&line), "{shown}");
    // the queue outlived its process, untouched; the user removes it
    assert_eq!(w.messages(), expected());
    mq::unlink(&w.name).unwrap();
    restart_ok(&sf);
    // (reading the queue again here would fire the restored registration)
    w.go_and_pass();
}

#[test]
fn a_leftover_queue_is_taken_back_with_the_statefile_messages() {
    let mut w = World::new(2);
    let p = w.start("queue");
    let sf = checkpoint_set(&w.t.s, "sf", &p.to_string(), &[], &[p]);
    // someone takes a message and adds another before the restart
    let q = mq::open(&w.name, libc::O_RDWR | libc::O_NONBLOCK, 0, None).unwrap();
    mq::receive(&q, 64).unwrap();
    mq::send(&q, 9, b"intruder").unwrap();
    drop(q);
    restart_ok(&sf);
    w.go_and_pass();
}

#[test]
fn with_will_cont_the_queue_and_its_notification_stay_as_they_were() {
    let mut w = World::new(3);
    let p = w.start("queue");
    let sf = checkpoint_set(&w.t.s, "sf", &p.to_string(), &["-g"], &[]);
    assert_eq!(saved(&sf).queues[0].messages.len(), 6);
    assert!(is_alive(p));
    // the original finds its messages in order and is still registered, with its value
    w.go_and_pass();
}

#[test]
fn a_queue_name_taken_with_other_limits_fails_the_restart_cleanly() {
    let mut w = World::new(4);
    let p = w.start("queue");
    let sf = checkpoint_set(&w.t.s, "sf", &p.to_string(), &[], &[p]);
    mq::unlink(&w.name).unwrap();
    let create = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
    let other = mq::open(&w.name, create, 0o600, Some((2, 16))).unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "cpr -r",
        &["File exists", &w.name, "other limits"],
        false,
    );
    assert!(!Path::new(&format!("/proc/{p}")).exists(), "no process");
    assert_eq!(
        mq::getattr(&other).unwrap().maxmsg,
        2,
        "the other queue stays"
    );
    drop(other);
    mq::unlink(&w.name).unwrap();
    restart_ok(&sf);
    w.go_and_pass();
}

#[test]
fn a_queue_description_shared_by_a_parent_and_its_child_comes_back_shared() {
    let mut w = World::new(7);
    let p = w.start("fork");
    let sf = checkpoint_set(&w.t.s, "sf", &format!("{p}:HID"), &[], &[p]);
    let index = saved(&sf);
    assert_eq!(index.queues.len(), 1, "saved once: {index:?}");
    assert_eq!(index.queues[0].messages.len(), 1);
    mq::unlink(&w.name).unwrap();
    restart_ok(&sf);
    // the child receives what the parent sends after restart, through the shared one
    w.go_and_pass();
}

/// `cpr -c` of a process in `role` fails naming the queue and `why` (so does the dry
/// run); it runs on. Returns the world, for a role that checks itself after GO.
fn refused(n: u32, role: &str, why: &str) -> World {
    let mut w = World::new(n);
    let p = w.start(role);
    let sf = w.t.path("sf");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &p.to_string()]);
    assert_failure(&out, "cpr -c", &["Checkpoint error", &w.name, why], false);
    assert!(!sf.join("MANIFEST").exists(), "no statefile");
    let dry = cpr(&[
        "-c",
        sf.to_str().unwrap(),
        "-p",
        &p.to_string(),
        "--dry-run",
    ]);
    let listed = String::from_utf8_lossy(&dry.stderr);
    assert!(
        !dry.status.success() && listed.contains(&w.name) && listed.contains(why),
        "the dry run lists the refusal: {}",
        describe(&dry)
    );
    assert_running_untraced(p);
    w
}

#[test]
fn a_sigev_thread_registration_is_refused() {
    refused(5, "thread", "SIGEV_THREAD");
}

#[test]
fn a_registration_whose_signal_is_ignored_is_refused_before_the_queue_is_touched() {
    let w = refused(9, "ignored", "is ignored");
    // still registered, its message still there
    w.go_and_pass();
}

#[test]
fn a_queue_whose_name_was_removed_comes_back_without_a_name() {
    let mut w = World::new(6);
    let p = w.start("removed");
    let sf = checkpoint_set(&w.t.s, "sf", &p.to_string(), &[], &[p]);
    let index = saved(&sf);
    assert_eq!(index.queues.len(), 1, "{index:?}");
    let q = &index.queues[0];
    assert!(q.removed);
    assert_eq!(q.messages.len(), 2);
    restart_ok(&sf);
    // the name cpr made it under is gone once the process runs
    let cprs = format!("/cpr-removed-{}", q.ino);
    assert_eq!(
        mq::open(&cprs, libc::O_RDONLY, 0, None).err(),
        Some(nix::errno::Errno::ENOENT)
    );
    w.go_and_pass();
}

#[test]
fn a_registration_by_a_process_outside_the_checkpoint_is_refused() {
    let mut w = World::new(8);
    let p = w.start("fork");
    // the test itself registers (SIGEV_NONE) on the queue
    let q = mq::open(&w.name, libc::O_RDONLY, 0, None).unwrap();
    mq::notify(q.as_raw_fd(), Some((libc::SIGEV_NONE, 0, 0))).unwrap();
    let me = std::process::id().to_string();
    let sf = w.t.path("sf");
    let ids = format!("{p}:HID");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &ids]);
    assert_failure(
        &out,
        "cpr -c",
        &["Checkpoint error", &w.name, &me, "outside"],
        false,
    );
    assert!(!sf.join("MANIFEST").exists(), "no statefile");
    let dry = cpr(&["-c", sf.to_str().unwrap(), "-p", &ids, "--dry-run"]);
    let listed = String::from_utf8_lossy(&dry.stderr);
    assert!(
        !dry.status.success() && listed.contains(&w.name) && listed.contains("outside"),
        "the dry run lists the refusal: {}",
        describe(&dry)
    );
    assert_running_untraced(p);
    // the queue is untouched: the parent and child go on with it
    drop(q);
    w.go_and_pass();
}
