//! A descriptor on a new shared anonymous memory object: what MAP_SHARED | MAP_ANONYMOUS
//! makes, so that a restored mapping of it shows "/dev/zero (deleted)" as the original
//! did (a memfd would show its own name).

use std::os::fd::OwnedFd;

/// A new shared anonymous object of `size` bytes (> 0), opened read-write through
/// /proc/self/map_files (which needs CAP_SYS_ADMIN): map, open, unmap.
pub fn open(size: u64) -> std::io::Result<OwnedFd> {
    let len = std::num::NonZeroUsize::new(size as usize)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let prot = nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE;
    let shared = nix::sys::mman::MapFlags::MAP_SHARED;
    // SAFETY: a new mapping at an address the kernel chooses: it replaces nothing.
    let addr = unsafe { nix::sys::mman::mmap_anonymous(None, len, prot, shared) }?;
    let start = addr.as_ptr() as usize;
    let end = start + len.get().next_multiple_of(4096);
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/self/map_files/{start:x}-{end:x}"));
    // SAFETY: the mapping was made just above, is private to this function and no
    // reference into it exists.
    let _ = unsafe { nix::sys::mman::munmap(addr, len.get()) };
    let file = opened?;
    // close-on-exec, like every descriptor cpr holds (open sets it by default in Rust)
    Ok(OwnedFd::from(file))
}
