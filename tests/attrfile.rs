//! `.cpr` attribute files: parsing, error messages, precedence, loading.

use std::path::Path;
use std::process::Command;

use cpr::attrfile::{
    AttrFile, Block, BlockTarget, DirAction, FileAction, FileRule, ForkAction, ProcessPolicies,
    SocketAction, SocketRule, WillAction,
};
use cpr::target::{IdType, ProcessIds};

const GUIDE_EXAMPLE: &str = r#"CKPT PID 1111 {
    FILE: "/tmp/*": REPLACE
    WILL CONT
    FORK ANY
}
"#;

fn parse(text: &str) -> AttrFile {
    match AttrFile::parse(text, "test.cpr") {
        Ok(f) => f,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn error(text: &str) -> String {
    match AttrFile::parse(text, "test.cpr") {
        Ok(f) => panic!("{text:?} should be refused, got {:?}", f.blocks),
        Err(e) => e.to_string(),
    }
}

fn process(pid: i32, pgid: i32, sid: i32) -> ProcessIds {
    ProcessIds {
        pid,
        ppid: 1,
        pgid,
        sid,
        uids: [0; 4],
        gids: [0; 4],
        tids: vec![pid],
    }
}

fn rule(pattern: Option<&str>, action: FileAction) -> FileRule {
    FileRule {
        pattern: pattern.map(str::to_string),
        action,
    }
}

#[test]
fn guide_example_parses() {
    let f = parse(GUIDE_EXAMPLE);
    assert_eq!(
        f.blocks,
        vec![Block {
            target: BlockTarget::Id(IdType::Pid, 1111),
            files: vec![rule(Some("/tmp/*"), FileAction::Replace)],
            will: Some(WillAction::Cont),
            cdir: None,
            rdir: None,
            fork: Some(ForkAction::Any),
            sockets: vec![],
            line: 1,
        }]
    );
    let p = f.policies_for(&process(1111, 1111, 1111), &[1]);
    assert_eq!(p.will, WillAction::Cont);
    assert_eq!(p.fork, ForkAction::Any);
    assert_eq!(p.cdir, DirAction::Replace);
    assert_eq!(p.file_action(Path::new("/tmp/x")), FileAction::Replace);
    assert_eq!(p.file_action(Path::new("/tmp/a/b")), FileAction::Replace);
    assert_eq!(p.file_action(Path::new("/etc/passwd")), FileAction::Merge);
    // Another process gets every default.
    let other = f.policies_for(&process(2222, 2222, 2222), &[1]);
    assert_eq!(other.will, WillAction::Exit);
    assert_eq!(other.fork, ForkAction::Original);
    assert!(other.files.is_empty());
}

#[test]
fn every_policy_and_action_parses_with_and_without_colons() {
    type Check = Box<dyn Fn(&Block) -> bool>;
    let cases: Vec<(&str, &str, Check)> = vec![
        (
            "FILE",
            "MERGE",
            Box::new(|b| b.files[0].action == FileAction::Merge),
        ),
        (
            "FILE",
            "IGNORE",
            Box::new(|b| b.files[0].action == FileAction::Ignore),
        ),
        (
            "FILE",
            "APPEND",
            Box::new(|b| b.files[0].action == FileAction::Append),
        ),
        (
            "FILE",
            "REPLACE",
            Box::new(|b| b.files[0].action == FileAction::Replace),
        ),
        (
            "FILE",
            "SUBSTITUTE",
            Box::new(|b| b.files[0].action == FileAction::Substitute),
        ),
        (
            "WILL",
            "EXIT",
            Box::new(|b| b.will == Some(WillAction::Exit)),
        ),
        (
            "WILL",
            "KILL",
            Box::new(|b| b.will == Some(WillAction::Kill)),
        ),
        (
            "WILL",
            "CONT",
            Box::new(|b| b.will == Some(WillAction::Cont)),
        ),
        (
            "CDIR",
            "REPLACE",
            Box::new(|b| b.cdir == Some(DirAction::Replace)),
        ),
        (
            "CDIR",
            "IGNORE",
            Box::new(|b| b.cdir == Some(DirAction::Ignore)),
        ),
        (
            "RDIR",
            "REPLACE",
            Box::new(|b| b.rdir == Some(DirAction::Replace)),
        ),
        (
            "RDIR",
            "IGNORE",
            Box::new(|b| b.rdir == Some(DirAction::Ignore)),
        ),
        (
            "FORK",
            "ORIGINAL",
            Box::new(|b| b.fork == Some(ForkAction::Original)),
        ),
        ("FORK", "ANY", Box::new(|b| b.fork == Some(ForkAction::Any))),
    ];
    for (policy, action, check) in &cases {
        for line in [
            format!("{policy}: {action}"),
            format!("{policy} {action}"),
            format!("{policy}:{action}"),
            format!("{policy}\t:\t{action}"),
            format!("{} {}", policy.to_lowercase(), action.to_lowercase()),
        ] {
            let text = format!("CKPT PID 7 {{\n    {line}\n}}\n");
            let f = parse(&text);
            assert_eq!(f.blocks.len(), 1, "{text}");
            let b = &f.blocks[0];
            assert!(check(b), "{text:?} gave {b:?}");
            if *policy == "FILE" {
                assert_eq!(b.files.len(), 1);
                assert_eq!(b.files[0].pattern, None);
            }
        }
    }
    // Only FILE takes an instance, with or without colons.
    for line in [
        r#"FILE: "/a/*": APPEND"#,
        r#"FILE "/a/*" APPEND"#,
        r#"FILE:"/a/*":APPEND"#,
        r#"FILE: "/a/*" APPEND"#,
        r#"FILE "/a/*": APPEND"#,
    ] {
        let f = parse(&format!("CKPT PID 7 {{ {line} }}"));
        assert_eq!(
            f.blocks[0].files,
            vec![rule(Some("/a/*"), FileAction::Append)],
            "{line}"
        );
    }
}

#[test]
fn every_id_type_and_hex_values() {
    let f = parse(
        "CKPT PID 10 { }\nCKPT GID 0x10 { }\nCKPT SID 0X1f { }\nckpt hid 4 { }\n\
         CKPT SGP 5 { }\nCKPT ASH 6 { }\nCKPT JID 7 { }\nCKPT * { }\nCKPT * * { }\n\
         CKPT PID 18446744073709551615 { }",
    );
    let targets: Vec<BlockTarget> = f.blocks.iter().map(|b| b.target).collect();
    assert_eq!(
        targets,
        vec![
            BlockTarget::Id(IdType::Pid, 10),
            BlockTarget::Id(IdType::Gid, 16),
            BlockTarget::Id(IdType::Sid, 31),
            BlockTarget::Id(IdType::Hid, 4),
            BlockTarget::Id(IdType::Sgp, 5),
            BlockTarget::Id(IdType::Ash, 6),
            BlockTarget::Id(IdType::Jid, 7),
            BlockTarget::Any,
            BlockTarget::Any,
            BlockTarget::Id(IdType::Pid, u64::MAX),
        ]
    );
    let lines: Vec<usize> = f.blocks.iter().map(|b| b.line).collect();
    assert_eq!(lines, (1..=10).collect::<Vec<_>>());
}

#[test]
fn comments_blank_lines_and_layout() {
    let f = parse(
        "# leading comment\n\n  CKPT   PID\t42  # the header\n{   # brace on its own line\n\
         # a comment line inside\n  WILL: KILL # trailing\n\n  FILE \"/x#y\" IGNORE #\"not a pattern\"\n\
         }  # after\n# CKPT PID 43 { WILL: CONT }\nCKPT * { FORK: ANY WILL: CONT }",
    );
    assert_eq!(f.blocks.len(), 2);
    assert_eq!(f.blocks[0].target, BlockTarget::Id(IdType::Pid, 42));
    assert_eq!(f.blocks[0].line, 3);
    assert_eq!(f.blocks[0].will, Some(WillAction::Kill));
    assert_eq!(
        f.blocks[0].files,
        vec![rule(Some("/x#y"), FileAction::Ignore)]
    );
    assert_eq!(f.blocks[1].fork, Some(ForkAction::Any));
    assert_eq!(f.blocks[1].will, Some(WillAction::Cont));
    // Empty files and comment-only files have no blocks; CRLF line ends are fine.
    assert!(parse("").blocks.is_empty());
    assert!(parse("# nothing\n   \n").blocks.is_empty());
    assert_eq!(
        parse("CKPT PID 1 {\r\n WILL: CONT\r\n}\r\n").blocks.len(),
        1
    );
}

#[test]
fn later_line_in_a_block_wins() {
    let f = parse("CKPT PID 1 { WILL: KILL WILL: CONT FILE: IGNORE FILE: APPEND }");
    let p = f.policies_for(&process(1, 1, 1), &[]);
    assert_eq!(p.will, WillAction::Cont);
    assert_eq!(p.file_action(Path::new("/any")), FileAction::Append);
}

// ---- errors ----------------------------------------------------------------------------

#[test]
fn syntax_error_names_file_line_column_found_and_expected() {
    let e = error("CKPT PID 1 {\n    WILL: CONT\n    FORK ANY\n");
    assert_eq!(
        e,
        "test.cpr:4:1: Invalid argument: unexpected end of file \
         (expected a policy (FILE, WILL, CDIR, RDIR, FORK or SOCKET) or \"}\")"
    );
    let e = error("CKPT PID 1111\n    WILL: CONT\n}");
    assert_eq!(
        e,
        "test.cpr:2:5: Invalid argument: unexpected \"WILL\" (expected \"{\")"
    );
    let e = error("CKPT PID 1 {\n    WILL:\n    FORK: ANY\n}");
    assert!(
        e.starts_with("test.cpr:2:10: Invalid argument: unexpected end of line (expected "),
        "{e}"
    );
    assert!(e.contains("an action"), "{e}");
    let e = error("\n\n  oops");
    assert_eq!(
        e,
        "test.cpr:3:3: Invalid argument: unexpected \"oops\" (expected \"CKPT\" or end of file)"
    );
    let e = error("CKPT { }");
    assert!(
        e.starts_with("test.cpr:1:6: Invalid argument: unexpected \"{\" (expected an ID type (PID"),
        "{e}"
    );
    let e = error("CKPT PID 1 { FILE: \"/tmp/*: REPLACE\n}");
    assert_eq!(
        e,
        "test.cpr:1:36: Invalid argument: unexpected end of line (expected a closing double quote)"
    );
    let e = error("CKPT PID 1 { WILL: CONT } }");
    assert!(
        e.starts_with("test.cpr:1:27: Invalid argument: unexpected \"}\" (expected"),
        "{e}"
    );
    // Errors are one line, with no pest rule names.
    for text in [
        "CKPT",
        "CKPT PID",
        "CKPT PID 1 {",
        "CKPT PID 1 { WILL",
        "CKPT PID 1 { FILE: \"a\" :",
    ] {
        let e = error(text);
        assert!(!e.contains('\n'), "{e}");
        for rule in [
            "id_type",
            "id_value",
            "lbrace",
            "rbrace",
            "statement",
            "EOI",
            "close_quote",
        ] {
            assert!(!e.contains(rule), "{e}");
        }
        assert!(e.contains("(expected "), "{e}");
    }
}

#[test]
fn unknown_words_list_the_valid_ones() {
    assert_eq!(
        error("CKPT PID 1 {\n  WILL: STOP\n}"),
        "test.cpr:2:9: Invalid argument: unknown WILL action \"STOP\" (valid: EXIT, KILL, CONT)"
    );
    assert_eq!(
        error("CKPT PID 1 {\n    FILE: \"/tmp/*\": KEEP\n}"),
        "test.cpr:2:21: Invalid argument: unknown FILE action \"KEEP\" \
         (valid: MERGE, IGNORE, APPEND, REPLACE, SUBSTITUTE)"
    );
    assert_eq!(
        error("CKPT PID 1 { cdir: ORIGINAL }"),
        "test.cpr:1:20: Invalid argument: unknown CDIR action \"ORIGINAL\" (valid: REPLACE, IGNORE)"
    );
    assert_eq!(
        error("CKPT PID 1 { RDIR: ANY }"),
        "test.cpr:1:20: Invalid argument: unknown RDIR action \"ANY\" (valid: REPLACE, IGNORE)"
    );
    assert_eq!(
        error("CKPT PID 1 { FORK: EXIT }"),
        "test.cpr:1:20: Invalid argument: unknown FORK action \"EXIT\" (valid: ORIGINAL, ANY)"
    );
    assert_eq!(
        error("CKPT PID 1 { STOP: CONT }"),
        "test.cpr:1:14: Invalid argument: unknown policy \"STOP\" (valid: FILE, WILL, CDIR, RDIR, FORK, SOCKET)"
    );
    assert_eq!(
        error("CKPT UID 1 { }"),
        "test.cpr:1:6: Invalid argument: unknown ID type \"UID\" \
         (valid: PID, GID, SID, HID, SGP, ASH, JID, *)"
    );
}

#[test]
fn bad_id_values_and_instances_are_refused() {
    assert_eq!(
        error("CKPT PID 0xZZ { }"),
        "test.cpr:1:10: Invalid argument: invalid ID value \"0xZZ\" \
         (expected a decimal or 0x hexadecimal number)"
    );
    assert!(error("CKPT PID 0x { }").contains("invalid ID value \"0x\""));
    assert!(error("CKPT GID * { }").contains("invalid ID value \"*\""));
    assert_eq!(
        error("CKPT SID 18446744073709551616 { }"),
        "test.cpr:1:10: Invalid argument: ID value \"18446744073709551616\" is too large"
    );
    assert_eq!(
        error("CKPT PID { }"),
        "test.cpr:1:10: Invalid argument: unexpected \"{\" (expected an ID value after PID)"
    );
    assert!(
        error("CKPT * 12 { }").starts_with("test.cpr:1:8: Invalid argument: unexpected \"12\"")
    );
    for policy in ["WILL", "CDIR", "RDIR", "FORK"] {
        let e = error(&format!("CKPT PID 1 {{\n  {policy}: \"/tmp/*\": CONT\n}}"));
        assert_eq!(
            e,
            format!(
                "test.cpr:2:9: Invalid argument: {policy} takes no instance \"/tmp/*\" (only FILE and SOCKET do)"
            )
        );
    }
    assert_eq!(
        error("CKPT PID 1 { FILE: \"\": REPLACE }"),
        "test.cpr:1:20: Invalid argument: empty file instance \"\" (expected a file name or pattern)"
    );
    assert!(
        error("CKPT PID 1 { FILE: \"/tmp/[a\": REPLACE }")
            .starts_with("test.cpr:1:20: Invalid argument: invalid file pattern \"/tmp/[a\"")
    );
}

// ---- precedence ------------------------------------------------------------------------

const LAYERED: &str = r#"
CKPT * { WILL: KILL  CDIR: IGNORE  RDIR: IGNORE  FORK: ANY }
CKPT SID 300 { WILL: CONT  CDIR: REPLACE }
CKPT GID 200 { WILL: EXIT }
CKPT PID 100 { FORK: ORIGINAL }
"#;

#[test]
fn pid_over_gid_over_sid_over_any() {
    let f = parse(LAYERED);
    let p = f.policies_for(&process(100, 200, 300), &[1]);
    assert_eq!(p.fork, ForkAction::Original); // PID
    assert_eq!(p.will, WillAction::Exit); // GID beats SID and *
    assert_eq!(p.cdir, DirAction::Replace); // SID beats *
    assert_eq!(p.rdir, DirAction::Ignore); // only * sets it
    // Same process group and session, another PID.
    let q = f.policies_for(&process(101, 200, 300), &[1]);
    assert_eq!(q.fork, ForkAction::Any);
    assert_eq!(q.will, WillAction::Exit);
    // Only the session.
    let r = f.policies_for(&process(102, 102, 300), &[1]);
    assert_eq!(r.will, WillAction::Cont);
    // Nothing but *.
    let s = f.policies_for(&process(5, 5, 5), &[1]);
    assert_eq!(
        s,
        ProcessPolicies {
            will: WillAction::Kill,
            cdir: DirAction::Ignore,
            rdir: DirAction::Ignore,
            fork: ForkAction::Any,
            files: vec![],
            sockets: vec![],
        }
    );
    // The order of the blocks in the file does not change who wins across kinds.
    let reversed: String = LAYERED.lines().rev().collect::<Vec<_>>().join("\n");
    assert_eq!(
        parse(&reversed).policies_for(&process(100, 200, 300), &[1]),
        p
    );
}

#[test]
fn pid_and_sgp_match_threads() {
    let f = parse("CKPT SGP 501 { WILL: CONT FORK: ANY }\nCKPT PID 502 { WILL: KILL }");
    let mut threaded = process(500, 500, 500);
    threaded.tids = vec![500, 501, 502];
    let p = f.policies_for(&threaded, &[1]);
    assert_eq!(p.will, WillAction::Kill); // PID (a thread ID) beats SGP
    assert_eq!(p.fork, ForkAction::Any); // SGP names a thread of the group
    let lone = f.policies_for(&process(501, 1, 1), &[]);
    assert_eq!(lone.will, WillAction::Cont);
    let stranger = f.policies_for(&process(503, 1, 1), &[]);
    assert_eq!(stranger.will, WillAction::Exit);
}

#[test]
fn nearest_hid_root_wins_and_hid_sits_between_sgp_and_gid() {
    let f = parse(
        "CKPT HID 10 { WILL: KILL CDIR: IGNORE RDIR: IGNORE }\n\
         CKPT HID 30 { WILL: CONT }\n\
         CKPT HID 20 { CDIR: REPLACE }\n\
         CKPT GID 40 { RDIR: REPLACE FORK: ANY }\n\
         CKPT SGP 40 { FORK: ORIGINAL }",
    );
    // Process 40, parent 30, grandparent 20, then 10, then 1.
    let p = f.policies_for(&process(40, 40, 40), &[30, 20, 10, 1]);
    assert_eq!(p.will, WillAction::Cont); // HID 30 is nearer than HID 10
    assert_eq!(p.cdir, DirAction::Replace); // HID 20 is nearer than HID 10
    assert_eq!(p.rdir, DirAction::Ignore); // HID 10 beats GID 40
    assert_eq!(p.fork, ForkAction::Original); // SGP beats GID
    // The root of a tree is part of it, and nearest of all.
    let root = f.policies_for(&process(30, 30, 30), &[20, 10, 1]);
    assert_eq!(root.will, WillAction::Cont);
    // Outside every tree.
    let outside = f.policies_for(&process(50, 50, 50), &[1]);
    assert_eq!(outside.will, WillAction::Exit);
}

#[test]
fn ash_and_jid_never_match() {
    let f = parse("CKPT ASH 7 { WILL: CONT }\nCKPT JID 7 { WILL: KILL }");
    assert_eq!(
        f.policies_for(&process(7, 7, 7), &[7]).will,
        WillAction::Exit
    );
}

#[test]
fn later_of_equally_specific_blocks_wins() {
    let f = parse(
        "CKPT * { WILL: KILL FORK: ANY }\nCKPT * { WILL: CONT }\n\
         CKPT GID 9 { CDIR: IGNORE }\nCKPT GID 0x9 { CDIR: REPLACE }",
    );
    let p = f.policies_for(&process(1, 9, 1), &[]);
    assert_eq!(p.will, WillAction::Cont);
    assert_eq!(p.fork, ForkAction::Any); // the later * block does not set it
    assert_eq!(p.cdir, DirAction::Replace);
}

#[test]
fn file_rules_most_specific_glob_first() {
    let f = parse(
        r#"CKPT * {
            FILE: "/*": IGNORE
            FILE: "/tmp/*": REPLACE
            FILE: "*.log": APPEND
            FILE: "/tmp/keep/*": SUBSTITUTE
            FILE: "/tmp/keep/exact.log": MERGE
            FILE: "/var/?": REPLACE
            FILE: "/var/*": SUBSTITUTE
            FILE: "/srv/[ab]": IGNORE
            FILE: "/srv/?": APPEND
        }"#,
    );
    let p = f.policies_for(&process(1, 1, 1), &[]);
    let action = |path: &str| p.file_action(Path::new(path));
    assert_eq!(action("/tmp/a"), FileAction::Replace);
    assert_eq!(action("/tmp/a/b"), FileAction::Replace); // `*` crosses `/`
    assert_eq!(action("/tmp/keep/a"), FileAction::Substitute); // more literal characters
    assert_eq!(action("/tmp/keep/exact.log"), FileAction::Merge); // literal beats globs
    assert_eq!(action("/tmp/x.log"), FileAction::Replace); // "/tmp/" has more than ".log"
    assert_eq!(action("/home/u/x.log"), FileAction::Append);
    assert_eq!(action("/etc/passwd"), FileAction::Ignore); // "/*" is every file
    assert_eq!(action("/var/a"), FileAction::Replace); // same literals, fewer stars
    assert_eq!(action("/var/ab"), FileAction::Substitute);
    assert_eq!(action("/srv/a"), FileAction::Ignore); // same literals and stars, longer
    assert_eq!(action("/srv/c"), FileAction::Append);
    let order: Vec<&str> = p
        .files
        .iter()
        .filter_map(|r| r.pattern.as_deref())
        .collect();
    assert_eq!(
        order,
        [
            "/tmp/keep/exact.log",
            "/tmp/keep/*",
            "/srv/[ab]",
            "/srv/?", // ties with "/var/?": later in the file first
            "/var/?",
            "/var/*",
            "/tmp/*",
            "*.log",
            "/*"
        ]
    );
}

#[test]
fn file_rule_ties_go_to_the_later_one() {
    let f = parse(
        r#"CKPT * { FILE: "/a/*": APPEND  FILE: "/b/*": IGNORE  FILE: "/a/*": REPLACE }
           CKPT * { FILE: "/b/*": SUBSTITUTE FILE: "/x": IGNORE }
           CKPT * { FILE: "/x": APPEND }"#,
    );
    let p = f.policies_for(&process(1, 1, 1), &[]);
    assert_eq!(p.file_action(Path::new("/a/1")), FileAction::Replace);
    assert_eq!(p.file_action(Path::new("/b/1")), FileAction::Substitute);
    assert_eq!(p.file_action(Path::new("/x")), FileAction::Append);
    assert_eq!(p.file_action(Path::new("/y")), FileAction::Merge);
}

#[test]
fn file_rules_of_stronger_blocks_come_first_and_a_default_ends_the_list() {
    let f = parse(
        r#"CKPT * { FILE: "/tmp/keep/exact": IGNORE  FILE: "/data/*": APPEND  FILE: SUBSTITUTE }
           CKPT GID 5 { FILE: "/tmp/*": REPLACE }
           CKPT PID 6 { FILE: "/home/*": APPEND  FILE: IGNORE }"#,
    );
    // In group 5 only: GID's glob, then * block's rules, then its default.
    let p = f.policies_for(&process(7, 5, 1), &[]);
    assert_eq!(
        p.files,
        vec![
            rule(Some("/tmp/*"), FileAction::Replace),
            rule(Some("/tmp/keep/exact"), FileAction::Ignore),
            rule(Some("/data/*"), FileAction::Append),
            rule(None, FileAction::Substitute),
        ]
    );
    // A weaker block's literal name loses to a stronger block's glob.
    assert_eq!(
        p.file_action(Path::new("/tmp/keep/exact")),
        FileAction::Replace
    );
    assert_eq!(p.file_action(Path::new("/data/d")), FileAction::Append);
    assert_eq!(p.file_action(Path::new("/etc/x")), FileAction::Substitute);
    // PID 6's default covers every file its globs do not.
    let q = f.policies_for(&process(6, 5, 1), &[]);
    assert_eq!(
        q.files,
        vec![
            rule(Some("/home/*"), FileAction::Append),
            rule(None, FileAction::Ignore),
        ]
    );
    assert_eq!(q.file_action(Path::new("/tmp/a")), FileAction::Ignore);
    assert_eq!(q.file_action(Path::new("/home/u/f")), FileAction::Append);
}

#[test]
fn man_page_example_behaves_as_documented() {
    let f = parse(
        r#"# Everyone: keep running after checkpoint, append to logs.
CKPT * {
    WILL: CONT
    FILE: "*.log": APPEND
}
# The batch job rooted at 0x8ae: save its data files,
# reopen everything else at offset zero.
CKPT HID 0x8ae {
    FILE: "/data/*": REPLACE
    FILE: IGNORE
}"#,
    );
    let p = f.policies_for(&process(4000, 4000, 1), &[3000, 0x8ae, 1]);
    assert_eq!(p.file_action(Path::new("/data/in")), FileAction::Replace);
    assert_eq!(p.file_action(Path::new("/tmp/run.log")), FileAction::Ignore);
    assert_eq!(p.will, WillAction::Cont);
    let outside = f.policies_for(&process(5000, 5000, 1), &[1]);
    assert_eq!(
        outside.file_action(Path::new("/tmp/run.log")),
        FileAction::Append
    );
    assert_eq!(
        outside.file_action(Path::new("/data/in")),
        FileAction::Merge
    );
}

// ---- loading ---------------------------------------------------------------------------

fn defaults() -> ProcessPolicies {
    ProcessPolicies {
        will: WillAction::Exit,
        cdir: DirAction::Replace,
        rdir: DirAction::Replace,
        fork: ForkAction::Original,
        files: vec![rule(None, FileAction::Merge)],
        sockets: vec![SocketRule {
            pattern: None,
            action: SocketAction::Refuse,
        }],
    }
}

#[test]
fn builtin_is_etc_cpr_proto() {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/cpr_proto");
    let loaded = AttrFile::load(&proto).unwrap();
    let builtin = AttrFile::builtin();
    assert_eq!(builtin.blocks, loaded.blocks);
    assert_eq!(builtin.source, "built-in defaults");
    assert_eq!(loaded.source, proto.display().to_string());
    // One `*` block with every policy at its default.
    assert_eq!(
        builtin.blocks,
        vec![Block {
            target: BlockTarget::Any,
            files: vec![rule(None, FileAction::Merge)],
            will: Some(WillAction::Exit),
            cdir: Some(DirAction::Replace),
            rdir: Some(DirAction::Replace),
            fork: Some(ForkAction::Original),
            sockets: vec![SocketRule {
                pattern: None,
                action: SocketAction::Refuse,
            }],
            line: builtin.blocks[0].line,
        }]
    );
    assert_eq!(builtin.policies_for(&process(9, 9, 9), &[1]), defaults());
    // The commented examples in it are valid too.
    let text = std::fs::read_to_string(&proto).unwrap();
    let (_, examples) = text.split_once("# Examples").unwrap();
    let uncommented: String = examples
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with("CKPT") || l.starts_with("    ") || l.starts_with('}'))
        .collect::<Vec<_>>()
        .join("\n");
    let examples = parse(&uncommented);
    assert_eq!(examples.blocks.len(), 6, "{uncommented}");
}

