//! Phase timings on stderr with `CPR_TIMING` set (for benchmarks); used by both the
//! checkpoint and the restart.

use std::time::Instant;

/// Times the phases of one operation: each `lap` prints the time since the last.
pub(crate) struct Timer(Option<Instant>, Instant);

impl Timer {
    pub(crate) fn new() -> Timer {
        let now = Instant::now();
        Timer(std::env::var_os("CPR_TIMING").map(|_| now), now)
    }
    pub(crate) fn lap(&mut self, what: &str) {
        if self.0.is_some() {
            let now = Instant::now();
            eprintln!(
                "cpr: timing: {what}: {:.1} ms",
                (now - self.1).as_secs_f64() * 1e3
            );
            self.1 = now;
        }
    }
}
