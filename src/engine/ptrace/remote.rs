//! Memory of a tracee: addresses in its address space as a type of their own, and bulk
//! reads and writes through /proc/PID/mem (which ignores the mappings' protections).

use std::fmt;
use std::os::unix::fs::FileExt;

use crate::error::{Context, Result};

/// An address in a tracee's address space: a number to cpr, never dereferenced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RemoteAddr(pub u64);

impl std::ops::Add<u64> for RemoteAddr {
    type Output = RemoteAddr;

    /// The address `off` bytes further on.
    fn add(self, off: u64) -> RemoteAddr {
        RemoteAddr(self.0 + off)
    }
}

impl RemoteAddr {
    /// The address as the tracee's syscalls take it (an argument register).
    pub fn get(self) -> u64 {
        self.0
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

/// Reads memory of a traced process through /proc/PID/mem (works on any protection).
pub fn read_mem(pid: i32, addr: impl Into<RemoteAddr>, len: usize) -> Result<Vec<u8>> {
    let addr = addr.into();
    let f = std::fs::File::open(format!("/proc/{pid}/mem")).ctx(format!("process {pid}"))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr.0)
        .ctx(format!("process {pid}: memory at {addr:#x}"))?;
    Ok(buf)
}

/// Writes memory of a traced process through /proc/PID/mem (works on any protection).
pub fn write_mem(pid: i32, addr: impl Into<RemoteAddr>, data: &[u8]) -> Result<()> {
    let addr = addr.into();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .ctx(format!("process {pid}"))?;
    f.write_all_at(data, addr.0)
        .ctx(format!("process {pid}: memory at {addr:#x}"))
}
