//! Open files: regular files (with the FILE policies of the attribute file), deleted-but-
//! open files, directories, and the guide's safe devices. Dump reads /proc/PID/fd and
//! fdinfo; restore reopens them natively in the restore child, at the same numbers.
//! The descriptor table itself is read and placed here too; the other kinds behind it
//! are pipes.rs, events.rs, and shared_fds.rs for descriptions shared between processes.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
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
    /// A named FIFO (its inode at checkpoint), opened again by name (fifos.rs).
    Fifo {
        ino: u64,
    },
    /// The master of a pseudo-terminal (its number at checkpoint): ptys.rs.
    PtyMaster {
        index: u32,
    },
    /// A slave of a pseudo-terminal whose master is in the checkpoint.
    PtySlave {
        index: u32,
    },
    /// An O_PATH descriptor (on a file of any type, a symlink itself included): opened
    /// again by name with its flags.
    Path,
    /// A node of a checkpoint-safe device, removed while open: made again with mknod
    /// where it was, and removed (removed_devices.rs). `path` is its name.
    RemovedDevice(super::removed_devices::RemovedDevice),
    /// eventfd, timerfd, signalfd, epoll, inotify: made by `events::restore`.
    Event(super::events::EventFd),
    /// A POSIX message queue (posix_mqueue.rs), opened again by name; the notification
    /// registration of the process, on its first descriptor of the queue.
    MQueue {
        name: String,
        /// Its name was removed (mq_unlink) while it is open.
        #[serde(default)]
        removed: bool,
        /// The queue's inode at checkpoint: which descriptors share one queue.
        #[serde(default)]
        ino: u64,
        #[serde(default)]
        notify: Option<super::posix_mqueue::MqNotify>,
    },
    /// A connected UNIX socket whose peer is in the checkpoint (unix_sockets.rs).
    UnixSocket {
        ino: u64,
        peer: u64,
        sock_type: i32,
        /// What restart does with it, for `cpr -i` (unix_sockets::disposition).
        #[serde(default)]
        disposition: Option<String>,
    },
    /// A TCP or UDP socket (inet_sockets.rs).
    InetSocket {
        ino: u64,
        /// What restart does with it, for `cpr -i` (inet_sockets::describe).
        #[serde(default)]
        disposition: Option<String>,
    },
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
    /// Where SIGIO goes (F_SETOWN_EX, F_SETSIG), when the description says.
    #[serde(default)]
    pub owner: Option<FdOwner>,
    /// A deleted file: its entry in the statefile's table of deleted files (one copy
    /// for every descriptor of that file; deleted_files.rs).
    #[serde(default)]
    pub inode: Option<u32>,
}

/// The owner, signal and lease of an open file description (fcntl F_GETOWN_EX,
/// F_GETSIG, F_GETLEASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdOwner {
    /// F_OWNER_TID, F_OWNER_PID or F_OWNER_PGRP.
    pub kind: i32,
    /// 0: no owner.
    pub id: i32,
    /// 0: SIGIO.
    pub sig: i32,
    /// F_RDLCK or F_WRLCK: the lease the description holds (F_SETLEASE); F_UNLCK none.
    #[serde(default = "no_lease")]
    pub lease: i32,
}

fn no_lease() -> i32 {
    libc::F_UNLCK
}

/// The status flags fcntl(F_SETFL) sets on a description (the kernel's SETFL_MASK).
pub(super) const STATUS_FLAGS: i32 =
    libc::O_APPEND | libc::O_NONBLOCK | libc::O_DIRECT | libc::O_NOATIME | libc::O_ASYNC;

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
            owner: None,
            inode: None,
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

/// /dev/ptmx (5:2); a devpts instance's own ptmx has the same number.
fn is_pty_master(rdev: u64) -> bool {
    (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)) == (5, 2)
}

