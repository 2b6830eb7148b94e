//! One module per kind of object a process holds, each with its dump and its restore side
//! by side, and the records it writes.

/// Credentials: groups, uids, gids, capabilities (restored last, by injection).
pub mod cow_pages;
pub mod creds;
/// Files deleted while open: saved once each, holes kept, one copy at restart.
pub mod deleted_files;
/// eventfd, timerfd, signalfd, epoll and inotify descriptors.
pub mod events;
/// The check before release for descriptors: the kernel's view against the records.
pub mod fds_verify;
/// Named FIFOs: reopened by name, with their data in flight.
pub mod fifos;
/// Regular, deleted, directory and device descriptors with the FILE policies; the
/// descriptor table of a process.
pub mod files;
/// Incremental checkpoints: the parent chain, which pages are saved, where the others are.
pub mod incremental;
/// TCP and UDP sockets over IPv4 and IPv6: listening, bound, connected (TCP repair).
pub mod inet_sockets;
/// Lazy restart: the memory left to the filler, registered with userfaultfd.
pub mod lazy_pages;
/// File locks: flock, POSIX record locks, OFD locks.
pub mod locks;
/// Mapped files (program, libraries, data files): identity at checkpoint, `-u` copies.
pub mod mapped_files;
/// membarrier(2) registrations: asked by injection, registered again by the restore child.
pub mod membarrier;
/// The description memfd_create made, given back to a memfd's first read-write one.
pub mod memfd_own;
/// The address space: mappings, page data, the swap of a restore child's memory.
pub mod memory;
/// Pipes: classification, widowed ends, data in flight, refill at restart.
pub mod pipes;
/// System V semaphores and message queues: refused.
/// System V shared memory segments.
pub mod posix_mqueue;
/// POSIX shared memory and named semaphores (/dev/shm files), as memory objects.
pub mod posix_shm;
/// POSIX timers (`timer_create`).
pub mod posix_timers;
/// The process record: IDs, command line, limits, directories, umask, scheduling.
pub mod process;
/// The process tree: parents, process groups, sessions, zombies; who forks whom.
pub mod pstree;
/// Pseudo-terminals whose master and slaves are all in the checkpoint.
pub mod ptys;
/// Device nodes removed while open: made again with mknod and removed.
pub mod removed_devices;
/// Seccomp filters of every thread: dumped and restored with the credentials.
pub mod seccomp;
/// Open file descriptions shared between processes; the table of shared objects.
pub mod shared_fds;
/// Shared anonymous memory and memfds.
pub mod shmem;
/// Process-wide signal state: dispositions, shared pending signals, interval timers.
pub mod signals;
/// Socket descriptors: the family of each, and the module that dumps it.
pub mod sockets;
/// System V message queues: every message, by id.
pub mod sysv_msg;
/// System V semaphore sets and each process's undo adjustments.
pub mod sysv_sem;
/// System V shared memory segments.
pub mod sysv_shm;
/// Threads: registers, FPU state, signal mask, pending signals and the rest per thread.
/// Per-thread I/O priority, timer slack, machine-check kill policy, NUMA policy.
pub mod thread_tuning;
pub mod threads;
/// Dirty-page tracking (userfaultfd write-protect) for incremental and live checkpoints.
pub mod tracking;
/// The controlling terminal and `-r -j` job control.
pub mod tty;
/// UNIX domain socket pairs whose both ends are in the checkpoint.
pub mod unix_sockets;
/// The vDSO and vvar areas: moved where the image had them.
pub mod vdso;
