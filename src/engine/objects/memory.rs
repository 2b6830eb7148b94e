//! Memory: the mappings of a process and the pages that exist. Dump reads /proc/PID/maps,
//! smaps and pagemap and copies the pages out with process_vm_readv; restore maps the
//! image into a stopped copy of cpr by injected system calls and reads the page data
//! straight into place with preadv.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::FileExt;

use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::engine::progress::Progress;
use crate::engine::ptrace::{Batch, Gate, Injector, RemoteAddr, RemoteScratch};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::{MapsLine, ProcDir};
use crate::statefile::reader::damaged_record;
use crate::statefile::{FileSink, compress};

pub const PAGE: u64 = 4096;

/// What backs a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backing {
    /// Private or shared anonymous memory (heap, stacks, ...). Pages saved.
    Anon,
    /// A file mapped at `offset`; for private mappings the written (anonymous) pages are saved.
    File { path: String, offset: u64 },
    /// The kernel's vDSO and vvar areas: not saved; restart moves the new ones here.
    Vdso,
    /// vsyscall: fixed by the kernel; nothing to do.
    Vsyscall,
    /// A memory object (shared anonymous memory, a memfd, a deleted file) mapped at
    /// `offset`, shared or private: its content is saved once for all processes in
    /// `shared/` (see shmem.rs); for private mappings the written pages are saved too.
    SharedMem { ino: u64, offset: u64 },
    /// A System V shared memory segment, attached whole: its contents are saved once per
    /// statefile under shared/ (sysv_shm.rs), not with the process's pages.
    SysvShm { shmid: i32 },
}

/// One mapping of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: i32,
    pub shared: bool,
    pub backing: Backing,
    /// The name /proc shows (`[heap]`, `[stack]`, `[vvar]`, a path, or empty).
    pub name: String,
    /// smaps VmFlags (`lo` locked, `gd` grows down, `hg`/`nh` huge-page hints, `dd`, `dc`, ...).
    pub flags: Vec<String>,
    /// Saved pages: (first page index within the mapping, page count), in file order.
    pub runs: Vec<(u64, u64)>,
    /// Pages of an incremental checkpoint not saved here because the parent chain holds
    /// them unchanged (incremental.rs); same form as `runs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherited: Vec<(u64, u64)>,
    /// Pages that were the parent's own pages at the same address (shared copy-on-write
    /// since a fork), same form as `runs`: not saved again; restart shares them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cow: Vec<(u64, u64)>,
}

impl Vma {
    pub fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }

    /// Whether restart reads pages into it (saved here or in the parent chain).
    fn has_pages(&self) -> bool {
        !self.runs.is_empty() || !self.inherited.is_empty()
    }
}

impl MmRecord {
    /// What restore takes as given: every mapping is page aligned and not empty, every
    /// saved run lies inside its mapping, and the page data (`pages_size` bytes) holds
    /// all the pages listed.
    /// Compressed page data is measured by `pages_bytes` here, and its chunks against it
    /// as they are read (statefile/compress.rs).
    pub fn check(&self, pages_size: u64) -> Result<()> {
        let pages_size = match self.compression.as_deref() {
            None => pages_size,
            Some(compress::LZ4) => self.pages_bytes,
            Some(other) => {
                return Err(damaged_record(format_args!(
                    "page data compressed by unknown method {other:?}"
                )));
            }
        };
        let mut saved: u64 = 0;
        let mut prev_end = 0;
        for v in &self.vmas {
            if v.start >= v.end || v.start % PAGE != 0 || v.end % PAGE != 0 {
                return Err(damaged_record(format_args!(
                    "mapping {:#x}-{:#x}",
                    v.start, v.end
                )));
            }
            // in address order and apart, as /proc lists them: an overlap would map
            // over a mapping already restored
            if v.start < prev_end {
                return Err(damaged_record(format_args!(
                    "mapping {:#x}-{:#x} overlaps the one before",
                    v.start, v.end
                )));
            }
            prev_end = v.end;
            let pages = (v.end - v.start) / PAGE;
            for &(first, count) in &v.runs {
                if first.checked_add(count).is_none_or(|last| last > pages) {
                    return Err(damaged_record(format_args!(
                        "pages {first}+{count} of mapping {:#x}-{:#x}",
                        v.start, v.end
                    )));
                }
                // bounded by the mapping's size, and mappings apart: no overflow
                saved = saved.saturating_add(count * PAGE);
            }
            super::cow_pages::check_inherited_runs(v, pages)?;
            // cpr saves copy-on-write pages once only in plain page data of a
            // statefile without parent: anything else is not cpr's
            if !v.cow.is_empty() && (self.compression.is_some() || !v.inherited.is_empty()) {
                return Err(damaged_record(format_args!(
                    "copy-on-write pages of mapping {:#x}-{:#x} with compressed or inherited page data",
                    v.start, v.end
                )));
            }
        }
        if saved > pages_size {
            return Err(damaged_record(format_args!(
                "{saved} bytes of pages listed, {pages_size} saved"
            )));
        }
        Ok(())
    }
}

/// The mm fields restart gives back with PR_SET_MM_MAP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
}

/// `proc/<pid>/mm.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmRecord {
    pub vmas: Vec<Vma>,
    pub fields: MmFields,
    /// /proc/PID/auxv as 64-bit words.
    pub auxv: Vec<u64>,
    /// The executable (/proc/PID/exe).
    pub exe: String,
    /// Total bytes of page data (before compression).
    pub pages_bytes: u64,
    /// How the pages file is compressed (`compress::LZ4`), or None: the bytes as they are.
    #[serde(default)]
    pub compression: Option<String>,
    /// The program and libraries as they were (and with -u, saved copies).
    #[serde(default)]
    pub components: Vec<super::mapped_files::Component>,
}

fn pagemap_entries(pid: i32, vma: &MapsLine, pagemap: &std::fs::File) -> Result<Vec<u64>> {
    let n = ((vma.end - vma.start) / PAGE) as usize;
    let mut buf = vec![0u8; n * 8];
    pagemap
        .read_exact_at(&mut buf, vma.start / PAGE * 8)
        .ctx(format!("process {pid}: pagemap"))?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect())
}

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

/// Which pages of a mapping hold data only the process has: for anonymous and shared
/// anonymous memory every page that exists; for private file mappings only pages that are
/// no longer the file's (written, copy-on-write).
fn pages_to_save(entries: &[u64], private_file: bool) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let exists = e & (PM_PRESENT | PM_SWAP) != 0;
        let keep = if private_file {
            exists && (e & PM_SWAP != 0 || e & PM_FILE == 0)
        } else {
            exists
        };
        if keep {
            match runs.last_mut() {
                Some((s, c)) if *s + *c == i as u64 => *c += 1,
                _ => runs.push((i as u64, 1)),
            }
        }
    }
    runs
}

/// Classifies the mappings of a stopped process; unsupported ones are "Checkpoint error".
pub fn plan(pid: i32) -> Result<Vec<Vma>> {
    plan_each(pid)?.into_iter().collect()
}

/// Each mapping of a process classified on its own, with the pages that would be saved:
/// `plan` takes the first refusal, `cpr -c --dry-run` (which reads a running process
/// the same way) lists them all.
///
/// The pages come from one PAGEMAP_SCAN per mapping (pagemap read page by page where
/// the kernel lacks it); smaps, which the kernel builds by walking every page of every
/// mapping, is read on a second thread meanwhile.
pub fn plan_each(pid: i32) -> Result<Vec<Result<Vma>>> {
    let dir = ProcDir::open(pid)?;
    std::thread::scope(|scope| {
        let smaps = scope.spawn(|| dir.smaps_flags());
        plan_with(pid, &dir, || {
            smaps.join().unwrap_or_else(|_| {
                Err(Error::with_detail(
                    format!("process {pid}"),
                    Kind::CheckpointError,
                    "reading smaps failed",
                ))
            })
        })
    })
}

/// Which pages of a mapping a checkpoint saves, as far as /proc/PID/maps tells (the same
/// choice as `backing` and `plan_with` make): none, every page that exists, or only
/// those no longer the file's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PageKind {
    None,
    All,
    Written,
}

fn page_kind(m: &MapsLine) -> PageKind {
    let name = m.path.as_str();
    if name == "[vsyscall]" || super::vdso::is_vdso(name) {
        PageKind::None
    } else if name.is_empty() || name == "[heap]" || name == "[stack]" {
        PageKind::All
    } else if anon_name(name).is_some() {
        if m.shared() {
            PageKind::None
        } else {
            PageKind::All
        }
    } else if m.shared() || !name.starts_with('/') {
        PageKind::None
    } else {
        PageKind::Written
    }
}

/// `plan_each` once smaps is being read (`flags` waits for it).
fn plan_with(
    pid: i32,
    dir: &ProcDir,
    flags: impl FnOnce() -> Result<Vec<(u64, Vec<String>)>>,
) -> Result<Vec<Result<Vma>>> {
    let (maps, pagemap, scanned) = scan_all(dir)?;
    let flags = Flags::new(pid, flags()?);
    Ok(maps
        .iter()
        .zip(scanned)
        .map(|(m, scanned)| plan_one(pid, m, scanned, &pagemap, flags.of(m)))
        .collect())
}

/// The mappings of a stopped process, its pagemap, and the pages of each mapping the
/// checkpoint saves (by PAGEMAP_SCAN, `None` where it was not asked or cannot tell).
type Scanned = (Vec<MapsLine>, std::fs::File, Vec<Option<Vec<(u64, u64)>>>);

fn scan_all(dir: &ProcDir) -> Result<Scanned> {
    let maps = dir.maps()?;
    let pagemap = dir.open_file("pagemap")?;
    let mut scan_works = true;
    let scanned: Vec<Option<Vec<(u64, u64)>>> = maps
        .iter()
        .map(|m| match page_kind(m) {
            PageKind::None => None,
            kind if scan_works => {
                let r = scan_runs(&pagemap, m, kind == PageKind::Written);
                scan_works = r.is_some();
                r
            }
            _ => None,
        })
        .collect();
    Ok((maps, pagemap, scanned))
}

/// The VmFlags of each mapping, by start address, as a checkpoint records them.
struct Flags {
    by_start: BTreeMap<u64, Vec<String>>,
    /// The process holds cpr's own tracking userfaultfd (tracking.rs) and no other: its
    /// write-protect registration (`uw`) is no userfaultfd of the program's.
    own_tracking: bool,
}

