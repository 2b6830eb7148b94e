//! TCP and UDP sockets over IPv4 and IPv6. Dump: each socket is read through cpr's own
//! descriptor of it (pidfd_getfd): addresses, state, options. Once every process is read
//! (`collect`), each connection is matched with its peer among the checkpoint's sockets;
//! a peer outside goes by the SOCKET policy (REFUSE, REPAIR, RECONNECT, CLOSE). A TCP
//! connection restored as it was (both ends in the set, or REPAIR) is read in the
//! kernel's repair mode with its input held by a drop-everything socket filter, so
//! nothing changes while it is read: sequence numbers, windows, negotiated options, the
//! data received and not read, and the data written and not acknowledged. A connection
//! waiting in the accept queue of a listening socket of the checkpoint comes back as a
//! new connection from its client into that queue. Restart: cpr makes every socket
//! (`open_all`) before the processes, which inherit them; connections stay in repair
//! mode until every process is ready (`Repairing::finish`). At the end of a checkpoint
//! (`NetLock::finish`), a process that goes on gets its connections back out of repair
//! mode; one that ends closes them in repair mode, which sends nothing to the peer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, SockaddrStorage};
use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::{Member, ProcessFds, SharedFile};
use super::sockets::SocketFd;
use crate::attrfile::{ProcessPolicies, SocketAction};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::inet_diag;
use crate::sys::sock_diag::{get_int_opt, set_int_opt};
use crate::sys::tcp_repair::{self as repair, Queue};

/// The kernel's TCP states cpr meets.
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;
/// Largest datagram or queue cpr reads.
const PEEK_BUFFER: usize = 1 << 20;
const MAX_QUEUE: usize = 64 << 20;

/// What restart makes of a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// Not connected: made again, bound to its address if it had one.
    Unconnected,
    /// Listening with its backlog.
    Listening { backlog: u32 },
    /// A UDP socket connected to `peer`.
    Connected,
    /// A TCP connection made again as it was, in repair mode; `outside`: its peer is not
    /// in the checkpoint (SOCKET REPAIR).
    Repaired { outside: bool },
    /// The client of a connection waiting in the accept queue of the checkpoint's
    /// listening socket `listener`: connected again into that queue.
    Waiting { listener: u64 },
    /// A new socket connected to the same address (SOCKET RECONNECT).
    Reconnect,
    /// A socket whose peer has gone (SOCKET CLOSE): reads give end of file.
    Closed,
}

/// One integer option: level, name, value.
pub type SockOpt = (i32, i32, i32);

/// A TCP connection as repair mode reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpConn {
    /// write_seq: the sequence number after the last byte written.
    pub snd_seq: u32,
    /// rcv_nxt: the sequence number after the last byte received.
    pub rcv_seq: u32,
    /// Bytes received and not read; written and not acknowledged; of those, not sent.
    pub inq: u32,
    pub outq: u32,
    pub unsent: u32,
    pub mss: u32,
    /// tcp_info's options bits (timestamps 1, SACK 2, window scaling 4).
    pub tcp_options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub timestamp: u32,
    pub window: repair::RepairWindow,
}

/// A datagram waiting in a UDP socket: who sent it and its length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datagram {
    pub from: SocketAddr,
    pub len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InetSocketRecord {
    pub ino: u64,
    /// AF_INET or AF_INET6; SOCK_STREAM (TCP) or SOCK_DGRAM (UDP).
    pub family: i32,
    pub sock_type: i32,
    /// SO_PROTOCOL (for a socket of another family under SOCKET CLOSE).
    #[serde(default)]
    pub protocol: i32,
    /// Its own address, if bound; its peer's, if connected.
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub how: Disposition,
    pub options: Vec<SockOpt>,
    pub tcp: Option<TcpConn>,
    #[serde(default)]
    pub datagrams: Vec<Datagram>,
    /// A UDP socket's sk_shutdown (1 receive side shut down, 2 send side).
    #[serde(default)]
    pub shutdown: u8,
    /// Statefile file with the receive then send queue (TCP) or the datagrams (UDP).
    pub data: Option<String>,
}

/// Options saved and set again, each (level, name): those a program sets before bind
/// first.
fn option_names(family: i32, sock_type: i32) -> Vec<(i32, i32)> {
    let mut v = vec![
        (libc::SOL_SOCKET, libc::SO_REUSEADDR),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (libc::SOL_SOCKET, libc::SO_BROADCAST),
        (libc::SOL_SOCKET, libc::SO_OOBINLINE),
        (libc::SOL_SOCKET, libc::SO_PRIORITY),
        (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
        (libc::SOL_SOCKET, libc::SO_SNDBUF),
        (libc::SOL_SOCKET, libc::SO_RCVBUF),
        (libc::SOL_SOCKET, libc::SO_LINGER),
    ];
    if family == libc::AF_INET6 {
        v.insert(0, (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY));
        v.push((libc::IPPROTO_IPV6, libc::IPV6_TCLASS));
    } else {
        v.push((libc::IPPROTO_IP, libc::IP_TOS));
    }
    if sock_type == libc::SOCK_STREAM {
        v.extend([
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
        ]);
    }
    v
}

/// An option's value (SO_LINGER: its seconds, -1 off).
fn get_opt(fd: RawFd, level: i32, name: i32) -> std::result::Result<i32, Errno> {
    if (level, name) == (libc::SOL_SOCKET, libc::SO_LINGER) {
        return repair::linger(fd);
    }
    get_int_opt(fd, level, name)
}

fn set_opt(fd: RawFd, level: i32, name: i32, v: i32) -> std::result::Result<(), Errno> {
    if (level, name) == (libc::SOL_SOCKET, libc::SO_LINGER) {
        return repair::set_linger(fd, v);
    }
    set_int_opt(fd, level, name, v)
}

fn is_buffer(level: i32, name: i32) -> bool {
    level == libc::SOL_SOCKET && (name == libc::SO_SNDBUF || name == libc::SO_RCVBUF)
}

fn proto_name(sock_type: i32) -> &'static str {
    if sock_type == libc::SOCK_STREAM {
        "tcp"
    } else {
        "udp"
    }
}

/// The address text of the SOCKET policy: `tcp:HOST:PORT`, IPv6 hosts in brackets.
pub fn address_text(sock_type: i32, addr: &SocketAddr) -> String {
    format!("{}:{addr}", proto_name(sock_type))
}

fn sockaddr_of(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::new(IpAddr::V4(v4.ip()), v4.port()));
    }
    let v6 = s.as_sockaddr_in6()?;
    let ip = v6.ip();
    // a v4-mapped peer of an IPv6 socket is the IPv4 address it is
    Some(SocketAddr::new(IpAddr::V6(ip), v6.port()))
}

fn local_of(fd: RawFd) -> Option<SocketAddr> {
    let a = socket::getsockname::<SockaddrStorage>(fd).ok()?;
    let a = sockaddr_of(&a)?;
    (a.port() != 0 || !a.ip().is_unspecified()).then_some(a)
}

fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    let a = socket::getpeername::<SockaddrStorage>(fd).ok()?;
    sockaddr_of(&a)
}

fn is_inet(family: i32) -> bool {
    family == libc::AF_INET || family == libc::AF_INET6
}

