//! System V shared memory. A segment is a statefile-level object: its key, shmid, mode,
//! owner and contents are saved once, however many processes (or attachments) use it,
//! in `shared/shm.json` and `shared/shm-<shmid>`. Restart recreates every segment with
//! its original shmid before any process exists; each process then attaches it by an
//! injected shmat at its old address (memory::restore). Segments that were marked for
//! removal (SHM_DEST) are marked again once every process has attached them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::memory::{Backing, PAGE, Vma};
use crate::engine::ptrace::Injector;
use crate::error::{Context, Error, Kind, Result};
use crate::proc::MapsLine;
use crate::proc::sysvipc::{SHM_PATH as PROC_TABLE, ShmInfo};
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::shm as sys;

pub const INDEX: &str = crate::statefile::layout::SHM_INDEX;
const NEXT_ID: &str = "/proc/sys/kernel/shm_next_id";

pub fn contents_path(shmid: i32) -> String {
    crate::statefile::layout::shm_contents_path(shmid)
}

/// Every segment of this IPC namespace (/proc/sysvipc/shm).
pub fn read_table() -> Result<Vec<ShmInfo>> {
    crate::proc::sysvipc::read_shm()
}

/// A segment as saved: `shared/shm.json` lists these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub shmid: i32,
    /// 0 is IPC_PRIVATE (also what a segment marked for removal shows).
    pub key: i32,
    /// Permission bits (0o777).
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    /// The creator: shown by -i, not restorable (the kernel sets it).
    pub cuid: u32,
    pub cgid: u32,
    /// Marked for removal (SHM_DEST): marked again after restart.
    pub dest: bool,
    /// SHM_LOCK'ed.
    pub locked: bool,
    /// Saved pages (first page, count) in file order; pages not listed are zero.
    pub runs: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShmIndex {
    pub segments: Vec<SegmentRecord>,
}

fn round_page(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

fn same_ipc_namespace(pid: i32) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/ipc")).ok();
    ns(&pid.to_string()) == ns("self")
}

/// The backing of a `/SYSV........ (deleted)` mapping (its inode is the shmid), or
/// "Checkpoint error" for attachments cpr cannot give back as they are.
pub fn plan_vma(pid: i32, m: &MapsLine, flags: &[String]) -> Result<Backing> {
    let who = format!("process {pid}");
    let refuse = |what: String| {
        Err(Error::with_detail(
            &who,
            Kind::CheckpointError,
            format!("SysV shared memory at {:#x}: {what}", m.start),
        ))
    };
    let Ok(shmid) = i32::try_from(m.inode) else {
        return refuse(format!("inode {} is no shmid", m.inode));
    };
    if !m.shared() {
        return refuse("private mapping".into());
    }
    if !same_ipc_namespace(pid) {
        return refuse(format!("shmid {shmid} is in another IPC namespace"));
    }
    if flags.iter().any(|f| f == "ht") {
        return refuse(format!("shmid {shmid} uses huge pages (not supported yet)"));
    }
    let table = read_table()?;
    let Some(info) = table.iter().find(|s| s.shmid == shmid) else {
        return refuse(format!("shmid {shmid} is not in {PROC_TABLE}"));
    };
    if m.offset != 0 || m.end - m.start != round_page(info.size) {
        return refuse(format!(
            "only part of shmid {shmid} is attached there (offset {:#x}, {} of {} bytes)",
            m.offset,
            m.end - m.start,
            info.size
        ));
    }
    Ok(Backing::SysvShm { shmid })
}

/// Which pages of a segment to save: those present (all of them when `present` is
/// None) and not entirely zero.
fn page_runs(seg: &sys::Attachment, present: Option<&[bool]>) -> Result<Vec<(u64, u64)>> {
    let len = seg.len() as u64;
    let pages = len.div_ceil(PAGE);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; PAGE as usize];
    for p in 0..pages {
        if present.is_some_and(|v| !v.get(p as usize).copied().unwrap_or(true)) {
            continue;
        }
        let n = (len - p * PAGE).min(PAGE) as usize;
        seg.read_at((p * PAGE) as usize, &mut buf[..n])
            .ctx("reading a SysV segment")?;
        if buf[..n].iter().all(|b| *b == 0) {
            continue;
        }
        match runs.last_mut() {
            Some((s, c)) if *s + *c == p => *c += 1,
            _ => runs.push((p, 1)),
        }
    }
    Ok(runs)
}

