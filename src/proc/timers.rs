//! `/proc/PID/timers`: the POSIX timers of a process, four lines each:
//! `ID: 1`, `signal: 14/0000000000000000` (signal number / sigev_value in hexadecimal),
//! `notify: signal/pid.23759` (how / `pid` or `tid` . whom), `ClockID: 0`.

use super::malformed;
use crate::error::Result;

/// One timer as the kernel shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub id: i32,
    pub signo: i32,
    /// sigev_value.
    pub sival: u64,
    /// SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, with SIGEV_THREAD_ID or'ed in.
    pub notify: i32,
    /// The process, or the thread (SIGEV_THREAD_ID), that gets the signal.
    pub target: i32,
    pub clock: i32,
}

/// The fields of one timer, as they are read.
#[derive(Default)]
struct Partial {
    id: i32,
    signal: Option<(i32, u64)>,
    notify: Option<(i32, i32)>,
    clock: Option<i32>,
}

impl Partial {
    fn finish(self) -> Result<Timer> {
        let missing =
            |what: &str| malformed("timers", format!("timer {}: no {what} line", self.id));
        let (signo, sival) = self.signal.ok_or_else(|| missing("signal"))?;
        let (notify, target) = self.notify.ok_or_else(|| missing("notify"))?;
        Ok(Timer {
            id: self.id,
            signo,
            sival,
            notify,
            target,
            clock: self.clock.ok_or_else(|| missing("ClockID"))?,
        })
    }
}

/// The whole file; lines with another key are left alone.
pub fn parse(text: &str) -> Result<Vec<Timer>> {
    let mut out = Vec::new();
    let mut current: Option<Partial> = None;
    for line in text.lines() {
        let bad = |what: &str| malformed("timers", format!("{what} in '{line}'"));
        let (key, value) = line.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let value = value.trim();
        if key == "ID" {
            if let Some(done) = current.take() {
                out.push(done.finish()?);
            }
            current = Some(Partial {
                id: value.parse().map_err(|_| bad("ID is not a number"))?,
                ..Partial::default()
            });
            continue;
        }
        let Some(t) = current.as_mut() else {
            return Err(bad("a line before the first ID"));
        };
        match key {
            "signal" => {
                let (signo, sival) = value.split_once('/').ok_or_else(|| bad("no '/'"))?;
                // printed with %px (no prefix); cpr has always also taken a `0x`
                let sival = sival.strip_prefix("0x").unwrap_or(sival);
                let hex = !sival.is_empty() && sival.bytes().all(|b| b.is_ascii_hexdigit());
                t.signal = Some((
                    signo.parse().map_err(|_| bad("signal is not a number"))?,
                    hex.then(|| u64::from_str_radix(sival, 16).ok())
                        .flatten()
                        .ok_or_else(|| bad("sigev_value is not hexadecimal"))?,
                ));
            }
            "notify" => {
                let (how, whom) = value.split_once('/').ok_or_else(|| bad("no '/'"))?;
                let how = match how {
                    "signal" => libc::SIGEV_SIGNAL,
                    "none" => libc::SIGEV_NONE,
                    "thread" => libc::SIGEV_THREAD,
                    _ => return Err(bad("unknown notification")),
                };
                let (kind, n) = whom.split_once('.').ok_or_else(|| bad("no '.'"))?;
                let thread_id = match kind {
                    "pid" => 0,
                    "tid" => libc::SIGEV_THREAD_ID,
                    _ => return Err(bad("neither pid nor tid")),
                };
                let target = n.parse().map_err(|_| bad("target is not a number"))?;
                t.notify = Some((how | thread_id, target));
            }
            "ClockID" => t.clock = Some(value.parse().map_err(|_| bad("ClockID is not a number"))?),
            _ => {}
        }
    }
    if let Some(done) = current {
        out.push(done.finish()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS: &str = "ID: 1\nsignal: 14/0000000000000000\nnotify: signal/pid.23759\nClockID: 0\n\
ID: 0\nsignal: 12/00000000000004d2\nnotify: thread/tid.23760\nClockID: 1\n";

    #[test]
    fn posix_timers() {
        let t = parse(TIMERS).unwrap();
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
        assert!(parse("").unwrap().is_empty());
        let prefixed = TIMERS.replace("12/00000000000004d2", "12/0x4d2");
        assert_eq!(parse(&prefixed).unwrap()[1].sival, 1234);
    }

    #[test]
    fn malformed_timers_are_errors() {
        for (from, to, want) in [
            ("ID: 1\n", "", "a line before the first ID"),
            ("ID: 1", "ID: x", "ID is not a number"),
            ("14/0000000000000000", "14 0", "no '/'"),
            ("14/0000000000000000", "x/0", "signal is not a number"),
            (
                "14/0000000000000000",
                "14/0xg",
                "sigev_value is not hexadecimal",
            ),
            (
                "14/0000000000000000",
                "14/",
                "sigev_value is not hexadecimal",
            ),
            ("signal/pid.23759", "sig/pid.23759", "unknown notification"),
            (
                "signal/pid.23759",
                "signal/pgid.23759",
                "neither pid nor tid",
            ),
            ("signal/pid.23759", "signal/pid.x", "target is not a number"),
            ("ClockID: 0", "ClockID: -", "ClockID is not a number"),
            ("ClockID: 0\n", "", "timer 1: no ClockID line"),
            ("notify: thread/tid.23760\n", "", "timer 0: no notify line"),
            ("ClockID: 1\n", "ClockID 1\n", "no ':'"),
        ] {
            let text = TIMERS.replacen(from, to, 1);
            let msg = parse(&text).expect_err(&text).to_string();
            assert!(msg.contains("malformed timers"), "{msg}");
            assert!(msg.contains(want), "{msg:?} wanted {want:?}");
        }
    }
}
