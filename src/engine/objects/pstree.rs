//! The process tree: who is whose parent, process groups and sessions, zombies. Dump
//! records zombies (live processes carry their IDs in their own records); restore plans
//! who forks whom so that parents, groups and sessions come back, including groups and
//! sessions whose leader had already exited (a short-lived helper with the leader's PID
//! recreates them).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const TREE: &str = crate::statefile::layout::PSTREE;

/// A child that had exited and was not yet reaped by its (checkpointed) parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zombie {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// The wait(2) status its parent will reap.
    pub status: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    pub zombies: Vec<Zombie>,
}

/// Reads a zombie's IDs and exit status from /proc.
pub fn zombie(pid: i32) -> Option<Zombie> {
    let s = crate::proc::ProcDir::open(pid)
        .and_then(|d| d.stat())
        .ok()?;
    if s.state != 'Z' {
        return None;
    }
    Some(Zombie {
        pid,
        ppid: s.ppid,
        pgid: s.pgrp,
        sid: s.session,
        status: s.exit_code,
    })
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A live process: index into the images.
    Process(usize),
    Zombie(Zombie),
    /// Holds a PID whose process had exited, to recreate its group or session, then exits.
    Helper,
}

/// What a node does about its session and group right after it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOp {
    /// setsid(): leads a new session (and group).
    Setsid,
    /// setpgid(0, 0): leads a new group in the inherited session.
    NewGroup,
    /// setpgid(0, pgid): joins a group of its session (best effort).
    JoinGroup(i32),
    /// Keeps what it inherited.
    Keep,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub role: Role,
    pub session: SessionOp,
    /// Forked by this node (its children in the restored tree).
    pub children: Vec<usize>,
    /// Forked by this node with CLONE_PARENT: they share its parent, and inherit its
    /// session and group.
    pub siblings: Vec<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub nodes: Vec<Node>,
    /// Forked by cpr itself.
    pub roots: Vec<usize>,
}

/// IDs of one live process for planning.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
}

impl Plan {
    /// Every node `n` forks, directly or not (its subtree).
    pub fn subtree(&self, n: usize) -> Vec<usize> {
        let mut out = vec![n];
        let mut i = 0;
        while i < out.len() {
            let node = &self.nodes[out[i]];
            out.extend(node.children.iter().chain(node.siblings.iter()).copied());
            i += 1;
        }
        out
    }
}

/// Plans one statefile's processes (`procs`, image index = position + `base`) and zombies.
/// `pid_free` tells whether a helper may take a PID. With `interactive` (-j) the roots
/// stay in cpr's session.
pub fn plan(
    plan: &mut Plan,
    procs: &[Ids],
    base: usize,
    zombies: &[Zombie],
    interactive: bool,
    pid_free: &dyn Fn(i32) -> bool,
) {
    let first = plan.nodes.len();
    let mut by_pid: BTreeMap<i32, usize> = BTreeMap::new();
    for (i, p) in procs.iter().enumerate() {
        by_pid.insert(p.pid, plan.nodes.len());
        plan.nodes.push(Node {
            pid: p.pid,
            pgid: p.pgid,
            sid: p.sid,
            role: Role::Process(base + i),
            session: SessionOp::Keep,
            children: vec![],
            siblings: vec![],
        });
    }
    let live: BTreeMap<i32, i32> = procs.iter().map(|p| (p.pid, p.ppid)).collect();
    // parents
    let mut roots = Vec::new();
    for (i, p) in procs.iter().enumerate() {
        let n = first + i;
        match by_pid.get(&p.ppid) {
            Some(&parent) if p.ppid != p.pid => plan.nodes[parent].children.push(n),
            _ => roots.push(n),
        }
    }
    for z in zombies {
        if live.contains_key(&z.ppid) {
            let n = plan.nodes.len();
            plan.nodes.push(Node {
                pid: z.pid,
                pgid: z.pgid,
                sid: z.sid,
                role: Role::Zombie(*z),
                session: SessionOp::Keep,
                children: vec![],
                siblings: vec![],
            });
            let parent = by_pid[&z.ppid];
            plan.nodes[parent].children.push(n);
        }
    }
    let top = place_roots(plan, &roots, &by_pid, interactive, pid_free);
    if !interactive {
        lost_leaders(plan, first, pid_free);
    }
    set_sessions(plan, first);
    plan.roots.extend(top);
}

