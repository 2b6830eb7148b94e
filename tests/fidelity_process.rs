//! Process attributes come back identical, or the restart is refused: scheduling,
//! capabilities, process groups and sessions, and the check before release that compares
//! every restored process with its statefile. Each workload sets its state, is
//! checkpointed and restarted, then checks itself with the calls a program would use.
//!
//! Run them alone: `cargo test --test fidelity_process` (they take the global lock).

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// start, READY, checkpoint (WILL EXIT), restart, GO, PASS: returns the PASS line.
fn round_trip(source: &str) -> String {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build(source), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w)
}

/// Policy, real-time priority, nice and CPU affinity of each thread of a process (one
/// SCHED_BATCH, one SCHED_FIFO, one SCHED_IDLE, each on its own CPUs), and its name.
#[test]
fn scheduling_of_every_thread() {
    let pass = round_trip("fp_sched.c");
    assert!(pass.contains("fifo: policy 1/1 priority 7/7"), "{pass}");
    // each thread's name too (one with a backslash, which /proc/TID/status escapes)
    assert!(pass.contains("name 'fifo\\7'/'fifo\\7'"), "{pass}");
}

/// A signal the program left at its default comes back at its default, not as cpr's own
/// disposition (cpr ignores SIGPIPE).
#[test]
fn signal_at_default_stays_at_default() {
    let pass = round_trip("fp_wait.c");
    assert!(pass.contains("SIGPIPE at SIG_DFL"), "{pass}");
}

/// A cpuset of its own (cgroup v1) holding only CPU 0, removed when dropped; `None`
/// where there is no such cgroup hierarchy or one CPU only.
struct CpusetOfCpu0(std::path::PathBuf);

impl CpusetOfCpu0 {
    fn new() -> Option<CpusetOfCpu0> {
        let root = std::path::Path::new("/sys/fs/cgroup/cpuset");
        let cpus = std::fs::read_to_string(root.join("cpuset.cpus")).ok()?;
        if !cpus.trim().contains(['-', ',']) {
            return None;
        }
        let dir = root.join(format!("cpr-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let set = CpusetOfCpu0(dir);
        let mems = std::fs::read_to_string(root.join("cpuset.mems")).ok()?;
        std::fs::write(set.0.join("cpuset.cpus"), "0").ok()?;
        std::fs::write(set.0.join("cpuset.mems"), mems.trim()).ok()?;
        Some(set)
    }
}

impl Drop for CpusetOfCpu0 {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The check before release: a restart where one saved item cannot come back identical
/// (cpr runs in a cpuset of CPU 0 only, so the kernel quietly narrows the saved affinity
/// of CPUs 0-1) fails, naming the process, the object and both values, and the program
/// never runs again.
#[test]
fn restart_that_cannot_restore_affinity_is_refused() {
    let _s = serial();
    let Some(cpuset) = CpusetOfCpu0::new() else {
        assert!(!in_ci(), "CI needs a cpuset cgroup (v1) and two CPUs");
        eprintln!("skipped: no cpuset cgroup (v1) or one CPU only");
        return;
    };
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_wait.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    s.go();
    let tasks = cpuset.0.join("tasks");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1" && shift && exec "$@""#)
        .arg("sh")
        .arg(&tasks)
        .arg(cpr_bin())
        .arg("-r")
        .arg(&sf)
        .output()
        .unwrap();
    assert_failure(
        &out,
        "restart in a cpuset of CPU 0",
        &[
            &format!("process {}", w.pid),
            "CPU affinity",
            "[0]",
            "[0, 1]",
            "Checkpoint error",
        ],
        false,
    );
    assert!(!is_alive(w.pid), "the refused process {} runs", w.pid);
    assert_eq!(count_lines(&w.log, "PASS"), 0, "the refused process ran");
}

/// Credentials per thread: bounding set, ambient set, securebits, no_new_privs, kept
/// capabilities of a non-root main thread, and a second thread with another uid.
#[test]
fn capabilities_and_credentials_of_every_thread() {
    let _s = serial();
    let s = Scratch::new();
    // root restarts the files of a process of uid 1000 with that user's rights: its
    // directories must be open to it and its output its own
    s.open_to_other_users();
    let (w, _) = spawn_ready(&s, &build("fp_caps.c"), &[ctl(&s)]);
    std::os::unix::fs::chown(&w.log, Some(1000), Some(1000)).unwrap();
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(
        pass.contains("main uid 1000/1000/1000 caps 1/401/400"),
        "{pass}"
    );
    assert!(
        pass.contains("thread uid 2000/2000/2000 caps 0/0/0"),
        "{pass}"
    );
}

/// A non-root process under a seccomp filter (no_new_privs) comes back with it: the
/// filter still fails getitimer with EPERM and lets the rest through.
#[test]
fn seccomp_filter_comes_back() {
    let pass = round_trip("fp_seccomp.c");
    assert!(pass.contains("getitimer EPERM, filters 1 mode 2"), "{pass}");
}

/// Two stacked filters (one with SECCOMP_FILTER_FLAG_LOG) shared by two threads, and a
/// third of the second thread's own, installed by root without no_new_privs: each thread
/// denies what it denied, and the filters are shared again (a TSYNC succeeds).
#[test]
fn stacked_seccomp_filters_of_threads_come_back() {
    let pass = round_trip("fp_seccomp_threads.c");
    assert!(
        pass.contains("main 1/13/0, thread 1/13/38, tsync ok"),
        "{pass}"
    );
}

/// A filter that hands calls to a user-space listener: whether one is there cannot be
/// seen, so the checkpoint is refused, naming the thread and SECCOMP_RET_USER_NOTIF.
#[test]
fn seccomp_user_notification_is_refused_at_checkpoint() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_seccomp_notify.c"), &[ctl(&s)]);
    let sf = s.join("ckpt");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string()]);
    assert_failure(
        &out,
        "checkpoint of a process with a user-notification seccomp filter",
        &[
            &format!("thread {}", w.pid),
            "SECCOMP_RET_USER_NOTIF",
            "Checkpoint error",
        ],
        false,
    );
    assert!(!sf.exists(), "no statefile may be left");
    s.go();
    expect_pass_and_exit(&w);
}

