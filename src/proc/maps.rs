//! `/proc/PID/maps` (one line per mapping) and the `VmFlags` of `/proc/PID/smaps`.

use super::malformed;
use crate::error::Result;

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    /// Four letters: `r`/`-`, `w`/`-`, `x`/`-`, `s` (shared) or `p` (private).
    pub perms: String,
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    /// A path, `[heap]`, `[stack]`, `[vdso]`, ..., or empty.
    pub path: String,
}

impl MapsLine {
    /// Parses one line: `start-end perms offset dev inode [path]`.
    pub fn parse(line: &str) -> Result<MapsLine> {
        let bad = |what: String| malformed("maps line", format!("{what} in '{line}'"));
        let mut it = line.splitn(6, ' ');
        let mut next = |name: &str| it.next().ok_or_else(|| bad(format!("no {name}")));
        let range = next("address range")?;
        let perms = next("permissions")?;
        let offset = next("offset")?;
        let dev = next("device")?;
        let inode = next("inode")?;
        let path = it.next().unwrap_or("").trim_start().to_string();
        let (start, end) = range
            .split_once('-')
            .and_then(|(s, e)| Some((hex(s)?, hex(e)?)))
            .ok_or_else(|| bad(format!("address range '{range}'")))?;
        let p = perms.as_bytes();
        let perms_ok = p.len() == 4
            && matches!(p[0], b'r' | b'-')
            && matches!(p[1], b'w' | b'-')
            && matches!(p[2], b'x' | b'-')
            && matches!(p[3], b's' | b'p');
        if !perms_ok {
            return Err(bad(format!("permissions '{perms}'")));
        }
        let dev_ok = dev
            .split_once(':')
            .is_some_and(|(major, minor)| hex(major).is_some() && hex(minor).is_some());
        if !dev_ok {
            return Err(bad(format!("device '{dev}'")));
        }
        Ok(MapsLine {
            start,
            end,
            perms: perms.to_string(),
            offset: hex(offset).ok_or_else(|| bad(format!("offset '{offset}'")))?,
            dev: dev.to_string(),
            inode: inode.parse().map_err(|_| bad(format!("inode '{inode}'")))?,
            path,
        })
    }

    pub fn readable(&self) -> bool {
        self.perms.as_bytes()[0] == b'r'
    }

    pub fn shared(&self) -> bool {
        self.perms.as_bytes()[3] == b's'
    }

    pub fn prot(&self) -> i32 {
        let p = self.perms.as_bytes();
        (if p[0] == b'r' { libc::PROT_READ } else { 0 })
            | (if p[1] == b'w' { libc::PROT_WRITE } else { 0 })
            | (if p[2] == b'x' { libc::PROT_EXEC } else { 0 })
    }
}

