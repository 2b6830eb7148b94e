//! POSIX message queues (mq_open): a descriptor of a queue is a `FdKind::MQueue` with
//! the queue's name; the queue itself (limits, owner, mode, every message with its
//! priority) is a statefile-level object, saved once in `shared/mqueue.json`.
//!
//! Reading the messages: the kernel has no peek for a queue. While the processes are
//! frozen, cpr receives every message (highest priority first, oldest first within a
//! priority) from a descriptor of its own and sends them back in the same order, which
//! gives the same queue: it orders by priority, then by arrival. The queue is whole
//! again before anything else happens, whatever the checkpoint's outcome.
//!
//! Notification (mq_notify): a registration by a process of the checkpoint, SIGEV_NONE
//! or SIGEV_SIGNAL, is kept on that process's descriptor record and made again by the
//! restored process. Its signal's value is not shown anywhere: cpr fires the
//! notification with a message of its own (received at once), reads the value from the
//! signal queued to the frozen process, takes that signal back (an injected
//! rt_sigtimedwait) and registers the process again (an injected mq_notify). Refused: a
//! SIGEV_THREAD registration (it needs a netlink socket) and a registration by a process
//! outside the checkpoint.
//!
//! Restart makes each queue again under its name, with its limits, messages, owner and
//! mode, before any process exists; a queue of that name with the same limits (the one
//! the checkpointed processes left) is taken back with the statefile's messages; with
//! other limits the restart fails naming it. Each descriptor opens it by name. A queue
//! whose name was removed while open is made under a name of cpr's
//! (`/cpr-removed-<ino>`), opened by it, and that name is removed once the processes run.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::memory::MmRecord;
use crate::engine::ptrace::{self, RemoteAddr};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{CoreRecord, Statefile, StatefileWriter};
use crate::sys::mqueue as sys;

pub const INDEX: &str = crate::statefile::layout::MQUEUE_INDEX;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
/// `SI_MESGQ`: si_code of a notification's signal.
const SI_MESGQ: i32 = -3;
/// Limits a record may ask for (the kernel's hard limits: HARD_MSGMAX, HARD_MSGSIZEMAX).
const MAX_MSGS: i64 = 65536;
const MAX_MSGSIZE: i64 = 16 << 20;
/// Priorities are below MQ_PRIO_MAX.
const PRIO_MAX: u32 = 32768;

/// A notification registration (mq_notify) of the process holding the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqNotify {
    /// SIGEV_SIGNAL (0) or SIGEV_NONE (1).
    pub kind: i32,
    pub signo: i32,
    /// sigev_value (sival_ptr; sival_int is its low 32 bits).
    pub value: u64,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub prio: u32,
    pub body: Vec<u8>,
}

/// A queue as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    /// `/NAME`, as mq_open takes it.
    pub name: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub maxmsg: i64,
    pub msgsize: i64,
    /// In the order they are received: highest priority first, oldest first.
    pub messages: Vec<Message>,
    /// Its name was removed while it is open.
    #[serde(default)]
    pub removed: bool,
    /// Its inode at checkpoint (names it at restart when removed).
    #[serde(default)]
    pub ino: u64,
}

/// The name a queue has at restart: its own, or cpr's for a removed one.
fn restart_name(name: &str, removed: bool, ino: u64) -> String {
    if removed {
        format!("/cpr-removed-{ino}")
    } else {
        name.to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqIndex {
    pub queues: Vec<QueueRecord>,
}

fn who(name: &str) -> String {
    format!("POSIX message queue {name}")
}

/// A queue name mq_open accepts: `/` then 1 to 255 bytes, no other `/`, no NUL.
fn valid_name(name: &str) -> bool {
    name.strip_prefix('/').is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 255 && !rest.contains('/') && !rest.contains('\0')
    })
}

