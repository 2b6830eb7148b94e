//! Checkpoint-aware programs: SIGCKPT before a checkpoint, SIGRESTART after a restart.
//!
//! Both are Linux real-time signals whose default action would end the process, so cpr
//! sends them only to processes that catch them (`SigCgt` of /proc/PID/status), which
//! programs do through libcpr's `atcheckpoint()` and `atrestart()`.
//!
//! The SIGCKPT handshake, before the processes are frozen:
//!
//! 1. cpr binds a datagram socket in the abstract namespace, named by a random non-zero
//!    64-bit token ([`socket_name`]), with `SO_PASSCRED`, so that every answer carries the
//!    pid of the process that sent it.
//! 2. cpr queues SIGCKPT to each process that catches it, with the token as
//!    `si_value.sival_ptr` (sigqueue(3)).
//! 3. libcpr's handler answers on that socket with 8-byte messages ([`encode`]):
//!    [`MSG_STARTED`] when it begins to run the `atcheckpoint` functions, [`MSG_DEFERRED`]
//!    when the program is in a critical section (the functions run when it leaves), and
//!    [`MSG_DONE`] with [`ANSWER_GO`], [`ANSWER_TEMPFAIL`] or [`ANSWER_PERMFAIL`] when
//!    they have returned.
//! 4. cpr proceeds when every process said `MSG_DONE` with `ANSWER_GO`; a refusal or the
//!    timeout fails the checkpoint before anything was frozen, and the processes run on.
//!
//! A socket rather than a signal back: a process may not signal a cpr run by root, and
//! a socket answer needs no blocked signal in the (perhaps multi-threaded) checkpointer.
//!
//! On restart the engine queues SIGRESTART ([`restart_siginfo`]) to every restored process
//! whose saved disposition of SIGRESTART is a handler, before releasing it: the handler
//! then runs before any other instruction of the program.

use std::collections::BTreeMap;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, sockopt};

use crate::error::{Context, Error, Kind, Result};
use crate::proc::{ProcDir, status};
use crate::sys::KernelSigaction;

/// SIGCKPT: `SIGRTMAX - 2` (glibc keeps 32 and 33 for itself).
pub const SIGCKPT: i32 = 62;
/// SIGRESTART: `SIGRTMAX - 1`.
pub const SIGRESTART: i32 = 63;

/// How long cpr waits for SIGCKPT handlers when the caller does not say.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// The handler has started running the atcheckpoint functions.
pub const MSG_STARTED: u32 = 1;
/// The program is in a critical section; the functions run when it leaves.
pub const MSG_DEFERRED: u32 = 2;
/// The functions have returned; the code says go or no.
pub const MSG_DONE: u32 = 3;

/// `MSG_DONE`: the checkpoint may go on.
pub const ANSWER_GO: i32 = 0;
/// `MSG_DONE`: refused for now (`CKPT_ETEMPFAIL`).
pub const ANSWER_TEMPFAIL: i32 = 1;
/// `MSG_DONE`: refused for good (`CKPT_EPERMFAIL`).
pub const ANSWER_PERMFAIL: i32 = 2;

const NAME_PREFIX: &[u8; 12] = b"cpr-sigckpt-";
/// Length of an abstract socket name (without its leading NUL).
pub const SOCKET_NAME_LEN: usize = NAME_PREFIX.len() + 16;

/// The abstract socket name (without the leading NUL) for a request token:
/// `cpr-sigckpt-` and 16 lower-case hex digits. Allocates nothing: libcpr calls it in a
/// signal handler.
pub fn socket_name(token: u64) -> [u8; SOCKET_NAME_LEN] {
    let mut name = [0u8; SOCKET_NAME_LEN];
    name[..NAME_PREFIX.len()].copy_from_slice(NAME_PREFIX);
    for i in 0..16 {
        let nibble = ((token >> (60 - 4 * i)) & 0xf) as u8;
        name[NAME_PREFIX.len() + i] = if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        };
    }
    name
}

/// One answer: kind and code, native byte order.
pub fn encode(kind: u32, code: i32) -> [u8; 8] {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&kind.to_ne_bytes());
    msg[4..].copy_from_slice(&code.to_ne_bytes());
    msg
}

/// The inverse of [`encode`]; `None` for anything that is not one.
pub fn decode(msg: &[u8]) -> Option<(u32, i32)> {
    let msg: &[u8; 8] = msg.try_into().ok()?;
    let kind = u32::from_ne_bytes(msg[..4].try_into().ok()?);
    let code = i32::from_ne_bytes(msg[4..].try_into().ok()?);
    matches!(kind, MSG_STARTED | MSG_DEFERRED | MSG_DONE).then_some((kind, code))
}

/// Whether bit `sig` is set in the `key` mask (`SigCgt`, `SigBlk`, ...) of file `name`
/// (`status`, `task/TID/status`) of `dir`. A mask that does not parse is an error.
fn status_bit(dir: &ProcDir, name: &str, key: &str, sig: i32) -> Result<bool> {
    let text = dir.read(name)?;
    let mask = dir.parsed(name, &text, |t| status::mask(t, key))?;
    Ok(mask & (1u64 << (sig - 1)) != 0)
}

