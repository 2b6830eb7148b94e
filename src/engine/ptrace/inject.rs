//! Syscall injection: running a system call inside a stopped tracee thread, through a
//! gate (an instruction sequence in its memory) and its own registers. The arguments
//! that live in the tracee's memory are placed by `remote::RemoteScratch`.

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::remote::{RemoteAddr, RemoteScratch, read_mem, refuse_own_vm, write_mem};
use super::{
    Gone, Regs, Stop, cont, cont_syscall, get_regs, get_sigmask, set_regs, set_sigmask, subject,
    wait,
};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::ProcDir;

/// The x86-64 `syscall` instruction followed by `int3`: the injection stub.
pub const SYSCALL_INT3: [u8; 4] = [0x0f, 0x05, 0xcc, 0xcc];

/// How an injected system call reaches the kernel and stops after it.
#[derive(Debug, Clone, Copy)]
pub enum Gate {
    /// `syscall; int3` at this address: one stop per call (SIGTRAP, suppressed).
    Int3(RemoteAddr),
    /// Any `syscall` instruction at this address: PTRACE_SYSCALL, two stops per call; the
    /// target's code is never written.
    SyscallInsn(RemoteAddr),
    /// A trampoline cpr wrote at this address (`install_trampoline`): a `syscall`
    /// instruction followed by code that puts back the thread's signal mask and registers
    /// and jumps to where the thread was. Driven like `SyscallInsn`; the code after the
    /// `syscall` runs only if cpr is gone, and then the thread carries on as if nothing
    /// had been injected.
    Trampoline(RemoteAddr),
}

/// The gate of a running process at checkpoint: a `syscall` instruction in its vDSO, so
/// that its own code is never written; in a process that unmapped its vDSO, one in its
/// own executable code (read, never written). It lives here, not with the vDSO's move at
/// restart (objects/vdso.rs), because it is how injection reaches the kernel: the
/// ptrace layer needs nothing from the object kinds.
pub fn syscall_gate(pid: i32) -> Result<Gate> {
    let maps = ProcDir::open(pid)?.maps()?;
    let vdso = maps.iter().filter(|m| m.path == "[vdso]");
    // the vDSO first; else the program's and its libraries' code, which a frozen
    // process cannot change
    let code = maps
        .iter()
        .filter(|m| m.perms.starts_with("r-x") && m.path.starts_with('/'));
    for m in vdso.chain(code) {
        let start = RemoteAddr::from(m.start);
        let Ok(bytes) = read_mem(pid, start, (m.end - m.start) as usize) else {
            continue;
        };
        if let Some(off) = bytes.windows(2).position(|w| w == [0x0f, 0x05]) {
            return Ok(Gate::SyscallInsn(start + off as u64));
        }
    }
    Err(Error::with_detail(
        format!("process {pid}"),
        Kind::CheckpointError,
        "no syscall instruction to run system calls through (no vDSO, no code)",
    ))
}

/// The gate of a running process at checkpoint, for calls that must leave it able to
/// run on if cpr vanishes at any stop: a trampoline (`install_trampoline`) in the zero
/// padding after the code and tables of its vDSO, where nothing runs or is read (the
/// write makes the process its own copy of that page). Without room there, the vDSO's
/// syscall instruction (`syscall_gate`). Remove it with `remove_vdso_trampoline`.
pub fn checkpoint_gate(pid: i32) -> Result<Gate> {
    let maps = ProcDir::open(pid)?.maps()?;
    let Some(vdso) = maps.iter().find(|m| m.path == "[vdso]") else {
        return syscall_gate(pid);
    };
    let at = vdso.end.saturating_sub(TRAMPOLINE_LEN) & !15;
    if at < vdso.start || at == 0 {
        return syscall_gate(pid);
    }
    let padding = read_mem(pid, RemoteAddr::from(at), (vdso.end - at) as usize)?;
    // zeros, or the trampoline a cpr killed mid-way left there
    let code = trampoline_code();
    if padding.iter().any(|&b| b != 0) && !padding.starts_with(&code) {
        return syscall_gate(pid);
    }
    install_trampoline(pid, RemoteAddr::from(at))
}

