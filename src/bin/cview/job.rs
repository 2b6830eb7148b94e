//! A checkpoint or restart, run by a helper process beside the interface, and what can
//! be seen of it.
//!
//! The helper is cview itself started with `--run-job`: it reads one request (JSON) on
//! its standard input, calls `ops::checkpoint` or `ops::restart` as `cpr` does, and
//! writes the outcome on its standard output. A process of its own, because the engine
//! restarts only from a single-threaded process, and because processes restarted by it
//! then run detached from cview once it exits.
//!
//! Progress is the bytes the helper has written (checkpoint) or read (restart), from
//! /proc/PID/io, against an estimate of the total. Cancelling a checkpoint lowers the
//! helper's file size limit to zero: the engine's next write into the statefile fails
//! ("File too large") and it takes the path of any failed checkpoint (the targets run
//! on untouched, no statefile is left). The helper blocks SIGXFSZ, so that the write fails
//! instead of killing it. A restart is not cancelled: it is all or nothing, and nothing
//! runs before it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use serde::{Deserialize, Serialize};

use cpr::attrfile::WillAction;
use cpr::ops::{self, CheckpointOptions, RestartOptions};

/// What the helper is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// `cpr -c STATEFILE -p IDLIST [-f] [-g|-k] [-u]`, with the user's attribute file
    /// and the panel's blocks (`choices`) after it.
    Checkpoint {
        statefile: PathBuf,
        idlist: String,
        force: bool,
        will: Option<WillAction>,
        upgrade: bool,
        choices: String,
    },
    /// `cpr -r [--any-pid] [--no-cwd] [--no-root] STATEFILE`.
    Restart {
        statefile: PathBuf,
        any_pid: bool,
        no_cwd: bool,
        no_root: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    ok: bool,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Checkpoint,
    Restart,
}

pub struct Job {
    pub kind: Kind,
    pub what: PathBuf,
    started: Instant,
    /// The estimated total in bytes (0: unknown).
    pub total: u64,
    helper: Child,
    cancelled: bool,
}

/// What a job shows on its progress bar.
pub struct Progress {
    pub bytes: u64,
    pub rate: f64,
    pub elapsed: Duration,
}

impl Job {
    /// Starts the helper on `request`.
    pub fn start(request: Request, total: u64) -> Result<Job, String> {
        let (kind, what) = match &request {
            Request::Checkpoint { statefile, .. } => (Kind::Checkpoint, statefile.clone()),
            Request::Restart { statefile, .. } => (Kind::Restart, statefile.clone()),
        };
        let exe = std::env::current_exe().map_err(|e| format!("cview: its own program: {e}"))?;
        let mut helper = Command::new(exe)
            .arg("--run-job")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cview: starting the helper: {e}"))?;
        let line = serde_json::to_string(&request).map_err(|e| format!("cview: {e}"))?;
        if let Some(mut stdin) = helper.stdin.take() {
            // the helper reads one line; it closes on drop
            let _ = writeln!(stdin, "{line}");
        }
        Ok(Job {
            kind,
            what,
            started: Instant::now(),
            total,
            helper,
            cancelled: false,
        })
    }

    pub fn progress(&self) -> Progress {
        let bytes = io_bytes(self.helper.id() as i32, self.kind);
        let elapsed = self.started.elapsed();
        Progress {
            bytes,
            rate: bytes as f64 / elapsed.as_secs_f64().max(0.001),
            elapsed,
        }
    }

    /// Asks the checkpoint to stop. False for a restart, which cannot be cancelled.
    pub fn cancel(&mut self) -> bool {
        if self.kind != Kind::Checkpoint || self.cancelled {
            return false;
        }
        let pid = self.helper.id() as i32;
        if let Ok((_, hard)) = cpr::sys::prlimit(pid, libc::RLIMIT_FSIZE as i32, None) {
            let _ = cpr::sys::prlimit(pid, libc::RLIMIT_FSIZE as i32, Some((0, hard)));
        }
        self.cancelled = true;
        true
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// The outcome once the helper has ended: a message, or the error as cpr prints it.
    pub fn finished(&mut self) -> Option<Result<String, String>> {
        if let Ok(None) = self.helper.try_wait() {
            return None;
        }
        let mut text = String::new();
        if let Some(mut out) = self.helper.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        let outcome = match serde_json::from_str::<Outcome>(text.trim()) {
            Ok(o) if o.ok => Ok(o.message),
            Ok(o) => Err(o.message),
            Err(_) => Err("cview: the helper ended without an answer".into()),
        };
        if self.cancelled && outcome.is_err() {
            return Some(Err(
                "Checkpoint cancelled: no statefile was made, the processes run on".into(),
            ));
        }
        Some(outcome)
    }
}

/// Bytes process `pid` has written (checkpoint) or read (restart), from /proc/PID/io.
fn io_bytes(pid: i32, kind: Kind) -> u64 {
    let key = match kind {
        Kind::Checkpoint => "wchar",
        Kind::Restart => "rchar",
    };
    cpr::proc::ProcDir::open(pid)
        .and_then(|dir| dir.read_text("io"))
        .ok()
        .and_then(|text| cpr::proc::status::number(&text, key).ok())
        .unwrap_or(0)
}

/// The helper (`cview --run-job`): one request in, one outcome out.
pub fn serve() -> std::process::ExitCode {
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGXFSZ);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    let mut line = String::new();
    let _ = BufReader::new(std::io::stdin()).read_line(&mut line);
    let outcome = match serde_json::from_str::<Request>(&line) {
        Ok(request) => run(request),
        Err(e) => Err(format!("cview: a bad request: {e}")),
    };
    let reply = match outcome {
        Ok(message) => Outcome { ok: true, message },
        Err(message) => Outcome { ok: false, message },
    };
    let text = serde_json::to_string(&reply).unwrap_or_default();
    let _ = writeln!(std::io::stdout(), "{text}");
    if reply.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// Calls the library as `cpr -c` or `cpr -r` does.
fn run(request: Request) -> Result<String, String> {
    match request {
        Request::Checkpoint {
            statefile,
            idlist,
            force,
            will,
            upgrade,
            choices,
        } => {
            let attributes =
                crate::checkpoint::with_choices(&choices).map_err(|e| format!("cpr: {e}"))?;
            let path = ops::checkpoint(&CheckpointOptions {
                statefile,
                idlist,
                force,
                will,
                upgrade,
                attributes: Some(attributes),
                handler_timeout: None,
                openfile_distribute: false,
            })
            .map_err(|e| format!("cpr: {e}"))?;
            Ok(format!("Checkpointed into {}", path.display()))
        }
        Request::Restart {
            statefile,
            any_pid,
            no_cwd,
            no_root,
        } => {
            ops::restart(&RestartOptions {
                statefiles: vec![statefile.clone()],
                interactive: false,
                any_pid,
                no_cwd,
                no_root,
            })
            .map_err(|e| format!("cpr: {e}"))?;
            Ok(format!("Restarted {}", statefile.display()))
        }
    }
}

/// `1.5 MiB`, `300 KiB`, `12 B`.
pub fn human(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", units[unit])
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
