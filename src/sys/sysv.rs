//! System V semaphores, as a checkpoint looks at them: semctl(2) commands that read.

use nix::errno::Errno;

/// GETPID: the last process to operate on semaphore `num` of set `semid`.
pub fn sem_last_pid(semid: i32, num: u32) -> Result<i32, Errno> {
    // SAFETY: GETPID reads no fourth argument; integers only.
    Errno::result(unsafe { libc::semctl(semid, num as libc::c_int, libc::GETPID) })
}