/// The signal a thread blocking `blocked` is stopped with at the end of a batch of
/// questions (`Injector::with_batch_signal`), in a process whose /proc/PID/status says it
/// ignores `ignored` (SigIgn) and catches `caught` (SigCgt), without seccomp filters
/// (`seccomp`: its Seccomp mode, which could refuse the calls the batch ends with).
/// SIGURG, SIGWINCH or SIGCHLD left at their default, else any standard signal set to
/// SIG_IGN but the stop signals, SIGCONT and SIGTRAP; `None` when none fits. Never a
/// real-time one: a stop by it cannot be waited for (the wait status decoding refuses
/// it with EINVAL), and glibc keeps 32 and 33 for itself.
pub fn batch_signal(ignored: u64, caught: u64, blocked: u64, seccomp: u32) -> Option<i32> {
    if seccomp != 0 {
        return None;
    }
    let bit = |s: i32| 1u64 << (s - 1);
    let free = |s: i32| blocked & bit(s) == 0 && caught & bit(s) == 0;
    let by_default = [libc::SIGURG, libc::SIGWINCH, libc::SIGCHLD];
    let never = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCONT,
        libc::SIGTRAP,
    ];
    by_default
        .into_iter()
        .find(|&s| free(s))
        .or_else(|| (1..32).find(|&s| ignored & bit(s) != 0 && !never.contains(&s) && free(s)))
}

/// Puts the zeros back where `checkpoint_gate` wrote a trampoline into the vDSO (once
/// no call runs through it); nothing for any other gate.
pub fn remove_vdso_trampoline(pid: i32, gate: Gate) -> Result<()> {
    match gate {
        Gate::Trampoline(at) => {
            LAST_DATA.set(None);
            write_mem(pid, at, &[0; TRAMPOLINE_LEN as usize])
        }
        _ => Ok(()),
    }
}

/// Runs system calls inside a stopped thread.
pub struct Injector {
    pub tid: i32,
    pub gate: Gate,
    /// Registers the injected calls start from (the thread's own, with orig_rax = -1 so
    /// that the kernel does not restart whatever call the thread was in).
    base: Regs,
    /// For a thread that must be able to run on at any instant (a checkpoint's target):
    /// what its registers and mask are put back to after each call.
    resume: Option<Resume>,
    /// A restore child's batch runner (`Batch`), if it has one.
    pub(super) runner: Option<RemoteAddr>,
    /// For `ask` through a trampoline: the signal that stops the thread at the end of
    /// a batch (`with_batch_signal`); `None`: one call at a time.
    batch_signal: Option<i32>,
}

/// A thread's own state, as it runs on: the registers it resumes with (an interrupted
/// call set to be re-issued) and its signal mask.
#[derive(Debug, Clone, Copy)]
struct Resume {
    regs: Regs,
    mask: u64,
}

impl Injector {
    /// An injector for stopped thread `tid`; a thread sharing cpr's own address space is
    /// refused (what it runs would change cpr's memory).
    pub fn new(tid: i32, gate: Gate) -> Result<Injector> {
        refuse_own_vm(tid)?;
        let mut base = get_regs(tid)?;
        base.orig_rax = u64::MAX;
        Ok(Injector {
            tid,
            gate,
            base,
            resume: None,
            runner: None,
            batch_signal: None,
        })
    }

