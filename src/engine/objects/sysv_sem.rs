//! System V semaphore sets. A set is a statefile-level object, saved once in
//! `shared/sem.json` with its semid, key, owner, mode, every semaphore's value and the
//! undo adjustments (SEM_UNDO, semadj) the processes of the checkpoint hold on it.
//!
//! Which sets: a set is neither mapped nor a descriptor, so which process uses one is
//! not known to the kernel. cpr saves the sets in which a process of the checkpoint was
//! the last to change a semaphore (semop, SETVAL or SETALL: semctl GETPID of each
//! semaphore), and those on which one holds an undo adjustment. Restart recreates each
//! with its original semid before any process exists, or takes back the very set when
//! it is still there (same semid and key).
//!
//! Undo adjustments: Linux has no call that reads them. cpr measures them (`measure_undo`)
//! in each frozen process that has an undo list: an injected `unshare(CLONE_SYSVSEM)`
//! makes the kernel apply the list and drop it (as at exit); the change of each value is
//! the process's adjustment; an injected `semop(-adj, SEM_UNDO)` then puts the value back
//! and gives the process a list with the same adjustments. Before, the process raises
//! low values of the sets it uses by a margin (semop without SEM_UNDO, lowered after),
//! so that the kernel's clamp to [0, 32767] cannot hide part of an adjustment. Refused:
//! a waiter on any set (a process outside the checkpoint blocked in semop, which the
//! adjustment could complete: frozen processes have left their semop), a list shared by
//! several processes (CLONE_SYSVSEM) or by the threads of one (pthreads share one) while
//! a set is saved, and an adjustment the clamp cut (a value ending at a limit, or a
//! semaphore whose last-operation PID became the process while its value stayed: the
//! kernel sets it for each adjustment it applies) in a set no margin was raised on.
//! What changes for the original: sem_otime of the sets it touched, and sempid (semctl
//! GETPID) of their semaphores, now the process itself. At restart, each restored
//! process makes its adjustments again with semop(SEM_UNDO) (`restore_undo`), from
//! values set so that they end where they were.

use std::collections::{BTreeMap, BTreeSet};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::sysv_shm::{create_with_id, key_text};
use crate::engine::ptrace::{self, Injector, RemoteAddr};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::sysvipc::SemInfo;
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::sysvipc as sys;

pub const INDEX: &str = crate::statefile::layout::SEM_INDEX;
const NEXT_ID: &str = "/proc/sys/kernel/sem_next_id";
/// The kernel's limits: semaphores per set (SEMMSL) and a semaphore's value (SEMVMX).
const MAX_NSEMS: usize = 32000;
const MAX_VALUE: u16 = 32767;

/// A set as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRecord {
    pub semid: i32,
    /// 0 is IPC_PRIVATE.
    pub key: i32,
    /// Permission bits (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The creator: shown, not restorable (the kernel sets it).
    pub cuid: u32,
    pub cgid: u32,
    /// Every semaphore's value, semaphore 0 first.
    pub values: Vec<u16>,
    /// The undo adjustments processes of the checkpoint hold on the set.
    #[serde(default)]
    pub undo: Vec<UndoRecord>,
}

/// One process's undo adjustments on a set: each semaphore it has one on (number, what
/// the kernel adds to the value when the process exits), by number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    /// The process's PID at checkpoint.
    pub pid: i32,
    pub adj: Vec<(u16, i16)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemIndex {
    pub sets: Vec<SetRecord>,
}

/// Every set of this IPC namespace (/proc/sysvipc/sem).
pub fn read_table() -> Result<Vec<SemInfo>> {
    crate::proc::sysvipc::read_sem()
}

/// Whether a process of `pids` last changed one of the set's semaphores.
fn used_by(set: &SemInfo, pids: &[i32]) -> Result<bool> {
    for num in 0..set.nsems.min(MAX_NSEMS as u64) as i32 {
        match sys::sem_last_pid(set.semid, num) {
            Ok(pid) if pids.contains(&pid) => return Ok(true),
            Ok(_) => {}
            // removed meanwhile; or not readable by the caller (an ordinary user's
            // checkpoint): not theirs to save
            Err(Errno::EINVAL | Errno::EIDRM | Errno::EACCES) => return Ok(false),
            Err(e) => {
                return Err(Error::errno(
                    format!("SysV semaphore semid {}", set.semid),
                    e,
                ));
            }
        }
    }
    Ok(false)
}

