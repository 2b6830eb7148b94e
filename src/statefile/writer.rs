//! Builds a statefile in a hidden sibling directory, fsyncs every file, then renames it
//! into place. Dropped before `commit`, it removes what it built.
//!
//! The staging directory is `.<name>.cpr-partial-<pid>-<n>` next to the target. It never
//! holds a MANIFEST until every other file is durable, and it only reaches the target's
//! name by one rename after that: a writer killed at any point leaves at most a hidden
//! leftover, never a half statefile under the name asked for; the next writer of that
//! name (or `cpr -D`) removes leftovers whose writer is gone.
//!
//! Everything inside the staging directory is made through directory descriptors
//! (`mkdirat`, `openat2` beneath the staging directory through no symbolic link,
//! `fchown`), never by path. The staging directory belongs to the writer (root, when
//! root checkpoints a user's process) with mode 0700 until it is complete: the
//! checkpoint owner gets it only then, so nothing they do meanwhile can redirect a
//! write, and root never follows a link they control.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat2};
use nix::sys::stat::Mode;
use nix::unistd::{AccessFlags, Gid, Uid};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use super::beneath;
use super::format::{FileEntry, MANIFEST, Manifest, Owner};
use super::reader::{probe, valid_rel};
use crate::error::{Context, Error, Kind, Result};

/// What writes past the page cache (`FileSink::write_direct`) are aligned to: lengths,
/// offsets and buffer addresses.
pub const PAGE_ALIGN: usize = 4096;

/// The `len` bytes of `buf` from its first `PAGE_ALIGN` boundary on, for writes past
/// the page cache (`buf` holds `len + PAGE_ALIGN` bytes).
pub fn aligned(buf: &mut [u8], len: usize) -> &mut [u8] {
    let skip = buf.as_ptr().align_offset(PAGE_ALIGN);
    &mut buf[skip..skip + len]
}

/// Longest file name (NAME_MAX).
const NAME_MAX: usize = 255;

/// Tells apart several writers of one process.
static WRITERS: AtomicU64 = AtomicU64::new(0);

