//! Checkpoint and restart. One module per kind of kernel object, each holding its dump
//! and its restore; `ptrace/` is the backend.

pub mod cooperate;
pub mod memory;
pub mod process;
pub mod procfs;
pub mod ptrace;
pub mod signals;
pub mod threads;

use std::path::PathBuf;

use crate::error::{Error, Kind, Result};
use crate::ops::{CheckpointOptions, RestartOptions};

pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    Err(Error::with_detail(
        options.statefile.display().to_string(),
        Kind::NotImplemented,
        "the checkpoint engine is not built yet",
    ))
}

pub fn restart(options: &RestartOptions) -> Result<()> {
    Err(Error::with_detail(
        options
            .statefiles
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        Kind::NotImplemented,
        "the restart engine is not built yet",
    ))
}
