//! Dirty-page tracking of a checkpointed process, for the next (incremental or live)
//! checkpoint: a userfaultfd in asynchronous write-protect mode registered over its
//! private mappings, and PAGEMAP_SCAN listing the pages written since (`sys::dirty`).
//!
//! The userfaultfd context lives only as long as a descriptor of it: closing the last
//! one unregisters every mapping. So the process keeps one, placed high in its table
//! (close-on-exec), and it is cpr's, not the program's: a checkpoint skips it
//! (`files::dump`), a restart never makes it, and the mappings' `uw` VmFlag it causes is
//! not refused. It is recognised by its features (exactly WP_ASYNC|WP_UNPOPULATED, which
//! no program's own userfaultfd has reason to ask for alone) and by the number the last
//! checkpoint recorded: each checkpoint that arms the tracking moves it to a new number
//! (the next free one above the old), so that a checkpoint naming an older parent than
//! the last one that armed it sees the difference and compares pages instead.
//!
//! Arming takes one injected call (userfaultfd(2) must be made in the process: the
//! context is bound to the caller's address space); registering and write-protecting are
//! ioctls cpr makes on a copy of the descriptor (pidfd_getfd), which act on the
//! process's address space.

use std::os::fd::AsFd;

use crate::engine::objects::memory::{Backing, PAGE, Vma};
use crate::engine::ptrace::{self, Injector};
use crate::error::{Context, Result};
use crate::proc::ProcDir;
use crate::sys::dirty;

/// The features cpr's userfaultfd asks for: they mark it as cpr's.
const FEATURES: u64 = dirty::UFFD_FEATURE_WP_ASYNC | dirty::UFFD_FEATURE_WP_UNPOPULATED;

/// How far below the soft RLIMIT_NOFILE cpr's descriptor goes.
const FD_WINDOW: i32 = 64;

/// Whether descriptor `fd` of the process is cpr's tracking userfaultfd.
pub fn is_own_uffd(dir: &ProcDir, fd: i32) -> bool {
    let Ok(link) = dir.link(&format!("fd/{fd}")) else {
        return false;
    };
    if link != "anon_inode:[userfaultfd]" {
        return false;
    }
    dir.read_text(&format!("fdinfo/{fd}"))
        .ok()
        .and_then(|t| crate::proc::uffd::features(&t))
        .is_some_and(|f| f & !dirty::UFFD_FEATURE_INITIALIZED == FEATURES)
}

/// The descriptors of process `pid` that are cpr's tracking userfaultfd.
pub fn own_uffds(pid: i32) -> Vec<i32> {
    let Ok(dir) = ProcDir::open(pid) else {
        return Vec::new();
    };
    dir.fds()
        .unwrap_or_default()
        .into_iter()
        .filter(|&fd| is_own_uffd(&dir, fd))
        .collect()
}

/// Whether the process holds userfaultfds that are not cpr's (its own registrations,
/// whose `uw`/`um` VmFlags stay refused).
pub fn has_foreign_uffd(pid: i32) -> bool {
    let Ok(dir) = ProcDir::open(pid) else {
        return true;
    };
    dir.fds().unwrap_or_default().into_iter().any(|fd| {
        dir.link(&format!("fd/{fd}"))
            .is_ok_and(|l| l == "anon_inode:[userfaultfd]")
            && !is_own_uffd(&dir, fd)
    })
}

/// The mappings tracking covers: private ones whose pages the checkpoint saves.
fn tracked_kind(v: &Vma) -> bool {
    !v.shared
        && matches!(
            v.backing,
            Backing::Anon | Backing::File { .. } | Backing::SharedMem { .. }
        )
        && !v.has_flag("io")
        && !v.has_flag("pf")
}

/// The pages of one mapping written since the tracking was armed (address ranges, in
/// order), or `None` where it does not know.
pub type Written = Option<Vec<(u64, u64)>>;

