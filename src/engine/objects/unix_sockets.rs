//! UNIX domain sockets: stream, datagram and seqpacket; socketpairs and connections
//! whose both ends are in the checkpoint, listening sockets with the connections waiting
//! in their queue, sockets bound to a path or an abstract name, and sockets whose peer is
//! outside the checkpoint, by the SOCKET policy (REFUSE, RECONNECT, CLOSE).
//!
//! Dump: each socket is looked up with unix_diag (sock_diag netlink) for its type,
//! state, name, socket file, peer and queue, and given a role (`Role`). The data waiting
//! in it is peeked (MSG_PEEK walked with SO_PEEK_OFF, never consumed), message by
//! message with each datagram's sender; queued descriptors (SCM_RIGHTS) or credentials
//! are refused rather than dropped. Restart, in cpr before the processes exist: listeners
//! are bound and listen again; connections made through a listener are connected to it
//! again (and accepted, if they were); other pairs are socketpairs; sockets whose peer
//! has gone are one end of a pair whose other end is closed; queues are refilled by
//! sending from the right sender; then options and shutdown. Every process that had a
//! socket inherits it (shared_fds.rs).

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockFlag, UnixAddr, sockopt};
use nix::sys::time::TimeVal;
use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::{Member, ProcessFds, SharedFile};
use super::sockets::{SocketFd, type_name};
use crate::attrfile::{ProcessPolicies, SocketAction};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::sock_diag::{self, UnixDiag, get_int_opt, set_int_opt};

/// The kernel's TCP_ESTABLISHED, TCP_CLOSE and TCP_LISTEN, the states of a UNIX socket.
const CONNECTED: u8 = 1;
const UNCONNECTED: u8 = 7;
const LISTENING: u8 = 10;
/// Largest message cpr peeks; a larger one is refused, not cut.
const PEEK_BUFFER: usize = 1 << 20;
/// The kernel's sk_shutdown bits.
const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;

/// What a socket is to the others, and so how restart makes it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Role {
    /// Connected to `peer`, which is in the checkpoint (a socketpair, a client whose
    /// connection was accepted, a datagram socket connected to another).
    #[default]
    Connected,
    /// Listening with this backlog; `queue` is the clients (in the checkpoint) whose
    /// connections wait to be accepted, in the order accept(2) takes them.
    Listening { backlog: u32, queue: Vec<u64> },
    /// The server end of a connection accepted from `listener`, whose name it has.
    Accepted { listener: u64 },
    /// A client whose connection waits in `listener`'s queue, not accepted yet.
    Waiting { listener: u64 },
    /// Not connected (bound or not).
    Unconnected,
    /// Its peer has gone, or was outside and the SOCKET policy said CLOSE: reads give
    /// what was queued, then end of file; writes EPIPE.
    Closed,
    /// Its peer was outside; a new socket is connected to the peer's name (`to`, as
    /// `Name::raw`) at restart (SOCKET policy RECONNECT).
    Reconnect { to: Vec<u8> },
}

/// The name a socket is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// As the kernel has it: a path, or an abstract name with its leading NUL.
    pub raw: Vec<u8>,
    /// A path name made absolute (a relative one against the process's working
    /// directory): where restart binds it.
    pub path: Option<String>,
    /// The socket file's inode at checkpoint, and its mode and owner when the path still
    /// named it (`None`: the file had been removed or replaced; restart binds the name
    /// and removes the file again).
    pub ino: u32,
    pub file: Option<(u32, u32, u32)>,
}

/// Options beyond the buffer sizes and SO_PASSCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MoreOptions {
    /// SO_RCVTIMEO and SO_SNDTIMEO, in microseconds (0: none).
    pub rcvtimeo: i64,
    pub sndtimeo: i64,
    pub rcvlowat: i32,
    /// SO_PASSSEC, where the kernel has it.
    pub passsec: Option<bool>,
}

/// One UNIX socket: its role, name, options and what was waiting in its receive queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketRecord {
    pub ino: u64,
    /// The socket it is connected to, 0 if none.
    pub peer: u64,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub sock_type: i32,
    /// SO_SNDBUF and SO_RCVBUF as getsockopt gives them (twice what was set).
    pub sndbuf: i32,
    pub rcvbuf: i32,
    pub passcred: bool,
    /// The kernel's sk_shutdown: 1 receive side shut down, 2 send side.
    pub shutdown: u8,
    /// The lengths of the messages waiting, in order (a stream's bytes as one run).
    pub lengths: Vec<usize>,
    /// Statefile file with those messages one after another, if any.
    pub data: Option<String>,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub name: Option<Name>,
    /// Datagrams: the name of each waiting message's sender, if it had one.
    #[serde(default)]
    pub senders: Vec<Option<Vec<u8>>>,
    #[serde(default)]
    pub options: MoreOptions,
    /// The SOCKET policy applied to its outside peer, if it had one.
    #[serde(default)]
    pub policy: Option<SocketAction>,
}

