//! Memory objects: shared anonymous memory, memfds and deleted files, mapped (shared or
//! private) by one or more processes. Checkpoint saves each once, in `shared/mem-<ino>`
//! (only the parts that hold data, read through /proc/PID/map_files), with what makes it
//! what it was (a memfd's name and seals, a deleted file's path and mode), and the
//! mappings point at it (`Backing::SharedMem`); restart makes each again in cpr (a memfd
//! with its name, contents, size, then its seals; a deleted file created at its path and
//! unlinked again), which the processes inherit and memory.rs maps.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use serde::{Deserialize, Serialize};

use super::memory::{Backing, Vma};
use super::shared_fds::SharedTable;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// What a memory object is, beyond its data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemKind {
    /// Shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS); also what records written
    /// before memory objects were told apart hold (they were all made as memfds).
    #[default]
    Anon,
    /// A memfd: the name it was created with, its seals (F_GET_SEALS) and its
    /// permission bits.
    Memfd {
        name: String,
        seals: i32,
        #[serde(default)]
        mode: Option<u32>,
    },
    /// A file deleted while mapped: its path, permission bits, owner and times.
    Deleted {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
        /// Access and modification times, (seconds, nanoseconds) each.
        #[serde(default)]
        times: Option<[(i64, i64); 2]>,
    },
    /// A POSIX shared memory segment or named semaphore: a file in /dev/shm, still
    /// linked (posix_shm.rs).
    PosixShm(super::posix_shm::ShmFile),
}

/// A memory object: its size and the data it holds, as runs of (offset, length) packed
/// in `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMem {
    pub ino: u64,
    pub size: u64,
    pub runs: Vec<(u64, u64)>,
    pub data: String,
    #[serde(default)]
    pub kind: MemKind,
}

impl SharedMem {
    /// What restart takes as given: the data runs lie inside the object, in order and
    /// apart; a memfd's name and seals, a deleted file's path and mode are ones the
    /// kernel could have shown.
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| {
            crate::statefile::reader::damaged_record(format!("shared memory {}: {what}", self.ino))
        };
        let mut end = 0u64;
        for &(off, len) in &self.runs {
            let last = off
                .checked_add(len)
                .filter(|&l| off >= end && l <= self.size);
            end = last.ok_or_else(|| bad(format!("data run {off}+{len}")))?;
        }
        match &self.kind {
            MemKind::Anon => {}
            MemKind::Memfd { name, seals, mode } => {
                if mode.is_some_and(|m| m > 0o7777) {
                    return Err(bad(format!("memfd name {name:?}")));
                }
                check_memfd(name, *seals).map_err(bad)?;
            }
            MemKind::Deleted {
                path, mode, times, ..
            } => {
                let ns_ok =
                    times.is_none_or(|t| t.iter().all(|&(_, ns)| (0..1_000_000_000).contains(&ns)));
                if !path.starts_with('/') || path.contains('\0') || *mode > 0o7777 || !ns_ok {
                    return Err(bad(format!("deleted file {path:?} mode {mode:o}")));
                }
            }
            MemKind::PosixShm(f) => {
                if !f.valid() {
                    return Err(bad(format!("POSIX shared memory {:?}", f.path)));
                }
            }
        }
        Ok(())
    }
}

/// A memfd's name and seals, as the kernel could have shown them (else why not).
pub(super) fn check_memfd(name: &str, seals: i32) -> std::result::Result<(), String> {
    if name.len() > MEMFD_NAME_MAX || name.contains('\0') {
        return Err(format!("memfd name {name:?}"));
    }
    let known = libc::F_SEAL_SEAL
        | libc::F_SEAL_SHRINK
        | libc::F_SEAL_GROW
        | libc::F_SEAL_WRITE
        | libc::F_SEAL_FUTURE_WRITE
        | F_SEAL_EXEC;
    if seals & !known != 0 {
        return Err(format!("seals {seals:#x}"));
    }
    Ok(())
}

/// A new, empty memfd named `name` that takes seals.
pub(super) fn new_memfd(name: &str) -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let name = std::ffi::CString::new(name).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "memfd name with a NUL byte",
        )
    })?;
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    Ok(memfd_create(name.as_c_str(), flags)?.into())
}

