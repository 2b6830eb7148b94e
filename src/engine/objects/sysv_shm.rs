//! System V shared memory. A segment is a statefile-level object: its key, shmid, mode,
//! owner and contents are saved once, however many processes (or attachments) use it,
//! in `shared/shm.json` and `shared/shm-<shmid>`. Restart recreates every segment with
//! its original shmid before any process exists; each process then attaches it by an
//! injected shmat at its old address (memory::restore). Segments that were marked for
//! removal (SHM_DEST) are marked again once every process has attached them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::memory::{Backing, PAGE, Vma};
use crate::engine::procfs::{self, MapsLine};
use crate::engine::ptrace::Injector;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::shm as sys;

pub const INDEX: &str = crate::statefile::layout::SHM_INDEX;
const PROC_TABLE: &str = "/proc/sysvipc/shm";
const NEXT_ID: &str = "/proc/sys/kernel/shm_next_id";

pub fn contents_path(shmid: i32) -> String {
    crate::statefile::layout::shm_contents_path(shmid)
}

/// One line of /proc/sysvipc/shm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmInfo {
    pub key: i32,
    pub shmid: i32,
    /// Permission bits with SHM_DEST and SHM_LOCKED.
    pub mode: u32,
    pub size: u64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

/// Parses /proc/sysvipc/shm (`key shmid perms size cpid lpid nattch uid gid cuid cgid
/// atime dtime ctime rss swap`; perms in octal). A bad line is an error naming it.
pub fn parse_table(text: &str) -> std::result::Result<Vec<ShmInfo>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() || f[0] == "key" {
            continue;
        }
        let bad = || format!("{PROC_TABLE} line {}: {line:?}", n + 1);
        if f.len() < 11 {
            return Err(bad());
        }
        let int = |i: usize| f[i].parse::<i64>().map_err(|_| bad());
        let info = ShmInfo {
            key: int(0)? as i32,
            shmid: int(1)? as i32,
            mode: u32::from_str_radix(f[2], 8).map_err(|_| bad())?,
            size: f[3].parse().map_err(|_| bad())?,
            cpid: int(4)? as i32,
            lpid: int(5)? as i32,
            nattch: f[6].parse().map_err(|_| bad())?,
            uid: f[7].parse().map_err(|_| bad())?,
            gid: f[8].parse().map_err(|_| bad())?,
            cuid: f[9].parse().map_err(|_| bad())?,
            cgid: f[10].parse().map_err(|_| bad())?,
        };
        out.push(info);
    }
    Ok(out)
}

