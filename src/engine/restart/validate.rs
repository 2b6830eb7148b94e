//! Validation: every statefile named is opened and checked (revision, owner, every
//! record's checksum) and every record read and decoded, before anything is created.
//! The bulk page data is checked later, in the background, while the address spaces
//! are built (`check_pages`), and before any process is released.

use crate::engine::objects::cow_pages;
use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::engine::objects::events::EventFd;
use crate::engine::objects::files::{FdKind, FdRecord};
use crate::engine::objects::incremental;
use crate::engine::objects::memory::{Backing, MmRecord};
use crate::engine::objects::pstree::{self, TreeRecord};
use crate::engine::objects::shared_fds::{self, SharedTable};
use crate::engine::objects::sysv_shm::{self, ShmIndex};
use crate::error::{Error, Kind, Result};
use crate::statefile::reader::{Verify, damaged_record};
use crate::statefile::records::is_normal_absolute;
use crate::statefile::{CoreRecord, core_path, layout, mm_path, pages_path};
use crate::statefile::{ProcessSummary, Statefile};

/// One process of a statefile, as read.
pub struct Image {
    /// Index of its statefile.
    pub sf: usize,
    pub core: CoreRecord,
    pub mm: MmRecord,
    /// An incremental image's pages held by the statefiles before it.
    pub inherited: Vec<incremental::InheritedPages>,
}

/// Every record of the statefiles named, decoded.
pub struct Loaded {
    pub statefiles: Vec<Statefile>,
    /// Every process of every statefile, in statefile then manifest order.
    pub images: Vec<Image>,
    /// Per statefile: what its processes share.
    pub tables: Vec<SharedTable>,
    /// Per statefile: its tree's zombies.
    pub trees: Vec<TreeRecord>,
}

/// Opens, checks and decodes every statefile in `paths` for a restart by `caller` (only
/// the checkpoint owner or root restarts; what root checkpointed only root). Creates
/// nothing.
pub fn load(paths: &[PathBuf], caller: u32) -> Result<Loaded> {
    let mut loaded = Loaded {
        statefiles: Vec::new(),
        images: Vec::new(),
        tables: Vec::new(),
        trees: Vec::new(),
    };
    for path in paths {
        let sf = Statefile::open(path, Verify::Sizes)?;
        let vouched = caller == 0 && sf.authenticate()?;
        // every record's checksum: the processes' records as they are read for decoding
        // (Statefile::read checks the very bytes it returns), the others beside that; a
        // mismatch wins over what decoding found
        let (checked, images) = std::thread::scope(|scope| {
            let checked = scope.spawn(|| {
                sf.verify_files(|rel| {
                    !layout::is_bulk(rel)
                        && !matches!(
                            layout::kind_of(rel),
                            Some(layout::FileKind::Core | layout::FileKind::Mm)
                        )
                })
            });
            let images = (|| -> Result<Vec<Image>> {
                // an incremental statefile: every link of its chain checked
                let chain = incremental::open_chain(&sf, caller)?;
                let owner = sf.manifest.owner.uid;
                if caller != 0 && (caller != owner || owner == 0) {
                    return Err(Error::with_detail(
                        path.display().to_string(),
                        Kind::NotPermitted,
                        format!(
                            "checkpointed by uid {owner}; only that user or root may restart it"
                        ),
                    ));
                }
                let sf_index = loaded.statefiles.len();
                decode_images(&sf, &chain, sf_index)
            })();
            let checked = checked.join().unwrap_or_else(|_| {
                Err(Error::with_detail(
                    path.display().to_string(),
                    Kind::CheckpointError,
                    "checking the records failed",
                ))
            });
            (checked, images)
        });
        checked?;
        loaded.images.extend(images?);
        // pages shared with a parent: some ancestor in this statefile saved each
        let first = loaded.images.len() - sf.manifest.processes.len();
        let members: Vec<cow_pages::Member<'_>> = loaded.images[first..]
            .iter()
            .map(|i| cow_pages::Member {
                pid: i.core.process.pid,
                ppid: i.core.process.ppid,
                mm: &i.mm,
            })
            .collect();
        cow_pages::check_all(&members).map_err(|e| e.context(path.display()))?;
        let table = if sf.entry(shared_fds::TABLE).is_some() {
            sf.read_json::<SharedTable>(shared_fds::TABLE)?
        } else {
            SharedTable::default()
        };
        for f in &table.files {
            check_fd(&f.template).map_err(|e| {
                e.context(format!("{} file {}", shared_fds::TABLE, f.id))
                    .context(path.display())
            })?;
        }
        check_shared_memory(&sf, &table).map_err(|e| e.context(path.display()))?;
        loaded.tables.push(table);
        let tree = if sf.entry(pstree::TREE).is_some() {
            sf.read_json::<TreeRecord>(pstree::TREE)?
        } else {
            TreeRecord::default()
        };
        check_tree(&sf.manifest.processes, &tree).map_err(|e| e.context(path.display()))?;
        loaded.trees.push(tree);
        super::authority::check(&sf, &loaded, caller, vouched)?;
        loaded.statefiles.push(sf);
    }
    Ok(loaded)
}