/// The name in /dev of a checkpoint-safe character device, by its number.
pub(super) fn safe_device_by_number(rdev: u64) -> Option<&'static str> {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    Some(match (major, minor) {
        (1, 3) => "/dev/null",
        (1, 5) => "/dev/zero",
        (1, 7) => "/dev/full",
        (1, 8) => "/dev/random",
        (1, 9) => "/dev/urandom",
        (5, 0) => "/dev/tty",
        _ => return None,
    })
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
    check_directories(&dir, policies)?;
    let mut out: Vec<FdRecord> = Vec::new();
    let mut dups = Duplicates::default();
    for fd in dir.fds()? {
        // each link read once (for 10 000 descriptors, each readlink counts)
        let link = read_fd_link(&dir, fd)?;
        // cpr's dirty-page tracking, not the program's: never restored
        if link == UFFD_LINK && super::tracking::is_own_uffd(&dir, fd) {
            continue;
        }
        let record = dump_one(&dir, fd, link, &out, &mut dups, policies, writer)?;
        out.push(record);
    }
    Ok(out)
}

/// The /proc link of every userfaultfd.
const UFFD_LINK: &str = "anon_inode:[userfaultfd]";

/// The /proc link of descriptor `fd`, an error naming the process and descriptor.
fn read_fd_link(dir: &ProcDir, fd: i32) -> Result<String> {
    let pid = dir.pid();
    dir.link(&format!("fd/{fd}"))
        .map_err(|e| e.context(format!("process {pid} fd {fd}")))
}

/// One descriptor, after the `earlier` ones: classified, then the content the policies
/// ask for saved.
fn dump_one(
    dir: &ProcDir,
    fd: i32,
    link: String,
    earlier: &[FdRecord],
    dups: &mut Duplicates,
    policies: &ProcessPolicies,
    writer: &mut StatefileWriter,
) -> Result<FdRecord> {
    let mut record = classify_linked(dir, fd, link, earlier, dups, policies)?;
    if needs_saved_content(&record) {
        let pid = dir.pid();
        let who = format!("process {pid} fd {fd}");
        record.saved = Some(save_content(pid, fd, &who, &record.path, writer)?);
    }
    Ok(record)
}

/// Whether the checkpoint saves the content of the file behind `record` with the
/// descriptor (REPLACE, SUBSTITUTE).
pub fn needs_saved_content(record: &FdRecord) -> bool {
    // deleted files are saved once each, with every process read (deleted_files.rs)
    record.kind == FdKind::Regular
        && matches!(record.action, FileAction::Replace | FileAction::Substitute)
}

/// The open file descriptions of a process's descriptors so far, by target, offset and
/// flags, for `classify` to find a duplicate's original in O(log n) kcmp calls.
pub type Duplicates = crate::sys::kcmp::DescriptionIndex<(String, u64, i32)>;

/// What descriptor `fd` is, after the `earlier` ones: a duplicate of one of those, a pipe
/// end (pipes.rs), an event object (events.rs), or a file by path with its FILE policy;
/// nothing saved yet. Reads /proc only, so it also serves `cpr -c --dry-run` on a
/// running process: an object that is not checkpoint safe is refused here, for both.
pub fn classify(
    dir: &ProcDir,
    fd: i32,
    earlier: &[FdRecord],
    dups: &mut Duplicates,
    policies: &ProcessPolicies,
) -> Result<FdRecord> {
    classify_linked(dir, fd, read_fd_link(dir, fd)?, earlier, dups, policies)
}