#[test]
fn load_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.cpr");
    let e = AttrFile::load(&missing).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: No such file or directory", missing.display())
    );
    let bad = dir.path().join("bad.cpr");
    std::fs::write(&bad, "CKPT PID 1 {\n  WILL: STOP\n}\n").unwrap();
    let e = AttrFile::load(&bad).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:2:9: Invalid argument: unknown WILL action \"STOP\" (valid: EXIT, KILL, CONT)",
            bad.display()
        )
    );
    let binary = dir.path().join("binary.cpr");
    std::fs::write(&binary, b"CKPT PID 1 {\n  WILL: \xff\n}\n").unwrap();
    let e = AttrFile::load(&binary).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:2:9: Invalid argument: text is not UTF-8",
            binary.display()
        )
    );
    let e = AttrFile::load(dir.path()).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", dir.path().display())), "{e}");
}

/// Runs `load_default` in a child test process with the environment given, and returns
/// what it printed: `OK <source> <blocks>` or `ERR <message>`.
fn load_default_in_child(home: Option<&Path>) -> String {
    probe(home).1
}

/// `default_path()` and `load_default()` as seen by a child with this HOME.
fn probe(home: Option<&Path>) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "load_default_probe",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CPR_ATTRFILE_PROBE", "1");
    match home {
        Some(h) => cmd.env("HOME", h),
        None => cmd.env_remove("HOME"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {prefix} in {stdout}"))
            .to_string()
    };
    (line("PROBEPATH "), line("PROBE "))
}

