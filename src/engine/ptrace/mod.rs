//! The ptrace backend: seize, interrupt, wait, registers, signal state, and syscall
//! injection. One safe function per request; `unsafe` stays in this module.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Kind, Result};

pub type Regs = libc::user_regs_struct;

const PTRACE_GETSIGMASK: u32 = 0x420a;
const PTRACE_SETSIGMASK: u32 = 0x420b;
const PTRACE_PEEKSIGINFO: u32 = 0x4209;
const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;
const PTRACE_GET_RSEQ_CONFIGURATION: u32 = 0x420f;
const NT_X86_XSTATE: usize = 0x202;

/// The x86-64 `syscall` instruction followed by `int3`: the injection stub.
pub const SYSCALL_INT3: [u8; 4] = [0x0f, 0x05, 0xcc, 0xcc];

fn raw(req: u32, tid: i32, addr: usize, data: usize) -> Result<i64, Errno> {
    Errno::clear();
    // SAFETY: every caller passes `addr`/`data` as the request documents: integers, or
    // pointers to live buffers of the size the request reads or writes.
    let rc = unsafe { libc::ptrace(req, tid, addr, data) };
    if rc == -1 && Errno::last_raw() != 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

fn subject(tid: i32) -> String {
    format!("thread {tid}")
}

/// PTRACE_SEIZE with options.
pub fn seize(tid: i32, options: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_SEIZE, tid, 0, options as usize).map(drop)
}

pub fn interrupt(tid: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_INTERRUPT, tid, 0, 0).map(drop)
}

pub fn detach(tid: i32, sig: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_DETACH, tid, 0, sig as usize).map(drop)
}

pub fn cont(tid: i32, sig: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_CONT, tid, 0, sig as usize).map(drop)
}

pub fn cont_syscall(tid: i32, sig: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_SYSCALL, tid, 0, sig as usize).map(drop)
}

pub fn set_options(tid: i32, options: i32) -> Result<(), Errno> {
    raw(libc::PTRACE_SETOPTIONS, tid, 0, options as usize).map(drop)
}

pub fn event_msg(tid: i32) -> Result<u64, Errno> {
    let mut msg: libc::c_ulong = 0;
    raw(
        libc::PTRACE_GETEVENTMSG,
        tid,
        0,
        &mut msg as *mut libc::c_ulong as usize,
    )?;
    Ok(msg as u64)
}

pub fn get_regs(tid: i32) -> Result<Regs> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    raw(
        libc::PTRACE_GETREGS,
        tid,
        0,
        &mut regs as *mut Regs as usize,
    )
    .ctx(subject(tid))?;
    Ok(regs)
}

pub fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    raw(libc::PTRACE_SETREGS, tid, 0, regs as *const Regs as usize)
        .ctx(subject(tid))
        .map(drop)
}

/// The FPU/SSE/AVX state (NT_X86_XSTATE), as the kernel lays it out.
pub fn get_xstate(tid: i32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 16384];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    raw(
        libc::PTRACE_GETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )
    .ctx(subject(tid))?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

pub fn set_xstate(tid: i32, xstate: &[u8]) -> Result<()> {
    let mut copy = xstate.to_vec();
    let mut iov = libc::iovec {
        iov_base: copy.as_mut_ptr().cast(),
        iov_len: copy.len(),
    };
    raw(
        libc::PTRACE_SETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut libc::iovec as usize,
    )
    .ctx(subject(tid))
    .map(drop)
}

pub fn get_sigmask(tid: i32) -> Result<u64> {
    let mut mask: u64 = 0;
    raw(PTRACE_GETSIGMASK, tid, 8, &mut mask as *mut u64 as usize).ctx(subject(tid))?;
    Ok(mask)
}

