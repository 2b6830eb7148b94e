//! Syscall injection: running a system call inside a stopped tracee thread, through a
//! gate (an instruction sequence in its memory) and its own registers. The arguments
//! that live in the tracee's memory are placed by `remote::RemoteScratch`.

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::remote::{RemoteAddr, read_mem, refuse_own_vm};
use super::{Gone, Regs, Stop, cont, cont_syscall, get_regs, set_regs, subject, wait};
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

/// Runs system calls inside a stopped thread.
pub struct Injector {
    pub tid: i32,
    pub gate: Gate,
    /// Registers the injected calls start from (the thread's own, with orig_rax = -1 so
    /// that the kernel does not restart whatever call the thread was in).
    base: Regs,
}

impl Injector {
    /// An injector for stopped thread `tid`; a thread sharing cpr's own address space is
    /// refused (what it runs would change cpr's memory).
    pub fn new(tid: i32, gate: Gate) -> Result<Injector> {
        refuse_own_vm(tid)?;
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
                r.rip = addr.as_u64();
                set_regs(tid, &r)?;
                cont(tid, 0).ctx(subject(tid))?;
                self.wait_trap(nr)?;
            }
            Gate::SyscallInsn(addr) => {
                r.rip = addr.as_u64();
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
