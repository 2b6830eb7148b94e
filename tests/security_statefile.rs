//! The statefile as hostile input, and as something root writes safely (issue 11).
//!
//! Writing: the staging directory stays root's until the statefile is complete, a link
//! swapped into it is never followed, leftovers of a killed writer are cleaned up.
//! Reading: root refuses a statefile edited since it was written (MAC), a record the
//! MANIFEST does not list, a path that is not absolute and normalised, records that
//! disagree with the MANIFEST's summary, a bad resource limit; attribute files that are
//! FIFOs, devices or links are refused without hanging or quoting them.
//!
//! Real statefiles come from checkpoints of tests/workloads/counter.c by the real cpr.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cpr::engine::restart::validate;
use cpr::statefile::layout::{self, MANIFEST, MANIFEST_MAC};
use cpr::statefile::{Owner, StatefileWriter};
use serde_json::Value;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Whether a test that needs root may run (in CI it must).
fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: CI runs tests as root");
    eprintln!("{test}: skipped, needs root");
    false
}

// ---------------------------------------------------------------- statefiles to forge

/// A checkpoint of a running counter.c into `<scratch>/NAME`; with `keep`, the original
/// runs on (-g), else it exits (WILL EXIT). Returns the statefile and the PID.
fn checkpoint_counter(s: &Scratch, keep: bool) -> (PathBuf, i32, Workload) {
    let log = s.join("count.log");
    let (w, _) = spawn_ready(s, &build("counter.c"), &[ctl(s), log.display().to_string()]);
    let gone: &[i32] = if keep { &[] } else { &[w.pid] };
    let extra: &[&str] = if keep { &["-g"] } else { &[] };
    let sf = checkpoint_set(s, "ckpt", &w.pid.to_string(), extra, gone);
    (sf, w.pid, w)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) {
    fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// Edits the record `rel` as a forger would: the MANIFEST's size, xxh3 and SHA-256 of
/// it made to match. The MAC cannot be remade without the host key.
fn forge_record(sf: &Path, rel: &str, edit: impl FnOnce(&mut Value)) {
    let mut v = read_json(&sf.join(rel));
    edit(&mut v);
    write_json(&sf.join(rel), &v);
    let data = fs::read(sf.join(rel)).unwrap();
    forge_manifest(sf, |m| {
        for e in m["files"].as_array_mut().unwrap() {
            if e["path"] == rel {
                remake_manifest_entry(e, &data);
            }
        }
    });
}

fn forge_manifest(sf: &Path, edit: impl FnOnce(&mut Value)) {
    let mut m = read_json(&sf.join(MANIFEST));
    edit(&mut m);
    write_json(&sf.join(MANIFEST), &m);
}

/// A forged statefile of root's own, still root's alone: as root could have edited it.
/// Without its MAC it passes authentication only because no one else could have
/// changed it, so that what follows is the record checks'.
fn as_roots_own(sf: &Path) {
    let _ = fs::remove_file(sf.join(MANIFEST_MAC));
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// What root's restart validation says of `sf` (creates nothing).
fn validate_as_root(sf: &Path) -> Result<(), String> {
    validate::load(&[sf.to_path_buf()], 0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn refused(sf: &Path, needles: &[&str]) {
    let e = validate_as_root(sf).expect_err("the forged statefile was accepted");
    for n in needles {
        assert!(e.contains(n), "{e:?} should name {n:?}");
    }
}

// ---------------------------------------------------------------- authentication

#[test]
fn records_edited_after_roots_checkpoint_are_refused_to_root() {
    if !root_or_skip("records_edited_after_roots_checkpoint_are_refused_to_root") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    // handed to a user, unchanged: root still restarts it
    chown_tree(&sf, NOBODY);
    validate_as_root(&sf).expect("an unchanged statefile is accepted");
    // the user gives the process root's capabilities and remakes every checksum
    forge_record(&sf, &layout::core_path(pid), |core| {
        core["process"]["caps"]["permitted"] = u64::MAX.into();
        core["process"]["umask"] = 0.into();
    });
    refused(&sf, &["Permission denied", "MANIFEST.mac does not match"]);
    // and without the MAC at all: someone other than root could have written it
    fs::remove_file(sf.join(MANIFEST_MAC)).unwrap();
    refused(&sf, &["not authenticated"]);
}

#[test]
fn host_key_is_roots_alone() {
    if !root_or_skip("host_key_is_roots_alone") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, _, _w) = checkpoint_counter(&s, true);
    let key = fs::symlink_metadata("/var/lib/cpr/hostkey").unwrap();
    assert!(key.is_file());
    assert_eq!((key.uid(), key.mode() & 0o777, key.len()), (0, 0o600, 32));
    let mac = fs::read_to_string(sf.join(MANIFEST_MAC)).unwrap();
    assert!(mac.starts_with("hmac-sha256 "), "{mac}");
}

// ---------------------------------------------------------------- what records may say

#[test]
fn a_record_the_manifest_does_not_list_is_refused() {
    if !root_or_skip("a_record_the_manifest_does_not_list_is_refused") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    let core = layout::core_path(pid);
    forge_manifest(&sf, |m| {
        m["files"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["path"] != core.as_str());
    });
    refused(&sf, &[&core, "not listed in MANIFEST"]);
}

#[test]
fn proc_replaced_by_a_link_is_refused() {
    if !root_or_skip("proc_replaced_by_a_link_is_refused") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, _, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    let outside = s.join("outside");
    fs::rename(sf.join("proc"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, sf.join("proc")).unwrap();
    refused(&sf, &["statefile damaged", "symbolic link"]);
    let out = cpr(&["-r", sf.to_str().unwrap()]);
    assert_failure(
        &out,
        "restart through proc -> outside",
        &["symbolic link"],
        false,
    );
}

#[test]
fn record_paths_must_be_absolute_and_normalised() {
    if !root_or_skip("record_paths_must_be_absolute_and_normalised") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    let pristine = s.join("pristine");
    fs::create_dir(&pristine).unwrap();
    for rel in [
        layout::core_path(pid),
        layout::mm_path(pid),
        MANIFEST.into(),
    ] {
        fs::create_dir_all(pristine.join(&rel).parent().unwrap()).unwrap();
        fs::copy(sf.join(&rel), pristine.join(&rel)).unwrap();
    }
    type Edit = fn(&mut Value);
    let cases: [(&str, bool, Edit); 5] = [
        ("working directory \"../../etc\"", true, |c| {
            c["process"]["cwd"] = "../../etc".into()
        }),
        ("executable \"/usr/../etc/shadow\"", true, |c| {
            c["process"]["exe"] = "/usr/../etc/shadow".into()
        }),
        ("root directory \"/tmp//x\"", true, |c| {
            c["process"]["root"] = "/tmp//x".into()
        }),
        ("mapped file \"../../etc/shadow\"", false, |m| {
            let vma = m["vmas"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|v| v["backing"].get("File").is_some())
                .unwrap();
            vma["backing"]["File"]["path"] = "../../etc/shadow".into();
        }),
        ("executable \"sim\"", false, |m| m["exe"] = "sim".into()),
    ];
    for (needle, in_core, edit) in cases {
        for rel in [
            layout::core_path(pid),
            layout::mm_path(pid),
            MANIFEST.into(),
        ] {
            fs::copy(pristine.join(&rel), sf.join(&rel)).unwrap();
        }
        let rel = if in_core {
            layout::core_path(pid)
        } else {
            layout::mm_path(pid)
        };
        forge_record(&sf, &rel, edit);
        refused(
            &sf,
            &[
                &format!("process {pid}"),
                needle,
                "not an absolute, normalised path",
            ],
        );
    }
}

#[test]
fn records_that_disagree_with_the_manifest_summary_are_refused() {
    if !root_or_skip("records_that_disagree_with_the_manifest_summary_are_refused") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    // cpr -i shows an innocent command; the records run another
    forge_manifest(&sf, |m| m["processes"][0]["command"] = "innocent".into());
    refused(
        &sf,
        &[
            &format!("process {pid}"),
            "disagree",
            "MANIFEST",
            "(command)",
        ],
    );
}

#[test]
fn a_bad_resource_limit_is_named() {
    if !root_or_skip("a_bad_resource_limit_is_named") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    let core = layout::core_path(pid);
    forge_record(&sf, &core, |c| {
        c["process"]["rlimits"][0] = serde_json::json!([99, 1, 1])
    });
    refused(&sf, &["resource limit 99: no such resource"]);
    forge_record(&sf, &core, |c| {
        c["process"]["rlimits"][0] = serde_json::json!([7, 10, 5])
    });
    refused(&sf, &["resource limit 7: soft limit 10 above hard limit 5"]);
}

#[test]
fn empty_threads_is_an_error_not_a_panic() {
    if !root_or_skip("empty_threads_is_an_error_not_a_panic") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, false);
    as_roots_own(&sf);
    forge_record(&sf, &layout::core_path(pid), |c| {
        c["threads"] = serde_json::json!([])
    });
    forge_manifest(&sf, |m| m["processes"][0]["threads"] = 0.into());
    let out = cpr(&["-r", sf.to_str().unwrap()]);
    assert_failure(&out, "restart with no threads", &["no main thread"], false);
}

#[test]
fn a_failing_restart_names_each_subject_once() {
    if !root_or_skip("a_failing_restart_names_each_subject_once") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, false);
    as_roots_own(&sf);
    // valid, but gone at restart: the restore child fails and reports it over its pipe
    let gone = s.join("gone-away");
    forge_record(&sf, &layout::core_path(pid), |c| {
        c["process"]["cwd"] = gone.display().to_string().into()
    });
    forge_manifest(&sf, |m| {
        m["processes"][0]["cwd"] = gone.display().to_string().into()
    });
    let out = cpr(&["-r", sf.to_str().unwrap()]);
    assert_failure(
        &out,
        "restart into a missing cwd",
        &["working directory"],
        false,
    );
    let line = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        line.matches(&format!("process {pid}:")).count(),
        1,
        "{line}"
    );
    assert_eq!(line.matches(sf.to_str().unwrap()).count(), 1, "{line}");
}

// ---------------------------------------------------------------- writing

fn nobody() -> Owner {
    Owner {
        uid: NOBODY,
        gid: NOBODY,
    }
}

#[test]
fn the_staging_directory_is_roots_until_complete() {
    if !root_or_skip("the_staging_directory_is_roots_until_complete") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let target = dir.path().join("sf");
    let mut w = StatefileWriter::create(&target, false, nobody()).unwrap();
    w.write_file(&layout::core_path(12), b"{}").unwrap();
    for p in [
        w.staging.clone(),
        w.staging.join("proc"),
        w.staging.join("proc/12/core.json"),
    ] {
        let m = fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.uid(), 0, "{} is handed over too early", p.display());
    }
    assert_eq!(fs::metadata(&w.staging).unwrap().mode() & 0o777, 0o700);
    let sf = w.commit(manifest_for(nobody())).unwrap();
    for rel in ["", "proc", "proc/12", "proc/12/core.json", MANIFEST] {
        let m = fs::symlink_metadata(sf.join(rel)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (NOBODY, NOBODY),
            "{rel} not handed over"
        );
    }
}

