//! POSIX shared memory and named semaphores: `shm_open()` segments and `sem_open()`
//! semaphores are files in /dev/shm (a tmpfs), mapped shared. Their content does not
//! outlive a reboot, so checkpoint always saves it, once per file for all processes, as a
//! memory object (shmem.rs, `MemKind::PosixShm`) with the file's name, mode, owner and
//! times. Restart makes the file again at its name with that content and every process
//! maps it again, shared. A file still at that name is taken back (its content replaced
//! by the statefile's, as for SysV shm) only if it is the very file checkpointed (same
//! device and inode: the processes were left running, or were ended and the file left
//! behind); any other file there is left alone and the restart fails, "File exists".
//! A segment already unlinked (shm_unlink) while mapped is a deleted file (shmem.rs).
//!
//! sem_open makes a semaphore under a temporary name, maps it, links it to
//! `sem.NAME` and removes the temporary name, so that its creator's mapping shows
//! `/dev/shm/sem.XXXXXX (deleted)` although the file is still there as `sem.NAME`.
//! Such a file is found by inode in /dev/shm, saved under its name, and restart makes it
//! the same way (temporary name, link, unlink), so that the mappings look as they did and
//! a process that opens the name after restart shares the very same semaphore.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind, Result};

/// Where glibc keeps shm_open segments and named semaphores.
const DIR: &str = "/dev/shm/";

/// A /dev/shm file as it was at checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShmFile {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device and inode: the file restart may take back.
    pub dev: u64,
    pub ino: u64,
    /// Access and modification times, (seconds, nanoseconds) each.
    pub times: [(i64, i64); 2],
    /// The removed temporary name the mappings show (sem_open), if not `path`.
    #[serde(default)]
    pub mapped_as: Option<String>,
}

/// Whether mapping name `name` (from /proc/PID/maps) is a file directly in /dev/shm (where
/// shm_open and sem_open make them; not in a directory below), still linked.
pub fn is_posix_shm(name: &str) -> bool {
    in_dir(name) && !name.ends_with(" (deleted)")
}

