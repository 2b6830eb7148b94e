//! System V message queues. A queue is a statefile-level object, saved once: its msqid,
//! key, owner, mode, byte limit and each message's type and length in `shared/msg.json`,
//! the message bodies one after another in `shared/msg-<msqid>`.
//!
//! Which queues: those whose last sender or last receiver (lspid, lrpid of
//! /proc/sysvipc/msg) is a process of the checkpoint (see sysv_sem.rs for why a rule is
//! needed). Messages are copied in queue order without being received (msgrcv with
//! MSG_COPY). Restart recreates each queue with its original msqid before any process
//! exists, or takes back the very queue when it is still there (same msqid and key),
//! emptied and filled with the statefile's messages.

use std::collections::BTreeSet;
use std::io::Write;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::sysv_sem::Created;
use super::sysv_shm::{create_with_id, key_text};
use crate::error::{Context, Error, Kind, Result};
use crate::proc::sysvipc::MsgInfo;
use crate::statefile::{Statefile, StatefileWriter};
use crate::sys::sysvipc as sys;

pub const INDEX: &str = crate::statefile::layout::MSG_INDEX;
const NEXT_ID: &str = "/proc/sys/kernel/msg_next_id";

pub fn data_path(msqid: i32) -> String {
    crate::statefile::layout::msg_data_path(msqid)
}

/// A message as saved: its body is the next `len` bytes of the data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub mtype: i64,
    pub len: u64,
}

/// A queue as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecord {
    pub msqid: i32,
    /// 0 is IPC_PRIVATE.
    pub key: i32,
    /// Permission bits (0o777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The creator: shown, not restorable (the kernel sets it).
    pub cuid: u32,
    pub cgid: u32,
    /// The byte limit (msg_qbytes).
    pub qbytes: u64,
    /// In queue order.
    pub messages: Vec<MessageRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgIndex {
    pub queues: Vec<QueueRecord>,
}

/// Every queue of this IPC namespace (/proc/sysvipc/msg).
pub fn read_table() -> Result<Vec<MsgInfo>> {
    crate::proc::sysvipc::read_msg()
}

/// A message: its type and body.
type Message = (i64, Vec<u8>);

/// Every message of a queue, in order, left queued. An error if the queue changed
/// while it was read (a process outside the checkpoint sent or received).
fn copy_messages(msqid: i32, who: &str) -> Result<(sys::IpcStat, Vec<Message>)> {
    let st = sys::msg_stat(msqid).ctx(who)?;
    let max = st.cbytes.max(1) as usize;
    let mut out = Vec::new();
    for i in 0..st.count {
        match sys::msg_receive(msqid, Some(i), max) {
            Ok(m) => out.push(m),
            Err(Errno::ENOSYS) => {
                return Err(Error::with_detail(
                    who,
                    Kind::CheckpointError,
                    "this kernel cannot copy messages (MSG_COPY needs CONFIG_CHECKPOINT_RESTORE)",
                ));
            }
            Err(Errno::ENOMSG | Errno::E2BIG) => break,
            Err(e) => return Err(Error::errno(who, e).detail("msgrcv MSG_COPY")),
        }
    }
    let after = sys::msg_stat(msqid).ctx(who)?;
    let bytes: u64 = out.iter().map(|m| m.1.len() as u64).sum();
    if out.len() as u64 != st.count || after.count != st.count || bytes != after.cbytes {
        return Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            "changed while it was saved (a process outside the checkpoint uses it)",
        ));
    }
    Ok((st, out))
}

/// Saves every queue the (frozen) processes use, once each.
pub fn dump_queues(pids: &[i32], writer: &mut StatefileWriter) -> Result<()> {
    let mut index = MsgIndex::default();
    for q in read_table()? {
        if !pids.contains(&q.lspid) && !pids.contains(&q.lrpid) {
            continue;
        }
        let who = format!("SysV message queue msqid {}", q.msqid);
        let (st, messages) = copy_messages(q.msqid, &who)?;
        let mut sink = writer.create_file(&data_path(q.msqid))?;
        for (_, body) in &messages {
            sink.write_all(body).ctx(sink.rel.clone())?;
        }
        writer.finish_file(sink)?;
        index.queues.push(QueueRecord {
            msqid: q.msqid,
            key: st.key,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            cuid: st.cuid,
            cgid: st.cgid,
            qbytes: st.qbytes,
            messages: messages
                .iter()
                .map(|(mtype, body)| MessageRecord {
                    mtype: *mtype,
                    len: body.len() as u64,
                })
                .collect(),
        });
    }
    if index.queues.is_empty() {
        return Ok(());
    }
    writer.write_json(INDEX, &index)
}

/// A record's fields within what a queue can hold, the bodies `data` exactly.
fn check(rec: &QueueRecord, data: &[u8]) -> Result<()> {
    let who = format!("SysV message queue msqid {}", rec.msqid);
    let bad = |what: &str| {
        Err(Error::with_detail(
            &who,
            Kind::InvalidArgument,
            what.to_string(),
        ))
    };
    if rec.msqid < 0 {
        return bad("negative msqid");
    }
    if rec.mode > 0o777 {
        return bad("mode beyond permission bits");
    }
    if rec.messages.iter().any(|m| m.mtype <= 0) {
        return bad("a message type below 1");
    }
    let total = rec
        .messages
        .iter()
        .try_fold(0u64, |sum, m| sum.checked_add(m.len));
    if total != Some(data.len() as u64) {
        return bad("message lengths do not add up to the saved bodies");
    }
    if data.len() as u64 > rec.qbytes {
        return bad("more bytes than the queue's limit");
    }
    Ok(())
}