/// A name as people read it: the path, or `@` and the abstract name; empty if none.
fn shown(raw: &[u8]) -> String {
    match raw.split_first() {
        Some((0, rest)) => format!("@{}", String::from_utf8_lossy(rest).replace('\0', "@")),
        _ => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// The canonical address of the SOCKET policy: `unix:/path`, `unix:@name`, `unix:`.
pub fn address(raw: Option<&[u8]>) -> String {
    format!("unix:{}", raw.map(shown).unwrap_or_default())
}

fn not_safe(who: &str, link: &str, what: &str) -> Error {
    Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("{link}: {what} is not checkpoint safe"),
    )
}

/// The record of a UNIX socket descriptor; what it is to the others is worked out once
/// every process is read (`collect`).
pub fn dump(s: &SocketFd, _policies: &ProcessPolicies) -> Result<FdRecord> {
    let d = sock_diag::unix_diag(s.ino as u32).ctx(format!("{}: unix_diag", s.who()))?;
    if !matches!(d.state, CONNECTED | UNCONNECTED | LISTENING) {
        return Err(s.not_safe(&format!(
            "a UNIX {} socket in state {}",
            type_name(d.sock_type as i32),
            d.state
        )));
    }
    Ok(FdRecord::object(
        s.fd,
        FdKind::UnixSocket {
            ino: s.ino,
            peer: d.peer as u64,
            sock_type: d.sock_type as i32,
            disposition: None,
        },
        s.link,
        s.flags,
        s.cloexec,
    ))
}

/// The holder (index in the processes, index in its descriptors) of each socket.
fn holders(members: &[Member], procs: &[ProcessFds<'_>]) -> BTreeMap<u64, (usize, usize)> {
    let mut out = BTreeMap::new();
    for &(pi, fi, _) in members {
        if let FdKind::UnixSocket { ino, .. } = procs[pi].fds[fi].kind {
            out.entry(ino).or_insert((pi, fi));
        }
    }
    out
}

/// One socket of the checkpoint, as unix_diag showed it, with its role.
struct Planned {
    ino: u64,
    holder: (usize, usize),
    diag: UnixDiag,
    role: Role,
    /// The SOCKET policy applied to its outside peer, if it has one.
    action: Option<SocketAction>,
}

/// Every socket's role, or the errors of those cpr cannot restore.
fn plan(procs: &[ProcessFds<'_>], members: &[Member]) -> (Vec<Planned>, Vec<Error>) {
    let held = holders(members, procs);
    let mut diags = BTreeMap::new();
    let mut errors = Vec::new();
    for (&ino, &(pi, fi)) in &held {
        let who = format!("process {} fd {}", procs[pi].pid, procs[pi].fds[fi].fd);
        match sock_diag::unix_diag(ino as u32) {
            Ok(d) => {
                diags.insert(ino, d);
            }
            Err(e) => errors.push(Error::errno(format!("{who}: unix_diag"), e)),
        }
    }
    let mut all: Option<Vec<UnixDiag>> = None;
    let mut out = Vec::new();
    for (&ino, d) in &diags {
        let (pi, fi) = held[&ino];
        let r = &procs[pi].fds[fi];
        let who = format!("process {} fd {}", procs[pi].pid, r.fd);
        match role(ino, d, &diags, &mut all, procs[pi].policies) {
            Ok((role, action)) => out.push(Planned {
                ino,
                holder: (pi, fi),
                diag: d.clone(),
                role,
                action,
            }),
            Err(what) => errors.push(not_safe(&who, &r.path, &what)),
        }
    }
    (out, errors)
}

/// The role of socket `ino`, and the SOCKET action taken for its outside peer; or what
/// makes it not checkpoint safe.
fn role(
    ino: u64,
    d: &UnixDiag,
    held: &BTreeMap<u64, UnixDiag>,
    all: &mut Option<Vec<UnixDiag>>,
    policies: &ProcessPolicies,
) -> std::result::Result<(Role, Option<SocketAction>), String> {
    let kind = format!("a UNIX {} socket", type_name(d.sock_type as i32));
    let in_set = |ino: u32| held.contains_key(&(ino as u64));
    match d.state {
        LISTENING => {
            let outside: Vec<u32> = d.icons.iter().copied().filter(|c| !in_set(*c)).collect();
            if let Some(c) = outside.first() {
                return Err(format!(
                    "{kind} listening with a connection from socket:[{c}], outside the checkpoint, waiting in its queue,"
                ));
            }
            let queue = d.icons.iter().map(|&c| c as u64).collect();
            return Ok((
                Role::Listening {
                    backlog: d.wqueue,
                    queue,
                },
                None,
            ));
        }
        UNCONNECTED => return Ok((Role::Unconnected, None)),
        // a datagram socket another connected to shows as connected, with no peer of its
        // own; an unnamed one with no peer is one whose peer has gone
        _ if d.sock_type == libc::SOCK_DGRAM as u8 && d.peer == 0 => {
            let role = if d.name.is_some() {
                Role::Unconnected
            } else {
                Role::Closed
            };
            return Ok((role, None));
        }
        _ => {}
    }
    if d.peer != 0 && in_set(d.peer) {
        let listener = held.iter().find(|(_, l)| {
            l.state == LISTENING
                && d.sock_type != libc::SOCK_DGRAM as u8
                && l.name.is_some()
                && l.name == d.name
                && l.vfs_ino == d.vfs_ino
        });
        return Ok(match listener {
            Some((&listener, _)) => (Role::Accepted { listener }, None),
            None => (Role::Connected, None),
        });
    }
    if let Some((&listener, _)) = held
        .iter()
        .find(|(_, l)| l.state == LISTENING && l.icons.contains(&(ino as u32)))
    {
        if d.wqueue > 0 {
            return Err(format!(
                "{kind} with data sent on a connection not yet accepted by socket:[{listener}]"
            ));
        }
        return Ok((Role::Waiting { listener }, None));
    }
    // outside: the peer, or the outside listener whose queue holds the connection
    let peer_name = if d.peer != 0 {
        Some(
            sock_diag::unix_diag(d.peer)
                .map_err(|e| format!("{kind} (its peer: {e})"))?
                .name,
        )
    } else {
        if all.is_none() {
            *all = Some(sock_diag::unix_diag_all().map_err(|e| format!("{kind} ({e})"))?);
        }
        all.iter()
            .flatten()
            .find(|l| l.state == LISTENING && l.icons.contains(&(ino as u32)))
            .map(|l| l.name.clone())
    };
    let Some(peer_name) = peer_name else {
        // no peer anywhere: it has gone
        return Ok((Role::Closed, None));
    };
    let address = address(peer_name.as_deref());
    let action = policies.socket_action(&address);
    let whose = format!("{kind} whose peer ({address}) is outside the checkpoint");
    match action {
        SocketAction::Refuse => Err(whose),
        SocketAction::Repair => Err(format!(
            "{whose}, with SOCKET REPAIR (a UNIX connection cannot be joined again to an outside peer; use RECONNECT or CLOSE),"
        )),
        SocketAction::Close => Ok((Role::Closed, Some(action))),
        SocketAction::Reconnect => match peer_name {
            None => Err(format!(
                "{whose}, with SOCKET RECONNECT (its peer has no name to connect to),"
            )),
            Some(_) if d.rqueue > 0 => Err(format!(
                "{whose}, with SOCKET RECONNECT and {} bytes from that peer unread (a new connection would lose them),",
                d.rqueue
            )),
            Some(to) => Ok((Role::Reconnect { to }, Some(action))),
        },
    }
}

/// Sockets cpr cannot restore, each one error (what `collect` refuses first; `cpr -c
/// --dry-run` lists them all).
pub(super) fn refusals(procs: &[ProcessFds<'_>], members: &[Member]) -> Vec<Error> {
    plan(procs, members).1
}

/// What `cpr -i` and `cpr -c --dry-run` say of a socket, from its record.
pub fn disposition(r: &UnixSocketRecord) -> String {
    let t = type_name(r.sock_type);
    let name = r
        .name
        .as_ref()
        .map(|n| format!(" bound to '{}'", shown(&n.raw)))
        .unwrap_or_default();
    match &r.role {
        Role::Connected => format!("unix {t}{name}, connected in the checkpoint"),
        Role::Listening { backlog, queue } => format!(
            "unix {t}{name}, listening (backlog {backlog}, {} waiting)",
            queue.len()
        ),
        Role::Accepted { .. } => format!("unix {t}{name}, accepted, connected in the checkpoint"),
        Role::Waiting { .. } => format!("unix {t}, waiting to be accepted"),
        Role::Unconnected => format!("unix {t}{name}, unconnected"),
        Role::Closed if r.policy.is_some() => {
            format!("unix {t}{name}, CLOSE (SOCKET policy: its peer was outside)")
        }
        Role::Closed => format!("unix {t}{name}, its peer gone: comes back closed"),
        Role::Reconnect { to } => format!("unix {t}{name}, RECONNECT to '{}'", shown(to)),
    }
}

/// Once every process is read: refuses the sockets cpr cannot restore, and saves each
/// socket's role, name, options and queued messages.
pub(super) fn collect(
    procs: &mut [ProcessFds<'_>],
    members: &[Member],
    writer: &mut StatefileWriter,
) -> Result<Vec<UnixSocketRecord>> {
    let (planned, errors) = plan(procs, members);
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut out = Vec::new();
    for p in planned {
        let (pi, fi) = p.holder;
        let pid = procs[pi].pid;
        let r = &procs[pi].fds[fi];
        let who = format!("process {pid} fd {} ({})", r.fd, r.path);
        let ours = crate::sys::steal_fd(pid, r.fd).ctx(&who)?;
        let record = save(&p, pid, ours.as_fd(), &who, &r.path, writer)?;
        out.push(record);
    }
    for r in &out {
        // `cpr -i` shows each socket with what restart does with it
        for p in procs.iter_mut() {
            for f in p.fds.iter_mut() {
                if let FdKind::UnixSocket {
                    ino, disposition, ..
                } = &mut f.kind
                    && *ino == r.ino
                {
                    *disposition = Some(self::disposition(r));
                }
            }
        }
    }
    Ok(out)
}

/// The record of one planned socket, its queue saved in the statefile.
fn save(
    p: &Planned,
    pid: i32,
    fd: std::os::fd::BorrowedFd<'_>,
    who: &str,
    link: &str,
    writer: &mut StatefileWriter,
) -> Result<UnixSocketRecord> {
    let d = &p.diag;
    let sock_type = d.sock_type as i32;
    let raw = fd.as_raw_fd();
    let opt = |name| get_int_opt(raw, libc::SOL_SOCKET, name).ctx(who);
    let eof = d.shutdown & RCV_SHUTDOWN != 0;
    // a listener's queue holds connections; an unconnected stream socket nothing
    let peekable = match p.role {
        Role::Listening { .. } => false,
        Role::Unconnected => sock_type == libc::SOCK_DGRAM,
        _ => true,
    };
    let (queued, senders) = if peekable {
        peek_queue(raw, sock_type, (d.rqueue as usize, eof), who, link)?
    } else {
        (Vec::new(), Vec::new())
    };
    let data = if queued.is_empty() {
        None
    } else {
        let rel = crate::statefile::layout::unix_socket_data_path(p.ino);
        writer.write_file(&rel, &queued.concat())?;
        Some(rel)
    };
    let timeout = |t: TimeVal| t.tv_sec() * 1_000_000 + t.tv_usec();
    let options = MoreOptions {
        rcvtimeo: timeout(socket::getsockopt(&fd, sockopt::ReceiveTimeout).ctx(who)?),
        sndtimeo: timeout(socket::getsockopt(&fd, sockopt::SendTimeout).ctx(who)?),
        rcvlowat: opt(libc::SO_RCVLOWAT)?,
        passsec: get_int_opt(raw, libc::SOL_SOCKET, libc::SO_PASSSEC)
            .ok()
            .map(|v| v != 0),
    };
    Ok(UnixSocketRecord {
        ino: p.ino,
        peer: if p.role == Role::Connected || matches!(p.role, Role::Accepted { .. }) {
            d.peer as u64
        } else {
            0
        },
        sock_type,
        sndbuf: opt(libc::SO_SNDBUF)?,
        rcvbuf: opt(libc::SO_RCVBUF)?,
        passcred: opt(libc::SO_PASSCRED)? != 0,
        shutdown: d.shutdown & (RCV_SHUTDOWN | SEND_SHUTDOWN),
        lengths: queued.iter().map(Vec::len).collect(),
        data,
        role: p.role.clone(),
        name: d.name.as_ref().map(|raw| name(raw, d.vfs_ino, pid)),
        senders: if sock_type == libc::SOCK_DGRAM {
            senders
        } else {
            Vec::new()
        },
        options,
        policy: p.action,
    })
}

/// A bound name, with its socket file's mode and owner if the path still names it.
fn name(raw: &[u8], vfs_ino: Option<u32>, pid: i32) -> Name {
    if raw.first() == Some(&0) || raw.is_empty() {
        return Name {
            raw: raw.to_vec(),
            path: None,
            ino: 0,
            file: None,
        };
    }
    let given = Path::new(std::ffi::OsStr::from_bytes(raw));
    let path = if given.is_absolute() {
        given.to_path_buf()
    } else {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .unwrap_or_default()
            .join(given)
    };
    let ino = vfs_ino.unwrap_or(0);
    let file = std::fs::symlink_metadata(&path)
        .ok()
        .filter(|m| m.file_type().is_socket() && m.ino() == ino as u64)
        .map(|m| (m.mode() & 0o7777, m.uid(), m.gid()));
    Name {
        raw: raw.to_vec(),
        path: Some(path.to_string_lossy().into_owned()),
        ino,
        file,
    }
}

/// Messages waiting in a socket, with each one's sender's name if it had one.
type Queue = (Vec<Vec<u8>>, Vec<Option<Vec<u8>>>);

fn peek_queue(
    fd: RawFd,
    sock_type: i32,
    rqueue: (usize, bool),
    who: &str,
    link: &str,
) -> Result<Queue> {
    let old = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).ctx(who)?;
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0).ctx(who)?;
    let walked = walk_queue(fd, sock_type, rqueue, who, link);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old).ctx(who)?;
    walked
}

/// `rqueue`: the bytes waiting (stream, seqpacket) and whether the receiving side is
/// shut down.
fn walk_queue(
    fd: RawFd,
    sock_type: i32,
    (rqueue, eof): (usize, bool),
    who: &str,
    link: &str,
) -> Result<Queue> {
    // a peeked empty message is passed over by the next peek, so datagram and seqpacket
    // queues are walked until nothing is left (EAGAIN); but a stream, and a seqpacket
    // socket shut down for reading, read 0 at the end, so those stop at the bytes
    // unix_diag counted (empty messages after them cannot be told from the end)
    let counted = sock_type == libc::SOCK_STREAM || (sock_type == libc::SOCK_SEQPACKET && eof);
    let mut msgs = Vec::new();
    let mut senders = Vec::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; PEEK_BUFFER];
    loop {
        if counted && total >= rqueue {
            break;
        }
        if msgs.len() >= 1 << 20 {
            return Err(not_safe(
                who,
                link,
                "a UNIX socket with over a million queued messages",
            ));
        }
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 253], libc::ucred);
        let msg = match socket::recvmsg::<UnixAddr>(fd, &mut iov, Some(&mut cmsg), flags) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(Error::errno(format!("{who}: peeking"), e)),
        };
        let (n, got) = (msg.bytes, msg.flags);
        // no name at all (length 0) for a stream, or a sender without one: nix's
        // UnixAddr must not be asked for its path then
        let named = |a: &&UnixAddr| socket::SockaddrLike::len(*a) as usize > 2;
        let sender =
            msg.address
                .as_ref()
                .filter(named)
                .and_then(|a| match (a.path(), a.as_abstract()) {
                    (Some(p), _) => Some(p.as_os_str().as_bytes().to_vec()),
                    (None, Some(name)) => Some([&[0u8][..], name].concat()),
                    _ => None,
                });
        let mut what = None;
        for c in msg.cmsgs().ctx(who)? {
            match c {
                ControlMessageOwned::ScmRights(fds) => {
                    for f in fds {
                        let _ = nix::unistd::close(f);
                    }
                    what = Some("descriptors in flight (SCM_RIGHTS)");
                }
                // a receiver with SO_PASSCRED sees credentials on every message; those
                // of a message sent with none (pid 0) are what a refill gives too
                ControlMessageOwned::ScmCredentials(c) if c.pid() == 0 => {}
                ControlMessageOwned::ScmCredentials(_) => {
                    what = what.or(Some("credentials (SCM_CREDENTIALS) of queued messages"));
                }
                _ => what = what.or(Some("ancillary data of queued messages")),
            }
        }
        if got.contains(MsgFlags::MSG_CTRUNC) {
            what = what.or(Some("ancillary data of queued messages"));
        }
        if got.contains(MsgFlags::MSG_TRUNC) {
            what = what.or(Some("a queued message larger than 1 MiB"));
        }
        if n == 0 && counted && sock_type != libc::SOCK_STREAM {
            what = what.or(Some("an empty message queued before its end of file"));
        }
        if let Some(what) = what {
            return Err(not_safe(who, link, &format!("a UNIX socket with {what}")));
        }
        if n == 0 && sock_type == libc::SOCK_STREAM {
            break;
        }
        msgs.push(buf[..n].to_vec());
        senders.push(sender);
        total += n;
    }
    if sock_type == libc::SOCK_STREAM && msgs.len() > 1 {
        msgs = vec![msgs.concat()];
        senders.truncate(1);
    }
    Ok((msgs, senders))
}

