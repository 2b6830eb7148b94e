//! `cpr -r --lazy`: the processes are released before the pages of their large private
//! anonymous mappings are in (lazy_pages.rs registered them with userfaultfd); a filler
//! process, forked by cpr in a session of its own, first checks the statefile's bulk
//! page data against its checksums, then serves each missing-page fault from the pages
//! file (UFFDIO_COPY) and copies the rest in the background, and exits when all is in.
//!
//! A keeper process, forked by the filler in another session, holds a copy of every
//! userfaultfd descriptor and a pidfd of every restored process. If the filler ends
//! before it said it was done (killed, or it found the page data damaged), the keeper
//! kills the restored processes with SIGKILL: since it still holds the descriptors, their
//! faults keep waiting until then, and they never run on with pages missing. cpr
//! keeps its own copies until the filler says the keeper exists, and only then
//! releases the processes.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use super::RestoreContext;
use super::tracer::Restored;
use super::validate::Loaded;
use crate::engine::objects::lazy_pages::Registered;
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, layout, pages_path};
use crate::sys::file_view::FileView;
use crate::sys::uffd_fill::{self as uffd, Event};

const PAGE: u64 = 4096;
/// Copied on a fault: the page and what follows, for a program reading in order.
const FAULT_CHUNK: u64 = 64 << 10;
/// Copied at a time in the background, between looks at the faults.
const BACKGROUND_CHUNK: u64 = 1 << 20;

/// What lazy restart refuses, before anything is made: compressed page data (it is not
/// at fixed offsets in the pages file). An incremental image is restarted lazily for
/// the mappings whose pages its own statefile holds; the others are read at restart.
pub(super) fn refuse(loaded: &Loaded) -> Result<()> {
    for img in &loaded.images {
        if img.mm.compression.is_some() {
            return Err(Error::with_detail(
                loaded.statefiles[img.sf].path.display().to_string(),
                Kind::NotImplemented,
                "lazy restart of compressed page data (restart without --lazy)",
            ));
        }
    }
    Ok(())
}

/// One restored process as the filler sees it.
struct Target {
    uffd: OwnedFd,
    /// The process, where known (not for a child it forked since).
    pidfd: Option<OwnedFd>,
    view: Rc<FileView>,
    /// Pages still to copy: address now -> (length, offset in the pages file).
    runs: BTreeMap<u64, (u64, u64)>,
}

/// The filler, forked before the tracer threads exist (a fork is only sound while cpr
/// has one thread): it waits on `sock` for the processes registered, then forks the
/// keeper and fills. Dropped unused (a failed restart), the socket's end tells it to go.
pub(super) struct Prepared {
    sock: OwnedFd,
    pid: i32,
}

/// Forks the filler-to-be, while cpr is single-threaded (before `fork_roots`, whose
/// tracer threads stay until release). It closes at once what it inherited of cpr but
/// the socket and the statefiles' directories (a restored process must not find its
/// pipes held open by it).
pub(super) fn prepare(ctx: &RestoreContext) -> Result<Prepared> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let what = || ctx.statefiles[0].path.display().to_string();
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(what())?;
    let pid = crate::sys::fork_with_pid(None, false).ctx(what())?;
    if pid == 0 {
        drop(ours);
        let mut keep: Vec<i32> = vec![theirs.as_raw_fd()];
        keep.extend(linked_statefiles(ctx).iter().map(|s| s.dir_fd()));
        detach(&keep);
        let code = match receive(theirs.as_fd()) {
            Ok(regs) if regs.is_empty() => 0,
            Ok(regs) => run_filler(ctx, &regs, theirs.as_fd()),
            Err(_) => 0, // cpr failed or ended before release: nothing to fill
        };
        crate::sys::exit_now(code);
    }
    drop(theirs);
    Ok(Prepared { sock: ours, pid })
}

