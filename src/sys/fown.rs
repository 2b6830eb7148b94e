//! A description's status flags (`F_GETFL`/`F_SETFL`), owner and signal (`F_GETOWN_EX`/
//! `F_SETOWN_EX`, `F_GETSIG`/`F_SETSIG`) and lease (`F_GETLEASE`/`F_SETLEASE`), by raw
//! number (the restore child's descriptors are the image's, owned by no Rust value). All
//! belong to the open file description, so a stolen duplicate (`steal_fd`) reads the
//! original's.

use std::os::fd::RawFd;

use nix::errno::Errno;

// <asm-generic/fcntl.h>; the libc crate leaves these out for glibc targets
const F_SETSIG: libc::c_int = 10;
const F_GETSIG: libc::c_int = 11;
const F_SETOWN_EX: libc::c_int = 15;
const F_GETOWN_EX: libc::c_int = 16;
/// `f_owner_ex.type` for a process group.
pub const F_OWNER_PGRP: i32 = 2;

/// `struct f_owner_ex` of `<fcntl.h>`.
#[repr(C)]
#[derive(Default)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// (F_OWNER_TID / F_OWNER_PID / F_OWNER_PGRP, id) that SIGIO/SIGURG go to; id 0: none.
pub fn get_owner(fd: RawFd) -> Result<(i32, i32), Errno> {
    let mut o = OwnerEx::default();
    // SAFETY: F_GETOWN_EX writes one struct f_owner_ex into a live local.
    Errno::result(unsafe { libc::fcntl(fd, F_GETOWN_EX, &mut o as *mut OwnerEx) })?;
    Ok((o.kind, o.pid))
}

pub fn set_owner(fd: RawFd, kind: i32, pid: i32) -> Result<(), Errno> {
    let o = OwnerEx { kind, pid };
    // SAFETY: F_SETOWN_EX reads one struct f_owner_ex from a live local.
    Errno::result(unsafe { libc::fcntl(fd, F_SETOWN_EX, &o as *const OwnerEx) }).map(drop)
}

/// The signal sent for I/O readiness; 0 is SIGIO.
pub fn get_sig(fd: RawFd) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, F_GETSIG) })
}

pub fn set_sig(fd: RawFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, F_SETSIG, sig) }).map(drop)
}

/// F_RDLCK, F_WRLCK or F_UNLCK: the lease the description holds.
pub fn get_lease(fd: RawFd) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETLEASE) })
}

pub fn set_lease(fd: RawFd, kind: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETLEASE, kind) }).map(drop)
}

/// The description's status flags (F_GETFL), with its access mode.
pub fn get_fl(fd: RawFd) -> Result<i32, Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// Sets the description's status flags (F_SETFL: O_APPEND, O_NONBLOCK, O_ASYNC, ...).
pub fn set_fl(fd: RawFd, flags: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }).map(drop)
}
