//! The one /proc layer: a held `/proc/PID` directory descriptor (`ProcDir`) through which
//! every file of one process is read, and pure parsers (text → typed values, tested on
//! fixture text) in the submodules, apart from the I/O.
//!
//! A field that does not parse is an error naming the file and the field, never a default.
//! A process that is not there (or no longer) is `No such process`.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Kind, Result};

pub mod autogroup;
pub mod fdinfo;
pub mod limits;
pub mod locks;
pub mod maps;
pub mod meminfo;
pub mod mountinfo;
pub mod stat;
pub mod status;
pub mod sysvipc;
pub mod timers;
pub mod uffd;

pub use maps::MapsLine;
pub use stat::Stat;
pub use status::Status;

/// The error of a pure parser: `malformed FILE (WHAT)`; the reader puts the path in front.
pub(crate) fn malformed(file: &str, what: impl std::fmt::Display) -> Error {
    Error::with_detail(
        "",
        Kind::InvalidArgument,
        format!("malformed {file} ({what})"),
    )
}

/// The error for a process that is not (or no longer) there.
pub fn gone(pid: i32) -> Error {
    Error::new(format!("process {pid}"), Kind::NoSuchProcess)
}

/// Whether an errno says the process has gone.
pub fn is_gone(errno: Option<i32>) -> bool {
    matches!(errno, Some(libc::ENOENT) | Some(libc::ESRCH))
}

/// A held `/proc/PID` directory: every file read through it is the same process's, even
/// if the PID is reused meanwhile. A thread ID opens `/proc/TID`, the thread's view.
pub struct ProcDir {
    pid: i32,
    fd: OwnedFd,
}

impl ProcDir {
    pub fn open(pid: i32) -> Result<ProcDir> {
        if pid <= 0 {
            return Err(gone(pid));
        }
        let path = format!("/proc/{pid}");
        match nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(ProcDir { pid, fd }),
            Err(e) if is_gone(Some(e as i32)) => Err(gone(pid)),
            Err(e) => Err(Error::errno(path, e)),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// `/proc/PID/NAME`, as errors name it.
    pub fn path(&self, name: &str) -> String {
        format!("/proc/{}/{name}", self.pid)
    }

    /// The whole of one file as bytes (possibly empty); `No such process` when the
    /// process has gone.
    pub fn read_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        match self.open_file(name)?.read_to_end(&mut bytes) {
            Ok(_) => Ok(bytes),
            Err(e) if is_gone(e.raw_os_error()) => Err(gone(self.pid)),
            Err(e) => Err(Error::io(self.path(name), e)),
        }
    }

    /// The whole of one text file (possibly empty: the maps of a zombie).
    pub fn read_text(&self, name: &str) -> Result<String> {
        String::from_utf8(self.read_bytes(name)?).map_err(|_| {
            Error::with_detail(self.path(name), Kind::InvalidArgument, "not UTF-8 text")
        })
    }

    /// The whole of a file the kernel never leaves empty for a live or zombie process
    /// (stat, status): empty means the process has gone.
    pub fn read(&self, name: &str) -> Result<String> {
        let text = self.read_text(name)?;
        if text.is_empty() {
            return Err(gone(self.pid));
        }
        Ok(text)
    }

    /// Like [`read_text`](Self::read_text), but `None` when the process has no such file
    /// (a kernel built without it) rather than `No such process`.
    pub fn read_text_if_present(&self, name: &str) -> Result<Option<String>> {
        match self.read_text(name) {
            // openat says ENOENT both for a file the kernel lacks and for a process that
            // has gone: the process is still there if its stat file is
            Err(e) if e.kind == Kind::NoSuchProcess && self.read("stat").is_ok() => Ok(None),
            other => other.map(Some),
        }
    }

