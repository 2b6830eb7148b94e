//! `cpr -c --dry-run`: what a checkpoint would take in and whether it would succeed, read
//! from /proc while the targets run on. Nothing is stopped, traced or signalled.
//!
//! The verdict comes from the very checks the checkpoint makes: the same target
//! resolution and permission rules, the same policies, the same classification of each
//! descriptor (`files::classify`) and mapping (`memory::plan_each`), the same pipe and
//! address-space rules, the same statefile checks. Where the checkpoint stops at the first
//! refusal, the preview lists them all, each with the message the checkpoint would print.

use crate::engine::objects::tracking;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Targets;
use crate::attrfile::{FileAction, ProcessPolicies, WillAction};
use crate::engine::objects::files::{self, FdKind, FdRecord};
use crate::engine::objects::memory::{self, Backing, PAGE, Vma};
use crate::engine::objects::{deleted_files, mapped_files, pstree, shared_fds};
use crate::engine::options::CheckpointOptions;
use crate::engine::progress::Progress;
use crate::error::{Error, Kind, Result};
use crate::proc::ProcDir;
use crate::statefile::{Owner, StatefileWriter};

/// What a checkpoint with these options would do.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub statefile: String,
    /// The checkpoint would succeed (no refusals).
    pub would_succeed: bool,
    /// What happens to the processes after the checkpoint (`-g`/`-k`, else the policy).
    pub will: WillAction,
    pub processes: Vec<ProcessPreview>,
    /// Bytes the statefile would hold: page data, shared memory, saved file contents
    /// and `-u` copies (the JSON records add a few KiB per process).
    pub estimated_bytes: u64,
    /// Every object the checkpoint would refuse, each as the checkpoint would say it.
    pub refusals: Vec<Refusal>,
}

/// One process of the set.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessPreview {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub uid: u32,
    pub command: String,
    /// An unreaped child: saved as a zombie of the tree, with nothing else.
    pub zombie: bool,
    /// It handles SIGCKPT (libcpr's atcheckpoint): the checkpoint sends it first and
    /// waits for its handlers (`--timeout`); the preview does not.
    pub checkpoint_aware: bool,
    pub threads: usize,
    pub policies: Option<ProcessPolicies>,
    pub descriptors: Vec<DescriptorPreview>,
    pub mappings: Vec<MappingPreview>,
    /// Bytes of this process's page data.
    pub pages_bytes: u64,
}

/// One open descriptor and what the checkpoint does with it.
#[derive(Debug, Clone, Serialize)]
pub struct DescriptorPreview {
    pub fd: i32,
    /// regular, deleted, directory, device, dup, pipe, event
    pub kind: String,
    pub path: String,
    /// The FILE policy (MERGE for what is not a regular file).
    pub action: FileAction,
    /// What restart does with it, in words.
    pub disposition: String,
    /// Bytes of content saved in the statefile (REPLACE, SUBSTITUTE, deleted files).
    pub saved_bytes: u64,
}

/// One mapping and what the checkpoint does with it.
#[derive(Debug, Clone, Serialize)]
pub struct MappingPreview {
    pub start: u64,
    pub end: u64,
    /// `rwxp` / `rw-s` as /proc shows it.
    pub perms: String,
    pub name: String,
    pub disposition: String,
    /// Bytes of its pages saved with the process.
    pub saved_bytes: u64,
}

/// An object that is not checkpoint safe (or another reason the checkpoint would fail).
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub pid: Option<i32>,
    pub fd: Option<i32>,
    /// The IRIX message text ("Checkpoint error", "File exists", ...).
    pub kind: String,
    /// The whole line the checkpoint would print (after `cpr: `).
    pub message: String,
    #[serde(skip)]
    error: Option<(String, Kind, Option<String>)>,
}

impl Refusal {
    fn new(pid: Option<i32>, fd: Option<i32>, e: &Error) -> Refusal {
        Refusal {
            pid,
            fd,
            kind: e.kind.message(),
            message: e.to_string(),
            error: Some((e.subject.clone(), e.kind, e.detail.clone())),
        }
    }

