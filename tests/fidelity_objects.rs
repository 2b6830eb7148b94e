//! One kernel object comes back as one object of the same kind (issue 9): a deleted file
//! or a memfd both mapped and open as a descriptor, and a memfd held only as a
//! descriptor. The workload is tests/workloads/obj_identity.c; it checks its own state
//! after restart (writes through one reference read through the other, fstatfs,
//! F_GET_SEALS, /proc/self/fd) and prints PASS or FAIL. The dry run, first, must say
//! what the checkpoint does with them (and count their content once).

mod common;

use common::*;
use serde_json::Value;

/// Starts obj_identity in `mode`, READY, dry run (`preview` looks at its JSON),
/// checkpoint (WILL EXIT, with its child if it forked one; `check` looks at the
/// statefile), restart, GO: it must PASS.
fn round_trip(mode: &str, preview: impl FnOnce(&Value), check: impl FnOnce(&std::path::Path)) {
    let _g = serial();
    let s = Scratch::new();
    let (w, ready) = spawn_ready(&s, &build("obj_identity.c"), &[ctl(&s), mode.into()]);
    let mut gone = vec![w.pid];
    gone.extend(field(&ready, "child").and_then(|c| c.parse::<i32>().ok()));
    let idlist = format!("{}:HID", w.pid);
    let dry = s.join("dry");
    let out = cpr(&[
        "-c",
        dry.to_str().unwrap(),
        "-p",
        &idlist,
        "--dry-run",
        "--json",
    ]);
    assert_success(&out, "dry run --json");
    preview(&serde_json::from_slice(&out.stdout).expect("--json prints JSON"));
    let sf = checkpoint_set(&s, "ckpt", &idlist, &[], &gone);
    check(&sf);
    restart_ok(&sf);
    s.go();
    expect_pass_and_exit(&w);
}

/// The descriptors of every process in the dry run's JSON whose path ends with `name`.
fn descriptors<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    let procs = v["processes"].as_array().expect("processes");
    let all = procs
        .iter()
        .flat_map(|p| p["descriptors"].as_array().unwrap());
    let found: Vec<&Value> = all
        .filter(|d| d["path"].as_str().unwrap().ends_with(name))
        .collect();
    assert!(!found.is_empty(), "no descriptor of {name}: {v}");
    found
}

/// The mapped object's descriptor: one object, its content saved with the memory only.
fn said_one_object(v: &Value, name: &str) {
    for d in descriptors(v, name) {
        assert_eq!(d["saved_bytes"], 0, "{d}");
        let how = d["disposition"].as_str().unwrap();
        assert!(how.contains("same object as its mapping"), "{d}");
    }
}

#[test]
fn deleted_file_mapped_and_open_comes_back_as_one_file() {
    round_trip(
        "deleted",
        |v| said_one_object(v, "/del"),
        |sf| {
            // 16 MiB of data in the file: saved once, not once more for the descriptor
            let size = tree_size(sf);
            assert!(size < 24 << 20, "statefile of {size} bytes: saved twice");
        },
    );
}

#[test]
fn memfd_held_as_a_descriptor_comes_back_as_a_sealed_named_memfd() {
    round_trip(
        "memfd",
        |v| {
            // held by the workload and its child: its 11 bytes counted once
            let fds = descriptors(v, "/memfd:cpr-sealed");
            let bytes: u64 = fds.iter().map(|d| d["saved_bytes"].as_u64().unwrap()).sum();
            assert_eq!(bytes, 11, "{v}");
            assert!(
                fds.iter()
                    .all(|d| d["disposition"].as_str().unwrap().contains("memfd"))
            );
        },
        |_| {},
    );
}

#[test]
fn memfd_mapped_and_open_comes_back_as_one_memfd() {
    round_trip("both", |v| said_one_object(v, "/memfd:cpr-both"), |_| {});
}

#[test]
fn hugetlb_memfd_is_refused_by_the_dry_run_and_the_checkpoint() {
    let _g = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("obj_identity.c"), &[ctl(&s), "hugetlb".into()]);
    let pid = w.pid.to_string();
    let sf = s.join("ckpt");
    let what = "a memfd that is not on tmpfs";
    let dry = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid, "--dry-run"]);
    assert_failure(&dry, "cpr -c --dry-run", &["Checkpoint error", what], false);
    let real = cpr(&["-c", sf.to_str().unwrap(), "-p", &pid]);
    let who = format!("process {pid}");
    assert_failure(&real, "cpr -c", &["Checkpoint error", &who, what], false);
    assert!(!sf.exists(), "a statefile was left");
    assert_running_untraced(w.pid);
    s.go();
    expect_pass_and_exit(&w);
}

/// A memfd holding a script can still be run after restart (execveat, zdtm memfd04 and
/// memfd05): its first read-write description is memfd_create's own, which does not count
/// as a writer (exec refuses files open for writing), alone, next to a read-only open
/// through /proc with both mapped, and shared with a forked child.
#[test]
fn memfd_holding_a_program_can_still_be_executed() {
    for mode in ["alone", "mapped", "forked"] {
        let _g = serial();
        let s = Scratch::new();
        let prog = build("fd_memfd_exec.c");
        let (w, ready) = spawn_ready(&s, &prog, &[ctl(&s), mode.into()]);
        let mut gone = vec![w.pid];
        gone.extend(field(&ready, "child").and_then(|c| c.parse::<i32>().ok()));
        let sf = checkpoint_set(&s, "ckpt", &format!("{}:HID", w.pid), &[], &gone);
        restart_ok(&sf);
        s.go();
        expect_pass_and_exit(&w);
    }
}