/// For files::classify (and so `cpr -c --dry-run`): the record of descriptor `fd` of
/// process `pid` if it is a message queue; a SIGEV_THREAD registration refused.
pub fn classify(
    pid: i32,
    fd: i32,
    link: &str,
    flags: i32,
    cloexec: bool,
) -> Result<Option<FdRecord>> {
    let who_fd = format!("process {pid} fd {fd}");
    if !sys::is_mqueue(&format!("/proc/{pid}/fd/{fd}")).unwrap_or(false) {
        return Ok(None);
    }
    let (name, removed) = match link.strip_suffix(" (deleted)") {
        Some(name) => (name, true),
        None => (link, false),
    };
    if !valid_name(name) {
        return Err(Error::with_detail(
            &who_fd,
            Kind::CheckpointError,
            format!("{link}: a POSIX message queue of a name mq_open does not take"),
        ));
    }
    let q = sys::open_of_process(pid, fd).ctx(&who_fd)?;
    let ino = nix::sys::stat::fstat(&q).ctx(&who_fd)?.st_ino;
    let status = status_of(&q, name)?;
    if status.notify_pid != 0 && status.notify == SIGEV_THREAD {
        return Err(Error::with_detail(
            who(link),
            Kind::CheckpointError,
            "a notification registration with SIGEV_THREAD (a netlink socket) is not checkpoint safe",
        ));
    }
    let kind = FdKind::MQueue {
        name: name.to_string(),
        removed,
        ino,
        notify: None,
    };
    Ok(Some(FdRecord::object(fd, kind, link, flags, cloexec)))
}

fn outside(name: &str, pid: i32) -> Error {
    Error::with_detail(
        who(name),
        Kind::CheckpointError,
        format!("registered for notification by process {pid}, outside the checkpoint"),
    )
}

/// What `dump_queues` would refuse for processes `pids` (running or frozen) beyond what
/// `classify` refuses: a queue of theirs registered by a process outside them. For
/// `cpr -c --dry-run`.
pub fn refusals(pids: &[i32]) -> Result<()> {
    for &pid in pids {
        let Ok(fds) = crate::proc::ProcDir::open(pid).and_then(|d| d.fds()) else {
            continue; // gone: the checkpoint says so elsewhere
        };
        for fd in fds {
            if !sys::is_mqueue(&format!("/proc/{pid}/fd/{fd}")).unwrap_or(false) {
                continue;
            }
            let Ok(q) = sys::open_of_process(pid, fd) else {
                continue;
            };
            let name = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let status = status_of(&q, &name)?;
            if status.notify_pid != 0 && !pids.contains(&status.notify_pid) {
                return Err(outside(&name, status.notify_pid));
            }
            if status.notify_pid != 0 {
                refuse_ignored(&name, status.notify_pid, status)?;
            }
        }
    }
    Ok(())
}

fn status_of(q: &OwnedFd, name: &str) -> Result<sys::MqStatus> {
    let text = sys::read_status(q).ctx(who(name))?;
    sys::parse_status(&text).ok_or_else(|| {
        Error::with_detail(
            who(name),
            Kind::InvalidArgument,
            format!("unexpected status '{}'", text.trim()),
        )
    })
}

/// Saves every queue the (frozen) processes hold, once each, and puts on each
/// registered process's descriptor record its notification.
pub fn dump_queues(
    dumped: &mut [(CoreRecord, MmRecord)],
    writer: &mut StatefileWriter,
) -> Result<()> {
    // each queue (by inode): its name, whether removed, its holders (pid, fd) in process
    // then descriptor order
    type Holders = (String, bool, Vec<(i32, i32)>);
    let mut holders: BTreeMap<u64, Holders> = BTreeMap::new();
    for (core, _) in dumped.iter() {
        for r in &core.fds {
            if let FdKind::MQueue {
                name, removed, ino, ..
            } = &r.kind
            {
                holders
                    .entry(*ino)
                    .or_insert_with(|| (name.clone(), *removed, Vec::new()))
                    .2
                    .push((core.process.pid, r.fd));
            }
        }
    }
    if holders.is_empty() {
        return Ok(());
    }
    let mut index = MqIndex::default();
    for (&ino, (name, removed, held)) in &holders {
        let (mut rec, notify) = dump_queue(name, held)?;
        rec.removed = *removed;
        rec.ino = ino;
        index.queues.push(rec);
        if let Some((pid, fd, n)) = notify {
            let core = dumped.iter_mut().find(|(c, _)| c.process.pid == pid);
            if let Some(r) = core.and_then(|(c, _)| c.fds.iter_mut().find(|r| r.fd == fd))
                && let FdKind::MQueue { notify, .. } = &mut r.kind
            {
                *notify = Some(n);
            }
        }
    }
    writer.write_json(INDEX, &index)
}

