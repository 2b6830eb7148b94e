//! UNIX domain sockets whose both ends are in the checkpoint (socketpairs: stream,
//! datagram, seqpacket). Dump: a descriptor `socket:[ino]` is looked up with unix_diag
//! (sock_diag netlink) for its type, state, name and peer; anything but an unnamed
//! connected UNIX socket is refused, and so is one whose peer no process of the
//! checkpoint holds. The data waiting in each socket is peeked (MSG_PEEK walked with
//! SO_PEEK_OFF, never consumed), message by message; queued descriptors (SCM_RIGHTS) or
//! credentials are refused rather than dropped. Restart: cpr makes each pair once,
//! refills each side by sending from its peer, sets the options and the shutdown state,
//! and every process that had an end inherits it (shared_fds.rs).

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::{Member, ProcessFds, SharedFile};
use super::sockets::{SocketFd, type_name};
use crate::attrfile::ProcessPolicies;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::sock_diag::{self, get_int_opt, set_int_opt};

/// The kernel's TCP_ESTABLISHED, the state of a connected UNIX socket.
const CONNECTED: u8 = 1;
/// Largest message cpr peeks; a larger one is refused, not cut.
const PEEK_BUFFER: usize = 1 << 20;
/// The kernel's sk_shutdown bits.
const RCV_SHUTDOWN: u8 = 1;
const SEND_SHUTDOWN: u8 = 2;

/// One end of a pair: its options and what was waiting in its receive queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixSocketRecord {
    pub ino: u64,
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
}

fn not_safe(who: &str, link: &str, what: &str) -> Error {
    Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("{link}: {what} is not checkpoint safe"),
    )
}