#[test]
fn a_link_swapped_into_the_staging_directory_is_not_followed() {
    if !root_or_skip("a_link_swapped_into_the_staging_directory_is_not_followed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // a root-only directory the user wants root to write into
    let secret = dir.path().join("secret");
    fs::create_dir_all(secret.join("12")).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o700)).unwrap();
    let target = dir.path().join("sf");
    let mut w = StatefileWriter::create(&target, false, nobody()).unwrap();
    w.write_file(&layout::mm_path(12), b"{}").unwrap();
    // the race, made deterministic: proc swapped for a link between two writes
    fs::rename(w.staging.join("proc"), dir.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&secret, w.staging.join("proc")).unwrap();
    let e = w
        .write_file(&layout::core_path(12), b"{}")
        .expect_err("written through the link");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}: ", target.display())) && text.contains("proc/12/core.json"),
        "{text}"
    );
    assert_eq!(dir_entries(&secret.join("12")), Vec::<String>::new());
    drop(w);
    assert!(!target.exists());
}

#[test]
fn leftovers_of_killed_writers_are_removed_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_pid();
    let live = std::process::id();
    let stale = dir.path().join(format!(".sf.cpr-partial-{dead}-0"));
    let busy = dir.path().join(format!(".sf.cpr-partial-{live}-999"));
    let other = dir.path().join(format!(".other.cpr-partial-{dead}-0"));
    for d in [&stale, &busy, &other] {
        fs::create_dir_all(d.join("proc/1")).unwrap();
        fs::write(d.join("proc/1/pages"), [0u8; 4096]).unwrap();
    }
    let owner = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    // the next checkpoint of that name
    let w = StatefileWriter::create(&dir.path().join("sf"), false, owner).unwrap();
    assert!(!stale.exists(), "a dead writer's leftover is kept");
    assert!(busy.exists(), "a live writer's directory was removed");
    assert!(other.exists(), "another statefile's leftover was removed");
    w.commit(manifest_for(owner)).unwrap();
    // and cpr -D of a name
    let stale = dir.path().join(format!(".other.cpr-partial-{dead}-0"));
    let e = cpr::statefile::remove(&dir.path().join("other"), owner.uid).unwrap_err();
    assert_eq!(e.kind, cpr::Kind::NoSuchFile);
    assert!(!stale.exists(), "cpr -D left a dead writer's leftover");
}

