//! Pipes. Dump: a descriptor `pipe:[ino]` is one end of a pipe; once every process is
//! read, both ends must be in the checkpoint, or the missing end closed in every process
//! (a widowed pipe, restored with that end closed), or the FILE policy IGNORE (reopened
//! as /dev/null). The data in flight is saved once, in `shared/pipe-<ino>`, looked at
//! with tee(2), never consumed. Restart: cpr makes each pipe once, refills it, and every
//! process that had an end inherits it (shared_fds.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::{Member, ProcessFds, SharedFile};
use crate::attrfile::FileAction;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// A pipe: its capacity and the bytes that were in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeRecord {
    pub ino: u64,
    pub capacity: usize,
    /// Statefile file with the data in flight, if any.
    pub data: Option<String>,
}

pub(super) fn is_read_end(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_RDONLY
}

/// The record of descriptor `fd` if `link` names a pipe (`pipe:[ino]`), else `None`.
pub fn dump(fd: i32, link: &str, flags: i32, cloexec: bool) -> Option<FdRecord> {
    let ino = link
        .strip_prefix("pipe:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())?;
    // whether the other end is in the checkpoint is known only once every process
    // is read: see collect
    Some(FdRecord::object(
        fd,
        FdKind::Pipe { ino },
        link,
        flags,
        cloexec,
    ))
}

/// Once every process is read: checks that both ends of every pipe are in the
/// checkpoint (or the missing one closed everywhere), and saves the data in flight.
/// Returns the pipes and the entries of `files` to reopen as /dev/null (IGNORE).
pub(super) fn collect(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    files: &[SharedFile],
    writer: &mut StatefileWriter,
) -> Result<(Vec<PipeRecord>, Vec<u32>)> {
    let ends = ends(files);
    let widowed = widowed(procs, members, &ends);
    let (to_null, refused) = check_outside(procs, members, &ends, &widowed);
    if let Some(e) = refused.into_iter().next() {
        return Err(e);
    }
    let pipes = save_all(procs, members, &ends, &widowed, writer)?;
    Ok((pipes, to_null))
}

/// The pipes to processes outside the checkpoint that would be refused, each one error
/// (what `collect` refuses first; `cpr -c --dry-run` lists them all).
pub(super) fn refusals(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    files: &[SharedFile],
) -> Vec<Error> {
    let ends = ends(files);
    let widowed = widowed(procs, members, &ends);
    check_outside(procs, members, &ends, &widowed).1
}

/// Which ends of each pipe the checkpoint holds: (read end, write end).
fn ends(files: &[SharedFile]) -> BTreeMap<u64, (bool, bool)> {
    let mut pipe_ends: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    for f in files {
        if let FdKind::Pipe { ino } = f.template.kind {
            let e = pipe_ends.entry(ino).or_default();
            if is_read_end(f.template.flags) {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    pipe_ends
}

/// Pipes whose missing end is held by no process at all (closed everywhere, as make does
/// with the pipe it gives jobs for stdin): they come back with that end closed.
fn widowed(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    pipe_ends: &BTreeMap<u64, (bool, bool)>,
) -> BTreeSet<u64> {
    let mut widowed: BTreeSet<u64> = BTreeSet::new();
    for &(pi, fi, _) in members {
        let p = &procs[pi];
        let r = &p.fds[fi];
        if let FdKind::Pipe { ino } = r.kind {
            let (rd, wr) = pipe_ends[&ino];
            let complete = rd && wr;
            if !complete && !widowed.contains(&ino) && other_end_closed(p.pid, r.fd, rd) {
                widowed.insert(ino);
            }
        }
    }
    widowed
}

/// A pipe to a process outside the checkpoint is "Checkpoint error", unless the FILE
/// policy says IGNORE: the entries returned first are reopened as /dev/null; the errors
/// second, one per descriptor refused.
fn check_outside(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    pipe_ends: &BTreeMap<u64, (bool, bool)>,
    widowed: &BTreeSet<u64>,
) -> (Vec<u32>, Vec<Error>) {
    let mut to_null: Vec<u32> = Vec::new();
    let mut refused: Vec<Error> = Vec::new();
    for &(pi, fi, id) in members {
        let p = &procs[pi];
        let r = &p.fds[fi];
        if let FdKind::Pipe { ino } = r.kind {
            let (rd, wr) = pipe_ends[&ino];
            let complete = rd && wr;
            if !complete && !widowed.contains(&ino) {
                if p.policies.explicit_file_action(&r.path) == Some(FileAction::Ignore) {
                    to_null.push(id);
                    continue;
                }
                refused.push(Error::with_detail(
                    format!("process {} fd {}", p.pid, r.fd),
                    Kind::CheckpointError,
                    format!(
                        "{}: a pipe to a process outside the checkpoint is not checkpoint safe (FILE: \"pipe:*\": IGNORE in the attribute file reopens it as /dev/null on restart)",
                        r.path
                    ),
                ));
            }
        }
    }
    (to_null, refused)
}

/// The data in flight of every pipe restart makes again, read from one holder of the
/// read end.
fn save_all(
    procs: &[ProcessFds<'_>],
    members: &[Member],
    pipe_ends: &BTreeMap<u64, (bool, bool)>,
    widowed: &BTreeSet<u64>,
    writer: &mut StatefileWriter,
) -> Result<Vec<PipeRecord>> {
    let mut pipes = Vec::new();
    for (&ino, _) in pipe_ends
        .iter()
        .filter(|(ino, e)| e.0 && (e.1 || widowed.contains(ino)))
    {
        let holder = members.iter().find(|&&(pi, fi, _)| {
            let r = &procs[pi].fds[fi];
            r.kind == (FdKind::Pipe { ino }) && is_read_end(r.flags)
        });
        let Some(&(pi, fi, _)) = holder else { continue };
        let (pid, fd) = (procs[pi].pid, procs[pi].fds[fi].fd);
        pipes.push(save_pipe(pid, fd, ino, writer)?);
    }
    Ok(pipes)
}

/// Whether the other end of the pipe `fd` of `pid` (a read end if `read_end`) is closed
/// in every process: no writer left (POLLHUP on the read end) or no reader (POLLERR on
/// the write end).
fn other_end_closed(pid: i32, fd: i32, read_end: bool) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let Ok(ours) = crate::sys::steal_fd(pid, fd) else {
        return false;
    };
    let mut fds = [PollFd::new(ours.as_fd(), PollFlags::empty())];
    if poll(&mut fds, PollTimeout::ZERO).is_err() {
        return false;
    }
    let got = fds[0].revents().unwrap_or(PollFlags::empty());
    if read_end {
        got.contains(PollFlags::POLLHUP)
    } else {
        got.contains(PollFlags::POLLERR)
    }
}

fn save_pipe(pid: i32, fd: i32, ino: u64, writer: &mut StatefileWriter) -> Result<PipeRecord> {
    let who = format!("process {pid} fd {fd} (pipe:[{ino}])");
    let ours = crate::sys::steal_fd(pid, fd).ctx(&who)?;
    let capacity = nix::fcntl::fcntl(&ours, nix::fcntl::FcntlArg::F_GETPIPE_SZ).ctx(&who)? as usize;
    let waiting = crate::sys::pipe_bytes(ours.as_raw_fd()).ctx(&who)?;
    if waiting == 0 {
        return Ok(PipeRecord {
            ino,
            capacity,
            data: None,
        });
    }
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(&who)?;
    let _ = nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_SETPIPE_SZ(capacity as i32));
    let copied = nix::fcntl::tee(
        &ours,
        &wr,
        waiting,
        nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK,
    )
    .ctx(format!("{who}: tee"))?;
    drop(wr);
    let mut data = Vec::with_capacity(copied);
    std::fs::File::from(rd).read_to_end(&mut data).ctx(&who)?;
    let rel = crate::statefile::layout::pipe_data_path(ino);
    writer.write_file(&rel, &data)?;
    Ok(PipeRecord {
        ino,
        capacity,
        data: Some(rel),
    })
}

/// Restart, in cpr: every pipe `files` has an end of, made once with its capacity and its
/// data back in it, as (read end, write end) by inode.
pub(super) fn open_all(
    files: &[SharedFile],
    records: &[PipeRecord],
    sf: &Statefile,
) -> Result<BTreeMap<u64, (OwnedFd, OwnedFd)>> {
    let mut pipes: BTreeMap<u64, (OwnedFd, OwnedFd)> = BTreeMap::new();
    for f in files {
        let FdKind::Pipe { ino } = f.template.kind else {
            continue;
        };
        if pipes.contains_key(&ino) {
            continue;
        }
        let who = format!("pipe:[{ino}]");
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(&who)?;
        if let Some(rec) = records.iter().find(|p| p.ino == ino) {
            let _ = nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_SETPIPE_SZ(rec.capacity as i32));
            if let Some(rel) = &rec.data {
                let data = sf.read(rel)?;
                std::fs::File::from(wr.try_clone().ctx(&who)?)
                    .write_all(&data)
                    .ctx(format!("{who}: data"))?;
            }
        }
        pipes.insert(ino, (rd, wr));
    }
    Ok(pipes)
}

/// An open file description of the end of pipe `ino` that `template` had: the one
/// pipe(2) made, the first time an end is asked for (`used` remembers), else a new one
/// opened through /proc, as a second open of a pipe end is: descriptions that were
/// separate stay separate. (An open through /proc also gets O_LARGEFILE, which a pipe(2)
/// end has not and F_SETFL cannot take away.) Its status flags are set once it is
/// placed (files.rs).
pub(super) fn open_end(
    pipes: &BTreeMap<u64, (OwnedFd, OwnedFd)>,
    used: &mut std::collections::BTreeSet<(u64, bool)>,
    ino: u64,
    template: &FdRecord,
) -> Result<OwnedFd> {
    let (rd, wr) = &pipes[&ino];
    let read = is_read_end(template.flags);
    let end = if read { rd } else { wr };
    if used.insert((ino, read)) {
        return end.try_clone().ctx(format!("pipe:[{ino}]"));
    }
    let path = format!("/proc/self/fd/{}", end.as_raw_fd());
    super::files::open_path(&path, template.flags & libc::O_ACCMODE).ctx(format!("pipe:[{ino}]"))
}
