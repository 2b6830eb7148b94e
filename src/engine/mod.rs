//! Checkpoint and restart. One module per kind of kernel object, each holding its dump
//! and its restore; `ptrace/` is the backend.

pub mod checkpoint;
pub mod components;
pub mod cooperate;
pub mod eventfds;
pub mod files;
pub mod locks;
pub mod memory;
pub mod process;
pub mod procfs;
pub mod pstree;
pub mod ptrace;
pub mod restart;
pub mod shared;
pub mod shm;
pub mod signals;
pub mod threads;

use std::path::PathBuf;

use crate::error::Result;
use crate::ops::{CheckpointOptions, RestartOptions};

pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    let _deferred = crate::sys::DeferTermination::new();
    checkpoint::checkpoint(options)
}

/// Returns 0, or with `-j` the exit status of the restarted job.
pub fn restart(options: &RestartOptions) -> Result<i32> {
    let deferred = crate::sys::DeferTermination::new();
    restart::restart(options, deferred)
}
