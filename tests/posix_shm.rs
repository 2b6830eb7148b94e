//! POSIX shared memory (shm_open) and named semaphores (sem_open) across checkpoint and
//! restart, end to end: tests/workloads/posix_shm.c, a parent and its child sharing /dev/shm
//! files, checkpointed with the real `cpr` binary (WILL EXIT), restarted, checking
//! themselves. Every /dev/shm file a test names is removed when it ends.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;

const SIZE: u64 = 3 * 4096 + 100;

/// A test's session and the /dev/shm names it uses (removed on drop).
struct World {
    names: Vec<PathBuf>,
    t: Session,
}

impl World {
    fn new() -> World {
        World {
            t: Session::new(),
            names: Vec::new(),
        }
    }

    /// A segment name no other run uses; its files (NAME, NAME-gone, NAME-back, and the
    /// sem. ones) are removed when the test ends.
    fn name(&mut self, what: &str) -> String {
        let name = format!("cpr-test-{}-{what}", std::process::id());
        for f in [
            name.clone(),
            format!("{name}-gone"),
            format!("sem.{name}"),
            format!("sem.{name}-back"),
        ] {
            self.names.push(Path::new("/dev/shm").join(f));
        }
        format!("/{name}")
    }

    /// Starts the workload; returns (parent, child).
    fn start(&mut self, role: &str, name: &str) -> (i32, i32) {
        self.start_with(role, name, &[])
    }

    fn start_with(&mut self, role: &str, name: &str, env: &[(&str, &str)]) -> (i32, i32) {
        let args = [ctl(&self.t.s), role.to_string(), name.to_string()];
        let log = self.t.s.join("out.log");
        let w = spawn_with(&self.t.s, &build("posix_shm.c"), &args, log, env);
        let line = wait_for_line(&w.log, "READY", TIMEOUT);
        let child = field(&line, "child")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no child in {line:?}"));
        (self.t.keep(w), child)
    }

    fn checkpoint(&self, parent: i32, child: i32) -> PathBuf {
        checkpoint_set(
            &self.t.s,
            "sf",
            &format!("{parent}:HID"),
            &[],
            &[parent, child],
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for p in &self.names {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn shm_file(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

/// GO, then the parent (which reaps its child and checks its exit) prints PASS.
fn go_and_pass(w: &World, parent: i32) {
    w.t.s.go();
    let line = wait_for_line(&w.t.s.join("out.log"), "PASS", TIMEOUT);
    assert!(line.starts_with("PASS"), "{line}");
    wait_pid_gone(parent, TIMEOUT);
}

#[test]
fn two_processes_share_a_posix_shm_segment_after_restart() {
    let mut w = World::new();
    let name = w.name("pair");
    let (parent, child) = w.start("pair", &name);
    let before = std::fs::metadata(shm_file(&name)).unwrap();
    let sf = w.checkpoint(parent, child);
    // the file stays (as it would after its processes ended): restart takes it back
    let left = std::fs::metadata(shm_file(&name)).expect("the segment outlives its processes");
    assert_eq!(left.ino(), before.ino());
    // what restart must put back, whatever the file holds meanwhile
    std::fs::write(shm_file(&name), b"scribbled over").unwrap();
    restart_ok(&sf);
    let after = std::fs::metadata(shm_file(&name)).unwrap();
    assert_eq!(after.ino(), before.ino(), "the same file, taken back");
    assert_eq!(after.len(), SIZE);
    go_and_pass(&w, parent);
}

#[test]
fn a_posix_shm_segment_also_open_as_a_descriptor_is_one_file_after_restart() {
    let mut w = World::new();
    let name = w.name("fd");
    let (parent, child) = w.start_with("pair", &name, &[("KEEP_FD", "1")]);
    let sf = w.checkpoint(parent, child);
    std::fs::write(shm_file(&name), b"scribbled over").unwrap();
    restart_ok(&sf);
    go_and_pass(&w, parent);
}

#[test]
fn a_removed_posix_shm_file_comes_back_with_its_mode_owner_and_size() {
    let mut w = World::new();
    let name = w.name("removed");
    let (parent, child) = w.start("pair", &name);
    let sf = w.checkpoint(parent, child);
    std::fs::remove_file(shm_file(&name)).unwrap();
    restart_ok(&sf);
    let m = std::fs::symlink_metadata(shm_file(&name)).expect("the segment is back");
    assert!(m.is_file());
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.gid(), m.len()),
        (0o640, 65534, 65534, SIZE)
    );
    go_and_pass(&w, parent);
}

#[test]
fn another_file_at_the_segment_name_fails_the_restart_and_is_left_alone() {
    let mut w = World::new();
    let name = w.name("taken");
    let (parent, child) = w.start("pair", &name);
    let sf = w.checkpoint(parent, child);
    std::fs::remove_file(shm_file(&name)).unwrap();
    std::fs::write(shm_file(&name), b"someone else's").unwrap();
    let out = restart_all(&[&sf]);
    assert_failure(&out, "cpr -r", &["File exists", &name[1..]], false);
    assert!(
        !Path::new(&format!("/proc/{parent}")).exists(),
        "no process"
    );
    assert_eq!(std::fs::read(shm_file(&name)).unwrap(), b"someone else's");
}

#[test]
fn a_process_waiting_on_a_named_semaphore_is_woken_after_restart() {
    let mut w = World::new();
    let name = w.name("sem");
    let (parent, child) = w.start("sem", &name);
    // the child is asleep in sem_wait (a futex wait on the shared page)
    wait_until("the child waits on the semaphore", TIMEOUT, || {
        std::fs::read_to_string(format!("/proc/{child}/wchan")).is_ok_and(|c| c.contains("futex"))
    });
    let sf = w.checkpoint(parent, child);
    restart_ok(&sf);
    go_and_pass(&w, parent);
}
