//! Precedence: which block's policy applies to a process, and which FILE rule to a file.
//!
//! A block matches a process by its target; the more specific the target, the stronger
//! the block: PID > SGP > HID (the nearer the tree's root, the stronger) > GID > SID > `*`.
//! ASH and JID blocks never match on Linux. Every policy comes from the strongest block
//! that sets it; of equally strong blocks, the later one in the file wins. See cpr(5).

use glob::{MatchOptions, Pattern};
use std::cmp::Reverse;
use std::path::Path;

use super::socket_instance::SocketPattern;
use super::{Block, BlockTarget, FileAction, FileRule, ProcessPolicies, SocketAction, SocketRule};
use crate::target::{IdType, ProcessIds};

/// How strongly a block matches one process; greater is more specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Strength {
    rank: u8,
    /// HID only: higher when the tree's root is nearer the process.
    nearness: u32,
}

fn same_id(id: u64, value: i32) -> bool {
    u64::try_from(value).is_ok_and(|v| v == id)
}

/// The strength of `target` for `process`, or `None` when it does not match.
fn strength(target: &BlockTarget, process: &ProcessIds, ancestors: &[i32]) -> Option<Strength> {
    let plain = |rank| Some(Strength { rank, nearness: 0 });
    let (kind, id) = match *target {
        BlockTarget::Any => return plain(0),
        BlockTarget::Id(kind, id) => (kind, id),
    };
    let in_group = same_id(id, process.pid) || process.tids.iter().any(|&t| same_id(id, t));
    match kind {
        IdType::Pid if in_group => plain(5),
        IdType::Sgp if in_group => plain(4),
        IdType::Hid => {
            let distance = std::iter::once(&process.pid)
                .chain(ancestors)
                .position(|&p| same_id(id, p))?;
            Some(Strength {
                rank: 3,
                nearness: u32::MAX - u32::try_from(distance).unwrap_or(u32::MAX),
            })
        }
        IdType::Gid if same_id(id, process.pgid) => plain(2),
        IdType::Sid if same_id(id, process.sid) => plain(1),
        _ => None,
    }
}

/// How specific a FILE glob is, greater is more: a literal name beats any glob; then
/// more literal characters; then fewer `*`; then a longer pattern.
fn glob_specificity(pattern: &str) -> (bool, usize, Reverse<usize>, usize) {
    let mut literal = 0;
    let mut stars = 0;
    let mut wild = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                wild = true;
                stars += 1;
            }
            '?' => wild = true,
            '[' => {
                wild = true;
                // A class: `[abc]`, `[!abc]`, `[]abc]`; its first `]` is a member.
                if chars.peek() == Some(&'!') {
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            _ => literal += 1,
        }
    }
    (!wild, literal, Reverse(stars), pattern.chars().count())
}

pub(super) fn policies_for(
    blocks: &[Block],
    process: &ProcessIds,
    ancestors: &[i32],
) -> ProcessPolicies {
    // Strongest first; of equal strength, later in the file first.
    let mut matching: Vec<(Strength, usize, &Block)> = blocks
        .iter()
        .enumerate()
        .filter_map(|(i, b)| strength(&b.target, process, ancestors).map(|s| (s, i, b)))
        .collect();
    matching.sort_by_key(|m| Reverse((m.0, m.1)));

    ProcessPolicies {
        will: matching.iter().find_map(|m| m.2.will).unwrap_or_default(),
        cdir: matching.iter().find_map(|m| m.2.cdir).unwrap_or_default(),
        rdir: matching.iter().find_map(|m| m.2.rdir).unwrap_or_default(),
        fork: matching.iter().find_map(|m| m.2.fork).unwrap_or_default(),
        files: file_rules(&matching),
        sockets: socket_rules(&matching),
    }
}

/// The FILE rules in the order they are tried. Equally strong blocks form one group;
/// groups go strongest first. In a group, the globs go most specific first (ties: later
/// in the file first), then the group's default (`FILE: ACTION` with no instance, the last
/// one written), which matches every file and so ends the list.
fn file_rules(matching: &[(Strength, usize, &Block)]) -> Vec<FileRule> {
    ordered_rules(
        matching,
        |b| &b.files,
        |r| r.pattern.as_deref(),
        glob_specificity,
    )
}

/// The SOCKET rules in the order they are tried, by the FILE rules' order (`file_rules`)
/// with the specificity of socket instances.
fn socket_rules(matching: &[(Strength, usize, &Block)]) -> Vec<SocketRule> {
    let specificity = |p: &str| {
        SocketPattern::parse(p)
            .map(|s| s.specificity(glob_specificity))
            .unwrap_or_default()
    };
    ordered_rules(
        matching,
        |b| &b.sockets,
        |r| r.pattern.as_deref(),
        specificity,
    )
}

