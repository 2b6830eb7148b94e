//! `/proc/meminfo`: `Key:   value kB` lines, the shape of `/proc/PID/status`.

use super::malformed;
use super::status::field;
use crate::error::{Error, Result};

const PATH: &str = "/proc/meminfo";

/// The size of the swap areas, in KiB (`SwapTotal:`).
pub fn swap_total_kb(text: &str) -> Result<u64> {
    let value =
        field(text, "SwapTotal").ok_or_else(|| malformed("meminfo", "no SwapTotal line"))?;
    value
        .strip_suffix(" kB")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            malformed(
                "meminfo",
                format!("SwapTotal '{value}' is not a size in kB"),
            )
        })
}

/// Whether the system has swap space (`SwapTotal` above 0).
pub fn swap_configured() -> Result<bool> {
    let text = std::fs::read_to_string(PATH).map_err(|e| Error::io(PATH, e))?;
    Ok(swap_total_kb(&text).map_err(|e| e.context(PATH))? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_total() {
        let meminfo = "MemTotal:       16318412 kB\nSwapTotal:        524284 kB\nSwapFree: 0 kB\n";
        assert_eq!(swap_total_kb(meminfo).unwrap(), 524284);
        assert_eq!(swap_total_kb("SwapTotal:              0 kB\n").unwrap(), 0);
        for (text, want) in [
            ("MemTotal: 1 kB\n", "no SwapTotal line"),
            ("SwapTotal: 12\n", "SwapTotal '12' is not a size in kB"),
            ("SwapTotal: x kB\n", "SwapTotal 'x kB'"),
            ("SwapTotal: -1 kB\n", "SwapTotal '-1 kB'"),
        ] {
            let msg = swap_total_kb(text).unwrap_err().to_string();
            assert!(
                msg.contains("malformed meminfo") && msg.contains(want),
                "{msg}"
            );
        }
        swap_configured().unwrap();
    }
}
