//! userfaultfd(2) for lazy restart: the structures a restored process is given to
//! register its memory (by injected calls), and the calls the filler makes on the
//! descriptor it took from it. The constants are defined here: Debian 12's headers and
//! the libc crate lack several of them (x86-64 values, from linux/userfaultfd.h). The
//! handshake and registration structures are dirty.rs's, shared with dirty tracking.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

pub use super::dirty::{UFFD_API, UFFDIO_API, UFFDIO_REGISTER, UffdioApi, UffdioRegister};
/// `_IOR(0xaa, 0x02, struct uffdio_range)`.
const UFFDIO_WAKE: u64 = 0x8010_aa02;
/// `_IOWR(0xaa, 0x03, struct uffdio_copy)`.
const UFFDIO_COPY: u64 = 0xc028_aa03;
/// `_IOWR(0xaa, 0x04, struct uffdio_zeropage)`.
const UFFDIO_ZEROPAGE: u64 = 0xc020_aa04;

pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;

const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
const UFFD_EVENT_FORK: u8 = 0x13;
const UFFD_EVENT_REMAP: u8 = 0x14;
const UFFD_EVENT_REMOVE: u8 = 0x15;
const UFFD_EVENT_UNMAP: u8 = 0x16;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct UffdioZeropage {
    start: u64,
    len: u64,
    mode: u64,
    zeropage: i64,
}

/// What the filler reads from a userfaultfd descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A thread waits for the page at this address.
    Fault(u64),
    /// The process forked; the child's descriptor, now open in the reader.
    Fork(i32),
    /// mremap moved `len` bytes from `from` to `to`.
    Remap {
        from: u64,
        to: u64,
        len: u64,
    },
    /// The range was unmapped or its pages dropped (munmap, madvise DONTNEED).
    Remove {
        start: u64,
        end: u64,
    },
    Other,
}

/// SIGKILL to the process of `pidfd` (pidfd_send_signal(2)); errors ignored (it may be
/// gone already).
pub fn kill_pidfd(pidfd: BorrowedFd<'_>) {
    let _ = super::pidfd_signal(pidfd, libc::SIGKILL);
}

/// UFFDIO_COPY of `len` bytes from address `src` of this process to `dst` in the
/// registered process, waking the threads waiting there. Returns the bytes copied, or
/// the error with the bytes copied before it.
pub fn copy(uffd: BorrowedFd<'_>, dst: u64, src: u64, len: u64) -> Result<u64, (Errno, u64)> {
    let mut arg = UffdioCopy {
        dst,
        src,
        len,
        mode: 0,
        copy: 0,
    };
    // SAFETY: the kernel reads `len` bytes at `src` itself (a fault there is EFAULT, not a
    // signal) and writes only `arg.copy`, which lives across the call.
    let rc = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_COPY as _, &raw mut arg) };
    if rc == 0 {
        Ok(arg.copy.max(0) as u64)
    } else {
        Err((Errno::last(), arg.copy.max(0) as u64))
    }
}

/// UFFDIO_ZEROPAGE of `len` bytes at `start`, waking the threads waiting there.
pub fn zeropage(uffd: BorrowedFd<'_>, start: u64, len: u64) -> Result<(), Errno> {
    let mut arg = UffdioZeropage {
        start,
        len,
        mode: 0,
        zeropage: 0,
    };
    // SAFETY: the kernel writes only `arg.zeropage`, which lives across the call.
    let rc = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_ZEROPAGE as _, &raw mut arg) };
    Errno::result(rc).map(drop)
}

/// UFFDIO_WAKE: the threads waiting on `len` bytes at `start` look again.
pub fn wake(uffd: BorrowedFd<'_>, start: u64, len: u64) {
    let arg: [u64; 2] = [start, len];
    // SAFETY: the kernel only reads the 16-byte range structure.
    unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_WAKE as _, &raw const arg) };
}

/// The messages waiting on a non-blocking userfaultfd descriptor (none: empty), at most
/// `max`. An error other than EAGAIN (the process is gone) is returned.
pub fn read_events(uffd: BorrowedFd<'_>, max: usize) -> Result<Vec<Event>, Errno> {
    const MSG: usize = 32;
    let mut buf = vec![0u8; MSG * max.max(1)];
    // SAFETY: the kernel writes at most `buf.len()` bytes into the buffer we own.
    let n = unsafe {
        libc::read(
            uffd.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
        )
    };
    if n < 0 {
        return match Errno::last() {
            Errno::EAGAIN => Ok(Vec::new()),
            e => Err(e),
        };
    }
    let word = |m: &[u8], at: usize| u64::from_ne_bytes(m[at..at + 8].try_into().unwrap_or([0; 8]));
    Ok(buf[..n as usize]
        .chunks_exact(MSG)
        .map(|m| match m[0] {
            UFFD_EVENT_PAGEFAULT => Event::Fault(word(m, 16)),
            UFFD_EVENT_FORK => Event::Fork(word(m, 8) as u32 as i32),
            UFFD_EVENT_REMAP => Event::Remap {
                from: word(m, 8),
                to: word(m, 16),
                len: word(m, 24),
            },
            UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP => Event::Remove {
                start: word(m, 8),
                end: word(m, 16),
            },
            _ => Event::Other,
        })
        .collect())
}

/// poll(2) for input on `fds` for at most `timeout_ms` (-1: no limit); returns which are
/// readable (or hung up).
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: the kernel writes the `revents` of the array we own, of the length given.
    let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if rc <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// Makes a descriptor this process received (a fork event's, or by SCM_RIGHTS) an owned
/// one.
pub fn own_received(fd: i32) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for the reader alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// setsid(2), then a process group of its own is the session's: the filler and its
/// keeper are not in cpr's group, so one signal to that group does not end both.
pub fn new_session() {
    let _ = nix::unistd::setsid();
}