pub struct StatefileWriter {
    /// Where the statefile will be.
    pub target: PathBuf,
    /// The hidden directory being built.
    pub staging: PathBuf,
    parent: PathBuf,
    /// The staging directory, held: every file and directory is made beneath it.
    dir: OwnedFd,
    /// The directory the statefile goes in, held from the start: the renames of commit
    /// happen there even if a directory above it is renamed meanwhile.
    parent_fd: OwnedFd,
    /// Names in `parent_fd`.
    staging_name: OsString,
    target_name: OsString,
    force: bool,
    owner: Owner,
    /// Files finished so far, by relative path.
    files: BTreeMap<String, FileEntry>,
    /// Files handed out and not yet finished (a name is written once).
    open: BTreeSet<String>,
    /// Directories made inside the staging directory (relative), to fsync on commit.
    dirs: BTreeSet<String>,
    /// Set once the staging directory is gone (renamed into place or removed).
    done: bool,
    /// Told of every byte written (see `set_progress`).
    progress: crate::engine::progress::Progress,
    /// Page data is written compressed (`cpr -c --compress`, statefile/compress.rs).
    pub compress_pages: bool,
    /// Bytes of page data written so far, before compression (for the MANIFEST).
    pub pages_raw_bytes: u64,
    /// Writeback starts as files are finished (and every `WRITEBACK_EVERY` bytes of a
    /// file): on unless processes are stopped for a checkpoint after which they run on
    /// (`-g`), whose stop must not wait for the disk; the commit's fsync, after they run
    /// on, writes everything then. Shared with the files being written, so that turning
    /// it off holds for them too (`set_writeback`).
    writeback: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A file being written starts writeback every this many bytes, so that the commit's
/// fsync has little left.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// One file being written: hashes as it goes. Hand it back with `finish_file`.
///
/// Writes go straight to the `File` (no buffer of its own: callers write large blocks);
/// each block is hashed as it is written, so the data is never read back.
pub struct FileSink {
    pub rel: String,
    file: File,
    /// None while lent (`lend_hash`): the borrower hashes what is written meanwhile.
    hasher: Option<Box<Xxh3>>,
    /// For records (not bulk page data): the SHA-256 the MANIFEST's MAC covers.
    sha: Option<Box<Sha256>>,
    size: u64,
    /// The statefile's name, for errors.
    subject: String,
    /// Told of every byte written.
    progress: crate::engine::progress::Progress,
    /// Writes bypass the page cache (O_DIRECT, see `write_direct`).
    direct: bool,
    /// `StatefileWriter::writeback`, shared.
    writeback: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bytes written since writeback last started.
    unflushed: u64,
}

impl std::io::Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.progress.cancelled() {
            return Err(std::io::Error::from_raw_os_error(libc::ECANCELED));
        }
        let n = match self.file.write(buf) {
            // a block the file system will not take directly: the page cache takes it
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.set_direct(false)?;
                self.file.write(buf)?
            }
            r => r?,
        };
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.size += n as u64;
        self.progress.bytes(n as u64);
        self.unflushed += n as u64;
        if self.unflushed >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl FileSink {
    /// The open file (for its descriptor; write through `Write` or `append` so that the
    /// data is hashed).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Starts writeback of what was written so far, unless the writer said not to
    /// (`StatefileWriter::writeback`).
    pub fn start_writeback(&mut self) {
        if self.writes_back() {
            crate::sys::start_writeback(&self.file);
            self.unflushed = 0;
        }
    }

    fn writes_back(&self) -> bool {
        self.writeback.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes written so far: the offset the next write lands at.
    pub fn position(&self) -> u64 {
        self.size
    }

    /// From here on, writes of whole pages from page-aligned buffers go straight to the
    /// device (O_DIRECT), past the page cache; returns whether they do. Only on a file
    /// system with a device: on tmpfs the page cache is where the data lives. On a
    /// virtual machine whose host takes back the guest's free memory, every page of a
    /// freshly filled page cache costs a host fault: writing 1 GiB through the page
    /// cache took 5-10 s on ext4 here, the same bytes written directly 1.6-2.5 s. The
    /// caller then writes only multiples of `PAGE_ALIGN` from buffers aligned to it, at
    /// offsets aligned to it; a write the file system refuses (EINVAL) is retried
    /// through the page cache, and the rest of the file goes that way. The statefile is
    /// made durable as before (fsync at commit). Not while a `-g` checkpoint's processes
    /// are stopped (`StatefileWriter::writeback` false).
    pub fn write_direct(&mut self) -> bool {
        // not while processes are stopped to run on after (`writeback` false): a direct
        // write waits for the device, a buffered one does not
        if !self.writes_back() {
            return false;
        }
        // (ramfs refuses O_DIRECT itself)
        let on_device = nix::sys::statfs::fstatfs(&self.file)
            .is_ok_and(|fs| fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC);
        on_device && self.size.is_multiple_of(PAGE_ALIGN as u64) && self.set_direct(true).is_ok()
    }

    fn set_direct(&mut self, on: bool) -> std::io::Result<()> {
        use nix::fcntl::{FcntlArg, fcntl};
        let flags = fcntl(&self.file, FcntlArg::F_GETFL)?;
        let mut flags = OFlag::from_bits_retain(flags);
        flags.set(OFlag::O_DIRECT, on);
        fcntl(&self.file, FcntlArg::F_SETFL(flags))?;
        self.direct = on;
        Ok(())
    }

    /// Hands the file's running hash to the caller, who then feeds it every byte written
    /// from here on, in order, and gives it back (`hash_back`) before the file is
    /// finished: the hash can then be computed on another thread than the writes (page
    /// data: the thread that read the bytes, while they are in its cache). None for a
    /// file whose SHA-256 is kept too (records), or while the hash is lent already.
    pub fn lend_hash(&mut self) -> Option<Box<Xxh3>> {
        if self.sha.is_some() {
            return None;
        }
        self.hasher.take()
    }

    /// Takes back the hash lent by `lend_hash`, with everything written meanwhile in it.
    pub fn hash_back(&mut self, hasher: Box<Xxh3>) {
        self.hasher = Some(hasher);
    }

    /// Writes all of `data`; errors name the statefile and the file
    /// (`ckpt: No space left on device: proc/12/pages`).
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        self.write_all(data).map_err(|e| self.error(e))
    }

    /// Pads with zeros up to the next multiple of `align` (e.g. the page size) and
    /// returns the new position, where the next block starts aligned.
    pub fn pad_to(&mut self, align: u64) -> Result<u64> {
        static ZEROS: [u8; 4096] = [0; 4096];
        if align > 1 {
            let mut pad = (align - self.size % align) % align;
            while pad > 0 {
                let n = pad.min(ZEROS.len() as u64) as usize;
                self.append(&ZEROS[..n])?;
                pad -= n as u64;
            }
        }
        Ok(self.size)
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::io(self.subject.clone(), e).detail(self.rel.clone())
    }
}

