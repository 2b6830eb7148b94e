//! System V semaphore sets and message queues across checkpoint and restart, end to end:
//! real programs (tests/workloads/sysv_ipc.c) are checkpointed with the real `cpr`
//! binary (WILL EXIT), restarted, and check their set or queue themselves.
//!
//! The tests run one at a time (sem_next_id and msg_next_id are global) and remove every
//! set and queue they made, even on failure.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cpr::sys::sysvipc as ipc;

/// A key no other test run uses at the same time.
fn test_key(n: u32) -> u32 {
    0x5f00_0000 | ((std::process::id() & 0xffff) << 4) | n
}

/// A test's processes (ended with its session) and its keys: whatever holds one of them
/// at the end is removed.
struct World {
    keys: Vec<u32>,
    t: Session,
}

impl World {
    fn new() -> World {
        World {
            t: Session::new(),
            keys: Vec::new(),
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.t.path(&format!("{name}.out"))
    }

    /// Starts the workload as `name`; returns (pid, the id it printed as `id_name`).
    fn start(&mut self, name: &str, role: &str, key: u32, id_name: &str) -> (i32, i32) {
        let args = [ctl(&self.t.s), role.to_string(), format!("{key:x}")];
        let w = spawn_with(&self.t.s, &build("sysv_ipc.c"), &args, self.out(name), &[]);
        let pid = self.t.keep(w);
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
        let line = wait_for_line(&self.out(name), "READY ", TIMEOUT);
        let id = field(&line, id_name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {id_name} in {line:?}"));
        (pid, id)
    }

    fn checkpoint(&self, pids: &[i32]) -> PathBuf {
        let ids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        checkpoint_set(&self.t.s, "sf", &ids.join(","), &[], pids)
    }

    fn go_and_pass(&self, names: &[&str]) {
        self.t.s.go();
        for name in names {
            let line = wait_for_line(&self.out(name), "PASS", TIMEOUT);
            assert!(line.starts_with("PASS"), "{name}: {line}");
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Ok(t) = cpr::proc::sysvipc::read_sem() {
            for s in t.iter().filter(|s| self.keys.contains(&(s.key as u32))) {
                let _ = ipc::sem_remove(s.semid);
            }
        }
        if let Ok(t) = cpr::proc::sysvipc::read_msg() {
            for q in t.iter().filter(|q| self.keys.contains(&(q.key as u32))) {
                let _ = ipc::msg_remove(q.msqid);
            }
        }
    }
}

#[test]
fn a_semaphore_set_held_by_two_processes_comes_back_with_its_semid_and_values() {
    let mut w = World::new();
    let key = test_key(1);
    let (a, semid) = w.start("a", "sem-a", key, "semid");
    let (b, joined) = w.start("b", "sem-b", key, "semid");
    assert_eq!(joined, semid);
    let sf = w.checkpoint(&[a, b]);
    let index: cpr::engine::objects::sysv_sem::SemIndex =
        serde_json::from_str(&std::fs::read_to_string(sf.join("shared/sem.json")).unwrap())
            .unwrap();
    assert_eq!(index.sets.len(), 1, "saved once: {index:?}");
    assert_eq!(index.sets[0].values, vec![2, 3, 0]);

    // the set outlives its processes; the user removes it (ipcrm -s)
    ipc::sem_remove(semid).unwrap();
    restart_ok(&sf);
    let st = ipc::sem_stat(semid).expect("the set is back with its semid");
    assert_eq!((st.key as u32, st.mode, st.count), (key, 0o640, 3));
    assert_eq!(ipc::sem_values(semid, 3).unwrap(), vec![2, 3, 0]);
    // b waits in semop for a: after GO a wakes it and both go on with the set
    w.go_and_pass(&["a", "b"]);
    wait_pid_gone(a, TIMEOUT);
    wait_pid_gone(b, TIMEOUT);
    assert_eq!(ipc::sem_values(semid, 3).unwrap(), vec![2, 5, 0]);
}

#[test]
fn a_message_queue_comes_back_with_its_msqid_limit_and_typed_messages_in_order() {
    let mut w = World::new();
    let key = test_key(2);
    let (p, msqid) = w.start("p", "msg", key, "msqid");
    let sf = w.checkpoint(&[p]);
    // read without being received: the original queue still holds them
    assert_eq!(ipc::msg_stat(msqid).unwrap().count, 5);
    assert_eq!(
        std::fs::metadata(sf.join(format!("shared/msg-{msqid}")))
            .unwrap()
            .len(),
        3 + 3 + 5 + 100
    );
    ipc::msg_remove(msqid).unwrap();
    restart_ok(&sf);
    let st = ipc::msg_stat(msqid).expect("the queue is back with its msqid");
    assert_eq!((st.key as u32, st.mode, st.qbytes), (key, 0o640, 4000));
    w.go_and_pass(&["p"]);
}

#[test]
fn a_leftover_queue_is_taken_back_with_the_statefile_messages() {
    let mut w = World::new();
    let key = test_key(3);
    let (p, msqid) = w.start("p", "msg", key, "msqid");
    let sf = w.checkpoint(&[p]);
    // someone takes a message and adds another before the restart
    ipc::msg_receive(msqid, None, 4000).unwrap();
    ipc::msg_send(msqid, 9, b"intruder").unwrap();
    restart_ok(&sf);
    // the workload checks there are exactly its five messages, in order
    w.go_and_pass(&["p"]);
}

/// `cpr -r SF` fails with Resource busy and `why`, restarts no process `pid` and makes no
/// queue.
fn busy_restart(sf: &Path, pid: i32, why: &str) {
    let before = cpr::proc::sysvipc::read_msg().unwrap();
    let out = restart_all(&[sf]);
    assert_failure(&out, "cpr -r", &["Resource busy", why], false);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "no process");
    assert_eq!(
        cpr::proc::sysvipc::read_msg().unwrap(),
        before,
        "nothing made"
    );
}

#[test]
fn restart_fails_with_resource_busy_when_the_msqid_or_the_key_is_taken() {
    let mut w = World::new();
    let key = test_key(4);
    let (p, msqid) = w.start("p", "msg", key, "msqid");
    let sf = w.checkpoint(&[p]);
    ipc::msg_remove(msqid).unwrap();

    // another queue (another key) with the msqid
    let other = test_key(5);
    w.keys.push(other);
    std::fs::write("/proc/sys/kernel/msg_next_id", format!("{msqid}")).unwrap();
    let got = ipc::msgget(other as i32, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
    let _ = std::fs::write("/proc/sys/kernel/msg_next_id", "-1");
    assert_eq!(got, Ok(msqid));
    busy_restart(&sf, p, &format!("msqid {msqid} is in use"));
    ipc::msg_remove(msqid).unwrap();

    // the key, held by a queue with another msqid
    let taken = ipc::msgget(key as i32, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_ne!(taken, msqid);
    busy_restart(&sf, p, &format!("key {key:#010x} is in use"));
    ipc::msg_remove(taken).unwrap();

    // free again: the same statefile restarts
    restart_ok(&sf);
    w.go_and_pass(&["p"]);
}

#[test]
fn a_threaded_process_with_semaphore_undo_adjustments_is_refused_and_runs_on() {
    let mut w = World::new();
    let key = test_key(6);
    let (p, _) = w.start("p", "sem-undo", key, "semid");
    let sf = w.t.path("sf");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &p.to_string()]);
    assert_failure(
        &out,
        "cpr -c",
        &[&format!("process {p}"), "Checkpoint error", "undo"],
        false,
    );
    assert!(!sf.join("MANIFEST").exists(), "no statefile");
    w.go_and_pass(&["p"]);
}

#[test]
fn restart_fails_with_resource_busy_when_the_semid_is_taken() {
    let mut w = World::new();
    let key = test_key(7);
    let (a, semid) = w.start("a", "sem-a", key, "semid");
    let (b, _) = w.start("b", "sem-b", key, "semid");
    let sf = w.checkpoint(&[a, b]);
    ipc::sem_remove(semid).unwrap();
    let other = test_key(8);
    w.keys.push(other);
    std::fs::write("/proc/sys/kernel/sem_next_id", format!("{semid}")).unwrap();
    let got = ipc::semget(other as i32, 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
    let _ = std::fs::write("/proc/sys/kernel/sem_next_id", "-1");
    assert_eq!(got, Ok(semid));
    let before = cpr::proc::sysvipc::read_sem().unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "cpr -r",
        &["Resource busy", &format!("semid {semid} is in use")],
        false,
    );
    assert!(!Path::new(&format!("/proc/{a}")).exists(), "no process");
    assert_eq!(
        cpr::proc::sysvipc::read_sem().unwrap(),
        before,
        "nothing made"
    );
    ipc::sem_remove(semid).unwrap();
    restart_ok(&sf);
    w.go_and_pass(&["a", "b"]);
}

#[test]
fn a_leftover_set_is_taken_back_with_the_statefile_values() {
    let mut w = World::new();
    let key = test_key(9);
    let (a, semid) = w.start("a", "sem-a", key, "semid");
    let (b, _) = w.start("b", "sem-b", key, "semid");
    let sf = w.checkpoint(&[a, b]);
    // the set outlived its processes; someone changes it before the restart
    ipc::set_sem_values(semid, &[9, 9, 9]).unwrap();
    restart_ok(&sf);
    assert_eq!(ipc::sem_values(semid, 3).unwrap(), vec![2, 3, 0]);
    w.go_and_pass(&["a", "b"]);
}

/// Starts undo-a and undo-b on `key`: (a, b, semid).
fn start_undo_pair(w: &mut World, key: u32) -> (i32, i32, i32) {
    let (a, semid) = w.start("a", "undo-a", key, "semid");
    let (b, joined) = w.start("b", "undo-b", key, "semid");
    assert_eq!(joined, semid);
    (a, b, semid)
}

/// The set of `sf`'s sem.json: its values and each process's adjustments.
fn saved_set(sf: &Path) -> cpr::engine::objects::sysv_sem::SetRecord {
    let index: cpr::engine::objects::sysv_sem::SemIndex =
        serde_json::from_str(&std::fs::read_to_string(sf.join("shared/sem.json")).unwrap())
            .unwrap();
    assert_eq!(index.sets.len(), 1, "{index:?}");
    index.sets[0].clone()
}

fn assert_undo_pair_saved(sf: &Path, a: i32, b: i32) {
    let set = saved_set(sf);
    assert_eq!(set.values, vec![0, 6]);
    let mut undo: Vec<(i32, Vec<(u16, i16)>)> =
        set.undo.iter().map(|u| (u.pid, u.adj.clone())).collect();
    undo.sort();
    let mut want = vec![(a, vec![(0, 1), (1, -3)]), (b, vec![(0, 1), (1, 2)])];
    want.sort();
    assert_eq!(undo, want);
}

#[test]
fn semaphore_undo_adjustments_come_back_and_are_released_when_the_holders_exit() {
    let mut w = World::new();
    let key = test_key(10);
    let (a, b, semid) = start_undo_pair(&mut w, key);
    let sf = w.checkpoint(&[a, b]);
    assert_undo_pair_saved(&sf, a, b);
    let info = cpr(&["-i", sf.to_str().unwrap()]);
    assert_success(&info, "cpr -i");
    let shown = String::from_utf8_lossy(&info.stdout);
    let line = format!("undo adjustments of process {a}: [[0,1],[1,-3]]");
    assert!(shown.contains(&line), "{shown}");
    // the originals exited (WILL EXIT): the kernel released what they held
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![2, 5]);
    // the set outlived them: restart takes it back, the holders hold again
    restart_ok(&sf);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![0, 6]);
    // a exits, and b sees what a's exit released; then b exits too
    w.go_and_pass(&["a", "b"]);
    wait_pid_gone(a, TIMEOUT);
    wait_pid_gone(b, TIMEOUT);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![2, 5]);
}

