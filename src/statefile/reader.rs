//! Opens a statefile and validates it: MANIFEST present and parsable, revision known,
//! every listed file present with its size and checksum.

use std::path::{Path, PathBuf};

use super::format::Manifest;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Manifest, revision, presence and sizes (cheap: for `-i`, `-D`).
    Sizes,
    /// Also every checksum (before restart).
    Full,
}

#[derive(Debug, Clone)]
pub struct Statefile {
    pub path: PathBuf,
    pub manifest: Manifest,
}

impl Statefile {
    pub fn open(path: &Path, verify: Verify) -> Result<Statefile> {
        todo!("issue 2 {} {verify:?}", path.display())
    }

    /// Absolute path of a file inside the statefile.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Reads a JSON record.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T> {
        todo!("issue 2 {rel}")
    }
}
