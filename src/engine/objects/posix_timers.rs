//! POSIX timers (`timer_create`): /proc/PID/timers names them (crate::proc::timers),
//! timer_gettime (injected) gives what is left; restart recreates them by injection with their IDs
//! (PR_TIMER_CREATE_RESTORE_IDS). They keep the time they had left and their interval, as
//! relative values: the time between checkpoint and restart does not count.

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::{Error, Kind, Result};
use crate::proc::ProcDir;

/// One POSIX timer of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixTimer {
    pub id: i32,
    pub clock: i32,
    pub signo: i32,
    /// sigev_value.
    pub sival: u64,
    /// SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, with SIGEV_THREAD_ID or'ed in.
    pub notify: i32,
    /// The thread that gets the signal (SIGEV_THREAD_ID).
    pub target: i32,
    pub interval: (i64, i64),
    /// Time left, (0, 0) when disarmed.
    pub value: (i64, i64),
}

/// The POSIX timers of a stopped process with the time they have left (timer_gettime
/// injected; `scratch`: argument space in the process).
pub fn dump(pid: i32, inj: &Injector, scratch: &mut RemoteScratch) -> Result<Vec<PosixTimer>> {
    // none when the kernel has no /proc/PID/timers (no CONFIG_CHECKPOINT_RESTORE)
    let mut timers: Vec<PosixTimer> = ProcDir::open(pid)?
        .timers()?
        .into_iter()
        .map(|t| PosixTimer {
            id: t.id,
            clock: t.clock,
            signo: t.signo,
            sival: t.sival,
            notify: t.notify,
            target: t.target,
            interval: (0, 0),
            value: (0, 0),
        })
        .collect();
    for t in &mut timers {
        let mut s = scratch.frame();
        let its = s.alloc(ITIMERSPEC_SIZE)?;
        inj.check(
            "timer_gettime",
            libc::SYS_timer_gettime,
            [t.id as u64, its.as_u64(), 0, 0, 0, 0],
        )?;
        let raw = s.read(its, ITIMERSPEC_SIZE as usize)?;
        let word = |o: usize| i64::from_ne_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
        t.interval = (word(0), word(8));
        t.value = (word(16), word(24));
    }
    Ok(timers)
}

const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;
/// Bytes of a `struct itimerspec` (interval, value; seconds and nanoseconds each).
const ITIMERSPEC_SIZE: u64 = 4 * 8;

/// After the image and its threads are in place, before credentials: every POSIX timer
/// with its ID, signal, target, interval and time left, by injection in the main thread.
pub fn restore(timers: &[PosixTimer], inj: &Injector, scratch: &mut RemoteScratch) -> Result<()> {
    if timers.is_empty() {
        return Ok(());
    }
    let pid = scratch.pid();
    let who = format!("process {pid}");
    let rc = inj.call(
        libc::SYS_prctl,
        [PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0, 0],
    )?;
    if rc < 0 {
        return Err(Error::with_detail(
            &who,
            Kind::NotImplemented,
            format!(
                "{} POSIX timer(s): this kernel cannot create timers with chosen IDs \
                 (prctl PR_TIMER_CREATE_RESTORE_IDS: {})",
                timers.len(),
                nix::errno::Errno::from_raw(-rc as i32).desc()
            ),
        ));
    }
    let result = (|| -> Result<()> {
        for t in timers {
            // struct sigevent (64 bytes): value, signo, notify, then the thread ID
            let mut sev = [0u8; 64];
            sev[0..8].copy_from_slice(&t.sival.to_ne_bytes());
            sev[8..12].copy_from_slice(&t.signo.to_ne_bytes());
            sev[12..16].copy_from_slice(&t.notify.to_ne_bytes());
            sev[16..20].copy_from_slice(&t.target.to_ne_bytes());
            let mut s = scratch.frame();
            let sev = s.put(&sev)?;
            let id = s.put(&t.id.to_ne_bytes())?;
            inj.check(
                "timer_create",
                libc::SYS_timer_create,
                [t.clock as u64, sev.as_u64(), id.as_u64(), 0, 0, 0],
            )
            .map_err(|e| e.context(format!("POSIX timer {}", t.id)))?;
            let got = s.read(id, 4)?;
            let got = i32::from_ne_bytes(got[..4].try_into().unwrap_or([0; 4]));
            if got != t.id {
                return Err(Error::with_detail(
                    &who,
                    Kind::CheckpointError,
                    format!("POSIX timer {} was created as {got}", t.id),
                ));
            }
            if t.value == (0, 0) {
                continue;
            }
            let mut its = Vec::with_capacity(32);
            for x in [t.interval.0, t.interval.1, t.value.0, t.value.1] {
                its.extend_from_slice(&x.to_ne_bytes());
            }
            let its = s.put(&its)?;
            inj.check(
                "timer_settime",
                libc::SYS_timer_settime,
                [t.id as u64, 0, its.as_u64(), 0, 0, 0],
            )
            .map_err(|e| e.context(format!("POSIX timer {}", t.id)))?;
        }
        Ok(())
    })();
    inj.check(
        "prctl(PR_TIMER_CREATE_RESTORE_IDS off)",
        libc::SYS_prctl,
        [PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0, 0],
    )?;
    result
}
