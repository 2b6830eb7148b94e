//! `/proc/PID/fdinfo/FD`: `key:\tvalue` lines every descriptor has (position, flags, mount,
//! inode), then lines that depend on what the descriptor is (eventfd, timerfd, signalfd,
//! epoll, inotify; the `lock:` lines are locks.rs). Number bases are the kernel's:
//! flags octal, eventfd counts, signal masks, epoll events and data, and every field
//! of an inotify watch hexadecimal.

use super::malformed;
use crate::error::Result;

/// What every descriptor's fdinfo says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdInfo {
    /// The first line whose key cpr does not know (a kind of descriptor or state it
    /// cannot restore): the checkpoint refuses it.
    pub unknown: Option<String>,
    /// The file offset; negative for a few special files that allow it.
    pub pos: i64,
    /// The open flags (`O_*`), with `O_CLOEXEC` for the descriptor's close-on-exec flag.
    pub flags: i32,
    /// Linux 3.15 and later.
    pub mnt_id: Option<i32>,
    /// Linux 5.14 and later.
    pub ino: Option<u64>,
}

/// An eventfd's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eventfd {
    pub count: u64,
    /// `EFD_SEMAPHORE`; `None` on older kernels, which do not show it.
    pub semaphore: Option<bool>,
}

/// A timerfd's clock and timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timerfd {
    pub clockid: i32,
    /// Expirations not yet read.
    pub ticks: u64,
    /// `TFD_TIMER_ABSTIME`, `TFD_TIMER_CANCEL_ON_SET` (octal in the file).
    pub settime_flags: i32,
    /// Time left until the next expiration, (s, ns); (0, 0) is disarmed.
    pub value: (i64, i64),
    pub interval: (i64, i64),
}

/// One descriptor an epoll instance watches (a `tfd:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollItem {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

/// One inotify watch (an `inotify` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InotifyMark {
    pub wd: i32,
    pub ino: u64,
    /// Kernel-internal device number (major << 20 | minor).
    pub sdev: u64,
    pub mask: u32,
    /// (type, bytes) of the inode's file handle; `None` when the filesystem gave none.
    pub handle: Option<(i32, Vec<u8>)>,
}

/// The value of a `key:` line, trimmed.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

fn required<'a>(text: &'a str, key: &str) -> Result<&'a str> {
    field(text, key).ok_or_else(|| malformed("fdinfo", format!("no {key} line")))
}

fn bad(key: &str, value: &str, what: &str) -> crate::error::Error {
    malformed("fdinfo", format!("{key} '{value}' is not {what}"))
}

fn decimal<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| bad(key, value, "a number"))
}

/// Digits in `radix` only: no sign, no prefix, no blanks.
fn radix<T: TryFrom<u64>>(key: &str, value: &str, radix: u32) -> Result<T> {
    let what = if radix == 8 { "octal" } else { "hexadecimal" };
    if value.is_empty() || !value.chars().all(|c| c.is_digit(radix)) {
        return Err(bad(key, value, what));
    }
    u64::from_str_radix(value, radix)
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| bad(key, value, what))
}

/// The keys of every fdinfo line cpr reads: the common ones, the `lock:` lines
/// (locks.rs), eventfd, timerfd, signalfd, epoll (`tfd:`) and inotify watches.
const KNOWN_KEYS: &[&str] = &[
    "pos",
    "flags",
    "mnt_id",
    "ino",
    "lock",
    "eventfd-count",
    "eventfd-id",
    "eventfd-semaphore",
    "clockid",
    "ticks",
    "settime flags",
    "it_value",
    "it_interval",
    "sigmask",
    "tfd",
    "inotify wd",
    "Pid",
    "NSpid",
    "tty-index",
];

/// The first line of `text` whose key is not one of `KNOWN_KEYS`.
fn first_unknown(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .find(|l| {
            let key = l.split(':').next().unwrap_or("").trim();
            !KNOWN_KEYS.contains(&key)
        })
        .map(|l| l.trim().to_string())
}

