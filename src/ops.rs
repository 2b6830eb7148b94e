//! The four operations of cpr(1), as the command and the library call them.

use std::path::PathBuf;

use crate::attrfile::{AttrFile, WillAction};
use crate::error::Result;

/// `cpr -c STATEFILE -p IDLIST [-f] [-g|-k] [-u]`.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    pub statefile: PathBuf,
    /// The `-p` list as typed.
    pub idlist: String,
    /// `-f`: replace an existing statefile.
    pub force: bool,
    /// `-g` (Cont) or `-k` (Kill): overrides the WILL policy of the attribute file.
    pub will: Option<WillAction>,
    /// `-u`: save executables and libraries.
    pub upgrade: bool,
    /// The attribute file; `None` reads `$HOME/.cpr` or the built-in defaults.
    pub attributes: Option<AttrFile>,
    /// How long to wait for the SIGCKPT handlers of checkpoint-aware processes
    /// (`--timeout`); `None` is `engine::cooperate::DEFAULT_HANDLER_TIMEOUT`.
    pub handler_timeout: Option<std::time::Duration>,
    /// `CKPT_OPENFILE_DISTRIBUTE` (library only): save open files beside the originals,
    /// as `NAME.ckpt.pidPID`, instead of under the statefile.
    pub openfile_distribute: bool,
}

/// `cpr -r [-j] STATEFILE...`.
#[derive(Debug, Clone)]
pub struct RestartOptions {
    pub statefiles: Vec<PathBuf>,
    /// `-j`: restart as an interactive, job-controlled foreground job.
    pub interactive: bool,
}

/// Checkpoints the processes `-p` names into one statefile.
pub fn checkpoint(options: &CheckpointOptions) -> Result<PathBuf> {
    crate::engine::checkpoint(options)
}

/// Restarts every statefile named; all or none. Returns 0, or with `-j` the exit status
/// of the restarted job.
pub fn restart(options: &RestartOptions) -> Result<i32> {
    crate::engine::restart(options)
}

/// The real uid of the caller.
pub fn caller_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}
