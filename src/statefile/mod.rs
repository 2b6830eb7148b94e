//! The statefile directory: format types, the atomic writer, the validating reader,
//! `cpr -i` rendering and `cpr -D` removal.
//!
//! ```text
//! STATEFILE/           mode 0700, owned by the checkpoint owner
//!   MANIFEST           JSON, written last: a directory without it is not a statefile
//!   proc/<pid>/...     per-process records and page data (the engine names them)
//!   shared/...         objects shared between processes
//!   files/...          saved copies of files (REPLACE, SUBSTITUTE, -u)
//! ```

pub mod format;
pub mod info;
pub mod reader;
pub mod writer;

pub use format::*;
pub use reader::Statefile;
pub use writer::{FileSink, StatefileWriter};

use crate::error::Result;
use std::path::Path;

/// `cpr -D`: removes a statefile completely. Only its owner or root; anything that is not
/// a statefile (no valid MANIFEST) is refused and left untouched.
pub fn remove(path: &Path, caller_uid: u32) -> Result<()> {
    todo!("issue 2: remove {} by {caller_uid}", path.display())
}
