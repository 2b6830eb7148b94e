//! Seccomp: the filters of every thread, kept with its credentials. Strict mode is
//! refused (a thread in it cannot even make cpr's injected calls).
//! Dump: the classic BPF programs and their flags, read with PTRACE_SECCOMP_GET_FILTER
//! and PTRACE_SECCOMP_GET_METADATA, which need CAP_SYS_ADMIN; cpr's own injected calls
//! pass the filters because the threads are traced with PTRACE_O_SUSPEND_SECCOMP (also
//! CAP_SYS_ADMIN). Without it, a process with filters is refused.
//! Restore: inside the credentials step, while the thread still has cpr's privilege
//! (installing a filter needs no_new_privs or CAP_SYS_ADMIN), oldest first. The filters
//! every thread of the process has in common are installed once for all threads
//! (SECCOMP_FILTER_FLAG_TSYNC), so that they share them again as they did.

use serde::{Deserialize, Serialize};

use super::threads::{ThreadRecord, hex, unhex};
use crate::engine::privilege::{CAP_SYS_ADMIN, has};
use crate::engine::ptrace::{self, Injector, RemoteScratch};
use crate::error::{Error, Kind, Result};
use crate::proc::{ProcDir, status};
use crate::statefile::reader::damaged_record;

/// One filter of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilter {
    /// SECCOMP_FILTER_FLAG_* it was installed with, as far as the kernel tells
    /// (SECCOMP_FILTER_FLAG_LOG).
    pub flags: u64,
    /// Its classic BPF program in hex: 8 bytes (struct sock_filter) per instruction.
    pub program: String,
}

const SECCOMP_MODE_STRICT: u32 = 1;
const SECCOMP_MODE_FILTER: u32 = 2;
const SECCOMP_SET_MODE_FILTER: u64 = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
const SECCOMP_FILTER_FLAG_LOG: u64 = 2;
/// BPF_MAXINSNS: the longest program the kernel takes.
const MAX_INSNS: usize = 4096;
/// A bound on a thread's filters: the kernel counts each as its length plus 4
/// instructions, 256K in all (MAX_INSNS_PER_PATH).
const MAX_FILTERS: usize = (1 << 18) / 5;

/// Refuses a thread (`text`: its /proc/TID/status) in seccomp strict mode, or under
/// filters that this cpr cannot read (it lacks CAP_SYS_ADMIN).
pub fn refuse(dir: &ProcDir, text: &str) -> Result<()> {
    let mode: u32 = dir.parsed("status", text, |t| status::number(t, "Seccomp"))?;
    let why = match mode {
        0 => return Ok(()),
        SECCOMP_MODE_STRICT => "seccomp strict mode is not checkpoint safe",
        SECCOMP_MODE_FILTER if has(CAP_SYS_ADMIN) => return Ok(()),
        SECCOMP_MODE_FILTER => {
            "seccomp filters are checkpoint safe only for a cpr with CAP_SYS_ADMIN \
             (needed to read them)"
        }
        _ => "an unknown seccomp mode is not checkpoint safe",
    };
    Err(Error::with_detail(
        format!("thread {}", dir.pid()),
        Kind::CheckpointError,
        format!("seccomp mode {mode}: {why}"),
    ))
}

/// Whether thread `tid` has filters now (`known`: its status, if already read).
fn filtered(tid: i32, known: Option<&String>) -> Result<bool> {
    let dir = ProcDir::open(tid)?;
    let text = dir.status_or(known.map(String::as_str))?;
    let mode: u32 = dir.parsed("status", &text, |t| status::number(t, "Seccomp"))?;
    Ok(mode == SECCOMP_MODE_FILTER)
}

/// Lets cpr's injected calls pass the filters of the frozen threads `tids` (seized with
/// `options`): PTRACE_O_SUSPEND_SECCOMP, until cpr lets them go.
pub fn suspend_filters<'a>(tids: impl IntoIterator<Item = &'a i32>, options: i32) -> Result<()> {
    suspend_filters_known(tids, options, &Default::default())
}

/// `suspend_filters`, with the status of the threads already read (`statuses`, by TID;
/// the others are read).
pub fn suspend_filters_known<'a>(
    tids: impl IntoIterator<Item = &'a i32>,
    options: i32,
    statuses: &super::process::ThreadStatuses,
) -> Result<()> {
    for &tid in tids {
        if filtered(tid, statuses.get(&tid))? {
            ptrace::set_options(tid, options | libc::PTRACE_O_SUSPEND_SECCOMP)?;
        }
    }
    Ok(())
}

