//! The ptrace backend: the requests (nix's where nix has them, ours for the few it
//! lacks), typed stops, and a "tracee gone" error. Syscall injection is in `inject`,
//! tracee memory in `remote`. `unsafe` stays in `raw`, its one caller's module.

mod batch;
mod inject;
mod remote;

pub use batch::{Answers, BATCH_RUNNER, Batch, Questions};

pub use inject::{
    Gate, Injector, SYSCALL_INT3, TRAMPOLINE_LEN, batch_signal, checkpoint_gate,
    install_trampoline, remove_vdso_trampoline, syscall_gate,
};
pub use remote::{RemoteAddr, RemoteScratch, ScratchFrame, read_mem, write_mem};

use std::ffi::c_void;
use std::ptr::{null_mut, without_provenance_mut};

use nix::errno::Errno;
use nix::sys::ptrace::{self as np, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Kind, Result};

pub type Regs = libc::user_regs_struct;

// Requests and values nix does not have.
const PTRACE_GETSIGMASK: u32 = 0x420a;
const PTRACE_SETSIGMASK: u32 = 0x420b;
const PTRACE_PEEKSIGINFO: u32 = 0x4209;
const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;
const PTRACE_GET_RSEQ_CONFIGURATION: u32 = 0x420f;
const NT_X86_XSTATE: usize = 0x202;
const PTRACE_SECCOMP_GET_FILTER: u32 = 0x420c;
const PTRACE_SECCOMP_GET_METADATA: u32 = 0x420d;
const PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG: u32 = 0x4211;

/// ptrace(2) for the requests nix lacks. Returns the kernel's result (PEEK* style
/// requests return data, so -1 is an error only when errno was set).
///
/// # Safety
/// `addr` and `data` must be what request `req` expects: plain integers carried in the
/// pointer (use `without_provenance_mut`), or pointers to live memory of the size and
/// layout that the request reads or writes, valid for the whole call.
unsafe fn raw(req: u32, tid: i32, addr: *mut c_void, data: *mut c_void) -> Result<i64, Errno> {
    Errno::clear();
    // SAFETY: the caller upholds this function's contract for `addr` and `data`.
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

fn pid(tid: i32) -> Pid {
    Pid::from_raw(tid)
}

/// A tracee that ended (exited or was killed) while cpr waited for it or worked in it.
/// It becomes the IRIX "No such process" error about the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub tid: i32,
    /// How and when it ended, e.g. "exited during checkpoint".
    pub how: String,
}

impl Gone {
    pub fn new(tid: i32, how: impl Into<String>) -> Gone {
        Gone {
            tid,
            how: how.into(),
        }
    }
}

impl From<Gone> for Error {
    fn from(g: Gone) -> Error {
        Error::with_detail(subject(g.tid), Kind::NoSuchProcess, g.how)
    }
}

/// A signal number as nix takes it: 0 is none. `Err` for the real-time signals, which
/// nix's `Signal` does not have.
fn nix_signal(sig: i32) -> Result<Option<Signal>, Errno> {
    if sig == 0 {
        Ok(None)
    } else {
        Signal::try_from(sig).map(Some)
    }
}

/// A resume request with a signal to deliver: nix's, or ours for real-time signals.
fn resume(
    tid: i32,
    sig: i32,
    req: u32,
    with_nix: fn(Pid, Option<Signal>) -> nix::Result<()>,
) -> Result<(), Errno> {
    match nix_signal(sig) {
        Ok(s) => with_nix(pid(tid), s),
        // SAFETY: the resume requests take no address and the signal number as data.
        Err(_) => {
            unsafe { raw(req, tid, null_mut(), without_provenance_mut(sig as usize)) }.map(drop)
        }
    }
}

/// PTRACE_SEIZE with options. Every other request needs a thread seized here, so this
/// is where a thread running in cpr's own address space (a `CLONE_VM` child; the
/// kernel already refuses cpr's own threads) is turned away, with EPERM: setting its
/// registers would run arbitrary code on cpr's memory, which the safe functions of this
/// module must not allow.
pub fn seize(tid: i32, options: i32) -> Result<(), Errno> {
    if remote::shares_my_vm(tid) {
        return Err(Errno::EPERM);
    }
    np::seize(pid(tid), Options::from_bits_retain(options))
}