/// Maps an errno about the statefile path to the IRIX message, with a hint when there
/// is one.
fn path_error(subject: &str, errno: Errno) -> Error {
    let e = Error::errno(subject, errno);
    match errno {
        Errno::EACCES => e.detail("no write or search permission on its directory"),
        _ => e,
    }
}

/// Gives an opened file or directory of the statefile to its owner (root only can).
fn hand_over(fd: impl AsFd, owner: Owner) -> std::result::Result<(), Errno> {
    if Uid::effective().is_root() {
        nix::unistd::fchown(
            fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )?;
    }
    Ok(())
}

/// Creates the directory `rel` beneath `root` (its parent already there), mode 0700:
/// `mkdirat` in the parent opened beneath `root` through no symbolic link.
fn mkdir_beneath(root: &OwnedFd, rel: &str) -> std::result::Result<(), Errno> {
    let (parent, name) = match rel.rsplit_once('/') {
        Some((parent, name)) => (Some(parent), name),
        None => (None, rel),
    };
    let parent = match parent {
        Some(p) => beneath::open_dir(root, p)?,
        None => root
            .try_clone()
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?,
    };
    match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
        // made by this writer before (dirs is per writer): still a directory, no link
        Err(Errno::EEXIST) => beneath::open_dir(&parent, name).map(drop),
        other => other,
    }
}

/// Whether the process `pid` is gone (not merely someone else's).
fn writer_gone(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH)
}