/// The address by which the SOCKET policy names a socket of another family
/// (`netlink:PROTOCOL`, `packet:PROTOCOL`): only `"*"` or a block's default match it.
fn other_address(family: i32, protocol: i32) -> String {
    format!(
        "{}:{protocol}",
        super::sockets::family_name(family).replace(' ', "-")
    )
}

/// Whether a socket of a family cpr does not restore (netlink, packet, ...) is let
/// through because the SOCKET policy says CLOSE: it comes back as a socket whose peer
/// has gone.
pub fn closes_other(s: &SocketFd, family: i32, policies: &ProcessPolicies) -> bool {
    let protocol = get_int_opt(s.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PROTOCOL);
    protocol.is_ok_and(|p| policies.socket_action(&other_address(family, p)) == SocketAction::Close)
}

/// The record of an internet socket descriptor (sockets.rs sends them here): TCP or UDP;
/// its state is read once every process is (`collect`). Also a socket of another family
/// under SOCKET CLOSE (`closes_other`).
pub fn dump(s: &SocketFd, _policies: &ProcessPolicies) -> Result<FdRecord> {
    let fd = s.sock.as_raw_fd();
    let family = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ctx(s.who())?;
    if !is_inet(family) {
        return Ok(FdRecord::object(
            s.fd,
            FdKind::InetSocket {
                ino: s.ino,
                disposition: None,
            },
            s.link,
            s.flags,
            s.cloexec,
        ));
    }
    let protocol = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).ctx(s.who())?;
    let t = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_TYPE).ctx(s.who())?;
    let ok = matches!(
        (t, protocol),
        (libc::SOCK_STREAM, libc::IPPROTO_TCP) | (libc::SOCK_DGRAM, libc::IPPROTO_UDP)
    );
    if !ok {
        return Err(s.not_safe(&format!(
            "an internet socket of type {} and protocol {protocol}",
            super::sockets::type_name(t)
        )));
    }
    Ok(FdRecord::object(
        s.fd,
        FdKind::InetSocket {
            ino: s.ino,
            disposition: None,
        },
        s.link,
        s.flags,
        s.cloexec,
    ))
}

/// What `plan` learns of one socket from its descriptor, before anything is locked.
struct Seen {
    ino: u64,
    pid: i32,
    fd: i32,
    link: String,
    sock: OwnedFd,
    family: i32,
    sock_type: i32,
    protocol: i32,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    state: u8,
    how: Disposition,
    /// Every process holding it.
    holders: Vec<i32>,
    /// Read before repair mode, which changes SO_REUSEADDR.
    options: Vec<SockOpt>,
    /// sk_shutdown, as inet_diag tells it.
    shutdown: u8,
}

impl Seen {
    fn who(&self) -> String {
        format!("process {} fd {}", self.pid, self.fd)
    }
    fn not_safe(&self, what: &str) -> Error {
        Error::with_detail(
            self.who(),
            Kind::CheckpointError,
            format!("{}: {what} is not checkpoint safe", self.link),
        )
    }
}

