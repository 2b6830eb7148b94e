//! What a restart may give: never more than the checkpoint owner had. A statefile is
//! its owner's to edit, so its records say only what the owner wants them to say: every
//! credential they ask for (real, effective, saved and filesystem uids and gids,
//! supplementary groups, capabilities of every set) must be the owner's own, and the
//! owner is who owns the statefile on disk as well as who its MANIFEST names. The
//! securebits and the ambient set are not in the records: a restored process keeps
//! those of the restore child, which are cpr's caller's.
//!
//! Also here, what the caller's privilege allows: only the owner or root restarts a
//! statefile, and FORK ORIGINAL needs a PID of cpr's choosing (CAP_CHECKPOINT_RESTORE).

use std::os::unix::fs::MetadataExt;

use super::validate::{Image, Loaded};
use crate::attrfile::ForkAction;
use crate::engine::privilege;
use crate::error::{Error, Kind, Result};
use crate::statefile::Statefile;

/// Checks statefile `sf`, about to join `loaded` (its processes already have), for a
/// restart by `caller` (a real uid). `vouched`: root's MAC vouched for its MANIFEST, so
/// the owner it names is the one root recorded, whoever owns the files now.
pub fn check(sf: &Statefile, loaded: &Loaded, caller: u32, vouched: bool) -> Result<()> {
    let index = loaded.statefiles.len();
    let images = loaded.images.iter().filter(|i| i.sf == index);
    let subject = sf.path.display().to_string();
    let owner = if vouched {
        sf.manifest.owner.uid
    } else {
        owner(sf)?
    };
    if caller != 0 && caller != owner {
        return Err(Error::with_detail(
            subject,
            Kind::NotPermitted,
            format!("checkpointed by uid {owner}; only that user or root may restart it"),
        ));
    }
    let groups = owner_groups(owner, recorded_gid(sf)?);
    for img in images {
        // a MAC of root's: the records are what root saw the processes hold
        if !vouched {
            check_credentials(img, owner, &groups)
                .map_err(|e| e.context(format!("process {}", img.core.process.pid)))
                .map_err(|e| e.context(&subject))?;
        }
        crate::engine::objects::seccomp::tracer_option(&img.core.threads)
            .map_err(|e| e.context(format!("process {}", img.core.process.pid)))
            .map_err(|e| e.context(&subject))?;
        if img.core.policies.fork == ForkAction::Original && !privilege::can_choose_pids() {
            return Err(Error::with_detail(
                subject,
                Kind::NotPermitted,
                format!(
                    "process {} is to come back with its PID (FORK ORIGINAL), which needs \
                     CAP_CHECKPOINT_RESTORE: checkpoint with FORK: ANY in the attribute \
                     file, or use a cpr installed with capabilities (see cpr(1), SECURITY)",
                    img.core.process.pid
                ),
            ));
        }
    }
    Ok(())
}

/// The owner: the uid the MANIFEST names, which must also own the statefile directory
/// and its MANIFEST on disk (a user cannot give a file away, so a statefile a user could
/// edit is never taken for root's).
fn owner(sf: &Statefile) -> Result<u32> {
    let recorded = sf.manifest.owner.uid;
    for path in [sf.path.clone(), sf.path.join("MANIFEST")] {
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| Error::io(path.display().to_string(), e))?;
        if meta.uid() != recorded {
            return Err(Error::with_detail(
                path.display().to_string(),
                Kind::NotPermitted,
                format!(
                    "owned by uid {} but the MANIFEST names uid {recorded} as the checkpoint \
                     owner: refused",
                    meta.uid()
                ),
            ));
        }
    }
    Ok(recorded)
}

/// The gid the MANIFEST records for the owner, when the statefile directory on disk has
/// it too (a user can give their files only a group they are in): the group the
/// processes had at checkpoint.
fn recorded_gid(sf: &Statefile) -> Result<Option<u32>> {
    let meta = std::fs::symlink_metadata(&sf.path)
        .map_err(|e| Error::io(sf.path.display().to_string(), e))?;
    Ok((meta.gid() == sf.manifest.owner.gid).then_some(meta.gid()))
}

/// The groups user `uid` is in: `gid` as recorded, its primary group and the groups of
/// the group database.
fn owner_groups(uid: u32, gid: Option<u32>) -> Vec<u32> {
    let mut groups: Vec<u32> = gid.into_iter().collect();
    groups.extend(privilege::user_groups(uid));
    groups
}

/// Root's statefile may ask for anything; a user's only for that user's own.
fn check_credentials(img: &Image, owner: u32, groups: &[u32]) -> Result<()> {
    if owner == 0 {
        return Ok(());
    }
    let p = &img.core.process;
    let refuse = |what: String| {
        Err(Error::with_detail(
            "credentials",
            Kind::NotPermitted,
            format!("{what}, which the checkpoint owner (uid {owner}) does not have: refused"),
        ))
    };
    if let Some(u) = p.uids.iter().find(|&&u| u != owner) {
        return refuse(format!("the record asks for uid {u}"));
    }
    if let Some(g) = p.gids.iter().chain(&p.groups).find(|g| !groups.contains(g)) {
        return refuse(format!("the record asks for group {g}"));
    }
    let caps = &p.caps;
    if caps.inheritable | caps.permitted | caps.effective != 0 {
        return refuse(format!(
            "the record asks for capabilities (permitted {:#x}, effective {:#x}, inheritable {:#x})",
            caps.permitted, caps.effective, caps.inheritable
        ));
    }
    Ok(())
}