/// A thread in seccomp strict mode cannot make cpr's calls: the checkpoint is refused,
/// naming the thread and strict mode, and the process runs on.
#[test]
fn seccomp_strict_mode_is_refused_at_checkpoint() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_seccomp_strict.c"), &[ctl(&s)]);
    let sf = s.join("ckpt");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string()]);
    assert_failure(
        &out,
        "checkpoint of a process with a thread in seccomp strict mode",
        &["thread ", "seccomp strict mode", "Checkpoint error"],
        false,
    );
    assert!(!sf.exists(), "no statefile may be left");
    s.go();
    expect_pass_and_exit(&w);
}

/// Parent-death signal (per thread), child subreaper, oom_score_adj, THP disabled and
/// the audit login uid come back.
#[test]
fn process_attributes_set_by_prctl_and_proc() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_attrs.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(
        pass.contains("pdeathsig kept, subreaper 1 thp_disable 1 oom_score_adj 500"),
        "{pass}"
    );
}

/// A process whose root directory is not `/` (chroot) comes back in the same root, its
/// working directory inside it.
#[test]
fn chrooted_process_keeps_its_root() {
    let pass = round_trip("fp_chroot.c");
    assert!(pass.contains("cwd /sub"), "{pass}");
}

/// A session whose leader had exited: its members come back in it (a helper takes the
/// leader's PID), one leading its own group, one in the leader's group.
#[test]
fn session_without_its_leader_keeps_its_sid() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fp_session.c"), &[ctl(&s)]);
    let num = |key: &str| -> i32 { field(&ready, key).unwrap().parse().unwrap() };
    let (c, g1, g2) = (num("c"), num("g1"), num("g2"));
    wait_exit(w.pid, TIMEOUT);
    let _members = [KillOnDrop::new(g1, s.path()), KillOnDrop::new(g2, s.path())];
    checkpoint_set(&s, "ckpt", &format!("{c}:SID"), &[], &[g1, g2]);
    restart_ok(&s.join("ckpt"));
    s.go();
    wait_for_nth_line(&w.log, "PASS", 2, TIMEOUT);
    assert_eq!(count_lines(&w.log, "FAIL"), 0, "{:?}", read_lines(&w.log));
    for pid in [g1, g2] {
        wait_pid_gone(pid, TIMEOUT);
    }
}