impl Flags {
    fn new(pid: i32, smaps: Vec<(u64, Vec<String>)>) -> Flags {
        // only a mapping registered with a userfaultfd ("uw") needs to know whose it is:
        // without one, the descriptors are not listed and read (twice) at all
        let registered = smaps.iter().any(|(_, f)| f.iter().any(|f| f == "uw"));
        Flags {
            by_start: smaps.into_iter().collect(),
            own_tracking: registered
                && !super::tracking::own_uffds(pid).is_empty()
                && !super::tracking::has_foreign_uffd(pid),
        }
    }

    fn of(&self, m: &MapsLine) -> Vec<String> {
        let mut vflags = self.by_start.get(&m.start).cloned().unwrap_or_default();
        if self.own_tracking {
            vflags.retain(|f| f != "uw");
        }
        vflags
    }
}

/// Mapping `m` of `pid` classified, with its VmFlags `vflags`, and the pages it saves.
fn plan_one(
    pid: i32,
    m: &MapsLine,
    scanned: Option<Vec<(u64, u64)>>,
    pagemap: &std::fs::File,
    vflags: Vec<String>,
) -> Result<Vma> {
    let name = m.path.clone();
    if name != "[vsyscall]" && !super::vdso::is_vdso(&name) {
        refuse_flags(pid, m, &vflags)?;
    }
    let backing = backing(pid, m, &name, &vflags)?;
    // private mappings of a file or memory object: only the pages written since
    // (copies of the object's pages beyond its end cannot even be read)
    let runs = match &backing {
        Backing::Vdso | Backing::Vsyscall | Backing::SysvShm { .. } => Vec::new(),
        Backing::File { .. } | Backing::SharedMem { .. } if m.shared() => Vec::new(),
        Backing::File { .. } | Backing::SharedMem { .. } => match scanned {
            Some(runs) if page_kind(m) == PageKind::Written => runs,
            _ => pages_to_save(&pagemap_entries(pid, m, pagemap)?, true),
        },
        Backing::Anon => match scanned {
            Some(runs) if page_kind(m) == PageKind::All => runs,
            _ => pages_to_save(&pagemap_entries(pid, m, pagemap)?, false),
        },
    };
    Ok(Vma {
        start: m.start,
        end: m.end,
        prot: m.prot(),
        shared: m.shared(),
        backing,
        name,
        flags: vflags,
        runs,
        inherited: Vec::new(),
        cow: Vec::new(),
    })
}

/// The pages a checkpoint of `pid` would save, mapping by mapping, as far as they are
/// known without the VmFlags (smaps, slow to read, is not): for the pre-copy of a
/// running process, whose checkpoint then plans and checks it whole. Mappings the
/// checkpoint would refuse are left out (it says why).
pub fn plan_pages(pid: i32) -> Result<Vec<Vma>> {
    let dir = ProcDir::open(pid)?;
    let (maps, pagemap, scanned) = scan_all(&dir)?;
    Ok(maps
        .iter()
        .zip(scanned)
        .filter_map(|(m, scanned)| plan_one(pid, m, scanned, &pagemap, Vec::new()).ok())
        .collect())
}

/// The plan of a stopped process made before its VmFlags are known (`plan_ahead`):
/// smaps, which the kernel builds by walking every page of every mapping (15 ms and
/// more for 1 GiB), is still being read on a thread of its own.
pub struct Pending {
    pid: i32,
    maps: Vec<MapsLine>,
    smaps: FlagsAhead,
}

type SmapsFlags = Result<Vec<(u64, Vec<String>)>>;

/// The VmFlags (smaps) of stopped processes, read one after the other on a thread of
/// its own as the caller asks for them (`request`), for `plan_ahead`. Not while the
/// process itself is made to run calls that map memory: smaps holds its mmap lock for
/// the whole walk, which such a call waits for.
#[derive(Clone)]
pub struct FlagsAhead(std::sync::Arc<Shared>);

struct Shared {
    state: std::sync::Mutex<Ahead>,
    cv: std::sync::Condvar,
}

struct Ahead {
    got: BTreeMap<i32, SmapsFlags>,
    /// Asked for and not taken.
    asked: std::collections::BTreeSet<i32>,
    /// To the reading thread; `None` once it is gone (or never was): what is missing
    /// is read by whoever needs it.
    tx: Option<std::sync::mpsc::Sender<i32>>,
}

/// Starts the thread that reads VmFlags for `FlagsAhead::request`.
pub fn read_flags_ahead() -> FlagsAhead {
    let (tx, rx) = std::sync::mpsc::channel::<i32>();
    let ahead = FlagsAhead(std::sync::Arc::new(Shared {
        state: std::sync::Mutex::new(Ahead {
            got: BTreeMap::new(),
            asked: Default::default(),
            tx: Some(tx),
        }),
        cv: std::sync::Condvar::new(),
    }));
    /// Says the thread is gone however it ends.
    struct Gone(std::sync::Weak<Shared>);
    impl Drop for Gone {
        fn drop(&mut self) {
            if let Some(s) = self.0.upgrade() {
                FlagsAhead(s).with(|a| a.tx = None);
            }
        }
    }
    let gone = Gone(std::sync::Arc::downgrade(&ahead.0));
    let spawned = std::thread::Builder::new()
        .name("cpr-smaps".into())
        .spawn(move || {
            // ends when every FlagsAhead is dropped
            for pid in rx {
                let read = ProcDir::open(pid).and_then(|d| d.smaps_flags());
                let Some(s) = gone.0.upgrade() else { break };
                FlagsAhead(s).with(|a| a.got.insert(pid, read));
            }
            drop(gone);
        });
    if spawned.is_err() {
        ahead.with(|a| a.tx = None);
    }
    ahead
}

