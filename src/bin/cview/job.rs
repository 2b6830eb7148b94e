//! A checkpoint or restart, run by a helper process beside the interface, and what can
//! be seen of it.
//!
//! The helper is cview itself started with `--run-job`: it reads one request (JSON) on
//! its standard input, calls `ops::checkpoint` or `ops::restart` as `cpr` does, and
//! writes the outcome on its standard output. A process of its own, because the engine
//! restarts only from a single-threaded process, and because processes restarted by it
//! then run detached from cview once it exits.
//!
//! Progress is what the engine reports to an `Observer` (`ops::checkpoint_with_progress`,
//! `ops::restart_with_progress`): each phase with the bytes it will move, and the bytes
//! moved. The helper passes the reports on, one JSON line each, before its outcome.
//!
//! Cancel: cview writes `cancel` on the helper's standard input, and the helper's
//! observer answers the engine's question (asked between phases, and by a restart while
//! it reads page data) with yes: the operation fails as any failed one does — a
//! checkpoint leaves its targets running untouched and no statefile, a restart leaves
//! nothing running. A checkpoint is also stopped while it writes page data: cview lowers
//! the helper's file size limit to zero, so that the next write into the statefile fails
//! ("File too large"); the helper blocks SIGXFSZ, so that the write fails instead of
//! killing it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use serde::{Deserialize, Serialize};

use cpr::attrfile::WillAction;
use cpr::ops::{self, CheckpointOptions, Observer, Phase, Progress, RestartOptions};

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

/// One line from the helper.
#[derive(Debug, Serialize, Deserialize)]
enum Report {
    /// A phase begins: its name, the bytes it will move when known.
    Phase(String, Option<u64>),
    /// More bytes moved in the phase.
    Bytes(u64),
    /// The end: success, and the message or the error as cpr prints it.
    Outcome(bool, String),
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
    helper: Child,
    /// Where `cancel` is written.
    control: Option<ChildStdin>,
    reports: Receiver<Report>,
    shown: Shown,
    outcome: Option<Result<String, String>>,
    cancelled: bool,
}

/// What a job shows on its progress bar: the phase, the bytes it will move (when
/// known) and has moved, since when.
#[derive(Debug, Clone)]
pub struct Shown {
    pub phase: String,
    pub total: Option<u64>,
    pub done: u64,
    pub since: Instant,
}

impl Shown {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.since.elapsed().as_secs_f64().max(0.001)
    }
}

impl Job {
    /// Starts the helper on `request`.
    pub fn start(request: Request) -> Result<Job, String> {
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
        let mut control = helper.stdin.take();
        if let Some(stdin) = &mut control {
            let _ = writeln!(stdin, "{line}");
        }
        let (tx, reports) = mpsc::channel();
        if let Some(out) = helper.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    if let Ok(report) = serde_json::from_str::<Report>(&line)
                        && tx.send(report).is_err()
                    {
                        break;
                    }
                }
            });
        }
        Ok(Job {
            kind,
            what,
            started: Instant::now(),
            helper,
            control,
            reports,
            shown: Shown {
                phase: "starting".into(),
                total: None,
                done: 0,
                since: Instant::now(),
            },
            outcome: None,
            cancelled: false,
        })
    }

    /// The progress so far, after the reports that have come in.
    pub fn progress(&mut self) -> (Shown, Duration) {
        while let Ok(report) = self.reports.try_recv() {
            match report {
                Report::Phase(phase, total) => {
                    self.shown = Shown {
                        phase,
                        total,
                        done: 0,
                        since: Instant::now(),
                    }
                }
                Report::Bytes(n) => self.shown.done += n,
                Report::Outcome(true, m) => self.outcome = Some(Ok(m)),
                Report::Outcome(false, m) => self.outcome = Some(Err(m)),
            }
        }
        (self.shown.clone(), self.started.elapsed())
    }

    /// Asks the operation to stop; false when it was asked already.
    pub fn cancel(&mut self) -> bool {
        if self.cancelled {
            return false;
        }
        if let Some(stdin) = &mut self.control {
            let _ = writeln!(stdin, "cancel");
        }
        if self.kind == Kind::Checkpoint {
            let pid = self.helper.id() as i32;
            if let Ok((_, hard)) = cpr::sys::prlimit(pid, libc::RLIMIT_FSIZE as i32, None) {
                let _ = cpr::sys::prlimit(pid, libc::RLIMIT_FSIZE as i32, Some((0, hard)));
            }
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
        // the reader may still hold the last lines
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.outcome.is_none() && Instant::now() < deadline {
            self.progress();
            std::thread::sleep(Duration::from_millis(10));
        }
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err("cview: the helper ended without an answer".into()));
        if self.cancelled && outcome.is_err() {
            return Some(Err(match self.kind {
                Kind::Checkpoint => {
                    "Checkpoint cancelled: no statefile was made, the processes run on"
                }
                Kind::Restart => "Restart cancelled: nothing was restarted",
            }
            .into()));
        }
        Some(outcome)
    }
}