/// `classify`, with the descriptor's /proc link already read.
fn classify_linked(
    dir: &ProcDir,
    fd: i32,
    link: String,
    earlier: &[FdRecord],
    dups: &mut Duplicates,
    policies: &ProcessPolicies,
) -> Result<FdRecord> {
    let pid = dir.pid();
    let who = format!("process {pid} fd {fd}");
    let info = dir.fdinfo(fd)?;
    // a negative offset (a few special files) keeps its bits: restore seeks to it as i64
    let (pos, flags) = (info.pos as u64, info.flags);
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let flags = flags & !libc::O_CLOEXEC;
    // a dup of an earlier descriptor shares its offset and flags
    let first = match dups.first_of((link.clone(), pos, flags), pid, fd) {
        // earlier is in descriptor order
        Ok(of) => of.and_then(|(_, of)| {
            (earlier.binary_search_by_key(&of, |r| r.fd).ok()).map(|i| &earlier[i])
        }),
        // without kcmp's order: every earlier one asked
        Err(_) => earlier
            .iter()
            .find(|r| crate::sys::same_open_file(pid, r.fd, pid, fd).unwrap_or(false)),
    };
    if let Some(first) = first {
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
            owner: None,
            inode: None,
        });
    }
    let owner = dump_owner(pid, fd, flags, &who)?;
    if link.starts_with("socket:") {
        let record = super::sockets::dump(pid, fd, &link, (flags, cloexec), policies)?;
        return Ok(FdRecord { owner, ..record });
    }
    let object = match super::pipes::dump(fd, &link, flags, cloexec) {
        Some(pipe) => Some(pipe),
        None => super::events::dump(pid, fd, &link, flags)?
            .map(|ev| FdRecord::object(fd, FdKind::Event(ev), &link, flags, cloexec)),
    };
    if let Some(line) = &info.unknown {
        return Err(not_safe(
            &who,
            &link,
            &format!("a descriptor whose fdinfo says '{line}', which cpr does not know,"),
        ));
    }
    if let Some(record) = object {
        return Ok(FdRecord { owner, ..record });
    }
    if !link.starts_with('/') {
        return Err(not_safe(&who, &link, "this kind of descriptor"));
    }
    if flags & libc::O_PATH != 0 {
        check_o_path(pid, fd, &who, &link)?;
        let record = FdRecord::object(fd, FdKind::Path, &link, flags, cloexec);
        return Ok(FdRecord { owner, ..record });
    }
    if let Some(record) = super::posix_mqueue::classify(pid, fd, &link, flags, cloexec)? {
        return Ok(FdRecord { owner, ..record });
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
        owner,
        inode: None,
    })
}

/// The owner, signal and lease of the description behind `fd`, if it has any (read through
/// a duplicate: they belong to the description).
fn dump_owner(pid: i32, fd: i32, flags: i32, who: &str) -> Result<Option<FdOwner>> {
    use crate::sys::fown;
    if flags & libc::O_PATH != 0 {
        // fcntl refuses these on an O_PATH descriptor, which has neither
        return Ok(None);
    }
    let ours = crate::sys::steal_fd(pid, fd).ctx(who)?;
    let (kind, id) = fown::get_owner(ours.as_raw_fd()).ctx(format!("{who}: F_GETOWN_EX"))?;
    let sig = fown::get_sig(ours.as_raw_fd()).ctx(format!("{who}: F_GETSIG"))?;
    let lease = fown::get_lease(ours.as_raw_fd()).ctx(format!("{who}: F_GETLEASE"))?;
    Ok(
        (id != 0 || sig != 0 || lease != libc::F_UNLCK).then_some(FdOwner {
            kind,
            id,
            sig,
            lease,
        }),
    )
}

/// The working and root directories restart opens by name (CDIR, RDIR REPLACE): each
/// name must still lead to its directory.
pub(crate) fn check_directories(dir: &ProcDir, policies: &ProcessPolicies) -> Result<()> {
    use crate::attrfile::DirAction;
    let pid = dir.pid();
    let who = format!("process {pid}");
    if policies.cdir == DirAction::Replace {
        let cwd = dir.link("cwd").map_err(|e| e.context(&who))?;
        check_directory_name(
            &who,
            "a working directory",
            &cwd,
            &format!("/proc/{pid}/cwd"),
        )?;
    }
    if policies.rdir == DirAction::Replace {
        let root = dir.link("root").map_err(|e| e.context(&who))?;
        check_directory_name(
            &who,
            "a root directory",
            &root,
            &format!("/proc/{pid}/root"),
        )?;
    }
    Ok(())
}