#[test]
fn with_will_cont_the_originals_keep_their_semaphore_undo_adjustments() {
    let mut w = World::new();
    let key = test_key(11);
    let (a, b, semid) = start_undo_pair(&mut w, key);
    let sf = checkpoint_set(&w.t.s, "sf", &format!("{a},{b}"), &["-g"], &[]);
    assert_undo_pair_saved(&sf, a, b);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![0, 6]);
    // the originals' exits still release exactly what they held
    w.go_and_pass(&["a", "b"]);
    wait_pid_gone(a, TIMEOUT);
    wait_pid_gone(b, TIMEOUT);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![2, 5]);
}

#[test]
fn a_waiter_outside_the_checkpoint_refuses_undo_measurement_and_changes_nothing() {
    let mut w = World::new();
    let key = test_key(12);
    let (a, b, semid) = start_undo_pair(&mut w, key);
    // a process outside the checkpoint waits to take semaphore 0 (which is 0)
    w.start("waiter", "take", key, "semid");
    wait_until("the waiter blocks", TIMEOUT, || {
        ipc::sem_has_waiters(semid, 2).unwrap()
    });
    let sf = w.t.path("sf");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &format!("{a},{b}")]);
    assert_failure(
        &out,
        "cpr -c",
        &[&format!("semid {semid}"), "Checkpoint error", "waits"],
        false,
    );
    assert!(!sf.join("MANIFEST").exists(), "no statefile");
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![0, 6]);
    // the waiter gets its semaphore; the originals run on with their adjustments
    ipc::semop(semid, &[(0, 1, 0)]).unwrap();
    w.go_and_pass(&["waiter"]);
    w.go_and_pass(&["a", "b"]);
    wait_pid_gone(a, TIMEOUT);
    wait_pid_gone(b, TIMEOUT);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![2, 5]);
}

