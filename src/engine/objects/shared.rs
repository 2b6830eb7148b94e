//! Objects shared between processes (or between the two ends of a pipe): open file
//! descriptions inherited across fork, pipes with the data in flight, and shared memory
//! (shared anonymous mappings, memfds). Checkpoint saves each once, in `shared/`;
//! restart opens each once in cpr, before the processes are created, and every process
//! that had it inherits it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::memory::{Backing, Vma};
use crate::attrfile::{FileAction, ProcessPolicies};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

pub const TABLE: &str = "shared/table.json";

/// One open file description used by several descriptors (of one or more processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    pub id: u32,
    /// How to open it: the record of its first descriptor (path, flags, offset, policy).
    pub template: FdRecord,
}

/// A pipe: its capacity and the bytes that were in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipeRecord {
    pub ino: u64,
    pub capacity: usize,
    /// Statefile file with the data in flight, if any.
    pub data: Option<String>,
}

/// A shared memory object (shared anonymous mapping, memfd): its size and the data it
/// holds, as runs of (offset, length) packed in `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMem {
    pub ino: u64,
    pub size: u64,
    pub runs: Vec<(u64, u64)>,
    pub data: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTable {
    pub files: Vec<SharedFile>,
    pub pipes: Vec<PipeRecord>,
    pub mems: Vec<SharedMem>,
}

/// The descriptors of one frozen process, as `collect` needs them.
pub struct ProcessFds<'a> {
    pub pid: i32,
    pub fds: &'a mut Vec<FdRecord>,
    pub policies: &'a ProcessPolicies,
}

fn is_read_end(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_RDONLY
}