/// Not a test by itself: the child side of `probe`, which runs it (an ignored test) in a
/// child test process with CPR_ATTRFILE_PROBE set and the HOME it checks.
#[test]
#[ignore = "the child side of probe(), run by it"]
fn load_default_probe() {
    assert!(
        std::env::var_os("CPR_ATTRFILE_PROBE").is_some(),
        "load_default_probe is run by probe(), with CPR_ATTRFILE_PROBE set"
    );
    println!("PROBEPATH {:?}", AttrFile::default_path());
    match AttrFile::load_default() {
        Ok(f) => println!("PROBE OK {} {:?}", f.source, f.blocks),
        Err(e) => println!("PROBE ERR {e}"),
    }
}

#[test]
fn load_default_reads_home_dot_cpr_or_falls_back_to_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = format!("OK built-in defaults {:?}", AttrFile::builtin().blocks);
    // No .cpr: the built-in defaults.
    assert_eq!(load_default_in_child(Some(dir.path())), builtin);
    // A .cpr: read.
    let path = dir.path().join(".cpr");
    std::fs::write(&path, GUIDE_EXAMPLE).unwrap();
    assert_eq!(
        load_default_in_child(Some(dir.path())),
        format!("OK {} {:?}", path.display(), parse(GUIDE_EXAMPLE).blocks)
    );
    // An invalid one is an error naming it.
    std::fs::write(&path, "CKPT PID 1 { WILL: STOP }").unwrap();
    assert_eq!(
        load_default_in_child(Some(dir.path())),
        format!(
            "ERR {}:1:20: Invalid argument: unknown WILL action \"STOP\" (valid: EXIT, KILL, CONT)",
            path.display()
        )
    );
    // An unreadable one (a directory) too.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let out = load_default_in_child(Some(dir.path()));
    assert!(
        out.starts_with(&format!("ERR {}: ", path.display())),
        "{out}"
    );
}