    /// One file opened for reading (`pagemap`, `mem`, ...), for callers that read it in
    /// pieces.
    pub fn open_file(&self, name: &str) -> Result<std::fs::File> {
        match nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(std::fs::File::from(fd)),
            Err(e) if is_gone(Some(e as i32)) => Err(gone(self.pid)),
            Err(e) => Err(Error::errno(self.path(name), e)),
        }
    }

    /// The target of symbolic link `name` (`exe`, `cwd`, `root`, `fd/N`), read through
    /// the held directory.
    pub fn link(&self, name: &str) -> Result<String> {
        match nix::fcntl::readlinkat(&self.fd, name) {
            Ok(target) => Ok(target.to_string_lossy().into_owned()),
            Err(e) if is_gone(Some(e as i32)) => Err(gone(self.pid)),
            Err(e) => Err(Error::errno(self.path(name), e)),
        }
    }

    /// Runs a pure parser on text read from file `name`, naming the file in its errors.
    pub fn parsed<T>(
        &self,
        name: &str,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T>,
    ) -> Result<T> {
        parse(text).map_err(|e| e.context(self.path(name)))
    }

    pub fn stat(&self) -> Result<Stat> {
        self.parsed("stat", &self.read("stat")?, stat::parse)
    }

    /// `/proc/PID/status` parsed into the fields every caller needs.
    pub fn status(&self) -> Result<Status> {
        self.parsed("status", &self.read("status")?, status::parse)
    }

    /// `/proc/PID/status` as text, for the `status::` field parsers.
    pub fn status_text(&self) -> Result<String> {
        self.read("status")
    }

    /// `known`, the status text read already (after a freeze, say), else the status
    /// read now.
    pub fn status_or<'a>(&self, known: Option<&'a str>) -> Result<std::borrow::Cow<'a, str>> {
        match known {
            Some(text) => Ok(std::borrow::Cow::Borrowed(text)),
            None => self.status_text().map(std::borrow::Cow::Owned),
        }
    }

    pub fn maps(&self) -> Result<Vec<MapsLine>> {
        self.parsed("maps", &self.read_text("maps")?, maps::parse)
    }

    /// The mappings (start, end) that overlap `lo..hi`, in address order: asked of the
    /// kernel one at a time (PROCMAP_QUERY) where it can, else from the whole of `maps`.
    pub fn mappings_within(&self, lo: u64, hi: u64) -> Result<Vec<(u64, u64)>> {
        let maps = self.open_file("maps")?;
        self.mappings_within_of(maps.as_fd(), lo, hi)
    }

    /// `mappings_within`, asked of `maps`: this directory's maps, held open by a caller
    /// with many questions.
    pub fn mappings_within_of(
        &self,
        maps: std::os::fd::BorrowedFd<'_>,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<(u64, u64)>> {
        match crate::sys::procmap::mappings_within(maps, lo, hi) {
            Ok(found) => Ok(found),
            // an older kernel (or any other refusal): the text answers the same
            Err(_) => Ok(self
                .maps()?
                .into_iter()
                .filter(|m| m.start < hi && lo < m.end)
                .map(|m| (m.start, m.end))
                .collect()),
        }
    }

    /// The maps lines and the VmFlags of each mapping, from one read of smaps.
    #[allow(clippy::type_complexity)]
    pub fn maps_and_flags(&self) -> Result<(Vec<MapsLine>, Vec<(u64, Vec<String>)>)> {
        self.parsed("smaps", &self.read_text("smaps")?, maps::parse_smaps)
    }

    /// The VmFlags of each mapping, by start address.
    pub fn smaps_flags(&self) -> Result<Vec<(u64, Vec<String>)>> {
        self.parsed("smaps", &self.read_text("smaps")?, maps::parse_smaps_flags)
    }

    /// (soft, hard) of each resource, in RLIMIT_* order.
    pub fn limits(&self) -> Result<Vec<(u64, u64)>> {
        self.parsed("limits", &self.read_text("limits")?, limits::parse)
    }

    /// The arguments (`/proc/PID/cmdline` split at NULs; none for a zombie).
    pub fn cmdline(&self) -> Result<Vec<String>> {
        Ok(split_cmdline(&self.read_bytes("cmdline")?))
    }

    /// The execution domain (`/proc/PID/personality`, readable by whoever may trace).
    pub fn personality(&self) -> Result<u64> {
        self.parsed("personality", &self.read("personality")?, parse_personality)
    }

    /// The name of thread `tid` of this process (`task/TID/comm`).
    pub fn thread_comm(&self, tid: i32) -> Result<String> {
        let name = format!("task/{tid}/comm");
        let bytes = self.read_bytes(&name)?;
        if bytes.is_empty() {
            return Err(gone(tid));
        }
        parse_comm(&bytes).map_err(|e| e.context(self.path(&name)))
    }

    /// Thread IDs, the main thread first, the others ascending.
    pub fn tids(&self) -> Result<Vec<i32>> {
        let mut tids = self.numbers("task", "a thread ID")?;
        if tids.is_empty() {
            return Err(gone(self.pid));
        }
        tids.sort_by_key(|&tid: &i32| (tid != self.pid, tid));
        Ok(tids)
    }

    /// The open descriptors (`/proc/PID/fd`), ascending.
    pub fn fds(&self) -> Result<Vec<i32>> {
        let mut fds = self.numbers("fd", "a descriptor")?;
        fds.sort_unstable();
        Ok(fds)
    }

    /// `/proc/PID/fdinfo/FD`: position, flags, mount and inode.
    pub fn fdinfo(&self, fd: i32) -> Result<fdinfo::FdInfo> {
        self.fdinfo_as(fd, fdinfo::parse)
    }

    /// `/proc/PID/fdinfo/FD` read by one of the parsers of [`fdinfo`] or [`locks`]
    /// (`fdinfo::eventfd`, `locks::parse_fdinfo_locks`, ...).
    pub fn fdinfo_as<T>(&self, fd: i32, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        let name = format!("fdinfo/{fd}");
        self.parsed(&name, &self.read(&name)?, parse)
    }

    /// The POSIX timers; none when the kernel has no `timers` file (built without
    /// CONFIG_CHECKPOINT_RESTORE).
    pub fn timers(&self) -> Result<Vec<timers::Timer>> {
        match self.read_text_if_present("timers")? {
            Some(text) => self.parsed("timers", &text, timers::parse),
            None => Ok(Vec::new()),
        }
    }

    /// The numeric entries of directory `name` (`task`, `fd`), in directory order; an
    /// entry that is not a number is an error (`what` says what it should have been).
    fn numbers(&self, name: &str, what: &str) -> Result<Vec<i32>> {
        let path = self.path(name);
        let mut dir = match nix::dir::Dir::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(e) if is_gone(Some(e as i32)) => return Err(gone(self.pid)),
            Err(e) => return Err(Error::errno(path, e)),
        };
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_gone(Some(e as i32)) => return Err(gone(self.pid)),
                Err(e) => return Err(Error::errno(path, e)),
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let n = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
                .ok_or_else(|| {
                    Error::with_detail(
                        path.clone(),
                        Kind::InvalidArgument,
                        format!("'{}' is not {what}", String::from_utf8_lossy(name)),
                    )
                })?;
            out.push(n);
        }
        Ok(out)
    }
}

