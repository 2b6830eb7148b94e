//! cpr(1) as users run it: the real binary, in a fresh directory each time.
//!
//! Usage errors exit 2 with clap's message; failed operations exit 1 with one
//! `cpr: <subject>: <IRIX message>` line each; nothing pretends to succeed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{cpr_bin, free_pid, in_ci};
use cpr::attrfile::{DirAction, FileAction, FileRule, ForkAction, ProcessPolicies, WillAction};
use cpr::statefile::{
    Flags, MANIFEST, Manifest, OpenFileSummary, Owner, ProcessSummary, REVISION, StatefileWriter,
};

const NOBODY: u32 = 65534;

/// A fresh directory, searchable by everyone (tests run cpr as `nobody` in it too).
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// `cpr ARGS` in `dir`, with HOME there too (no stray `$HOME/.cpr`).
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cpr_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("run cpr")
}

fn run_as(uid: u32, dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run cpr")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 1 and exactly one line per failure, each `cpr: ...` and containing `needles`.
fn assert_failures(out: &Output, lines: &[&[&str]]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let got: Vec<&str> = err.lines().collect();
    assert_eq!(got.len(), lines.len(), "stderr: {err}");
    for (line, needles) in got.iter().zip(lines) {
        assert!(line.starts_with("cpr: "), "{line}");
        for needle in *needles {
            assert!(line.contains(needle), "{line:?} lacks {needle:?}");
        }
    }
}

/// Exit 2, clap's `error:` and every one of `needles`.
fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let dir = scratch();
    let out = run(dir.path(), args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.starts_with("error:"), "{args:?}: {err}");
    assert!(err.contains("Usage:"), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    }
    assert!(out.stdout.is_empty(), "{args:?}");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Tests that switch users need root; a developer's machine may skip them, CI may not.
fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test} needs root in CI");
    eprintln!("{test}: skipped, not root");
    false
}

const FIXTURE_PID: i32 = 4242;
const FIXTURE_LOG: &str = "/var/tmp/cpr-fixture/run.log";

/// The smallest true MANIFEST: one process with one open file.
fn fixture_manifest(owner: Owner) -> Manifest {
    let policies = ProcessPolicies {
        will: WillAction::Exit,
        cdir: DirAction::Replace,
        rdir: DirAction::Replace,
        fork: ForkAction::Original,
        files: vec![FileRule {
            pattern: Some("/var/tmp/cpr-fixture/*".into()),
            action: FileAction::Append,
        }],
        sockets: vec![],
    };
    Manifest {
        revision: REVISION,
        cpr_version: env!("CARGO_PKG_VERSION").into(),
        created: "2024-09-07T10:11:12Z".into(),
        host: "fixture-host".into(),
        kernel: "6.18.0".into(),
        owner,
        designators: FIXTURE_PID.to_string(),
        flags: Flags {
            will: WillAction::Exit,
            upgrade: false,
            compression: None,
        },
        processes: vec![ProcessSummary {
            pid: FIXTURE_PID,
            ppid: 1,
            pgid: FIXTURE_PID,
            sid: FIXTURE_PID,
            uids: [owner.uid; 4],
            gids: [owner.gid; 4],
            command: "counter".into(),
            args: vec!["counter".into(), "--every".into(), "1".into()],
            cwd: "/var/tmp/cpr-fixture".into(),
            root: "/".into(),
            threads: 1,
            open_files: vec![OpenFileSummary {
                fd: 1,
                path: FIXTURE_LOG.into(),
                action: FileAction::Append,
                disposition: None,
            }],
            policies,
        }],
        files: Vec::new(),
    }
}

/// Writes a statefile at `path` owned by root, with the library's own writer.
fn fixture_statefile(path: &Path) -> PathBuf {
    let owner = Owner { uid: 0, gid: 0 };
    let mut writer = StatefileWriter::create(path, false, owner).expect("create statefile");
    writer
        .write_file(&format!("proc/{FIXTURE_PID}/pages"), &[0u8; 4096])
        .expect("write pages");
    writer
        .commit(fixture_manifest(owner))
        .expect("commit statefile")
}