/// Processes sharing a descriptor table (CLONE_FILES) or a filesystem context
/// (CLONE_FS) would come back with one each: the checkpoint is refused, naming both and
/// the table, and they run on.
#[test]
fn shared_descriptor_table_or_fs_context_is_refused() {
    let _s = serial();
    for (kind, needle) in [("files", "CLONE_FILES"), ("fs", "CLONE_FS")] {
        let s = Scratch::new();
        let (w, ready) = spawn_ready(&s, &build("fp_shared_table.c"), &[ctl(&s), kind.into()]);
        let child = field(&ready, "child").unwrap();
        let sf = s.join("ckpt");
        let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &format!("{}:HID", w.pid)]);
        assert_failure(
            &out,
            &format!("checkpoint of processes sharing {kind}"),
            &[&w.pid.to_string(), child, needle, "Checkpoint error"],
            false,
        );
        assert!(!sf.exists(), "no statefile may be left");
        s.go();
        expect_pass_and_exit(&w);
    }
}

/// A zombie that leads a process group keeps it, with its live member in it.
#[test]
fn zombie_group_leader_keeps_its_member() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_zombie_group.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("leads its group"), "{pass}");
}

/// CPR_TIMING shows the time of the check before release among the restart's phases.
#[test]
fn timing_shows_the_check_before_release() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_wait.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    let out = cpr_command()
        .env("CPR_TIMING", "1")
        .arg("-r")
        .arg(&sf)
        .output()
        .unwrap();
    assert_success(&out, "cpr -r with CPR_TIMING");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("cpr: timing: check before release: ") && l.ends_with(" ms")),
        "{stderr}"
    );
    s.go();
    expect_pass_and_exit(&w);
}

/// A process that joined a group led by its own child comes back in it.
#[test]
fn process_in_its_childs_group() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_join_child_group.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("P in its child's group"), "{pass}");
}

/// A zombie and a live process in a group whose leader had exited and been reaped, both
/// children of the leader's parent (zdtm zombie01), come back in that group: a helper
/// forked by the parent takes the leader's PID to make it again.
#[test]
fn group_whose_leader_was_reaped_keeps_its_zombie_and_member() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fp_lost_leader_group.c"), &[ctl(&s)]);
    let mut gone = vec![w.pid];
    for key in ["zombie", "live"] {
        gone.extend(field(&ready, key).and_then(|p| p.parse::<i32>().ok()));
    }
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("without its leader"), "{pass}");
}

/// Processes stopped by SIGTSTP and SIGTTIN in a group that is not orphaned come back
/// stopped by those signals, as their parent's waitid(WSTOPPED) reports (zdtm stopped03).
#[test]
fn processes_stopped_by_sigtstp_and_sigttin_keep_their_stop_signal() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fp_stop_signal.c"), &[ctl(&s)]);
    let mut gone = vec![w.pid];
    for key in ["parent", "c1", "c2"] {
        gone.extend(field(&ready, key).and_then(|p| p.parse::<i32>().ok()));
    }
    assert_eq!(gone.len(), 4, "{ready}");
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("SIGTSTP and SIGTTIN"), "{pass}");
}

/// membarrier(2) registrations (global, private, sync-core and rseq expedited) come back:
/// the registered commands still run and GET_REGISTRATIONS answers the same (zdtm
/// membarrier).
#[test]
fn membarrier_registrations_come_back() {
    let pass = round_trip("fp_membarrier.c");
    assert!(pass.contains("kept"), "{pass}");
}

/// A process holding a PID (pid_holder.c, which takes it with clone3) until `release`,
/// so that a restart finds that PID in use.
struct PidHolder {
    ctl: String,
    pid: i32,
}

