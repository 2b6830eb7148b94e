//! `kcmp(2)`: whether two processes share a kernel object. nix and libc's safe layer lack it.

use nix::errno::Errno;
use nix::unistd::Pid;

/// `KCMP_VM` from `<linux/kcmp.h>`: compare the address spaces (`mm`).
const KCMP_VM: libc::c_int = 1;

/// Whether `a` and `b` share one address space (threads of one process, or a child made
/// with `CLONE_VM`). Needs ptrace read access to both (`PTRACE_MODE_READ_REALCREDS`).
/// Processes without an address space (zombies, kernel threads) all compare equal: the
/// caller must leave them out. `ENOSYS` means the kernel lacks `CONFIG_KCMP`.
pub fn same_vm(a: Pid, b: Pid) -> nix::Result<bool> {
    // SAFETY: kcmp takes only integers (two pids, a type, two unused indexes); it reads
    // and writes no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            a.as_raw() as libc::c_long,
            b.as_raw() as libc::c_long,
            KCMP_VM as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(true),
        _ => Ok(false),
    }
}
