//! What the kernel says of a TCP or UDP socket through sock_diag netlink (inet_diag), looked up
//! by its addresses: state, queue lengths (for a listening socket: the connections
//! waiting in its accept queue and its backlog) and inode (0 for a connection no
//! descriptor holds yet, waiting in an accept queue).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_req_v2 and struct inet_diag_msg.
const REQ_LEN: usize = 56;
const MSG_LEN: usize = 72;

/// inet_diag's answer for one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetDiag {
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Established: bytes not read; listening: connections waiting to be accepted.
    pub rqueue: u32,
    /// Established: bytes not acknowledged; listening: the backlog.
    pub wqueue: u32,
    pub inode: u32,
    /// The kernel's sk_shutdown (INET_DIAG_SHUTDOWN): 1 receive side shut down, 2 send.
    pub shutdown: u8,
}

/// inet_diag's attribute with the socket's sk_shutdown.
const INET_DIAG_SHUTDOWN: u16 = 8;

fn put_addr(req: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            req.extend_from_slice(&v4.octets());
            req.extend_from_slice(&[0u8; 12]);
        }
        IpAddr::V6(v6) => req.extend_from_slice(&v6.octets()),
    }
}

fn get_addr(b: &[u8], family: u8, port: u16) -> Result<SocketAddr, Errno> {
    let ip: IpAddr = if family as i32 == libc::AF_INET {
        let o: [u8; 4] = b
            .get(..4)
            .ok_or(Errno::EPROTO)?
            .try_into()
            .unwrap_or([0; 4]);
        o.into()
    } else {
        let o: [u8; 16] = b
            .get(..16)
            .ok_or(Errno::EPROTO)?
            .try_into()
            .unwrap_or([0; 16]);
        o.into()
    };
    Ok(SocketAddr::new(ip, port))
}

/// The TCP socket whose own address is `local` and whose peer is `remote` (an
/// unspecified address and port 0 for a listening socket). The kernel answers a lookup
/// that finds no connection with the listening socket of `local`, if there is one: the
/// caller compares what it gets. ENOENT: none.
pub fn tcp_lookup(local: SocketAddr, remote: SocketAddr) -> Result<InetDiag, Errno> {
    lookup(libc::IPPROTO_TCP, local, remote)
}

/// The TCP or UDP (`protocol`) socket of `local` and `remote`, as `tcp_lookup`.
pub fn lookup(protocol: i32, local: SocketAddr, remote: SocketAddr) -> Result<InetDiag, Errno> {
    // for UDP the kernel finds the socket that receives what `src` sends to `dst`
    let (local, remote) = if protocol == libc::IPPROTO_UDP {
        (remote, local)
    } else {
        (local, remote)
    };
    let family = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let nl = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + REQ_LEN);
    req.extend_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.push(family as u8);
    req.push(protocol as u8);
    req.push(0); // no extensions
    req.push(0);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&local.port().to_be_bytes());
    req.extend_from_slice(&remote.port().to_be_bytes());
    put_addr(&mut req, local.ip());
    put_addr(&mut req, remote.ip());
    req.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    // no cookie: look the socket up by its addresses
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    socket::send(nl.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut buf = vec![0u8; 8192];
    let n = socket::recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    parse_reply(&buf[..n])
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Errno> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Errno::EPROTO)
}

fn parse_reply(b: &[u8]) -> Result<InetDiag, Errno> {
    let len = u32_at(b, 0)? as usize;
    let kind = b
        .get(4..6)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or(Errno::EPROTO)?;
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
    let m = &b[NLMSG_HDRLEN..len];
    if m.len() < MSG_LEN {
        return Err(Errno::EPROTO);
    }
    let family = m[0];
    let sport = u16::from_be_bytes([m[4], m[5]]);
    let dport = u16::from_be_bytes([m[6], m[7]]);
    Ok(InetDiag {
        state: m[1],
        local: get_addr(&m[8..24], family, sport)?,
        remote: get_addr(&m[24..40], family, dport)?,
        rqueue: u32_at(m, 56)?,
        wqueue: u32_at(m, 60)?,
        inode: u32_at(m, 68)?,
        shutdown: shutdown_attr(&m[MSG_LEN..]),
    })
}

/// The INET_DIAG_SHUTDOWN attribute among the route attributes after the message (0
/// when absent).
fn shutdown_attr(mut attrs: &[u8]) -> u8 {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_SHUTDOWN && len >= 5 {
            return attrs[4];
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn inode_of(fd: i32) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let link = link.to_str().unwrap();
        link["socket:[".len()..link.len() - 1].parse().unwrap()
    }

    #[test]
    fn a_udp_socket_shows_its_shutdown() {
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        socket::shutdown(a.as_raw_fd(), socket::Shutdown::Write).unwrap();
        let d = lookup(
            libc::IPPROTO_UDP,
            a.local_addr().unwrap(),
            b.local_addr().unwrap(),
        )
        .unwrap();
        assert_eq!(u64::from(d.inode), inode_of(a.as_raw_fd()));
        assert_eq!(d.shutdown, 2);
    }

    #[test]
    fn a_listener_shows_its_waiting_connection_and_backlog() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let c = TcpStream::connect(at).unwrap();
        let unspecified: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let d = tcp_lookup(at, unspecified).unwrap();
        assert_eq!(d.state, 10);
        assert_eq!(d.rqueue, 1);
        assert_eq!(d.wqueue, 128);
        // the waiting connection: established, held by no descriptor
        let w = tcp_lookup(at, c.local_addr().unwrap()).unwrap();
        assert_eq!(
            (w.state, w.inode, w.remote),
            (1, 0, c.local_addr().unwrap())
        );
    }
}