/// Hexadecimal digits only (no sign, no `0x`).
fn hex(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The whole of /proc/PID/maps.
pub fn parse(text: &str) -> Result<Vec<MapsLine>> {
    text.lines().map(MapsLine::parse).collect()
}

/// The text of /proc/PID/smaps as maps lines and each mapping's VmFlags (the header
/// line of each mapping in smaps is its maps line): one read for both, one pass over it.
/// A mapping's header is a maps line; the lines under it are `Key: value`. A flag Linux
/// prints that cpr does not know is "Checkpoint error": it may be state that restart
/// would lose.
#[allow(clippy::type_complexity)]
pub fn parse_smaps(text: &str) -> Result<(Vec<MapsLine>, Vec<(u64, Vec<String>)>)> {
    let mut lines = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<u64> = None;
    for line in text.lines() {
        let first = line.split(' ').next().unwrap_or("");
        if let Some(key) = first.strip_suffix(':') {
            if key == "VmFlags" {
                let start = current.take().ok_or_else(|| {
                    malformed("smaps", format!("VmFlags line '{line}' outside a mapping"))
                })?;
                let flags: Vec<String> = line["VmFlags:".len()..]
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                if let Some(unknown) = flags.iter().find(|f| vm_flag_kind(f).is_none()) {
                    return Err(crate::error::Error::with_detail(
                        "",
                        crate::error::Kind::CheckpointError,
                        format!(
                            "VmFlag '{unknown}' of the mapping at {start:#x} is unknown to cpr"
                        ),
                    ));
                }
                out.push((start, flags));
            } else if key == "ProtectionKey" {
                // a memory protection key (pkey_mprotect) is state restart does not give back
                let pkey = line[first.len()..].trim();
                if pkey != "0" {
                    let at = current.unwrap_or(0);
                    return Err(crate::error::Error::with_detail(
                        "",
                        crate::error::Kind::CheckpointError,
                        format!(
                            "the mapping at {at:#x} uses memory protection key {pkey}, which is not checkpoint safe"
                        ),
                    ));
                }
            }
        } else {
            if let Some(start) = current {
                return Err(malformed(
                    "smaps",
                    format!("mapping at {start:x} has no VmFlags line"),
                ));
            }
            let header = MapsLine::parse(line).map_err(|e| e.detail("in smaps"))?;
            current = Some(header.start);
            lines.push(header);
        }
    }
    if let Some(start) = current {
        return Err(malformed(
            "smaps",
            format!("mapping at {start:x} has no VmFlags line"),
        ));
    }
    Ok((lines, out))
}

/// What a smaps `VmFlags` mnemonic means to a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmFlagKind {
    /// Follows from the mapping's protections, sharing and backing (or is bookkeeping the
    /// kernel redoes): mapping it again gives it back.
    Derived,
    /// Set by a call restart repeats: madvise, mlock, MAP_GROWSDOWN, MAP_NORESERVE, mseal.
    Restored,
    /// Only the kernel's own special mappings (vDSO, vvar) have it; anywhere else it is a
    /// mapping cpr cannot make again.
    Special,
    /// A state cpr cannot give back (what it is, for the error).
    Unrestorable(&'static str),
}

/// Every mnemonic Linux prints in `VmFlags` (fs/proc/task_mmu.c), and what it means;
/// `None` for one cpr does not know, which a checkpoint refuses.
pub fn vm_flag_kind(flag: &str) -> Option<VmFlagKind> {
    use VmFlagKind::*;
    Some(match flag {
        "rd" | "wr" | "ex" | "sh" | "mr" | "mw" | "me" | "ms" | "ac" | "sd" | "dw" => Derived,
        "gd" | "lo" | "lf" | "sr" | "rr" | "dc" | "wf" | "dd" | "hg" | "nh" | "mg" | "nr"
        | "sl" => Restored,
        "pf" | "io" | "de" | "mm" | "ar" => Special,
        "ht" => Unrestorable("hugetlb memory"),
        "um" | "uw" | "ui" => Unrestorable("memory registered with userfaultfd"),
        "ss" => Unrestorable("a shadow stack"),
        "dp" => Unrestorable("droppable memory (MAP_DROPPABLE)"),
        "sf" => Unrestorable("a synchronous (MAP_SYNC) mapping"),
        "mt" | "bt" | "nl" => Unrestorable("an architecture-specific mapping"),
        _ => return None,
    })
}

/// /proc/PID/smaps: the VmFlags of each mapping, by start address (as `parse_smaps`).
pub fn parse_smaps_flags(text: &str) -> Result<Vec<(u64, Vec<String>)>> {
    parse_smaps(text).map(|(_, flags)| flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = MapsLine::parse(
            "7f00-7f10 r-xp 00001000 08:01 1234                       /usr/lib/x (deleted)",
        )
        .unwrap();
        assert_eq!(
            (m.start, m.end, m.offset, m.inode),
            (0x7f00, 0x7f10, 0x1000, 1234)
        );
        assert_eq!(m.path, "/usr/lib/x (deleted)");
        assert_eq!(m.prot(), libc::PROT_READ | libc::PROT_EXEC);
        let a = MapsLine::parse("7f00-7f10 rw-s 00000000 00:00 0 ").unwrap();
        assert!(a.shared() && a.path.is_empty());
        let b = MapsLine::parse("7f00-7f10 ---p 00000000 00:00 0").unwrap();
        assert_eq!((b.prot(), b.path.as_str()), (0, ""));
        let v = MapsLine::parse(
            "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
        )
        .unwrap();
        assert_eq!((v.end, v.path.as_str()), (0xffffffffff601000, "[vsyscall]"));
    }

    #[test]
    fn malformed_maps_lines_are_errors() {
        for (bad, want) in [
            ("", "no permissions"),
            ("7f00 r-xp 00001000 08:01 1234", "address range '7f00'"),
            ("7f00-zz r-xp 00001000 08:01 1234", "address range"),
            ("7f00-7f10 r-x 00001000 08:01 1234", "permissions 'r-x'"),
            ("7f00-7f10 rwxq 00001000 08:01 1234", "permissions"),
            ("7f00-7f10 r-xp 0x1000 08:01 1234", "offset '0x1000'"),
            ("7f00-7f10 r-xp 00001000 0801 1234", "device '0801'"),
            ("7f00-7f10 r-xp 00001000 08:01 -1", "inode '-1'"),
            ("7f00-7f10 r-xp 00001000 08:01", "no inode"),
        ] {
            let msg = MapsLine::parse(bad).expect_err(bad).to_string();
            assert!(msg.contains("malformed maps line"), "{msg}");
            assert!(msg.contains(want), "{bad:?} gave {msg:?}, wanted {want:?}");
        }
        let text = "7f00-7f10 r-xp 00001000 08:01 1234 /x\nnonsense\n";
        assert!(parse(text).is_err());
        assert_eq!(parse("").unwrap(), []);
    }

    #[test]
    fn smaps_gives_the_maps_lines_too() {
        let t = "1000-2000 rw-p 00000000 00:00 0 \nSize: 4 kB\nVmFlags: rd wr mr mw me \n3000-4000 r--p 00001000 08:01 5 /x:y z\nRss: 0 kB\nVmFlags: rd mr\n";
        let (lines, flags) = parse_smaps(t).unwrap();
        let maps =
            parse("1000-2000 rw-p 00000000 00:00 0 \n3000-4000 r--p 00001000 08:01 5 /x:y z\n")
                .unwrap();
        assert_eq!(lines, maps);
        assert_eq!(flags, parse_smaps_flags(t).unwrap());
    }

    #[test]
    fn smaps_flags() {
        let t = "1000-2000 rw-p 00000000 00:00 0 \nSize: 4 kB\nVmFlags: rd wr mr mw me lo \n3000-4000 r--p 00000000 08:01 5 /x:y\nVmFlags: rd mr\n";
        let f = parse_smaps_flags(t).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, 0x1000);
        assert!(f[0].1.contains(&"lo".to_string()));
        assert_eq!(f[1], (0x3000, vec!["rd".to_string(), "mr".to_string()]));
        for bad in [
            "VmFlags: rd\n",
            "1000-2000 rw-p 00000000 00:00 0 \nSize: 4 kB\n",
            "1000-2000 rw-p 00000000 00:00 0 \n3000-4000 r--p 00000000 08:01 5 /x\nVmFlags: rd\n",
            "1000-2000 rw-p 0000000g 00:00 0 \nVmFlags: rd\n",
        ] {
            let msg = parse_smaps_flags(bad).expect_err(bad).to_string();
            assert!(msg.contains("malformed"), "{msg}");
        }
        let keyed = "1000-2000 rw-p 00000000 00:00 0 \nProtectionKey:         0\nVmFlags: rd\n";
        assert_eq!(parse_smaps_flags(keyed).unwrap().len(), 1);
        let keyed = keyed.replace("         0", "         3");
        let msg = parse_smaps_flags(&keyed).expect_err("pkey").to_string();
        assert!(
            msg.contains("Checkpoint error") && msg.contains("key 3"),
            "{msg}"
        );
        let unknown = "1000-2000 rw-p 00000000 00:00 0 \nVmFlags: rd wr zz\n";
        let msg = parse_smaps_flags(unknown).expect_err("zz").to_string();
        assert!(
            msg.contains("Checkpoint error") && msg.contains("'zz'") && msg.contains("0x1000"),
            "{msg}"
        );
    }

    #[test]
    fn this_process_maps_parse() {
        let maps = parse(&std::fs::read_to_string("/proc/self/maps").unwrap()).unwrap();
        assert!(maps.iter().any(|m| m.path == "[stack]"));
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(!parse_smaps_flags(&smaps).unwrap().is_empty());
    }
}
