//! The check before release, for descriptors: what the kernel says of a restored,
//! stopped process (/proc/PID/fd targets, fdinfo flags and offsets, which descriptors
//! share an open file description, by kcmp) against its saved records. A difference is
//! "Checkpoint error" naming the process, the descriptor and both values.

use super::files::{FdKind, FdRecord, STATUS_FLAGS};
use crate::attrfile::FileAction;
use crate::error::{Error, Kind, Result};
use crate::proc::ProcDir;

/// What the kernel says of one restored descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// None: not read (a duplicate, whose description `compare_sharing` proves its
    /// original's).
    pub link: Option<String>,
    /// fdinfo flags, O_CLOEXEC for the close-on-exec flag.
    pub flags: i32,
    pub pos: i64,
}

/// What a restored process's own descriptor table says of one descriptor, asked by
/// calls injected into it (`ask_injected`): raw results, a negative errno on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub fd: i32,
    /// fcntl(F_GETFD): the close-on-exec flag.
    pub fd_flags: i64,
    /// fcntl(F_GETFL): the description's flags, as fdinfo's without O_CLOEXEC.
    pub flags: i64,
    /// lseek(fd, 0, SEEK_CUR): the description's offset (-ESPIPE where it has none).
    pub pos: i64,
    /// For a regular file's descriptor: statx's mount, device, inode and link count of
    /// its file (`Identity`), when the kernel gave them all.
    pub file: Option<Identity>,
}

/// Which file a descriptor has open, as statx says: its mount (STATX_MNT_ID), device and
/// inode, and its number of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub mnt_id: u64,
    pub dev: (u32, u32),
    pub ino: u64,
    pub nlink: u32,
}

