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
    kcmp_raw(pid1, pid2, kind, idx1, idx2).map(|r| r == 0)
}

/// kcmp(pid1, pid2, type, idx1, idx2) as the kernel answers: 0 one object; 1 or 2 the
/// first is less or greater (an order total for as long as both live); 3 not equal,
/// without an order.
fn kcmp_raw(
    pid1: i32,
    pid2: i32,
    kind: libc::c_long,
    idx1: u64,
    idx2: u64,
) -> nix::Result<libc::c_long> {
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
    Errno::result(ret)
}

/// `kcmp_raw` as an order; "not equal, but no order" is EINVAL.
fn kcmp_order(
    pid1: i32,
    pid2: i32,
    kind: libc::c_long,
    idx1: u64,
    idx2: u64,
) -> nix::Result<std::cmp::Ordering> {
    match kcmp_raw(pid1, pid2, kind, idx1, idx2)? {
        0 => Ok(std::cmp::Ordering::Equal),
        1 => Ok(std::cmp::Ordering::Less),
        2 => Ok(std::cmp::Ordering::Greater),
        _ => Err(Errno::EINVAL),
    }
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
    use std::cmp::Ordering;
    let compare = |a: i32, b: i32| kcmp_order(a, b, kind, 0, 0).ok();
    let usable: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| compare(p, p) == Some(Ordering::Equal))
        .collect();
    let mut sorted: Vec<i32> = Vec::with_capacity(usable.len());
    for &p in &usable {
        let (mut lo, mut hi) = (0, sorted.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match compare(p, sorted[mid]) {
                Some(Ordering::Equal) => return Some((p.min(sorted[mid]), p.max(sorted[mid]))),
                Some(Ordering::Less) => hi = mid,
                Some(Ordering::Greater) => lo = mid + 1,
                None => return pairwise(&usable, &compare),
            }
        }
        sorted.insert(lo, p);
    }
    None
}

/// `sharing_pair` the slow way: every pair.
fn pairwise(
    pids: &[i32],
    compare: &dyn Fn(i32, i32) -> Option<std::cmp::Ordering>,
) -> Option<(i32, i32)> {
    for (i, &a) in pids.iter().enumerate() {
        for &b in &pids[i + 1..] {
            if compare(a, b) == Some(std::cmp::Ordering::Equal) {
                return Some((a, b));
            }
        }
    }
    None
}

/// How the kernel orders descriptor `fd1` of `pid1` against `fd2` of `pid2`: `Equal` when
/// they are one open file description, otherwise an order that is total and stable for
/// as long as both stay open (kcmp compares obfuscated kernel addresses).
pub fn open_file_order(
    pid1: i32,
    fd1: i32,
    pid2: i32,
    fd2: i32,
) -> nix::Result<std::cmp::Ordering> {
    kcmp_order(pid1, pid2, KCMP_FILE, fd1 as u64, fd2 as u64)
}

/// Groups descriptors `(pid, fd)` by open file description with O(n log n) kcmp calls
/// (a merge sort in the kernel's order, then neighbours compared): for each descriptor
/// the number of its group, groups numbered in the order of their first descriptor.
/// An error of any kcmp call (no `CONFIG_KCMP`, no access) is returned: the caller
/// decides what to do without the order.
pub fn group_open_files(items: &[(i32, i32)]) -> nix::Result<Vec<usize>> {
    let cmp = |a: usize, b: usize| {
        let (pa, fa) = items[a];
        let (pb, fb) = items[b];
        open_file_order(pa, fa, pb, fb)
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    let mut scratch = order.clone();
    // bottom-up merge sort with a fallible comparison (slice::sort_by cannot stop early)
    let mut width = 1;
    while width < order.len() {
        let mut start = 0;
        while start < order.len() {
            let mid = (start + width).min(order.len());
            let end = (start + 2 * width).min(order.len());
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if cmp(order[j], order[i])? == std::cmp::Ordering::Less {
                    scratch[k] = order[j];
                    j += 1;
                } else {
                    scratch[k] = order[i];
                    i += 1;
                }
                k += 1;
            }
            scratch[k..k + mid - i].copy_from_slice(&order[i..mid]);
            k += mid - i;
            scratch[k..k + end - j].copy_from_slice(&order[j..end]);
            start = end;
        }
        std::mem::swap(&mut order, &mut scratch);
        width *= 2;
    }
    // runs of equal neighbours are the descriptions; a run's smallest index names it
    let mut leader = vec![0usize; items.len()];
    let mut run_start = 0;
    for pos in 0..order.len() {
        if pos + 1 == order.len() || cmp(order[pos], order[pos + 1])? != std::cmp::Ordering::Equal {
            let first = order[run_start..=pos].iter().copied().min().unwrap_or(0);
            for &m in &order[run_start..=pos] {
                leader[m] = first;
            }
            run_start = pos + 1;
        }
    }
    let mut number = vec![usize::MAX; items.len()];
    let mut next = 0;
    let mut out = Vec::with_capacity(items.len());
    for &l in &leader {
        if number[l] == usize::MAX {
            number[l] = next;
            next += 1;
        }
        out.push(number[l]);
    }
    Ok(out)
}

