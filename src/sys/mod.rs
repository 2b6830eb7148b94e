//! The few raw system calls nix lacks. All `unsafe` lives here or in `engine/ptrace/`.

pub mod dirty;
pub mod evfd;
mod fd;
pub mod file_view;
pub mod fown;
pub mod fsid;
pub mod inet_diag;
pub mod kcmp;
mod kernel_types;
pub mod membarrier;
pub mod mqueue;
pub mod prctl;
pub mod premap;
pub mod procmap;
pub mod pty;
pub mod sched;
pub mod shared_anon;
pub mod shm;
pub mod sigqueue;
pub mod sock_diag;
pub mod sysvipc;
pub mod tcp_repair;
pub mod uffd_fill;

pub use fd::{
    CloseOnce, close_range, dup_above, dup_at, pidfd_getfd, pipe_bytes, set_cloexec,
    set_record_lock, steal_fd, try_flock,
};
pub use kcmp::same_open_file;
pub use kernel_types::{Caps, CapsetArgs, CloneArgs, KernelStruct, PrctlMmMap};

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

/// rt_sigaction(2) with the kernel's struct.
///
/// # Safety
/// A handler (or restorer) address in `new` must be code of this process that is sound to
/// run as a signal handler whenever the signal may be delivered. SIG_DFL and SIG_IGN are
/// always sound (`default_signal`, `ignore_signal`); handlers of a restored image are
/// installed by `install_image_actions_and_wait`, which never returns to them.
pub unsafe fn rt_sigaction(
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

/// The end of a restore child's own work: installs the image's signal dispositions, whose
/// handler addresses are code of the image and not of this process, writes `ready` (cpr's
/// "ready" message) to `status`, and waits for the tracer, which replaces this process's
/// memory with the image's before it lets any signal through. It never returns once a
/// handler is in place, so no code of this process can run with one. An error installing
/// a disposition is returned, naming the signal, with every one installed so far put back
/// to SIG_DFL.
pub fn install_image_actions_and_wait(
    actions: &[(i32, KernelSigaction)],
    mut status: std::fs::File,
    ready: &[u8],
) -> Result<std::convert::Infallible, (i32, Errno)> {
    use std::io::Write;
    // no other thread could unblock a signal, and none is let through from here on
    // (SIGKILL and SIGSTOP cannot be caught; a fault while blocked kills the process)
    match single_threaded() {
        Ok(true) => {}
        Ok(false) => return Err((0, Errno::EBUSY)),
        Err(e) => return Err((0, e)),
    }
    set_sigmask(!0).map_err(|e| (0, e))?;
    for (n, (sig, act)) in actions.iter().enumerate() {
        // SAFETY: every signal is blocked in the only thread and stays blocked until the
        // tracer has put the image (whose code the handler is) in place; on failure the
        // handlers installed so far are reset to SIG_DFL before this returns.
        if let Err(e) = unsafe { rt_sigaction(*sig, Some(act), None) } {
            for (earlier, _) in &actions[..n] {
                let _ = default_signal(*earlier);
            }
            return Err((*sig, e));
        }
    }
    let _ = status.write_all(ready);
    drop(status);
    pause_forever()
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

/// fork(2) through clone3(2), with the child's PID chosen (`Some(pid)`) or not. Returns
/// 0 in the child.
///
/// A safe function although a fork is only sound in a single-threaded process (the child
/// is a copy of the calling thread alone; what other threads held or were changing stays
/// so forever, which is why nix's `fork` is `unsafe`): it checks that precondition itself
/// and fails with EBUSY when the caller's process has other threads. Only the calling
/// thread can create one, so the answer cannot change before the fork.
pub fn fork_with_pid(pid: Option<i32>, clone_parent: bool) -> Result<i32, Errno> {
    if !single_threaded()? {
        return Err(Errno::EBUSY);
    }
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
    // set_tid array outlive the call. The caller is the process's only thread (checked).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    Errno::result(rc).map(|r| r as i32)
}

/// Whether the calling process has one thread (the caller), from /proc/self/task.
fn single_threaded() -> Result<bool, Errno> {
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    let mut tasks = std::fs::read_dir("/proc/self/task").map_err(io)?;
    let first = tasks.next().transpose().map_err(io)?;
    let second = tasks.next().transpose().map_err(io)?;
    Ok(first.is_some() && second.is_none())
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

/// capset(2) for the calling thread.
pub fn capset(caps: &Caps) -> Result<(), Errno> {
    let mut args = CapsetArgs::new(0, caps);
    // SAFETY: header and two data words, as _LINUX_CAPABILITY_VERSION_3 requires, in a
    // live local.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut args.header, args.data.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// capget(2) for the calling thread: its inheritable, permitted and effective sets (a
/// system call, where /proc/thread-self/status would have the kernel format, and cpr
/// parse, the whole status text).
pub fn capget() -> Result<Caps, Errno> {
    let mut args = CapsetArgs::new(0, &Caps::default());
    // SAFETY: header and two data words, as _LINUX_CAPABILITY_VERSION_3 requires, in a
    // live local; the kernel writes only the data words.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &raw mut args.header,
            args.data.as_mut_ptr(),
        )
    };
    Errno::result(rc)?;
    let both = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
    let [lo, hi] = args.data;
    Ok(Caps {
        inheritable: both(lo.inheritable, hi.inheritable),
        permitted: both(lo.permitted, hi.permitted),
        effective: both(lo.effective, hi.effective),
    })
}

/// An anonymous mapping the calling process has just made where nothing was: cpr's to
/// fill, and referenced by no Rust value. cpr never unmaps it (the restore child leaves
/// it to the image being built; the tracer removes it), and nothing safe can.
#[derive(Debug)]
pub struct FreshMapping {
    addr: u64,
    len: u64,
    writable: bool,
}

impl FreshMapping {
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Copies `data` to offset `off`: EINVAL outside the mapping, EACCES when it is not
    /// writable.
    pub fn write_at(&mut self, off: u64, data: &[u8]) -> Result<(), Errno> {
        if !self.writable {
            return Err(Errno::EACCES);
        }
        if off
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the range lies inside this writable mapping (checked above), which stays
        // mapped and which no Rust value refers to; `&mut self` excludes other writers;
        // `data` is distinct memory of that length.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), (self.addr + off) as *mut u8, data.len())
        };
        Ok(())
    }
}

/// mmap(2) at a fixed address without replacing anything, in the calling process.
pub fn mmap_fixed_noreplace(addr: u64, len: u64, prot: i32) -> Result<FreshMapping, Errno> {
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
        Ok(FreshMapping {
            addr: p as u64,
            len,
            writable: prot & libc::PROT_WRITE != 0,
        })
    }
}

