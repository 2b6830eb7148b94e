//! System V shared memory for cpr itself: create, inspect, attach, change and remove
//! segments. The restored processes attach theirs by injected calls (engine/objects/sysv_shm.rs);
//! these wrappers are for the checkpoint's copy of the contents and the restart's
//! recreation of each segment.

use std::sync::atomic::AtomicU8;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use nix::errno::Errno;

/// The unit of `Attachment`'s copies.
const WORD: usize = std::mem::size_of::<usize>();

/// `SHM_DEST` in `shm_perm.mode`: removed when the last process detaches.
pub const SHM_DEST: u32 = 0o1000;
/// `SHM_LOCKED` in `shm_perm.mode`: pages locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;
/// `SHM_EXEC` for shmat(2) (libc lacks it for glibc targets).
pub const SHM_EXEC: i32 = 0o100000;

/// What IPC_STAT tells about a segment (the fields cpr uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmStat {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits and the SHM_DEST / SHM_LOCKED flags.
    pub mode: u32,
    pub size: u64,
    pub nattch: u64,
}

/// shmget(2).
pub fn shmget(key: i32, size: u64, flags: i32) -> Result<i32, Errno> {
    // SAFETY: shmget takes only integers and touches no memory of ours.
    let rc = unsafe { libc::shmget(key, size as libc::size_t, flags) };
    Errno::result(rc)
}

/// shmctl(IPC_STAT).
pub fn stat(shmid: i32) -> Result<ShmStat, Errno> {
    // SAFETY: shmid_ds is plain integers; all zeroes is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one shmid_ds into `ds`, which lives across the call.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut ds) };
    Errno::result(rc)?;
    Ok(ShmStat {
        key: ds.shm_perm.__key,
        uid: ds.shm_perm.uid,
        gid: ds.shm_perm.gid,
        cuid: ds.shm_perm.cuid,
        cgid: ds.shm_perm.cgid,
        mode: ds.shm_perm.mode as u32,
        size: ds.shm_segsz as u64,
        nattch: ds.shm_nattch as u64,
    })
}

/// shmctl(IPC_SET): owner and permission bits (the low nine bits of `mode`).
pub fn set_owner(shmid: i32, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    // SAFETY: as in `stat`.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    ds.shm_perm.uid = uid;
    ds.shm_perm.gid = gid;
    ds.shm_perm.mode = (mode & 0o777) as libc::c_ushort;
    // SAFETY: the kernel reads one shmid_ds from `ds`, which lives across the call.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_SET, &mut ds) };
    Errno::result(rc).map(drop)
}

/// shmctl(SHM_LOCK).
pub fn lock(shmid: i32) -> Result<(), Errno> {
    // SAFETY: SHM_LOCK reads and writes no memory through the pointer (null).
    let rc = unsafe { libc::shmctl(shmid, libc::SHM_LOCK, std::ptr::null_mut()) };
    Errno::result(rc).map(drop)
}

/// shmctl(IPC_RMID): removed now, or when the last process detaches.
pub fn remove(shmid: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID reads and writes no memory through the pointer (null).
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    Errno::result(rc).map(drop)
}

/// A segment attached to cpr; detached when dropped.
///
/// Other processes may write the segment while cpr copies it (those attached but not
/// being checkpointed), so plain copies would be a data race, undefined behaviour even
/// though any bytes are valid. Every access is a relaxed atomic load or store instead: a
/// machine word where the address is word aligned, a byte elsewhere (`read_at`,
/// `write_at`). A racing writer can then only make the copy a mix of old and new bytes.
/// The safety of each access rests on: the range is inside the attachment, which stays
/// mapped while `self` lives; cpr makes no other access to it (no Rust reference to it
/// is ever made), and `Attachment` is neither `Send` nor `Sync`, so cpr's own accesses
/// of different sizes never overlap in time; relaxed loads of at most a word are
/// allowed on read-only memory (`SHM_RDONLY`), as std::sync::atomic documents for
/// x86_64, aarch64 and the other 64-bit targets (4 bytes on 32-bit ones: one word).
pub struct Attachment {
    addr: *mut u8,
    len: usize,
    writable: bool,
}