impl PidHolder {
    fn take(s: &Scratch, pid: i32) -> PidHolder {
        let ctl = s.join("holder");
        std::fs::create_dir(&ctl).unwrap();
        let ctl = ctl.display().to_string();
        let args = [ctl.clone(), pid.to_string()];
        let h = spawn_to(s, &build("pid_holder.c"), &args, s.join("holder.log"));
        let held: i32 = wait_for_line(&h.log, "READY", TIMEOUT)
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("holder pid");
        assert_eq!(held, pid, "the holder's PID");
        PidHolder { ctl, pid: held }
    }

    /// The holder exits: its PID is free again.
    fn release(self) {
        std::fs::write(format!("{}/GO", self.ctl), "").unwrap();
        wait_exit(self.pid, TIMEOUT);
    }
}

/// When the PID of a group whose leader was reaped is taken at restart (no helper can
/// make the group again), the restart fails, naming the process group, instead of
/// putting its members in their parent's group; with the PID free again it succeeds.
#[test]
fn group_whose_leader_pid_is_taken_fails_the_restart() {
    let _s = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fp_lost_leader_group.c"), &[ctl(&s)]);
    let leader = field(&ready, "leader").expect("leader").to_string();
    let mut gone = vec![w.pid];
    for key in ["zombie", "live"] {
        gone.extend(field(&ready, key).and_then(|p| p.parse::<i32>().ok()));
    }
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
    let holder = PidHolder::take(&s, leader.parse().expect("leader pid"));
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "cpr -r with the group's PID taken",
        &["Checkpoint error", "process group", "nothing was released"],
        false,
    );
    holder.release();
    // the zombie the failed restart made came back to this subreaper when its parent
    // was killed
    reap_children();
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}

/// A restart that fails half-way through a tree (the PID of one of 40 children is
/// taken, so its parent's fork fails while the tracer threads already restore the
/// processes made before it) fails naming the PID, and leaves no process of the tree:
/// neither those restored nor those still being made. With the PID free again the same
/// statefile restarts and every process checks itself.
#[test]
fn tree_restart_failing_half_way_leaves_no_process() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("bench_tree.c"), &[ctl(&s), "41".to_string()]);
    let kids: Vec<i32> = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", w.pid))
        .expect("children of the tree's root")
        .split_whitespace()
        .map(|p| p.parse().expect("a PID"))
        .collect();
    assert_eq!(kids.len(), 40, "children of {}: {kids:?}", w.pid);
    let mut tree = kids.clone();
    tree.push(w.pid);
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &tree);
    reap_children();
    // one in the middle of the fork order (the children are forked in PID order)
    let mut sorted = kids.clone();
    sorted.sort_unstable();
    let taken = sorted[sorted.len() * 2 / 3];
    let holder = PidHolder::take(&s, taken);
    let out = restart_all(&[&sf]);
    assert_failure(
        &out,
        "cpr -r with a child's PID taken",
        &["Resource busy", &format!("PID {taken} is in use")],
        false,
    );
    reap_children();
    let left: Vec<i32> = tree
        .iter()
        .copied()
        .filter(|&p| p != taken && proc_status(p).is_some())
        .collect();
    assert!(left.is_empty(), "left by the failed restart: {left:?}");
    holder.release();
    reap_children();
    restart_ok(&sf);
    signal(w.pid, Signal::SIGUSR1);
    let pass = wait_for_line(&w.log, "PASS check=", TIMEOUT);
    assert!(pass.contains("procs=41"), "{pass}");
    let _ = kill(Pid::from_raw(-w.pid), Signal::SIGKILL);
    reap_children();
}

/// A handler installed with SA_ONSTACK while no alternate stack is set (CPython's, Go's)
/// runs after restart in every thread, on the thread's own stack: the restored threads
/// have no alternate stack, not the one of cpr that the kernel could not write to.
#[test]
fn onstack_handler_without_alternate_stack_runs() {
    let pass = round_trip("fp_onstack.c");
    assert!(pass.contains("handled=2"), "{pass}");
}

