//! Files deleted while open (unlinked, replaced by a rename, or made with O_TMPFILE and
//! never linked). Checkpoint saves each such file once, however many descriptors and
//! processes have it open: its data extents only (SEEK_DATA/SEEK_HOLE: holes stay holes),
//! its size, mode, owner and times. Restart makes one unlinked copy per file in cpr,
//! before the processes exist; every descriptor that had the file opens that copy again
//! through /proc (with its own flags and offset), so writes through one are read through
//! the others, as before. A file that is also mapped is one object with its mapping:
//! its content is saved once, with the memory objects (shmem.rs), and its descriptors
//! open the object restart makes for the mapping. A memfd comes back as a memfd (its
//! name, content, then its seals).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::ProcessFds;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// One deleted file, saved once; descriptors name it by `id` (`FdRecord::inode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedFile {
    /// An entry of the statefile's table of shared objects, apart from its descriptions.
    pub id: u32,
    /// The name it had: restart makes its copy in that directory (else in /tmp).
    pub path: String,
    /// Statefile file with the data extents, one after the other.
    pub saved: String,
    pub size: u64,
    /// (offset, length) of each data extent, in increasing order; the rest are holes.
    pub extents: Vec<(u64, u64)>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (seconds, nanoseconds).
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    /// Also mapped: the inode of its memory object (`SharedTable::mems`), which holds
    /// its content; `saved` and `extents` are then empty.
    #[serde(default)]
    pub mapped: Option<u64>,
    /// A memfd (`path` is "/memfd:NAME"): its seals (F_GET_SEALS).
    #[serde(default)]
    pub memfd_seals: Option<i32>,
}

/// Once every process is read: saves each deleted file once and marks every descriptor
/// of one with its entry (ids from `first_id` on).
pub(super) fn collect(
    procs: &mut [ProcessFds<'_>],
    first_id: u32,
    writer: &mut StatefileWriter,
) -> Result<Vec<DeletedFile>> {
    let mut files: Vec<DeletedFile> = Vec::new();
    let mut by_inode: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    let mut mapped: Option<BTreeSet<(u64, u64)>> = None;
    let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
    for p in procs.iter_mut() {
        for r in p.fds.iter_mut() {
            // statefiles of old kept the content per descriptor, in `saved`
            if r.kind != FdKind::Deleted || r.saved.is_some() {
                continue;
            }
            let who = format!("process {} fd {}", p.pid, r.fd);
            let meta = std::fs::metadata(format!("/proc/{}/fd/{}", p.pid, r.fd)).ctx(&who)?;
            let key = (meta.dev(), meta.ino());
            let id = match by_inode.get(&key) {
                Some(&id) => id,
                None => {
                    let id = first_id + files.len() as u32;
                    if mapped.is_none() {
                        mapped = Some(mapped_objects(pids.as_slice())?);
                    }
                    let file = if mapped.as_ref().is_some_and(|m| m.contains(&key)) {
                        describe(r, id, &meta, Some(meta.ino()))
                    } else {
                        save(p.pid, r, id, &meta, writer)?
                    };
                    files.push(file);
                    by_inode.insert(key, id);
                    id
                }
            };
            r.inode = Some(id);
        }
    }
    Ok(files)
}

/// (dev, inode) of every object the processes `pids` map (from /proc/PID/maps, which
/// needs no privilege): a deleted file (or memfd) among them is saved with the memory
/// objects (shmem.rs), not again here.
pub(crate) fn mapped_objects(pids: &[i32]) -> Result<BTreeSet<(u64, u64)>> {
    let mut out = BTreeSet::new();
    for &pid in pids {
        for m in crate::proc::ProcDir::open(pid)?.maps()? {
            let number = |s: Option<&str>| s.and_then(|s| u32::from_str_radix(s, 16).ok());
            let mut parts = m.dev.split(':');
            if let (Some(major), Some(minor)) = (number(parts.next()), number(parts.next()))
                && m.inode != 0
            {
                out.insert((libc::makedev(major, minor), m.inode));
            }
        }
    }
    Ok(out)
}

/// The record of deleted file `r` (its metadata `meta`), without its content.
fn describe(r: &FdRecord, id: u32, meta: &std::fs::Metadata, mapped: Option<u64>) -> DeletedFile {
    DeletedFile {
        id,
        path: r.path.clone(),
        saved: String::new(),
        size: meta.len(),
        extents: Vec::new(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        atime: (meta.atime(), meta.atime_nsec()),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        mapped,
        memfd_seals: None,
    }
}

/// "Checkpoint error" for deleted file `path` (open as `fd` of `pid`) if restart could
/// not make it again as it was: a memfd on hugetlbfs (MFD_HUGETLB), since restart makes
/// memfds on tmpfs. The checkpoint and its dry run both ask (files.rs, classify).
pub(crate) fn refuse_unrestorable(pid: i32, fd: i32, who: &str, path: &str) -> Result<()> {
    if !is_memfd(path) {
        return Ok(());
    }
    let file = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).ctx(who)?;
    let fs = nix::sys::statfs::fstatfs(&file).ctx(who)?;
    if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        return Ok(());
    }
    Err(Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("{path}: a memfd that is not on tmpfs (MFD_HUGETLB) is not checkpoint safe"),
    ))
}

