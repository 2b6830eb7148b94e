//! Credentials: supplementary groups, real/effective/saved/filesystem uids and gids,
//! capabilities with the bounding and ambient sets, securebits, no_new_privs. Linux keeps
//! them per thread: each thread record has its own (`ThreadCreds`); the process record
//! keeps the main thread's IDs and capabilities (and is what older statefiles have).
//! Dump: /proc/TID/status, securebits by injection, seccomp filters (`seccomp`).
//! Restore: the very last step, by injection in each thread, so that nothing after it
//! runs with more privilege than the image had.

use serde::{Deserialize, Serialize};

use super::process::ProcessRecord;
use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::Result;
use crate::proc::{ProcDir, status};
use crate::statefile::reader::damaged_record;
use crate::sys::{Caps, CapsetArgs};

/// The credentials of a process, as the process record keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// Real, effective, saved, filesystem.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub caps: Caps,
}

/// The credentials of one thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadCreds {
    /// Real, effective, saved, filesystem.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub caps: Caps,
    pub bounding: u64,
    pub ambient: u64,
    /// SECBIT_* (prctl PR_GET_SECUREBITS).
    pub securebits: u32,
    pub no_new_privs: bool,
    /// Its seccomp filters, oldest first.
    #[serde(default)]
    pub seccomp: Vec<super::seccomp::SeccompFilter>,
}

/// Refuses a thread under seccomp (`text`: its /proc/TID/status) in strict mode, or with
/// filters this cpr cannot read.
pub fn refuse_seccomp(dir: &ProcDir, text: &str) -> Result<()> {
    super::seccomp::refuse(dir, text)
}

/// Every SECBIT_* flag and its lock.
const SECUREBITS_ALL: u32 = 0xff;
const SECBIT_KEEP_CAPS: u32 = 1 << 4;
const SECBIT_KEEP_CAPS_LOCKED: u32 = 1 << 5;
/// Capabilities this kernel knows (CapBnd of a process that dropped none).
const CAP_LAST: u32 = 63;

impl ThreadCreds {
    /// Thread `tid`'s, from /proc/TID/status, and `securebits`, what PR_GET_SECUREBITS
    /// answered in the thread. `dir` is /proc/TID, `text` the text of its status.
    pub fn dump(tid: i32, securebits: u32, dir: &ProcDir, text: &str) -> Result<ThreadCreds> {
        refuse_seccomp(dir, text)?;
        let base = dump(dir, text)?;
        let seccomp = super::seccomp::dump(tid, dir, text)?;
        dir.parsed("status", text, |t| {
            Ok(ThreadCreds {
                uids: base.uids,
                gids: base.gids,
                groups: base.groups,
                caps: base.caps,
                bounding: status::mask(t, "CapBnd")?,
                ambient: status::mask(t, "CapAmb")?,
                securebits,
                no_new_privs: status::number::<u32>(t, "NoNewPrivs")? != 0,
                seccomp,
            })
        })
    }

    /// What restore takes as given.
    pub fn check(&self) -> Result<()> {
        if self.securebits & !SECUREBITS_ALL != 0
            || self.caps.effective & !self.caps.permitted != 0
            || self.ambient & !(self.caps.permitted & self.caps.inheritable) != 0
        {
            return Err(damaged_record(format_args!("credentials {self:?}")));
        }
        super::seccomp::check(&self.seccomp)
    }

    /// The same, for a statefile written before threads had their own: the process's,
    /// with the sets it did not keep as they are now.
    fn of_process(rec: &ProcessRecord) -> ThreadCreds {
        ThreadCreds {
            uids: rec.uids,
            gids: rec.gids,
            groups: rec.groups.clone(),
            caps: rec.caps,
            bounding: u64::MAX,
            ambient: 0,
            securebits: 0,
            no_new_privs: false,
            seccomp: Vec::new(),
        }
    }
}

/// Reads the credentials from `status_text`, the text of /proc/PID/status of `dir`.
pub fn dump(dir: &ProcDir, status_text: &str) -> Result<Creds> {
    dir.parsed("status", status_text, |text| {
        Ok(Creds {
            uids: status::ids(text, "Uid")?,
            gids: status::ids(text, "Gid")?,
            groups: status::groups(text)?,
            caps: Caps {
                inheritable: status::mask(text, "CapInh")?,
                permitted: status::mask(text, "CapPrm")?,
                effective: status::mask(text, "CapEff")?,
            },
        })
    })
}