#[test]
fn load_default_without_home_uses_the_password_entry() {
    let uid = nix::unistd::getuid();
    let home = nix::unistd::User::from_uid(uid).unwrap().unwrap().dir;
    let path = home.join(".cpr");
    let expected = match AttrFile::load(&path) {
        Ok(f) => format!("OK {} {:?}", f.source, f.blocks),
        Err(_) if !path.exists() => {
            format!("OK built-in defaults {:?}", AttrFile::builtin().blocks)
        }
        Err(e) => format!("ERR {e}"),
    };
    let (default_path, loaded) = probe(None);
    assert_eq!(default_path, format!("{:?}", Some(&path)));
    assert_eq!(loaded, expected);
    // An empty HOME counts as unset.
    assert_eq!(probe(Some(Path::new(""))).0, default_path);
    // With HOME set, HOME decides.
    assert_eq!(
        probe(Some(Path::new("/some/where"))).0,
        format!("{:?}", Some(Path::new("/some/where/.cpr")))
    );
}

// ---- robustness ------------------------------------------------------------------------

mod robustness {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    const SAMPLES: &[&str] = &[
        GUIDE_EXAMPLE,
        include_str!("../etc/cpr_proto"),
        LAYERED,
        "CKPT HID 0x1f { FILE \"/a/[bc]*\" SUBSTITUTE # x\n RDIR IGNORE }\nckpt * * { }",
    ];