/// Every internet socket of the checkpoint once, with what restart makes of it; the
/// refusals (REFUSE, unsupported states) apart, all of them.
fn plan(procs: &[ProcessFds<'_>], members: &[Member]) -> (Vec<Seen>, Vec<Error>) {
    let mut seen: Vec<Seen> = Vec::new();
    let mut errors = Vec::new();
    let mut policy_of: BTreeMap<u64, &ProcessPolicies> = BTreeMap::new();
    for &(pi, fi, _) in members {
        let p = &procs[pi];
        let r = &p.fds[fi];
        let FdKind::InetSocket { ino, .. } = r.kind else {
            continue;
        };
        if let Some(s) = seen.iter_mut().find(|s| s.ino == ino) {
            if !s.holders.contains(&p.pid) {
                s.holders.push(p.pid);
            }
            continue;
        }
        match look(p.pid, r.fd, &r.path, ino) {
            Ok(s) => {
                policy_of.insert(ino, p.policies);
                seen.push(s);
            }
            Err(e) => errors.push(e),
        }
    }
    let snapshot: Vec<Glance> = seen
        .iter()
        .map(|s| (s.ino, s.sock_type, s.local, s.peer, s.state))
        .collect();
    for s in seen.iter_mut() {
        if !is_inet(s.family) {
            // let through by the SOCKET policy CLOSE (closes_other)
            s.how = Disposition::Closed;
            continue;
        }
        match decide(s, &snapshot, policy_of[&s.ino]) {
            Ok(how) => s.how = how,
            Err(e) => errors.push(e),
        }
    }
    errors.extend(check_listeners(&seen));
    (seen, errors)
}

/// A socket's addresses and state, through cpr's copy of it.
fn look(pid: i32, fd: i32, link: &str, ino: u64) -> Result<Seen> {
    let who = format!("process {pid} fd {fd}");
    let sock = crate::sys::steal_fd(pid, fd).ctx(&who)?;
    let raw = sock.as_raw_fd();
    let family = get_int_opt(raw, libc::SOL_SOCKET, libc::SO_DOMAIN).ctx(&who)?;
    let sock_type = get_int_opt(raw, libc::SOL_SOCKET, libc::SO_TYPE).ctx(&who)?;
    let protocol = get_int_opt(raw, libc::SOL_SOCKET, libc::SO_PROTOCOL).ctx(&who)?;
    let state = if is_inet(family) && sock_type == libc::SOCK_STREAM {
        repair::tcp_info(raw).ctx(format!("{who}: TCP_INFO"))?.state
    } else {
        0
    };
    let mut options = Vec::new();
    for (level, name) in option_names(family, sock_type) {
        match get_opt(raw, level, name) {
            Ok(v) => options.push((level, name, v)),
            Err(Errno::ENOPROTOOPT | Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(Error::errno(format!("{who}: getsockopt"), e)),
        }
    }
    let (local, peer) = (local_of(raw), peer_of(raw));
    let shutdown = match (is_inet(family), local) {
        (true, Some(l)) => {
            inet_diag::lookup(protocol, canon(l), peer.map_or(unspecified_like(&l), canon))
                .ok()
                .filter(|d| u64::from(d.inode) == ino)
                .map_or(0, |d| d.shutdown)
        }
        _ => 0,
    };
    Ok(Seen {
        ino,
        pid,
        fd,
        shutdown,
        link: link.to_string(),
        family,
        sock_type,
        protocol,
        options,
        local,
        peer,
        sock,
        state,
        how: Disposition::Unconnected,
        holders: vec![pid],
    })
}

/// What a socket's peer is looked for by: inode, type, own address, peer, TCP state.
type Glance = (u64, i32, Option<SocketAddr>, Option<SocketAddr>, u8);
type Snapshot = [Glance];

/// The unspecified address and port 0 of `a`'s family: the peer inet_diag is asked
/// with for a socket that has none.
fn unspecified_like(a: &SocketAddr) -> SocketAddr {
    let ip: IpAddr = if a.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// Whether `a` (a listening or bound address) takes connections to `to`.
fn serves(a: &SocketAddr, to: &SocketAddr) -> bool {
    let (a, to) = (canon(*a), canon(*to));
    a.port() == to.port() && (a.ip() == to.ip() || a.ip().is_unspecified())
}

/// An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]:80`, as a dual-stack socket shows
/// an IPv4 peer) as the IPv4 address it is, for comparing and for inet_diag.
fn canon(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

fn same(a: Option<SocketAddr>, b: Option<SocketAddr>) -> bool {
    a.map(canon) == b.map(canon)
}

/// What restart makes of socket `s`, its peer looked for among the `others`.
fn decide(s: &Seen, others: &Snapshot, policies: &ProcessPolicies) -> Result<Disposition> {
    let udp = s.sock_type == libc::SOCK_DGRAM;
    let Some(peer) = s.peer else {
        return match s.state {
            TCP_LISTEN => Ok(Disposition::Listening { backlog: 0 }),
            0 | TCP_CLOSE => Ok(Disposition::Unconnected),
            st => Err(s.not_safe(&format!("a TCP socket in state {st}"))),
        };
    };
    let inside = others.iter().any(|&(ino, t, local, p, _)| {
        ino != s.ino
            && t == s.sock_type
            && local.is_some_and(|l| {
                if udp {
                    serves(&l, &peer)
                } else {
                    same(Some(l), Some(peer))
                }
            })
            && (udp || same(p, s.local))
    });
    if inside {
        return match (udp, s.state) {
            (true, _) => Ok(Disposition::Connected),
            (false, TCP_ESTABLISHED) => Ok(Disposition::Repaired { outside: false }),
            (false, st) => Err(s.not_safe(&format!(
                "a TCP connection in state {st} (only established ones are restored)"
            ))),
        };
    }
    if !udp
        && s.state == TCP_ESTABLISHED
        && let Some(listener) = waiting_in(s, others)?
    {
        return Ok(Disposition::Waiting { listener });
    }
    let address = address_text(s.sock_type, &peer);
    match policies.socket_action(&address) {
        SocketAction::Refuse => Err(s.not_safe(&format!(
            "a {} socket connected to {address}, outside the checkpoint (SOCKET policy REFUSE),",
            proto_name(s.sock_type)
        ))),
        SocketAction::Close => Ok(Disposition::Closed),
        SocketAction::Reconnect => Ok(Disposition::Reconnect),
        SocketAction::Repair if udp => Ok(Disposition::Connected),
        SocketAction::Repair if s.state == TCP_ESTABLISHED => {
            Ok(Disposition::Repaired { outside: true })
        }
        SocketAction::Repair => Err(s.not_safe(&format!(
            "a TCP connection to {address} in state {} (only established ones are repaired)",
            s.state
        ))),
    }
}

/// The listening socket of the checkpoint in whose accept queue the other end of
/// connection `s` waits, if it does; such a connection must hold no data its client sent
/// (cpr cannot read that without accepting it).
fn waiting_in(s: &Seen, others: &Snapshot) -> Result<Option<u64>> {
    let (Some(local), Some(peer)) = (s.local, s.peer) else {
        return Ok(None);
    };
    let Some(&(listener, ..)) = others.iter().find(|&&(_, t, l, _, st)| {
        t == libc::SOCK_STREAM && st == TCP_LISTEN && l.is_some_and(|l| serves(&l, &peer))
    }) else {
        return Ok(None);
    };
    let other_end = match inet_diag::tcp_lookup(canon(peer), canon(local)) {
        Ok(d) if d.remote == canon(local) && d.state == TCP_ESTABLISHED && d.inode == 0 => d,
        _ => return Ok(None),
    };
    if other_end.rqueue != 0 {
        return Err(s.not_safe(&format!(
            "a connection waiting in the accept queue of socket:[{listener}] with {} bytes its client sent",
            other_end.rqueue
        )));
    }
    Ok(Some(listener))
}

/// Each listening socket's backlog; one with connections waiting from outside the
/// checkpoint is refused (they would be lost).
fn check_listeners(seen: &[Seen]) -> Vec<Error> {
    let mut out = Vec::new();
    for s in seen {
        let (Disposition::Listening { .. }, Some(local)) = (&s.how, s.local) else {
            continue;
        };
        let unspecified = unspecified_like(&local);
        let waiting = seen
            .iter()
            .filter(|c| c.how == Disposition::Waiting { listener: s.ino })
            .count();
        match inet_diag::tcp_lookup(local, unspecified) {
            Ok(d) if d.state == TCP_LISTEN && d.rqueue as usize > waiting => {
                out.push(s.not_safe(&format!(
                    "a listening socket on {} with {} connections waiting from outside the checkpoint",
                    address_text(s.sock_type, &local),
                    d.rqueue as usize - waiting
                )))
            }
            Ok(_) => {}
            Err(e) => out.push(Error::errno(format!("{}: inet_diag", s.who()), e)),
        }
    }
    out
}

/// The sockets `collect` would refuse, found without changing anything: for
/// `cpr -c --dry-run`.
pub(super) fn refusals(procs: &[ProcessFds<'_>], members: &[Member]) -> Vec<Error> {
    plan(procs, members).1
}

/// What restart would make of each internet socket of `procs` (pid, fd, in words), for
/// `cpr -c --dry-run`; a socket refused is left out (the refusals name it).
pub fn dispositions(procs: &[ProcessFds<'_>]) -> Vec<(i32, i32, &'static str)> {
    let mut members = Vec::new();
    for (pi, p) in procs.iter().enumerate() {
        for (fi, r) in p.fds.iter().enumerate() {
            if matches!(r.kind, FdKind::InetSocket { .. }) {
                members.push((pi, fi, 0));
            }
        }
    }
    let (seen, errors) = plan(procs, &members);
    let refused = |s: &Seen| errors.iter().any(|e| e.subject == s.who());
    let mut out = Vec::new();
    for s in seen.iter().filter(|s| !refused(s)) {
        for &(pi, fi, _) in &members {
            if matches!(procs[pi].fds[fi].kind, FdKind::InetSocket { ino, .. } if ino == s.ino) {
                out.push((procs[pi].pid, procs[pi].fds[fi].fd, describe(&s.how)));
            }
        }
    }
    out
}

/// What restart makes of each internet socket, for `cpr -c --dry-run` and `cpr -i`.
pub fn describe(how: &Disposition) -> &'static str {
    match how {
        Disposition::Unconnected => "made again, bound to its address",
        Disposition::Listening { .. } => "listening again on its address",
        Disposition::Connected => "bound and connected again, datagrams refilled",
        Disposition::Repaired { outside: false } => {
            "connection restored with its peer (TCP repair), data intact"
        }
        Disposition::Repaired { outside: true } => {
            "connection to a peer outside restored as it was (SOCKET REPAIR)"
        }
        Disposition::Waiting { .. } => "connected again into its server's accept queue",
        Disposition::Reconnect => "a new connection to the same address (SOCKET RECONNECT)",
        Disposition::Closed => "a socket whose peer has gone (SOCKET CLOSE)",
    }
}

/// How `cpr -i` shows a socket: `socket:[ino]`, its kind (`tcp4`, `udp6`), its
/// addresses, what restart makes of it.
pub fn summary(r: &InetSocketRecord) -> [String; 4] {
    let kind = if is_inet(r.family) {
        format!(
            "{}{}",
            proto_name(r.sock_type),
            if r.family == libc::AF_INET6 { "6" } else { "4" }
        )
    } else {
        other_address(r.family, r.protocol)
    };
    let show = |a: &Option<SocketAddr>| a.map_or("*".to_string(), |a| a.to_string());
    let addresses = match &r.how {
        Disposition::Listening { backlog } => format!("{} (backlog {backlog})", show(&r.local)),
        _ if r.peer.is_some() => format!("{} -> {}", show(&r.local), show(&r.peer)),
        _ => show(&r.local),
    };
    [
        format!("socket:[{}]", r.ino),
        kind,
        addresses,
        describe(&r.how).to_string(),
    ]
}

/// A connection the checkpoint holds: cpr's descriptor of it, the processes holding it,
/// its SO_REUSEADDR (repair mode changes it).
struct Locked {
    fd: OwnedFd,
    holders: Vec<i32>,
    reuse: i32,
}

thread_local! {
    /// Connections of the checkpoint in repair mode with their input held, and the
    /// processes holding each: `NetLock` lets them go.
    static LOCKED: RefCell<Vec<Locked>> = const { RefCell::new(Vec::new()) };
}

/// The checkpoint's hold on the connections it reads. Dropped (a failed checkpoint),
/// every connection leaves repair mode and gets its input back; `finish` does that for
/// those of processes that go on, and leaves the others to close in repair mode.
pub struct NetLock(());

impl NetLock {
    pub fn begin() -> NetLock {
        LOCKED.with(|l| l.borrow_mut().clear());
        NetLock(())
    }

    /// Once the statefile is durable: `goes_on` says which processes run on.
    pub fn finish(self, goes_on: impl Fn(i32) -> bool) {
        LOCKED.with(|l| {
            for c in l.borrow_mut().drain(..) {
                if c.holders.iter().any(|&p| goes_on(p)) {
                    unlock(&c);
                }
            }
        });
    }
}

impl Drop for NetLock {
    fn drop(&mut self) {
        LOCKED.with(|l| {
            for c in l.borrow_mut().drain(..) {
                unlock(&c);
            }
        });
    }
}

fn unlock(c: &Locked) {
    let fd = c.fd.as_raw_fd();
    let _ = repair::set_queue(fd, Queue::None);
    let _ = repair::set_repair(fd, false);
    let _ = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, c.reuse);
    let _ = repair::unblock_input(fd);
}

/// Holds `s`'s input and puts it in repair mode, registered so that `NetLock` lets it go.
fn lock(s: &Seen) -> Result<()> {
    let fd = s.sock.as_raw_fd();
    let who = s.who();
    if repair::has_filter(fd).ctx(&who)? {
        return Err(s.not_safe("a TCP connection with a socket filter of its own"));
    }
    let copy = s.sock.try_clone().ctx(&who)?;
    repair::block_input(fd).ctx(format!("{who}: holding its input"))?;
    let reuse = s
        .options
        .iter()
        .find(|&&(l, n, _)| (l, n) == (libc::SOL_SOCKET, libc::SO_REUSEADDR))
        .map_or(0, |o| o.2);
    LOCKED.with(|l| {
        l.borrow_mut().push(Locked {
            fd: copy,
            holders: s.holders.clone(),
            reuse,
        })
    });
    repair::set_repair(fd, true).ctx(format!("{who}: TCP_REPAIR"))
}

/// Once every process is read: refuses what cannot be restored, holds and reads each
/// connection, saves options and queued data.
pub(super) fn collect(
    procs: &mut [ProcessFds<'_>],
    members: &[Member],
    writer: &mut StatefileWriter,
) -> Result<Vec<InetSocketRecord>> {
    let (mut seen, errors) = plan(procs, members);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    // every connection held before any is read: a peer's state cannot move meanwhile
    for s in &seen {
        if matches!(
            s.how,
            Disposition::Repaired { .. } | Disposition::Waiting { .. }
        ) {
            lock(s)?;
        }
    }
    let backlogs: BTreeMap<u64, u32> = seen
        .iter()
        .filter_map(|s| {
            let l = s.local?;
            let d = inet_diag::tcp_lookup(l, unspecified_like(&l)).ok()?;
            (d.state == TCP_LISTEN).then_some((s.ino, d.wqueue))
        })
        .collect();
    let mut out = Vec::new();
    for s in seen.iter_mut() {
        if let Disposition::Listening { backlog } = &mut s.how {
            *backlog = backlogs.get(&s.ino).copied().unwrap_or(128);
        }
        out.push(read_one(s, writer)?);
    }
    check_senders(&seen, &out)?;
    for r in &out {
        // `cpr -i` shows each descriptor with what restart does with it
        for f in procs.iter_mut().flat_map(|p| p.fds.iter_mut()) {
            if let FdKind::InetSocket { ino, disposition } = &mut f.kind
                && *ino == r.ino
            {
                *disposition = Some(describe(&r.how).to_string());
            }
        }
    }
    Ok(out)
}

/// Each queued datagram is sent again at restart by the socket of the checkpoint it came
/// from; one from elsewhere is refused (it cannot be sent again from its address).
fn check_senders(seen: &[Seen], records: &[InetSocketRecord]) -> Result<()> {
    for (s, r) in seen.iter().zip(records) {
        for g in &r.datagrams {
            if sender_of(records, &g.from).is_none() {
                return Err(s.not_safe(&format!(
                    "a UDP socket with a datagram queued from {}, outside the checkpoint,",
                    address_text(libc::SOCK_DGRAM, &g.from)
                )));
            }
        }
    }
    Ok(())
}

/// The UDP socket of the records bound to `from`.
fn sender_of<'a>(
    records: &'a [InetSocketRecord],
    from: &SocketAddr,
) -> Option<&'a InetSocketRecord> {
    records
        .iter()
        .find(|r| r.sock_type == libc::SOCK_DGRAM && r.local.is_some_and(|l| serves(&l, from)))
}

/// One socket's record: options, and what its queues hold.
fn read_one(s: &Seen, writer: &mut StatefileWriter) -> Result<InetSocketRecord> {
    let fd = s.sock.as_raw_fd();
    let who = format!("{} ({})", s.who(), s.link);
    let mut record = InetSocketRecord {
        ino: s.ino,
        family: s.family,
        sock_type: s.sock_type,
        protocol: s.protocol,
        local: s.local,
        peer: s.peer,
        how: s.how.clone(),
        options: s.options.clone(),
        tcp: None,
        datagrams: Vec::new(),
        data: None,
        shutdown: 0,
    };
    if s.shutdown != 0 {
        if s.sock_type != libc::SOCK_DGRAM {
            return Err(s.not_safe("a TCP socket shut down for reading or writing"));
        }
        record.shutdown = s.shutdown;
    }
    let bytes = match s.how {
        Disposition::Repaired { .. } | Disposition::Waiting { .. } => {
            let (conn, bytes) = read_connection(fd, &who)?;
            if matches!(s.how, Disposition::Waiting { .. }) && conn.inq != 0 {
                return Err(s.not_safe("a connection waiting to be accepted with data received"));
            }
            record.tcp = Some(conn);
            bytes
        }
        Disposition::Connected | Disposition::Unconnected if s.sock_type == libc::SOCK_DGRAM => {
            let (grams, bytes) = read_datagrams(fd, &who)?;
            record.datagrams = grams;
            bytes
        }
        _ => Vec::new(),
    };
    if !bytes.is_empty() {
        let rel = crate::statefile::layout::inet_socket_data_path(s.ino);
        writer.write_file(&rel, &bytes)?;
        record.data = Some(rel);
    }
    Ok(record)
}

/// A connection in repair mode: its numbers, then the bytes of its receive queue
/// followed by those of its send queue.
fn read_connection(fd: RawFd, who: &str) -> Result<(TcpConn, Vec<u8>)> {
    let info = repair::tcp_info(fd).ctx(who)?;
    let sizes = (
        repair::inq(fd).ctx(who)?,
        repair::outq(fd).ctx(who)?,
        repair::unsent(fd).ctx(who)?,
    );
    if sizes.0 as usize > MAX_QUEUE || sizes.1 as usize > MAX_QUEUE {
        return Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            "a TCP connection with over 64 MiB queued is not checkpoint safe",
        ));
    }
    repair::set_queue(fd, Queue::Recv).ctx(who)?;
    let rcv_seq = repair::queue_seq(fd).ctx(who)?;
    let mut bytes = peek(fd, sizes.0 as usize, who)?;
    repair::set_queue(fd, Queue::Send).ctx(who)?;
    let snd_seq = repair::queue_seq(fd).ctx(who)?;
    bytes.extend(peek(fd, sizes.1 as usize, who)?);
    repair::set_queue(fd, Queue::None).ctx(who)?;
    let conn = TcpConn {
        snd_seq,
        rcv_seq,
        inq: sizes.0,
        outq: sizes.1,
        unsent: sizes.2,
        mss: repair::mss(fd).ctx(who)?,
        tcp_options: info.options,
        snd_wscale: info.snd_wscale,
        rcv_wscale: info.rcv_wscale,
        timestamp: repair::timestamp(fd).ctx(who)?,
        window: repair::window(fd).ctx(who)?,
    };
    Ok((conn, bytes))
}

/// `len` bytes of the selected queue, looked at and left in place (a peek offset the
/// program set is put aside meanwhile).
fn peek(fd: RawFd, len: usize, who: &str) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let old = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    if old >= 0 {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, -1).ctx(who)?;
    }
    let mut buf = vec![0u8; len];
    let got = socket::recv(fd, &mut buf, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT);
    if old >= 0 {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old).ctx(who)?;
    }
    let n = got.map_err(|e| Error::errno(format!("{who}: reading a queue"), e))?;
    if n != len {
        return Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            format!("a TCP queue of {len} bytes gave {n}"),
        ));
    }
    Ok(buf)
}

