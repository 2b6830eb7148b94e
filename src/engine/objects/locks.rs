//! File locks (guide, "Open Files and Devices": "All file locks are also restored at
//! restart. If the file regions that the restarting process needs to lock have already
//! been locked by another process, CPR tries to acquire the locks a few times before it
//! aborts the restart.")
//!
//! Dump reads /proc/locks and the `lock:` lines of /proc/PID/fdinfo/N (parsed by
//! crate::proc::locks, where the lock kinds and types are defined). flock(2) and
//! open-file-description (OFD) locks belong to an open file description, so they are tied
//! to the descriptor whose fdinfo lists them; POSIX record locks belong to the process
//! (the pid column of /proc/locks) and are tied to a descriptor of the same file.
//! Restore takes them again in the restore child, right after the descriptors exist.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::ProcDir;
use crate::proc::locks::LockLine;
pub use crate::proc::locks::{LockKind, LockType};

/// How often, and how far apart, restore tries a lock another process holds.
pub const ATTEMPTS: u32 = 20;
pub const INTERVAL: Duration = Duration::from_millis(100);

/// One lock the process held, through descriptor `fd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub fd: i32,
    /// The file, for messages.
    pub path: String,
    pub kind: LockKind,
    pub lock_type: LockType,
    /// First byte locked.
    pub start: u64,
    /// Last byte locked (inclusive); None: to the end of the file, however long.
    pub end: Option<u64>,
}

impl LockRecord {
    /// `POSIX WRITE lock 100-199`, `FLOCK READ lock 0-EOF`.
    pub fn describe(&self) -> String {
        let end = match self.end {
            Some(e) => e.to_string(),
            None => "EOF".into(),
        };
        format!(
            "{} {} lock {}-{end}",
            self.kind.name(),
            self.lock_type.name(),
            self.start
        )
    }
}

/// A descriptor of the process that can carry locks, with what the kernel says of it.
struct Held<'a> {
    rec: &'a FdRecord,
    /// (major, minor, inode) from stat.
    id: (u32, u32, u64),
    /// Its fdinfo `lock:` lines.
    locks: Vec<LockLine>,
}

fn record(rec: &FdRecord, l: &LockLine) -> LockRecord {
    LockRecord {
        fd: rec.fd,
        path: rec.path.clone(),
        kind: l.kind,
        lock_type: l.lock_type,
        start: l.start,
        end: l.end,
    }
}

/// /proc/locks, read on a thread of its own from the start of a checkpoint's dump:
/// reading it takes the kernel's file_rwsem for writing, which waits for an RCU grace
/// period (8 to 19 ms of waiting here, every time after a pause), hidden behind the dump
/// of the first process. The processes are frozen: their locks are the same when read
/// early.
pub struct Table {
    ahead: Option<std::sync::mpsc::Receiver<Result<Vec<LockLine>>>>,
    got: Option<Vec<LockLine>>,
}

impl Table {
    /// Starts reading /proc/locks (read when first needed if no thread can be made).
    pub fn read_ahead() -> Table {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("cpr-locks".into())
            .spawn(move || {
                let _ = tx.send(crate::proc::locks::read_all());
            });
        Table {
            ahead: spawned.ok().map(|_| rx),
            got: None,
        }
    }

    fn get(&mut self) -> Result<&[LockLine]> {
        if self.got.is_none() {
            let read = match self.ahead.take().map(|rx| rx.recv()) {
                Some(Ok(read)) => read,
                // no thread, or it died: read here
                _ => crate::proc::locks::read_all(),
            };
            self.got = Some(read?);
        }
        Ok(self.got.as_deref().unwrap_or_default())
    }
}

/// The locks a stopped process holds, each tied to one of its descriptors `fds` (as
/// files::dump listed them); `table` is /proc/locks.
pub fn dump(pid: i32, fds: &[FdRecord], table: &mut Table) -> Result<Vec<LockRecord>> {
    let table = table.get()?;
    let dir = ProcDir::open(pid)?;
    let mut held = Vec::new();
    // a dup shares its original's description, and so its locks
    for rec in fds.iter().filter(|r| !matches!(r.kind, FdKind::Dup { .. })) {
        let who = format!("process {pid} fd {}", rec.fd);
        let meta = std::fs::metadata(format!("/proc/{pid}/fd/{}", rec.fd)).ctx(&who)?;
        let ft = meta.file_type();
        if ft.is_fifo() || ft.is_socket() {
            continue;
        }
        let dev = meta.dev();
        held.push(Held {
            rec,
            id: (libc::major(dev), libc::minor(dev), meta.ino()),
            locks: dir.fdinfo_as(rec.fd, crate::proc::locks::parse_fdinfo_locks)?,
        });
    }
    let mut out = Vec::new();
    // flock and OFD locks: exactly the descriptions that hold them
    for h in &held {
        for l in h.locks.iter().filter(|l| l.kind != LockKind::Posix) {
            out.push(record(h.rec, l));
        }
    }
    // POSIX locks: the process's, on a descriptor of the same file; the one the kernel
    // lists them under if any. A POSIX lock of a process always has a descriptor of the
    // file open (closing any drops them all), so one with none is someone else's that
    // only shares the pid number (a remote lock through lockd).
    for l in table
        .iter()
        .filter(|l| l.kind == LockKind::Posix && l.pid == pid)
    {
        let through = held
            .iter()
            .find(|h| h.locks.iter().any(|m| m.same_lock(l)))
            .or_else(|| held.iter().find(|h| h.id == (l.major, l.minor, l.inode)));
        if let Some(h) = through {
            out.push(record(h.rec, l));
        }
    }
    out.sort_by_key(|r| (r.fd, r.start));
    Ok(out)
}

