//! The kernel's TCP repair mode (TCP_REPAIR and its companions), which lets cpr read and
//! set what a TCP connection is made of: sequence numbers, queues, negotiated options,
//! windows. Also the socket filter cpr uses to hold a connection's input still while it
//! is read (a cBPF program that drops every packet), and the socket ioctls for queue sizes.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::sock_diag::{get_int_opt, set_int_opt};

const TCP_MAXSEG: i32 = 2;
const TCP_INFO: i32 = 11;
const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_REPAIR_OPTIONS: i32 = 22;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
/// TCP_REPAIR off, sending a window probe so that the peer learns where we are.
const TCP_REPAIR_OFF: i32 = 0;
const SIOCOUTQ: libc::c_ulong = 0x5411;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;
const SO_GET_FILTER: i32 = libc::SO_ATTACH_FILTER;

/// TCP option codes TCP_REPAIR_OPTIONS takes.
pub const TCPOPT_MSS: u32 = 2;
pub const TCPOPT_WINDOW: u32 = 3;
pub const TCPOPT_SACK_PERM: u32 = 4;
pub const TCPOPT_TIMESTAMP: u32 = 8;
/// tcp_info's tcpi_options bits.
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
pub const TCPI_OPT_SACK: u8 = 2;
pub const TCPI_OPT_WSCALE: u8 = 4;

/// The queue a repair-mode read, write or TCP_QUEUE_SEQ applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    None = 0,
    Recv = 1,
    Send = 2,
}

/// The kernel's struct tcp_repair_window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(C)]
pub struct RepairWindow {
    pub snd_wl1: u32,
    pub snd_wnd: u32,
    pub max_window: u32,
    pub rcv_wnd: u32,
    pub rcv_wup: u32,
}

/// The first fields of the kernel's struct tcp_info, as far as cpr reads them.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct TcpInfoHead {
    state: u8,
    ca_state: u8,
    retransmits: u8,
    probes: u8,
    backoff: u8,
    options: u8,
    /// snd_wscale in the low four bits, rcv_wscale in the high four.
    wscale: u8,
    flags: u8,
}

/// What TCP_INFO says of a connection: its state, negotiated options and window scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
}

fn getsockopt_struct<T: Copy + Default>(fd: RawFd, level: i32, name: i32) -> Result<T, Errno> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes (the size of T) into the live local `v`;
    // T is a plain #[repr(C)] struct of integers, valid for any bytes.
    Errno::result(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut T as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(v)
}

fn setsockopt_bytes<T>(fd: RawFd, level: i32, name: i32, v: &[T]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `size_of_val(v)` bytes from the live slice `v`.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v.as_ptr() as *const libc::c_void,
            std::mem::size_of_val(v) as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// TCP_INFO's state, options and window scales.
pub fn tcp_info(fd: RawFd) -> Result<TcpInfo, Errno> {
    let head: TcpInfoHead = getsockopt_struct(fd, libc::IPPROTO_TCP, TCP_INFO)?;
    Ok(TcpInfo {
        state: head.state,
        options: head.options,
        snd_wscale: head.wscale & 0xf,
        rcv_wscale: head.wscale >> 4,
    })
}

/// Repair mode on, or off (sending a window probe).
pub fn set_repair(fd: RawFd, on: bool) -> Result<(), Errno> {
    set_int_opt(
        fd,
        libc::IPPROTO_TCP,
        TCP_REPAIR,
        if on { 1 } else { TCP_REPAIR_OFF },
    )
}

pub fn set_queue(fd: RawFd, q: Queue) -> Result<(), Errno> {
    set_int_opt(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, q as i32)
}

/// The sequence number of the selected queue: write_seq (send) or rcv_nxt (receive).
pub fn queue_seq(fd: RawFd) -> Result<u32, Errno> {
    get_int_opt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ).map(|v| v as u32)
}

pub fn set_queue_seq(fd: RawFd, seq: u32) -> Result<(), Errno> {
    set_int_opt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, seq as i32)
}

/// The MSS (TCP_MAXSEG).
pub fn mss(fd: RawFd) -> Result<u32, Errno> {
    get_int_opt(fd, libc::IPPROTO_TCP, TCP_MAXSEG).map(|v| v as u32)
}

/// The connection's timestamp clock (TCP_TIMESTAMP), to set it again where it was.
pub fn timestamp(fd: RawFd) -> Result<u32, Errno> {
    get_int_opt(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP).map(|v| v as u32)
}