/// PTRACE_SETOPTIONS: `options` replace those the thread was seized with.
pub fn set_options(tid: i32, options: i32) -> Result<()> {
    np::setoptions(pid(tid), Options::from_bits_retain(options)).ctx(subject(tid))
}

/// The classic BPF program of seccomp filter `index` of a stopped thread (0: the
/// oldest), as the kernel keeps it: 8 bytes (struct sock_filter) per instruction.
/// Needs CAP_SYS_ADMIN.
pub fn seccomp_filter(tid: i32, index: u64) -> Result<Vec<u8>> {
    let at = without_provenance_mut(index as usize);
    // SAFETY: a null buffer asks for the instruction count only; nothing is written.
    let count = unsafe { raw(PTRACE_SECCOMP_GET_FILTER, tid, at, null_mut()) }
        .ctx(format!("{}: seccomp filter {index}", subject(tid)))? as usize;
    let mut prog = vec![0u8; count * 8];
    // SAFETY: `prog` holds `count` struct sock_filter (8 bytes each), what the kernel
    // writes for this filter, whose program cannot change (filters are immutable).
    let n = unsafe { raw(PTRACE_SECCOMP_GET_FILTER, tid, at, prog.as_mut_ptr().cast()) }
        .ctx(format!("{}: seccomp filter {index}", subject(tid)))? as usize;
    prog.truncate(n.min(count) * 8);
    Ok(prog)
}

/// The SECCOMP_FILTER_FLAG_* of seccomp filter `index` of a stopped thread that the
/// kernel reports (SECCOMP_FILTER_FLAG_LOG). Needs CAP_SYS_ADMIN.
pub fn seccomp_flags(tid: i32, index: u64) -> Result<u64> {
    // struct seccomp_metadata: filter_off in, flags out
    let mut meta = [index, 0u64];
    // SAFETY: `addr` is the size of `meta`, `data` points to it, live for the call.
    unsafe {
        raw(
            PTRACE_SECCOMP_GET_METADATA,
            tid,
            without_provenance_mut(std::mem::size_of_val(&meta)),
            meta.as_mut_ptr().cast(),
        )
    }
    .ctx(format!("{}: seccomp filter {index} flags", subject(tid)))?;
    Ok(meta[1])
}

pub fn interrupt(tid: i32) -> Result<(), Errno> {
    np::interrupt(pid(tid))
}

pub fn detach(tid: i32, sig: i32) -> Result<(), Errno> {
    resume(tid, sig, libc::PTRACE_DETACH, np::detach)
}

pub fn cont(tid: i32, sig: i32) -> Result<(), Errno> {
    resume(tid, sig, libc::PTRACE_CONT, np::cont)
}

pub fn cont_syscall(tid: i32, sig: i32) -> Result<(), Errno> {
    resume(tid, sig, libc::PTRACE_SYSCALL, np::syscall)
}

pub fn get_regs(tid: i32) -> Result<Regs> {
    np::getregs(pid(tid)).ctx(subject(tid))
}

pub fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    np::setregs(pid(tid), *regs).ctx(subject(tid))
}

/// PTRACE_GETREGSET / SETREGSET of NT_X86_XSTATE through one iovec over `buf`; returns
/// the length the kernel used.
fn xstate_request(req: u32, tid: i32, buf: &mut [u8]) -> Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: addr is the note type (an integer); data points to a live iovec describing
    // `buf`, which the kernel reads or writes within its length.
    unsafe {
        raw(
            req,
            tid,
            without_provenance_mut(NT_X86_XSTATE),
            (&raw mut iov).cast(),
        )
    }
    .ctx(subject(tid))?;
    Ok(iov.iov_len)
}

