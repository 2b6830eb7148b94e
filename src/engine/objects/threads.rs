//! Threads: registers, FPU/SSE/AVX state, signal mask, pending signals, sigaltstack,
//! clear_child_tid, robust futex list and rseq registration of every thread; and how a
//! thread caught inside a system call resumes it.

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::{self, Injector, RemoteAddr, RemoteScratch, RseqConfig};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::reader::damaged_record;

/// `proc/<pid>/threads.json` holds one of these per thread, main thread first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub tid: i32,
    pub comm: String,
    pub regs: Vec<u64>,
    /// NT_X86_XSTATE, hex.
    pub xstate: String,
    pub sigmask: u64,
    /// Signals queued to this thread only, siginfo hex (128 bytes each).
    pub pending: Vec<String>,
    /// sigaltstack: (ss_sp, ss_flags, ss_size).
    pub altstack: (u64, i32, u64),
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    pub rseq: RseqConfig,
    /// `None` in statefiles written before cpr kept scheduling per thread: the process
    /// record's policy, priority and nice then apply to every thread.
    #[serde(default)]
    pub sched: Option<ThreadSched>,
    /// `None` in statefiles written before cpr kept credentials per thread: the process
    /// record's then.
    #[serde(default)]
    pub creds: Option<super::creds::ThreadCreds>,
    /// PR_SET_PDEATHSIG (0: none).
    #[serde(default)]
    pub pdeathsig: i32,
    /// PR_SET_CHILD_SUBREAPER: process-wide, asked of (and kept by) the main thread only.
    #[serde(default)]
    pub child_subreaper: bool,
    /// I/O priority, timer slack, machine-check kill policy, NUMA policy (`None`: an
    /// older statefile; the restored thread then keeps cpr's).
    #[serde(default)]
    pub tuning: Option<super::thread_tuning::ThreadTuning>,
}

/// How a thread is scheduled (Linux keeps all of it per thread).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSched {
    /// SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH or SCHED_IDLE.
    pub policy: i32,
    /// Real-time priority (0 for the other policies).
    pub priority: i32,
    pub nice: i32,
    /// The CPUs it may run on, ascending.
    pub cpus: Vec<u32>,
    /// SCHED_RESET_ON_FORK (not in /proc: asked by sched_getscheduler in the thread).
    #[serde(default)]
    pub reset_on_fork: bool,
    /// `cpus` was every online CPU: the thread may run on every CPU of the system it is
    /// restarted on (which may have others).
    #[serde(default)]
    pub all_cpus: bool,
}

/// The CPUs online on this system (/sys/devices/system/cpu/online). Read again only
/// after `ONLINE_KEPT`: a checkpoint or restart asks for every thread, and each read
/// of the file costs as much as the rest of a thread's scheduling.
pub fn online_cpus() -> Result<Vec<u32>> {
    const ONLINE: &str = "/sys/devices/system/cpu/online";
    const ONLINE_KEPT: std::time::Duration = std::time::Duration::from_secs(1);
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Vec<u32>)>> =
        std::sync::Mutex::new(None);
    if let Ok(last) = LAST.lock()
        && let Some((when, cpus)) = last.as_ref()
        && when.elapsed() < ONLINE_KEPT
    {
        return Ok(cpus.clone());
    }
    let text = std::fs::read_to_string(ONLINE).ctx(ONLINE)?;
    let cpus = crate::proc::status::parse_cpus(&text).ok_or_else(|| {
        Error::with_detail(
            ONLINE,
            Kind::InvalidArgument,
            format!("'{}' is not a list of CPUs", text.trim()),
        )
    })?;
    if let Ok(mut last) = LAST.lock() {
        *last = Some((std::time::Instant::now(), cpus.clone()));
    }
    Ok(cpus)
}

const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;

/// The policies cpr restores; SCHED_DEADLINE (6) needs sched_setattr and its runtime
/// parameters, which /proc does not show.
const POLICIES: [i32; 5] = [
    libc::SCHED_OTHER,
    libc::SCHED_FIFO,
    libc::SCHED_RR,
    libc::SCHED_BATCH,
    libc::SCHED_IDLE,
];

