//! Open files: regular files (with the FILE policies of the attribute file), deleted-but-
//! open files, directories, and the guide's safe devices. Dump reads /proc/PID/fd and
//! fdinfo; restore reopens them natively in the restore child, at the same numbers.
//! The descriptor table itself is read and placed here too; the other kinds behind it
//! are pipes.rs, events.rs, and shared_fds.rs for descriptions shared between processes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use serde::{Deserialize, Serialize};

use crate::attrfile::{FileAction, ProcessPolicies};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::ProcDir;
use crate::statefile::{Statefile, StatefileWriter};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdKind {
    Regular,
    /// Deleted while open: its content is in the statefile.
    Deleted,
    Directory,
    /// /dev/null, /dev/zero, /dev/tty, a terminal, ...
    Device,
    /// Another descriptor of this process sharing the same open file description.
    Dup {
        of: i32,
    },
    /// One end of a pipe (`pipe:[ino]`); both ends must be in the checkpoint.
    Pipe {
        ino: u64,
    },
    /// eventfd, timerfd, signalfd, epoll, inotify: made by `events::restore`.
    Event(super::events::EventFd),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdRecord {
    pub fd: i32,
    pub kind: FdKind,
    pub path: String,
    /// open(2) flags from fdinfo (access mode, O_APPEND, O_NONBLOCK, ...).
    pub flags: i32,
    pub cloexec: bool,
    pub pos: u64,
    pub action: FileAction,
    /// Statefile path of the saved content (REPLACE, SUBSTITUTE, deleted files).
    pub saved: Option<String>,
    /// The open file description is shared with other processes (or is a pipe): restart
    /// opens it once, before creating the processes, and each inherits it. The number is
    /// an entry of the statefile's table of shared descriptions.
    #[serde(default)]
    pub shared: Option<u32>,
}

impl FdRecord {
    /// A descriptor with no offset, policy or saved content of its own (a pipe end, an
    /// event object): MERGE, restored as the object it is.
    pub fn object(fd: i32, kind: FdKind, link: &str, flags: i32, cloexec: bool) -> FdRecord {
        FdRecord {
            fd,
            kind,
            path: link.to_string(),
            flags,
            cloexec,
            pos: 0,
            action: FileAction::Merge,
            saved: None,
            shared: None,
        }
    }
}

/// Devices the guide calls checkpoint safe, plus terminals and the random devices.
fn safe_device(path: &str) -> bool {
    matches!(
        path,
        "/dev/null"
            | "/dev/zero"
            | "/dev/tty"
            | "/dev/console"
            | "/dev/full"
            | "/dev/random"
            | "/dev/urandom"
    ) || path.starts_with("/dev/pts/")
        || path.starts_with("/dev/tty")
}

/// Lists and classifies the descriptors of a stopped process; saves file contents the
/// policies ask for. An object that is not checkpoint safe is "Checkpoint error" naming
/// the process, the descriptor and the object.
pub fn dump(
    pid: i32,
    policies: &ProcessPolicies,
    writer: &mut StatefileWriter,
) -> Result<Vec<FdRecord>> {
    let dir = ProcDir::open(pid)?;
    let mut out: Vec<FdRecord> = Vec::new();
    for fd in dir.fds()? {
        let record = dump_one(&dir, fd, &out, policies, writer)?;
        out.push(record);
    }
    Ok(out)
}

/// One descriptor, after the `earlier` ones: classified, then the content the policies
/// ask for saved.
fn dump_one(
    dir: &ProcDir,
    fd: i32,
    earlier: &[FdRecord],
    policies: &ProcessPolicies,
    writer: &mut StatefileWriter,
) -> Result<FdRecord> {
    let mut record = classify(dir, fd, earlier, policies)?;
    if needs_saved_content(&record) {
        let pid = dir.pid();
        let who = format!("process {pid} fd {fd}");
        record.saved = Some(save_content(pid, fd, &who, &record.path, writer)?);
    }
    Ok(record)
}

/// Whether the checkpoint saves the content of the file behind `record` (deleted files,
/// REPLACE, SUBSTITUTE).
pub fn needs_saved_content(record: &FdRecord) -> bool {
    record.kind == FdKind::Deleted
        || (record.kind == FdKind::Regular
            && matches!(record.action, FileAction::Replace | FileAction::Substitute))
}

/// What descriptor `fd` is, after the `earlier` ones: a duplicate of one of those, a pipe
/// end (pipes.rs), an event object (events.rs), or a file by path with its FILE policy;
/// nothing saved yet. Reads /proc only, so it also serves `cpr -c --dry-run` on a
/// running process: an object that is not checkpoint safe is refused here, for both.
pub fn classify(
    dir: &ProcDir,
    fd: i32,
    earlier: &[FdRecord],
    policies: &ProcessPolicies,
) -> Result<FdRecord> {
    let pid = dir.pid();
    let who = format!("process {pid} fd {fd}");
    let link = dir.link(&format!("fd/{fd}")).map_err(|e| e.context(&who))?;
    let info = dir.fdinfo(fd)?;
    // a negative offset (a few special files) keeps its bits: restore seeks to it as i64
    let (pos, flags) = (info.pos as u64, info.flags);
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let flags = flags & !libc::O_CLOEXEC;
    // a dup of an earlier descriptor shares its offset and flags
    if let Some(first) = earlier
        .iter()
        .find(|r| crate::sys::same_open_file(pid, r.fd, pid, fd).unwrap_or(false))
    {
        let of = match first.kind {
            FdKind::Dup { of } => of,
            _ => first.fd,
        };
        return Ok(FdRecord {
            fd,
            kind: FdKind::Dup { of },
            path: link,
            flags,
            cloexec,
            pos,
            action: first.action,
            saved: None,
            shared: None,
        });
    }
    if link.starts_with("socket:") {
        return Err(not_safe(&who, &link, "a socket"));
    }
    if let Some(pipe) = super::pipes::dump(fd, &link, flags, cloexec) {
        return Ok(pipe);
    }
    if let Some(ev) = super::events::dump(pid, fd, &link, flags)? {
        return Ok(FdRecord::object(
            fd,
            FdKind::Event(ev),
            &link,
            flags,
            cloexec,
        ));
    }
    if !link.starts_with('/') {
        return Err(not_safe(&who, &link, "this kind of descriptor"));
    }
    let (kind, path) = classify_path(pid, fd, &who, &link)?;
    let action = if kind == FdKind::Regular {
        policies.file_action(std::path::Path::new(&path))
    } else {
        FileAction::Merge
    };
    Ok(FdRecord {
        fd,
        kind,
        path,
        flags,
        cloexec,
        pos,
        action,
        saved: None,
        shared: None,
    })
}

/// "Checkpoint error": `what` behind `link` is not checkpoint safe.
fn not_safe(who: &str, link: &str, what: &str) -> Error {
    Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("{link}: {what} is not checkpoint safe"),
    )
}

