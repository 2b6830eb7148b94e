//! What a restart child tells cpr over its status pipe: one `ChildMessage` per line, as
//! a JSON object. First `Created` with its PID (so that a failure can kill exactly what
//! was made), then, for a process, `Ready` once it has restored what it can natively;
//! or `Failed` at any point. A line that does not decode, or lacks a field, is an error
//! naming the process, never a default.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::engine::ptrace::RemoteAddr;
use crate::error::{Context, Error, Kind, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "message", rename_all = "snake_case")]
pub enum ChildMessage {
    /// Its PID in this world, right after fork.
    Created {
        pid: i32,
    },
    /// Restored natively, stopped, waiting for the tracer.
    Ready(ChildReady),
    Failed(Failure),
}

/// What a restore child tells the tracer when it is ready: where its scratch page is
/// and which of its descriptors hold what the image maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildReady {
    pub scratch: RemoteAddr,
    pub pages_fd: i32,
    /// (path, descriptor) of every file the image maps, in `memory::mapped_files` order.
    pub file_fds: Vec<(String, i32)>,
    /// (inode, descriptor) of every shared memory object the image maps.
    pub mem_fds: Vec<(u64, i32)>,
    /// The page data of each statefile before an incremental image that it takes pages
    /// from, in `Image::inherited` order.
    #[serde(default)]
    pub chain_fds: Vec<i32>,
    /// (image start, image end, where now) of each mapping made before forking
    /// (cow_pages.rs).
    #[serde(default)]
    pub premapped: Vec<(u64, u64, u64)>,
}

/// An error, as it crosses the pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    subject: String,
    kind: WireKind,
    /// Present even when empty (`null`): a missing field is a malformed message.
    #[serde(deserialize_with = "Option::deserialize")]
    detail: Option<String>,
}

/// An error kind: its IRIX message, or the errno of one without an IRIX message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    Irix(String),
    Errno(i32),
}

impl Failure {
    pub fn new(e: &Error) -> Failure {
        Failure {
            subject: e.subject.clone(),
            kind: match e.kind {
                Kind::Os(errno) => WireKind::Errno(errno),
                k => WireKind::Irix(k.message()),
            },
            detail: e.detail.clone(),
        }
    }

    /// The error it carries, about `who`.
    fn into_error(self, who: &str) -> Error {
        let kind = match &self.kind {
            WireKind::Errno(errno) => Kind::Os(*errno),
            WireKind::Irix(text) => match Kind::from_message(text) {
                Some(k) => k,
                None => return malformed(who, format!("unknown error kind {text:?}")),
            },
        };
        Error {
            subject: self.subject,
            kind,
            detail: self.detail,
        }
        .context(who)
    }
}

/// Writes one message as a line. Errors are the caller's to ignore: a child that
/// cannot report ends, and cpr sees the end of its pipe.
pub fn send(out: &mut impl Write, message: &ChildMessage) -> std::io::Result<()> {
    out.write_all(&encode(message)?)
}

/// One message as its line on the pipe.
pub fn encode(message: &ChildMessage) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// Reads one message from the child `who`; `None` at the end of its pipe.
fn receive(input: &mut impl BufRead, who: &str) -> Result<Option<ChildMessage>> {
    let mut line = String::new();
    if input.read_line(&mut line).ctx(who)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(line.trim_end())
        .map(Some)
        .map_err(|e| malformed(who, e))
}

/// The first message of `who`: its PID.
pub fn expect_created(input: &mut impl BufRead, who: &str) -> Result<i32> {
    match receive(input, who)? {
        Some(ChildMessage::Created { pid }) => Ok(pid),
        Some(ChildMessage::Failed(f)) => Err(f.into_error(who)),
        None => Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            "was not created",
        )),
        Some(other) => Err(malformed(who, format!("{other:?} before its PID"))),
    }
}

/// The second message of the process `who`: ready, with a descriptor for each mapped
/// file (`mapped`, in order) and each shared memory object (`mems`, in order).
pub fn expect_ready(
    input: &mut impl BufRead,
    who: &str,
    mapped: &[String],
    mems: &[u64],
) -> Result<ChildReady> {
    match receive(input, who)? {
        Some(ChildMessage::Ready(r)) => r.check(mapped, mems).map(|()| r).ctx(who),
        Some(ChildMessage::Failed(f)) => Err(f.into_error(who)),
        None => Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            "the restart child ended before it was ready",
        )),
        Some(other) => Err(malformed(
            who,
            format!("{other:?} where its report was due"),
        )),
    }
}

