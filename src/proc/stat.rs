//! `/proc/PID/stat` (proc_pid_stat(5)): one line, fields numbered from 1.

use super::malformed;
use crate::error::Result;

/// `PF_KTHREAD` in the flags field.
const PF_KTHREAD: u32 = 0x0020_0000;

/// The last field every kernel cpr runs on writes (41, policy) — cpr reads none between
/// 42 and 44 — and the first of those Linux 3.3-3.5 added (45-52): a line that ends before
/// them reads them as 0, which is also what the kernel writes when it withholds them.
const LAST_REQUIRED: usize = 41;

/// The fields of `/proc/PID/stat` cpr uses, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// The command name, as the kernel shows it between the parentheses.
    pub comm: String,
    /// `R`, `S`, `D`, `T`, `t`, `Z`, `X`, ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// The kernel's `PF_*` flags (field 9).
    pub flags: u32,
    /// Field 19.
    pub nice: i32,
    /// Real-time priority (field 40).
    pub rt_priority: u32,
    /// Scheduling policy (field 41).
    pub policy: u32,
    /// The address-space layout: startcode, endcode, startstack (fields 26-28),
    /// start_data, end_data, start_brk, arg_start, arg_end, env_start, env_end (45-51).
    /// All zero for zombies and kernel threads, and for processes the reader may not
    /// inspect.
    pub mm_layout: [u64; 10],
    /// The exit status of a zombie, as waitpid would report it (field 52).
    pub exit_code: i32,
    /// When the process started, in clock ticks after boot (field 22).
    pub start_time: u64,
}

/// The stat(5) numbers of `Stat::mm_layout`, in its order.
pub const MM_LAYOUT_FIELDS: [usize; 10] = [26, 27, 28, 45, 46, 47, 48, 49, 50, 51];

impl Stat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// A zombie or dead process: it has no address space any more.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/PID/stat` line. The command name may hold spaces and parentheses: it
/// runs from the first `(` to the last `)`.
pub fn parse(text: &str) -> Result<Stat> {
    let bad = |what: &str| malformed("stat line", what);
    let text = text.trim_end_matches('\n');
    let open = text.find('(').ok_or_else(|| bad("no '('"))?;
    let close = text.rfind(')').ok_or_else(|| bad("no ')'"))?;
    if close < open {
        return Err(bad("')' before '('"));
    }
    let pid = text[..open].trim().parse().map_err(|_| {
        bad(&format!(
            "field 1 pid '{}' is not a number",
            text[..open].trim()
        ))
    })?;
    let comm = text[open + 1..close].to_string();
    // Field n of proc(5) (1-based) is rest[n - 3].
    let rest: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let state = match rest.first().map(|s| (s.len(), s.chars().next())) {
        Some((1, Some(c))) => c,
        Some(_) => {
            return Err(bad(&format!(
                "field 3 state '{}' is not one letter",
                rest[0]
            )));
        }
        None => return Err(bad("field 3 state is missing")),
    };
    let fields = Fields { rest: &rest };
    // In field order, so that the first bad field is the one named.
    let (ppid, pgrp, session) = (
        fields.get(4, "ppid")?,
        fields.get(5, "pgrp")?,
        fields.get(6, "session")?,
    );
    let flags = fields.get(9, "flags")?;
    let nice = fields.get(19, "nice")?;
    let mut mm_layout = [0u64; 10];
    for (slot, n) in mm_layout.iter_mut().zip(MM_LAYOUT_FIELDS).take(3) {
        *slot = fields.get(n, "mm layout")?;
    }
    let rt_priority = fields.get(40, "rt_priority")?;
    let policy = fields.get(41, "policy")?;
    for (slot, n) in mm_layout.iter_mut().zip(MM_LAYOUT_FIELDS).skip(3) {
        *slot = fields.get(n, "mm layout")?;
    }
    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        session,
        flags,
        nice,
        rt_priority,
        policy,
        mm_layout,
        exit_code: fields.get(52, "exit_code")?,
        start_time: fields.get(22, "starttime")?,
    })
}

/// The fields after the command name.
struct Fields<'a> {
    rest: &'a [&'a str],
}

