//! Pure parsers for /proc text (tested on fixtures) and the small readers around them.

use crate::error::{Context, Result};

/// Fields of /proc/PID/stat after the command name, indexed by their stat(5) number.
#[derive(Debug, Clone)]
pub struct Stat {
    pub comm: String,
    fields: Vec<String>,
}

impl Stat {
    pub fn parse(text: &str) -> Option<Stat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text[open + 1..close].to_string();
        // fields[0] is field 3 (state)
        let fields = text[close + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Some(Stat { comm, fields })
    }

    /// Field by its 1-based number in proc_pid_stat(5) (3 = state, 4 = ppid, ...).
    pub fn field(&self, n: usize) -> u64 {
        self.fields
            .get(n - 3)
            .and_then(|s| s.parse::<i64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    pub fn state(&self) -> char {
        self.fields
            .first()
            .and_then(|s| s.chars().next())
            .unwrap_or('?')
    }
}

pub fn read_stat(pid: i32) -> Result<Stat> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ctx(format!("process {pid}"))?;
    Stat::parse(&text).ok_or_else(|| {
        crate::error::Error::with_detail(
            format!("process {pid}"),
            crate::error::Kind::InvalidArgument,
            "unreadable /proc stat",
        )
    })
}

/// One line of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsLine {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub offset: u64,
    pub dev: String,
    pub inode: u64,
    pub path: String,
}

impl MapsLine {
    pub fn parse(line: &str) -> Option<MapsLine> {
        let mut it = line.splitn(6, char::is_whitespace);
        let range = it.next()?;
        let perms = it.next()?.to_string();
        let offset = u64::from_str_radix(it.next()?, 16).ok()?;
        let dev = it.next()?.to_string();
        let inode = it.next()?.parse().ok()?;
        let path = it.next().unwrap_or("").trim_start().to_string();
        let (s, e) = range.split_once('-')?;
        Some(MapsLine {
            start: u64::from_str_radix(s, 16).ok()?,
            end: u64::from_str_radix(e, 16).ok()?,
            perms,
            offset,
            dev,
            inode,
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

pub fn read_maps(pid: i32) -> Result<Vec<MapsLine>> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/maps")).ctx(format!("process {pid}"))?;
    Ok(text.lines().filter_map(MapsLine::parse).collect())
}

/// /proc/PID/smaps: the VmFlags of each mapping, by start address.
pub fn parse_smaps_flags(text: &str) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<u64> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("VmFlags:") {
            if let Some(start) = current.take() {
                out.push((start, rest.split_whitespace().map(str::to_string).collect()));
            }
        } else if let Some(m) = MapsLine::parse(line) {
            if line.contains('-') && !line.contains(':') || m.dev.contains(':') {
                current = Some(m.start);
            }
        }
    }
    out
}

/// A `Key:\tvalue` field of /proc/PID/status.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

pub fn read_status(pid: i32) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ctx(format!("process {pid}"))
}

/// `/proc/PID/cmdline` split at NULs.
pub fn read_cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn thread_ids(pid: i32) -> Result<Vec<i32>> {
    let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ctx(format!("process {pid}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort();
    // main thread first
    if let Some(i) = tids.iter().position(|t| *t == pid) {
        tids.remove(i);
        tids.insert(0, pid);
    }
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let s = Stat::parse("42 (a) b (c) S 1 42 42 0 -1 4194560 0 0").unwrap();
        assert_eq!(s.comm, "a) b (c");
        assert_eq!(s.state(), 'S');
        assert_eq!(s.field(4), 1);
        assert_eq!(s.field(5), 42);
    }

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
    }

    #[test]
    fn smaps_flags() {
        let t = "1000-2000 rw-p 00000000 00:00 0 \nSize: 4 kB\nVmFlags: rd wr mr mw me lo \n3000-4000 r--p 00000000 08:01 5 /x\nVmFlags: rd mr\n";
        let f = parse_smaps_flags(t);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, 0x1000);
        assert!(f[0].1.contains(&"lo".to_string()));
    }
}
