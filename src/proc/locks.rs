//! `/proc/locks` and the `lock:` lines of `/proc/PID/fdinfo/FD`: one line per lock,
//! `1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF` (id, kind, mode, type, pid,
//! major:minor:inode in hexadecimal:hexadecimal:decimal, first byte, last byte or EOF).
//!
//! Lines the kernel writes for something no process holds as a lock cpr restores are
//! recognised and left out: blocked waiters (`1: -> POSIX ...`), leases, delegations and
//! other kinds, locks without an inode (`*NOINODE*`), `MANDATORY` locks (kernels before
//! 5.15) and `UNLCK` entries. Any other line that does not parse is an error naming it.

use serde::{Deserialize, Serialize};

use super::malformed;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockKind {
    /// flock(2): whole file, owned by the open file description.
    Flock,
    /// fcntl(F_SETLK): a byte range, owned by the process.
    Posix,
    /// fcntl(F_OFD_SETLK): a byte range, owned by the open file description.
    Ofd,
}

impl LockKind {
    pub fn name(self) -> &'static str {
        match self {
            LockKind::Flock => "FLOCK",
            LockKind::Posix => "POSIX",
            LockKind::Ofd => "OFD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockType {
    Read,
    Write,
}

impl LockType {
    pub fn name(self) -> &'static str {
        match self {
            LockType::Read => "READ",
            LockType::Write => "WRITE",
        }
    }
}

/// One lock held, as a line of /proc/locks or a `lock:` line of an fdinfo file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLine {
    pub kind: LockKind,
    pub lock_type: LockType,
    /// The pid column: the owner of a POSIX lock, the locker of a flock, -1 for OFD.
    pub pid: i32,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    pub start: u64,
    /// Last byte locked (inclusive); None: to the end of the file.
    pub end: Option<u64>,
}

impl LockLine {
    /// The same lock (the pid column aside, which differs between the two files).
    pub fn same_lock(&self, other: &LockLine) -> bool {
        self.kind == other.kind
            && self.lock_type == other.lock_type
            && (self.major, self.minor, self.inode) == (other.major, other.minor, other.inode)
            && self.start == other.start
            && self.end == other.end
    }
}

/// Parses one lock line: the lock it describes, or `None` for a line about something
/// no process holds as a lock cpr restores (see the module text).
pub fn parse_line(line: &str) -> Result<Option<LockLine>> {
    let bad = |what: String| malformed("locks", format!("{what} in '{line}'"));
    let mut it = line.split_ascii_whitespace();
    let mut next = |name: &str| it.next().ok_or_else(|| bad(format!("no {name}")));
    let id = next("id")?;
    if !id
        .strip_suffix(':')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(format!("id '{id}'")));
    }
    let kind = match next("kind")? {
        "FLOCK" => LockKind::Flock,
        "POSIX" => LockKind::Posix,
        "OFDLCK" => LockKind::Ofd,
        // a waiter, and the kinds that are not locks a process holds
        "->" | "LEASE" | "DELEG" | "ACCESS" | "UNKNOWN" => return Ok(None),
        k => return Err(bad(format!("kind '{k}'"))),
    };
    match next("mode")? {
        "ADVISORY" => {}
        "MANDATORY" | "*NOINODE*" => return Ok(None),
        m => return Err(bad(format!("mode '{m}'"))),
    }
    let lock_type = match next("type")? {
        "READ" => LockType::Read,
        "WRITE" => LockType::Write,
        "UNLCK" => return Ok(None),
        t => return Err(bad(format!("type '{t}'"))),
    };
    let pid_text = next("pid")?;
    let pid = pid_text
        .parse()
        .map_err(|_| bad(format!("pid '{pid_text}'")))?;
    let dev = next("device and inode")?;
    let parts: Vec<&str> = dev.split(':').collect();
    let hex = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
    };
    let (major, minor, inode) = match parts[..] {
        [major, minor, inode] => (hex(major), hex(minor), inode.parse().ok()),
        _ => (None, None, None),
    };
    let (Some(major), Some(minor), Some(inode)) = (major, minor, inode) else {
        return Err(bad(format!("device and inode '{dev}'")));
    };
    let start_text = next("start")?;
    let start = start_text
        .parse()
        .map_err(|_| bad(format!("start '{start_text}'")))?;
    let end = match next("end")? {
        "EOF" => None,
        e => Some(e.parse().map_err(|_| bad(format!("end '{e}'")))?),
    };
    if let Some(extra) = it.next() {
        return Err(bad(format!("'{extra}' after the end")));
    }
    Ok(Some(LockLine {
        kind,
        lock_type,
        pid,
        major,
        minor,
        inode,
        start,
        end,
    }))
}

/// The locks held, from the text of /proc/locks.
pub fn parse_proc_locks(text: &str) -> Result<Vec<LockLine>> {
    collect(text.lines())
}

/// The locks held through one open file description, from the text of its fdinfo.
pub fn parse_fdinfo_locks(text: &str) -> Result<Vec<LockLine>> {
    collect(text.lines().filter_map(|l| l.strip_prefix("lock:")))
}

fn collect<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<LockLine>> {
    let mut out = Vec::new();
    for line in lines {
        out.extend(parse_line(line)?);
    }
    Ok(out)
}