#[test]
fn a_waiter_inside_the_checkpoint_is_no_obstacle_to_undo_measurement() {
    let mut w = World::new();
    let key = test_key(13);
    let (a, b, semid) = start_undo_pair(&mut w, key);
    // a third process waits to take semaphore 0: frozen, it has left its semop
    let (waiter, _) = w.start("waiter", "take", key, "semid");
    wait_until("the waiter blocks", TIMEOUT, || {
        ipc::sem_has_waiters(semid, 2).unwrap()
    });
    let sf = w.checkpoint(&[a, b, waiter]);
    assert_undo_pair_saved(&sf, a, b);
    restart_ok(&sf);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![0, 6]);
    // the restored waiter waits again, and takes what the test gives
    wait_until("the waiter blocks again", TIMEOUT, || {
        ipc::sem_has_waiters(semid, 2).unwrap()
    });
    ipc::semop(semid, &[(0, 1, 0)]).unwrap();
    wait_for_line(&w.out("waiter"), "PASS", TIMEOUT);
    w.go_and_pass(&["a", "b"]);
    wait_pid_gone(a, TIMEOUT);
    wait_pid_gone(b, TIMEOUT);
    assert_eq!(ipc::sem_values(semid, 2).unwrap(), vec![2, 5]);
}

#[test]
fn an_adjustment_the_kernel_would_cut_to_nothing_is_refused_not_lost_silently() {
    let mut w = World::new();
    let key = test_key(14);
    // the process gives 1 with SEM_UNDO (its exit would take 1 back)...
    let (p, semid) = w.start("p", "give-undo", key, "semid");
    // ...and a process outside the checkpoint takes it: the value is 0, the set's last
    // user is not in the checkpoint, so no margin is raised
    w.start("taker", "take", key, "semid");
    wait_for_line(&w.out("taker"), "PASS", TIMEOUT);
    let sf = w.t.path("sf");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &p.to_string()]);
    assert_failure(
        &out,
        "cpr -c",
        &[&format!("semid {semid}"), "Checkpoint error", "limit"],
        false,
    );
    assert!(!sf.join("MANIFEST").exists(), "no statefile");
    w.go_and_pass(&["p"]);
}