/// Pages written since the tracking was armed, per mapping of `vmas` (absolute address
/// ranges), or `None` for a mapping it does not cover (made since, or of another kind).
/// `fd`: where the parent left cpr's descriptor; without it there, nothing is tracked.
pub fn written(pid: i32, fd: i32, vmas: &[Vma]) -> Result<Vec<Written>> {
    let dir = ProcDir::open(pid)?;
    if !is_own_uffd(&dir, fd) {
        return Ok(vec![None; vmas.len()]);
    }
    let pagemap = dir.open_file("pagemap")?;
    let mut out = Vec::with_capacity(vmas.len());
    for v in vmas {
        if !tracked_kind(v) {
            out.push(None);
            continue;
        }
        let q = dirty::ScanQuery {
            flags: dirty::PM_SCAN_CHECK_WPASYNC,
            all: dirty::PAGE_IS_WRITTEN,
            any: 0,
            report: dirty::PAGE_IS_WRITTEN,
        };
        // downwards: smaps is being read meanwhile (memory::scan_downwards)
        match crate::engine::objects::memory::scan_downwards(pagemap.as_fd(), v.start, v.end, q) {
            Ok(ranges) => out.push(Some(ranges.into_iter().map(|(s, e, _)| (s, e)).collect())),
            // not registered (mapped since): every page counts as written
            Err(nix::errno::Errno::EPERM) => out.push(None),
            Err(e) => return Err(crate::error::Error::errno(format!("process {pid}"), e)),
        }
    }
    Ok(out)
}

/// The number cpr's descriptor takes at this checkpoint: the first free one above the
/// one it had (`old`), inside the window below the soft RLIMIT_NOFILE, wrapping; never
/// `old` itself (its number tells which checkpoint armed it). `None` without room.
pub fn next_fd(pid: i32, old: Option<i32>) -> Option<i32> {
    let (soft, _) = crate::sys::prlimit(pid, libc::RLIMIT_NOFILE as i32, None).ok()?;
    let top = soft.min(1 << 20) as i32;
    let low = (top - FD_WINDOW).max(3);
    let used = ProcDir::open(pid).ok()?.fds().ok()?;
    let start = old.map_or(low, |o| (o + 1).max(low));
    (start..top)
        .chain(low..start)
        .find(|n| !used.contains(n) && Some(*n) != old)
}

/// Arms tracking in frozen process `pid` (main thread stopped with registers `regs`),
/// leaving cpr's descriptor at `fd`. One old descriptor (`old`) whose context tracks
/// this process is moved there and re-armed: only the pages written since are
/// write-protected again. Else the old ones are closed (ending their registrations) and
/// a new userfaultfd is made, and every private mapping registered and write-protected.
/// From now, PAGEMAP_SCAN lists what the process writes.
pub fn arm(pid: i32, regs: &ptrace::Regs, old: &[i32], fd: i32) -> Result<()> {
    let reuse = match old {
        [_] => tracks_this_process(pid)?,
        _ => false,
    };
    let gate = ptrace::checkpoint_gate(pid)?;
    let made = (|| -> Result<()> {
        let resume = crate::engine::objects::threads::resume_regs(regs);
        let inj = Injector::transient(pid, gate, &resume)?;
        if reuse {
            let o = old[0] as u64;
            let placed = inj.check(
                "dup3",
                libc::SYS_dup3,
                [o, fd as u64, libc::O_CLOEXEC as u64, 0, 0, 0],
            );
            inj.call(libc::SYS_close, [o, 0, 0, 0, 0, 0])?;
            return placed.map(drop);
        }
        for &o in old {
            inj.call(libc::SYS_close, [o as u64, 0, 0, 0, 0, 0])?;
        }
        let mut flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
        if nix::unistd::geteuid().as_raw() != 0 {
            flags |= dirty::UFFD_USER_MODE_ONLY;
        }
        let made = inj.check("userfaultfd", libc::SYS_userfaultfd, [flags, 0, 0, 0, 0, 0])?;
        // the handshake before it is placed: a userfaultfd left without it would be
        // taken for the program's own
        let placed = handshake(pid, made as i32).and_then(|()| {
            inj.check(
                "dup3",
                libc::SYS_dup3,
                [made, fd as u64, libc::O_CLOEXEC as u64, 0, 0, 0],
            )
        });
        inj.call(libc::SYS_close, [made, 0, 0, 0, 0, 0])?;
        placed.map(drop)
    })();
    let removed = ptrace::remove_vdso_trampoline(pid, gate);
    made?;
    removed?;
    register_all(pid, fd, reuse)
}

