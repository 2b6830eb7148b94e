//! The few raw system calls nix lacks. All `unsafe` lives here or in `engine/ptrace/`.

pub mod evfd;
pub mod kcmp;
pub mod shm;
pub mod sigqueue;

use nix::errno::Errno;

/// The kernel's `struct sigaction` for rt_sigaction(2) (not glibc's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[repr(C)]
pub struct KernelSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// rt_sigaction(2) with the kernel's struct, so handler and restorer addresses of a
/// restored image can be installed as they are.
pub fn rt_sigaction(
    sig: i32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> Result<(), Errno> {
    let new_ptr = new.map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    let old_ptr = old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction);
    // SAFETY: both pointers are null or point to live KernelSigaction values of the size
    // passed; the kernel reads/writes exactly that struct.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new_ptr, old_ptr, 8usize) };
    Errno::result(rc).map(drop)
}

/// Blocks (or sets) the calling thread's whole signal mask with the raw syscall.
pub fn set_sigmask(mask: u64) -> Result<(), Errno> {
    // SAFETY: the kernel reads 8 bytes from a valid u64 and writes nothing (old is null).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    Errno::result(rc).map(drop)
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// fork(2) through clone3(2), with the child's PID chosen (`Some(pid)`) or not. Returns
/// 0 in the child. The caller must be single-threaded: the child is a plain copy.
pub fn fork_with_pid(pid: Option<i32>, clone_parent: bool) -> Result<i32, Errno> {
    let tid: [i32; 1] = [pid.unwrap_or(0)];
    let args = CloneArgs {
        // with CLONE_PARENT the child is its creator's sibling; the kernel takes the
        // exit signal from the creator then
        flags: if clone_parent {
            libc::CLONE_PARENT as u64
        } else {
            0
        },
        exit_signal: if clone_parent {
            0
        } else {
            libc::SIGCHLD as u64
        },
        set_tid: if pid.is_some() {
            tid.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: if pid.is_some() { 1 } else { 0 },
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM duplicates the process like fork(); args and the
    // set_tid array outlive the call. The caller is single-threaded (documented).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(rc).map(|r| r as i32)
}

/// prlimit(2) on any process.
pub fn prlimit(pid: i32, resource: i32, new: Option<(u64, u64)>) -> Result<(u64, u64), Errno> {
    let new_lim = new.map(|(c, m)| libc::rlimit64 {
        rlim_cur: c,
        rlim_max: m,
    });
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new_ptr = new_lim
        .as_ref()
        .map_or(std::ptr::null(), |n| n as *const libc::rlimit64);
    // SAFETY: pointers are null or point to live rlimit64 values.
    let rc = unsafe {
        libc::prlimit64(
            pid,
            resource as libc::__rlimit_resource_t,
            new_ptr,
            &mut old,
        )
    };
    Errno::result(rc).map(|_| (old.rlim_cur, old.rlim_max))
}

/// get_robust_list(2) of any thread: (head, len).
pub fn get_robust_list(tid: i32) -> Result<(u64, u64), Errno> {
    let mut head: u64 = 0;
    let mut len: usize = 0;
    // SAFETY: the kernel writes one pointer and one size_t into live locals.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid,
            &mut head as *mut u64,
            &mut len as *mut usize,
        )
    };
    Errno::result(rc).map(|_| (head, len as u64))
}

/// Capability sets (inheritable, permitted, effective), 64 bits each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Caps {
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// capset(2) for the calling thread.
pub fn capset(caps: &Caps) -> Result<(), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: caps.effective as u32,
            permitted: caps.permitted as u32,
            inheritable: caps.inheritable as u32,
        },
        CapData {
            effective: (caps.effective >> 32) as u32,
            permitted: (caps.permitted >> 32) as u32,
            inheritable: (caps.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data words, as _LINUX_CAPABILITY_VERSION_3 requires.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// prctl(PR_SET_MM, PR_SET_MM_MAP) layout (`struct prctl_mm_map`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

impl PrctlMmMap {
    /// The struct as bytes, to be copied into a remote process.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(104);
        for x in [
            self.start_code,
            self.end_code,
            self.start_data,
            self.end_data,
            self.start_brk,
            self.brk,
            self.start_stack,
            self.arg_start,
            self.arg_end,
            self.env_start,
            self.env_end,
            self.auxv,
        ] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v.extend_from_slice(&self.auxv_size.to_ne_bytes());
        v.extend_from_slice(&self.exe_fd.to_ne_bytes());
        v
    }
}

/// Writes `data` at `addr` in the calling process (the restore child preparing its
/// scratch page). The range must be a writable mapping of the caller.
pub fn write_own_memory(addr: u64, data: &[u8]) {
    // SAFETY: the caller mapped [addr, addr+len) read-write itself just before.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) }
}

/// mmap(2) at a fixed address without replacing anything, in the calling process.
pub fn mmap_fixed_noreplace(addr: u64, len: u64, prot: i32) -> Result<u64, Errno> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the new anonymous
    // mapping is not yet referenced by any Rust value.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(p as u64)
    }
}

