//! Release: only when every process of every statefile is restored, each thread gets
//! its registers (interrupted calls re-issued), FPU state and signal mask, and all are
//! let go together.

use super::RestoreContext;
use super::fork::Made;
use super::tracer::{Crew, Restored};
use crate::engine::objects::pstree::{Plan, Role};
use crate::engine::objects::sysv_shm as shm;
use crate::error::{Context, Result};
use crate::statefile::reader::damaged_record;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Lets every restored process run; returns every node's PID. On failure every process
/// made is killed first, then the SysV segments created for them are removed.
pub(super) fn release(
    ctx: &RestoreContext,
    made: Made,
    crew: Crew,
    restored: &[Restored],
    shm_segments: shm::Segments,
) -> Result<Vec<i32>> {
    if let Err(e) = crew.registers() {
        drop(crew);
        drop(made);
        return Err(e);
    }
    if let Err(e) = stop_job_stopped(ctx, restored) {
        drop(crew);
        drop(made);
        return Err(e);
    }
    // every process attached its segments: those removed at checkpoint are marked again
    shm_segments.finish();
    crew.detach();
    Ok(made.disarm())
}

/// Processes that job control had stopped at checkpoint time get the signal that
/// stopped them while still traced: released, they stop before running an instruction,
/// and their parent is told as for any stop (SIGCHLD, waitpid with WUNTRACED) and may
/// continue them. SIGSTOP where the kernel would discard SIGTSTP, SIGTTIN or SIGTTOU
/// (an orphaned process group, which a restarted tree often is; stop_signal.rs).
fn stop_job_stopped(ctx: &RestoreContext, restored: &[Restored]) -> Result<()> {
    const JOB_STOP_SIGNALS: [i32; 4] = [libc::SIGSTOP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU];
    for r in restored {
        let img = &ctx.images[r.image];
        let sig = img.core.process.job_stop;
        if sig == 0 {
            continue;
        }
        if !JOB_STOP_SIGNALS.contains(&sig) {
            return Err(damaged_record(format_args!(
                "process {}: job_stop {sig} is not a stop signal",
                img.core.process.pid
            ))
            .context(ctx.statefiles[img.sf].path.display()));
        }
        let (pid, main) = r.threads[0];
        let mask = img.core.threads[main].sigmask;
        let sig = super::stop_signal::signal_to_stop(pid, sig, &img.core.signals, mask)
            .map_err(|e| e.context(format!("process {pid}")))?;
        let sig = Signal::try_from(sig).unwrap_or(Signal::SIGSTOP);
        kill(Pid::from_raw(pid), sig).ctx(format!("process {pid}"))?;
    }
    Ok(())
}

/// Helpers (which recreated a group or session whose leader had exited) have done their
/// part: collect those cpr forked.
pub(super) fn collect_helpers(plan: &Plan, pids: &[i32]) {
    for (n, node) in plan.nodes.iter().enumerate() {
        if node.role == Role::Helper
            && plan.roots.contains(&n)
            && let Some(&pid) = pids.get(n)
        {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}
