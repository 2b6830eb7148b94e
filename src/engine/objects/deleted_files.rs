//! Files deleted while open (unlinked, replaced by a rename, or made with O_TMPFILE and
//! never linked). Checkpoint saves each such file once, however many descriptors and
//! processes have it open: its data extents only (SEEK_DATA/SEEK_HOLE: holes stay holes),
//! its size, mode, owner and times. Restart makes one unlinked copy per file in cpr,
//! before the processes exist; every descriptor that had the file opens that copy again
//! through /proc (with its own flags and offset), so writes through one are read through
//! the others, as before. A file still mapped is mapped_files.rs's.

use std::collections::BTreeMap;
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
                    files.push(save(p.pid, r, id, &meta, writer)?);
                    by_inode.insert(key, id);
                    id
                }
            };
            r.inode = Some(id);
        }
    }
    Ok(files)
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
    Ok(DeletedFile {
        id,
        path: r.path.clone(),
        saved: rel,
        size,
        extents,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        atime: (meta.atime(), meta.atime_nsec()),
        mtime: (meta.mtime(), meta.mtime_nsec()),
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
        Ok(())
    }
}

/// In cpr, before the processes exist: one unlinked copy of every deleted file, by id.
pub(super) fn open_all(files: &[DeletedFile], sf: &Statefile) -> Result<BTreeMap<u32, OwnedFd>> {
    let mut out = BTreeMap::new();
    for d in files {
        if out.contains_key(&d.id) {
            return Err(damaged(d, "id used twice".into()));
        }
        out.insert(d.id, make_copy(d, sf)?);
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
    let copy = unlinked(dir)
        .or_else(|_| unlinked(std::path::Path::new("/tmp")))
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