/// The roots' sessions and groups: which lead one, which are forked by the leader of
/// their group (CLONE_PARENT), which by a helper recreating a group whose leader had
/// exited. Returns what cpr itself forks.
fn place_roots(
    plan: &mut Plan,
    roots: &[usize],
    by_pid: &BTreeMap<i32, usize>,
    interactive: bool,
    pid_free: &dyn Fn(i32) -> bool,
) -> Vec<usize> {
    let mut helpers: BTreeMap<i32, usize> = BTreeMap::new();
    let mut top = Vec::new();
    for &r in roots {
        let (pid, pgid, sid) = (plan.nodes[r].pid, plan.nodes[r].pgid, plan.nodes[r].sid);
        let leader_root = roots
            .iter()
            .copied()
            .find(|&o| plan.nodes[o].pid == pgid && o != r);
        let session_gone = !interactive
            && sid != pid
            && (helpers.contains_key(&sid) || !by_pid.contains_key(&sid) && pid_free(sid));
        if session_gone && leader_root.is_none() {
            // the session's leader had exited: a helper with its PID recreates the
            // session, and forks (CLONE_PARENT) what is in it
            let h = helper(plan, &mut helpers, sid, sid, SessionOp::Setsid, &mut top);
            if pgid == pid {
                plan.nodes[r].session = SessionOp::NewGroup;
                plan.nodes[h].siblings.push(r);
                continue;
            }
            if pgid == sid {
                plan.nodes[h].siblings.push(r);
                continue;
            }
            if !by_pid.contains_key(&pgid) && (helpers.contains_key(&pgid) || pid_free(pgid)) {
                let mut in_session = Vec::new();
                let g = helper(
                    plan,
                    &mut helpers,
                    pgid,
                    sid,
                    SessionOp::NewGroup,
                    &mut in_session,
                );
                plan.nodes[h].siblings.extend(in_session);
                plan.nodes[g].siblings.push(r);
                continue;
            }
        }
        if pgid == pid || (!interactive && sid == pid) {
            plan.nodes[r].session = if interactive {
                SessionOp::NewGroup
            } else {
                SessionOp::Setsid
            };
            top.push(r);
        } else if let Some(l) = leader_root {
            plan.nodes[l].siblings.push(r);
        } else if !interactive && !by_pid.contains_key(&pgid) && pid_free(pgid) {
            // the group's leader had exited: a helper with its PID recreates the group
            let h = *helpers.entry(pgid).or_insert_with(|| {
                plan.nodes.push(Node {
                    pid: pgid,
                    pgid,
                    sid: pgid,
                    role: Role::Helper,
                    session: SessionOp::Setsid,
                    children: vec![],
                    siblings: vec![],
                });
                top.push(plan.nodes.len() - 1);
                plan.nodes.len() - 1
            });
            plan.nodes[h].siblings.push(r);
        } else {
            plan.nodes[r].session = if interactive {
                SessionOp::NewGroup
            } else {
                SessionOp::Setsid
            };
            top.push(r);
        }
    }
    top
}

/// The helper with PID `pid` (in session `sid`, doing `op`), made the first time and
/// then added to `made_in`.
fn helper(
    plan: &mut Plan,
    helpers: &mut BTreeMap<i32, usize>,
    pid: i32,
    sid: i32,
    op: SessionOp,
    made_in: &mut Vec<usize>,
) -> usize {
    if let Some(&h) = helpers.get(&pid) {
        return h;
    }
    plan.nodes.push(Node {
        pid,
        pgid: pid,
        sid,
        role: Role::Helper,
        session: op,
        children: vec![],
        siblings: vec![],
    });
    let h = plan.nodes.len() - 1;
    helpers.insert(pid, h);
    made_in.push(h);
    h
}