    /// The error the checkpoint would fail with.
    pub fn to_error(&self) -> Error {
        match &self.error {
            Some((subject, kind, detail)) => Error {
                subject: subject.clone(),
                kind: *kind,
                detail: detail.clone(),
            },
            None => Error::with_detail("", Kind::CheckpointError, self.message.clone()),
        }
    }
}

/// Looks at what `cpr -c` with `options` would checkpoint, without stopping anything.
/// Fails as the checkpoint would when the designators name no process the caller may
/// checkpoint; every other reason the checkpoint would fail is a refusal of the preview.
pub fn preview(options: &CheckpointOptions) -> Result<Preview> {
    let targets = super::resolve_targets(options)?;
    let mut processes = process_set(&targets);
    // nothing is frozen: a process that ends while it is looked at is left out, as the
    // checkpoint, which freezes the set as it is then, would not find it either
    let mut policies = BTreeMap::new();
    for p in processes.iter().filter(|p| !p.zombie) {
        match super::policies::resolve(&[p.pid], &targets.attributes, options.will) {
            Ok(mut one) => policies.append(&mut one),
            Err(e) if e.kind == Kind::NoSuchProcess => {}
            Err(e) => return Err(e),
        }
    }
    processes.retain(|p| p.zombie || policies.contains_key(&p.pid));
    let live: Vec<i32> = policies.keys().copied().collect();
    let mut refusals = Vec::new();
    // the checks the checkpoint makes on the whole set once frozen (checkpoint/mod.rs)
    for check in [
        super::refuse_shared_address_spaces,
        crate::engine::objects::process::refuse_unrestorable,
        crate::engine::objects::sysv_sem::refusals,
        crate::engine::objects::posix_mqueue::refusals,
    ] {
        if let Err(e) = check(&live) {
            refusals.push(Refusal::new(None, None, &e));
        }
    }
    check_statefile(options, &targets, &mut refusals);

    let in_statefile = |e: Error| e.context(options.statefile.display());
    let mut all_fds: BTreeMap<i32, Vec<FdRecord>> = BTreeMap::new();
    let mut estimate = Estimate::default();
    for p in processes.iter_mut().filter(|p| !p.zombie) {
        let pol = &policies[&p.pid];
        p.policies = Some(pol.clone());
        let fds = look_at_descriptors(p, pol, &mut refusals, &in_statefile);
        estimate.files += p.descriptors.iter().map(|d| d.saved_bytes).sum::<u64>();
        let refused = look_at_memory(p, options.upgrade, &mut estimate);
        refusals.extend(
            refused
                .into_iter()
                .map(|e| Refusal::new(Some(p.pid), None, &in_statefile(e))),
        );
        all_fds.insert(p.pid, fds);
    }
    preview_deleted_files(&mut processes, &mut estimate);
    pipe_refusals(&mut all_fds, &policies, &mut refusals, &in_statefile);
    socket_dispositions(&mut processes, &mut all_fds, &policies);
    let gone: BTreeSet<i32> = live
        .iter()
        .copied()
        .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    processes.retain(|p| !gone.contains(&p.pid));
    refusals.retain(|r| {
        let vanished = matches!(r.error, Some((_, Kind::NoSuchProcess, _)));
        r.pid.is_none_or(|pid| !gone.contains(&pid)) && (gone.is_empty() || !vanished)
    });

    let will = super::policies::overall_will(options.will, &policies);
    Ok(Preview {
        statefile: options.statefile.display().to_string(),
        would_succeed: refusals.is_empty(),
        will,
        estimated_bytes: estimate.total(),
        processes,
        refusals,
    })
}

/// Deleted files and memfds, as the checkpoint saves them: once each, and not at all
/// when the set maps them too (deleted_files.rs).
fn preview_deleted_files(processes: &mut [ProcessPreview], estimate: &mut Estimate) {
    let pids: Vec<i32> = processes
        .iter()
        .filter(|p| !p.zombie)
        .map(|p| p.pid)
        .collect();
    let mapped = deleted_files::mapped_objects(&pids).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for p in processes.iter_mut() {
        for d in p.descriptors.iter_mut().filter(|d| d.kind == "deleted") {
            let (how, bytes) = deleted_files::preview(p.pid, d.fd, &d.path, &mapped, &mut seen);
            d.disposition = how;
            d.saved_bytes = bytes;
            estimate.files += bytes;
        }
    }
}

