//! The vDSO and its data pages (`[vdso]`, `[vvar]`, `[vvar_vclock]`): never saved (the
//! kernel provides them); a mapping of the image marks where they were
//! (`Backing::Vdso`), and restart moves the new process's ones there with mremap, so that
//! code and pointers of the image that lead into them stay valid.
//!
//! The search for a `syscall` instruction in the vDSO that injection runs through is
//! `ptrace::syscall_gate` (engine/ptrace/inject.rs).

use super::memory::{Backing, Vma};
use crate::engine::ptrace::{Injector, RemoteAddr};
use crate::error::{Error, Kind, Result};
use crate::proc::{MapsLine, ProcDir};

/// Whether a mapping named `name` in /proc/PID/maps is the vDSO or its data pages.
pub fn is_vdso(name: &str) -> bool {
    name == "[vdso]" || name.starts_with("[vvar")
}

/// Moves the vDSO areas `now` of a stopped restore child where the image had them
/// (`image`), or unmaps them if the image had none.
pub fn restore(inj: &Injector, who: &str, now: &[&MapsLine], image: &[Vma]) -> Result<()> {
    let wanted: Vec<&Vma> = image
        .iter()
        .filter(|v| v.backing == Backing::Vdso)
        .collect();
    if wanted.is_empty() {
        for m in now {
            inj.check(
                "munmap vdso",
                libc::SYS_munmap,
                [m.start, m.end - m.start, 0, 0, 0, 0],
            )?;
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
            inj.check(
                "munmap vdso",
                libc::SYS_munmap,
                [m.start, m.end - m.start, 0, 0, 0, 0],
            )?;
        }
    }
    if pairs.iter().all(|(from, to, _)| from == to) {
        return Ok(());
    }
    relocate(inj, &pairs)
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
/// places may overlap), and unmaps what is left of the parking area.
fn relocate(inj: &Injector, pairs: &[(RemoteAddr, RemoteAddr, u64)]) -> Result<()> {
    // move out of the way first (into a fresh gap), then home
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
    for (from, _, len) in pairs {
        let dst = tmp + (*from - lo);
        inj.check(
            "mremap vdso",
            libc::SYS_mremap,
            [
                from.as_u64(),
                *len,
                *len,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                dst.as_u64(),
                0,
            ],
        )?;
    }
    for (from, to, len) in pairs {
        let src = tmp + (*from - lo);
        inj.check(
            "mremap vdso",
            libc::SYS_mremap,
            [
                src.as_u64(),
                *len,
                *len,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                to.as_u64(),
                0,
            ],
        )?;
    }
    // the parking area's leftovers (if any)
    let cur = ProcDir::open(inj.tid)?.maps()?;
    let parking = tmp.as_u64()..=(tmp + span).as_u64();
    for m in cur
        .iter()
        .filter(|m| parking.contains(&m.start) && parking.contains(&m.end) && m.path.is_empty())
    {
        inj.check(
            "munmap",
            libc::SYS_munmap,
            [m.start, m.end - m.start, 0, 0, 0, 0],
        )?;
    }
    Ok(())
}