impl ThreadSched {
    /// Thread `tid`'s, from what the thread answered (`asked`: sched_getscheduler,
    /// `priority`: sched_getparam's, `nice`) and its CPUs in its /proc status; a policy
    /// cpr cannot restore is refused. `dir` is /proc/TID, `status` the text of its status.
    pub fn dump(
        tid: i32,
        (asked, priority, nice): (i32, i32, i32),
        dir: &crate::proc::ProcDir,
        status: &str,
    ) -> Result<ThreadSched> {
        let sched = ThreadSched {
            policy: asked & !SCHED_RESET_ON_FORK,
            priority,
            nice,
            cpus: dir.parsed("status", status, crate::proc::status::cpu_list)?,
            reset_on_fork: asked & SCHED_RESET_ON_FORK != 0,
            all_cpus: false,
        };
        let sched = ThreadSched {
            all_cpus: sched.cpus == online_cpus()?,
            ..sched
        };
        if !POLICIES.contains(&sched.policy) {
            return Err(Error::with_detail(
                format!("thread {tid}"),
                Kind::CheckpointError,
                format!(
                    "scheduling policy {} (SCHED_DEADLINE) is not checkpoint safe",
                    sched.policy
                ),
            ));
        }
        Ok(sched)
    }

    fn check(&self) -> Result<()> {
        let real_time = matches!(self.policy, libc::SCHED_FIFO | libc::SCHED_RR);
        let priority_ok = if real_time {
            (1..=99).contains(&self.priority)
        } else {
            self.priority == 0
        };
        if !POLICIES.contains(&self.policy)
            || !priority_ok
            || !(-20..=19).contains(&self.nice)
            || self.cpus.is_empty()
            || self.cpus.windows(2).any(|w| w[0] >= w[1])
            || self
                .cpus
                .iter()
                .any(|&c| c as usize >= nix::sched::CpuSet::count())
        {
            return Err(damaged_record(format_args!("scheduling {self:?}")));
        }
        Ok(())
    }

    /// The CPUs the thread is to run on here.
    pub fn cpus_here(&self) -> Result<Vec<u32>> {
        if self.all_cpus {
            online_cpus()
        } else {
            Ok(self.cpus.clone())
        }
    }

    /// Gives thread `tid` (stopped, in this world) this scheduling, from outside.
    pub fn restore(&self, tid: i32) -> Result<()> {
        let who = format!("thread {tid}");
        let mut set = nix::sched::CpuSet::new();
        let cpus = self.cpus_here()?;
        for &cpu in &cpus {
            set.set(cpu as usize)
                .map_err(|e| Error::errno(format!("{who}: CPU {cpu}"), e))?;
        }
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set)
            .map_err(|e| Error::errno(format!("{who}: CPU affinity {cpus:?}"), e))?;
        let flag = if self.reset_on_fork {
            SCHED_RESET_ON_FORK
        } else {
            0
        };
        set_policy_and_nice(tid, self.policy | flag, self.priority, self.nice)
    }
}

/// The scheduling of thread `t`, restored as `tid` (stopped) by cpr from outside; from
/// an older statefile, the process record's.
pub fn restore_sched(
    t: &ThreadRecord,
    process: &super::process::ProcessRecord,
    tid: i32,
) -> Result<()> {
    match &t.sched {
        Some(sched) => sched.restore(tid),
        None => set_policy_and_nice(
            tid,
            process.sched_policy,
            process.sched_priority,
            process.nice,
        ),
    }
}

