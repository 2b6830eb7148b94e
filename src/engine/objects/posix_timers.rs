//! POSIX timers (`timer_create`): /proc/PID/timers names them, timer_gettime (injected)
//! gives what is left; restart recreates them by injection with their IDs
//! (PR_TIMER_CREATE_RESTORE_IDS). They keep the time they had left and their interval, as
//! relative values: the time between checkpoint and restart does not count.

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::{Error, Kind, Result};

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

/// /proc/PID/timers.
pub fn parse_timers(text: &str) -> Result<Vec<PosixTimer>> {
    let mut out: Vec<PosixTimer> = Vec::new();
    let err = |l: &str| {
        Error::with_detail(
            "timers",
            Kind::CheckpointError,
            format!("cannot parse {l:?}"),
        )
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k == "ID" {
            out.push(PosixTimer {
                id: v.parse().map_err(|_| err(line))?,
                clock: 0,
                signo: 0,
                sival: 0,
                notify: 0,
                target: 0,
                interval: (0, 0),
                value: (0, 0),
            });
            continue;
        }
        let Some(t) = out.last_mut() else {
            return Err(err(line));
        };
        match k {
            "signal" => {
                let (s, val) = v.split_once('/').ok_or_else(|| err(line))?;
                t.signo = s.parse().map_err(|_| err(line))?;
                let val = val.trim_start_matches("0x");
                t.sival = u64::from_str_radix(val, 16).map_err(|_| err(line))?;
            }
            "notify" => {
                // "signal/pid.123", "thread/tid.124", "none/pid.123"
                let (how, who) = v.split_once('/').ok_or_else(|| err(line))?;
                let base = match how {
                    "signal" => libc::SIGEV_SIGNAL,
                    "none" => libc::SIGEV_NONE,
                    "thread" => libc::SIGEV_THREAD,
                    _ => return Err(err(line)),
                };
                let (kind, n) = who.split_once('.').ok_or_else(|| err(line))?;
                t.notify = base
                    | if kind == "tid" {
                        libc::SIGEV_THREAD_ID
                    } else {
                        0
                    };
                t.target = n.parse().map_err(|_| err(line))?;
            }
            "ClockID" => t.clock = v.parse().map_err(|_| err(line))?,
            _ => {}
        }
    }
    Ok(out)
}

/// The POSIX timers of a stopped process with the time they have left (timer_gettime
/// injected; `scratch`: argument space in the process).
pub fn dump(pid: i32, inj: &Injector, scratch: &mut RemoteScratch) -> Result<Vec<PosixTimer>> {
    let who = format!("process {pid}");
    let text = match std::fs::read_to_string(format!("/proc/{pid}/timers")) {
        Ok(t) => t,
        // kernels without CONFIG_CHECKPOINT_RESTORE have no such file
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&who, e)),
    };
    let mut timers = parse_timers(&text).map_err(|e| e.context(&who))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: &str = "ID: 1\nsignal: 14/0000000000000000\nnotify: signal/pid.23759\nClockID: 0\n\
ID: 0\nsignal: 12/00000000000004d2\nnotify: thread/tid.23760\nClockID: 1\n";

    #[test]
    fn posix_timers() {
        let t = parse_timers(TIMERS).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].id, t[0].signo, t[0].notify, t[0].target, t[0].clock),
            (1, 14, libc::SIGEV_SIGNAL, 23759, 0)
        );
        assert_eq!(
            (t[1].id, t[1].sival, t[1].notify, t[1].target, t[1].clock),
            (
                0,
                1234,
                libc::SIGEV_THREAD | libc::SIGEV_THREAD_ID,
                23760,
                1
            )
        );
        assert!(parse_timers("signal: 1/0\n").is_err());
        assert!(parse_timers("").unwrap().is_empty());
    }
}
