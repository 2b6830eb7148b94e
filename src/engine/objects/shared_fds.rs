//! Open file descriptions shared between processes (inherited across fork), and the
//! statefile's table of everything processes share (`shared/table.json`: these
//! descriptions, pipes.rs's pipes, shmem.rs's memory objects). Checkpoint saves each
//! once; restart opens each once in cpr, before the processes are created, and every
//! process that had it inherits it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::pipes::PipeRecord;
use super::shmem::SharedMem;
use crate::attrfile::{FileAction, ProcessPolicies};
use crate::error::Result;
use crate::statefile::{Statefile, StatefileWriter};

pub const TABLE: &str = crate::statefile::layout::SHARED_TABLE;

/// One open file description used by several descriptors (of one or more processes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    pub id: u32,
    /// How to open it: the record of its first descriptor (path, flags, offset, policy).
    pub template: FdRecord,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTable {
    pub files: Vec<SharedFile>,
    pub pipes: Vec<PipeRecord>,
    pub mems: Vec<SharedMem>,
    /// Files deleted while open, each saved once (deleted_files.rs); their ids follow
    /// those of `files`.
    #[serde(default)]
    pub deleted: Vec<super::deleted_files::DeletedFile>,
    /// Named FIFOs, each once with its data (fifos.rs).
    #[serde(default)]
    pub fifos: Vec<super::fifos::FifoRecord>,
    /// Pseudo-terminals, each once (ptys.rs); their ids follow those of `deleted`.
    #[serde(default)]
    pub ptys: Vec<super::ptys::PtyRecord>,
    /// UNIX socket pairs, each end once with its queued data (unix_sockets.rs).
    #[serde(default)]
    pub unix_sockets: Vec<super::unix_sockets::UnixSocketRecord>,
    /// TCP and UDP sockets, each once with its state and queued data (inet_sockets.rs).
    #[serde(default)]
    pub inet_sockets: Vec<super::inet_sockets::InetSocketRecord>,
}

/// The descriptors of one frozen process, as `collect` needs them.
pub struct ProcessFds<'a> {
    pub pid: i32,
    pub fds: &'a mut Vec<FdRecord>,
    pub policies: &'a ProcessPolicies,
}

/// A descriptor that is an entry of the table: (index in the processes, index in its
/// descriptors, entry).
pub(super) type Member = (usize, usize, u32);

