//! System V shared memory for cpr itself: create, inspect, attach, change and remove
//! segments. The restored processes attach theirs by injected calls (engine/shm.rs);
//! these wrappers are for the checkpoint's copy of the contents and the restart's
//! recreation of each segment.

use nix::errno::Errno;

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

/// A segment attached to cpr; detached when dropped. Access goes through copies (the
/// memory is shared with other processes, so no Rust reference to it is ever made).
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
        // SAFETY: the range lies inside the attachment (checked above), which stays mapped
        // while `self` lives; `buf` is a distinct local buffer of that length.
        unsafe { std::ptr::copy_nonoverlapping(self.addr.add(off), buf.as_mut_ptr(), buf.len()) };
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
        // SAFETY: the range lies inside a writable attachment (checked above) that stays
        // mapped while `self` lives; `data` is distinct memory of that length.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr.add(off), data.len()) };
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
