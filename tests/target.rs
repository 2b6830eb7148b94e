//! ID designators: parsing, and resolution against real
//! processes these tests spawn (process groups, sessions, trees, threads, CLONE_VM
//! children, other users). Every process spawned is killed and reaped by a `Spawned` guard
//! (tests/common/group.rs): the test process is a child subreaper, so orphaned
//! grandchildren come back to it too.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::group::Spawned;
use common::{all_pids, build, free_pid, in_ci};
use cpr::Kind;
use cpr::proc::{ProcDir, Stat};
use cpr::target::{Designator, IdType, parse_designator, parse_idlist, resolve};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const NOBODY: u32 = 65534;

fn d(id: i32, id_type: IdType) -> Designator {
    Designator {
        id: id as u64,
        id_type,
        typed_hex: false,
    }
}

fn pids_of(set: &cpr::target::TargetSet) -> BTreeSet<i32> {
    set.processes.keys().copied().collect()
}

fn pidset(pids: impl IntoIterator<Item = i32>) -> BTreeSet<i32> {
    pids.into_iter().collect()
}

fn me() -> i32 {
    std::process::id() as i32
}

// ---------------------------------------------------------------------------------------
// A multi-threaded program with a CLONE_VM child and a fork() child

struct ShareGroup {
    proc: Spawned,
    threads: BTreeSet<i32>,
    vm_child: i32,
    fork_child: i32,
}