/// Finds the descriptions several processes share and the pipes, checks that both ends
/// of every pipe are in the checkpoint, saves pipe data (looked at with tee(2), never
/// consumed), and marks each descriptor with its entry.
pub fn collect(procs: &mut [ProcessFds<'_>], writer: &mut StatefileWriter) -> Result<SharedTable> {
    let mut table = SharedTable::default();
    let (members, count) = group(procs, &mut table.files);
    refuse_shared_watchers(procs, &table.files, &count)?;
    refuse_outside_owners(procs)?;
    table.deleted = super::deleted_files::collect(procs, table.files.len() as u32, writer)?;
    table.fifos = super::fifos::collect(procs, writer)?;
    let next = table.files.len() as u32 + table.deleted.len() as u32;
    table.ptys = super::ptys::collect(procs, next)?;
    for &(pi, fi, id) in &members {
        // a template was copied before its file had an entry
        let r = &procs[pi].fds[fi];
        if r.inode.is_some() {
            let template = &mut table.files[id as usize].template;
            template.inode = r.inode;
            template.kind = r.kind.clone();
        }
    }
    let (pipes, to_null) = super::pipes::collect(procs, &members, &table.files, writer)?;
    table.pipes = pipes;
    table.unix_sockets = super::unix_sockets::collect(procs, &members, writer)?;
    table.inet_sockets = super::inet_sockets::collect(procs, &members, writer)?;
    // made by cpr, even when one process has it, as a pipe end is
    let memfd_own = super::memfd_own::own_descriptions(&table.files, &table.deleted);
    mark(procs, &members, &count, &to_null, &memfd_own);
    table.files.retain(|f| {
        let pipe = matches!(
            f.template.kind,
            FdKind::Pipe { .. } | FdKind::UnixSocket { .. } | FdKind::InetSocket { .. }
        ) || memfd_own.contains(&f.id);
        !to_null.contains(&f.id) && (pipe || count[&f.id].len() > 1)
    });
    Ok(table)
}

/// The descriptors `collect` would refuse (pipes to processes outside the checkpoint),
/// found without saving anything: for `cpr -c --dry-run`.
pub fn refusals(procs: &[ProcessFds<'_>]) -> Vec<crate::error::Error> {
    let mut files = Vec::new();
    let (members, _) = group(procs, &mut files);
    let mut out = super::pipes::refusals(procs, &members, &files);
    out.extend(super::ptys::refusals(procs));
    out.extend(super::unix_sockets::refusals(procs, &members));
    out.extend(super::inet_sockets::refusals(procs, &members));
    out
}

/// Groups the descriptors by open file description: one entry of `files` per
/// description, each descriptor a member of one; and the processes that use each entry.
/// Descriptors are grouped in kcmp's order, among those of one path, offset and flags
/// (at most O(n log n) calls, where comparing each with every group took 17 s for
/// 10 000 descriptors); without kcmp's order, each is compared with every group.
fn group(
    procs: &[ProcessFds<'_>],
    files: &mut Vec<SharedFile>,
) -> (Vec<Member>, BTreeMap<u32, BTreeSet<i32>>) {
    let mut slots: Vec<(usize, usize)> = Vec::new();
    for (pi, p) in procs.iter().enumerate() {
        for (fi, r) in p.fds.iter().enumerate() {
            if !matches!(r.kind, FdKind::Dup { .. }) {
                slots.push((pi, fi));
            }
        }
    }
    let keys: Vec<(i32, i32)> = slots
        .iter()
        .map(|&(pi, fi)| (procs[pi].pid, procs[pi].fds[fi].fd))
        .collect();
    // one description has one path, offset and flags
    let same: Vec<(&str, u64, i32)> = slots
        .iter()
        .map(|&(pi, fi)| {
            let r = &procs[pi].fds[fi];
            (r.path.as_str(), r.pos, r.flags)
        })
        .collect();
    let descriptions = crate::sys::kcmp::group_open_files_by(&keys, &same)
        .unwrap_or_else(|_| group_pairwise(procs, &slots));
    // one entry per description and path (a description's path read twice could differ)
    let mut ids: std::collections::HashMap<(usize, &str), u32> = Default::default();
    let mut members: Vec<Member> = Vec::with_capacity(slots.len());
    let mut count: BTreeMap<u32, BTreeSet<i32>> = BTreeMap::new();
    for (&(pi, fi), &d) in slots.iter().zip(&descriptions) {
        let p = &procs[pi];
        let r = &p.fds[fi];
        let id = *ids.entry((d, r.path.as_str())).or_insert_with(|| {
            let id = files.len() as u32;
            files.push(SharedFile {
                id,
                template: r.clone(),
            });
            id
        });
        count.entry(id).or_default().insert(p.pid);
        members.push((pi, fi, id));
    }
    (members, count)
}

/// `group`'s numbering without kcmp's order: each descriptor compared with the first
/// of every group so far (a failing comparison: not the same).
fn group_pairwise(procs: &[ProcessFds<'_>], slots: &[(usize, usize)]) -> Vec<usize> {
    let mut firsts: Vec<(i32, i32)> = Vec::new();
    slots
        .iter()
        .map(|&(pi, fi)| {
            let (pid, fd) = (procs[pi].pid, procs[pi].fds[fi].fd);
            let found = firsts
                .iter()
                .position(|&(gp, gf)| crate::sys::same_open_file(gp, gf, pid, fd).unwrap_or(false));
            found.unwrap_or_else(|| {
                firsts.push((pid, fd));
                firsts.len() - 1
            })
        })
        .collect()
}

/// A description whose SIGIO goes to a process or thread outside the checkpoint would
/// signal whatever has that ID after restart: "Checkpoint error". (Process groups are
/// taken as they are.)
fn refuse_outside_owners(procs: &[ProcessFds<'_>]) -> Result<()> {
    let inside = |id: i32| {
        procs.iter().any(|p| {
            p.pid == id || std::path::Path::new(&format!("/proc/{}/task/{id}", p.pid)).exists()
        })
    };
    for p in procs {
        for r in p.fds.iter() {
            let Some(o) = r.owner else { continue };
            if o.id != 0 && o.kind != crate::sys::fown::F_OWNER_PGRP && !inside(o.id) {
                return Err(crate::error::Error::with_detail(
                    format!("process {} fd {}", p.pid, r.fd),
                    crate::error::Kind::CheckpointError,
                    format!(
                        "{}: its owner (F_SETOWN) {} is outside the checkpoint, which is not checkpoint safe",
                        r.path, o.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// "Checkpoint error" for an epoll, inotify or pidfd instance shared between processes
/// (restart would make it in cpr, where what it refers to is not), and for a pidfd of a
/// process outside the checkpoint.
fn refuse_shared_watchers(
    procs: &[ProcessFds<'_>],
    files: &[SharedFile],
    count: &BTreeMap<u32, BTreeSet<i32>>,
) -> Result<()> {
    use super::events::EventFd;
    for f in files {
        let FdKind::Event(ev) = &f.template.kind else {
            continue;
        };
        let users = &count[&f.id];
        let pids_known = |pid: &i32| procs.iter().any(|p| p.pid == *pid);
        if let EventFd::Pidfd { pid } = ev
            && !pids_known(pid)
        {
            return Err(crate::error::Error::with_detail(
                format!(
                    "process {} fd {}",
                    users.first().copied().unwrap_or(0),
                    f.template.fd
                ),
                crate::error::Kind::CheckpointError,
                format!(
                    "a pidfd of process {pid}, which is outside the checkpoint, is not checkpoint safe"
                ),
            ));
        }
        // made in cpr before the processes exist: neither a pidfd (its process is not
        // there yet) nor a set of watches on other descriptors can be
        let made_late = matches!(
            ev,
            EventFd::Epoll { .. } | EventFd::Inotify { .. } | EventFd::Pidfd { .. }
        );
        if users.len() > 1 && made_late {
            let pids: Vec<String> = users.iter().map(|p| p.to_string()).collect();
            return Err(crate::error::Error::with_detail(
                format!("process {} fd {}", pids[0], f.template.fd),
                crate::error::Kind::CheckpointError,
                format!(
                    "{}: one instance shared by processes {} is not checkpoint safe",
                    f.template.path,
                    pids.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Marks the descriptors with their entry; a description of one process only stays
/// private, except pipes. Those in `to_null` become /dev/null.
fn mark(
    procs: &mut [ProcessFds<'_>],
    members: &[Member],
    count: &BTreeMap<u32, BTreeSet<i32>>,
    to_null: &[u32],
    memfd_own: &BTreeSet<u32>,
) {
    for &(pi, fi, id) in members {
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
        // a pipe or socket is made by cpr, even when one process has it
        let pipe = matches!(
            r.kind,
            FdKind::Pipe { .. } | FdKind::UnixSocket { .. } | FdKind::InetSocket { .. }
        ) || memfd_own.contains(&id);
        if pipe || count[&id].len() > 1 {
            r.shared = Some(id);
        }
    }
}

/// Restart, in cpr before any process exists: every shared object, open. Children
/// inherit the descriptors.
pub struct OpenedShared {
    pub files: BTreeMap<u32, OwnedFd>,
    pub mems: BTreeMap<u64, OwnedFd>,
    /// A read-write descriptor of each FIFO, so that opening one never blocks.
    pub fifo_holders: Vec<OwnedFd>,
    /// TCP connections in repair mode until the processes are released.
    pub inet_repairing: super::inet_sockets::Repairing,
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
    let pipes = super::pipes::open_all(&table.files, &table.pipes, sf)?;
    let fifo_holders = super::fifos::open_all(&table.fifos, sf)?;
    let sockets = super::unix_sockets::open_all(&table.files, &table.unix_sockets, sf)?;
    let (inet, inet_repairing) =
        super::inet_sockets::open_all(&table.files, &table.inet_sockets, sf)?;
    let mems = super::shmem::open_all(&table.mems, sf)?;
    // the deleted files first: descriptions of them open their copies (or, for one also
    // mapped, the memory object its mappings use)
    let mut files = super::deleted_files::open_all(&table.deleted, sf, &mems)?;
    for (id, fd) in super::ptys::open_all(&table.ptys)? {
        if files.insert(id, fd).is_some() {
            return Err(crate::statefile::reader::damaged_record(format!(
                "shared entry {id} used twice"
            )));
        }
    }
    let copies: BTreeMap<u32, i32> = files.iter().map(|(id, f)| (*id, f.as_raw_fd())).collect();
    let copy = |id: u32| copies.get(&id).copied();
    let mut used_ends = std::collections::BTreeSet::new();
    let memfd_own = super::memfd_own::own_descriptions(&table.files, &table.deleted);
    for f in &table.files {
        let own_memfd = (memfd_own.contains(&f.id) && f.template.kind == FdKind::Deleted)
            .then(|| f.template.inode.and_then(copy))
            .flatten();
        let fd = match f.template.kind {
            _ if let Some(memfd) = own_memfd => super::memfd_own::open(f, memfd)?,
            FdKind::Pipe { ino } => {
                super::pipes::open_end(&pipes, &mut used_ends, ino, &f.template)?
            }
            FdKind::Event(ref ev) => super::events::create(&f.template, ev)?,
            FdKind::UnixSocket { ino, .. } => super::unix_sockets::open_end(&sockets, ino)?,
            FdKind::InetSocket { ino, .. } => super::inet_sockets::open_end(&inet, ino)?,
            _ => super::files::reopen(&f.template, sf, tty, &copy)?,
        };
        if files.insert(f.id, fd).is_some() {
            return Err(crate::statefile::reader::damaged_record(format!(
                "shared entry {} used twice",
                f.id
            )));
        }
    }
    Ok(OpenedShared {
        files,
        mems,
        fifo_holders,
        inet_repairing,
    })
}
