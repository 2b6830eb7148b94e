//! The statefile directory: format types and revision (`format`), the one table of its
//! file names (`layout`), the records (`records`), the atomic writer, the validating
//! reader, `cpr -i` rendering and `cpr -D` removal.
//!
//! ```text
//! STATEFILE/                 mode 0700, owned by the checkpoint owner
//!   MANIFEST                 JSON, written last: a directory without it is not a statefile
//!   proc/<pid>/core.json     everything of a process but its memory
//!   proc/<pid>/mm.json       its mappings and which pages are saved
//!   proc/<pid>/pages         its page data (bulk)
//!   pstree.json              zombies of the tree
//!   shared/table.json        descriptions shared between processes, pipes, shared memory
//!   shared/pipe-<ino>        bytes in flight in a pipe
//!   shared/mem-<ino>         shared anonymous memory, memfds (bulk)
//!   shared/shm.json          SysV shared memory segments
//!   shared/shm-<shmid>       and their contents
//!   files/<pid>-fd<fd>       saved copies of files (REPLACE, SUBSTITUTE, deleted)
//!   files/upgrade/<n>        saved programs and libraries (-u)
//! ```

pub mod auth;
mod beneath;
pub mod compress;
pub mod format;
pub mod info;
pub mod layout;
pub mod reader;
pub mod records;
pub mod writer;

pub use format::*;
pub use layout::{core_path, mm_path, pages_path};
pub use reader::{Statefile, Verify};
pub use records::CoreRecord;
pub use writer::{FileSink, StatefileWriter};

use crate::error::{Context, Error, Kind, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `cpr -D`: removes a statefile completely. Only its owner or root; anything that is not
/// a statefile (no valid MANIFEST) is refused and left untouched.
///
/// A damaged statefile, or one of another revision, is still a statefile: its owner may
/// remove it. MANIFEST goes first, so that a removal cut short never leaves something
/// that looks valid.
pub fn remove(path: &Path, caller_uid: u32) -> Result<()> {
    let subject = path.display().to_string();
    // leftovers of a checkpoint of this name that was killed go too
    if let Some(name) = path.file_name() {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        writer::remove_stale_partials(parent, name);
    }
    let meta = std::fs::symlink_metadata(path).ctx(&subject)?;
    if meta.file_type().is_symlink() {
        return Err(Error::with_detail(
            subject,
            Kind::InvalidArgument,
            "a symbolic link; name the statefile itself",
        ));
    }
    let head = match reader::probe(path) {
        // someone else's statefile (mode 0700) is not even readable: say what IRIX says
        Err(e)
            if e.kind == Kind::PermissionDenied && caller_uid != 0 && meta.uid() != caller_uid =>
        {
            return Err(Error::with_detail(
                subject,
                Kind::NotPermitted,
                "only the checkpoint owner or root may delete it",
            ));
        }
        other => other?,
    };
    let owns = head.owner.uid == caller_uid && meta.uid() == caller_uid;
    if caller_uid != 0 && !owns {
        return Err(Error::with_detail(
            subject,
            Kind::NotPermitted,
            format!(
                "only the checkpoint owner (uid {}) or root may delete it",
                head.owner.uid
            ),
        ));
    }
    // an incremental checkpoint taken after it needs its pages
    crate::engine::objects::incremental::refuse_if_depended_on(path)?;
    std::fs::remove_file(path.join(MANIFEST)).ctx(format!("{subject}/{MANIFEST}"))?;
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .ctx(&subject)?;
    std::fs::remove_dir_all(path).ctx(&subject)
}