impl FlagsAhead {
    /// Changes the state under the lock and wakes whoever waits.
    fn with<T>(&self, f: impl FnOnce(&mut Ahead) -> T) -> T {
        let out = f(&mut self
            .0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
        self.0.cv.notify_all();
        out
    }

    /// Starts reading the VmFlags of stopped process `pid`.
    pub fn request(&self, pid: i32) {
        self.with(|a| {
            if a.tx.as_ref().is_some_and(|tx| tx.send(pid).is_ok()) {
                a.asked.insert(pid);
            }
        });
    }

    /// The VmFlags of `pid`: as read ahead, or read here if they were not.
    fn take(&self, pid: i32) -> SmapsFlags {
        let mut a = self
            .0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(read) = a.got.remove(&pid) {
                a.asked.remove(&pid);
                return read;
            }
            if a.tx.is_none() || !a.asked.contains(&pid) {
                a.asked.remove(&pid);
                drop(a);
                return ProcDir::open(pid)?.smaps_flags();
            }
            a = self
                .0
                .cv
                .wait(a)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// `plan` without waiting for smaps: the mappings and their pages, every mapping's
/// flags still empty. The pages to save do not depend on the flags, so they can be
/// selected and read meanwhile; `Pending::finish` then gives each mapping its flags and
/// refuses what they forbid (the same refusals as `plan`, and the same first one).
/// `ahead`: where its smaps is being read already (else it is read from now).
pub fn plan_ahead(pid: i32, ahead: Option<&FlagsAhead>) -> Result<(Vec<Vma>, Pending)> {
    let dir = ProcDir::open(pid)?;
    let smaps = match ahead {
        Some(a) => a.clone(),
        None => {
            let a = read_flags_ahead();
            a.request(pid);
            a
        }
    };
    let (maps, pagemap, scanned) = scan_all(&dir)?;
    let planned: Result<Vec<Vma>> = maps
        .iter()
        .zip(scanned)
        .map(|(m, scanned)| plan_one(pid, m, scanned, &pagemap, Vec::new()))
        .collect();
    match planned {
        Ok(vmas) => Ok((vmas, Pending { pid, maps, smaps })),
        // the refusal `plan` makes, which a flag of an earlier mapping may come before
        Err(e) => {
            let flags = smaps.take(pid)?;
            plan_with(pid, &dir, || Ok(flags))?
                .into_iter()
                .collect::<Result<Vec<Vma>>>()?;
            Err(e)
        }
    }
}

impl Pending {
    /// Gives `vmas` (as `plan_ahead` made them, in the same order) their VmFlags, once
    /// smaps is read, and refuses what they forbid.
    pub fn finish(self, vmas: &mut [Vma]) -> Result<()> {
        let pid = self.pid;
        let flags = Flags::new(pid, self.smaps.take(pid)?);
        if vmas.len() != self.maps.len() {
            return Err(Error::with_detail(
                format!("process {pid}"),
                Kind::CheckpointError,
                "its mappings changed while it was stopped",
            ));
        }
        for (m, v) in self.maps.iter().zip(vmas.iter_mut()) {
            let vflags = flags.of(m);
            if v.name != "[vsyscall]" && !super::vdso::is_vdso(&v.name) {
                refuse_flags(pid, m, &vflags)?;
            }
            if matches!(v.backing, Backing::SysvShm { .. }) {
                // the one backing that depends on the flags (hugetlb segments are refused)
                v.backing = backing(pid, m, &m.path, &vflags)?;
            }
            v.flags = vflags;
        }
        Ok(())
    }
}

/// `pages_to_save` of mapping `m` by PAGEMAP_SCAN, as page-index runs; `None` where the
/// kernel cannot scan (older than 6.7): pagemap is read instead.
fn scan_runs(pagemap: &std::fs::File, m: &MapsLine, private_file: bool) -> Option<Vec<(u64, u64)>> {
    use crate::sys::dirty::{PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_SWAPPED, ScanQuery};
    use std::os::fd::AsFd;
    // PAGE_IS_FILE only where it matters: asking for it makes the kernel look up each
    // page's struct page (vm_normal_page), which made the scan of 1 GiB of anonymous
    // memory 5x slower (about 22 ms against 4)
    let file = if private_file { PAGE_IS_FILE } else { 0 };
    let q = ScanQuery {
        flags: 0,
        all: 0,
        any: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        report: PAGE_IS_PRESENT | PAGE_IS_SWAPPED | file,
    };
    let found = scan_downwards(pagemap.as_fd(), m.start, m.end, q).ok()?;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (s, e, cat) in found {
        // a private file mapping: pages copied from the file (anonymous now) or swapped
        if private_file && cat & PAGE_IS_SWAPPED == 0 && cat & PAGE_IS_FILE != 0 {
            continue;
        }
        let (first, count) = ((s - m.start) / PAGE, (e - s) / PAGE);
        match runs.last_mut() {
            Some((f, c)) if *f + *c == first => *c += count,
            _ => runs.push((first, count)),
        }
    }
    Some(runs)
}

/// How much of a mapping one PAGEMAP_SCAN of `scan_downwards` covers.
const SCAN_CHUNK: u64 = 64 << 20;

/// PAGEMAP_SCAN of `start..end` (`sys::dirty::pagemap_scan`, the same answer), made in
/// chunks from the highest address down. The smaps of the same process is read at the
/// same time (`FlagsAhead`), upwards: its walk holds each page table's lock while it
/// accounts every page of it, and a scan going the same way caught up with it and then
/// spun on each lock behind it (the plan of 1 GiB took 12 to 25 ms instead of 4). Going
/// the other way, they meet once.
pub fn scan_downwards(
    pagemap: std::os::fd::BorrowedFd<'_>,
    start: u64,
    end: u64,
    q: crate::sys::dirty::ScanQuery,
) -> nix::Result<Vec<(u64, u64, u64)>> {
    let mut chunks = Vec::new();
    let mut top = end;
    while top > start {
        let bottom = top.saturating_sub(SCAN_CHUNK).max(start);
        chunks.push(crate::sys::dirty::pagemap_scan(pagemap, bottom, top, q)?);
        top = bottom;
    }
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for r in chunks.into_iter().rev().flatten() {
        match out.last_mut() {
            Some((_, e, c)) if *e == r.0 && *c == r.2 => *e = r.1,
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// "Checkpoint error" for a mapping whose VmFlags say it holds state restart cannot
/// give back (hugetlb, userfaultfd, ...), or that only the kernel's own mappings have.
fn refuse_flags(pid: i32, m: &MapsLine, vflags: &[String]) -> Result<()> {
    use crate::proc::maps::{VmFlagKind, vm_flag_kind};
    for f in vflags {
        let what = match vm_flag_kind(f) {
            Some(VmFlagKind::Unrestorable(what)) => what,
            Some(VmFlagKind::Special) => "a special (device or kernel) mapping",
            _ => continue,
        };
        return Err(Error::with_detail(
            format!("process {pid}"),
            Kind::CheckpointError,
            format!(
                "mapping {:#x}-{:#x} {}: {what} (VmFlag '{f}') is not checkpoint safe",
                m.start, m.end, m.path
            ),
        ));
    }
    Ok(())
}

/// What backs mapping `m` (named `name`, with smaps flags `vflags`); a mapping cpr cannot
/// restore, or of a kind it does not know, is "Checkpoint error".
fn backing(pid: i32, m: &MapsLine, name: &str, vflags: &[String]) -> Result<Backing> {
    let refuse = |what: &str| -> Result<Backing> {
        Err(Error::with_detail(
            format!("process {pid}"),
            Kind::CheckpointError,
            format!(
                "mapping {:#x}-{:#x} {name}: {what} is not checkpoint safe",
                m.start, m.end
            ),
        ))
    };
    let object = Backing::SharedMem {
        ino: m.inode,
        offset: m.offset,
    };
    Ok(if name == "[vsyscall]" {
        Backing::Vsyscall
    } else if super::vdso::is_vdso(name) {
        Backing::Vdso
    } else if name.is_empty() || name == "[heap]" || name == "[stack]" {
        Backing::Anon
    } else if anon_name(name).is_some() {
        // named anonymous memory: the name is given back once mapped
        if m.shared() { object } else { Backing::Anon }
    } else if !name.starts_with('/') {
        // anon_inode:..., and whatever else the kernel may show
        return refuse("this kind of mapping");
    } else if name.starts_with("/SYSV") {
        if !m.shared() {
            return refuse("a private mapping of SysV shared memory");
        }
        // System V shared memory (sysv_shm.rs)
        super::sysv_shm::plan_vma(pid, m, vflags)?
    } else if name == "/dev/zero (deleted)" && m.shared() {
        // shared anonymous memory
        object
    } else if name.starts_with("/memfd:") {
        object
    } else if name.ends_with(" (deleted)") {
        // a deleted file: saved once with its data (shmem.rs), mapped again from a copy
        let link = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
        let is_file = std::fs::metadata(&link)
            .map(|meta| meta.is_file())
            .ctx(format!("process {pid}: mapping {name}"))?;
        if !is_file {
            return refuse("a deleted file that is not a regular file");
        }
        object
    } else if super::posix_shm::is_posix_shm(name) {
        // a shm_open segment or sem_open semaphore, saved like a memory object
        if !std::fs::metadata(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end))
            .ctx(format!("process {pid}: mapping {name}"))?
            .is_file()
        {
            return refuse("a /dev/shm file that is not a regular file");
        }
        object
    } else if name.starts_with("/dev/") && name != "/dev/zero" {
        return refuse("a device mapping");
    } else {
        Backing::File {
            path: name.to_string(),
            offset: m.offset,
        }
    })
}

/// Copies the saved pages of `vmas` into `sink`, in order. Readable memory goes through
/// process_vm_readv in large batches; memory the process cannot read (PROT_NONE data)
/// through /proc/PID/mem. Reading and writing overlap: a second thread writes one buffer
/// while the next is read (and, uncompressed, hashed by the reader).
/// With `compress`, the writer compresses each buffer first (statefile/compress.rs);
/// without, the data goes to the device past the page cache where the file system has
/// one (`FileSink::write_direct`), from page-aligned buffers, in larger batches (the
/// device waits for each).
pub fn dump_pages(pid: i32, vmas: &[Vma], sink: &mut FileSink, compress: bool) -> Result<u64> {
    use crate::statefile::writer::PAGE_ALIGN;
    let direct = !compress && sink.write_direct();
    // buffered: 1 MiB (larger fresh buffers only add page faults); direct: larger, the
    // device waits for each write
    let batch: usize = if direct { 32 << 20 } else { 1 << 20 };
    // (address, length, readable) of every run, in file order
    let mut runs: Vec<(u64, usize, bool)> = Vec::new();
    for vma in vmas {
        for &(first, count) in &vma.runs {
            runs.push((
                vma.start + first * PAGE,
                (count * PAGE) as usize,
                vma.prot & libc::PROT_READ != 0,
            ));
        }
    }
    let total: u64 = runs.iter().map(|r| r.1 as u64).sum();
    let mem =
        std::fs::File::open(format!("/proc/{pid}/mem")).ctx(format!("process {pid}: memory"))?;
    if total <= SMALL_PAGE_DATA && !compress {
        // little data (most processes of a large tree): read and written in this thread,
        // through one buffer, without a writer thread and its buffers to set up
        let mut buf = vec![0u8; total as usize];
        let (mut next, mut offset, mut filled) = (0, 0, 0);
        while next < runs.len() {
            filled += fill_from_runs(pid, &mem, &runs, &mut next, &mut offset, &mut buf[filled..])?;
        }
        sink.write_all(&buf[..filled]).ctx(sink.rel.clone())?;
        return Ok(total);
    }
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    // the data of a buffer starts at its first page boundary (`aligned`)
    let cap = batch.min(total as usize).max(PAGE as usize);
    for _ in 0..2 {
        // no bigger than the data: a large zeroed allocation costs a memset per process
        let _ = empty_tx.send(vec![0u8; cap + PAGE_ALIGN]);
    }
    // uncompressed, the reader hashes each buffer right after filling it, in its cache:
    // the writer, the busier of the two (on tmpfs, write(2) allocates every page under
    // the file's lock), only writes
    let mut hasher = if compress { None } else { sink.lend_hash() };
    let sink_ref = &mut *sink;
    let result = std::thread::scope(|scope| -> Result<u64> {
        let sink = sink_ref;
        let writer = scope.spawn(move || -> Result<(std::time::Duration, f64)> {
            let mut packed = Vec::new();
            let mut busy = std::time::Duration::ZERO;
            let cpu = thread_cpu();
            for (mut buf, n) in full_rx {
                let t = std::time::Instant::now();
                let data = &crate::statefile::writer::aligned(&mut buf, cap)[..n];
                if compress {
                    packed.clear();
                    crate::statefile::compress::encode(data, &mut packed);
                    sink.write_all(&packed).ctx(sink.rel.clone())?;
                } else {
                    sink.write_all(data).ctx(sink.rel.clone())?;
                }
                // (the sink starts writeback as it goes: the final fsync has little left)
                busy += t.elapsed();
                // the reader may have stopped: a buffer nobody takes back is fine
                let _ = empty_tx.send(buf);
            }
            Ok((busy, thread_cpu() - cpu))
        });
        let mut read_time = std::time::Duration::ZERO;
        let read_cpu = thread_cpu();
        let read = (|| -> Result<()> {
            let mut next = 0usize; // index into runs
            let mut offset = 0usize; // bytes of runs[next] already taken
            while next < runs.len() {
                let Ok(mut whole) = empty_rx.recv() else {
                    return Ok(());
                }; // the writer failed
                let buf = crate::statefile::writer::aligned(&mut whole, cap);
                let t = std::time::Instant::now();
                let filled = fill_from_runs(pid, &mem, &runs, &mut next, &mut offset, buf)?;
                if let Some(h) = &mut hasher {
                    h.update(&buf[..filled]);
                }
                read_time += t.elapsed();
                if full_tx.send((whole, filled)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        })();
        let read_cpu = thread_cpu() - read_cpu;
        drop(full_tx);
        let written = writer.join().unwrap_or_else(|_| {
            Err(Error::with_detail(
                format!("process {pid}"),
                Kind::CheckpointError,
                "page writer failed",
            ))
        });
        read?;
        let (write_time, write_cpu) = written?;
        if std::env::var_os("CPR_TIMING").is_some() {
            // (the CPU time of each thread too: on a busy machine the wall times include
            // waiting for a CPU)
            eprintln!(
                "cpr: timing:   process {pid}: reading {:.1} ms, writing {:.1} ms{} \
                 (thread CPU: reader {:.1} ms, writer {:.1} ms)",
                read_time.as_secs_f64() * 1e3,
                write_time.as_secs_f64() * 1e3,
                if direct { " (direct)" } else { "" },
                read_cpu * 1e3,
                write_cpu * 1e3,
            );
        }
        Ok(total)
    });
    if let Some(h) = hasher {
        sink.hash_back(h);
    }
    result
}

/// Page data up to this size is dumped without a writer thread (`dump_pages`).
const SMALL_PAGE_DATA: u64 = 1 << 20;

/// Fills `buf` with the next bytes of `runs` (address, length, readable), from run
/// `next` at `offset` on, moving both past what it took; returns the bytes filled.
/// Readable memory in batches of process_vm_readv, the rest through /proc/PID/mem.
fn fill_from_runs(
    pid: i32,
    mem: &std::fs::File,
    runs: &[(u64, usize, bool)],
    next: &mut usize,
    offset: &mut usize,
    buf: &mut [u8],
) -> Result<usize> {
    let cap = buf.len();
    let mut filled = 0usize;
    let mut remote: Vec<RemoteIoVec> = Vec::new();
    while *next < runs.len() && filled < cap && remote.len() < 1000 {
        let (addr, len, readable) = runs[*next];
        let take = (len - *offset).min(cap - filled);
        let at = addr + *offset as u64;
        if readable {
            remote.push(RemoteIoVec {
                base: at as usize,
                len: take,
            });
        } else {
            // only the process's own protections stop process_vm_readv
            read_batch(pid, &mut buf[..filled], &mut remote)?;
            mem.read_exact_at(&mut buf[filled..filled + take], at)
                .ctx(format!("process {pid}: memory at {at:#x}"))?;
        }
        filled += take;
        *offset += take;
        if *offset == len {
            *next += 1;
            *offset = 0;
        }
    }
    read_batch(pid, &mut buf[..filled], &mut remote)?;
    Ok(filled)
}

/// CPU time of the calling thread so far, in seconds (0 where it cannot be read).
fn thread_cpu() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// Reads the pending readable iovecs into the tail of `buf` that they cover (the last
/// `sum of lengths` bytes of it).
fn read_batch(pid: i32, buf: &mut [u8], remote: &mut Vec<RemoteIoVec>) -> Result<()> {
    let want: usize = remote.iter().map(|r| r.len).sum();
    if want == 0 {
        return Ok(());
    }
    let start = buf.len() - want;
    let mut local = [std::io::IoSliceMut::new(&mut buf[start..])];
    let n = process_vm_readv(Pid::from_raw(pid), &mut local, remote)
        .ctx(format!("process {pid}: reading memory"))?;
    if n != want {
        // the process is frozen: a short read means a page that cannot be read at all
        let mut at = n;
        let stop = remote
            .iter()
            .find_map(|r| {
                if at < r.len {
                    Some(r.base + at)
                } else {
                    at -= r.len;
                    None
                }
            })
            .unwrap_or(0);
        return Err(Error::with_detail(
            format!("process {pid}"),
            Kind::CheckpointError,
            format!("memory at {stop:#x} cannot be read"),
        ));
    }
    remote.clear();
    Ok(())
}

/// The mm fields, from the process's stat (brk comes from the process itself).
pub fn mm_fields(stat: &crate::proc::Stat, brk: u64) -> MmFields {
    let [
        start_code,
        end_code,
        start_stack,
        start_data,
        end_data,
        start_brk,
        arg_start,
        arg_end,
        env_start,
        env_end,
    ] = stat.mm_layout;
    MmFields {
        start_code,
        end_code,
        start_stack,
        start_data,
        end_data,
        start_brk,
        arg_start,
        arg_end,
        env_start,
        env_end,
        brk,
    }
}

pub fn read_auxv(dir: &ProcDir) -> Result<Vec<u64>> {
    let b = dir.read_bytes("auxv")?;
    Ok(b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect())
}

// ---------------------------------------------------------------------------------------
// Restore

/// The area of a restoring process's memory that cpr uses (mapped there by the restore
/// child, `SIZE` bytes, in a hole of the image): the injection stub on its first page,
/// then argument space for injected calls.
#[derive(Debug)]
pub struct Scratch {
    base: RemoteAddr,
    /// The argument space, after the code page.
    pub args: RemoteScratch,
}

impl Scratch {
    pub const SIZE: u64 = 0x40000;

    /// The area at `base` in process `pid`, with `SYSCALL_INT3` at its start.
    pub fn new(pid: i32, base: RemoteAddr) -> Scratch {
        Scratch {
            base,
            args: RemoteScratch::new(pid, base + PAGE, Self::SIZE - PAGE),
        }
    }

    /// Where the area starts (and the stub).
    pub fn base(&self) -> RemoteAddr {
        self.base
    }

    /// The gate every injected call of the restore runs through: the stub.
    pub fn gate(&self) -> Gate {
        Gate::Int3(self.base)
    }

    /// Where the restore child put the batch runner (`BATCH_RUNNER`).
    pub fn runner(&self) -> RemoteAddr {
        self.base + Self::RUNNER_OFFSET
    }

    /// The runner's offset in the code page, after the stub.
    pub const RUNNER_OFFSET: u64 = 16;
}

/// Addresses where a scratch area fits in the gaps of the image (not touching any of its
/// mappings), highest first, to be tried against cpr's own layout.
pub fn scratch_candidates(vmas: &[Vma]) -> Vec<u64> {
    gap_candidates(vmas, Scratch::SIZE)
}

/// Addresses where `size` bytes fit in the gaps of the image, highest first.
pub fn gap_candidates(vmas: &[Vma], size: u64) -> Vec<u64> {
    let mut ranges: Vec<(u64, u64)> = vmas
        .iter()
        .filter(|v| v.backing != Backing::Vsyscall)
        .map(|v| (v.start, v.end))
        .collect();
    ranges.sort();
    let mut out = Vec::new();
    let mut prev_end = 0x10_0000u64;
    let guard = 16 * PAGE;
    for (s, e) in ranges
        .iter()
        .copied()
        .chain(std::iter::once((0x7fff_ffff_0000, 0x7fff_ffff_0000)))
    {
        if s > prev_end + size + 2 * guard {
            // a few positions in each gap: its start, its middle
            out.push(prev_end + guard);
            let mid = (prev_end + (s - prev_end) / 2) & !(PAGE - 1);
            if mid > prev_end + guard && mid + size + guard < s {
                out.push(mid);
            }
        }
        prev_end = prev_end.max(e);
    }
    out.reverse();
    out
}

/// Calls of the caller's that share the restore's round trips: `first` before any of its
/// own, `last` after all of them (after PR_SET_MM_MAP).
pub struct Around {
    pub first: Batch,
    pub last: Batch,
}

/// Replaces the address space of a stopped restore child with the image, and sets its
/// mm fields, auxv and executable (prctl PR_SET_MM_MAP); `around`: the caller's calls
/// run with them. `file_fds`: the child's fds for `mapped_files::list`, in order;
/// `pages`: the child's fd on the pages file.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    inj: &Injector,
    around: Around,
    pid: i32,
    mm: &MmRecord,
    scratch: &mut Scratch,
    file_fds: &[(String, i32)],
    mem_fds: &[(u64, i32)],
    pages: PageData<'_>,
) -> Result<()> {
    let who = format!("process {pid}");
    let premapped = pages.premapped;
    // the calls of steps 1 to 3 and 5 run in batches: one ptrace round trip for many;
    // the caller's `first` calls run before step 1, in its round trip
    let Around { first, last } = around;
    let mut batch = first;
    // 1. cpr's own mappings go, except the scratch area, the vDSO and the mappings the
    // restore child made already (cow_pages.rs)
    let own = own_layout()?;
    unmap_own(&mut batch, own, scratch.base(), premapped);
    // 2. move the vDSO and its data pages where the image had them (same batch)
    let vdso_now: Vec<&MapsLine> = own.vdso.iter().collect();
    super::vdso::restore(inj, &mut batch, &who, &vdso_now, &mm.vmas)?;
    // step 3's calls join that round trip, unless a mapping of the image is made by a
    // call of its own (System V, read-only shares), which must come after the unmapping
    let at_once = mm.vmas.iter().any(|v| match v.backing {
        Backing::SysvShm { .. } => true,
        Backing::SharedMem { .. } => read_only_share(v),
        _ => false,
    });
    if at_once {
        batch.run(inj, &mut scratch.args)?;
    }
    // 3. map every mapping of the image, writable where pages must be read in (the
    // premapped pieces lie where step 1 leaves everything as it is)
    let child_maps = match premapped.is_empty() {
        true => None,
        false => Some(ChildMaps::open(pid)?),
    };
    for v in &mm.vmas {
        if let Some(&(_, _, at)) = premapped.iter().find(|r| (r.0, r.1) == (v.start, v.end))
            && let Some(maps) = &child_maps
        {
            move_premapped(&mut batch, maps, v, at)?;
            continue;
        }
        map_one(
            inj,
            &mut batch,
            &who,
            v,
            file_fds,
            mem_fds,
            &mut scratch.args,
        )?;
    }
    batch.run(inj, &mut scratch.args)?;
    // 4. page data, straight from the statefile into place; an incremental image's
    // unchanged pages from the statefiles before it
    let inherited = pages.inherited;
    let progress = pages.progress;
    // lazy restart: the large private anonymous mappings are left to the filler
    let mut pages = pages;
    let skip = match pages.lazy.take() {
        Some(req) => {
            let (registered, lazy) = super::lazy_pages::register(
                inj,
                pid,
                mm,
                &mut scratch.args,
                premapped,
                &req.hot,
                pages.file.as_ref(),
            )?;
            *req.out = registered;
            premapped.iter().copied().chain(lazy).collect()
        }
        None => Vec::new(),
    };
    let pages = if skip.is_empty() {
        pages
    } else {
        PageData {
            premapped: &skip,
            ..pages
        }
    };
    read_pages(inj, &who, mm, &mut scratch.args, pages)?;
    for (fd, reads) in inherited {
        read_at(inj, &who, &mut scratch.args, *fd, progress, reads)?;
    }
    // 5. final protections, locks and hints; names need room in the scratch area until
    // their batch has run, so a batch covers a bounded number of mappings; 6. the mm
    // fields, then the caller's `last` calls, with the last part
    let parts: Vec<&[Vma]> = mm.vmas.chunks(FINISH_PART).collect();
    let mut last = Some(last);
    for k in 0..parts.len().max(1) {
        let mut names = scratch.args.frame();
        for v in parts.get(k).copied().unwrap_or_default() {
            finish(&mut batch, v, &mut names)?;
        }
        if k + 1 >= parts.len() {
            set_mm(&mut batch, &mut names, mm, file_fds)?;
            if let Some(c) = last.take() {
                batch.append(c);
            }
        }
        batch.run(inj, &mut names)?;
    }
    Ok(())
}

/// The mm fields, auxv and executable of the image (prctl PR_SET_MM_MAP), into `batch`;
/// its data goes in `scratch`, which must stay until the batch has run.
fn set_mm(
    batch: &mut Batch,
    scratch: &mut RemoteScratch,
    mm: &MmRecord,
    file_fds: &[(String, i32)],
) -> Result<()> {
    let f = &mm.fields;
    let mut auxv = Vec::new();
    for w in &mm.auxv {
        auxv.extend_from_slice(&w.to_ne_bytes());
    }
    let auxv_addr = scratch.put(&auxv)?;
    // setting the executable link needs CAP_CHECKPOINT_RESTORE: without it the link
    // stays cpr's (the restore child is a copy of cpr)
    let exe_fd = file_fds
        .iter()
        .filter(|_| crate::engine::privilege::can_set_exe())
        .find(|(p, _)| *p == mm.exe)
        .map(|(_, fd)| *fd as u32)
        .unwrap_or(u32::MAX);
    let map = crate::sys::PrctlMmMap {
        start_code: f.start_code,
        end_code: f.end_code,
        start_data: f.start_data,
        end_data: f.end_data,
        start_brk: f.start_brk,
        brk: f.brk,
        start_stack: f.start_stack,
        arg_start: f.arg_start,
        arg_end: f.arg_end,
        env_start: f.env_start,
        env_end: f.env_end,
        auxv: auxv_addr.as_u64(),
        auxv_size: auxv.len() as u32,
        exe_fd,
    };
    let map_addr = scratch.put_struct(&map)?;
    batch.check(
        "prctl(PR_SET_MM_MAP)",
        libc::SYS_prctl,
        [
            libc::PR_SET_MM as u64,
            libc::PR_SET_MM_MAP as u64,
            map_addr.as_u64(),
            std::mem::size_of_val(&map) as u64,
            0,
            0,
        ],
        None,
    );
    Ok(())
}

/// Mappings finished per batch: their names (at most 96 bytes of scratch each) and
/// their calls (at most 13 of 64 bytes) fit in the scratch area together.
const FINISH_PART: usize = 128;

/// What every restore child, a fork of cpr, has where cpr has it: the vDSO areas
/// (`[vdso]`, `[vvar]`, ...), and the end of the highest mapping below vsyscall.
struct OwnLayout {
    vdso: Vec<MapsLine>,
    top: u64,
}

/// cpr's own layout, read once from /proc/self/maps (the vDSO never moves in cpr).
fn own_layout() -> Result<&'static OwnLayout> {
    static OWN: std::sync::OnceLock<OwnLayout> = std::sync::OnceLock::new();
    if let Some(own) = OWN.get() {
        return Ok(own);
    }
    let maps = ProcDir::open(std::process::id() as i32)?.maps()?;
    let top = maps
        .iter()
        .filter(|m| m.path != "[vsyscall]")
        .map(|m| m.end)
        .max()
        .unwrap_or(0);
    let vdso = maps
        .into_iter()
        .filter(|m| super::vdso::is_vdso(&m.path))
        .collect();
    Ok(OWN.get_or_init(|| OwnLayout { vdso, top }))
}

/// The end of the lowest user address space Linux gives on x86-64 (47 bits less a
/// page); with 5-level paging a process can map above only when it asks to.
const USER_END: u64 = 0x7fff_ffff_f000;

/// Unmaps everything of cpr's copy except the scratch area, the vDSO areas (`own`) and
/// the mappings the restore child made (`premapped`): one munmap per gap between them,
/// over the whole user address space, so that neither the child's maps need be read nor
/// each of its mappings be named (munmap passes over holes). vsyscall lies above it.
fn unmap_own(
    batch: &mut Batch,
    own: &OwnLayout,
    scratch: RemoteAddr,
    premapped: &[(u64, u64, u64)],
) {
    let mut keep: Vec<(u64, u64)> = own.vdso.iter().map(|m| (m.start, m.end)).collect();
    keep.push((scratch.as_u64(), scratch.as_u64() + Scratch::SIZE));
    keep.extend(premapped.iter().map(|&(s, e, at)| (at, at + (e - s))));
    keep.sort_unstable();
    let mut from = 0;
    for (s, e) in keep
        .into_iter()
        .chain(std::iter::once((u64::MAX, u64::MAX)))
    {
        let to = s.min(USER_END.max(own.top));
        if to > from {
            batch.check(
                "munmap",
                libc::SYS_munmap,
                [from, to - from, 0, 0, 0, 0],
                None,
            );
        }
        from = from.max(e);
    }
}

/// A restore child's /proc directory and its maps, opened once for all the questions
/// about where its premapped pieces lie.
struct ChildMaps {
    dir: ProcDir,
    maps: std::fs::File,
}

impl ChildMaps {
    fn open(pid: i32) -> Result<ChildMaps> {
        let dir = ProcDir::open(pid)?;
        let maps = dir.open_file("maps")?;
        Ok(ChildMaps { dir, maps })
    }

    /// The mappings (start, end) that overlap `lo..hi`, in address order.
    fn within(&self, lo: u64, hi: u64) -> Result<Vec<(u64, u64)>> {
        use std::os::fd::AsFd;
        self.dir.mappings_within_of(self.maps.as_fd(), lo, hi)
    }
}

/// Moves a mapping the restore child made (at `at`, maybe in several pieces) to its
/// place in the image, with its protection: the calls go into `batch` (the premap area
/// lies in a gap of the image, apart from every other mapping's place).
fn move_premapped(batch: &mut Batch, maps: &ChildMaps, v: &Vma, at: u64) -> Result<()> {
    let len = v.end - v.start;
    let pieces: Vec<(u64, u64)> = maps
        .within(at, at + len)?
        .into_iter()
        .filter(|&(s, e)| at <= s && e <= at + len)
        .collect();
    for (s, e) in pieces {
        batch.check(
            "mremap",
            libc::SYS_mremap,
            [
                s,
                e - s,
                e - s,
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                v.start + (s - at),
                0,
            ],
            Some(format!("mapping {}", describe(v))),
        );
    }
    batch.check(
        "mprotect",
        libc::SYS_mprotect,
        [v.start, len, v.prot as u64, 0, 0, 0],
        None,
    );
    Ok(())
}

/// Maps one mapping of the image at its address, writable where pages must be read in:
/// the plain mmap into `batch` (MAP_FIXED: at its address or an error), the others
/// (System V, read-only shares) at once.
fn map_one(
    inj: &Injector,
    batch: &mut Batch,
    who: &str,
    v: &Vma,
    file_fds: &[(String, i32)],
    mem_fds: &[(u64, i32)],
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let mut prot = v.prot;
    if v.has_pages() {
        prot |= libc::PROT_WRITE | libc::PROT_READ;
    }
    let len = v.end - v.start;
    let mut flags = libc::MAP_FIXED
        | if v.shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    if v.has_flag("gd") {
        flags |= libc::MAP_GROWSDOWN;
    }
    if v.has_flag("nr") {
        flags |= libc::MAP_NORESERVE;
    }
    let (fd, off) = match &v.backing {
        Backing::Vdso | Backing::Vsyscall => return Ok(()),
        Backing::SysvShm { shmid } => {
            // attached by an injected shmat at the same address (sysv_shm.rs)
            super::sysv_shm::attach(inj, who, v, *shmid)?;
            return Ok(());
        }
        Backing::Anon => {
            flags |= libc::MAP_ANONYMOUS;
            (u64::MAX, 0)
        }
        Backing::SharedMem { ino, offset } => {
            let fd = mem_fds
                .iter()
                .find(|(i, _)| i == ino)
                .map(|(_, fd)| *fd)
                .ok_or_else(|| {
                    Error::with_detail(
                        who.to_string(),
                        Kind::CheckpointError,
                        format!("shared memory {ino} not opened"),
                    )
                })?;
            if read_only_share(v) {
                return map_read_only(inj, who, v, fd, *offset, flags, scratch);
            }
            (fd as u64, *offset)
        }
        Backing::File { path, offset } => {
            let fd = file_fds
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, fd)| *fd)
                .ok_or_else(|| {
                    Error::with_detail(
                        who.to_string(),
                        Kind::NoSuchFile,
                        format!("mapped file {path} not opened"),
                    )
                })?;
            (fd as u64, *offset)
        }
    };
    batch.check(
        "mmap",
        libc::SYS_mmap,
        [v.start, len, prot as u64, flags as u64, fd, off],
        Some(format!("mapping {:#x}-{:#x} {}", v.start, v.end, v.name)),
    );
    Ok(())
}

/// A shared mapping that may never become writable (no `mw` VmFlag: the object was
/// open read-only), which must not come back from a read-write descriptor.
fn read_only_share(v: &Vma) -> bool {
    v.shared && v.prot & libc::PROT_WRITE == 0 && !v.flags.is_empty() && !v.has_flag("mw")
}

/// Maps shared mapping `v` of the object open as `fd` through a read-only descriptor on
/// it (opened through /proc/self/fd in the process, closed again), so that it cannot
/// be made writable later either.
fn map_read_only(
    inj: &Injector,
    who: &str,
    v: &Vma,
    fd: i32,
    offset: u64,
    flags: i32,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let mut s = scratch.frame();
    let path = s.put(format!("/proc/self/fd/{fd}\0").as_bytes())?;
    let ro = inj.check(
        "openat",
        libc::SYS_openat,
        [
            libc::AT_FDCWD as u64,
            path.as_u64(),
            (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            0,
            0,
            0,
        ],
    )?;
    let got = inj.check(
        "mmap",
        libc::SYS_mmap,
        [
            v.start,
            v.end - v.start,
            v.prot as u64,
            flags as u64,
            ro,
            offset,
        ],
    );
    inj.call(libc::SYS_close, [ro, 0, 0, 0, 0, 0])?;
    let got = got.map_err(|e| e.detail(format!("mapping {}", describe(v))))?;
    if got != v.start {
        return Err(Error::with_detail(
            who.to_string(),
            Kind::NotEnoughSpace,
            format!("mapping {:#x} placed at {got:#x}", v.start),
        ));
    }
    Ok(())
}

/// Once the pages are in: the mapping's own protection, its memory lock and its hints.
/// The calls go into `batch`; a name is put in `scratch`, which must stay until the batch
/// has run.
fn finish(batch: &mut Batch, v: &Vma, scratch: &mut RemoteScratch) -> Result<()> {
    if matches!(v.backing, Backing::Vdso | Backing::Vsyscall) {
        return Ok(());
    }
    let len = v.end - v.start;
    if let Some(name) = anon_name(&v.name) {
        // the name given with prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME)
        let mut bytes = name.as_bytes().to_vec();
        bytes.push(0);
        let at = scratch.put(&bytes)?;
        batch.check(
            "prctl(PR_SET_VMA_ANON_NAME)",
            libc::SYS_prctl,
            [
                PR_SET_VMA,
                PR_SET_VMA_ANON_NAME,
                v.start,
                len,
                at.as_u64(),
                0,
            ],
            Some(format!("mapping {}", describe(v))),
        );
    }
    if v.has_pages() && v.prot != (v.prot | libc::PROT_WRITE | libc::PROT_READ) {
        batch.check(
            "mprotect",
            libc::SYS_mprotect,
            [v.start, len, v.prot as u64, 0, 0, 0],
            None,
        );
    }
    for (flag, adv) in ADVICE {
        if v.has_flag(flag) {
            batch.check(
                "madvise",
                libc::SYS_madvise,
                [v.start, len, adv as u64, 0, 0, 0],
                Some(format!("VmFlag '{flag}' of mapping {}", describe(v))),
            );
        }
    }
    if v.has_flag("lo") {
        // locked on fault (mlock2 MLOCK_ONFAULT) or all at once
        let (name, nr, onfault) = if v.has_flag("lf") {
            ("mlock2", libc::SYS_mlock2, libc::MLOCK_ONFAULT as u64)
        } else {
            ("mlock", libc::SYS_mlock, 0)
        };
        batch.check(
            name,
            nr,
            [v.start, len, onfault, 0, 0, 0],
            Some(format!("mapping {}", describe(v))),
        );
    }
    if v.has_flag("sl") {
        // sealed last: nothing may change the mapping after this
        batch.check(
            "mseal",
            libc::SYS_mseal,
            [v.start, len, 0, 0, 0, 0],
            Some(format!("mapping {}", describe(v))),
        );
    }
    Ok(())
}

/// Where a restore child reads its page data: its descriptor of the statefile's pages
/// file, and whom to tell of the bytes read.
pub struct PageData<'a> {
    pub fd: i32,
    pub progress: &'a Progress,
    /// An incremental image's pages in earlier statefiles: the child's descriptor of
    /// each one's page data, and (address, length, offset) to read from it.
    pub inherited: &'a [(i32, super::incremental::Reads)],
    /// cpr's own descriptor of the same file, to fill part of the memory from cpr at
    /// the same time (`read_pages`); None: the child reads it all.
    pub file: Option<std::fs::File>,
    /// (image start, image end, where now) of the mappings the restore child made and
    /// filled already (cow_pages.rs): moved into place, their pages not read again.
    pub premapped: &'a [(u64, u64, u64)],
    /// Lazy restart: where to put the registration (lazy_pages.rs); None: eager.
    pub lazy: Option<super::lazy_pages::Request<'a>>,
}

const PR_SET_VMA: u64 = 0x53564d41;
const PR_SET_VMA_ANON_NAME: u64 = 0;

/// The name of named anonymous memory (`[anon:NAME]`, shared `[anon_shmem:NAME]`).
fn anon_name(shown: &str) -> Option<&str> {
    let inner = shown.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .strip_prefix("anon:")
        .or_else(|| inner.strip_prefix("anon_shmem:"))
}

/// The madvise calls that give back each advice VmFlag.
const ADVICE: [(&str, i32); 8] = [
    ("sr", libc::MADV_SEQUENTIAL),
    ("rr", libc::MADV_RANDOM),
    ("dc", libc::MADV_DONTFORK),
    ("wf", libc::MADV_WIPEONFORK),
    ("dd", libc::MADV_DONTDUMP),
    ("hg", libc::MADV_HUGEPAGE),
    ("nh", libc::MADV_NOHUGEPAGE),
    ("mg", libc::MADV_MERGEABLE),
];

/// A mapping as errors name it: its range and what /proc shows for it.
fn describe(v: &Vma) -> String {
    if v.name.is_empty() {
        format!("{:#x}-{:#x}", v.start, v.end)
    } else {
        format!("{:#x}-{:#x} {}", v.start, v.end, v.name)
    }
}

/// The page data of the image, from the statefile's pages file straight into place.
/// With cpr's own descriptor of the file (`PageData::file`) and enough data, the work is
/// split across both CPUs: the child reads the first half by injected preadv calls while
/// a thread of cpr writes the rest with process_vm_writev from a mapping of the file;
/// each copies the page cache once, into the child's memory.
fn read_pages(
    inj: &Injector,
    who: &str,
    mm: &MmRecord,
    scratch: &mut RemoteScratch,
    pages: PageData<'_>,
) -> Result<()> {
    // below this, a second thread costs more than it saves
    const PARALLEL_MIN: u64 = 16 << 20;
    let segments = page_segments(mm, pages.premapped);
    let total: u64 = segments.iter().map(|s| s.1).sum();
    if mm.compression.is_some() {
        let Some(file) = pages.file else {
            return Err(Error::with_detail(
                who.to_string(),
                Kind::CheckpointError,
                "compressed page data: the pages file cannot be opened",
            ));
        };
        return fill_compressed(
            scratch.pid(),
            who,
            &file,
            &segments,
            mm.pages_bytes,
            pages.progress,
        );
    }
    // asked only when it matters: available_parallelism reads cgroup files each time
    let helper_file = pages.file.filter(|_| {
        total >= PARALLEL_MIN && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
    });
    // both copy once: half each
    let split = if helper_file.is_some() {
        (total / 2) & !(PAGE - 1)
    } else {
        total
    };
    let (mine, theirs) = split_segments(&segments, split);
    let pid = scratch.pid();
    std::thread::scope(|scope| -> Result<()> {
        let helper = helper_file.map(|file| {
            let theirs = &theirs;
            let progress = pages.progress;
            scope.spawn(move || write_from_cpr(pid, who, file, theirs, progress))
        });
        populate_in_child(inj, &mine);
        let ours = inject_preadv(inj, who, scratch, pages.fd, pages.progress, &mine);
        let helped = match helper {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    "page filler failed",
                ))
            }),
            None => Ok(()),
        };
        ours?;
        helped
    })
}

