//! Paths in a user's statefile are the user's to choose: when root restarts it, every
//! file a record names (files to reopen or replace, mapped files, working and root
//! directories, deleted files made again) is looked up, opened and created with the
//! checkpoint owner's file-system identity, never root's. The fsuid, fsgid and groups
//! change file access only: the privileged steps (PIDs, PR_SET_MM_MAP, limits, chroot
//! itself) keep cpr's capabilities, and the credentials set last replace them all.

use crate::engine::objects::process::ProcessRecord;
use crate::error::{Error, Kind, Result};
use crate::statefile::Statefile;

/// (fsuid, fsgid, groups) to take for `rec` of statefile `sf`; `None` when nothing is to
/// change: root's statefile, or a cpr that runs as its caller (the caller is the owner).
fn identity(sf: &Statefile, rec: &ProcessRecord) -> Option<(u32, u32, Vec<u32>)> {
    if sf.manifest.owner.uid == 0 || !nix::unistd::geteuid().is_root() {
        return None;
    }
    // authority.rs has checked that these are the owner's own
    Some((rec.uids[3], rec.gids[3], rec.groups.clone()))
}

fn refused(sf: &Statefile, e: nix::errno::Errno) -> Error {
    Error::with_detail(
        sf.path.display().to_string(),
        Kind::NotPermitted,
        format!("cannot take the checkpoint owner's file access rights: {e}"),
    )
}

/// In a restore child, before it touches any path of its records: the owner's file
/// access rights, for good (the credentials restored last supersede them).
pub(super) fn take(sf: &Statefile, rec: &ProcessRecord) -> Result<()> {
    match identity(sf, rec) {
        Some((uid, gid, groups)) => {
            crate::sys::fsid::set_fs_identity(uid, gid, &groups).map_err(|e| refused(sf, e))
        }
        None => Ok(()),
    }
}

/// In cpr (this thread only): `f` run with the owner's file access rights, which are
/// given back after.
pub(super) fn with<T>(
    sf: &Statefile,
    rec: Option<&ProcessRecord>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some((uid, gid, groups)) = rec.and_then(|r| identity(sf, r)) else {
        return f();
    };
    let mine: Vec<u32> = nix::unistd::getgroups()
        .map_err(|e| refused(sf, e))?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let (my_uid, my_gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    crate::sys::fsid::set_fs_identity(uid, gid, &groups).map_err(|e| refused(sf, e))?;
    let out = f();
    crate::sys::fsid::set_fs_identity(my_uid, my_gid, &mine).map_err(|e| refused(sf, e))?;
    out
}
