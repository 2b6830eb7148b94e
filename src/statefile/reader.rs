//! Opens a statefile and validates it: MANIFEST present and parsable, revision known,
//! every listed file present with its size and checksum. Every name read from the
//! statefile (the MANIFEST's list, names inside records) is checked before it is used:
//! relative, no `.` or `..`, listed in the MANIFEST, and opened beneath the statefile's
//! directory descriptor through no symbolic link (`beneath`).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;

use serde::Deserialize;

use super::beneath;
use super::format::{FileEntry, MANIFEST, Manifest, OLDEST_READABLE, Owner, REVISION};
use crate::error::{Context, Error, Kind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Manifest, revision, presence and sizes (cheap: for `-i`, `-D`).
    Sizes,
    /// Also every checksum (before restart).
    Full,
}

#[derive(Debug, Clone)]
pub struct Statefile {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// The statefile's directory, held: every file is opened beneath it.
    dir: Arc<OwnedFd>,
    /// The MANIFEST as read, for its MAC (`authenticate`).
    manifest_bytes: Arc<Vec<u8>>,
}

/// The part of a MANIFEST that every revision has: enough to know that a directory is a
/// statefile and whose it is, even when it is damaged or of another revision.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestHead {
    pub revision: u32,
    pub cpr_version: String,
    pub owner: Owner,
    #[allow(dead_code)]
    files: Vec<serde_json::Value>,
}

/// Read size for checksums: small enough that what read(2) copied is still in the CPU's
/// cache when it is hashed (8 MiB reads made the restart's page check of 1 GiB 6-9%
/// slower, competing with the page fill); the kernel's readahead keeps a cold disk busy
/// whatever the size.
const HASH_CHUNK: usize = 256 << 10;

/// `<path>: Checkpoint error: statefile damaged: <what>`.
pub(crate) fn damaged(path: &Path, what: impl std::fmt::Display) -> Error {
    damaged_record(what).context(path.display())
}

/// `Checkpoint error: statefile damaged: <what>`, for a record whose reader does not
/// know the statefile's path (the caller adds it, with the process, as context).
pub fn damaged_record(what: impl std::fmt::Display) -> Error {
    Error::with_detail(
        "",
        Kind::CheckpointError,
        format!("statefile damaged: {what}"),
    )
}

fn not_a_statefile(path: &Path) -> Error {
    Error::with_detail(
        path.display().to_string(),
        Kind::InvalidArgument,
        "not a cpr statefile (no MANIFEST)",
    )
}

/// The longest MANIFEST read (a statefile of thousands of processes stays far below).
const MANIFEST_MAX: u64 = 64 << 20;

/// Opens the statefile directory `path` and reads its MANIFEST as bytes. A missing
/// directory is "No such file or directory"; a directory (or anything else) without
/// MANIFEST is not a statefile.
fn read_manifest_bytes(path: &Path) -> Result<(OwnedFd, Vec<u8>)> {
    let meta = std::fs::metadata(path).ctx(path.display())?;
    if !meta.is_dir() {
        return Err(not_a_statefile(path));
    }
    let dir = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(path.display())?;
    let file = match beneath::open_read(&dir, MANIFEST) {
        Ok(f) => f,
        Err(Errno::ENOENT) => return Err(not_a_statefile(path)),
        Err(e) if beneath::is_link_refusal(e) => return Err(not_a_statefile(path)),
        Err(e) => return Err(Error::errno(path.display().to_string(), e).detail(MANIFEST)),
    };
    let bytes = read_regular(file, MANIFEST_MAX).map_err(|_| not_a_statefile(path))?;
    Ok((dir, bytes))
}

/// Reads an opened file that must be a regular file of at most `max` bytes.
fn read_regular(mut file: File, max: u64) -> std::io::Result<Vec<u8>> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(data)
}

/// Reads just enough of the MANIFEST of `path` to know it is a statefile and whose.
/// Accepts damaged statefiles and other revisions (for `-D` and `-f`).
pub fn probe(path: &Path) -> Result<ManifestHead> {
    let (_, bytes) = read_manifest_bytes(path)?;
    serde_json::from_slice::<ManifestHead>(&bytes).map_err(|e| {
        Error::with_detail(
            path.display().to_string(),
            Kind::InvalidArgument,
            format!("not a cpr statefile ({MANIFEST}: {e})"),
        )
    })
}