/// `/proc/PID/personality`: the persona as 8 hexadecimal digits and a newline.
pub fn parse_personality(text: &str) -> Result<u64> {
    let value = text.strip_suffix('\n').unwrap_or(text);
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(
            "personality",
            format!("'{value}' is not a hexadecimal persona"),
        ));
    }
    u64::from_str_radix(value, 16)
        .map_err(|_| malformed("personality", format!("'{value}' is out of range")))
}

/// `/proc/PID/task/TID/comm`: the name and a newline. Trailing blanks are dropped, as cpr
/// always has; bytes that are not UTF-8 become U+FFFD (the record holds text).
pub fn parse_comm(bytes: &[u8]) -> Result<String> {
    let name = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| malformed("comm", "no newline at the end"))?;
    Ok(String::from_utf8_lossy(name).trim_end().to_string())
}

/// `/proc/PID/cmdline` split at NULs (empty arguments left out, as before).
pub fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|c| *c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_splits_at_nuls() {
        assert_eq!(split_cmdline(b"sleep\x0030\x00"), ["sleep", "30"]);
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn personality_and_comm() {
        assert_eq!(parse_personality("00000000\n").unwrap(), 0);
        assert_eq!(parse_personality("00400000\n").unwrap(), 0x40_0000);
        for bad in [
            "",
            "\n",
            "0x1\n",
            "zz\n",
            "-1\n",
            "0 0\n",
            "10000000000000000\n",
        ] {
            let msg = parse_personality(bad).expect_err(bad).to_string();
            assert!(msg.contains("malformed personality"), "{msg}");
        }
        assert_eq!(parse_comm(b"worker 1\n").unwrap(), "worker 1");
        assert_eq!(parse_comm(b"pad  \n").unwrap(), "pad");
        assert_eq!(parse_comm(b"\xff\n").unwrap(), "\u{fffd}");
        assert_eq!(parse_comm(b"\n").unwrap(), "");
        let msg = parse_comm(b"cut").unwrap_err().to_string();
        assert!(msg.contains("malformed comm (no newline"), "{msg}");
    }

    #[test]
    fn this_process_reads_through_its_directory() {
        let me = std::process::id() as i32;
        let dir = ProcDir::open(me).unwrap();
        assert_eq!(dir.stat().unwrap().pid, me);
        assert_eq!(dir.status().unwrap().tgid, me);
        assert_eq!(dir.tids().unwrap()[0], me);
        assert!(dir.maps().unwrap().iter().any(|m| m.path == "[stack]"));
        assert_eq!(dir.limits().unwrap().len(), 16);
        assert!(!dir.cmdline().unwrap().is_empty());
        dir.personality().unwrap();
        assert!(!dir.thread_comm(me).unwrap().is_empty());
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let fds = dir.fds().unwrap();
        assert!(
            fds.windows(2).all(|w| w[0] < w[1]) && fds.contains(&fd),
            "{fds:?}"
        );
        let info = dir.fdinfo(fd).unwrap();
        assert_eq!(
            (info.pos, info.flags & libc::O_ACCMODE),
            (0, libc::O_RDONLY)
        );
        assert!(info.mnt_id.is_some());
        assert!(dir.read_text_if_present("no-such-file").unwrap().is_none());
        assert!(dir.read_text_if_present("stat").unwrap().is_some());
        assert!(dir.open_file("pagemap").is_ok());
        assert!(dir.timers().unwrap().is_empty());
        assert!(
            dir.fdinfo_as(fd, locks::parse_fdinfo_locks)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_free_pid_is_no_such_process() {
        for pid in [0, -1, (crate::target::PID_LIMIT as i32) + 1] {
            let err = ProcDir::open(pid).err().unwrap();
            assert_eq!(err.kind, Kind::NoSuchProcess, "{pid}");
        }
    }
}