/// Saves every segment the (frozen) processes have attached, once each; `attached`:
/// each process with its mappings as dumped (every /SYSV mapping is one of them, or the
/// dump refused it).
pub fn dump_segments<'a>(
    attached: impl IntoIterator<Item = (i32, &'a [Vma])>,
    writer: &mut StatefileWriter,
) -> Result<()> {
    let mut used: BTreeMap<i32, i32> = BTreeMap::new(); // shmid -> first process using it
    for (pid, vmas) in attached {
        for v in vmas {
            if let Backing::SysvShm { shmid } = v.backing {
                used.entry(shmid).or_insert(pid);
            }
        }
    }
    if used.is_empty() {
        return Ok(());
    }
    let table = read_table()?;
    let all_pages = crate::proc::meminfo::swap_configured()?;
    let mut index = ShmIndex::default();
    for (&shmid, &pid) in &used {
        let who = format!("process {pid}: SysV shared memory shmid {shmid}");
        let info = table.iter().find(|s| s.shmid == shmid).ok_or_else(|| {
            Error::with_detail(&who, Kind::CheckpointError, "removed during checkpoint")
        })?;
        let seg = sys::Attachment::new(shmid, false).ctx(&who)?;
        // untouched pages are not read (reading would allocate them); with swap, a page
        // not in memory may be on disk, so then every page is read
        let present = if all_pages {
            None
        } else {
            Some(seg.resident().ctx(&who)?)
        };
        let runs = page_runs(&seg, present.as_deref()).ctx(&who)?;
        let mut sink = writer.create_file(&contents_path(shmid))?;
        let mut buf = vec![0u8; PAGE as usize];
        for &(first, count) in &runs {
            for p in first..first + count {
                let n = (seg.len() as u64 - p * PAGE).min(PAGE) as usize;
                seg.read_at((p * PAGE) as usize, &mut buf[..n]).ctx(&who)?;
                sink.write_all(&buf[..n]).ctx(sink.rel.clone())?;
            }
        }
        writer.finish_file(sink)?;
        index.segments.push(SegmentRecord {
            shmid,
            key: info.key,
            mode: info.mode & 0o777,
            size: info.size,
            uid: info.uid,
            gid: info.gid,
            cuid: info.cuid,
            cgid: info.cgid,
            dest: info.mode & sys::SHM_DEST != 0,
            locked: info.mode & sys::SHM_LOCKED != 0,
            runs,
        });
    }
    writer.write_json(INDEX, &index)
}

/// Segments recreated by a restart. Until `finish`, dropping removes them (a failed
/// restart leaves none behind).
#[derive(Debug, Default)]
pub struct Segments {
    /// (shmid, marked for removal at checkpoint)
    created: Vec<(i32, bool)>,
}

impl Segments {
    /// Every process has attached its segments: those marked for removal at checkpoint
    /// are marked again (they go when the last process detaches); the rest stay.
    pub fn finish(mut self) {
        for (shmid, dest) in std::mem::take(&mut self.created) {
            if dest {
                // cannot fail for a segment cpr created, unless it is already gone:
                // either way it ends as it should
                let _ = sys::remove(shmid);
            }
        }
    }

    pub fn shmids(&self) -> Vec<i32> {
        self.created.iter().map(|c| c.0).collect()
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        for (shmid, _) in &self.created {
            let _ = sys::remove(*shmid);
        }
    }
}

pub(super) fn key_text(key: i32) -> String {
    if key == 0 {
        "IPC_PRIVATE".into()
    } else {
        format!("key {:#010x}", key as u32)
    }
}