/// The processes the designators name, as resolution found them (descriptors and
/// mappings still to be looked at).
fn process_set(targets: &Targets) -> Vec<ProcessPreview> {
    let mut processes = Vec::new();
    for (&pid, ids) in &targets.set.processes {
        let zombie = pstree::zombie(pid).is_some();
        let aware = !zombie
            && crate::engine::cooperate::handles(pid, crate::engine::cooperate::SIGCKPT)
                .unwrap_or(false);
        processes.push(ProcessPreview {
            pid,
            ppid: ids.ppid,
            pgid: ids.pgid,
            sid: ids.sid,
            uid: ids.uids[0],
            command: ProcDir::open(pid)
                .and_then(|d| d.stat())
                .map(|s| s.comm)
                .unwrap_or_default(),
            zombie,
            checkpoint_aware: aware,
            threads: ids.tids.len(),
            policies: None,
            descriptors: Vec::new(),
            mappings: Vec::new(),
            pages_bytes: 0,
        });
    }
    processes
}

/// The mappings of `p`, planned as the dump plans them, and its programs and libraries
/// identified as the dump identifies them; returns what would be refused.
fn look_at_memory(p: &mut ProcessPreview, upgrade: bool, estimate: &mut Estimate) -> Vec<Error> {
    let vmas = match memory::plan_each(p.pid) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let planned: Vec<Vma> = vmas
        .iter()
        .filter_map(|v| v.as_ref().ok().cloned())
        .collect();
    let mut refused = look_at_mappings(p, vmas, upgrade, estimate);
    if let Err(e) = mapped_files::identify(p.pid, &planned) {
        refused.push(e);
    }
    refused
}

/// The statefile checks the checkpoint makes before it writes anything (a name it can
/// make, a directory it may write in, `-f` to replace): a statefile is started and
/// abandoned at once, which leaves nothing behind.
fn check_statefile(options: &CheckpointOptions, targets: &Targets, refusals: &mut Vec<Refusal>) {
    let owner: Owner = targets.owner;
    if let Err(e) = StatefileWriter::create(&options.statefile, options.force, owner) {
        refusals.push(Refusal::new(None, None, &e));
    }
}

/// Classifies each descriptor of `p` as the checkpoint does; returns those it accepts.
fn look_at_descriptors(
    p: &mut ProcessPreview,
    policies: &ProcessPolicies,
    refusals: &mut Vec<Refusal>,
    in_statefile: &dyn Fn(Error) -> Error,
) -> Vec<FdRecord> {
    let mut accepted: Vec<FdRecord> = Vec::new();
    let dir = match ProcDir::open(p.pid) {
        Ok(d) => d,
        Err(e) => {
            refusals.push(Refusal::new(Some(p.pid), None, &in_statefile(e)));
            return accepted;
        }
    };
    // a working or root directory removed: the checkpoint refuses it first (files::dump)
    if let Err(e) = files::check_directories(&dir, policies) {
        refusals.push(Refusal::new(Some(p.pid), None, &in_statefile(e)));
    }
    let fds = match dir.fds() {
        Ok(f) => f,
        Err(e) => {
            refusals.push(Refusal::new(Some(p.pid), None, &in_statefile(e)));
            return accepted;
        }
    };
    let fds: Vec<i32> = (fds.into_iter())
        .filter(|&fd| !tracking::is_own_uffd(&dir, fd))
        .collect();
    let mut dups = files::Duplicates::default();
    for fd in fds {
        match files::classify(&dir, fd, &accepted, &mut dups, policies) {
            Ok(record) => {
                p.descriptors.push(describe_fd(p.pid, &record));
                accepted.push(record);
            }
            // closed meanwhile: the checkpoint would not see it either
            Err(_) if std::fs::symlink_metadata(dir.path(&format!("fd/{fd}"))).is_err() => {}
            Err(e) => refusals.push(Refusal::new(Some(p.pid), Some(fd), &in_statefile(e))),
        }
    }
    accepted
}