pub fn set_timestamp(fd: RawFd, ts: u32) -> Result<(), Errno> {
    set_int_opt(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP, ts as i32)
}

/// Negotiated options of a connection made in repair mode: (code, value) pairs.
pub fn set_options(fd: RawFd, opts: &[(u32, u32)]) -> Result<(), Errno> {
    let flat: Vec<u32> = opts.iter().flat_map(|&(c, v)| [c, v]).collect();
    setsockopt_bytes(fd, libc::IPPROTO_TCP, TCP_REPAIR_OPTIONS, &flat)
}

pub fn window(fd: RawFd) -> Result<RepairWindow, Errno> {
    getsockopt_struct(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW)
}

pub fn set_window(fd: RawFd, w: &RepairWindow) -> Result<(), Errno> {
    setsockopt_bytes(
        fd,
        libc::IPPROTO_TCP,
        TCP_REPAIR_WINDOW,
        std::slice::from_ref(w),
    )
}

fn ioctl_int(fd: RawFd, request: libc::c_ulong) -> Result<u32, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: these socket ioctls write one int into a live local.
    Errno::result(unsafe { libc::ioctl(fd, request, &mut n as *mut libc::c_int) })?;
    Ok(n as u32)
}

/// Bytes received and not read (SIOCINQ).
pub fn inq(fd: RawFd) -> Result<u32, Errno> {
    ioctl_int(fd, libc::FIONREAD)
}

/// Bytes written and not acknowledged by the peer (SIOCOUTQ).
pub fn outq(fd: RawFd) -> Result<u32, Errno> {
    ioctl_int(fd, SIOCOUTQ)
}

/// Bytes written and not sent yet (SIOCOUTQNSD).
pub fn unsent(fd: RawFd) -> Result<u32, Errno> {
    ioctl_int(fd, SIOCOUTQNSD)
}

/// Whether the socket has a filter of its own (SO_ATTACH_FILTER or a BPF program).
pub fn has_filter(fd: RawFd) -> Result<bool, Errno> {
    let mut len: libc::socklen_t = 0;
    // SAFETY: with a zero length the kernel writes only `len` (the number of
    // instructions) and no filter; the null pointer is never written through.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_GET_FILTER,
            std::ptr::null_mut(),
            &mut len,
        )
    };
    Errno::result(rc)?;
    Ok(len != 0)
}

/// Attaches a filter that drops every packet arriving for the socket, before TCP sees
/// it: nothing is acknowledged or queued while cpr reads the connection (the peer sends
/// it again later).
pub fn block_input(fd: RawFd) -> Result<(), Errno> {
    // one instruction: BPF_RET | BPF_K with 0, keep no byte
    let drop_all = [libc::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: drop_all.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` and the instruction it points to are live locals; the kernel copies
    // the program during the call.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Removes the filter `block_input` attached.
pub fn unblock_input(fd: RawFd) -> Result<(), Errno> {
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0)
}

/// A new TCP (SOCK_STREAM) or UDP (SOCK_DGRAM) socket of `family`, close-on-exec.
pub fn inet_socket(family: i32, sock_type: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let f = match family {
        libc::AF_INET => AddressFamily::Inet,
        libc::AF_INET6 => AddressFamily::Inet6,
        _ => return Err(Errno::EAFNOSUPPORT),
    };
    let t = match sock_type {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM => SockType::Datagram,
        _ => return Err(Errno::EINVAL),
    };
    socket(f, t, SockFlag::SOCK_CLOEXEC, None)
}

/// SO_LINGER: the linger time in seconds, or -1 when lingering is off.
pub fn linger(fd: RawFd) -> Result<i32, Errno> {
    let l: LingerC = getsockopt_struct(fd, libc::SOL_SOCKET, libc::SO_LINGER)?;
    Ok(if l.onoff != 0 { l.linger } else { -1 })
}

/// Sets SO_LINGER as `linger` gives it.
pub fn set_linger(fd: RawFd, seconds: i32) -> Result<(), Errno> {
    let l = LingerC {
        onoff: (seconds >= 0) as i32,
        linger: seconds.max(0),
    };
    setsockopt_bytes(
        fd,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        std::slice::from_ref(&l),
    )
}

/// The kernel's struct linger.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct LingerC {
    onoff: i32,
    linger: i32,
}