/// The rules of one policy (`rules` of a block; `pattern` of a rule, `None` for the
/// block's default) in the order they are tried.
fn ordered_rules<R: Clone, K: Ord>(
    matching: &[(Strength, usize, &Block)],
    rules: impl Fn(&Block) -> &[R],
    pattern: impl Fn(&R) -> Option<&str>,
    specificity: impl Fn(&str) -> K,
) -> Vec<R> {
    let mut out = Vec::new();
    for group in matching.chunk_by(|a, b| a.0 == b.0) {
        // `group` is latest block first.
        let mut globs: Vec<(K, usize, usize, &R)> = Vec::new();
        let mut default = None;
        for &(_, block_index, block) in group {
            for (rule_index, rule) in rules(block).iter().enumerate() {
                match pattern(rule) {
                    Some(p) => globs.push((specificity(p), block_index, rule_index, rule)),
                    None if default.is_none() => {
                        default = rules(block).iter().rev().find(|r| pattern(r).is_none())
                    }
                    None => {}
                }
            }
        }
        globs.sort_by(|a, b| (&b.0, b.1, b.2).cmp(&(&a.0, a.1, a.2)));
        out.extend(globs.into_iter().map(|g| g.3.clone()));
        if let Some(default) = default {
            out.push(default.clone());
            break;
        }
    }
    out
}

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    // `/*` names every file, `/tmp/*` everything below /tmp.
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// The first rule that matches `path`, else MERGE.
pub(super) fn file_action(rules: &[FileRule], path: &Path) -> FileAction {
    let name = path.to_string_lossy();
    for rule in rules {
        match &rule.pattern {
            None => return rule.action,
            Some(p) => {
                if Pattern::new(p).is_ok_and(|pat| pat.matches_with(&name, MATCH)) {
                    return rule.action;
                }
            }
        }
    }
    FileAction::default()
}

/// The first rule with a glob that matches `name`.
pub(super) fn explicit_file_action(rules: &[FileRule], name: &str) -> Option<FileAction> {
    rules.iter().find_map(|rule| {
        let p = rule.pattern.as_deref()?;
        Pattern::new(p)
            .is_ok_and(|pat| pat.matches_with(name, MATCH))
            .then_some(rule.action)
    })
}

/// The first SOCKET rule that matches `address`, else REFUSE. A rule without instance
/// matches every socket.
pub(super) fn socket_action(rules: &[SocketRule], address: &str) -> SocketAction {
    rules
        .iter()
        .find(|rule| match &rule.pattern {
            None => true,
            Some(p) => SocketPattern::parse(p).is_ok_and(|s| s.matches(address)),
        })
        .map_or(SocketAction::default(), |rule| rule.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_specificity_orders_literal_then_literals_then_stars_then_length() {
        let s = glob_specificity;
        assert_eq!(s("/tmp/a"), (true, 6, Reverse(0), 6));
        assert_eq!(s("/tmp/*"), (false, 5, Reverse(1), 6));
        assert_eq!(s("/[]!]x?"), (false, 2, Reverse(0), 7));
        assert_eq!(s("/[!ab]*"), (false, 1, Reverse(1), 7));
        assert!(s("/a") > s("/tmp/*/*/*"));
        assert!(s("/tmp/k*") > s("/tmp/*"));
        assert!(s("/tmp/?") > s("/tmp/*"));
        assert!(s("/tmp/[ab]") > s("/tmp/?"));
    }

    #[test]
    fn hid_strength_falls_with_distance() {
        let ids = ProcessIds {
            pid: 4,
            ppid: 3,
            pgid: 4,
            sid: 4,
            uids: [0; 4],
            gids: [0; 4],
            tids: vec![4],
        };
        let at = |id| strength(&BlockTarget::Id(IdType::Hid, id), &ids, &[3, 2, 1]);
        assert!(at(4) > at(3));
        assert!(at(3) > at(1));
        assert_eq!(at(9), None);
        let sgp = strength(&BlockTarget::Id(IdType::Sgp, 4), &ids, &[]);
        assert!(sgp > at(4));
        let gid = strength(&BlockTarget::Id(IdType::Gid, 4), &ids, &[]);
        assert!(at(1) > gid);
        assert_eq!(
            strength(&BlockTarget::Id(IdType::Pid, u64::MAX), &ids, &[]),
            None
        );
    }

    #[test]
    fn file_action_without_rules_is_merge() {
        assert_eq!(file_action(&[], Path::new("/x")), FileAction::Merge);
        let bad = FileRule {
            pattern: Some("[".into()),
            action: FileAction::Ignore,
        };
        assert_eq!(file_action(&[bad], Path::new("[")), FileAction::Merge);
    }
}