#[test]
fn every_option_form_parses() {
    let pid = free_pid().to_string();
    let forms: Vec<Vec<&str>> = vec![
        vec!["-c", "ck", "-p", &pid],
        vec!["-c", "ck", "-p", &pid, "-f", "-g", "-u"],
        vec!["-c", "ck", "-p", &pid, "-k"],
        vec!["-fkuc", "ck", "-p", &pid],
        vec![
            "--checkpoint",
            "ck",
            "-p",
            &pid,
            "--force",
            "--continue",
            "--upgrade",
            "--attributes",
            "none.cpr",
        ],
        vec!["--checkpoint=ck", "--kill", "-p", &pid],
        vec!["-r", "a", "b", "c"],
        vec!["-j", "-r", "a"],
        vec!["--restart", "--interactive", "a", "b"],
        vec!["-i", "a", "b"],
        vec!["-i", "--json", "a"],
        vec!["--info", "a"],
        vec!["-D", "a", "b"],
        vec!["--delete", "a"],
    ];
    for args in forms {
        let dir = scratch();
        let out = run(dir.path(), &args);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("Usage:"), "{args:?}: {err}");
        // Nothing here names a real process or statefile: it must not pretend to work.
        assert_ne!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

#[test]
fn conflicts_are_usage_errors_naming_the_conflict() {
    assert_usage_error(
        &["-c", "ck", "-p", "1", "-r"],
        &["--checkpoint", "--restart"],
    );
    assert_usage_error(&["-i", "-D", "ck"], &["--info", "--delete"]);
    assert_usage_error(
        &["-c", "ck", "-p", "1", "-g", "-k"],
        &["--continue", "--kill"],
    );
    assert_usage_error(
        &["-j", "-c", "ck", "-p", "1"],
        &["--interactive", "--checkpoint"],
    );
    assert_usage_error(&["-p", "1"], &["--checkpoint"]);
    assert_usage_error(&["-r", "-p", "1", "ck"], &["-p", "--restart"]);
    assert_usage_error(&["-c", "ck"], &["-p <IDLIST>"]);
    assert_usage_error(
        &["ck"],
        &["--checkpoint", "--restart", "--info", "--delete"],
    );
    assert_usage_error(&[], &["--checkpoint", "--restart", "--info", "--delete"]);
    assert_usage_error(&["--json", "-r", "ck"], &["--json", "--restart"]);
    assert_usage_error(&["--json", "ck"], &["--checkpoint"]);
    assert_usage_error(&["-i", "-f", "ck"], &["--force", "--info"]);
    assert_usage_error(&["-D", "-u", "ck"], &["--upgrade", "--delete"]);
    assert_usage_error(&["-r", "--attributes", "x", "ck"], &["--attributes"]);
    assert_usage_error(&["-r"], &["STATEFILE"]);
    assert_usage_error(&["-i"], &["STATEFILE"]);
    assert_usage_error(&["-D"], &["STATEFILE"]);
    assert_usage_error(&["-c", "ck", "-p", "1", "other"], &["STATEFILE"]);
    assert_usage_error(&["-x"], &["-x"]);
}

#[test]
fn help_and_version() {
    let dir = scratch();
    for flag in ["-h", "--help"] {
        let out = run(dir.path(), &[flag]);
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        assert!(text.contains("Usage: cpr -c STATEFILE -p IDLIST"), "{text}");
        assert!(text.contains("--attributes <FILE>"), "{text}");
        assert!(out.stderr.is_empty());
    }
    let out = run(dir.path(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        format!("cpr {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn restart_of_a_missing_statefile_fails_and_names_it() {
    let dir = scratch();
    let out = run(dir.path(), &["-r", "ckptSep7"]);
    assert_failures(&out, &[&["ckptSep7"]]);
    assert!(out.stdout.is_empty());
}

// Below: these need the statefile, target and attrfile branches (and the engine for the
// last one) to pass.

#[test]
fn info_on_a_directory_that_is_not_a_statefile() {
    let dir = scratch();
    fs::create_dir(dir.path().join("plain")).unwrap();
    fs::write(dir.path().join("plain/notes.txt"), "hello").unwrap();
    let out = run(dir.path(), &["-i", "plain"]);
    assert_failures(&out, &[&["plain"]]);
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}

#[test]
fn delete_refuses_what_is_not_a_statefile() {
    let dir = scratch();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    fs::write(home.join("thesis.tex"), "precious").unwrap();
    let out = run(dir.path(), &["-D", "home"]);
    assert_failures(&out, &[&["home"]]);
    assert_eq!(
        fs::read_to_string(home.join("thesis.tex")).unwrap(),
        "precious"
    );
    assert_eq!(fs::read_dir(&home).unwrap().count(), 1);
}

#[test]
fn delete_by_owner_or_root_only() {
    if !need_root("delete_by_owner_or_root_only") {
        return;
    }
    let dir = scratch();
    let ck = fixture_statefile(&dir.path().join("ckptSep7"));
    assert!(ck.join(MANIFEST).is_file());

    let out = run_as(NOBODY, dir.path(), &["-D", "ckptSep7"]);
    assert_failures(&out, &[&["ckptSep7", "Operation not permitted"]]);
    assert!(
        ck.join(MANIFEST).is_file(),
        "nobody removed root's statefile"
    );

    let out = run(dir.path(), &["-D", "ckptSep7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
    assert!(!ck.exists(), "statefile still there after -D");
}

#[test]
fn info_shows_processes_and_file_dispositions() {
    let dir = scratch();
    fixture_statefile(&dir.path().join("ckptSep7"));

    let out = run(dir.path(), &["-i", "ckptSep7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&FIXTURE_PID.to_string()), "{text}");
    assert!(text.contains(FIXTURE_LOG), "{text}");
    assert!(text.to_lowercase().contains("append"), "{text}");

    let out = run(dir.path(), &["-i", "--json", "ckptSep7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let array = value.as_array().expect("a JSON array");
    assert_eq!(array.len(), 1);
    let one = array[0].to_string();
    assert!(one.contains(&FIXTURE_PID.to_string()), "{one}");
    assert!(one.contains(FIXTURE_LOG), "{one}");
}

#[test]
fn several_statefiles_go_on_past_a_bad_one() {
    let dir = scratch();
    fixture_statefile(&dir.path().join("good"));
    fixture_statefile(&dir.path().join("good2"));
    fs::create_dir(dir.path().join("bad")).unwrap();

    let out = run(dir.path(), &["-i", "good", "bad", "missing"]);
    assert_failures(&out, &[&["bad"], &["missing", "No such file or directory"]]);
    assert!(stdout(&out).contains(&FIXTURE_PID.to_string()));

    let out = run(dir.path(), &["-i", "--json", "bad", "good", "good2"]);
    assert_failures(&out, &[&["bad"]]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(value.as_array().map(Vec::len), Some(2));

    let out = run(dir.path(), &["-D", "good", "bad", "good2"]);
    assert_failures(&out, &[&["bad"]]);
    assert!(!dir.path().join("good").exists());
    assert!(!dir.path().join("good2").exists());
    assert!(dir.path().join("bad").is_dir());
}

#[test]
fn checkpoint_of_a_process_that_does_not_exist() {
    let dir = scratch();
    let pid = free_pid().to_string();
    let out = run(dir.path(), &["-c", "ck", "-p", &pid]);
    assert_failures(&out, &[&["No such process"]]);
    assert!(!dir.path().join("ck").exists());
}

#[test]
fn checkpoint_with_a_bad_designator() {
    for idlist in ["12:FOO", "abc", "12,,13", "12:"] {
        let dir = scratch();
        let out = run(dir.path(), &["-c", "ck", "-p", idlist]);
        assert_failures(&out, &[&["Invalid argument"]]);
        assert!(!dir.path().join("ck").exists(), "{idlist}");
    }
}

/// A child we own that stays put until killed.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn checkpoint_with_a_missing_attribute_file_leaves_the_process_alone() {
    let dir = scratch();
    let sleeper = Sleeper(Command::new("sleep").arg("600").spawn().expect("sleep"));
    let pid = sleeper.0.id().to_string();
    let out = run(
        dir.path(),
        &["-c", "ck", "-p", &pid, "--attributes", "nothere.cpr"],
    );
    assert_failures(&out, &[&["nothere.cpr", "No such file or directory"]]);
    assert!(!dir.path().join("ck").exists());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn checkpoint_never_pretends() {
    let dir = scratch();
    let mut sleeper = Sleeper(Command::new("sleep").arg("600").spawn().expect("sleep"));
    let pid = sleeper.0.id().to_string();
    let out = run(dir.path(), &["-c", "ck", "-p", &pid, "-g"]);
    if out.status.success() {
        assert!(out.stderr.is_empty(), "{}", stderr(&out));
        assert!(dir.path().join("ck").join(MANIFEST).is_file());
    } else {
        assert_failures(&out, &[&[]]);
        assert!(
            !dir.path().join("ck").exists(),
            "a failed checkpoint left ck"
        );
    }
    // -g: the original runs on either way.
    assert!(sleeper.0.try_wait().expect("wait").is_none());
}