/// Compressed page data (statefile/compress.rs) decoded by two threads of cpr, a chunk
/// at a time each, and written into process `pid` with process_vm_writev.
fn fill_compressed(
    pid: i32,
    who: &str,
    file: &std::fs::File,
    segments: &[(u64, u64, u64)],
    pages_bytes: u64,
    progress: &Progress,
) -> Result<()> {
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(who.to_string(), e))?
        .len();
    let chunks = compress::index(file, file_len, pages_bytes).map_err(|e| e.context(who))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> Result<()> {
        let mut stored = Vec::new();
        let mut raw = vec![0u8; compress::CHUNK.min(pages_bytes as usize)];
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(c) = chunks.get(i) else {
                return Ok(());
            };
            progress.check_cancelled(who)?;
            compress::decode(file, c, &mut stored, &mut raw).map_err(|e| e.context(who))?;
            let remote = remote_pieces(segments, c.raw_off, c.raw as u64);
            let wrote = process_vm_writev(
                Pid::from_raw(pid),
                &[std::io::IoSlice::new(&raw[..c.raw])],
                &remote,
            )
            .ctx(format!("{who}: writing memory"))?;
            if wrote != c.raw {
                return Err(Error::with_detail(
                    who.to_string(),
                    Kind::CheckpointError,
                    format!("memory of page data at {} cannot be written", c.raw_off),
                ));
            }
            progress.bytes(c.raw as u64);
        }
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(work);
        let mine = work();
        let theirs = other.join().unwrap_or_else(|_| {
            Err(Error::with_detail(
                who.to_string(),
                Kind::CheckpointError,
                "page filler failed",
            ))
        });
        mine.and(theirs)
    })
}

