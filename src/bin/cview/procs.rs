//! What the checkpoint panel lists: the processes of a user (as a list or a tree) and the
//! open and mapped files of a set of processes. Read through cpr's own /proc layer.

use std::collections::{BTreeMap, BTreeSet};

use cpr::attrfile::{AttrFile, FileAction};
use cpr::proc::ProcDir;
use cpr::target::{Designator, IdType, ProcessIds};

/// One row of the process list.
#[derive(Debug, Clone)]
pub struct ProcRow {
    pub user: String,
    pub uid: u32,
    pub pid: i32,
    pub ppid: i32,
    pgid: i32,
    sid: i32,
    pub command: String,
    /// Depth in the tree view (0 in the list view).
    pub depth: usize,
}

impl ProcRow {
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn sid(&self) -> i32 {
        self.sid
    }

    /// Whether the filter text appears in any column.
    pub fn matches(&self, filter: &str) -> bool {
        filter.is_empty()
            || [
                self.user.clone(),
                self.pid.to_string(),
                self.ppid.to_string(),
                self.pgid.to_string(),
                self.sid.to_string(),
                self.command.clone(),
            ]
            .iter()
            .any(|c| c.contains(filter))
    }
}

/// A user name for a uid (the uid itself when it has none).
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The uid of a user name or number.
pub fn uid_of(name: &str) -> Option<u32> {
    if let Ok(uid) = name.parse() {
        return Some(uid);
    }
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Every user process (no kernel threads, not cview itself), by pid.
pub fn scan() -> BTreeMap<i32, ProcRow> {
    let me = std::process::id() as i32;
    let mut rows = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return rows;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(dir) = ProcDir::open(pid) else {
            continue;
        };
        let (Ok(stat), Ok(status)) = (dir.stat(), dir.status()) else {
            continue;
        };
        if stat.is_kernel_thread() || pid == me {
            continue;
        }
        let command = dir
            .cmdline()
            .ok()
            .filter(|args| !args.is_empty())
            .map_or_else(|| format!("[{}]", stat.comm), |args| args.join(" "));
        rows.insert(
            pid,
            ProcRow {
                user: user_name(status.uids[0]),
                uid: status.uids[0],
                pid,
                ppid: stat.ppid,
                pgid: stat.pgrp,
                sid: stat.session,
                command,
                depth: 0,
            },
        );
    }
    rows
}

/// The rows of one user, by pid (list) or depth first from each root (tree).
pub fn rows_of(all: &BTreeMap<i32, ProcRow>, uid: u32, tree: bool) -> Vec<ProcRow> {
    let mine: BTreeMap<i32, &ProcRow> = all
        .iter()
        .filter(|(_, r)| r.uid == uid)
        .map(|(&p, r)| (p, r))
        .collect();
    if !tree {
        return mine.values().map(|&r| r.clone()).collect();
    }
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for r in mine.values() {
        children.entry(r.ppid).or_default().push(r.pid);
    }
    let mut out = Vec::new();
    let roots = mine.values().filter(|r| !mine.contains_key(&r.ppid));
    for root in roots {
        let mut todo = vec![(root.pid, 0)];
        while let Some((pid, depth)) = todo.pop() {
            let mut row = mine[&pid].clone();
            row.depth = depth;
            out.push(row);
            for &child in children.get(&pid).into_iter().flatten().rev() {
                todo.push((child, depth + 1));
            }
        }
    }
    out
}

/// One open or mapped file of a target process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub pid: i32,
    /// The descriptor, or `None` for a mapped file.
    pub fd: Option<i32>,
    pub path: String,
    /// What the attribute file (and the user's earlier choices) give it.
    pub action: FileAction,
}

/// The regular files the processes have open, then the data files they map (not their
/// programs and libraries, which `-u` governs), each with the FILE disposition the
/// attribute file gives it.
pub fn files_of(
    processes: &BTreeMap<i32, ProcessIds>,
    all: &BTreeMap<i32, ProcRow>,
    attributes: &AttrFile,
) -> Vec<FileRow> {
    let mut rows = Vec::new();
    for (&pid, ids) in processes {
        let policies = attributes.policies_for(ids, &ancestors(all, pid));
        let Ok(dir) = ProcDir::open(pid) else {
            continue;
        };
        for fd in dir.fds().unwrap_or_default() {
            let Ok(path) = dir.link(&format!("fd/{fd}")) else {
                continue;
            };
            let regular =
                std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).is_ok_and(|m| m.is_file());
            if path.starts_with('/') && regular && !path.ends_with(" (deleted)") {
                let action = policies.file_action(std::path::Path::new(&path));
                rows.push(FileRow {
                    pid,
                    fd: Some(fd),
                    path,
                    action,
                });
            }
        }
        let maps = dir.maps().unwrap_or_default();
        let programs: BTreeSet<&str> = maps
            .iter()
            .filter(|m| m.perms.contains('x'))
            .map(|m| m.path.as_str())
            .collect();
        let mut seen = BTreeSet::new();
        for m in &maps {
            let path = m.path.as_str();
            if path.starts_with('/') && !programs.contains(path) && seen.insert(path) {
                let action = policies.file_action(std::path::Path::new(path));
                rows.push(FileRow {
                    pid,
                    fd: None,
                    path: path.to_string(),
                    action,
                });
            }
        }
    }
    rows
}

/// Whether the designator takes in cview: its group, its session, or a tree above it.
/// The engine leaves only its caller out (here the helper that runs the checkpoint), and
/// freezing cview would freeze the screen that shows the checkpoint.
pub fn takes_in_me(d: &Designator) -> bool {
    let me = std::process::id() as i32;
    let Ok(stat) = ProcDir::open(me).and_then(|dir| dir.stat()) else {
        return false;
    };
    let id = d.id as i32;
    match d.id_type {
        IdType::Gid => stat.pgrp == id,
        IdType::Sid => stat.session == id,
        IdType::Hid => {
            let mut at = stat.ppid;
            while at > 1 {
                if at == id {
                    return true;
                }
                at = match ProcDir::open(at).and_then(|dir| dir.stat()) {
                    Ok(s) => s.ppid,
                    Err(_) => return false,
                };
            }
            false
        }
        _ => false,
    }
}

/// The PIDs above `pid`, parent first.
fn ancestors(all: &BTreeMap<i32, ProcRow>, pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut at = pid;
    while let Some(row) = all.get(&at) {
        if row.ppid <= 0 || out.contains(&row.ppid) {
            break;
        }
        out.push(row.ppid);
        at = row.ppid;
    }
    out
}
