//! One error type for the whole of cpr. Its message starts with what failed (statefile,
//! process, file or line), then the IRIX message text (tables 2-2 and 2-3 of the guide),
//! then an optional detail: `ckptSep7: File exists` or
//! `process 123 fd 4: Checkpoint error: socket:[1234] is not checkpoint safe`.

use std::fmt;

/// The IRIX message a failure maps to. Most come from an errno; a few are cpr's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    PermissionDenied,
    ResourceBusy,
    CheckpointError,
    FileExists,
    InvalidArgument,
    TooManySymlinks,
    NoSuchFile,
    NotADirectory,
    NameTooLong,
    NoSpace,
    NotPermitted,
    ReadOnlyFs,
    NoSuchProcess,
    TryAgain,
    Deadlock,
    NotEnoughSpace,
    /// A feature cpr does not have (yet); never used to pretend success.
    NotImplemented,
    /// Any other errno, shown with the system's own text.
    Os(i32),
}

impl Kind {
    /// The IRIX text for this kind of failure.
    pub fn message(self) -> String {
        match self {
            Kind::PermissionDenied => "Permission denied".into(),
            Kind::ResourceBusy => "Resource busy".into(),
            Kind::CheckpointError => "Checkpoint error".into(),
            Kind::FileExists => "File exists".into(),
            Kind::InvalidArgument => "Invalid argument".into(),
            Kind::TooManySymlinks => "Too many symbolic links".into(),
            Kind::NoSuchFile => "No such file or directory".into(),
            Kind::NotADirectory => "Not a directory".into(),
            Kind::NameTooLong => "Filename too long".into(),
            Kind::NoSpace => "No space left on device".into(),
            Kind::NotPermitted => "Operation not permitted".into(),
            Kind::ReadOnlyFs => "Read-only file system".into(),
            Kind::NoSuchProcess => "No such process".into(),
            Kind::TryAgain => "Resource temporarily unavailable".into(),
            Kind::Deadlock => "Resource deadlock avoided".into(),
            Kind::NotEnoughSpace => "Not enough space".into(),
            Kind::NotImplemented => "Not implemented".into(),
            Kind::Os(errno) => nix::errno::Errno::from_raw(errno).desc().to_string(),
        }
    }

    /// Every kind with a message of its own (all but `Os`).
    const ALL: [Kind; 17] = [
        Kind::PermissionDenied,
        Kind::ResourceBusy,
        Kind::CheckpointError,
        Kind::FileExists,
        Kind::InvalidArgument,
        Kind::TooManySymlinks,
        Kind::NoSuchFile,
        Kind::NotADirectory,
        Kind::NameTooLong,
        Kind::NoSpace,
        Kind::NotPermitted,
        Kind::ReadOnlyFs,
        Kind::NoSuchProcess,
        Kind::TryAgain,
        Kind::Deadlock,
        Kind::NotEnoughSpace,
        Kind::NotImplemented,
    ];

    /// The kind whose message is `text` (errors sent as text between processes).
    pub fn from_message(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.message() == text)
    }

    /// Maps an errno to the IRIX message of tables 2-2 and 2-3.
    pub fn from_errno(errno: i32) -> Kind {
        match errno {
            libc::EACCES => Kind::PermissionDenied,
            libc::EBUSY => Kind::ResourceBusy,
            libc::EEXIST => Kind::FileExists,
            libc::EINVAL => Kind::InvalidArgument,
            libc::ELOOP => Kind::TooManySymlinks,
            libc::ENOENT => Kind::NoSuchFile,
            libc::ENOTDIR => Kind::NotADirectory,
            libc::ENAMETOOLONG => Kind::NameTooLong,
            libc::ENOSPC | libc::EDQUOT => Kind::NoSpace,
            libc::EPERM => Kind::NotPermitted,
            libc::EROFS => Kind::ReadOnlyFs,
            libc::ESRCH => Kind::NoSuchProcess,
            libc::EAGAIN => Kind::TryAgain,
            libc::EDEADLK => Kind::Deadlock,
            libc::ENOMEM => Kind::NotEnoughSpace,
            other => Kind::Os(other),
        }
    }
}

