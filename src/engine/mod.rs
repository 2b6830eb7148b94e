//! Checkpoint and restart. One module per kind of kernel object, each holding its dump
//! and its restore; `ptrace/` is the backend.

pub mod checkpoint;
pub mod cooperate;
pub mod objects;
pub mod options;
pub mod privilege;
pub mod ptrace;
pub mod restart;
mod timer;

use std::path::PathBuf;

use crate::error::Result;
use options::{CheckpointOptions, RestartOptions};

pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    let _deferred = crate::sys::DeferTermination::new();
    checkpoint::checkpoint(options)
}

/// Returns 0, or with `-j` the exit status of the restarted job.
pub fn restart(options: &RestartOptions) -> Result<i32> {
    let deferred = crate::sys::DeferTermination::new();
    restart::restart(options, deferred)
}