/// `group_open_files` for descriptors with a key each that all descriptors of one
/// description share (path, offset, flags): kcmp only compares descriptors of one key,
/// so distinct files and offsets cost no kcmp call at all.
pub fn group_open_files_by<K: Ord>(items: &[(i32, i32)], keys: &[K]) -> nix::Result<Vec<usize>> {
    let mut by_key: Vec<usize> = (0..items.len()).collect();
    by_key.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    // the first descriptor of each one's description
    let mut leader: Vec<usize> = (0..items.len()).collect();
    for run in by_key.chunk_by(|&a, &b| keys[a] == keys[b]) {
        if run.len() == 1 {
            continue;
        }
        let sub: Vec<(i32, i32)> = run.iter().map(|&i| items[i]).collect();
        let groups = group_open_files(&sub)?;
        let mut first: Vec<Option<usize>> = vec![None; run.len()];
        for (&i, &g) in run.iter().zip(&groups) {
            leader[i] = *first[g].get_or_insert(i);
        }
    }
    let mut number = vec![usize::MAX; items.len()];
    let mut next = 0;
    Ok(leader
        .iter()
        .map(|&l| {
            if number[l] == usize::MAX {
                number[l] = next;
                next += 1;
            }
            number[l]
        })
        .collect())
}

/// Open file descriptions seen so far, each by its first descriptor, found again in
/// O(log n) kcmp calls: per key (what every descriptor of a description shares, such as
/// its path, offset and flags), the descriptions in kcmp's order.
pub struct DescriptionIndex<K> {
    buckets: std::collections::HashMap<K, Vec<(i32, i32)>>,
}

impl<K: std::hash::Hash + Eq> Default for DescriptionIndex<K> {
    fn default() -> Self {
        DescriptionIndex {
            buckets: Default::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq> DescriptionIndex<K> {
    /// The first descriptor seen of the description of `fd` of `pid`; `None` when it is
    /// the first, which it then becomes.
    pub fn first_of(&mut self, key: K, pid: i32, fd: i32) -> nix::Result<Option<(i32, i32)>> {
        let bucket = self.buckets.entry(key).or_default();
        let (mut lo, mut hi) = (0, bucket.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (p, f) = bucket[mid];
            match open_file_order(p, f, pid, fd)? {
                std::cmp::Ordering::Equal => return Ok(Some((p, f))),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        bucket.insert(lo, (pid, fd));
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn descriptors_group_by_description_in_first_seen_order() {
        let me = std::process::id() as i32;
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        let a2 = a.try_clone().unwrap();
        let c = std::fs::File::open("/proc/self/status").unwrap();
        let b2 = b.try_clone().unwrap();
        let fds = [&a, &b, &a2, &c, &b2, &a].map(|f| (me, f.as_raw_fd()));
        match group_open_files(&fds) {
            Ok(g) => assert_eq!(g, vec![0, 1, 0, 2, 1, 0]),
            // a kernel without CONFIG_KCMP
            Err(e) => assert_eq!(e, Errno::ENOSYS),
        }
        assert_eq!(group_open_files(&[]).unwrap(), Vec::<usize>::new());
        let keys = [1, 1, 1, 2, 1, 1];
        if let Ok(g) = group_open_files_by(&fds, &keys) {
            assert_eq!(g, vec![0, 1, 0, 2, 1, 0]);
        }
        // a key that differs splits a description (the caller's promise broken)
        if let Ok(g) = group_open_files_by(&fds, &[1, 1, 2, 1, 1, 1]) {
            assert_eq!(g, vec![0, 1, 2, 3, 1, 0]);
        }
        let mut index = DescriptionIndex::default();
        let firsts: Vec<_> = fds
            .iter()
            .map(|&(p, f)| index.first_of("k", p, f).map(|o| o.map(|(_, f)| f)))
            .collect();
        if firsts.iter().all(|f| f.is_ok()) {
            let firsts: Vec<_> = firsts.into_iter().map(|f| f.unwrap()).collect();
            let (fa, fb) = (fds[0].1, fds[1].1);
            assert_eq!(firsts, vec![None, None, Some(fa), None, Some(fb), Some(fa)]);
        }
    }
}
