//! `/proc/PID/autogroup`: `/autogroup-ID nice N`, the scheduling group of the process's
//! session and that group's nice value.

use super::malformed;
use crate::error::Result;

/// The nice value of the autogroup.
pub fn nice(text: &str) -> Result<i32> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(group), Some("nice"), Some(nice), None)
            if group
                .strip_prefix("/autogroup-")
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())) =>
        {
            match nice.parse::<i32>() {
                Ok(n) if (-20..=19).contains(&n) => Ok(n),
                _ => Err(malformed("autogroup", format!("nice '{nice}'"))),
            }
        }
        _ => Err(malformed("autogroup", format!("line '{line}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_nice_value() {
        assert_eq!(nice("/autogroup-10209 nice 0\n").unwrap(), 0);
        assert_eq!(nice("/autogroup-7 nice -5\n").unwrap(), -5);
        for bad in [
            "",
            "/autogroup- nice 0\n",
            "/autogroup-1 nice\n",
            "/autogroup-1 nice 20\n",
            "/autogroup-1 nice 0 x\n",
            "/group-1 nice 0\n",
        ] {
            assert!(nice(bad).is_err(), "{bad:?}");
        }
    }
}