/// The filters of stopped thread `tid` (`text`: its /proc/TID/status), oldest first.
pub fn dump(tid: i32, dir: &ProcDir, text: &str) -> Result<Vec<SeccompFilter>> {
    let mode: u32 = dir.parsed("status", text, |t| status::number(t, "Seccomp"))?;
    if mode != SECCOMP_MODE_FILTER {
        return Ok(Vec::new());
    }
    let count: u64 = dir.parsed("status", text, |t| status::number(t, "Seccomp_filters"))?;
    let mut filters = Vec::new();
    // index 0 is the oldest (the kernel counts back from the newest by count - index)
    for index in 0..count {
        let program = ptrace::seccomp_filter(tid, index)?;
        if notifies(&program) {
            return Err(Error::with_detail(
                format!("thread {tid}"),
                Kind::CheckpointError,
                format!(
                    "seccomp filter {index} hands calls to a user-space listener \
                     (SECCOMP_RET_USER_NOTIF), which is not checkpoint safe"
                ),
            ));
        }
        filters.push(SeccompFilter {
            flags: ptrace::seccomp_flags(tid, index)?,
            program: hex(&program),
        });
    }
    Ok(filters)
}

/// Whether `program` can return SECCOMP_RET_USER_NOTIF (as a constant): its listener,
/// if any, is not visible, and without it the calls would fail with ENOSYS.
fn notifies(program: &[u8]) -> bool {
    const BPF_RET_K: u16 = 0x06;
    const RET_USER_NOTIF: u32 = 0x7fc0_0000;
    const RET_ACTION_FULL: u32 = 0xffff_0000;
    program.chunks_exact(8).any(|insn| {
        let code = u16::from_ne_bytes([insn[0], insn[1]]);
        let k = u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]);
        code == BPF_RET_K && k & RET_ACTION_FULL == RET_USER_NOTIF
    })
}

/// What restore takes as given.
pub fn check(filters: &[SeccompFilter]) -> Result<()> {
    if filters.len() > MAX_FILTERS {
        return Err(damaged_record(format_args!(
            "{} seccomp filters",
            filters.len()
        )));
    }
    for f in filters {
        let len = f.program.len() / 16;
        if f.flags & !SECCOMP_FILTER_FLAG_LOG != 0
            || f.program.len() % 16 != 0
            || len == 0
            || len > MAX_INSNS
        {
            return Err(damaged_record(format_args!("seccomp filter {f:?}")));
        }
        unhex(&f.program)?;
    }
    Ok(())
}

/// The ptrace option the restart tracer needs for threads that get filters back, and
/// the refusal when cpr lacks the privilege for it.
pub fn tracer_option(threads: &[ThreadRecord]) -> Result<i32> {
    if threads.iter().all(|t| filters_of(t).is_empty()) {
        return Ok(0);
    }
    if !has(CAP_SYS_ADMIN) {
        return Err(Error::with_detail(
            "seccomp filters",
            Kind::PermissionDenied,
            "only a cpr with CAP_SYS_ADMIN can restore a process that has them",
        ));
    }
    Ok(libc::PTRACE_O_SUSPEND_SECCOMP)
}

fn filters_of(t: &ThreadRecord) -> &[SeccompFilter] {
    t.creds.as_ref().map(|c| &c.seccomp[..]).unwrap_or(&[])
}

/// How many filters, oldest first, every thread of the process has alike.
fn common(threads: &[ThreadRecord]) -> usize {
    let Some(first) = threads.first() else {
        return 0;
    };
    let first = filters_of(first);
    threads.iter().skip(1).fold(first.len(), |n, t| {
        let other = filters_of(t);
        (0..n.min(other.len()))
            .take_while(|&i| first[i] == other[i])
            .count()
    })
}

/// Installs the filters of thread `idx` of `threads`, oldest first: the main thread
/// (`idx` 0, restored first) those all threads share, for all of them; each thread the
/// rest. Called while the thread still has cpr's privilege.
pub fn restore(
    threads: &[ThreadRecord],
    idx: usize,
    inj: &Injector,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let shared = common(threads);
    let mine = threads.get(idx).map(filters_of).unwrap_or(&[]);
    let (tsync, from) = if idx == 0 { (true, 0) } else { (false, shared) };
    for (i, f) in mine.iter().enumerate().skip(from) {
        let flags = f.flags
            | if tsync && i < shared {
                SECCOMP_FILTER_FLAG_TSYNC
            } else {
                0
            };
        install(f, flags, inj, scratch).map_err(|e| e.context(format!("seccomp filter {i}")))?;
    }
    Ok(())
}

