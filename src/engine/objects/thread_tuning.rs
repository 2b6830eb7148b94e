//! Per-thread kernel settings a program tunes and a fork of cpr would otherwise inherit
//! from cpr: I/O priority, timer slack, machine-check kill policy, NUMA memory policy,
//! the time stamp counter setting (PR_SET_TSC), memory-deny-write-execute and
//! PR_SET_IO_FLUSHER. Each is asked by injection in the thread and set again in the restored thread
//! even when it is the default, since the restored thread starts with cpr's.

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::{Error, Kind, Result};
use crate::statefile::reader::damaged_record;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadTuning {
    /// ioprio_get(IOPRIO_WHO_PROCESS, 0): class << 13 | data.
    pub ioprio: u32,
    /// PR_GET_TIMERSLACK, in nanoseconds (0 for real-time threads, which have none).
    pub timer_slack: u64,
    /// PR_MCE_KILL_GET: 0 late, 1 early, 2 the system default.
    pub mce_kill: u32,
    /// get_mempolicy: mode (with its MPOL_F_* flags) and node mask words.
    pub mempolicy: (u32, Vec<u64>),
    /// PR_GET_TSC: 1 rdtsc allowed, 2 it raises SIGSEGV (0: not asked).
    #[serde(default)]
    pub tsc: u32,
    /// PR_GET_MDWE flags (process-wide, asked of every thread; 0 where the kernel has none).
    #[serde(default)]
    pub mdwe: u32,
    /// PR_GET_IO_FLUSHER (`None`: not known, the call needs CAP_SYS_RESOURCE).
    #[serde(default)]
    pub io_flusher: Option<bool>,
}

const IOPRIO_WHO_PROCESS: u64 = 1;
const PR_GET_TSC: u64 = 25;
const PR_SET_TSC: u64 = 26;
const PR_SET_MDWE: u64 = 65;
const PR_GET_MDWE: u64 = 66;
const PR_SET_IO_FLUSHER: u64 = 57;
const PR_GET_IO_FLUSHER: u64 = 58;
/// PR_MDWE_REFUSE_EXEC_GAIN | PR_MDWE_NO_INHERIT.
const MDWE_FLAGS: u32 = 3;
const IOPRIO_CLASS_SHIFT: u32 = 13;
/// Bits of node mask asked and set (enough for any kernel's MAX_NUMNODES).
const NODE_BITS: u64 = 1024;
const NODE_WORDS: usize = (NODE_BITS / 64) as usize;
/// MPOL_DEFAULT up to MPOL_PREFERRED_MANY (6) and MPOL_WEIGHTED_INTERLEAVE (6 or 7).
const MPOL_MAX_MODE: u32 = 7;
/// MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING.
const MPOL_MODE_FLAGS: u32 = (1 << 15) | (1 << 14) | (1 << 13);

impl ThreadTuning {
    /// The thread of `inj`'s (`scratch`: argument space in the process).
    pub fn dump(inj: &Injector, scratch: &mut RemoteScratch) -> Result<ThreadTuning> {
        let ioprio = inj.check(
            "ioprio_get",
            libc::SYS_ioprio_get,
            [IOPRIO_WHO_PROCESS, 0, 0, 0, 0, 0],
        )? as u32;
        let timer_slack = inj.check(
            "prctl(PR_GET_TIMERSLACK)",
            libc::SYS_prctl,
            [libc::PR_GET_TIMERSLACK as u64, 0, 0, 0, 0, 0],
        )?;
        let mce_kill = inj.check(
            "prctl(PR_MCE_KILL_GET)",
            libc::SYS_prctl,
            [libc::PR_MCE_KILL_GET as u64, 0, 0, 0, 0, 0],
        )? as u32;
        let mempolicy = dump_mempolicy(inj, scratch)?;
        let tsc = {
            let mut s = scratch.frame();
            let at = s.alloc(8)?;
            inj.check(
                "prctl(PR_GET_TSC)",
                libc::SYS_prctl,
                [PR_GET_TSC, at.as_u64(), 0, 0, 0, 0],
            )?;
            u32::from_ne_bytes(s.read(at, 4)?[..4].try_into().unwrap_or([0; 4]))
        };
        // EINVAL before Linux 6.3: no such setting
        let mdwe = inj.call(libc::SYS_prctl, [PR_GET_MDWE, 0, 0, 0, 0, 0])?;
        let io_flusher = io_flusher(inj)?;
        Ok(ThreadTuning {
            ioprio,
            timer_slack,
            mce_kill,
            mempolicy,
            tsc,
            mdwe: if mdwe < 0 { 0 } else { mdwe as u32 },
            io_flusher,
        })
    }

    /// Statefile input: values the kernel could have given.
    pub fn check(&self) -> Result<()> {
        let (mode, mask) = &self.mempolicy;
        if self.ioprio >> IOPRIO_CLASS_SHIFT > 3
            || self.mce_kill > 2
            || mode & !MPOL_MODE_FLAGS > MPOL_MAX_MODE
            || mask.len() > NODE_WORDS
            || self.tsc > 2
            || self.mdwe & !MDWE_FLAGS != 0
        {
            return Err(damaged_record(format_args!("thread settings {self:?}")));
        }
        Ok(())
    }

