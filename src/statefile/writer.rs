//! Builds a statefile in a hidden sibling directory, fsyncs every file, then renames it
//! into place. Dropped before `commit`, it removes what it built.

use std::path::{Path, PathBuf};

use super::format::{Manifest, Owner};
use crate::error::Result;

pub struct StatefileWriter {
    /// Where the statefile will be.
    pub target: PathBuf,
    /// The hidden directory being built.
    pub staging: PathBuf,
}

/// One file being written: hashes as it goes. Hand it back with `finish_file`.
pub struct FileSink {
    pub rel: String,
    // file, hasher, size: the implementation's own
}

impl std::io::Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        todo!("issue 2 {}", buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        todo!("issue 2")
    }
}

impl StatefileWriter {
    /// Starts a statefile at `target`. Without `force`, an existing `target` is
    /// "File exists". The staging directory has mode 0700 and belongs to `owner`.
    pub fn create(target: &Path, force: bool, owner: Owner) -> Result<StatefileWriter> {
        todo!("issue 2 {} {force} {owner:?}", target.display())
    }

    /// Writes a whole file (relative path, parents created).
    pub fn write_file(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        todo!("issue 2 {rel} {}", data.len())
    }

    /// Writes a value as pretty JSON.
    pub fn write_json<T: serde::Serialize>(&mut self, rel: &str, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value).expect("statefile records serialize");
        self.write_file(rel, &text)
    }

    /// Opens a file to stream into (page data).
    pub fn create_file(&mut self, rel: &str) -> Result<FileSink> {
        todo!("issue 2 {rel}")
    }

    /// Flushes, fsyncs and records a streamed file.
    pub fn finish_file(&mut self, sink: FileSink) -> Result<()> {
        todo!("issue 2 {}", sink.rel)
    }

    /// Records the files, writes MANIFEST, fsyncs, and renames into place (with `force`,
    /// the old statefile is moved aside first and removed last). Returns the final path.
    pub fn commit(self, manifest: Manifest) -> Result<PathBuf> {
        todo!("issue 2 {}", manifest.revision)
    }
}