/// Why a lock could not be taken.
enum Refused {
    /// Another process holds a conflicting lock: worth trying again.
    Busy,
    Failed(Error),
}

fn flock_struct(r: &LockRecord) -> libc::flock {
    libc::flock {
        l_type: match r.lock_type {
            LockType::Read => libc::F_RDLCK,
            LockType::Write => libc::F_WRLCK,
        } as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: r.start as libc::off_t,
        // 0: to the end of the file, however long it grows
        l_len: r.end.map_or(0, |e| (e - r.start + 1) as libc::off_t),
        l_pid: 0,
    }
}

fn try_lock(r: &LockRecord) -> std::result::Result<(), Refused> {
    let who = format!("fd {} ({})", r.fd, r.path);
    match r.kind {
        LockKind::Flock => {
            // the descriptor is the image's, locked by its number
            match crate::sys::try_flock(r.fd, r.lock_type == LockType::Write) {
                Ok(()) => Ok(()),
                Err(nix::errno::Errno::EWOULDBLOCK) => Err(Refused::Busy),
                Err(e) => Err(Refused::Failed(Error::errno(who, e).detail(r.describe()))),
            }
        }
        LockKind::Posix | LockKind::Ofd => {
            let fl = flock_struct(r);
            match crate::sys::set_record_lock(r.fd, &fl, r.kind == LockKind::Ofd) {
                Ok(_) => Ok(()),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(Refused::Busy),
                Err(e) => Err(Refused::Failed(Error::errno(who, e).detail(r.describe()))),
            }
        }
    }
}

/// In the restore child, after files::restore: takes every lock again on its descriptor.
/// Locks another process holds are tried ATTEMPTS times, INTERVAL apart; then the
/// restart fails with "Resource busy" naming the file, the lock and its range.
pub fn restore_native(records: &[LockRecord]) -> Result<()> {
    with_retries(records.iter().collect(), try_lock)
}

/// In the tracer, after the restore child closed the descriptors it opened to map files:
/// closing any descriptor of a file drops the process's POSIX locks on it, so those are
/// set again (a no-op for the ones still held) by fcntl calls injected through `inj`,
/// with `scratch` as argument space.
pub fn restore_posix_injected(
    inj: &Injector,
    scratch: &mut RemoteScratch,
    records: &[LockRecord],
) -> Result<()> {
    let pid = scratch.pid();
    let posix = records
        .iter()
        .filter(|r| r.kind == LockKind::Posix)
        .collect();
    with_retries(posix, |r| {
        let who = format!("process {pid} fd {} ({})", r.fd, r.path);
        let mut s = scratch.frame();
        let flock = s
            .put(&flock_bytes(&flock_struct(r)))
            .map_err(Refused::Failed)?;
        let rc = inj
            .call(
                libc::SYS_fcntl,
                [r.fd as u64, libc::F_SETLK as u64, flock.as_u64(), 0, 0, 0],
            )
            .map_err(Refused::Failed)?;
        match rc {
            0.. => Ok(()),
            e if e == -(libc::EAGAIN as i64) || e == -(libc::EACCES as i64) => Err(Refused::Busy),
            e => Err(Refused::Failed(
                Error::errno(who, nix::errno::Errno::from_raw(-e as i32)).detail(r.describe()),
            )),
        }
    })
}

/// `struct flock` as the x86-64 kernel reads it: type, whence, pad, start, len, pid, pad.
fn flock_bytes(fl: &libc::flock) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..2].copy_from_slice(&fl.l_type.to_ne_bytes());
    b[2..4].copy_from_slice(&fl.l_whence.to_ne_bytes());
    b[8..16].copy_from_slice(&fl.l_start.to_ne_bytes());
    b[16..24].copy_from_slice(&fl.l_len.to_ne_bytes());
    b[24..28].copy_from_slice(&fl.l_pid.to_ne_bytes());
    b
}

/// Tries every lock; those another process holds again, INTERVAL apart, ATTEMPTS times
/// in all; then "Resource busy" for the first still refused.
fn with_retries(
    mut pending: Vec<&LockRecord>,
    mut take: impl FnMut(&LockRecord) -> std::result::Result<(), Refused>,
) -> Result<()> {
    for attempt in 1..=ATTEMPTS {
        let mut busy = Vec::new();
        for r in pending {
            match take(r) {
                Ok(()) => {}
                Err(Refused::Busy) => busy.push(r),
                Err(Refused::Failed(e)) => return Err(e),
            }
        }
        pending = busy;
        if pending.is_empty() {
            return Ok(());
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(INTERVAL);
        }
    }
    let r = pending[0];
    Err(Error::with_detail(
        format!("fd {} ({})", r.fd, r.path),
        Kind::ResourceBusy,
        format!("{} is held by another process", r.describe()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_lengths_and_are_described() {
        let mut r = LockRecord {
            fd: 3,
            path: "/tmp/x".into(),
            kind: LockKind::Posix,
            lock_type: LockType::Write,
            start: 100,
            end: Some(199),
        };
        assert_eq!(flock_struct(&r).l_len, 100);
        assert_eq!(flock_struct(&r).l_start, 100);
        assert_eq!(r.describe(), "POSIX WRITE lock 100-199");
        let b = flock_bytes(&flock_struct(&r));
        assert_eq!(i16::from_ne_bytes([b[0], b[1]]), libc::F_WRLCK as i16);
        assert_eq!(i64::from_ne_bytes(b[8..16].try_into().unwrap()), 100);
        assert_eq!(i64::from_ne_bytes(b[16..24].try_into().unwrap()), 100);
        r.end = None;
        r.start = 0;
        assert_eq!(flock_struct(&r).l_len, 0);
        assert_eq!(r.describe(), "POSIX WRITE lock 0-EOF");
    }
}