/// The calling thread's raw syscall, for the few the restore child makes with values that
/// libc wrappers would not pass through (personality, setresuid in a fixed order, ...).
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause() has no arguments and no memory effects.
        unsafe { libc::pause() };
    }
}

/// setpriority(PRIO_PROCESS, 0, nice) for the calling process.
pub fn setpriority_self(nice: i32) -> i32 {
    // SAFETY: plain integer arguments.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }
}

/// kcmp(KCMP_FILE): whether two descriptors of two processes are one open file description.
pub fn same_open_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> Result<bool, Errno> {
    // SAFETY: integer arguments only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1,
            pid2,
            0, /* KCMP_FILE */
            fd1 as u64,
            fd2 as u64,
        )
    };
    Errno::result(rc).map(|r| r == 0)
}

/// dup2(2) on raw numbers (the restore child places descriptors at exact numbers).
pub fn dup2(from: i32, to: i32) -> Result<(), Errno> {
    // SAFETY: integer arguments; dup2 replaces `to` atomically, which is the intent.
    Errno::result(unsafe { libc::dup2(from, to) }).map(drop)
}

/// Sets or clears FD_CLOEXEC on a raw descriptor.
pub fn set_cloexec(fd: i32, on: bool) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, if on { libc::FD_CLOEXEC } else { 0 }) })
        .map(drop)
}

/// close(2) on a raw number the caller knows it owns.
pub fn close(fd: i32) {
    // SAFETY: the caller owns the descriptor and never uses the number again.
    unsafe { libc::close(fd) };
}

/// A raw descriptor number the caller knows is open, as a borrowed fd for nix calls.
pub fn borrow_raw(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: callers pass descriptors they own and keep open for the duration of use
    // (the restore child's own, single-threaded).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Takes ownership of a raw descriptor number the caller owns.
pub fn own_fd(fd: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller owns `fd` and gives up the number.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// A duplicate of descriptor `fd` of process `pid` (pidfd_open + pidfd_getfd): the same
/// open file description, so pipe data can be looked at without the process.
pub fn steal_fd(pid: i32, fd: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    // SAFETY: integer arguments; a returned descriptor is new and ours.
    let pidfd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })? as i32;
    let pidfd = own_fd(pidfd);
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments; a returned descriptor is new and ours.
    let got =
        Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?
            as i32;
    Ok(own_fd(got))
}

/// tee(2): copies up to `len` bytes from pipe `from` to pipe `to` without consuming them.
pub fn tee(from: i32, to: i32, len: usize) -> Result<usize, Errno> {
    // SAFETY: integer arguments.
    Errno::result(unsafe { libc::tee(from, to, len, libc::SPLICE_F_NONBLOCK) }).map(|n| n as usize)
}

/// Bytes waiting in a pipe (FIONREAD).
pub fn pipe_bytes(fd: i32) -> Result<usize, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into a live local.
    Errno::result(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) })?;
    Ok(n as usize)
}

/// _exit(2): ends the calling process at once, without exit handlers or flushing.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Sets a signal to SIG_IGN (no handler code involved).
pub fn ignore_signal(sig: i32) -> Result<(), Errno> {
    let act = KernelSigaction {
        handler: libc::SIG_IGN as u64,
        ..Default::default()
    };
    rt_sigaction(sig, Some(&act), None)
}

/// Sets a signal back to SIG_DFL.
pub fn default_signal(sig: i32) -> Result<(), Errno> {
    rt_sigaction(sig, Some(&KernelSigaction::default()), None)
}

/// Holds off SIGINT, SIGTERM, SIGHUP and SIGQUIT while alive: a checkpoint or restart
/// interrupted half-way could leave its processes with injected registers. Whatever
/// arrived meanwhile is delivered when the guard is dropped, after cleanup.
pub struct DeferTermination {
    old: nix::sys::signal::SigSet,
}

impl DeferTermination {
    pub fn new() -> DeferTermination {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            set.add(s);
        }
        let mut old = SigSet::empty();
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old));
        DeferTermination { old }
    }
}

impl Default for DeferTermination {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DeferTermination {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&self.old),
            None,
        );
    }
}

/// Starts writeback of a file's dirty pages without waiting (sync_file_range WRITE).
pub fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments on a descriptor the caller holds open.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}
