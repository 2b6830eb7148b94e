//! Process sets end to end (issue 4): pipelines, daemons, trees, groups whose leader
//! exited, zombies, shared offsets, shared memory, locks, `-u`, all-or-nothing restarts
//! of several statefiles, real tools (make, sort | uniq) and `-j` on a terminal (tmux).
//!
//! Every workload is checkpointed with `cpr -c SF -p ID:TYPE` (default WILL EXIT: the
//! originals end), restarted with `cpr -r`, and checks itself (PASS/FAIL) or is checked
//! through /proc. Run alone: `cargo test --test process_sets`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// SIGKILLs a whole process group on drop (the members of a pipeline do not all name the
/// scratch directory), then reaps what it can.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if self.0 > 1 {
            let _ = kill(Pid::from_raw(-self.0), Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            reap_children();
        }
    }
}

/// Starts `program args...` leading a new process group, stdin on /dev/null, stdout and
/// stderr appended to `log`.
fn spawn_group(s: &Scratch, program: &Path, args: &[String], log: &Path) -> (Workload, KillGroup) {
    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    let w = spawn_command(s, cmd, log.to_path_buf());
    let group = KillGroup(w.pid);
    (w, group)
}

/// (ppid, pgid, sid) from /proc/PID/stat.
fn ids(pid: i32) -> (i32, i32, i32) {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let rest = &text[text.rfind(')').unwrap() + 1..];
    let f: Vec<i32> = rest
        .split_whitespace()
        .skip(1)
        .take(4)
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0], f[1], f[2])
}

fn state(pid: i32) -> Option<char> {
    proc_status(pid).map(|(s, _)| s)
}

/// The PIDs whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|text| {
                let rest = &text[text.rfind(')').unwrap() + 1..];
                rest.split_whitespace().nth(2).and_then(|x| x.parse().ok()) == Some(pgid)
            })
        })
        .collect()
}

fn num(line: &str, key: &str) -> i32 {
    field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

// ---------------------------------------------------------------------------------------
// 1. a 3-stage pipeline in its own group, data in flight

#[test]
fn pipeline_in_a_group_continues_without_gap() {
    let _l = serial();
    let s = Scratch::new();
    let exe = build("ps_pipe.c");
    let log = s.join("cons.log");
    let script = format!(
        "{e} prod {c} | cat | {e} cons {c} {l}",
        e = exe.display(),
        c = ctl(&s),
        l = log.display()
    );
    let (bash, _g) = spawn_group(
        &s,
        Path::new("/bin/bash"),
        &["-c".into(), script],
        &s.join("out.log"),
    );
    let bash = bash.pid;
    wait_for_line(&log, "READY", TIMEOUT);
    let members = group_members(bash);
    assert_eq!(
        members.len(),
        4,
        "bash and three stages in group {bash}: {members:?}"
    );
    let sf = checkpoint_set(&s, "ckpt", &format!("{bash}:GID"), &[], &members);
    // the pipes were full: their data is in the statefile
    let in_flight: Vec<String> = dir_entries(&sf.join("shared"))
        .into_iter()
        .filter(|n| n.starts_with("pipe-"))
        .collect();
    assert_eq!(
        in_flight.len(),
        2,
        "two pipes with data in flight: {in_flight:?}"
    );
    restart_ok(&sf);
    assert_eq!(
        group_members(bash),
        members,
        "the same processes in group {bash}"
    );
    s.go();
    let pass = wait_for_line(&log, "PASS", TIMEOUT);
    assert!(num(&pass, "n") > 22000, "{pass}");
    assert_eq!(count_lines(&log, "READY"), 1, "the consumer started once");
}

/// Pipes with one end closed everywhere are no pipes to the outside: they come back
/// with that end closed and their data.
#[test]
fn pipes_without_writers_or_readers_come_back_so() {
    let _l = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("ps_widow.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}

// ---------------------------------------------------------------------------------------
// 2. a daemon with workers (:SID)

#[test]
fn daemon_session_keeps_pids_groups_and_parents() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("ps_daemon.c"), &[ctl(&s)]);
    let pids = [
        w.pid,
        num(&ready, "w1"),
        num(&ready, "w2"),
        num(&ready, "w3"),
    ];
    let before: Vec<(i32, i32, i32)> = pids.iter().map(|&p| ids(p)).collect();
    assert_eq!(before[0].2, w.pid, "the daemon leads its session");
    assert_eq!(
        before[3],
        (pids[2], pids[2], w.pid),
        "worker 3 under worker 2, in its group"
    );
    let ticks = count_lines(&w.log, "tick");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:SID", w.pid), &[], &pids);
    restart_ok(&sf);
    let after: Vec<(i32, i32, i32)> = pids.iter().map(|&p| ids(p)).collect();
    assert_eq!(after, before, "(ppid, pgid, sid) of {pids:?}");
    for &p in &pids {
        assert_running_untraced(p);
    }
    // the workers work: new ticks from each
    wait_until("ticks after restart", TIMEOUT, || {
        count_lines(&w.log, "tick") >= ticks + 6
    });
    for (i, &p) in pids[1..].iter().enumerate() {
        if i == 1 {
            continue; // worker 2 does not tick
        }
        let mine = format!("tick {p} ");
        let n = count_lines(&w.log, &mine);
        wait_until(&format!("ticks of {p}"), TIMEOUT, || {
            count_lines(&w.log, &mine) > n
        });
    }
    s.go();
    expect_pass_and_exit(&w);
}

// ---------------------------------------------------------------------------------------
// 3. a tree (:HID): children exit after restart, the parent reaps their statuses

#[test]
fn tree_parent_reaps_exit_status_chosen_after_restart() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("ps_tree.c"), &[ctl(&s)]);
    let (c1, c2, g1, g2) = (
        num(&ready, "c1"),
        num(&ready, "c2"),
        num(&ready, "g1"),
        num(&ready, "g2"),
    );
    let all = [w.pid, c1, c2, g1, g2];
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &all);
    restart_ok(&sf);
    assert_eq!(ids(c1).0, w.pid);
    assert_eq!(ids(c2).0, w.pid);
    assert_eq!(ids(g1).0, c1);
    assert_eq!(ids(g2).0, c2);
    s.go();
    let pass = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(num(&pass, "sigchld") >= 1, "{pass}");
    assert!(read_lines(&w.log).contains(&format!("reaped {c1} status 40")));
    assert!(read_lines(&w.log).contains(&format!("reaped {c2} status 41")));
    assert_eq!(wait_exit(w.pid, TIMEOUT), Some(0));
}