/// Where bytes `raw_off..raw_off + len` of the page data go in memory, given the
/// `segments` (address, length, offset in the page data) in order.
fn remote_pieces(segments: &[(u64, u64, u64)], raw_off: u64, len: u64) -> Vec<RemoteIoVec> {
    let first = segments.partition_point(|s| s.2 + s.1 <= raw_off);
    let end = raw_off + len;
    let mut out = Vec::new();
    for &(addr, seg_len, off) in &segments[first..] {
        if off >= end {
            break;
        }
        let from = raw_off.max(off);
        let to = end.min(off + seg_len);
        out.push(RemoteIoVec {
            base: (addr + (from - off)) as usize,
            len: (to - from) as usize,
        });
    }
    out
}

/// The saved pages as (address, length, offset in the pages file), in file order,
/// without those of the mappings the restore child made and filled already (`premapped`).
fn page_segments(mm: &MmRecord, premapped: &[(u64, u64, u64)]) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut off = 0u64;
    for v in &mm.vmas {
        let skip = premapped.iter().any(|r| (r.0, r.1) == (v.start, v.end));
        for &(first, count) in &v.runs {
            if !skip {
                out.push((v.start + first * PAGE, count * PAGE, off));
            }
            off += count * PAGE;
        }
    }
    out
}

