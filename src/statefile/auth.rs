//! Statefiles root writes are authenticated, so that root can tell a statefile it wrote
//! from one edited since by whoever it was handed to (the checkpoint owner).
//!
//! The MANIFEST lists every small record with its SHA-256 as well as its xxh3 (a fast
//! check against damage, not against forgery); `MANIFEST.mac` holds an HMAC-SHA256 of
//! the MANIFEST's bytes under a host key that only root can read
//! (`/var/lib/cpr/hostkey`, 32 random bytes, mode 0600, made on first use). Page data
//! (bulk) is covered by xxh3 only: what it holds runs with the credentials of records
//! that are authenticated, and hashing GiB with SHA-256 would slow every checkpoint.
//!
//! Root's restart accepts a statefile with a valid MAC, or one that no one but root
//! could have written (its directory and every record root's and not writable by
//! others: a statefile of an older cpr kept by root). Anything else — a bad MAC, or no
//! MAC on a statefile someone else could have changed — is refused; its owner may still
//! restart it with their own rights.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use hmac::{Hmac, Mac};
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, RenameFlags, ResolveFlag, openat2, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use sha2::Sha256;

use super::beneath;
use crate::error::{Error, Kind, Result};

/// Where the host key lives; `/var/lib` is opened through no symbolic link.
pub const HOSTKEY_DIR: &str = "/var/lib/cpr";
const KEY_NAME: &str = "hostkey";
const KEY_LEN: usize = 32;

/// What the MAC is computed over, before the MANIFEST's bytes: names the use of the key.
const DOMAIN: &[u8] = b"cpr statefile MANIFEST v1\0";
/// How `MANIFEST.mac` starts.
const MAC_TAG: &str = "hmac-sha256 ";

fn key_error(errno: Errno, what: &str) -> Error {
    Error::errno(format!("{HOSTKEY_DIR}/{KEY_NAME}"), errno).detail(what.to_string())
}

/// `/var/lib/cpr`, root's and writable by no one else; made (0700) when `create`.
/// `None` when it is not there and not to be made.
fn key_dir(create: bool) -> Result<Option<OwnedFd>> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let (parent, name) = HOSTKEY_DIR.rsplit_once('/').unwrap_or(("/", HOSTKEY_DIR));
    let parent = openat2(AT_FDCWD, parent, how).map_err(|e| key_error(e, "its directory"))?;
    if create {
        match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(key_error(e, "making its directory")),
        }
    }
    let dir = match beneath::open_dir(&parent, name) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(key_error(e, "its directory")),
    };
    let meta = File::from(
        dir.try_clone()
            .map_err(|e| key_error(errno_of(&e), "its directory"))?,
    )
    .metadata()
    .map_err(|e| key_error(errno_of(&e), "its directory"))?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(key_error(Errno::EPERM, "its directory is not root's alone"));
    }
    Ok(Some(dir))
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Reads the key: a regular file of root's, readable by no one else, of `KEY_LEN` bytes.
fn read_key(file: File) -> Result<[u8; KEY_LEN]> {
    let meta = file
        .metadata()
        .map_err(|e| key_error(errno_of(&e), "reading it"))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
        return Err(key_error(
            Errno::EPERM,
            "not a file of root's alone (mode 0600)",
        ));
    }
    let mut key = [0u8; KEY_LEN];
    let mut extra = [0u8; 1];
    let mut file = file;
    file.read_exact(&mut key)
        .map_err(|e| key_error(errno_of(&e), "reading it"))?;
    if file.read(&mut extra).unwrap_or(1) != 0 {
        return Err(key_error(Errno::EINVAL, "not a cpr host key"));
    }
    Ok(key)
}