/// Checks the records of the statefile: types, options, names, and that every socket a
/// record names (peer, listener, queued client) is saved, of the same type, once.
fn validate(records: &[UnixSocketRecord]) -> Result<()> {
    let bad = |what: String| crate::statefile::reader::damaged_record(what);
    let find = |ino: u64| records.iter().find(|p| p.ino == ino && ino != 0);
    for r in records {
        let who = format!("socket:[{}]", r.ino);
        if !matches!(
            r.sock_type,
            libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET
        ) {
            return Err(bad(format!("{who}: type {}", r.sock_type)));
        }
        if r.sndbuf < 0 || r.rcvbuf < 0 || r.shutdown & !(RCV_SHUTDOWN | SEND_SHUTDOWN) != 0 {
            return Err(bad(format!("{who}: buffer sizes or shutdown")));
        }
        if records.iter().filter(|p| p.ino == r.ino).count() != 1 {
            return Err(bad(format!("{who}: saved twice")));
        }
        if let Some(n) = &r.name {
            let path_ok = match &n.path {
                Some(p) => p.starts_with('/') && !p.as_bytes().contains(&0),
                None => n.raw.first() == Some(&0),
            };
            if !path_ok || n.raw.is_empty() || n.raw.len() > 107 {
                return Err(bad(format!("{who}: its name")));
            }
        }
        if !r.senders.is_empty() && r.senders.len() != r.lengths.len() {
            return Err(bad(format!("{who}: senders of its messages")));
        }
        let same_type =
            |ino: u64| find(ino).filter(|p| p.sock_type == r.sock_type && p.ino != r.ino);
        let ok = match &r.role {
            Role::Connected if r.peer == r.ino => {
                r.sock_type == libc::SOCK_DGRAM && r.name.is_some()
            }
            Role::Connected => same_type(r.peer).is_some_and(|p| {
                p.peer == r.ino || (r.sock_type == libc::SOCK_DGRAM && p.name.is_some())
            }),
            Role::Accepted { listener } => {
                same_type(r.peer).is_some_and(|p| p.peer == r.ino && p.role == Role::Connected)
                    && same_type(*listener).is_some_and(|l| {
                        matches!(l.role, Role::Listening { .. }) && l.name.is_some()
                    })
            }
            Role::Listening { queue, .. } => {
                r.name.is_some()
                    && r.sock_type != libc::SOCK_DGRAM
                    && queue.iter().all(|&c| {
                        same_type(c).is_some_and(|c| c.role == Role::Waiting { listener: r.ino })
                    })
            }
            Role::Waiting { listener } => same_type(*listener).is_some_and(
                |l| matches!(&l.role, Role::Listening { queue, .. } if queue.contains(&r.ino)),
            ),
            Role::Unconnected | Role::Closed => r.peer == 0,
            Role::Reconnect { to } => r.peer == 0 && !to.is_empty() && to.len() <= 107,
        };
        if !ok {
            return Err(bad(format!("{who}: its peer, listener or queue")));
        }
    }
    Ok(())
}