/// F_SEAL_EXEC (Linux 6.3): the file's exec bits may not change.
const F_SEAL_EXEC: i32 = 0x0020;

/// The longest name memfd_create takes (249 bytes, without the "memfd:" prefix).
const MEMFD_NAME_MAX: usize = 249;

/// Saves each memory object the processes map once, from /proc/PID/map_files (only the
/// parts that hold data), and points their mappings at it.
pub fn collect_memory(
    maps: &mut [(i32, &mut Vec<Vma>)],
    table: &mut SharedTable,
    writer: &mut StatefileWriter,
) -> Result<()> {
    let mut devices: BTreeMap<u64, u64> = BTreeMap::new();
    for (pid, vmas) in maps.iter() {
        for v in vmas.iter() {
            let Backing::SharedMem { ino, .. } = v.backing else {
                continue;
            };
            let who = format!(
                "process {pid}: mapping {:#x}-{:#x} {}",
                v.start, v.end, v.name
            );
            let link = format!("/proc/{pid}/map_files/{:x}-{:x}", v.start, v.end);
            let meta = std::fs::metadata(&link).ctx(&who)?;
            // objects are known by inode number: two on different filesystems cannot be
            // told apart, and must not become one
            if let Some(dev) = devices.get(&ino) {
                if *dev != meta.dev() {
                    return Err(Error::with_detail(
                        &who,
                        Kind::CheckpointError,
                        format!(
                            "two memory objects with inode number {ino} are not checkpoint safe"
                        ),
                    ));
                }
                continue;
            }
            devices.insert(ino, meta.dev());
            if table.mems.iter().any(|m| m.ino == ino) {
                continue;
            }
            let file = std::fs::File::open(&link).ctx(&who)?;
            let kind = kind_of(&file, &v.name, &meta).ctx(&who)?;
            refuse_unrestorable(&kind, maps_of(maps, ino), &who)?;
            let size = meta.len();
            let runs = data_runs(&file, size);
            let rel = crate::statefile::layout::shared_mem_path(ino);
            let mut sink = writer.create_file(&rel)?;
            copy_runs(&file, &runs, &mut sink, &who)?;
            writer.finish_file(sink)?;
            table.mems.push(SharedMem {
                ino,
                size,
                runs,
                data: rel,
                kind,
            });
        }
    }
    Ok(())
}

/// Copies the `runs` (offset, length) of `file` into `sink`, in order, reading and
/// writing (with its hashing) on two threads: a reader fills one buffer while the
/// writer empties the other. The writes go past the page cache where they can
/// (`FileSink::write_direct`), from page-aligned buffers.
fn copy_runs(
    file: &std::fs::File,
    runs: &[(u64, u64)],
    sink: &mut crate::statefile::FileSink,
    who: &str,
) -> Result<()> {
    use crate::statefile::writer::{PAGE_ALIGN, aligned};
    let direct = sink.write_direct();
    let buf_size: u64 = if direct { 32 << 20 } else { 8 << 20 };
    let biggest = runs.iter().map(|r| r.1).max().unwrap_or(0);
    let size = buf_size.min(biggest).max(1) as usize;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    for _ in 0..2 {
        let _ = empty_tx.send(vec![0u8; size + PAGE_ALIGN]);
    }
    std::thread::scope(|scope| -> Result<()> {
        let reader = scope.spawn(move || -> Result<()> {
            for &(off, len) in runs {
                let mut done = 0;
                while done < len {
                    // the writer stopped (it failed): its error is the one reported
                    let Ok(mut buf) = empty_rx.recv() else {
                        return Ok(());
                    };
                    let n = (len - done).min(size as u64) as usize;
                    file.read_exact_at(&mut aligned(&mut buf, size)[..n], off + done)
                        .ctx(who)?;
                    if full_tx.send((buf, n)).is_err() {
                        return Ok(());
                    }
                    done += n as u64;
                }
            }
            Ok(())
        });
        let written = (|| -> Result<()> {
            for (mut buf, n) in full_rx {
                sink.write_all(&aligned(&mut buf, size)[..n])
                    .ctx(sink.rel.clone())?;
                let _ = empty_tx.send(buf);
            }
            Ok(())
        })();
        let read = reader.join().unwrap_or_else(|_| {
            Err(Error::with_detail(
                who.to_string(),
                Kind::CheckpointError,
                "memory reader failed",
            ))
        });
        read?;
        written
    })
}

