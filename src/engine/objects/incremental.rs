//! Incremental checkpoints: a statefile may name an earlier one of the same processes
//! (taken with `-g`) as its parent. It then saves only the pages written since; the
//! others are listed per mapping as `Vma::inherited` and found in the parent chain at
//! restart.
//!
//! `chain.json` (`ChainRecord`) names the parent by its path and the SHA-256 of its
//! MANIFEST (which holds every file's checksum, so the hash names its whole content):
//! a parent replaced or changed since is refused. It also records, per process, its
//! start time (the parent check), how the written pages were found, and where cpr left
//! its tracking descriptor (`tracking`). Every `-g` checkpoint writes it, so that it can
//! be a parent.
//!
//! Which pages changed: the userfaultfd tracking armed by the last `-g` checkpoint
//! (`tracking`), or, where it does not cover a mapping (another kind, an older kernel,
//! the tracking lost or re-armed by another checkpoint since, `CPR_DIRTY=compare`), by
//! comparing each page with the parent's copy of it, byte for byte.
//!
//! A parent knows its children by `DEPENDENTS` in its directory (outside its MANIFEST:
//! the parent is complete without it), one path a line; `cpr -D` believes an entry only
//! if that statefile names this one by its MANIFEST's hash.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::objects::memory::{Backing, MmRecord, PAGE, Vma};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::reader::damaged_record;
use crate::statefile::{Statefile, Verify, layout, mm_path, pages_path};

/// `chain.json`.
pub const CHAIN: &str = layout::CHAIN;
/// The children of a statefile, in its directory (not in its MANIFEST).
pub const DEPENDENTS: &str = "DEPENDENTS";
/// The longest chain restart follows.
const MAX_CHAIN: usize = 256;

/// `chain.json`: the parent, and per process what an incremental checkpoint needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainRecord {
    /// The parent statefile, if this one is incremental.
    #[serde(default)]
    pub parent: Option<ParentRef>,
    #[serde(default)]
    pub processes: Vec<ProcessChain>,
    /// A live checkpoint's pre-copy (`cpr -c -g`).
    #[serde(default)]
    pub live: Option<LiveRecord>,
}

/// The parent, by path and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    /// Absolute path at checkpoint time.
    pub path: String,
    /// SHA-256 (hex) of its MANIFEST.
    pub manifest_sha256: String,
}

/// One process of the chain record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessChain {
    pub pid: i32,
    /// Start time (clock ticks after boot, stat field 22): the same process, not a reused PID.
    pub start_time: u64,
    /// How the pages written since the parent were found (`cpr -i`).
    pub dirty: String,
    /// Bytes of pages saved here.
    pub saved_bytes: u64,
    /// Bytes of pages found in the parent chain.
    pub inherited_bytes: u64,
    /// The descriptor number of cpr's tracking userfaultfd left in the process (-g).
    #[serde(default)]
    pub tracking_fd: Option<i32>,
}

/// What a live checkpoint did before its stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    /// Rounds of copying while the processes ran.
    pub rounds: u32,
    /// Milliseconds the processes were stopped.
    pub stop_ms: f64,
    /// Bytes copied while they ran.
    pub precopied_bytes: u64,
}

impl ChainRecord {
    pub fn process(&self, pid: i32) -> Option<&ProcessChain> {
        self.processes.iter().find(|p| p.pid == pid)
    }
}

/// A run of the image's pages and where their data is: statefile `link` of the chain
/// (0: the statefile itself), at `off` in its page data of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub link: usize,
    /// In the link's pre-copy data (`precopy_path`), not its page data.
    pub precopy: bool,
    pub off: u64,
}

/// `proc/<pid>/precopy.json` of a live checkpoint: where cpr's tracking was during the
/// pre-copy, and where each page copied is in `proc/<pid>/precopy` (address, length,
/// offset; by address, apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecopyIndex {
    pub fd: i32,
    pub extents: Vec<(u64, u64, u64)>,
}

impl PrecopyIndex {
    /// The index of pages copied (address -> offset of the latest copy).
    pub fn of(fd: i32, pages: &BTreeMap<u64, u64>) -> PrecopyIndex {
        let mut extents: Vec<(u64, u64, u64)> = Vec::new();
        for (&addr, &off) in pages {
            match extents.last_mut() {
                Some((a, l, o)) if *a + *l == addr && *o + *l == off => *l += PAGE,
                _ => extents.push((addr, PAGE, off)),
            }
        }
        PrecopyIndex { fd, extents }
    }

    /// As extents of link `link`, checked: page aligned, apart, inside `size` bytes.
    fn extents(&self, link: usize, size: u64) -> Result<Vec<Extent>> {
        let mut prev_end = 0;
        let mut out = Vec::with_capacity(self.extents.len());
        for &(start, len, off) in &self.extents {
            let bad = start % PAGE != 0
                || len % PAGE != 0
                || start < prev_end
                || start.checked_add(len).is_none()
                || off.checked_add(len).is_none_or(|e| e > size);
            if bad {
                return Err(damaged_record(format_args!(
                    "pre-copied pages {start:#x}+{len:#x} at {off}"
                )));
            }
            prev_end = start + len;
            out.push(Extent {
                start,
                end: start + len,
                link,
                precopy: true,
                off,
            });
        }
        Ok(out)
    }
}

