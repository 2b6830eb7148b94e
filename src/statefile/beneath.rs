//! Opening files of a statefile through a held directory descriptor, never by path: a
//! name is resolved beneath the directory and through no symbolic link (openat2 with
//! RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). Statefile directories may be writable by the
//! checkpoint owner while root works in them; a link swapped in mid-way then fails with
//! ELOOP or EXDEV instead of leading elsewhere.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// The resolution every statefile name gets.
fn how(flags: OFlag, mode: u32) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::from_bits_truncate(mode))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

/// Opens `rel` beneath `dir` for reading. Without blocking (a FIFO planted in a
/// statefile must not hang cpr) and never as a controlling terminal; callers check with
/// fstat that it is a regular file before they read.
pub fn open_read(dir: impl AsFd, rel: &str) -> Result<File, Errno> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    openat2(dir, rel, how(flags, 0)).map(File::from)
}

/// Opens the directory `rel` beneath `dir` (`.` for `dir` itself, again).
pub fn open_dir(dir: impl AsFd, rel: &str) -> Result<OwnedFd, Errno> {
    openat2(dir, rel, how(OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0))
}

/// Creates `rel` beneath `dir`: a new file (never an existing one), mode `mode`.
pub fn create_new(dir: impl AsFd, rel: &str, mode: u32) -> Result<File, Errno> {
    openat2(
        dir,
        rel,
        how(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, mode),
    )
    .map(File::from)
}

/// Whether an errno from these opens means a link (or `..`) was on the way.
pub fn is_link_refusal(errno: Errno) -> bool {
    matches!(errno, Errno::ELOOP | Errno::EXDEV)
}