/// The datagrams waiting in a UDP socket, each with its sender, left in place: the peek
/// offset moves past each one peeked and is put back afterwards.
fn read_datagrams(fd: RawFd, who: &str) -> Result<(Vec<Datagram>, Vec<u8>)> {
    let old = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).ctx(who)?;
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).ctx(who)?;
    let walked = walk_datagrams(fd, who);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old).ctx(who)?;
    walked
}

fn walk_datagrams(fd: RawFd, who: &str) -> Result<(Vec<Datagram>, Vec<u8>)> {
    let mut grams = Vec::new();
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; PEEK_BUFFER];
    loop {
        if grams.len() >= 1 << 16 || bytes.len() > MAX_QUEUE {
            return Err(Error::with_detail(
                who,
                Kind::CheckpointError,
                "a UDP socket with that many datagrams queued is not checkpoint safe",
            ));
        }
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        let msg = match socket::recvmsg::<SockaddrStorage>(fd, &mut iov, None, flags) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(Error::errno(format!("{who}: peeking"), e)),
        };
        let n = msg.bytes;
        let from = msg.address.as_ref().and_then(sockaddr_of);
        if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(Error::with_detail(
                who,
                Kind::CheckpointError,
                "a UDP socket with a datagram over 1 MiB queued is not checkpoint safe",
            ));
        }
        let Some(from) = from else {
            return Err(Error::with_detail(
                who,
                Kind::CheckpointError,
                "a queued datagram without a sender is not checkpoint safe",
            ));
        };
        bytes.extend_from_slice(&buf[..n]);
        grams.push(Datagram { from, len: n });
    }
    Ok((grams, bytes))
}

