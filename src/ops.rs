//! The four operations of cpr(1), as the command and the library call them.

use std::path::PathBuf;

pub use crate::engine::checkpoint::preview::Preview;
pub use crate::engine::options::{CheckpointOptions, RestartOptions};
use crate::error::Result;

/// Checkpoints the processes `-p` names into one statefile.
pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    crate::engine::checkpoint(options)
}

/// What `checkpoint` with these options would take in, and whether it would succeed,
/// found without stopping the processes (`cpr -c --dry-run`).
pub fn preview(options: &CheckpointOptions) -> Result<Preview> {
    crate::engine::checkpoint::preview::preview(options)
}

/// Restarts every statefile named; all or none. Returns 0, or with `-j` the exit status
/// of the restarted job.
pub fn restart(options: &RestartOptions) -> Result<i32> {
    crate::engine::restart(options)
}

/// The real uid of the caller: whom the permission rules of IRIX are checked for.
pub fn caller_uid() -> u32 {
    crate::engine::options::caller_uid()
}