pub fn read_table() -> Result<Vec<ShmInfo>> {
    let text = std::fs::read_to_string(PROC_TABLE).ctx(PROC_TABLE)?;
    parse_table(&text).map_err(|d| Error::with_detail(PROC_TABLE, Kind::InvalidArgument, d))
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

fn swap_configured() -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            procfs::status_field(&t, "SwapTotal")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .is_none_or(|kb| kb > 0)
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

/// Saves every segment the (frozen) processes have attached, once each.
pub fn dump_segments(pids: &[i32], writer: &mut StatefileWriter) -> Result<()> {
    let mut used: BTreeMap<i32, i32> = BTreeMap::new(); // shmid -> first process using it
    for &pid in pids {
        for m in procfs::read_maps(pid)? {
            if m.path.starts_with("/SYSV") && m.shared() {
                used.entry(m.inode as i32).or_insert(pid);
            }
        }
    }
    if used.is_empty() {
        return Ok(());
    }
    let table = read_table()?;
    let all_pages = swap_configured();
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

fn key_text(key: i32) -> String {
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
            // contents, rather than refused.
            let table = read_table()?;
            let leftover = table.iter().any(|s| {
                s.shmid == rec.shmid && s.key == rec.key && s.size == rec.size && s.nattch == 0
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

fn set_next_id(id: i32) -> Result<()> {
    std::fs::write(NEXT_ID, format!("{id}\n")).ctx(NEXT_ID)
}

/// shmget with the wanted shmid: through shm_next_id, checked after.
fn create(rec: &SegmentRecord) -> Result<i32> {
    let who = format!("SysV shared memory shmid {}", rec.shmid);
    let table = read_table()?;
    if let Some(s) = table.iter().find(|s| s.shmid == rec.shmid) {
        return Err(Error::with_detail(
            who,
            Kind::ResourceBusy,
            format!(
                "shmid {} is in use ({}, {} bytes)",
                rec.shmid,
                key_text(s.key),
                s.size
            ),
        ));
    }
    if rec.key != 0 && table.iter().any(|s| s.key == rec.key) {
        return Err(Error::with_detail(
            who,
            Kind::ResourceBusy,
            format!("{} is in use", key_text(rec.key)),
        ));
    }
    set_next_id(rec.shmid)?;
    let got = sys::shmget(rec.key, rec.size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
    // the kernel forgets the wanted id once used, but not when shmget failed before
    let _ = set_next_id(-1);
    let got = got.map_err(|e| match e {
        nix::errno::Errno::EEXIST => Error::with_detail(
            &who,
            Kind::ResourceBusy,
            format!("{} is in use", key_text(rec.key)),
        ),
        e => Error::errno(&who, e).detail(format!("creating {} bytes", rec.size)),
    })?;
    if got != rec.shmid {
        let _ = sys::remove(got);
        return Err(Error::with_detail(
            who,
            Kind::ResourceBusy,
            format!("shmid {} is taken (the kernel gave {got})", rec.shmid),
        ));
    }
    Ok(got)
}

/// Contents, then owner and mode (last: they may shut cpr out), then the lock.
fn fill(sf: &Statefile, rec: &SegmentRecord) -> Result<()> {
    let who = format!("SysV shared memory shmid {}", rec.shmid);
    let rel = contents_path(rec.shmid);
    let path = sf.file(&rel)?;
    let file = std::fs::File::open(&path).ctx(path.display())?;
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
            file.read_exact_at(&mut buf[..n], off).ctx(path.display())?;
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

    const TABLE: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
 305441741          0   640                 10000 24520 24520      2     0     0     0     0 1795319253          0 1795319253                  4096                     0
         0      32769  1600                  8192 24520 24521      1 65534 65534     0     0 1795319253          0 1795319253                     0                     0
-559038737          5  2666                  4096   100   100      0  1000   100  1000   100          0          0 1795319253                     0                     0
";

    #[test]
    fn parses_the_kernel_table() {
        let t = parse_table(TABLE).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            ShmInfo {
                key: 0x1234abcd,
                shmid: 0,
                mode: 0o640,
                size: 10000,
                cpid: 24520,
                lpid: 24520,
                nattch: 2,
                uid: 0,
                gid: 0,
                cuid: 0,
                cgid: 0,
            }
        );
        assert_eq!(t[1].shmid, 32769);
        assert_eq!(t[1].mode & sys::SHM_DEST, sys::SHM_DEST);
        assert_eq!((t[1].uid, t[1].lpid), (65534, 24521));
        // keys above 0x7fffffff print negative
        assert_eq!(t[2].key as u32, 0xdeadbeef);
        assert_eq!(t[2].mode & sys::SHM_LOCKED, sys::SHM_LOCKED);
        assert_eq!(t[2].mode & 0o777, 0o666);
    }

    #[test]
    fn empty_table_and_bad_lines() {
        assert_eq!(parse_table(TABLE.lines().next().unwrap()).unwrap(), vec![]);
        assert_eq!(parse_table("").unwrap(), vec![]);
        let e = parse_table("key shmid\n 1 2 999 4096 1 1 0 0 0 0 0 0 0 0 0 0\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse_table(" 1 2 600 4096\n").is_err());
        assert!(parse_table(" x 2 600 4096 1 1 0 0 0 0 0 0 0 0 0 0\n").is_err());
    }

    #[test]
    fn keys_are_shown_in_hex() {
        assert_eq!(key_text(0), "IPC_PRIVATE");
        assert_eq!(key_text(-559038737), "key 0xdeadbeef");
    }
}
