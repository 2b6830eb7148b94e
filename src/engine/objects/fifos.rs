//! Named FIFOs (mkfifo). A FIFO's name stays in the filesystem, so restart opens it again
//! by name; what it held is saved as a pipe's is: the data in flight (looked at with
//! tee(2), never consumed) and the capacity, once per FIFO. Restart, in cpr: opens each
//! FIFO read-write (a holder: every later open finds a reader and a writer and does not
//! block), puts the data back, and keeps the holder until the processes have theirs.
//! Each descriptor then opens the name with its own access mode (files.rs).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use serde::{Deserialize, Serialize};

use super::files::{FdKind, FdRecord};
use super::shared_fds::ProcessFds;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// One FIFO the checkpoint's processes had open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FifoRecord {
    /// Its inode at checkpoint (descriptors name it by this, `FdKind::Fifo`).
    pub ino: u64,
    pub path: String,
    pub capacity: usize,
    /// Statefile file with the data in flight, if any.
    pub data: Option<String>,
}

/// Once every process is read: every FIFO once, with its data.
pub(super) fn collect(
    procs: &[ProcessFds<'_>],
    writer: &mut StatefileWriter,
) -> Result<Vec<FifoRecord>> {
    let mut out: Vec<FifoRecord> = Vec::new();
    for p in procs {
        for r in p.fds.iter() {
            let FdKind::Fifo { ino } = r.kind else {
                continue;
            };
            if !out.iter().any(|f| f.ino == ino) {
                out.push(save(p.pid, r, ino, writer)?);
            }
        }
    }
    Ok(out)
}

fn save(pid: i32, r: &FdRecord, ino: u64, writer: &mut StatefileWriter) -> Result<FifoRecord> {
    let who = format!("process {pid} fd {} (FIFO {})", r.fd, r.path);
    // a reader of our own (never blocks: O_NONBLOCK), unless the descriptor reads
    let ours = if r.flags & libc::O_ACCMODE == libc::O_WRONLY {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(format!("/proc/{pid}/fd/{}", r.fd))
            .map(OwnedFd::from)
            .ctx(&who)?
    } else {
        crate::sys::steal_fd(pid, r.fd).ctx(&who)?
    };
    let capacity = nix::fcntl::fcntl(&ours, nix::fcntl::FcntlArg::F_GETPIPE_SZ).ctx(&who)? as usize;
    let waiting = crate::sys::pipe_bytes(ours.as_raw_fd()).ctx(&who)?;
    let data = if waiting == 0 {
        None
    } else {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(&who)?;
        let _ = nix::fcntl::fcntl(&wr, nix::fcntl::FcntlArg::F_SETPIPE_SZ(capacity as i32));
        nix::fcntl::tee(
            &ours,
            &wr,
            waiting,
            nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK,
        )
        .ctx(format!("{who}: tee"))?;
        drop(wr);
        let mut bytes = Vec::with_capacity(waiting);
        std::fs::File::from(rd).read_to_end(&mut bytes).ctx(&who)?;
        let rel = crate::statefile::layout::pipe_data_path(ino);
        writer.write_file(&rel, &bytes)?;
        Some(rel)
    };
    Ok(FifoRecord {
        ino,
        path: r.path.clone(),
        capacity,
        data,
    })
}

/// The kind of a FIFO descriptor: its name must still be there, a FIFO.
pub(super) fn classify(who: &str, link: &str, meta: &std::fs::Metadata) -> Result<FdKind> {
    let named = std::fs::symlink_metadata(link)
        .map(|m| m.file_type().is_fifo() && m.ino() == meta.ino() && m.dev() == meta.dev())
        .unwrap_or(false);
    if !named {
        return Err(Error::with_detail(
            who,
            Kind::CheckpointError,
            format!("{link}: a FIFO whose name was removed or replaced is not checkpoint safe"),
        ));
    }
    Ok(FdKind::Fifo { ino: meta.ino() })
}

/// In cpr, before the processes exist: a read-write holder of every FIFO, its data back.
pub(super) fn open_all(fifos: &[FifoRecord], sf: &Statefile) -> Result<Vec<OwnedFd>> {
    let mut holders = Vec::new();
    for f in fifos {
        let who = format!("FIFO {}", f.path);
        if !f.path.starts_with('/') || f.capacity > i32::MAX as usize {
            return Err(crate::statefile::reader::damaged_record(format!(
                "{who}: capacity {}",
                f.capacity
            )));
        }
        let holder: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&f.path)
            .ctx(&who)?
            .into();
        let is_fifo = std::fs::File::from(holder.try_clone().ctx(&who)?)
            .metadata()
            .map(|m| m.file_type().is_fifo())
            .ctx(&who)?;
        if !is_fifo {
            return Err(Error::with_detail(
                &who,
                Kind::CheckpointError,
                "not a FIFO now",
            ));
        }
        // bytes already there belong to processes outside the restart
        if crate::sys::pipe_bytes(holder.as_raw_fd()).ctx(&who)? != 0 {
            return Err(Error::with_detail(
                &who,
                Kind::CheckpointError,
                "in use by other processes (it holds data)",
            ));
        }
        let _ = nix::fcntl::fcntl(
            &holder,
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(f.capacity as i32),
        );
        if let Some(rel) = &f.data {
            let data = sf.read(rel)?;
            std::fs::File::from(holder.try_clone().ctx(&who)?)
                .write_all(&data)
                .ctx(format!("{who}: data"))?;
        }
        holders.push(holder);
    }
    Ok(holders)
}

/// A new description of FIFO `r.path` with `r`'s access mode (never blocking: the
/// holder is a reader and a writer; the status flags are set once it is placed).
pub(super) fn reopen(r: &FdRecord) -> std::io::Result<OwnedFd> {
    let acc = r.flags & libc::O_ACCMODE;
    super::files::open_path(&r.path, acc | libc::O_NONBLOCK | libc::O_NOCTTY)
}
