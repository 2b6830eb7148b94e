//! Validation: every statefile named is opened and checked (revision, owner, every
//! record's checksum) and every record read and decoded, before anything is created.
//! The bulk page data is checked later, in the background, while the address spaces
//! are built (`check_pages`), and before any process is released.

use std::path::PathBuf;
use std::thread::JoinHandle;

use crate::engine::objects::memory::MmRecord;
use crate::engine::objects::pstree::{self, TreeRecord};
use crate::engine::objects::shared_fds::{self, SharedTable};
use crate::error::{Error, Kind, Result};
use crate::statefile::Statefile;
use crate::statefile::reader::{Verify, damaged_record};
use crate::statefile::{CoreRecord, core_path, layout, mm_path, pages_path};

/// One process of a statefile, as read.
pub struct Image {
    /// Index of its statefile.
    pub sf: usize,
    pub core: CoreRecord,
    pub mm: MmRecord,
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
        sf.verify_files(|rel| !layout::is_bulk(rel))?;
        let owner = sf.manifest.owner.uid;
        if caller != 0 && (caller != owner || owner == 0) {
            return Err(Error::with_detail(
                path.display().to_string(),
                Kind::NotPermitted,
                format!("checkpointed by uid {owner}; only that user or root may restart it"),
            ));
        }
        for p in &sf.manifest.processes {
            let core: CoreRecord = sf.read_json(&core_path(p.pid))?;
            let mm: MmRecord = sf.read_json(&mm_path(p.pid))?;
            let pages_size = sf.entry(&pages_path(p.pid)).map_or(0, |e| e.size);
            check_image(p.pid, &core, &mm, pages_size).map_err(|e| {
                e.context(format!("process {}", p.pid))
                    .context(path.display())
            })?;
            loaded.images.push(Image {
                sf: loaded.statefiles.len(),
                core,
                mm,
            });
        }
        loaded
            .tables
            .push(if sf.entry(shared_fds::TABLE).is_some() {
                sf.read_json::<SharedTable>(shared_fds::TABLE)?
            } else {
                SharedTable::default()
            });
        loaded.trees.push(if sf.entry(pstree::TREE).is_some() {
            sf.read_json::<TreeRecord>(pstree::TREE)?
        } else {
            Default::default()
        });
        super::authority::check(&sf, &loaded, caller)?;
        loaded.statefiles.push(sf);
    }
    Ok(loaded)
}

/// The check of the bulk page data, running on a thread of its own.
pub(super) struct PageCheck(JoinHandle<Result<()>>);

/// Starts checking the page data of `statefiles` against their checksums.
pub(super) fn check_pages(statefiles: &[Statefile]) -> PageCheck {
    let statefiles = statefiles.to_vec();
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
/// every saved page lies inside its mapping and inside the page data.
fn check_image(pid: i32, core: &CoreRecord, mm: &MmRecord, pages_size: u64) -> Result<()> {
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
    mm.check(pages_size)
}
