//! Pages a child still shared copy-on-write with its parent since a fork: found at
//! checkpoint (the same page frame at the same address in both, which pagemap shows to
//! privileged readers), saved once (with the parent), and at restart made in the
//! parent's restore child before it forks the child, which takes them over, so that
//! they are shared again.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use super::memory::{Backing, MmRecord, PAGE, Vma};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::ProcDir;
use crate::statefile::reader::damaged_record;
use crate::sys::premap::Area;

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
const PFN_MASK: u64 = (1 << 55) - 1;

/// Mappings whose pages may be shared with the parent: private anonymous memory and
/// private file mappings (their written pages), that neither grow down nor are
/// unreserved (a moved mapping keeps neither flag as made).
pub fn may_inherit(v: &Vma) -> bool {
    matches!(v.backing, Backing::Anon | Backing::File { .. })
        && !v.shared
        && !v.has_flag("gd")
        && !v.has_flag("nr")
}

/// Whether mappings `a` and `b` have the same backing at the same addresses (the same
/// file at the same offsets, or both anonymous memory).
pub fn same_backing(a: &Vma, b: &Vma) -> bool {
    match (&a.backing, &b.backing) {
        (Backing::Anon, Backing::Anon) => true,
        (
            Backing::File {
                path: pa,
                offset: oa,
            },
            Backing::File {
                path: pb,
                offset: ob,
            },
        ) => pa == pb && oa.wrapping_sub(a.start) == ob.wrapping_sub(b.start),
        _ => false,
    }
}

/// What restore takes as given of `v.cow`: only in mappings that may inherit,
/// inside the mapping, apart from each other and from the saved pages.
pub fn check_inherited_runs(v: &Vma, pages: u64) -> Result<()> {
    if v.cow.is_empty() {
        return Ok(());
    }
    let bad = |what: &str| {
        damaged_record(format_args!(
            "inherited pages of mapping {:#x}-{:#x}: {what}",
            v.start, v.end
        ))
    };
    if !may_inherit(v) {
        return Err(bad("not private anonymous memory"));
    }
    let mut all: Vec<(u64, u64)> = v.runs.iter().chain(&v.cow).copied().collect();
    all.sort();
    let mut prev_end = 0;
    for (first, count) in all {
        let Some(end) = first
            .checked_add(count)
            .filter(|&e| e <= pages && count > 0)
        else {
            return Err(bad("outside the mapping"));
        };
        if first < prev_end {
            return Err(bad("overlapping"));
        }
        prev_end = end;
    }
    Ok(())
}