/// Removes the leftovers `.<name>.cpr-partial-<pid>-<n>` in `parent` of writers that are
/// gone (killed mid-checkpoint). A live writer's, and anything that is not a directory
/// of that form, is left alone; failures are ignored (the leftover may be another
/// user's, whom we cannot clean up after).
pub(crate) fn remove_stale_partials(parent: &Path, name: &std::ffi::OsStr) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = partial_writer(file_name.as_bytes(), name.as_bytes()) else {
            continue;
        };
        let is_dir = entry
            .file_type()
            .is_ok_and(|t| t.is_dir() && !t.is_symlink());
        if is_dir && writer_gone(pid) {
            // remove_dir_all does not follow links, even ones swapped in meanwhile
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The writer PID of a staging directory name for the statefile `name`, if it is one.
fn partial_writer(entry: &[u8], name: &[u8]) -> Option<i32> {
    const MARK: &[u8] = b".cpr-partial-";
    let rest = entry.strip_prefix(b".")?;
    let at = rest.windows(MARK.len()).rposition(|w| w == MARK)?;
    let (stem, tail) = (&rest[..at], &rest[at + MARK.len()..]);
    // hidden_name cuts long names so that the whole is NAME_MAX long
    let same =
        stem == name || (entry.len() == NAME_MAX && !stem.is_empty() && name.starts_with(stem));
    if !same {
        return None;
    }
    let tail = std::str::from_utf8(tail).ok()?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `path` is a real directory (not a symbolic link) holding a MANIFEST.
fn check_replaceable(target: &Path, subject: &str, owner: Owner) -> Result<()> {
    let meta = std::fs::symlink_metadata(target).ctx(subject)?;
    let refuse = |why: &str| {
        Err(Error::with_detail(
            subject,
            Kind::FileExists,
            format!("{why}; -f replaces only a cpr statefile"),
        ))
    };
    if !meta.is_dir() {
        return refuse("not a directory");
    }
    let head = match probe(target) {
        Ok(head) => head,
        Err(_) => return refuse("not a cpr statefile (no valid MANIFEST)"),
    };
    if !Uid::effective().is_root() && head.owner.uid != owner.uid {
        return Err(Error::with_detail(
            subject,
            Kind::NotPermitted,
            format!(
                "the statefile there belongs to uid {}; only its owner or root replaces it",
                head.owner.uid
            ),
        ));
    }
    Ok(())
}

impl StatefileWriter {
    /// Starts a statefile at `target`. Without `force`, an existing `target` is
    /// "File exists". The staging directory has mode 0700 and belongs to `owner`.
    pub fn create(target: &Path, force: bool, owner: Owner) -> Result<StatefileWriter> {
        let subject = target.display().to_string();
        let name = match target.file_name() {
            Some(n) => n.to_owned(),
            None => {
                return Err(Error::with_detail(
                    subject,
                    Kind::InvalidArgument,
                    "not a statefile name",
                ));
            }
        };
        if name.as_bytes().len() > NAME_MAX {
            return Err(Error::new(subject, Kind::NameTooLong));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };

        // The directory it goes in: exists, is a directory, and we may write there.
        match std::fs::metadata(&parent) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Error::errno(subject, Errno::ENOTDIR)),
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                return Err(path_error(&subject, errno));
            }
        }
        nix::unistd::access(&parent, AccessFlags::W_OK | AccessFlags::X_OK)
            .map_err(|errno| path_error(&subject, errno))?;

        match std::fs::symlink_metadata(target) {
            Ok(_) if !force => {
                return Err(Error::with_detail(
                    subject,
                    Kind::FileExists,
                    "use -f to replace an existing statefile",
                ));
            }
            Ok(_) => check_replaceable(target, &subject, owner)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                return Err(path_error(&subject, errno));
            }
        }

        remove_stale_partials(&parent, &name);
        let parent_fd = nix::fcntl::open(
            &parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| path_error(&subject, errno))?;
        let staging_name = hidden_name(&name, "cpr-partial");
        let staging = parent.join(&staging_name);
        nix::sys::stat::mkdirat(
            &parent_fd,
            staging_name.as_os_str(),
            Mode::from_bits_truncate(0o700),
        )
        .map_err(|errno| path_error(&subject, errno))?;
        let dir = match beneath::open_dir(&parent_fd, &staging_name.to_string_lossy()) {
            Ok(dir) => dir,
            Err(errno) => {
                // not ours to remove: something replaced it already
                return Err(Error::errno(&subject, errno).detail("staging directory replaced"));
            }
        };
        let writer = StatefileWriter {
            target: target.to_path_buf(),
            staging,
            parent,
            dir,
            parent_fd,
            staging_name,
            target_name: name,
            force,
            owner,
            files: BTreeMap::new(),
            open: BTreeSet::new(),
            dirs: BTreeSet::new(),
            done: false,
            progress: Default::default(),
            compress_pages: false,
            pages_raw_bytes: 0,
            writeback: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        };
        // From here on, Drop removes the staging directory on error. It stays the
        // writer's, 0700, until commit hands the finished statefile to its owner.
        nix::sys::stat::fchmod(&writer.dir, Mode::from_bits_truncate(0o700))
            .map_err(|e| writer.error(e.into(), None))?;
        Ok(writer)
    }

    fn subject(&self) -> String {
        self.target.display().to_string()
    }

    fn error(&self, e: std::io::Error, rel: Option<&str>) -> Error {
        let err = Error::io(self.subject(), e);
        match rel {
            Some(rel) => err.detail(rel.to_string()),
            None => err,
        }
    }

    /// A record serde cannot write (a map with keys that are not strings, ...).
    fn unserializable(&self, rel: &str, e: serde_json::Error) -> Error {
        Error::with_detail(self.subject(), Kind::CheckpointError, format!("{rel}: {e}"))
    }

    /// Writes a whole file (relative path, parents created).
    pub fn write_file(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        let mut sink = self.create_file(rel)?;
        sink.append(data)?;
        self.finish_file(sink)
    }

    /// Writes a value as pretty JSON.
    pub fn write_json<T: serde::Serialize>(&mut self, rel: &str, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value).map_err(|e| self.unserializable(rel, e))?;
        self.write_file(rel, &text)
    }

    /// Opens a file to stream into (page data).
    pub fn create_file(&mut self, rel: &str) -> Result<FileSink> {
        if !valid_rel(rel) || rel == MANIFEST {
            return Err(Error::with_detail(
                self.subject(),
                Kind::InvalidArgument,
                format!("bad statefile file name {rel:?}"),
            ));
        }
        if self.files.contains_key(rel) || self.open.contains(rel) {
            return Err(Error::with_detail(
                self.subject(),
                Kind::FileExists,
                format!("{rel} written twice"),
            ));
        }
        // Parents, one level at a time, each 0700 and the owner's.
        let mut dir = String::new();
        let components: Vec<&str> = rel.split('/').collect();
        for part in &components[..components.len() - 1] {
            if !dir.is_empty() {
                dir.push('/');
            }
            dir.push_str(part);
            if self.dirs.contains(&dir) {
                continue;
            }
            mkdir_beneath(&self.dir, &dir).map_err(|e| self.error(e.into(), Some(&dir)))?;
            self.dirs.insert(dir.clone());
        }
        let file = beneath::create_new(&self.dir, rel, 0o600)
            .map_err(|e| self.error(e.into(), Some(rel)))?;
        self.open.insert(rel.to_string());
        Ok(FileSink {
            rel: rel.to_string(),
            file,
            hasher: Some(Box::new(Xxh3::new())),
            sha: (!super::layout::is_bulk(rel)).then(|| Box::new(Sha256::new())),
            size: 0,
            subject: self.subject(),
            progress: self.progress.clone(),
            direct: false,
            writeback: self.writeback.clone(),
            unflushed: 0,
        })
    }

    /// Turns writeback on or off (`writeback`), for the files being written too.
    pub fn set_writeback(&self, on: bool) {
        self.writeback
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reports the bytes of every file written from now on to `progress`.
    pub fn set_progress(&mut self, progress: crate::engine::progress::Progress) {
        self.progress = progress;
    }

    /// Flushes, fsyncs and records a streamed file.
    pub fn finish_file(&mut self, mut sink: FileSink) -> Result<()> {
        if !self.open.remove(&sink.rel) {
            return Err(Error::with_detail(
                self.subject(),
                Kind::InvalidArgument,
                format!("{} is not a file of this statefile", sink.rel),
            ));
        }
        sink.file.flush().map_err(|e| sink.error(e))?;
        // fsync'd together at commit: one journal commit then covers most of them (ext4),
        // where a file-by-file fsync costs one each; writeback starts now
        sink.start_writeback();
        let Some(hasher) = &sink.hasher else {
            return Err(Error::with_detail(
                self.subject(),
                Kind::CheckpointError,
                format!("{}: its hash was not given back", sink.rel),
            ));
        };
        let entry = FileEntry {
            path: sink.rel.clone(),
            size: sink.size,
            xxh3: format!("{:016x}", hasher.digest()),
            sha256: sink.sha.map(|sha| super::auth::hex(&sha.finalize())),
        };
        self.files.insert(sink.rel, entry);
        Ok(())
    }

    /// Records the files, writes MANIFEST, fsyncs, and renames into place (with `force`,
    /// the old statefile is moved aside first and removed last). Returns the final path.
    pub fn commit(mut self, mut manifest: Manifest) -> Result<PathBuf> {
        if let Some(rel) = self.open.iter().next() {
            return Err(Error::with_detail(
                self.subject(),
                Kind::CheckpointError,
                format!("{rel} was not finished"),
            ));
        }
        manifest.files = self.files.values().cloned().collect();

        // Every file durable before MANIFEST is written, and the owner's: the staging
        // directory (still the writer's, 0700) is what keeps them out until it is done.
        let rels: Vec<&str> = self.files.keys().map(String::as_str).collect();
        if let Err((rel, e)) = sync_files(&self.dir, &rels, self.owner) {
            return Err(self.error(e, Some(rel)));
        }

        // MANIFEST last: until it is durable, the directory is not a statefile.
        let text =
            serde_json::to_vec_pretty(&manifest).map_err(|e| self.unserializable(MANIFEST, e))?;
        let mut file = beneath::create_new(&self.dir, MANIFEST, 0o600)
            .map_err(|e| self.error(e.into(), Some(MANIFEST)))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| self.error(e, Some(MANIFEST)))?;
        hand_over(&file, self.owner).map_err(|e| self.error(e.into(), Some(MANIFEST)))?;
        drop(file);
        self.seal(&text)?;

        // Every directory, deepest first, then the staging directory itself, last of all
        // handed to the owner: complete from here on.
        for dir in self.dirs.iter().rev() {
            let fd =
                beneath::open_dir(&self.dir, dir).map_err(|e| self.error(e.into(), Some(dir)))?;
            hand_over(&fd, self.owner).map_err(|e| self.error(e.into(), Some(dir)))?;
            nix::unistd::fsync(&fd).map_err(|e| self.error(e.into(), Some(dir)))?;
        }
        hand_over(&self.dir, self.owner).map_err(|e| self.error(e.into(), None))?;
        nix::unistd::fsync(&self.dir).map_err(|e| self.error(e.into(), None))?;

        self.rename_into_place()?;
        self.done = true;
        Ok(self.target.clone())
    }

    /// Root authenticates what it writes (`auth`): MANIFEST.mac. A statefile of root's
    /// own stays restartable by root without it (no one else could change it), so only
    /// one handed to another owner needs the host key.
    fn seal(&self, manifest: &[u8]) -> Result<()> {
        if !Uid::effective().is_root() {
            return Ok(());
        }
        match super::auth::seal(&self.dir, manifest) {
            Ok(file) => hand_over(&file, self.owner)
                .map_err(|e| self.error(e.into(), Some(super::layout::MANIFEST_MAC))),
            Err(_) if self.owner.uid == 0 => Ok(()),
            Err(e) => Err(e.context(self.subject())),
        }
    }

    /// The one step that makes the statefile visible under its name.
    fn rename_into_place(&mut self) -> Result<()> {
        let subject = self.subject();
        let exists = std::fs::symlink_metadata(&self.target).is_ok();
        if !exists {
            // NOREPLACE: rename(2) would silently replace an empty directory made meanwhile.
            self.rename(
                &self.staging_name,
                &self.target_name,
                RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|errno| path_error(&subject, errno))?;
        } else if !self.force {
            return Err(Error::with_detail(
                subject,
                Kind::FileExists,
                "use -f to replace an existing statefile",
            ));
        } else {
            check_replaceable(&self.target, &subject, self.owner)?;
            // Swap the two in one step where the filesystem can; the old one then sits
            // under the staging name and is removed below. Elsewhere, move it aside first.
            match self.rename(
                &self.staging_name,
                &self.target_name,
                RenameFlags::RENAME_EXCHANGE,
            ) {
                Ok(()) => {
                    let old = self.staging.clone();
                    self.sync_parent()?;
                    std::fs::remove_dir_all(&old).map_err(|e| self.error(e, None))?;
                }
                Err(Errno::EINVAL | Errno::ENOTSUP | Errno::ENOSYS) => {
                    let aside_name = hidden_name(&self.target_name, "cpr-old");
                    let aside = self.parent.join(&aside_name);
                    self.rename(
                        &self.target_name,
                        &aside_name,
                        RenameFlags::RENAME_NOREPLACE,
                    )
                    .map_err(|e| self.error(e.into(), None))?;
                    if let Err(errno) = self.rename(
                        &self.staging_name,
                        &self.target_name,
                        RenameFlags::RENAME_NOREPLACE,
                    ) {
                        // Put the old one back; the new one is removed by Drop.
                        let _ = self.rename(&aside_name, &self.target_name, RenameFlags::empty());
                        return Err(path_error(&subject, errno));
                    }
                    self.sync_parent()?;
                    std::fs::remove_dir_all(&aside).map_err(|e| self.error(e, None))?;
                }
                Err(errno) => return Err(path_error(&subject, errno)),
            }
        }
        self.sync_parent()
    }

    fn sync_parent(&self) -> Result<()> {
        nix::unistd::fsync(&self.parent_fd).map_err(|e| self.error(e.into(), None))
    }

    /// renameat2 of two names in the statefile's directory.
    fn rename(
        &self,
        from: &std::ffi::OsStr,
        to: &std::ffi::OsStr,
        flags: RenameFlags,
    ) -> std::result::Result<(), Errno> {
        renameat2(&self.parent_fd, from, &self.parent_fd, to, flags)
    }
}