pub use crate::statefile::layout::{precopy_index_path, precopy_path};

/// A statefile and its ancestors, each checked: link 0 is the statefile.
pub struct Chain {
    pub links: Vec<Statefile>,
    pub records: Vec<ChainRecord>,
}

/// The chain record of `sf`, if it has one.
pub fn read_record(sf: &Statefile) -> Result<Option<ChainRecord>> {
    if sf.entry(CHAIN).is_none() {
        return Ok(None);
    }
    sf.read_json(CHAIN).map(Some)
}

/// Opens the ancestors of `sf` for `caller`: each one's records checked (sizes and
/// checksums), authenticated for root, owned by the same owner, with the MANIFEST hash
/// its child recorded. The bulk page data is checked by the caller (`bulk_check`).
pub fn open_chain(sf: &Statefile, caller: u32) -> Result<Chain> {
    let mut chain = Chain {
        links: vec![sf.clone()],
        records: vec![read_record(sf)?.unwrap_or_default()],
    };
    while let Some(parent) = chain.records.last().and_then(|r| r.parent.clone()) {
        let child = chain.links.last().unwrap().path.display().to_string();
        if chain.links.len() > MAX_CHAIN {
            return Err(Error::with_detail(
                child,
                Kind::CheckpointError,
                format!("a chain of more than {MAX_CHAIN} statefiles"),
            ));
        }
        let p = open_parent_link(&child, &parent, sf, caller)?;
        chain.records.push(read_record(&p)?.unwrap_or_default());
        chain.links.push(p);
    }
    Ok(chain)
}

/// One link: the parent `r` names, opened and checked against it.
fn open_parent_link(
    child: &str,
    r: &ParentRef,
    first: &Statefile,
    caller: u32,
) -> Result<Statefile> {
    let p = Statefile::open(Path::new(&r.path), Verify::Sizes)
        .map_err(|e| e.context(format!("{child}: parent statefile")))?;
    if p.manifest_sha256() != r.manifest_sha256 {
        return Err(Error::with_detail(
            child.to_string(),
            Kind::CheckpointError,
            format!(
                "parent statefile {} is not the one it was taken after (its MANIFEST changed)",
                r.path
            ),
        ));
    }
    if caller == 0 {
        p.authenticate()?;
    }
    p.verify_files(|rel| !layout::is_bulk(rel))?;
    if p.manifest.owner != first.manifest.owner {
        return Err(Error::with_detail(
            child.to_string(),
            Kind::NotPermitted,
            format!("parent statefile {} has another owner", r.path),
        ));
    }
    refuse_compressed(&p, child)?;
    Ok(p)
}

/// Pages are read from a parent at raw offsets: a parent with compressed page data
/// (`--compress`) cannot be one.
fn refuse_compressed(parent: &Statefile, subject: &str) -> Result<()> {
    if parent.manifest.flags.compression.is_some() {
        return Err(Error::with_detail(
            subject.to_string(),
            Kind::CheckpointError,
            format!(
                "parent statefile {} has compressed page data (--compress): it cannot be a parent",
                parent.path.display()
            ),
        ));
    }
    Ok(())
}

impl Chain {
    /// The mm record of `pid` in link `k`.
    pub fn mm(&self, k: usize, pid: i32) -> Result<MmRecord> {
        let sf = &self.links[k];
        if !sf.manifest.processes.iter().any(|p| p.pid == pid) {
            return Err(Error::with_detail(
                sf.path.display().to_string(),
                Kind::CheckpointError,
                format!("process {pid} is not in this parent statefile"),
            ));
        }
        let mm: MmRecord = sf.read_json(&mm_path(pid))?;
        let size = sf.entry(&pages_path(pid)).map_or(0, |e| e.size);
        mm.check(size)
            .and_then(|()| check_inherited(&mm))
            .map_err(|e| {
                e.context(format!("process {pid}"))
                    .context(sf.path.display())
            })?;
        Ok(mm)
    }

    /// Where every page of `pid`'s image in link `from` is, as extents sorted by address.
    pub fn sources(&self, from: usize, pid: i32) -> Result<Vec<Extent>> {
        let mut below: Vec<Extent> = Vec::new();
        for k in (from..self.links.len()).rev() {
            let mm = self.mm(k, pid)?;
            let under = self.under(k, pid, below)?;
            below = layer(&mm, k, &under)
                .map_err(|e| e.context(self.links[k].path.display().to_string()))?;
        }
        Ok(below)
    }

    /// What the inherited pages of `pid` in link `k` refer to: its own pre-copy (a live
    /// checkpoint), or else `older` (the extents of its parent).
    fn under(&self, k: usize, pid: i32, older: Vec<Extent>) -> Result<Vec<Extent>> {
        let sf = &self.links[k];
        let index = precopy_index_path(pid);
        if sf.entry(&index).is_none() {
            return Ok(older);
        }
        let size = sf.entry(&precopy_path(pid)).map_or(0, |e| e.size);
        sf.read_json::<PrecopyIndex>(&index)?
            .extents(k, size)
            .map_err(|e| {
                e.context(format!("process {pid}"))
                    .context(sf.path.display())
            })
    }
}