    /// An injector for a stopped thread that must stay able to run on correctly if cpr
    /// vanishes at any stop (PTRACE_O_EXITKILL is never set, so the kernel then lets it
    /// go): each call changes its registers and signal mask only while it runs, and puts
    /// `resume` (the registers it resumes with, interrupted calls set to be re-issued) and
    /// its own mask back at once. Through a `Gate::Trampoline`, even a stop inside the
    /// call leaves it state the trampoline restores.
    pub fn transient(tid: i32, gate: Gate, resume: &Regs) -> Result<Injector> {
        refuse_own_vm(tid)?;
        let mask = get_sigmask(tid)?;
        let mut base = *resume;
        base.orig_rax = u64::MAX;
        Ok(Injector {
            tid,
            gate,
            base,
            resume: Some(Resume { regs: base, mask }),
            runner: None,
            batch_signal: None,
        })
    }

    /// The same, asking (`ask`) in one go with signal `sig` as the stop that ends a
    /// batch. `sig` must be one the process ignores (SIG_IGN, or SIG_DFL and ignored by
    /// default: SIGCHLD, SIGURG, SIGWINCH; never a stop signal or SIGCONT, which act when
    /// sent) and the thread does not block: sent while cpr is gone, it is dropped at
    /// once; sent while cpr traces the thread, it stops it. `None`: one call at a time.
    pub fn with_batch_signal(mut self, sig: Option<i32>) -> Injector {
        self.batch_signal = sig;
        self
    }

    /// The same, running batches (`Batch`) through the runner at `runner` (a restore
    /// child's, which `run_at` rules allow).
    pub fn with_runner(mut self, runner: RemoteAddr) -> Injector {
        self.runner = Some(runner);
        self
    }

    /// The same thread, state and gate, without a runner: a `Batch` then makes its
    /// calls one at a time, reading each result from the registers (for calls after
    /// which the thread's memory may not be readable through /proc/PID/mem).
    pub fn without_runner(&self) -> Injector {
        Injector {
            runner: None,
            ..self.through(self.gate)
        }
    }

    /// The same thread and state, calls going through `gate`.
    pub fn through(&self, gate: Gate) -> Injector {
        Injector {
            tid: self.tid,
            gate,
            base: self.base,
            resume: self.resume,
            runner: self.runner,
            batch_signal: self.batch_signal,
        }
    }

    /// Runs calls that only ask (they change nothing but the scratch memory they write
    /// their answers to) and returns each raw result (negative errno on failure; a
    /// failure does not stop the others). In a thread that must be able to run on, with
    /// a trampoline gate and a batch signal (`with_batch_signal`): all in one go, the
    /// table of calls in `scratch`, for one stop instead of two per call. The thread
    /// runs them from the trampoline's batch entry with every signal blocked but
    /// SIGKILL, SIGSTOP, SIGTRAP and the batch signal, then sends itself the batch
    /// signal, at whose delivery stop cpr puts its mask and registers back. Were cpr
    /// gone at any instant, the signal would be dropped (the process ignores it, the
    /// thread does not block it) and the trampoline would put them back itself.
    /// Otherwise (or with no calls), one `call` at a time.
    pub fn ask(&self, calls: &[(i64, [u64; 6])], scratch: &mut RemoteScratch) -> Result<Vec<i64>> {
        let (Some(resume), Gate::Trampoline(at), Some(sig)) =
            (self.resume, self.gate, self.batch_signal)
        else {
            return calls
                .iter()
                .map(|&(nr, args)| self.call(nr, args))
                .collect();
        };
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let tid = self.tid;
        let mut table = Vec::with_capacity(calls.len() * 64);
        for &(nr, args) in calls {
            table.extend_from_slice(&(nr as u64).to_ne_bytes());
            for a in args {
                table.extend_from_slice(&a.to_ne_bytes());
            }
            table.extend_from_slice(&0u64.to_ne_bytes());
        }
        let mut frame = scratch.frame();
        let t = frame.put(&table)?;
        put_trampoline_data_with(tid, at, &resume, |at, data| frame.write_at(at, data))?;
        let mut r = self.base;
        r.rip = (at + BATCH_ENTRY).as_u64();
        r.orig_rax = u64::MAX;
        r.rbx = t.as_u64();
        r.r12 = calls.len() as u64;
        r.r15 = sig as u64;
        // registers first, then the mask (as `call`)
        let ran = set_regs(tid, &r)
            .and_then(|()| set_sigmask(tid, super::ALL_BUT_SIGTRAP & !(1 << (sig - 1))))
            .and_then(|()| cont(tid, 0).ctx(subject(tid)))
            .and_then(|()| self.wait_batch_stop(sig, at + BATCH_STOP));
        let put_back = set_sigmask(tid, resume.mask).and_then(|()| set_regs(tid, &resume.regs));
        ran?;
        put_back?;
        let back = frame.read(t, table.len())?;
        Ok(back
            .chunks_exact(64)
            .map(|e| i64::from_ne_bytes(e[56..64].try_into().unwrap_or_default()))
            .collect())
    }

