//! Descriptors come back exactly as they were, or the checkpoint is refused: open file
//! descriptions (shared or separate), their flags, offsets and owners; files deleted
//! while open; FIFOs; deleted directories; event objects. Workloads are
//! tests/workloads/fd_*.c; each verifies its own state after restart and prints PASS or
//! FAIL.

mod common;

use common::*;

/// Starts `tests/workloads/NAME.c` with the scratch directory as its control directory
/// and `extra` (names in the scratch directory, created empty first) as arguments.
fn start(s: &Scratch, name: &str, extra: &[&str]) -> Workload {
    let mut args = vec![s.ctl().to_path_buf()];
    for e in extra {
        let p = s.join(e);
        std::fs::write(&p, b"0123456789abcdef").unwrap();
        args.push(p);
    }
    spawn(s, &build(&format!("{name}.c")), &args)
}

/// READY (with `child=PID` when it forked one), checkpoint (WILL EXIT, the whole tree),
/// restart, GO, PASS.
fn round_trip(name: &str, extra: &[&str]) {
    round_trip_checking(name, extra, |_| {});
}

/// `round_trip`, with `check` looking at the statefile first.
fn round_trip_checking(name: &str, extra: &[&str], check: impl FnOnce(&std::path::Path)) {
    let _g = serial();
    let s = Scratch::new();
    let w = start(&s, name, extra);
    let ready = wait_for_line(&w.log, "READY", TIMEOUT);
    let mut gone = vec![w.pid];
    gone.extend(field(&ready, "child").and_then(|c| c.parse::<i32>().ok()));
    let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
    check(&sf);
    restart_ok(&sf);
    s.go();
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(line.starts_with("PASS"), "{line}");
}

#[test]
fn open_file_descriptions_flags_offsets_and_owner_come_back() {
    round_trip("fd_descriptions", &["file"]);
}

#[test]
fn deleted_files_stay_one_file_with_mode_times_and_holes() {
    round_trip_checking("fd_deleted", &[], |sf| {
        // the 64 MiB sparse file holds two bytes of data
        let size = tree_size(sf);
        assert!(
            size < 8 << 20,
            "statefile of {size} bytes: holes were written out"
        );
    });
}

#[test]
fn named_fifo_keeps_its_data_and_opens_in_two_processes() {
    round_trip("fd_fifo", &[]);
}

/// `cpr -c` of the workload must fail with "Checkpoint error" naming the process and
/// `what`; the workload runs on, untraced, and no statefile is left.
fn refused(name: &str, args: &[&str], what: &str) {
    refused_ready(name, args, what, |_| {});
}

/// `refused`; `ready` is given the workload's READY line first.
fn refused_ready(name: &str, args: &[&str], what: &str, ready: impl FnOnce(&str)) {
    let _g = serial();
    let s = Scratch::new();
    let mut all = vec![ctl(&s)];
    all.extend(args.iter().map(|a| a.to_string()));
    let (w, line) = spawn_ready(&s, &build(&format!("{name}.c")), &all);
    ready(&line);
    let sf = s.join("ckpt");
    let o = cpr(&[
        "-c".as_ref(),
        sf.as_os_str(),
        "-p".as_ref(),
        w.pid.to_string().as_ref(),
    ]);
    let pid = format!("process {}", w.pid);
    assert_failure(&o, "cpr -c", &["Checkpoint error", &pid, what], false);
    assert!(!sf.exists(), "a statefile was left");
    assert_running_untraced(w.pid);
}

#[test]
fn removed_working_directory_is_refused_at_checkpoint() {
    refused("fd_deldir", &["cwd"], "working directory");
}

#[test]
fn removed_open_directory_is_refused_at_checkpoint() {
    refused("fd_deldir", &["fd"], "/e (deleted)");
}

#[test]
fn working_directory_in_proc_of_a_gone_process_is_refused() {
    refused("fd_deldir", &["proc"], "working directory");
}

#[test]
fn fired_periodic_timerfd_keeps_interval_and_ticks() {
    round_trip("fd_timerfd", &[]);
}

#[test]
fn epoll_watching_a_number_reused_for_another_file_is_refused() {
    refused(
        "fd_refuse",
        &["epoll-reused"],
        "epoll watches a file no longer open",
    );
}

#[test]
fn inotify_events_not_yet_read_are_refused() {
    refused(
        "fd_refuse",
        &["inotify-pending"],
        "inotify events not yet read",
    );
}

#[test]
fn o_path_descriptors_on_a_file_a_symlink_and_a_directory_come_back() {
    round_trip("fd_opath", &[]);
}

#[test]
fn file_lease_comes_back() {
    round_trip("fd_lease", &[]);
}

#[test]
fn open_name_removed_while_a_hard_link_remains_is_refused() {
    refused("fd_refuse", &["link-removed"], "other link(s) remain");
}