/// I/O priority, timer slack, machine-check kill policy, NUMA memory policy and PR_SET_TSC
/// of each thread, the coredump_filter, PR_SET_DUMPABLE 0 and memory-deny-write-execute,
/// and PR_SET_IO_FLUSHER, set by the program, come back (not cpr's defaults).
#[test]
fn io_priority_timer_slack_and_memory_policy_come_back() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_tuning.c"), &[ctl(&s), "set".into()]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    // io_flusher is 1 where the workload may set it, -1 where it lacks CAP_SYS_RESOURCE
    assert!(pass.contains("coredump_filter 0x7f dumpable 0"), "{pass}");
    assert!(
        pass.contains("ioprio 0x6000 slack 123456 mce 1 mempolicy 1 mdwe 1 io_flusher "),
        "{pass}"
    );
}

/// A program at the defaults, restarted by a cpr that runs with other settings (I/O
/// priority, timer slack, machine-check kill, memory policy, coredump_filter,
/// personality, THP disabled), comes back with its own settings, not cpr's.
#[test]
fn settings_of_cpr_itself_do_not_leak_into_the_restored_process() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_tuning.c"), &[ctl(&s), "keep".into()]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    let cmd = cpr_command();
    let out = std::process::Command::new(build("fp_cpr_tuned.c"))
        .arg(cmd.get_program())
        .args(["-r".as_ref(), sf.as_os_str()])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cpr");
    assert_success(&out, "cpr -r (with settings of its own)");
    s.go();
    expect_pass_and_exit(&w);
}

/// A session leader whose autogroup had nice 7 (/proc/PID/autogroup) leads a new
/// session after restart, whose autogroup has nice 7 again (not 0).
#[test]
fn session_leader_keeps_its_autogroup_nice_value() {
    let _s = serial();
    if !std::path::Path::new("/proc/self/autogroup").exists() {
        assert!(!in_ci(), "CI needs a kernel with autogroups");
        eprintln!("skipped: no autogroups (CONFIG_SCHED_AUTOGROUP)");
        return;
    }
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fp_autogroup.c"), &[ctl(&s)]);
    let c: i32 = field(&ready, "c").unwrap().parse().unwrap();
    assert_eq!(field(&ready, "nice"), Some("7"), "{ready}");
    wait_exit(w.pid, TIMEOUT);
    let _leader = KillOnDrop::new(c, s.path());
    checkpoint_set(&s, "ckpt", &c.to_string(), &[], &[c]);
    restart_ok(&s.join("ckpt"));
    s.go();
    let pass = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(pass.contains("autogroup nice 7"), "{pass}");
    wait_pid_gone(c, TIMEOUT);
}

/// A thread with syscall user dispatch on (Wine's): cpr's calls in it could raise SIGSYS
/// and the setting is not restored, so the checkpoint is refused, naming the thread and
/// the setting, and the process runs on.
#[test]
fn syscall_user_dispatch_is_refused_at_checkpoint() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_sud.c"), &[ctl(&s)]);
    let sf = s.join("ckpt");
    let out = cpr(&["-c", sf.to_str().unwrap(), "-p", &w.pid.to_string()]);
    assert_failure(
        &out,
        "checkpoint of a process with syscall user dispatch on",
        &["thread ", "syscall user dispatch", "Checkpoint error"],
        false,
    );
    assert!(!sf.exists(), "no statefile may be left");
    s.go();
    expect_pass_and_exit(&w);
}

/// A program's SIGTRAP handler survives the checkpoint (WILL CONT: the original keeps it)
/// and the restart: cpr's injected calls end in int3, and a forced SIGTRAP while
/// blocked had the kernel reset the handler (zdtm sigtrap01).
#[test]
fn sigtrap_handler_survives_injected_calls() {
    let _s = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("fp_sigtrap.c"), &[ctl(&s)]);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &["-g"], &[]);
    // the original runs on with its handler
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("handled=1"), "{pass}");
    std::fs::remove_file(s.ctl().join("GO")).unwrap();
    restart_ok(&sf);
    s.go();
    let pass = expect_pass_and_exit(&w);
    assert!(pass.contains("handled=1"), "{pass}");
}