/// Every mapping of object `ino` in the processes.
fn maps_of<'a>(maps: &'a [(i32, &mut Vec<Vma>)], ino: u64) -> impl Iterator<Item = &'a Vma> {
    maps.iter()
        .flat_map(|(_, vmas)| vmas.iter())
        .filter(move |v| matches!(v.backing, Backing::SharedMem { ino: i, .. } if i == ino))
}

/// What the object behind mapping `name` is (`file`: it, opened through map_files).
fn kind_of(file: &std::fs::File, name: &str, meta: &std::fs::Metadata) -> std::io::Result<MemKind> {
    let path = name.strip_suffix(" (deleted)").unwrap_or(name);
    if let Some(memfd) = path.strip_prefix("/memfd:") {
        let seals = fcntl(file, FcntlArg::F_GET_SEALS)?;
        return Ok(MemKind::Memfd {
            name: memfd.to_string(),
            seals,
            mode: Some(meta.mode() & 0o7777),
        });
    }
    if path == "/dev/zero" || name.starts_with("[anon_shmem:") {
        return Ok(MemKind::Anon);
    }
    if let Some(f) = super::posix_shm::describe(name, meta)
        .or_else(|| super::posix_shm::describe_linked(path, meta))
    {
        return Ok(MemKind::PosixShm(f));
    }
    Ok(MemKind::Deleted {
        path: path.to_string(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        times: Some([
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        ]),
    })
}

/// "Checkpoint error" for an object restart could not make again as it was: a memfd
/// sealed against future writes while a process still maps it writable (the seal must
/// come after the mapping, which restart cannot order).
fn refuse_unrestorable<'a>(
    kind: &MemKind,
    mut vmas: impl Iterator<Item = &'a Vma>,
    who: &str,
) -> Result<()> {
    if let MemKind::Memfd { seals, .. } = kind
        && seals & libc::F_SEAL_FUTURE_WRITE != 0
        && vmas.any(|v| v.shared && v.prot & libc::PROT_WRITE != 0)
    {
        return Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            "a memfd sealed with F_SEAL_FUTURE_WRITE and still mapped writable is not checkpoint safe",
        ));
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

/// Restart, in cpr: every memory object made again with its data, by inode.
pub(super) fn open_all(mems: &[SharedMem], sf: &Statefile) -> Result<BTreeMap<u64, OwnedFd>> {
    for m in mems {
        m.check()?;
        if let MemKind::PosixShm(f) = &m.kind {
            f.check_free()?;
        }
    }
    let mut opened = BTreeMap::new();
    for m in mems {
        let who = format!("shared memory {}", m.ino);
        let file = create(&m.kind, &m.size).ctx(&who)?;
        file.set_len(m.size).ctx(&who)?;
        let data = sf.open_file(&m.data)?;
        // only the runs that hold data are written: holes stay holes
        fill_runs(&data, &file, &m.runs).ctx(&who)?;
        finish(&file, &m.kind).ctx(&who)?;
        opened.insert(m.ino, OwnedFd::from(file));
    }
    Ok(opened)
}

/// Writes the saved `runs` (offset, length), stored one after the other in `data`, at
/// their offsets of `object`, with sendfile: the kernel copies the page cache of the
/// statefile into the object once, with no buffer of cpr's between them.
fn fill_runs(
    data: &std::fs::File,
    object: &std::fs::File,
    runs: &[(u64, u64)],
) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut object = object;
    let mut from: i64 = 0;
    for &(off, len) in runs {
        object.seek(SeekFrom::Start(off))?;
        let mut left = len as usize;
        while left > 0 {
            let n = nix::sys::sendfile::sendfile64(object, data, Some(&mut from), left)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "saved shared memory ends early",
                ));
            }
            left -= n;
        }
    }
    Ok(())
}