/// The extents of one image: its own runs (at offsets in its page data, in file order)
/// and its inherited runs found in `parent` (the extents of the link below).
fn layer(mm: &MmRecord, link: usize, parent: &[Extent]) -> Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut off = 0u64;
    for v in &mm.vmas {
        for &(first, count) in &v.runs {
            out.push(Extent {
                start: v.start + first * PAGE,
                end: v.start + (first + count) * PAGE,
                link,
                precopy: false,
                off,
            });
            off += count * PAGE;
        }
        for &(first, count) in &v.inherited {
            let (s, e) = (v.start + first * PAGE, v.start + (first + count) * PAGE);
            let found = clip(parent, s, e);
            let covered: u64 = found.iter().map(|x| x.end - x.start).sum();
            if covered != e - s {
                return Err(damaged_record(format_args!(
                    "pages {s:#x}-{e:#x} are in no statefile of the chain"
                )));
            }
            out.extend(found);
        }
    }
    out.sort_by_key(|x| x.start);
    Ok(out)
}

/// The parts of `extents` (sorted, apart) inside `start..end`.
fn clip(extents: &[Extent], start: u64, end: u64) -> Vec<Extent> {
    let i = extents.partition_point(|x| x.end <= start);
    extents[i..]
        .iter()
        .take_while(|x| x.start < end)
        .map(|x| {
            let s = x.start.max(start);
            let e = x.end.min(end);
            Extent {
                start: s,
                end: e,
                link: x.link,
                precopy: x.precopy,
                off: x.off + (s - x.start),
            }
        })
        .collect()
}

