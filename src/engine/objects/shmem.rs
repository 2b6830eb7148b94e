//! Shared memory objects: shared anonymous mappings and memfds, mapped by one or more
//! processes. Checkpoint saves each once, in `shared/mem-<ino>` (only the parts that
//! hold data, read through /proc/PID/map_files), and the mappings point at it
//! (`Backing::SharedMem`); restart makes each again as a memfd in cpr, which the
//! processes inherit and memory.rs maps.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

use super::memory::{Backing, Vma};
use super::shared_fds::SharedTable;
use crate::error::{Context, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// A shared memory object (shared anonymous mapping, memfd): its size and the data it
/// holds, as runs of (offset, length) packed in `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMem {
    pub ino: u64,
    pub size: u64,
    pub runs: Vec<(u64, u64)>,
    pub data: String,
}

/// Saves each shared memory object the processes map once, from /proc/PID/map_files
/// (only the parts that hold data), and points their mappings at it.
pub fn collect_memory(
    maps: &mut [(i32, &mut Vec<Vma>)],
    table: &mut SharedTable,
    writer: &mut StatefileWriter,
) -> Result<()> {
    for (pid, vmas) in maps.iter_mut() {
        for v in vmas.iter_mut() {
            let Backing::SharedMem { ino, .. } = v.backing else {
                continue;
            };
            if table.mems.iter().any(|m| m.ino == ino) {
                continue;
            }
            let who = format!("process {pid}: shared memory at {:#x}", v.start);
            let file =
                std::fs::File::open(format!("/proc/{pid}/map_files/{:x}-{:x}", v.start, v.end))
                    .ctx(&who)?;
            let size = file.metadata().ctx(&who)?.len();
            let runs = data_runs(&file, size);
            let rel = crate::statefile::layout::shared_mem_path(ino);
            let mut sink = writer.create_file(&rel)?;
            let biggest = runs.iter().map(|r| r.1).max().unwrap_or(0);
            let mut buf = vec![0u8; (8 << 20).min(biggest as usize)];
            for &(off, len) in &runs {
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(buf.len() as u64) as usize;
                    file.read_exact_at(&mut buf[..n], off + done).ctx(&who)?;
                    sink.write_all(&buf[..n]).ctx(&rel)?;
                    done += n as u64;
                }
            }
            writer.finish_file(sink)?;
            table.mems.push(SharedMem {
                ino,
                size,
                runs,
                data: rel,
            });
        }
    }
    Ok(())
}

/// (offset, length) of the parts of a tmpfs file that hold data (SEEK_DATA/SEEK_HOLE),
/// page aligned; the whole file if the filesystem cannot tell.
fn data_runs(file: &std::fs::File, size: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let mut runs = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        let Ok(start) = lseek(file, pos, Whence::SeekData) else {
            break;
        };
        let end = lseek(file, start, Whence::SeekHole).unwrap_or(size as i64);
        runs.push((start as u64, (end - start) as u64));
        pos = end;
    }
    if runs.is_empty()
        && size > 0
        && lseek(file, 0, Whence::SeekData).is_err_and(|e| e != nix::errno::Errno::ENXIO)
    {
        runs.push((0, size));
    }
    runs
}

/// Restart, in cpr: every shared memory object as a memfd with its data, by inode.
pub(super) fn open_all(mems: &[SharedMem], sf: &Statefile) -> Result<BTreeMap<u64, OwnedFd>> {
    let mut opened = BTreeMap::new();
    for m in mems {
        let who = format!("shared memory {}", m.ino);
        let fd =
            nix::sys::memfd::memfd_create(c"cpr-shmem", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .ctx(&who)?;
        let file = std::fs::File::from(fd);
        file.set_len(m.size).ctx(&who)?;
        let mut data = sf.open_file(&m.data)?;
        let biggest = m.runs.iter().map(|r| r.1).max().unwrap_or(0);
        let mut buf = vec![0u8; (8 << 20).min(biggest as usize)];
        for &(off, len) in &m.runs {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                data.read_exact(&mut buf[..n]).ctx(&who)?;
                file.write_all_at(&buf[..n], off + done).ctx(&who)?;
                done += n as u64;
            }
        }
        opened.insert(m.ino, OwnedFd::from(file));
    }
    Ok(opened)
}
