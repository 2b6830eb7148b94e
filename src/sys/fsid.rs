//! The file-system identity of the calling thread alone (fsuid, fsgid, supplementary
//! groups), by raw system calls: glibc's wrappers would change every thread's groups.

use nix::errno::Errno;

/// Gives the calling thread `uid`, `gid` and `groups` for file access only; its real,
/// effective and saved ids stay. Needs CAP_SETUID and CAP_SETGID (root's cpr).
pub fn set_fs_identity(uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: setgroups reads `groups.len()` gid_t values from a live slice.
    let r = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::c_ulong,
            groups.as_ptr(),
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // setfsgid/setfsuid return the previous id and never fail: a second call tells
    // whether the first one took
    for (nr, id) in [(libc::SYS_setfsgid, gid), (libc::SYS_setfsuid, uid)] {
        // SAFETY: plain integer arguments, no memory involved.
        unsafe { libc::syscall(nr, id as libc::c_ulong) };
        // SAFETY: as above.
        let now = unsafe { libc::syscall(nr, id as libc::c_ulong) };
        if now as u32 != id {
            return Err(Errno::EPERM);
        }
    }
    Ok(())
}
