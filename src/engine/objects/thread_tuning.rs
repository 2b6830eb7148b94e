//! Per-thread kernel settings a program tunes and a fork of cpr would otherwise inherit
//! from cpr: I/O priority, timer slack, machine-check kill policy, NUMA memory policy,
//! the time stamp counter setting (PR_SET_TSC), memory-deny-write-execute and
//! PR_SET_IO_FLUSHER. Each is asked by injection in the thread (all in one batch) and set
//! again in the restored thread (in one batch too) even when it is the default, since the
//! restored thread starts with cpr's.

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::{Answers, Batch, Injector, Questions, RemoteAddr, RemoteScratch};
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
    /// Adds the questions that tell a thread's settings to `q`, their answers' slots
    /// allocated in `s` (which must live until they are read: `TuningQuestions::answer`).
    pub fn ask(q: &mut Questions, s: &mut RemoteScratch) -> Result<TuningQuestions> {
        let tsc_at = s.alloc(8)?;
        let mode_at = s.alloc(8)?;
        let nodes_at = s.alloc(NODE_WORDS as u64 * 8)?;
        let prctl = |q: &mut Questions, what, option: u64, arg: u64| {
            q.ask(what, libc::SYS_prctl, [option, arg, 0, 0, 0, 0])
        };
        Ok(TuningQuestions {
            ioprio: q.ask(
                "ioprio_get",
                libc::SYS_ioprio_get,
                [IOPRIO_WHO_PROCESS, 0, 0, 0, 0, 0],
            ),
            timer_slack: prctl(
                q,
                "prctl(PR_GET_TIMERSLACK)",
                libc::PR_GET_TIMERSLACK as u64,
                0,
            ),
            mce_kill: prctl(q, "prctl(PR_MCE_KILL_GET)", libc::PR_MCE_KILL_GET as u64, 0),
            mempolicy: q.ask(
                "get_mempolicy",
                libc::SYS_get_mempolicy,
                [mode_at.as_u64(), nodes_at.as_u64(), NODE_BITS, 0, 0, 0],
            ),
            tsc: prctl(q, "prctl(PR_GET_TSC)", PR_GET_TSC, tsc_at.as_u64()),
            // EINVAL before Linux 6.3: no such setting
            mdwe: prctl(q, "prctl(PR_GET_MDWE)", PR_GET_MDWE, 0),
            // EPERM without CAP_SYS_RESOURCE, EINVAL on an older kernel: not known
            io_flusher: prctl(q, "prctl(PR_GET_IO_FLUSHER)", PR_GET_IO_FLUSHER, 0),
            tsc_at,
            mode_at,
            nodes_at,
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

    /// Adds the calls that set them in a restored thread to `batch` (what they point to
    /// in `s`, which must live until it has run), cpr's own values replaced even where
    /// the saved ones are the defaults. `restore_finish` then completes the restore from
    /// the batch's results.
    pub fn restore_calls(&self, batch: &mut Batch, s: &mut RemoteScratch) -> Result<Restoring> {
        batch.check(
            "ioprio_set",
            libc::SYS_ioprio_set,
            [IOPRIO_WHO_PROCESS, 0, self.ioprio as u64, 0, 0, 0],
            None,
        );
        // 0 would mean "the default", which is cpr's: real-time threads have no slack and
        // get it back with their policy
        if self.timer_slack != 0 {
            batch.check(
                "prctl(PR_SET_TIMERSLACK)",
                libc::SYS_prctl,
                [libc::PR_SET_TIMERSLACK as u64, self.timer_slack, 0, 0, 0, 0],
                None,
            );
        }
        let mce = match self.mce_kill {
            2 => [libc::PR_MCE_KILL_CLEAR as u64, 0],
            policy => [libc::PR_MCE_KILL_SET as u64, policy as u64],
        };
        batch.check(
            "prctl(PR_MCE_KILL)",
            libc::SYS_prctl,
            [libc::PR_MCE_KILL as u64, mce[0], mce[1], 0, 0, 0],
            None,
        );
        let (mode, mask) = &self.mempolicy;
        let mut bytes = Vec::with_capacity(NODE_WORDS * 8);
        for i in 0..NODE_WORDS {
            bytes.extend_from_slice(&mask.get(i).copied().unwrap_or(0).to_ne_bytes());
        }
        let nodes = s.put(&bytes)?;
        batch.check(
            "set_mempolicy",
            libc::SYS_set_mempolicy,
            [*mode as u64, nodes.as_u64(), NODE_BITS, 0, 0, 0],
            None,
        );
        if self.tsc != 0 {
            batch.check(
                "prctl(PR_SET_TSC)",
                libc::SYS_prctl,
                [PR_SET_TSC, self.tsc as u64, 0, 0, 0, 0],
                None,
            );
        }
        // the thread's own, inherited from cpr (EPERM without CAP_SYS_RESOURCE)
        let io_flusher = batch.len();
        batch.call(libc::SYS_prctl, [PR_GET_IO_FLUSHER, 0, 0, 0, 0, 0]);
        // memory-deny-write-execute, once the memory is in place (it cannot be cleared:
        // set on cpr, the restored process has it too, and the restart is refused)
        if self.mdwe != 0 {
            batch.check(
                "prctl(PR_SET_MDWE)",
                libc::SYS_prctl,
                [PR_SET_MDWE, self.mdwe as u64, 0, 0, 0, 0],
                None,
            );
        }
        let mdwe = batch.len();
        // EINVAL before Linux 6.3: none
        batch.call(libc::SYS_prctl, [PR_GET_MDWE, 0, 0, 0, 0, 0]);
        Ok(Restoring { io_flusher, mdwe })
    }

    /// After the batch of `restore_calls` (its `results`) in the thread of `inj`: the
    /// I/O flusher setting, and the check of memory-deny-write-execute.
    pub fn restore_finish(&self, r: &Restoring, results: &[i64], inj: &Injector) -> Result<()> {
        let result = |i: usize| results.get(i).copied().unwrap_or(-(libc::EINVAL as i64));
        // asking and changing it need CAP_SYS_RESOURCE, which a restart by its owner
        // lacks: set only when it differs from cpr's, or is on and cpr may not ask
        let mine = result(r.io_flusher);
        let mine = (mine >= 0).then_some(mine == 1);
        if let Some(wanted) = self.io_flusher
            && mine.map_or(wanted, |m| m != wanted)
        {
            inj.check(
                "prctl(PR_SET_IO_FLUSHER)",
                libc::SYS_prctl,
                [PR_SET_IO_FLUSHER, u64::from(wanted), 0, 0, 0, 0],
            )?;
        }
        let now = result(r.mdwe);
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

/// Where the results `ThreadTuning::restore_finish` needs are in the batch.
pub struct Restoring {
    io_flusher: usize,
    mdwe: usize,
}

/// The questions of `ThreadTuning::ask`: where each answer is.
pub struct TuningQuestions {
    ioprio: usize,
    timer_slack: usize,
    mce_kill: usize,
    mempolicy: usize,
    tsc: usize,
    mdwe: usize,
    io_flusher: usize,
    tsc_at: RemoteAddr,
    mode_at: RemoteAddr,
    nodes_at: RemoteAddr,
}

impl TuningQuestions {
    /// The settings, from `a` and the slots in `s`.
    pub fn answer(&self, a: &Answers, s: &RemoteScratch) -> Result<ThreadTuning> {
        let ioprio = a.checked(self.ioprio)? as u32;
        let timer_slack = a.checked(self.timer_slack)?;
        let mce_kill = a.checked(self.mce_kill)? as u32;
        a.checked(self.mempolicy)?;
        a.checked(self.tsc)?;
        // the slots one after the other, read back at once
        let len = (self.nodes_at - self.tsc_at) as usize + NODE_WORDS * 8;
        let all = s.read(self.tsc_at, len)?;
        let int = |at: RemoteAddr| {
            let o = (at - self.tsc_at) as usize;
            u32::from_ne_bytes(all[o..o + 4].try_into().unwrap_or([0; 4]))
        };
        let o = (self.nodes_at - self.tsc_at) as usize;
        let mut mask: Vec<u64> = all[o..]
            .chunks(8)
            .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))
            .collect();
        while mask.last() == Some(&0) {
            mask.pop();
        }
        let mdwe = a.raw(self.mdwe);
        let io_flusher = a.raw(self.io_flusher);
        Ok(ThreadTuning {
            ioprio,
            timer_slack,
            mce_kill,
            mempolicy: (int(self.mode_at), mask),
            tsc: int(self.tsc_at),
            mdwe: if mdwe < 0 { 0 } else { mdwe as u32 },
            io_flusher: (io_flusher >= 0).then_some(io_flusher == 1),
        })
    }
}