/// Hands the processes restored with pages left out to the prepared filler; returns
/// its PID, or None when none was left out (it then exits). cpr's copies of the
/// descriptors are closed here.
pub(super) fn start(
    ctx: &RestoreContext,
    prepared: Prepared,
    restored: &mut [Restored],
) -> Result<Option<i32>> {
    let regs: Vec<(Registered, usize)> = restored
        .iter_mut()
        .filter_map(|r| Some((r.lazy.take()?, r.image)))
        .collect();
    let what = || ctx.statefiles[0].path.display().to_string();
    send(prepared.sock.as_fd(), &regs).ctx(what())?;
    if regs.is_empty() {
        return Ok(None);
    }
    // our copies of the descriptors stay open until the keeper holds its own: before
    // that, a filler that died would leave the processes reading zeros
    let mut word = [0u8; 1];
    let n = loop {
        match nix::unistd::read(&prepared.sock, &mut word) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.unwrap_or(0),
        }
    };
    if n != 1 || word[0] != b'K' {
        return Err(Error::with_detail(
            what(),
            Kind::CheckpointError,
            "lazy restart: the filler process ended before it started",
        ));
    }
    Ok(Some(prepared.pid))
}

/// Segments sent per message (24 bytes each, well under a socket's buffer).
const SEGMENTS_PER_MESSAGE: usize = 2048;

/// Each registration as messages: the first carries its pidfd and userfaultfd
/// (SCM_RIGHTS) and a header, the others more of its segments; a lone b"E" ends.
fn send(sock: BorrowedFd<'_>, regs: &[(Registered, usize)]) -> nix::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    for (r, image) in regs {
        let chunks: Vec<&[(u64, u64, u64)]> = if r.segments.is_empty() {
            vec![&[]]
        } else {
            r.segments.chunks(SEGMENTS_PER_MESSAGE).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let mut msg = Vec::with_capacity(16 + chunk.len() * 24);
            msg.push(if i == 0 { b'R' } else { b'S' });
            msg.extend_from_slice(&r.pid.to_ne_bytes());
            msg.extend_from_slice(&(*image as u64).to_ne_bytes());
            for &(a, l, o) in *chunk {
                for v in [a, l, o] {
                    msg.extend_from_slice(&v.to_ne_bytes());
                }
            }
            let fds = [r.pidfd.as_raw_fd(), r.uffd.as_raw_fd()];
            let cmsg = [ControlMessage::ScmRights(&fds)];
            let iov = [std::io::IoSlice::new(&msg)];
            let cmsgs: &[ControlMessage] = if i == 0 { &cmsg } else { &[] };
            sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)?;
        }
    }
    let iov = [std::io::IoSlice::new(b"E")];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &[], MsgFlags::empty(), None)?;
    Ok(())
}

/// The filler's side of `send`; an error or an end before b"E" is cpr gone.
fn receive(sock: BorrowedFd<'_>) -> nix::Result<Vec<(Registered, usize)>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut regs: Vec<(Registered, usize)> = Vec::new();
    let mut buf = vec![0u8; 16 + SEGMENTS_PER_MESSAGE * 24];
    loop {
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let (len, fds) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let m = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fds: Vec<OwnedFd> = Vec::new();
            for c in m.cmsgs()? {
                if let ControlMessageOwned::ScmRights(got) = c {
                    fds.extend(got.into_iter().map(uffd::own_received));
                }
            }
            (m.bytes, fds)
        };
        let msg = &buf[..len];
        match msg.first() {
            Some(b'E') if len == 1 => return Ok(regs),
            Some(&kind @ (b'R' | b'S')) if len >= 13 && (len - 13) % 24 == 0 => {
                let pid = i32::from_ne_bytes(msg[1..5].try_into().unwrap_or_default());
                let image = u64::from_ne_bytes(msg[5..13].try_into().unwrap_or_default());
                let segments = msg[13..].chunks_exact(24).map(|c| {
                    let v =
                        |i: usize| u64::from_ne_bytes(c[i..i + 8].try_into().unwrap_or_default());
                    (v(0), v(8), v(16))
                });
                if kind == b'R' {
                    let mut fds = fds.into_iter();
                    let (Some(pidfd), Some(uffd)) = (fds.next(), fds.next()) else {
                        return Err(nix::errno::Errno::EPROTO);
                    };
                    regs.push((
                        Registered {
                            pid,
                            pidfd,
                            uffd,
                            segments: segments.collect(),
                        },
                        image as usize,
                    ));
                } else {
                    match regs.last_mut() {
                        Some((r, _)) if r.pid == pid => r.segments.extend(segments),
                        _ => return Err(nix::errno::Errno::EPROTO),
                    }
                }
            }
            _ => return Err(nix::errno::Errno::EPROTO),
        }
    }
}

