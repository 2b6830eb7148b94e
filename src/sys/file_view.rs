//! A read-only view of a file, mapped in cpr, that cpr never reads itself: the kernel
//! copies from it into another process (process_vm_writev). That copy is the only one
//! (page cache to the target's memory), and a file truncated meanwhile makes the call
//! fail with EFAULT instead of raising SIGBUS in cpr, since only the kernel touches the
//! mapping.

use std::os::fd::AsRawFd;

use nix::errno::Errno;

/// `len` bytes of a file from offset `off`, mapped read-only and shared; unmapped when
/// dropped. No Rust reference to its bytes is ever made.
#[derive(Debug)]
pub struct FileView {
    addr: usize,
    len: usize,
}

impl FileView {
    /// Maps `len` bytes (not 0) of `file` from `off` (page aligned).
    pub fn map(file: &std::fs::File, off: u64, len: usize) -> Result<FileView, Errno> {
        if len == 0 || !off.is_multiple_of(4096) {
            return Err(Errno::EINVAL);
        }
        // SAFETY: a new read-only shared mapping chosen by the kernel (no address given),
        // so it replaces nothing; no Rust value refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(FileView {
            addr: p as usize,
            len,
        })
    }

    /// Where the view is in cpr, for calls in which the kernel alone reads it
    /// (UFFDIO_COPY); and its length.
    pub fn addr(&self) -> (usize, usize) {
        (self.addr, self.len)
    }

    /// Copies `len` bytes from offset `from` of the view to address `to` in process
    /// `pid` (process_vm_writev); returns the bytes copied (short when the target's
    /// memory ends or the file shrank).
    pub fn write_to_process(
        &self,
        pid: i32,
        from: usize,
        to: u64,
        len: usize,
    ) -> Result<usize, Errno> {
        if from.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Errno::EINVAL);
        }
        let local = libc::iovec {
            iov_base: (self.addr + from) as *mut libc::c_void,
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: to as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: the local range lies inside this live mapping (checked above), read only
        // by the kernel, which reports a fault there as EFAULT; the remote range is in
        // another process (the kernel checks it); both iovecs outlive the call.
        let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            Err(Errno::last())
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for FileView {
    fn drop(&mut self) {
        // SAFETY: the mapping this value made, referenced by nothing else.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}