/// Children in a group of their parent's session whose leader had exited (and was
/// reaped; zdtm zombie01): a helper with the leader's PID, forked by the parent, makes the
/// group again and forks them (CLONE_PARENT), so that they are still the parent's
/// children; the parent reaps the helper (fork.rs).
fn lost_leaders(plan: &mut Plan, first: usize, pid_free: &dyn Fn(i32) -> bool) {
    let mut helpers: BTreeMap<i32, usize> = BTreeMap::new();
    let known = |plan: &Plan, pid: i32| plan.nodes[first..].iter().any(|n| n.pid == pid);
    for n in first..plan.nodes.len() {
        if plan.nodes[n].role == Role::Helper {
            continue;
        }
        let (pgid, sid) = (plan.nodes[n].pgid, plan.nodes[n].sid);
        for k in plan.nodes[n].children.clone() {
            let kid = &plan.nodes[k];
            let lost = kid.pgid != pgid && kid.pgid != kid.pid && kid.sid == sid;
            if !lost || (!helpers.contains_key(&kid.pgid) && known(plan, kid.pgid)) {
                continue;
            }
            let h = match helpers.get(&kid.pgid) {
                Some(&h) if plan.nodes[n].children.contains(&h) => h,
                // one helper per group: the children of another parent join it later
                Some(_) => continue,
                None if !pid_free(kid.pgid) => continue,
                None => {
                    let mut made = Vec::new();
                    let kid_pgid = kid.pgid;
                    let h = helper(
                        plan,
                        &mut helpers,
                        kid_pgid,
                        sid,
                        SessionOp::NewGroup,
                        &mut made,
                    );
                    plan.nodes[n].children.extend(made);
                    h
                }
            };
            plan.nodes[n].children.retain(|&c| c != k);
            plan.nodes[h].siblings.push(k);
        }
    }
}

