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
    // the processes of a tree share their ancestors: each one's parent is read once
    let mut parents: BTreeMap<i32, i32> = BTreeMap::new();
    for &pid in pids {
        let ids = target::process_ids(pid)?;
        parents.insert(ids.pid, ids.ppid);
        let mut p = attributes.policies_for(&ids, &ancestors(pid, &mut parents));
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

/// The parents of `pid` up to the first process; `parents` holds those read already.
fn ancestors(pid: i32, parents: &mut BTreeMap<i32, i32>) -> Vec<i32> {
    let mut out = Vec::new();
    let mut cur = pid;
    loop {
        let ppid = match parents.get(&cur) {
            Some(&ppid) => ppid,
            None => match crate::proc::ProcDir::open(cur).and_then(|d| d.stat()) {
                Ok(s) => {
                    parents.insert(cur, s.ppid);
                    s.ppid
                }
                Err(_) => break,
            },
        };
        if ppid <= 0 || out.contains(&ppid) {
            break;
        }
        out.push(ppid);
        cur = ppid;
    }
    out
}
