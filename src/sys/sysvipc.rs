//! System V semaphore sets and message queues for cpr itself: read a set's values and a
//! queue's messages (without receiving them) at checkpoint, recreate and fill them at
//! restart (engine/objects/sysv_sem.rs, sysv_msg.rs).

use nix::errno::Errno;

/// `MSG_COPY` for msgrcv(2): copy the message at an index, leave it queued (kernels with
/// `CONFIG_CHECKPOINT_RESTORE`). libc lacks it for glibc targets.
const MSG_COPY: i32 = 0o40000;
/// `KCMP_SYSVSEM` from `<linux/kcmp.h>`: compare two processes' semaphore undo lists.
const KCMP_SYSVSEM: libc::c_long = 6;

/// What IPC_STAT tells about a semaphore set or a message queue (the fields cpr uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcStat {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits (0o777).
    pub mode: u32,
    /// Semaphores in the set; for a queue, its message count.
    pub count: u64,
    /// A queue's byte limit (`msg_qbytes`); 0 for a set.
    pub qbytes: u64,
    /// A queue's bytes queued (`msg_cbytes`); 0 for a set.
    pub cbytes: u64,
}

/// semget(2).
pub fn semget(key: i32, nsems: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: semget takes only integers and touches no memory of ours.
    Errno::result(unsafe { libc::semget(key, nsems, flags) })
}

/// semctl(IPC_STAT).
pub fn sem_stat(semid: i32) -> Result<IpcStat, Errno> {
    // SAFETY: semid_ds is plain integers; all zeroes is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: the fourth argument (union semun) is the pointer to `ds`, which lives
    // across the call; the kernel writes one semid_ds there.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_STAT, &raw mut ds) };
    Errno::result(rc)?;
    Ok(IpcStat {
        key: ds.sem_perm.__key,
        uid: ds.sem_perm.uid,
        gid: ds.sem_perm.gid,
        cuid: ds.sem_perm.cuid,
        cgid: ds.sem_perm.cgid,
        mode: ds.sem_perm.mode as u32 & 0o777,
        count: ds.sem_nsems as u64,
        qbytes: 0,
        cbytes: 0,
    })
}

/// semctl(GETALL): every semaphore's value; `nsems` is the set's size.
pub fn sem_values(semid: i32, nsems: usize) -> Result<Vec<u16>, Errno> {
    let mut values = vec![0u16; nsems];
    // SAFETY: GETALL writes one unsigned short per semaphore of the set; `values` has
    // `nsems` of them and the caller gives the set's size (IPC_STAT); a set cannot grow.
    let rc = unsafe { libc::semctl(semid, 0, libc::GETALL, values.as_mut_ptr()) };
    Errno::result(rc)?;
    Ok(values)
}

