//! The process record: identity (IDs, command line), resource limits, working and root
//! directories, umask, personality, nice value and scheduling policy, restored natively
//! in the restore child. Credentials are read here with the record; creds.rs restores
//! them, last.

use serde::{Deserialize, Serialize};

use crate::attrfile::DirAction;
use crate::engine::procfs;
use crate::error::{Context, Error, Kind, Result};
use crate::sys::Caps;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub comm: String,
    pub args: Vec<String>,
    pub exe: String,
    pub cwd: String,
    pub root: String,
    pub umask: u32,
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub caps: Caps,
    /// (resource, soft, hard)
    pub rlimits: Vec<(i32, u64, u64)>,
    pub personality: u64,
    pub nice: i32,
    pub sched_policy: i32,
    pub sched_priority: i32,
    pub dumpable: bool,
}

/// The four IDs of a `Uid:` or `Gid:` line of /proc/PID/status.
fn ids4(pid: i32, status: &str, key: &str) -> Result<[u32; 4]> {
    crate::proc::status::ids(status, key).map_err(|e| e.context(format!("/proc/{pid}/status")))
}

/// A hexadecimal mask (`CapEff:`, ...) of /proc/PID/status.
fn hex_field(pid: i32, status: &str, key: &str) -> Result<u64> {
    crate::proc::status::mask(status, key).map_err(|e| e.context(format!("/proc/{pid}/status")))
}

const RLIMITS: [i32; 16] = [
    libc::RLIMIT_CPU as i32,
    libc::RLIMIT_FSIZE as i32,
    libc::RLIMIT_DATA as i32,
    libc::RLIMIT_STACK as i32,
    libc::RLIMIT_CORE as i32,
    libc::RLIMIT_RSS as i32,
    libc::RLIMIT_NPROC as i32,
    libc::RLIMIT_NOFILE as i32,
    libc::RLIMIT_MEMLOCK as i32,
    libc::RLIMIT_AS as i32,
    libc::RLIMIT_LOCKS as i32,
    libc::RLIMIT_SIGPENDING as i32,
    libc::RLIMIT_MSGQUEUE as i32,
    libc::RLIMIT_NICE as i32,
    libc::RLIMIT_RTPRIO as i32,
    libc::RLIMIT_RTTIME as i32,
];

pub fn dump(pid: i32) -> Result<ProcessRecord> {
    let who = format!("process {pid}");
    let stat = procfs::read_stat(pid)?;
    let status = procfs::read_status(pid)?;
    let link = |name: &str| -> Result<String> {
        std::fs::read_link(format!("/proc/{pid}/{name}"))
            .map(|p| p.to_string_lossy().into_owned())
            .ctx(format!("{who}: {name}"))
    };
    // prlimit on another user's process needs CAP_SYS_RESOURCE, which root may lack;
    // /proc/PID/limits says the same to anyone who may trace the process
    let from_proc = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .map(|text| parse_limits(&text).map_err(|e| e.context(format!("/proc/{pid}/limits"))))
        .transpose()?;
    let mut rlimits = Vec::new();
    for (i, r) in RLIMITS.into_iter().enumerate() {
        let (soft, hard) = match crate::sys::prlimit(pid, r, None) {
            Ok(l) => l,
            Err(e) => *from_proc
                .as_ref()
                .and_then(|l| l.get(i))
                .ok_or_else(|| Error::errno(format!("{who}: resource limits"), e))?,
        };
        rlimits.push((r, soft, hard));
    }
    let personality = std::fs::read_to_string(format!("/proc/{pid}/personality"))
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(0);
    // stat field 41 = scheduling policy, 40 = real-time priority
    let policy = (stat.field(41) as i32, stat.field(40) as i32);
    Ok(ProcessRecord {
        pid,
        ppid: stat.field(4) as i32,
        pgid: stat.field(5) as i32,
        sid: stat.field(6) as i32,
        comm: stat.comm.clone(),
        args: procfs::read_cmdline(pid)?,
        exe: link("exe")?,
        cwd: link("cwd")?,
        root: link("root")?,
        umask: procfs::status_field(&status, "Umask")
            .and_then(|v| u32::from_str_radix(v, 8).ok())
            .unwrap_or(0o022),
        uids: ids4(pid, &status, "Uid")?,
        gids: ids4(pid, &status, "Gid")?,
        groups: procfs::status_field(&status, "Groups")
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
        caps: Caps {
            inheritable: hex_field(pid, &status, "CapInh")?,
            permitted: hex_field(pid, &status, "CapPrm")?,
            effective: hex_field(pid, &status, "CapEff")?,
        },
        rlimits,
        personality,
        nice: stat.field(19) as i64 as i32,
        sched_policy: policy.0,
        sched_priority: policy.1,
        dumpable: true,
    })
}

/// /proc/PID/limits: (soft, hard) of each resource, in RLIMIT_* order.
fn parse_limits(text: &str) -> Result<Vec<(u64, u64)>> {
    crate::proc::limits::parse(text)
}

/// In the restore child: what the process is, except credentials. Runs as root before
/// the address space is replaced.
pub fn restore_native(rec: &ProcessRecord, cdir: DirAction, rdir: DirAction) -> Result<()> {
    let who = format!("process {}", rec.pid);
    // the working directory is looked up before a chroot changes what paths mean
    let cwd = if cdir == DirAction::Replace {
        Some(std::fs::File::open(&rec.cwd).ctx(format!("{who}: working directory {}", rec.cwd))?)
    } else {
        None
    };
    if rdir == DirAction::Replace && rec.root != "/" {
        nix::unistd::chroot(rec.root.as_str())
            .ctx(format!("{who}: root directory {}", rec.root))?;
    }
    if let Some(dir) = cwd {
        nix::unistd::fchdir(&dir).ctx(format!("{who}: working directory {}", rec.cwd))?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(rec.umask));
    for &(r, soft, hard) in &rec.rlimits {
        if let Err(e) = crate::sys::prlimit(0, r, Some((soft, hard))) {
            let (_, my_hard) = crate::sys::prlimit(0, r, None).unwrap_or((0, 0));
            if hard > my_hard {
                return Err(Error::with_detail(
                    who,
                    Kind::NotPermitted,
                    format!(
                        "resource limit {r}: hard limit {hard} is above cpr's own {my_hard} and this system denies raising it (no CAP_SYS_RESOURCE)"
                    ),
                ));
            }
            return Err(Error::errno(format!("{who}: resource limit {r}"), e));
        }
    }
    if rec.personality != 0 {
        nix::sys::personality::set(nix::sys::personality::Persona::from_bits_retain(
            rec.personality as i32,
        ))
        .ctx(format!("{who}: personality"))?;
    }
    if crate::sys::setpriority_self(rec.nice) < 0 {
        return Err(Error::errno(
            format!("{who}: nice {}", rec.nice),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n";
        let l = parse_limits(text).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0], (u64::MAX, u64::MAX));
        assert_eq!(l[3], (8388608, u64::MAX));
    }
}