/// A registration: the process, its descriptor of the queue, how.
type Registration = (i32, i32, MqNotify);

/// One queue: its attributes and messages (received and sent back); its registration,
/// read as the module says.
fn dump_queue(name: &str, held: &[(i32, i32)]) -> Result<(QueueRecord, Option<Registration>)> {
    let (pid, fd) = held[0];
    let q = sys::open_of_process(pid, fd).ctx(who(name))?;
    let attr = sys::getattr(&q).ctx(who(name))?;
    let st = nix::sys::stat::fstat(&q).ctx(who(name))?;
    let status = status_of(&q, name)?;
    let owner_fd = match status.notify_pid {
        0 => None,
        p => Some(
            held.iter()
                .find(|(h, _)| *h == p)
                .copied()
                .ok_or_else(|| outside(name, p))?,
        ),
    };
    if let Some((p, _)) = owner_fd {
        check_registration(name, p, status)?;
    }
    let messages = drain(&q, name, attr)?;
    // the queue is empty: fire the registration, learn its value, take its signal back
    let fired = match owner_fd {
        Some((p, _)) => fire(&q, name, p, status),
        None => Ok(None),
    };
    let refilled = refill(&q, name, &messages);
    let notify = fired.and_then(|n| {
        refilled?;
        let (Some((p, pfd)), Some(n)) = (owner_fd, n) else {
            return Ok(None);
        };
        register_in(p, pfd, n).map_err(|e| e.context(who(name)))?;
        Ok(Some((p, pfd, n)))
    })?;
    let rec = QueueRecord {
        name: name.to_string(),
        mode: st.st_mode & 0o777,
        uid: st.st_uid,
        gid: st.st_gid,
        maxmsg: attr.maxmsg,
        msgsize: attr.msgsize,
        messages,
        removed: false,
        ino: 0,
    };
    Ok((rec, notify))
}

/// Receives the `curmsgs` messages the queue holds.
fn drain(q: &OwnedFd, name: &str, attr: sys::MqAttr) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    for _ in 0..attr.curmsgs {
        match sys::receive(q, attr.msgsize as usize) {
            Ok((prio, body)) => out.push(Message { prio, body }),
            Err(e) => {
                // put back what was taken before saying so
                let _ = refill(q, name, &out);
                return Err(Error::errno(who(name), e).detail("receiving its messages"));
            }
        }
    }
    Ok(out)
}

/// Sends `messages` back, in order.
fn refill(q: &OwnedFd, name: &str, messages: &[Message]) -> Result<()> {
    for m in messages {
        sys::send(q, m.prio, &m.body)
            .ctx(who(name))
            .map_err(|e| e.detail("sending its messages back"))?;
    }
    Ok(())
}

/// On the empty queue, registered by frozen process `pid`: a message of cpr's own fires
/// the notification (which the kernel then removes) and is received at once. SIGEV_NONE
/// queues nothing; SIGEV_SIGNAL queues the signal to `pid`, whose value is read and the
/// signal taken back.
fn fire(q: &OwnedFd, name: &str, pid: i32, status: sys::MqStatus) -> Result<Option<MqNotify>> {
    let (kind, signo) = (status.notify, status.signo);
    sys::send(q, 0, &[])
        .ctx(who(name))
        .map_err(|e| e.detail("firing its notification"))?;
    sys::receive(q, sys::getattr(q).ctx(who(name))?.msgsize as usize)
        .ctx(who(name))
        .map_err(|e| e.detail("firing its notification"))?;
    if kind == SIGEV_NONE {
        return Ok(Some(MqNotify {
            kind,
            signo: 0,
            value: 0,
        }));
    }
    let queued = pending_of(pid, signo)?;
    let value = match queued.as_slice() {
        [info] if i32_at(info, 8) == SI_MESGQ => {
            u64::from_ne_bytes(info[24..32].try_into().expect("8 bytes"))
        }
        _ => {
            return Err(Error::with_detail(
                who(name),
                Kind::CheckpointError,
                format!("the signal of its notification did not reach process {pid}"),
            ));
        }
    };
    take_signal_back(pid, signo).map_err(|e| e.context(who(name)))?;
    Ok(Some(MqNotify { kind, signo, value }))
}