/// The very last step of a restore, in each thread: bounding set, securebits, groups,
/// gids, uids, capabilities, ambient set, no_new_privs; those of thread record `t`, or
/// from an older statefile the process's. `inj` runs calls in the thread; `scratch` is
/// argument space in the process.
pub fn restore(
    rec: &ProcessRecord,
    t: Option<&ThreadCreds>,
    inj: &Injector,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let c = t.cloned().unwrap_or_else(|| ThreadCreds::of_process(rec));
    // in one batch (one ptrace round trip where the thread has a runner): each call in
    // order, the first failure the error, as if made one by one; what the calls point to
    // stays in the frame until the batch has run
    let mut s = scratch.frame();
    let mut batch = crate::engine::ptrace::Batch::new();
    let prctl = |batch: &mut crate::engine::ptrace::Batch, name: &str, args: [u64; 5]| {
        let [a, b, c2, d, e] = args;
        batch.check(name, libc::SYS_prctl, [a, b, c2, d, e, 0], None);
    };
    for cap in 0..=CAP_LAST {
        if c.bounding & (1 << cap) == 0 {
            // EINVAL: a capability this kernel does not have
            batch.call(
                libc::SYS_prctl,
                [libc::PR_CAPBSET_DROP as u64, cap as u64, 0, 0, 0, 0],
            );
        }
    }
    // the capabilities survive the change of uids: PR_SET_KEEPCAPS, which needs no
    // privilege (put back below); other securebits need CAP_SETPCAP, so they are set only
    // when the image had some
    let locked = c.securebits & SECBIT_KEEP_CAPS_LOCKED != 0;
    if !locked {
        prctl(
            &mut batch,
            "prctl(PR_SET_KEEPCAPS)",
            [libc::PR_SET_KEEPCAPS as u64, 1, 0, 0, 0],
        );
    }
    if c.securebits & !SECBIT_KEEP_CAPS != 0 {
        let bits = if locked {
            c.securebits
        } else {
            c.securebits | SECBIT_KEEP_CAPS
        };
        prctl(
            &mut batch,
            "prctl(PR_SET_SECUREBITS)",
            [libc::PR_SET_SECUREBITS as u64, bits as u64, 0, 0, 0],
        );
    }
    set_ids(&c, &mut batch, &mut s)?;
    // capabilities: never more than the image had
    let caps = s.put_struct(&CapsetArgs::new(0, &c.caps))?;
    batch.check(
        "capset",
        libc::SYS_capset,
        [
            caps.as_u64(),
            (caps + CapsetArgs::DATA_OFFSET).as_u64(),
            0,
            0,
            0,
            0,
        ],
        None,
    );
    if !locked && c.securebits & SECBIT_KEEP_CAPS == 0 {
        prctl(
            &mut batch,
            "prctl(PR_SET_KEEPCAPS)",
            [libc::PR_SET_KEEPCAPS as u64, 0, 0, 0, 0],
        );
    }
    for cap in (0..=CAP_LAST).filter(|cap| c.ambient & (1 << cap) != 0) {
        prctl(
            &mut batch,
            "prctl(PR_CAP_AMBIENT_RAISE)",
            [
                libc::PR_CAP_AMBIENT as u64,
                libc::PR_CAP_AMBIENT_RAISE as u64,
                cap as u64,
                0,
                0,
            ],
        );
    }
    if c.no_new_privs {
        prctl(
            &mut batch,
            "prctl(PR_SET_NO_NEW_PRIVS)",
            [libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0],
        );
    }
    // set either way: cpr made itself dumpable, and a change of ids may have cleared it
    prctl(
        &mut batch,
        "prctl(PR_SET_DUMPABLE)",
        [
            libc::PR_SET_DUMPABLE as u64,
            u64::from(rec.dumpable),
            0,
            0,
            0,
        ],
    );
    // the batch's results are read back from the thread's memory (/proc/PID/mem), which
    // a change of ids or an undumpable image makes unreadable to a cpr without
    // CAP_SYS_PTRACE: then one call at a time, each result from the registers
    let changes_ids = c.uids != [0; 4] || c.gids != [0; 4];
    if (changes_ids || !rec.dumpable) && !crate::engine::privilege::has(CAP_SYS_PTRACE) {
        batch.run(&inj.without_runner(), &mut s)?;
    } else {
        batch.run(inj, &mut s)?;
    }
    Ok(())
}

/// CAP_SYS_PTRACE, capability 19.
const CAP_SYS_PTRACE: u32 = 19;

/// Groups, gids, uids (real, effective, saved, filesystem), added to `batch`; the
/// groups go in `scratch`, which must stay until the batch has run.
fn set_ids(
    c: &ThreadCreds,
    batch: &mut crate::engine::ptrace::Batch,
    scratch: &mut RemoteScratch,
) -> Result<()> {
    let mut g = Vec::new();
    for x in &c.groups {
        g.extend_from_slice(&x.to_ne_bytes());
    }
    // the restore child, a copy of cpr, has cpr's groups; setting them needs CAP_SETGID
    // even when nothing changes, which an ordinary user's cpr lacks
    if !crate::engine::privilege::same_groups(&c.groups) {
        let groups = scratch.put(&g)?;
        batch.check(
            "setgroups",
            libc::SYS_setgroups,
            [c.groups.len() as u64, groups.as_u64(), 0, 0, 0, 0],
            None,
        );
    }
    if c.uids == [0; 4] && c.gids == [0; 4] {
        return Ok(());
    }
    // gids first: once the uids are set, setresgid may no longer be allowed
    let calls = [
        (
            "setresgid",
            libc::SYS_setresgid,
            "setfsgid",
            libc::SYS_setfsgid,
            c.gids,
        ),
        (
            "setresuid",
            libc::SYS_setresuid,
            "setfsuid",
            libc::SYS_setfsuid,
            c.uids,
        ),
    ];
    for (res_name, res_nr, fs_name, fs_nr, ids) in calls {
        let [real, effective, saved, fs] = ids.map(u64::from);
        batch.check(res_name, res_nr, [real, effective, saved, 0, 0, 0], None);
        batch.check(fs_name, fs_nr, [fs, 0, 0, 0, 0, 0], None);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_reads_this_process() {
        let dir = ProcDir::open(std::process::id() as i32).unwrap();
        let text = dir.status_text().unwrap();
        let creds = dump(&dir, &text).unwrap();
        assert_eq!(creds.uids[0], nix::unistd::getuid().as_raw());
        assert_eq!(creds.gids[1], nix::unistd::getegid().as_raw());
        let msg = dump(&dir, &text.replace("CapEff:", "CapEf:"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/status") && msg.contains("no CapEff line"),
            "{msg}"
        );
    }
}