/// Finds the descriptions several processes share and the pipes, checks that both ends
/// of every pipe are in the checkpoint, saves pipe data (looked at with tee(2), never
/// consumed), and marks each descriptor with its entry.
pub fn collect(procs: &mut [ProcessFds<'_>], writer: &mut StatefileWriter) -> Result<SharedTable> {
    let mut table = SharedTable::default();
    // (pid, fd) of each group's first member, with the group's entry
    let mut groups: Vec<((i32, i32), u32, String)> = Vec::new();
    let mut members: Vec<(usize, usize, u32)> = Vec::new();
    let mut count: BTreeMap<u32, std::collections::BTreeSet<i32>> = BTreeMap::new();
    for (pi, p) in procs.iter().enumerate() {
        for (fi, r) in p.fds.iter().enumerate() {
            // event objects are made again per process (eventfds.rs)
            if matches!(r.kind, FdKind::Dup { .. } | FdKind::Event(_)) {
                continue;
            }
            let found = groups.iter().find(|((gp, gf), _, path)| {
                *path == r.path
                    && crate::sys::same_open_file(*gp, *gf, p.pid, r.fd).unwrap_or(false)
            });
            let id = match found {
                Some((_, id, _)) => *id,
                None => {
                    let id = groups.len() as u32;
                    groups.push(((p.pid, r.fd), id, r.path.clone()));
                    table.files.push(SharedFile {
                        id,
                        template: r.clone(),
                    });
                    id
                }
            };
            count.entry(id).or_default().insert(p.pid);
            members.push((pi, fi, id));
        }
    }
    // pipes: every end must be in the checkpoint
    let mut pipe_ends: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    for f in &table.files {
        if let FdKind::Pipe { ino } = f.template.kind {
            let e = pipe_ends.entry(ino).or_default();
            if is_read_end(f.template.flags) {
                e.0 = true;
            } else {
                e.1 = true;
            }
        }
    }
    let mut to_null: Vec<u32> = Vec::new();
    // pipes whose missing end is held by no process at all (closed everywhere, as make
    // does with the pipe it gives jobs for stdin): they come back with that end closed
    let mut widowed: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    for &(pi, fi, _) in &members {
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
    for &(pi, fi, id) in &members {
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
                return Err(Error::with_detail(
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
    // data in flight, read from one holder of the read end
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
        table.pipes.push(save_pipe(pid, fd, ino, writer)?);
    }
    // mark the descriptors; a description of one process only stays private, except pipes
    for &(pi, fi, id) in &members {
        let r = &mut procs[pi].fds[fi];
        if to_null.contains(&id) {
            *r = FdRecord {
                kind: FdKind::Device,
                path: "/dev/null".into(),
                action: FileAction::Ignore,
                shared: None,
                pos: 0,
                ..r.clone()
            };
            continue;
        }
        let pipe = matches!(r.kind, FdKind::Pipe { .. });
        if pipe || count[&id].len() > 1 {
            r.shared = Some(id);
        }
    }
    table.files.retain(|f| {
        let pipe = matches!(f.template.kind, FdKind::Pipe { .. });
        !to_null.contains(&f.id) && (pipe || count[&f.id].len() > 1)
    });
    Ok(table)
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
    let copied =
        nix::fcntl::tee(&ours, &wr, waiting, nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK)
            .ctx(format!("{who}: tee"))?;
    drop(wr);
    let mut data = Vec::with_capacity(copied);
    std::fs::File::from(rd).read_to_end(&mut data).ctx(&who)?;
    let rel = format!("shared/pipe-{ino}");
    writer.write_file(&rel, &data)?;
    Ok(PipeRecord {
        ino,
        capacity,
        data: Some(rel),
    })
}

/// Saves each shared memory object the processes map once, from /proc/PID/map_files
/// (only the parts that hold data), and points their mappings at it.
pub fn collect_memory(
    maps: &mut [(i32, &mut Vec<Vma>)],
    table: &mut SharedTable,
    writer: &mut StatefileWriter,
) -> Result<()> {
    for (pid, vmas) in maps.iter_mut() {
        for v in vmas.iter_mut() {
            let Backing::SharedMem { ino, .. } = v.backing else {
                continue;
            };
            if table.mems.iter().any(|m| m.ino == ino) {
                continue;
            }
            let who = format!("process {pid}: shared memory at {:#x}", v.start);
            let file =
                std::fs::File::open(format!("/proc/{pid}/map_files/{:x}-{:x}", v.start, v.end))
                    .ctx(&who)?;
            let size = file.metadata().ctx(&who)?.len();
            let runs = data_runs(&file, size);
            let rel = format!("shared/mem-{ino}");
            let mut sink = writer.create_file(&rel)?;
            let biggest = runs.iter().map(|r| r.1).max().unwrap_or(0);
            let mut buf = vec![0u8; (8 << 20).min(biggest as usize)];
            for &(off, len) in &runs {
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(buf.len() as u64) as usize;
                    file.read_exact_at(&mut buf[..n], off + done).ctx(&who)?;
                    sink.write_all(&buf[..n]).ctx(&rel)?;
                    done += n as u64;
                }
            }
            writer.finish_file(sink)?;
            table.mems.push(SharedMem {
                ino,
                size,
                runs,
                data: rel,
            });
        }
    }
    Ok(())
}

/// (offset, length) of the parts of a tmpfs file that hold data (SEEK_DATA/SEEK_HOLE),
/// page aligned; the whole file if the filesystem cannot tell.
fn data_runs(file: &std::fs::File, size: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let mut runs = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        let Ok(start) = lseek(file, pos, Whence::SeekData) else {
            break;
        };
        let end = lseek(file, start, Whence::SeekHole).unwrap_or(size as i64);
        runs.push((start as u64, (end - start) as u64));
        pos = end;
    }
    if runs.is_empty()
        && size > 0
        && lseek(file, 0, Whence::SeekData).is_err_and(|e| e != nix::errno::Errno::ENXIO)
    {
        runs.push((0, size));
    }
    runs
}

/// Restart, in cpr before any process exists: every shared object, open. Children
/// inherit the descriptors.
pub struct OpenedShared {
    pub files: BTreeMap<u32, OwnedFd>,
    pub mems: BTreeMap<u64, OwnedFd>,
}

impl OpenedShared {
    pub fn file_fd(&self, id: u32) -> Option<i32> {
        self.files.get(&id).map(|f| f.as_raw_fd())
    }
    pub fn mem_fd(&self, ino: u64) -> Option<i32> {
        self.mems.get(&ino).map(|f| f.as_raw_fd())
    }
}

pub fn open_all(table: &SharedTable, sf: &Statefile, tty: Option<&str>) -> Result<OpenedShared> {
    let mut pipes: BTreeMap<u64, (OwnedFd, OwnedFd)> = BTreeMap::new();
    for f in &table.files {
        let FdKind::Pipe { ino } = f.template.kind else {
            continue;
        };
        if pipes.contains_key(&ino) {
            continue;
        }
        let who = format!("pipe:[{ino}]");
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(&who)?;
        if let Some(rec) = table.pipes.iter().find(|p| p.ino == ino) {
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
    let mut files = BTreeMap::new();
    for f in &table.files {
        let fd = match f.template.kind {
            FdKind::Pipe { ino } => {
                let (rd, wr) = &pipes[&ino];
                let end = if is_read_end(f.template.flags) {
                    rd
                } else {
                    wr
                };
                let fd = end.try_clone().ctx(format!("pipe:[{ino}]"))?;
                let fl = nix::fcntl::OFlag::from_bits_truncate(
                    f.template.flags & (libc::O_NONBLOCK | libc::O_DIRECT),
                );
                nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(fl))
                    .ctx(format!("pipe:[{ino}]"))?;
                fd
            }
            _ => super::files::reopen(&f.template, sf, tty)?,
        };
        files.insert(f.id, fd);
    }
    let mut mems = BTreeMap::new();
    for m in &table.mems {
        let who = format!("shared memory {}", m.ino);
        let fd =
            nix::sys::memfd::memfd_create(c"cpr-shmem", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .ctx(&who)?;
        let file = std::fs::File::from(fd);
        file.set_len(m.size).ctx(&who)?;
        let mut data = std::fs::File::open(sf.file(&m.data)).ctx(&who)?;
        let biggest = m.runs.iter().map(|r| r.1).max().unwrap_or(0);
        let mut buf = vec![0u8; (8 << 20).min(biggest as usize)];
        for &(off, len) in &m.runs {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                data.read_exact(&mut buf[..n]).ctx(&who)?;
                file.write_all_at(&buf[..n], off + done).ctx(&who)?;
                done += n as u64;
            }
        }
        mems.insert(m.ino, OwnedFd::from(file));
    }
    Ok(OpenedShared { files, mems })
}
