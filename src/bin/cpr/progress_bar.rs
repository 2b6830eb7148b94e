//! The progress bar of `cpr -c` and `cpr -r` on a terminal: one line on standard error,
//! redrawn at most ten times a second, cleared when the operation ends.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpr::ops::{Observer, Phase};

const WIDTH: usize = 30;
const REDRAW: Duration = Duration::from_millis(100);

pub struct Bar {
    state: Mutex<State>,
}

struct State {
    phase: Option<Phase>,
    total: Option<u64>,
    done: u64,
    since: Instant,
    drawn_at: Option<Instant>,
    finished: bool,
}

impl Bar {
    pub fn new() -> Bar {
        Bar {
            state: Mutex::new(State {
                phase: None,
                total: None,
                done: 0,
                since: Instant::now(),
                drawn_at: None,
                finished: false,
            }),
        }
    }
}

impl Observer for Bar {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.phase = Some(phase);
        s.total = total;
        s.done = 0;
        s.since = Instant::now();
        s.draw();
    }

    fn bytes(&self, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.done += bytes;
        let complete = s.total.is_some_and(|t| s.done >= t && s.done - bytes < t);
        if complete || s.drawn_at.is_none_or(|t| t.elapsed() >= REDRAW) {
            s.draw();
        }
    }

    fn finish(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.drawn_at.is_some() && !s.finished {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
        s.finished = true;
    }
}

impl State {
    fn draw(&mut self) {
        let Some(phase) = self.phase else { return };
        if self.finished {
            return;
        }
        let secs = self.since.elapsed().as_secs_f64().max(0.001);
        let rate = format!("{}/s", short_bytes((self.done as f64 / secs) as u64));
        let line = match self.total {
            Some(total) if total > 0 => {
                let done = self.done.min(total);
                let filled = (done as f64 / total as f64 * WIDTH as f64) as usize;
                format!(
                    "cpr: {:<18} [{}{}] {:>3}% {} of {}  {rate}",
                    phase.name(),
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    done * 100 / total,
                    short_bytes(done),
                    short_bytes(total),
                )
            }
            _ if self.done == 0 => format!("cpr: {}", phase.name()),
            _ => format!(
                "cpr: {:<18} {}  {rate}",
                phase.name(),
                short_bytes(self.done)
            ),
        };
        let _ = write!(std::io::stderr(), "\r\x1b[K{line}");
        self.drawn_at = Some(Instant::now());
    }
}

/// `812 B`, `12.3 MiB`.
fn short_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::short_bytes;

    #[test]
    fn sizes_read_short() {
        assert_eq!(short_bytes(812), "812 B");
        assert_eq!(short_bytes(12 << 20), "12.0 MiB");
        assert_eq!(short_bytes(3 << 30), "3.0 GiB");
    }
}
