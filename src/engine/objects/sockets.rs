//! Socket descriptors: which family a `socket:[ino]` is, asked of cpr's own copy of it
//! (pidfd_getfd, SO_DOMAIN), and the module that dumps that family. UNIX sockets are
//! unix_sockets.rs; TCP and UDP sockets inet_sockets.rs.
//! The SOCKET policy of the attribute file (`ProcessPolicies::socket_action`) is applied
//! by each family's module to a socket whose peer is outside the checkpoint.

use std::os::fd::{AsRawFd, OwnedFd};

use super::files::FdRecord;
use crate::attrfile::ProcessPolicies;
use crate::error::{Context, Error, Kind, Result};
use crate::sys::sock_diag::get_int_opt;

/// A socket descriptor of a process being read, with cpr's duplicate of it.
pub struct SocketFd<'a> {
    pub pid: i32,
    pub fd: i32,
    /// `socket:[ino]`, as /proc shows it.
    pub link: &'a str,
    pub ino: u64,
    /// open(2) status flags (O_NONBLOCK, ...) and close-on-exec of the descriptor.
    pub flags: i32,
    pub cloexec: bool,
    /// cpr's own descriptor of the same socket.
    pub sock: OwnedFd,
}

impl SocketFd<'_> {
    /// `process PID fd FD`, for messages.
    pub fn who(&self) -> String {
        format!("process {} fd {}", self.pid, self.fd)
    }

    /// "Checkpoint error: socket:[ino]: WHAT is not checkpoint safe".
    pub fn not_safe(&self, what: &str) -> Error {
        Error::with_detail(
            self.who(),
            Kind::CheckpointError,
            format!("{}: {what} is not checkpoint safe", self.link),
        )
    }
}

/// The inode of `socket:[ino]`.
pub fn inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The name of a socket type, for messages.
pub fn type_name(sock_type: i32) -> &'static str {
    match sock_type {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "datagram",
        libc::SOCK_SEQPACKET => "seqpacket",
        libc::SOCK_RAW => "raw",
        _ => "unknown",
    }
}

pub fn family_name(family: i32) -> String {
    match family {
        libc::AF_INET => "IPv4".into(),
        libc::AF_INET6 => "IPv6".into(),
        libc::AF_NETLINK => "netlink".into(),
        libc::AF_PACKET => "packet".into(),
        f => format!("family {f}"),
    }
}

/// The record of socket descriptor `fd` of `pid` (`link` is `socket:[ino]`), by its
/// family's module, or "Checkpoint error" naming a family cpr does not restore.
pub fn dump(
    pid: i32,
    fd: i32,
    link: &str,
    (flags, cloexec): (i32, bool),
    policies: &ProcessPolicies,
) -> Result<FdRecord> {
    let who = format!("process {pid} fd {fd}");
    let ino = inode(link).ok_or_else(|| {
        Error::with_detail(
            &who,
            Kind::CheckpointError,
            format!("{link}: a socket is not checkpoint safe"),
        )
    })?;
    let sock = crate::sys::steal_fd(pid, fd).ctx(&who)?;
    let family = get_int_opt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_DOMAIN).ctx(&who)?;
    let s = SocketFd {
        pid,
        fd,
        link,
        ino,
        flags,
        cloexec,
        sock,
    };
    match family {
        libc::AF_UNIX => super::unix_sockets::dump(&s, policies),
        libc::AF_INET | libc::AF_INET6 => super::inet_sockets::dump(&s, policies),
        // other families only under SOCKET CLOSE, as inet_sockets.rs makes them
        _ if super::inet_sockets::closes_other(&s, family, policies) => {
            super::inet_sockets::dump(&s, policies)
        }
        _ => Err(refuse_family(&s, family)),
    }
}

/// The refusal of a socket of a family cpr does not restore.
fn refuse_family(s: &SocketFd, family: i32) -> Error {
    let t = get_int_opt(s.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TYPE).unwrap_or(0);
    Error::with_detail(
        s.who(),
        Kind::CheckpointError,
        format!(
            "{}: a socket is not checkpoint safe ({} {}; only UNIX, TCP and UDP sockets are)",
            s.link,
            family_name(family),
            type_name(t)
        ),
    )
}
