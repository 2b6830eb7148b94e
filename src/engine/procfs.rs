//! Transitional shim: the engine's old /proc readers, now the strict ones of
//! [`crate::proc`] under their old names. A field that does not parse is an error, no
//! longer 0. Callers move to `crate::proc` (named `Stat` fields instead of numbers), then
//! this file goes.

use crate::error::Result;
use crate::proc::ProcDir;

pub use crate::proc::maps::parse_smaps_flags;
pub use crate::proc::status::field as status_field;
pub use crate::proc::{MapsLine, Stat};

impl Stat {
    /// Field by its 1-based number in proc_pid_stat(5), for callers not yet on the named
    /// fields. Only the numbers the engine reads; any other is a bug in the caller.
    pub fn field(&self, n: usize) -> u64 {
        let signed = |v: i32| v as i64 as u64;
        match n {
            4 => signed(self.ppid),
            5 => signed(self.pgrp),
            6 => signed(self.session),
            9 => self.flags as u64,
            19 => signed(self.nice),
            40 => self.rt_priority as u64,
            41 => self.policy as u64,
            52 => signed(self.exit_code),
            n => match crate::proc::stat::MM_LAYOUT_FIELDS
                .iter()
                .position(|&f| f == n)
            {
                Some(i) => self.mm_layout[i],
                None => panic!("stat field {n} is not one crate::proc::Stat parses"),
            },
        }
    }

    pub fn state(&self) -> char {
        self.state
    }
}

pub fn read_stat(pid: i32) -> Result<Stat> {
    ProcDir::open(pid)?.stat()
}

pub fn read_maps(pid: i32) -> Result<Vec<MapsLine>> {
    ProcDir::open(pid)?.maps()
}

pub fn read_status(pid: i32) -> Result<String> {
    ProcDir::open(pid)?.status_text()
}

/// `/proc/PID/cmdline` split at NULs; an error (no longer no arguments) when unreadable.
pub fn read_cmdline(pid: i32) -> Result<Vec<String>> {
    ProcDir::open(pid)?.cmdline()
}

/// Thread IDs, the main thread first.
pub fn thread_ids(pid: i32) -> Result<Vec<i32>> {
    ProcDir::open(pid)?.tids()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_fields_read_the_named_ones() {
        let s = read_stat(std::process::id() as i32).unwrap();
        assert_eq!(s.field(4) as i32, s.ppid);
        assert_eq!(s.field(19) as i64 as i32, s.nice);
        assert_eq!(s.field(26), s.mm_layout[0]);
        assert_eq!(s.field(51), s.mm_layout[9]);
        assert_eq!(s.state(), s.state);
    }
}