/// Whether some mapping of `pid` is registered in async write-protect mode: then the
/// one userfaultfd of cpr's it holds is the one tracking it (a registration is never
/// inherited across fork, a descriptor is).
fn tracks_this_process(pid: i32) -> Result<bool> {
    let dir = ProcDir::open(pid)?;
    let pagemap = dir.open_file("pagemap")?;
    Ok(dir.maps()?.iter().filter(|m| !m.shared()).any(|m| {
        // one page is enough to ask
        dirty::pagemap_scan_written(
            pagemap.as_fd(),
            m.start,
            m.start + PAGE,
            dirty::PM_SCAN_CHECK_WPASYNC,
        )
        .is_ok()
    }))
}

/// Ends tracking in frozen process `pid` (main thread stopped with registers `regs`):
/// cpr's descriptors `fds` are closed (the last close unregisters every mapping).
pub fn disarm(pid: i32, regs: &ptrace::Regs, fds: &[i32]) -> Result<()> {
    let gate = ptrace::checkpoint_gate(pid)?;
    let closed = (|| -> Result<()> {
        let resume = crate::engine::objects::threads::resume_regs(regs);
        let inj = Injector::transient(pid, gate, &resume)?;
        for &fd in fds {
            inj.call(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])?;
        }
        Ok(())
    })();
    let removed = ptrace::remove_vdso_trampoline(pid, gate);
    closed?;
    removed
}

/// UFFDIO_API with cpr's features on the new userfaultfd `fd` of `pid`.
fn handshake(pid: i32, fd: i32) -> Result<()> {
    let who = format!("process {pid}");
    let uffd = crate::sys::steal_fd(pid, fd).ctx(format!("{who}: dirty-page tracking"))?;
    let got =
        dirty::uffd_api(uffd.as_fd(), FEATURES).ctx(format!("{who}: userfaultfd features"))?;
    if got & FEATURES != FEATURES {
        return Err(crate::error::Error::with_detail(
            who,
            crate::error::Kind::CheckpointError,
            "the kernel lacks asynchronous userfaultfd write-protection",
        ));
    }
    Ok(())
}

/// Registers every private mapping of `pid` with its userfaultfd at `fd` and
/// write-protects it. A mapping the kernel refuses stays untracked (the next checkpoint
/// compares its pages).
///
/// `rearm`: the userfaultfd already tracks the process; a mapping it covers gets only
/// its written pages write-protected again (PM_SCAN_WP_MATCHING), which is much less
/// work than the whole mapping.
fn register_all(pid: i32, fd: i32, rearm: bool) -> Result<()> {
    let who = format!("process {pid}");
    let uffd = crate::sys::steal_fd(pid, fd).ctx(format!("{who}: dirty-page tracking"))?;
    let dir = ProcDir::open(pid)?;
    let pagemap = dir.open_file("pagemap")?;
    let private = dir.maps()?.into_iter().filter(|m| {
        !m.shared() && m.path != "[vsyscall]" && !crate::engine::objects::vdso::is_vdso(&m.path)
    });
    for m in private {
        let len = m.end - m.start;
        let rearmed = rearm
            && dirty::pagemap_scan_written(
                pagemap.as_fd(),
                m.start,
                m.end,
                dirty::PM_SCAN_WP_MATCHING | dirty::PM_SCAN_CHECK_WPASYNC,
            )
            .is_ok();
        if !rearmed && dirty::uffd_register_wp(uffd.as_fd(), m.start, len).is_ok() {
            let _ = dirty::uffd_write_protect(uffd.as_fd(), m.start, len);
        }
    }
    Ok(())
}
