//! POSIX message queues for cpr itself (engine/objects/posix_mqueue.rs): a queue reached
//! through a process's descriptor, its attributes and status, its messages received and
//! sent back; made again by name at restart.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `MQUEUE_MAGIC`: statfs(2) f_type of the mqueue file system.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// What mq_getattr tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqAttr {
    pub flags: i64,
    pub maxmsg: i64,
    pub msgsize: i64,
    pub curmsgs: i64,
}

/// What reading a queue's file tells (`QSIZE:... NOTIFY:... SIGNO:... NOTIFY_PID:...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqStatus {
    /// Bytes of the messages queued.
    pub qsize: u64,
    /// The registration's sigev_notify (SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2);
    /// meaningful only with a `notify_pid`.
    pub notify: i32,
    pub signo: i32,
    /// The process registered with mq_notify; 0 for none.
    pub notify_pid: i32,
}

/// Whether `path` (such as `/proc/PID/fd/N`, followed) is on the mqueue file system.
pub fn is_mqueue(path: &str) -> Result<bool, Errno> {
    let st = nix::sys::statfs::statfs(path)?;
    Ok(st.filesystem_type().0 as i64 == MQUEUE_MAGIC)
}

/// Opens the queue behind descriptor `fd` of process `pid` (a new description of the same
/// queue, read-write, non-blocking), whether its name is still there or not.
pub fn open_of_process(pid: i32, fd: i32) -> Result<OwnedFd, Errno> {
    let path = CString::new(format!("/proc/{pid}/fd/{fd}")).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `path` is a NUL-terminated string that lives across the call.
    let raw = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    let raw = Errno::result(raw)?;
    // SAFETY: `raw` is a descriptor just opened, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn c_name(name: &str) -> Result<CString, Errno> {
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// mq_open(3): `flags` (with O_CLOEXEC added); with O_CREAT, `mode` and the limits
/// (`maxmsg`, `msgsize`).
pub fn open(
    name: &str,
    flags: i32,
    mode: u32,
    limits: Option<(i64, i64)>,
) -> Result<OwnedFd, Errno> {
    let name = c_name(name)?;
    // SAFETY: mq_attr is plain integers; all zeroes is a valid value.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    let attr_ptr = match limits {
        Some((maxmsg, msgsize)) => {
            attr.mq_maxmsg = maxmsg;
            attr.mq_msgsize = msgsize;
            &raw mut attr
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: `name` is NUL-terminated; with O_CREAT the kernel reads one mq_attr from
    // `attr_ptr` (or none: null), which lives across the call.
    let raw = unsafe {
        libc::mq_open(
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::mode_t,
            attr_ptr,
        )
    };
    let raw = Errno::result(raw)?;
    // SAFETY: `raw` is a descriptor just opened, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// mq_unlink(3).
pub fn unlink(name: &str) -> Result<(), Errno> {
    let name = c_name(name)?;
    // SAFETY: `name` is NUL-terminated and lives across the call.
    Errno::result(unsafe { libc::mq_unlink(name.as_ptr()) }).map(drop)
}

/// mq_getattr(3).
pub fn getattr(fd: &OwnedFd) -> Result<MqAttr, Errno> {
    // SAFETY: as in `open`.
    let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one mq_attr into `attr`, which lives across the call.
    Errno::result(unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut attr) })?;
    Ok(MqAttr {
        flags: attr.mq_flags,
        maxmsg: attr.mq_maxmsg,
        msgsize: attr.mq_msgsize,
        curmsgs: attr.mq_curmsgs,
    })
}

/// Receives the first message (highest priority, oldest) of at most `msgsize` bytes,
/// without waiting on a non-blocking descriptor (EAGAIN: none).
pub fn receive(fd: &OwnedFd, msgsize: usize) -> Result<(u32, Vec<u8>), Errno> {
    let mut body = vec![0u8; msgsize];
    let mut prio: libc::c_uint = 0;
    // SAFETY: the kernel writes at most `msgsize` bytes into `body` (that long) and the
    // priority into `prio`; both live across the call.
    let n =
        unsafe { libc::mq_receive(fd.as_raw_fd(), body.as_mut_ptr().cast(), msgsize, &mut prio) };
    body.truncate(Errno::result(n)? as usize);
    Ok((prio, body))
}

/// mq_send(3) (EAGAIN on a full queue of a non-blocking descriptor).
pub fn send(fd: &OwnedFd, prio: u32, body: &[u8]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `body.len()` bytes from `body`, which lives across the call.
    let rc = unsafe { libc::mq_send(fd.as_raw_fd(), body.as_ptr().cast(), body.len(), prio) };
    Errno::result(rc).map(drop)
}

/// mq_notify(3) on descriptor `fd` of the calling process: SIGEV_NONE, or SIGEV_SIGNAL
/// with `signo` and the value `value`; `None` removes the registration.
pub fn notify(fd: i32, how: Option<(i32, i32, u64)>) -> Result<(), Errno> {
    // SAFETY: sigevent is plain integers and a union of them; all zeroes is valid.
    let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
    let ptr = match how {
        Some((kind, signo, value)) => {
            ev.sigev_notify = kind;
            ev.sigev_signo = signo;
            ev.sigev_value = libc::sigval {
                sival_ptr: value as usize as *mut libc::c_void,
            };
            &raw const ev
        }
        None => std::ptr::null(),
    };
    // SAFETY: the kernel reads one sigevent from `ptr` (or none: null), which lives
    // across the call.
    Errno::result(unsafe { libc::mq_notify(fd, ptr) }).map(drop)
}

/// fchown and fchmod of the queue behind `fd`.
pub fn set_owner(fd: &OwnedFd, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    nix::unistd::fchown(fd, Some(uid.into()), Some(gid.into()))?;
    nix::sys::stat::fchmod(fd, nix::sys::stat::Mode::from_bits_truncate(mode & 0o777))
}

/// The status text a read of the queue's file gives.
pub fn read_status(fd: &OwnedFd) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    let n = nix::sys::uio::pread(fd, &mut buf, 0)?;
    String::from_utf8(buf[..n].to_vec()).map_err(|_| Errno::EINVAL)
}

