//! Event and wait objects behind descriptors: eventfd, timerfd, signalfd, epoll (with the
//! descriptors it watches), inotify (with its watches). POSIX timers are posix_timers.rs.
//!
//! Dump reads /proc/PID/fdinfo/N (the parsers are crate::proc::fdinfo); restore recreates each object natively in the restore
//! child once the plain files are at their numbers (epoll refers to them) and dup2()s it
//! to its number. Timers keep the time they had left and their interval, as relative
//! values: the time between checkpoint and restart does not count.
//!
//! Limits: events queued in an inotify instance, or a watch whose path cannot be found
//! again from its file handle (removed since), refuse the checkpoint. An
//! edge-triggered epoll item that is ready at restart reports one edge again.

use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::ProcDir;
use crate::proc::fdinfo::{self, InotifyMark};
use crate::sys::evfd;

/// One event object behind a descriptor. O_NONBLOCK and FD_CLOEXEC are in its FdRecord.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventFd {
    Eventfd {
        count: u64,
        semaphore: bool,
    },
    Timerfd {
        clockid: i32,
        /// Expirations not yet read.
        ticks: u64,
        /// TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET.
        settime_flags: i32,
        /// Time left until the next expiration, (s, ns); (0, 0) is disarmed.
        value: (i64, i64),
        interval: (i64, i64),
    },
    Signalfd {
        /// Bit n-1 is signal n.
        mask: u64,
    },
    Epoll {
        targets: Vec<EpollTarget>,
    },
    Inotify {
        watches: Vec<InotifyWatch>,
    },
    /// A pidfd of a process of the checkpoint (which keeps its PID at restart).
    Pidfd {
        pid: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpollTarget {
    pub fd: i32,
    pub events: u32,
    pub data: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InotifyWatch {
    pub wd: i32,
    pub mask: u32,
    /// Resolved at checkpoint from the watch's file handle.
    pub path: String,
}

// ---------------------------------------------------------------- dump

/// The event object behind descriptor `fd` of a stopped process, `None` when `link` is
/// not an anonymous inode. Objects cpr cannot recreate (io_uring, perf_event, bpf,
/// userfaultfd, ...) are "Checkpoint error" naming the process, descriptor and object.
pub fn dump(pid: i32, fd: i32, link: &str, _flags: i32) -> Result<Option<EventFd>> {
    if !link.starts_with("anon_inode:") {
        return Ok(None);
    }
    let who = format!("process {pid} fd {fd}");
    let refuse =
        |why: &str| Error::with_detail(&who, Kind::CheckpointError, format!("{link}: {why}"));
    // opened once the kind is known to be one cpr restores
    let dir = || ProcDir::open(pid);
    let ev = match link {
        "anon_inode:[eventfd]" => {
            let e = dir()?.fdinfo_as(fd, fdinfo::eventfd)?;
            EventFd::Eventfd {
                count: e.count,
                // older kernels do not show it: a plain counter, as cpr always took it
                semaphore: e.semaphore.unwrap_or(false),
            }
        }
        "anon_inode:[timerfd]" => {
            let mut t = dir()?.fdinfo_as(fd, fdinfo::timerfd)?;
            if t.value == (0, 0) && t.interval != (0, 0) {
                // a periodic timer that has fired: fdinfo shows no time left until it is
                // moved on to its next period, which timerfd_gettime does
                let ours = crate::sys::steal_fd(pid, fd).ctx(&who)?;
                t.value = evfd::timerfd_next(ours.as_fd()).ctx(&who)?;
                t = fdinfo::Timerfd {
                    value: t.value,
                    ..dir()?.fdinfo_as(fd, fdinfo::timerfd)?
                };
            }
            EventFd::Timerfd {
                clockid: t.clockid,
                ticks: t.ticks,
                settime_flags: t.settime_flags,
                value: t.value,
                interval: t.interval,
            }
        }
        "anon_inode:[signalfd]" => EventFd::Signalfd {
            mask: dir()?.fdinfo_as(fd, fdinfo::signalfd_mask)?,
        },
        "anon_inode:[eventpoll]" => {
            let mut targets = Vec::new();
            let items = dir()?.fdinfo_as(fd, fdinfo::epoll)?;
            for (i, t) in items.iter().enumerate() {
                // the file watched must be the one open at that number now (a number
                // closed since may be open again for another file)
                let toff = items[..i].iter().filter(|e| e.fd == t.fd).count() as u32;
                let live = std::fs::symlink_metadata(format!("/proc/{pid}/fd/{}", t.fd)).is_ok()
                    && crate::sys::kcmp::epoll_target_is_open(pid, fd, t.fd, toff).unwrap_or(false);
                if !live {
                    return Err(refuse(&format!(
                        "epoll watches a file no longer open as fd {}",
                        t.fd
                    )));
                }
                targets.push(EpollTarget {
                    fd: t.fd,
                    events: t.events,
                    data: t.data,
                });
            }
            EventFd::Epoll { targets }
        }
        "anon_inode:inotify" => {
            // queued events cannot be put back into a new instance
            let ours = crate::sys::steal_fd(pid, fd).ctx(&who)?;
            let queued = crate::sys::pipe_bytes(ours.as_raw_fd()).ctx(&who)?;
            if queued > 0 {
                return Err(refuse(&format!(
                    "{queued} bytes of inotify events not yet read are not checkpoint safe"
                )));
            }
            let mut marks = dir()?.fdinfo_as(fd, fdinfo::inotify)?;
            marks.sort_by_key(|w| w.wd);
            let mut watches = Vec::new();
            for w in marks {
                let path = watch_path(&w).map_err(|why| {
                    refuse(&format!("inotify watch {} (inode {}): {why}", w.wd, w.ino))
                })?;
                watches.push(InotifyWatch {
                    wd: w.wd,
                    mask: w.mask,
                    path,
                });
            }
            EventFd::Inotify { watches }
        }
        "anon_inode:[pidfd]" => {
            let pid = dir()?.fdinfo_as(fd, fdinfo::pidfd_pid)?;
            if pid <= 0 {
                return Err(refuse(
                    "a pidfd of a process that is gone (or in another PID namespace) is not checkpoint safe",
                ));
            }
            EventFd::Pidfd { pid }
        }
        _ => return Err(refuse("this kind of descriptor is not checkpoint safe")),
    };
    Ok(Some(ev))
}

/// The path of a watched inode, from its file handle: open_by_handle_at on a mount of its
/// filesystem, then the name the kernel gives that descriptor.
fn watch_path(w: &InotifyMark) -> std::result::Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let Some((handle_type, handle)) = &w.handle else {
        return Err("no file handle".into());
    };
    let (major, minor) = (w.sdev >> 20, w.sdev & 0xfffff);
    let mounts = crate::proc::mountinfo::read_own().map_err(|e| e.to_string())?;
    for m in mounts {
        if (u64::from(m.major), u64::from(m.minor)) != (major, minor) {
            continue;
        }
        let Ok(mnt) = std::fs::File::open(&m.mount_point) else {
            continue;
        };
        let Ok(fd) = evfd::open_by_handle_at(
            mnt.as_fd(),
            *handle_type,
            handle,
            libc::O_PATH | libc::O_CLOEXEC,
        ) else {
            continue;
        };
        let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let Ok(path) = std::fs::read_link(&proc_path) else {
            continue;
        };
        let path = path.to_string_lossy().into_owned();
        // the name must lead back to the same inode
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == w.ino && path.starts_with('/') => return Ok(path),
            _ => continue,
        }
    }
    Err("its path cannot be found from its file handle".into())
}