/// The kind of a descriptor opened by path (`link`), and the path restart reopens.
fn classify_path(pid: i32, fd: i32, who: &str, link: &str) -> Result<(FdKind, String)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ctx(who)?;
    let ft = meta.file_type();
    let (kind, path) = if ft.is_char_device() || ft.is_block_device() {
        if !safe_device(link) {
            return Err(not_safe(who, link, "this device"));
        }
        (FdKind::Device, link.to_string())
    } else if ft.is_dir() {
        (FdKind::Directory, link.to_string())
    } else if ft.is_fifo() {
        return Err(not_safe(who, link, "a FIFO"));
    } else if ft.is_file() {
        match link.strip_suffix(" (deleted)") {
            Some(p) if meta.nlink() == 0 => (FdKind::Deleted, p.to_string()),
            _ => (FdKind::Regular, link.to_string()),
        }
    } else {
        return Err(not_safe(who, link, "this kind of file"));
    };
    Ok((kind, path))
}

/// Saves the content of file `path`, open as `fd` (REPLACE, SUBSTITUTE, deleted files);
/// returns its statefile path.
fn save_content(
    pid: i32,
    fd: i32,
    who: &str,
    path: &str,
    writer: &mut StatefileWriter,
) -> Result<String> {
    let rel = crate::statefile::layout::saved_file_path(pid, fd);
    let mut src = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).ctx(who)?;
    let mut sink = writer.create_file(&rel)?;
    std::io::copy(&mut src, &mut sink).ctx(format!("{who}: saving {path}"))?;
    writer.finish_file(sink)?;
    Ok(rel)
}

fn open_flags_for_reopen(flags: i32) -> i32 {
    flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY) | libc::O_NOCTTY
}

fn open_path(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let acc = flags & libc::O_ACCMODE;
    std::fs::OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(path)
        .map(OwnedFd::from)
}

/// An unlinked file in `dir` (or /tmp) holding `content`, reopened with `flags`.
fn anonymous_copy(dir: &str, mut src: std::fs::File, flags: i32) -> std::io::Result<OwnedFd> {
    let tmp = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
        .or_else(|_| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o600)
                .open("/tmp")
        })?;
    let mut dst = &tmp;
    std::io::copy(&mut src, &mut dst)?;
    // reopen through /proc to get the original access mode and flags
    open_path(
        &format!("/proc/self/fd/{}", tmp.as_raw_fd()),
        open_flags_for_reopen(flags),
    )
}