/// Reads, decodes and checks the records of every process of `sf`, in manifest order,
/// the two halves of the list side by side.
fn decode_images(
    sf: &Statefile,
    chain: &incremental::Chain,
    sf_index: usize,
) -> Result<Vec<Image>> {
    let one = |p: &ProcessSummary| -> Result<Image> {
        let in_process = |e: Error| {
            e.context(format!("process {}", p.pid))
                .context(sf.path.display())
        };
        let core: CoreRecord = sf.read_json(&core_path(p.pid))?;
        let mm: MmRecord = sf.read_json(&mm_path(p.pid))?;
        let pages_size = sf.entry(&pages_path(p.pid)).map_or(0, |e| e.size);
        check_image(p, &core, &mm, pages_size).map_err(in_process)?;
        let inherited = incremental::inherited_reads(chain, p.pid, &mm).map_err(in_process)?;
        Ok(Image {
            sf: sf_index,
            core,
            mm,
            inherited,
        })
    };
    let all = &sf.manifest.processes;
    if all.len() < 2 {
        return all.iter().map(one).collect();
    }
    let (first, second) = all.split_at(all.len() / 2);
    std::thread::scope(|scope| {
        let later = scope.spawn(|| second.iter().map(one).collect::<Result<Vec<_>>>());
        let mut images = first.iter().map(one).collect::<Result<Vec<_>>>()?;
        images.extend(later.join().unwrap_or_else(|_| {
            Err(Error::with_detail(
                sf.path.display().to_string(),
                Kind::CheckpointError,
                "decoding the records failed",
            ))
        })?);
        Ok(images)
    })
}

/// The check of the bulk page data, running on a thread of its own.
pub(super) struct PageCheck(JoinHandle<Result<()>>);

/// Starts checking the page data of `statefiles` and of the statefiles their images
/// take pages from (`images`) against their checksums.
pub(super) fn check_pages(statefiles: &[Statefile], images: &[Image]) -> PageCheck {
    let mut statefiles = statefiles.to_vec();
    for link in images.iter().flat_map(|i| &i.inherited).map(|p| &p.link) {
        if !statefiles.iter().any(|s| s.path == link.path) {
            statefiles.push(link.clone());
        }
    }
    PageCheck(std::thread::spawn(move || -> Result<()> {
        for sf in &statefiles {
            sf.verify_files(layout::is_bulk)?;
        }
        Ok(())
    }))
}

impl PageCheck {
    /// Waits for the check and returns its outcome.
    pub fn wait(self) -> Result<()> {
        match self.0.join() {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::with_detail(
                "restart",
                Kind::CheckpointError,
                "page data check failed",
            )),
        }
    }
}

/// What restore takes from the records as given, checked here so that a damaged (or
/// forged) statefile is refused before anything is created: the process is the one the
/// manifest names, every thread's registers, FPU state and queued signals decode, and
/// every saved page lies inside its mapping and inside the page data; every path is
/// absolute and normalised; the manifest's summary (what `cpr -i` shows) agrees.
fn check_image(
    summary: &ProcessSummary,
    core: &CoreRecord,
    mm: &MmRecord,
    pages_size: u64,
) -> Result<()> {
    let pid = summary.pid;
    if core.process.pid != pid {
        return Err(damaged_record(format_args!(
            "core record of process {}",
            core.process.pid
        )));
    }
    match core.threads.first() {
        Some(main) if main.tid == pid => {}
        _ => return Err(damaged_record("no main thread")),
    }
    for t in &core.threads {
        t.check()?;
    }
    core.signals.check()?;
    mm.check(pages_size)?;
    check_process(core)?;
    for fd in &core.fds {
        check_fd(fd).map_err(|e| e.context(format!("fd {}", fd.fd)))?;
    }
    check_mm_paths(mm)?;
    check_locks(core)?;
    summary_agrees(summary, &ProcessSummary::of(core))
}

