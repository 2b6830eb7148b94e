//! System V semaphores and message queues: cpr does not save them yet, so a process of
//! the checkpoint that uses one is refused rather than restarted without it. The kernel
//! does not say which processes hold a set or a queue (nor their SEM_UNDO adjustments);
//! it says who used each last: semctl GETPID for each semaphore, and the last sender and
//! receiver of each queue in /proc/sysvipc/msg.

use crate::error::{Error, Kind, Result};

/// "Checkpoint error" naming the first process of `pids` that last operated on a
/// semaphore, or last sent to or received from a message queue.
pub fn refuse_users(pids: &[i32]) -> Result<()> {
    for set in crate::proc::sysvipc::read_sem()? {
        for num in 0..set.nsems {
            // a set removed meanwhile (EINVAL, EIDRM) is no one's
            let Ok(last) = crate::sys::sysv::sem_last_pid(set.semid, num) else {
                break;
            };
            if pids.contains(&last) {
                return Err(refusal(
                    last,
                    format!("SysV semaphore set {} (key {:#x})", set.semid, set.key),
                ));
            }
        }
    }
    for q in crate::proc::sysvipc::read_msg()? {
        if let Some(&pid) = pids.iter().find(|&&p| p == q.lspid || p == q.lrpid) {
            return Err(refusal(
                pid,
                format!("SysV message queue {} (key {:#x})", q.msqid, q.key),
            ));
        }
    }
    Ok(())
}

fn refusal(pid: i32, what: String) -> Error {
    Error::with_detail(
        format!("process {pid}"),
        Kind::CheckpointError,
        format!("{what}: System V semaphores and message queues are not checkpoint safe"),
    )
}