/// Parses `QSIZE:n NOTIFY:n SIGNO:n NOTIFY_PID:n` (the kernel pads with spaces); any
/// other content is an error.
pub fn parse_status(text: &str) -> Option<MqStatus> {
    let mut fields = text.split_whitespace();
    let mut next = |name: &str| -> Option<i64> { fields.next()?.strip_prefix(name)?.parse().ok() };
    let status = MqStatus {
        qsize: u64::try_from(next("QSIZE:")?).ok()?,
        notify: i32::try_from(next("NOTIFY:")?).ok()?,
        signo: i32::try_from(next("SIGNO:")?).ok()?,
        notify_pid: i32::try_from(next("NOTIFY_PID:")?).ok()?,
    };
    fields.next().is_none().then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_strictly() {
        let s = parse_status("QSIZE:6          NOTIFY:0     SIGNO:10    NOTIFY_PID:8616  \n");
        assert_eq!(
            s,
            Some(MqStatus {
                qsize: 6,
                notify: 0,
                signo: 10,
                notify_pid: 8616
            })
        );
        assert_eq!(parse_status("QSIZE:6 NOTIFY:0 SIGNO:10"), None);
        assert_eq!(
            parse_status("QSIZE:6 NOTIFY:0 SIGNO:10 NOTIFY_PID:1 X:2"),
            None
        );
        assert_eq!(parse_status("QSIZE:-1 NOTIFY:0 SIGNO:0 NOTIFY_PID:0"), None);
    }

    #[test]
    fn a_queue_gives_its_messages_in_priority_order() {
        let name = format!("/cpr-unit-{}", std::process::id());
        let q = open(
            &name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NONBLOCK,
            0o600,
            Some((4, 16)),
        )
        .unwrap();
        let result = std::panic::catch_unwind(|| {
            send(&q, 1, b"low").unwrap();
            send(&q, 5, b"high").unwrap();
            send(&q, 1, b"low2").unwrap();
            let a = getattr(&q).unwrap();
            assert_eq!((a.maxmsg, a.msgsize, a.curmsgs), (4, 16, 3));
            let st = parse_status(&read_status(&q).unwrap()).unwrap();
            assert_eq!((st.qsize, st.notify_pid), (11, 0));
            assert_eq!(receive(&q, 16).unwrap(), (5, b"high".to_vec()));
            assert_eq!(receive(&q, 16).unwrap(), (1, b"low".to_vec()));
            assert_eq!(receive(&q, 16).unwrap(), (1, b"low2".to_vec()));
            assert_eq!(receive(&q, 16), Err(Errno::EAGAIN));
        });
        unlink(&name).unwrap();
        result.unwrap();
    }
}