fn describe_fd(pid: i32, r: &FdRecord) -> DescriptorPreview {
    let (kind, disposition) = match &r.kind {
        FdKind::Regular => ("regular", file_disposition(r.action)),
        FdKind::Deleted => ("deleted", "deleted file: its content is saved".to_string()),
        FdKind::Directory => ("directory", "reopened".to_string()),
        FdKind::Device => ("device", "reopened".to_string()),
        FdKind::RemovedDevice(_) => (
            "device",
            "removed device node: made again with its mode and owner, and removed".to_string(),
        ),
        FdKind::Dup { of } => ("dup", format!("same open file as fd {of}")),
        FdKind::Pipe { .. } => (
            "pipe",
            "made again with the data in it (both ends in the checkpoint, or the other closed)"
                .to_string(),
        ),
        FdKind::Fifo { .. } => (
            "fifo",
            "opened again by name, with the data in it".to_string(),
        ),
        FdKind::PtyMaster { .. } => (
            "pty master",
            "a new pseudo-terminal with the same settings".to_string(),
        ),
        FdKind::PtySlave { .. } => ("pty slave", "the new pseudo-terminal's slave".to_string()),
        FdKind::Path => ("O_PATH", "opened again by name".to_string()),
        FdKind::Event(_) => ("event", "made again with its state".to_string()),
        FdKind::MQueue { .. } => (
            "mqueue",
            "made again by name with its limits, messages and notification".to_string(),
        ),
        FdKind::UnixSocket { .. } => (
            "unix socket",
            "made again: its name, peer or listener, the data queued and its options; \
             a peer outside the checkpoint as the SOCKET policy says"
                .to_string(),
        ),
        FdKind::InetSocket { .. } => ("inet socket", "refused (see the refusals)".to_string()),
    };
    let saved_bytes = if files::needs_saved_content(r) {
        std::fs::metadata(format!("/proc/{pid}/fd/{}", r.fd)).map_or(0, |m| m.len())
    } else {
        0
    };
    DescriptorPreview {
        fd: r.fd,
        kind: kind.to_string(),
        path: r.path.clone(),
        action: r.action,
        disposition,
        saved_bytes,
    }
}

/// What restart does under each FILE policy (files.rs, restore).
fn file_disposition(action: FileAction) -> String {
    match action {
        FileAction::Merge => "MERGE: reopened at its offset",
        FileAction::Ignore => "IGNORE: reopened at offset 0 (write-only: emptied)",
        FileAction::Append => "APPEND: reopened at its end",
        FileAction::Replace => "REPLACE: content saved, put back at restart",
        FileAction::Substitute => {
            "SUBSTITUTE: content saved, given back as an unlinked copy; the file is left alone"
        }
    }
    .to_string()
}

/// What the statefile would hold, by source.
#[derive(Default)]
struct Estimate {
    pages: u64,
    files: u64,
    /// Shared memory objects, saved once each: by inode (or shmid), the largest extent.
    shared: BTreeMap<(bool, u64), u64>,
    /// `-u` copies, once per file.
    upgrade: BTreeMap<String, u64>,
}

impl Estimate {
    fn total(&self) -> u64 {
        self.pages
            + self.files
            + self.shared.values().sum::<u64>()
            + self.upgrade.values().sum::<u64>()
    }
}