/// "Checkpoint error" unless `name` (the link the kernel gives for `at`) still names the
/// directory `at` is: one removed (or a /proc directory of a process gone) cannot be
/// opened again at restart.
fn check_directory_name(who: &str, what: &str, name: &str, at: &str) -> Result<()> {
    let meta = std::fs::metadata(at).ctx(who)?;
    let same = |m: std::fs::Metadata| m.dev() == meta.dev() && m.ino() == meta.ino();
    let named = !name.ends_with(" (deleted)") && std::fs::metadata(name).map(same).unwrap_or(false);
    if named {
        Ok(())
    } else {
        Err(not_safe(who, name, &format!("{what} that was removed")))
    }
}

/// "Checkpoint error": `what` behind `link` is not checkpoint safe.
fn not_safe(who: &str, link: &str, what: &str) -> Error {
    Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("{link}: {what} is not checkpoint safe"),
    )
}

/// An O_PATH descriptor is opened again by its name: the name must still lead to the
/// same inode (a symlink itself, with O_NOFOLLOW).
fn check_o_path(pid: i32, fd: i32, who: &str, link: &str) -> Result<()> {
    let ours = crate::sys::steal_fd(pid, fd).ctx(who)?;
    let st = nix::sys::stat::fstat(&ours).ctx(who)?;
    let named = !link.ends_with(" (deleted)")
        && std::fs::symlink_metadata(link)
            .map(|m| m.dev() == st.st_dev && m.ino() == st.st_ino)
            .unwrap_or(false);
    if named {
        Ok(())
    } else {
        Err(not_safe(
            who,
            link,
            "an O_PATH descriptor of a file that was removed",
        ))
    }
}