/// statx's answer (a `struct statx`, 256 bytes) read as an `Identity`: `None` unless it
/// is a regular file and the mask has the mount, inode and link count.
fn identity_of(stx: &[u8]) -> Option<Identity> {
    let u32_at = |o: usize| Some(u32::from_ne_bytes(stx.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_ne_bytes(stx.get(o..o + 8)?.try_into().ok()?));
    let u16_at = |o: usize| Some(u16::from_ne_bytes(stx.get(o..o + 2)?.try_into().ok()?));
    let want = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_NLINK | libc::STATX_MNT_ID;
    let mask = u32_at(STX_MASK)?;
    let regular = u32::from(u16_at(STX_MODE)?) & libc::S_IFMT == libc::S_IFREG;
    (mask & want == want && regular).then_some(Identity {
        mnt_id: u64_at(STX_MNT_ID)?,
        dev: (u32_at(STX_DEV_MAJOR)?, u32_at(STX_DEV_MINOR)?),
        ino: u64_at(STX_INO)?,
        nlink: u32_at(STX_NLINK)?,
    })
}

/// Offsets in `struct statx` (<linux/stat.h>; checked against libc's in the tests).
const STX_MASK: usize = 0;
const STX_NLINK: usize = 16;
const STX_MODE: usize = 28;
const STX_INO: usize = 32;
const STX_DEV_MAJOR: usize = 136;
const STX_DEV_MINOR: usize = 140;
const STX_MNT_ID: usize = 144;
const STATX_SIZE: usize = 256;

/// Asks the stopped restored process (through `inj` and its batch runner, its table in
/// `scratch`) for the flags, close-on-exec flag and offset of every descriptor of
/// `records`: three calls each, run in batches, where reading /proc/PID/fdinfo cost an
/// open, a read and a close of a /proc file each (about 90 ms for 10 000 descriptors).
/// The calls only read (lseek to the current offset moves nothing); their answers are
/// the kernel's, as fdinfo's are. To be called once the descriptor table is final.
pub fn ask_injected(
    inj: &crate::engine::ptrace::Injector,
    scratch: &mut crate::engine::ptrace::RemoteScratch,
    records: &[FdRecord],
) -> Result<Vec<Asked>> {
    // a table of 512 calls, and the statx buffers of its regular files, fit the scratch
    const PART: usize = 128;
    let mut out = Vec::with_capacity(records.len());
    for part in records.chunks(PART) {
        let mut frame = scratch.frame();
        let empty = frame.put(&[0u8])?;
        let regular = |r: &FdRecord| r.kind == FdKind::Regular;
        let stats = part.iter().filter(|r| regular(r)).count();
        let bufs = frame.alloc((stats * STATX_SIZE) as u64)?;
        let mut batch = crate::engine::ptrace::Batch::new();
        let mut k = 0;
        for r in part {
            let fd = r.fd as u64;
            batch.call(libc::SYS_fcntl, [fd, libc::F_GETFD as u64, 0, 0, 0, 0]);
            batch.call(libc::SYS_fcntl, [fd, libc::F_GETFL as u64, 0, 0, 0, 0]);
            batch.call(libc::SYS_lseek, [fd, 0, libc::SEEK_CUR as u64, 0, 0, 0]);
            if regular(r) {
                let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_NLINK;
                batch.call(
                    libc::SYS_statx,
                    [
                        fd,
                        empty.as_u64(),
                        libc::AT_EMPTY_PATH as u64,
                        u64::from(mask | libc::STATX_MNT_ID),
                        (bufs + (k * STATX_SIZE) as u64).as_u64(),
                        0,
                    ],
                );
                k += 1;
            }
        }
        let results = batch.run(inj, &mut frame)?;
        let stx = match stats {
            0 => Vec::new(),
            n => frame.read(bufs, n * STATX_SIZE)?,
        };
        let (mut at, mut k) = (0, 0);
        for r in part {
            let a = &results[at..];
            let file = match regular(r) {
                true => {
                    let buf = &stx[k * STATX_SIZE..(k + 1) * STATX_SIZE];
                    k += 1;
                    (a.get(3) == Some(&0)).then(|| identity_of(buf)).flatten()
                }
                false => None,
            };
            out.push(Asked {
                fd: r.fd,
                fd_flags: a[0],
                flags: a[1],
                pos: a[2],
                file,
            });
            at += if regular(r) { 4 } else { 3 };
        }
    }
    Ok(out)
}

/// Compares the descriptors of restored process `pid` (stopped, not yet released) with
/// `records`, its saved descriptor table after restart's own substitutions (FILE
/// policies, pipes to /dev/null). `Ok` when they agree. `asked`: what `ask_injected`
/// was told of each record's descriptor once the table was final (else fdinfo is read).
pub fn verify_restored(pid: i32, records: &[FdRecord], asked: Option<&[Asked]>) -> Result<()> {
    let dir = ProcDir::open(pid)?;
    let by_fd: std::collections::HashMap<i32, &FdRecord> =
        records.iter().map(|r| (r.fd, r)).collect();
    let asked = asked.filter(|a| a.len() == records.len());
    // the links are read relative to the fd directory (one name to look up, not two)
    let fd_dir = dir.open_file("fd")?;
    // since Linux 6.2 the directory's size is the number of open descriptors: when it is
    // the number of records, each of which the process says is open (F_GETFD), none is
    // open that should not be, and listing the directory (a /proc entry made for each)
    // is not needed; else (an older kernel, or a difference) the listing names it
    let counted = fd_dir.metadata().map(|m| m.len()).unwrap_or(0);
    let listed: Option<std::collections::BTreeSet<i32>> =
        match asked.is_some() && by_fd.len() == records.len() && counted == records.len() as u64 {
            true => None,
            false => Some(dir.fds()?.into_iter().collect()),
        };
    // what one description's descriptors share: its offset and flags
    let mut same = Vec::with_capacity(records.len());
    // the link of each file read so far that has one name (`Asked::file`)
    let mut named: std::collections::HashMap<Identity, String> = Default::default();
    for (i, r) in records.iter().enumerate() {
        if listed.as_ref().is_some_and(|open| !open.contains(&r.fd)) {
            return Err(differs(pid, r.fd, "descriptor", "closed", "open"));
        }
        // a duplicate is held to what its original is
        let origin = match r.kind {
            FdKind::Dup { of } => by_fd.get(&of).copied().unwrap_or(r),
            _ => r,
        };
        // what the process said of this descriptor
        let told = asked.map(|a| a[i]).filter(|a| a.fd == r.fd);
        // asked first: a descriptor it says is closed is that, not a failed readlink
        let (flags, pos) = match told {
            Some(a) => asked_flags(pid, a)?,
            None => {
                let info = dir.fdinfo(r.fd)?;
                (info.flags, info.pos)
            }
        };
        // a duplicate's target is its original's: compare_sharing proves them one
        // description (the original's own link is read and compared)
        let link = match r.kind {
            FdKind::Dup { .. } if origin.fd != r.fd => None,
            _ => {
                // a file with one name, not removed, open on one mount: every descriptor of
                // it has one link (a path is a mount and a name), read once
                let file = told.and_then(|a| a.file).filter(|f| f.nlink == 1);
                match file.and_then(|f| named.get(&f)) {
                    Some(link) => Some(link.clone()),
                    None => {
                        let link = read_link(pid, &fd_dir, r.fd)?;
                        if let Some(f) = file
                            && !link.ends_with(" (deleted)")
                        {
                            named.insert(f, link.clone());
                        }
                        Some(link)
                    }
                }
            }
        };
        let seen = Observed { link, flags, pos };
        compare(pid, r, origin, &seen)?;
        same.push((seen.pos, seen.flags & !libc::O_CLOEXEC));
    }
    if let Some(open) = &listed
        && let Some(extra) = open.iter().find(|fd| !by_fd.contains_key(fd))
    {
        return Err(differs(pid, *extra, "descriptor", "open", "closed"));
    }
    compare_sharing(pid, records, &same)
}

/// The /proc link of descriptor `fd` of `pid`, read in its fd directory `fd_dir`.
fn read_link(pid: i32, fd_dir: &std::fs::File, fd: i32) -> Result<String> {
    match nix::fcntl::readlinkat(fd_dir, fd.to_string().as_str()) {
        Ok(target) => Ok(target.to_string_lossy().into_owned()),
        Err(e) if crate::proc::is_gone(Some(e as i32)) => {
            // the process, or only the descriptor
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                Err(differs(pid, fd, "descriptor", "closed", "open"))
            } else {
                Err(crate::proc::gone(pid))
            }
        }
        Err(e) => Err(Error::errno(format!("process {pid} fd {fd}"), e)),
    }
}