/// A process or thread that has gone meanwhile has no handler to run and none running:
/// `false` (a checkpoint's freeze then finds it gone).
fn gone_is_false(answer: Result<bool>) -> Result<bool> {
    match answer {
        Err(e) if e.kind == Kind::NoSuchProcess => Ok(false),
        answer => answer,
    }
}

/// Whether process `pid` catches signal `sig` (its `SigCgt` bit); false when the process
/// has gone.
pub fn handles(pid: i32, sig: i32) -> Result<bool> {
    if !(1..=64).contains(&sig) {
        return Ok(false);
    }
    gone_is_false(ProcDir::open(pid).and_then(|dir| status_bit(&dir, "status", "SigCgt", sig)))
}

/// Whether a saved disposition of SIGRESTART is a handler (not default, not ignore):
/// then restart queues SIGRESTART to the process.
pub fn wants_restart_signal(actions: &[(i32, KernelSigaction)]) -> bool {
    actions
        .iter()
        .any(|(sig, act)| *sig == SIGRESTART && act.handler > 1)
}

/// The siginfo restart queues (rt_sigqueueinfo) to a restored process: SIGRESTART,
/// `SI_QUEUE`, from `sender_pid`/`sender_uid`, value 0. x86_64 layout, 128 bytes.
pub fn restart_siginfo(sender_pid: i32, sender_uid: u32) -> [u8; 128] {
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&SIGRESTART.to_ne_bytes());
    info[8..12].copy_from_slice(&libc::SI_QUEUE.to_ne_bytes());
    info[16..20].copy_from_slice(&sender_pid.to_ne_bytes());
    info[20..24].copy_from_slice(&sender_uid.to_ne_bytes());
    info
}

/// Queues SIGRESTART (value 0) to a restored process that is not yet running, so that
/// its handler runs first when it is released.
pub fn queue_restart(pid: i32) -> Result<()> {
    crate::sys::sigqueue::sigqueue(pid, SIGRESTART, 0).ctx(format!("process {pid}: SIGRESTART"))
}

/// A request token: non-zero, different for every call.
fn new_token(attempt: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut seed = Vec::with_capacity(32);
    seed.extend_from_slice(&std::process::id().to_ne_bytes());
    seed.extend_from_slice(&nanos.to_ne_bytes());
    seed.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_ne_bytes());
    seed.extend_from_slice(&attempt.to_ne_bytes());
    xxhash_rust::xxh3::xxh3_64(&seed) | 1
}

/// Binds the answer socket under a fresh token.
fn bind_answer_socket() -> Result<(u64, UnixDatagram)> {
    let mut last = None;
    for attempt in 0..8 {
        let token = new_token(attempt);
        let addr =
            SocketAddr::from_abstract_name(socket_name(token)).ctx("SIGCKPT answer socket")?;
        match UnixDatagram::bind_addr(&addr) {
            Ok(sock) => {
                socket::setsockopt(&sock, sockopt::PassCred, &true).ctx("SIGCKPT answer socket")?;
                return Ok((token, sock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(Error::io("SIGCKPT answer socket", e)),
        }
    }
    Err(Error::io(
        "SIGCKPT answer socket",
        last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EADDRINUSE)),
    ))
}

/// One answer and the pid that sent it; `None` on timeout.
fn receive(sock: &UnixDatagram, wait: Duration) -> Result<Option<(i32, u32, i32)>> {
    sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .ctx("SIGCKPT answer socket")?;
    loop {
        let mut buf = [0u8; 16];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(libc::ucred);
        let msg = match socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(Error::errno("SIGCKPT answer socket", e)),
        };
        let len = msg.bytes;
        let mut sender = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmCredentials(cred) = c {
                    sender = Some(cred.pid());
                }
            }
        }
        let (Some(pid), Some((kind, code))) = (sender, decode(&buf[..len.min(16)])) else {
            continue; // not an answer: ignore it
        };
        return Ok(Some((pid, kind, code)));
    }
}

/// What cpr knows of one process it notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Sent,
    Started,
    Deferred,
}

