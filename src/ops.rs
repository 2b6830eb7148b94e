//! The four operations of cpr(1), as the command and the library call them.

use std::path::PathBuf;

pub use crate::engine::checkpoint::preview::Preview;
pub use crate::engine::options::{CheckpointOptions, RestartOptions};
pub use crate::engine::progress::{Observer, Phase, Progress};
use crate::error::Result;

/// Checkpoints the processes `-p` names into one statefile.
pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    crate::engine::checkpoint(options)
}

/// `checkpoint`, telling `progress` (a progress bar, a panel) how it goes.
pub fn checkpoint_with_progress(
    options: &CheckpointOptions,
    progress: &Progress,
) -> Result<PathBuf> {
    crate::engine::checkpoint_with_progress(options, progress)
}

/// `restart`, telling `progress` how it goes.
pub fn restart_with_progress(options: &RestartOptions, progress: &Progress) -> Result<i32> {
    crate::engine::restart_with_progress(options, progress)
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