/// The address of a saved name, for bind and connect.
fn unix_addr(raw: &[u8], path: Option<&str>) -> Result<UnixAddr> {
    let made = match (raw.split_first(), path) {
        (Some((0, name)), _) => UnixAddr::new_abstract(name),
        (_, Some(path)) => UnixAddr::new(path),
        _ => UnixAddr::new(std::ffi::OsStr::from_bytes(raw)),
    };
    made.map_err(|e| Error::errno(format!("'{}'", shown(raw)), e))
}

/// What restart did on disk to bind names: socket files made at their paths (removed
/// again if the restart fails), and the socket files of names whose file had been
/// removed before the checkpoint, kept meanwhile at a temporary name, by socket inode,
/// so that others can connect to them (always removed at the end).
#[derive(Default)]
struct Created {
    files: Vec<PathBuf>,
    temp: BTreeMap<u64, PathBuf>,
}

impl Created {
    /// The temporary socket files removed; the others given their mode and owner.
    fn finish(mut self, names: &[&Name]) -> Result<()> {
        for (_, t) in std::mem::take(&mut self.temp) {
            std::fs::remove_file(&t).map_err(|e| Error::io(format!("'{}'", t.display()), e))?;
        }
        for n in names {
            if let (Some(path), Some((mode, uid, gid))) = (&n.path, n.file)
                && self.files.iter().any(|f| f.as_os_str() == path.as_str())
            {
                let who = format!("'{path}'");
                std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                    .map_err(|e| Error::io(&who, e))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io(&who, e))?;
            }
        }
        self.files.clear();
        Ok(())
    }

    /// Where to connect to socket `ino` bound to `n`.
    fn addr_of(&self, ino: u64, n: &Name) -> Result<UnixAddr> {
        match self.temp.get(&ino) {
            Some(t) => UnixAddr::new(t).map_err(|e| Error::errno(format!("'{}'", t.display()), e)),
            None => unix_addr(&n.raw, n.path.as_deref()),
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for p in self.files.iter().chain(self.temp.values()) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds socket `ino` to a path whose socket file had been removed before the
/// checkpoint: whatever is at the path now is moved aside and missing directories are
/// made for the time of bind(2); the new socket file then waits at a temporary name.
fn bind_removed(
    fd: &OwnedFd,
    ino: u64,
    path: &Path,
    created: &mut Created,
    who: &str,
) -> Result<()> {
    let io = |e| Error::io(who, e);
    let occupied = std::fs::symlink_metadata(path).is_ok();
    let aside = PathBuf::from(format!(
        "{}.cpr-aside-{}",
        path.display(),
        std::process::id()
    ));
    let mut base = path.parent().unwrap_or(Path::new("/"));
    let mut missing = Vec::new();
    while !base.exists() {
        missing.push(base.to_path_buf());
        base = base.parent().unwrap_or(Path::new("/"));
    }
    let temp = base.join(format!(".cpr-sock-{}-{ino}", std::process::id()));
    if occupied {
        std::fs::rename(path, &aside).map_err(io)?;
    }
    let mut made_dirs = Vec::new();
    let mut bound = missing.iter().rev().try_for_each(|d| {
        std::fs::create_dir(d)?;
        made_dirs.push(d.clone());
        Ok(())
    });
    if bound.is_ok() {
        bound = UnixAddr::new(path)
            .and_then(|a| socket::bind(fd.as_raw_fd(), &a))
            .map_err(std::io::Error::from)
            .and_then(|()| std::fs::rename(path, &temp));
    }
    for d in made_dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
    if occupied {
        std::fs::rename(&aside, path).map_err(io)?;
    }
    bound.map_err(io)?;
    created.temp.insert(ino, temp);
    Ok(())
}

/// A new socket of `sock_type`, close-on-exec.
fn new_socket(sock_type: i32, who: &str) -> Result<OwnedFd> {
    let t = match sock_type {
        libc::SOCK_STREAM => socket::SockType::Stream,
        libc::SOCK_DGRAM => socket::SockType::Datagram,
        _ => socket::SockType::SeqPacket,
    };
    socket::socket(socket::AddressFamily::Unix, t, SockFlag::SOCK_CLOEXEC, None).ctx(who)
}

/// Whether a socket file is bound by a live socket (a listener that runs on, say).
fn bound_by_live_socket(ino: u64) -> Result<bool> {
    let all = sock_diag::unix_diag_all().ctx("unix_diag")?;
    Ok(all.iter().any(|d| d.vfs_ino.map(u64::from) == Some(ino)))
}

/// Binds socket `ino` to its saved name. A socket file left at the path by the
/// checkpointed socket itself (same inode, no live socket bound to it) is removed first;
/// anything else there, or an abstract name in use, is "Address already in use" naming
/// it. A name whose socket file had been removed is bound beside whatever is there.
fn bind_name(fd: &OwnedFd, ino: u64, n: &Name, created: &mut Created) -> Result<()> {
    let who = format!(
        "'{}'",
        n.path
            .as_deref()
            .map_or_else(|| shown(&n.raw), str::to_string)
    );
    let in_use = || Error::errno(&who, Errno::EADDRINUSE);
    if let Some(path) = &n.path {
        if n.file.is_none() {
            return bind_removed(fd, ino, Path::new(path), created, &who);
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() && m.ino() == n.ino as u64 && n.ino != 0 => {
                if bound_by_live_socket(m.ino())? {
                    return Err(in_use());
                }
                std::fs::remove_file(path).map_err(|e| Error::io(&who, e))?;
            }
            Ok(_) => return Err(in_use()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&who, e)),
        }
    }
    let addr = unix_addr(&n.raw, n.path.as_deref())?;
    match socket::bind(fd.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(Errno::EADDRINUSE) => return Err(in_use()),
        Err(e) => return Err(Error::errno(&who, e)),
    }
    if let Some(path) = &n.path {
        created.files.push(PathBuf::from(path));
    }
    Ok(())
}

/// Connects `fd` to `addr` (named `name` in messages) without waiting; a listener that
/// is not there, or whose queue is full, is an error naming it.
fn connect_to(fd: &OwnedFd, addr: &UnixAddr, name: &[u8], who: &str) -> Result<()> {
    let flags = nix::fcntl::OFlag::from_bits_truncate(
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).ctx(who)?,
    );
    let set = |f| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(f)).ctx(who);
    set(flags | nix::fcntl::OFlag::O_NONBLOCK)?;
    let done = socket::connect(fd.as_raw_fd(), addr);
    set(flags)?;
    done.map_err(|e| Error::errno(format!("{who}: connecting to '{}'", shown(name)), e))
}

