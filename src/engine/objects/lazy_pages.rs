//! Lazy restart, the restored process's side: its large private anonymous mappings are
//! registered with a userfaultfd (missing-page mode) by calls injected into it, before
//! any page is read; cpr takes a copy of the descriptor (pidfd_getfd), and the one in
//! the process is closed with cpr's other descriptors (tracer.rs), so nothing of it
//! shows. The pages of those mappings are not read at restart: the filler
//! (restart/lazy.rs) serves them from the statefile on fault and in the background.

use std::os::fd::{AsFd, OwnedFd};

use super::memory::{Backing, MmRecord, PAGE, Vma};
use crate::engine::ptrace::{Batch, Injector, RemoteScratch};
use crate::error::{Context, Result};
use crate::sys::uffd_fill as uffd;

/// Below this many saved bytes a mapping is read at restart: a fault costs more than
/// reading it.
const LAZY_MIN: u64 = 256 << 10;

/// What the restore of one process is asked for (`memory::PageData::lazy`).
#[derive(Debug)]
pub struct Request<'a> {
    /// Where the registration goes.
    pub out: &'a mut Option<Registered>,
    /// Addresses the restart itself makes the kernel touch before release (each
    /// thread's rseq area): their pages are copied in at once, or the injected call
    /// would wait for a filler that does not run yet.
    pub hot: Vec<u64>,
}

/// A process whose memory the filler completes.
#[derive(Debug)]
pub struct Registered {
    /// Its PID in this world.
    pub pid: i32,
    /// Names it for as long as it lives (the keeper kills it through this).
    pub pidfd: OwnedFd,
    /// cpr's copy of the process's userfaultfd descriptor.
    pub uffd: OwnedFd,
    /// The pages left out: (address, length, offset in the pages file), in file order.
    pub segments: Vec<(u64, u64, u64)>,
}

/// (start, end, 0) of a mapping, in the form of `memory::PageData::premapped`.
pub type Range = (u64, u64, u64);

/// Whether a mapping's pages are left to the filler: private anonymous memory (what
/// missing-page mode covers) with enough saved pages, taken from this statefile alone,
/// not locked (mlock would fault them all in at restart) and not the stack.
fn lazy(v: &Vma) -> bool {
    matches!(v.backing, Backing::Anon)
        && !v.shared
        && v.inherited.is_empty()
        && v.cow.is_empty()
        && !v.has_flag("lo")
        && !v.has_flag("gd")
        && v.name != "[stack]"
        && v.runs.iter().map(|r| r.1 * PAGE).sum::<u64>() >= LAZY_MIN
}

/// Registers the lazy mappings of `mm` in process `pid` (stopped, its mappings made,
/// `premapped` ones excepted). Returns what the filler needs, or None when no mapping
/// qualifies; the second part lists the mappings as (start, end, 0) for the eager fill
/// to leave out.
pub fn register(
    inj: &Injector,
    pid: i32,
    mm: &MmRecord,
    scratch: &mut RemoteScratch,
    premapped: &[(u64, u64, u64)],
    hot: &[u64],
    file: Option<&std::fs::File>,
) -> Result<(Option<Registered>, Vec<Range>)> {
    let who = || format!("process {pid}");
    let mut segments = Vec::new();
    let mut ranges = Vec::new();
    let mut off = 0u64;
    for v in &mm.vmas {
        let chosen = lazy(v) && !premapped.iter().any(|r| (r.0, r.1) == (v.start, v.end));
        for &(first, count) in &v.runs {
            if chosen {
                segments.push((v.start + first * PAGE, count * PAGE, off));
            }
            off += count * PAGE;
        }
        if chosen {
            ranges.push((v.start, v.end));
        }
    }
    if ranges.is_empty() {
        return Ok((None, Vec::new()));
    }
    // one call for the descriptor, one round trip for its API handshake and every
    // registration
    let fd = inj
        .check(
            "userfaultfd",
            libc::SYS_userfaultfd,
            [(libc::O_CLOEXEC | libc::O_NONBLOCK) as u64, 0, 0, 0, 0, 0],
        )
        .map_err(|e| e.detail("lazy restart needs userfaultfd(2)"))?;
    let mut frame = scratch.frame();
    let api = uffd::UffdioApi {
        api: uffd::UFFD_API,
        features: uffd::UFFD_FEATURE_EVENT_FORK
            | uffd::UFFD_FEATURE_EVENT_REMAP
            | uffd::UFFD_FEATURE_EVENT_REMOVE
            | uffd::UFFD_FEATURE_EVENT_UNMAP,
        ioctls: 0,
    };
    let mut batch = Batch::new();
    let at = frame.put_struct(&api)?;
    batch.check(
        "ioctl(UFFDIO_API)",
        libc::SYS_ioctl,
        [fd, uffd::UFFDIO_API, at.as_u64(), 0, 0, 0],
        None,
    );
    for &(start, end) in &ranges {
        let reg = uffd::UffdioRegister {
            start,
            len: end - start,
            mode: uffd::UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        let at = frame.put_struct(&reg)?;
        batch.check(
            "ioctl(UFFDIO_REGISTER)",
            libc::SYS_ioctl,
            [fd, uffd::UFFDIO_REGISTER, at.as_u64(), 0, 0, 0],
            Some(format!("mapping {start:#x}-{end:#x}")),
        );
    }
    batch.run(inj, &mut frame)?;
    drop(frame);
    let pidfd = crate::sys::pidfd_open(pid).ctx(who())?;
    let copy = crate::sys::pidfd_getfd(pidfd.as_fd(), fd as i32).ctx(who())?;
    for &addr in hot {
        let page = addr & !(PAGE - 1);
        if !ranges.iter().any(|&(s, e)| s <= page && page < e) {
            continue;
        }
        prefill(copy.as_fd(), page, &segments, file).map_err(|e| e.context(who()))?;
    }
    Ok((
        Some(Registered {
            pid,
            pidfd,
            uffd: copy,
            segments,
        }),
        ranges.into_iter().map(|(s, e)| (s, e, 0)).collect(),
    ))
}

/// Copies the page at `page` in now (zeros if no saved page is there). The filler
/// finds it present and goes on.
fn prefill(
    uffd_fd: std::os::fd::BorrowedFd<'_>,
    page: u64,
    segments: &[(u64, u64, u64)],
    file: Option<&std::fs::File>,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let found = segments
        .iter()
        .find(|&&(a, l, _)| a <= page && page < a + l);
    let Some(&(a, _, off)) = found else {
        return match uffd::zeropage(uffd_fd, page, PAGE) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(crate::error::Error::errno(format!("page {page:#x}"), e)),
        };
    };
    let Some(file) = file else {
        return Err(crate::error::Error::with_detail(
            format!("page {page:#x}"),
            crate::error::Kind::CheckpointError,
            "the pages file cannot be opened",
        ));
    };
    let mut buf = vec![0u8; PAGE as usize];
    file.read_exact_at(&mut buf, off + (page - a))
        .map_err(|e| crate::error::Error::io(format!("page {page:#x}"), e))?;
    match uffd::copy(uffd_fd, page, buf.as_ptr() as u64, PAGE) {
        Ok(_) | Err((nix::errno::Errno::EEXIST, _)) => Ok(()),
        Err((e, _)) => Err(crate::error::Error::errno(format!("page {page:#x}"), e)),
    }
}
