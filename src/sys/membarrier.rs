//! membarrier(2), which libc does not wrap.

use nix::errno::Errno;

/// membarrier(cmd, 0, 0) on the calling process: its result (a mask for QUERY and
/// GET_REGISTRATIONS).
pub fn membarrier(cmd: i32) -> Result<i32, Errno> {
    // SAFETY: integer arguments only; the call reads and writes no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) };
    Errno::result(rc).map(|r| r as i32)
}
