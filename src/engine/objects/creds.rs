//! Credentials: supplementary groups, real/effective/saved/filesystem uids and gids,
//! capabilities. Dump: the `uids`, `gids`, `groups` and `caps` fields of the process
//! record, read from /proc/PID/status with the process record (process.rs). Restore: the
//! very last step, by injection, so that nothing after it runs with more privilege than
//! the image had.

use super::process::ProcessRecord;
use crate::engine::ptrace::{Injector, RemoteScratch};
use crate::error::Result;
use crate::sys::CapsetArgs;

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
    inj.check(
        "setgroups",
        libc::SYS_setgroups,
        [rec.groups.len() as u64, groups.as_u64(), 0, 0, 0, 0],
    )?;
    if !same_as_root {
        inj.check(
            "setresgid",
            libc::SYS_setresgid,
            [
                rec.gids[0] as u64,
                rec.gids[1] as u64,
                rec.gids[2] as u64,
                0,
                0,
                0,
            ],
        )?;
        inj.check(
            "setfsgid",
            libc::SYS_setfsgid,
            [rec.gids[3] as u64, 0, 0, 0, 0, 0],
        )?;
        inj.check(
            "setresuid",
            libc::SYS_setresuid,
            [
                rec.uids[0] as u64,
                rec.uids[1] as u64,
                rec.uids[2] as u64,
                0,
                0,
                0,
            ],
        )?;
        inj.check(
            "setfsuid",
            libc::SYS_setfsuid,
            [rec.uids[3] as u64, 0, 0, 0, 0, 0],
        )?;
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
