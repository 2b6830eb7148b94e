//! `/proc/PID/limits`: a header, then one line per resource in RLIMIT_* order, in columns
//! (name 25 characters, soft and hard limits 20 each, then the units).

use super::malformed;
use crate::error::Result;

/// Where the soft and hard limit columns start and end (`%-25s %-20s %-20s %-10s`).
const SOFT: std::ops::Range<usize> = 26..47;
const HARD: std::ops::Range<usize> = 47..68;

/// (soft, hard) of each resource, in RLIMIT_* order; `unlimited` is `u64::MAX`.
pub fn parse(text: &str) -> Result<Vec<(u64, u64)>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(header) if header.starts_with("Limit ") => {}
        other => {
            return Err(malformed(
                "limits",
                format!("header '{}'", other.unwrap_or("")),
            ));
        }
    }
    lines
        .map(|line| {
            let name = line.get(..SOFT.start).unwrap_or(line).trim();
            let column = |range: std::ops::Range<usize>, which: &str| {
                let value = line
                    .get(range.start..range.end.min(line.len()))
                    .unwrap_or("")
                    .trim();
                match value {
                    "unlimited" => Ok(u64::MAX),
                    v => v.parse().map_err(|_| {
                        malformed(
                            "limits",
                            format!("{name}: {which} limit '{v}' is not a number"),
                        )
                    }),
                }
            };
            Ok((column(SOFT, "soft")?, column(HARD, "hard")?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max nice priority         0                    0                    \n";

    #[test]
    fn limits_parse() {
        let l = parse(LIMITS).unwrap();
        assert_eq!(l.len(), 5);
        assert_eq!(l[0], (u64::MAX, u64::MAX));
        assert_eq!(l[3], (8388608, u64::MAX));
        assert_eq!(l[4], (0, 0));
    }

    #[test]
    fn malformed_limits_are_errors_naming_the_resource() {
        for (text, want) in [
            (
                LIMITS.replace("8388608     ", "8x88608     "),
                "Max stack size: soft limit '8x88608'",
            ),
            (
                LIMITS.replace("0                    \n", "-1                   \n"),
                "Max nice priority: hard limit '-1'",
            ),
            (LIMITS.replace("Limit      ", "Limits     "), "header"),
            (String::new(), "header ''"),
            (
                format!("{LIMITS}Max truncated\n"),
                "Max truncated: soft limit ''",
            ),
        ] {
            let msg = parse(&text).expect_err(&text).to_string();
            assert!(msg.contains("malformed limits"), "{msg}");
            assert!(msg.contains(want), "{msg:?} wanted {want:?}");
        }
    }

    #[test]
    fn this_process_limits_parse() {
        let text = std::fs::read_to_string("/proc/self/limits").unwrap();
        assert_eq!(parse(&text).unwrap().len(), 16);
    }
}
