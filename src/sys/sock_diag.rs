//! UNIX socket facts the kernel gives through sock_diag netlink (unix_diag): type, state,
//! name, peer, queue length and shutdown state of a socket by its inode; and the integer
//! socket options nix has no wrapper for.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_VFS: u32 = 0x02;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_ICONS: u32 = 0x08;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
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
    /// Bytes (stream, seqpacket) waiting in its receive queue; for a listening socket,
    /// the connections waiting to be accepted.
    pub rqueue: u32,
    /// For a listening socket, its backlog.
    pub wqueue: u32,
    /// The inode of the socket file of a socket bound to a path, if any.
    pub vfs_ino: Option<u32>,
    /// For a listening socket, the inodes of the sockets whose connections wait to be
    /// accepted, in the order accept(2) takes them (the connecting sockets: the queued
    /// ends have no inode yet, and their clients see no peer).
    pub icons: Vec<u32>,
    /// The kernel's sk_shutdown: 1 receive side shut down, 2 send side.
    pub shutdown: u8,
}

/// The sock_diag request for UNIX sockets: one by inode, or all (`ino` None).
fn request(ino: Option<u32>) -> Vec<u8> {
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + 24);
    req.extend_from_slice(&((NLMSG_HDRLEN + 24) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = NLM_F_REQUEST | if ino.is_none() { NLM_F_DUMP } else { 0 };
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    req.push(libc::AF_UNIX as u8);
    req.push(0); // protocol
    req.extend_from_slice(&0u16.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&ino.unwrap_or(0).to_ne_bytes());
    let show =
        UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    req.extend_from_slice(&show.to_ne_bytes());
    // no cookie: look the socket up by inode alone
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req
}

fn diag_socket() -> Result<OwnedFd, Errno> {
    socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
}

/// unix_diag's answer for the socket with inode `ino`.
pub fn unix_diag(ino: u32) -> Result<UnixDiag, Errno> {
    let nl = diag_socket()?;
    socket::send(nl.as_raw_fd(), &request(Some(ino)), MsgFlags::empty())?;
    let mut buf = vec![0u8; 1 << 16];
    let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    parse_reply(&buf[..n])
}

/// unix_diag's answer for every UNIX socket of cpr's network namespace.
pub fn unix_diag_all() -> Result<Vec<UnixDiag>, Errno> {
    let nl = diag_socket()?;
    socket::send(nl.as_raw_fd(), &request(None), MsgFlags::empty())?;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = Vec::new();
    loop {
        let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut at = 0;
        while at + NLMSG_HDRLEN <= n {
            let len = u32_at(&buf[..n], at)? as usize;
            if len < NLMSG_HDRLEN || at + len > n {
                return Err(Errno::EPROTO);
            }
            if u16_at(&buf[..n], at + 4)? == NLMSG_DONE {
                return Ok(out);
            }
            out.push(parse_reply(&buf[at..at + len])?);
            at += (len + 3) & !3;
        }
        if n == 0 {
            return Err(Errno::EPROTO);
        }
    }
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
            UNIX_DIAG_NAME => {
                // a path name may come with the NUL that ended it
                let end = match body.first() {
                    Some(0) | None => body.len(),
                    Some(_) => body.iter().position(|&b| b == 0).unwrap_or(body.len()),
                };
                d.name = Some(body[..end].to_vec())
            }
            UNIX_DIAG_VFS => d.vfs_ino = Some(u32_at(body, 0)?),
            UNIX_DIAG_PEER => d.peer = u32_at(body, 0)?,
            UNIX_DIAG_ICONS => {
                d.icons = body
                    .chunks_exact(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            UNIX_DIAG_RQLEN => {
                d.rqueue = u32_at(body, 0)?;
                d.wqueue = u32_at(body, 4)?;
            }
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

/// accept(2) on a listening socket, close-on-exec.
pub fn accept(listener: RawFd) -> Result<OwnedFd, Errno> {
    let fd = socket::accept4(listener, SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
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

    #[test]
    fn a_listener_shows_its_backlog_and_queue_and_the_dump_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let l = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::bind(l.as_raw_fd(), &socket::UnixAddr::new(&path).unwrap()).unwrap();
        socket::listen(&l, socket::Backlog::new(7).unwrap()).unwrap();
        let c = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::connect(c.as_raw_fd(), &socket::UnixAddr::new(&path).unwrap()).unwrap();
        let d = unix_diag(ino_of(&l)).unwrap();
        assert_eq!(d.state, 10);
        assert_eq!(d.wqueue, 7);
        assert_eq!(d.rqueue, 1);
        assert_eq!(d.icons.len(), 1);
        // the queue names the connecting sockets; they see no peer until it is accepted
        assert_eq!(d.icons, vec![ino_of(&c)]);
        assert_eq!(unix_diag(ino_of(&c)).unwrap().peer, 0);
        let file = std::fs::metadata(&path).unwrap().ino() as u32;
        assert_eq!(d.vfs_ino, Some(file));
        let all = unix_diag_all().unwrap();
        assert!(
            all.iter()
                .any(|s| s.ino == ino_of(&l) && s.vfs_ino == Some(file))
        );
        assert!(all.len() > 2);
    }
}