/// Lists the mappings of `p` (classified by `memory::plan_each`, as the checkpoint
/// does) and adds their data to the estimate; returns the mappings refused.
fn look_at_mappings(
    p: &mut ProcessPreview,
    vmas: Vec<Result<Vma>>,
    upgrade: bool,
    estimate: &mut Estimate,
) -> Vec<Error> {
    let mut refused = Vec::new();
    for v in vmas {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                refused.push(e);
                continue;
            }
        };
        let saved_bytes = saved_page_bytes(&v);
        p.pages_bytes += saved_bytes;
        let len = v.end - v.start;
        let disposition = match &v.backing {
            Backing::Anon => "memory: pages saved".to_string(),
            Backing::File { path, .. } if v.shared => format!("{path}: mapped again"),
            Backing::File { path, .. } => {
                if upgrade && v.prot & libc::PROT_EXEC != 0 {
                    let size = std::fs::metadata(path).map_or(0, |m| m.len());
                    estimate.upgrade.insert(path.clone(), size);
                }
                format!("{path}: mapped again, written pages saved")
            }
            Backing::Vdso => "vDSO: moved where it was".to_string(),
            Backing::Vsyscall => "vsyscall: fixed by the kernel".to_string(),
            Backing::SharedMem { ino, offset } => {
                let e = estimate.shared.entry((false, *ino)).or_default();
                *e = (*e).max(offset + len);
                "shared memory: saved once for all processes".to_string()
            }
            Backing::SysvShm { shmid } => {
                let e = estimate.shared.entry((true, *shmid as u64)).or_default();
                *e = (*e).max(len);
                format!("SysV shared memory {shmid}: saved once")
            }
        };
        p.mappings.push(MappingPreview {
            start: v.start,
            end: v.end,
            perms: perms(&v),
            name: v.name.clone(),
            disposition,
            saved_bytes,
        });
    }
    estimate.pages += p.pages_bytes;
    refused
}

/// Bytes of the pages of `v` the checkpoint saves with the process.
fn saved_page_bytes(v: &Vma) -> u64 {
    v.runs.iter().map(|&(_, n)| n * PAGE).sum()
}

/// The page data the checkpoint of (frozen) `pids` will write, for the progress bar:
/// `None` when nobody watches, or when a process cannot be planned (the dump says why).
pub(super) fn page_bytes(pids: &[i32], progress: &Progress) -> Option<u64> {
    if !progress.is_observed() {
        return None;
    }
    let mut total = 0;
    for &pid in pids {
        total += memory::plan(pid)
            .ok()?
            .iter()
            .map(saved_page_bytes)
            .sum::<u64>();
    }
    Some(total)
}

fn perms(v: &Vma) -> String {
    let bit = |b: i32, c: char| if v.prot & b != 0 { c } else { '-' };
    [
        bit(libc::PROT_READ, 'r'),
        bit(libc::PROT_WRITE, 'w'),
        bit(libc::PROT_EXEC, 'x'),
        if v.shared { 's' } else { 'p' },
    ]
    .iter()
    .collect()
}

/// Pipes to processes outside the checkpoint, as the collection of shared objects
/// refuses them.
fn pipe_refusals(
    all_fds: &mut BTreeMap<i32, Vec<FdRecord>>,
    policies: &BTreeMap<i32, ProcessPolicies>,
    refusals: &mut Vec<Refusal>,
    in_statefile: &dyn Fn(Error) -> Error,
) {
    let procs: Vec<shared_fds::ProcessFds<'_>> = all_fds
        .iter_mut()
        .map(|(&pid, fds)| shared_fds::ProcessFds {
            pid,
            fds,
            policies: &policies[&pid],
        })
        .collect();
    for e in shared_fds::refusals(&procs) {
        // the subject is "process P fd F"
        let (pid, fd) = subject_ids(&e.subject);
        refusals.push(Refusal::new(pid, fd, &in_statefile(e)));
    }
}

/// What restart makes of each TCP and UDP socket, known once every process is read.
fn socket_dispositions(
    processes: &mut [ProcessPreview],
    all_fds: &mut BTreeMap<i32, Vec<FdRecord>>,
    policies: &BTreeMap<i32, ProcessPolicies>,
) {
    let procs: Vec<shared_fds::ProcessFds<'_>> = all_fds
        .iter_mut()
        .map(|(&pid, fds)| shared_fds::ProcessFds {
            pid,
            fds,
            policies: &policies[&pid],
        })
        .collect();
    for (pid, fd, what) in crate::engine::objects::inet_sockets::dispositions(&procs) {
        let descriptors = processes.iter_mut().filter(|p| p.pid == pid);
        for d in descriptors.flat_map(|p| p.descriptors.iter_mut()) {
            if d.fd == fd {
                d.disposition = what.to_string();
            }
        }
    }
}