    /// Parsing must return, never panic; an error is one line naming source:line:col, and
    /// whatever parses can be resolved.
    fn check(text: &str) {
        match AttrFile::parse(text, "p.cpr") {
            Ok(f) => {
                let mut ids = process(1111, 2222, 3333);
                ids.tids = vec![1111, 4444];
                let p = f.policies_for(&ids, &[0x1f, 1]);
                let _ = p.file_action(Path::new("/tmp/x"));
                let _ = p.file_action(Path::new("/a/b\u{e9}"));
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{msg:?}");
                let mut parts = msg.splitn(4, ':');
                assert_eq!(parts.next(), Some("p.cpr"), "{msg:?}");
                let line: usize = parts.next().unwrap().parse().unwrap();
                let col: usize = parts.next().unwrap().parse().unwrap();
                assert!(line >= 1 && col >= 1, "{msg:?}");
                assert!(line <= text.lines().count() + 1, "{msg:?}");
                assert!(
                    parts.next().unwrap().starts_with(" Invalid argument: "),
                    "{msg:?}"
                );
            }
        }
    }

    /// Applies edits (insert, delete, replace, duplicate) at character positions.
    fn mutate(base: &str, edits: &[(usize, u8, String)]) -> String {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, op, text) in edits {
            let at = at % (chars.len() + 1);
            let n = text.chars().count().max(1);
            let end = (at + n).min(chars.len());
            match op % 4 {
                0 => {
                    chars.splice(at..at, text.chars());
                }
                1 => {
                    chars.drain(at..end);
                }
                2 => {
                    chars.splice(at..end, text.chars());
                }
                _ => {
                    let copy: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, copy);
                }
            }
        }
        chars.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_strings(text in any::<String>()) {
            check(&text);
        }

        #[test]
        fn printable_strings(text in "[ -~\t\n]{0,120}") {
            check(&text);
        }

        #[test]
        fn token_soup(tokens in prop::collection::vec(select(vec![
            "CKPT", "PID", "SGP", "HID", "*", "{", "}", ":", "\"/tmp/*\"", "\"", "\"[\"",
            "WILL", "CONT", "FILE", "REPLACE", "FORK", "0x1f", "0x", "1111", "#", "\n", " ",
            "\t", "\u{e9}", "\r\n", "99999999999999999999",
        ]), 0..40)) {
            check(&tokens.concat());
        }

        #[test]
        fn mutated_valid_files(
            base in select(SAMPLES.to_vec()),
            edits in prop::collection::vec(
                (any::<usize>(), any::<u8>(), "(\\PC|[\n\"{}:#*]){0,4}"), 1..6),
        ) {
            check(&mutate(base, &edits));
        }
    }

    #[test]
    fn samples_are_valid() {
        for s in SAMPLES {
            parse(s);
        }
    }
}