    /// Waits for the stop at the end of a batch (`ask`): the delivery of `sig` at
    /// `stop`, every call made.
    fn wait_batch_stop(&self, sig: i32, stop: RemoteAddr) -> Result<()> {
        let tid = self.tid;
        loop {
            match wait(tid)? {
                Stop::Signal(s) if s == sig => {
                    let r = get_regs(tid)?;
                    if r.rip == stop.as_u64() && r.r12 == 0 {
                        return Ok(());
                    }
                    // the same signal from elsewhere: dropped, as it would have been
                    // (the process ignores it and the thread does not block it)
                    cont(tid, 0).ctx(subject(tid))?
                }
                // passed on, as in `wait_syscall_stop`
                Stop::Signal(libc::SIGSTOP) => cont(tid, libc::SIGSTOP).ctx(subject(tid))?,
                Stop::Signal(s) => {
                    return Err(Error::with_detail(
                        subject(tid),
                        Kind::CheckpointError,
                        format!(
                            "signal {} during a batch of injected calls",
                            Signal::try_from(s).map(|s| s.as_str()).unwrap_or("?")
                        ),
                    ));
                }
                Stop::Event(_) | Stop::EventStop(_) | Stop::Syscall => {
                    cont(tid, 0).ctx(subject(tid))?
                }
                Stop::Exited(_) | Stop::Killed(_) => {
                    return Err(Gone::new(tid, "ended in a batch of injected calls").into());
                }
            }
        }
    }

    /// Runs `nr(args...)` in the thread and returns the raw result (negative errno on
    /// failure).
    pub fn call(&self, nr: i64, args: [u64; 6]) -> Result<i64> {
        let Some(resume) = self.resume else {
            return self.run(nr, args);
        };
        let tid = self.tid;
        if let Gate::Trampoline(at) = self.gate {
            put_trampoline_data(tid, at, &resume)?;
        }
        // Registers first, then the mask: from the moment the mask is changed, the
        // registers lead through the trampoline, which puts it back.
        let rc = self.run_blocked(nr, args);
        // Mask first, then registers, for the same reason; put back even after a failure.
        let put_back = set_sigmask(tid, resume.mask).and_then(|()| set_regs(tid, &resume.regs));
        let rc = rc?;
        put_back?;
        Ok(rc)
    }

    /// `run`, with every signal but SIGKILL, SIGSTOP and SIGTRAP blocked while the call
    /// runs: one arriving then stays pending (the dump saves it as pending) instead of
    /// being taken by a thread whose registers are cpr's (SIGTRAP: see ALL_BUT_SIGTRAP).
    fn run_blocked(&self, nr: i64, args: [u64; 6]) -> Result<i64> {
        self.run_with(nr, args, || set_sigmask(self.tid, super::ALL_BUT_SIGTRAP))
    }

    fn run(&self, nr: i64, args: [u64; 6]) -> Result<i64> {
        self.run_with(nr, args, || Ok(()))
    }