// ---------------------------------------------------------------------------------------
// 4. a group whose leader had exited

#[test]
fn group_without_its_leader_keeps_its_pgid() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("ps_group.c"), &[ctl(&s)]);
    let leader = w.pid;
    let (m1, m2) = (num(&ready, "m1"), num(&ready, "m2"));
    // the leader ends; its members live on in its group
    assert_eq!(wait_exit(leader, TIMEOUT), Some(0));
    wait_pid_gone(leader, TIMEOUT);
    assert_eq!(ids(m1), (std::process::id() as i32, leader, leader));
    let _g = KillGroup(leader);
    let sf = checkpoint_set(&s, "ckpt", &format!("{leader}:GID"), &[], &[m1, m2]);
    restart_ok(&sf);
    for m in [m1, m2] {
        let (_, pgid, sid) = ids(m);
        assert_eq!(
            (pgid, sid),
            (leader, leader),
            "group and session of member {m}"
        );
    }
    assert!(
        !Path::new(&format!("/proc/{leader}")).exists(),
        "the helper with the leader's PID {leader} is still there: {:?}",
        proc_status(leader)
    );
    assert_eq!(group_members(leader), vec![m1, m2]);
    s.go();
    wait_for_nth_line(&w.log, "PASS", 2, TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// 5. a zombie

#[test]
fn zombie_is_reaped_with_its_status_after_restart() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("ps_zombie.c"), &[ctl(&s)]);
    let z = num(&ready, "zombie");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid, z]);
    restart_ok(&sf);
    assert_eq!(state(z), Some('Z'), "process {z} is a zombie again");
    assert_eq!(ids(z).0, w.pid, "the zombie's parent");
    s.go();
    let pass = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(pass.contains(&format!("zombie={z} status=7")), "{pass}");
    assert_eq!(wait_exit(w.pid, TIMEOUT), Some(0));
}

// ---------------------------------------------------------------------------------------
// 6. one description, shared offset