/// The FPU/SSE/AVX state (NT_X86_XSTATE), as the kernel lays it out.
pub fn get_xstate(tid: i32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 16384];
    let len = xstate_request(libc::PTRACE_GETREGSET, tid, &mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

pub fn set_xstate(tid: i32, xstate: &[u8]) -> Result<()> {
    let mut copy = xstate.to_vec();
    xstate_request(libc::PTRACE_SETREGSET, tid, &mut copy).map(drop)
}

pub fn get_sigmask(tid: i32) -> Result<u64> {
    let mut mask: u64 = 0;
    // SAFETY: addr is the mask size (8, an integer); data points to a live u64.
    unsafe {
        raw(
            PTRACE_GETSIGMASK,
            tid,
            without_provenance_mut(8),
            (&raw mut mask).cast(),
        )
    }
    .ctx(subject(tid))?;
    Ok(mask)
}

/// The mask a thread has while cpr's injected calls run in it: every signal blocked but
/// SIGTRAP, which the stub's int3 forces (the kernel resets the handler of a forced
/// signal that is blocked to SIG_DFL: the program's SIGTRAP handler would be lost).
pub const ALL_BUT_SIGTRAP: u64 = !(1 << (libc::SIGTRAP - 1));

pub fn set_sigmask(tid: i32, mask: u64) -> Result<()> {
    // SAFETY: addr is the mask size (8, an integer); data points to a live u64 that the
    // kernel only reads.
    unsafe {
        raw(
            PTRACE_SETSIGMASK,
            tid,
            without_provenance_mut(8),
            (&raw const mask).cast_mut().cast(),
        )
    }
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
        // SAFETY: addr points to live PeekSiginfoArgs the kernel reads; data to a buffer of
        // `nr` siginfos (128 bytes each) that it writes.
        let n = unsafe {
            raw(
                PTRACE_PEEKSIGINFO,
                tid,
                (&raw const args).cast_mut().cast(),
                buf.as_mut_ptr().cast(),
            )
        }
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
    // SAFETY: addr is the buffer size (24, an integer); data points to 24 live bytes
    // that the kernel writes.
    let n = unsafe {
        raw(
            PTRACE_GET_RSEQ_CONFIGURATION,
            tid,
            without_provenance_mut(24),
            buf.as_mut_ptr().cast(),
        )
    }
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

/// Whether syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH) is on in thread `tid`,
/// which must be stopped by cpr; `None` where it cannot be told (a kernel before 6.2, a
/// thread cpr does not trace).
pub fn syscall_user_dispatch_on(tid: i32) -> Option<bool> {
    // struct ptrace_sud_config: mode, selector, offset, len
    let mut config = [0u64; 4];
    // SAFETY: addr is the struct size (32, an integer); data points to 32 live bytes
    // that the kernel writes.
    let rc = unsafe {
        raw(
            PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG,
            tid,
            without_provenance_mut(std::mem::size_of_val(&config)),
            config.as_mut_ptr().cast(),
        )
    };
    rc.ok().map(|_| config[0] != 0)
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

/// Seizes and interrupts a thread and waits until it is in a ptrace stop; returns that
/// stop's signal (see `wait_for_stop`). A thread that exits meanwhile is `No such
/// process`.
pub fn seize_and_stop(tid: i32, options: i32) -> Result<i32> {
    seize_and_interrupt(tid, options)?;
    wait_for_stop(tid)
}

/// Seizes and interrupts a thread without waiting for its stop (`wait_for_stop`): many
/// threads interrupted first stop side by side.
pub fn seize_and_interrupt(tid: i32, options: i32) -> Result<()> {
    seize(tid, options).ctx(subject(tid))?;
    interrupt(tid).ctx(subject(tid))
}

/// Waits for the stop that follows PTRACE_INTERRUPT, passing on any signal that arrives
/// first so that nothing is lost. Returns the stop's signal: SIGTRAP for a thread that
/// was running, the stop signal (SIGSTOP, SIGTSTP, ...) for one stopped by job control.
pub fn wait_for_stop(tid: i32) -> Result<i32> {
    loop {
        match wait(tid)? {
            Stop::EventStop(sig) => return Ok(sig),
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
                return Err(Gone::new(tid, "exited during checkpoint").into());
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
