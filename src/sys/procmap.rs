//! PROCMAP_QUERY (Linux 6.11): the mapping at or after an address, asked of a held
//! `/proc/PID/maps` descriptor, without the kernel formatting (and cpr parsing) the
//! whole text of the address space.

use std::os::fd::{AsRawFd, BorrowedFd};

/// `struct procmap_query` of `linux/fs.h`.
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = (3 << 30)
    | ((std::mem::size_of::<ProcmapQuery>() as libc::c_ulong) << 16)
    | ((b'f' as libc::c_ulong) << 8)
    | 17;
/// Not only the mapping covering the address: the next one when none does.
const COVERING_OR_NEXT_VMA: u64 = 0x10;

/// The mapping (start, end) that covers `addr` or else the first after it; `Ok(None)`
/// when there is none. `Err(ENOTTY)` (or EINVAL) on a kernel without the query.
pub fn mapping_from(maps: BorrowedFd<'_>, addr: u64) -> nix::Result<Option<(u64, u64)>> {
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: COVERING_OR_NEXT_VMA,
        query_addr: addr,
        ..Default::default()
    };
    // SAFETY: q is a live, properly sized procmap_query with no name or build-id buffers
    // (their sizes are 0); the kernel writes only into q.
    let r = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY, &mut q as *mut ProcmapQuery) };
    if r == 0 {
        return Ok(Some((q.vma_start, q.vma_end)));
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOENT => Ok(None),
        e => Err(e),
    }
}

/// The mappings (start, end) that overlap `lo..hi`, in address order, asked one at a time
/// of a held `/proc/PID/maps` descriptor. `Err` as [`mapping_from`]'s.
pub fn mappings_within(maps: BorrowedFd<'_>, lo: u64, hi: u64) -> nix::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut at = lo;
    while at < hi {
        match mapping_from(maps, at)? {
            Some((s, e)) if s < hi => {
                out.push((s, e));
                at = e;
            }
            _ => break,
        }
    }
    Ok(out)
}
