//! `kcmp(2)`: whether two processes share a kernel object. nix and libc's safe layer lack it.

use nix::errno::Errno;
use nix::unistd::Pid;

/// `KCMP_FILE` from `<linux/kcmp.h>`: compare two open file descriptions.
const KCMP_FILE: libc::c_long = 0;
/// `KCMP_VM`: compare the address spaces (`mm`).
const KCMP_VM: libc::c_long = 1;

/// What else two processes can share, as `kcmp` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The descriptor table (`CLONE_FILES`): `KCMP_FILES`.
    Files = 2,
    /// Root, working directory and umask (`CLONE_FS`): `KCMP_FS`.
    Fs = 3,
    /// The signal handlers (`CLONE_SIGHAND`): `KCMP_SIGHAND`.
    Sighand = 4,
}

/// Whether `a` and `b` share `table`. As for [`same_vm`], needs ptrace read access to both.
pub fn same_table(a: i32, b: i32, table: Table) -> nix::Result<bool> {
    kcmp(a, b, table as libc::c_long, 0, 0)
}

/// kcmp(pid1, pid2, type, idx1, idx2): whether the two objects are one.
fn kcmp(pid1: i32, pid2: i32, kind: libc::c_long, idx1: u64, idx2: u64) -> nix::Result<bool> {
    // SAFETY: kcmp takes only integers (two pids, a type, two indexes); it reads and
    // writes no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1 as libc::c_long,
            pid2 as libc::c_long,
            kind,
            idx1,
            idx2,
        )
    };
    Errno::result(ret).map(|r| r == 0)
}

/// Whether `a` and `b` share one address space (threads of one process, or a child made
/// with `CLONE_VM`). Needs ptrace read access to both (`PTRACE_MODE_READ_REALCREDS`).
/// Processes without an address space (zombies, kernel threads) all compare equal: the
/// caller must leave them out. `ENOSYS` means the kernel lacks `CONFIG_KCMP`.
pub fn same_vm(a: Pid, b: Pid) -> nix::Result<bool> {
    kcmp(a.as_raw(), b.as_raw(), KCMP_VM, 0, 0)
}

/// `KCMP_EPOLL_TFD`: compare a descriptor's file with a file an epoll instance watches.
const KCMP_EPOLL_TFD: libc::c_long = 7;

/// `struct kcmp_epoll_slot` of `<linux/kcmp.h>`.
#[repr(C)]
struct EpollSlot {
    efd: u32,
    tfd: u32,
    toff: u32,
}

/// Whether the file epoll instance `epfd` of `pid` watches as descriptor `tfd` (the
/// `toff`th such item: a closed number may be watched again for another file) is the
/// file open as `tfd` now.
pub fn epoll_target_is_open(pid: i32, epfd: i32, tfd: i32, toff: u32) -> nix::Result<bool> {
    let slot = EpollSlot {
        efd: epfd as u32,
        tfd: tfd as u32,
        toff,
    };
    // SAFETY: the kernel reads one struct kcmp_epoll_slot from a live local.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid as libc::c_long,
            pid as libc::c_long,
            KCMP_EPOLL_TFD,
            tfd as libc::c_long,
            &slot as *const EpollSlot,
        )
    };
    Errno::result(ret).map(|r| r == 0)
}

/// Whether descriptor `fd1` of `pid1` and `fd2` of `pid2` are one open file description.
pub fn same_open_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> nix::Result<bool> {
    kcmp(pid1, pid2, KCMP_FILE, fd1 as u64, fd2 as u64)
}

/// Two of `pids` that share one address space (`table` None) or one `table`, if any:
/// found in about n·log₂n calls, not n²/2. kcmp orders the objects it compares (by
/// their obfuscated kernel addresses), so each process is placed by binary search
/// among the distinct objects already seen, and one equal to its own is met on the
/// way. Processes kcmp cannot compare are left out (as a failed comparison meant "not
/// shared"); an unexpected answer on the way falls back to comparing every pair.
pub fn sharing_pair(pids: &[i32], table: Option<Table>) -> Option<(i32, i32)> {
    let kind = table.map_or(KCMP_VM, |t| t as libc::c_long);
    let compare = |a: i32, b: i32| -> Option<libc::c_long> {
        // SAFETY: as in `kcmp`: integers only.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_kcmp,
                a as libc::c_long,
                b as libc::c_long,
                kind,
                0,
                0,
            )
        };
        (ret >= 0).then_some(ret)
    };
    let usable: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| compare(p, p) == Some(0))
        .collect();
    let mut sorted: Vec<i32> = Vec::with_capacity(usable.len());
    for &p in &usable {
        let (mut lo, mut hi) = (0, sorted.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match compare(p, sorted[mid]) {
                Some(0) => return Some((p.min(sorted[mid]), p.max(sorted[mid]))),
                Some(1) => hi = mid,
                Some(2) => lo = mid + 1,
                _ => return pairwise(&usable, &compare),
            }
        }
        sorted.insert(lo, p);
    }
    None
}

/// `sharing_pair` the slow way: every pair.
fn pairwise(
    pids: &[i32],
    compare: &dyn Fn(i32, i32) -> Option<libc::c_long>,
) -> Option<(i32, i32)> {
    for (i, &a) in pids.iter().enumerate() {
        for &b in &pids[i + 1..] {
            if compare(a, b) == Some(0) {
                return Some((a, b));
            }
        }
    }
    None
}