/// The process and descriptor an error's subject names (`process 12 fd 3`).
fn subject_ids(subject: &str) -> (Option<i32>, Option<i32>) {
    let mut words = subject.split_whitespace();
    let mut pid = None;
    let mut fd = None;
    while let Some(w) = words.next() {
        match w {
            "process" => pid = words.next().and_then(|n| n.parse().ok()),
            "fd" => fd = words.next().and_then(|n| n.parse().ok()),
            _ => {}
        }
    }
    (pid, fd)
}

impl Preview {
    /// The preview of a checkpoint that cannot even start (no such process, permission
    /// denied, a bad designator): no processes, one refusal.
    pub fn failed(statefile: &std::path::Path, e: &Error) -> Preview {
        Preview {
            statefile: statefile.display().to_string(),
            would_succeed: false,
            will: WillAction::default(),
            processes: Vec::new(),
            estimated_bytes: 0,
            refusals: vec![Refusal::new(None, None, e)],
        }
    }

    /// The preview for people: the verdict, then each process with its descriptors and
    /// mappings, then what would be refused.
    pub fn render_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verdict = if self.would_succeed {
            "the checkpoint would succeed".to_string()
        } else {
            format!(
                "the checkpoint would fail: {} refusal(s)",
                self.refusals.len()
            )
        };
        let _ = writeln!(out, "statefile {}: {verdict}", self.statefile);
        let _ = writeln!(
            out,
            "processes: {}; after the checkpoint: {:?}; estimated size: {}",
            self.processes.len(),
            self.will,
            human_bytes(self.estimated_bytes)
        );
        for p in &self.processes {
            render_process(&mut out, p);
        }
        if !self.refusals.is_empty() {
            let _ = writeln!(out, "\nnot checkpoint safe:");
            for r in &self.refusals {
                let _ = writeln!(out, "  {}", r.message);
            }
        }
        out
    }
}

fn render_process(out: &mut String, p: &ProcessPreview) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\nprocess {} ({}) ppid {} pgid {} sid {} uid {}{}",
        p.pid,
        p.command,
        p.ppid,
        p.pgid,
        p.sid,
        p.uid,
        if p.zombie {
            ", zombie: saved as one".to_string()
        } else {
            format!(
                ", {} thread(s), page data {}{}",
                p.threads,
                human_bytes(p.pages_bytes),
                if p.checkpoint_aware {
                    ", checkpoint-aware (SIGCKPT first)"
                } else {
                    ""
                }
            )
        }
    );
    for d in &p.descriptors {
        let _ = writeln!(
            out,
            "  fd {:<4} {:<9} {}  [{}]",
            d.fd, d.kind, d.path, d.disposition
        );
    }
    for m in &p.mappings {
        let _ = writeln!(
            out,
            "  map {:x}-{:x} {} {}  [{}{}]",
            m.start,
            m.end,
            m.perms,
            if m.name.is_empty() { "-" } else { &m.name },
            m.disposition,
            if m.saved_bytes > 0 {
                format!(", {}", human_bytes(m.saved_bytes))
            } else {
                String::new()
            }
        );
    }
}

/// `12.3 MiB (12898304 bytes)`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {} ({n} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_process_and_descriptor() {
        assert_eq!(subject_ids("process 12 fd 3"), (Some(12), Some(3)));
        assert_eq!(subject_ids("process 12"), (Some(12), None));
        assert_eq!(subject_ids("ckpt"), (None, None));
    }

    #[test]
    fn sizes_are_given_in_both_forms() {
        assert_eq!(human_bytes(100), "100 bytes");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB (3145728 bytes)");
    }

    #[test]
    fn a_refusal_is_the_error_the_checkpoint_prints() {
        let e = Error::with_detail(
            "process 4 fd 5",
            Kind::CheckpointError,
            "socket:[9]: a socket is not checkpoint safe",
        )
        .context("ck");
        let r = Refusal::new(Some(4), Some(5), &e);
        assert_eq!(r.message, e.to_string());
        assert_eq!(r.to_error().to_string(), e.to_string());
        assert_eq!(r.kind, "Checkpoint error");
    }
}