#[test]
fn shared_offset_keeps_parent_and_child_writes_apart() {
    let _l = serial();
    let s = Scratch::new();
    let data = s.join("shared.dat");
    let (w, _) = spawn_ready(
        &s,
        &build("ps_append.c"),
        &[ctl(&s), data.display().to_string()],
    );
    let child = *fs::read_to_string(format!("/proc/{}/task/{}/children", w.pid, w.pid))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse::<i32>().unwrap())
        .collect::<Vec<_>>()
        .first()
        .expect("the writer's child");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid, child]);
    let at_checkpoint = fs::metadata(&data).unwrap().len();
    restart_ok(&sf);
    wait_until("writes after restart", TIMEOUT, || {
        fs::metadata(&data).unwrap().len() >= at_checkpoint + 20 * 16
    });
    s.go();
    let pass = expect_pass_and_exit(&w);
    let total = num(&pass, "total") as u64;
    assert_eq!(fs::metadata(&data).unwrap().len(), total, "{pass}");
}

// ---------------------------------------------------------------------------------------
// 7. SysV shm and shared anonymous memory, saved once

fn xorshift_pattern(seed: u64, bytes: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(bytes);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_ne_bytes());
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn shared_memory_between_parent_and_child_saved_once() {
    let _l = serial();
    let s = Scratch::new();
    let seed = 0x5eed_0000_u64 + std::process::id() as u64;
    let (w, ready) = spawn_ready(&s, &build("ps_shmem.c"), &[ctl(&s), seed.to_string()]);
    let child = num(&ready, "child");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid, child]);
    // the region: in one shared/mem-* file, in no process's pages
    let needle = &xorshift_pattern(seed, 4096)[1024..1536];
    let mems: Vec<String> = dir_entries(&sf.join("shared"))
        .into_iter()
        .filter(|n| n.starts_with("mem-"))
        .collect();
    assert_eq!(mems.len(), 1, "one shared memory file: {mems:?}");
    let mem = fs::read(sf.join("shared").join(&mems[0])).unwrap();
    assert!(
        contains(&mem, needle),
        "shared/{} does not hold the region",
        mems[0]
    );
    for pid in [w.pid, child] {
        let pages = sf.join("proc").join(pid.to_string()).join("pages");
        let data = fs::read(&pages).unwrap_or_else(|e| panic!("{}: {e}", pages.display()));
        assert!(
            !contains(&data, needle),
            "{} holds the shared region again",
            pages.display()
        );
    }
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}

// ---------------------------------------------------------------------------------------
// 8. flock and fcntl locks in a process set

fn probe_locks(s: &Scratch, owner: i32) -> String {
    let out = Command::new(build("ps_locks.c"))
        .args(["probe", &ctl(s), &owner.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn flock_and_fcntl_locks_held_by_a_process_set() {
    let _l = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("ps_locks.c"), &["run".into(), ctl(&s)]);
    let child = num(&ready, "child");
    assert_eq!(probe_locks(&s, child), "PROBE ok", "before the checkpoint");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid, child]);
    assert!(
        probe_locks(&s, child).starts_with("PROBE FAIL"),
        "the originals are gone, their locks too"
    );
    restart_ok(&sf);
    assert_eq!(probe_locks(&s, child), "PROBE ok", "after the restart");
    s.go();
    expect_pass_and_exit(&w);
}

// ---------------------------------------------------------------------------------------
// 9. -u: programs saved with the statefile

/// counter.c copied to a directory of its own and started from there.
fn copied_counter(s: &Scratch) -> (PathBuf, Workload, PathBuf) {
    let dir = s.join("bin");
    fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("ps_counter");
    fs::copy(build("counter.c"), &prog).unwrap();
    let log = s.join("count.log");
    let (w, _) = spawn_ready(s, &prog, &[ctl(s), log.display().to_string()]);
    (prog, w, log)
}

/// Another program where `prog` was (a new inode, other content).
fn replace_program(prog: &Path) {
    fs::remove_file(prog).unwrap();
    fs::copy("/bin/true", prog).unwrap();
    fs::set_permissions(prog, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Checkpoints the copied counter with `-u`, does `change` to its program file, restarts:
/// the counter goes on counting and passes.
fn upgrade_round_trip(change: impl FnOnce(&Path)) {
    let _l = serial();
    let s = Scratch::new();
    let (prog, w, log) = copied_counter(&s);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &["-u"], &[w.pid]);
    change(&prog);
    restart_ok(&sf);
    let n = read_lines(&log).len();
    wait_until("counting after restart", TIMEOUT, || {
        read_lines(&log).len() >= n + 3
    });
    s.go();
    expect_pass_and_exit(&w);
}

#[test]
fn upgrade_restarts_after_the_program_changed() {
    upgrade_round_trip(replace_program);
}

#[test]
fn upgrade_restarts_after_the_program_was_deleted() {
    upgrade_round_trip(|prog| fs::remove_file(prog).unwrap());
}

#[test]
fn changed_program_without_upgrade_is_component_unavailable() {
    let _l = serial();
    let s = Scratch::new();
    let (prog, w, _log) = copied_counter(&s);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    replace_program(&prog);
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "restart after the program changed",
        &["component unavailable"],
        false,
    );
    assert!(
        !is_alive(w.pid),
        "process {} runs after a failed restart",
        w.pid
    );
}