/// `segments` cut at `at` bytes of data: those before, those after.
#[allow(clippy::type_complexity)]
fn split_segments(
    segments: &[(u64, u64, u64)],
    at: u64,
) -> (Vec<(u64, u64, u64)>, Vec<(u64, u64, u64)>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut seen = 0u64;
    for &(addr, len, off) in segments {
        if seen + len <= at {
            before.push((addr, len, off));
        } else if seen >= at {
            after.push((addr, len, off));
        } else {
            let head = at - seen;
            before.push((addr, head, off));
            after.push((addr + head, len - head, off + head));
        }
        seen += len;
    }
    (before, after)
}

/// cpr's part of the page fill: `segments` of the pages file copied into process `pid`
/// by process_vm_writev straight from a read-only mapping of the file (one copy, as the
/// child's preadv; the kernel alone touches the mapping).
fn write_from_cpr(
    pid: i32,
    who: &str,
    file: std::fs::File,
    segments: &[(u64, u64, u64)],
    progress: &Progress,
) -> Result<()> {
    // mapped a window at a time, so that cpr's address space stays small
    const WINDOW: u64 = 64 << 20;
    const STEP: u64 = 8 << 20;
    for &(addr, len, off) in segments {
        let mut done = 0u64;
        while done < len {
            let at_file = off + done;
            let window_off = at_file & !(PAGE - 1);
            let n = (len - done).min(WINDOW);
            let view = crate::sys::file_view::FileView::map(
                &file,
                window_off,
                (at_file - window_off + n) as usize,
            )
            .map_err(|e| Error::errno(format!("{who}: statefile page data"), e))?;
            let mut sent = 0u64;
            while sent < n {
                progress.check_cancelled(who)?;
                let step = (n - sent).min(STEP);
                let to = addr + done + sent;
                let wrote = view
                    .write_to_process(
                        pid,
                        (at_file - window_off + sent) as usize,
                        to,
                        step as usize,
                    )
                    .map_err(|e| Error::errno(format!("{who}: memory at {to:#x}"), e))?;
                if wrote as u64 != step {
                    return Err(Error::with_detail(
                        who.to_string(),
                        Kind::CheckpointError,
                        format!("memory at {:#x} cannot be written", to + wrote as u64),
                    ));
                }
                progress.bytes(step);
                sent += step;
            }
            done += n;
        }
    }
    Ok(())
}

