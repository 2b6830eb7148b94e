//! `/proc/PID/status`: `Key:\tvalue` lines. `parse` reads the fields every caller needs;
//! the field parsers below read the others (credentials, capabilities, signal masks).

use super::malformed;
use crate::error::Result;

/// The fields of `/proc/PID/status` every reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub tgid: i32,
    /// Real, effective, saved, filesystem.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
}

/// Parses `/proc/PID/status` text: its `Tgid:`, `Uid:` and `Gid:` lines.
pub fn parse(text: &str) -> Result<Status> {
    Ok(Status {
        tgid: number(text, "Tgid")?,
        uids: ids(text, "Uid")?,
        gids: ids(text, "Gid")?,
    })
}

/// The value of a `Key:` line, trimmed; `None` when there is no such line. Works on any
/// file of that shape (`/proc/meminfo` too).
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The value of a `Key:` line that must be there.
pub fn required<'a>(text: &'a str, key: &str) -> Result<&'a str> {
    field(text, key).ok_or_else(|| malformed("status", format!("no {key} line")))
}

fn bad(key: &str, value: &str, what: &str) -> crate::error::Error {
    malformed("status", format!("{key} '{value}' is not {what}"))
}

/// A decimal number: `Tgid`, `Pid`, `PPid`, ...
pub fn number<T: std::str::FromStr>(text: &str, key: &str) -> Result<T> {
    let value = required(text, key)?;
    value.parse().map_err(|_| bad(key, value, "a number"))
}

/// The four IDs of `Uid` or `Gid`: real, effective, saved, filesystem.
pub fn ids(text: &str, key: &str) -> Result<[u32; 4]> {
    let value = required(text, key)?;
    let ids: Vec<u32> = value
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(key, value, "4 IDs"))?;
    ids.try_into().map_err(|_| bad(key, value, "4 IDs"))
}

/// A 64-bit hexadecimal mask: `CapInh`, `CapPrm`, `CapEff`, `SigBlk`, `SigIgn`, `SigCgt`, ...
pub fn mask(text: &str, key: &str) -> Result<u64> {
    let value = required(text, key)?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(key, value, "a hexadecimal mask"));
    }
    u64::from_str_radix(value, 16).map_err(|_| bad(key, value, "a 64-bit mask"))
}

/// The supplementary groups (`Groups:`, possibly empty).
pub fn groups(text: &str) -> Result<Vec<u32>> {
    let value = required(text, "Groups")?;
    value
        .split_ascii_whitespace()
        .map(|g| {
            g.parse()
                .map_err(|_| bad("Groups", value, "a list of group IDs"))
        })
        .collect()
}

/// The file mode creation mask, octal. `None` when the kernel shows none: a zombie has
/// no fs context, and kernels before 4.7 have no `Umask:` line.
pub fn umask(text: &str) -> Result<Option<u32>> {
    field(text, "Umask")
        .map(|value| {
            u32::from_str_radix(value, 8).map_err(|_| bad("Umask", value, "an octal mask"))
        })
        .transpose()
}