fn damaged(what: String) -> Error {
    crate::statefile::reader::damaged_record(what)
}

/// Checks the records of the statefile before anything is made.
fn validate(records: &[InetSocketRecord]) -> Result<()> {
    for r in records {
        let who = format!("socket:[{}]", r.ino);
        let tcp = r.sock_type == libc::SOCK_STREAM;
        let family_ok = match r.family {
            libc::AF_INET => [r.local, r.peer].iter().flatten().all(|a| a.is_ipv4()),
            libc::AF_INET6 => [r.local, r.peer].iter().flatten().all(|a| a.is_ipv6()),
            // another family comes back closed, whatever its type
            _ => r.how == Disposition::Closed && r.local.is_none() && r.peer.is_none(),
        };
        let other = !is_inet(r.family);
        if !family_ok || !(tcp || r.sock_type == libc::SOCK_DGRAM || other) {
            return Err(damaged(format!("{who}: family, type or addresses")));
        }
        let names = option_names(r.family, r.sock_type);
        if r.options.iter().any(|&(l, n, _)| !names.contains(&(l, n))) {
            return Err(damaged(format!("{who}: an option cpr does not set")));
        }
        let shape = match &r.how {
            Disposition::Unconnected => r.tcp.is_none(),
            Disposition::Listening { backlog } => tcp && r.local.is_some() && *backlog < 1 << 20,
            Disposition::Connected => !tcp && r.peer.is_some(),
            Disposition::Repaired { .. } => {
                tcp && r.local.is_some() && r.peer.is_some() && r.tcp.is_some()
            }
            Disposition::Waiting { listener } => {
                tcp && r.local.is_some()
                    && r.peer.is_some()
                    && r.tcp.as_ref().is_some_and(|c| c.inq == 0)
                    && records.iter().any(|l| {
                        l.ino == *listener && matches!(l.how, Disposition::Listening { .. })
                    })
            }
            Disposition::Reconnect => r.peer.is_some(),
            Disposition::Closed => true,
        };
        if !shape || (tcp && !r.datagrams.is_empty()) {
            return Err(damaged(format!("{who}: {:?} with these fields", r.how)));
        }
        if let Some(c) = &r.tcp
            && (c.unsent > c.outq || c.inq as usize > MAX_QUEUE || c.outq as usize > MAX_QUEUE)
        {
            return Err(damaged(format!("{who}: queue lengths")));
        }
        if records.iter().filter(|p| p.ino == r.ino).count() != 1 {
            return Err(damaged(format!("{who}: saved twice")));
        }
    }
    Ok(())
}

/// The bytes saved for `r`: they must be as long as its queues or datagrams say.
fn saved_bytes(r: &InetSocketRecord, sf: &Statefile) -> Result<Vec<u8>> {
    let data = match &r.data {
        Some(rel) if *rel == crate::statefile::layout::inet_socket_data_path(r.ino) => {
            sf.read(rel)?
        }
        None => Vec::new(),
        Some(rel) => return Err(damaged(format!("socket:[{}]: data file {rel}", r.ino))),
    };
    let want = match &r.tcp {
        Some(c) => c.inq as usize + c.outq as usize,
        None => r.datagrams.iter().map(|g| g.len).sum(),
    };
    if want != data.len() {
        return Err(damaged(format!(
            "socket:[{}]: {} bytes saved for {want} queued",
            r.ino,
            data.len()
        )));
    }
    Ok(data)
}