/// Restart, in cpr: every socket made again, by inode: named, listening, connected,
/// refilled, with its options and shutdown state. All or nothing: socket files made
/// before a failure are removed.
pub(super) fn open_all(
    files: &[SharedFile],
    records: &[UnixSocketRecord],
    sf: &Statefile,
) -> Result<BTreeMap<u64, OwnedFd>> {
    validate(records)?;
    // names whose socket file was still there first: one removed before the checkpoint
    // may share the path and is bound beside it (make_room)
    let mut ordered: Vec<UnixSocketRecord> = records.to_vec();
    ordered.sort_by_key(|r| r.name.as_ref().is_some_and(|n| n.file.is_none()));
    let records = &ordered[..];
    let mut created = Created::default();
    let mut made: BTreeMap<u64, OwnedFd> = BTreeMap::new();
    let by_ino: BTreeMap<u64, &UnixSocketRecord> = records.iter().map(|r| (r.ino, r)).collect();
    make_named(records, &by_ino, &mut made, &mut created)?;
    make_pairs(records, &by_ino, &mut made, &mut created)?;
    make_through_listeners(records, &by_ino, &mut made, &created)?;
    make_outside_ends(records, &mut made, &mut created, sf)?;
    for r in records {
        if !matches!(r.role, Role::Closed) && r.data.is_some() {
            refill_from_senders(r, &by_ino, &made, &created, sf)?;
        }
    }
    for r in records {
        let Some(fd) = made.get(&r.ino) else {
            continue;
        };
        if connects_by_name(r, &by_ino)
            && let Some(n) = &by_ino[&r.peer].name
        {
            let addr = created.addr_of(r.peer, n)?;
            connect_to(fd, &addr, &n.raw, &format!("socket:[{}]", r.ino))?;
        }
        set_options(fd, r)?;
    }
    for f in files {
        if let FdKind::UnixSocket { ino, .. } = f.template.kind
            && !made.contains_key(&ino)
        {
            return Err(crate::statefile::reader::damaged_record(format!(
                "socket:[{ino}]: no saved socket"
            )));
        }
    }
    let names: Vec<&Name> = records.iter().filter_map(|r| r.name.as_ref()).collect();
    created.finish(&names)?;
    Ok(made)
}