    /// Sets them in the restored thread of `inj`, cpr's own values replaced even where the
    /// saved ones are the defaults.
    pub fn restore(&self, inj: &Injector, scratch: &mut RemoteScratch) -> Result<()> {
        inj.check(
            "ioprio_set",
            libc::SYS_ioprio_set,
            [IOPRIO_WHO_PROCESS, 0, self.ioprio as u64, 0, 0, 0],
        )?;
        // 0 would mean "the default", which is cpr's: real-time threads have no slack and
        // get it back with their policy
        if self.timer_slack != 0 {
            inj.check(
                "prctl(PR_SET_TIMERSLACK)",
                libc::SYS_prctl,
                [libc::PR_SET_TIMERSLACK as u64, self.timer_slack, 0, 0, 0, 0],
            )?;
        }
        let mce = match self.mce_kill {
            2 => [libc::PR_MCE_KILL_CLEAR as u64, 0],
            policy => [libc::PR_MCE_KILL_SET as u64, policy as u64],
        };
        inj.check(
            "prctl(PR_MCE_KILL)",
            libc::SYS_prctl,
            [libc::PR_MCE_KILL as u64, mce[0], mce[1], 0, 0, 0],
        )?;
        let (mode, mask) = &self.mempolicy;
        let mut bytes = Vec::with_capacity(NODE_WORDS * 8);
        for i in 0..NODE_WORDS {
            bytes.extend_from_slice(&mask.get(i).copied().unwrap_or(0).to_ne_bytes());
        }
        let mut s = scratch.frame();
        let nodes = s.put(&bytes)?;
        inj.check(
            "set_mempolicy",
            libc::SYS_set_mempolicy,
            [*mode as u64, nodes.as_u64(), NODE_BITS, 0, 0, 0],
        )?;
        drop(s);
        if self.tsc != 0 {
            inj.check(
                "prctl(PR_SET_TSC)",
                libc::SYS_prctl,
                [PR_SET_TSC, self.tsc as u64, 0, 0, 0, 0],
            )?;
        }
        // asking and changing it need CAP_SYS_RESOURCE, which a restart by its owner
        // lacks: set only when it differs from cpr's, or is on and cpr may not ask
        let mine = io_flusher(inj)?;
        if let Some(wanted) = self.io_flusher
            && mine.map_or(wanted, |m| m != wanted)
        {
            inj.check(
                "prctl(PR_SET_IO_FLUSHER)",
                libc::SYS_prctl,
                [PR_SET_IO_FLUSHER, u64::from(wanted), 0, 0, 0, 0],
            )?;
        }
        self.restore_mdwe(inj)
    }

    /// Memory-deny-write-execute, once the memory is in place (it cannot be cleared: set
    /// on cpr, the restored process has it too, and the restart is refused).
    fn restore_mdwe(&self, inj: &Injector) -> Result<()> {
        if self.mdwe != 0 {
            inj.check(
                "prctl(PR_SET_MDWE)",
                libc::SYS_prctl,
                [PR_SET_MDWE, self.mdwe as u64, 0, 0, 0, 0],
            )?;
        }
        let now = inj.call(libc::SYS_prctl, [PR_GET_MDWE, 0, 0, 0, 0, 0])?;
        let now = if now < 0 { 0 } else { now as u32 };
        if now != self.mdwe {
            return Err(Error::with_detail(
                format!("thread {}", inj.tid),
                Kind::CheckpointError,
                format!(
                    "memory-deny-write-execute {now:#x} (inherited from cpr, which cannot clear it), the statefile says {:#x}",
                    self.mdwe
                ),
            ));
        }
        Ok(())
    }
}

/// The thread's PR_GET_IO_FLUSHER, `None` where it may not ask (no CAP_SYS_RESOURCE) or
/// the kernel has no such setting.
fn io_flusher(inj: &Injector) -> Result<Option<bool>> {
    let rc = inj.call(libc::SYS_prctl, [PR_GET_IO_FLUSHER, 0, 0, 0, 0, 0])?;
    Ok((rc >= 0).then_some(rc == 1))
}

/// The thread's NUMA memory policy: mode and node mask, trailing zero words left out.
fn dump_mempolicy(inj: &Injector, scratch: &mut RemoteScratch) -> Result<(u32, Vec<u64>)> {
    let mut s = scratch.frame();
    let mode = s.alloc(8)?;
    let nodes = s.alloc(NODE_WORDS as u64 * 8)?;
    inj.check(
        "get_mempolicy",
        libc::SYS_get_mempolicy,
        [mode.as_u64(), nodes.as_u64(), NODE_BITS, 0, 0, 0],
    )?;
    let mode = s.read(mode, 4)?;
    let mode = u32::from_ne_bytes(mode[..4].try_into().unwrap_or([0; 4]));
    let raw = s.read(nodes, NODE_WORDS * 8)?;
    let mut mask: Vec<u64> = raw
        .chunks(8)
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))
        .collect();
    while mask.last() == Some(&0) {
        mask.pop();
    }
    Ok((mode, mask))
}