/// The helper (`cview --run-job`): one request in, reports and one outcome out; a later
/// `cancel` line on its standard input asks the operation to stop.
pub fn serve() -> std::process::ExitCode {
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGXFSZ);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None);
    let mut input = BufReader::new(std::io::stdin());
    let mut line = String::new();
    let _ = input.read_line(&mut line);
    drop(input);
    // later lines (`cancel`) are looked for without waiting, when the engine asks: the
    // helper stays single-threaded, as a restart needs
    let stdin = std::io::stdin();
    let _ = fcntl(stdin.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let reporter = Arc::new(Reporter {
        cancel: AtomicBool::new(false),
        input: Mutex::new(stdin),
        pending: Mutex::new((Instant::now(), 0)),
    });
    let outcome = match serde_json::from_str::<Request>(&line) {
        Ok(request) => run(request, &Progress::new(reporter.clone())),
        Err(e) => Err(format!("cview: a bad request: {e}")),
    };
    reporter.flush();
    let ok = outcome.is_ok();
    send(&match outcome {
        Ok(m) => Report::Outcome(true, m),
        Err(m) => Report::Outcome(false, m),
    });
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The helper's observer: reports go out as lines, bytes at most ten times a second.
struct Reporter {
    cancel: AtomicBool,
    /// The helper's standard input, not blocking: where `cancel` comes.
    input: Mutex<std::io::Stdin>,
    /// When bytes were last sent, and how many have moved since.
    pending: Mutex<(Instant, u64)>,
}

impl Reporter {
    fn flush(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.1 > 0 {
            send(&Report::Bytes(p.1));
        }
        *p = (Instant::now(), 0);
    }
}

impl Observer for Reporter {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        self.flush();
        send(&Report::Phase(phase.name().to_string(), total));
    }

    fn bytes(&self, bytes: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.1 += bytes;
        if p.0.elapsed() >= Duration::from_millis(100) {
            send(&Report::Bytes(p.1));
            *p = (Instant::now(), 0);
        }
    }

    fn cancelled(&self) -> bool {
        if !self.cancel.load(Ordering::SeqCst) {
            let mut buf = [0u8; 64];
            let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(n) = input.read(&mut buf)
                && buf[..n].windows(6).any(|w| w == b"cancel")
            {
                self.cancel.store(true, Ordering::SeqCst);
            }
        }
        self.cancel.load(Ordering::SeqCst)
    }
}

fn send(report: &Report) {
    if let Ok(text) = serde_json::to_string(report) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Request {
    /// A checkpoint request as the options `cpr -c` builds: the user's attribute file
    /// with the panel's blocks after it.
    pub fn checkpoint_options(&self) -> Result<CheckpointOptions, String> {
        let Request::Checkpoint {
            statefile,
            idlist,
            force,
            will,
            upgrade,
            choices,
        } = self
        else {
            return Err("cview: not a checkpoint".into());
        };
        let attributes =
            crate::checkpoint::with_choices(choices).map_err(|e| format!("cpr: {e}"))?;
        Ok(CheckpointOptions {
            statefile: statefile.clone(),
            idlist: idlist.clone(),
            force: *force,
            will: *will,
            upgrade: *upgrade,
            attributes: Some(attributes),
            handler_timeout: None,
            openfile_distribute: false,
            parent: None,
            compress: false,
        })
    }
}

/// Calls the library as `cpr -c` or `cpr -r` does, telling `progress`.
fn run(request: Request, progress: &Progress) -> Result<String, String> {
    match request {
        Request::Checkpoint { .. } => {
            let options = request.checkpoint_options()?;
            let path = ops::checkpoint_with_progress(&options, progress)
                .map_err(|e| format!("cpr: {e}"))?;
            Ok(format!("Checkpointed into {}", path.display()))
        }
        Request::Restart {
            statefile,
            any_pid,
            no_cwd,
            no_root,
        } => {
            let options = RestartOptions {
                statefiles: vec![statefile.clone()],
                interactive: false,
                any_pid,
                no_cwd,
                no_root,
                lazy: false,
            };
            ops::restart_with_progress(&options, progress).map_err(|e| format!("cpr: {e}"))?;
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