/// After the credentials (a change of credentials clears it): the parent-death signal,
/// and for the main thread the child-subreaper flag, by injection in the thread. A
/// parent-death signal is refused when the parent was not restarted with the process:
/// its parent would be another process (cpr, which exits at once).
pub fn restore_after_creds(t: &ThreadRecord, inj: &Injector, parent_restored: bool) -> Result<()> {
    if t.pdeathsig != 0 && !parent_restored {
        return Err(Error::with_detail(
            format!("thread {}", t.tid),
            Kind::CheckpointError,
            format!(
                "parent-death signal {}: its parent was not checkpointed with it",
                t.pdeathsig
            ),
        ));
    }
    if t.pdeathsig != 0 {
        inj.check(
            "prctl(PR_SET_PDEATHSIG)",
            libc::SYS_prctl,
            [
                libc::PR_SET_PDEATHSIG as u64,
                t.pdeathsig as u64,
                0,
                0,
                0,
                0,
            ],
        )?;
    }
    if t.child_subreaper {
        inj.check(
            "prctl(PR_SET_CHILD_SUBREAPER)",
            libc::SYS_prctl,
            [libc::PR_SET_CHILD_SUBREAPER as u64, 1, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// Policy, real-time priority and nice of thread `tid`, set from outside.
pub fn set_policy_and_nice(tid: i32, policy: i32, priority: i32, nice: i32) -> Result<()> {
    let who = format!("thread {tid}");
    // nice first: SCHED_IDLE and the real-time policies keep it too
    crate::sys::sched::set_nice(tid, nice)
        .map_err(|e| Error::errno(format!("{who}: nice {nice}"), e))?;
    crate::sys::sched::set_scheduler(tid, policy, priority).map_err(|e| {
        Error::errno(
            format!("{who}: scheduling policy {policy} priority {priority}"),
            e,
        )
    })
}

impl ThreadRecord {
    /// What restore takes as given, checked before anything is created: the registers
    /// are all there, the FPU state and every queued signal decode.
    pub fn check(&self) -> Result<()> {
        if self.regs.len() != 27 {
            return Err(damaged_record(format_args!(
                "thread {}: {} registers",
                self.tid,
                self.regs.len()
            )));
        }
        unhex(&self.xstate).map_err(|e| e.context(format_args!("thread {} xstate", self.tid)))?;
        for info in &self.pending {
            decode_siginfo(info)
                .map_err(|e| e.context(format_args!("thread {} pending signal", self.tid)))?;
        }
        if !(0..=64).contains(&self.pdeathsig) {
            return Err(damaged_record(format_args!(
                "thread {}: parent-death signal {}",
                self.tid, self.pdeathsig
            )));
        }
        if let Some(creds) = &self.creds {
            creds
                .check()
                .map_err(|e| e.context(format_args!("thread {}", self.tid)))?;
        }
        if let Some(sched) = &self.sched {
            sched
                .check()
                .map_err(|e| e.context(format_args!("thread {}", self.tid)))?;
        }
        if let Some(tuning) = &self.tuning {
            tuning
                .check()
                .map_err(|e| e.context(format_args!("thread {}", self.tid)))?;
        }
        Ok(())
    }
}

pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// The bytes a `hex` string stands for. A string from a damaged (or forged) statefile,
/// of odd length or with anything but hex digits, is an error.
pub fn unhex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return Err(damaged_record(format_args!(
            "hex string of odd length {}",
            s.len()
        )));
    }
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let digit = |b: u8| (b as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => Ok((hi * 16 + lo) as u8),
                _ => Err(damaged_record(format_args!(
                    "not a hex digit at offset {}",
                    2 * i
                ))),
            }
        })
        .collect()
}

/// Size of a siginfo as saved (`hex` of the kernel's 128 bytes).
const SIGINFO_SIZE: usize = 128;

/// A saved siginfo: its bytes and the signal number they start with.
pub fn decode_siginfo(s: &str) -> Result<(i32, Vec<u8>)> {
    let bytes = unhex(s)?;
    if bytes.len() != SIGINFO_SIZE {
        return Err(damaged_record(format_args!(
            "a siginfo of {} bytes ({SIGINFO_SIZE} expected)",
            bytes.len()
        )));
    }
    let sig = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Ok((sig, bytes))
}