/// Recreates the queues of the statefiles (each once) with their msqids, keys, limits,
/// messages, owners and modes. Runs before any process is created.
pub fn restore_queues(statefiles: &[&Statefile]) -> Result<Created> {
    let mut out = Created::new(sys::msg_remove);
    let mut seen_files = BTreeSet::new();
    let mut done = BTreeSet::new();
    for sf in statefiles {
        if !seen_files.insert(sf.path.clone()) || sf.entry(INDEX).is_none() {
            continue;
        }
        let index: MsgIndex = sf.read_json(INDEX)?;
        for rec in &index.queues {
            if !done.insert(rec.msqid) {
                continue; // the same queue, saved by another statefile too
            }
            let owner = sf.manifest.owner.uid;
            let who = format!("SysV message queue msqid {}", rec.msqid);
            super::sysv_shm::check_ipc_owner(who, rec.uid, owner)
                .map_err(|e| e.context(sf.path.display()))?;
            let data = sf.read(&data_path(rec.msqid))?;
            restore_queue(rec, &data, owner, &mut out).map_err(|e| e.context(sf.path.display()))?;
        }
    }
    Ok(out)
}

fn restore_queue(rec: &QueueRecord, data: &[u8], owner: u32, out: &mut Created) -> Result<()> {
    check(rec, data)?;
    let who = format!("SysV message queue msqid {}", rec.msqid);
    let table = read_table()?;
    // a queue outlives its processes: the very queue, still there, is taken back (a
    // user's statefile, only a queue of theirs)
    let leftover = table
        .iter()
        .filter(|q| owner == 0 || q.uid == owner)
        .any(|q| q.msqid == rec.msqid && q.key == rec.key);
    if leftover {
        drain(rec.msqid).ctx(&who)?;
    } else {
        let taken = table
            .iter()
            .find(|q| q.msqid == rec.msqid)
            .map(|q| format!("{}, {} messages", key_text(q.key), q.qnum));
        let key_taken = rec.key != 0 && table.iter().any(|q| q.key == rec.key);
        let id = create_with_id(
            ("msqid", rec.msqid, rec.key),
            NEXT_ID,
            (taken, key_taken),
            || sys::msgget(rec.key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600),
            sys::msg_remove,
            "",
        )
        .ctx(&who)?;
        out.push(id);
    }
    // the limit first (the messages must fit), owner and mode last (they may shut cpr out)
    let now = sys::msg_stat(rec.msqid).ctx(&who)?;
    sys::set_msg_owner(rec.msqid, now.uid, now.gid, 0o600, rec.qbytes)
        .ctx(&who)
        .map_err(|e| e.detail(format!("setting the byte limit to {}", rec.qbytes)))?;
    let mut off = 0usize;
    for (n, m) in rec.messages.iter().enumerate() {
        let body = &data[off..off + m.len as usize];
        off += m.len as usize;
        sys::msg_send(rec.msqid, m.mtype, body)
            .ctx(&who)
            .map_err(|e| e.detail(format!("message {n} ({} bytes)", m.len)))?;
    }
    sys::set_msg_owner(rec.msqid, rec.uid, rec.gid, rec.mode, rec.qbytes)
        .ctx(&who)
        .map_err(|e| e.detail("setting owner and mode"))
}

/// Receives (discards) every message of a queue.
fn drain(msqid: i32) -> std::result::Result<(), Errno> {
    loop {
        let max = sys::msg_stat(msqid)?.cbytes.max(1) as usize;
        match sys::msg_receive(msqid, None, max) {
            Ok(_) => {}
            Err(Errno::ENOMSG) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lens: &[u64]) -> QueueRecord {
        QueueRecord {
            msqid: 1,
            key: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
            cuid: 0,
            cgid: 0,
            qbytes: 16,
            messages: lens
                .iter()
                .map(|&len| MessageRecord { mtype: 1, len })
                .collect(),
        }
    }

    #[test]
    fn hostile_records_are_refused() {
        assert!(check(&rec(&[3, 0, 2]), b"abcde").is_ok());
        for (r, data, want) in [
            (rec(&[3]), &b"ab"[..], "do not add up"),
            (rec(&[u64::MAX, 2]), b"a", "do not add up"),
            (rec(&[17]), &[0u8; 17][..], "limit"),
            (
                QueueRecord {
                    msqid: -2,
                    ..rec(&[])
                },
                b"",
                "negative",
            ),
            (
                QueueRecord {
                    messages: vec![MessageRecord { mtype: 0, len: 0 }],
                    ..rec(&[])
                },
                b"",
                "type below 1",
            ),
        ] {
            let msg = check(&r, data).unwrap_err().to_string();
            assert!(msg.contains(want), "{msg}");
        }
    }
}