/// Connections made in repair mode at restart, with what each still has to send: they
/// leave repair mode when every process is ready (`finish`), or close in it (silently)
/// if the restart fails.
#[derive(Default)]
pub struct Repairing {
    conns: Vec<RepairedConn>,
}

struct RepairedConn {
    ino: u64,
    fd: OwnedFd,
    /// The bytes written and never sent, sent once out of repair mode.
    unsent: Vec<u8>,
    /// SO_REUSEADDR, which leaving repair mode clears.
    reuse: i32,
    /// Its record: the buffer sizes are set as saved once everything is sent (until
    /// then they have room for all of it).
    record: InetSocketRecord,
}

/// The saved value of an option, 0 if none was saved.
fn option_value(r: &InetSocketRecord, level: i32, name: i32) -> i32 {
    r.options
        .iter()
        .find(|&&(l, n, _)| (l, n) == (level, name))
        .map_or(0, |o| o.2)
}

impl Repairing {
    /// Every connection out of repair mode (the kernel sends a window probe, so the peer
    /// learns where the connection is), then the bytes never sent, sent.
    pub fn finish(&self) -> Result<()> {
        for c in &self.conns {
            let who = format!("socket:[{}]", c.ino);
            let fd = c.fd.as_raw_fd();
            repair::set_repair(fd, false).ctx(format!("{who}: leaving repair mode"))?;
            set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, c.reuse).ctx(&who)?;
        }
        for c in &self.conns {
            let who = format!("socket:[{}]", c.ino);
            send_all(&c.fd, &c.unsent, &format!("{who} unsent data"))?;
            set_buffers(&c.fd, &c.record, &who)?;
        }
        Ok(())
    }
}

/// Sends all of `bytes`, waiting (bounded) for room when the socket is non-blocking.
fn send_all(sock: &OwnedFd, bytes: &[u8], who: &str) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut sent = 0;
    while sent < bytes.len() {
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match socket::send(sock.as_raw_fd(), &bytes[sent..], flags) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
                if !matches!(nix::poll::poll(&mut p, PollTimeout::from(5000u16)), Ok(1..)) {
                    return Err(Error::errno(
                        format!("{who}: sending its data"),
                        Errno::EAGAIN,
                    ));
                }
            }
            Err(e) => return Err(Error::errno(format!("{who}: sending its data"), e)),
        }
    }
    Ok(())
}

fn sockaddr(a: &SocketAddr) -> SockaddrStorage {
    match a {
        SocketAddr::V4(v4) => SockaddrStorage::from(*v4),
        SocketAddr::V6(v6) => SockaddrStorage::from(*v6),
    }
}

/// A new socket of `r`'s family and type, close-on-exec, with its options set.
fn new_socket(r: &InetSocketRecord, who: &str) -> Result<OwnedFd> {
    let fd = repair::inet_socket(r.family, r.sock_type).ctx(who)?;
    set_options(&fd, r, who)?;
    Ok(fd)
}

fn set_options(fd: &OwnedFd, r: &InetSocketRecord, who: &str) -> Result<()> {
    let raw = fd.as_raw_fd();
    for &(level, name, v) in &r.options {
        let done = if is_buffer(level, name) {
            // getsockopt gave twice what was set
            let force = if name == libc::SO_SNDBUF {
                libc::SO_SNDBUFFORCE
            } else {
                libc::SO_RCVBUFFORCE
            };
            set_int_opt(raw, level, force, v / 2).or_else(|_| set_int_opt(raw, level, name, v / 2))
        } else {
            set_opt(raw, level, name, v)
        };
        match done {
            // a listening or unconnected socket refuses what belongs to connections
            Ok(()) | Err(Errno::ENOPROTOOPT) => {}
            Err(e) => return Err(Error::errno(format!("{who}: setsockopt {level}/{name}"), e)),
        }
    }
    Ok(())
}

/// The saved buffer sizes again, after the queues were filled with more room.
fn set_buffers(fd: &OwnedFd, r: &InetSocketRecord, who: &str) -> Result<()> {
    let only = InetSocketRecord {
        options: r
            .options
            .iter()
            .copied()
            .filter(|&(l, n, _)| is_buffer(l, n))
            .collect(),
        ..r.clone()
    };
    set_options(fd, &only, who)
}

/// `bind`, naming the address when it is taken.
fn bind(fd: &OwnedFd, r: &InetSocketRecord, at: &SocketAddr) -> Result<()> {
    socket::bind(fd.as_raw_fd(), &sockaddr(at))
        .map_err(|e| Error::errno(address_text(r.sock_type, at), e))
}

/// Restart, in cpr: every internet socket, by inode; connections restored in repair
/// mode are in the `Repairing` returned.
pub(super) fn open_all(
    files: &[SharedFile],
    records: &[InetSocketRecord],
    sf: &Statefile,
) -> Result<(BTreeMap<u64, OwnedFd>, Repairing)> {
    validate(records)?;
    let mut made: BTreeMap<u64, OwnedFd> = BTreeMap::new();
    let mut repairing = Repairing::default();
    // listening and bound sockets first: connections go into their queues, and a
    // connection's address (made free by repair mode) must not take a listener's
    let plain = |r: &&InetSocketRecord| {
        matches!(
            r.how,
            Disposition::Unconnected | Disposition::Connected | Disposition::Listening { .. }
        )
    };
    let ordered = records
        .iter()
        .filter(plain)
        .chain(records.iter().filter(|r| !plain(r)));
    for r in ordered {
        let who = format!("socket:[{}]", r.ino);
        let fd = match r.how {
            Disposition::Unconnected | Disposition::Connected | Disposition::Listening { .. } => {
                let shares = records.iter().any(|o| {
                    o.ino != r.ino && plain(&o) && o.local.is_some() && o.local == r.local
                });
                make_plain(r, shares, &who)?
            }
            Disposition::Repaired { outside } => {
                let (fd, unsent) = make_repaired(r, outside, sf)?;
                repairing.conns.push(RepairedConn {
                    ino: r.ino,
                    fd: fd.try_clone().ctx(&who)?,
                    unsent,
                    reuse: option_value(r, libc::SOL_SOCKET, libc::SO_REUSEADDR),
                    record: r.clone(),
                });
                fd
            }
            Disposition::Reconnect => {
                let fd = new_socket(r, &who)?;
                let peer = r.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                socket::connect(fd.as_raw_fd(), &sockaddr(&peer)).map_err(|e| {
                    Error::errno(
                        format!(
                            "{who}: connecting again to {}",
                            address_text(r.sock_type, &peer)
                        ),
                        e,
                    )
                })?;
                fd
            }
            Disposition::Closed => make_closed(r, &who)?,
            Disposition::Waiting { .. } => continue,
        };
        made.insert(r.ino, fd);
    }
    refill_datagrams(records, &made, sf)?;
    for r in records {
        let who = format!("socket:[{}]", r.ino);
        match r.how {
            Disposition::Connected => {
                let peer = r.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                socket::connect(made[&r.ino].as_raw_fd(), &sockaddr(&peer)).map_err(|e| {
                    Error::errno(
                        format!("{who}: connecting to {}", address_text(r.sock_type, &peer)),
                        e,
                    )
                })?;
            }
            Disposition::Waiting { .. } => {
                made.insert(r.ino, make_waiting(r, sf, &who)?);
            }
            _ => {}
        }
    }
    // shut down last: the datagrams a socket had sent are in its peer's queue by now
    for r in records.iter().filter(|r| r.shutdown != 0) {
        let how = match r.shutdown {
            1 => socket::Shutdown::Read,
            2 => socket::Shutdown::Write,
            3 => socket::Shutdown::Both,
            n => return Err(damaged(format!("socket:[{}]: shutdown {n}", r.ino))),
        };
        if let Some(fd) = made.get(&r.ino) {
            socket::shutdown(fd.as_raw_fd(), how)
                .map_err(|e| Error::errno(format!("socket:[{}]: shutdown", r.ino), e))?;
        }
    }
    for f in files {
        if let FdKind::InetSocket { ino, .. } = f.template.kind
            && !made.contains_key(&ino)
        {
            return Err(damaged(format!("socket:[{ino}]: no saved socket")));
        }
    }
    Ok((made, repairing))
}

