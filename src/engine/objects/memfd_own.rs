//! The open file description memfd_create(2) made. Unlike a descriptor opened again
//! through /proc/PID/fd, it does not count as a writer of the memfd, so that a memfd
//! holding a program can be run (execveat with AT_EMPTY_PATH, fexecve) while it is open
//! read-write; a description opened again read-write makes exec fail with ETXTBSY.
//! Restart makes each memfd with memfd_create in cpr (deleted_files.rs, shmem.rs) and
//! gives that very description to the first read-write description the memfd had, as
//! pipes.rs gives pipe(2)'s ends to the first descriptions of a pipe; the others are
//! opened again through /proc as before. The kernel does not show which description
//! memfd_create made: a memfd whose own description was closed and that was opened again
//! read-write comes back runnable.
//!
//! Checkpoint makes that first read-write description an entry of the table of shared
//! objects even when one process has it (as it does for a pipe end), so that restart
//! opens it in cpr, where the memfd is; restart picks it by the same rule.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;

use super::deleted_files::{DeletedFile, is_memfd};
use super::files::FdKind;
use super::shared_fds::SharedFile;
use crate::error::{Context, Result};

/// The entries of `files` that are memfd_create's own description of a memfd of
/// `deleted`: for each memfd, its first read-write description.
pub(super) fn own_descriptions(files: &[SharedFile], deleted: &[DeletedFile]) -> BTreeSet<u32> {
    let memfds: BTreeSet<u32> = deleted
        .iter()
        .filter(|d| is_memfd(&d.path))
        .map(|d| d.id)
        .collect();
    let mut first: BTreeMap<u32, u32> = BTreeMap::new();
    for f in files {
        let t = &f.template;
        let Some(id) = t.inode else { continue };
        if t.kind == FdKind::Deleted
            && memfds.contains(&id)
            && t.flags & libc::O_ACCMODE == libc::O_RDWR
        {
            first.entry(id).or_insert(f.id);
        }
    }
    first.into_values().collect()
}

/// Restart, in cpr: the description of entry `f`, the memfd's own (`memfd` is the
/// descriptor cpr made it with), at the entry's offset. Its status flags are set once it
/// is placed (files.rs).
pub(super) fn open(f: &SharedFile, memfd: i32) -> Result<OwnedFd> {
    let who = format!("fd {} ({})", f.template.fd, f.template.path);
    let fd = crate::sys::dup_above(memfd, 0, true).ctx(&who)?;
    nix::unistd::lseek(&fd, f.template.pos as i64, nix::unistd::Whence::SeekSet).ctx(&who)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::objects::files::FdRecord;

    fn entry(id: u32, inode: u32, flags: i32) -> SharedFile {
        let mut template = FdRecord::object(3, FdKind::Deleted, "/memfd:x", flags, false);
        template.inode = Some(inode);
        SharedFile { id, template }
    }

    fn deleted(id: u32, path: &str) -> DeletedFile {
        DeletedFile {
            id,
            path: path.into(),
            saved: String::new(),
            size: 0,
            extents: Vec::new(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            atime: (0, 0),
            mtime: (0, 0),
            mapped: None,
            memfd_seals: Some(0),
        }
    }

    #[test]
    fn the_first_read_write_description_of_each_memfd_is_its_own() {
        let files = [
            entry(0, 10, libc::O_RDONLY),
            entry(1, 10, libc::O_RDWR),
            entry(2, 10, libc::O_RDWR),
            entry(3, 11, libc::O_RDWR | libc::O_NONBLOCK),
            entry(4, 12, libc::O_RDWR),
            entry(5, 13, libc::O_WRONLY),
        ];
        let del = [
            deleted(10, "/memfd:a"),
            deleted(11, "/memfd:b"),
            deleted(12, "/tmp/deleted"),
            deleted(13, "/memfd:c"),
        ];
        assert_eq!(own_descriptions(&files, &del), BTreeSet::from([1, 3]));
    }
}