/// Before the child's part of the page fill: its large stretches of memory faulted in
/// writable by an injected madvise(MADV_POPULATE_WRITE) each, so that its preadv then
/// copies into pages that are there. A page fault per page taken by the copy costs more
/// (an exception each): 512 MiB of fresh anonymous memory took 400 ms of CPU to preadv
/// into by faults, 310 ms populated first (median of 8, here). Best effort: a kernel
/// without the advice (before 5.14), or one that cannot populate, leaves the faults to
/// the preadv, which reports what fails.
fn populate_in_child(inj: &Injector, segments: &[(u64, u64, u64)]) {
    // the advice (not in every libc crate's list)
    // a stretch smaller than this is left to the faults: not worth an injected call
    const MIN: u64 = 1 << 20;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &(addr, len, _) in segments {
        match ranges.last_mut() {
            Some((a, l)) if *a + *l == addr => *l += len,
            _ => ranges.push((addr, len)),
        }
    }
    for (addr, len) in ranges.into_iter().filter(|r| r.1 >= MIN) {
        match inj.call(
            libc::SYS_madvise,
            [addr, len, libc::MADV_POPULATE_WRITE as u64, 0, 0, 0],
        ) {
            // the advice is unknown here: no use asking again
            Ok(rc) if rc == -i64::from(libc::EINVAL) => return,
            _ => {}
        }
    }
}

/// The child's part of the page fill: `segments` read from its descriptor `pages_fd` by
/// injected preadv calls, with their iovecs in `scratch`.
fn inject_preadv(
    inj: &Injector,
    who: &str,
    scratch: &mut RemoteScratch,
    pages_fd: i32,
    progress: &Progress,
    segments: &[(u64, u64, u64)],
) -> Result<()> {
    const IOV_MAX: usize = 1024;
    // bytes per preadv call: keeps each call interruptible-sized; smaller when someone
    // watches the progress, so that it moves
    const CHUNK: u64 = 1 << 30;
    const OBSERVED_CHUNK: u64 = 32 << 20;
    let chunk = if progress.is_observed() {
        OBSERVED_CHUNK
    } else {
        CHUNK
    };
    let mut iovs: Vec<(u64, u64)> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut batch_off = 0u64;
    let mut reader = PagesReader {
        inj,
        who,
        scratch,
        pages_fd,
        progress,
    };
    for &(start, seg_len, seg_off) in segments {
        let mut addr = start;
        let mut len = seg_len;
        let mut file_off = seg_off;
        while len > 0 {
            // a batch is one contiguous stretch of the file
            if !iovs.is_empty() && batch_off + batch_bytes != file_off {
                reader.flush(&mut iovs, &mut batch_bytes, batch_off)?;
            }
            let n = len.min(chunk - batch_bytes);
            if iovs.is_empty() {
                batch_off = file_off;
            }
            // merge with the previous iovec when contiguous in memory too
            match iovs.last_mut() {
                Some((a, l)) if *a + *l == addr => *l += n,
                _ => iovs.push((addr, n)),
            }
            batch_bytes += n;
            file_off += n;
            addr += n;
            len -= n;
            if iovs.len() >= IOV_MAX || batch_bytes >= chunk {
                reader.flush(&mut iovs, &mut batch_bytes, batch_off)?;
            }
        }
    }
    reader.flush(&mut iovs, &mut batch_bytes, batch_off)
}

/// Reads `reads` (address, length, offset; in offset order) from the page data open as
/// `fd` in the restore child, straight into place.
fn read_at(
    inj: &Injector,
    who: &str,
    scratch: &mut RemoteScratch,
    fd: i32,
    progress: &Progress,
    reads: &[(u64, u64, u64)],
) -> Result<()> {
    const IOV_MAX: usize = 1024;
    let mut reader = PagesReader {
        inj,
        who,
        scratch,
        pages_fd: fd,
        progress,
    };
    let mut iovs: Vec<(u64, u64)> = Vec::new();
    let (mut batch_off, mut batch_bytes) = (0u64, 0u64);
    for &(addr, len, off) in reads {
        // a batch is one stretch of the file
        if !iovs.is_empty() && (off != batch_off + batch_bytes || iovs.len() >= IOV_MAX) {
            reader.flush(&mut iovs, &mut batch_bytes, batch_off)?;
        }
        if iovs.is_empty() {
            batch_off = off;
        }
        iovs.push((addr, len));
        batch_bytes += len;
    }
    reader.flush(&mut iovs, &mut batch_bytes, batch_off)
}

/// What a batch of preadv calls in the restore child needs.
struct PagesReader<'a> {
    inj: &'a Injector,
    who: &'a str,
    scratch: &'a mut RemoteScratch,
    pages_fd: i32,
    progress: &'a Progress,
}

impl PagesReader<'_> {
    /// Reads `batch_bytes` bytes at `batch_off` of the pages file into the places `iovs`
    /// (address, length) say, then empties the batch.
    fn flush(
        &mut self,
        iovs: &mut Vec<(u64, u64)>,
        batch_bytes: &mut u64,
        batch_off: u64,
    ) -> Result<()> {
        if iovs.is_empty() {
            return Ok(());
        }
        let mut done = 0u64;
        while done < *batch_bytes {
            self.progress.check_cancelled(self.who)?;
            // preadv may return short: redo the rest with an adjusted vector
            let n = self.preadv(iovs, batch_off + done)?;
            if n == 0 {
                return Err(Error::with_detail(
                    self.who.to_string(),
                    Kind::CheckpointError,
                    "statefile page data ends early",
                ));
            }
            done += n;
            self.progress.bytes(n);
            if done < *batch_bytes {
                let mut skip = n;
                while skip > 0 && !iovs.is_empty() {
                    if iovs[0].1 <= skip {
                        skip -= iovs[0].1;
                        iovs.remove(0);
                    } else {
                        iovs[0].0 += skip;
                        iovs[0].1 -= skip;
                        skip = 0;
                    }
                }
            }
        }
        iovs.clear();
        *batch_bytes = 0;
        Ok(())
    }

    /// One preadv of the pages file at `off` into the places `iovs` say, with the
    /// iovecs (as struct iovec) in the scratch area; returns the bytes read.
    fn preadv(&mut self, iovs: &[(u64, u64)], off: u64) -> Result<u64> {
        let mut bytes = Vec::with_capacity(iovs.len() * 16);
        for (a, l) in iovs.iter() {
            bytes.extend_from_slice(&a.to_ne_bytes());
            bytes.extend_from_slice(&l.to_ne_bytes());
        }
        let mut s = self.scratch.frame();
        let iov = s.put(&bytes)?;
        self.inj.check(
            "preadv",
            libc::SYS_preadv,
            [
                self.pages_fd as u64,
                iov.as_u64(),
                iovs.len() as u64,
                off,
                0,
                0,
            ],
        )
    }
}

// ---------------------------------------------------------------------------------------
// The check before release

/// Compares the address space of restored process `pid` (stopped, its memory in place)
/// with its record: every address mapped as it was and nothing else, with the same
/// protections, sharing, restorable VmFlags (advice, locks, growth), backing (name,
/// offset, the same object behind every mapping of one saved object) and, for programs
/// and libraries, the same file. The first difference is "Checkpoint error" naming the
/// mapping and both values.
pub fn verify_restored(pid: i32, mm: &MmRecord) -> Result<()> {
    let dir = ProcDir::open(pid)?;
    // one read of smaps: its mapping lines are the maps lines
    let (now, flags) = dir.maps_and_flags()?;
    let now: Vec<MapsLine> = now.into_iter().filter(|m| m.path != "[vsyscall]").collect();
    let flags: BTreeMap<u64, Vec<String>> = flags.into_iter().collect();
    let want: Vec<&Vma> = mm
        .vmas
        .iter()
        .filter(|v| v.backing != Backing::Vsyscall)
        .collect();
    let differ =
        |what: String| Error::with_detail(format!("process {pid}"), Kind::CheckpointError, what);
    let ranges_now: Vec<(u64, u64)> = now.iter().map(|m| (m.start, m.end)).collect();
    let ranges_want: Vec<(u64, u64)> = want.iter().map(|v| (v.start, v.end)).collect();
    for v in &want {
        if let Some(at) = first_uncovered((v.start, v.end), &ranges_now) {
            return Err(differ(format!(
                "mapping {}: {at:#x} saved mapped, restored not mapped",
                describe(v)
            )));
        }
    }
    for m in &now {
        if let Some(at) = first_uncovered((m.start, m.end), &ranges_want) {
            return Err(differ(format!(
                "mapping {:#x}-{:#x} {}: {at:#x} saved not mapped, restored mapped",
                m.start, m.end, m.path
            )));
        }
    }
    // saved object -> (device, inode) of what maps it now
    let mut objects: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    for v in &want {
        // now is sorted and disjoint: those overlapping v follow those ending before it
        let first = now.partition_point(|m| m.end <= v.start);
        for m in now[first..].iter().take_while(|m| m.start < v.end) {
            let no_flags = Vec::new();
            let m_flags = flags.get(&m.start).unwrap_or(&no_flags);
            compare_one(v, m, m_flags, &mm.components, &mut objects)
                .map_err(|what| differ(format!("mapping {}: {what}", describe(v))))?;
        }
    }
    Ok(())
}