/// An unconnected, bound, listening or UDP socket (connected later), bound to its
/// address. Sockets that shared their address through SO_REUSEPORT (`shares`) may have
/// turned it off since: it is on while they bind, then as saved.
fn make_plain(r: &InetSocketRecord, shares: bool, who: &str) -> Result<OwnedFd> {
    let fd = new_socket(r, who)?;
    let raw = fd.as_raw_fd();
    if shares {
        set_int_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).ctx(who)?;
    }
    if let Some(at) = r.local {
        bind(&fd, r, &at)?;
    }
    if let Disposition::Listening { backlog } = r.how {
        let backlog = socket::Backlog::new(backlog as i32).unwrap_or(socket::Backlog::MAXCONN);
        socket::listen(&fd, backlog).ctx(format!("{who}: listen"))?;
    }
    let reuseport = option_value(r, libc::SOL_SOCKET, libc::SO_REUSEPORT);
    set_int_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, reuseport).ctx(who)?;
    Ok(fd)
}

/// A connection that waited in an accept queue: connected again into the same
/// listening socket (made already) from its own address, with what it had not sent.
fn make_waiting(r: &InetSocketRecord, sf: &Statefile, who: &str) -> Result<OwnedFd> {
    let (Some(local), Some(peer)) = (r.local, r.peer) else {
        return Err(damaged(format!("{who}: addresses")));
    };
    let fd = new_socket(r, who)?;
    set_int_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).ctx(who)?;
    bind(&fd, r, &local)?;
    socket::connect(fd.as_raw_fd(), &sockaddr(&peer)).map_err(|e| {
        Error::errno(
            format!(
                "{who}: connecting again to {}",
                address_text(r.sock_type, &peer)
            ),
            e,
        )
    })?;
    let reuse = option_value(r, libc::SOL_SOCKET, libc::SO_REUSEADDR);
    set_int_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, reuse).ctx(who)?;
    send_all(&fd, &saved_bytes(r, sf)?, who)?;
    Ok(fd)
}

