//! System V shared memory across checkpoint and restart, end to end: a real program
//! (tests/workloads/shm_segment.c) attaches a segment several times, is checkpointed
//! with the real `cpr` binary (WILL EXIT), restarted, and checks its segment itself.
//!
//! The tests run one at a time (segments and /proc/sys/kernel/shm_next_id are global) and
//! remove every segment they made, and kill every process they started, even on failure.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cpr::sys::shm;

/// A key no other test run uses at the same time.
fn test_key(n: u32) -> u32 {
    0x5e00_0000 | ((std::process::id() & 0xffff) << 4) | n
}

/// Everything a test made: its processes (ended with the scratch directory they name)
/// and its segments, removed when dropped.
struct World {
    shmids: Vec<i32>,
    keys: Vec<u32>,
    t: Session,
}

impl World {
    fn new() -> World {
        World {
            t: Session::new(),
            shmids: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path(name)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.out"))
    }

    /// Starts the workload; its output goes to `<name>.out`. Returns (pid, shmid).
    fn start(&mut self, name: &str, role: &str, key: u32, env: &[(&str, &str)]) -> (i32, i32) {
        let args = [ctl(&self.t.s), role.to_string(), format!("{key:x}")];
        let w = spawn_with(
            &self.t.s,
            &build("shm_segment.c"),
            &args,
            self.out(name),
            env,
        );
        let pid = self.t.keep(w);
        if key != 0 {
            self.keys.push(key);
        }
        let line = self.wait_line(name, "READY ");
        let shmid: i32 = field(&line, "shmid")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no shmid in {line:?}"));
        self.shmids.push(shmid);
        (pid, shmid)
    }

    /// The first line with `prefix` (failing on a FAIL line).
    fn wait_line(&self, name: &str, prefix: &str) -> String {
        wait_for_line(&self.out(name), prefix, TIMEOUT)
    }

    fn checkpoint(&self, pids: &[i32]) -> PathBuf {
        let ids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        checkpoint_set(&self.t.s, "sf", &ids.join(","), &[], pids)
    }

    /// GO; then each workload whose output is `<name>.out` prints PASS.
    fn go_and_pass(&self, names: &[&str]) {
        self.t.s.go();
        for name in names {
            assert_eq!(self.wait_line(name, "PASS"), "PASS");
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for &id in &self.shmids {
            let _ = shm::remove(id);
        }
        // whatever else holds one of our keys (a failed test's leftovers)
        if let Ok(t) = cpr::engine::objects::sysv_shm::read_table() {
            for s in t.iter().filter(|s| self.keys.contains(&(s.key as u32))) {
                let _ = shm::remove(s.shmid);
            }
        }
    }
}

/// Reaps children (we are their subreaper) until `pid` has gone from /proc.
fn wait_gone(pid: i32) {
    wait_pid_gone(pid, TIMEOUT);
}

fn segment_gone(shmid: i32) -> bool {
    !cpr::engine::objects::sysv_shm::read_table()
        .unwrap()
        .iter()
        .any(|s| s.shmid == shmid)
}

/// The /SYSV lines of /proc/PID/maps: address range, permissions, shmid (inode).
fn sysv_maps(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("/SYSV"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {}", f[0], f[1], f[4])
        })
        .collect()
}

/// `cpr -r SF` fails with Resource busy and `why`, restarts no process `pid` and makes no
/// segment.
fn busy_restart(sf: &Path, pid: i32, why: &str) {
    let before = cpr::engine::objects::sysv_shm::read_table().unwrap();
    let out = restart_all(&[sf]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Resource busy"), "{err}");
    assert!(err.contains(why), "{err}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "no process");
    assert_eq!(
        cpr::engine::objects::sysv_shm::read_table().unwrap(),
        before,
        "nothing made"
    );
}

fn index(sf: &Path) -> cpr::engine::objects::sysv_shm::ShmIndex {
    let text = std::fs::read_to_string(sf.join("shared/shm.json")).expect("shared/shm.json");
    serde_json::from_str(&text).expect("shm.json")
}

#[test]
fn a_segment_keeps_its_shmid_key_owner_and_contents_across_restart() {
    let mut w = World::new();
    let key = test_key(1);
    let (pid, shmid) = w.start("p", "create", key, &[]);
    let attached = sysv_maps(pid);
    assert_eq!(attached.len(), 3, "{attached:?}");
    let sf = w.checkpoint(&[pid]);

    let idx = index(&sf);
    assert_eq!(idx.segments.len(), 1, "{idx:?}");
    let seg = &idx.segments[0];
    assert_eq!(
        (
            seg.shmid,
            seg.key as u32,
            seg.mode,
            seg.size,
            seg.uid,
            seg.dest
        ),
        (shmid, key, 0o640, 3 * 4096 + 100, 65534, false)
    );
    // page 1 is zero: not saved; pages 0, 2 and the partial page 3 are
    assert_eq!(seg.runs, vec![(0, 1), (2, 2)]);
    let saved = std::fs::metadata(sf.join(format!("shared/shm-{shmid}"))).unwrap();
    assert_eq!(saved.len(), 4096 + 4096 + 100);

    // the segment outlives its process (not removed): the user removes it, as here
    assert!(!segment_gone(shmid));
    shm::remove(shmid).unwrap();
    assert!(segment_gone(shmid));

    restart_ok(&sf);
    let st = shm::stat(shmid).expect("the segment is back with its shmid");
    assert_eq!((st.key as u32, st.uid, st.gid), (key, 65534, 65534));
    // the three attachments where they were, with their protections (one read-only)
    assert_eq!(sysv_maps(pid), attached);
    assert_eq!(st.mode & 0o777, 0o640);
    w.go_and_pass(&["p"]);
    wait_gone(pid);
    // and it stays after its process ends, as the original would have
    let st = shm::stat(shmid).expect("the segment stays");
    assert_eq!(st.nattch, 0);
}

#[test]
fn a_segment_marked_for_removal_is_marked_again_and_goes_with_its_process() {
    let mut w = World::new();
    let (pid, shmid) = w.start("p", "dest", 0, &[]);
    let sf = w.checkpoint(&[pid]);
    let idx = index(&sf);
    assert_eq!(idx.segments.len(), 1);
    assert!(idx.segments[0].dest);
    assert_eq!(idx.segments[0].key, 0);
    // the original went with its only process
    assert!(segment_gone(shmid));

    restart_ok(&sf);
    let st = shm::stat(shmid).expect("the segment is back with its shmid");
    assert_ne!(st.mode & shm::SHM_DEST, 0, "marked for removal again");
    assert_eq!(st.nattch, 3);
    w.go_and_pass(&["p"]);
    wait_gone(pid);
    assert!(segment_gone(shmid), "removed with its last attachment");
}

/// Makes a segment with exactly `shmid` (as restart does) for the busy tests.
fn occupy(w: &mut World, shmid: i32, key: u32) {
    std::fs::write("/proc/sys/kernel/shm_next_id", format!("{shmid}")).unwrap();
    let got = shm::shmget(key as i32, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
    let _ = std::fs::write("/proc/sys/kernel/shm_next_id", "-1");
    let got = got.expect("shmget");
    w.shmids.push(got);
    w.keys.push(key);
    assert_eq!(got, shmid);
}

#[test]
fn restart_fails_with_resource_busy_when_the_shmid_or_the_key_is_taken() {
    let mut w = World::new();
    let key = test_key(2);
    let (pid, shmid) = w.start("p", "create", key, &[]);
    let sf = w.checkpoint(&[pid]);
    shm::remove(shmid).unwrap();

    // another segment (another key) with the shmid
    let other_key = test_key(3);
    occupy(&mut w, shmid, other_key);
    busy_restart(&sf, pid, &format!("shmid {shmid} is in use"));
    shm::remove(shmid).unwrap();

    // the key, held by a segment with another shmid
    let taken =
        shm::shmget(key as i32, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).expect("shmget");
    w.shmids.push(taken);
    assert_ne!(taken, shmid);
    busy_restart(&sf, pid, &format!("key {key:#010x} is in use"));
    shm::remove(taken).unwrap();

    // free again: the same statefile restarts
    restart_ok(&sf);
    w.go_and_pass(&["p"]);
}

#[test]
fn two_processes_attaching_one_segment_restart_with_it_saved_once() {
    let mut w = World::new();
    let key = test_key(4);
    let (p1, shmid) = w.start("a", "create", key, &[("SHM_WAIT_JOIN", "1")]);
    let (p2, joined) = w.start("b", "join", key, &[]);
    assert_eq!(joined, shmid);
    let sf = w.checkpoint(&[p1, p2]);
    let idx = index(&sf);
    assert_eq!(idx.segments.len(), 1, "saved once: {idx:?}");
    let files: Vec<String> = std::fs::read_dir(sf.join("shared"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shm-"))
        .collect();
    assert_eq!(files, vec![format!("shm-{shmid}")]);
    shm::remove(shmid).unwrap();

    restart_ok(&sf);
    assert_eq!(shm::stat(shmid).unwrap().nattch, 6);
    // each sees the other's write: one segment behind both processes
    w.go_and_pass(&["a", "b"]);
}

#[test]
fn a_split_attachment_is_refused_and_the_process_runs_on() {
    let mut w = World::new();
    let key = test_key(5);
    let (pid, shmid) = w.start("p", "partial", key, &[]);
    let sf = w.path("sf");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("process {pid}")), "{err}");
    assert!(err.contains("Checkpoint error"), "{err}");
    assert!(
        err.contains(&format!("only part of shmid {shmid} is attached")),
        "{err}"
    );
    assert!(!sf.exists(), "no statefile");
    // untouched: it runs on and finishes
    w.go_and_pass(&["p"]);
}

#[test]
fn a_leftover_segment_is_taken_back_with_the_statefile_contents() {
    let mut w = World::new();
    let key = test_key(7);
    let (pid, shmid) = w.start("p", "create", key, &[]);
    let sf = w.checkpoint(&[pid]);
    wait_gone(pid);
    // the segment outlived its process; someone scribbles over it before the restart
    assert!(!segment_gone(shmid));
    let scribble = shm::Attachment::new(shmid, true).unwrap();
    scribble.write_at(0, &[0xee; 4096]).unwrap();
    drop(scribble);
    restart_ok(&sf);
    assert_eq!(shm::stat(shmid).unwrap().key as u32, key);
    // the workload checks its pattern: the checkpoint's contents are back
    w.go_and_pass(&["p"]);
    wait_gone(pid);
}