/// In the filler, with the registrations: forks the keeper, tells cpr on `sock`, then
/// fills. Its exit code.
fn run_filler(ctx: &RestoreContext, regs: &[(Registered, usize)], sock: BorrowedFd<'_>) -> i32 {
    let Ok((done_r, done_w)) = nix::unistd::pipe() else {
        kill_all(regs);
        return 1;
    };
    match crate::sys::fork_with_pid(None, false) {
        Ok(0) => {
            drop(done_w);
            keep(regs, done_r.as_fd());
        }
        Ok(_) => {}
        Err(_) => {
            kill_all(regs);
            return 1;
        }
    }
    drop(done_r);
    if nix::unistd::write(sock, b"K") != Ok(1) {
        // cpr is gone: it fails the restart and kills the processes
        return 1;
    }
    match fill(ctx, regs, done_w.as_fd()) {
        Ok(()) => {
            let _ = nix::unistd::write(&done_w, b"d");
            0
        }
        Err(e) => {
            kill_all(regs);
            eprintln!("cpr: lazy restart: {e}: restarted processes killed");
            1
        }
    }
}

fn kill_all(regs: &[(Registered, usize)]) {
    for (r, _) in regs {
        uffd::kill_pidfd(r.pidfd.as_fd());
    }
}

/// In a forked process: closes every descriptor but `keep` (cpr's copies of what the
/// restored processes share must not live on in it), stdin and stdout on /dev/null, and
/// stderr kept only when it is a terminal (the filler's one line if it fails);
/// a session of its own.
fn detach(keep: &[i32]) {
    uffd::new_session();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ok();
    let tty = nix::unistd::isatty(std::io::stderr()).unwrap_or(false);
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let null_fd = null.as_ref().map(|f| f.as_raw_fd());
    for fd in fds {
        if keep.contains(&fd) || Some(fd) == null_fd || (fd == 2 && tty) {
            continue;
        }
        // what cpr's caller waits on (its output pipes) is let go; 0 to 2 then /dev/null
        let _ = nix::unistd::close(fd);
        if fd <= 2
            && let Some(n) = &null
        {
            let _ = crate::sys::dup_at(n.as_raw_fd(), fd);
        }
    }
}

/// The keeper: waits for the filler's word; without it, kills the restored processes.
fn keep(regs: &[(Registered, usize)], done: BorrowedFd<'_>) -> ! {
    let mut fds: Vec<i32> = vec![done.as_raw_fd()];
    for (r, _) in regs {
        fds.push(r.pidfd.as_raw_fd());
        fds.push(r.uffd.as_raw_fd());
    }
    detach(&fds);
    let mut byte = [0u8; 1];
    let n = loop {
        match nix::unistd::read(done, &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.unwrap_or(0),
        }
    };
    if n != 1 {
        kill_all(regs);
        crate::sys::exit_now(1);
    }
    crate::sys::exit_now(0)
}

/// The filler: checks the page data, then serves faults and fills in the background
/// until every page is in.
fn fill(ctx: &RestoreContext, regs: &[(Registered, usize)], done: BorrowedFd<'_>) -> Result<()> {
    let statefiles = linked_statefiles(ctx);
    let mut keep: Vec<i32> = vec![done.as_raw_fd()];
    keep.extend(statefiles.iter().map(|s| s.dir_fd()));
    for (r, _) in regs {
        keep.push(r.pidfd.as_raw_fd());
        keep.push(r.uffd.as_raw_fd());
    }
    detach(&keep);
    // the page data is sound before any of it is served (the keeper kills the
    // processes if it is not)
    for sf in &statefiles {
        sf.verify_files(layout::is_bulk)?;
    }
    let mut targets = Vec::new();
    for (r, i) in regs {
        let img = &ctx.images[*i];
        let sf = &ctx.statefiles[img.sf];
        let file = sf.open_file(&pages_path(img.core.process.pid))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(sf.path.display().to_string(), e))?;
        let view = FileView::map(&file, 0, len.len() as usize)
            .ctx(format!("process {}: page data", r.pid))?;
        let fd = r.uffd.try_clone().ctx(format!("process {}", r.pid))?;
        targets.push(Target {
            uffd: fd,
            pidfd: r.pidfd.try_clone().ok(),
            view: Rc::new(view),
            runs: r
                .segments
                .iter()
                .map(|&(addr, len, off)| (addr, (len, off)))
                .collect(),
        });
    }
    serve(&mut targets)
}