/// Whether the deleted file named `path` (its name without " (deleted)") is a memfd.
pub(crate) fn is_memfd(path: &str) -> bool {
    path.starts_with("/memfd:")
}

/// For `cpr -c --dry-run`: what the checkpoint does with deleted file `fd` of `pid`
/// (named `path`), and the bytes it saves for it: nothing for a file the set maps
/// (`mapped`: its memory object holds it) or one already counted (`seen`).
pub(crate) fn preview(
    pid: i32,
    fd: i32,
    path: &str,
    mapped: &BTreeSet<(u64, u64)>,
    seen: &mut BTreeSet<(u64, u64)>,
) -> (String, u64) {
    let what = if is_memfd(path) {
        "memfd: made again with its name, content and seals"
    } else {
        "deleted file: its content is saved"
    };
    let Ok(file) = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")) else {
        return (what.to_string(), 0);
    };
    let Ok(meta) = file.metadata() else {
        return (what.to_string(), 0);
    };
    let key = (meta.dev(), meta.ino());
    if mapped.contains(&key) {
        let how = "the same object as its mapping (its content is saved once, as shared memory)";
        return (how.to_string(), 0);
    }
    if !seen.insert(key) {
        return (format!("{what} (once, with an earlier descriptor)"), 0);
    }
    let bytes = extents(&file, meta.len()).iter().map(|e| e.1).sum();
    (what.to_string(), bytes)
}

/// (offset, length) of the data of `file` (its size `size`): SEEK_DATA/SEEK_HOLE, or
/// all of it where the filesystem does not tell.
fn extents(file: &std::fs::File, size: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let mut out = Vec::new();
    let mut at: u64 = 0;
    while at < size {
        let start = match lseek(file.as_fd(), at as i64, Whence::SeekData) {
            Ok(s) => s as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        let end = match lseek(file.as_fd(), start as i64, Whence::SeekHole) {
            Ok(e) => (e as u64).min(size),
            Err(_) => return vec![(0, size)],
        };
        if end <= start {
            break;
        }
        out.push((start, end - start));
        at = end;
    }
    out
}

fn save(
    pid: i32,
    r: &FdRecord,
    id: u32,
    meta: &std::fs::Metadata,
    writer: &mut StatefileWriter,
) -> Result<DeletedFile> {
    let who = format!("process {pid} fd {} ({} (deleted))", r.fd, r.path);
    // a description of our own: the process's offset stays where it is
    let src = std::fs::File::open(format!("/proc/{pid}/fd/{}", r.fd)).ctx(&who)?;
    let size = meta.len();
    let extents = extents(&src, size);
    let rel = crate::statefile::layout::saved_file_path(pid, r.fd);
    let mut sink = writer.create_file(&rel)?;
    let mut buf = vec![0u8; 1 << 20];
    for &(off, len) in &extents {
        let mut done = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = src.read_at(&mut buf[..want], off + done).ctx(&who)?;
            if n == 0 {
                return Err(Error::with_detail(
                    &who,
                    Kind::CheckpointError,
                    "the file shrank while it was saved",
                ));
            }
            sink.append(&buf[..n])?;
            done += n as u64;
        }
    }
    writer.finish_file(sink)?;
    let memfd_seals = if is_memfd(&r.path) {
        Some(nix::fcntl::fcntl(&src, nix::fcntl::FcntlArg::F_GET_SEALS).ctx(&who)?)
    } else {
        None
    };
    Ok(DeletedFile {
        saved: rel,
        extents,
        memfd_seals,
        ..describe(r, id, meta, None)
    })
}

// ---------------------------------------------------------------- restart

impl DeletedFile {
    /// The record as restart uses it, or "statefile damaged" naming what is wrong.
    fn check(&self, saved_len: u64) -> std::result::Result<(), String> {
        if self.mode & !0o7777 != 0 {
            return Err(format!("mode {:o}", self.mode));
        }
        let ns_ok = |t: (i64, i64)| (0..1_000_000_000).contains(&t.1);
        if !ns_ok(self.atime) || !ns_ok(self.mtime) {
            return Err("times out of range".into());
        }
        let mut end = 0u64;
        let mut total = 0u64;
        for &(off, len) in &self.extents {
            let stop = off
                .checked_add(len)
                .filter(|&s| off >= end && s <= self.size);
            end = stop.ok_or_else(|| format!("extent ({off}, {len}) out of order or size"))?;
            total += len;
        }
        if total != saved_len {
            return Err(format!(
                "extents hold {total} bytes, the saved data {saved_len}"
            ));
        }
        if let Some(seals) = self.memfd_seals {
            let name = self.path.strip_prefix("/memfd:").unwrap_or_default();
            super::shmem::check_memfd(name, seals)?;
            if !is_memfd(&self.path) {
                return Err("a memfd without a memfd name".into());
            }
        }
        Ok(())
    }
}