/// The MANIFEST's summary of a process (what `cpr -i` shows) against its records.
fn summary_agrees(listed: &ProcessSummary, records: &ProcessSummary) -> Result<()> {
    if listed == records {
        return Ok(());
    }
    let (a, b) = (serde_json::to_value(listed), serde_json::to_value(records));
    let field = match (&a, &b) {
        (Ok(serde_json::Value::Object(a)), Ok(b)) => a
            .iter()
            .find(|(k, v)| b.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.clone()),
        _ => None,
    };
    Err(damaged_record(format_args!(
        "its records disagree with the MANIFEST's summary of it ({})",
        field.as_deref().unwrap_or("a field")
    )))
}

/// Where shared memory and SysV segments are refilled: every run inside its object
/// (restore computes offsets from them).
fn check_shared_memory(sf: &Statefile, table: &SharedTable) -> Result<()> {
    for m in &table.mems {
        if let Some((off, len)) = m
            .runs
            .iter()
            .find(|(off, len)| off.checked_add(*len).is_none_or(|end| end > m.size))
        {
            return Err(damaged_record(format_args!(
                "shared memory {}: bytes {off}+{len} beyond its {} bytes",
                m.ino, m.size
            )));
        }
    }
    if sf.entry(sysv_shm::INDEX).is_none() {
        return Ok(());
    }
    let index: ShmIndex = sf.read_json(sysv_shm::INDEX)?;
    let page = crate::engine::objects::memory::PAGE;
    for seg in &index.segments {
        let pages = seg.size.div_ceil(page);
        if let Some((first, count)) = seg
            .runs
            .iter()
            .find(|(first, count)| first.checked_add(*count).is_none_or(|end| end > pages))
        {
            return Err(damaged_record(format_args!(
                "SysV shared memory shmid {}: pages {first}+{count} beyond its {} bytes",
                seg.shmid, seg.size
            )));
        }
    }
    Ok(())
}

/// Lock ranges restore hands to fcntl: first byte not after the last, both offsets.
fn check_locks(core: &CoreRecord) -> Result<()> {
    let max = i64::MAX as u64;
    for l in &core.locks {
        let bad = l.start > max || l.end.is_some_and(|end| end < l.start || end >= max);
        if bad {
            return Err(damaged_record(format_args!(
                "lock on fd {}: bytes {}-{}",
                l.fd,
                l.start,
                l.end.map_or("end".to_string(), |e| e.to_string())
            )));
        }
    }
    Ok(())
}

/// The tree restart plans: every PID positive and given once (processes and zombies),
/// and no process its own ancestor (a loop of parents would never be forked).
fn check_tree(processes: &[ProcessSummary], tree: &TreeRecord) -> Result<()> {
    let mut parents = std::collections::BTreeMap::new();
    let pids = processes
        .iter()
        .map(|p| (p.pid, p.ppid))
        .chain(tree.zombies.iter().map(|z| (z.pid, z.ppid)));
    for (pid, ppid) in pids {
        if pid <= 0 || parents.insert(pid, ppid).is_some() {
            return Err(damaged_record(format_args!(
                "process {pid} listed twice or not a PID"
            )));
        }
    }
    for &start in parents.keys() {
        let mut at = start;
        // a chain longer than the set loops
        for _ in 0..=parents.len() {
            match parents.get(&at) {
                Some(&up) if up != at => at = up,
                _ => break,
            }
            if at == start {
                return Err(damaged_record(format_args!(
                    "process {start} is its own ancestor"
                )));
            }
        }
    }
    Ok(())
}