/// Bytes of a `stack_t` (sigaltstack: ss_sp, ss_flags and padding, ss_size).
const STACK_T_SIZE: u64 = 3 * 8;

/// What only the thread itself can tell, asked through an injector in one batch
/// (`Injector::ask`), and what /proc tells (`status`: its /proc/TID/status, if read
/// already since it was stopped); `scratch` is argument space in the process.
pub fn dump(
    tid: i32,
    pid: i32,
    regs: &ptrace::Regs,
    sigmask: u64,
    inj: &Injector,
    scratch: &mut RemoteScratch,
    status: Option<&str>,
) -> Result<ThreadRecord> {
    let mut s = scratch.frame();
    let stack = s.alloc(STACK_T_SIZE)?;
    let tid_address = s.alloc(8)?;
    let pdeathsig = s.alloc(8)?;
    let subreaper = s.alloc(8)?;
    let param = s.alloc(8)?;
    let mut q = ptrace::Questions::default();
    let prctl = |q: &mut ptrace::Questions, what, option: i32, at: RemoteAddr| {
        q.ask(
            what,
            libc::SYS_prctl,
            [option as u64, at.as_u64(), 0, 0, 0, 0],
        )
    };
    let mut asked = vec![prctl(
        &mut q,
        "prctl(PR_GET_PDEATHSIG)",
        libc::PR_GET_PDEATHSIG,
        pdeathsig,
    )];
    if tid == pid {
        asked.push(prctl(
            &mut q,
            "prctl(PR_GET_CHILD_SUBREAPER)",
            libc::PR_GET_CHILD_SUBREAPER,
            subreaper,
        ));
    }
    asked.push(q.ask(
        "sigaltstack",
        libc::SYS_sigaltstack,
        [0, stack.as_u64(), 0, 0, 0, 0],
    ));
    asked.push(prctl(
        &mut q,
        "prctl(PR_GET_TID_ADDRESS)",
        libc::PR_GET_TID_ADDRESS,
        tid_address,
    ));
    let policy = q.ask("sched_getscheduler", libc::SYS_sched_getscheduler, [0; 6]);
    let priority = q.ask(
        "sched_getparam",
        libc::SYS_sched_getparam,
        [0, param.as_u64(), 0, 0, 0, 0],
    );
    // 20 - nice: 1 to 40
    let nice = q.ask(
        "getpriority",
        libc::SYS_getpriority,
        [libc::PRIO_PROCESS as u64, 0, 0, 0, 0, 0],
    );
    let securebits = q.ask(
        "prctl(PR_GET_SECUREBITS)",
        libc::SYS_prctl,
        [libc::PR_GET_SECUREBITS as u64, 0, 0, 0, 0, 0],
    );
    let tuning = super::thread_tuning::ThreadTuning::ask(&mut q, &mut s)?;
    let answers = q.run(inj, &mut s)?;
    for i in asked {
        answers.checked(i)?;
    }
    // the four slots, one after the other, read back at once
    let all = s.read(stack, (param + 8 - stack) as usize)?;
    let at = |slot: RemoteAddr| (slot - stack) as usize;
    let word = |o: usize| u64::from_ne_bytes(all[o..o + 8].try_into().unwrap_or([0; 8]));
    let int = |o: usize| i32::from_ne_bytes(all[o..o + 4].try_into().unwrap_or([0; 4]));
    let altstack = (word(0), word(8) as i32, word(16));
    let clear_child_tid = word(at(tid_address));
    let pdeathsig = int(at(pdeathsig));
    let child_subreaper = tid == pid && int(at(subreaper)) != 0;
    let tuning = tuning.answer(&answers, &s)?;
    answers.checked(priority)?;
    let sched = (
        answers.checked(policy)? as i32,
        int(at(param)),
        20 - answers.checked(nice)? as i32,
    );
    let securebits = answers.checked(securebits)? as u32;
    drop(s);
    // /proc/TID (its task/TID is the thread), its status read once for scheduling and
    // credentials
    let tdir = crate::proc::ProcDir::open(tid)?;
    let status = &*tdir.status_or(status)?;
    let comm = match name_in_status(status) {
        Some(name) => name.trim_end().to_string(),
        None => tdir.thread_comm(tid)?,
    };
    Ok(ThreadRecord {
        tid,
        comm,
        regs: ptrace::regs_to_array(regs).to_vec(),
        xstate: hex(&ptrace::get_xstate(tid)?),
        sigmask,
        pending: ptrace::peek_siginfo(tid, false)?
            .iter()
            .map(|s| hex(s))
            .collect(),
        altstack,
        clear_child_tid,
        robust_list: crate::sys::get_robust_list(tid).unwrap_or((0, 0)),
        rseq: ptrace::get_rseq(tid).unwrap_or_default(),
        sched: Some(ThreadSched::dump(tid, sched, &tdir, status)?),
        creds: Some(super::creds::ThreadCreds::dump(
            tid, securebits, &tdir, status,
        )?),
        pdeathsig,
        child_subreaper,
        tuning: Some(tuning),
    })
}

