//! `/proc/PID/mountinfo`: one line per mount, `id parent major:minor root mount-point
//! options ...`; in paths the kernel writes a space, tab, newline or backslash as a
//! backslash and three octal digits (`\040`).

use super::malformed;
use crate::error::{Error, Result};

/// The columns of one mount cpr uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    /// Where it is mounted, unescaped.
    pub mount_point: String,
}

/// `\040` and the like back to the bytes they stand for.
fn unescape(field: &str) -> Option<String> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4)?;
            if !digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                return None;
            }
            let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

pub fn parse(text: &str) -> Result<Vec<Mount>> {
    text.lines()
        .map(|line| {
            let bad = |what: &str| malformed("mountinfo", format!("{what} in '{line}'"));
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 5 {
                return Err(bad("fewer than 5 fields"));
            }
            let (major, minor) = f[2]
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| bad(&format!("device '{}'", f[2])))?;
            let mount_point =
                unescape(f[4]).ok_or_else(|| bad(&format!("mount point '{}'", f[4])))?;
            Ok(Mount {
                major,
                minor,
                mount_point,
            })
        })
        .collect()
}

/// The mounts cpr itself sees (`/proc/self/mountinfo`).
pub fn read_own() -> Result<Vec<Mount>> {
    const PATH: &str = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(PATH).map_err(|e| Error::io(PATH, e))?;
    parse(&text).map_err(|e| e.context(PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        let text = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    40 22 0:35 / /mnt/my\\040disk\\134x rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                Mount {
                    major: 254,
                    minor: 0,
                    mount_point: "/".into()
                },
                Mount {
                    major: 0,
                    minor: 35,
                    mount_point: "/mnt/my disk\\x".into()
                },
            ]
        );
        for (bad, want) in [
            ("22 1 254:0 /\n", "fewer than 5 fields"),
            ("22 1 254-0 / / rw\n", "device '254-0'"),
            ("22 1 254:x / / rw\n", "device '254:x'"),
            ("22 1 254:0 / /a\\04 rw\n", "mount point '/a\\04'"),
            ("22 1 254:0 / /a\\x41b rw\n", "mount point"),
            ("22 1 254:0 / /a\\777 rw\n", "mount point"),
        ] {
            let msg = parse(bad).expect_err(bad).to_string();
            assert!(msg.contains("malformed mountinfo"), "{msg}");
            assert!(msg.contains(want), "{msg:?} wanted {want:?}");
        }
        assert!(read_own().unwrap().iter().any(|m| m.mount_point == "/"));
    }
}
