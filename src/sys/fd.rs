//! Descriptors by number. The restore child places the image's descriptors at the
//! numbers the image had, so it works with raw numbers that no Rust value owns. The
//! functions here that take a raw number cannot end or hand out the life of a descriptor
//! someone else owns: they duplicate it, set its flags or locks, or (`dup_at`) put a
//! descriptor at a free number. Ending a descriptor goes through ownership (`OwnedFd`,
//! `CloseOnce`).

use std::cell::Cell;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// A descriptor the kernel has just returned, as owned.
fn owned(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(rc)? as RawFd;
    // SAFETY: the kernel just created this descriptor; nothing else owns the number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Puts a duplicate of `from` at number `to`, as dup2(2) does, but never closes a
/// descriptor of another open file: `to` must be free, or already refer to the same open
/// file description as `from` (then only FD_CLOEXEC is cleared on it, which is all that
/// dup2 would change). Anything else at `to` is EBUSY. The restore child places the
/// image's descriptors at their numbers with it; the new number is owned by no Rust value
/// (it is the image's).
///
/// A safe function, unlike a raw dup2: dup2 silently closes whatever is at `to`, which
/// may be a descriptor a Rust value owns (an I/O-safety violation); this never does.
/// Taking a free number is atomic (F_DUPFD from `to` gives `to` itself exactly when it is
/// free), so no other thread can slip a descriptor in between.
pub fn dup_at(from: RawFd, to: RawFd) -> Result<(), Errno> {
    if from == to {
        // dup2(fd, fd) only checks that fd is open
        // SAFETY: integer arguments; F_GETFD reads the descriptor's flags only.
        return Errno::result(unsafe { libc::fcntl(from, libc::F_GETFD) }).map(drop);
    }
    if to < 0 {
        return Err(Errno::EBADF);
    }
    match dup_above(from, to, false) {
        Ok(fd) if fd.as_raw_fd() == to => {
            // the image's from now on: no Rust value owns it
            let _ = fd.into_raw_fd();
            Ok(())
        }
        // `to` is taken (the duplicate landed above it, and closes with `fd`)
        Ok(_) | Err(Errno::EMFILE) => {
            let me = std::process::id() as i32;
            if crate::sys::same_open_file(me, from, me, to)? {
                set_cloexec(to, false)
            } else {
                Err(Errno::EBUSY)
            }
        }
        // dup2's answer for a number beyond RLIMIT_NOFILE
        Err(Errno::EINVAL) => Err(Errno::EBADF),
        Err(e) => Err(e),
    }
}

/// Sets or clears FD_CLOEXEC on a raw descriptor.
pub fn set_cloexec(fd: RawFd, on: bool) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) })
        .map(drop)
}

/// close_range(first, last, 0): closes every open descriptor numbered `first` to `last`
/// (inclusive). ENOSYS before Linux 5.9.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments; closing descriptors no Rust value owns is the caller's
    // intent (those it owns it keeps out of the range).
    Errno::result(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// fcntl(F_DUPFD or F_DUPFD_CLOEXEC): a new descriptor, numbered `min` or above, for
/// the open file that number `fd` refers to. `fd` itself is untouched; a number that
/// is not open is EBADF.
pub fn dup_above(fd: RawFd, min: RawFd, cloexec: bool) -> Result<OwnedFd, Errno> {
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: integer arguments; the result is a new descriptor (owned by `owned`).
    owned(unsafe { libc::fcntl(fd, cmd, min) }.into())
}

/// flock(LOCK_SH or LOCK_EX, non-blocking) on a raw descriptor: EWOULDBLOCK when another
/// open file holds a conflicting lock.
pub fn try_flock(fd: RawFd, exclusive: bool) -> Result<(), Errno> {
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::flock(fd, op | libc::LOCK_NB) }).map(drop)
}

/// fcntl(F_SETLK, or F_OFD_SETLK with `ofd`) on a raw descriptor: EAGAIN or EACCES when
/// a conflicting lock is held.
pub fn set_record_lock(fd: RawFd, lock: &libc::flock, ofd: bool) -> Result<(), Errno> {
    let cmd = if ofd {
        libc::F_OFD_SETLK
    } else {
        libc::F_SETLK
    };
    // SAFETY: the kernel reads one struct flock from a live reference.
    Errno::result(unsafe { libc::fcntl(fd, cmd, lock as *const libc::flock) }).map(drop)
}