// ---------------------------------------------------------------------------------------
// 10. all or nothing across statefiles

#[test]
fn damaged_second_statefile_restarts_nothing_of_the_first() {
    let _l = serial();
    let s = Scratch::new();
    let exe = build("ps_tree.c");
    let a_dir = s.join("a");
    let b_dir = s.join("b");
    fs::create_dir_all(&a_dir).unwrap();
    fs::create_dir_all(&b_dir).unwrap();
    let (wa, ra) = spawn_ready(&s, &exe, &[a_dir.display().to_string()]);
    let wb = spawn(
        &s,
        &build("counter.c"),
        &[
            b_dir.display().to_string(),
            s.join("b.log").display().to_string(),
        ],
    );
    wait_for_nth_line(&wb.log, "READY", 1, TIMEOUT);
    let a_pids = [
        wa.pid,
        num(&ra, "c1"),
        num(&ra, "c2"),
        num(&ra, "g1"),
        num(&ra, "g2"),
    ];
    let a = checkpoint_set(&s, "a.ckpt", &format!("{}:HID", wa.pid), &[], &a_pids);
    let b = checkpoint_set(&s, "b.ckpt", &wb.pid.to_string(), &[], &[wb.pid]);
    // flip a byte in b's page data
    let pages = b.join("proc").join(wb.pid.to_string()).join("pages");
    let mut bytes = fs::read(&pages).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&pages, bytes).unwrap();
    let out = restart_all(&[&a, &b]);
    assert_failure(&out, "cpr -r a b", &[b.to_str().unwrap()], false);
    reap_children();
    for pid in a_pids.iter().chain([wb.pid].iter()) {
        assert!(
            !is_alive(*pid),
            "process {pid} runs after the failed restart: {:?}",
            proc_status(*pid)
        );
    }
    assert!(
        s.processes().is_empty(),
        "left running: {:?}",
        s.processes()
    );
}

// ---------------------------------------------------------------------------------------
// 11. make -j2, checkpointed mid-build

const UNITS: usize = 20;

fn make_project(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut objs = Vec::new();
    for k in 0..UNITS {
        let mut src = String::new();
        for f in 0..150 {
            src.push_str(&format!(
                "int u{k}_f{f}(int *a, int n) {{ int s = {f}; for (int i = 0; i < n; i++) {{ s += a[i] * {m} ^ (s >> {sh}); if (s % {d} == 3) s -= a[(i * {f1}) % n]; }} return s; }}\n",
                m = f + 3 + k,
                sh = f % 7 + 1,
                d = f + 5,
                f1 = f + 1
            ));
        }
        src.push_str(&format!("int unit{k}(int *a, int n) {{ return 0"));
        for f in 0..150 {
            src.push_str(&format!(" + u{k}_f{f}(a, n)"));
        }
        src.push_str(";\n}\n");
        src.push_str(&format!("int id{k}(void) {{ return {k} * {k} + 1; }}\n"));
        fs::write(dir.join(format!("unit{k}.c")), src).unwrap();
        objs.push(format!("unit{k}.o"));
    }
    let mut main = String::from("#include <stdio.h>\n");
    for k in 0..UNITS {
        main.push_str(&format!("int unit{k}(int *, int); int id{k}(void);\n"));
    }
    main.push_str("int main(void) { int a[8] = {1,2,3,4,5,6,7,8}; long sum = 0, chk = 0;\n");
    for k in 0..UNITS {
        main.push_str(&format!("  sum += id{k}(); chk += unit{k}(a, 8);\n"));
    }
    main.push_str("  printf(\"units=%d sum=%ld chk=%ld\\n\", ");
    main.push_str(&format!("{UNITS}, sum, chk); return 0; }}\n"));
    fs::write(dir.join("main.c"), main).unwrap();
    objs.push("main.o".into());
    let makefile = format!(
        "CFLAGS = -O2\nprog: {o}\n\tcc -o $@ {o}\n%.o: %.c\n\tcc $(CFLAGS) -c -o $@ $<\n",
        o = objs.join(" ")
    );
    fs::write(dir.join("Makefile"), makefile).unwrap();
}