/// The record of /dev/shm file `path` (its metadata `meta`, read through map_files);
/// None when it is not a regular file (left to the caller to refuse or handle).
pub fn describe(path: &str, meta: &std::fs::Metadata) -> Option<ShmFile> {
    if !is_posix_shm(path) || !meta.is_file() {
        return None;
    }
    Some(ShmFile {
        path: path.to_string(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        dev: meta.dev(),
        ino: meta.ino(),
        times: [
            (meta.atime(), meta.atime_nsec()),
            (meta.mtime(), meta.mtime_nsec()),
        ],
        mapped_as: None,
    })
}

/// The record of a mapped /dev/shm file whose mapped name `deleted` (without
/// " (deleted)") was removed but which is still linked under another name in /dev/shm
/// (sem_open's temporary name); None for a file really deleted, or linked elsewhere.
pub fn describe_linked(deleted: &str, meta: &std::fs::Metadata) -> Option<ShmFile> {
    if !is_posix_shm(deleted) || meta.nlink() == 0 || !meta.is_file() {
        return None;
    }
    let name = std::fs::read_dir(DIR).ok()?.find_map(|e| {
        let e = e.ok()?;
        let m = e.metadata().ok()?;
        let same = m.is_file() && (m.dev(), m.ino()) == (meta.dev(), meta.ino());
        same.then(|| e.file_name().into_string().ok())?
    })?;
    let mut f = describe(&format!("{DIR}{name}"), meta)?;
    f.mapped_as = Some(deleted.to_string());
    Some(f)
}

/// Whether `path` is one file directly in /dev/shm.
fn in_dir(path: &str) -> bool {
    let name = path.strip_prefix(DIR).unwrap_or("");
    !name.is_empty() && !name.contains(['/', '\0']) && name != "." && name != ".."
}

impl ShmFile {
    /// A hostile statefile may not name a file outside /dev/shm, or walk out of it.
    pub fn valid(&self) -> bool {
        in_dir(&self.path)
            && self.mapped_as.as_deref().is_none_or(in_dir)
            && self.mapped_as.as_ref() != Some(&self.path)
            && self.mode <= 0o7777
            && self
                .times
                .iter()
                .all(|&(_, ns)| (0..1_000_000_000).contains(&ns))
    }

    /// Restart, before anything is made: a file at the name that is not the one
    /// checkpointed is someone else's, which restart must not overwrite.
    pub fn check_free(&self) -> Result<()> {
        if let Some(tmp) = &self.mapped_as
            && std::fs::symlink_metadata(tmp).is_ok()
        {
            return Err(Error::with_detail(
                tmp,
                Kind::from_errno(libc::EEXIST),
                format!("the temporary name of {} is taken", self.path),
            ));
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.is_file() && (m.dev(), m.ino()) == (self.dev, self.ino) => Ok(()),
            Ok(m) => Err(Error::with_detail(
                &self.path,
                Kind::from_errno(libc::EEXIST),
                format!(
                    "another file (inode {}) has the name of the POSIX shared memory checkpointed (inode {})",
                    m.ino(),
                    self.ino
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// The file, empty, at its name: the one checkpointed taken back (emptied), or a new
    /// one (owner-only until `finish`).
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        if let Some(tmp) = &self.mapped_as {
            return self.open_linked(tmp);
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW);
        match opts.clone().create_new(true).mode(0o600).open(&self.path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let f = opts.open(&self.path)?;
                let m = f.metadata()?;
                if (m.dev(), m.ino()) != (self.dev, self.ino) {
                    return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
                }
                f.set_len(0)?;
                Ok(f)
            }
            Err(e) => Err(e),
        }
    }

    /// The file made at its temporary name `tmp`, linked at its name (in place of the one
    /// checkpointed, if still there: `check_free`) and the temporary name removed.
    fn open_linked(&self, tmp: &str) -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(tmp)?;
        let linked = match std::fs::hard_link(tmp, &self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let m = std::fs::symlink_metadata(&self.path)?;
                if (m.dev(), m.ino()) != (self.dev, self.ino) {
                    Err(std::io::Error::from_raw_os_error(libc::EEXIST))
                } else {
                    std::fs::remove_file(&self.path)
                        .and_then(|_| std::fs::hard_link(tmp, &self.path))
                }
            }
            other => other,
        };
        let removed = std::fs::remove_file(tmp);
        linked.and(removed).map(|_| f)
    }

    /// Once the data is in: mode, owner and times as they were.
    pub fn finish(&self, file: &std::fs::File) -> std::io::Result<()> {
        let meta = file.metadata()?;
        if (meta.uid(), meta.gid()) != (self.uid, self.gid) {
            std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        let [(a, a_ns), (m, m_ns)] = self.times;
        let at = nix::sys::time::TimeSpec::new(a, a_ns);
        let mt = nix::sys::time::TimeSpec::new(m, m_ns);
        nix::sys::stat::futimens(file, &at, &mt)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_dev_shm_only() {
        assert!(is_posix_shm("/dev/shm/seg"));
        assert!(is_posix_shm("/dev/shm/sem.lock"));
        assert!(!is_posix_shm("/dev/shm/seg (deleted)"));
        assert!(!is_posix_shm("/dev/shm/"));
        assert!(!is_posix_shm("/dev/zero"));
        assert!(!is_posix_shm("/dev/shm/dir/file"));
    }

    #[test]
    fn hostile_records_are_invalid() {
        let f = ShmFile {
            path: "/dev/shm/seg".into(),
            mode: 0o640,
            uid: 0,
            gid: 0,
            dev: 1,
            ino: 2,
            times: [(0, 0), (0, 0)],
            mapped_as: None,
        };
        assert!(f.valid());
        for bad in [
            "/dev/shm/../etc/passwd",
            "/etc/passwd",
            "/dev/shm/",
            "/dev/shm/a/b",
        ] {
            let g = ShmFile {
                path: bad.into(),
                ..f.clone()
            };
            assert!(!g.valid(), "{bad}");
        }
        let g = ShmFile {
            mapped_as: Some("/dev/shm/../x".into()),
            ..f.clone()
        };
        assert!(!g.valid());
        let g = ShmFile {
            mode: 0o10000,
            ..f.clone()
        };
        assert!(!g.valid());
    }
}