fn install(
    f: &SeccompFilter,
    flags: u64,
    inj: &Injector,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let program = unhex(&f.program)?;
    let mut s = scratch.frame();
    let insns = s.put(&program)?;
    // struct sock_fprog: unsigned short len, then the pointer at offset 8
    let mut fprog = Vec::with_capacity(16);
    fprog.extend_from_slice(&((program.len() / 8) as u64).to_ne_bytes());
    fprog.extend_from_slice(&insns.as_u64().to_ne_bytes());
    let at = s.put(&fprog)?;
    let rc = inj.check(
        "seccomp(SECCOMP_SET_MODE_FILTER)",
        libc::SYS_seccomp,
        [SECCOMP_SET_MODE_FILTER, flags, at.as_u64(), 0, 0, 0],
    )?;
    if rc != 0 {
        // TSYNC names the thread it could not synchronise
        return Err(Error::with_detail(
            format!("thread {rc}"),
            Kind::CheckpointError,
            "its seccomp filters could not be shared again",
        ));
    }
    Ok(())
}

/// The check before release: each thread has its seccomp mode, its number of filters
/// and, read back, the same programs (`statuses`: each thread's /proc status, in order).
pub fn verify_restored(threads: &[(i32, &ThreadRecord)], statuses: &[String]) -> Result<()> {
    for (&(tid, t), text) in threads.iter().zip(statuses) {
        let dir = ProcDir::open(tid)?;
        let saved = filters_of(t);
        let mode: u32 = dir.parsed("status", text, |x| status::number(x, "Seccomp"))?;
        let count: usize = dir.parsed("status", text, |x| status::number(x, "Seccomp_filters"))?;
        let want_mode = if saved.is_empty() {
            0
        } else {
            SECCOMP_MODE_FILTER
        };
        if mode != want_mode || count != saved.len() {
            return Err(differs(
                t.tid,
                format!("mode {want_mode} with {} filters", saved.len()),
                format!("mode {mode} with {count}"),
            ));
        }
        let now = if saved.is_empty() {
            Vec::new()
        } else {
            dump(tid, &dir, text)?
        };
        if let Some(i) = (0..saved.len()).find(|&i| saved[i] != now[i]) {
            return Err(differs(
                t.tid,
                format!("filter {i} {:?}", saved[i]),
                format!("{:?}", now[i]),
            ));
        }
    }
    Ok(())
}

fn differs(tid: i32, saved: String, now: String) -> Error {
    Error::with_detail(
        format!("thread {tid}"),
        Kind::CheckpointError,
        format!("seccomp differs after restart: saved {saved}, now {now}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, k: u32) -> Vec<u8> {
        let mut b = code.to_ne_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&k.to_ne_bytes());
        b
    }

    #[test]
    fn user_notification_is_seen_in_a_return() {
        let allow = insn(0x06, 0x7fff_0000);
        let notify = insn(0x06, 0x7fc0_0000);
        let load = insn(0x20, 0x7fc0_0000);
        assert!(!notifies(&[load.clone(), allow.clone()].concat()));
        assert!(notifies(&[load, notify, allow].concat()));
    }

    #[test]
    fn a_forged_filter_is_a_damaged_record() {
        let good = SeccompFilter {
            flags: SECCOMP_FILTER_FLAG_LOG,
            program: hex(&insn(0x06, 0x7fff_0000)),
        };
        assert!(check(std::slice::from_ref(&good)).is_ok());
        for bad in [
            SeccompFilter {
                flags: SECCOMP_FILTER_FLAG_TSYNC,
                ..good.clone()
            },
            SeccompFilter {
                program: String::new(),
                ..good.clone()
            },
            SeccompFilter {
                program: "00".repeat(7),
                ..good.clone()
            },
            SeccompFilter {
                program: "zz".repeat(8),
                ..good.clone()
            },
            SeccompFilter {
                program: "00".repeat(8 * (MAX_INSNS + 1)),
                ..good.clone()
            },
        ] {
            assert!(check(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
    }
}