/// fdinfo's flags (O_CLOEXEC for the close-on-exec flag) and offset from what
/// `ask_injected` was told; a descriptor the process says is not open is "closed".
fn asked_flags(pid: i32, a: Asked) -> Result<(i32, i64)> {
    let failed = |rc: i64| (-4095..0).contains(&rc);
    if failed(a.fd_flags) || failed(a.flags) {
        return Err(differs(pid, a.fd, "descriptor", "closed", "open"));
    }
    let cloexec = if a.fd_flags & libc::FD_CLOEXEC as i64 != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    Ok((a.flags as i32 | cloexec, a.pos))
}

/// Within one process: a `Dup` shares its original's description, and descriptors that
/// were separate opens are separate still. Descriptors are grouped in kcmp's order
/// among those of one key of `same` (what one description's descriptors share), at most
/// O(n log n) calls; without kcmp's order, compared pairwise.
fn compare_sharing<K: Ord>(pid: i32, records: &[FdRecord], same: &[K]) -> Result<()> {
    if let Some(done) = compare_sharing_by_origin(pid, records, same) {
        return done;
    }
    let origin = |r: &FdRecord| match r.kind {
        FdKind::Dup { of } => of,
        _ => r.fd,
    };
    let keys: Vec<(i32, i32)> = records.iter().map(|r| (pid, r.fd)).collect();
    let Ok(groups) = crate::sys::kcmp::group_open_files_by(&keys, same) else {
        return compare_sharing_pairwise(pid, records);
    };
    // each saved description must be one restored description and the other way round
    let mut by_origin: std::collections::HashMap<i32, (usize, i32)> = Default::default();
    let mut by_group: std::collections::HashMap<usize, (i32, i32)> = Default::default();
    for (r, &g) in records.iter().zip(&groups) {
        let o = origin(r);
        let &mut (og, ofd) = by_origin.entry(o).or_insert((g, r.fd));
        let &mut (go, gfd) = by_group.entry(g).or_insert((o, r.fd));
        if og != g {
            // saved as one description, restored as two
            return Err(sharing_differs(pid, ofd, r.fd, true));
        }
        if go != o {
            // saved as two, restored as one
            return Err(sharing_differs(pid, gfd, r.fd, false));
        }
    }
    Ok(())
}