/// `what` must be an absolute, normalised path.
fn check_path(what: &str, path: &str) -> Result<()> {
    if is_normal_absolute(path) {
        Ok(())
    } else {
        Err(damaged_record(format_args!(
            "{what} {path:?} is not an absolute, normalised path"
        )))
    }
}

/// Resources 0 (RLIMIT_CPU) to 15 (RLIMIT_RTTIME): Linux's RLIM_NLIMITS.
const RLIMIT_COUNT: u32 = 16;

/// Paths and resource limits of the process record.
fn check_process(core: &CoreRecord) -> Result<()> {
    let p = &core.process;
    check_path("executable", &p.exe)?;
    check_path("working directory", &p.cwd)?;
    check_path("root directory", &p.root)?;
    crate::engine::objects::membarrier::check(p.membarrier).map_err(damaged_record)?;
    let mut seen = 0u64;
    for &(resource, soft, hard) in &p.rlimits {
        let bit = u32::try_from(resource)
            .ok()
            .filter(|&r| r < RLIMIT_COUNT)
            .map(|r| 1u64 << r);
        let Some(bit) = bit else {
            return Err(damaged_record(format_args!(
                "resource limit {resource}: no such resource"
            )));
        };
        if seen & bit != 0 {
            return Err(damaged_record(format_args!(
                "resource limit {resource} given twice"
            )));
        }
        seen |= bit;
        if soft > hard {
            return Err(damaged_record(format_args!(
                "resource limit {resource}: soft limit {soft} above hard limit {hard}"
            )));
        }
    }
    Ok(())
}

/// A descriptor's path, for the kinds restart opens by path, and inotify watches.
fn check_fd(fd: &FdRecord) -> Result<()> {
    match &fd.kind {
        FdKind::Regular
        | FdKind::Deleted
        | FdKind::Directory
        | FdKind::Device
        | FdKind::Fifo { .. }
        | FdKind::Path => check_path("file", &fd.path),
        FdKind::RemovedDevice(dev) => {
            dev.check().map_err(damaged_record)?;
            check_path("file", &fd.path)
        }
        FdKind::Event(EventFd::Inotify { watches }) => watches
            .iter()
            .try_for_each(|w| check_path("inotify watch", &w.path)),
        FdKind::Dup { .. }
        | FdKind::Pipe { .. }
        | FdKind::PtyMaster { .. }
        | FdKind::PtySlave { .. }
        | FdKind::UnixSocket { .. }
        | FdKind::MQueue { .. }
        | FdKind::InetSocket { .. }
        | FdKind::Event(_) => Ok(()),
    }
}

/// Mapped files, the executable and the components restart looks up by path.
fn check_mm_paths(mm: &MmRecord) -> Result<()> {
    check_path("executable", &mm.exe)?;
    for v in &mm.vmas {
        if let Backing::File { path, .. } = &v.backing {
            check_path("mapped file", path)?;
        }
    }
    for c in &mm.components {
        check_path("component", &c.path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(pid: i32, ppid: i32) -> ProcessSummary {
        serde_json::from_value(serde_json::json!({
            "pid": pid, "ppid": ppid, "pgid": pid, "sid": pid,
            "uids": [0, 0, 0, 0], "gids": [0, 0, 0, 0], "command": "x", "args": [],
            "cwd": "/", "root": "/", "threads": 1, "open_files": [],
            "policies": {"will": "Exit", "cdir": "Replace", "rdir": "Replace",
                         "fork": "Original", "files": []}
        }))
        .unwrap()
    }

    #[test]
    fn loops_of_parents_and_repeated_pids_are_refused() {
        let none = TreeRecord::default();
        check_tree(&[summary(10, 1), summary(11, 10), summary(12, 12)], &none).unwrap();
        let looped = [
            summary(10, 12),
            summary(11, 10),
            summary(12, 11),
            summary(5, 1),
        ];
        let e = check_tree(&looped, &none).unwrap_err().to_string();
        assert!(e.contains("is its own ancestor"), "{e}");
        let e = check_tree(&[summary(10, 1), summary(10, 1)], &none).unwrap_err();
        assert!(e.to_string().contains("process 10 listed twice"), "{e}");
        let e = check_tree(&[summary(0, 1)], &none).unwrap_err();
        assert!(e.to_string().contains("not a PID"), "{e}");
    }
}
