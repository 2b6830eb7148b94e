//! Live checkpoints (`-g`): iterative pre-copy. The memory is copied while the processes
//! run, after a short stop that arms the dirty tracking (`objects::tracking`); then, in
//! a few bounded rounds, the pages written meanwhile are copied again (each scan
//! write-protects them again, atomically). The checkpoint's own stop then saves only
//! what was written since the last round: every other page is in `proc/<pid>/precopy`,
//! listed by `proc/<pid>/precopy.json`, and the mappings name those pages as inherited
//! (`objects::incremental`), which restart reads from there.
//!
//! Not with `--parent` (re-arming would lose what changed since the parent; an
//! incremental checkpoint is small anyway), nor for less than `MIN_BYTES` of memory,
//! nor with `CPR_PRECOPY=0`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;

use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::unistd::Pid;

use super::Targets;
use crate::engine::objects::incremental::{self, LiveRecord, PrecopyIndex};
use crate::engine::objects::memory::{self, PAGE};
use crate::engine::objects::tracking;
use crate::engine::options::CheckpointOptions;
use crate::engine::progress::{Phase, Progress};
use crate::error::{Context, Result};
use crate::statefile::{FileSink, StatefileWriter};
use crate::sys::dirty;

/// Below this much memory, pre-copy costs more than it saves.
const MIN_BYTES: u64 = 8 << 20;
/// Rounds of copying while the processes run, at most.
const MAX_ROUNDS: u32 = 4;
/// A round that finds less than this written ends the pre-copy.
const SMALL_ENOUGH: u64 = 2 << 20;

/// What the pre-copy did: the statefile writer it started, and per process where its
/// tracking is and which pages it copied.
pub(super) struct Precopied {
    pub writer: StatefileWriter,
    pub processes: BTreeMap<i32, PrecopyIndex>,
    pub live: LiveRecord,
}

/// Pre-copies the memory of the targets for a `-g` checkpoint, if it is worth it.
pub(super) fn run(
    targets: &Targets,
    options: &CheckpointOptions,
    pinned: &crate::engine::privilege::Pinned,
    progress: &Progress,
) -> Result<Option<Precopied>> {
    let live = options.will == Some(crate::attrfile::WillAction::Cont)
        && options.parent.is_none()
        && std::env::var("CPR_PRECOPY").map_or(true, |v| v != "0");
    let pids = targets.set.pids();
    let bytes = if live { resident_bytes(&pids) } else { 0 };
    if bytes < MIN_BYTES {
        return Ok(None);
    }
    let armed = arm(targets, pinned)?;
    if armed.is_empty() {
        return Ok(None);
    }
    progress.phase(Phase::Precopy, Some(bytes));
    copy_all(targets, options, armed, progress).inspect_err(|_| disarm(targets, pinned))
}

