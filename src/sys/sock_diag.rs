//! UNIX socket facts the kernel gives through sock_diag netlink (unix_diag): type, state,
//! name, peer, queue length and shutdown state of a socket by its inode; and the integer
//! socket options nix has no wrapper for.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
const NLMSG_HDRLEN: usize = 16;
const UNIX_DIAG_MSG_LEN: usize = 16;

/// What unix_diag says about one UNIX socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnixDiag {
    pub ino: u32,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub sock_type: u8,
    /// The TCP_* state the kernel keeps (1 connected, 7 unconnected, 10 listening).
    pub state: u8,
    /// The name it is bound to (abstract names start with a NUL), if any.
    pub name: Option<Vec<u8>>,
    /// The inode of its peer, 0 if none.
    pub peer: u32,
    /// Bytes (stream, seqpacket) waiting in its receive queue.
    pub rqueue: u32,
    /// The kernel's sk_shutdown: 1 receive side shut down, 2 send side.
    pub shutdown: u8,
}

/// unix_diag's answer for the socket with inode `ino`.
pub fn unix_diag(ino: u32) -> Result<UnixDiag, Errno> {
    let nl = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + 24);
    req.extend_from_slice(&((NLMSG_HDRLEN + 24) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    req.push(libc::AF_UNIX as u8);
    req.push(0); // protocol
    req.extend_from_slice(&0u16.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&ino.to_ne_bytes());
    let show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
    req.extend_from_slice(&show.to_ne_bytes());
    // no cookie: look the socket up by inode alone
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    socket::send(nl.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut buf = vec![0u8; 8192];
    let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    parse_reply(&buf[..n])
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, Errno> {
    b.get(at..at + 2)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or(Errno::EPROTO)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Errno> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Errno::EPROTO)
}

fn parse_reply(b: &[u8]) -> Result<UnixDiag, Errno> {
    let len = u32_at(b, 0)? as usize;
    let kind = u16_at(b, 4)?;
    if len > b.len() || len < NLMSG_HDRLEN {
        return Err(Errno::EPROTO);
    }
    if kind == NLMSG_ERROR {
        let err = u32_at(b, NLMSG_HDRLEN)? as i32;
        return Err(Errno::from_raw(-err));
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(Errno::EPROTO);
    }
    let msg = &b[NLMSG_HDRLEN..len];
    if msg.len() < UNIX_DIAG_MSG_LEN {
        return Err(Errno::EPROTO);
    }
    let mut d = UnixDiag {
        sock_type: msg[1],
        state: msg[2],
        ino: u32_at(msg, 4)?,
        ..UnixDiag::default()
    };
    let mut at = UNIX_DIAG_MSG_LEN;
    while at + 4 <= msg.len() {
        let alen = u16_at(msg, at)? as usize;
        let atype = u16_at(msg, at + 2)? & 0x3fff;
        if alen < 4 || at + alen > msg.len() {
            return Err(Errno::EPROTO);
        }
        let body = &msg[at + 4..at + alen];
        match atype {
            UNIX_DIAG_NAME => d.name = Some(body.to_vec()),
            UNIX_DIAG_PEER => d.peer = u32_at(body, 0)?,
            UNIX_DIAG_RQLEN => d.rqueue = u32_at(body, 0)?,
            UNIX_DIAG_SHUTDOWN => d.shutdown = *body.first().ok_or(Errno::EPROTO)?,
            _ => {}
        }
        at += (alen + 3) & !3;
    }
    Ok(d)
}

/// getsockopt(2) of an int option.
pub fn get_int_opt(fd: RawFd, level: i32, name: i32) -> Result<i32, Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local `v`.
    Errno::result(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    })?;
    Ok(v)
}

/// setsockopt(2) of an int option.
pub fn set_int_opt(fd: RawFd, level: i32, name: i32, v: i32) -> Result<(), Errno> {
    // SAFETY: the kernel reads `size_of::<c_int>()` bytes from the live local `v`.
    Errno::result(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A new socketpair of `sock_type`, close-on-exec.
pub fn unix_pair(sock_type: i32) -> Result<(OwnedFd, OwnedFd), Errno> {
    let t = match sock_type {
        libc::SOCK_STREAM => SockType::Stream,
        libc::SOCK_DGRAM => SockType::Datagram,
        libc::SOCK_SEQPACKET => SockType::SeqPacket,
        _ => return Err(Errno::EINVAL),
    };
    socket::socketpair(AddressFamily::Unix, t, None, SockFlag::SOCK_CLOEXEC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn ino_of(fd: &OwnedFd) -> u32 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino() as u32
    }

    #[test]
    fn a_socketpair_is_seen_with_its_peer_and_queue() {
        let (a, b) = unix_pair(libc::SOCK_SEQPACKET).unwrap();
        socket::send(b.as_raw_fd(), b"hello", MsgFlags::empty()).unwrap();
        socket::shutdown(b.as_raw_fd(), socket::Shutdown::Write).unwrap();
        let d = unix_diag(ino_of(&a)).unwrap();
        assert_eq!(d.sock_type as i32, libc::SOCK_SEQPACKET);
        assert_eq!(d.peer, ino_of(&b));
        assert_eq!(d.rqueue, 5);
        assert_eq!(d.name, None);
        assert_eq!(d.shutdown, 1);
    }
}