// ---- SOCKET (our extension) ------------------------------------------------------------

fn socket_rule(pattern: Option<&str>, action: SocketAction) -> SocketRule {
    SocketRule {
        pattern: pattern.map(str::to_string),
        action,
    }
}

#[test]
fn socket_lines_parse_with_every_action_and_instance_form() {
    let f = parse(
        r#"CKPT PID 7 {
            SOCKET: "tcp:*:5432": REPAIR
            SOCKET "tcp:127.0.0.1:*" close
            SOCKET:"tcp:[::1]:*":RECONNECT
            SOCKET: "unix:/run/systemd/journal/stdout": RECONNECT
            SOCKET: "unix:*": CLOSE
            SOCKET: "udp:*": reconnect
            SOCKET: "unix:@abstract": REFUSE
            SOCKET: "*": REFUSE
            socket: CLOSE
        }"#,
    );
    assert_eq!(
        f.blocks[0].sockets,
        vec![
            socket_rule(Some("tcp:*:5432"), SocketAction::Repair),
            socket_rule(Some("tcp:127.0.0.1:*"), SocketAction::Close),
            socket_rule(Some("tcp:[::1]:*"), SocketAction::Reconnect),
            socket_rule(
                Some("unix:/run/systemd/journal/stdout"),
                SocketAction::Reconnect
            ),
            socket_rule(Some("unix:*"), SocketAction::Close),
            socket_rule(Some("udp:*"), SocketAction::Reconnect),
            socket_rule(Some("unix:@abstract"), SocketAction::Refuse),
            socket_rule(Some("*"), SocketAction::Refuse),
            socket_rule(None, SocketAction::Close),
        ]
    );
    // SOCKET lines leave the FILE rules alone, and the other way round
    assert!(f.blocks[0].files.is_empty());
}

