//! WILL, once the statefile is durable: EXIT and KILL end the originals, CONT lets them
//! run on; each process as its own policy says.

use std::collections::BTreeMap;

use super::freeze::Freezer;
use crate::attrfile::{ProcessPolicies, WillAction};

pub(super) fn apply(mut frozen: Freezer, policies: &BTreeMap<i32, ProcessPolicies>) {
    let all_cont = policies.values().all(|p| p.will == WillAction::Cont);
    if all_cont {
        frozen.release();
        return;
    }
    // processes with CONT run on; the others end
    let cont = policies
        .iter()
        .filter(|(_, p)| p.will == WillAction::Cont)
        .map(|(pid, _)| *pid);
    for pid in cont {
        frozen.let_run(pid);
    }
    frozen.kill();
}