#[test]
fn removed_device_node_of_a_safe_device_comes_back() {
    round_trip("fd_devnode", &[]);
}

#[test]
fn pidfds_of_a_child_and_of_itself_come_back() {
    round_trip("fd_pidfd", &[]);
}

#[test]
fn pseudo_terminal_pair_keeps_termios_window_and_packet_mode() {
    round_trip("fd_pty", &[]);
}

#[test]
fn pseudo_terminal_with_bytes_in_flight_is_refused() {
    refused("fd_refuse", &["pty-data"], "bytes in flight");
}

#[test]
fn sigio_owner_outside_the_checkpoint_is_refused() {
    refused("fd_refuse", &["owner-outside"], "is outside the checkpoint");
}

/// A pty that is a session's controlling terminal while no process of that session holds
/// it as a descriptor (zdtm tty03) is refused by the dry run and the checkpoint (the
/// restart could not make it that session's terminal again); the processes run on.
#[test]
fn pty_that_is_a_controlling_terminal_not_held_as_a_descriptor_is_refused() {
    let _g = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("fd_pty_ctty.c"), &[ctl(&s)]);
    let idlist = format!("{}:HID", w.pid);
    let sf = s.join("ckpt");
    let what = "controlling terminal of session";
    let dry = cpr(&["-c", sf.to_str().unwrap(), "-p", &idlist, "--dry-run"]);
    assert_failure(&dry, "cpr -c --dry-run", &["Checkpoint error", what], false);
    let o = cpr(&["-c", sf.to_str().unwrap(), "-p", &idlist]);
    let who = format!("process {}", w.pid);
    assert_failure(&o, "cpr -c", &["Checkpoint error", &who, what], false);
    assert!(!sf.exists(), "a statefile was left");
    assert_running_untraced(w.pid);
    for key in ["child", "grandchild"] {
        let pid: i32 = field(&ready, key).unwrap().parse().unwrap();
        assert_running_untraced(pid);
    }
    s.go();
    expect_pass_and_exit(&w);
}

/// `workload mode` is refused, naming `what`, by the dry run and by the checkpoint alike
/// (which must agree), and goes on untouched (`checks`: at GO it checks its object and
/// passes).
fn refused_by_both(workload: &str, mode: &str, what: &str, checks: bool) {
    let _g = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(
        &s,
        &build(&format!("{workload}.c")),
        &[ctl(&s), mode.into()],
    );
    let pid = w.pid.to_string();
    let sf = s.join("ckpt");
    let who = format!("process {pid}");
    let dry = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid, "--dry-run"]);
    assert_failure(
        &dry,
        "cpr -c --dry-run",
        &["Checkpoint error", &who, what],
        false,
    );
    let o = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid]);
    assert_failure(&o, "cpr -c", &["Checkpoint error", &who, what], false);
    assert!(!sf.exists(), "a statefile was left");
    assert_running_untraced(w.pid);
    if checks {
        s.go();
        expect_pass_and_exit(&w);
    }
}

/// Issue 9's list of objects that cannot come back identically: each refused before
/// anything is frozen as at checkpoint, the process left running.
#[test]
fn aio_fanotify_removed_inotify_watches_and_closed_epoll_targets_are_refused() {
    for (mode, what) in [
        ("aio", "[aio]"),
        ("fanotify", "[fanotify]"),
        ("inotify-removed", "inotify events not yet read"),
        ("inotify-unlinked", "its path cannot be found"),
        ("epoll-closed", "no longer open as fd"),
    ] {
        refused_by_both("fd_unsafe_kinds", mode, what, true);
    }
}

/// A removed working directory (or one in /proc of a process gone) is refused by the dry
/// run too, as by the checkpoint.
#[test]
fn removed_working_directory_is_refused_by_the_dry_run_too() {
    let what = "a working directory that was removed";
    refused_by_both("fd_deldir", "cwd", what, false);
    refused_by_both("fd_deldir", "proc", what, false);
}

/// Thousands of descriptors (the workload raises its RLIMIT_NOFILE): separate opens of a
/// few files, each at its own offset, and dups of them come back with their file, offset
/// and sharing. (bench/run times 10 000; checkpoint and restart group descriptions in
/// kcmp's order, not by comparing every pair.)
#[test]
fn four_thousand_descriptors_come_back_with_offsets_and_sharing() {
    let _g = serial();
    let s = Scratch::new();
    let w = spawn(&s, &build("bench_fds.c"), &[ctl(&s), "4000".into()]);
    wait_for_line(&w.log, "READY", TIMEOUT);
    let sf = checkpoint_set(&s, "ckpt", &w.pid.to_string(), &[], &[w.pid]);
    restart_ok(&sf);
    signal(w.pid, nix::sys::signal::Signal::SIGUSR1);
    let line = wait_for_line(&w.log, "PASS", TIMEOUT);
    assert!(line.contains("fds=4000"), "{line}");
}