/// A thread's name as its /proc status shows it, where that is the name itself: the
/// kernel escapes only newlines and backslashes there, so a name with a backslash is
/// left to the comm file.
fn name_in_status(status: &str) -> Option<&str> {
    let name = status
        .split('\n')
        .find_map(|line| line.strip_prefix("Name:\t"))?;
    (!name.contains('\\')).then_some(name)
}

const ERESTARTSYS: i64 = 512;
const ERESTARTNOINTR: i64 = 513;
const ERESTARTNOHAND: i64 = 514;
const ERESTART_RESTARTBLOCK: i64 = 516;

/// The registers a thread resumes with. A thread stopped inside a system call re-issues
/// it (as the kernel would have); nanosleep and clock_nanosleep re-issue with the time
/// that was left, which the kernel wrote to the caller's `rem` when it stopped them.
pub fn resume_regs(saved: &ptrace::Regs) -> ptrace::Regs {
    let mut r = *saved;
    let nr = r.orig_rax as i64;
    if nr >= 0 {
        match -(r.rax as i64) {
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND => {
                r.rax = r.orig_rax;
                r.rip -= 2;
            }
            ERESTART_RESTARTBLOCK => {
                r.rax = r.orig_rax;
                r.rip -= 2;
                if nr == libc::SYS_nanosleep && r.rsi != 0 {
                    r.rdi = r.rsi;
                } else if nr == libc::SYS_clock_nanosleep
                    && r.rsi & libc::TIMER_ABSTIME as u64 == 0
                    && r.r10 != 0
                {
                    r.rdx = r.r10;
                }
            }
            _ => {}
        }
        r.orig_rax = u64::MAX;
    }
    r
}

