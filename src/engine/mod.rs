//! Checkpoint and restart. One module per kind of kernel object, each holding its dump
//! and its restore; `ptrace/` is the backend.

pub mod checkpoint;
pub mod cooperate;
pub mod objects;
pub mod options;
pub mod privilege;
pub mod progress;
pub mod ptrace;
pub mod restart;
mod timer;

use std::path::PathBuf;

use crate::error::Result;
use options::{CheckpointOptions, RestartOptions};
use progress::Progress;

pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    checkpoint_with_progress(options, &Progress::none())
}

/// `checkpoint`, telling `progress` how it goes.
pub fn checkpoint_with_progress(
    options: &CheckpointOptions,
    progress: &Progress,
) -> Result<PathBuf> {
    let _deferred = crate::sys::DeferTermination::new();
    let result = checkpoint::checkpoint(options, progress);
    progress.finish();
    result
}

/// Returns 0, or with `-j` the exit status of the restarted job.
pub fn restart(options: &RestartOptions) -> Result<i32> {
    restart_with_progress(options, &Progress::none())
}

/// `restart`, telling `progress` how it goes.
pub fn restart_with_progress(options: &RestartOptions, progress: &Progress) -> Result<i32> {
    let deferred = crate::sys::DeferTermination::new();
    let result = restart::restart(options, deferred, progress);
    // a restart that succeeded has finished its report already, before a -j job runs
    if result.is_err() {
        progress.finish();
    }
    result
}