/// Recreates the segments of the statefiles (each statefile once) with their shmids,
/// keys, contents, owners and modes. Runs before any process is created.
pub fn restore_segments(statefiles: &[&Statefile]) -> Result<Segments> {
    let mut out = Segments::default();
    let mut seen_files = BTreeSet::new();
    for sf in statefiles {
        if !seen_files.insert(sf.path.clone()) || sf.entry(INDEX).is_none() {
            continue;
        }
        let index: ShmIndex = sf.read_json(INDEX)?;
        for rec in &index.segments {
            if out.created.iter().any(|c| c.0 == rec.shmid) {
                continue; // the same segment, saved by another statefile too
            }
            // A SysV segment outlives its processes: after WILL EXIT the very segment is
            // usually still there, unattached. It is taken back, with the statefile's
            // contents, rather than refused (a user's statefile, only a segment of theirs).
            let owner = sf.manifest.owner.uid;
            check_ipc_owner(
                format!("SysV shared memory shmid {}", rec.shmid),
                rec.uid,
                owner,
            )
            .map_err(|e| e.context(sf.path.display()))?;
            let table = read_table()?;
            let leftover = table.iter().any(|s| {
                s.shmid == rec.shmid
                    && s.key == rec.key
                    && s.size == rec.size
                    && s.nattch == 0
                    && (owner == 0 || s.uid == owner)
            });
            if leftover {
                fill(sf, rec).map_err(|e| e.context(sf.path.display()))?;
                continue;
            }
            let shmid = create(rec).map_err(|e| e.context(sf.path.display()))?;
            out.created.push((shmid, rec.dest));
            fill(sf, rec).map_err(|e| e.context(sf.path.display()))?;
        }
    }
    Ok(out)
}

/// A user's statefile (its owner checked by restart's authority step) makes or takes
/// back only SysV and POSIX IPC objects of that user; root's, any. `what` names the
/// object: "SysV shared memory shmid 5".
pub(super) fn check_ipc_owner(what: String, uid: u32, owner: u32) -> Result<()> {
    if owner != 0 && uid != owner {
        return Err(Error::with_detail(
            what,
            Kind::NotPermitted,
            format!("owned by uid {uid} in a statefile of uid {owner}"),
        ));
    }
    Ok(())
}

/// shmget with the wanted shmid: through shm_next_id, checked after.
fn create(rec: &SegmentRecord) -> Result<i32> {
    let table = read_table()?;
    let holder = table
        .iter()
        .find(|s| s.shmid == rec.shmid)
        .map(|s| format!("{}, {} bytes", key_text(s.key), s.size));
    let key_taken = rec.key != 0 && table.iter().any(|s| s.key == rec.key);
    create_with_id(
        ("shmid", rec.shmid, rec.key),
        NEXT_ID,
        (holder, key_taken),
        || sys::shmget(rec.key, rec.size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600),
        sys::remove,
        &format!("creating {} bytes", rec.size),
    )
    .ctx(format!("SysV shared memory shmid {}", rec.shmid))
}

/// Makes an object (`make`: shmget, semget or msgget with IPC_EXCL) with the wanted id, through
/// the kernel's `*_next_id`, checked after. `busy`: what holds the id now (if anything),
/// and whether the key is taken: "Resource busy" naming them. `what` details another
/// failure of `make` (empty: nothing to add).
pub(super) fn create_with_id(
    (name, id, key): (&str, i32, i32),
    next_id: &str,
    busy: (Option<String>, bool),
    make: impl FnOnce() -> std::result::Result<i32, Errno>,
    remove: fn(i32) -> std::result::Result<(), Errno>,
    what: &str,
) -> Result<i32> {
    let in_use = |what: String| Error::with_detail("", Kind::ResourceBusy, what);
    if let Some(holder) = busy.0 {
        return Err(in_use(format!("{name} {id} is in use ({holder})")));
    }
    if busy.1 {
        return Err(in_use(format!("{} is in use", key_text(key))));
    }
    std::fs::write(next_id, format!("{id}\n")).ctx(next_id)?;
    let got = make();
    // the kernel forgets the wanted id once used, but not when the call failed before
    let _ = std::fs::write(next_id, "-1\n");
    let got = got.map_err(|e| match e {
        Errno::EEXIST => in_use(format!("{} is in use", key_text(key))),
        e if what.is_empty() => Error::errno("", e),
        e => Error::errno("", e).detail(what),
    })?;
    if got != id {
        let _ = remove(got);
        return Err(in_use(format!(
            "{name} {id} is taken (the kernel gave {got})"
        )));
    }
    Ok(got)
}

