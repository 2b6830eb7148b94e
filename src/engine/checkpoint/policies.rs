//! The policies of each frozen process: what the attribute file says for it (matched on
//! its IDs and its ancestors'), with `-w` overriding WILL.

use std::collections::BTreeMap;

use crate::attrfile::{AttrFile, ProcessPolicies, WillAction};
use crate::error::Result;
use crate::target;

/// The policies of every process in `pids`.
pub(super) fn resolve(
    pids: &[i32],
    attributes: &AttrFile,
    will: Option<WillAction>,
) -> Result<BTreeMap<i32, ProcessPolicies>> {
    let mut policies: BTreeMap<i32, ProcessPolicies> = BTreeMap::new();
    for &pid in pids {
        let ids = target::process_ids(pid)?;
        let mut p = attributes.policies_for(&ids, &ancestors(pid));
        if let Some(w) = will {
            p.will = w;
        }
        policies.insert(pid, p);
    }
    Ok(policies)
}

/// The WILL the manifest records: `-w`, else the first process's.
pub(super) fn overall_will(
    will: Option<WillAction>,
    policies: &BTreeMap<i32, ProcessPolicies>,
) -> WillAction {
    will.unwrap_or_else(|| policies.values().next().map(|p| p.will).unwrap_or_default())
}

fn ancestors(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut cur = pid;
    while let Ok(s) = crate::proc::ProcDir::open(cur).and_then(|d| d.stat()) {
        let ppid = s.ppid;
        if ppid <= 0 || out.contains(&ppid) {
            break;
        }
        out.push(ppid);
        cur = ppid;
    }
    out
}