/// Gives a restored thread (stopped, in its final address space) its per-thread kernel
/// state through injection in that very thread. Registers, xstate and mask are set
/// later, just before release.
pub fn restore_kernel_state(
    t: &ThreadRecord,
    inj: &Injector,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let pid = scratch.pid();
    let mut buf = Vec::new();
    buf.extend_from_slice(&t.altstack.0.to_ne_bytes());
    buf.extend_from_slice(&((t.altstack.1 & !libc::SS_ONSTACK) as u64).to_ne_bytes());
    buf.extend_from_slice(&t.altstack.2.to_ne_bytes());
    // in one batch (one ptrace round trip where the thread has a runner); what the calls
    // point to stays in the frame until the batch has run
    let mut s = scratch.frame();
    let mut batch = crate::engine::ptrace::Batch::new();
    // Set even when disabled: the thread may hold the alternate stack of cpr itself
    // (its runtime's, inherited through fork), which is not mapped in the restored
    // image, and an SA_ONSTACK handler would then fault on delivery.
    let stack = s.put(&buf)?;
    batch.check(
        "sigaltstack",
        libc::SYS_sigaltstack,
        [stack.as_u64(), 0, 0, 0, 0, 0],
        None,
    );
    batch.check(
        "set_tid_address",
        libc::SYS_set_tid_address,
        [t.clear_child_tid, 0, 0, 0, 0, 0],
        None,
    );
    // set even when none: the main thread holds the list of cpr's glibc (registered
    // again after fork), which the kernel would walk at exit in the new image
    batch.check(
        "set_robust_list",
        libc::SYS_set_robust_list,
        [t.robust_list.0, ROBUST_LIST_HEAD_SIZE, 0, 0, 0, 0],
        None,
    );
    if t.rseq.abi_pointer != 0 {
        batch.check(
            "rseq",
            libc::SYS_rseq,
            [
                t.rseq.abi_pointer,
                t.rseq.abi_size as u64,
                0,
                t.rseq.signature as u64,
                0,
                0,
            ],
            None,
        );
    }
    if !t.comm.is_empty() {
        // only a thread itself may rename itself (/proc/PID/comm refuses others)
        let mut name = t.comm.as_bytes()[..t.comm.len().min(15)].to_vec();
        name.push(0);
        let name = s.put(&name)?;
        batch.check(
            "prctl(PR_SET_NAME)",
            libc::SYS_prctl,
            [libc::PR_SET_NAME as u64, name.as_u64(), 0, 0, 0, 0],
            None,
        );
    }
    let tuning = match &t.tuning {
        Some(tuning) => Some((tuning, tuning.restore_calls(&mut batch, &mut s)?)),
        None => None,
    };
    let results = batch.run(inj, &mut s)?;
    drop(s);
    if let Some((tuning, restoring)) = tuning {
        tuning.restore_finish(&restoring, &results, inj)?;
    }
    // each pending signal's siginfo in a frame of its own: a thread may have many
    for info in &t.pending {
        let (sig, bytes) = decode_siginfo(info).ctx(format!("thread {} pending signal", t.tid))?;
        let mut s = scratch.frame();
        let siginfo = s.put(&bytes)?;
        inj.check(
            "rt_tgsigqueueinfo",
            libc::SYS_rt_tgsigqueueinfo,
            [
                pid as u64,
                inj.tid as u64,
                sig as u64,
                siginfo.as_u64(),
                0,
                0,
            ],
        )?;
    }
    Ok(())
}

/// Bytes of a `struct robust_list_head`, the only length set_robust_list accepts.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

/// Last step before release: registers (with interrupted calls re-issued), FPU state and
/// the signal mask.
pub fn restore_registers(t: &ThreadRecord, tid: i32) -> Result<()> {
    let arr: [u64; 27] = t.regs.clone().try_into().map_err(|_| {
        Error::with_detail(
            format!("thread {tid}"),
            Kind::CheckpointError,
            "bad register record",
        )
    })?;
    let saved = ptrace::regs_from_array(&arr);
    let xstate = unhex(&t.xstate).ctx(format!("thread {} xstate", t.tid))?;
    ptrace::set_xstate(tid, &xstate)?;
    ptrace::set_regs(tid, &resume_regs(&saved))?;
    ptrace::set_sigmask(tid, t.sigmask)
}

/// New threads of the restoring process, one per entry of `tids` (the TID it is to have,
/// or any), by injected clone3 calls run in batches of `main` (one round trip for many
/// where it has a runner); each starts stopped (PTRACE_O_TRACECLONE) and gets its
/// registers at release. Returns their TIDs, in order.
pub fn create_all(
    main: &Injector,
    scratch: &mut RemoteScratch,
    tids: &[Option<i32>],
) -> Result<Vec<i32>> {
    /// Threads created per batch: their arguments and table fit the scratch area.
    const PART: usize = 128;
    let pid = scratch.pid();
    let mut created = Vec::with_capacity(tids.len());
    for part in tids.chunks(PART) {
        let mut s = scratch.frame();
        let mut batch = crate::engine::ptrace::Batch::new();
        for &tid in part {
            let (args, size) = clone_args(&mut s, tid)?;
            batch.check(
                "clone3 (thread)",
                libc::SYS_clone3,
                [args.as_u64(), size, 0, 0, 0, 0],
                tid.map(|t| format!("TID {t}")),
            );
        }
        let new = batch.run(main, &mut s).map_err(|e| match e.kind {
            Kind::FileExists => Error::with_detail(
                format!("process {pid}"),
                Kind::ResourceBusy,
                format!("{} is in use", e.detail.as_deref().unwrap_or("a TID")),
            ),
            _ => e,
        })?;
        for tid in new {
            created.push(first_stop(tid as i32)?);
        }
    }
    Ok(created)
}