/// The record of a UNIX socket descriptor: a connected, unnamed socket, or "Checkpoint
/// error" naming what it is. Whether its peer is in the checkpoint is known once every
/// process is read (`collect`).
pub fn dump(s: &SocketFd, _policies: &ProcessPolicies) -> Result<FdRecord> {
    let who = s.who();
    let d = sock_diag::unix_diag(s.ino as u32).ctx(format!("{who}: unix_diag"))?;
    let kind = format!("a UNIX {} socket", type_name(d.sock_type as i32));
    if let Some(name) = &d.name {
        let shown = String::from_utf8_lossy(name).replace('\0', "@");
        return Err(s.not_safe(&format!("{kind} bound to '{shown}'")));
    }
    if d.state != CONNECTED || d.peer == 0 {
        return Err(s.not_safe(&format!("an unconnected {kind}")));
    }
    Ok(FdRecord::object(
        s.fd,
        FdKind::UnixSocket {
            ino: s.ino,
            peer: d.peer as u64,
            sock_type: d.sock_type as i32,
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

/// Sockets whose peer no process of the checkpoint holds, each one error (what `collect`
/// refuses first; `cpr -c --dry-run` lists them all).
pub(super) fn refusals(procs: &[ProcessFds<'_>], members: &[Member]) -> Vec<Error> {
    let held = holders(members, procs);
    let mut out = Vec::new();
    for (_, &(pi, fi)) in held.iter() {
        let r = &procs[pi].fds[fi];
        if let FdKind::UnixSocket {
            peer, sock_type, ..
        } = r.kind
            && !held.contains_key(&peer)
        {
            out.push(not_safe(
                &format!("process {} fd {}", procs[pi].pid, r.fd),
                &r.path,
                &format!(
                    "a UNIX {} socket whose peer socket:[{peer}] is outside the checkpoint",
                    type_name(sock_type)
                ),
            ));
        }
    }
    out
}

/// Once every process is read: refuses sockets whose peer is outside, and saves each
/// socket's options and queued messages.
pub(super) fn collect(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    writer: &mut StatefileWriter,
) -> Result<Vec<UnixSocketRecord>> {
    if let Some(e) = refusals(procs, members).into_iter().next() {
        return Err(e);
    }
    let mut out = Vec::new();
    for (ino, (pi, fi)) in holders(members, procs) {
        let r = &procs[pi].fds[fi];
        let FdKind::UnixSocket {
            peer, sock_type, ..
        } = r.kind
        else {
            continue;
        };
        let who = format!("process {} fd {} ({})", procs[pi].pid, r.fd, r.path);
        let ours = crate::sys::steal_fd(procs[pi].pid, r.fd).ctx(&who)?;
        let d = sock_diag::unix_diag(ino as u32).ctx(format!("{who}: unix_diag"))?;
        let fd = ours.as_raw_fd();
        let opt = |name| get_int_opt(fd, libc::SOL_SOCKET, name).ctx(&who);
        let eof = d.shutdown & RCV_SHUTDOWN != 0;
        let queued = peek_queue(fd, sock_type, (d.rqueue as usize, eof), &who, &r.path)?;
        let data = if queued.is_empty() {
            None
        } else {
            let rel = crate::statefile::layout::unix_socket_data_path(ino);
            writer.write_file(&rel, &queued.concat())?;
            Some(rel)
        };
        out.push(UnixSocketRecord {
            ino,
            peer,
            sock_type,
            sndbuf: opt(libc::SO_SNDBUF)?,
            rcvbuf: opt(libc::SO_RCVBUF)?,
            passcred: opt(libc::SO_PASSCRED)? != 0,
            shutdown: d.shutdown & (RCV_SHUTDOWN | SEND_SHUTDOWN),
            lengths: queued.iter().map(Vec::len).collect(),
            data,
        });
    }
    Ok(out)
}

/// The messages waiting in socket `fd`, looked at without consuming them: SO_PEEK_OFF
/// moves past each message peeked, and is put back as it was.
fn peek_queue(
    fd: RawFd,
    sock_type: i32,
    rqueue: (usize, bool),
    who: &str,
    link: &str,
) -> Result<Vec<Vec<u8>>> {
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
) -> Result<Vec<Vec<u8>>> {
    // a peeked empty message is passed over by the next peek, so datagram and seqpacket
    // queues are walked until nothing is left (EAGAIN); but a stream, and a seqpacket
    // socket shut down for reading, read 0 at the end, so those stop at the bytes
    // unix_diag counted (empty messages after them cannot be told from the end)
    let counted = sock_type == libc::SOCK_STREAM || (sock_type == libc::SOCK_SEQPACKET && eof);
    let mut msgs = Vec::new();
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
        let msg = match socket::recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), flags) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(Error::errno(format!("{who}: peeking"), e)),
        };
        let (n, got) = (msg.bytes, msg.flags);
        let mut what = None;
        for c in msg.cmsgs().ctx(who)? {
            match c {
                ControlMessageOwned::ScmRights(fds) => {
                    for f in fds {
                        let _ = nix::unistd::close(f);
                    }
                    what = Some("descriptors in flight (SCM_RIGHTS)");
                }
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
        total += n;
    }
    if sock_type == libc::SOCK_STREAM && msgs.len() > 1 {
        msgs = vec![msgs.concat()];
    }
    Ok(msgs)
}

/// Checks the records of the statefile: each socket's peer has a record naming it back,
/// of the same type.
fn validate(records: &[UnixSocketRecord]) -> Result<()> {
    let bad = |what: String| crate::statefile::reader::damaged_record(what);
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
        let peer = records
            .iter()
            .find(|p| p.ino == r.peer && p.peer == r.ino && p.ino != r.ino);
        match peer {
            Some(p) if p.sock_type == r.sock_type => {}
            _ => return Err(bad(format!("{who}: its peer socket:[{}]", r.peer))),
        }
        if records.iter().filter(|p| p.ino == r.ino).count() != 1 {
            return Err(bad(format!("{who}: saved twice")));
        }
    }
    Ok(())
}

/// Restart, in cpr: every socket pair, made once, refilled, with its options and
/// shutdown state, by inode.
pub(super) fn open_all(
    files: &[SharedFile],
    records: &[UnixSocketRecord],
    sf: &Statefile,
) -> Result<BTreeMap<u64, OwnedFd>> {
    validate(records)?;
    let mut made: BTreeMap<u64, OwnedFd> = BTreeMap::new();
    for r in records.iter().filter(|r| r.ino < r.peer) {
        let who = format!("socket:[{}]", r.ino);
        let Some(p) = records.iter().find(|p| p.ino == r.peer) else {
            continue;
        };
        let (a, b) = sock_diag::unix_pair(r.sock_type).ctx(&who)?;
        refill(&b, &queued(r, sf)?, &who)?;
        refill(&a, &queued(p, sf)?, &format!("socket:[{}]", p.ino))?;
        for (fd, rec) in [(&a, r), (&b, p)] {
            set_options(fd.as_raw_fd(), rec)?;
        }
        made.insert(r.ino, a);
        made.insert(p.ino, b);
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
    Ok(made)
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

/// Buffer sizes, SO_PASSCRED, and the shutdown state of one end.
fn set_options(fd: RawFd, r: &UnixSocketRecord) -> Result<()> {
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
}
