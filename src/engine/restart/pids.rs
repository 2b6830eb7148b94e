//! The PIDs a restart needs: FORK ORIGINAL needs each process's PID and TIDs free, and
//! zombies come back with their PIDs too. A PID held only by a zombie that its new
//! parent (init, often) has yet to reap is waited for, briefly.

use std::time::{Duration, Instant};

use super::validate::Loaded;
use crate::attrfile::ForkAction;
use crate::error::{Error, Kind, Result};

/// How long, in all, a restart waits for PIDs held by zombies.
const WAIT: Duration = Duration::from_secs(5);

/// Checks that every PID the statefiles need is free, waiting for zombies being reaped.
pub(super) fn wait_for_pids(loaded: &Loaded) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    let busy = |sf: usize, what: String| {
        Error::with_detail(
            loaded.statefiles[sf].path.display().to_string(),
            Kind::ResourceBusy,
            what,
        )
    };
    for (s, tree) in loaded.trees.iter().enumerate() {
        for z in &tree.zombies {
            if !wait_until_free(z.pid, deadline) {
                return Err(busy(
                    s,
                    format!(
                        "PID {} (an unreaped child at the checkpoint) is in use",
                        z.pid
                    ),
                ));
            }
        }
    }
    for img in &loaded.images {
        if img.core.policies.fork != ForkAction::Original {
            continue;
        }
        for t in &img.core.threads {
            if !wait_until_free(t.tid, deadline) {
                return Err(busy(
                    img.sf,
                    format!(
                        "PID {} is in use (FORK ORIGINAL; FORK ANY in the attribute file allows another PID)",
                        t.tid
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Waits, until `deadline`, while `pid` is held only by a zombie about to be reaped;
/// returns whether it is free.
fn wait_until_free(pid: i32, deadline: Instant) -> bool {
    while pid_taken(pid) == Some(true) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    pid_taken(pid).is_none()
}

/// Whether no process and no process group has `pid`.
pub(super) fn is_free(pid: i32) -> bool {
    pid_taken(pid).is_none()
}

/// Whether a PID is in use: `Some(true)` by a zombie about to be reaped, `Some(false)`
/// by anything else, `None` when it is free.
fn pid_taken(pid: i32) -> Option<bool> {
    if let Ok(stat) = crate::proc::ProcDir::open(pid).and_then(|d| d.stat()) {
        return Some(stat.state == 'Z' || stat.state == 'X');
    }
    // a PID that no process has can still be held as the ID of a live process group
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => None,
        _ => Some(false),
    }
}