fn start_share_group() -> ShareGroup {
    let mut cmd = Command::new(build("share_group.c"));
    cmd.process_group(0);
    let mut proc = Spawned::start(cmd);
    let lines = proc.labelled_pids(4);
    let one = |label: &str| *lines[label].iter().next().unwrap();
    ShareGroup {
        threads: lines["thread"].clone(),
        vm_child: one("vm"),
        fork_child: one("fork"),
        proc,
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

#[test]
fn idlist_of_the_guide_parses() {
    let list = parse_idlist("1113,1225,1397:HID").unwrap();
    assert_eq!(
        list,
        vec![
            d(1113, IdType::Pid),
            d(1225, IdType::Pid),
            d(1397, IdType::Hid)
        ]
    );
    let list = parse_idlist("0x1f:gid,345:Sid,7:pid,789:SGP").unwrap();
    assert_eq!(
        list,
        vec![
            d(31, IdType::Gid),
            d(345, IdType::Sid),
            d(7, IdType::Pid),
            d(789, IdType::Sgp)
        ]
    );
    let list = parse_idlist("0x8000abcd00001111:ASH,0x8000abcd00001234:jid").unwrap();
    assert_eq!(list[0].id, 0x8000abcd00001111);
    assert_eq!(list[0].id_type, IdType::Ash);
    assert_eq!(list[1].id, 0x8000abcd00001234);
    assert_eq!(list[1].id_type, IdType::Jid);
    assert_eq!(
        parse_designator(" 4194303 ").unwrap(),
        d(4194303, IdType::Pid)
    );
}

#[test]
fn designators_display_as_typed() {
    let shown: Vec<String> = parse_idlist("12,0x1f:gid,3:hid,0x8000abcd00001111:ash")
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(shown, ["12", "31:GID", "3:HID", "0x8000abcd00001111:ASH"]);
}

#[test]
fn bad_idlists_are_invalid_arguments_naming_the_item() {
    let cases = [
        (
            "12:FOO",
            "-p 12:FOO: Invalid argument: unknown ID type 'FOO'",
        ),
        ("12:", "-p 12:: Invalid argument: unknown ID type ''"),
        (
            "1:PID:GID",
            "-p 1:PID:GID: Invalid argument: unknown ID type",
        ),
        ("1,,2", "-p 1,,2: Invalid argument: empty item"),
        ("1,", "-p 1,: Invalid argument: empty item"),
        ("", "Invalid argument: the ID list is empty"),
        ("abc", "-p abc: Invalid argument: 'abc' is not an ID"),
        ("-5", "-p -5: Invalid argument: '-5' is not an ID"),
        ("+5", "-p +5: Invalid argument: '+5' is not an ID"),
        ("0x", "-p 0x: Invalid argument: '0x' is not an ID"),
        (
            "0xg1:GID",
            "-p 0xg1:GID: Invalid argument: '0xg1' is not an ID",
        ),
        ("99999999999999999999", "is not an ID"),
        (
            "0",
            "-p 0: Invalid argument: a PID must be between 1 and 4194303",
        ),
        (
            "0:GID",
            "-p 0:GID: Invalid argument: a GID must be between 1 and 4194303",
        ),
        (
            "4194304",
            "-p 4194304: Invalid argument: a PID must be between 1 and",
        ),
        (
            "0x400000:HID",
            "-p 0x400000:HID: Invalid argument: a HID must be",
        ),
        ("5,7:sgp,9:XYZ", "-p 9:XYZ: Invalid argument"),
    ];
    for (text, want) in cases {
        let err = parse_idlist(text).expect_err(text);
        assert_eq!(err.kind, Kind::InvalidArgument, "{text}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{text:?} gave {msg:?}, wanted {want:?}");
    }
    let err = parse_idlist("12:FOO").unwrap_err().to_string();
    assert!(err.contains("PID, GID, SID, HID, SGP, ASH, JID"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Resolution against real processes

#[test]
fn ash_and_jid_are_refused() {
    for (text, want) in [
        (
            "0x8000abcd00001111:ASH",
            "-p 0x8000abcd00001111:ASH: Invalid argument: ASH (IRIX array session) is not supported on Linux",
        ),
        (
            "0x8000abcd00001234:JID",
            "-p 0x8000abcd00001234:JID: Invalid argument: JID (IRIX job) is not supported on Linux",
        ),
    ] {
        let err = resolve(&parse_idlist(text).unwrap(), 0).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
}

#[test]
fn pid_names_one_process() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30").process_group(0);
    let p = Spawned::start(cmd);
    let set = resolve(&[d(p.pid(), IdType::Pid)], 0).unwrap();
    assert_eq!(pids_of(&set), set_of([p.pid()]));
    let ids = &set.processes[&p.pid()];
    assert_eq!(ids.pid, p.pid());
    assert_eq!(ids.ppid, me());
    assert_eq!(
        (ids.pgid, ids.sid),
        (p.pid(), cpr::target::process_ids(me()).unwrap().sid)
    );
    assert_eq!(ids.tids, vec![p.pid()]);
    assert_eq!(ids.uids, [0; 4]);
    assert_eq!(set.owner(), Some((0, 0)));
}

fn set_of<const N: usize>(pids: [i32; N]) -> BTreeSet<i32> {
    pidset(pids)
}

#[test]
fn thread_id_names_its_process() {
    let g = start_share_group();
    let main = g.proc.pid();
    for &tid in &g.threads {
        assert_ne!(tid, main);
        let set = resolve(&[d(tid, IdType::Pid)], 0).unwrap();
        assert_eq!(pids_of(&set), set_of([main]));
        let tids = &set.processes[&main].tids;
        assert_eq!(tids[0], main, "main thread first");
        assert_eq!(pidset(tids.iter().copied()), {
            let mut all = g.threads.clone();
            all.insert(main);
            all
        });
    }
}

#[test]
fn gid_names_the_process_group() {
    let mut p = Spawned::sh("sleep 30 & echo s $!; sleep 30 & echo s $!; wait");
    let sleeps = p.labelled_pids(2).remove("s").unwrap();
    let mut want = sleeps.clone();
    want.insert(p.pid());

    let set = resolve(&parse_idlist(&format!("{}:GID", p.pid())).unwrap(), 0).unwrap();
    assert_eq!(pids_of(&set), want);
    for ids in set.processes.values() {
        assert_eq!(ids.pgid, p.pid());
    }
    // A live process that leads no group is no group.
    let s = *sleeps.iter().next().unwrap();
    let err = resolve(&[d(s, IdType::Gid)], 0).unwrap_err();
    assert_eq!(err.to_string(), format!("-p {s}:GID: No such process"));
}

#[test]
fn sid_names_the_session() {
    let mut cmd = Command::new("setsid");
    cmd.args([
        "sh",
        "-c",
        "sleep 30 & echo s $!; sleep 30 & echo s $!; wait",
    ]);
    let mut p = Spawned::start(cmd);
    let mut want = p.labelled_pids(2).remove("s").unwrap();
    want.insert(p.pid());

    let set = resolve(&[d(p.pid(), IdType::Sid)], 0).unwrap();
    assert_eq!(pids_of(&set), want);
    for ids in set.processes.values() {
        assert_eq!(ids.sid, p.pid());
    }
    // The test's own session is not the new one.
    assert_ne!(cpr::target::process_ids(me()).unwrap().sid, p.pid());
}

const TREE: &str = "\
( sleep 30 & echo g1 $!; sleep 30 & echo g1 $!; wait ) & echo c1 $!
( sleep 30 & echo g2 $!; sleep 30 & echo g2 $!; wait ) & echo c2 $!
wait";

#[test]
fn hid_names_the_tree() {
    let mut p = Spawned::sh(TREE);
    let tree = p.labelled_pids(6);
    let one = |label: &str| *tree[label].iter().next().unwrap();
    let (c1, c2) = (one("c1"), one("c2"));

    let mut want = set_of([p.pid(), c1, c2]);
    want.extend(&tree["g1"]);
    want.extend(&tree["g2"]);
    assert_eq!(want.len(), 7);
    let set = resolve(&[d(p.pid(), IdType::Hid)], 0).unwrap();
    assert_eq!(pids_of(&set), want);

    let mut want = set_of([c1]);
    want.extend(&tree["g1"]);
    let set = resolve(&[d(c1, IdType::Hid)], 0).unwrap();
    assert_eq!(pids_of(&set), want);
    for g in &tree["g1"] {
        assert_eq!(set.processes[g].ppid, c1);
    }

    // A leaf is a tree of one.
    let g = *tree["g2"].iter().next().unwrap();
    assert_eq!(
        pids_of(&resolve(&[d(g, IdType::Hid)], 0).unwrap()),
        set_of([g])
    );
}

#[test]
fn sgp_names_threads_and_clone_vm_children_not_fork_children() {
    let g = start_share_group();
    let main = g.proc.pid();
    let want = set_of([main, g.vm_child]);
    for root in [main, g.vm_child] {
        let set = resolve(&[d(root, IdType::Sgp)], 0).unwrap();
        assert_eq!(pids_of(&set), want, "{root}:SGP");
        assert_eq!(set.processes[&main].tids.len(), 3);
        assert_eq!(set.processes[&g.vm_child].tids, vec![g.vm_child]);
    }
    // A thread ID names its process's share group too.
    let tid = *g.threads.iter().next().unwrap();
    assert_eq!(pids_of(&resolve(&[d(tid, IdType::Sgp)], 0).unwrap()), want);
    // The fork child has its own address space.
    let set = resolve(&[d(g.fork_child, IdType::Sgp)], 0).unwrap();
    assert_eq!(pids_of(&set), set_of([g.fork_child]));
    // And all three are main's tree.
    let set = resolve(&[d(main, IdType::Hid)], 0).unwrap();
    assert_eq!(pids_of(&set), set_of([main, g.vm_child, g.fork_child]));
}

#[test]
fn combined_designators_are_deduplicated() {
    let mut p = Spawned::sh(TREE);
    let tree = p.labelled_pids(6);
    let c1 = *tree["c1"].iter().next().unwrap();
    let g1 = *tree["g1"].iter().next().unwrap();
    let text = format!("{c1}:HID,{g1},{c1},{}:GID,{g1}:hid", p.pid());
    let set = resolve(&parse_idlist(&text).unwrap(), 0).unwrap();
    let whole = resolve(&[d(p.pid(), IdType::Gid)], 0).unwrap();
    assert_eq!(set, whole);
    assert_eq!(set.processes.len(), 7);
}

#[test]
fn nothing_there_is_no_such_process() {
    let free = free_pid();
    for (designator, want) in [
        (d(free, IdType::Pid), format!("-p {free}: No such process")),
        (
            d(free, IdType::Gid),
            format!("-p {free}:GID: No such process"),
        ),
        (
            d(free, IdType::Sid),
            format!("-p {free}:SID: No such process"),
        ),
        (
            d(free, IdType::Hid),
            format!("-p {free}:HID: No such process"),
        ),
        (
            d(free, IdType::Sgp),
            format!("-p {free}:SGP: No such process"),
        ),
    ] {
        let err = resolve(&[designator], 0).unwrap_err();
        assert_eq!(err.kind, Kind::NoSuchProcess);
        assert_eq!(err.to_string(), want);
    }
    // One bad designator among good ones still fails, naming the bad one.
    let mut cmd = Command::new("sleep");
    cmd.arg("30").process_group(0);
    let p = Spawned::start(cmd);
    let err = resolve(
        &parse_idlist(&format!("{},{free}:GID", p.pid())).unwrap(),
        0,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), format!("-p {free}:GID: No such process"));
}

#[test]
fn cpr_cannot_checkpoint_itself() {
    for designator in [
        d(me(), IdType::Pid),
        d(me(), IdType::Hid),
        d(me(), IdType::Sgp),
    ] {
        let err = resolve(&[designator], 0).unwrap_err();
        assert_eq!(err.kind, Kind::InvalidArgument);
        assert!(
            err.to_string()
                .ends_with("Invalid argument: cpr cannot checkpoint itself"),
            "{err}"
        );
    }
    // Inside a tree it is left out: the test's parent's tree holds the test, not as a target.
    let parent = cpr::target::process_ids(me()).unwrap().ppid;
    if parent > 1
        && let Ok(set) = resolve(&[d(parent, IdType::Hid)], 0)
    {
        assert!(!set.processes.contains_key(&me()));
        assert!(set.processes.contains_key(&parent));
    }
}

#[test]
fn zombies_belong_to_their_tree() {
    let mut p = Spawned::sh("sleep 30 & echo z $!; exec sleep 30");
    let zombie: i32 = p.line().strip_prefix("z ").unwrap().parse().unwrap();
    // Once the shell has become `sleep 30`, nothing reaps its child: killed, it stays a
    // zombie.
    while std::fs::read_to_string(format!("/proc/{}/comm", p.pid())).unwrap() != "sleep\n" {
        std::thread::yield_now();
    }
    kill(Pid::from_raw(zombie), Signal::SIGKILL).unwrap();
    loop {
        if ProcDir::open(zombie).unwrap().stat().unwrap().is_dead() {
            break;
        }
        std::thread::yield_now();
    }
    let set = resolve(&[d(p.pid(), IdType::Hid)], 0).unwrap();
    assert_eq!(pids_of(&set), set_of([p.pid(), zombie]));
    assert_eq!(set.processes[&zombie].tids, vec![zombie]);
    assert_eq!(set.processes[&zombie].ppid, p.pid());
}

// ---------------------------------------------------------------------------------------
// Permissions

fn sleep_as(uid: Option<u32>) -> Spawned {
    let mut cmd = Command::new("sleep");
    cmd.arg("30").process_group(0);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    Spawned::start(cmd)
}

#[test]
fn non_root_may_not_name_root_processes() {
    let p = sleep_as(None);
    let err = resolve(&[d(p.pid(), IdType::Pid)], NOBODY).unwrap_err();
    assert_eq!(err.kind, Kind::NotPermitted);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("process {}: Operation not permitted", p.pid())),
        "{msg}"
    );
}

#[test]
fn owner_may_name_own_processes() {
    let p = sleep_as(Some(NOBODY));
    let set = resolve(&[d(p.pid(), IdType::Pid)], NOBODY).unwrap();
    assert_eq!(pids_of(&set), set_of([p.pid()]));
    assert_eq!(set.processes[&p.pid()].uids, [NOBODY; 4]);
    assert_eq!(set.owner(), Some((NOBODY, NOBODY)));
    // Root may too.
    assert_eq!(resolve(&[d(p.pid(), IdType::Gid)], 0).unwrap(), set);
}

#[test]
fn several_owners_need_root() {
    let root = sleep_as(None);
    let nobody = sleep_as(Some(NOBODY));
    let list = [d(root.pid(), IdType::Pid), d(nobody.pid(), IdType::Pid)];
    let err = resolve(&list, NOBODY).unwrap_err();
    assert_eq!(err.kind, Kind::NotPermitted);
    assert_eq!(
        err.to_string(),
        "Operation not permitted: processes have several owners (uids 0, 65534), only root may checkpoint them"
    );
    let set = resolve(&list, 0).unwrap();
    assert_eq!(pids_of(&set), set_of([root.pid(), nobody.pid()]));
    assert_eq!(set.owner(), None);
}

#[test]
fn process_stat_of_the_test_itself_reads() {
    // The parser reads this very process's stat line.
    let text = std::fs::read_to_string("/proc/self/stat").unwrap();
    let s: Stat = cpr::proc::stat::parse(&text).unwrap();
    assert_eq!(s.pid, me());
    assert_ne!(s.mm_layout, [0; 10]);
    let status =
        cpr::proc::status::parse(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap();
    assert_eq!(status.tgid, me());
    assert_eq!(status.uids[0], nix::unistd::getuid().as_raw());
}

#[test]
fn kernel_threads_are_refused() {
    let kthread = all_pids().into_iter().find(|pid| {
        ProcDir::open(*pid)
            .and_then(|dir| dir.stat())
            .is_ok_and(|s| s.is_kernel_thread())
    });
    // A PID namespace of its own (a container) may show none: a developer's machine may
    // skip, CI may not.
    let Some(kthread) = kthread else {
        assert!(
            !in_ci(),
            "no kernel thread visible in this PID namespace: CI must show one"
        );
        eprintln!("skipped: no kernel thread visible in this PID namespace");
        return;
    };
    for designator in [d(kthread, IdType::Pid), d(kthread, IdType::Hid)] {
        let err = resolve(&[designator], 0).unwrap_err();
        assert_eq!(err.kind, Kind::InvalidArgument);
        assert!(
            err.to_string()
                .ends_with(&format!("process {kthread} is a kernel thread")),
            "{err}"
        );
    }
}