/// semctl(SETALL): `values` must have one value per semaphore of the set.
pub fn set_sem_values(semid: i32, values: &[u16]) -> Result<(), Errno> {
    let nsems = sem_stat(semid)?.count as usize;
    if nsems != values.len() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: SETALL reads one unsigned short per semaphore of the set: `values` has
    // exactly that many (checked above; a set cannot grow).
    let rc = unsafe { libc::semctl(semid, 0, libc::SETALL, values.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// semctl(GETPID): the process that last changed semaphore `num`, 0 for none.
pub fn sem_last_pid(semid: i32, num: i32) -> Result<i32, Errno> {
    // SAFETY: GETPID reads and writes no memory (the fourth argument is ignored).
    Errno::result(unsafe { libc::semctl(semid, num, libc::GETPID, 0) })
}

/// Whether a process waits on a semaphore of the set (semctl GETNCNT or GETZCNT non-zero
/// for one of its `nsems` semaphores).
pub fn sem_has_waiters(semid: i32, nsems: usize) -> Result<bool, Errno> {
    for num in 0..nsems as i32 {
        for cmd in [libc::GETNCNT, libc::GETZCNT] {
            // SAFETY: GETNCNT and GETZCNT read and write no memory (the fourth argument is
            // ignored).
            if Errno::result(unsafe { libc::semctl(semid, num, cmd, 0) })? > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// semop(2) by cpr itself, without waiting: `ops` are (semaphore number, change, flags).
pub fn semop(semid: i32, ops: &[(u16, i16, i16)]) -> Result<(), Errno> {
    let mut bufs: Vec<libc::sembuf> = ops
        .iter()
        .map(|&(sem_num, sem_op, flg)| libc::sembuf {
            sem_num,
            sem_op,
            sem_flg: flg | libc::IPC_NOWAIT as i16,
        })
        .collect();
    // SAFETY: the kernel reads `bufs.len()` sembufs from `bufs`, which lives across the
    // call.
    let rc = unsafe { libc::semop(semid, bufs.as_mut_ptr(), bufs.len()) };
    Errno::result(rc).map(drop)
}

/// semctl(IPC_SET): owner and permission bits.
pub fn set_sem_owner(semid: i32, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    // SAFETY: as in `sem_stat`.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    ds.sem_perm.uid = uid;
    ds.sem_perm.gid = gid;
    ds.sem_perm.mode = (mode & 0o777) as _;
    // SAFETY: the kernel reads one semid_ds from `ds`, which lives across the call.
    let rc = unsafe { libc::semctl(semid, 0, libc::IPC_SET, &raw mut ds) };
    Errno::result(rc).map(drop)
}

/// semctl(IPC_RMID).
pub fn sem_remove(semid: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID reads and writes no memory.
    Errno::result(unsafe { libc::semctl(semid, 0, libc::IPC_RMID, 0) }).map(drop)
}

/// msgget(2).
pub fn msgget(key: i32, flags: i32) -> Result<i32, Errno> {
    // SAFETY: msgget takes only integers and touches no memory of ours.
    Errno::result(unsafe { libc::msgget(key, flags) })
}

/// msgctl(IPC_STAT).
pub fn msg_stat(msqid: i32) -> Result<IpcStat, Errno> {
    // SAFETY: msqid_ds is plain integers; all zeroes is a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one msqid_ds into `ds`, which lives across the call.
    let rc = unsafe { libc::msgctl(msqid, libc::IPC_STAT, &mut ds) };
    Errno::result(rc)?;
    Ok(IpcStat {
        key: ds.msg_perm.__key,
        uid: ds.msg_perm.uid,
        gid: ds.msg_perm.gid,
        cuid: ds.msg_perm.cuid,
        cgid: ds.msg_perm.cgid,
        mode: ds.msg_perm.mode as u32 & 0o777,
        count: ds.msg_qnum as u64,
        qbytes: ds.msg_qbytes as u64,
        cbytes: ds.__msg_cbytes as u64,
    })
}

/// msgctl(IPC_SET): owner, permission bits and byte limit (raising it above msgmnb
/// needs CAP_SYS_RESOURCE).
pub fn set_msg_owner(msqid: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> Result<(), Errno> {
    // SAFETY: as in `msg_stat`.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    ds.msg_perm.uid = uid;
    ds.msg_perm.gid = gid;
    ds.msg_perm.mode = (mode & 0o777) as _;
    ds.msg_qbytes = qbytes as _;
    // SAFETY: the kernel reads one msqid_ds from `ds`, which lives across the call.
    let rc = unsafe { libc::msgctl(msqid, libc::IPC_SET, &mut ds) };
    Errno::result(rc).map(drop)
}

/// msgctl(IPC_RMID).
pub fn msg_remove(msqid: i32) -> Result<(), Errno> {
    // SAFETY: IPC_RMID reads and writes no memory through the pointer (null).
    let rc = unsafe { libc::msgctl(msqid, libc::IPC_RMID, std::ptr::null_mut()) };
    Errno::result(rc).map(drop)
}

/// The message buffer of msgrcv/msgsnd: a `long` type, then up to `max` body bytes.
fn msg_buffer(max: usize) -> Vec<u64> {
    vec![0u64; 1 + max.div_ceil(8)]
}

/// Receives (`copy_index` None: the first message, taken off the queue) or copies
/// (`Some(i)`: the `i`th message, 0 first, left queued: MSG_COPY) one message of at most
/// `max` bytes, without waiting. ENOMSG: none (there). ENOSYS: MSG_COPY unsupported.
pub fn msg_receive(
    msqid: i32,
    copy_index: Option<u64>,
    max: usize,
) -> Result<(i64, Vec<u8>), Errno> {
    let mut buf = msg_buffer(max);
    let (typ, flags) = match copy_index {
        Some(i) => (i as libc::c_long, libc::IPC_NOWAIT | MSG_COPY),
        None => (0, libc::IPC_NOWAIT),
    };
    // SAFETY: `buf` holds a long and at least `max` bytes after it, as msgrcv writes at
    // most; it lives across the call.
    let n = unsafe { libc::msgrcv(msqid, buf.as_mut_ptr().cast(), max, typ, flags) };
    let n = Errno::result(n)? as usize;
    let mtype = buf[0] as i64;
    let body: Vec<u8> = buf[1..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(n)
        .collect();
    Ok((mtype, body))
}

/// msgsnd(2) without waiting (EAGAIN when the queue is full).
pub fn msg_send(msqid: i32, mtype: i64, body: &[u8]) -> Result<(), Errno> {
    let mut buf = msg_buffer(body.len());
    buf[0] = mtype as u64;
    for (i, chunk) in body.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        buf[1 + i] = u64::from_ne_bytes(w);
    }
    // SAFETY: `buf` holds the long type and `body.len()` bytes after it; msgsnd only
    // reads them.
    let rc = unsafe { libc::msgsnd(msqid, buf.as_ptr().cast(), body.len(), libc::IPC_NOWAIT) };
    Errno::result(rc).map(drop)
}

/// Of `pids`, those with a semaphore undo list (made by a semop with SEM_UNDO, or
/// given to every thread of a process made with CLONE_SYSVSEM, as pthreads are): compared
/// by kcmp(KCMP_SYSVSEM) with a child of cpr made by fork, which has none. ENOSYS: no
/// CONFIG_KCMP.
pub fn with_undo_lists(pids: &[i32]) -> Result<Vec<i32>, Errno> {
    // SAFETY: the child only calls pause(2) until it is killed: async-signal-safe, so
    // sound even if cpr had other threads (whose locks the child never takes).
    let child = Errno::result(unsafe { libc::fork() })?;
    if child == 0 {
        loop {
            // SAFETY: pause() has no arguments and no memory effects.
            unsafe { libc::pause() };
        }
    }
    let mut out = Vec::new();
    let mut err = None;
    for &pid in pids {
        // SAFETY: kcmp takes only integers and reads or writes no memory of ours.
        let rc = unsafe { libc::syscall(libc::SYS_kcmp, pid, child, KCMP_SYSVSEM, 0, 0) };
        match Errno::result(rc) {
            Ok(0) => {}
            Ok(_) => out.push(pid),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let child = nix::unistd::Pid::from_raw(child);
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Whether processes (or threads) `a` and `b` share one semaphore undo list
/// (kcmp KCMP_SYSVSEM; two without any list compare equal too).
pub fn same_undo_list(a: i32, b: i32) -> Result<bool, Errno> {
    // SAFETY: kcmp takes only integers and reads or writes no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_kcmp, a, b, KCMP_SYSVSEM, 0, 0) };
    Errno::result(rc).map(|r| r == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_copied_in_order_without_receiving() {
        let id = msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600).unwrap();
        let result = std::panic::catch_unwind(|| {
            msg_send(id, 7, b"first").unwrap();
            msg_send(id, 3, b"").unwrap();
            msg_send(id, 9, &[0xab; 21]).unwrap();
            assert_eq!(
                msg_receive(id, Some(0), 64).unwrap(),
                (7, b"first".to_vec())
            );
            assert_eq!(msg_receive(id, Some(1), 64).unwrap(), (3, vec![]));
            assert_eq!(msg_receive(id, Some(2), 64).unwrap(), (9, vec![0xab; 21]));
            assert_eq!(msg_receive(id, Some(3), 64), Err(Errno::ENOMSG));
            assert_eq!(msg_stat(id).unwrap().count, 3);
            assert_eq!(msg_receive(id, None, 64).unwrap().0, 7);
            assert_eq!(msg_stat(id).unwrap().count, 2);
        });
        msg_remove(id).unwrap();
        result.unwrap();
    }

    #[test]
    fn a_set_gives_and_takes_its_values() {
        let id = semget(libc::IPC_PRIVATE, 3, libc::IPC_CREAT | 0o600).unwrap();
        let result = std::panic::catch_unwind(|| {
            assert_eq!(sem_stat(id).unwrap().count, 3);
            set_sem_values(id, &[1, 0, 32767]).unwrap();
            assert_eq!(sem_values(id, 3).unwrap(), vec![1, 0, 32767]);
            assert_eq!(sem_last_pid(id, 2).unwrap(), std::process::id() as i32);
            assert_eq!(set_sem_values(id, &[1]), Err(Errno::EINVAL));
        });
        sem_remove(id).unwrap();
        result.unwrap();
    }
}
