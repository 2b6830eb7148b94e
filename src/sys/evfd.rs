//! What nix lacks for event objects: signalfd with the kernel's raw 64-bit mask (nix's
//! `SigSet` has no real-time signals), EPOLL_CTL_ADD of a descriptor by number (the
//! image's, which no Rust value owns), the timerfd tick count ioctl, and
//! open_by_handle_at(2) for inotify watches. eventfd, timerfd, epoll instances and
//! inotify come from nix.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

fn owned(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(rc)? as RawFd;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// nix's timerfd clock for a raw clock id (nix has no conversion): EINVAL for a clock
/// timerfd_create(2) does not take, as the kernel would answer.
pub fn timerfd_clock(clockid: i32) -> Result<nix::sys::timerfd::ClockId, Errno> {
    use nix::sys::timerfd::ClockId;
    Ok(match clockid {
        libc::CLOCK_REALTIME => ClockId::CLOCK_REALTIME,
        libc::CLOCK_MONOTONIC => ClockId::CLOCK_MONOTONIC,
        libc::CLOCK_BOOTTIME => ClockId::CLOCK_BOOTTIME,
        libc::CLOCK_REALTIME_ALARM => ClockId::CLOCK_REALTIME_ALARM,
        libc::CLOCK_BOOTTIME_ALARM => ClockId::CLOCK_BOOTTIME_ALARM,
        _ => return Err(Errno::EINVAL),
    })
}

/// TFD_IOC_SET_TICKS: the expirations not yet read (needs CONFIG_CHECKPOINT_RESTORE).
pub fn timerfd_set_ticks(fd: BorrowedFd<'_>, ticks: u64) -> Result<(), Errno> {
    const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
    // SAFETY: the ioctl reads one u64 from a live local.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), TFD_IOC_SET_TICKS, &ticks as *const u64) })
        .map(drop)
}

/// timerfd_gettime(2): the time left until the next expiration, (s, ns). For a periodic
/// timer that has fired, the kernel moves it on to its next period first (the periods
/// missed count as expirations), which its fdinfo does not do.
pub fn timerfd_next(fd: BorrowedFd<'_>) -> Result<(i64, i64), Errno> {
    let mut cur = std::mem::MaybeUninit::<libc::itimerspec>::zeroed();
    // SAFETY: timerfd_gettime writes one struct itimerspec into a live local.
    Errno::result(unsafe { libc::timerfd_gettime(fd.as_raw_fd(), cur.as_mut_ptr()) })?;
    // SAFETY: zero-initialized and filled by the kernel on success.
    let cur = unsafe { cur.assume_init() };
    Ok((cur.it_value.tv_sec, cur.it_value.tv_nsec))
}

/// pidfd_open(2): a descriptor referring to process `pid` (flags: PIDFD_NONBLOCK).
pub fn pidfd_open(pid: i32, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments; a returned descriptor is new and ours.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) })?;
    // SAFETY: the kernel just created this descriptor; nothing else owns the number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// signalfd4(-1, mask, flags) with the kernel's 64-bit mask (bit n-1 = signal n).
pub fn signalfd(mask: u64, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: the kernel reads 8 bytes from a live u64.
    owned(unsafe { libc::syscall(libc::SYS_signalfd4, -1, &mask as *const u64, 8usize, flags) })
}

/// EPOLL_CTL_ADD of the descriptor number `fd` with raw event bits and data. The number
/// is only looked up by the kernel, never closed or kept as ours.
pub fn epoll_add(ep: BorrowedFd<'_>, fd: RawFd, events: u32, data: u64) -> Result<(), Errno> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a live epoll_event the kernel only reads.
    Errno::result(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
        .map(drop)
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
    owned(unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            buf.as_mut_ptr(),
            flags,
        )
    })
}