/// The pre-copy proper, once the tracking is armed in the processes `armed`.
fn copy_all(
    targets: &Targets,
    options: &CheckpointOptions,
    armed: Vec<(i32, i32)>,
    progress: &Progress,
) -> Result<Option<Precopied>> {
    let mut writer = StatefileWriter::create(&options.statefile, options.force, targets.owner)?;
    // bytes told, and a cancel seen, as the writes go
    writer.set_progress(progress.clone());
    let in_statefile = |e: crate::error::Error| e.context(options.statefile.display());
    let mut ones = Vec::new();
    for (pid, fd) in armed {
        ones.push(One::start(pid, fd, &mut writer).map_err(in_statefile)?);
    }
    // round 0 copies everything; each further round, what was written during the one
    // before, while that shrinks; processes in step, so that each one's last copy is
    // as close to the stop as the others'
    let mut rounds = 0;
    let mut active: Vec<usize> = (0..ones.len()).collect();
    while !active.is_empty() {
        for &i in &active {
            ones[i].copy_pending().map_err(in_statefile)?;
        }
        if rounds == MAX_ROUNDS {
            break;
        }
        rounds += 1;
        let mut next = Vec::new();
        for &i in &active {
            if ones[i].scan().map_err(in_statefile)? {
                next.push(i);
            }
        }
        active = next;
    }
    // the last copy, of what was written since each one's last round, just before the
    // stop: no writeback from here on (the stop must not wait for the disk either)
    writer.set_writeback(false);
    let mut record = LiveRecord {
        rounds,
        stop_ms: 0.0,
        precopied_bytes: 0,
    };
    let mut processes = BTreeMap::new();
    for one in &mut ones {
        one.pending
            .extend(written_since(one.pid).map_err(in_statefile)?);
        one.copy_pending().map_err(in_statefile)?;
    }
    for one in ones {
        record.precopied_bytes += one.bytes;
        writer.finish_file(one.sink)?;
        let index = PrecopyIndex::of(one.fd, &one.copy);
        writer.write_json(&incremental::precopy_index_path(one.pid), &index)?;
        processes.insert(one.pid, index);
    }
    Ok(Some(Precopied {
        writer,
        processes,
        live: record,
    }))
}

/// The pre-copy of one running process: its tracking at `fd`, its pre-copy file, where
/// the latest copy of each page is, and the pages still to copy.
struct One {
    pid: i32,
    fd: i32,
    sink: FileSink,
    /// page address -> its latest copy's offset
    copy: BTreeMap<u64, u64>,
    bytes: u64,
    /// Address ranges to copy next (found written, so write-protected again: they must
    /// be copied, whatever the next scan finds).
    pending: Vec<(u64, u64)>,
    /// Bytes found written by the last scan.
    last: u64,
}

impl One {
    /// Every page of `pid` the checkpoint saves is to be copied.
    fn start(pid: i32, fd: i32, writer: &mut StatefileWriter) -> Result<One> {
        let sink = writer.create_file(&incremental::precopy_path(pid))?;
        let mut pending = Vec::new();
        for v in memory::plan_pages(pid)? {
            for &(first, count) in &v.runs {
                pending.push((v.start + first * PAGE, v.start + (first + count) * PAGE));
            }
        }
        Ok(One {
            pid,
            fd,
            sink,
            copy: BTreeMap::new(),
            bytes: 0,
            pending,
            last: u64::MAX,
        })
    }

    fn copy_pending(&mut self) -> Result<()> {
        let ranges = std::mem::take(&mut self.pending);
        let n = copy_ranges(self.pid, &ranges, &mut self.sink, &mut self.copy)?;
        // (the sink starts writeback as the bulk goes, while the processes run; none
        // once the writer says so: the last copy, just before the stop)
        self.bytes += n;
        Ok(())
    }

    /// Finds what was written since the last round (to copy next); whether another
    /// round is worth it (enough was written, and less than the round before).
    fn scan(&mut self) -> Result<bool> {
        self.pending = written_since(self.pid)?;
        let dirty: u64 = self.pending.iter().map(|r| r.1 - r.0).sum();
        let more = dirty >= SMALL_ENOUGH && dirty * 2 <= self.last;
        self.last = dirty;
        Ok(more)
    }
}

/// Bytes of the pages of the targets a checkpoint saves (an estimate: resident memory).
fn resident_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| std::fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * PAGE)
        .sum()
}

/// After a checkpoint that armed tracking failed: the processes are frozen for a moment
/// and cpr's descriptors closed, so that they go on as they were (best effort: a
/// process where it fails keeps a tracking nothing reads).
pub(super) fn disarm(targets: &Targets, pinned: &crate::engine::privilege::Pinned) {
    let Ok((frozen, _zombies)) = super::freeze::freeze_targets(targets) else {
        return;
    };
    let caller = crate::engine::options::caller_uid();
    if crate::target::confirm_frozen(&frozen.pids(), pinned, caller).is_err()
        || crate::engine::objects::seccomp::suspend_filters(
            frozen.threads.values().flatten(),
            libc::PTRACE_O_TRACESYSGOOD,
        )
        .is_err()
    {
        return;
    }
    for pid in frozen.pids() {
        let fds = tracking::own_uffds(pid);
        if fds.is_empty() {
            continue;
        }
        if let Ok(regs) = crate::engine::ptrace::get_regs(pid) {
            let _ = tracking::disarm(pid, &regs, &fds);
        }
    }
}