/// Inherited runs lie inside their mapping and apart from its saved runs.
pub fn check_inherited(mm: &MmRecord) -> Result<()> {
    for v in &mm.vmas {
        let pages = (v.end - v.start) / PAGE;
        let mut all: Vec<(u64, u64)> = v.runs.iter().chain(&v.inherited).copied().collect();
        all.sort();
        let mut prev_end = 0;
        for (first, count) in all {
            if first.checked_add(count).is_none_or(|last| last > pages) || first < prev_end {
                return Err(damaged_record(format_args!(
                    "pages {first}+{count} of mapping {:#x}-{:#x}",
                    v.start, v.end
                )));
            }
            prev_end = first + count;
        }
        if !v.inherited.is_empty() && v.shared {
            return Err(damaged_record(format_args!(
                "inherited pages of shared mapping {:#x}-{:#x}",
                v.start, v.end
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Checkpoint

/// The parent of a checkpoint being taken, checked against the frozen processes.
pub struct Parent {
    chain: Chain,
    /// Per process: where each page of the parent's image is, once asked (`copy_of`):
    /// layering the whole chain's records is needed only to compare pages.
    sources: BTreeMap<i32, Vec<Extent>>,
    /// Per process: the address ranges of the parent's image (its own pages and those
    /// it inherits, which the chain holds: they were found there when it was taken, and
    /// a restart checks every link again).
    cover: BTreeMap<i32, Vec<(u64, u64)>>,
    /// Per process: the parent's mappings (for the identity of each inherited page).
    vmas: BTreeMap<i32, Vec<Vma>>,
    /// Each link's page data (or pre-copy data) of a process, opened once (for
    /// comparing pages).
    files: BTreeMap<(usize, bool, i32), File>,
}

/// Opens `path` as the parent of a checkpoint into `new` of processes `pids`: a
/// statefile of exactly these processes (same PIDs, same start times), of the same
/// owner, taken with `-g` (they ran on), with its whole chain sound.
pub fn open_parent(
    path: &Path,
    new: &Path,
    pids: &[i32],
    owner: crate::statefile::Owner,
    caller: u32,
) -> Result<Parent> {
    let subject = path.display().to_string();
    let refuse = |what: String| Error::with_detail(subject.clone(), Kind::CheckpointError, what);
    let sf = Statefile::open(path, Verify::Sizes)?;
    if caller == 0 {
        sf.authenticate()?;
    }
    sf.verify_files(|rel| !layout::is_bulk(rel))?;
    let same_place = match (std::fs::canonicalize(path), std::fs::canonicalize(new)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same_place {
        return Err(refuse("a checkpoint cannot replace its own parent".into()));
    }
    if sf.manifest.owner != owner {
        return Err(Error::with_detail(
            subject.clone(),
            Kind::NotPermitted,
            "the parent statefile has another owner",
        ));
    }
    let Some(record) = read_record(&sf)? else {
        return Err(refuse("not taken with -g: it cannot be a parent".into()));
    };
    refuse_compressed(&sf, &subject)?;
    let mut theirs: Vec<i32> = sf.manifest.processes.iter().map(|p| p.pid).collect();
    let mut ours = pids.to_vec();
    theirs.sort();
    ours.sort();
    if theirs != ours {
        return Err(refuse(format!(
            "it holds processes {theirs:?}, the checkpoint {ours:?}"
        )));
    }
    for &pid in pids {
        let then = record.process(pid).map(|p| p.start_time);
        if then != Some(start_time(pid)?) {
            return Err(refuse(format!(
                "process {pid} is not the one it saved (another start time)"
            )));
        }
    }
    let chain = open_chain(&sf, caller)?;
    let mut parent = Parent {
        chain,
        sources: BTreeMap::new(),
        cover: BTreeMap::new(),
        vmas: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    for &pid in pids {
        let mm = parent.chain.mm(0, pid)?;
        parent.cover.insert(pid, image_ranges(&mm));
        parent.vmas.insert(pid, mm.vmas);
    }
    Ok(parent)
}

/// Start time of a process (stat field 22).
pub fn start_time(pid: i32) -> Result<u64> {
    Ok(crate::proc::ProcDir::open(pid)?.stat()?.start_time)
}

impl Parent {
    /// The reference a child records.
    pub fn reference(&self) -> Result<ParentRef> {
        let sf = &self.chain.links[0];
        let path = std::fs::canonicalize(&sf.path).ctx(sf.path.display())?;
        Ok(ParentRef {
            path: path.display().to_string(),
            manifest_sha256: sf.manifest_sha256(),
        })
    }

    /// The descriptor the parent left armed in `pid`.
    pub fn tracking_fd(&self, pid: i32) -> Option<i32> {
        self.chain.records[0]
            .process(pid)
            .and_then(|p| p.tracking_fd)
    }

    /// The address ranges of `pid` the parent chain holds (sorted, apart, merged).
    fn coverage(&self, pid: i32) -> Vec<(u64, u64)> {
        self.cover[&pid].clone()
    }

    /// The parent's copy of `start..end` of `pid`, or `None` if it lacks part of it.
    fn copy_of(&mut self, pid: i32, start: u64, end: u64) -> Result<Option<Vec<u8>>> {
        if !self.sources.contains_key(&pid) {
            let sources = self.chain.sources(0, pid)?;
            self.sources.insert(pid, sources);
        }
        let found = clip(&self.sources[&pid], start, end);
        if found.iter().map(|x| x.end - x.start).sum::<u64>() != end - start {
            return Ok(None);
        }
        let mut data = vec![0u8; (end - start) as usize];
        for x in found {
            let file = match self.files.entry((x.link, x.precopy, pid)) {
                std::collections::btree_map::Entry::Occupied(f) => f.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(self.chain.links[x.link].open_file(&data_path(pid, x.precopy))?)
                }
            };
            let at = (x.start - start) as usize;
            read_page_data(file, &mut data[at..at + (x.end - x.start) as usize], x.off)
                .ctx(format!("parent statefile of process {pid}: page data"))?;
        }
        Ok(Some(data))
    }
}

/// The address ranges of an image (`mm`): its saved and its inherited pages (sorted,
/// apart, merged).
fn image_ranges(mm: &MmRecord) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> =
        mm.vmas
            .iter()
            .flat_map(|v| {
                v.runs.iter().chain(&v.inherited).map(|&(first, count)| {
                    (v.start + first * PAGE, v.start + (first + count) * PAGE)
                })
            })
            .collect();
    all.sort_unstable();
    let mut out = Vec::with_capacity(all.len());
    for r in all {
        push_range(&mut out, r);
    }
    out
}

/// The page data of `pid`, or its pre-copy data.
fn data_path(pid: i32, precopy: bool) -> String {
    if precopy {
        precopy_path(pid)
    } else {
        pages_path(pid)
    }
}

/// Reads page data at `off` of a process's page data (one place that knows its layout:
/// the pages, in order, raw).
pub fn read_page_data(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    file.read_exact_at(buf, off)
}

/// Whether the parent's mapping holding `addr` is the same object as `v` at that address
/// (anonymous memory, or the same file or memory object at the same offset).
fn same_identity(parent: &[Vma], v: &Vma, addr: u64) -> bool {
    let Some(p) = parent.iter().find(|p| p.start <= addr && addr < p.end) else {
        return false;
    };
    if p.shared != v.shared {
        return false;
    }
    match (&p.backing, &v.backing) {
        (Backing::Anon, Backing::Anon) => true,
        (
            Backing::File {
                path: a,
                offset: oa,
            },
            Backing::File {
                path: b,
                offset: ob,
            },
        ) => a == b && oa + (addr - p.start) == ob + (addr - v.start),
        (Backing::SharedMem { ino: a, offset: oa }, Backing::SharedMem { ino: b, offset: ob }) => {
            a == b && oa + (addr - p.start) == ob + (addr - v.start)
        }
        _ => false,
    }
}

/// Why pages were compared rather than tracked, if they were forced to be.
fn forced_compare() -> bool {
    std::env::var("CPR_DIRTY").is_ok_and(|v| v == "compare")
}

/// Splits the saved runs of `vmas` (every page that exists) of frozen process `pid`
/// into those written since the parent (kept in `runs`, saved) and those the parent
/// chain holds unchanged (moved to `inherited`). Returns how it found them.
pub fn select(pid: i32, vmas: &mut [Vma], parent: &mut Parent) -> Result<String> {
    let tracked = match parent.tracking_fd(pid) {
        Some(fd) if !forced_compare() => super::tracking::written(pid, fd, vmas)?,
        _ => vec![None; vmas.len()],
    };
    let parent_vmas = parent.vmas[&pid].clone();
    let cover = parent.coverage(pid);
    let (mut by_tracking, mut by_compare) = (0usize, 0usize);
    for (v, written) in vmas.iter_mut().zip(tracked) {
        if v.runs.is_empty() {
            continue;
        }
        if let Some(w) = &written {
            // whole ranges at once: what exists, less what was written, that the parent
            // chain holds at this address for the same object
            by_tracking += 1;
            let now = abs_ranges(v, &v.runs);
            let same = intersect(
                &intersect(&subtract(&now, w), &cover),
                &identity_ranges(&parent_vmas, v),
            );
            v.runs = rel_runs(v, &subtract(&now, &same));
            v.inherited = rel_runs(v, &same);
            continue;
        }
        by_compare += 1;
        let runs = std::mem::take(&mut v.runs);
        let mut keep = Runs::default();
        let mut inherit = Runs::default();
        for (first, count) in runs {
            let mut page = first;
            while page < first + count {
                let n = (first + count - page).min(COMPARE_PAGES);
                let at = v.start + page * PAGE;
                let same = unchanged_pages(pid, v, at, n, parent)?;
                for (i, same) in same.into_iter().enumerate() {
                    let p = page + i as u64;
                    if same && same_identity(&parent_vmas, v, v.start + p * PAGE) {
                        inherit.push(p);
                    } else {
                        keep.push(p);
                    }
                }
                page += n;
            }
        }
        v.runs = keep.0;
        v.inherited = inherit.0;
    }
    Ok(match (by_tracking, by_compare) {
        (_, 0) => "userfaultfd write-protect tracking (PAGEMAP_SCAN)".into(),
        (0, _) if forced_compare() => "comparison with the parent (CPR_DIRTY=compare)".into(),
        (0, _) => "comparison with the parent (no dirty tracking armed)".into(),
        (t, c) => format!(
            "userfaultfd write-protect tracking for {t} mappings, comparison with the parent for {c} (not tracked)"
        ),
    })
}

/// What a checkpoint gathers for its chain record as it dumps each process.
pub struct Builder {
    pub parent: Option<Parent>,
    /// The parent being opened on a thread of its own (`Builder::opening`), until the
    /// first `select` needs it.
    opening: Option<std::thread::JoinHandle<Result<Parent>>>,
    processes: Vec<ProcessChain>,
    pub live: Option<LiveRecord>,
    /// A live checkpoint's pre-copy, per process.
    pub precopy: BTreeMap<i32, PrecopyIndex>,
}

impl Builder {
    pub fn new(parent: Option<Parent>) -> Builder {
        Builder {
            parent,
            opening: None,
            processes: Vec::new(),
            live: None,
            precopy: BTreeMap::new(),
        }
    }

    /// With the parent `open` gives, opened on a thread of its own meanwhile: reading
    /// and checking the chain's records goes on while the processes are asked and their
    /// smaps is read (which no injected call may wait for, so it starts only after).
    pub fn opening(open: impl FnOnce() -> Result<Parent> + Send + 'static) -> Builder {
        let mut b = Builder::new(None);
        b.opening = Some(std::thread::spawn(open));
        b
    }

    /// Whether the checkpoint has a parent (opened or being opened).
    pub fn has_parent(&self) -> bool {
        self.parent.is_some() || self.opening.is_some()
    }

    /// Waits for the parent being opened; its refusal, if it is refused.
    pub fn parent_opened(&mut self) -> Result<()> {
        if let Some(open) = self.opening.take() {
            self.parent = Some(open.join().unwrap_or_else(|_| {
                Err(Error::with_detail(
                    "checkpoint",
                    Kind::CheckpointError,
                    "the thread opening the parent statefile failed",
                ))
            })?);
        }
        Ok(())
    }

    /// For frozen process `pid` with its pages planned in `vmas`: with a parent, only
    /// the pages written since stay to be saved (`select`); noted for the record.
    pub fn select(&mut self, pid: i32, vmas: &mut [Vma]) -> Result<()> {
        self.parent_opened()?;
        let dirty = match (&mut self.parent, self.precopy.get(&pid)) {
            (Some(p), _) => select(pid, vmas, p)?,
            (None, Some(index)) => select_live(pid, vmas, index)?,
            (None, None) => "none (no parent: every page saved)".to_string(),
        };
        let bytes = |f: fn(&Vma) -> &Vec<(u64, u64)>| -> u64 {
            vmas.iter()
                .flat_map(|v| f(v).iter())
                .map(|r| r.1 * PAGE)
                .sum()
        };
        self.processes.push(ProcessChain {
            pid,
            start_time: start_time(pid)?,
            dirty,
            saved_bytes: bytes(|v| &v.runs),
            inherited_bytes: bytes(|v| &v.inherited),
            tracking_fd: None,
        });
        Ok(())
    }

    /// Chooses where each process's tracking descriptor goes (`-g`): returns (pid, old
    /// descriptors, new number) for `tracking::arm` once the statefile is committed.
    pub fn plan_tracking(&mut self) -> Vec<(i32, Vec<i32>, i32)> {
        let mut plan = Vec::new();
        for p in &mut self.processes {
            let old = super::tracking::own_uffds(p.pid);
            if let Some(fd) = super::tracking::next_fd(p.pid, old.last().copied()) {
                p.tracking_fd = Some(fd);
                plan.push((p.pid, old, fd));
            }
        }
        plan
    }

    pub fn record(&self) -> Result<ChainRecord> {
        Ok(ChainRecord {
            parent: self.parent.as_ref().map(|p| p.reference()).transpose()?,
            processes: self.processes.clone(),
            live: self.live.clone(),
        })
    }
}

/// Splits the saved runs of `vmas` of frozen process `pid` after a pre-copy (`index`):
/// pages copied then and not written since stay in the pre-copy data (`inherited`).
fn select_live(pid: i32, vmas: &mut [Vma], index: &PrecopyIndex) -> Result<String> {
    let tracked = super::tracking::written(pid, index.fd, vmas)?;
    let mut copied = Vec::new();
    for &(a, l, _) in &index.extents {
        push_range(&mut copied, (a, a + l));
    }
    let mut untracked = 0;
    for (v, written) in vmas.iter_mut().zip(tracked) {
        if v.runs.is_empty() {
            continue;
        }
        let Some(w) = written else {
            untracked += 1;
            continue;
        };
        let now = abs_ranges(v, &v.runs);
        let same = intersect(&subtract(&now, &w), &copied);
        v.runs = rel_runs(v, &subtract(&now, &same));
        v.inherited = rel_runs(v, &same);
    }
    Ok(match untracked {
        0 => "live pre-copy: pages written since its last round".to_string(),
        n => {
            format!("live pre-copy: pages written since its last round ({n} mappings saved whole)")
        }
    })
}

/// The page-index runs of `v` as sorted absolute address ranges.
fn abs_ranges(v: &Vma, runs: &[(u64, u64)]) -> Vec<(u64, u64)> {
    runs.iter()
        .map(|&(f, c)| (v.start + f * PAGE, v.start + (f + c) * PAGE))
        .collect()
}

/// Sorted absolute address ranges inside `v` as its page-index runs.
fn rel_runs(v: &Vma, ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .map(|&(s, e)| ((s - v.start) / PAGE, (e - s) / PAGE))
        .collect()
}

/// The parts of sorted, apart ranges `a` inside sorted, apart ranges `b`.
fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if s < e {
            push_range(&mut out, (s, e));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// The parts of sorted, apart ranges `a` outside sorted, apart ranges `b`.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(s, e) in a {
        let mut at = s;
        while j < b.len() && b[j].1 <= at {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].0 < e {
            if b[k].0 > at {
                push_range(&mut out, (at, b[k].0));
            }
            at = at.max(b[k].1);
            k += 1;
        }
        if at < e {
            push_range(&mut out, (at, e));
        }
    }
    out
}

/// Appends a range, merged with the last one if they touch.
fn push_range(out: &mut Vec<(u64, u64)>, r: (u64, u64)) {
    match out.last_mut() {
        Some(last) if last.1 == r.0 => last.1 = r.1,
        _ => out.push(r),
    }
}

/// The parts of `v` where the parent's mapping is the same object at the same place
/// (`same_identity` of every address in them).
fn identity_ranges(parent: &[Vma], v: &Vma) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for p in parent.iter().filter(|p| p.start < v.end && v.start < p.end) {
        let (s, e) = (p.start.max(v.start), p.end.min(v.end));
        // the same for every address of the overlap: test its first
        if same_identity(parent, v, s) {
            push_range(&mut out, (s, e));
        }
    }
    out
}

/// Page-index runs built page by page, in order.
#[derive(Default)]
struct Runs(Vec<(u64, u64)>);

impl Runs {
    fn push(&mut self, page: u64) {
        match self.0.last_mut() {
            Some((s, c)) if *s + *c == page => *c += 1,
            _ => self.0.push((page, 1)),
        }
    }
}

/// Whether `addr` lies in one of the sorted `ranges`.
#[cfg(test)]
fn in_ranges(ranges: &[(u64, u64)], addr: u64) -> bool {
    let i = ranges.partition_point(|r| r.1 <= addr);
    ranges.get(i).is_some_and(|r| r.0 <= addr)
}

/// The page at `addr` of `pid` is byte for byte the parent's copy.
/// Pages compared at once.
const COMPARE_PAGES: u64 = 256;

/// For each of the `n` pages at `at` of `pid`: whether it is byte for byte the parent's
/// copy (a page the parent lacks, or unreadable memory, counts as changed).
fn unchanged_pages(pid: i32, v: &Vma, at: u64, n: u64, parent: &mut Parent) -> Result<Vec<bool>> {
    let mut out = vec![false; n as usize];
    if v.prot & libc::PROT_READ == 0 {
        // unreadable for process_vm_readv: saved again rather than read through /proc
        return Ok(out);
    }
    let mut now = vec![0u8; (n * PAGE) as usize];
    let remote = [nix::sys::uio::RemoteIoVec {
        base: at as usize,
        len: now.len(),
    }];
    let got = nix::sys::uio::process_vm_readv(
        nix::unistd::Pid::from_raw(pid),
        &mut [std::io::IoSliceMut::new(&mut now)],
        &remote,
    )
    .ctx(format!("process {pid}: reading memory"))?;
    for (i, same) in out.iter_mut().enumerate() {
        let a = at + i as u64 * PAGE;
        let range = i * PAGE as usize..(i + 1) * PAGE as usize;
        if range.end > got {
            break;
        }
        if let Some(old) = parent.copy_of(pid, a, a + PAGE)? {
            *same = old[..] == now[range];
        }
    }
    Ok(out)
}

/// Records `child` among the dependents of its parent (`DEPENDENTS` in the parent's
/// directory), so that `cpr -D` of the parent refuses while it exists.
pub fn record_dependent(parent: &ParentRef, child: &Path) -> Result<()> {
    use std::io::Write;
    // the child is not in place yet: its directory is
    let dir = match child.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let child = std::fs::canonicalize(dir)
        .ctx(dir.display())?
        .join(child.file_name().unwrap_or_default());
    let list = Path::new(&parent.path).join(DEPENDENTS);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&list)
        .ctx(list.display())?;
    writeln!(f, "{}", child.display()).ctx(list.display())?;
    f.sync_all().ctx(list.display())
}

/// `cpr -D`: refuses to remove a statefile that another one names as its parent.
pub fn refuse_if_depended_on(path: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path.join(DEPENDENTS)) else {
        return Ok(());
    };
    let Ok(sf) = Statefile::open(path, Verify::Sizes) else {
        return Ok(());
    };
    let mine = sf.manifest_sha256();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let child = PathBuf::from(line);
        let Ok(c) = Statefile::open(&child, Verify::Sizes) else {
            continue;
        };
        let names_me = read_record(&c)
            .ok()
            .flatten()
            .and_then(|r| r.parent)
            .is_some_and(|p| p.manifest_sha256 == mine);
        if names_me {
            return Err(Error::with_detail(
                path.display().to_string(),
                Kind::ResourceBusy,
                format!(
                    "statefile {} is an incremental checkpoint taken after it and needs its pages; remove that one first",
                    child.display()
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// cpr -i

/// The chain of `sf` as `cpr -i` shows it: each ancestor's path, or what is wrong with
/// the link (missing, changed since).
pub fn chain_paths(sf: &Statefile) -> Vec<String> {
    let mut out = Vec::new();
    let mut record = read_record(sf).ok().flatten();
    while let Some(parent) = record.as_ref().and_then(|r| r.parent.clone()) {
        if out.len() > MAX_CHAIN {
            break;
        }
        match Statefile::open(Path::new(&parent.path), Verify::Sizes) {
            Ok(p) if p.manifest_sha256() == parent.manifest_sha256 => {
                out.push(parent.path.clone());
                record = read_record(&p).ok().flatten();
            }
            Ok(_) => {
                out.push(format!("{} (changed since: restart refuses)", parent.path));
                break;
            }
            Err(_) => {
                out.push(format!("{} (missing: restart refuses)", parent.path));
                break;
            }
        }
    }
    out
}

/// `cpr -i` lines for the chain record of `sf`, if it has one.
pub fn info_lines(sf: &Statefile) -> Vec<(String, String)> {
    let Ok(Some(r)) = read_record(sf) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let chain = chain_paths(sf);
    lines.push((
        "Parent".to_string(),
        match chain.first() {
            Some(p) => format!("{p} (incremental; {} statefiles before it)", chain.len()),
            None => "none".to_string(),
        },
    ));
    let precopied = r.live.as_ref().is_some_and(|l| l.precopied_bytes > 0);
    let elsewhere = if precopied {
        "copied before the stop"
    } else {
        "in the parent chain"
    };
    for (i, p) in chain.iter().enumerate().skip(1) {
        lines.push((format!("Ancestor {}", i + 1), p.clone()));
    }
    for p in &r.processes {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        lines.push((
            format!("Pages {}", p.pid),
            format!(
                "{:.1} MiB saved, {:.1} MiB {elsewhere}; changes found by {}",
                mib(p.saved_bytes),
                mib(p.inherited_bytes),
                p.dirty
            ),
        ));
        lines.push((
            format!("Tracking {}", p.pid),
            match p.tracking_fd {
                Some(fd) => {
                    format!("armed for the next incremental checkpoint (userfaultfd at fd {fd})")
                }
                None => "none (the next incremental checkpoint compares pages)".to_string(),
            },
        ));
    }
    if let Some(l) = &r.live {
        let how = if l.precopied_bytes > 0 {
            format!(
                "live: {} rounds, {:.1} MiB copied while running",
                l.rounds,
                l.precopied_bytes as f64 / (1u64 << 20) as f64
            )
        } else {
            "no pre-copy".to_string()
        };
        lines.push((
            "Stop time".to_string(),
            format!("{:.1} ms ({how})", l.stop_ms),
        ));
    }
    lines
}

/// The same for `cpr -i --json`.
pub fn info_json(sf: &Statefile) -> serde_json::Value {
    match read_record(sf) {
        Ok(Some(r)) => serde_json::json!({
            "record": r,
            "ancestors": chain_paths(sf),
        }),
        _ => serde_json::Value::Null,
    }
}

// ---------------------------------------------------------------------------------------
// Restart

/// Reads from one statefile's page data: (address, length, offset), in offset order.
pub type Reads = Vec<(u64, u64, u64)>;

/// Pages of a restored image read from an ancestor statefile: its page data of `pid`,
/// and (address, length, offset) of each run, in offset order.
#[derive(Debug, Clone)]
pub struct InheritedPages {
    pub link: Statefile,
    /// The file of `link` read: a process's page data or pre-copy data.
    pub rel: String,
    pub reads: Reads,
}

/// For process `pid` of `mm` (link 0 of `chain`): the reads from each ancestor that fill
/// its inherited pages.
pub fn inherited_reads(chain: &Chain, pid: i32, mm: &MmRecord) -> Result<Vec<InheritedPages>> {
    if mm.vmas.iter().all(|v| v.inherited.is_empty()) {
        return Ok(Vec::new());
    }
    check_inherited(mm)?;
    let below = chain.under(0, pid, chain.sources(1, pid)?)?;
    let mut per_file: BTreeMap<(usize, bool), Reads> = BTreeMap::new();
    for x in layer(mm, 0, &below)?
        .into_iter()
        .filter(|x| x.link > 0 || x.precopy)
    {
        per_file
            .entry((x.link, x.precopy))
            .or_default()
            .push((x.start, x.end - x.start, x.off));
    }
    Ok(per_file
        .into_iter()
        .map(|((k, precopy), mut reads)| {
            reads.sort_by_key(|r| r.2);
            InheritedPages {
                link: chain.links[k].clone(),
                rel: data_path(pid, precopy),
                reads,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, pages: u64, runs: Vec<(u64, u64)>, inherited: Vec<(u64, u64)>) -> Vma {
        Vma {
            start,
            end: start + pages * PAGE,
            prot: 3,
            shared: false,
            backing: Backing::Anon,
            name: String::new(),
            flags: vec![],
            runs,
            inherited,
            cow: vec![],
        }
    }

    fn mm(vmas: Vec<Vma>) -> MmRecord {
        MmRecord {
            vmas,
            ..Default::default()
        }
    }

    #[test]
    fn inherited_pages_come_from_the_newest_link_that_saved_them() {
        // grandparent saved pages 0..4, parent rewrote page 1, child rewrote page 2
        let gp = mm(vec![vma(0x10000, 4, vec![(0, 4)], vec![])]);
        let p = mm(vec![vma(0x10000, 4, vec![(1, 1)], vec![(0, 1), (2, 2)])]);
        let c = mm(vec![vma(0x10000, 4, vec![(2, 1)], vec![(0, 2), (3, 1)])]);
        let l2 = layer(&gp, 2, &[]).unwrap();
        let l1 = layer(&p, 1, &l2).unwrap();
        let l0 = layer(&c, 0, &l1).unwrap();
        let at = |a: u64| *l0.iter().find(|x| x.start <= a && a < x.end).unwrap();
        assert_eq!((at(0x10000).link, at(0x10000).off), (2, 0));
        assert_eq!((at(0x11000).link, at(0x11000).off), (1, 0));
        assert_eq!((at(0x12000).link, at(0x12000).off), (0, 0));
        assert_eq!((at(0x13000).link, at(0x13000).off), (2, 3 * PAGE));
    }

    #[test]
    fn the_image_covers_what_the_layered_chain_covers() {
        let gp = mm(vec![vma(0x10000, 8, vec![(0, 6)], vec![])]);
        let p = mm(vec![
            vma(
                0x10000,
                8,
                vec![(1, 1), (4, 1)],
                vec![(0, 1), (2, 2), (5, 1)],
            ),
            vma(0x40000, 2, vec![(0, 2)], vec![]),
        ]);
        let layered = layer(&p, 0, &layer(&gp, 1, &[]).unwrap()).unwrap();
        let mut merged = Vec::new();
        for x in &layered {
            push_range(&mut merged, (x.start, x.end));
        }
        assert_eq!(image_ranges(&p), merged);
        assert_eq!(
            image_ranges(&p),
            vec![(0x10000, 0x16000), (0x40000, 0x42000)]
        );
    }

    #[test]
    fn pages_missing_from_the_chain_are_refused() {
        let p = mm(vec![vma(0x10000, 4, vec![(0, 1)], vec![])]);
        let c = mm(vec![vma(0x10000, 4, vec![], vec![(0, 2)])]);
        let l1 = layer(&p, 1, &[]).unwrap();
        assert!(layer(&c, 0, &l1).is_err());
    }

    #[test]
    fn range_arithmetic() {
        let a = [(0, 10), (20, 30), (40, 50)];
        let b = [(5, 25), (30, 45)];
        assert_eq!(intersect(&a, &b), vec![(5, 10), (20, 25), (40, 45)]);
        assert_eq!(subtract(&a, &b), vec![(0, 5), (25, 30), (45, 50)]);
        assert_eq!(subtract(&a, &[]), a.to_vec());
        assert_eq!(intersect(&a, &[]), vec![]);
        assert_eq!(
            subtract(&[(0, 10)], &[(0, 3), (3, 4), (9, 12)]),
            vec![(4, 9)]
        );
        // the same as page by page, for ranges of pages
        let w = [(2 * PAGE, 5 * PAGE), (9 * PAGE, 10 * PAGE)];
        let now = [(0, 12 * PAGE)];
        let per_page: Vec<u64> = (0..12).filter(|p| !in_ranges(&w, p * PAGE)).collect();
        let ranges: Vec<u64> = subtract(&now, &w)
            .iter()
            .flat_map(|&(s, e)| s / PAGE..e / PAGE)
            .collect();
        assert_eq!(per_page, ranges);
    }

    #[test]
    fn overlapping_runs_are_damage() {
        let m = mm(vec![vma(0x10000, 4, vec![(0, 2)], vec![(1, 1)])]);
        assert!(check_inherited(&m).is_err());
        let m = mm(vec![vma(0x10000, 4, vec![(0, 2)], vec![(2, 3)])]);
        assert!(check_inherited(&m).is_err());
        let m = mm(vec![vma(0x10000, 4, vec![(0, 2)], vec![(2, 2)])]);
        assert!(check_inherited(&m).is_ok());
    }
}