fn manifest_for(owner: Owner) -> cpr::statefile::Manifest {
    serde_json::from_value(serde_json::json!({
        "revision": cpr::statefile::REVISION, "cpr_version": "test", "created": "2026-01-01T00:00:00Z",
        "host": "h", "kernel": "k", "owner": owner, "designators": "12",
        "flags": {"will": "Cont", "upgrade": false}, "processes": [], "files": []
    }))
    .unwrap()
}

// ---------------------------------------------------------------- attribute files

/// `cpr -c ... --attributes ATTR` on a sleeping process; returns its output. It must
/// end by itself: an attribute file that blocks cpr fails the test (killed after
/// TIMEOUT) rather than hanging it.
fn checkpoint_with_attributes(dir: &Path, attributes: &Path) -> std::process::Output {
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let sf = dir.join("sf");
    let mut child = cpr_command()
        .args(["-c", sf.to_str().unwrap(), "-p", &sleeper.id().to_string()])
        .arg("--attributes")
        .arg(attributes)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = sleeper.kill();
            panic!("cpr hangs on {}", attributes.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(!sf.exists());
    out
}

#[test]
fn fifo_and_device_attribute_files_are_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for attributes in [fifo.as_path(), Path::new("/dev/zero")] {
        let out = checkpoint_with_attributes(dir.path(), attributes);
        assert_failure(
            &out,
            "a FIFO or device as attribute file",
            &[attributes.to_str().unwrap(), "not a regular file"],
            false,
        );
    }
}

#[test]
fn an_attribute_file_linked_to_a_secret_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    fs::write(&secret, "hunter2secret is the password\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("attributes.cpr");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let out = checkpoint_with_attributes(dir.path(), &link);
    assert_failure(&out, "a link as attribute file", &["symbolic link"], false);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_pid_given_twice_is_refused() {
    if !root_or_skip("a_pid_given_twice_is_refused") {
        return;
    }
    let _s = serial();
    let s = Scratch::new();
    let (sf, pid, _w) = checkpoint_counter(&s, true);
    as_roots_own(&sf);
    // a zombie with the PID of the live process it is the child of
    forge_record(&sf, layout::PSTREE, |t| {
        t["zombies"] = serde_json::json!([
            {"pid": pid, "ppid": pid, "pgid": pid, "sid": pid, "status": 0}
        ])
    });
    refused(&sf, &[&format!("process {pid} listed twice")]);
}
