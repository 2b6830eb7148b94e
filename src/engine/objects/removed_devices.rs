//! Device nodes removed while open (zdtm deleted_dev): a node made with mknod(2)
//! somewhere, opened, then unlinked. Only nodes of devices that are checkpoint safe by
//! their number (/dev/null, /dev/zero, ...; files.rs) are taken. Checkpoint saves the
//! node's device number, mode and owner; restart makes the node again with mknod where it
//! was (else in /tmp), gives it its mode and owner, opens it and removes it, so that the
//! descriptor is again a removed node of that device: fstat and /proc/PID/fd show what
//! they showed. Making a device node needs CAP_MKNOD: without it the restart fails,
//! naming the descriptor.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// The removed node: which device, with what mode and owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedDevice {
    /// The device number (st_rdev).
    pub rdev: u64,
    /// st_mode: S_IFCHR and the permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl RemovedDevice {
    /// What fstat says of the node open in `meta`.
    pub(super) fn of(meta: &std::fs::Metadata) -> RemovedDevice {
        use std::os::unix::fs::MetadataExt;
        RemovedDevice {
            rdev: meta.rdev(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// A statefile's record must name a character device that is checkpoint safe: restart
    /// makes the node as cpr (as root, for another user's statefile), so any other device
    /// would be a way in.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.mode & libc::S_IFMT != libc::S_IFCHR || self.mode & !(libc::S_IFMT | 0o7777) != 0 {
            return Err(format!("removed device node mode {:o}", self.mode));
        }
        if super::files::safe_device_by_number(self.rdev).is_none() {
            return Err(format!(
                "removed device node of device {}:{}, not a checkpoint-safe one",
                nix::sys::stat::major(self.rdev),
                nix::sys::stat::minor(self.rdev)
            ));
        }
        Ok(())
    }
}

/// Restart: the node `dev` made again at `path` (or, if that name is taken or its
/// directory gone, in /tmp), opened with `flags` and removed.
pub(super) fn reopen(path: &str, dev: &RemovedDevice, flags: i32) -> Result<OwnedFd> {
    dev.check()
        .map_err(crate::statefile::reader::damaged_record)?;
    let who = format!("removed device node {path}");
    let (made, node) = make_node(Path::new(path), dev).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EPERM) {
            "mknod (making a device node needs CAP_MKNOD)"
        } else {
            "mknod"
        };
        Error::io(&who, e).detail(why)
    })?;
    let opened = (|| {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // the node made, through no link: its mode and owner are set through /proc
        let held = super::files::open_path(
            &made.to_string_lossy(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )?;
        let node = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
        let meta = std::fs::metadata(&node)?;
        if meta.mode() & libc::S_IFMT != libc::S_IFCHR || meta.rdev() != dev.rdev {
            return Err(std::io::Error::other("not the node made"));
        }
        // the owner is the node's, not cpr's; mknod took the umask off the mode
        std::os::unix::fs::chown(&node, Some(dev.uid), Some(dev.gid))?;
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(dev.mode & 0o7777))?;
        super::files::open_path(&node, flags | libc::O_NOCTTY)
    })();
    let removed = std::fs::remove_file(&made);
    let fd = opened.ctx(format!("{who} (made as {})", node))?;
    removed.ctx(&who)?;
    Ok(fd)
}

/// mknod at `path`, or at a new name in /tmp: the name made, and how the error names it.
fn make_node(path: &Path, dev: &RemovedDevice) -> std::io::Result<(PathBuf, String)> {
    let kind = nix::sys::stat::SFlag::S_IFCHR;
    let perm = nix::sys::stat::Mode::from_bits_retain(dev.mode & 0o7777);
    let rdev = dev.rdev as libc::dev_t;
    match nix::sys::stat::mknod(path, kind, perm, rdev) {
        Ok(()) => return Ok((path.to_path_buf(), path.display().to_string())),
        Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let me = std::process::id();
    for n in 0..100 {
        let other = PathBuf::from(format!("/tmp/.cpr-removed-device-{me}-{n}"));
        match nix::sys::stat::mknod(&other, kind, perm, rdev) {
            Ok(()) => {
                let name = other.display().to_string();
                return Ok((other, name));
            }
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_of_checkpoint_safe_character_devices_are_taken() {
        let zero = RemovedDevice {
            rdev: nix::sys::stat::makedev(1, 5),
            mode: libc::S_IFCHR | 0o710,
            uid: 1,
            gid: 2,
        };
        assert_eq!(zero.check(), Ok(()));
        let disk = RemovedDevice {
            rdev: nix::sys::stat::makedev(8, 0),
            ..zero.clone()
        };
        assert!(disk.check().unwrap_err().contains("8:0"));
        let block = RemovedDevice {
            mode: libc::S_IFBLK | 0o600,
            ..zero.clone()
        };
        assert!(block.check().is_err());
        let odd = RemovedDevice {
            mode: libc::S_IFCHR | 0o170000 | 0o600,
            ..zero
        };
        assert!(odd.check().is_err());
    }
}
