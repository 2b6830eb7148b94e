//! The ordinary user the permission tests run programs as, `cpruser`.

use std::process::Command;

pub const USER: &str = "cpruser";

/// The uid and gid of `cpruser`, created (without a home) if it does not exist. `None`
/// outside CI where this machine cannot make one.
pub fn user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        // another test binary may be creating it at the same moment: look again after
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", USER])
            .output();
    }
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => {
            assert!(!super::in_ci(), "cannot create the user {USER}");
            eprintln!("skipped: no user {USER} and useradd failed");
            None
        }
    }
}
