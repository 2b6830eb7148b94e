//! Credentials: supplementary groups, real/effective/saved/filesystem uids and gids,
//! capabilities. Dump: the `uids`, `gids`, `groups` and `caps` fields of the process
//! record (process.rs), read from /proc/PID/status. Restore: the very last step, by
//! injection, so that nothing after it runs with more privilege than the image had.

use super::process::ProcessRecord;
use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::Result;
use crate::proc::{ProcDir, status};
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

/// The very last step of a restore: groups, gids, uids and capabilities, in the
/// process itself. `scratch` is argument space there.
pub fn restore(rec: &ProcessRecord, inj: &Injector, scratch: &mut RemoteScratch) -> Result<()> {
    let same_as_root = rec.uids == [0; 4] && rec.gids == [0; 4];
    let mut g = Vec::new();
    for x in &rec.groups {
        g.extend_from_slice(&x.to_ne_bytes());
    }
    let mut s = scratch.frame();
    let groups = s.put(&g)?;
    // the restore child, a copy of cpr, has cpr's groups; setting them needs CAP_SETGID
    // even when nothing changes, which an ordinary user's cpr lacks
    if !crate::engine::privilege::same_groups(&rec.groups) {
        inj.check(
            "setgroups",
            libc::SYS_setgroups,
            [rec.groups.len() as u64, groups.as_u64(), 0, 0, 0, 0],
        )?;
    }
    if !same_as_root {
        // gids first: once the uids are set, setresgid may no longer be allowed
        let calls = [
            (
                "setresgid",
                libc::SYS_setresgid,
                "setfsgid",
                libc::SYS_setfsgid,
                rec.gids,
            ),
            (
                "setresuid",
                libc::SYS_setresuid,
                "setfsuid",
                libc::SYS_setfsuid,
                rec.uids,
            ),
        ];
        for (res_name, res_nr, fs_name, fs_nr, ids) in calls {
            let [real, effective, saved, fs] = ids.map(u64::from);
            inj.check(res_name, res_nr, [real, effective, saved, 0, 0, 0])?;
            inj.check(fs_name, fs_nr, [fs, 0, 0, 0, 0, 0])?;
        }
    }
    // capabilities: never more than the image had
    let caps = s.put_struct(&CapsetArgs::new(0, &rec.caps))?;
    inj.check(
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
    )?;
    if rec.dumpable {
        inj.check(
            "prctl(PR_SET_DUMPABLE)",
            libc::SYS_prctl,
            [libc::PR_SET_DUMPABLE as u64, 1, 0, 0, 0, 0],
        )?;
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