impl Attachment {
    /// shmat(shmid, NULL, SHM_RDONLY or 0) of the whole segment.
    pub fn new(shmid: i32, writable: bool) -> Result<Attachment, Errno> {
        let size = stat(shmid)?.size as usize;
        let flags = if writable { 0 } else { libc::SHM_RDONLY };
        // SAFETY: a null address lets the kernel choose a free place; nothing of ours is
        // mapped over.
        let p = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(Errno::last());
        }
        Ok(Attachment {
            addr: p as *mut u8,
            len: size,
            writable,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes from offset `off`; EINVAL outside the segment.
    pub fn read_at(&self, off: usize, buf: &mut [u8]) -> Result<(), Errno> {
        if off.checked_add(buf.len()).is_none_or(|e| e > self.len) {
            return Err(Errno::EINVAL);
        }
        let mut i = 0;
        while i < buf.len() {
            let p = self.addr.wrapping_add(off + i);
            if p.addr().is_multiple_of(WORD) && buf.len() - i >= WORD {
                // SAFETY: see `Attachment`; `p` is word aligned and the word inside the
                // attachment (checked above).
                let w = unsafe { AtomicUsize::from_ptr(p.cast()) }.load(Relaxed);
                buf[i..i + WORD].copy_from_slice(&w.to_ne_bytes());
                i += WORD;
            } else {
                // SAFETY: see `Attachment`; the byte is inside the attachment.
                buf[i] = unsafe { AtomicU8::from_ptr(p) }.load(Relaxed);
                i += 1;
            }
        }
        Ok(())
    }

    /// Copies `data` to offset `off`; EINVAL outside the segment, EACCES when read-only.
    pub fn write_at(&self, off: usize, data: &[u8]) -> Result<(), Errno> {
        if !self.writable {
            return Err(Errno::EACCES);
        }
        if off.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return Err(Errno::EINVAL);
        }
        let mut i = 0;
        while i < data.len() {
            let p = self.addr.wrapping_add(off + i);
            match data[i..].first_chunk::<WORD>() {
                Some(w) if p.addr().is_multiple_of(WORD) => {
                    // SAFETY: see `Attachment`; `p` is word aligned, the word inside a
                    // writable attachment (checked above).
                    unsafe { AtomicUsize::from_ptr(p.cast()) }
                        .store(usize::from_ne_bytes(*w), Relaxed);
                    i += WORD;
                }
                _ => {
                    // SAFETY: see `Attachment`; the byte is inside a writable attachment.
                    unsafe { AtomicU8::from_ptr(p) }.store(data[i], Relaxed);
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Per page: whether it is in memory (mincore(2)). Pages never touched are not;
    /// neither are pages swapped out, so callers must not rely on it when swap exists.
    pub fn resident(&self) -> Result<Vec<bool>, Errno> {
        let pages = self.len.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is the attachment (page aligned, `pages` pages); the kernel
        // writes one byte per page into `vec`, which has exactly that many.
        let rc = unsafe { libc::mincore(self.addr.cast(), self.len, vec.as_mut_ptr()) };
        Errno::result(rc)?;
        Ok(vec.iter().map(|b| b & 1 != 0).collect())
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `addr` is this attachment's address; nothing refers to it any more.
        unsafe { libc::shmdt(self.addr.cast()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word and byte copies meet at every alignment: a segment of 2 pages less 3 bytes,
    /// written and read back at offsets 0..WORD with lengths that end anywhere.
    #[test]
    fn copies_at_any_offset_and_length() {
        let size = 2 * 4096 - 3;
        let id = shmget(libc::IPC_PRIVATE, size as u64, libc::IPC_CREAT | 0o600).unwrap();
        let result = std::panic::catch_unwind(|| {
            let seg = Attachment::new(id, true).unwrap();
            assert_eq!(seg.len(), size);
            let pattern: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
            seg.write_at(0, &pattern).unwrap();
            for off in 0..=WORD {
                for len in [0, 1, WORD - 1, WORD, WORD + 1, 3 * WORD + 5, size - off] {
                    let mut buf = vec![0u8; len];
                    seg.read_at(off, &mut buf).unwrap();
                    assert_eq!(buf, pattern[off..off + len], "read at {off} of {len}");
                }
            }
            let mut want = pattern.clone();
            for (n, off) in [1usize, 8, 13, 4090, size - 9].into_iter().enumerate() {
                let data: Vec<u8> = (0..9 + n * 3).map(|i| 0xa0 ^ (i + n) as u8).collect();
                let end = (off + data.len()).min(size);
                seg.write_at(off, &data[..end - off]).unwrap();
                want[off..end].copy_from_slice(&data[..end - off]);
            }
            let mut all = vec![0u8; size];
            seg.read_at(0, &mut all).unwrap();
            assert_eq!(all, want);
            assert_eq!(seg.read_at(size - 1, &mut [0; 2]), Err(Errno::EINVAL));
            assert_eq!(seg.write_at(usize::MAX, &[0]), Err(Errno::EINVAL));
            let ro = Attachment::new(id, false).unwrap();
            let mut buf = vec![0u8; 100];
            ro.read_at(5, &mut buf).unwrap();
            assert_eq!(buf, want[5..105]);
            assert_eq!(ro.write_at(0, &[1]), Err(Errno::EACCES));
        });
        remove(id).unwrap();
        result.unwrap();
    }
}
