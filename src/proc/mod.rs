//! The one /proc layer: a held `/proc/PID` directory descriptor (`ProcDir`) through which
//! every file of one process is read, and pure parsers (text → typed values, tested on
//! fixture text) in the submodules, apart from the I/O.
//!
//! A field that does not parse is an error naming the file and the field, never a default.
//! A process that is not there (or no longer) is `No such process`.

use std::io::Read;
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Kind, Result};

pub mod limits;
pub mod maps;
pub mod stat;
pub mod status;

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
        let fd = match nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) if is_gone(Some(e as i32)) => return Err(gone(self.pid)),
            Err(e) => return Err(Error::errno(self.path(name), e)),
        };
        let mut bytes = Vec::new();
        match std::fs::File::from(fd).read_to_end(&mut bytes) {
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

    /// Runs a pure parser on one file, naming the file in its errors.
    fn parsed<T>(
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

    pub fn maps(&self) -> Result<Vec<MapsLine>> {
        self.parsed("maps", &self.read_text("maps")?, maps::parse)
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

    /// Thread IDs, the main thread first, the others ascending.
    pub fn tids(&self) -> Result<Vec<i32>> {
        let path = self.path("task");
        let mut dir = match nix::dir::Dir::openat(
            &self.fd,
            "task",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(e) if is_gone(Some(e as i32)) => return Err(gone(self.pid)),
            Err(e) => return Err(Error::errno(path, e)),
        };
        let mut tids = Vec::new();
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
            let tid = std::str::from_utf8(name)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
                .ok_or_else(|| {
                    Error::with_detail(
                        path.clone(),
                        Kind::InvalidArgument,
                        format!("'{}' is not a thread ID", String::from_utf8_lossy(name)),
                    )
                })?;
            tids.push(tid);
        }
        if tids.is_empty() {
            return Err(gone(self.pid));
        }
        tids.sort_by_key(|&tid: &i32| (tid != self.pid, tid));
        Ok(tids)
    }
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
    fn this_process_reads_through_its_directory() {
        let me = std::process::id() as i32;
        let dir = ProcDir::open(me).unwrap();
        assert_eq!(dir.stat().unwrap().pid, me);
        assert_eq!(dir.status().unwrap().tgid, me);
        assert_eq!(dir.tids().unwrap()[0], me);
        assert!(dir.maps().unwrap().iter().any(|m| m.path == "[stack]"));
        assert_eq!(dir.limits().unwrap().len(), 16);
        assert!(!dir.cmdline().unwrap().is_empty());
    }

    #[test]
    fn a_free_pid_is_no_such_process() {
        for pid in [0, -1, (crate::target::PID_LIMIT as i32) + 1] {
            let err = ProcDir::open(pid).err().unwrap();
            assert_eq!(err.kind, Kind::NoSuchProcess, "{pid}");
        }
    }
}