/// In cpr, before the processes exist: one unlinked copy of every deleted file, by id;
/// for one that was also mapped, the memory object made for its mappings (`mems`, by
/// inode), so that both are one file again.
pub(super) fn open_all(
    files: &[DeletedFile],
    sf: &Statefile,
    mems: &BTreeMap<u64, OwnedFd>,
) -> Result<BTreeMap<u32, OwnedFd>> {
    let mut out = BTreeMap::new();
    for d in files {
        if out.contains_key(&d.id) {
            return Err(damaged(d, "id used twice".into()));
        }
        let file = match d.mapped {
            Some(ino) => {
                let object = mems
                    .get(&ino)
                    .ok_or_else(|| damaged(d, format!("memory object {ino} missing")))?;
                object.try_clone().ctx(format!("{} (deleted)", d.path))?
            }
            None => make_copy(d, sf)?,
        };
        out.insert(d.id, file);
    }
    Ok(out)
}

fn damaged(d: &DeletedFile, why: String) -> Error {
    crate::statefile::reader::damaged_record(format!("deleted file {} ({}): {why}", d.id, d.path))
}

fn make_copy(d: &DeletedFile, sf: &Statefile) -> Result<OwnedFd> {
    let who = format!("{} (deleted)", d.path);
    let saved = std::fs::File::open(sf.file(&d.saved)?).ctx(&who)?;
    let saved_len = saved.metadata().ctx(&who)?.len();
    d.check(saved_len).map_err(|why| damaged(d, why))?;
    let dir = std::path::Path::new(&d.path)
        .parent()
        .filter(|p| p.is_dir())
        .unwrap_or(std::path::Path::new("/tmp"));
    let unlinked = |dir: &std::path::Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .mode(0o600)
            .open(dir)
    };
    let copy = match d.memfd_seals {
        Some(_) => super::shmem::new_memfd(&d.path["/memfd:".len()..]),
        None => unlinked(dir).or_else(|_| unlinked(std::path::Path::new("/tmp"))),
    }
    .ctx(&who)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut from = 0u64;
    for &(off, len) in &d.extents {
        let mut done = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            saved.read_exact_at(&mut buf[..want], from).ctx(&who)?;
            copy.write_all_at(&buf[..want], off + done).ctx(&who)?;
            done += want as u64;
            from += want as u64;
        }
    }
    copy.set_len(d.size).ctx(&who)?;
    set_attributes(&copy, d).ctx(&who)?;
    if let Some(seals) = d.memfd_seals {
        // last: they may forbid writing, growing, or changing the mode
        let seals = nix::fcntl::SealFlag::from_bits_retain(seals);
        nix::fcntl::fcntl(&copy, nix::fcntl::FcntlArg::F_ADD_SEALS(seals)).ctx(&who)?;
    }
    Ok(copy.into())
}

/// Owner, mode (after the owner: chown clears set-id bits), times (last: the writes
/// changed them).
fn set_attributes(copy: &std::fs::File, d: &DeletedFile) -> nix::Result<()> {
    use nix::sys::stat::{Mode, fchmod, futimens};
    use nix::sys::time::TimeSpec;
    use nix::unistd::{Gid, Uid, fchown};
    fchown(
        copy.as_fd(),
        Some(Uid::from_raw(d.uid)),
        Some(Gid::from_raw(d.gid)),
    )?;
    fchmod(copy.as_fd(), Mode::from_bits_truncate(d.mode))?;
    let ts = |(s, ns): (i64, i64)| TimeSpec::new(s, ns);
    futimens(copy.as_fd(), &ts(d.atime), &ts(d.mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd(path: &str, seals: i32) -> DeletedFile {
        DeletedFile {
            id: 1,
            path: path.into(),
            saved: "shared/x".into(),
            size: 4,
            extents: vec![(0, 4)],
            mode: 0o600,
            uid: 0,
            gid: 0,
            atime: (0, 0),
            mtime: (0, 0),
            mapped: None,
            memfd_seals: Some(seals),
        }
    }

    #[test]
    fn damaged_memfd_records_are_refused() {
        assert_eq!(memfd("/memfd:x", libc::F_SEAL_SEAL).check(4), Ok(()));
        for (d, why) in [
            (memfd("/tmp/x", 0), "without a memfd name"),
            (memfd("/memfd:x", 0x4000), "seals"),
            (
                memfd(&format!("/memfd:{}", "n".repeat(300)), 0),
                "memfd name",
            ),
        ] {
            let e = d.check(4).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