/// A datagram socket connected to a named one that is not connected back (or to
/// itself): made on its own, and connected to the name once every queue is refilled.
fn connects_by_name(r: &UnixSocketRecord, by_ino: &BTreeMap<u64, &UnixSocketRecord>) -> bool {
    r.role == Role::Connected
        && r.sock_type == libc::SOCK_DGRAM
        && (r.peer == r.ino || by_ino.get(&r.peer).is_some_and(|p| p.peer != r.ino))
}

/// Sockets whose peer is gone (one end of a pair whose other end is closed, after
/// refilling) or was outside and is connected to again (RECONNECT).
fn make_outside_ends(
    records: &[UnixSocketRecord],
    made: &mut BTreeMap<u64, OwnedFd>,
    created: &mut Created,
    sf: &Statefile,
) -> Result<()> {
    for r in records {
        let who = format!("socket:[{}]", r.ino);
        match &r.role {
            Role::Closed => {
                let (kept, gone) = sock_diag::unix_pair(r.sock_type).ctx(&who)?;
                refill(&gone, &queued(r, sf)?, &who)?;
                drop(gone);
                made.insert(r.ino, kept);
            }
            Role::Reconnect { to } => {
                let fd = new_socket(r.sock_type, &who)?;
                if let Some(n) = &r.name {
                    bind_name(&fd, r.ino, n, created)?;
                }
                connect_to(&fd, &unix_addr(to, None)?, to, &who)?;
                made.insert(r.ino, fd);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Listening, unconnected, and datagram sockets connected to another by its name:
/// each a new socket, bound to its name, listening with its backlog.
fn make_named(
    records: &[UnixSocketRecord],
    by_ino: &BTreeMap<u64, &UnixSocketRecord>,
    made: &mut BTreeMap<u64, OwnedFd>,
    created: &mut Created,
) -> Result<()> {
    for r in records {
        let who = format!("socket:[{}]", r.ino);
        let own = match &r.role {
            Role::Listening { .. } | Role::Unconnected => true,
            Role::Connected => connects_by_name(r, by_ino),
            _ => false,
        };
        if !own {
            continue;
        }
        let fd = new_socket(r.sock_type, &who)?;
        if let Some(n) = &r.name {
            bind_name(&fd, r.ino, n, created)?;
        }
        if let Role::Listening { backlog, .. } = r.role {
            let backlog = socket::Backlog::new(backlog.min(i32::MAX as u32) as i32)
                .unwrap_or(socket::Backlog::MAXCONN);
            socket::listen(&fd, backlog).ctx(format!("{who}: listen"))?;
        }
        made.insert(r.ino, fd);
    }
    Ok(())
}

/// Pairs connected to each other that no listener made: socketpairs; a datagram end
/// with a name is bound to it.
fn make_pairs(
    records: &[UnixSocketRecord],
    by_ino: &BTreeMap<u64, &UnixSocketRecord>,
    made: &mut BTreeMap<u64, OwnedFd>,
    created: &mut Created,
) -> Result<()> {
    for r in records
        .iter()
        .filter(|r| r.role == Role::Connected && r.ino < r.peer)
    {
        let p = by_ino[&r.peer];
        if p.role != Role::Connected || p.peer != r.ino {
            continue;
        }
        let who = format!("socket:[{}]", r.ino);
        let (a, b) = sock_diag::unix_pair(r.sock_type).ctx(&who)?;
        for (fd, rec) in [(&a, r), (&b, p)] {
            if let (Some(n), libc::SOCK_DGRAM) = (&rec.name, rec.sock_type) {
                bind_name(fd, rec.ino, n, created)?;
            }
        }
        made.insert(r.ino, a);
        made.insert(p.ino, b);
    }
    Ok(())
}

/// Connections made through a listener: each accepted one connected and accepted again,
/// in turn, then each waiting one connected, in the order of the listener's queue.
fn make_through_listeners(
    records: &[UnixSocketRecord],
    by_ino: &BTreeMap<u64, &UnixSocketRecord>,
    made: &mut BTreeMap<u64, OwnedFd>,
    created: &Created,
) -> Result<()> {
    let listener_name = |l: u64| by_ino[&l].name.clone();
    for r in records {
        let Role::Accepted { listener } = r.role else {
            continue;
        };
        let who = format!("socket:[{}]", r.ino);
        let Some(n) = listener_name(listener) else {
            continue;
        };
        let client = new_socket(r.sock_type, &who)?;
        connect_to(&client, &created.addr_of(listener, &n)?, &n.raw, &who)?;
        let l = made.get(&listener).ok_or_else(|| {
            crate::statefile::reader::damaged_record(format!("{who}: its listener"))
        })?;
        let server = sock_diag::accept(l.as_raw_fd()).ctx(format!("{who}: accept"))?;
        made.insert(r.ino, server);
        made.insert(r.peer, client);
    }
    for r in records {
        let Role::Listening { queue, .. } = &r.role else {
            continue;
        };
        for &c in queue {
            let who = format!("socket:[{c}]");
            let n = r.name.as_ref().ok_or_else(|| {
                crate::statefile::reader::damaged_record(format!("{who}: its listener"))
            })?;
            let client = new_socket(by_ino[&c].sock_type, &who)?;
            connect_to(&client, &created.addr_of(r.ino, n)?, &n.raw, &who)?;
            made.insert(c, client);
        }
    }
    Ok(())
}

/// Refills the queue of `r`: each message sent by the socket that sent it, if that one
/// is restored with the sender's name, else by its peer, else by a new unnamed socket,
/// to `r`'s name.
fn refill_from_senders(
    r: &UnixSocketRecord,
    by_ino: &BTreeMap<u64, &UnixSocketRecord>,
    made: &BTreeMap<u64, OwnedFd>,
    created: &Created,
    sf: &Statefile,
) -> Result<()> {
    let who = format!("socket:[{}]", r.ino);
    let msgs = queued(r, sf)?;
    // a pair made by socketpair (or through a listener) is connected already
    let paired = r.peer != 0 && r.peer != r.ino && !connects_by_name(r, by_ino);
    let connected_peer = (paired && by_ino.get(&r.peer).is_some_and(|p| p.peer == r.ino))
        .then(|| made.get(&r.peer))
        .flatten();
    if r.sock_type != libc::SOCK_DGRAM || r.senders.is_empty() {
        let peer = connected_peer.ok_or_else(|| {
            crate::statefile::reader::damaged_record(format!("{who}: data but no peer"))
        })?;
        return refill(peer, &msgs, &who);
    }
    let spare = new_socket(libc::SOCK_DGRAM, &who)?;
    for (m, sender) in msgs.iter().zip(&r.senders) {
        let named = sender.as_ref().and_then(|s| {
            by_ino
                .values()
                .find(|o| o.name.as_ref().is_some_and(|n| &n.raw == s))
                .and_then(|o| made.get(&o.ino))
        });
        let to = r
            .name
            .as_ref()
            .map(|n| created.addr_of(r.ino, n))
            .transpose()?;
        match (named, connected_peer, &to) {
            (Some(from), _, Some(to)) => send_to(from, m, to, &who)?,
            (_, Some(peer), _) => refill(peer, std::slice::from_ref(m), &who)?,
            (_, None, Some(to)) => send_to(&spare, m, to, &who)?,
            (_, None, None) => {
                return Err(crate::statefile::reader::damaged_record(format!(
                    "{who}: data but no name and no peer"
                )));
            }
        }
    }
    Ok(())
}

fn send_to(from: &OwnedFd, m: &[u8], to: &UnixAddr, who: &str) -> Result<()> {
    socket::sendto(
        from.as_raw_fd(),
        m,
        to,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    )
    .map(drop)
    .map_err(|e| Error::errno(format!("{who}: refilling its data"), e))
}

/// The messages saved for `r`, cut by their lengths, which must add up to the file.
fn queued(r: &UnixSocketRecord, sf: &Statefile) -> Result<Vec<Vec<u8>>> {
    let data = match &r.data {
        Some(rel) if rel == &crate::statefile::layout::unix_socket_data_path(r.ino) => {
            sf.read(rel)?
        }
        None => Vec::new(),
        Some(rel) => {
            return Err(crate::statefile::reader::damaged_record(format!(
                "socket:[{}]: data file {rel}",
                r.ino
            )));
        }
    };
    let total = r.lengths.iter().try_fold(0usize, |a, &l| a.checked_add(l));
    if total != Some(data.len()) || (r.sock_type == libc::SOCK_STREAM && r.lengths.len() > 1) {
        return Err(crate::statefile::reader::damaged_record(format!(
            "socket:[{}]: message lengths do not match its data ({} bytes)",
            r.ino,
            data.len()
        )));
    }
    let mut out = Vec::with_capacity(r.lengths.len());
    let mut at = 0;
    for &l in &r.lengths {
        out.push(data[at..at + l].to_vec());
        at += l;
    }
    Ok(out)
}

/// Sends `msgs` from `sender` into its peer, in order, one message per send; the send
/// buffer is made large enough first (`set_options` sets it as saved afterwards).
fn refill(sender: &OwnedFd, msgs: &[Vec<u8>], who: &str) -> Result<()> {
    let fd = sender.as_raw_fd();
    let need: usize = msgs.iter().map(|m| m.len() + 1024).sum();
    if need > 0 {
        let size = (need.min(i32::MAX as usize / 4) as i32).max(1 << 16);
        let _ = set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size);
    }
    for m in msgs {
        let mut sent = 0;
        loop {
            match socket::send(
                fd,
                &m[sent..],
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::errno(format!("{who}: refilling its data"), e)),
            }
            if sent >= m.len() {
                break;
            }
        }
    }
    Ok(())
}

/// Buffer sizes, the other options, and the shutdown state of one socket.
fn set_options(sock: &OwnedFd, r: &UnixSocketRecord) -> Result<()> {
    let fd = sock.as_raw_fd();
    let who = format!("socket:[{}]", r.ino);
    // getsockopt gave twice what was set
    for (force, plain, v) in [
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, r.sndbuf),
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, r.rcvbuf),
    ] {
        if set_int_opt(fd, libc::SOL_SOCKET, force, v / 2).is_err() {
            set_int_opt(fd, libc::SOL_SOCKET, plain, v / 2).ctx(&who)?;
        }
    }
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PASSCRED, r.passcred as i32).ctx(&who)?;
    let o = &r.options;
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, o.rcvlowat.max(1)).ctx(&who)?;
    if let Some(on) = o.passsec {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_PASSSEC, on as i32).ctx(&who)?;
    }
    let tv = |us: i64| TimeVal::new(us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    socket::setsockopt(sock, sockopt::ReceiveTimeout, &tv(o.rcvtimeo)).ctx(&who)?;
    socket::setsockopt(sock, sockopt::SendTimeout, &tv(o.sndtimeo)).ctx(&who)?;
    if matches!(r.role, Role::Closed | Role::Listening { .. }) {
        return Ok(());
    }
    let how = match (
        r.shutdown & RCV_SHUTDOWN != 0,
        r.shutdown & SEND_SHUTDOWN != 0,
    ) {
        (true, true) => Some(socket::Shutdown::Both),
        (true, false) => Some(socket::Shutdown::Read),
        (false, true) => Some(socket::Shutdown::Write),
        (false, false) => None,
    };
    if let Some(how) = how {
        socket::shutdown(fd, how).ctx(format!("{who}: shutdown"))?;
    }
    Ok(())
}