/// Before anything touches the queue: a registration by process `pid` that `fire` can
/// read and make again (its signal neither ignored, which would drop it, nor already
/// pending, which would hide it).
fn check_registration(name: &str, pid: i32, status: sys::MqStatus) -> Result<()> {
    let (kind, signo) = (status.notify, status.signo);
    let refuse = |why: String| Err(Error::with_detail(who(name), Kind::CheckpointError, why));
    if kind != SIGEV_NONE && kind != SIGEV_SIGNAL {
        return refuse(format!("notification kind {kind} is not checkpoint safe"));
    }
    if kind == SIGEV_NONE {
        return Ok(());
    }
    refuse_ignored(name, pid, status)?;
    if !pending_of(pid, signo)?.is_empty() {
        return refuse(format!(
            "signal {signo} of its notification is already pending in process {pid}: its value cannot be read"
        ));
    }
    Ok(())
}

/// A SIGEV_SIGNAL registration whose signal process `pid` ignores: the kernel would
/// drop the signal that tells its value.
fn refuse_ignored(name: &str, pid: i32, status: sys::MqStatus) -> Result<()> {
    let signo = status.signo;
    if status.notify != SIGEV_SIGNAL {
        return Ok(());
    }
    if !(1..=64).contains(&signo) {
        return Err(Error::with_detail(
            who(name),
            Kind::CheckpointError,
            format!("notification signal {signo} out of range"),
        ));
    }
    let text = crate::proc::ProcDir::open(pid)?.status_text()?;
    let ignored = crate::proc::status::field(&text, "SigIgn")
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .ok_or_else(|| {
            Error::with_detail(
                format!("process {pid}"),
                Kind::InvalidArgument,
                "no SigIgn in its status",
            )
        })?;
    if ignored & (1 << (signo - 1)) != 0 {
        return Err(Error::with_detail(
            who(name),
            Kind::CheckpointError,
            format!(
                "signal {signo} of its notification is ignored by process {pid}: its value cannot be read"
            ),
        ));
    }
    Ok(())
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The siginfos of signal `signo` pending for process `pid` (its main thread's own and
/// the process-wide ones).
fn pending_of(pid: i32, signo: i32) -> Result<Vec<Vec<u8>>> {
    let mut all = ptrace::peek_siginfo(pid, false)?;
    all.extend(ptrace::peek_siginfo(pid, true)?);
    Ok(all.into_iter().filter(|i| i32_at(i, 0) == signo).collect())
}

/// rt_sigtimedwait for `signo`, without waiting, in frozen process `pid`: takes the one
/// pending signal of that number (the notification's) off its queue.
fn take_signal_back(pid: i32, signo: i32) -> Result<()> {
    super::sysv_sem::with_injector(pid, |inj, page| {
        let set: u64 = 1 << (signo - 1);
        ptrace::write_mem(pid, page, &set.to_ne_bytes())?;
        ptrace::write_mem(pid, page + 8, &[0u8; 16])?; // timespec {0, 0}
        let info = page + 64;
        let got = inj.check(
            "rt_sigtimedwait",
            libc::SYS_rt_sigtimedwait,
            [page.as_u64(), info.as_u64(), (page + 8).as_u64(), 8, 0, 0],
        )?;
        if got as i32 != signo {
            return Err(Error::with_detail(
                format!("process {pid}"),
                Kind::CheckpointError,
                format!("took signal {got} back, not {signo}"),
            ));
        }
        Ok(())
    })
}

/// mq_notify(fd, how) injected into frozen process `pid`.
fn register_in(pid: i32, fd: i32, n: MqNotify) -> Result<()> {
    super::sysv_sem::with_injector(pid, |inj, page: RemoteAddr| {
        ptrace::write_mem(pid, page, &sigevent(n))?;
        inj.check(
            "mq_notify",
            libc::SYS_mq_notify,
            [fd as u64, page.as_u64(), 0, 0, 0, 0],
        )
        .map(drop)
    })
}

/// `struct sigevent` (64 bytes): value, signo, notify; the rest zero.
fn sigevent(n: MqNotify) -> [u8; 64] {
    let mut ev = [0u8; 64];
    ev[0..8].copy_from_slice(&n.value.to_ne_bytes());
    ev[8..12].copy_from_slice(&n.signo.to_ne_bytes());
    ev[12..16].copy_from_slice(&n.kind.to_ne_bytes());
    ev
}

/// In the restore child, once its descriptors are in place: the registrations the
/// process had, made again (the first descriptor of each queue that carries one).
pub fn restore_notify(records: &[FdRecord]) -> Result<()> {
    let mut done = BTreeSet::new();
    for r in records {
        let FdKind::MQueue {
            name,
            ino,
            notify: Some(n),
            ..
        } = &r.kind
        else {
            continue;
        };
        if !done.insert(*ino) {
            continue;
        }
        // the process's own descriptor, open at its number (files::restore)
        sys::notify(r.fd, Some((n.kind, n.signo, n.value)))
            .ctx(who(name))
            .map_err(|e| e.detail("mq_notify"))?;
    }
    Ok(())
}

/// For files::reopen: the queue opened again by its name at restart with the
/// descriptor's access mode and O_NONBLOCK.
pub fn reopen(name: &str, removed: bool, ino: u64, flags: i32) -> Result<OwnedFd> {
    if !valid_name(name) {
        return Err(Error::with_detail(
            who(name),
            Kind::InvalidArgument,
            "a name mq_open does not take",
        ));
    }
    let keep = libc::O_ACCMODE | libc::O_NONBLOCK;
    sys::open(&restart_name(name, removed, ino), flags & keep, 0, None).ctx(who(name))
}

/// Queues created by a restart: removed when dropped before `finish`; the names of
/// cpr's of removed queues are removed either way.
#[derive(Debug, Default)]
pub struct Created {
    names: Vec<String>,
    cprs: Vec<String>,
}

impl Created {
    /// The restart succeeded: they stay (those of removed queues without their names).
    pub fn finish(mut self) {
        self.names.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for name in self.names.iter().chain(&self.cprs) {
            let _ = sys::unlink(name);
        }
    }
}

fn check(rec: &QueueRecord) -> Result<()> {
    let bad = |what: &str| {
        Err(Error::with_detail(
            who(&rec.name),
            Kind::InvalidArgument,
            what.to_string(),
        ))
    };
    if !valid_name(&rec.name) {
        return bad("a name mq_open does not take");
    }
    if rec.mode > 0o777 {
        return bad("mode beyond permission bits");
    }
    if !(1..=MAX_MSGS).contains(&rec.maxmsg) || !(1..=MAX_MSGSIZE).contains(&rec.msgsize) {
        return bad("limits out of range");
    }
    if rec.messages.len() as i64 > rec.maxmsg {
        return bad("more messages than its limit");
    }
    if rec
        .messages
        .iter()
        .any(|m| m.prio >= PRIO_MAX || m.body.len() as i64 > rec.msgsize)
    {
        return bad("a message beyond its size limit or priority range");
    }
    Ok(())
}

/// Makes the queues of the statefiles again (each name once), before any process.
pub fn restore_queues(statefiles: &[&Statefile]) -> Result<Created> {
    let mut out = Created::default();
    let mut done = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for sf in statefiles {
        if !seen.insert(sf.path.clone()) || sf.entry(INDEX).is_none() {
            continue;
        }
        let index: MqIndex = sf.read_json(INDEX)?;
        // the statefile's owner (checked by restart's authority step): a queue it makes
        // or takes back is that user's, unless root checkpointed it
        let owner = sf.manifest.owner.uid;
        for rec in &index.queues {
            check(rec)
                .and_then(|()| check_owner(rec, owner))
                .map_err(|e| e.context(sf.path.display()))?;
            if done.insert(restart_name(&rec.name, rec.removed, rec.ino)) {
                restore_queue(rec, owner, &mut out).map_err(|e| e.context(sf.path.display()))?;
            }
        }
    }
    Ok(out)
}

/// A user's statefile makes only queues of that user (root's, any).
fn check_owner(rec: &QueueRecord, owner: u32) -> Result<()> {
    super::sysv_shm::check_ipc_owner(who(&rec.name), rec.uid, owner)
}

fn restore_queue(rec: &QueueRecord, owner: u32, out: &mut Created) -> Result<()> {
    let name = &restart_name(&rec.name, rec.removed, rec.ino);
    let create = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CREAT | libc::O_EXCL;
    let q = match sys::open(name, create, 0o600, Some((rec.maxmsg, rec.msgsize))) {
        Ok(q) => {
            if rec.removed {
                out.cprs.push(name.clone());
            } else {
                out.names.push(name.clone());
            }
            q
        }
        Err(Errno::EEXIST) => take_back(rec, owner)?,
        Err(e) => return Err(Error::errno(who(name), e).detail("mq_open")),
    };
    refill(&q, name, &rec.messages)?;
    sys::set_owner(&q, rec.uid, rec.gid, rec.mode)
        .ctx(who(name))
        .map_err(|e| e.detail("setting owner and mode"))
}

/// A queue of that name already there: the one the checkpointed processes left (same
/// limits, and the statefile owner's unless that is root) is emptied, to be filled with
/// the statefile's messages; another is refused.
fn take_back(rec: &QueueRecord, owner: u32) -> Result<OwnedFd> {
    let name = &restart_name(&rec.name, rec.removed, rec.ino);
    let q = sys::open(name, libc::O_RDWR | libc::O_NONBLOCK, 0, None).ctx(who(name))?;
    let attr = sys::getattr(&q).ctx(who(name))?;
    let holder = nix::sys::stat::fstat(&q).ctx(who(name))?.st_uid;
    if owner != 0 && holder != owner {
        return Err(Error::with_detail(
            who(name),
            Kind::FileExists,
            format!("a queue of that name exists, owned by uid {holder}"),
        ));
    }
    if (attr.maxmsg, attr.msgsize) != (rec.maxmsg, rec.msgsize) {
        return Err(Error::with_detail(
            who(name),
            Kind::FileExists,
            format!(
                "a queue of that name exists with other limits ({} messages of {} bytes)",
                attr.maxmsg, attr.msgsize
            ),
        ));
    }
    loop {
        match sys::receive(&q, attr.msgsize as usize) {
            Ok(_) => {}
            Err(Errno::EAGAIN) => return Ok(q),
            Err(e) => {
                return Err(Error::errno(who(name), e).detail("emptying the queue left there"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> QueueRecord {
        QueueRecord {
            name: "/q".into(),
            mode: 0o640,
            uid: 0,
            gid: 0,
            maxmsg: 2,
            msgsize: 8,
            messages: vec![Message {
                prio: 3,
                body: b"x".to_vec(),
            }],
            removed: false,
            ino: 0,
        }
    }

    #[test]
    fn hostile_records_are_refused() {
        assert!(check(&rec()).is_ok());
        let bad_name = ["", "/", "q", "/a/b", "/../x"];
        for n in bad_name {
            assert!(
                check(&QueueRecord {
                    name: n.into(),
                    ..rec()
                })
                .is_err(),
                "{n}"
            );
        }
        assert!(
            check(&QueueRecord {
                mode: 0o4000,
                ..rec()
            })
            .is_err()
        );
        assert!(check(&QueueRecord { maxmsg: 0, ..rec() }).is_err());
        let big = Message {
            prio: 0,
            body: vec![0; 9],
        };
        assert!(
            check(&QueueRecord {
                messages: vec![big],
                ..rec()
            })
            .is_err()
        );
        let prio = Message {
            prio: PRIO_MAX,
            body: vec![],
        };
        assert!(
            check(&QueueRecord {
                messages: vec![prio],
                ..rec()
            })
            .is_err()
        );
        let many = vec![rec().messages[0].clone(); 3];
        assert!(
            check(&QueueRecord {
                messages: many,
                ..rec()
            })
            .is_err()
        );
    }

    #[test]
    fn a_users_statefile_makes_only_that_users_queues() {
        let theirs = QueueRecord { uid: 1000, ..rec() };
        assert!(check_owner(&theirs, 1000).is_ok());
        assert!(check_owner(&theirs, 0).is_ok());
        let msg = check_owner(&rec(), 1000).unwrap_err().to_string();
        assert!(msg.contains("owned by uid 0"), "{msg}");
    }

    #[test]
    fn a_sigevent_is_laid_out_as_the_kernel_reads_it() {
        let ev = sigevent(MqNotify {
            kind: SIGEV_SIGNAL,
            signo: 10,
            value: 42,
        });
        assert_eq!(&ev[0..8], &42u64.to_ne_bytes());
        assert_eq!(&ev[8..12], &10i32.to_ne_bytes());
        assert_eq!(&ev[12..16], &0i32.to_ne_bytes());
    }
}