#[test]
fn socket_action_takes_the_most_specific_instance_and_refuses_by_default() {
    let f = parse(
        r#"CKPT * {
            SOCKET: "*": CLOSE
            SOCKET: "tcp:*": REFUSE
            SOCKET: "tcp:*:5432": REPAIR
            SOCKET: "tcp:127.0.0.1:5432": RECONNECT
            SOCKET: "tcp:[::1]:*": CLOSE
            SOCKET: "unix:*": REFUSE
            SOCKET: "unix:/run/*": RECONNECT
            SOCKET: "unix:/run/keep": CLOSE
        }
        CKPT GID 5 { SOCKET: "udp:*": RECONNECT }"#,
    );
    let p = f.policies_for(&process(1, 1, 1), &[]);
    let action = |a: &str| p.socket_action(a);
    assert_eq!(action("tcp:127.0.0.1:5432"), SocketAction::Reconnect);
    assert_eq!(action("tcp:10.1.1.1:5432"), SocketAction::Repair);
    assert_eq!(action("tcp:[::1]:5432"), SocketAction::Close); // host ties port: later wins
    assert_eq!(action("tcp:[::1]:80"), SocketAction::Close);
    assert_eq!(action("tcp:10.1.1.1:80"), SocketAction::Refuse);
    assert_eq!(action("unix:/run/keep"), SocketAction::Close);
    assert_eq!(action("unix:/run/systemd/notify"), SocketAction::Reconnect);
    assert_eq!(action("unix:@name"), SocketAction::Refuse);
    assert_eq!(action("unix:"), SocketAction::Refuse);
    assert_eq!(action("udp:127.0.0.1:53"), SocketAction::Close); // "*"
    // a stronger block's rule comes before any of a weaker block's
    let q = f.policies_for(&process(2, 5, 1), &[]);
    assert_eq!(
        q.sockets[0],
        socket_rule(Some("udp:*"), SocketAction::Reconnect)
    );
    assert_eq!(q.socket_action("udp:[::1]:53"), SocketAction::Reconnect);
    // no rule: REFUSE, as IRIX refused every socket
    let none = parse("CKPT * { WILL: CONT }").policies_for(&process(1, 1, 1), &[]);
    assert_eq!(none.socket_action("unix:/x"), SocketAction::Refuse);
    assert_eq!(none.socket_action("tcp:1.2.3.4:5"), SocketAction::Refuse);
    // a block's default ends the list: weaker blocks are not tried
    let g = parse(
        r#"CKPT * { SOCKET: "unix:*": CLOSE }
           CKPT PID 3 { SOCKET: RECONNECT }"#,
    );
    let r = g.policies_for(&process(3, 3, 3), &[]);
    assert_eq!(r.socket_action("unix:/x"), SocketAction::Reconnect);
    assert_eq!(r.sockets.len(), 1);
}

