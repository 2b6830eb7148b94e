//! What the engine is asked to do: the options of `cpr -c` and `cpr -r`. They live here,
//! not in `ops`, so that the engine depends on nothing above it (`ops` re-exports them).

use std::path::PathBuf;

use crate::attrfile::{AttrFile, WillAction};

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
    /// `--parent OLD`: an incremental checkpoint, saving only the pages written since
    /// statefile OLD (taken with `-g` of the same processes).
    pub parent: Option<PathBuf>,
    /// `--compress`: page data compressed (LZ4), for memory that compresses.
    pub compress: bool,
}

/// `cpr -r [-j] [--any-pid] [--no-cwd] [--no-root] [--lazy] STATEFILE...`.
#[derive(Debug, Clone, Default)]
pub struct RestartOptions {
    pub statefiles: Vec<PathBuf>,
    /// `-j`: restart as an interactive, job-controlled foreground job.
    pub interactive: bool,
    /// `--any-pid`: FORK ANY for every process, whatever the statefile says.
    pub any_pid: bool,
    /// `--no-cwd`: CDIR IGNORE for every process (stay in cpr's working directory).
    pub no_cwd: bool,
    /// `--no-root`: RDIR IGNORE for every process (keep cpr's root directory).
    pub no_root: bool,
    /// `--lazy`: return once the processes run; their large private memory is filled
    /// on demand and in the background by a filler process (restart/lazy.rs).
    pub lazy: bool,
}

/// The real uid of the caller: whom the permission rules of IRIX are checked for.
pub fn caller_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}