/// Reopens one descriptor as the FILE policy says (guide, "FILE Policy").
pub fn reopen(r: &FdRecord, sf: &Statefile, tty: Option<&str>) -> Result<OwnedFd> {
    let who = format!("fd {} ({})", r.fd, r.path);
    let parent = std::path::Path::new(&r.path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/tmp".into());
    let seek = |fd: &OwnedFd, pos: u64, whence: nix::unistd::Whence| -> Result<()> {
        nix::unistd::lseek(fd, pos as i64, whence)
            .ctx(&who)
            .map(drop)
    };
    let fd = match (&r.kind, r.action) {
        (FdKind::Device, _) => {
            let path = match tty {
                Some(t) if r.path.starts_with("/dev/pts/") || r.path.starts_with("/dev/tty") => t,
                _ => r.path.as_str(),
            };
            open_path(path, open_flags_for_reopen(r.flags))
                .or_else(|_| open_path("/dev/null", open_flags_for_reopen(r.flags)))
                .ctx(&who)?
        }
        (FdKind::Directory, _) => {
            let fd = open_path(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            if r.pos != 0 {
                let _ = seek(&fd, r.pos, nix::unistd::Whence::SeekSet);
            }
            fd
        }
        (FdKind::Deleted, _) | (FdKind::Regular, FileAction::Substitute) => {
            let saved = r.saved.as_deref().ok_or_else(|| {
                Error::with_detail(&who, Kind::CheckpointError, "saved content missing")
            })?;
            let fd = anonymous_copy(&parent, sf.open_file(saved)?, r.flags).ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Regular, FileAction::Replace) => {
            let saved = r.saved.as_deref().ok_or_else(|| {
                Error::with_detail(&who, Kind::CheckpointError, "saved content missing")
            })?;
            std::fs::copy(sf.file(saved)?, &r.path).ctx(format!("{who}: replacing"))?;
            let fd = open_path(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Regular, FileAction::Ignore) => {
            // as originally opened, at offset zero
            let mut flags = open_flags_for_reopen(r.flags);
            // fopen "w" and "a" open write-only: the guide's "overwriting the entire
            // file"; read-write ("r+") files are only rewound
            if flags & libc::O_ACCMODE == libc::O_WRONLY {
                flags |= libc::O_TRUNC;
            }
            open_path(&r.path, flags).ctx(&who)?
        }
        (FdKind::Regular, FileAction::Append) => {
            let fd = open_path(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            seek(&fd, 0, nix::unistd::Whence::SeekEnd)?;
            fd
        }
        (FdKind::Regular, FileAction::Merge) => {
            let fd = open_path(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Dup { .. }, _) | (FdKind::Pipe { .. }, _) | (FdKind::Event(_), _) => {
            return Err(Error::with_detail(
                &who,
                Kind::CheckpointError,
                "not a descriptor to reopen by path",
            ));
        }
    };
    Ok(fd)
}

/// In the restore child: closes cpr's descriptors except `keep`, then opens every
/// descriptor of the image at its number. `keep` must already be above every number
/// the image uses.
pub fn restore(
    records: &[FdRecord],
    sf: &Statefile,
    keep: &[i32],
    tty: Option<&str>,
    shared: &dyn Fn(u32) -> Option<i32>,
) -> Result<()> {
    // (the numbers the listing itself used are closed again by the time they are read)
    let mine = ProcDir::open(std::process::id() as i32)?.fds()?;
    // open everything first (the statefile's fds are still needed), then place
    let mut opened: Vec<(i32, OwnedFd)> = Vec::new();
    for r in records
        .iter()
        .filter(|r| !matches!(r.kind, FdKind::Dup { .. } | FdKind::Event(_)))
    {
        let fd = match r.shared {
            // inherited from cpr, which opened it once for every process that has it
            Some(id) => {
                let inherited = shared(id).ok_or_else(|| {
                    Error::with_detail(
                        format!("fd {}", r.fd),
                        Kind::CheckpointError,
                        format!("shared description {id} missing"),
                    )
                })?;
                crate::sys::dup_above(inherited, 0, true).ctx(format!("fd {}", r.fd))?
            }
            None => reopen(r, sf, tty)?,
        };
        opened.push((r.fd, fd));
    }
    // move them all above the image's numbers, so that placing one never closes another
    let top = records.iter().map(|r| r.fd).max().unwrap_or(0) + 1;
    let base = top.max(keep.iter().copied().max().unwrap_or(0) + 1);
    let mut staged: Vec<(i32, i32)> = Vec::new();
    for (target, fd) in opened {
        let high = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(base))
            .ctx(format!("fd {target}"))?;
        staged.push((target, high));
    }
    for fd in mine {
        if !keep.contains(&fd) && !staged.iter().any(|(_, h)| *h == fd) {
            let _ = nix::unistd::close(fd);
        }
    }
    for (target, high) in &staged {
        dup_to(*high, *target)?;
    }
    // event objects (epoll needs its targets in place), with the dups of them
    super::events::restore(records)?;
    for r in records {
        if let FdKind::Dup { of } = r.kind {
            dup_to(of, r.fd)?;
        }
    }
    for (_, high) in staged {
        let _ = nix::unistd::close(high);
    }
    for r in records {
        crate::sys::set_cloexec(r.fd, r.cloexec).ctx(format!("fd {}", r.fd))?;
    }
    Ok(())
}

fn dup_to(from: i32, to: i32) -> Result<()> {
    crate::sys::dup_at(from, to).ctx(format!("fd {to}"))
}

/// Dispositions for `cpr -i`.
pub fn summaries(records: &[FdRecord]) -> Vec<crate::statefile::OpenFileSummary> {
    records
        .iter()
        .map(|r| crate::statefile::OpenFileSummary {
            fd: r.fd,
            path: r.path.clone(),
            action: r.action,
        })
        .collect()
}
