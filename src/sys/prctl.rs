//! prctl(2) options cpr sets on itself (a restore child), with integer arguments only.

use nix::errno::Errno;

/// prctl(option, arg, 0, 0, 0); returns the call's result.
pub fn prctl_int(option: i32, arg: u64) -> Result<i32, Errno> {
    // SAFETY: integer arguments only; no option cpr uses here reads or writes memory.
    Errno::result(unsafe { libc::prctl(option, arg as libc::c_ulong, 0, 0, 0) })
}
