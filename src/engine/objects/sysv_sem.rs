//! System V semaphore sets. A set is a statefile-level object, saved once in
//! `shared/sem.json` with its semid, key, owner, mode and every semaphore's value.
//!
//! Which sets: a set is neither mapped nor a descriptor, so which process uses one is
//! not known to the kernel. cpr saves the sets in which a process of the checkpoint was
//! the last to change a semaphore (semop, SETVAL or SETALL: semctl GETPID of each
//! semaphore). Restart recreates each with its original semid before any process
//! exists, or takes back the very set when it is still there (same semid and key).
//!
//! Undo adjustments (SEM_UNDO, semadj) cannot be read: Linux has no call for them. A
//! checkpoint that saves a set refuses every process that has an undo list (kcmp
//! KCMP_SYSVSEM), rather than lose what it would release at exit.

use std::collections::BTreeSet;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::sysv_shm::{create_with_id, key_text};
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

/// A process whose semaphore adjustments would be lost: "Checkpoint error" naming it.
fn refuse_undo_lists(pids: &[i32]) -> Result<()> {
    let with = sys::with_undo_lists(pids).map_err(|e| {
        Error::errno("SysV semaphores", e).detail("looking for undo lists (kcmp KCMP_SYSVSEM)")
    })?;
    match with.first() {
        None => Ok(()),
        Some(pid) => Err(Error::with_detail(
            format!("process {pid}"),
            Kind::CheckpointError,
            "has a SysV semaphore undo list (SEM_UNDO, or threads): its adjustments cannot be saved",
        )),
    }
}

/// What `dump_sets` would refuse for processes `pids` (running or frozen): an undo list
/// while a set of theirs is saved. For `cpr -c --dry-run`.
pub fn refusals(pids: &[i32]) -> Result<()> {
    for set in read_table()? {
        if used_by(&set, pids)? {
            return refuse_undo_lists(pids);
        }
    }
    Ok(())
}

/// Saves every set the (frozen) processes use, once each.
pub fn dump_sets(pids: &[i32], writer: &mut StatefileWriter) -> Result<()> {
    let mut index = SemIndex::default();
    for set in read_table()? {
        if !used_by(&set, pids)? {
            continue;
        }
        let who = format!("SysV semaphore semid {}", set.semid);
        let st = sys::sem_stat(set.semid).ctx(&who)?;
        let values = sys::sem_values(set.semid, st.count as usize).ctx(&who)?;
        index.sets.push(SetRecord {
            semid: set.semid,
            key: st.key,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            cuid: st.cuid,
            cgid: st.cgid,
            values,
        });
    }
    if index.sets.is_empty() {
        return Ok(());
    }
    refuse_undo_lists(pids)?;
    writer.write_json(INDEX, &index)
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
    Ok(())
}

/// Recreates the sets of the statefiles (each once) with their semids, keys, values,
/// owners and modes. Runs before any process is created.
pub fn restore_sets(statefiles: &[&Statefile]) -> Result<Created> {
    let mut out = Created::new(sys::sem_remove);
    let mut seen_files = BTreeSet::new();
    let mut done = BTreeSet::new();
    for sf in statefiles {
        if !seen_files.insert(sf.path.clone()) || sf.entry(INDEX).is_none() {
            continue;
        }
        let index: SemIndex = sf.read_json(INDEX)?;
        for rec in &index.sets {
            if !done.insert(rec.semid) {
                continue; // the same set, saved by another statefile too
            }
            restore_set(rec, &mut out).map_err(|e| e.context(sf.path.display()))?;
        }
    }
    Ok(out)
}

fn restore_set(rec: &SetRecord, out: &mut Created) -> Result<()> {
    check(rec)?;
    let who = format!("SysV semaphore semid {}", rec.semid);
    let table = read_table()?;
    // a set outlives its processes: the very set, still there, is taken back
    let leftover = table
        .iter()
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
    sys::set_sem_values(rec.semid, &rec.values)
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
}