/// `compare_sharing` in fewer kcmp calls, when every duplicate's original is a record
/// that is not a duplicate itself: each duplicate is its original's description (one
/// call), and the originals are separate descriptions (kcmp's order among those of one
/// key of `same`: one call for a pair), which together say what grouping them all says.
/// `None` when it does not apply or kcmp cannot order them: the caller groups them all.
fn compare_sharing_by_origin<K: Ord>(
    pid: i32,
    records: &[FdRecord],
    same: &[K],
) -> Option<Result<()>> {
    use crate::sys::kcmp::{group_open_files, open_file_order};
    use std::cmp::Ordering;
    let is_original: std::collections::HashSet<i32> = records
        .iter()
        .filter(|r| !matches!(r.kind, FdKind::Dup { .. }))
        .map(|r| r.fd)
        .collect();
    let mut originals = Vec::new();
    let mut dups = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match r.kind {
            FdKind::Dup { of } if is_original.contains(&of) => dups.push((r.fd, of)),
            FdKind::Dup { .. } => return None,
            _ => originals.push(i),
        }
    }
    if originals.len() != is_original.len() {
        // a number recorded twice
        return None;
    }
    for (fd, of) in dups {
        match open_file_order(pid, of, pid, fd) {
            Ok(Ordering::Equal) => {}
            Ok(_) => return Some(Err(sharing_differs(pid, of, fd, true))),
            Err(_) => return None,
        }
    }
    originals.sort_by(|&a, &b| same[a].cmp(&same[b]));
    for run in originals.chunk_by(|&a, &b| same[a] == same[b]) {
        let fds: Vec<i32> = run.iter().map(|&i| records[i].fd).collect();
        let shared = match fds.len() {
            // a few: every pair (a pair is one call, where sorting took two)
            ..=4 => {
                let mut found = None;
                for (i, &a) in fds.iter().enumerate() {
                    for &b in &fds[i + 1..] {
                        match open_file_order(pid, a, pid, b) {
                            Ok(Ordering::Equal) => found = found.or(Some((a, b))),
                            Ok(_) => {}
                            Err(_) => return None,
                        }
                    }
                }
                found
            }
            _ => {
                let items: Vec<(i32, i32)> = fds.iter().map(|&fd| (pid, fd)).collect();
                let Ok(groups) = group_open_files(&items) else {
                    return None;
                };
                let mut first: std::collections::HashMap<usize, i32> = Default::default();
                groups
                    .iter()
                    .zip(&fds)
                    .find_map(|(g, &fd)| match first.get(g) {
                        Some(&a) => Some((a, fd)),
                        None => {
                            first.insert(*g, fd);
                            None
                        }
                    })
            }
        };
        if let Some((a, b)) = shared {
            // saved as two, restored as one
            return Some(Err(sharing_differs(pid, a, b, false)));
        }
    }
    Some(Ok(()))
}

fn sharing_differs(pid: i32, a: i32, b: i32, want_one: bool) -> Error {
    let (got, saved) = if want_one {
        ("separate", "one")
    } else {
        ("one", "separate")
    };
    differs(
        pid,
        a,
        &format!("open file description with fd {b}"),
        got,
        saved,
    )
}