/// Freezes the targets for a moment and arms the tracking in each; returns (pid,
/// descriptor) of those where it is armed.
fn arm(targets: &Targets, pinned: &crate::engine::privilege::Pinned) -> Result<Vec<(i32, i32)>> {
    let (frozen, _zombies) = super::freeze::freeze_targets(targets)?;
    crate::target::confirm_frozen(&frozen.pids(), pinned, crate::engine::options::caller_uid())?;
    crate::engine::objects::seccomp::suspend_filters(
        frozen.threads.values().flatten(),
        libc::PTRACE_O_TRACESYSGOOD,
    )?;
    let mut armed = Vec::new();
    for pid in frozen.pids() {
        let old = tracking::own_uffds(pid);
        let Some(fd) = tracking::next_fd(pid, old.last().copied()) else {
            continue;
        };
        let Ok(regs) = crate::engine::ptrace::get_regs(pid) else {
            continue;
        };
        if tracking::arm(pid, &regs, &old, fd).is_ok() {
            armed.push((pid, fd));
        }
    }
    // dropped: every process runs on
    drop(frozen);
    Ok(armed)
}

/// The pages written since the last scan, re-protected as they are found.
fn written_since(pid: i32) -> Result<Vec<(u64, u64)>> {
    let dir = crate::proc::ProcDir::open(pid)?;
    let pagemap = dir.open_file("pagemap")?;
    let mut out = Vec::new();
    for m in dir.maps()? {
        if m.shared() || m.path == "[vsyscall]" {
            continue;
        }
        // mappings not registered (made since) are found at the stop, whole
        if let Ok(r) = dirty::pagemap_scan_written(
            pagemap.as_fd(),
            m.start,
            m.end,
            dirty::PM_SCAN_WP_MATCHING | dirty::PM_SCAN_CHECK_WPASYNC,
        ) {
            out.extend(r);
        }
    }
    Ok(out)
}

/// Appends the readable parts of `ranges` of running process `pid` to the pre-copy file
/// and notes where each page went (a later copy of a page replaces the earlier).
fn copy_ranges(
    pid: i32,
    ranges: &[(u64, u64)],
    sink: &mut FileSink,
    copy: &mut BTreeMap<u64, u64>,
) -> Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let most = ranges.iter().map(|r| r.1 - r.0).max().unwrap_or(0);
    let mut buf = vec![0u8; CHUNK.min(most) as usize];
    let mut total = 0;
    for &(start, end) in ranges {
        let mut at = start;
        while at < end {
            let len = (end - at).min(CHUNK);
            let mut local = [std::io::IoSliceMut::new(&mut buf[..len as usize])];
            let remote = [RemoteIoVec {
                base: at as usize,
                len: len as usize,
            }];
            // the process runs: a page unmapped meanwhile is simply not copied (the
            // stop saves whatever is there then)
            let n = process_vm_readv(Pid::from_raw(pid), &mut local, &remote).unwrap_or(0) as u64;
            let whole = n / PAGE * PAGE;
            if whole > 0 {
                let off = sink.position();
                sink.write_all(&buf[..whole as usize])
                    .ctx(sink.rel.clone())?;
                for p in 0..whole / PAGE {
                    copy.insert(at + p * PAGE, off + p * PAGE);
                }
                total += whole;
            }
            at += whole.max(PAGE);
        }
    }
    Ok(total)
}
