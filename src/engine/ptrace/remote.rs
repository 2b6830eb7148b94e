//! Memory of a tracee: addresses in its address space as a type of their own, bulk reads
//! and writes through /proc/PID/mem (which ignores the mappings' protections), and the
//! scratch allocator that places the arguments of injected system calls there.

use std::fmt;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Kind, Result};
use crate::sys::KernelStruct;

/// An address in a tracee's address space: a number to cpr, never dereferenced here. It
/// becomes a bare integer only where an injected call takes it in a register
/// (`as_u64`), or where cpr's own records keep it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RemoteAddr(u64);

impl std::ops::Add<u64> for RemoteAddr {
    type Output = RemoteAddr;

    /// The address `off` bytes further on (a field or an element within one object).
    fn add(self, off: u64) -> RemoteAddr {
        RemoteAddr(self.0 + off)
    }
}

impl std::ops::Sub for RemoteAddr {
    type Output = u64;

    /// How many bytes `self` lies beyond `base` (which must not be above it).
    fn sub(self, base: RemoteAddr) -> u64 {
        self.0 - base.0
    }
}

impl RemoteAddr {
    /// The address as the tracee's syscalls take it (an argument register).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

impl From<u64> for RemoteAddr {
    fn from(addr: u64) -> RemoteAddr {
        RemoteAddr(addr)
    }
}

impl fmt::LowerHex for RemoteAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Refuses a process that shares cpr's own address space (cpr itself, its threads, a
/// `CLONE_VM` child): writing its memory, or running calls in it, would change memory
/// that Rust values of cpr live in behind their backs. cpr never traces such a process;
/// this makes the safe functions here sound whatever their caller passes.
pub(super) fn refuse_own_vm(pid: i32) -> Result<()> {
    if shares_my_vm(pid) {
        return Err(Error::with_detail(
            format!("process {pid}"),
            Kind::PermissionDenied,
            "it shares cpr's own address space",
        ));
    }
    Ok(())
}

/// Whether thread or process `pid` runs in cpr's own address space.
pub(super) fn shares_my_vm(pid: i32) -> bool {
    let me = nix::unistd::getpid();
    pid == me.as_raw()
        || crate::sys::kcmp::same_vm(me, nix::unistd::Pid::from_raw(pid)).unwrap_or(false)
}

/// Reads memory of a traced process through /proc/PID/mem (works on any protection).
pub fn read_mem(pid: i32, addr: RemoteAddr, len: usize) -> Result<Vec<u8>> {
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).ctx(format!("process {pid}"))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr.0)
        .ctx(format!("process {pid}: memory at {addr:#x}"))?;
    Ok(buf)
}

/// Writes memory of a traced process through /proc/PID/mem (works on any protection).
/// A process sharing cpr's address space is refused (`refuse_own_vm`).
pub fn write_mem(pid: i32, addr: RemoteAddr, data: &[u8]) -> Result<()> {
    refuse_own_vm(pid)?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .ctx(format!("process {pid}"))?;
    f.write_all_at(data, addr.0)
        .ctx(format!("process {pid}: memory at {addr:#x}"))
}

/// Memory cpr owns in a tracee (an area it mapped there for the purpose), handed out in
/// slots for the arguments of injected calls: each slot aligned, inside the area, never
/// overlapping another live one. Slots are given back by `frame`: one frame per
/// independent injected sequence, so that the area never fills up over a long restore.
#[derive(Debug)]
pub struct RemoteScratch {
    /// The process whose memory it is (any of its threads runs the calls).
    pid: i32,
    base: RemoteAddr,
    len: u64,
    /// Bytes handed out so far, from `base`.
    used: u64,
    /// /proc/PID/mem, opened at the first use and kept for the next ones (`with_mem`).
    mem: std::cell::RefCell<Option<std::fs::File>>,
}

/// Every slot starts on this boundary: enough for any kernel structure on x86-64.
const SLOT_ALIGN: u64 = 16;

