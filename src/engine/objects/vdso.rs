//! The vDSO and its data pages (`[vdso]`, `[vvar]`, `[vvar_vclock]`): never saved (the
//! kernel provides them); a mapping of the image marks where they were
//! (`Backing::Vdso`), and restart moves the new process's ones there with mremap, so that
//! code and pointers of the image that lead into them stay valid.
//!
//! The search for a `syscall` instruction in the vDSO that injection runs through is
//! `ptrace::syscall_gate` (engine/ptrace/inject.rs).

use super::memory::{Backing, Vma};
use crate::engine::ptrace::{Batch, Injector, RemoteAddr};
use crate::error::{Error, Kind, Result};
use crate::proc::MapsLine;

/// Whether a mapping named `name` in /proc/PID/maps is the vDSO or its data pages.
pub fn is_vdso(name: &str) -> bool {
    name == "[vdso]" || name.starts_with("[vvar")
}

/// Moves the vDSO areas `now` of a stopped restore child where the image had them
/// (`image`), or unmaps them if the image had none: the calls go into `batch` (run by the
/// caller before anything is mapped where the areas are now).
pub fn restore(
    inj: &Injector,
    batch: &mut Batch,
    who: &str,
    now: &[&MapsLine],
    image: &[Vma],
) -> Result<()> {
    let wanted: Vec<&Vma> = image
        .iter()
        .filter(|v| v.backing == Backing::Vdso)
        .collect();
    if wanted.is_empty() {
        for m in now {
            batch.check(
                "munmap vdso",
                libc::SYS_munmap,
                [m.start, m.end - m.start, 0, 0, 0, 0],
                None,
            );
        }
        return Ok(());
    }
    let pairs = pair(who, now, &wanted)?;
    // the areas the image no longer had (a process that unmapped its [vdso] but kept its
    // [vvar], say) go
    for m in now {
        if !pairs
            .iter()
            .any(|(from, _, _)| *from == RemoteAddr::from(m.start))
        {
            batch.check(
                "munmap vdso",
                libc::SYS_munmap,
                [m.start, m.end - m.start, 0, 0, 0, 0],
                None,
            );
        }
    }
    let moving: Vec<_> = pairs.iter().filter(|(from, to, _)| from != to).collect();
    let overlap = |a: RemoteAddr, b: RemoteAddr, len_a: u64, len_b: u64| {
        a.as_u64() < b.as_u64() + len_b && b.as_u64() < a.as_u64() + len_a
    };
    // no area lands where one still is: each goes home at once
    if moving.iter().all(|&&(_, to, tl)| {
        moving
            .iter()
            .all(|&&(from, _, fl)| !overlap(to, from, tl, fl))
    }) {
        for &&(from, to, len) in &moving {
            batch.check(
                "mremap vdso",
                libc::SYS_mremap,
                mremap_args(from, to, len),
                None,
            );
        }
        return Ok(());
    }
    relocate(inj, batch, &pairs)
}

fn mremap_args(from: RemoteAddr, to: RemoteAddr, len: u64) -> [u64; 6] {
    [
        from.as_u64(),
        len,
        len,
        (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
        to.as_u64(),
        0,
    ]
}

/// (where it is now, where the image had it, length) of each area, paired by name and
/// size: the kernel's layout must be the same as at checkpoint.
fn pair(
    who: &str,
    now: &[&MapsLine],
    wanted: &[&Vma],
) -> Result<Vec<(RemoteAddr, RemoteAddr, u64)>> {
    let mut pairs = Vec::new();
    for w in wanted {
        let m = now
            .iter()
            .find(|m| m.path == w.name && m.end - m.start == w.end - w.start)
            .ok_or_else(|| {
                Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    format!(
                        "this kernel has no {} of {} bytes as the image had",
                        w.name,
                        w.end - w.start
                    ),
                )
            })?;
        pairs.push((m.start.into(), w.start.into(), w.end - w.start));
    }
    Ok(pairs)
}

/// Moves the areas out of the way first, into a fresh gap, then home (their old and new
/// places overlap), and unmaps what is left of the parking area: all but the parking
/// mmap go into `batch`.
fn relocate(
    inj: &Injector,
    batch: &mut Batch,
    pairs: &[(RemoteAddr, RemoteAddr, u64)],
) -> Result<()> {
    let lo = pairs.iter().map(|p| p.0).min().unwrap();
    let hi = pairs.iter().map(|p| p.0 + p.2).max().unwrap();
    let span = hi - lo;
    let tmp = RemoteAddr::from(inj.check(
        "mmap vdso parking",
        libc::SYS_mmap,
        [
            0,
            span,
            0,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?);
    for &(from, _, len) in pairs {
        batch.check(
            "mremap vdso",
            libc::SYS_mremap,
            mremap_args(from, tmp + (from - lo), len),
            None,
        );
    }
    for &(from, to, len) in pairs {
        batch.check(
            "mremap vdso",
            libc::SYS_mremap,
            mremap_args(tmp + (from - lo), to, len),
            None,
        );
    }
    // the parking area's leftovers: all of it but where an area went home (the kernel
    // may have put it there); where an area was moved out there is nothing to unmap
    let mut homes: Vec<(u64, u64)> = pairs
        .iter()
        .map(|&(_, to, len)| (to.as_u64(), to.as_u64() + len))
        .collect();
    homes.sort_unstable();
    let (mut at, end) = (tmp.as_u64(), tmp.as_u64() + span);
    for (s, e) in homes {
        if e <= at || s >= end {
            continue;
        }
        if s > at {
            batch.check("munmap", libc::SYS_munmap, [at, s - at, 0, 0, 0, 0], None);
        }
        at = at.max(e);
    }
    if at < end {
        batch.check("munmap", libc::SYS_munmap, [at, end - at, 0, 0, 0, 0], None);
    }
    Ok(())
}