#[test]
fn make_j2_checkpointed_mid_build_finishes() {
    let _l = serial();
    let s = Scratch::new();
    let proj = s.join("proj");
    make_project(&proj);
    let log = s.join("make.log");
    let (make, _g) = spawn_group(
        &s,
        Path::new("/usr/bin/make"),
        &["-j2".into(), "-C".into(), proj.display().to_string()],
        &log,
    );
    let make = make.pid;
    let objects = || {
        dir_entries(&proj)
            .iter()
            .filter(|n| n.starts_with("unit") && n.ends_with(".o"))
            .count()
    };
    wait_until("two objects built", TIMEOUT, || objects() >= 2);
    assert!(
        !proj.join("prog").exists(),
        "the build ended too soon to checkpoint it mid-way"
    );
    let tree = group_members(make);
    let sf = checkpoint_set(&s, "ckpt", &format!("{make}:HID"), &[], &tree);
    let built = objects();
    assert!(built < UNITS, "the build was over at the checkpoint");
    restart_ok(&sf);
    let code = wait_exit(make, Duration::from_secs(300));
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "make after restart:\n{text}");
    let out = Command::new(proj.join("prog"))
        .output()
        .expect("run the program built");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let want: usize = (0..UNITS).map(|k| k * k + 1).sum();
    assert!(
        line.starts_with(&format!("units={UNITS} sum={want} chk=")),
        "{line}"
    );
    // the checksum is what a build without interruption gives
    let clean = s.join("clean");
    make_project(&clean);
    let o = Command::new("make")
        .args(["-j2", "-s", "-C"])
        .arg(&clean)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "clean build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ref_out = Command::new(clean.join("prog")).output().unwrap();
    assert_eq!(line, String::from_utf8_lossy(&ref_out.stdout).trim());
}

// ---------------------------------------------------------------------------------------
// 12. sort | uniq -c, checkpointed mid-way

fn generate_words(path: &Path, lines: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut text = String::with_capacity(lines * 9);
    for _ in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("w{:07}\n", x % 300_000));
    }
    fs::write(path, text).unwrap();
}

#[test]
fn sort_uniq_pipeline_checkpointed_mid_way_gives_the_same_output() {
    let _l = serial();
    let s = Scratch::new();
    let input = s.join("words.txt");
    generate_words(&input, 8_000_000);
    let tmp = s.join("sorttmp");
    fs::create_dir_all(&tmp).unwrap();
    let pipeline = |out: &Path| {
        format!(
            "LC_ALL=C sort --parallel=1 -S 64M -T {t} {i} | uniq -c > {o}",
            t = tmp.display(),
            i = input.display(),
            o = out.display()
        )
    };
    // reference: uninterrupted
    let reference = s.join("reference.out");
    let st = Command::new("/bin/bash")
        .args(["-c", &pipeline(&reference)])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(dir_entries(&tmp).is_empty(), "sort left temporary files");
    let out = s.join("restarted.out");
    let (bash, _g) = spawn_group(
        &s,
        Path::new("/bin/bash"),
        &["-c".into(), pipeline(&out)],
        &s.join("out.log"),
    );
    let bash = bash.pid;
    // mid-way: sort has spilled its first run to a temporary file
    wait_until("sort's first temporary file", TIMEOUT, || {
        !dir_entries(&tmp).is_empty()
    });
    let members = group_members(bash);
    let sf = checkpoint_set(&s, "ckpt", &format!("{bash}:GID"), &[], &members);
    assert_eq!(
        fs::metadata(&out).map(|m| m.len()).unwrap_or(0),
        0,
        "uniq wrote before the checkpoint"
    );
    restart_ok(&sf);
    assert_eq!(
        wait_exit(bash, Duration::from_secs(300)),
        Some(0),
        "the pipeline's exit status"
    );
    let a = fs::read(&reference).unwrap();
    let b = fs::read(&out).unwrap();
    assert!(
        a == b,
        "output differs: {} bytes vs {} of the reference",
        b.len(),
        a.len()
    );
}

