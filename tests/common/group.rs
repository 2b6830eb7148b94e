//! Processes that are not workloads of the protocol (sleep, sh, the share-group fixture):
//! started leading a process group (or session) of their own, their stdout a pipe the test
//! reads lines from, and killed and reaped with all their descendants on drop. They need
//! not name a scratch directory: the group is what is ended.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};

use cpr::proc::ProcDir;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::{all_pids, become_subreaper};

/// A spawned process group (or session), killed and reaped, with all its descendants, on
/// drop. Its stdout is a pipe the test reads lines from.
pub struct Spawned {
    child: Child,
    /// The process group to kill: the child is its leader.
    pgid: i32,
    out: BufReader<ChildStdout>,
}

impl Spawned {
    /// Spawns `cmd`, which must make itself a process group leader (`process_group(0)` or
    /// `setsid` in place). The test process becomes a child subreaper first, so that
    /// orphaned grandchildren come back to it.
    pub fn start(mut cmd: Command) -> Spawned {
        become_subreaper();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let out = BufReader::new(child.stdout.take().unwrap());
        let pgid = child.id() as i32;
        Spawned { child, pgid, out }
    }

    /// `sh -c SCRIPT` in a process group of its own.
    pub fn sh(script: &str) -> Spawned {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).process_group(0);
        Spawned::start(cmd)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line the process writes; the test fails if it ends first.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.out.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "process {} ended its output early", self.pid());
        line.trim_end().to_string()
    }

    /// Reads `count` lines `LABEL PID` and returns the pids by label.
    pub fn labelled_pids(&mut self, count: usize) -> BTreeMap<String, BTreeSet<i32>> {
        let mut by_label: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for _ in 0..count {
            let line = self.line();
            let (label, pid) = line.split_once(' ').expect("LABEL PID line");
            by_label
                .entry(label.to_string())
                .or_default()
                .insert(pid.parse().expect("pid"));
        }
        by_label
    }
}

/// Every process in /proc whose process group or session is `id`.
pub fn members_of(id: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            ProcDir::open(pid)
                .and_then(|dir| dir.stat())
                .is_ok_and(|stat| stat.pgrp == id || stat.session == id)
        })
        .collect()
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let members = members_of(self.pgid);
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        for &pid in &members {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
        // The others are ours (we are their subreaper) once their parents have died.
        let mut left: Vec<i32> = members.into_iter().filter(|&p| p != self.pgid).collect();
        loop {
            let before = left.len();
            left.retain(|&pid| match waitpid(Pid::from_raw(pid), None) {
                Ok(_) => false,
                Err(Errno::ECHILD) => true,
                Err(_) => false,
            });
            if left.is_empty() || left.len() == before {
                break;
            }
        }
    }
}