/// `.<name>.<what>-<pid>-<n>`, cut so that it stays a valid file name.
/// At most this many threads fsync a statefile's files at commit.
const SYNC_THREADS: usize = 16;

/// Hands each file `rels` of `dir` to `owner` and fsyncs it, on up to `SYNC_THREADS`
/// threads: each fsync waits for its own writeback and, on ext4, a journal commit that
/// concurrent ones share, so a statefile of many files (processes, threads, descriptors)
/// commits in a fraction of the time of one fsync after the other. The first failure,
/// with the file's name.
fn sync_files<'a>(
    dir: &OwnedFd,
    rels: &[&'a str],
    owner: Owner,
) -> std::result::Result<(), (&'a str, std::io::Error)> {
    let one = |rel: &'a str| -> std::result::Result<(), (&'a str, std::io::Error)> {
        let file = beneath::open_read(dir, rel).map_err(|e| (rel, e.into()))?;
        hand_over(&file, owner).map_err(|e| (rel, e.into()))?;
        file.sync_all().map_err(|e| (rel, e))
    };
    let threads = rels.len().min(SYNC_THREADS);
    if threads <= 1 {
        return rels.iter().try_for_each(|rel| one(rel));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    while let Some(rel) = rels.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = one(rel) {
                            // the others stop at their next file
                            next.store(rels.len(), Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut first = Ok(());
        for w in workers {
            let r = w.join().unwrap_or_else(|_| {
                Err(("", std::io::Error::other("a thread syncing files panicked")))
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

fn hidden_name(name: &std::ffi::OsStr, what: &str) -> OsString {
    let n = WRITERS.fetch_add(1, Ordering::Relaxed);
    let suffix = format!(".{what}-{}-{n}", std::process::id());
    let bytes = name.as_bytes();
    let keep = bytes.len().min(NAME_MAX - 1 - suffix.len());
    let mut out = Vec::with_capacity(NAME_MAX);
    out.push(b'.');
    out.extend_from_slice(&bytes[..keep]);
    out.extend_from_slice(suffix.as_bytes());
    OsString::from(std::ffi::OsStr::from_bytes(&out))
}

impl Drop for StatefileWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_stay_short_enough() {
        let long = OsString::from("x".repeat(255));
        let h = hidden_name(&long, "cpr-partial");
        assert!(h.as_bytes().len() <= NAME_MAX);
        assert!(h.as_bytes().starts_with(b".xxx"));
        assert!(
            h.to_string_lossy()
                .contains(&format!(".cpr-partial-{}-", std::process::id()))
        );
    }

    #[test]
    fn pad_to_aligns_and_hashes_the_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
        };
        let mut w = StatefileWriter::create(&dir.path().join("s"), false, owner).unwrap();
        let mut sink = w.create_file("proc/1/pages").unwrap();
        sink.append(b"abc").unwrap();
        assert_eq!(sink.pad_to(4096).unwrap(), 4096);
        assert_eq!(sink.pad_to(4096).unwrap(), 4096);
        sink.append(&[1u8; 10]).unwrap();
        assert_eq!(sink.position(), 4106);
        w.finish_file(sink).unwrap();
        let e = &w.files["proc/1/pages"];
        let mut expect = b"abc".to_vec();
        expect.resize(4096, 0);
        expect.extend_from_slice(&[1u8; 10]);
        assert_eq!(e.size, 4106);
        assert_eq!(
            e.xxh3,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&expect))
        );
        assert_eq!(
            std::fs::read(w.staging.join("proc/1/pages")).unwrap(),
            expect
        );
    }

    #[test]
    fn a_lent_hash_gives_the_same_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
        };
        let mut w = StatefileWriter::create(&dir.path().join("s"), false, owner).unwrap();
        let mut sink = w.create_file("proc/1/pages").unwrap();
        sink.append(b"head").unwrap();
        let mut h = sink.lend_hash().unwrap();
        assert!(sink.lend_hash().is_none());
        sink.append(b"tail").unwrap();
        h.update(b"tail");
        sink.hash_back(h);
        w.finish_file(sink).unwrap();
        assert_eq!(
            w.files["proc/1/pages"].xxh3,
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b"headtail"))
        );
        // not given back: the file cannot be finished
        let mut sink = w.create_file("proc/2/pages").unwrap();
        let _lent = sink.lend_hash().unwrap();
        assert_eq!(w.finish_file(sink).unwrap_err().kind, Kind::CheckpointError);
        // records keep their SHA-256 too: never lent
        let mut sink = w.create_file("pstree.json").unwrap();
        assert!(sink.lend_hash().is_none());
        w.finish_file(sink).unwrap();
    }

    #[test]
    fn bad_names_and_twice_written_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Owner { uid: 0, gid: 0 };
        let mut w = StatefileWriter::create(&dir.path().join("s"), false, owner).unwrap();
        for bad in ["../escape", "/abs", "MANIFEST", "a//b"] {
            let e = w.write_file(bad, b"x").unwrap_err();
            assert_eq!(e.kind, Kind::InvalidArgument, "{bad}");
        }
        w.write_file("a/b", b"x").unwrap();
        let e = w.write_file("a/b", b"y").unwrap_err();
        assert_eq!(e.kind, Kind::FileExists);
        assert!(!dir.path().join("escape").exists());
    }
}