/// Sleeps until the process ends (the restore child, once the tracer has taken over).
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
    // SAFETY: SIG_IGN runs no code.
    unsafe { rt_sigaction(sig, Some(&act), None) }
}

/// Sets a signal back to SIG_DFL.
pub fn default_signal(sig: i32) -> Result<(), Errno> {
    // SAFETY: SIG_DFL runs no code of this process.
    unsafe { rt_sigaction(sig, Some(&KernelSigaction::default()), None) }
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

/// pidfd_open(2): a descriptor that always names process `pid` as it is now, never a
/// later process given the same PID.
pub fn pidfd_open(pid: i32) -> Result<std::os::fd::OwnedFd, Errno> {
    // SAFETY: no pointers; on success the kernel returns a new descriptor we own.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(rc)? as i32;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// process_mrelease(2): frees the memory of the process of `pidfd`, which is being
/// killed, on the caller's CPU while the process itself tears down the rest (EINVAL when it
/// is not dying or shares its memory with a process that is not).
pub fn process_mrelease(pidfd: std::os::fd::BorrowedFd<'_>) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments only; the fd is borrowed live.
    let rc = unsafe { libc::syscall(libc::SYS_process_mrelease, pidfd.as_raw_fd(), 0) };
    Errno::result(rc).map(drop)
}

/// Whether the process of `pidfd` still runs (or is a zombie not yet reaped):
/// pidfd_send_signal(2) with signal 0.
pub fn pidfd_alive(pidfd: std::os::fd::BorrowedFd<'_>) -> bool {
    // EPERM: there, but not ours to signal
    matches!(pidfd_signal(pidfd, 0), Ok(()) | Err(Errno::EPERM))
}

/// pidfd_send_signal(2) of `sig` (0: none) to the process of `pidfd`.
pub fn pidfd_signal(pidfd: std::os::fd::BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments; the info pointer is null; the fd is borrowed live.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}