/// A failure: what it is about, the IRIX kind, and an optional detail.
#[derive(Debug)]
pub struct Error {
    pub subject: String,
    pub kind: Kind,
    pub detail: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(subject: impl Into<String>, kind: Kind) -> Error {
        Error {
            subject: subject.into(),
            kind,
            detail: None,
        }
    }

    pub fn with_detail(subject: impl Into<String>, kind: Kind, detail: impl Into<String>) -> Error {
        Error {
            subject: subject.into(),
            kind,
            detail: Some(detail.into()),
        }
    }

    /// From an errno, about `subject`.
    pub fn errno(subject: impl Into<String>, errno: nix::errno::Errno) -> Error {
        Error::new(subject, Kind::from_errno(errno as i32))
    }

    /// From an I/O error, about `subject`.
    pub fn io(subject: impl Into<String>, err: std::io::Error) -> Error {
        match err.raw_os_error() {
            Some(errno) => Error::new(subject, Kind::from_errno(errno)),
            None => Error::with_detail(subject, Kind::InvalidArgument, err.to_string()),
        }
    }

    /// Adds or extends the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Error {
        let d = detail.into();
        self.detail = Some(match self.detail.take() {
            Some(old) => format!("{d}: {old}"),
            None => d,
        });
        self
    }

    /// Puts a wider subject in front: `statefile x: process 12: ...`. A subject that
    /// already starts with `outer` keeps it once (`process 12: process 12: ...` reads as
    /// noise, and errors pass through several layers that each name what they work on).
    pub fn context(mut self, outer: impl fmt::Display) -> Error {
        let outer = outer.to_string();
        if outer.is_empty() || self.names(&outer) {
            return self;
        }
        self.subject = if self.subject.is_empty() {
            outer
        } else {
            format!("{outer}: {}", self.subject)
        };
        self
    }

    /// Whether the subject already starts with `outer` (whole `: `-separated parts).
    fn names(&self, outer: &str) -> bool {
        match self.subject.strip_prefix(outer) {
            Some(rest) => rest.is_empty() || rest.starts_with(": "),
            None => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.subject.is_empty() {
            write!(f, "{}: ", self.subject)?;
        }
        write!(f, "{}", self.kind.message())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Attaches a subject to fallible system calls: `file.sync_all().ctx(path)?`.
pub trait Context<T> {
    fn ctx(self, subject: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, subject: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::io(subject.to_string(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx(self, subject: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::errno(subject.to_string(), e))
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx(self, subject: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_subject_then_irix_text() {
        let e = Error::with_detail("ckptSep7", Kind::FileExists, "use -f to overwrite");
        assert_eq!(e.to_string(), "ckptSep7: File exists: use -f to overwrite");
        assert_eq!(
            Error::errno("pid 12", nix::errno::Errno::ESRCH).to_string(),
            "pid 12: No such process"
        );
        assert_eq!(
            Kind::from_errno(libc::ENOSPC).message(),
            "No space left on device"
        );
        for k in Kind::ALL {
            assert_eq!(Kind::from_message(&k.message()), Some(k));
        }
    }

    #[test]
    fn context_names_each_subject_once() {
        let e = Error::errno("process 12", nix::errno::Errno::EACCES)
            .context("process 12")
            .context("sf")
            .context("sf");
        assert_eq!(e.to_string(), "sf: process 12: Permission denied");
        let e = Error::new("process 12: fd 3", Kind::NoSuchFile).context("process 1");
        assert_eq!(
            e.to_string(),
            "process 1: process 12: fd 3: No such file or directory"
        );
        // a longer name that merely starts the same is another subject
        let e = Error::new("sf2", Kind::NoSuchFile).context("sf");
        assert_eq!(e.to_string(), "sf: sf2: No such file or directory");
    }
}