    /// Sets the registers for `nr(args...)`, then `prepare`, then runs the call.
    fn run_with(
        &self,
        nr: i64,
        args: [u64; 6],
        prepare: impl FnOnce() -> Result<()>,
    ) -> Result<i64> {
        let mut r = self.base;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.r10 = args[3];
        r.r8 = args[4];
        r.r9 = args[5];
        let tid = self.tid;
        match self.gate {
            Gate::Int3(addr) => {
                r.rip = addr.as_u64();
                set_regs(tid, &r)?;
                prepare()?;
                cont(tid, 0).ctx(subject(tid))?;
                self.wait_trap(nr)?;
            }
            Gate::SyscallInsn(addr) | Gate::Trampoline(addr) => {
                r.rip = addr.as_u64();
                set_regs(tid, &r)?;
                prepare()?;
                cont_syscall(tid, 0).ctx(subject(tid))?;
                self.wait_syscall_stop(nr)?;
                cont_syscall(tid, 0).ctx(subject(tid))?;
                self.wait_syscall_stop(nr)?;
            }
        }
        let after = get_regs(tid)?;
        Ok(after.rax as i64)
    }

    /// Runs the code at `at` in the thread (a restore child's, never a running
    /// target's: its registers are not put back), with its base registers changed by
    /// `set`, until the code's `int3`.
    pub(super) fn run_at(&self, at: RemoteAddr, set: impl FnOnce(&mut Regs)) -> Result<()> {
        if self.resume.is_some() {
            return Err(Error::with_detail(
                subject(self.tid),
                Kind::CheckpointError,
                "a batch of calls in a thread that must be able to run on",
            ));
        }
        let mut r = self.base;
        set(&mut r);
        r.rip = at.as_u64();
        r.orig_rax = u64::MAX;
        set_regs(self.tid, &r)?;
        cont(self.tid, 0).ctx(subject(self.tid))?;
        self.wait_trap(-1)
    }

    /// Like `call`, but a negative result becomes an error naming the call.
    pub fn check(&self, what: &str, nr: i64, args: [u64; 6]) -> Result<u64> {
        let rc = self.call(nr, args)?;
        if rc < 0 && rc > -4096 {
            return Err(Error::errno(
                format!("thread {}: {what}", self.tid),
                Errno::from_raw(-rc as i32),
            ));
        }
        Ok(rc as u64)
    }

    fn wait_trap(&self, nr: i64) -> Result<()> {
        loop {
            match wait(self.tid)? {
                Stop::Signal(s) if s == libc::SIGTRAP => return Ok(()),
                // clone events of an injected clone3: the new thread is collected by the caller
                Stop::Event(_) => cont(self.tid, 0).ctx(subject(self.tid))?,
                Stop::Signal(s) => {
                    return Err(Error::with_detail(
                        subject(self.tid),
                        Kind::CheckpointError,
                        format!("signal {s} during injected syscall {nr}"),
                    ));
                }
                Stop::EventStop(_) | Stop::Syscall => cont(self.tid, 0).ctx(subject(self.tid))?,
                Stop::Exited(c) => {
                    return Err(Gone::new(self.tid, format!("exited ({c}) in syscall {nr}")).into());
                }
                Stop::Killed(s) => {
                    return Err(Gone::new(
                        self.tid,
                        format!("killed by signal {s} in syscall {nr}"),
                    )
                    .into());
                }
            }
        }
    }