/// The arguments of a clone3 making a thread (with TID `tid`, or any) in `s`: their
/// address and size.
fn clone_args(s: &mut RemoteScratch, tid: Option<i32>) -> Result<(RemoteAddr, u64)> {
    let flags = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM) as u64;
    let set_tid = match tid {
        Some(t) => s.put(&t.to_ne_bytes())?.as_u64(),
        None => 0,
    };
    let args = crate::sys::CloneArgs {
        flags,
        set_tid,
        set_tid_size: if tid.is_some() { 1 } else { 0 },
        ..Default::default()
    };
    Ok((s.put_struct(&args)?, std::mem::size_of_val(&args) as u64))
}

/// Waits for the first stop of thread `new`, just created; returns it.
fn first_stop(new: i32) -> Result<i32> {
    loop {
        match ptrace::wait(new)? {
            ptrace::Stop::EventStop(_) | ptrace::Stop::Signal(_) => return Ok(new),
            ptrace::Stop::Exited(_) | ptrace::Stop::Killed(_) => {
                return Err(Error::with_detail(
                    format!("thread {new}"),
                    Kind::CheckpointError,
                    "ended at creation",
                ));
            }
            _ => ptrace::cont(new, 0).ctx(format!("thread {new}"))?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_calls_are_reissued() {
        let mut r: ptrace::Regs = zero_regs();
        r.orig_rax = libc::SYS_read as u64;
        r.rax = (-ERESTARTSYS) as u64;
        r.rip = 0x1002;
        let n = resume_regs(&r);
        assert_eq!(
            (n.rip, n.rax, n.orig_rax),
            (0x1000, libc::SYS_read as u64, u64::MAX)
        );

        r.orig_rax = libc::SYS_clock_nanosleep as u64;
        r.rax = (-ERESTART_RESTARTBLOCK) as u64;
        r.rsi = 0;
        r.rdx = 0x5000;
        r.r10 = 0x6000;
        let n = resume_regs(&r);
        assert_eq!((n.rax, n.rdx), (libc::SYS_clock_nanosleep as u64, 0x6000));

        r.orig_rax = u64::MAX;
        r.rax = 7;
        assert_eq!(resume_regs(&r).rip, 0x1002);
        let h = hex(&[0, 255, 16]);
        assert_eq!(unhex(&h).unwrap(), vec![0, 255, 16]);
    }

    #[test]
    fn names_are_taken_from_status_only_as_written() {
        let status = "Name:\tworker 7 \nUmask:\t0022\n";
        assert_eq!(name_in_status(status), Some("worker 7 "));
        assert_eq!(name_in_status("Name:\ta\\nb\nState:\tS\n"), None);
        assert_eq!(name_in_status("State:\tS\n"), None);
    }

    #[test]
    fn bad_hex_is_an_error_not_a_panic() {
        for s in ["0", "abc", "zz", "0g", "é0", "0é", "+f", "\u{10000}"] {
            assert!(unhex(s).is_err(), "{s:?}");
        }
        assert!(decode_siginfo("0a000000").is_err());
        let info = hex(&[7u8; SIGINFO_SIZE]);
        assert_eq!(decode_siginfo(&info).unwrap().0, 0x0707_0707);
    }

    fn zero_regs() -> ptrace::Regs {
        ptrace::regs_from_array(&[0u64; 27])
    }
}