/// The lines every descriptor has.
pub fn parse(text: &str) -> Result<FdInfo> {
    let optional = |key: &str| field(text, key);
    Ok(FdInfo {
        unknown: first_unknown(text),
        pos: decimal("pos", required(text, "pos")?)?,
        flags: radix("flags", required(text, "flags")?, 8)?,
        mnt_id: optional("mnt_id")
            .map(|v| decimal("mnt_id", v))
            .transpose()?,
        ino: optional("ino").map(|v| decimal("ino", v)).transpose()?,
    })
}

pub fn eventfd(text: &str) -> Result<Eventfd> {
    let semaphore = match field(text, "eventfd-semaphore") {
        None => None,
        Some("0") => Some(false),
        Some("1") => Some(true),
        Some(v) => return Err(bad("eventfd-semaphore", v, "0 or 1")),
    };
    Ok(Eventfd {
        count: radix("eventfd-count", required(text, "eventfd-count")?, 16)?,
        semaphore,
    })
}

/// "(3, 492960385)" -> (3, 492960385)
fn pair(key: &str, value: &str) -> Result<(i64, i64)> {
    let bad = || bad(key, value, "a (seconds, nanoseconds) pair");
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (a, b) = inner.split_once(", ").ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

pub fn timerfd(text: &str) -> Result<Timerfd> {
    Ok(Timerfd {
        clockid: decimal("clockid", required(text, "clockid")?)?,
        ticks: decimal("ticks", required(text, "ticks")?)?,
        settime_flags: radix("settime flags", required(text, "settime flags")?, 8)?,
        value: pair("it_value", required(text, "it_value")?)?,
        interval: pair("it_interval", required(text, "it_interval")?)?,
    })
}

/// The process a pidfd refers to, in the reader's PID namespace; -1 once it has been
/// reaped (0: in no namespace the reader sees).
pub fn pidfd_pid(text: &str) -> Result<i32> {
    let v = required(text, "Pid")?;
    v.parse().map_err(|_| bad("Pid", v, "a number"))
}

/// A signalfd's mask: bit n-1 is signal n.
pub fn signalfd_mask(text: &str) -> Result<u64> {
    radix("sigmask", required(text, "sigmask")?, 16)
}

/// The `key:value` words of one line; a key followed by blanks takes the next word
/// (`tfd:        4 events:       19`).
fn words(line: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut toks = line.split_ascii_whitespace();
    std::iter::from_fn(move || {
        let t = toks.next()?;
        Some(match t.split_once(':') {
            Some((k, "")) => (k, toks.next().unwrap_or("")),
            Some((k, v)) => (k, v),
            None => (t, ""),
        })
    })
}

/// The value of word `key` of one line, which must be there.
fn word<'a>(line: &'a str, key: &str) -> Result<&'a str> {
    words(line)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| malformed("fdinfo", format!("no {key} in '{line}'")))
}

/// The descriptors an epoll instance watches, in the kernel's order.
pub fn epoll(text: &str) -> Result<Vec<EpollItem>> {
    text.lines()
        .filter(|l| l.starts_with("tfd:"))
        .map(|line| {
            let ctx = |e: crate::error::Error| e.detail(format!("in '{line}'"));
            Ok(EpollItem {
                fd: decimal("tfd", word(line, "tfd")?).map_err(ctx)?,
                events: radix("events", word(line, "events")?, 16).map_err(ctx)?,
                data: radix("data", word(line, "data")?, 16).map_err(ctx)?,
            })
        })
        .collect()
}

/// `e102000000000000` -> its bytes.
fn unhex(key: &str, value: &str) -> Result<Vec<u8>> {
    let bytes = value.as_bytes();
    if !bytes.len().is_multiple_of(2) || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad(key, value, "hexadecimal bytes"));
    }
    Ok(bytes
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            digit(pair[0]) << 4 | digit(pair[1])
        })
        .collect())
}

