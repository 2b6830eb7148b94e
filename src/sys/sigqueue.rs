//! sigqueue(3): a signal with a value, which nix lacks. libcpr and `engine::cooperate`
//! carry the request token of SIGCKPT in it.

use nix::errno::Errno;

/// Queues `sig` to process `pid` with `value` as `si_value.sival_ptr` (si_code
/// `SI_QUEUE`, si_pid and si_uid the caller's).
pub fn sigqueue(pid: i32, sig: i32, value: u64) -> Result<(), Errno> {
    let value = libc::sigval {
        sival_ptr: value as usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue takes a pid, a signal number and a sigval by value; the pointer in
    // the sigval is only carried as a number and never dereferenced by the kernel.
    let rc = unsafe { libc::sigqueue(pid, sig, value) };
    Errno::result(rc).map(drop)
}
