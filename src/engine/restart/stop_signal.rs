//! Which signal stops a process that job control had stopped at checkpoint time. Its own
//! (SIGTSTP, SIGTTIN, SIGTTOU), so that its parent's waitpid(WUNTRACED) reports the same
//! stop, wherever the kernel would act on it: it discards those three, unlike SIGSTOP,
//! for a process of an orphaned process group (one where no member has a parent in
//! another group of the same session), and for a process that catches, ignores or
//! blocks the signal they are not stops. There it is SIGSTOP.

use std::collections::BTreeMap;

use crate::engine::objects::signals::SignalsRecord;
use crate::error::Result;
use crate::proc::Stat;

/// The signal to send to restored process `pid` (released right after) that was stopped
/// by `saved`, with its dispositions and its main thread's mask as restored.
pub(super) fn signal_to_stop(
    pid: i32,
    saved: i32,
    signals: &SignalsRecord,
    mask: u64,
) -> Result<i32> {
    if saved == libc::SIGSTOP {
        return Ok(saved);
    }
    let at_default = signals
        .actions
        .iter()
        .all(|(sig, act)| *sig != saved || act.handler == 0);
    let blocked = mask & (1u64 << (saved - 1)) != 0;
    if !at_default || blocked {
        return Ok(libc::SIGSTOP);
    }
    let all = crate::target::scan_processes()?;
    let group = all.get(&pid).map(|s| s.pgrp).unwrap_or(0);
    Ok(if orphaned(&all, group) {
        libc::SIGSTOP
    } else {
        saved
    })
}

/// Whether process group `pgid` is orphaned, as the kernel decides it
/// (will_become_orphaned_pgrp): no live member has a parent, other than init, in another
/// group of its session.
fn orphaned(all: &BTreeMap<i32, Stat>, pgid: i32) -> bool {
    !all.values()
        .filter(|p| p.pgrp == pgid && p.state != 'Z' && p.state != 'X' && p.ppid > 1)
        .any(|p| {
            all.get(&p.ppid)
                .is_some_and(|parent| parent.pgrp != pgid && parent.session == p.session)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: i32, ppid: i32, pgrp: i32, session: i32, state: char) -> (i32, Stat) {
        let text = format!(
            "{pid} (x) {state} {ppid} {pgrp} {session} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"
        );
        (pid, crate::proc::stat::parse(&text).expect("stat fixture"))
    }

    #[test]
    fn a_group_with_a_parent_in_another_group_of_the_session_is_not_orphaned() {
        // M (10, session leader) is the parent of P (11), which leads group 11 with C (12)
        let all: BTreeMap<i32, Stat> = [
            stat(10, 1, 10, 10, 'S'),
            stat(11, 10, 11, 10, 'S'),
            stat(12, 11, 11, 10, 'T'),
        ]
        .into();
        assert!(!orphaned(&all, 11));
        // M's own group: its parent is init
        assert!(orphaned(&all, 10));
        // P a zombie: only C is left, whose parent is in the group
        let mut gone = all.clone();
        gone.insert(11, stat(11, 10, 11, 10, 'Z').1);
        assert!(orphaned(&gone, 11));
        // M in another session: orphaned
        let mut other = all;
        other.insert(10, stat(10, 1, 10, 9, 'S').1);
        assert!(orphaned(&other, 11));
    }
}