impl RemoteScratch {
    /// The `len` bytes at `base` in process `pid`, which cpr mapped there and nothing
    /// else uses.
    pub fn new(pid: i32, base: RemoteAddr, len: u64) -> RemoteScratch {
        RemoteScratch {
            pid,
            base,
            len,
            used: 0,
            mem: std::cell::RefCell::new(None),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A slot of `len` bytes, aligned; an error (not a panic, not an overlap) when the
    /// area has no room left.
    pub fn alloc(&mut self, len: u64) -> Result<RemoteAddr> {
        let start = self.used.next_multiple_of(SLOT_ALIGN);
        match start.checked_add(len) {
            Some(end) if end <= self.len => {
                self.used = end;
                Ok(self.base + start)
            }
            _ => Err(Error::with_detail(
                format!("process {}", self.pid),
                Kind::NotEnoughSpace,
                format!(
                    "scratch area at {:#x} full: {len} bytes asked, {} of {} in use",
                    self.base, self.used, self.len
                ),
            )),
        }
    }

    /// A slot holding `bytes`.
    pub fn put(&mut self, bytes: &[u8]) -> Result<RemoteAddr> {
        let at = self.alloc(bytes.len() as u64)?;
        self.with_mem(at, |f| f.write_all_at(bytes, at.0))?;
        Ok(at)
    }

    /// Writes `bytes` at `at` in the process, anywhere (memory cpr placed there outside
    /// this area, such as a trampoline), through the same kept file.
    pub(super) fn write_at(&self, at: RemoteAddr, bytes: &[u8]) -> Result<()> {
        self.with_mem(at, |f| f.write_all_at(bytes, at.0))
    }

    /// `op` on /proc/PID/mem, opened (to read and write) at the first use and kept for
    /// the next ones; opened anew, once, when it fails (the process has another address
    /// space since: an exec). A process sharing cpr's address space is refused
    /// (`refuse_own_vm`) at each opening: what a kept file reaches cannot change.
    fn with_mem(
        &self,
        at: RemoteAddr,
        op: impl Fn(&std::fs::File) -> std::io::Result<()>,
    ) -> Result<()> {
        if let Some(f) = self.mem.borrow().as_ref()
            && op(f).is_ok()
        {
            return Ok(());
        }
        refuse_own_vm(self.pid)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{}/mem", self.pid))
            .ctx(format!("process {}", self.pid))?;
        op(&f).ctx(format!("process {}: memory at {at:#x}", self.pid))?;
        self.mem.replace(Some(f));
        Ok(())
    }

    /// A slot holding a kernel structure, as the kernel reads it.
    pub fn put_struct<T: KernelStruct>(&mut self, value: &T) -> Result<RemoteAddr> {
        self.put(value.as_bytes())
    }

    /// Reads `len` bytes of a slot back (what an injected call wrote there). The range
    /// must lie in a slot handed out and still live.
    pub fn read(&self, at: RemoteAddr, len: usize) -> Result<Vec<u8>> {
        let inside = at >= self.base
            && (at - self.base)
                .checked_add(len as u64)
                .is_some_and(|end| end <= self.used);
        if !inside {
            return Err(Error::with_detail(
                format!("process {}", self.pid),
                Kind::InvalidArgument,
                format!("{len} bytes at {at:#x} are not in a live scratch slot"),
            ));
        }
        let buf = std::cell::RefCell::new(vec![0u8; len]);
        self.with_mem(at, |f| f.read_exact_at(&mut buf.borrow_mut(), at.0))?;
        Ok(buf.into_inner())
    }

    /// Everything allocated through the returned frame is given back when it is dropped
    /// (slots allocated before it stay). Addresses of given-back slots must not be used
    /// again: the next frame hands the same bytes out.
    pub fn frame(&mut self) -> ScratchFrame<'_> {
        let mark = self.used;
        ScratchFrame { arena: self, mark }
    }
}

/// The slots of one injected sequence; see `RemoteScratch::frame`.
#[derive(Debug)]
pub struct ScratchFrame<'a> {
    arena: &'a mut RemoteScratch,
    mark: u64,
}

impl std::ops::Deref for ScratchFrame<'_> {
    type Target = RemoteScratch;

    fn deref(&self) -> &RemoteScratch {
        self.arena
    }
}

impl std::ops::DerefMut for ScratchFrame<'_> {
    fn deref_mut(&mut self) -> &mut RemoteScratch {
        self.arena
    }
}

impl Drop for ScratchFrame<'_> {
    fn drop(&mut self) {
        self.arena.used = self.mark;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_disjoint_and_bounded() {
        let mut s = RemoteScratch::new(1, RemoteAddr::from(0x1000), 64);
        let a = s.alloc(3).unwrap();
        let b = s.alloc(20).unwrap();
        assert_eq!(a.as_u64(), 0x1000);
        assert_eq!(b.as_u64(), 0x1010);
        let c = s.alloc(16).unwrap();
        assert_eq!(c.as_u64(), 0x1030);
        let full = s.alloc(1).unwrap_err();
        assert_eq!(full.kind, Kind::NotEnoughSpace);
        assert!(s.alloc(u64::MAX).is_err());
        // a failed allocation takes nothing
        assert_eq!(s.used, 0x40);
    }

    #[test]
    fn a_frame_gives_its_slots_back() {
        let mut s = RemoteScratch::new(1, RemoteAddr::from(0x1000), 4096);
        let outer = s.alloc(8).unwrap();
        {
            let mut f = s.frame();
            let inner = f.alloc(100).unwrap();
            assert!(inner > outer);
            {
                let mut g = f.frame();
                g.alloc(1000).unwrap();
            }
            assert_eq!(f.used, 0x10 + 100);
        }
        assert_eq!(s.used, 8);
        assert_eq!(s.alloc(1).unwrap().as_u64(), 0x1010);
    }

    #[test]
    fn reads_outside_live_slots_are_refused() {
        let mut s = RemoteScratch::new(1, RemoteAddr::from(0x1000), 4096);
        let a = s.alloc(32).unwrap();
        assert!(s.read(a + 16, 32).is_err());
        assert!(s.read(RemoteAddr::from(0xfff), 1).is_err());
        assert!(s.read(a, usize::MAX).is_err());
    }

    #[test]
    fn own_memory_is_refused() {
        let me = std::process::id() as i32;
        let x = 5u64;
        let at = RemoteAddr::from(&raw const x as u64);
        assert!(write_mem(me, at, &[1]).is_err());
        assert_eq!(x, 5);
    }
}