/// A socket whose peer has gone: a TCP connection on loopback whose other end cpr
/// closes (reads give end of file, writes soon EPIPE); a UDP socket of the same family,
/// unbound.
fn make_closed(r: &InetSocketRecord, who: &str) -> Result<OwnedFd> {
    if !is_inet(r.family) {
        // a UNIX socket whose peer is closed: reads give end of file, writes EPIPE
        let t = if r.sock_type == libc::SOCK_STREAM {
            libc::SOCK_STREAM
        } else {
            libc::SOCK_SEQPACKET
        };
        let (ours, gone) = crate::sys::sock_diag::unix_pair(t).ctx(who)?;
        drop(gone);
        return Ok(ours);
    }
    let fd = repair::inet_socket(r.family, r.sock_type).ctx(who)?;
    if r.sock_type != libc::SOCK_STREAM {
        return Ok(fd);
    }
    let lo: SocketAddr = if r.family == libc::AF_INET6 {
        (Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (Ipv4Addr::LOCALHOST, 0).into()
    };
    let listener = repair::inet_socket(r.family, r.sock_type).ctx(who)?;
    socket::bind(listener.as_raw_fd(), &sockaddr(&lo)).ctx(who)?;
    socket::listen(
        &listener,
        socket::Backlog::new(1).unwrap_or(socket::Backlog::MAXCONN),
    )
    .ctx(who)?;
    let at = local_of(listener.as_raw_fd()).ok_or_else(|| damaged(format!("{who}: loopback")))?;
    socket::connect(fd.as_raw_fd(), &sockaddr(&at)).ctx(who)?;
    let other = socket::accept(listener.as_raw_fd()).ctx(who)?;
    nix::unistd::close(other).ctx(who)?;
    Ok(fd)
}

/// Each queued datagram sent again, in order, from the socket of the checkpoint it came
/// from to the socket that had it.
fn refill_datagrams(
    records: &[InetSocketRecord],
    made: &BTreeMap<u64, OwnedFd>,
    sf: &Statefile,
) -> Result<()> {
    for r in records.iter().filter(|r| !r.datagrams.is_empty()) {
        let who = format!("socket:[{}]", r.ino);
        let bytes = saved_bytes(r, sf)?;
        let Some(mut to) = r.local else {
            return Err(damaged(format!(
                "{who}: datagrams queued on an unbound socket"
            )));
        };
        if to.ip().is_unspecified() {
            to.set_ip(match to {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        let mut at = 0;
        for g in &r.datagrams {
            let sender = sender_of(records, &g.from)
                .and_then(|s| made.get(&s.ino))
                .ok_or_else(|| damaged(format!("{who}: a datagram from {}", g.from)))?;
            socket::sendto(
                sender.as_raw_fd(),
                &bytes[at..at + g.len],
                &sockaddr(&to),
                MsgFlags::MSG_DONTWAIT,
            )
            .map_err(|e| Error::errno(format!("{who}: refilling a datagram"), e))?;
            at += g.len;
        }
    }
    Ok(())
}

/// A connection made as it was, in repair mode: sequence numbers, addresses, negotiated
/// options, window, the data received and not read, the data sent and not acknowledged.
/// Returns it with the bytes never sent, which go out when it leaves repair mode.
fn make_repaired(
    r: &InetSocketRecord,
    outside: bool,
    sf: &Statefile,
) -> Result<(OwnedFd, Vec<u8>)> {
    let who = format!("socket:[{}]", r.ino);
    let (Some(local), Some(peer), Some(c)) = (r.local, r.peer, &r.tcp) else {
        return Err(damaged(format!("{who}: a connection without its state")));
    };
    check_repairable(r, local, peer, outside)?;
    let bytes = saved_bytes(r, sf)?;
    let fd = repair::inet_socket(r.family, r.sock_type).ctx(&who)?;
    let raw = fd.as_raw_fd();
    let step = |what: &str, e: Errno| Error::errno(format!("{who}: {what}"), e);
    // options first: SO_REUSEADDR would undo the free reuse of addresses repair mode gives
    set_options(&fd, r, &who)?;
    repair::set_repair(raw, true).map_err(|e| step("TCP_REPAIR", e))?;
    // room for the queues, whatever the saved sizes (set again after)
    let room = ((c.inq as i32).saturating_add(c.outq as i32))
        .saturating_mul(4)
        .saturating_add(4 << 20);
    let _ = set_int_opt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, room);
    let _ = set_int_opt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, room);
    repair::set_queue(raw, Queue::Recv).map_err(|e| step("receive queue", e))?;
    repair::set_queue_seq(raw, c.rcv_seq.wrapping_sub(c.inq)).map_err(|e| step("rcv_nxt", e))?;
    repair::set_queue(raw, Queue::Send).map_err(|e| step("send queue", e))?;
    repair::set_queue_seq(raw, c.snd_seq.wrapping_sub(c.outq)).map_err(|e| step("write_seq", e))?;
    bind(&fd, r, &local)?;
    socket::connect(raw, &sockaddr(&peer)).map_err(|e| step("connect in repair mode", e))?;
    let mut opts = vec![(repair::TCPOPT_MSS, c.mss)];
    if c.tcp_options & repair::TCPI_OPT_WSCALE != 0 {
        opts.push((
            repair::TCPOPT_WINDOW,
            c.snd_wscale as u32 | (c.rcv_wscale as u32) << 16,
        ));
    }
    if c.tcp_options & repair::TCPI_OPT_SACK != 0 {
        opts.push((repair::TCPOPT_SACK_PERM, 0));
    }
    if c.tcp_options & repair::TCPI_OPT_TIMESTAMPS != 0 {
        opts.push((repair::TCPOPT_TIMESTAMP, 0));
    }
    repair::set_options(raw, &opts).map_err(|e| step("TCP_REPAIR_OPTIONS", e))?;
    if c.tcp_options & repair::TCPI_OPT_TIMESTAMPS != 0 {
        repair::set_timestamp(raw, c.timestamp).map_err(|e| step("TCP_TIMESTAMP", e))?;
    }
    let (received, written) = bytes.split_at(c.inq as usize);
    let sent = (c.outq - c.unsent) as usize;
    repair::set_queue(raw, Queue::Recv).map_err(|e| step("receive queue", e))?;
    fill_queue(&fd, received, &format!("{who} receive queue"))?;
    repair::set_queue(raw, Queue::Send).map_err(|e| step("send queue", e))?;
    fill_queue(&fd, &written[..sent], &format!("{who} send queue"))?;
    repair::set_queue(raw, Queue::None).map_err(|e| step("queues", e))?;
    repair::set_window(raw, &c.window).map_err(|e| step("TCP_REPAIR_WINDOW", e))?;
    Ok((fd, written[sent..].to_vec()))
}

/// Writes into the queue repair mode selected, in pieces the kernel takes.
fn fill_queue(fd: &OwnedFd, bytes: &[u8], who: &str) -> Result<()> {
    for piece in bytes.chunks(64 << 10) {
        send_all(fd, piece, who)?;
    }
    Ok(())
}

/// Before a connection is made again: its own addresses must be free (no socket of
/// this host holds that connection still: repair mode would not see it), and a peer
/// outside on this host must still hold its end (REPAIR).
fn check_repairable(
    r: &InetSocketRecord,
    local: SocketAddr,
    peer: SocketAddr,
    outside: bool,
) -> Result<()> {
    let (local_c, peer_c) = (canon(local), canon(peer));
    if let Ok(d) = inet_diag::tcp_lookup(local_c, peer_c)
        && d.local == local_c
        && d.remote == peer_c
    {
        return Err(Error::errno(
            format!(
                "{} (connected to {})",
                address_text(r.sock_type, &local),
                address_text(r.sock_type, &peer)
            ),
            Errno::EADDRINUSE,
        ));
    }
    if !outside || !is_local(&peer) {
        return Ok(());
    }
    match inet_diag::tcp_lookup(peer_c, local_c) {
        Ok(d) if d.remote == local_c && d.state == TCP_ESTABLISHED => Ok(()),
        _ => Err(Error::with_detail(
            address_text(r.sock_type, &peer),
            Kind::NoSuchProcess,
            format!(
                "the peer of {} (SOCKET REPAIR) is gone",
                address_text(r.sock_type, &local)
            ),
        )),
    }
}

/// Whether `a` is an address of this host (its peer's end can then be looked up).
fn is_local(a: &SocketAddr) -> bool {
    if a.ip().is_loopback() {
        return true;
    }
    let family = if a.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    repair::inet_socket(family, libc::SOCK_DGRAM)
        .is_ok_and(|s| socket::bind(s.as_raw_fd(), &sockaddr(&SocketAddr::new(a.ip(), 0))).is_ok())
}

/// A descriptor of the socket `ino` made by `open_all`.
pub(super) fn open_end(made: &BTreeMap<u64, OwnedFd>, ino: u64) -> Result<OwnedFd> {
    let fd = made
        .get(&ino)
        .ok_or_else(|| damaged(format!("socket:[{ino}]: no saved socket")))?;
    fd.try_clone().ctx(format!("socket:[{ino}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(ino: u64) -> InetSocketRecord {
        InetSocketRecord {
            ino,
            family: libc::AF_INET,
            sock_type: libc::SOCK_STREAM,
            protocol: libc::IPPROTO_TCP,
            local: Some("127.0.0.1:8080".parse().unwrap()),
            peer: None,
            how: Disposition::Listening { backlog: 16 },
            options: vec![(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)],
            tcp: None,
            datagrams: Vec::new(),
            data: None,
            shutdown: 0,
        }
    }

    #[test]
    fn records_that_do_not_hold_together_are_refused() {
        validate(&[listener(1)]).unwrap();
        // an IPv6 address on an IPv4 socket, an option cpr never sets, a waiting
        // connection whose listener is not saved, a socket saved twice, a UDP listener
        let v6 = InetSocketRecord {
            local: Some("[::1]:80".parse().unwrap()),
            ..listener(1)
        };
        assert!(validate(&[v6]).is_err());
        let odd_option = InetSocketRecord {
            options: vec![(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, 1)],
            ..listener(1)
        };
        assert!(validate(&[odd_option]).is_err());
        let waiting = InetSocketRecord {
            how: Disposition::Waiting { listener: 9 },
            peer: Some("127.0.0.1:8080".parse().unwrap()),
            ..listener(2)
        };
        assert!(validate(&[listener(1), waiting]).is_err());
        assert!(validate(&[listener(1), listener(1)]).is_err());
        let udp_listener = InetSocketRecord {
            sock_type: libc::SOCK_DGRAM,
            ..listener(1)
        };
        assert!(validate(&[udp_listener]).is_err());
    }

    #[test]
    fn addresses_are_named_as_the_socket_policy_matches_them() {
        let v4: SocketAddr = "10.0.0.1:5432".parse().unwrap();
        let v6: SocketAddr = "[::1]:53".parse().unwrap();
        assert_eq!(address_text(libc::SOCK_STREAM, &v4), "tcp:10.0.0.1:5432");
        assert_eq!(address_text(libc::SOCK_DGRAM, &v6), "udp:[::1]:53");
        assert_eq!(other_address(libc::AF_NETLINK, 0), "netlink:0");
    }
}
