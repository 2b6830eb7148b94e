//! An area of a restore child's memory, reserved in a hole of the image, where private
//! anonymous mappings are made and filled before the child forks its children (who then
//! share the pages copy-on-write). No Rust value points into it: it is only touched
//! through these functions, and left in place for the tracer to move into the image.

use nix::errno::Errno;

/// The reserved range [addr, addr + len).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    pub addr: u64,
    pub len: u64,
}

impl Area {
    /// Reserves `len` bytes at `addr` (PROT_NONE), failing rather than replacing anything.
    pub fn reserve(addr: u64, len: u64) -> Result<Area, Errno> {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the result is
        // referenced by no Rust value.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        if p as u64 != addr {
            // an old kernel that took the address as a hint only
            // SAFETY: the mapping just made, referenced by nothing.
            unsafe { libc::munmap(p, len as usize) };
            return Err(Errno::EEXIST);
        }
        Ok(Area { addr, len })
    }

    fn inside(&self, off: u64, len: u64) -> Result<u64, Errno> {
        match off.checked_add(len) {
            Some(end)
                if end <= self.len && off.is_multiple_of(4096) && len.is_multiple_of(4096) =>
            {
                Ok(self.addr + off)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// A fresh private anonymous read-write mapping at `off` (over the reservation).
    pub fn fresh(&self, off: u64, len: u64, noreserve: bool) -> Result<(), Errno> {
        let at = self.inside(off, len)?;
        let extra = if noreserve { libc::MAP_NORESERVE } else { 0 };
        // SAFETY: inside this area, which no Rust value references.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | extra,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    /// A private read-write mapping of `fd` at `file_off`, at `off` (over the reservation).
    pub fn fresh_file(&self, off: u64, len: u64, fd: i32, file_off: u64) -> Result<(), Errno> {
        let at = self.inside(off, len)?;
        // SAFETY: inside this area, which no Rust value references; a private mapping
        // never writes to the file.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                fd,
                file_off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    /// Moves `len` bytes at `src_off` of `src` (an area inherited from the parent: its
    /// pages stay shared copy-on-write) to `off` of this one. The source range must be one
    /// mapping.
    pub fn take_from(&self, src: &Area, src_off: u64, len: u64, off: u64) -> Result<(), Errno> {
        let from = src.inside(src_off, len)?;
        let to = self.inside(off, len)?;
        // SAFETY: both ranges lie in areas no Rust value references.
        let p = unsafe {
            libc::mremap(
                from as *mut libc::c_void,
                len as usize,
                len as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                to as *mut libc::c_void,
            )
        };
        if p == libc::MAP_FAILED {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    /// Drops the pages at `off` (they read as zero again, as pages that never existed).
    pub fn discard(&self, off: u64, len: u64) -> Result<(), Errno> {
        let at = self.inside(off, len)?;
        // SAFETY: inside this area, which no Rust value references.
        let r =
            unsafe { libc::madvise(at as *mut libc::c_void, len as usize, libc::MADV_DONTNEED) };
        if r != 0 { Err(Errno::last()) } else { Ok(()) }
    }

    /// Gives the pages at `off` advice `advice` (madvise).
    pub fn advise(&self, off: u64, len: u64, advice: i32) -> Result<(), Errno> {
        let at = self.inside(off, len)?;
        // SAFETY: inside this area, which no Rust value references; advice changes no
        // contents.
        let r = unsafe { libc::madvise(at as *mut libc::c_void, len as usize, advice) };
        if r != 0 { Err(Errno::last()) } else { Ok(()) }
    }

    /// Reads `len` bytes of `fd` at `file_off` into `off` (fully, or EIO at its end).
    pub fn read_into(&self, off: u64, len: u64, fd: i32, file_off: u64) -> Result<(), Errno> {
        let at = self.inside(off, len)?;
        let mut done = 0u64;
        while done < len {
            // SAFETY: the destination lies in this area (mapped writable by `fresh` or
            // moved in by `take_from`), which no Rust value references.
            let n = unsafe {
                libc::pread(
                    fd,
                    (at + done) as *mut libc::c_void,
                    (len - done) as usize,
                    (file_off + done) as libc::off_t,
                )
            };
            match n {
                n if n > 0 => done += n as u64,
                0 => return Err(Errno::EIO),
                _ if Errno::last() == Errno::EINTR => {}
                _ => return Err(Errno::last()),
            }
        }
        Ok(())
    }
}
