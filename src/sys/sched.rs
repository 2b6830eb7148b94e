//! Scheduling of one thread set from outside it: policy with real-time priority, nice
//! value, CPU affinity (nix has the affinity calls, not these two).

use nix::errno::Errno;

/// sched_setscheduler(tid, policy, {priority}).
pub fn set_scheduler(tid: i32, policy: i32, priority: i32) -> Result<(), Errno> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it.
    Errno::result(unsafe { libc::sched_setscheduler(tid, policy, &param) }).map(drop)
}

/// setpriority(PRIO_PROCESS, tid, nice): Linux keeps the nice value per thread.
pub fn set_nice(tid: i32, nice: i32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    Errno::result(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) })
        .map(drop)
}