/// The statefiles restarted and the earlier links of their chains, each once.
fn linked_statefiles(ctx: &RestoreContext) -> Vec<&Statefile> {
    let mut statefiles: Vec<&Statefile> = ctx.statefiles.iter().collect();
    for link in ctx
        .images
        .iter()
        .flat_map(|i| &i.inherited)
        .map(|p| &p.link)
    {
        if !statefiles.iter().any(|s| s.path == link.path) {
            statefiles.push(link);
        }
    }
    statefiles
}

/// Pages of `runs` in `start..end`, taken out: (address, length, offset) each.
fn carve(runs: &mut BTreeMap<u64, (u64, u64)>, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
    let first = runs
        .range(..=start)
        .next_back()
        .map(|(&a, _)| a)
        .unwrap_or(start);
    let keys: Vec<u64> = runs.range(first..end).map(|(&a, _)| a).collect();
    let mut out = Vec::new();
    for a in keys {
        let Some((len, off)) = runs.remove(&a) else {
            continue;
        };
        let e = a + len;
        if e <= start {
            runs.insert(a, (len, off));
            continue;
        }
        if a < start {
            runs.insert(a, (start - a, off));
        }
        if e > end {
            runs.insert(end, (e - end, off + (end - a)));
        }
        let from = a.max(start);
        let to = e.min(end);
        out.push((from, to - from, off + (from - a)));
    }
    out
}

/// What copying a piece came to.
enum Copied {
    Done,
    /// The process's memory map is changing: read its events, then try again.
    Again,
    /// The process is gone.
    Gone,
}

/// Copies the pieces into the process; what could not be copied yet goes back.
fn copy_pieces(t: &mut Target, pieces: Vec<(u64, u64, u64)>) -> Result<Copied> {
    let (base, size) = t.view.addr();
    let mut outcome = Copied::Done;
    for (addr, len, off) in pieces {
        if !matches!(outcome, Copied::Done) {
            t.runs.insert(addr, (len, off));
            continue;
        }
        if off.checked_add(len).is_none_or(|e| e > size as u64) {
            return Err(Error::with_detail(
                format!("page data at {off:#x}"),
                Kind::CheckpointError,
                "beyond the pages file",
            ));
        }
        match uffd::copy(t.uffd.as_fd(), addr, base as u64 + off, len) {
            Ok(_) => {}
            Err((nix::errno::Errno::EEXIST, n)) => {
                // a page there already (filled for a fault meanwhile): the rest goes on
                uffd::wake(t.uffd.as_fd(), addr + n, PAGE);
                let skip = n + PAGE;
                if skip < len {
                    t.runs.insert(addr + skip, (len - skip, off + skip));
                }
            }
            Err((nix::errno::Errno::EAGAIN, n)) => {
                t.runs.insert(addr + n, (len - n, off + n));
                outcome = Copied::Again;
            }
            Err((nix::errno::Errno::ESRCH, _)) => {
                t.runs.clear();
                return Ok(Copied::Gone);
            }
            Err((nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL, _)) => {
                // no longer mapped or registered: its unmap event says so too
            }
            Err((e, _)) => {
                return Err(Error::errno(format!("UFFDIO_COPY at {addr:#x}"), e));
            }
        }
    }
    Ok(outcome)
}

/// A fault at `page`: the page (zeros if no saved page is there) and what follows.
/// False when it must be tried again after the process's events.
fn fault(t: &mut Target, page: u64) -> Result<bool> {
    let pieces = carve(&mut t.runs, page, page + FAULT_CHUNK);
    if pieces.first().is_none_or(|p| p.0 != page) {
        match uffd::zeropage(t.uffd.as_fd(), page, PAGE) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => uffd::wake(t.uffd.as_fd(), page, PAGE),
            Err(nix::errno::Errno::EAGAIN) => {
                for (a, l, o) in pieces {
                    t.runs.insert(a, (l, o));
                }
                return Ok(false);
            }
            Err(_) => {}
        }
    }
    Ok(!matches!(copy_pieces(t, pieces)?, Copied::Again))
}

