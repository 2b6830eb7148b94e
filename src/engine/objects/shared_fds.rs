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
    let (pipes, to_null) = super::pipes::collect(procs, &members, &table.files, writer)?;
    table.pipes = pipes;
    mark(procs, &members, &count, &to_null);
    table.files.retain(|f| {
        let pipe = matches!(f.template.kind, FdKind::Pipe { .. });
        !to_null.contains(&f.id) && (pipe || count[&f.id].len() > 1)
    });
    Ok(table)
}

/// The descriptors `collect` would refuse (pipes to processes outside the checkpoint),
/// found without saving anything: for `cpr -c --dry-run`.
pub fn refusals(procs: &[ProcessFds<'_>]) -> Vec<crate::error::Error> {
    let mut files = Vec::new();
    let (members, _) = group(procs, &mut files);
    super::pipes::refusals(procs, &members, &files)
}

/// Groups the descriptors by open file description: one entry of `files` per
/// description, each descriptor a member of one; and the processes that use each entry.
fn group(
    procs: &[ProcessFds<'_>],
    files: &mut Vec<SharedFile>,
) -> (Vec<Member>, BTreeMap<u32, BTreeSet<i32>>) {
    // (pid, fd) of each group's first member, with the group's entry
    let mut groups: Vec<((i32, i32), u32, String)> = Vec::new();
    let mut members: Vec<Member> = Vec::new();
    let mut count: BTreeMap<u32, BTreeSet<i32>> = BTreeMap::new();
    for (pi, p) in procs.iter().enumerate() {
        for (fi, r) in p.fds.iter().enumerate() {
            // event objects are made again per process (events.rs)
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
                    files.push(SharedFile {
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
    (members, count)
}

/// Marks the descriptors with their entry; a description of one process only stays
/// private, except pipes. Those in `to_null` become /dev/null.
fn mark(
    procs: &mut [ProcessFds<'_>],
    members: &[Member],
    count: &BTreeMap<u32, BTreeSet<i32>>,
    to_null: &[u32],
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
        let pipe = matches!(r.kind, FdKind::Pipe { .. });
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
    let mut files = BTreeMap::new();
    for f in &table.files {
        let fd = match f.template.kind {
            FdKind::Pipe { ino } => super::pipes::open_end(&pipes, ino, &f.template)?,
            _ => super::files::reopen(&f.template, sf, tty)?,
        };
        files.insert(f.id, fd);
    }
    let mems = super::shmem::open_all(&table.mems, sf)?;
    Ok(OpenedShared { files, mems })
}