/// An owned descriptor that can be closed through a shared reference, once: the restart's
/// status pipes, which each forked restore child closes in its copy of the shared
/// context. Dropping it closes it if still open. Not `Sync`, so no close races a use.
#[derive(Debug)]
pub struct CloseOnce(Cell<RawFd>);

impl CloseOnce {
    pub fn new(fd: OwnedFd) -> CloseOnce {
        CloseOnce(Cell::new(fd.into_raw_fd()))
    }

    /// Closes the descriptor now; later calls do nothing.
    pub fn close(&self) {
        let fd = self.0.replace(-1);
        if fd >= 0 {
            // SAFETY: `self` owned the number (taken from an OwnedFd in `new`) and has
            // just given it up, so it is closed exactly once.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    /// A duplicate (close-on-exec, numbered 3 or above); EBADF once closed.
    pub fn try_clone(&self) -> Result<OwnedFd, Errno> {
        match self.0.get() {
            fd if fd >= 0 => dup_above(fd, 3, true),
            _ => Err(Errno::EBADF),
        }
    }
}

impl Drop for CloseOnce {
    fn drop(&mut self) {
        self.close();
    }
}

/// A duplicate of descriptor `fd` of process `pid` (pidfd_open + pidfd_getfd): the same
/// open file description, so pipe data can be looked at without the process.
pub fn steal_fd(pid: i32, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments; a returned descriptor is new and ours.
    let pidfd = owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    pidfd_getfd(pidfd.as_fd(), fd)
}

/// pidfd_getfd(2): a copy, in cpr, of descriptor `fd` of the process of `pidfd`.
pub fn pidfd_getfd(pidfd: std::os::fd::BorrowedFd<'_>, fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments; a returned descriptor is new and ours.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })
}

/// Bytes waiting in a pipe (FIONREAD).
pub fn pipe_bytes(fd: RawFd) -> Result<usize, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into a live local.
    Errno::result(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) })?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_once_closes_exactly_once() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let num = w.as_raw_fd();
        let c = CloseOnce::new(w);
        let dup = c.try_clone().unwrap();
        c.close();
        assert_eq!(c.try_clone().unwrap_err(), Errno::EBADF);
        c.close();
        drop(c);
        // the duplicate still writes: only the original number was closed
        assert_eq!(nix::unistd::write(&dup, b"x"), Ok(1));
        assert_ne!(dup.as_raw_fd(), num);
        drop(r);
    }

    #[test]
    fn dup_at_takes_a_free_number_or_the_same_file_never_another() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let free = dup_above(r.as_raw_fd(), 200, true).unwrap();
        let n = free.as_raw_fd();
        drop(free);
        dup_at(r.as_raw_fd(), n).unwrap();
        // SAFETY: `dup_at` left number n to no owner; the test takes it, to close it.
        let placed = unsafe { OwnedFd::from_raw_fd(n) };
        // the same open file again: allowed, FD_CLOEXEC cleared as dup2 would
        set_cloexec(n, true).unwrap();
        dup_at(r.as_raw_fd(), n).unwrap();
        let flags = nix::fcntl::fcntl(&placed, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        // another open file there: refused, and it stays open
        assert_eq!(dup_at(w.as_raw_fd(), n).unwrap_err(), Errno::EBUSY);
        let me = std::process::id() as i32;
        assert_eq!(
            crate::sys::same_open_file(me, r.as_raw_fd(), me, n),
            Ok(true)
        );
        assert_eq!(dup_at(-1, n).unwrap_err(), Errno::EBADF);
        assert_eq!(dup_at(r.as_raw_fd(), -1).unwrap_err(), Errno::EBADF);
        drop(placed);
    }

    #[test]
    fn dup_above_gives_a_number_at_least_min() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let d = dup_above(r.as_raw_fd(), 100, true).unwrap();
        assert!(d.as_raw_fd() >= 100);
        assert_eq!(dup_above(-1, 0, false).unwrap_err(), Errno::EBADF);
    }
}