pub fn set_sigmask(tid: i32, mask: u64) -> Result<()> {
    raw(PTRACE_SETSIGMASK, tid, 8, &mask as *const u64 as usize)
        .ctx(subject(tid))
        .map(drop)
}

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// Pending signals with their siginfo (128 bytes each), in queue order: the thread's own,
/// or the process-wide queue with `shared`.
pub fn peek_siginfo(tid: i32, shared: bool) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let args = PeekSiginfoArgs {
            off: out.len() as u64,
            flags: if shared { PTRACE_PEEKSIGINFO_SHARED } else { 0 },
            nr: 32,
        };
        let mut buf = vec![0u8; 128 * 32];
        let n = raw(
            PTRACE_PEEKSIGINFO,
            tid,
            &args as *const PeekSiginfoArgs as usize,
            buf.as_mut_ptr() as usize,
        )
        .ctx(subject(tid))?;
        if n <= 0 {
            return Ok(out);
        }
        for i in 0..n as usize {
            out.push(buf[i * 128..(i + 1) * 128].to_vec());
        }
    }
}

/// rseq registration of a thread (PTRACE_GET_RSEQ_CONFIGURATION).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RseqConfig {
    pub abi_pointer: u64,
    pub abi_size: u32,
    pub signature: u32,
    pub flags: u32,
}

pub fn get_rseq(tid: i32) -> Result<RseqConfig> {
    let mut buf = [0u64; 3];
    let n = raw(
        PTRACE_GET_RSEQ_CONFIGURATION,
        tid,
        24,
        buf.as_mut_ptr() as usize,
    )
    .ctx(subject(tid))?;
    if n < 24 {
        return Ok(RseqConfig::default());
    }
    Ok(RseqConfig {
        abi_pointer: buf[0],
        abi_size: buf[1] as u32,
        signature: (buf[1] >> 32) as u32,
        flags: buf[2] as u32,
    })
}

/// What a waited-for tracee reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// PTRACE_EVENT_STOP (after PTRACE_INTERRUPT, or a group-stop) with its signal.
    EventStop(i32),
    /// Another ptrace event (clone, exit, ...).
    Event(i32),
    /// Signal-delivery-stop.
    Signal(i32),
    /// Syscall entry or exit.
    Syscall,
    Exited(i32),
    Killed(i32),
}

/// Waits for one specific thread to stop or end.
pub fn wait(tid: i32) -> Result<Stop> {
    loop {
        match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
            Ok(status) => return Ok(classify(status)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::errno(subject(tid), e)),
        }
    }
}

fn classify(status: WaitStatus) -> Stop {
    match status {
        WaitStatus::Exited(_, code) => Stop::Exited(code),
        WaitStatus::Signaled(_, sig, _) => Stop::Killed(sig as i32),
        WaitStatus::Stopped(_, sig) => Stop::Signal(sig as i32),
        WaitStatus::PtraceEvent(_, sig, event) if event == libc::PTRACE_EVENT_STOP => {
            Stop::EventStop(sig as i32)
        }
        WaitStatus::PtraceEvent(_, _, event) => Stop::Event(event),
        WaitStatus::PtraceSyscall(_) => Stop::Syscall,
        _ => Stop::Syscall,
    }
}

/// Seizes and interrupts a thread and waits until it is in a ptrace stop. A thread that
/// exits meanwhile is `No such process`.
pub fn seize_and_stop(tid: i32, options: i32) -> Result<()> {
    seize(tid, options).ctx(subject(tid))?;
    interrupt(tid).ctx(subject(tid))?;
    wait_for_stop(tid)
}

/// Waits for the stop that follows PTRACE_INTERRUPT, passing on any signal that arrives
/// first so that nothing is lost.
pub fn wait_for_stop(tid: i32) -> Result<()> {
    loop {
        match wait(tid)? {
            Stop::EventStop(_) => return Ok(()),
            Stop::Signal(sig) => {
                // A signal arrived before the interrupt: deliver it on resume, interrupt again.
                cont(tid, sig).ctx(subject(tid))?;
                interrupt(tid).ctx(subject(tid))?;
            }
            Stop::Event(_) | Stop::Syscall => {
                cont(tid, 0).ctx(subject(tid))?;
                interrupt(tid).ctx(subject(tid))?;
            }
            Stop::Exited(_) | Stop::Killed(_) => {
                return Err(Error::with_detail(
                    subject(tid),
                    Kind::NoSuchProcess,
                    "exited during checkpoint",
                ));
            }
        }
    }
}