// ---------------------------------------------------------------------------------------
// 13. -j: a job on a terminal, restarted from another tmux session

fn tmux(sock: &Path, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tmux")
}

fn capture(sock: &Path, target: &str) -> String {
    String::from_utf8_lossy(&tmux(sock, &["capture-pane", "-p", "-t", target]).stdout).to_string()
}

fn wait_screen(sock: &Path, target: &str, what: &str) -> String {
    let mut screen = String::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        screen = capture(sock, target);
        if screen.contains(what) {
            return screen;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no '{what}' on {target}:\n{screen}");
}

/// The status `echo CPR_EXIT=$?` printed (not the command line that asks for it).
fn cpr_exit(screen: &str) -> Option<i32> {
    screen
        .lines()
        .filter_map(|l| l.split_once("CPR_EXIT=").map(|(_, v)| v))
        .find_map(|v| v.trim().parse().ok())
}

/// Kills the tmux server of a test.
struct TmuxServer(PathBuf);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = tmux(&self.0, &["kill-server"]);
    }
}

#[test]
fn interactive_job_restarted_with_j_in_tmux() {
    let _l = serial();
    if Command::new("tmux").arg("-V").output().is_err() {
        let st = Command::new("apt-get")
            .args(["install", "-y", "tmux"])
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "tmux is missing and cannot be installed"
        );
    }
    let s = Scratch::new();
    let sock = s.join("tmux.sock");
    let _server = TmuxServer(sock.clone());
    let exe = build("ps_tty.c");
    // the job: started from an interactive shell, which gives it a process group of its
    // own and the terminal (and reaps it when the checkpoint ends it)
    let o = tmux(
        &sock,
        &[
            "new-session",
            "-d",
            "-s",
            "job",
            "-x",
            "150",
            "-y",
            "40",
            "/bin/bash --norc --noprofile -i",
        ],
    );
    assert!(o.status.success(), "tmux new-session: {}", describe(&o));
    let cmd = format!("{} {}", exe.display(), ctl(&s));
    tmux(&sock, &["send-keys", "-t", "job", &cmd, "Enter"]);
    // a second session to restart from (and that keeps the server up)
    let home = s.join("home");
    fs::create_dir_all(&home).unwrap();
    let o = tmux(
        &sock,
        &[
            "new-session",
            "-d",
            "-s",
            "shell",
            "-x",
            "150",
            "-y",
            "40",
            "/bin/bash --norc --noprofile -i",
        ],
    );
    assert!(o.status.success(), "tmux new-session: {}", describe(&o));
    let screen = wait_screen(&sock, "job", "prompt>");
    let pid: i32 = screen
        .lines()
        .find_map(|l| l.strip_prefix("READY "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no READY on the job's screen:\n{screen}"));
    let _k = KillOnDrop::new(pid, s.path());
    let (_, pgid, _) = ids(pid);
    assert_eq!(pgid, pid, "the job leads its own process group");
    tmux(&sock, &["send-keys", "-t", "job", "before", "Enter"]);
    wait_screen(&sock, "job", "echo: before");
    let sf = checkpoint_set(&s, "ckpt", &pid.to_string(), &[], &[]);
    wait_until("the original gone", TIMEOUT, || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let line = format!(
        "HOME={} {} -j -r {}; echo CPR_EXIT=$?",
        home.display(),
        cpr_bin(),
        sf.display()
    );
    tmux(&sock, &["send-keys", "-t", "shell", &line, "Enter"]);
    wait_until("the restarted job", TIMEOUT, || is_alive(pid));
    tmux(
        &sock,
        &["send-keys", "-t", "shell", "after restart", "Enter"],
    );
    let screen = wait_screen(&sock, "shell", "echo: after restart");
    assert_eq!(
        cpr_exit(&screen),
        None,
        "cpr -j ended before the job:\n{screen}"
    );
    tmux(&sock, &["send-keys", "-t", "shell", "C-c"]);
    let mut screen = String::new();
    wait_until("cpr -j to end", TIMEOUT, || {
        screen = capture(&sock, "shell");
        cpr_exit(&screen).is_some()
    });
    assert_eq!(
        cpr_exit(&screen),
        Some(130),
        "cpr -j should end with the job's SIGINT:\n{screen}"
    );
    wait_until("the job gone", TIMEOUT, || !is_alive(pid));
}
