//! Process-wide signal state: dispositions (handler, flags, mask, restorer), the shared
//! pending queue with siginfo, and the interval timers (`alarm`, `setitimer`), which keep
//! the time they had left.

use serde::{Deserialize, Serialize};

use super::threads::{decode_siginfo, hex};
use crate::engine::ptrace::{self, Answers, Injector, Questions, RemoteScratch};
use crate::error::{Context, Error, Result};
use crate::statefile::reader::damaged_record;
use crate::sys::KernelSigaction;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalsRecord {
    /// (signal, disposition) for every signal not at its default.
    pub actions: Vec<(i32, KernelSigaction)>,
    /// The process-wide pending queue, siginfo hex.
    pub shared_pending: Vec<String>,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF as (interval s, interval us, value s, value us).
    pub itimers: [[u64; 4]; 3],
}

const NSIG: i32 = 64;

impl SignalsRecord {
    /// What restore takes as given: every disposition is of a signal that exists, every
    /// queued signal decodes.
    pub fn check(&self) -> Result<()> {
        if let Some((sig, _)) = self.actions.iter().find(|(s, _)| !(1..=NSIG).contains(s)) {
            return Err(damaged_record(format_args!("disposition of signal {sig}")));
        }
        for info in &self.shared_pending {
            decode_siginfo(info).map_err(|e| e.context("pending signal"))?;
        }
        Ok(())
    }
}
/// Bytes of the kernel's `struct sigaction` and of a `struct itimerval`.
const SIGACTION_SIZE: u64 = std::mem::size_of::<KernelSigaction>() as u64;
const ITIMERVAL_SIZE: u64 = 4 * 8;

/// The questions `ask` added for the dispositions and timers, and where their answers
/// land in the process.
pub struct Asked {
    actions: ptrace::RemoteAddr,
    timers: ptrace::RemoteAddr,
    /// Signals not asked: at SIG_DFL, or SIG_IGN when `ignored` says so.
    zeroes: Vec<i32>,
    ignored: u64,
    calls: Vec<usize>,
}

/// Adds to `questions` what reads the dispositions and timers through injection; their
/// answers land in `scratch` (argument space in the process, kept until `answer`). Only
/// the process can tell a handler's address and flags, one call each: asked for the
/// signals it catches (SigCgt) and for SIGCHLD (whose flags matter even at SIG_DFL).
/// The others are at SIG_DFL, or SIG_IGN (SigIgn), with nothing else to keep; their
/// slots are filled in by `answer`. One call per signal into its own slot, then a single
/// read. `status`: the process's /proc status if read already while it is stopped.
pub fn ask(
    pid: i32,
    status: Option<&str>,
    questions: &mut Questions,
    scratch: &mut RemoteScratch,
) -> Result<Asked> {
    let dir = crate::proc::ProcDir::open(pid)?;
    let status = dir.status_or(status)?;
    let mask = |key: &str| {
        dir.parsed("status", &status, |text| {
            crate::proc::status::mask(text, key)
        })
    };
    let (caught, ignored) = (mask("SigCgt")?, mask("SigIgn")?);
    let actions = scratch.alloc(NSIG as u64 * SIGACTION_SIZE)?;
    let timers = scratch.alloc(3 * ITIMERVAL_SIZE)?;
    let mut zeroes = Vec::new();
    let mut calls = Vec::new();
    for sig in 1..=NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        if caught & bit(sig) == 0 && sig != libc::SIGCHLD {
            zeroes.push(sig);
            continue;
        }
        calls.push(questions.ask(
            "rt_sigaction",
            libc::SYS_rt_sigaction,
            [
                sig as u64,
                0,
                (actions + (sig as u64 - 1) * SIGACTION_SIZE).as_u64(),
                8,
                0,
                0,
            ],
        ));
    }
    for (i, which) in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF]
        .into_iter()
        .enumerate()
    {
        calls.push(questions.ask(
            "getitimer",
            libc::SYS_getitimer,
            [
                which as u64,
                (timers + i as u64 * ITIMERVAL_SIZE).as_u64(),
                0,
                0,
                0,
                0,
            ],
        ));
    }
    Ok(Asked {
        actions,
        timers,
        zeroes,
        ignored,
        calls,
    })
}

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// The record, from the `answers` to what `ask` added (read from `scratch`) and the
/// process's shared pending queue.
pub fn answer(
    pid: i32,
    asked: Asked,
    answers: &Answers,
    scratch: &RemoteScratch,
) -> Result<SignalsRecord> {
    for &i in &asked.calls {
        answers.checked(i)?;
    }
    let mut rec = SignalsRecord::default();
    let mut raw = scratch.read(asked.actions, (NSIG as u64 * SIGACTION_SIZE) as usize)?;
    let timers = scratch.read(asked.timers, (3 * ITIMERVAL_SIZE) as usize)?;
    const SA: usize = SIGACTION_SIZE as usize;
    for sig in asked.zeroes {
        let o = (sig as usize - 1) * SA;
        raw[o..o + SA].fill(0);
        if asked.ignored & bit(sig) != 0 {
            raw[o..o + 8].copy_from_slice(&(libc::SIG_IGN as u64).to_ne_bytes());
        }
    }
    let word = |b: &[u8], o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    for sig in 1..=NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let o = (sig as usize - 1) * SA;
        let act = KernelSigaction {
            handler: word(&raw, o),
            flags: word(&raw, o + 8),
            restorer: word(&raw, o + 16),
            mask: word(&raw, o + 24),
        };
        if act != KernelSigaction::default() {
            rec.actions.push((sig, act));
        }
    }
    for i in 0..3 {
        let o = i * ITIMERVAL_SIZE as usize;
        rec.itimers[i] = [
            word(&timers, o),
            word(&timers, o + 8),
            word(&timers, o + 16),
            word(&timers, o + 24),
        ];
    }
    rec.shared_pending = ptrace::peek_siginfo(pid, true)?
        .iter()
        .map(|s| hex(s))
        .collect();
    Ok(rec)
}