/// Reads memory of a traced process through /proc/PID/mem (works on any protection).
pub fn read_mem(pid: i32, addr: u64, len: usize) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).ctx(format!("process {pid}"))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr)
        .ctx(format!("process {pid}: memory at {addr:#x}"))?;
    Ok(buf)
}

/// Writes memory of a traced process through /proc/PID/mem (works on any protection).
pub fn write_mem(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .ctx(format!("process {pid}"))?;
    f.write_all_at(data, addr)
        .ctx(format!("process {pid}: memory at {addr:#x}"))
}

/// How an injected system call reaches the kernel and stops after it.
#[derive(Debug, Clone, Copy)]
pub enum Gate {
    /// `syscall; int3` at this address: one stop per call (SIGTRAP, suppressed).
    Int3(u64),
    /// Any `syscall` instruction at this address: PTRACE_SYSCALL, two stops per call; the
    /// target's code is never written.
    SyscallInsn(u64),
}

/// Runs system calls inside a stopped thread.
pub struct Injector {
    pub tid: i32,
    pub gate: Gate,
    /// Registers the injected calls start from (the thread's own, with orig_rax = -1 so
    /// that the kernel does not restart whatever call the thread was in).
    base: Regs,
}

impl Injector {
    pub fn new(tid: i32, gate: Gate) -> Result<Injector> {
        let mut base = get_regs(tid)?;
        base.orig_rax = u64::MAX;
        Ok(Injector { tid, gate, base })
    }

    /// Runs `nr(args...)` in the thread and returns the raw result (negative errno on
    /// failure).
    pub fn call(&self, nr: i64, args: [u64; 6]) -> Result<i64> {
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
                r.rip = addr;
                set_regs(tid, &r)?;
                cont(tid, 0).ctx(subject(tid))?;
                self.wait_trap(nr)?;
            }
            Gate::SyscallInsn(addr) => {
                r.rip = addr;
                set_regs(tid, &r)?;
                cont_syscall(tid, 0).ctx(subject(tid))?;
                self.wait_syscall_stop(nr)?;
                cont_syscall(tid, 0).ctx(subject(tid))?;
                self.wait_syscall_stop(nr)?;
            }
        }
        let after = get_regs(tid)?;
        Ok(after.rax as i64)
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
                    return Err(Error::with_detail(
                        subject(self.tid),
                        Kind::NoSuchProcess,
                        format!("exited ({c}) in syscall {nr}"),
                    ));
                }
                Stop::Killed(s) => {
                    return Err(Error::with_detail(
                        subject(self.tid),
                        Kind::NoSuchProcess,
                        format!("killed by signal {s} in syscall {nr}"),
                    ));
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
                    return Err(Error::with_detail(
                        subject(self.tid),
                        Kind::NoSuchProcess,
                        format!("ended in syscall {nr}"),
                    ));
                }
            }
        }
    }
}

/// Register file as a plain array, for the statefile.
pub fn regs_to_array(r: &Regs) -> [u64; 27] {
    [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ]
}

pub fn regs_from_array(a: &[u64; 27]) -> Regs {
    Regs {
        r15: a[0],
        r14: a[1],
        r13: a[2],
        r12: a[3],
        rbp: a[4],
        rbx: a[5],
        r11: a[6],
        r10: a[7],
        r9: a[8],
        r8: a[9],
        rax: a[10],
        rcx: a[11],
        rdx: a[12],
        rsi: a[13],
        rdi: a[14],
        orig_rax: a[15],
        rip: a[16],
        cs: a[17],
        eflags: a[18],
        rsp: a[19],
        ss: a[20],
        fs_base: a[21],
        gs_base: a[22],
        ds: a[23],
        es: a[24],
        fs: a[25],
        gs: a[26],
    }
}