/// The others: as their parent, unless they led or joined something else; each node's
/// children ordered so that group leaders come before the members that join them.
fn set_sessions(plan: &mut Plan, first: usize) {
    for n in first..plan.nodes.len() {
        let kids = plan.nodes[n].children.clone();
        let (ppgid, psid) = (plan.nodes[n].pgid, plan.nodes[n].sid);
        for k in kids {
            let node = &mut plan.nodes[k];
            node.session = if node.sid == node.pid && node.sid != psid {
                SessionOp::Setsid
            } else if node.pgid == node.pid {
                // (its parent may have joined this group, which only it can make)
                SessionOp::NewGroup
            } else if node.pgid != ppgid {
                SessionOp::JoinGroup(node.pgid)
            } else {
                SessionOp::Keep
            };
        }
        // group leaders (a zombie too: its group lives on with it) before the members
        // that join them; zombies last among each
        let mut kids = std::mem::take(&mut plan.nodes[n].children);
        kids.sort_by_key(|&k| {
            let node = &plan.nodes[k];
            (
                node.pid != node.pgid,
                matches!(node.role, Role::Zombie(_)),
                node.pid,
            )
        });
        plan.nodes[n].children = kids;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pid: i32, ppid: i32, pgid: i32, sid: i32) -> Ids {
        Ids {
            pid,
            ppid,
            pgid,
            sid,
        }
    }

    #[test]
    fn tree_with_groups_sessions_and_zombies() {
        let mut p = Plan::default();
        // a session leader 10 with child 11 (own group), grandchild 12 in 11's group, zombie 13
        let procs = [ids(10, 1, 10, 10), ids(11, 10, 11, 10), ids(12, 11, 11, 10)];
        let z = Zombie {
            pid: 13,
            ppid: 10,
            pgid: 10,
            sid: 10,
            status: 7 << 8,
        };
        plan(&mut p, &procs, 0, &[z], false, &|_| true);
        assert_eq!(p.roots, vec![0]);
        assert_eq!(p.nodes[0].session, SessionOp::Setsid);
        assert_eq!(p.nodes[0].children, vec![1, 3]);
        assert_eq!(p.nodes[1].session, SessionOp::NewGroup);
        assert_eq!(p.nodes[2].session, SessionOp::Keep);
        assert!(matches!(p.nodes[3].role, Role::Zombie(_)));
        assert_eq!(p.subtree(0).len(), 4);
    }

    #[test]
    fn group_whose_leader_exited_gets_a_helper() {
        let mut p = Plan::default();
        let procs = [ids(21, 1, 20, 20), ids(22, 1, 20, 20)];
        plan(&mut p, &procs, 0, &[], false, &|pid| pid == 20);
        assert_eq!(p.roots.len(), 1);
        let h = p.roots[0];
        assert_eq!((p.nodes[h].pid, p.nodes[h].role), (20, Role::Helper));
        assert_eq!(p.nodes[h].siblings, vec![0, 1]);
    }

    #[test]
    fn session_whose_leader_exited_gets_a_helper() {
        let mut p = Plan::default();
        // session 40 (leader gone): 41 leads its group, 42 in group 40, 44 in group 43
        // (leader gone too), 45 in 41's group
        let procs = [
            ids(41, 1, 41, 40),
            ids(42, 1, 40, 40),
            ids(44, 1, 43, 40),
            ids(45, 1, 41, 40),
        ];
        plan(&mut p, &procs, 0, &[], false, &|pid| pid == 40 || pid == 43);
        assert_eq!(p.roots.len(), 1);
        let s = p.roots[0];
        assert_eq!((p.nodes[s].pid, p.nodes[s].role), (40, Role::Helper));
        assert_eq!(p.nodes[s].session, SessionOp::Setsid);
        let g = p.nodes.iter().position(|n| n.pid == 43).unwrap();
        assert_eq!(p.nodes[s].siblings, vec![0, 1, g]);
        assert_eq!(p.nodes[0].session, SessionOp::NewGroup);
        assert_eq!(p.nodes[0].siblings, vec![3]);
        assert_eq!(
            (p.nodes[g].session, &p.nodes[g].siblings),
            (SessionOp::NewGroup, &vec![2])
        );
    }

    #[test]
    fn children_in_a_group_whose_leader_was_reaped_get_a_helper_of_their_parent() {
        let mut p = Plan::default();
        // 50 leads session and group; 52 and zombie 53 are its children in group 51,
        // whose leader exited and was reaped
        let procs = [ids(50, 1, 50, 50), ids(52, 50, 51, 50)];
        let z = Zombie {
            pid: 53,
            ppid: 50,
            pgid: 51,
            sid: 50,
            status: 5 << 8,
        };
        plan(&mut p, &procs, 0, &[z], false, &|pid| pid == 51);
        assert_eq!(p.roots, vec![0]);
        let h = p.nodes.iter().position(|n| n.pid == 51).unwrap();
        assert_eq!(p.nodes[h].role, Role::Helper);
        assert_eq!(p.nodes[h].session, SessionOp::NewGroup);
        assert_eq!(p.nodes[0].children, vec![h]);
        assert_eq!(p.nodes[h].siblings, vec![1, 2]);
        assert_eq!(p.nodes[1].session, SessionOp::Keep);
        // without the PID, they are left to join it (and the check before release fails)
        let mut p = Plan::default();
        plan(&mut p, &procs, 0, &[z], false, &|_| false);
        assert_eq!(p.nodes[1].session, SessionOp::JoinGroup(51));
    }

    #[test]
    fn pipeline_members_join_their_leader() {
        let mut p = Plan::default();
        // members of group 30 whose parent (a shell) is outside the set; 30 is in the set
        let procs = [ids(30, 5, 30, 5), ids(31, 5, 30, 5), ids(32, 5, 30, 5)];
        // the shell (5) still runs
        plan(&mut p, &procs, 0, &[], false, &|pid| pid != 5);
        assert_eq!(p.roots, vec![0]);
        assert_eq!(p.nodes[0].siblings, vec![1, 2]);
    }
}
