//! Pseudo-terminals whose master (/dev/ptmx) and slave descriptors are all in the
//! checkpoint. Saved once per pty: the slave's termios, the window size and the master's
//! packet mode. Restart opens a new pty in cpr with those, before the processes exist;
//! every master descriptor shares its one description, every slave descriptor opens the
//! slave again. The pty's number (ptsname) is the new pty's.
//!
//! Refused: a master with no slave descriptor in the checkpoint (its other side is
//! elsewhere), a locked pty, a pty that is a controlling terminal, and bytes in flight
//! either way (a terminal's queues cannot be read without taking them).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::files::FdKind;
use super::shared_fds::ProcessFds;
use crate::error::{Context, Error, Kind, Result};

/// The kernel's `struct termios`, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termios {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub line: u8,
    pub cc: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyRecord {
    /// Its number at checkpoint.
    pub index: u32,
    /// Entries of the table of shared objects: the master, and a slave to open again.
    pub master_id: u32,
    pub slave_id: u32,
    pub termios: Termios,
    /// rows, columns, x pixels, y pixels.
    pub winsize: [u16; 4],
    pub packet: bool,
    /// The slave's owner, group and permission bits (`None`: an older statefile).
    #[serde(default)]
    pub slave_owner: Option<(u32, u32, u32)>,
}