/// The watches of an inotify instance, in the kernel's order.
pub fn inotify(text: &str) -> Result<Vec<InotifyMark>> {
    text.lines()
        .filter_map(|l| l.strip_prefix("inotify "))
        .map(|line| {
            let ctx = |e: crate::error::Error| e.detail(format!("in 'inotify {line}'"));
            let hex = |key: &str| -> Result<u64> { radix(key, word(line, key)?, 16) };
            let handle = match words(line).any(|(k, _)| k == "f_handle") {
                false => None,
                true => Some((
                    radix("fhandle-type", word(line, "fhandle-type")?, 16).map_err(ctx)?,
                    unhex("f_handle", word(line, "f_handle")?).map_err(ctx)?,
                )),
            };
            Ok(InotifyMark {
                wd: radix("wd", word(line, "wd")?, 16).map_err(ctx)?,
                ino: hex("ino").map_err(ctx)?,
                sdev: hex("sdev").map_err(ctx)?,
                mask: radix("mask", word(line, "mask")?, 16).map_err(ctx)?,
                handle,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTFD: &str = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\n\
eventfd-count:               1a\neventfd-id: 1\neventfd-semaphore: 0\n";
    const TIMERFD: &str = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\nclockid: 1\n\
ticks: 2\nsettime flags: 01\nit_value: (3, 492960385)\nit_interval: (0, 250000000)\n";
    const SIGNALFD: &str =
        "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nsigmask:\t0000000000004200\n";
    const EPOLL: &str = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n\
tfd:        4 events:       19 data:                7  pos:0 ino:40e sdev:10\n\
tfd:        3 events: 80000019 data: 1122334455667788  pos:0 ino:40e sdev:10\n";
    const INOTIFY: &str = "pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t1038\n\
inotify wd:c ino:2e1 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:81 f_handle:e102000000000000\n\
inotify wd:1 ino:3c4a7 sdev:fe00000 mask:300 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a7c4030000000000\n\
inotify wd:2 ino:3c4a8 sdev:fe00000 mask:300 ignored_mask:0 \n";

    fn assert_malformed<T: std::fmt::Debug>(r: Result<T>, want: &str) {
        let msg = r.expect_err(want).to_string();
        assert!(msg.contains("malformed fdinfo"), "{msg}");
        assert!(msg.contains(want), "{msg:?} wanted {want:?}");
    }

    #[test]
    fn unknown_lines_are_reported() {
        let known = "pos:\t0\nflags:\t02\nmnt_id:\t9\nino:\t5\n";
        assert_eq!(parse(known).unwrap().unknown, None);
        let socket = format!("{known}scm_fds:\t[4]\n");
        assert_eq!(
            parse(&socket).unwrap().unknown.as_deref(),
            Some("scm_fds:\t[4]")
        );
        let pidfd = format!("{known}Pid:\t42\nNSpid:\t42\n");
        assert_eq!(parse(&pidfd).unwrap().unknown, None);
        assert_eq!(pidfd_pid(&pidfd).unwrap(), 42);
        let timer = "pos:\t0\nflags:\t02\nclockid: 1\nticks: 0\nsettime flags: 00\nit_value: (0, 0)\nit_interval: (0, 0)\n";
        assert_eq!(parse(timer).unwrap().unknown, None);
    }

    #[test]
    fn common_lines() {
        assert_eq!(
            parse(EVENTFD).unwrap(),
            FdInfo {
                unknown: None,
                pos: 0,
                flags: 0o2004002,
                mnt_id: Some(17),
                ino: Some(1038)
            }
        );
        let old = parse("pos:\t-2\nflags:\t0100002\n").unwrap();
        assert_eq!(
            (old.pos, old.flags, old.mnt_id, old.ino),
            (-2, 0o100002, None, None)
        );
        assert_malformed(parse("flags:\t02\n"), "no pos line");
        assert_malformed(parse("pos:\t0\n"), "no flags line");
        assert_malformed(parse("pos:\tx\nflags:\t02\n"), "pos 'x' is not a number");
        assert_malformed(parse("pos:\t0\nflags:\t09\n"), "flags '09' is not octal");
        assert_malformed(parse("pos:\t0\nflags:\t-2\n"), "flags '-2'");
        assert_malformed(
            parse("pos:\t0\nflags:\t02\nmnt_id:\t\n"),
            "mnt_id '' is not a number",
        );
        assert_malformed(parse("pos:\t0\nflags:\t02\nino:\t-1\n"), "ino '-1'");
    }

    #[test]
    fn eventfd_count_is_hexadecimal() {
        assert_eq!(
            eventfd(EVENTFD).unwrap(),
            Eventfd {
                count: 26,
                semaphore: Some(false)
            }
        );
        let sem = EVENTFD.replace("semaphore: 0", "semaphore: 1");
        assert_eq!(eventfd(&sem).unwrap().semaphore, Some(true));
        let old = EVENTFD.replace("eventfd-semaphore: 0\n", "");
        assert_eq!(eventfd(&old).unwrap().semaphore, None);
        assert_malformed(eventfd("pos:\t0\n"), "no eventfd-count line");
        assert_malformed(
            eventfd(&EVENTFD.replace("1a\n", "1g\n")),
            "eventfd-count '1g' is not hexadecimal",
        );
        assert_malformed(
            eventfd(&EVENTFD.replace("semaphore: 0", "semaphore: 2")),
            "eventfd-semaphore '2'",
        );
    }

    #[test]
    fn timerfd_fields() {
        assert_eq!(
            timerfd(TIMERFD).unwrap(),
            Timerfd {
                clockid: 1,
                ticks: 2,
                settime_flags: 1,
                value: (3, 492960385),
                interval: (0, 250000000),
            }
        );
        assert_malformed(
            timerfd(&TIMERFD.replace("(3, 492960385)", "3 49")),
            "it_value '3 49' is not a (seconds, nanoseconds) pair",
        );
        assert_malformed(
            timerfd(&TIMERFD.replace("(0, 250000000)", "(0, x)")),
            "it_interval '(0, x)'",
        );
        assert_malformed(timerfd(&TIMERFD.replace("ticks: 2\n", "")), "no ticks line");
        assert_malformed(
            timerfd(&TIMERFD.replace("flags: 01", "flags: 9")),
            "settime flags '9' is not octal",
        );
    }

    #[test]
    fn signalfd_mask_bits() {
        // SIGUSR1 (10) and SIGTERM (15)
        assert_eq!(signalfd_mask(SIGNALFD).unwrap(), (1 << 9) | (1 << 14));
        assert_malformed(
            signalfd_mask(&SIGNALFD.replace("0000000000004200", "42 00")),
            "sigmask '42 00'",
        );
        assert_malformed(signalfd_mask("pos:\t0\n"), "no sigmask line");
    }

    #[test]
    fn epoll_items_keep_data_exactly() {
        assert_eq!(
            epoll(EPOLL).unwrap(),
            vec![
                EpollItem {
                    fd: 4,
                    events: 0x19,
                    data: 7
                },
                EpollItem {
                    fd: 3,
                    events: 0x8000_0019,
                    data: 0x1122_3344_5566_7788
                },
            ]
        );
        assert!(epoll("pos:\t0\n").unwrap().is_empty());
        assert_malformed(
            epoll("tfd: x events: 1 data: 2\n"),
            "tfd 'x' is not a number",
        );
        assert_malformed(epoll("tfd: 3 events: 1\n"), "no data in 'tfd: 3 events: 1'");
        assert_malformed(epoll("tfd: 3 events: 1z data: 2\n"), "events '1z'");
    }

    #[test]
    fn inotify_watches_are_hexadecimal() {
        let w = inotify(INOTIFY).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            InotifyMark {
                wd: 12,
                ino: 0x2e1,
                sdev: 0xfe00000,
                mask: 2,
                handle: Some((0x81, vec![0xe1, 0x02, 0, 0, 0, 0, 0, 0])),
            }
        );
        assert_eq!((w[1].wd, w[1].mask), (1, 0x300));
        assert_eq!((w[2].wd, &w[2].handle), (2, &None));
        assert_malformed(inotify("inotify ino:zz\n"), "no wd");
        assert_malformed(inotify("inotify wd:1 ino:zz sdev:0 mask:0\n"), "ino 'zz'");
        assert_malformed(
            inotify("inotify wd:1 ino:1 sdev:0 mask:0 fhandle-type:1 f_handle:abc\n"),
            "f_handle 'abc' is not hexadecimal bytes",
        );
        assert_malformed(
            inotify("inotify wd:1 ino:1 sdev:0 mask:0 f_handle:ab\n"),
            "no fhandle-type",
        );
    }
}