/// Makes the key: written aside (O_EXCL) and renamed into place without replacing one
/// another cpr made meanwhile, so that every cpr uses the same key.
fn make_key(dir: &OwnedFd) -> Result<()> {
    let mut key = [0u8; KEY_LEN];
    File::open("/dev/urandom")
        .and_then(|mut r| r.read_exact(&mut key))
        .map_err(|e| key_error(errno_of(&e), "random bytes"))?;
    let aside = format!("{KEY_NAME}.new-{}", std::process::id());
    let mut file =
        beneath::create_new(dir, &aside, 0o600).map_err(|e| key_error(e, "making it"))?;
    let written = file.write_all(&key).and_then(|()| file.sync_all());
    let placed = written.map_err(|e| errno_of(&e)).and_then(|()| {
        renameat2(
            dir,
            aside.as_str(),
            dir,
            KEY_NAME,
            RenameFlags::RENAME_NOREPLACE,
        )
    });
    match placed {
        Ok(()) => nix::unistd::fsync(dir).map_err(|e| key_error(e, "making it")),
        Err(Errno::EEXIST) => {
            let _ = nix::unistd::unlinkat(dir, aside.as_str(), UnlinkatFlags::NoRemoveDir);
            Ok(())
        }
        Err(e) => {
            let _ = nix::unistd::unlinkat(dir, aside.as_str(), UnlinkatFlags::NoRemoveDir);
            Err(key_error(e, "making it"))
        }
    }
}

/// The host key; made on first use when `create`. `None` when there is none yet and
/// `create` is false.
pub fn host_key(create: bool) -> Result<Option<[u8; KEY_LEN]>> {
    let Some(dir) = key_dir(create)? else {
        return Ok(None);
    };
    for _ in 0..2 {
        match beneath::open_read(&dir, KEY_NAME) {
            Ok(file) => return read_key(file).map(Some),
            Err(Errno::ENOENT) if create => make_key(&dir)?,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(key_error(e, "reading it")),
        }
    }
    Err(key_error(Errno::ENOENT, "made, then gone"))
}

fn mac_of(key: &[u8; KEY_LEN], manifest: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: new_from_slice cannot fail
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(DOMAIN);
    mac.update(manifest);
    mac
}

/// The text of `MANIFEST.mac` for `manifest`'s bytes.
pub fn mac_text(key: &[u8; KEY_LEN], manifest: &[u8]) -> String {
    let tag = mac_of(key, manifest).finalize().into_bytes();
    format!("{MAC_TAG}{}\n", hex(&tag))
}

/// Whether `text` (a `MANIFEST.mac`) authenticates `manifest` under `key`, compared in
/// constant time.
pub fn mac_matches(key: &[u8; KEY_LEN], manifest: &[u8], text: &[u8]) -> bool {
    let Some(hex_tag) = std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.strip_prefix(MAC_TAG))
        .map(|t| t.trim_end_matches('\n'))
    else {
        return false;
    };
    match unhex(hex_tag) {
        Some(tag) => mac_of(key, manifest).verify_slice(&tag).is_ok(),
        None => false,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes `MANIFEST.mac` for the MANIFEST of the statefile directory `dir` (as it is
/// now), with the host key (made if need be). Root only: the key is root's. The writer
/// does this at commit; it is public for tools that rebuild a statefile as root.
pub fn seal(dir: impl AsFd, manifest: &[u8]) -> Result<File> {
    let key = host_key(true)?.ok_or_else(|| key_error(Errno::ENOENT, "no host key"))?;
    let mut file = beneath::create_new(&dir, super::layout::MANIFEST_MAC, 0o600)
        .map_err(|e| Error::errno("", e).detail(super::layout::MANIFEST_MAC))?;
    file.write_all(mac_text(&key, manifest).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("", e).detail(super::layout::MANIFEST_MAC))?;
    Ok(file)
}

/// Why a statefile is refused to root.
pub(crate) fn refused(path: &std::path::Path, why: &str) -> Error {
    Error::with_detail(
        path.display().to_string(),
        Kind::PermissionDenied,
        format!(
            "{why}; root restarts only statefiles this host's cpr wrote and no one changed since (its owner may restart it)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_any_change_fails() {
        let key = [7u8; KEY_LEN];
        let text = mac_text(&key, b"{\"a\":1}");
        assert!(mac_matches(&key, b"{\"a\":1}", text.as_bytes()));
        assert!(!mac_matches(&key, b"{\"a\":2}", text.as_bytes()));
        assert!(!mac_matches(&[8u8; KEY_LEN], b"{\"a\":1}", text.as_bytes()));
        assert!(!mac_matches(&key, b"{\"a\":1}", b"hmac-sha256 zz"));
        assert!(!mac_matches(&key, b"{\"a\":1}", b""));
    }
}