/// Reads and handles what each process's descriptor has; faults that must wait are
/// put in `retry`.
fn events(targets: &mut Vec<Target>, retry: &mut Vec<(usize, u64)>) -> Result<()> {
    let mut i = 0;
    while i < targets.len() {
        loop {
            let evs = match uffd::read_events(targets[i].uffd.as_fd(), 64) {
                Ok(e) => e,
                Err(_) => {
                    targets[i].runs.clear();
                    break;
                }
            };
            if evs.is_empty() {
                break;
            }
            for ev in evs {
                let t = &mut targets[i];
                match ev {
                    Event::Fault(addr) => {
                        let page = addr & !(PAGE - 1);
                        if !fault(t, page)? {
                            retry.push((i, page));
                        }
                    }
                    Event::Remove { start, end } => {
                        carve(&mut t.runs, start, end);
                    }
                    Event::Remap { from, to, len } => {
                        for (a, l, o) in carve(&mut t.runs, from, from + len) {
                            t.runs.insert(a - from + to, (l, o));
                        }
                    }
                    Event::Fork(fd) => {
                        // the child's memory lacks the same pages
                        let child = Target {
                            uffd: uffd::own_received(fd),
                            pidfd: None,
                            view: t.view.clone(),
                            runs: t.runs.clone(),
                        };
                        targets.push(child);
                    }
                    Event::Other => {}
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// `CPR_LAZY_FILL=faults`: the filler serves faults only, nothing in the background
/// (to see the cost of faults alone; it lives until every page was asked for).
fn faults_only() -> bool {
    std::env::var("CPR_LAZY_FILL").is_ok_and(|v| v == "faults")
}

/// Until every page is in: faults first, then a chunk in the background.
fn serve(targets: &mut Vec<Target>) -> Result<()> {
    let faults_only = faults_only();
    let mut retry: Vec<(usize, u64)> = Vec::new();
    loop {
        events(targets, &mut retry)?;
        for (i, page) in std::mem::take(&mut retry) {
            if !fault(&mut targets[i], page)? {
                retry.push((i, page));
            }
        }
        let Some(t) = targets.iter_mut().find(|t| !t.runs.is_empty()) else {
            if retry.is_empty() {
                return Ok(());
            }
            continue;
        };
        if faults_only {
            let fds: Vec<BorrowedFd<'_>> = targets.iter().map(|t| t.uffd.as_fd()).collect();
            uffd::poll_readable(&fds, if retry.is_empty() { 200 } else { 1 });
            for t in targets.iter_mut() {
                if t.pidfd
                    .as_ref()
                    .is_some_and(|p| !crate::sys::pidfd_alive(p.as_fd()))
                {
                    t.runs.clear();
                }
            }
            continue;
        }
        let (&addr, &(len, _)) = t.runs.iter().next().unwrap_or((&0, &(0, 0)));
        let pieces = carve(&mut t.runs, addr, addr + len.min(BACKGROUND_CHUNK));
        if let Copied::Again = copy_pieces(t, pieces)? {
            // the events are read first, next round; wait for them briefly
            let fds: Vec<BorrowedFd<'_>> = targets.iter().map(|t| t.uffd.as_fd()).collect();
            uffd::poll_readable(&fds, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carving_splits_runs_and_keeps_offsets() {
        let mut runs: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        runs.insert(0x1000, (0x4000, 0));
        runs.insert(0x10000, (0x2000, 0x4000));
        let got = carve(&mut runs, 0x2000, 0x11000);
        assert_eq!(
            got,
            vec![(0x2000, 0x3000, 0x1000), (0x10000, 0x1000, 0x4000)]
        );
        assert_eq!(
            runs.into_iter().collect::<Vec<_>>(),
            vec![(0x1000, (0x1000, 0)), (0x11000, (0x1000, 0x5000))]
        );
    }

    #[test]
    fn carving_outside_takes_nothing() {
        let mut runs: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        runs.insert(0x1000, (0x1000, 0));
        assert!(carve(&mut runs, 0x3000, 0x4000).is_empty());
        assert!(carve(&mut runs, 0x0, 0x1000).is_empty());
        assert_eq!(runs.len(), 1);
    }
}