/// Whether a statefile path is safe: relative, `/`-separated names, no `.` or `..`.
pub(crate) fn valid_rel(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// xxh3-64 of a whole file, as the writer records it (16 hex digits).
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    hash_open_file(File::open(path)?, false).map(|(size, xxh3, _)| (size, xxh3))
}

/// Size, xxh3-64 and, with `sha`, SHA-256 (hex) of an opened file from where it stands.
fn hash_open_file(mut file: File, sha: bool) -> std::io::Result<(u64, String, Option<String>)> {
    use sha2::Digest;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut sha = sha.then(sha2::Sha256::new);
    // no bigger than the file: a large zeroed allocation costs a memset per file
    let len = file
        .metadata()
        .map(|m| m.len() as usize)
        .unwrap_or(HASH_CHUNK);
    let mut buf = vec![0u8; HASH_CHUNK.min(len + 1).max(4096)];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(sha) = &mut sha {
            sha.update(&buf[..n]);
        }
        size += n as u64;
    }
    let sha = sha.map(|s| super::auth::hex(&s.finalize()));
    Ok((size, format!("{:016x}", hasher.digest()), sha))
}

impl Statefile {
    pub fn open(path: &Path, verify: Verify) -> Result<Statefile> {
        let (dir, bytes) = read_manifest_bytes(path)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| damaged(path, format_args!("{MANIFEST}: {e}")))?;
        let revision = value
            .get("revision")
            .and_then(|r| r.as_u64())
            .ok_or_else(|| damaged(path, format_args!("{MANIFEST}: no revision")))?;
        if !(u64::from(OLDEST_READABLE)..=u64::from(REVISION)).contains(&revision) {
            let by = value
                .get("cpr_version")
                .and_then(|v| v.as_str())
                .map(|v| format!(" (written by cpr {v})"))
                .unwrap_or_default();
            return Err(Error::with_detail(
                path.display().to_string(),
                Kind::CheckpointError,
                format!(
                    "statefile revision {revision}{by}, this cpr reads revisions {OLDEST_READABLE} to {REVISION}"
                ),
            ));
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| damaged(path, format_args!("{MANIFEST}: {e}")))?;
        let statefile = Statefile {
            path: path.to_path_buf(),
            manifest,
            dir: Arc::new(dir),
            manifest_bytes: Arc::new(bytes),
        };
        for entry in &statefile.manifest.files {
            statefile.check_entry(entry, verify)?;
        }
        Ok(statefile)
    }

    fn check_entry(&self, entry: &FileEntry, verify: Verify) -> Result<()> {
        if !valid_rel(&entry.path) || entry.path == MANIFEST {
            return Err(damaged(
                &self.path,
                format_args!("{MANIFEST}: bad file name {:?}", entry.path),
            ));
        }
        let file = self.open_beneath(&entry.path)?;
        let meta = file.metadata().map_err(|e| self.io_error(&entry.path, e))?;
        if !meta.is_file() {
            return Err(damaged(
                &self.path,
                format_args!("{}: not a regular file", entry.path),
            ));
        }
        if meta.len() != entry.size {
            return Err(damaged(
                &self.path,
                format_args!(
                    "{}: size {}, expected {}",
                    entry.path,
                    meta.len(),
                    entry.size
                ),
            ));
        }
        if verify == Verify::Full {
            let (size, hash, sha) = hash_open_file(file, entry.sha256.is_some())
                .map_err(|e| self.io_error(&entry.path, e))?;
            self.compare(entry, size, &hash, sha.as_deref())?;
        }
        Ok(())
    }

    /// Whether what was read of `entry` (its size, xxh3 and, where listed, SHA-256) is
    /// what the MANIFEST lists.
    fn compare(&self, entry: &FileEntry, size: u64, xxh3: &str, sha: Option<&str>) -> Result<()> {
        if size != entry.size {
            return Err(damaged(
                &self.path,
                format_args!("{}: size {size}, expected {}", entry.path, entry.size),
            ));
        }
        let sha_differs = match (sha, &entry.sha256) {
            (Some(got), Some(listed)) => !got.eq_ignore_ascii_case(listed),
            _ => false,
        };
        if !xxh3.eq_ignore_ascii_case(&entry.xxh3) || sha_differs {
            return Err(damaged(
                &self.path,
                format_args!("{}: checksum mismatch", entry.path),
            ));
        }
        Ok(())
    }

    /// The descriptor of the statefile's directory, for a process that closes all
    /// others and must keep this one (lazy restart's filler).
    pub fn dir_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.dir)
    }

    /// Full check (size and checksum) of every listed file for which `which` is true.
    /// Restart checks the small records before it creates anything and the bulk page
    /// data while it works, before anything runs.
    pub fn verify_files(&self, which: impl Fn(&str) -> bool) -> Result<()> {
        for entry in self.manifest.files.iter().filter(|e| which(&e.path)) {
            self.check_entry(entry, Verify::Full)?;
        }
        Ok(())
    }

    /// `<statefile>: <IRIX message>: <rel>`.
    fn io_error(&self, rel: &str, e: std::io::Error) -> Error {
        Error::io(self.path.display().to_string(), e).detail(rel.to_string())
    }

    /// Opens `rel` beneath the statefile directory through no symbolic link; the name
    /// must be plain. A link on the way is damage: it could lead outside the statefile.
    fn open_beneath(&self, rel: &str) -> Result<File> {
        if !valid_rel(rel) {
            return Err(damaged(&self.path, format_args!("bad file name {rel:?}")));
        }
        match beneath::open_read(&*self.dir, rel) {
            Ok(file) => Ok(file),
            Err(Errno::ENOENT) => Err(damaged(&self.path, format_args!("{rel}: missing"))),
            Err(e) if beneath::is_link_refusal(e) => Err(damaged(
                &self.path,
                format_args!("{rel}: leads through a symbolic link"),
            )),
            Err(e) => Err(Error::errno(self.path.display().to_string(), e).detail(rel.to_string())),
        }
    }

    /// A name read from a record: it must be one the MANIFEST lists (so its size and
    /// checksum were checked).
    fn listed(&self, rel: &str) -> Result<&FileEntry> {
        if !valid_rel(rel) {
            return Err(damaged(&self.path, format_args!("bad file name {rel:?}")));
        }
        self.entry(rel)
            .ok_or_else(|| damaged(&self.path, format_args!("{rel}: not listed in {MANIFEST}")))
    }

    /// Opens a file of the statefile for reading: listed in the MANIFEST, a regular
    /// file, beneath the statefile, through no symbolic link.
    pub fn open_file(&self, rel: &str) -> Result<File> {
        self.listed(rel)?;
        let file = self.open_beneath(rel)?;
        let meta = file.metadata().map_err(|e| self.io_error(rel, e))?;
        if !meta.is_file() {
            return Err(damaged(
                &self.path,
                format_args!("{rel}: not a regular file"),
            ));
        }
        Ok(file)
    }

    /// Path of a file inside the statefile, for a name read from the statefile (its
    /// MANIFEST or a record), for callers that must hand a path on. The name must be
    /// listed in the MANIFEST and reach a regular file through no symbolic link; prefer
    /// `open_file`, which holds what it checked.
    pub fn file(&self, rel: &str) -> Result<PathBuf> {
        self.open_file(rel)?;
        Ok(self.path.join(rel))
    }

    /// For root's restart (`auth`): the MANIFEST's MAC under this host's key is valid
    /// and every record has its SHA-256 listed; or, without a MAC, no one but root could
    /// have written the statefile (it and every record root's, writable by no one else).
    /// True when a MAC vouched for it: its MANIFEST, owner included, is what root wrote.
    pub fn authenticate(&self) -> Result<bool> {
        use super::auth::{host_key, mac_matches, refused};
        use super::layout::MANIFEST_MAC;
        let mac = match beneath::open_read(&*self.dir, MANIFEST_MAC) {
            Ok(file) => read_regular(file, 4096).map_err(|e| self.io_error(MANIFEST_MAC, e))?,
            // an ordinary user's statefile has no MAC (only root holds the key): its
            // records are trusted for no more than that user's own rights (restart's
            // authority check); one that names root as its owner must be root's alone
            Err(Errno::ENOENT) if self.manifest.owner.uid != 0 => return Ok(false),
            Err(Errno::ENOENT) => return self.root_only().map(|()| false),
            Err(e) if beneath::is_link_refusal(e) => {
                return Err(refused(&self.path, "MANIFEST.mac is a symbolic link"));
            }
            Err(e) => {
                return Err(Error::errno(self.path.display().to_string(), e).detail(MANIFEST_MAC));
            }
        };
        let Some(key) = host_key(false)? else {
            return Err(refused(
                &self.path,
                "this host has no cpr host key to check it with",
            ));
        };
        if !mac_matches(&key, &self.manifest_bytes, &mac) {
            return Err(refused(
                &self.path,
                "its MANIFEST was changed since cpr wrote it, or another host's cpr wrote it (MANIFEST.mac does not match)",
            ));
        }
        match self
            .manifest
            .files
            .iter()
            .find(|e| e.sha256.is_none() && !super::layout::is_bulk(&e.path))
        {
            Some(e) => Err(refused(
                &self.path,
                &format!("{} has no SHA-256 in its MANIFEST", e.path),
            )),
            None => Ok(true),
        }
    }

    /// Without a MAC: the statefile directory and every listed file root's and not
    /// writable by group or others (a statefile of root's own, or of an older cpr).
    fn root_only(&self) -> Result<()> {
        let refuse = || {
            super::auth::refused(
                &self.path,
                "it is not authenticated (no MANIFEST.mac: written by an older cpr or not by root) and someone other than root could have changed it",
            )
        };
        let dir_meta = File::from(
            self.dir
                .try_clone()
                .map_err(|e| Error::io(self.path.display().to_string(), e))?,
        )
        .metadata()
        .map_err(|e| Error::io(self.path.display().to_string(), e))?;
        let root_only = |m: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0 && m.mode() & 0o022 == 0
        };
        if !root_only(&dir_meta) {
            return Err(refuse());
        }
        for entry in &self.manifest.files {
            let file = self.open_beneath(&entry.path)?;
            let meta = file.metadata().map_err(|e| self.io_error(&entry.path, e))?;
            if !root_only(&meta) {
                return Err(refuse());
            }
        }
        Ok(())
    }

    /// SHA-256 (hex) of the MANIFEST as read: names the statefile's whole content (an
    /// incremental child names its parent by it).
    pub fn manifest_sha256(&self) -> String {
        use sha2::Digest;
        super::auth::hex(&sha2::Sha256::digest(&*self.manifest_bytes))
    }

    /// Path of the MANIFEST.
    pub fn manifest_path(&self) -> PathBuf {
        self.path.join(MANIFEST)
    }

    /// The manifest's entry for a file, if it lists it.
    pub fn entry(&self, rel: &str) -> Option<&FileEntry> {
        self.manifest.files.iter().find(|e| e.path == rel)
    }

    /// Reads a whole file of the statefile (listed, and no longer than listed), checked
    /// against its size and checksums in the MANIFEST.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let entry = self.listed(rel)?;
        let file = self.open_file(rel)?;
        let data = read_regular(file, entry.size).map_err(|e| match e.raw_os_error() {
            Some(_) => self.io_error(rel, e),
            None => damaged(&self.path, format_args!("{rel}: {e}")),
        })?;
        // the bytes used are the bytes checked: a file changed after the statefile was
        // checked (or while it was) is damage, never taken unchecked
        use sha2::Digest;
        let sha = entry
            .sha256
            .as_ref()
            .map(|_| super::auth::hex(&sha2::Sha256::digest(&data)));
        let xxh3 = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data));
        self.compare(entry, data.len() as u64, &xxh3, sha.as_deref())?;
        Ok(data)
    }

    /// Reads a JSON record.
    pub fn read_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let data = self.read(rel)?;
        serde_json::from_slice(&data).map_err(|e| damaged(&self.path, format_args!("{rel}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_only() {
        assert!(valid_rel("proc/12/pages"));
        assert!(valid_rel("MANIFEST"));
        for bad in ["", "/etc/passwd", "a/../b", "..", "./a", "a//b", "a/"] {
            assert!(!valid_rel(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn hash_file_matches_one_shot_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..HASH_CHUNK + 12345).map(|i| (i * 7) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (size, hash) = hash_file(&p).unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(hash, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&data)));
    }
}