/// Gives the new slave the owner and mode the old one had, where they differ (an
/// ordinary user's restart makes a slave that is already theirs).
fn set_slave_owner(slave: &OwnedFd, uid: u32, gid: u32, mode: u32) -> nix::Result<()> {
    use nix::sys::stat::{Mode, fchmod, fstat};
    if mode & !0o7777 != 0 {
        return Err(nix::errno::Errno::EINVAL);
    }
    let st = fstat(slave)?;
    if (st.st_uid, st.st_gid) != (uid, gid) {
        nix::unistd::fchown(
            slave,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    if st.st_mode & 0o7777 != mode {
        fchmod(slave, Mode::from_bits_truncate(mode))?;
    }
    Ok(())
}

/// The pty number of a slave path (`/dev/pts/N`).
fn slave_index(path: &str) -> Option<u32> {
    path.strip_prefix("/dev/pts/")?.parse().ok()
}

fn refuse(pid: i32, fd: i32, what: String) -> Error {
    Error::with_detail(
        format!("process {pid} fd {fd}"),
        Kind::CheckpointError,
        format!("{what} is not checkpoint safe"),
    )
}

/// Once every process is read: each pty whose master is in the checkpoint, once, with
/// its descriptors marked (ids from `first_id` on, two per pty).
pub(super) fn collect(procs: &mut [ProcessFds<'_>], first_id: u32) -> Result<Vec<PtyRecord>> {
    let mut out: Vec<PtyRecord> = Vec::new();
    for pi in 0..procs.len() {
        for fi in 0..procs[pi].fds.len() {
            let (pid, r) = (procs[pi].pid, &procs[pi].fds[fi]);
            let FdKind::PtyMaster { index } = r.kind else {
                continue;
            };
            if !out.iter().any(|p| p.index == index) {
                let id = first_id + 2 * out.len() as u32;
                out.push(save(procs, pid, r.fd, index, id)?);
            }
            let rec = out.iter().find(|p| p.index == index).map(|p| p.master_id);
            procs[pi].fds[fi].inode = rec;
        }
    }
    for p in procs.iter_mut() {
        for r in p.fds.iter_mut() {
            let Some(index) = slave_index(&r.path).filter(|_| r.kind == FdKind::Device) else {
                continue;
            };
            if let Some(pty) = out.iter().find(|p| p.index == index) {
                r.kind = FdKind::PtySlave { index };
                r.inode = Some(pty.slave_id);
            }
        }
    }
    Ok(out)
}

/// What `collect` would refuse, read from running processes (`cpr -c --dry-run`): each
/// pty master in `procs` checked as the checkpoint checks it, once per pty.
pub(super) fn refusals(procs: &[ProcessFds<'_>]) -> Vec<Error> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for p in procs {
        for r in p.fds.iter() {
            let FdKind::PtyMaster { index } = r.kind else {
                continue;
            };
            if seen.contains(&index) {
                continue;
            }
            seen.push(index);
            if let Err(e) = save(procs, p.pid, r.fd, index, 0) {
                out.push(e);
            }
        }
    }
    out
}

fn save(procs: &[ProcessFds<'_>], pid: i32, fd: i32, index: u32, id: u32) -> Result<PtyRecord> {
    use crate::sys::pty;
    let who = format!("process {pid} fd {fd} (pty {index})");
    let master = crate::sys::steal_fd(pid, fd).ctx(&who)?;
    let m = master.as_raw_fd();
    let slave_holder = procs.iter().find_map(|p| {
        p.fds
            .iter()
            .find(|r| r.kind == FdKind::Device && slave_index(&r.path) == Some(index))
            .map(|r| (p.pid, r.fd))
    });
    let Some((spid, sfd)) = slave_holder else {
        return Err(refuse(
            pid,
            fd,
            format!("/dev/pts/{index}: a pty master whose slave is not open in the checkpoint"),
        ));
    };
    let slave = crate::sys::steal_fd(spid, sfd).ctx(&who)?;
    let s = slave.as_raw_fd();
    if pty::pty_locked(m).ctx(&who)? {
        return Err(refuse(pid, fd, format!("/dev/pts/{index}: a locked pty")));
    }
    // asked on the master: on the slave, TIOCGSID answers only to the terminal's own
    // session, and the session need not hold the slave as a descriptor at all (zdtm tty03)
    if let Ok(sid) = pty::session_of(m) {
        return Err(refuse(
            pid,
            fd,
            format!("/dev/pts/{index}: a pty that is the controlling terminal of session {sid}"),
        ));
    }
    let to_master = crate::sys::pipe_bytes(m).ctx(&who)?;
    let to_slave = crate::sys::pipe_bytes(s).ctx(&who)?;
    if to_master + to_slave != 0 {
        return Err(refuse(
            pid,
            fd,
            format!(
                "/dev/pts/{index}: a pty with bytes in flight ({to_master} to the master, {to_slave} to the slave)"
            ),
        ));
    }
    let t = pty::termios(m).ctx(&who)?;
    Ok(PtyRecord {
        index,
        master_id: id,
        slave_id: id + 1,
        termios: Termios {
            iflag: t.c_iflag,
            oflag: t.c_oflag,
            cflag: t.c_cflag,
            lflag: t.c_lflag,
            line: t.c_line,
            cc: t.c_cc.to_vec(),
        },
        winsize: pty::window_size(m).ctx(&who)?,
        packet: pty::packet_mode(m).ctx(&who)?,
        slave_owner: {
            let st = nix::sys::stat::fstat(&slave).ctx(format!("{who}: slave"))?;
            Some((st.st_uid, st.st_gid, st.st_mode & 0o7777))
        },
    })
}

/// The number of the pty behind a master descriptor, if `fd` of `pid` is one.
pub(super) fn master_index(pid: i32, fd: i32, who: &str) -> Result<u32> {
    let ours = crate::sys::steal_fd(pid, fd).ctx(who)?;
    crate::sys::pty::pty_number(ours.as_raw_fd()).ctx(who)
}

/// In cpr, before the processes exist: a new pty for each, set up as saved; its master
/// and a slave descriptor by the record's ids.
pub(super) fn open_all(ptys: &[PtyRecord]) -> Result<BTreeMap<u32, OwnedFd>> {
    use crate::sys::pty;
    let mut out = BTreeMap::new();
    for p in ptys {
        let who = format!("pty {}", p.index);
        let mut t = libc::termios {
            c_iflag: 0,
            c_oflag: 0,
            c_cflag: 0,
            c_lflag: 0,
            c_line: 0,
            c_cc: [0; libc::NCCS],
            c_ispeed: 0,
            c_ospeed: 0,
        };
        if p.termios.cc.len() != t.c_cc.len() {
            return Err(crate::statefile::reader::damaged_record(format!(
                "{who}: {} control characters",
                p.termios.cc.len()
            )));
        }
        t.c_iflag = p.termios.iflag;
        t.c_oflag = p.termios.oflag;
        t.c_cflag = p.termios.cflag;
        t.c_lflag = p.termios.lflag;
        t.c_line = p.termios.line;
        t.c_cc.copy_from_slice(&p.termios.cc);
        let master: OwnedFd =
            super::files::open_path("/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY).ctx(&who)?;
        let m = master.as_raw_fd();
        pty::set_pty_locked(m, false).ctx(&who)?;
        let n = pty::pty_number(m).ctx(&who)?;
        let slave =
            super::files::open_path(&format!("/dev/pts/{n}"), libc::O_RDWR | libc::O_NOCTTY)
                .ctx(&who)?;
        pty::set_termios(slave.as_raw_fd(), &t).ctx(format!("{who}: termios"))?;
        pty::set_window_size(m, p.winsize).ctx(format!("{who}: window size"))?;
        pty::set_packet_mode(m, p.packet).ctx(format!("{who}: packet mode"))?;
        if let Some((uid, gid, mode)) = p.slave_owner {
            set_slave_owner(&slave, uid, gid, mode).ctx(format!("{who}: slave owner"))?;
        }
        out.insert(p.master_id, master);
        out.insert(p.slave_id, slave);
    }
    Ok(out)
}