// ---------------------------------------------------------------- restore

/// Puts `fd` at number `target` and closes the temporary number.
fn place(fd: OwnedFd, target: i32) -> Result<()> {
    if fd.as_raw_fd() == target {
        // already at its number, which is the image's from now on
        let _ = fd.into_raw_fd();
        return Ok(());
    }
    crate::sys::dup_at(fd.as_raw_fd(), target).ctx(format!("fd {target}"))
    // the temporary number closes with `fd`
}

fn nonblock(r: &FdRecord) -> i32 {
    r.flags & libc::O_NONBLOCK
}

/// A new object as `ev` describes (in cpr for one shared between processes, else in
/// the restore child).
pub(super) fn create(r: &FdRecord, ev: &EventFd) -> Result<OwnedFd> {
    let who = format!("fd {} ({})", r.fd, r.path);
    match ev {
        EventFd::Eventfd { count, semaphore } => {
            let flags = nonblock(r) | if *semaphore { libc::EFD_SEMAPHORE } else { 0 };
            let fd = nix::sys::eventfd::EventFd::from_value_and_flags(
                0,
                nix::sys::eventfd::EfdFlags::from_bits_retain(flags),
            )
            .ctx(&who)?;
            if *count > 0 {
                nix::unistd::write(&fd, &count.to_ne_bytes()).ctx(&who)?;
            }
            Ok(fd.into())
        }
        EventFd::Timerfd {
            clockid,
            ticks,
            settime_flags,
            value,
            interval,
        } => {
            use nix::sys::timerfd::{Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
            let clock = evfd::timerfd_clock(*clockid).ctx(&who)?;
            let fd = TimerFd::new(clock, TimerFlags::from_bits_retain(nonblock(r))).ctx(&who)?;
            let armed = *value != (0, 0);
            let mut at = *value;
            let mut flags = 0;
            if armed && settime_flags & libc::TFD_TIMER_ABSTIME != 0 {
                // absolute timers (and their cancel-on-set) stay absolute: now + time left
                let now =
                    nix::time::clock_gettime(nix::time::ClockId::from_raw(*clockid)).ctx(&who)?;
                let ns = now.tv_nsec() + value.1;
                at = (
                    now.tv_sec() + value.0 + ns / 1_000_000_000,
                    ns % 1_000_000_000,
                );
                flags = *settime_flags;
            }
            if armed {
                let ts = |(s, ns): (i64, i64)| nix::sys::time::TimeSpec::new(s, ns);
                let expiration = if *interval == (0, 0) {
                    Expiration::OneShot(ts(at))
                } else {
                    Expiration::IntervalDelayed(ts(at), ts(*interval))
                };
                fd.set(expiration, TimerSetTimeFlags::from_bits_retain(flags))
                    .ctx(&who)?;
            }
            if *ticks > 0 {
                evfd::timerfd_set_ticks(fd.as_fd(), *ticks)
                    .ctx(&who)
                    .map_err(|e| e.detail("restoring unread expirations"))?;
            }
            Ok(fd.into())
        }
        EventFd::Signalfd { mask } => evfd::signalfd(*mask, nonblock(r)).ctx(&who),
        EventFd::Epoll { targets } => {
            let nix::sys::epoll::Epoll(fd) =
                nix::sys::epoll::Epoll::new(nix::sys::epoll::EpollCreateFlags::empty())
                    .ctx(&who)?;
            for t in targets {
                evfd::epoll_add(fd.as_fd(), t.fd, t.events, t.data)
                    .ctx(format!("{who}: epoll target fd {}", t.fd))?;
            }
            Ok(fd)
        }
        EventFd::Inotify { watches } => restore_inotify(r, watches),
        // O_EXCL is PIDFD_THREAD
        EventFd::Pidfd { pid } => {
            evfd::pidfd_open(*pid, r.flags & (libc::O_NONBLOCK | libc::O_EXCL)).ctx(&who)
        }
    }
}

/// inotify gives watch descriptors in increasing order from 1: each watch gets its number
/// by adding and removing a filler watch until the next number is the one wanted. The
/// IN_IGNORED events of the fillers are read away before the program runs.
fn restore_inotify(r: &FdRecord, watches: &[InotifyWatch]) -> Result<OwnedFd> {
    let who = format!("fd {} ({})", r.fd, r.path);
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let fd = Inotify::init(InitFlags::IN_NONBLOCK).ctx(&who)?;
    let filler = std::env::temp_dir().join(format!(".cpr-inotify-{}", std::process::id()));
    let mut fillers = 0;
    let result = (|| -> Result<()> {
        let mut next = 1;
        for w in watches {
            while next < w.wd {
                if fillers == 0 {
                    std::fs::create_dir_all(&filler).ctx(&who)?;
                }
                let f = fd
                    .add_watch(filler.to_string_lossy().as_ref(), AddWatchFlags::IN_ATTRIB)
                    .ctx(&who)?;
                fd.rm_watch(f).ctx(&who)?;
                fillers += 1;
                next = f.as_raw() + 1;
            }
            let got = fd
                .add_watch(w.path.as_str(), AddWatchFlags::from_bits_retain(w.mask))
                .ctx(format!("{who}: inotify watch {} on {}", w.wd, w.path))?
                .as_raw();
            if got != w.wd {
                return Err(Error::with_detail(
                    &who,
                    Kind::CheckpointError,
                    format!("inotify watch on {} got number {got}, not {}", w.path, w.wd),
                ));
            }
            next = got + 1;
        }
        Ok(())
    })();
    if fillers > 0 {
        let _ = std::fs::remove_dir(&filler);
        let mut buf = [0u8; 4096];
        while matches!(nix::unistd::read(&fd, &mut buf), Ok(n) if n > 0) {}
    }
    result?;
    if nonblock(r) == 0 {
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .ctx(&who)?;
    }
    Ok(fd.into())
}

/// In the restore child, once the other descriptors are at their numbers: creates every
/// event object at its number. epoll instances come last, after the duplicates of event
/// descriptors (they may watch those), nested ones after the ones they watch.
pub fn restore(records: &[FdRecord]) -> Result<()> {
    let events: Vec<(&FdRecord, &EventFd)> = records
        .iter()
        .filter_map(|r| match &r.kind {
            // one shared between processes was made in cpr and placed with the files
            FdKind::Event(ev) if r.shared.is_none() => Some((r, ev)),
            _ => None,
        })
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let dups = || -> Result<()> {
        for r in records {
            if let FdKind::Dup { of } = r.kind {
                crate::sys::dup_at(of, r.fd).ctx(format!("fd {}", r.fd))?;
            }
        }
        Ok(())
    };
    for (r, ev) in &events {
        if !matches!(ev, EventFd::Epoll { .. }) {
            place(create(r, ev)?, r.fd)?;
        }
    }
    dups()?;
    let mut pending: Vec<&(&FdRecord, &EventFd)> = events
        .iter()
        .filter(|(_, ev)| matches!(ev, EventFd::Epoll { .. }))
        .collect();
    while !pending.is_empty() {
        let waiting: Vec<i32> = pending.iter().map(|(r, _)| r.fd).collect();
        type Item<'a> = &'a (&'a FdRecord, &'a EventFd);
        let (ready, rest): (Vec<Item>, Vec<Item>) = pending.into_iter().partition(|(_, ev)| {
            let EventFd::Epoll { targets } = ev else {
                return true;
            };
            targets.iter().all(|t| !waiting.contains(&t.fd))
        });
        if ready.is_empty() {
            return Err(Error::with_detail(
                format!("fd {}", rest[0].0.fd),
                Kind::CheckpointError,
                "epoll instances watch each other in a cycle",
            ));
        }
        for (r, ev) in ready {
            place(create(r, ev)?, r.fd)?;
        }
        dups()?;
        pending = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_anonymous_links_are_not_events() {
        assert_eq!(dump(1, 0, "/dev/null", 0).unwrap(), None);
    }

    #[test]
    fn unsupported_objects_are_checkpoint_errors() {
        let e = dump(1234, 7, "anon_inode:[io_uring]", 0).unwrap_err();
        assert_eq!(e.kind, Kind::CheckpointError);
        let msg = e.to_string();
        assert!(
            msg.contains("1234") && msg.contains("fd 7") && msg.contains("io_uring"),
            "{msg}"
        );
    }
}