/// The first address of `range` that no range of `sorted` covers.
fn first_uncovered(range: (u64, u64), sorted: &[(u64, u64)]) -> Option<u64> {
    let mut at = range.0;
    // the ranges ending at or before it cannot cover it: start after them (binary search)
    let skip = sorted.partition_point(|&(_, e)| e <= at);
    for &(s, e) in &sorted[skip..] {
        if e <= at {
            continue;
        }
        if s > at || at >= range.1 {
            break;
        }
        at = e;
    }
    (at < range.1).then_some(at)
}

/// Compares saved mapping `v` with a restored mapping `m` (flags `m_flags`) that overlaps
/// it; the difference, with both values.
fn compare_one(
    v: &Vma,
    m: &MapsLine,
    m_flags: &[String],
    components: &[super::mapped_files::Component],
    objects: &mut BTreeMap<u64, (String, u64)>,
) -> std::result::Result<(), String> {
    use crate::proc::maps::{VmFlagKind, vm_flag_kind};
    if v.prot != m.prot() || v.shared != m.shared() {
        return Err(format!(
            "protections {}, restored {}",
            perms_text(v.prot, v.shared),
            m.perms
        ));
    }
    // what restart sets, and whether the mapping may become writable
    let restorable = |f: &&String| vm_flag_kind(f) == Some(VmFlagKind::Restored) || *f == "mw";
    let mut saved_flags: Vec<&String> = v.flags.iter().filter(restorable).collect();
    let mut now_flags: Vec<&String> = m_flags.iter().filter(restorable).collect();
    saved_flags.sort();
    now_flags.sort();
    if saved_flags != now_flags {
        let join = |f: &[&String]| f.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        return Err(format!(
            "VmFlags '{}', restored '{}'",
            join(&saved_flags),
            join(&now_flags)
        ));
    }
    // a program or library that changed since, mapped from its copy (cpr -u)
    let upgraded = matches!(&v.backing, Backing::File { path, .. }
        if components.iter().any(|c| &c.path == path && c.saved.is_some()));
    if v.name != m.path && !upgraded {
        return Err(format!("backed by '{}', restored by '{}'", v.name, m.path));
    }
    // the same place in the backing file or object
    let at = v.start.max(m.start);
    let offset_at = |start: u64, offset: u64| offset + (at - start);
    match &v.backing {
        Backing::File { path, offset } => {
            if offset_at(v.start, *offset) != offset_at(m.start, m.offset) {
                return Err(format!(
                    "file offset {:#x}, restored {:#x}",
                    offset_at(v.start, *offset),
                    offset_at(m.start, m.offset)
                ));
            }
            if let Some(c) = components.iter().find(|c| &c.path == path)
                && c.saved.is_none()
                && m.inode != c.ino
            {
                return Err(format!("file inode {}, restored inode {}", c.ino, m.inode));
            }
        }
        Backing::SharedMem { ino, offset } => {
            if offset_at(v.start, *offset) != offset_at(m.start, m.offset) {
                return Err(format!(
                    "offset {:#x}, restored {:#x}",
                    offset_at(v.start, *offset),
                    offset_at(m.start, m.offset)
                ));
            }
            let id = (m.dev.clone(), m.inode);
            let first = objects.entry(*ino).or_insert_with(|| id.clone());
            if *first != id {
                return Err(format!(
                    "one object (inode {ino}) saved, restored as two ({}:{} and {}:{})",
                    first.0, first.1, id.0, id.1
                ));
            }
        }
        Backing::Vdso => {
            if (v.start, v.end) != (m.start, m.end) {
                return Err(format!("restored at {:#x}-{:#x}", m.start, m.end));
            }
        }
        Backing::Anon | Backing::SysvShm { .. } | Backing::Vsyscall => {}
    }
    Ok(())
}

/// Protections as /proc/PID/maps writes them (`rw-p`).
fn perms_text(prot: i32, shared: bool) -> String {
    let bit = |b: i32, c: char| if prot & b != 0 { c } else { '-' };
    format!(
        "{}{}{}{}",
        bit(libc::PROT_READ, 'r'),
        bit(libc::PROT_WRITE, 'w'),
        bit(libc::PROT_EXEC, 'x'),
        if shared { 's' } else { 'p' }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_at_a_byte_count() {
        let segs = [(0x1000, 0x2000, 0), (0x10000, 0x3000, 0x2000)];
        let (a, b) = split_segments(&segs, 0x3000);
        assert_eq!(a, vec![(0x1000, 0x2000, 0), (0x10000, 0x1000, 0x2000)]);
        assert_eq!(b, vec![(0x11000, 0x2000, 0x3000)]);
        let (a, b) = split_segments(&segs, 0x5000);
        assert_eq!((a.len(), b.len()), (2, 0));
        let (a, b) = split_segments(&segs, 0);
        assert_eq!((a.len(), b), (0, segs.to_vec()));
    }

    #[test]
    fn runs_of_present_pages() {
        let e = [PM_PRESENT, PM_PRESENT, 0, PM_SWAP, PM_PRESENT | PM_FILE];
        assert_eq!(pages_to_save(&e, false), vec![(0, 2), (3, 2)]);
        assert_eq!(pages_to_save(&e, true), vec![(0, 2), (3, 1)]);
    }

    #[test]
    fn page_scan_finds_what_pagemap_finds() {
        // a buffer of this process with every third page written, the rest never touched
        let mut buf = vec![0u8; 64 << 20];
        let at = buf.as_ptr() as u64;
        let base = at.div_ceil(PAGE) * PAGE;
        let end = base + 8192 * PAGE;
        for p in (0..8192).step_by(3) {
            buf[(base - at + p * PAGE) as usize] = 1;
        }
        let line = MapsLine::parse(&format!("{base:x}-{end:x} rw-p 00000000 00:00 0")).unwrap();
        let pid = std::process::id() as i32;
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        let scanned = scan_runs(&pagemap, &line, false).expect("PAGEMAP_SCAN");
        let read = pages_to_save(&pagemap_entries(pid, &line, &pagemap).unwrap(), false);
        assert_eq!(scanned, read);
        assert!(scanned.len() >= 8192 / 3, "{}", scanned.len());
        std::hint::black_box(&buf);
    }

    #[test]
    fn scratch_fits_in_gaps() {
        let v = |s, e| Vma {
            start: s,
            end: e,
            prot: 0,
            shared: false,
            backing: Backing::Anon,
            name: String::new(),
            flags: vec![],
            runs: vec![],
            inherited: vec![],
            cow: vec![],
        };
        let vmas = vec![v(0x400000, 0x500000), v(0x7f0000000000, 0x7f0000100000)];
        for c in scratch_candidates(&vmas) {
            for m in &vmas {
                assert!(c + Scratch::SIZE <= m.start || c >= m.end);
            }
        }
        assert!(!scratch_candidates(&vmas).is_empty());
    }
    #[test]
    fn uncovered_addresses() {
        let have = [(0x1000, 0x3000), (0x3000, 0x4000), (0x6000, 0x7000)];
        assert_eq!(first_uncovered((0x1000, 0x4000), &have), None);
        assert_eq!(first_uncovered((0x2000, 0x5000), &have), Some(0x4000));
        assert_eq!(first_uncovered((0x0, 0x2000), &have), Some(0x0));
        assert_eq!(first_uncovered((0x6000, 0x7000), &have), None);
    }

    #[test]
    fn restored_mapping_differences_are_named() {
        let saved = Vma {
            start: 0x1000,
            end: 0x3000,
            prot: libc::PROT_READ | libc::PROT_WRITE,
            shared: true,
            backing: Backing::SharedMem { ino: 7, offset: 0 },
            name: "/memfd:x (deleted)".into(),
            flags: vec!["rd".into(), "wr".into(), "sr".into()],
            runs: vec![],
            inherited: vec![],
            cow: vec![],
        };
        let line = |s: &str| MapsLine::parse(s).unwrap();
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut objects = BTreeMap::new();
        let same = line("1000-2000 rw-s 00000000 00:01 42 /memfd:x (deleted)");
        let same_flags = flags(&["rd", "wr", "sr", "ac"]);
        assert_eq!(
            compare_one(&saved, &same, &same_flags, &[], &mut objects),
            Ok(())
        );
        let next = line("2000-3000 rw-s 00001000 00:01 42 /memfd:x (deleted)");
        assert_eq!(
            compare_one(&saved, &next, &same_flags, &[], &mut objects),
            Ok(())
        );
        for (m, f, want) in [
            (
                "1000-3000 r--s 00000000 00:01 42 /memfd:x (deleted)",
                &same_flags,
                "protections rw-s, restored r--s",
            ),
            (
                "1000-3000 rw-s 00000000 00:01 42 /memfd:x (deleted)",
                &flags(&["rd", "wr"]),
                "VmFlags 'sr', restored ''",
            ),
            (
                "1000-3000 rw-s 00000000 00:01 42 /memfd:y (deleted)",
                &same_flags,
                "restored by '/memfd:y (deleted)'",
            ),
            (
                "2000-3000 rw-s 00002000 00:01 42 /memfd:x (deleted)",
                &same_flags,
                "offset 0x1000, restored 0x2000",
            ),
            (
                "2000-3000 rw-s 00001000 00:01 43 /memfd:x (deleted)",
                &same_flags,
                "restored as two",
            ),
        ] {
            let got = compare_one(&saved, &line(m), f, &[], &mut objects).unwrap_err();
            assert!(got.contains(want), "{m}: {got}");
        }
    }
}