/// The restore child's last step: installs the image's dispositions, sends `ready` to
/// cpr and waits for the tracer (see `sys::install_image_actions_and_wait`: handler
/// addresses belong to the image, which replaces cpr's memory before any signal can be
/// delivered). Returns only on failure.
pub fn restore_actions_and_wait(
    rec: &SignalsRecord,
    status: std::fs::File,
    ready: &[u8],
) -> Result<std::convert::Infallible> {
    // what cpr's copy set for itself (the Rust runtime ignores SIGPIPE) is not the
    // image's: every signal the record leaves out is at SIG_DFL
    for sig in (1..=NSIG).filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP) {
        if !rec.actions.iter().any(|(s, _)| *s == sig) {
            crate::sys::default_signal(sig)
                .map_err(|e| Error::errno(format!("signal {sig}"), e))?;
        }
    }
    crate::sys::install_image_actions_and_wait(&rec.actions, status, ready)
        .map_err(|(sig, e)| Error::errno(format!("signal {sig}"), e))
}

/// After the image is in place: the shared pending queue and the timers, by injection in
/// the main thread.
pub fn restore_pending_and_timers(
    rec: &SignalsRecord,
    inj: &Injector,
    pid: i32,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    for info in &rec.shared_pending {
        let (sig, bytes) = decode_siginfo(info).ctx("pending signal")?;
        let mut s = scratch.frame();
        let siginfo = s.put(&bytes)?;
        inj.check(
            "rt_sigqueueinfo",
            libc::SYS_rt_sigqueueinfo,
            [pid as u64, sig as u64, siginfo.as_u64(), 0, 0, 0],
        )?;
    }
    for (i, which) in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF]
        .into_iter()
        .enumerate()
    {
        let t = rec.itimers[i];
        if t == [0; 4] {
            continue;
        }
        let mut b = Vec::new();
        for x in t {
            b.extend_from_slice(&x.to_ne_bytes());
        }
        let mut s = scratch.frame();
        let itimerval = s.put(&b)?;
        inj.check(
            "setitimer",
            libc::SYS_setitimer,
            [which as u64, itimerval.as_u64(), 0, 0, 0, 0],
        )?;
    }
    Ok(())
}