impl Fields<'_> {
    /// Field `n` (1-based), named `name` in errors. Missing is an error up to
    /// `LAST_REQUIRED`, zero after it.
    fn get<T: std::str::FromStr + Default>(&self, n: usize, name: &str) -> Result<T> {
        match self.rest.get(n - 3) {
            Some(text) => text.parse().map_err(|_| {
                malformed(
                    "stat line",
                    format!("field {n} {name} '{text}' is not a number"),
                )
            }),
            None if n > LAST_REQUIRED => Ok(T::default()),
            None => Err(malformed(
                "stat line",
                format!(
                    "field {n} {name} is missing: the line ends at field {}",
                    self.rest.len() + 2
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const PLAIN: &str = "4242 (sleep) S 4200 4242 4100 34816 4242 4194560 95 0 0 0 0 0 0 0 20 0 1 0 123456 8388608 256 18446744073709551615 94000000000000 94000000016384 140720000000000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94000000030000 94000000031000 94000001000000 140720000001000 140720000001020 140720000001020 140720000001100 0\n";

    #[test]
    fn line_parses() {
        let s = parse(PLAIN).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid, s.pgrp, s.session),
            (4242, "sleep", 'S', 4200, 4242, 4100)
        );
        assert_eq!(s.flags, 4194560);
        assert_eq!((s.nice, s.rt_priority, s.policy, s.exit_code), (0, 0, 0, 0));
        assert!(!s.is_kernel_thread());
        assert!(!s.is_dead());
        assert_eq!(
            s.mm_layout,
            [
                94000000000000,
                94000000016384,
                140720000000000,
                94000000030000,
                94000000031000,
                94000001000000,
                140720000001000,
                140720000001020,
                140720000001020,
                140720000001100
            ]
        );
    }

    #[test]
    fn comm_may_hold_spaces_and_parentheses() {
        let line = PLAIN.replace("(sleep) S 4200 4242", "(a) Z 1 (b c)) R 7 8");
        let s = parse(&line).unwrap();
        assert_eq!(s.comm, "a) Z 1 (b c)");
        assert_eq!((s.state, s.ppid, s.pgrp, s.session), ('R', 7, 8, 4100));
        let s = parse(&PLAIN.replace("(sleep)", "()")).unwrap();
        assert_eq!(s.comm, "");
    }

    #[test]
    fn signed_fields_keep_their_sign() {
        // nice -5, real-time priority 10 under SCHED_FIFO (1), exit status 9 (SIGKILL)
        let mut fields: Vec<&str> = PLAIN.split(' ').collect();
        fields[18] = "-5";
        fields[39] = "10";
        fields[40] = "1";
        fields[51] = "9\n";
        let s = parse(&fields.join(" ")).unwrap();
        assert_eq!(
            (s.nice, s.rt_priority, s.policy, s.exit_code),
            (-5, 10, 1, 9)
        );
    }

    #[test]
    fn of_zombie_and_kernel_thread() {
        let zombie = "77 (defunct) Z 76 76 76 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0 9\n";
        let s = parse(zombie).unwrap();
        assert!(s.is_dead());
        assert_eq!(s.mm_layout, [0; 10]);
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert!(parse(kthread).unwrap().is_kernel_thread());
        // Older kernels end at field 44: the rest of the layout reads as zero.
        let short: Vec<&str> = PLAIN.split(' ').take(44).collect();
        let s = parse(&short.join(" ")).unwrap();
        assert_eq!(
            s.mm_layout[..3],
            [94000000000000, 94000000016384, 140720000000000]
        );
        assert_eq!(s.mm_layout[3..], [0; 7]);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_field() {
        let long_zeros = " 0".repeat(40);
        for (bad, want) in [
            (String::new(), "no '('"),
            ("12 sleep S 1 1 1".into(), "no '('"),
            ("12 (sleep S 1 1 1".into(), "no ')'"),
            (format!("x (sleep) S{long_zeros}"), "field 1 pid 'x'"),
            ("12 (sleep) S 1 1 1".into(), "field 9 flags is missing"),
            (format!("12 (sleep) SS{long_zeros}"), "field 3 state 'SS'"),
            (
                format!("12 (sleep) S x 1 1{long_zeros}"),
                "field 4 ppid 'x'",
            ),
            (
                format!("12 (sleep) S 1 1 1{long_zeros}").replace("1 1 1 0 0 0", "1 1 1 0 0 z"),
                "field 9 flags 'z'",
            ),
            (") 12 (".into(), "')' before '('"),
            (
                format!("12 (sleep) S{}", " 0".repeat(36)),
                "field 40 rt_priority is missing",
            ),
            (PLAIN.replace(" 0\n", " -\n"), "field 52 exit_code '-'"),
            (
                PLAIN.replace("94000000030000", "0x1"),
                "field 45 mm layout '0x1'",
            ),
        ] {
            let err = parse(&bad).expect_err(&bad);
            assert_eq!(err.kind, Kind::InvalidArgument, "{bad}");
            let msg = err.to_string();
            assert!(msg.contains("malformed stat line"), "{msg}");
            assert!(msg.contains(want), "{bad:?} gave {msg:?}, wanted {want:?}");
        }
    }
}