/// A descriptor of the socket `ino` made by `open_all` (a socket has one description).
pub(super) fn open_end(made: &BTreeMap<u64, OwnedFd>, ino: u64) -> Result<OwnedFd> {
    let fd = made.get(&ino).ok_or_else(|| {
        crate::statefile::reader::damaged_record(format!("socket:[{ino}]: no saved socket"))
    })?;
    fd.try_clone().ctx(format!("socket:[{ino}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(ino: u64, peer: u64) -> UnixSocketRecord {
        UnixSocketRecord {
            ino,
            peer,
            sock_type: libc::SOCK_DGRAM,
            sndbuf: 4608,
            rcvbuf: 4608,
            passcred: false,
            shutdown: 0,
            lengths: Vec::new(),
            data: None,
            role: Role::Connected,
            name: None,
            senders: Vec::new(),
            options: MoreOptions::default(),
            policy: None,
        }
    }

    #[test]
    fn a_pair_must_name_each_other_with_one_type() {
        validate(&[end(1, 2), end(2, 1)]).unwrap();
        // a peer missing, naming another, of another type, an end saved twice, itself
        assert!(validate(&[end(1, 2)]).is_err());
        assert!(validate(&[end(1, 2), end(2, 3), end(3, 2)]).is_err());
        let stream = UnixSocketRecord {
            sock_type: libc::SOCK_STREAM,
            ..end(2, 1)
        };
        assert!(validate(&[end(1, 2), stream]).is_err());
        assert!(validate(&[end(1, 2), end(2, 1), end(2, 1)]).is_err());
        assert!(validate(&[end(1, 1)]).is_err());
        let bad_shutdown = UnixSocketRecord {
            shutdown: 4,
            ..end(2, 1)
        };
        assert!(validate(&[end(1, 2), bad_shutdown]).is_err());
    }

    fn named(r: UnixSocketRecord, path: &str, role: Role) -> UnixSocketRecord {
        UnixSocketRecord {
            sock_type: libc::SOCK_STREAM,
            name: Some(Name {
                raw: path.as_bytes().to_vec(),
                path: Some(path.into()),
                ino: 9,
                file: None,
            }),
            role,
            ..r
        }
    }

    #[test]
    fn listeners_their_queues_and_accepted_ends_must_agree() {
        let stream = |r: UnixSocketRecord| UnixSocketRecord {
            sock_type: libc::SOCK_STREAM,
            ..r
        };
        let listening = |queue| Role::Listening { backlog: 5, queue };
        let l = named(end(1, 0), "/l", listening(vec![4]));
        let accepted = named(end(2, 3), "/l", Role::Accepted { listener: 1 });
        let client = stream(end(3, 2));
        let waiting = UnixSocketRecord {
            role: Role::Waiting { listener: 1 },
            ..stream(end(4, 0))
        };
        validate(&[l.clone(), accepted.clone(), client.clone(), waiting.clone()]).unwrap();
        // a waiting client the listener does not list, a listener without a name, an
        // accepted end whose listener is no listener, a relative path
        let unlisted = named(end(1, 0), "/l", listening(vec![]));
        assert!(validate(&[unlisted, waiting.clone()]).is_err());
        let nameless = UnixSocketRecord {
            name: None,
            ..l.clone()
        };
        assert!(validate(&[nameless, waiting.clone()]).is_err());
        let wrong = named(end(2, 3), "/l", Role::Accepted { listener: 3 });
        assert!(validate(&[l.clone(), wrong, client, waiting.clone()]).is_err());
        let relative = named(end(1, 0), "l", listening(vec![4]));
        assert!(validate(&[relative, waiting]).is_err());
        let reconnect = UnixSocketRecord {
            role: Role::Reconnect { to: Vec::new() },
            ..end(5, 0)
        };
        assert!(validate(&[reconnect]).is_err());
    }
}

#[cfg(test)]
mod peek_tests {
    use super::*;

    #[test]
    fn a_datagram_queue_is_peeked_with_each_sender_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let rx = new_socket(libc::SOCK_DGRAM, "rx").unwrap();
        let tx = new_socket(libc::SOCK_DGRAM, "tx").unwrap();
        let anon = new_socket(libc::SOCK_DGRAM, "anon").unwrap();
        socket::bind(rx.as_raw_fd(), &UnixAddr::new(&a).unwrap()).unwrap();
        socket::bind(tx.as_raw_fd(), &UnixAddr::new(&b).unwrap()).unwrap();
        let to = UnixAddr::new(&a).unwrap();
        socket::sendto(tx.as_raw_fd(), b"one", &to, MsgFlags::empty()).unwrap();
        socket::sendto(anon.as_raw_fd(), b"", &to, MsgFlags::empty()).unwrap();
        let (msgs, senders) =
            peek_queue(rx.as_raw_fd(), libc::SOCK_DGRAM, (0, false), "rx", "rx").unwrap();
        assert_eq!(msgs, vec![b"one".to_vec(), Vec::new()]);
        assert_eq!(senders, vec![Some(b.as_os_str().as_bytes().to_vec()), None]);
    }
}