fn read_pagemap(pm: &File, start: u64, end: u64) -> Result<Vec<u64>> {
    let mut buf = vec![0u8; ((end - start) / PAGE * 8) as usize];
    pm.read_exact_at(&mut buf, start / PAGE * 8)
        .ctx("pagemap")?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

fn same_frame(a: u64, b: u64) -> bool {
    let present = |e: u64| e & PM_PRESENT != 0 && e & (PM_SWAP | PM_FILE) == 0 && e & PFN_MASK != 0;
    present(a) && present(b) && a & PFN_MASK == b & PFN_MASK
}

fn push_page(runs: &mut Vec<(u64, u64)>, page: u64) {
    match runs.last_mut() {
        Some((s, c)) if *s + *c == page => *c += 1,
        _ => runs.push((page, 1)),
    }
}

/// What backs a candidate mapping: anonymous memory (None), or a file's (device,
/// inode) with the file offset of address 0.
type Key = Option<(String, u64, u64)>;

/// The private mappings of process `dir` that may hold shared pages, with what backs
/// them: only names that `memory::plan` surely records as anonymous memory or a file.
fn candidates(dir: &ProcDir) -> Result<Vec<(u64, u64, Key)>> {
    let flags: std::collections::BTreeMap<u64, Vec<String>> =
        dir.smaps_flags()?.into_iter().collect();
    Ok(dir
        .maps()?
        .into_iter()
        .filter(|m| {
            let f = flags.get(&m.start);
            !m.shared() && !f.is_some_and(|f| f.iter().any(|x| x == "gd" || x == "nr"))
        })
        .filter_map(|m| {
            let p = m.path.as_str();
            if p.is_empty() || p == "[heap]" || p.starts_with("[anon:") {
                return Some((m.start, m.end, None));
            }
            let file = p.starts_with('/')
                && !p.ends_with(" (deleted)")
                && !p.starts_with("/memfd:")
                && !p.starts_with("/SYSV")
                && !p.starts_with("/dev/")
                && !super::posix_shm::is_posix_shm(p);
            file.then(|| {
                let key = (m.dev.clone(), m.inode, m.offset.wrapping_sub(m.start));
                (m.start, m.end, Some(key))
            })
        })
        .collect())
}

/// At checkpoint, before any page of the set is read (reading a page shared
/// copy-on-write unshares it: process_vm_readv pins it), in child `pid` whose parent
/// `parent` is frozen in the same set: the address ranges of the child's private
/// anonymous pages that are the parent's very page (the same page frame). Without the
/// privilege to see page frames nothing is found, and every page is saved, as before.
/// `parents` keeps what was read of each parent, for its other children: a parent of
/// many is read once, not once per child.
pub fn shared_with_parent(pid: i32, parent: i32, parents: &mut Parents) -> Result<Vec<(u64, u64)>> {
    let cdir = ProcDir::open(pid)?;
    let theirs = match parents.0.entry(parent) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let pdir = ProcDir::open(parent)?;
            e.insert(ParentView {
                candidates: candidates(&pdir)?,
                pagemap: pdir.open_file("pagemap")?,
                read: std::collections::HashMap::new(),
            })
        }
    };
    let cpm = cdir.open_file("pagemap")?;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (cs, ce, ckey) in candidates(&cdir)? {
        for (ps, pe, pkey) in &theirs.candidates {
            let (lo, hi) = (ps.max(&cs), pe.min(&ce));
            let (lo, hi) = (*lo, *hi);
            if lo >= hi || *pkey != ckey {
                continue;
            }
            let mine = read_pagemap(&cpm, lo, hi)?;
            let their = match theirs.read.entry((lo, hi)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(read_pagemap(&theirs.pagemap, lo, hi)?)
                }
            };
            for (k, (c, p)) in mine.into_iter().zip(their.iter()).enumerate() {
                if same_frame(c, *p) {
                    let at = lo + k as u64 * PAGE;
                    match out.last_mut() {
                        Some((_, e)) if *e == at => *e += PAGE,
                        _ => out.push((at, at + PAGE)),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What `shared_with_parent` read of each parent (by PID): its candidate mappings and
/// their page frames, by address range. The parents are frozen: nothing changes.
#[derive(Default)]
pub struct Parents(std::collections::BTreeMap<i32, ParentView>);

pub struct ParentView {
    candidates: Vec<(u64, u64, Key)>,
    pagemap: File,
    read: std::collections::HashMap<(u64, u64), Vec<u64>>,
}

/// The saved pages of `vmas` that lie in `shared` (sorted address ranges, from
/// `shared_with_parent`) move from `runs` to `inherited`.
pub fn mark_inherited(vmas: &mut [Vma], shared: &[(u64, u64)]) {
    let is_shared = |a: u64| {
        let i = shared.partition_point(|&(_, e)| e <= a);
        shared.get(i).is_some_and(|&(s, _)| s <= a)
    };
    for v in vmas.iter_mut().filter(|v| may_inherit(v)) {
        if !shared.iter().any(|&(s, e)| s < v.end && v.start < e) {
            continue;
        }
        let mut runs = Vec::new();
        let mut inherited = Vec::new();
        for &(first, count) in &v.runs {
            for page in first..first + count {
                let to = if is_shared(v.start + page * PAGE) {
                    &mut inherited
                } else {
                    &mut runs
                };
                push_page(to, page);
            }
        }
        v.runs = runs;
        v.cow = inherited;
    }
}

/// A process of the statefile as the sharing sees it.
pub struct Member<'a> {
    pub pid: i32,
    pub ppid: i32,
    pub mm: &'a MmRecord,
}

/// Where an inherited range's data is saved: `len` bytes at `addr`, in the pages file
/// of process `owner` at `file_off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub addr: u64,
    pub len: u64,
    pub owner: i32,
    pub file_off: u64,
}

/// Where each inherited page of `members[who]` is saved (the parent's page, or its
/// parent's if that one was inherited too); a page no ancestor saved is a damaged record.
pub fn sources(members: &[Member<'_>], who: usize) -> Result<Vec<Source>> {
    let m = &members[who];
    let mut out = Vec::new();
    for v in &m.mm.vmas {
        for &(first, count) in &v.cow {
            let addr = v.start + first * PAGE;
            let range = (addr, count * PAGE);
            resolve(members, m.ppid, range, v, members.len(), &mut out)?;
        }
    }
    Ok(out)
}

/// At restart, before anything is made: every inherited page of every process of one
/// statefile (`members`) is saved by an ancestor.
pub fn check_all(members: &[Member<'_>]) -> Result<()> {
    for (who, m) in members.iter().enumerate() {
        if m.mm.vmas.iter().any(|v| !v.cow.is_empty()) {
            sources(members, who).map_err(|e| e.context(format!("process {}", m.pid)))?;
        }
    }
    Ok(())
}

/// The sources of `range` (address, length) of mapping `like`, as saved by process
/// `owner` or (where it inherited them too) by its ancestors, at most `depth` up.
fn resolve(
    members: &[Member<'_>],
    owner: i32,
    range: (u64, u64),
    like: &Vma,
    depth: usize,
    out: &mut Vec<Source>,
) -> Result<()> {
    let (addr, len) = range;
    let missing = || damaged_record(format_args!("inherited pages at {addr:#x}: not saved"));
    let Some(p) = members
        .iter()
        .find(|p| p.pid == owner)
        .filter(|_| depth > 0)
    else {
        return Err(missing());
    };
    let end = addr + len;
    let mut found = 0u64;
    let mut file_off = 0u64;
    for v in &p.mm.vmas {
        let overlaps = v.start < end && addr < v.end;
        if overlaps && !(may_inherit(v) && same_backing(v, like)) {
            return Err(missing());
        }
        for &(first, count) in &v.runs {
            let (s, e) = (v.start + first * PAGE, v.start + (first + count) * PAGE);
            let (lo, hi) = (s.max(addr), e.min(end));
            if overlaps && lo < hi {
                out.push(Source {
                    addr: lo,
                    len: hi - lo,
                    owner: p.pid,
                    file_off: file_off + (lo - s),
                });
                found += hi - lo;
            }
            file_off += count * PAGE;
        }
        if !overlaps {
            continue;
        }
        for &(first, count) in &v.cow {
            let (s, e) = (v.start + first * PAGE, v.start + (first + count) * PAGE);
            let (lo, hi) = (s.max(addr), e.min(end));
            if lo < hi {
                resolve(members, p.ppid, (lo, hi - lo), like, depth - 1, out)?;
                found += hi - lo;
            }
        }
    }
    if found != len {
        return Err(missing());
    }
    Ok(())
}

/// The regions a restore child made before forking: (image start, image end, where
/// they are now), in `area`; `pid` is the process's original PID.
#[derive(Debug)]
pub struct Premaps {
    pub pid: i32,
    pub area: Area,
    pub regions: Vec<(u64, u64, u64)>,
}

/// What `premap` works from.
pub struct PremapInput<'a> {
    pub pid: i32,
    pub mm: &'a MmRecord,
    /// The address ranges of the pages the process's children inherit.
    pub lent: Vec<(u64, u64)>,
    /// The parent's regions, when the parent forked this process.
    pub parent: Option<&'a Premaps>,
    pub sources: Vec<Source>,
    /// Opens the pages file of a process of the statefile.
    pub open_pages: &'a dyn Fn(i32) -> Result<File>,
    /// Opens a mapped file (by its recorded path) for reading.
    pub open_mapped: &'a dyn Fn(&str) -> Result<File>,
}

/// In a restore child, before it forks: each private anonymous mapping that holds
/// inherited pages or pages its children inherit is made in a reserved area and filled
/// (taking the parent's pages over where the parent forked it, reading the rest), so
/// that the children forked next share them. None when there is nothing to share.
pub fn premap(input: &PremapInput<'_>) -> Result<Option<Premaps>> {
    let mm = input.mm;
    let chosen: Vec<&Vma> = mm
        .vmas
        .iter()
        .filter(|v| {
            may_inherit(v)
                && (!v.cow.is_empty() || input.lent.iter().any(|&(s, e)| s < v.end && v.start < e))
        })
        .collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let total: u64 = chosen.iter().map(|v| v.end - v.start + PAGE).sum::<u64>() + PAGE;
    let area = super::memory::gap_candidates(&mm.vmas, total)
        .into_iter()
        .find_map(|c| Area::reserve(c, total).ok())
        .ok_or_else(|| {
            Error::with_detail("", Kind::NotEnoughSpace, "no room to premap shared pages")
        })?;
    let own = (input.open_pages)(input.pid)?;
    let mut regions = Vec::new();
    let mut off = PAGE;
    let run_offsets = file_offsets(mm);
    // the pages files of ancestors read from, each opened once
    let mut ancestors: std::collections::HashMap<i32, File> = std::collections::HashMap::new();
    for v in chosen {
        let len = v.end - v.start;
        let err = |e| Error::errno("", e).detail(format!("premapping {:#x}-{:#x}", v.start, v.end));
        match &v.backing {
            Backing::File { path, offset } => {
                let f = (input.open_mapped)(path)?;
                area.fresh_file(off, len, f.as_raw_fd(), *offset)
                    .map_err(err)?;
            }
            _ => area.fresh(off, len, false).map_err(err)?,
        }
        if v.has_flag("nh") {
            // before khugepaged may copy the pages into a huge page of this process alone
            area.advise(off, len, libc::MADV_NOHUGEPAGE).map_err(err)?;
        }
        let moved = take_parent_pages(input, v, &area, off)?;
        discard_unused(v, &moved, &area, off)?;
        for (k, &(first, count)) in v.runs.iter().enumerate() {
            let at = off + first * PAGE;
            let from = run_offsets[&(v.start, k)];
            area.read_into(at, count * PAGE, own.as_raw_fd(), from)
                .map_err(err)?;
        }
        for s in input
            .sources
            .iter()
            .filter(|s| s.addr < v.end && v.start < s.addr + s.len)
        {
            if moved
                .iter()
                .any(|&(lo, hi)| lo <= s.addr && s.addr + s.len <= hi)
            {
                continue;
            }
            let f = match ancestors.entry(s.owner) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((input.open_pages)(s.owner)?)
                }
            };
            area.read_into(off + (s.addr - v.start), s.len, f.as_raw_fd(), s.file_off)
                .map_err(err)?;
        }
        regions.push((v.start, v.end, area.addr + off));
        off += len + PAGE;
    }
    Ok(Some(Premaps {
        pid: input.pid,
        area,
        regions,
    }))
}

/// The pages file offset of each run: (mapping start, run index) -> offset.
fn file_offsets(mm: &MmRecord) -> std::collections::HashMap<(u64, usize), u64> {
    let mut out = std::collections::HashMap::new();
    let mut off = 0;
    for v in &mm.vmas {
        for (k, &(_, count)) in v.runs.iter().enumerate() {
            out.insert((v.start, k), off);
            off += count * PAGE;
        }
    }
    out
}

/// Moves the parent's regions' part under `v` (where `v` inherits pages from it) into
/// `area` at `off`; returns the address ranges taken over.
fn take_parent_pages(
    input: &PremapInput<'_>,
    v: &Vma,
    area: &Area,
    off: u64,
) -> Result<Vec<(u64, u64)>> {
    let Some(parent) = input.parent else {
        return Ok(Vec::new());
    };
    let inherits = |lo: u64, hi: u64| {
        v.cow.iter().any(|&(f, c)| {
            let (s, e) = (v.start + f * PAGE, v.start + (f + c) * PAGE);
            s < hi && lo < e
        })
    };
    let mine = ProcDir::open(std::process::id() as i32)?;
    let mut moved = Vec::new();
    for &(ps, pe, pat) in &parent.regions {
        let (lo, hi) = (ps.max(v.start), pe.min(v.end));
        if lo >= hi || !inherits(lo, hi) {
            continue;
        }
        // the parent's region may be several mappings now: move each piece on its own
        let (from, to) = (pat + (lo - ps), pat + (hi - ps));
        for (start, end) in mine.mappings_within(from, to)? {
            let (a, b) = (start.max(from), end.min(to));
            let addr = ps + (a - pat);
            area.take_from(
                &parent.area,
                a - parent.area.addr,
                b - a,
                off + (addr - v.start),
            )
            .map_err(|e| Error::errno("", e).detail("taking the parent's pages"))?;
        }
        moved.push((lo, hi));
    }
    Ok(moved)
}

/// In the ranges taken over from the parent, the pages this process did not have.
fn discard_unused(v: &Vma, moved: &[(u64, u64)], area: &Area, off: u64) -> Result<()> {
    let mut have: Vec<(u64, u64)> = v
        .runs
        .iter()
        .chain(&v.cow)
        .map(|&(f, c)| (v.start + f * PAGE, v.start + (f + c) * PAGE))
        .collect();
    have.sort();
    for &(lo, hi) in moved {
        let mut at = lo;
        for &(s, e) in have.iter().filter(|&&(s, e)| s < hi && lo < e) {
            if s > at {
                drop_range(area, off, v, at, s)?;
            }
            at = at.max(e);
        }
        if at < hi {
            drop_range(area, off, v, at, hi)?;
        }
    }
    Ok(())
}

fn drop_range(area: &Area, off: u64, v: &Vma, lo: u64, hi: u64) -> Result<()> {
    area.discard(off + (lo - v.start), hi - lo)
        .map_err(|e| Error::errno("", e).detail("dropping pages"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(start: u64, pages: u64, runs: Vec<(u64, u64)>, inherited: Vec<(u64, u64)>) -> Vma {
        Vma {
            start,
            end: start + pages * PAGE,
            prot: libc::PROT_READ | libc::PROT_WRITE,
            shared: false,
            backing: Backing::Anon,
            name: String::new(),
            flags: vec![],
            runs,
            cow: inherited,
            inherited: vec![],
        }
    }

    #[test]
    fn shared_pages_move_from_saved_to_inherited() {
        let mut vmas = vec![anon(0x10000, 8, vec![(0, 8)], vec![])];
        mark_inherited(&mut vmas, &[(0x11000, 0x13000), (0x16000, 0x17000)]);
        assert_eq!(vmas[0].runs, vec![(0, 1), (3, 3), (7, 1)]);
        assert_eq!(vmas[0].cow, vec![(1, 2), (6, 1)]);
    }

    #[test]
    fn damaged_inherited_runs_are_refused() {
        let ok = anon(0x10000, 8, vec![(0, 2)], vec![(2, 6)]);
        assert!(check_inherited_runs(&ok, 8).is_ok());
        for bad in [
            anon(0x10000, 8, vec![(0, 2)], vec![(1, 2)]),
            anon(0x10000, 8, vec![], vec![(7, 2)]),
            anon(0x10000, 8, vec![], vec![(u64::MAX, 2)]),
            Vma {
                shared: true,
                ..anon(0x10000, 8, vec![], vec![(0, 1)])
            },
        ] {
            assert!(check_inherited_runs(&bad, 8).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inherited_pages_are_found_where_an_ancestor_saved_them() {
        let mm = |vmas| MmRecord {
            vmas,
            ..MmRecord::default()
        };
        // the root saved pages 0..4 after 2 pages of another mapping
        let root = mm(vec![
            anon(0x1000, 2, vec![(0, 2)], vec![]),
            anon(0x10000, 4, vec![(0, 4)], vec![]),
        ]);
        let child = mm(vec![anon(0x10000, 4, vec![(0, 1)], vec![(1, 3)])]);
        let grandchild = mm(vec![anon(0x10000, 4, vec![], vec![(0, 4)])]);
        let members = [
            Member {
                pid: 1,
                ppid: 0,
                mm: &root,
            },
            Member {
                pid: 2,
                ppid: 1,
                mm: &child,
            },
            Member {
                pid: 3,
                ppid: 2,
                mm: &grandchild,
            },
        ];
        let got = sources(&members, 2).unwrap();
        assert_eq!(
            got,
            vec![
                Source {
                    addr: 0x10000,
                    len: PAGE,
                    owner: 2,
                    file_off: 0
                },
                Source {
                    addr: 0x11000,
                    len: 3 * PAGE,
                    owner: 1,
                    file_off: 3 * PAGE
                },
            ]
        );
        assert!(check_all(&members).is_ok());
        // a parent that mapped another file there
        let file = |path: &str, offset| Vma {
            backing: Backing::File {
                path: path.into(),
                offset,
            },
            ..anon(0x10000, 4, vec![(0, 4)], vec![])
        };
        let (a, b) = (mm(vec![file("/a", 0)]), mm(vec![file("/b", 0)]));
        let mut c = mm(vec![file("/a", 0)]);
        c.vmas[0].runs = vec![];
        c.vmas[0].cow = vec![(0, 4)];
        let same = [
            Member {
                pid: 1,
                ppid: 0,
                mm: &a,
            },
            Member {
                pid: 2,
                ppid: 1,
                mm: &c,
            },
        ];
        assert!(check_all(&same).is_ok());
        let other = [
            Member {
                pid: 1,
                ppid: 0,
                mm: &b,
            },
            Member {
                pid: 2,
                ppid: 1,
                mm: &c,
            },
        ];
        assert!(check_all(&other).is_err());
        // a parent that did not have the page
        let orphan = mm(vec![anon(0x20000, 1, vec![], vec![(0, 1)])]);
        let members = [
            Member {
                pid: 1,
                ppid: 0,
                mm: &root,
            },
            Member {
                pid: 4,
                ppid: 1,
                mm: &orphan,
            },
        ];
        assert!(check_all(&members).is_err());
    }
}