/// `compare_sharing` with a kcmp call for every pair (a failing call: not the same).
fn compare_sharing_pairwise(pid: i32, records: &[FdRecord]) -> Result<()> {
    let same = |a: i32, b: i32| crate::sys::same_open_file(pid, a, pid, b).unwrap_or(false);
    let origin = |r: &FdRecord| match r.kind {
        FdKind::Dup { of } => of,
        _ => r.fd,
    };
    for (i, a) in records.iter().enumerate() {
        for b in &records[i + 1..] {
            let want = origin(a) == origin(b);
            if same(a.fd, b.fd) != want {
                return Err(sharing_differs(pid, a.fd, b.fd, want));
            }
        }
    }
    Ok(())
}

/// Compares shared descriptions across processes: descriptors with one entry of the
/// shared table (`FdRecord::shared`) must be one description in every process.
pub fn verify_shared(procs: &[(i32, &[FdRecord])]) -> Result<()> {
    let mut first: std::collections::BTreeMap<u32, (i32, i32)> = Default::default();
    for &(pid, records) in procs {
        for r in records {
            let Some(id) = r.shared else { continue };
            match first.get(&id) {
                None => {
                    first.insert(id, (pid, r.fd));
                }
                Some(&(p0, f0)) => {
                    if !crate::sys::same_open_file(p0, f0, pid, r.fd).unwrap_or(false) {
                        return Err(differs(
                            pid,
                            r.fd,
                            &format!("open file description with process {p0} fd {f0}"),
                            "separate",
                            "one",
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// One descriptor (`origin`: the record of the description it duplicates, or itself):
/// its target, access mode, status flags, close-on-exec flag and offset, where restart
/// promises them.
pub fn compare(pid: i32, r: &FdRecord, origin: &FdRecord, seen: &Observed) -> Result<()> {
    if let (Some(want), Some(link)) = (expected_link(origin), &seen.link)
        && !want.matches(link)
    {
        return Err(differs(pid, r.fd, "target", link, &want.describe()));
    }
    let cloexec = seen.flags & libc::O_CLOEXEC != 0;
    if cloexec != r.cloexec {
        return Err(differs(
            pid,
            r.fd,
            "close-on-exec",
            &cloexec.to_string(),
            &r.cloexec.to_string(),
        ));
    }
    let mask = match origin.kind {
        // made natively: only O_NONBLOCK is theirs to keep
        FdKind::Event(_) => libc::O_NONBLOCK,
        _ => libc::O_ACCMODE | STATUS_FLAGS | libc::O_PATH,
    };
    let (got, want) = (seen.flags & mask, origin.flags & mask);
    if got != want {
        return Err(differs(
            pid,
            r.fd,
            "flags",
            &format!("{got:o}"),
            &format!("{want:o}"),
        ));
    }
    let pos_kept = match origin.kind {
        FdKind::Regular => matches!(
            origin.action,
            FileAction::Merge | FileAction::Replace | FileAction::Substitute
        ),
        FdKind::Deleted => true,
        _ => false,
    };
    if pos_kept && seen.pos as u64 != origin.pos {
        return Err(differs(
            pid,
            r.fd,
            "offset",
            &seen.pos.to_string(),
            &origin.pos.to_string(),
        ));
    }
    Ok(())
}

/// What a restored descriptor's /proc link must be.
enum Link {
    Exact(String),
    Prefix(&'static str),
    /// An unlinked copy of a deleted file.
    Deleted,
}

impl Link {
    fn matches(&self, got: &str) -> bool {
        match self {
            Link::Exact(p) => got == p,
            Link::Prefix(p) => got.starts_with(p),
            Link::Deleted => got.ends_with(" (deleted)"),
        }
    }
    fn describe(&self) -> String {
        match self {
            Link::Exact(p) => p.clone(),
            Link::Prefix(p) => format!("{p}..."),
            Link::Deleted => "a deleted file".into(),
        }
    }
}

fn expected_link(r: &FdRecord) -> Option<Link> {
    Some(match (&r.kind, r.action) {
        // terminals may be the restarting user's (-j)
        (FdKind::Device, _)
            if r.path.starts_with("/dev/pts/") || r.path.starts_with("/dev/tty") =>
        {
            return None;
        }
        (FdKind::Regular, FileAction::Substitute)
        | (FdKind::Deleted, _)
        | (FdKind::RemovedDevice(_), _) => Link::Deleted,
        (FdKind::Regular | FdKind::Directory | FdKind::Device | FdKind::Fifo { .. }, _)
        | (FdKind::Path, _) => Link::Exact(r.path.clone()),
        (FdKind::Pipe { .. }, _) => Link::Prefix("pipe:["),
        (FdKind::UnixSocket { .. } | FdKind::InetSocket { .. }, _) => Link::Prefix("socket:["),
        (FdKind::Event(_), _) | (FdKind::MQueue { removed: false, .. }, _) => {
            Link::Exact(r.path.clone())
        }
        // a removed queue is made under a name of cpr's, removed once all run
        (FdKind::MQueue { removed: true, .. }, _) => return None,
        // a new pty: its number is the new one's
        (FdKind::Dup { .. } | FdKind::PtyMaster { .. } | FdKind::PtySlave { .. }, _) => {
            return None;
        }
    })
}

fn differs(pid: i32, fd: i32, what: &str, got: &str, saved: &str) -> Error {
    Error::with_detail(
        format!("process {pid} fd {fd}"),
        Kind::CheckpointError,
        format!("restored {what} differs: {got}, saved {saved}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn record(fd: i32, path: &str, flags: i32, pos: u64) -> FdRecord {
        FdRecord {
            pos,
            action: FileAction::Merge,
            ..FdRecord::object(fd, FdKind::Regular, path, flags, true)
        }
    }

    #[test]
    fn agreeing_descriptors_pass_and_differences_name_both_values() {
        let me = std::process::id() as i32;
        let dir = std::env::temp_dir();
        let path = dir.join(format!("cpr-verify-{me}"));
        std::fs::write(&path, b"0123456789").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let real = std::fs::canonicalize(&path).unwrap();
        let r = record(f.as_raw_fd(), &real.to_string_lossy(), libc::O_RDONLY, 0);
        let seen = Observed {
            link: Some(real.to_string_lossy().into_owned()),
            flags: libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE,
            pos: 0,
        };
        compare(me, &r, &r, &seen).unwrap();
        let moved = Observed {
            pos: 4,
            ..seen.clone()
        };
        let msg = compare(me, &r, &r, &moved).unwrap_err().to_string();
        assert!(msg.contains("Checkpoint error"), "{msg}");
        assert!(msg.contains(&format!("process {me} fd {}", r.fd)), "{msg}");
        assert!(msg.contains("offset differs: 4, saved 0"), "{msg}");
        let nonblock = Observed {
            flags: seen.flags | libc::O_NONBLOCK,
            ..seen.clone()
        };
        let msg = compare(me, &r, &r, &nonblock).unwrap_err().to_string();
        assert!(msg.contains("flags differs"), "{msg}");
        // two separate opens must not be one description, and a dup must be
        let g = std::fs::File::open(&path).unwrap();
        let dup = f.try_clone().unwrap();
        let rg = record(g.as_raw_fd(), "", libc::O_RDONLY, 0);
        let mut rd = record(dup.as_raw_fd(), "", libc::O_RDONLY, 0);
        compare_sharing(me, &[r.clone(), rg.clone()], &[0, 0]).unwrap();
        assert!(compare_sharing(me, &[r.clone(), rd.clone()], &[0, 0]).is_err());
        rd.kind = FdKind::Dup { of: r.fd };
        compare_sharing(me, &[r.clone(), rd.clone()], &[0, 0]).unwrap();
        compare_sharing_pairwise(me, &[r.clone(), rd.clone()]).unwrap();
        rd.kind = FdKind::Regular;
        assert!(compare_sharing_pairwise(me, &[r.clone(), rd]).is_err());
        // separate opens restored as one description
        let mut rg2 = rg.clone();
        rg2.fd = dup.as_raw_fd();
        let msg = compare_sharing(me, &[r.clone(), rg2], &[0, 0])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("differs: one, saved separate"), "{msg}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn statx_offsets_are_the_kernels() {
        assert_eq!(std::mem::size_of::<libc::statx>(), STATX_SIZE);
        assert_eq!(std::mem::offset_of!(libc::statx, stx_mask), STX_MASK);
        assert_eq!(std::mem::offset_of!(libc::statx, stx_nlink), STX_NLINK);
        assert_eq!(std::mem::offset_of!(libc::statx, stx_mode), STX_MODE);
        assert_eq!(std::mem::offset_of!(libc::statx, stx_ino), STX_INO);
        assert_eq!(
            std::mem::offset_of!(libc::statx, stx_dev_major),
            STX_DEV_MAJOR
        );
        assert_eq!(
            std::mem::offset_of!(libc::statx, stx_dev_minor),
            STX_DEV_MINOR
        );
        assert_eq!(std::mem::offset_of!(libc::statx, stx_mnt_id), STX_MNT_ID);
        let mut stx = vec![0u8; STATX_SIZE];
        let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_NLINK | libc::STATX_MNT_ID;
        stx[STX_MASK..STX_MASK + 4].copy_from_slice(&mask.to_ne_bytes());
        stx[STX_MODE..STX_MODE + 2].copy_from_slice(&(libc::S_IFREG as u16 | 0o644).to_ne_bytes());
        stx[STX_INO..STX_INO + 8].copy_from_slice(&77u64.to_ne_bytes());
        stx[STX_NLINK..STX_NLINK + 4].copy_from_slice(&1u32.to_ne_bytes());
        stx[STX_MNT_ID..STX_MNT_ID + 8].copy_from_slice(&5u64.to_ne_bytes());
        let id = identity_of(&stx).unwrap();
        assert_eq!((id.ino, id.nlink, id.mnt_id), (77, 1, 5));
        // a directory, or a kernel that did not say the mount: no identity
        stx[STX_MODE..STX_MODE + 2].copy_from_slice(&(libc::S_IFDIR as u16).to_ne_bytes());
        assert_eq!(identity_of(&stx), None);
        stx[STX_MODE..STX_MODE + 2].copy_from_slice(&(libc::S_IFREG as u16).to_ne_bytes());
        let partial = mask & !libc::STATX_MNT_ID;
        stx[STX_MASK..STX_MASK + 4].copy_from_slice(&partial.to_ne_bytes());
        assert_eq!(identity_of(&stx), None);
    }

    #[test]
    fn injected_answers_read_as_fdinfo_and_a_failed_one_is_a_closed_descriptor() {
        let asked = |fd_flags, flags, pos| Asked {
            fd: 7,
            fd_flags,
            flags,
            pos,
            file: None,
        };
        let rdwr = libc::O_RDWR as i64;
        assert_eq!(
            asked_flags(1, asked(libc::FD_CLOEXEC as i64, rdwr, 12)).unwrap(),
            (libc::O_RDWR | libc::O_CLOEXEC, 12)
        );
        assert_eq!(
            asked_flags(1, asked(0, rdwr, -(libc::ESPIPE as i64))).unwrap(),
            (libc::O_RDWR, -(libc::ESPIPE as i64))
        );
        for bad in [
            asked(-(libc::EBADF as i64), rdwr, 0),
            asked(0, -(libc::EBADF as i64), 0),
        ] {
            let msg = asked_flags(1, bad).unwrap_err().to_string();
            assert!(msg.contains("process 1 fd 7"), "{msg}");
            assert!(
                msg.contains("descriptor differs: closed, saved open"),
                "{msg}"
            );
        }
    }
}