/// Sends SIGCKPT to each of `pids` that catches it and waits until each one's handlers
/// have finished, at most `timeout` in all. A refusal is `Resource busy` (temporary) or
/// `Checkpoint error` (permanent); a handler that does not finish in time is
/// `Checkpoint error`. In every failure the processes run on, untouched.
pub fn notify_checkpoint(pids: &[i32], timeout: Duration) -> Result<()> {
    let mut targets = Vec::new();
    for &pid in pids {
        if handles(pid, SIGCKPT)? {
            targets.push(pid);
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let (token, sock) = bind_answer_socket()?;
    let mut waiting = BTreeMap::new();
    for &pid in &targets {
        crate::sys::sigqueue::sigqueue(pid, SIGCKPT, token)
            .ctx(format!("process {pid}: SIGCKPT"))?;
        waiting.insert(pid, Progress::Sent);
    }
    let deadline = Instant::now() + timeout;
    let mut finished = Vec::new();
    while let Some((&first, &progress)) = waiting.iter().next() {
        let now = Instant::now();
        if now >= deadline {
            let why = match progress {
                Progress::Sent => {
                    " (no answer: is it stopped, or does it catch SIGCKPT without libcpr?)"
                }
                Progress::Started => "",
                Progress::Deferred => " (it stayed in a checkpoint critical section)",
            };
            return Err(Error::with_detail(
                "",
                Kind::CheckpointError,
                format!(
                    "process {first} did not finish its SIGCKPT handlers within {} s{why}",
                    fmt_secs(timeout)
                ),
            ));
        }
        let Some((pid, kind, code)) = receive(&sock, deadline - now)? else {
            continue;
        };
        let Some(state) = waiting.get_mut(&pid) else {
            continue; // not one we asked, or already done
        };
        match kind {
            MSG_STARTED => *state = Progress::Started,
            MSG_DEFERRED => *state = Progress::Deferred,
            _ => match code {
                ANSWER_GO => {
                    waiting.remove(&pid);
                    finished.push(pid);
                }
                ANSWER_TEMPFAIL => {
                    return Err(Error::with_detail(
                        "",
                        Kind::ResourceBusy,
                        format!(
                            "process {pid} refused the checkpoint temporarily; try again later"
                        ),
                    ));
                }
                _ => {
                    return Err(Error::with_detail(
                        "",
                        Kind::CheckpointError,
                        format!("process {pid} refused the checkpoint permanently"),
                    ));
                }
            },
        }
    }
    // The answer is sent from inside the handler, which then closes its socket and
    // returns: wait (briefly) until no thread has SIGCKPT blocked any more, i.e. every
    // handler has returned, so that the freeze never catches the answer socket open.
    let settle = Instant::now() + Duration::from_secs(2);
    for pid in finished {
        while in_handler(pid)? && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Whether some thread of `pid` has SIGCKPT blocked, as it is while its handler runs.
/// Threads (or the process) that have gone run no handler.
fn in_handler(pid: i32) -> Result<bool> {
    let any = || -> Result<bool> {
        let dir = ProcDir::open(pid)?;
        for tid in dir.tids()? {
            let name = format!("task/{tid}/status");
            if gone_is_false(status_bit(&dir, &name, "SigBlk", SIGCKPT))? {
                return Ok(true);
            }
        }
        Ok(false)
    };
    gone_is_false(any())
}

/// `2`, `0.5`, `1.25`: seconds as people write them.
fn fmt_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_prefix_and_hex() {
        assert_eq!(
            &socket_name(0x0123_4567_89ab_cdef),
            b"cpr-sigckpt-0123456789abcdef"
        );
        assert_eq!(&socket_name(1)[12..], b"0000000000000001");
    }

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        assert_eq!(
            decode(&encode(MSG_DONE, ANSWER_TEMPFAIL)),
            Some((MSG_DONE, 1))
        );
        assert_eq!(decode(&encode(9, 0)), None);
        assert_eq!(decode(b"short"), None);
    }

    #[test]
    fn sigcgt_bits() {
        let status = "Name:\tx\nSigBlk:\t0000000000000000\nSigCgt:\t6000000000000002\n";
        let mask = status::mask(status, "SigCgt").unwrap();
        assert_eq!(mask & (1 << (SIGCKPT - 1)), 1 << 61);
        assert_eq!(mask & (1 << (SIGRESTART - 1)), 1 << 62);
        assert!(status::mask(status, "SigIgn").is_err());
        // this test process catches neither (its threads' masks are libtest's business)
        let me = std::process::id() as i32;
        assert!(!handles(me, SIGCKPT).unwrap());
        assert!(!handles(me, 0).unwrap());
        in_handler(me).unwrap();
        // a process that has gone catches nothing
        let gone = crate::target::PID_LIMIT as i32 + 1;
        assert!(!handles(gone, SIGCKPT).unwrap());
        assert!(!in_handler(gone).unwrap());
    }

    #[test]
    fn nobody_to_notify_is_quick_success() {
        notify_checkpoint(&[std::process::id() as i32], Duration::from_millis(1)).unwrap();
    }

    #[test]
    fn restart_siginfo_layout() {
        let info = restart_siginfo(42, 7);
        assert_eq!(
            i32::from_ne_bytes(info[0..4].try_into().unwrap()),
            SIGRESTART
        );
        assert_eq!(i32::from_ne_bytes(info[8..12].try_into().unwrap()), -1);
        assert_eq!(i32::from_ne_bytes(info[16..20].try_into().unwrap()), 42);
        assert!(wants_restart_signal(&[(
            SIGRESTART,
            KernelSigaction {
                handler: 0x401000,
                ..Default::default()
            }
        )]));
        assert!(!wants_restart_signal(&[(
            SIGRESTART,
            KernelSigaction {
                handler: 1,
                ..Default::default()
            }
        )]));
    }

    #[test]
    fn seconds_are_printed_plainly() {
        assert_eq!(fmt_secs(Duration::from_secs(2)), "2");
        assert_eq!(fmt_secs(Duration::from_millis(500)), "0.5");
    }
}