/// The kind of a descriptor opened by path (`link`), and the path restart reopens.
fn classify_path(pid: i32, fd: i32, who: &str, link: &str) -> Result<(FdKind, String)> {
    let meta = std::fs::metadata(format!("/proc/{pid}/fd/{fd}")).ctx(who)?;
    let ft = meta.file_type();
    let (kind, path) = if ft.is_char_device() || ft.is_block_device() {
        if link.ends_with(" (deleted)") && ft.is_char_device() {
            // a node removed while open: the device itself is what it reads and writes
            safe_device_by_number(meta.rdev())
                .ok_or_else(|| not_safe(who, link, "a device node removed while open"))?;
            let name = link.strip_suffix(" (deleted)").unwrap_or(link);
            let node = super::removed_devices::RemovedDevice::of(&meta);
            return Ok((FdKind::RemovedDevice(node), name.to_string()));
        }
        if ft.is_char_device() && is_pty_master(meta.rdev()) {
            let index = super::ptys::master_index(pid, fd, who)?;
            return Ok((FdKind::PtyMaster { index }, link.to_string()));
        }
        if !safe_device(link) {
            return Err(not_safe(who, link, "this device"));
        }
        (FdKind::Device, link.to_string())
    } else if ft.is_dir() {
        check_directory_name(who, "a directory", link, &format!("/proc/{pid}/fd/{fd}"))?;
        (FdKind::Directory, link.to_string())
    } else if ft.is_fifo() {
        (super::fifos::classify(who, link, &meta)?, link.to_string())
    } else if ft.is_file() {
        match link.strip_suffix(" (deleted)") {
            Some(p) if meta.nlink() == 0 => {
                super::deleted_files::refuse_unrestorable(pid, fd, who, p)?;
                (FdKind::Deleted, p.to_string())
            }
            Some(_) => {
                // its other names cannot be found from here, and a copy would not be
                // the file they name
                return Err(not_safe(
                    who,
                    link,
                    &format!(
                        "a file whose open name was removed while {} other link(s) remain",
                        meta.nlink()
                    ),
                ));
            }
            None => (FdKind::Regular, link.to_string()),
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

/// The flags to open a saved descriptor's file again with: no creating, truncating, or
/// O_TMPFILE (which the kernel keeps in the flags of a file made with it).
fn open_flags_for_reopen(flags: i32) -> i32 {
    flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC | libc::O_NOCTTY | libc::O_TMPFILE)
        | libc::O_NOCTTY
}

pub(super) fn open_path(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let acc = flags & libc::O_ACCMODE;
    std::fs::OpenOptions::new()
        .read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
        .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(path)
        .map(OwnedFd::from)
}

/// A path from a record, opened without following a link at its last component: the
/// path is the owner's to choose, a link there could be anyone's.
fn open_recorded(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    open_path(path, flags | libc::O_NOFOLLOW).map_err(link_refused)
}

/// ELOOP from O_NOFOLLOW, said plainly.
fn link_refused(e: std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => std::io::Error::other("a symbolic link, not followed"),
        _ => e,
    }
}

/// REPLACE: the file at `path` made to hold `content` again, in place, so that its mode
/// and owner stay (created, 0666 less the umask, if it is gone); never through a link,
/// and only a regular file.
fn replace_content(path: &str, mut content: std::fs::File) -> std::io::Result<()> {
    let flags = libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK;
    let dst = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .mode(0o666)
            .open(path)
            .map_err(link_refused)?,
        other => other.map_err(link_refused)?,
    };
    if !dst.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    dst.set_len(0)?;
    let mut sink = &dst;
    std::io::copy(&mut content, &mut sink)?;
    Ok(())
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

/// Reopens one descriptor as the FILE policy says (guide, "FILE Policy"). `shared`: the
/// descriptor of an entry of the table of shared objects (a deleted file's copy).
pub fn reopen(
    r: &FdRecord,
    sf: &Statefile,
    tty: Option<&str>,
    shared: &dyn Fn(u32) -> Option<i32>,
) -> Result<OwnedFd> {
    // formatted only for an error (thousands of descriptors are reopened)
    let who = FdWho(r);
    let parent = || {
        std::path::Path::new(&r.path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/tmp".into())
    };
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
        (FdKind::RemovedDevice(dev), _) => {
            super::removed_devices::reopen(&r.path, dev, open_flags_for_reopen(r.flags))
                .map_err(|e| e.context(&who))?
        }
        (FdKind::Directory, _) => {
            let fd = open_recorded(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            if r.pos != 0 {
                let _ = seek(&fd, r.pos, nix::unistd::Whence::SeekSet);
            }
            fd
        }
        (FdKind::Deleted, _) if r.inode.is_some() => {
            let id = r.inode.unwrap_or_default();
            let copy = shared(id).ok_or_else(|| {
                Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    format!("deleted file {id} missing"),
                )
            })?;
            let fd = open_path(
                &format!("/proc/self/fd/{copy}"),
                open_flags_for_reopen(r.flags),
            )
            .ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Deleted, _) | (FdKind::Regular, FileAction::Substitute) => {
            let saved = r.saved.as_deref().ok_or_else(|| {
                Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    "saved content missing",
                )
            })?;
            let fd = anonymous_copy(&parent(), sf.open_file(saved)?, r.flags).ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Regular, FileAction::Replace) => {
            let saved = r.saved.as_deref().ok_or_else(|| {
                Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    "saved content missing",
                )
            })?;
            replace_content(&r.path, sf.open_file(saved)?).ctx(format!("{who}: replacing"))?;
            let fd = open_recorded(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
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
            open_recorded(&r.path, flags).ctx(&who)?
        }
        (FdKind::Regular, FileAction::Append) => {
            let fd = open_recorded(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            seek(&fd, 0, nix::unistd::Whence::SeekEnd)?;
            fd
        }
        (FdKind::Regular, FileAction::Merge) => {
            let fd = open_recorded(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?;
            seek(&fd, r.pos, nix::unistd::Whence::SeekSet)?;
            fd
        }
        (FdKind::Fifo { .. }, _) => super::fifos::reopen(r).ctx(&who)?,
        (FdKind::Path, _) => open_path(&r.path, open_flags_for_reopen(r.flags)).ctx(&who)?,
        (
            FdKind::MQueue {
                name, removed, ino, ..
            },
            _,
        ) => super::posix_mqueue::reopen(name, *removed, *ino, r.flags)?,
        (FdKind::PtyMaster { .. } | FdKind::PtySlave { .. }, _) => {
            let id = r.inode.unwrap_or(u32::MAX);
            let made = shared(id).ok_or_else(|| {
                Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    format!("pty entry {id} missing"),
                )
            })?;
            if matches!(r.kind, FdKind::PtyMaster { .. }) {
                // a pty has one master description
                crate::sys::dup_above(made, 0, true).ctx(&who)?
            } else {
                open_path(
                    &format!("/proc/self/fd/{made}"),
                    open_flags_for_reopen(r.flags),
                )
                .ctx(&who)?
            }
        }
        (FdKind::Dup { .. }, _)
        | (FdKind::Pipe { .. }, _)
        | (FdKind::Event(_), _)
        | (FdKind::UnixSocket { .. }, _)
        | (FdKind::InetSocket { .. }, _) => {
            return Err(Error::with_detail(
                who.to_string(),
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
    // the image's numbers that one of cpr's descriptors holds (asked of each number, not
    // by listing /proc/self/fd: a record's open below puts nothing at another's number
    // that outlives it)
    let taken: std::collections::HashSet<i32> = records
        .iter()
        .map(|r| r.fd)
        .filter(|&fd| crate::sys::fown::get_fl(fd).is_ok())
        .collect();
    let top = records.iter().map(|r| r.fd).max().unwrap_or(0) + 1;
    let base = top.max(keep.iter().copied().max().unwrap_or(0) + 1);
    // each opened and put at its number at once, where none of cpr's descriptors is (one
    // extra descriptor at a time: a table near RLIMIT_NOFILE fits); the others wait above
    // the image's numbers until cpr's (the statefile's, still needed) are closed
    let mut staged: Vec<(i32, i32)> = Vec::new();
    for r in records.iter().filter(|r| match r.kind {
        FdKind::Dup { .. } => false,
        // made by events::restore, unless shared between processes
        FdKind::Event(_) => r.shared.is_some(),
        _ => true,
    }) {
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
                crate::sys::dup_above(inherited, 0, true).ctx(format_args!("fd {}", r.fd))?
            }
            None => reopen(r, sf, tty, shared)?,
        };
        if taken.contains(&r.fd) {
            let high = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(base))
                .ctx(format_args!("fd {}", r.fd))?;
            staged.push((r.fd, high));
        } else if fd.as_raw_fd() == r.fd {
            // opened at its own number: the image's from now on
            let _ = fd.into_raw_fd();
        } else {
            dup_to(fd.as_raw_fd(), r.fd)?;
        }
    }
    // cpr's descriptors go: every number but `keep`, the staged copies and the image's
    // descriptors in place (those still cpr's at an image number are staged)
    let placed = records
        .iter()
        .filter(|r| {
            !taken.contains(&r.fd)
                && match r.kind {
                    FdKind::Dup { .. } => false,
                    FdKind::Event(_) => r.shared.is_some(),
                    _ => true,
                }
        })
        .map(|r| r.fd);
    let spared: Vec<i32> = placed
        .chain(keep.iter().copied())
        .chain(staged.iter().map(|&(_, h)| h))
        .collect();
    close_all_but(&spared)?;
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
        crate::sys::set_cloexec(r.fd, r.cloexec).ctx(format_args!("fd {}", r.fd))?;
    }
    for r in records
        .iter()
        .filter(|r| !matches!(r.kind, FdKind::Dup { .. }))
    {
        restore_description(r)?;
    }
    Ok(())
}

/// Closes every descriptor of this process except `spared`: by close_range over the
/// gaps between them, or (before Linux 5.9) by listing /proc/self/fd.
fn close_all_but(spared: &[i32]) -> Result<()> {
    let ranges = gaps(spared.iter().copied());
    for &(first, last) in &ranges {
        match crate::sys::close_range(first, last) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOSYS) => {
                // (the number the listing itself uses is closed again when it is read)
                for fd in ProcDir::open(std::process::id() as i32)?.fds()? {
                    if !spared.contains(&fd) {
                        let _ = nix::unistd::close(fd);
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(Error::errno("closing cpr's descriptors", e)),
        }
    }
    Ok(())
}

/// The ranges of descriptor numbers (first, last, inclusive) that are not in `fds`.
pub fn gaps(fds: impl Iterator<Item = i32>) -> Vec<(u32, u32)> {
    let theirs: std::collections::BTreeSet<u32> =
        fds.filter_map(|fd| u32::try_from(fd).ok()).collect();
    let mut out = Vec::new();
    let mut next = 0u32;
    for fd in theirs {
        if fd > next {
            out.push((next, fd - 1));
        }
        next = fd + 1;
    }
    out.push((next, u32::MAX));
    out
}

/// The status flags, owner and signal of the description at `r.fd`, as the record says
/// (open(2) ignores O_ASYNC; pipe ends and event objects are made without them).
fn restore_description(r: &FdRecord) -> Result<()> {
    use crate::sys::fown;
    let who = FdWho(r);
    let now = fown::get_fl(r.fd).ctx(&who)?;
    let want = (now & !STATUS_FLAGS) | (r.flags & STATUS_FLAGS);
    if want != now {
        fown::set_fl(r.fd, want).ctx(format!("{who}: setting flags {want:o}"))?;
    }
    if let Some(o) = r.owner {
        // F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP; signals 0 (SIGIO) to SIGRTMAX
        if !(0..=2).contains(&o.kind) || !(0..=64).contains(&o.sig) || o.id < 0 {
            return Err(crate::statefile::reader::damaged_record(format!(
                "{who}: owner {} type {} signal {}",
                o.id, o.kind, o.sig
            )));
        }
        if o.id != 0 {
            fown::set_owner(r.fd, o.kind, o.id)
                .ctx(format!("{who}: owner {} (type {})", o.id, o.kind))?;
        }
        if o.sig != 0 {
            fown::set_sig(r.fd, o.sig).ctx(format!("{who}: signal {}", o.sig))?;
        }
        match o.lease {
            libc::F_UNLCK => {}
            libc::F_RDLCK | libc::F_WRLCK => {
                fown::set_lease(r.fd, o.lease).ctx(format!("{who}: lease {}", o.lease))?
            }
            bad => {
                return Err(crate::statefile::reader::damaged_record(format!(
                    "{who}: lease {bad}"
                )));
            }
        }
    }
    Ok(())
}

/// What an error about a descriptor being restored names: "fd N (path)".
struct FdWho<'a>(&'a FdRecord);

impl std::fmt::Display for FdWho<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fd {} ({})", self.0.fd, self.0.path)
    }
}

fn dup_to(from: i32, to: i32) -> Result<()> {
    crate::sys::dup_at(from, to).ctx(format_args!("fd {to}"))
}

/// Dispositions for `cpr -i`.
pub fn summaries(records: &[FdRecord]) -> Vec<crate::statefile::OpenFileSummary> {
    records
        .iter()
        .map(|r| crate::statefile::OpenFileSummary {
            fd: r.fd,
            path: r.path.clone(),
            action: r.action,
            disposition: match &r.kind {
                FdKind::UnixSocket { disposition, .. } => disposition.clone(),
                FdKind::InetSocket { disposition, .. } => disposition.clone(),
                _ => None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::gaps;

    #[test]
    fn gaps_cover_every_other_number() {
        assert_eq!(gaps([].into_iter()), vec![(0, u32::MAX)]);
        assert_eq!(
            gaps([0, 1, 2, 5, 7, 7].into_iter()),
            vec![(3, 4), (6, 6), (8, u32::MAX)]
        );
        assert_eq!(gaps([3].into_iter()), vec![(0, 2), (4, u32::MAX)]);
    }
}