#[test]
fn bad_socket_instances_and_actions_are_refused_with_file_and_line() {
    assert_eq!(
        error("CKPT * {\n  SOCKET: \"tcp:*\": MERGE\n}"),
        "test.cpr:2:20: Invalid argument: unknown SOCKET action \"MERGE\" \
         (valid: REFUSE, REPAIR, RECONNECT, CLOSE)"
    );
    for (instance, why) in [
        ("/run/x", "expected \"*\", \"tcp:HOST:PORT\""),
        ("sctp:*", "unknown socket kind \"sctp\""),
        ("tcp:::1:5432", "must be written in brackets"),
        ("tcp:localhost:5432", "invalid host \"localhost\""),
        ("tcp:*:99999", "invalid port \"99999\""),
        ("udp:1.2.3.4", "expected HOST:PORT"),
        ("unix:/run/[x", "invalid path pattern"),
    ] {
        let e = error(&format!("CKPT * {{\n  SOCKET: \"{instance}\": CLOSE\n}}"));
        assert!(
            e.starts_with(&format!(
                "test.cpr:2:11: Invalid argument: invalid socket instance \"{instance}\": "
            )) && e.contains(why),
            "{instance}: {e}"
        );
    }
    assert!(
        error("CKPT * { SOCKET: \"\": CLOSE }")
            .starts_with("test.cpr:1:18: Invalid argument: empty socket instance \"\"")
    );
}