    fn wait_syscall_stop(&self, nr: i64) -> Result<()> {
        loop {
            match wait(self.tid)? {
                Stop::Syscall => return Ok(()),
                Stop::Event(_) | Stop::EventStop(_) => {
                    cont_syscall(self.tid, 0).ctx(subject(self.tid))?
                }
                // A stop signal (the one a blocked mask lets through): passed on, so that
                // the process stops as it was asked to (a group-stop, reported next as an
                // event stop) and the call goes on; it stays stopped once released.
                Stop::Signal(libc::SIGSTOP) if self.resume.is_some() => {
                    cont_syscall(self.tid, libc::SIGSTOP).ctx(subject(self.tid))?
                }
                Stop::Signal(s) => {
                    return Err(Error::with_detail(
                        subject(self.tid),
                        Kind::CheckpointError,
                        format!(
                            "signal {} during injected syscall {nr}",
                            Signal::try_from(s).map(|s| s.as_str()).unwrap_or("?")
                        ),
                    ));
                }
                Stop::Exited(_) | Stop::Killed(_) => {
                    return Err(Gone::new(self.tid, format!("ended in syscall {nr}")).into());
                }
            }
        }
    }
}

/// Where the trampoline's data (`trampoline_data`) starts, from its first byte.
const TRAMPOLINE_DATA: u64 = 0x100;

/// The registers the trampoline loads, in its data after the mask, flags and rip, as
/// x86-64 numbers them (rsp, 4, last: nothing after it touches the stack).
const TRAMPOLINE_REGS: [u8; 16] = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 4];

/// Bytes the trampoline takes in the tracee: code, then data.
pub const TRAMPOLINE_LEN: u64 = TRAMPOLINE_DATA + 8 * (3 + TRAMPOLINE_REGS.len() as u64);

/// The trampoline's code. It runs only when cpr vanished while a call was injected
/// through it: the call ends, then `rt_sigprocmask(SIG_SETMASK, &mask, NULL, 8)`, the
/// flags by `popfq` from the data, every general register from the data, and a jump to
/// the thread's own rip. All data is addressed relative to rip, so it runs anywhere.
fn trampoline_code() -> Vec<u8> {
    let mut code: Vec<u8> = vec![0x0f, 0x05]; // syscall (the injected call)
    // A rip-relative operand: the 32-bit distance from the end of the instruction (its
    // 4 displacement bytes come next) to data slot `slot`.
    let rel = |code: &Vec<u8>, slot: u64| -> [u8; 4] {
        let next = code.len() as i32 + 4;
        ((TRAMPOLINE_DATA + 8 * slot) as i32 - next).to_le_bytes()
    };
    code.extend([0xb8, 14, 0, 0, 0]); // mov eax, SYS_rt_sigprocmask
    code.extend([0xbf, 2, 0, 0, 0]); // mov edi, SIG_SETMASK
    code.extend([0x48, 0x8d, 0x35]); // lea rsi, [rip + mask]
    let d = rel(&code, 0);
    code.extend(d);
    code.extend([0x31, 0xd2]); // xor edx, edx
    code.extend([0x41, 0xba, 8, 0, 0, 0]); // mov r10d, 8
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0x48, 0x8d, 0x25]); // lea rsp, [rip + flags]
    let d = rel(&code, 1);
    code.extend(d);
    code.push(0x9d); // popfq
    for (i, &reg) in TRAMPOLINE_REGS.iter().enumerate() {
        // mov reg, [rip + slot]: REX.W (+R for r8-r15), 8b, modrm 00 reg 101
        code.extend([0x48 | ((reg >> 3) << 2), 0x8b, 0x05 | ((reg & 7) << 3)]);
        let d = rel(&code, 3 + i as u64);
        code.extend(d);
    }
    code.extend([0xff, 0x25]); // jmp [rip + rip slot]
    let d = rel(&code, 2);
    code.extend(d);
    // The batch entry (`Injector::ask`): with rbx at a table of r12 calls (`Batch`'s
    // layout) and r15 a signal, each call in turn (its result stored in its entry, a
    // failure does not stop the others), then tgkill(getpid(), gettid(), r15), which a
    // tracer sees as a stop, and on into the code above that puts the thread back.
    debug_assert_eq!(code.len(), BATCH_ENTRY as usize);
    let body: [u8; 41] = [
        0x8b, 0x03, // mov eax, [rbx]
        0x48, 0x8b, 0x7b, 0x08, // mov rdi, [rbx+8]
        0x48, 0x8b, 0x73, 0x10, // mov rsi, [rbx+16]
        0x48, 0x8b, 0x53, 0x18, // mov rdx, [rbx+24]
        0x4c, 0x8b, 0x53, 0x20, // mov r10, [rbx+32]
        0x4c, 0x8b, 0x43, 0x28, // mov r8, [rbx+40]
        0x4c, 0x8b, 0x4b, 0x30, // mov r9, [rbx+48]
        0x0f, 0x05, // syscall
        0x48, 0x89, 0x43, 0x38, // mov [rbx+56], rax
        0x48, 0x83, 0xc3, 0x40, // add rbx, 64
        0x49, 0xff, 0xcc, // dec r12
        0xeb, 0x00, // jmp back to the test (patched below)
    ];
    let top = code.len();
    code.extend([0x4d, 0x85, 0xe4]); // test r12, r12
    code.extend([0x74, body.len() as u8]); // jz past the loop
    code.extend(body);
    let back = top as i64 - code.len() as i64;
    let last = code.len() - 1;
    code[last] = back as i8 as u8;
    code.extend([0xb8, 39, 0, 0, 0]); // mov eax, SYS_getpid
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0x49, 0x89, 0xc5]); // mov r13, rax
    code.extend([0xb8, 186, 0, 0, 0]); // mov eax, SYS_gettid
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0x48, 0x89, 0xc6]); // mov rsi, rax
    code.extend([0x4c, 0x89, 0xef]); // mov rdi, r13
    code.extend([0x4c, 0x89, 0xfa]); // mov rdx, r15
    code.extend([0xb8, 234, 0, 0, 0]); // mov eax, SYS_tgkill
    code.extend([0x0f, 0x05]); // syscall
    debug_assert_eq!(code.len(), BATCH_STOP as usize);
    // jmp rel32 to the mask and registers being put back (just after the first syscall)
    code.push(0xe9);
    let d = (2 - (code.len() as i64 + 4)) as i32;
    code.extend(d.to_le_bytes());
    code
}