/// The checkpoint's processes with an undo list, split into those with one thread and
/// those with several (which share it: pthreads make threads with CLONE_SYSVSEM).
fn with_undo_lists(pids: &[i32]) -> Result<(Vec<i32>, Vec<i32>)> {
    let with = sys::with_undo_lists(pids).map_err(|e| {
        Error::errno("SysV semaphores", e).detail("looking for undo lists (kcmp KCMP_SYSVSEM)")
    })?;
    let mut single = Vec::new();
    let mut threaded = Vec::new();
    for pid in with {
        if crate::proc::ProcDir::open(pid)?.tids()?.len() > 1 {
            threaded.push(pid);
        } else {
            single.push(pid);
        }
    }
    Ok((single, threaded))
}

fn refuse_threaded(pid: i32) -> Error {
    Error::with_detail(
        format!("process {pid}"),
        Kind::CheckpointError,
        "its threads share a SysV semaphore undo list (SEM_UNDO): its adjustments cannot be saved",
    )
}

/// A list shared by two processes (CLONE_SYSVSEM) is applied only when the last one
/// drops it: it cannot be measured, nor given back to both.
fn refuse_shared_lists(single: &[i32]) -> Result<()> {
    let others: Vec<i32> = std::fs::read_dir("/proc")
        .map_err(|e| Error::io("/proc", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for &pid in single {
        for &other in &others {
            // an error: gone, or not ours to compare (then not sharing with ours)
            if other != pid && sys::same_undo_list(pid, other).unwrap_or(false) {
                return Err(Error::with_detail(
                    format!("processes {pid} and {other}"),
                    Kind::CheckpointError,
                    "they share one SysV semaphore undo list (CLONE_SYSVSEM): its adjustments cannot be saved",
                ));
            }
        }
    }
    Ok(())
}

/// What `dump_sets` would refuse for processes `pids` (running or frozen): undo lists
/// shared between processes, or by the threads of one while a set is saved. (Waiters
/// outside the checkpoint come and go: only the checkpoint itself can tell.) For
/// `cpr -c --dry-run`.
pub fn refusals(pids: &[i32]) -> Result<()> {
    let (single, threaded) = with_undo_lists(pids)?;
    refuse_shared_lists(&single)?;
    if let Some(&pid) = threaded.first() {
        for set in read_table()? {
            if used_by(&set, pids)? {
                return Err(refuse_threaded(pid));
            }
        }
    }
    Ok(())
}

/// Saves every set the (frozen) processes use, once each, with their undo adjustments.
pub fn dump_sets(pids: &[i32], writer: &mut StatefileWriter) -> Result<()> {
    let table = read_table()?;
    let mut used = BTreeSet::new();
    for set in &table {
        if used_by(set, pids)? {
            used.insert(set.semid);
        }
    }
    let (single, threaded) = with_undo_lists(pids)?;
    if let (Some(&pid), false) = (threaded.first(), used.is_empty()) {
        return Err(refuse_threaded(pid));
    }
    let mut undo = measure_undo(&single, &table, &used)?;
    if let (Some(&pid), false) = (threaded.first(), undo.is_empty()) {
        return Err(refuse_threaded(pid));
    }
    used.extend(undo.keys());
    let mut index = SemIndex::default();
    for semid in used {
        let who = format!("SysV semaphore semid {semid}");
        let st = sys::sem_stat(semid).ctx(&who)?;
        let values = sys::sem_values(semid, st.count as usize).ctx(&who)?;
        index.sets.push(SetRecord {
            semid,
            key: st.key,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            cuid: st.cuid,
            cgid: st.cgid,
            values,
            undo: undo.remove(&semid).unwrap_or_default(),
        });
    }
    if index.sets.is_empty() {
        return Ok(());
    }
    writer.write_json(INDEX, &index)
}

/// Semaphore values of every set cpr can read, by semid.
type Snapshot = BTreeMap<i32, Vec<u16>>;
/// Per set, (semaphore number, change) of each semaphore that changed.
type Changes = BTreeMap<i32, Vec<(u16, i16)>>;

fn snapshot(table: &[SemInfo]) -> Result<Snapshot> {
    let mut out = BTreeMap::new();
    for set in table {
        match sys::sem_values(set.semid, set.nsems.min(MAX_NSEMS as u64) as usize) {
            Ok(values) => {
                out.insert(set.semid, values);
            }
            Err(Errno::EINVAL | Errno::EIDRM | Errno::EACCES) => {}
            Err(e) => {
                return Err(Error::errno(
                    format!("SysV semaphore semid {}", set.semid),
                    e,
                ));
            }
        }
    }
    Ok(out)
}

/// Values below this are raised to it while an adjustment is measured: a negative
/// adjustment down to -MARGIN is then measured exactly.
const MARGIN: u16 = 16384;

/// The undo adjustments of processes `single` (frozen, one thread each, each with an
/// undo list of its own), by semid.
fn measure_undo(
    single: &[i32],
    table: &[SemInfo],
    used: &BTreeSet<i32>,
) -> Result<BTreeMap<i32, Vec<UndoRecord>>> {
    let mut out: BTreeMap<i32, Vec<UndoRecord>> = BTreeMap::new();
    if single.is_empty() {
        return Ok(out);
    }
    refuse_shared_lists(single)?;
    let before = snapshot(table)?;
    for (&semid, values) in &before {
        if sys::sem_has_waiters(semid, values.len()).unwrap_or(false) {
            return Err(Error::with_detail(
                format!("SysV semaphore semid {semid}"),
                Kind::CheckpointError,
                "a process outside the checkpoint waits on it: undo adjustments cannot be measured while it waits",
            ));
        }
    }
    // the margin, on the sets the processes use (where the process itself is sempid)
    let lifts: BTreeMap<i32, Vec<(u16, i16)>> = before
        .iter()
        .filter(|(semid, _)| used.contains(semid))
        .map(|(&semid, values)| {
            let ops = values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v < MARGIN)
                .map(|(num, v)| (num as u16, (MARGIN - v) as i16))
                .collect();
            (semid, ops)
        })
        .collect();
    for &pid in single {
        let adjs = with_injector(pid, |inj, page| {
            measure_one(inj, page, table, &before, &lifts)
        })
        .map_err(|e| e.context(format!("process {pid}")))?;
        for (semid, adj) in adjs {
            out.entry(semid).or_default().push(UndoRecord { pid, adj });
        }
    }
    Ok(out)
}

/// Runs `f` with an injector into frozen single-threaded process `pid` and a page of its
/// memory mapped for the purpose (removed after).
pub(super) fn with_injector<T>(
    pid: i32,
    f: impl FnOnce(&Injector, RemoteAddr) -> Result<T>,
) -> Result<T> {
    let gate = ptrace::checkpoint_gate(pid)?;
    let result = (|| -> Result<T> {
        let resume = super::threads::resume_regs(&ptrace::get_regs(pid)?);
        let inj = Injector::transient(pid, gate, &resume)?;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        let page = inj.check("mmap", libc::SYS_mmap, [0, PAGE, rw, flags, u64::MAX, 0])?;
        let out = f(&inj, RemoteAddr::from(page));
        let unmapped = inj.check("munmap", libc::SYS_munmap, [page, PAGE, 0, 0, 0, 0]);
        let out = out?;
        unmapped?;
        Ok(out)
    })();
    let removed = ptrace::remove_vdso_trampoline(pid, gate);
    let out = result?;
    removed?;
    Ok(out)
}

const PAGE: u64 = 4096;
/// Operations per semop call (the kernel's SEMOPM is 500 by default, at least 32).
const OPS_PER_CALL: usize = 32;

/// semop(semid, ops) run by the process (without waiting), in calls of OPS_PER_CALL;
/// `ops` are (number, change, flags).
fn remote_semop(
    inj: &Injector,
    page: RemoteAddr,
    semid: i32,
    ops: &[(u16, i16, i16)],
) -> Result<()> {
    for chunk in ops.chunks(OPS_PER_CALL) {
        let bytes = sembufs(chunk);
        ptrace::write_mem(inj.tid, page, &bytes)?;
        inj.check(
            &format!("semop on SysV semaphore semid {semid}"),
            libc::SYS_semop,
            [semid as u64, page.as_u64(), chunk.len() as u64, 0, 0, 0],
        )?;
    }
    Ok(())
}

/// `struct sembuf` array: number, change, flags (IPC_NOWAIT added), 16 bits each.
fn sembufs(ops: &[(u16, i16, i16)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ops.len() * 6);
    for &(num, change, flags) in ops {
        out.extend_from_slice(&num.to_ne_bytes());
        out.extend_from_slice(&change.to_ne_bytes());
        out.extend_from_slice(&(flags | libc::IPC_NOWAIT as i16).to_ne_bytes());
    }
    out
}

/// In one process: the margin raised, its undo list applied and dropped by the kernel
/// (unshare CLONE_SYSVSEM), the change of each value read, the same adjustments taken
/// again (semop SEM_UNDO), the margin lowered; every value checked to be as before.
fn measure_one(
    inj: &Injector,
    page: RemoteAddr,
    table: &[SemInfo],
    before: &Snapshot,
    lifts: &BTreeMap<i32, Vec<(u16, i16)>>,
) -> Result<BTreeMap<i32, Vec<(u16, i16)>>> {
    let mut lifted = before.clone();
    for (&semid, ops) in lifts {
        let plain: Vec<_> = ops.iter().map(|&(n, c)| (n, c, 0)).collect();
        remote_semop(inj, page, semid, &plain)?;
        for &(n, c) in ops {
            lifted.get_mut(&semid).expect("lifted set")[n as usize] += c as u16;
        }
    }
    let pids_before = sempids(&lifted)?;
    let unshared = inj.check(
        "unshare(CLONE_SYSVSEM)",
        libc::SYS_unshare,
        [libc::CLONE_SYSVSEM as u64, 0, 0, 0, 0, 0],
    );
    let after = snapshot(table)?;
    let pids_after = sempids(&lifted)?;
    unshared?;
    let (adjs, clamped) = differences(&lifted, &after);
    // the kernel makes the process the last to change each semaphore it adjusts: one
    // that became so with its value unchanged had its adjustment cut to nothing
    let clamped =
        clamped.or_else(|| hidden_change(inj.tid, &lifted, &after, &pids_before, &pids_after));
    let mut result = Ok(());
    for (&semid, adj) in &adjs {
        let ops: Vec<_> = adj
            .iter()
            .map(|&(n, a)| (n, -a, libc::SEM_UNDO as i16))
            .collect();
        result = result.and(remote_semop(inj, page, semid, &ops));
    }
    for (&semid, ops) in lifts {
        let plain: Vec<_> = ops.iter().map(|&(n, c)| (n, -c, 0)).collect();
        result = result.and(remote_semop(inj, page, semid, &plain));
    }
    result?;
    if let Some(semid) = clamped {
        return Err(Error::with_detail(
            format!("SysV semaphore semid {semid}"),
            Kind::CheckpointError,
            "an undo adjustment reached a value's limit (0 or 32767): it cannot be measured exactly",
        ));
    }
    let now = snapshot(table)?;
    for (semid, values) in before {
        if now.get(semid).is_some_and(|v| v != values) {
            return Err(Error::with_detail(
                format!("SysV semaphore semid {semid}"),
                Kind::CheckpointError,
                "its values changed while undo adjustments were measured",
            ));
        }
    }
    Ok(adjs)
}

/// The last-changing PID (semctl GETPID) of each semaphore of the sets of `values`.
fn sempids(values: &Snapshot) -> Result<BTreeMap<i32, Vec<i32>>> {
    let mut out = BTreeMap::new();
    for (&semid, v) in values {
        let pids: std::result::Result<Vec<i32>, Errno> = (0..v.len() as i32)
            .map(|n| sys::sem_last_pid(semid, n))
            .collect();
        match pids {
            Ok(p) => {
                out.insert(semid, p);
            }
            Err(Errno::EINVAL | Errno::EIDRM | Errno::EACCES) => {}
            Err(e) => return Err(Error::errno(format!("SysV semaphore semid {semid}"), e)),
        }
    }
    Ok(out)
}

/// A set with a semaphore that process `pid` became the last to change while its value
/// stayed the same: an adjustment the kernel's clamp cut to nothing.
fn hidden_change(
    pid: i32,
    lifted: &Snapshot,
    after: &Snapshot,
    pids_before: &BTreeMap<i32, Vec<i32>>,
    pids_after: &BTreeMap<i32, Vec<i32>>,
) -> Option<i32> {
    lifted.iter().find_map(|(&semid, old)| {
        let (new, pb, pa) = (
            after.get(&semid)?,
            pids_before.get(&semid)?,
            pids_after.get(&semid)?,
        );
        let hidden = (0..old.len()).any(|i| {
            new.get(i) == old.get(i) && pb.get(i) != Some(&pid) && pa.get(i) == Some(&pid)
        });
        hidden.then_some(semid)
    })
}

/// Per set, the non-zero changes from `lifted` to `after` (numbers and changes); and a
/// set where a change ended at 0 or 32767 (the kernel's clamp may have cut it).
fn differences(lifted: &Snapshot, after: &Snapshot) -> (Changes, Option<i32>) {
    let mut out = BTreeMap::new();
    let mut clamped = None;
    for (&semid, old) in lifted {
        let Some(new) = after.get(&semid).filter(|n| n.len() == old.len()) else {
            continue;
        };
        let adj: Vec<(u16, i16)> = old
            .iter()
            .zip(new)
            .enumerate()
            .filter(|(_, (o, n))| o != n)
            .map(|(num, (&o, &n))| {
                if n == 0 || n == MAX_VALUE {
                    clamped = Some(semid);
                }
                (num as u16, (i32::from(n) - i32::from(o)) as i16)
            })
            .collect();
        if !adj.is_empty() {
            out.insert(semid, adj);
        }
    }
    (out, clamped)
}

/// Sets (or queues) recreated by a restart. Until `finish`, dropping removes them (a
/// failed restart leaves none behind).
#[derive(Debug)]
pub struct Created {
    ids: Vec<i32>,
    remove: fn(i32) -> std::result::Result<(), Errno>,
}

impl Created {
    pub(super) fn new(remove: fn(i32) -> std::result::Result<(), Errno>) -> Created {
        Created {
            ids: Vec::new(),
            remove,
        }
    }

    pub(super) fn push(&mut self, id: i32) {
        self.ids.push(id);
    }

    /// The restart succeeded: they stay.
    pub fn finish(mut self) {
        self.ids.clear();
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        for &id in &self.ids {
            let _ = (self.remove)(id);
        }
    }
}

fn check(rec: &SetRecord) -> Result<()> {
    let who = format!("SysV semaphore semid {}", rec.semid);
    let bad = |what: &str| {
        Err(Error::with_detail(
            &who,
            Kind::InvalidArgument,
            what.to_string(),
        ))
    };
    if rec.semid < 0 {
        return bad("negative semid");
    }
    if rec.values.is_empty() || rec.values.len() > MAX_NSEMS {
        return bad("number of semaphores out of range");
    }
    if rec.values.iter().any(|v| *v > MAX_VALUE) {
        return bad("a value above 32767");
    }
    if rec.mode > 0o777 {
        return bad("mode beyond permission bits");
    }
    let mut pids = BTreeSet::new();
    for u in &rec.undo {
        let mut nums = BTreeSet::new();
        if u.pid <= 0 || !pids.insert(u.pid) {
            return bad("undo adjustments of a bad or repeated PID");
        }
        for &(num, adj) in &u.adj {
            if num as usize >= rec.values.len() || !nums.insert(num) {
                return bad("an undo adjustment of a semaphore out of range or repeated");
            }
            if adj == 0 || adj == i16::MIN {
                return bad("an undo adjustment of 0 or beyond 32767");
            }
        }
    }
    Ok(())
}

/// The values to set before the restored processes make their adjustments again:
/// `values` plus every positive adjustment (each process's semop takes it away), which
/// must stay within 32767.
fn values_before_undo(rec: &SetRecord, undo: &[&UndoRecord]) -> Result<Vec<u16>> {
    let mut out: Vec<i32> = rec.values.iter().map(|&v| i32::from(v)).collect();
    for u in undo {
        for &(num, adj) in &u.adj {
            if let Some(v) = out.get_mut(num as usize) {
                *v += i32::from(adj.max(0));
            }
        }
    }
    out.iter()
        .map(|&v| u16::try_from(v).ok().filter(|v| *v <= MAX_VALUE))
        .collect::<Option<Vec<u16>>>()
        .ok_or_else(|| {
            Error::with_detail(
                format!("SysV semaphore semid {}", rec.semid),
                Kind::InvalidArgument,
                "a value with its undo adjustments above 32767",
            )
        })
}

/// In a restore child (original PID `pid`), before its credentials: the undo
/// adjustments the process held, made again with semop(SEM_UNDO) on the values
/// `restore_sets` left, which end as they were saved. A negative adjustment (the process
/// gave with SEM_UNDO) is a give with SEM_UNDO and a take without, in one call.
pub fn restore_undo(sf: &Statefile, pid: i32) -> Result<()> {
    if sf.entry(INDEX).is_none() {
        return Ok(());
    }
    let index: SemIndex = sf.read_json(INDEX)?;
    let undo = libc::SEM_UNDO as i16;
    for set in &index.sets {
        let who = format!("SysV semaphore semid {}", set.semid);
        for u in set.undo.iter().filter(|u| u.pid == pid) {
            let takes: Vec<_> = u
                .adj
                .iter()
                .filter(|(_, a)| *a > 0)
                .map(|&(n, a)| (n, -a, undo))
                .collect();
            for chunk in takes.chunks(OPS_PER_CALL) {
                sys::semop(set.semid, chunk)
                    .ctx(&who)
                    .map_err(|e| e.detail("semop SEM_UNDO (undo adjustments)"))?;
            }
            for &(n, a) in u.adj.iter().filter(|(_, a)| *a < 0) {
                sys::semop(set.semid, &[(n, -a, undo), (n, a, 0)])
                    .ctx(&who)
                    .map_err(|e| e.detail("semop SEM_UNDO (undo adjustments)"))?;
            }
        }
    }
    Ok(())
}

/// Recreates the sets of the statefiles (each once) with their semids, keys, values,
/// owners and modes. Runs before any process is created.
pub fn restore_sets(statefiles: &[&Statefile]) -> Result<Created> {
    let mut out = Created::new(sys::sem_remove);
    let mut seen_files = BTreeSet::new();
    let mut indexes = Vec::new();
    for sf in statefiles {
        if !seen_files.insert(sf.path.clone()) || sf.entry(INDEX).is_none() {
            continue;
        }
        let index: SemIndex = sf.read_json(INDEX)?;
        for rec in &index.sets {
            check(rec)
                .and_then(|()| check_owner(rec, sf.manifest.owner.uid))
                .map_err(|e| e.context(sf.path.display()))?;
        }
        indexes.push((sf, index));
    }
    // every statefile's processes' adjustments on each set, each process once
    let mut undo: BTreeMap<i32, BTreeMap<i32, &UndoRecord>> = BTreeMap::new();
    for (_, index) in &indexes {
        for rec in &index.sets {
            let of_set = undo.entry(rec.semid).or_default();
            for u in &rec.undo {
                of_set.entry(u.pid).or_insert(u);
            }
        }
    }
    let mut done = BTreeSet::new();
    for (sf, index) in &indexes {
        for rec in &index.sets {
            if !done.insert(rec.semid) {
                continue; // the same set, saved by another statefile too
            }
            let adjs: Vec<&UndoRecord> = undo[&rec.semid].values().copied().collect();
            let values =
                values_before_undo(rec, &adjs).map_err(|e| e.context(sf.path.display()))?;
            restore_set(rec, &values, sf.manifest.owner.uid, &mut out)
                .map_err(|e| e.context(sf.path.display()))?;
        }
    }
    Ok(out)
}

/// A user's statefile (owner checked by restart's authority step) makes only sets of
/// that user; root's, any.
fn check_owner(rec: &SetRecord, owner: u32) -> Result<()> {
    super::sysv_shm::check_ipc_owner(
        format!("SysV semaphore semid {}", rec.semid),
        rec.uid,
        owner,
    )
}

/// One set, its values `values` (the saved ones before the adjustments are made again),
/// for a statefile of uid `owner`.
fn restore_set(rec: &SetRecord, values: &[u16], owner: u32, out: &mut Created) -> Result<()> {
    let who = format!("SysV semaphore semid {}", rec.semid);
    let table = read_table()?;
    // a set outlives its processes: the very set, still there, is taken back (a user's
    // statefile, only a set of theirs)
    let leftover = table
        .iter()
        .filter(|s| owner == 0 || s.uid == owner)
        .any(|s| s.semid == rec.semid && s.key == rec.key && s.nsems == rec.values.len() as u64);
    if !leftover {
        let taken = table
            .iter()
            .find(|s| s.semid == rec.semid)
            .map(|s| format!("{}, {} semaphores", key_text(s.key), s.nsems));
        let key_taken = rec.key != 0 && table.iter().any(|s| s.key == rec.key);
        let nsems = rec.values.len() as i32;
        let id = create_with_id(
            ("semid", rec.semid, rec.key),
            NEXT_ID,
            (taken, key_taken),
            || sys::semget(rec.key, nsems, libc::IPC_CREAT | libc::IPC_EXCL | 0o600),
            sys::sem_remove,
            "",
        )
        .ctx(&who)?;
        out.push(id);
    }
    sys::set_sem_values(rec.semid, values)
        .ctx(&who)
        .map_err(|e| e.detail("SETALL"))?;
    sys::set_sem_owner(rec.semid, rec.uid, rec.gid, rec.mode)
        .ctx(&who)
        .map_err(|e| e.detail("setting owner and mode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> SetRecord {
        SetRecord {
            semid: 3,
            key: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
            cuid: 0,
            cgid: 0,
            values: vec![1, 2],
            undo: vec![],
        }
    }

    #[test]
    fn hostile_records_are_refused() {
        assert!(check(&rec()).is_ok());
        for (r, want) in [
            (SetRecord { semid: -1, ..rec() }, "negative semid"),
            (
                SetRecord {
                    values: vec![],
                    ..rec()
                },
                "number of semaphores",
            ),
            (
                SetRecord {
                    values: vec![40000],
                    ..rec()
                },
                "above 32767",
            ),
            (
                SetRecord {
                    mode: 0o4777,
                    ..rec()
                },
                "mode",
            ),
        ] {
            let msg = check(&r).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn a_users_statefile_makes_only_that_users_sets() {
        let theirs = SetRecord { uid: 1000, ..rec() };
        assert!(check_owner(&theirs, 1000).is_ok());
        assert!(check_owner(&theirs, 0).is_ok());
        assert!(check_owner(&rec(), 1000).is_err());
    }

    #[test]
    fn hostile_undo_records_are_refused() {
        let with = |adj: Vec<(u16, i16)>| SetRecord {
            undo: vec![UndoRecord { pid: 5, adj }],
            ..rec()
        };
        assert!(check(&with(vec![(0, 1), (1, -2)])).is_ok());
        for bad in [
            vec![(2, 1)],
            vec![(0, 1), (0, 2)],
            vec![(0, 0)],
            vec![(0, i16::MIN)],
        ] {
            assert!(check(&with(bad.clone())).is_err(), "{bad:?}");
        }
        let twice = SetRecord {
            undo: vec![
                UndoRecord {
                    pid: 5,
                    adj: vec![],
                },
                UndoRecord {
                    pid: 5,
                    adj: vec![],
                },
            ],
            ..rec()
        };
        assert!(check(&twice).is_err());
    }

    #[test]
    fn values_before_undo_add_what_the_processes_take_again() {
        let a = UndoRecord {
            pid: 5,
            adj: vec![(0, 3), (1, -2)],
        };
        let b = UndoRecord {
            pid: 6,
            adj: vec![(0, 1)],
        };
        assert_eq!(values_before_undo(&rec(), &[&a, &b]).unwrap(), vec![5, 2]);
        let big = UndoRecord {
            pid: 7,
            adj: vec![(1, 32767)],
        };
        assert!(values_before_undo(&rec(), &[&big]).is_err());
    }

    #[test]
    fn differences_give_each_change_and_flag_a_limit() {
        let lifted = Snapshot::from([(1, vec![16384, 16390, 7]), (2, vec![4])]);
        let after = Snapshot::from([(1, vec![16385, 16387, 7]), (2, vec![4])]);
        let (changes, clamped) = differences(&lifted, &after);
        assert_eq!(changes, Changes::from([(1, vec![(0, 1), (1, -3)])]));
        assert_eq!(clamped, None);
        let after = Snapshot::from([(1, vec![16384, 16390, 7]), (2, vec![0])]);
        let (changes, clamped) = differences(&lifted, &after);
        assert_eq!(changes, Changes::from([(2, vec![(0, -4)])]));
        assert_eq!(clamped, Some(2));
    }
}
