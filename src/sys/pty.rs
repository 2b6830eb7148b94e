//! Pseudo-terminal ioctls nix lacks (or takes only on owned descriptors): the pty's
//! number, lock and packet mode, termios and window size as the kernel's structures.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// Reads one `T` with ioctl `req`.
fn get<T: Default>(fd: RawFd, req: libc::c_ulong) -> Result<T, Errno> {
    let mut v = T::default();
    // SAFETY: each request used here writes exactly one T into a live local.
    Errno::result(unsafe { libc::ioctl(fd, req, &mut v as *mut T) })?;
    Ok(v)
}

/// Sets one `T` with ioctl `req`.
fn set<T>(fd: RawFd, req: libc::c_ulong, v: &T) -> Result<(), Errno> {
    // SAFETY: each request used here reads exactly one T from a live local.
    Errno::result(unsafe { libc::ioctl(fd, req, v as *const T) }).map(drop)
}

/// TIOCGPTN: the number of the pty whose master `fd` is.
pub fn pty_number(fd: RawFd) -> Result<u32, Errno> {
    get::<libc::c_uint>(fd, libc::TIOCGPTN)
}

/// TIOCGPTLCK / TIOCSPTLCK: whether the slave is locked (cannot be opened).
pub fn pty_locked(fd: RawFd) -> Result<bool, Errno> {
    get::<libc::c_int>(fd, libc::TIOCGPTLCK).map(|v| v != 0)
}

pub fn set_pty_locked(fd: RawFd, locked: bool) -> Result<(), Errno> {
    set::<libc::c_int>(fd, libc::TIOCSPTLCK, &(locked as libc::c_int))
}

/// TIOCGPKT / TIOCPKT: packet mode of the master.
pub fn packet_mode(fd: RawFd) -> Result<bool, Errno> {
    get::<libc::c_int>(fd, libc::TIOCGPKT).map(|v| v != 0)
}

pub fn set_packet_mode(fd: RawFd, on: bool) -> Result<(), Errno> {
    set::<libc::c_int>(fd, libc::TIOCPKT, &(on as libc::c_int))
}

/// TCGETS / TCSETS: the kernel's `struct termios`.
pub fn termios(fd: RawFd) -> Result<libc::termios, Errno> {
    let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
    // SAFETY: TCGETS writes one struct termios into a live local.
    Errno::result(unsafe { libc::ioctl(fd, libc::TCGETS, t.as_mut_ptr()) })?;
    // SAFETY: zero-initialized, then filled by the kernel.
    Ok(unsafe { t.assume_init() })
}

pub fn set_termios(fd: RawFd, t: &libc::termios) -> Result<(), Errno> {
    set(fd, libc::TCSETS, t)
}

/// TIOCGWINSZ / TIOCSWINSZ: (rows, columns, x pixels, y pixels).
pub fn window_size(fd: RawFd) -> Result<[u16; 4], Errno> {
    let mut w = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes one struct winsize into a live local.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, w.as_mut_ptr()) })?;
    // SAFETY: zero-initialized, then filled by the kernel.
    let w = unsafe { w.assume_init() };
    Ok([w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel])
}

pub fn set_window_size(fd: RawFd, w: [u16; 4]) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: w[0],
        ws_col: w[1],
        ws_xpixel: w[2],
        ws_ypixel: w[3],
    };
    set(fd, libc::TIOCSWINSZ, &ws)
}

/// TIOCGSID: the session whose controlling terminal `fd` is (ENOTTY: none).
pub fn session_of(fd: RawFd) -> Result<i32, Errno> {
    get::<libc::pid_t>(fd, libc::TIOCGSID)
}

/// TIOCOUTQ: bytes written and not yet sent on.
pub fn output_queued(fd: RawFd) -> Result<usize, Errno> {
    get::<libc::c_int>(fd, libc::TIOCOUTQ).map(|n| n as usize)
}