/// Contents, then owner and mode (last: they may shut cpr out), then the lock.
fn fill(sf: &Statefile, rec: &SegmentRecord) -> Result<()> {
    let who = format!("SysV shared memory shmid {}", rec.shmid);
    let rel = contents_path(rec.shmid);
    let file = sf.open_file(&rel)?;
    let seg = sys::Attachment::new(rec.shmid, true).ctx(&who)?;
    let mut buf = vec![0u8; PAGE as usize];
    let mut off = 0u64;
    for &(first, count) in &rec.runs {
        for p in first..first + count {
            let start = p * PAGE;
            if start >= rec.size {
                return Err(Error::with_detail(
                    &who,
                    Kind::CheckpointError,
                    format!("{rel}: page {p} beyond the segment"),
                ));
            }
            let n = (rec.size - start).min(PAGE) as usize;
            file.read_exact_at(&mut buf[..n], off)
                .ctx(format!("{}: {rel}", sf.path.display()))?;
            seg.write_at(start as usize, &buf[..n]).ctx(&who)?;
            off += n as u64;
        }
    }
    drop(seg);
    sys::set_owner(rec.shmid, rec.uid, rec.gid, rec.mode)
        .ctx(&who)
        .map_err(|e| e.detail("setting owner and mode"))?;
    if rec.locked {
        sys::lock(rec.shmid)
            .ctx(&who)
            .map_err(|e| e.detail("SHM_LOCK"))?;
    }
    Ok(())
}

/// Attaches a segment in a stopped restoring process at the mapping's address, with
/// the mapping's protections.
pub fn attach(inj: &Injector, who: &str, v: &Vma, shmid: i32) -> Result<()> {
    // read-only unless the process could write through it (VM_MAYWRITE)
    let writable = v.prot & libc::PROT_WRITE != 0 || v.has_flag("mw");
    let mut flags = if writable { 0 } else { libc::SHM_RDONLY };
    let mut prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
    if v.prot & libc::PROT_EXEC != 0 {
        flags |= sys::SHM_EXEC;
        prot |= libc::PROT_EXEC;
    }
    let got = inj
        .check(
            "shmat",
            libc::SYS_shmat,
            [shmid as u64, v.start, flags as u64, 0, 0, 0],
        )
        .map_err(|e| e.detail(format!("SysV shmid {shmid} at {:#x}", v.start)))?;
    if got != v.start {
        return Err(Error::with_detail(
            who,
            Kind::NotEnoughSpace,
            format!(
                "SysV shmid {shmid} attached at {got:#x}, not {:#x}",
                v.start
            ),
        ));
    }
    if prot != v.prot {
        inj.check(
            "mprotect",
            libc::SYS_mprotect,
            [v.start, v.end - v.start, v.prot as u64, 0, 0, 0],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_statefile_makes_only_that_users_objects() {
        let what = || "SysV message queue msqid 3".to_string();
        assert!(check_ipc_owner(what(), 1000, 1000).is_ok());
        assert!(check_ipc_owner(what(), 1001, 0).is_ok());
        let refused = check_ipc_owner(what(), 0, 1000).unwrap_err().to_string();
        assert!(
            refused.contains("msqid 3") && refused.contains("uid 0"),
            "{refused}"
        );
    }

    #[test]
    fn keys_are_shown_in_hex() {
        assert_eq!(key_text(0), "IPC_PRIVATE");
        assert_eq!(key_text(-559038737), "key 0xdeadbeef");
    }
}
