//! Workloads driven through their standard input (the libcpr programs, tests/workloads/
//! lib_*.c): the test sends one command a line and reads what they print, line by line.
//! They print `ready` once set up. Killed and reaped on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::TIMEOUT;

/// A running interactive workload: its standard input, and its standard output as lines.
pub struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Interactive {
    /// Starts `program args...` and waits until it printed `ready`.
    pub fn start(program: &Path, args: &[&str]) -> Interactive {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
                sink.1.notify_all();
            }
        });
        let stdin = child.stdin.take();
        let w = Interactive {
            child,
            stdin,
            lines,
        };
        w.wait_line("ready");
        w
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn output(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// Waits until the output satisfies `done`.
    pub fn wait_until(&self, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = self.lines.0.lock().unwrap();
        while !done(&lines) {
            let now = Instant::now();
            assert!(now < deadline, "not there after {TIMEOUT:?}: {lines:?}");
            lines = self.lines.1.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits until `line` has been printed `count` times.
    pub fn wait_lines(&self, line: &str, count: usize) {
        self.wait_until(|lines| lines.iter().filter(|l| *l == line).count() >= count)
    }

    pub fn wait_line(&self, line: &str) {
        self.wait_lines(line, 1)
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        // one write: the workloads take each read(2) as one command
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Sends "quit" and checks it ended normally (so it was alive and well).
    pub fn quit(mut self) {
        self.send("quit");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}: {:?}", self.output());
    }

    /// The lines printed after `ready`.
    pub fn after_ready(&self) -> Vec<String> {
        let out = self.output();
        let i = out.iter().position(|l| l == "ready").unwrap();
        out[i + 1..].to_vec()
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
