//! Dirty-page tracking without soft-dirty: userfaultfd in asynchronous write-protect mode
//! (the kernel resolves the write faults itself, clearing a page's write-protect bit) and
//! the PAGEMAP_SCAN ioctl of /proc/PID/pagemap, which lists the pages whose bit is clear
//! (`PAGE_IS_WRITTEN`). Debian's headers are older than the kernel: the constants are
//! written out here.
//!
//! The userfaultfd context belongs to the address space it was created in; its ioctls
//! act on that address space from any process that holds a descriptor of it (cpr takes
//! one with pidfd_getfd).

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// `UFFD_API`.
pub const UFFD_API: u64 = 0xAA;
/// `UFFD_FEATURE_WP_UNPOPULATED`: pages not yet populated are write-protected too.
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
/// `UFFD_FEATURE_WP_ASYNC`: write faults are resolved by the kernel, nobody reads events.
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `UFFD_USER_MODE_ONLY`: what an ordinary user may create (vm.unprivileged_userfaultfd 0).
pub const UFFD_USER_MODE_ONLY: u64 = 1;

/// `_IOWR(0xAA, 0x3F, struct uffdio_api)` (24 bytes).
pub const UFFDIO_API: u64 = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)` (32 bytes).
pub const UFFDIO_REGISTER: u64 = 0xC020_AA00;
/// `_IOWR(0xAA, 0x06, struct uffdio_writeprotect)` (24 bytes).
const UFFDIO_WRITEPROTECT: u64 = 0xC018_AA06;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;

/// `_IOWR('f', 16, struct pm_scan_arg)` (96 bytes).
const PAGEMAP_SCAN: u64 = 0xC060_6610;
/// `PM_SCAN_WP_MATCHING`: write-protect the pages found, atomically with the scan.
pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
/// `PM_SCAN_CHECK_WPASYNC`: EPERM for a range not registered in async WP mode.
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
/// `PAGE_IS_WRITTEN`: written since write-protected (or never protected).
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
/// `PAGE_IS_FILE`: a page of the page cache (not an anonymous page).
pub const PAGE_IS_FILE: u64 = 1 << 2;
/// `PAGE_IS_PRESENT`: in memory.
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
/// `PAGE_IS_SWAPPED`: a swap entry (or another non-present entry that holds a page).
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;

/// `struct uffdio_api` (also written into a restored process by lazy restart).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioApi {
    pub api: u64,
    pub features: u64,
    pub ioctls: u64,
}
const _: () = assert!(std::mem::size_of::<UffdioApi>() == 24);
// SAFETY: repr(C), three u64 fields, no padding (asserted above).
unsafe impl super::KernelStruct for UffdioApi {}

/// `struct uffdio_register` (range, mode, ioctls).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct UffdioRegister {
    pub start: u64,
    pub len: u64,
    pub mode: u64,
    pub ioctls: u64,
}
const _: () = assert!(std::mem::size_of::<UffdioRegister>() == 32);
// SAFETY: repr(C), four u64 fields, no padding (asserted above).
unsafe impl super::KernelStruct for UffdioRegister {}

/// `struct uffdio_writeprotect` (range, mode).
#[repr(C)]
struct UffdioWriteprotect {
    start: u64,
    len: u64,
    mode: u64,
}

/// `struct page_region`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// `struct pm_scan_arg`.
#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// UFFDIO_API on a new userfaultfd: asks for `features`, returns the features granted.
pub fn uffd_api(uffd: BorrowedFd<'_>, features: u64) -> Result<u64, Errno> {
    let mut api = UffdioApi {
        api: UFFD_API,
        features,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_API reads and writes one struct uffdio_api, a live local of that layout.
    Errno::result(unsafe {
        libc::ioctl(
            uffd.as_raw_fd(),
            UFFDIO_API as _,
            &mut api as *mut UffdioApi,
        )
    })?;
    Ok(api.features)
}

/// UFFDIO_REGISTER of `start..start+len` of the context's address space in WP mode.
pub fn uffd_register_wp(uffd: BorrowedFd<'_>, start: u64, len: u64) -> Result<(), Errno> {
    let mut reg = UffdioRegister {
        start,
        len,
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    // SAFETY: UFFDIO_REGISTER reads and writes one struct uffdio_register, a live local.
    Errno::result(unsafe {
        libc::ioctl(
            uffd.as_raw_fd(),
            UFFDIO_REGISTER as _,
            &mut reg as *mut UffdioRegister,
        )
    })
    .map(drop)
}

/// UFFDIO_WRITEPROTECT of `start..start+len`: every page counts as not written from now.
pub fn uffd_write_protect(uffd: BorrowedFd<'_>, start: u64, len: u64) -> Result<(), Errno> {
    let mut wp = UffdioWriteprotect {
        start,
        len,
        mode: UFFDIO_WRITEPROTECT_MODE_WP,
    };
    // SAFETY: UFFDIO_WRITEPROTECT reads one struct uffdio_writeprotect, a live local.
    Errno::result(unsafe {
        libc::ioctl(
            uffd.as_raw_fd(),
            UFFDIO_WRITEPROTECT as _,
            &mut wp as *mut UffdioWriteprotect,
        )
    })
    .map(drop)
}

/// What one PAGEMAP_SCAN asks: the pages in every category of `all`, in at least one
/// of `any` (if not 0), and the categories reported of each range (`report`).
#[derive(Clone, Copy)]
pub struct ScanQuery {
    pub flags: u64,
    pub all: u64,
    pub any: u64,
    pub report: u64,
}

/// PAGEMAP_SCAN of `start..end` on a /proc/PID/pagemap descriptor: the page ranges that
/// match `q`, as (start address, end address, categories among `q.report`), in order,
/// neighbours of the same categories merged. One walk of the page tables (a few calls
/// when the ranges are many), where reading pagemap costs 8 bytes per page.
pub fn pagemap_scan(
    pagemap: BorrowedFd<'_>,
    start: u64,
    end: u64,
    q: ScanQuery,
) -> Result<Vec<(u64, u64, u64)>, Errno> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    let mut regions = vec![PageRegion::default(); 512];
    let mut at = start;
    while at < end {
        let mut arg = PmScanArg {
            size: size_of::<PmScanArg>() as u64,
            flags: q.flags,
            start: at,
            end,
            walk_end: 0,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: q.all,
            category_anyof_mask: q.any,
            return_mask: q.report,
        };
        // SAFETY: PAGEMAP_SCAN reads the argument (a live local) and writes at most
        // `vec_len` struct page_region into `regions`, which outlives the call.
        let n = Errno::result(unsafe {
            libc::ioctl(
                pagemap.as_raw_fd(),
                PAGEMAP_SCAN as _,
                &mut arg as *mut PmScanArg,
            )
        })? as usize;
        for r in &regions[..n.min(regions.len())] {
            match out.last_mut() {
                Some((_, e, c)) if *e == r.start && *c == r.categories => *e = r.end,
                _ => out.push((r.start, r.end, r.categories)),
            }
        }
        if arg.walk_end <= at {
            break;
        }
        at = arg.walk_end;
    }
    Ok(out)
}

/// PAGEMAP_SCAN of `start..end` on a /proc/PID/pagemap descriptor: the page ranges in
/// category `PAGE_IS_WRITTEN` as (start address, end address), with `flags`
/// (`PM_SCAN_WP_MATCHING`, `PM_SCAN_CHECK_WPASYNC`).
pub fn pagemap_scan_written(
    pagemap: BorrowedFd<'_>,
    start: u64,
    end: u64,
    flags: u64,
) -> Result<Vec<(u64, u64)>, Errno> {
    let q = ScanQuery {
        flags,
        all: PAGE_IS_WRITTEN,
        any: 0,
        report: PAGE_IS_WRITTEN,
    };
    Ok(pagemap_scan(pagemap, start, end, q)?
        .into_iter()
        .map(|(s, e, _)| (s, e))
        .collect())
}

/// The kernel's own mark of a context past its API handshake, shown among the features
/// in fdinfo.
pub const UFFD_FEATURE_INITIALIZED: u64 = 1 << 31;
