//! The event objects nix offers only behind features cpr does not build (eventfd, timerfd,
//! signalfd with a raw mask, epoll with raw event bits, inotify), the timerfd tick count
//! ioctl, and open_by_handle_at(2) for inotify watches.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

fn owned(rc: libc::c_int) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(rc)?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// eventfd2(initval, flags).
pub fn eventfd(initval: u32, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments only.
    owned(unsafe { libc::eventfd(initval, flags) })
}

pub fn timerfd_create(clockid: i32, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments only.
    owned(unsafe { libc::timerfd_create(clockid, flags) })
}

/// timerfd_settime with (seconds, nanoseconds) pairs.
pub fn timerfd_settime(
    fd: BorrowedFd<'_>,
    flags: i32,
    interval: (i64, i64),
    value: (i64, i64),
) -> Result<(), Errno> {
    let its = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: interval.0,
            tv_nsec: interval.1,
        },
        it_value: libc::timespec {
            tv_sec: value.0,
            tv_nsec: value.1,
        },
    };
    // SAFETY: `its` is a live itimerspec the kernel only reads; old value is null.
    Errno::result(unsafe {
        libc::timerfd_settime(fd.as_raw_fd(), flags, &its, std::ptr::null_mut())
    })
    .map(drop)
}

/// TFD_IOC_SET_TICKS: the expirations not yet read (needs CONFIG_CHECKPOINT_RESTORE).
pub fn timerfd_set_ticks(fd: BorrowedFd<'_>, ticks: u64) -> Result<(), Errno> {
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
    // SAFETY: the ioctl reads one u64 from a live local.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS, &ticks as *const u64) })
        .map(drop)
}

/// signalfd4(-1, mask, flags) with the kernel's 64-bit mask (bit n-1 = signal n).
pub fn signalfd(mask: u64, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: the kernel reads 8 bytes from a live u64.
    let rc = unsafe { libc::syscall(libc::SYS_signalfd4, -1, &mask as *const u64, 8usize, flags) };
    owned(Errno::result(rc)? as libc::c_int)
}

pub fn epoll_create1(flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments only.
    owned(unsafe { libc::epoll_create1(flags) })
}

/// EPOLL_CTL_ADD of the descriptor number `fd` with raw event bits and data.
pub fn epoll_add(ep: BorrowedFd<'_>, fd: i32, events: u32, data: u64) -> Result<(), Errno> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a live epoll_event the kernel only reads.
    Errno::result(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
        .map(drop)
}

pub fn inotify_init1(flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments only.
    owned(unsafe { libc::inotify_init1(flags) })
}

pub fn inotify_add_watch(fd: BorrowedFd<'_>, path: &str, mask: u32) -> Result<i32, Errno> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a live NUL-terminated string.
    Errno::result(unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) })
}

pub fn inotify_rm_watch(fd: BorrowedFd<'_>, wd: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments only.
    Errno::result(unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) }).map(drop)
}

/// open_by_handle_at(2): `mount` is any descriptor on the handle's filesystem.
pub fn open_by_handle_at(
    mount: BorrowedFd<'_>,
    handle_type: i32,
    handle: &[u8],
    flags: i32,
) -> Result<OwnedFd, Errno> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut buf = Vec::with_capacity(8 + handle.len());
    buf.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    buf.extend_from_slice(&handle_type.to_ne_bytes());
    buf.extend_from_slice(handle);
    // SAFETY: `buf` is a live file_handle of the size it declares; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            buf.as_mut_ptr(),
            flags,
        )
    };
    owned(Errno::result(rc)? as libc::c_int)
}

/// clock_gettime(2) as (seconds, nanoseconds).
pub fn clock_gettime(clockid: i32) -> Result<(i64, i64), Errno> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes one timespec into a live local.
    Errno::result(unsafe { libc::clock_gettime(clockid, &mut ts) })?;
    Ok((ts.tv_sec, ts.tv_nsec))
}