/// The process's ID in each PID namespace it is in, outermost first (`NSpid:`): the
/// last is its ID in its own namespace, 1 for that namespace's init.
pub fn ns_pids(text: &str) -> Result<Vec<i32>> {
    let value = required(text, "NSpid")?;
    let pids: Vec<i32> = value
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("NSpid", value, "a list of process IDs"))?;
    if pids.is_empty() || pids.iter().any(|&p| p < 1) {
        return Err(bad("NSpid", value, "a list of process IDs"));
    }
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\nPPid:\t4200\nTracerPid:\t0\nUid:\t1000\t1001\t1002\t1003\nGid:\t100\t101\t102\t103\nFDSize:\t64\nGroups:\t24 25 \nSigQ:\t0/63382\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000010000\nSigIgn:\t0000000000000006\nSigCgt:\t0000000180004002\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    #[test]
    fn parses_tgid_uids_gids() {
        let s = parse(STATUS).unwrap();
        assert_eq!(s.tgid, 4242);
        assert_eq!(s.uids, [1000, 1001, 1002, 1003]);
        assert_eq!(s.gids, [100, 101, 102, 103]);
        for (from, to, want) in [
            ("Tgid:\t4242\n", "", "no Tgid line"),
            ("Uid:\t1000\t1001\t1002\t1003\n", "", "no Uid line"),
            (
                "Gid:\t100\t101\t102\t103\n",
                "Gid:\t100\t101\n",
                "Gid '100\t101' is not 4 IDs",
            ),
            (
                "Uid:\t1000",
                "Uid:\tx",
                "Uid 'x\t1001\t1002\t1003' is not 4 IDs",
            ),
            ("Uid:\t1000", "Uid:\t-1", "is not 4 IDs"),
            ("Tgid:\t4242", "Tgid:\t-", "Tgid '-' is not a number"),
        ] {
            let text = STATUS.replace(from, to);
            let err = parse(&text).expect_err(&text);
            let msg = err.to_string();
            assert!(msg.contains("malformed status"), "{msg}");
            assert!(msg.contains(want), "{msg:?} wanted {want:?}");
        }
    }

    #[test]
    fn masks_groups_umask() {
        assert_eq!(mask(STATUS, "CapPrm").unwrap(), 0x1ff_ffff_ffff);
        assert_eq!(mask(STATUS, "SigCgt").unwrap(), 0x1_8000_4002);
        assert_eq!(groups(STATUS).unwrap(), [24, 25]);
        assert_eq!(umask(STATUS).unwrap(), Some(0o022));
        assert_eq!(umask(&STATUS.replace("Umask:\t0022\n", "")).unwrap(), None);
        assert!(groups(&STATUS.replace("24 25", "")).unwrap().is_empty());
        assert_eq!(number::<i32>(STATUS, "PPid").unwrap(), 4200);
        for (text, bad) in [
            (
                STATUS.replace("CapPrm:\t000001ffffffffff", "CapPrm:\tzz"),
                "CapPrm",
            ),
            (
                STATUS.replace("CapPrm:\t000001ffffffffff", "CapPrm:\t"),
                "CapPrm",
            ),
            (
                STATUS.replace("CapPrm:\t000001ffffffffff", "CapPrm:\t+1"),
                "CapPrm",
            ),
            (
                STATUS.replace("CapPrm:\t000001ffffffffff", "CapPrm:\t10000000000000000"),
                "CapPrm",
            ),
            (
                STATUS.replace("CapPrm:\t000001ffffffffff\n", ""),
                "no CapPrm line",
            ),
        ] {
            let msg = mask(&text, "CapPrm").unwrap_err().to_string();
            assert!(
                msg.contains("malformed status") && msg.contains(bad),
                "{msg}"
            );
        }
        assert!(groups(&STATUS.replace("24 25", "24 x")).is_err());
        assert!(umask(&STATUS.replace("0022", "0099")).is_err());
    }

    #[test]
    fn field_reads_meminfo_too() {
        let meminfo = "MemTotal:       16318412 kB\nSwapTotal:             0 kB\n";
        assert_eq!(field(meminfo, "SwapTotal"), Some("0 kB"));
        assert_eq!(field(meminfo, "Swap"), None);
    }

    #[test]
    fn ns_pids_outermost_first() {
        assert_eq!(ns_pids("Pid:\t7\nNSpid:\t4711\t1\n").unwrap(), [4711, 1]);
        assert_eq!(ns_pids("NSpid:\t12\n").unwrap(), [12]);
        assert!(ns_pids("NSpid:\t\n").is_err());
        assert!(ns_pids("NSpid:\t12 x\n").is_err());
        assert!(ns_pids("Pid:\t12\n").is_err());
    }
}