impl ChildReady {
    /// Every descriptor the tracer needs is there, and only those.
    fn check(&self, mapped: &[String], mems: &[u64]) -> Result<()> {
        let bad = |what: String| malformed("", what);
        if self.scratch.is_null() {
            return Err(bad("no scratch page".into()));
        }
        let fds = std::iter::once(self.pages_fd)
            .chain(self.chain_fds.iter().copied())
            .chain(self.file_fds.iter().map(|(_, fd)| *fd))
            .chain(self.mem_fds.iter().map(|(_, fd)| *fd));
        if let Some(fd) = fds.into_iter().find(|fd| *fd < 0) {
            return Err(bad(format!("descriptor {fd}")));
        }
        let paths: Vec<&String> = self.file_fds.iter().map(|(p, _)| p).collect();
        if paths.iter().copied().ne(mapped.iter()) {
            return Err(bad(format!(
                "descriptors for mapped files {paths:?}, expected {mapped:?}"
            )));
        }
        let inos: Vec<u64> = self.mem_fds.iter().map(|(i, _)| *i).collect();
        if inos != mems {
            return Err(bad(format!(
                "descriptors for shared memory {inos:?}, expected {mems:?}"
            )));
        }
        Ok(())
    }
}

fn malformed(who: &str, what: impl std::fmt::Display) -> Error {
    Error::with_detail(
        who,
        Kind::CheckpointError,
        format!("malformed status message: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> ChildReady {
        ChildReady {
            scratch: 0x7000.into(),
            pages_fd: 9,
            file_fds: vec![("/bin/sleep".into(), 10)],
            mem_fds: vec![(77, 11)],
            chain_fds: vec![],
            premapped: vec![],
        }
    }

    fn lines(messages: &[&str]) -> std::io::Cursor<Vec<u8>> {
        std::io::Cursor::new(messages.concat().into_bytes())
    }

    #[test]
    fn messages_round_trip() {
        let mut buf = Vec::new();
        send(&mut buf, &ChildMessage::Created { pid: 42 }).unwrap();
        send(&mut buf, &ChildMessage::Ready(ready())).unwrap();
        let mut r = std::io::Cursor::new(buf);
        assert_eq!(expect_created(&mut r, "process 1").unwrap(), 42);
        let got = expect_ready(&mut r, "process 1", &["/bin/sleep".into()], &[77]).unwrap();
        assert_eq!(got, ready());
    }

    #[test]
    fn a_failure_keeps_its_kind_subject_and_detail() {
        for e in [
            Error::with_detail("fd 3", Kind::NoSuchFile, "/tmp/x"),
            Error::new("", Kind::Os(libc::EBADF)),
        ] {
            let mut buf = Vec::new();
            send(&mut buf, &ChildMessage::Failed(Failure::new(&e))).unwrap();
            let got = expect_created(&mut std::io::Cursor::new(buf), "process 5").unwrap_err();
            assert_eq!(got.to_string(), e.context("process 5").to_string());
        }
    }

    #[test]
    fn missing_or_malformed_fields_are_errors_naming_the_process() {
        let cases = [
            // a missing descriptor list (once read as fd 0)
            "{\"message\":\"ready\",\"scratch\":4096,\"pages_fd\":3,\"file_fds\":[[\"/bin/sleep\",4]]}\n",
            // a descriptor missing from the list
            "{\"message\":\"ready\",\"scratch\":4096,\"pages_fd\":3,\"file_fds\":[],\"mem_fds\":[[77,5]]}\n",
            "{\"message\":\"ready\",\"scratch\":4096,\"pages_fd\":-1,\"file_fds\":[[\"/bin/sleep\",4]],\"mem_fds\":[[77,5]]}\n",
            "{\"message\":\"ready\",\"scratch\":0,\"pages_fd\":3,\"file_fds\":[[\"/bin/sleep\",4]],\"mem_fds\":[[77,5]]}\n",
            "{\"message\":\"ready\",\"scratch\":\"x\",\"pages_fd\":3,\"file_fds\":[[\"/bin/sleep\",4]],\"mem_fds\":[[77,5]]}\n",
            "{\"message\":\"failed\",\"subject\":\"\",\"kind\":{\"irix\":\"No such file or directory\"}}\n",
            "{\"message\":\"failed\",\"subject\":\"\",\"kind\":{\"irix\":\"Bogus\"},\"detail\":null}\n",
            "{\"message\":\"created\",\"pid\":12}\n",
            "OK 4096 3 4 5\n",
            "{\"message\":\"ready\"",
        ];
        for c in cases {
            let e = expect_ready(
                &mut lines(&[c]),
                "process 12",
                &["/bin/sleep".into()],
                &[77],
            )
            .unwrap_err();
            assert!(e.subject.starts_with("process 12"), "{c}: {e}");
            assert_eq!(e.kind, Kind::CheckpointError, "{c}: {e}");
        }
        let e = expect_created(&mut lines(&["PID 12\n"]), "process 12").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("process 12: Checkpoint error: malformed")
        );
        let e = expect_created(&mut lines(&[]), "process 12").unwrap_err();
        assert_eq!(
            e.to_string(),
            "process 12: Checkpoint error: was not created"
        );
    }
}