/// Where the batch entry of the trampoline's code starts, from its first byte.
const BATCH_ENTRY: u64 = 155;
/// Where a thread that ran a batch through the trampoline stops (just after its
/// tgkill), from the trampoline's first byte.
const BATCH_STOP: u64 = BATCH_ENTRY + 46 + 33;

thread_local! {
    /// The trampoline data written last (thread, trampoline, data): a thread's calls in
    /// a row write it once, not once per call. Forgotten whenever a trampoline is
    /// written or removed.
    static LAST_DATA: std::cell::RefCell<Option<(i32, u64, Vec<u8>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Writes the trampoline data of thread `tid` at trampoline `at`, unless it is what
/// the last write there left.
fn put_trampoline_data(tid: i32, at: RemoteAddr, resume: &Resume) -> Result<()> {
    put_trampoline_data_with(tid, at, resume, |at, data| write_mem(tid, at, data))
}

/// The same, written by `write`.
fn put_trampoline_data_with(
    tid: i32,
    at: RemoteAddr,
    resume: &Resume,
    write: impl FnOnce(RemoteAddr, &[u8]) -> Result<()>,
) -> Result<()> {
    let data = trampoline_data(resume);
    let key = at.as_u64();
    let same = LAST_DATA.with_borrow(|last| {
        last.as_ref()
            .is_some_and(|(t, a, d)| *t == tid && *a == key && *d == data)
    });
    if same {
        return Ok(());
    }
    LAST_DATA.set(None);
    write(at + TRAMPOLINE_DATA, &data)?;
    LAST_DATA.set(Some((tid, key, data)));
    Ok(())
}

/// The trampoline's data for one thread: its mask, flags, rip and registers.
fn trampoline_data(r: &Resume) -> Vec<u8> {
    let g = &r.regs;
    let by_number = [
        g.rax, g.rcx, g.rdx, g.rbx, g.rsp, g.rbp, g.rsi, g.rdi, g.r8, g.r9, g.r10, g.r11, g.r12,
        g.r13, g.r14, g.r15,
    ];
    let mut words = vec![r.mask, g.eflags, g.rip];
    words.extend(TRAMPOLINE_REGS.iter().map(|&n| by_number[n as usize]));
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// Writes the trampoline at `at` (TRAMPOLINE_LEN bytes of an executable mapping cpr
/// made in process `pid`) and returns it as a gate.
pub fn install_trampoline(pid: i32, at: RemoteAddr) -> Result<Gate> {
    let code = trampoline_code();
    debug_assert!(code.len() as u64 <= TRAMPOLINE_DATA);
    LAST_DATA.set(None);
    write_mem(pid, at, &code)?;
    Ok(Gate::Trampoline(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_code_ends_before_its_data() {
        let code = trampoline_code();
        assert!(code.len() as u64 <= TRAMPOLINE_DATA);
        // the injected call first, the jump back to the thread's rip before the batch entry
        assert_eq!(code[..2], [0x0f, 0x05]);
        let entry = BATCH_ENTRY as usize;
        assert_eq!(code[entry - 6..entry - 4], [0xff, 0x25]);
        // the batch: its tgkill just before where it stops, then a jump to the code
        // that puts the thread back, just after the first syscall
        let stop = BATCH_STOP as usize;
        assert_eq!(code[stop - 7..stop], [0xb8, 234, 0, 0, 0, 0x0f, 0x05]);
        assert_eq!(code[stop], 0xe9);
        let rel = i32::from_le_bytes(code[stop + 1..stop + 5].try_into().unwrap());
        assert_eq!(stop as i64 + 5 + rel as i64, 2);
        assert_eq!(code.len(), stop + 5);
        let data = trampoline_data(&Resume {
            regs: Regs {
                rip: 7,
                ..zero_regs()
            },
            mask: 1,
        });
        assert_eq!(TRAMPOLINE_DATA + data.len() as u64, TRAMPOLINE_LEN);
    }

    #[test]
    fn batch_signal_is_ignored_and_unblocked() {
        let bit = |s: i32| 1u64 << (s - 1);
        assert_eq!(batch_signal(0, 0, 0, 0), Some(libc::SIGURG));
        // caught or blocked: the next one left at its default
        assert_eq!(
            batch_signal(0, bit(libc::SIGURG), 0, 0),
            Some(libc::SIGWINCH)
        );
        let defaults = bit(libc::SIGURG) | bit(libc::SIGWINCH) | bit(libc::SIGCHLD);
        assert_eq!(batch_signal(0, 0, defaults, 0), None);
        // else one set to SIG_IGN, never a stop signal, SIGCONT or SIGTRAP
        let stops = bit(libc::SIGTSTP) | bit(libc::SIGCONT) | bit(libc::SIGTRAP);
        assert_eq!(batch_signal(stops, defaults, 0, 0), None);
        assert_eq!(
            batch_signal(stops | bit(libc::SIGPIPE), defaults, 0, 0),
            Some(libc::SIGPIPE)
        );
        assert_eq!(
            batch_signal(bit(libc::SIGPIPE), 0, defaults | bit(libc::SIGPIPE), 0),
            None
        );
        // never a real-time signal, even ignored and unblocked (glibc's SIGEV_THREAD
        // helper thread blocks all but 32 and 33, and 32 may be SIG_IGN)
        assert_eq!(batch_signal(bit(32) | bit(40), 0, defaults, 0), None);
        // seccomp filters might refuse the calls that end the batch
        assert_eq!(batch_signal(0, 0, 0, 2), None);
    }

    fn zero_regs() -> Regs {
        crate::engine::ptrace::regs_from_array(&[0; 27])
    }
}