/// A new, empty object of `kind`: a memfd (with its name), or a file created where the
/// deleted one was and unlinked again (so that /proc shows its path as "(deleted)"; an
/// unnamed file in the same directory, or in /tmp, if that path is taken or gone).
fn create(kind: &MemKind, size: &u64) -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    match kind {
        MemKind::Anon => {
            // a memfd where /proc/self/map_files cannot be opened (no CAP_SYS_ADMIN): the
            // same memory, under another name
            let size = *size;
            let fd = crate::sys::shared_anon::open(size.max(1))
                .or_else(|_| memfd_create(c"cpr-shmem", MFdFlags::MFD_CLOEXEC))?;
            Ok(fd.into())
        }
        MemKind::Memfd { name, .. } => new_memfd(name),
        MemKind::Deleted { path, .. } => {
            let path = std::path::Path::new(path);
            if !path.is_absolute() || path.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(invalid("deleted file path not absolute"));
            }
            let at_path = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path);
            if let Ok(f) = at_path {
                std::fs::remove_file(path)?;
                return Ok(f);
            }
            let tmpfile = |dir: &std::path::Path| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .mode(0o600)
                    .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
                    .open(dir)
            };
            let dir = path.parent().unwrap_or(std::path::Path::new("/tmp"));
            tmpfile(dir).or_else(|_| tmpfile(std::path::Path::new("/tmp")))
        }
        MemKind::PosixShm(f) => f.open(),
    }
}

/// Once the data is in: a deleted file's mode and owner, a memfd's mode and seals (last:
/// they may forbid writing).
fn finish(file: &std::fs::File, kind: &MemKind) -> std::io::Result<()> {
    match kind {
        MemKind::Anon => Ok(()),
        MemKind::Memfd { seals, mode, .. } => {
            if let Some(mode) = *mode {
                file.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
            let seals = SealFlag::from_bits_retain(*seals);
            fcntl(file, FcntlArg::F_ADD_SEALS(seals))?;
            Ok(())
        }
        MemKind::Deleted {
            mode,
            uid,
            gid,
            times,
            ..
        } => {
            let meta = file.metadata()?;
            if (meta.uid(), meta.gid()) != (*uid, *gid) {
                std::os::unix::fs::fchown(file, Some(*uid), Some(*gid))?;
            }
            file.set_permissions(std::fs::Permissions::from_mode(*mode))?;
            if let Some([(a, a_ns), (m, m_ns)]) = *times {
                // last: writing the data changed them
                let at = nix::sys::time::TimeSpec::new(a, a_ns);
                let mt = nix::sys::time::TimeSpec::new(m, m_ns);
                nix::sys::stat::futimens(file, &at, &mt)?;
            }
            Ok(())
        }
        MemKind::PosixShm(f) => f.finish(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_records_are_refused() {
        let good = SharedMem {
            ino: 5,
            size: 0x3000,
            runs: vec![(0, 0x1000), (0x2000, 0x1000)],
            data: "shared/mem-5".into(),
            kind: MemKind::Memfd {
                name: "x".into(),
                seals: libc::F_SEAL_SEAL | libc::F_SEAL_GROW,
                mode: Some(0o600),
            },
        };
        assert!(good.check().is_ok());
        let with = |f: &dyn Fn(&mut SharedMem)| {
            let mut m = good.clone();
            f(&mut m);
            m.check().unwrap_err().to_string()
        };
        for msg in [
            with(&|m| m.runs = vec![(0x2000, 0x1000), (0, 0x1000)]),
            with(&|m| m.runs = vec![(0x2000, 0x2000)]),
            with(&|m| m.runs = vec![(u64::MAX, 2)]),
            with(&|m| {
                m.kind = MemKind::Memfd {
                    name: "a\0b".into(),
                    seals: 0,
                    mode: None,
                }
            }),
            with(&|m| {
                m.kind = MemKind::Memfd {
                    name: "x".into(),
                    seals: 0x100,
                    mode: None,
                }
            }),
            with(&|m| {
                m.kind = MemKind::Deleted {
                    path: "relative".into(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    times: None,
                }
            }),
        ] {
            assert!(msg.contains("statefile damaged"), "{msg}");
        }
    }
}