/// Every lock held on the system (`/proc/locks`).
pub fn read_all() -> Result<Vec<LockLine>> {
    const PATH: &str = "/proc/locks";
    let text = std::fs::read_to_string(PATH).map_err(|e| Error::io(PATH, e))?;
    parse_proc_locks(&text).map_err(|e| e.context(PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF
1: -> POSIX  ADVISORY  WRITE 1240 08:01:5678 0 9
2: FLOCK  ADVISORY  READ 1234 00:2b:123 0 EOF
3: OFDLCK ADVISORY  WRITE -1 08:01:77 100 199
4: LEASE  ACTIVE    READ 1234 08:01:99 0 EOF
5: POSIX  ADVISORY  READ 4321 103:0a:4096 200 299
5: ->  -> POSIX  ADVISORY  WRITE 999 103:0a:4096 250 250
6: POSIX  *NOINODE* WRITE 1234 <none>:0 0 EOF
7: DELEG  ACTIVE    READ 1234 08:01:98 0 EOF
";

    #[test]
    fn proc_locks_lines_are_parsed_and_waiters_skipped() {
        let l = parse_proc_locks(PROC_LOCKS).unwrap();
        assert_eq!(
            l,
            vec![
                LockLine {
                    kind: LockKind::Posix,
                    lock_type: LockType::Write,
                    pid: 1234,
                    major: 8,
                    minor: 1,
                    inode: 5678,
                    start: 0,
                    end: None,
                },
                LockLine {
                    kind: LockKind::Flock,
                    lock_type: LockType::Read,
                    pid: 1234,
                    major: 0,
                    minor: 0x2b,
                    inode: 123,
                    start: 0,
                    end: None,
                },
                LockLine {
                    kind: LockKind::Ofd,
                    lock_type: LockType::Write,
                    pid: -1,
                    major: 8,
                    minor: 1,
                    inode: 77,
                    start: 100,
                    end: Some(199),
                },
                LockLine {
                    kind: LockKind::Posix,
                    lock_type: LockType::Read,
                    pid: 4321,
                    major: 0x103,
                    minor: 0x0a,
                    inode: 4096,
                    start: 200,
                    end: Some(299),
                },
            ]
        );
        let err = parse_proc_locks(&format!("{PROC_LOCKS}garbage\n")).unwrap_err();
        assert!(err.to_string().contains("id 'garbage'"), "{err}");
    }

    #[test]
    fn fdinfo_lock_lines_are_parsed_and_other_fields_ignored() {
        let text = "pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t5678\n\
                    lock:\t1: FLOCK  ADVISORY  WRITE 77 08:01:5678 0 EOF\n\
                    lock:\t2: OFDLCK ADVISORY  READ -1 08:01:5678 10 19\n";
        let l = parse_fdinfo_locks(text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].kind, LockKind::Flock);
        assert_eq!(l[0].lock_type, LockType::Write);
        assert_eq!(l[0].pid, 77);
        assert_eq!(l[1].kind, LockKind::Ofd);
        assert_eq!((l[1].start, l[1].end), (10, Some(19)));
        assert!(
            parse_fdinfo_locks("pos:\t0\nflags:\t02\n")
                .unwrap()
                .is_empty()
        );
        let bad = format!("{text}lock:\t3: FLOCK  ADVISORY  WRITE 77 08:01:5678 0\n");
        let msg = parse_fdinfo_locks(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("malformed locks (no end in '\t3: FLOCK"),
            "{msg}"
        );
    }

    #[test]
    fn what_no_process_holds_is_left_out() {
        for line in [
            "1: POSIX ADVISORY UNLCK 1 08:01:2 0 EOF",
            "1: POSIX MANDATORY WRITE 1 08:01:2 0 EOF",
            "1: -> FLOCK  ADVISORY  WRITE 1 08:01:2 0 EOF",
            "1: LEASE  BREAKING  READ 1 08:01:2 0 EOF",
            "1: ACCESS ADVISORY  READ 1 08:01:2 0 EOF",
            "1: UNKNOWN UNKNOWN  READ 1 08:01:2 0 EOF",
        ] {
            assert_eq!(parse_line(line).unwrap(), None, "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_field() {
        for (line, want) in [
            ("", "no id"),
            ("1:", "no kind"),
            ("POSIX ADVISORY WRITE 1 08:01:2 0 EOF", "id 'POSIX'"),
            ("x: POSIX ADVISORY WRITE 1 08:01:2 0 EOF", "id 'x:'"),
            ("1: POSIX ADVISORY WRITE x 08:01:2 0 EOF", "pid 'x'"),
            (
                "1: POSIX ADVISORY WRITE 1 08:01 0 EOF",
                "device and inode '08:01'",
            ),
            (
                "1: POSIX ADVISORY WRITE 1 zz:01:2 0 EOF",
                "device and inode",
            ),
            (
                "1: POSIX ADVISORY WRITE 1 08:01:2:3 0 EOF",
                "device and inode",
            ),
            ("1: POSIX ADVISORY WRITE 1 08:01:2 0", "no end"),
            ("1: POSIX ADVISORY WRITE 1 08:01:2 -1 EOF", "start '-1'"),
            ("1: POSIX ADVISORY WRITE 1 08:01:2 0 E0F", "end 'E0F'"),
            (
                "1: POSIX ADVISORY WRITE 1 08:01:2 0 EOF extra",
                "'extra' after the end",
            ),
            ("1: FLOCKS ADVISORY WRITE 1 08:01:2 0 EOF", "kind 'FLOCKS'"),
            ("1: POSIX ADVISORY WRLCK 1 08:01:2 0 EOF", "type 'WRLCK'"),
            ("1: POSIX ADVISED WRITE 1 08:01:2 0 EOF", "mode 'ADVISED'"),
        ] {
            let msg = parse_line(line).expect_err(line).to_string();
            assert!(msg.contains("malformed locks"), "{msg}");
            assert!(msg.contains(want), "{line:?} gave {msg:?}, wanted {want:?}");
        }
    }

    #[test]
    fn this_system_locks_parse() {
        read_all().unwrap();
    }
}
