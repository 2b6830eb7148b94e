//! cpr run by an ordinary user, `cpruser` (created here when absent; the tests run as
//! root): without any privilege, and as installed by etc/install with file capabilities.
//! The user checkpoints and restarts their own jobs; cpr refuses another user's process,
//! a setuid program's process, root's statefile; and a statefile the user forged to ask
//! for root's credentials is refused when root restarts it.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::user::{USER, user};
use common::*;

/// A directory of the user's in /tmp (which every user can reach, unlike a target
/// directory under /root), holding the programs the user runs, their logs and the
/// statefiles. On drop, every process whose command line names it is killed and reaped.
struct UserDir {
    dir: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl UserDir {
    fn new(uid: u32, gid: u32) -> UserDir {
        let dir = tempfile::Builder::new()
            .prefix("cpr-users-")
            .tempdir_in("/tmp")
            .expect("create a directory in /tmp");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        chown(dir.path(), Some(uid), Some(gid)).expect("give the directory to the user");
        UserDir { dir, uid, gid }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A copy of `program` here, owned by root, that anyone may run.
    fn install(&self, program: &Path, name: &str) -> PathBuf {
        let dest = self.join(name);
        fs::copy(program, &dest).expect("copy the program");
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
        dest
    }

    /// `program args...` run as the user, in this directory, HOME here.
    fn as_user(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
            .arg(program)
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Starts a workload as the user, its output appended to `log`; returns its PID (once
    /// it said READY) and that line.
    fn start(&self, program: &Path, args: &[&str], log: &Path) -> (i32, String) {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        chown(log, Some(self.uid), Some(self.gid)).unwrap();
        let mut cmd = self.as_user(program, args);
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
        // reaped by reap_children: restarted processes re-parent to this test
        #[allow(clippy::zombie_processes)]
        let child = cmd.spawn().expect("start a workload as the user");
        let line = wait_for_line(log, "READY", TIMEOUT);
        (child.id() as i32, line)
    }

    /// Runs cpr (`cpr`, a copy here) as the user.
    fn cpr(&self, cpr: &Path, args: &[&str]) -> Output {
        self.as_user(cpr, args)
            .output()
            .expect("run cpr as the user")
    }

    fn go(&self) {
        let tmp = self.join(".GO.tmp");
        fs::write(&tmp, "").unwrap();
        fs::rename(&tmp, self.join("GO")).unwrap();
    }
}

impl Drop for UserDir {
    fn drop(&mut self) {
        for pid in processes_naming(self.path()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until("the user's processes to end", TIMEOUT, || {
            reap_children();
            processes_naming(self.path()).is_empty()
        });
    }
}

/// cpr installed by etc/install into the user's directory: with its file capabilities.
fn installed_cpr(dir: &UserDir) -> PathBuf {
    let prefix = dir.join("prefix");
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("etc/install"))
        .args(["--no-man", "--bin", cpr_bin()])
        .arg(&prefix)
        .output()
        .expect("run etc/install");
    assert_success(&out, "etc/install");
    for d in [prefix.clone(), prefix.join("bin")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin = prefix.join("bin/cpr");
    let caps = Command::new("getcap").arg(&bin).output().expect("getcap");
    let caps = String::from_utf8_lossy(&caps.stdout);
    assert!(
        caps.contains("cap_checkpoint_restore") && caps.contains("cap_sys_ptrace"),
        "etc/install gave {}: {caps}",
        bin.display()
    );
    bin
}

/// The counter workload, started as the user; returns its PID.
fn start_counter(dir: &UserDir) -> i32 {
    let counter = dir.install(&build("counter.c"), "counter");
    let ctl = dir.path().to_str().unwrap().to_string();
    let log = dir.join("count.log").to_str().unwrap().to_string();
    dir.start(&counter, &[&ctl, &log], &dir.join("out.log")).0
}

/// After a restart: the job (whichever PID it has now) runs as the user and passes its
/// own check once told to.
fn assert_job_passes(dir: &UserDir, uid: u32) -> i32 {
    // (a helper that recreated a process group may still be ending: not counted)
    let running: Vec<i32> = processes_naming(dir.path())
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "counter")
        })
        .collect();
    assert_eq!(running.len(), 1, "one restarted process: {running:?}");
    let pid = running[0];
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
        "the restarted process runs as the user:\n{status}"
    );
    for set in ["CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert!(
            status.contains(&format!("{set}:\t0000000000000000")),
            "the restarted process holds no capability ({set}):\n{status}"
        );
    }
    dir.go();
    wait_for_line(&dir.join("out.log"), "PASS", TIMEOUT);
    pid
}

fn yama_scope() -> u32 {
    fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn user_checkpoints_and_restarts_own_job_without_privilege() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = dir.install(Path::new(cpr_bin()), "cpr");
    let attrs = dir.join("attrs.cpr");
    fs::write(&attrs, "CKPT * {\n    FORK: ANY\n}\n").unwrap();
    let pid = start_counter(&dir);
    let sf = dir.join("job");
    let sf_arg = sf.to_str().unwrap();
    let out = dir.cpr(
        &cpr,
        &[
            "-c",
            sf_arg,
            "-p",
            &pid.to_string(),
            "-k",
            "-u",
            "--attributes",
            attrs.to_str().unwrap(),
        ],
    );
    if yama_scope() >= 1 {
        // cpr is not the job's ancestor: Yama forbids the attach, and cpr says so
        assert_failure(&out, "cpr -c under Yama", &["ptrace_scope"], false);
        assert_running_untraced(pid);
        return;
    }
    assert_success(&out, "cpr -c by the user, no privilege");
    wait_pid_gone(pid, TIMEOUT);
    // the program changes: the restart maps the copy -u saved (read by path, checked to
    // be the file mapped, since map_files needs privilege)
    let program = dir.join("counter");
    fs::remove_file(&program).unwrap();
    fs::write(&program, "#!/bin/sh\nexit 1\n").unwrap();
    assert_success(&dir.cpr(&cpr, &["-i", sf_arg]), "cpr -i by the user");
    assert_success(
        &dir.cpr(&cpr, &["-r", sf_arg]),
        "cpr -r by the user, no privilege",
    );
    let restarted = assert_job_passes(&dir, uid);
    // without CAP_CHECKPOINT_RESTORE the executable link is left as it was: cpr's
    let exe = fs::read_link(format!("/proc/{restarted}/exe"));
    if let Ok(exe) = exe {
        assert_eq!(
            exe, cpr,
            "/proc/PID/exe of a job restarted without privilege"
        );
    }
    wait_exit(restarted, TIMEOUT);
    assert_success(&dir.cpr(&cpr, &["-D", sf_arg]), "cpr -D by the user");
    assert!(!sf.exists());
}

#[test]
fn user_checkpoints_and_restarts_own_job_with_installed_capabilities() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = installed_cpr(&dir);
    let pid = start_counter(&dir);
    let sf = dir.join("job");
    let sf_arg = sf.to_str().unwrap();
    // FORK ORIGINAL (the default), whatever Yama says: cpr holds CAP_SYS_PTRACE
    let out = dir.cpr(&cpr, &["-c", sf_arg, "-p", &pid.to_string(), "-k"]);
    assert_success(&out, "cpr -c by the user, installed with capabilities");
    let meta = fs::metadata(&sf).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        uid,
        "the user's statefile"
    );
    wait_pid_gone(pid, TIMEOUT);
    assert_success(
        &dir.cpr(&cpr, &["-r", sf_arg]),
        "cpr -r by the user, installed with capabilities",
    );
    let restarted = assert_job_passes(&dir, uid);
    assert_eq!(restarted, pid, "FORK ORIGINAL gives the job its PID back");
    wait_exit(restarted, TIMEOUT);
}

#[test]
fn fork_original_without_privilege_is_refused_before_anything_starts() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let installed = installed_cpr(&dir);
    let plain = dir.install(Path::new(cpr_bin()), "cpr");
    let pid = start_counter(&dir);
    let sf = dir.join("job");
    let sf_arg = sf.to_str().unwrap();
    let out = dir.cpr(&installed, &["-c", sf_arg, "-p", &pid.to_string(), "-k"]);
    assert_success(&out, "cpr -c, installed with capabilities");
    wait_pid_gone(pid, TIMEOUT);
    let out = dir.cpr(&plain, &["-r", sf_arg]);
    assert_failure(
        &out,
        "cpr -r of FORK ORIGINAL without privilege",
        &["FORK ORIGINAL", "CAP_CHECKPOINT_RESTORE"],
        false,
    );
    assert!(
        processes_naming(dir.path()).is_empty(),
        "nothing may be started"
    );
}

/// Seccomp filters can be read and installed only with CAP_SYS_ADMIN: a user's cpr
/// (even installed with its capabilities) refuses the user's filtered process at
/// checkpoint, and root's statefile of it at restart, before anything starts; the
/// process runs on under its filter.
#[test]
fn seccomp_filters_without_cap_sys_admin_are_refused() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let installed = installed_cpr(&dir);
    let workload = dir.install(&build("fp_seccomp.c"), "seccomp");
    let ctl = dir.path().to_str().unwrap().to_string();
    let (pid, _) = dir.start(&workload, &[&ctl], &dir.join("out.log"));
    let sf = dir.join("job");
    let sf_arg = sf.to_str().unwrap();
    let out = dir.cpr(&installed, &["-c", sf_arg, "-p", &pid.to_string()]);
    assert_failure(
        &out,
        "cpr -c of a filtered process without CAP_SYS_ADMIN",
        &[&format!("thread {pid}"), "seccomp filters", "CAP_SYS_ADMIN"],
        false,
    );
    assert_running_untraced(pid);
    assert!(!sf.exists(), "no statefile");
    let out = cpr(&["-c", sf_arg, "-p", &pid.to_string(), "-k"]);
    assert_success(&out, "cpr -c by root");
    wait_pid_gone(pid, TIMEOUT);
    let out = dir.cpr(&installed, &["-r", sf_arg]);
    assert_failure(
        &out,
        "cpr -r of a filtered process without CAP_SYS_ADMIN",
        &["seccomp filters", "CAP_SYS_ADMIN"],
        false,
    );
    assert!(
        processes_naming(dir.path()).is_empty(),
        "nothing may be started"
    );
}

#[test]
fn installed_cpr_refuses_another_users_process() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = installed_cpr(&dir);
    // root's own process, in the user's directory
    let counter = dir.install(&build("counter.c"), "counter");
    let log = dir.join("root.log");
    let w = spawn_command_in(&dir, &counter, &log);
    let sf = dir.join("stolen");
    let out = dir.cpr(&cpr, &["-c", sf.to_str().unwrap(), "-p", &w.to_string()]);
    assert_failure(
        &out,
        "cpr -c of root's process by a user",
        &["Operation not permitted", "uids 0/0/0/0"],
        false,
    );
    assert_running_untraced(w);
    assert!(!sf.exists(), "no statefile");
}

/// Starts `program CTL LOG` as root (not as the user); returns its PID.
fn spawn_command_in(dir: &UserDir, program: &Path, log: &Path) -> i32 {
    let out = fs::File::create(dir.join("root.out")).unwrap();
    #[allow(clippy::zombie_processes)]
    let child = Command::new(program)
        .arg(dir.path())
        .arg(log)
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .expect("start root's workload");
    wait_for_line(&dir.join("root.out"), "READY", TIMEOUT);
    child.id() as i32
}

#[test]
fn installed_cpr_refuses_setuid_programs_processes() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = installed_cpr(&dir);
    let program = dir.install(&build("user_setuid.c"), "user_setuid");
    fs::set_permissions(&program, fs::Permissions::from_mode(0o4755)).unwrap();
    let ctl = dir.path().to_str().unwrap().to_string();
    // "keep": effective uid root; "drop": every uid the user's again, but undumpable
    for (mode, why) in [("keep", "uids "), ("drop", "not dumpable")] {
        let log = dir.join(&format!("{mode}.log"));
        let (pid, ready) = dir.start(&program, &[&ctl, mode], &log);
        if mode == "keep" && field(&ready, "euid") != Some("0") {
            // /tmp mounted nosuid: no setuid program can be tested here
            assert!(!in_ci(), "the setuid program did not run setuid: {ready}");
            eprintln!("skipped: setuid programs do not run setuid in /tmp: {ready}");
            return;
        }
        let sf = dir.join(mode);
        let out = dir.cpr(&cpr, &["-c", sf.to_str().unwrap(), "-p", &pid.to_string()]);
        assert_failure(
            &out,
            &format!("cpr -c of a setuid program's process ({mode})"),
            &["Operation not permitted", why],
            false,
        );
        assert_running_untraced(pid);
        assert!(!sf.exists(), "no statefile");
    }
}

/// Root checkpoints the user's job and keeps the statefile (it is root's on disk now):
/// the user may not restart or remove it, though its MANIFEST names them.
#[test]
fn installed_cpr_refuses_a_statefile_root_keeps() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = installed_cpr(&dir);
    let pid = start_counter(&dir);
    let sf = dir.join("kept");
    let out = cpr_command()
        .args(["-c", sf.to_str().unwrap(), "-p", &pid.to_string(), "-k"])
        .output()
        .unwrap();
    assert_success(&out, "root's cpr -c of the user's job");
    wait_pid_gone(pid, TIMEOUT);
    // root's, and readable by all, so that only cpr's own rule stands in the way
    for args in [&["-R", "root:root"][..], &["-R", "a+rX"][..]] {
        let tool = if args[1] == "root:root" {
            "chown"
        } else {
            "chmod"
        };
        let out = Command::new(tool).args(args).arg(&sf).output().unwrap();
        assert_success(&out, tool);
    }
    let out = dir.cpr(&cpr, &["-r", sf.to_str().unwrap()]);
    assert_failure(
        &out,
        "cpr -r by a user of a statefile root keeps",
        &["Operation not permitted", "owned by uid 0"],
        false,
    );
    assert!(processes_naming(dir.path()).is_empty(), "nothing started");
    let out = dir.cpr(&cpr, &["-D", sf.to_str().unwrap()]);
    assert_failure(
        &out,
        "cpr -D by a user of a statefile root keeps",
        &["Operation not permitted"],
        false,
    );
    assert!(sf.join("MANIFEST").exists(), "root's statefile is kept");
}

/// What a forged record asks for: its name, the fields of its process record changed, and
/// what the refusal says.
type Forgery = (
    &'static str,
    Vec<(&'static str, serde_json::Value)>,
    &'static str,
);

/// Rewrites `rel` of statefile `sf` with `edit` and records its new size and checksum in
/// the MANIFEST, as a user who owns the statefile can.
fn forge(sf: &Path, rel: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = sf.join(rel);
    let mut value: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).unwrap()).expect("a JSON record");
    edit(&mut value);
    let bytes = serde_json::to_vec(&value).unwrap();
    fs::write(&path, &bytes).unwrap();
    let manifest_path = sf.join("MANIFEST");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    if let Some(files) = manifest["files"].as_array_mut() {
        for entry in files.iter_mut().filter(|e| e["path"] == rel) {
            remake_manifest_entry(entry, &bytes);
        }
    }
    // and the MANIFEST's summary of the process, which restart compares with the record
    if let Some(processes) = manifest["processes"].as_array_mut() {
        for summary in processes
            .iter_mut()
            .filter(|p| p["pid"] == value["process"]["pid"])
        {
            for field in ["uids", "gids"] {
                if let Some(v) = value["process"].get(field) {
                    summary[field] = v.clone();
                }
            }
        }
    }
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn forged_credentials_in_a_users_statefile_are_refused_when_root_restarts_it() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = installed_cpr(&dir);
    let pid = start_counter(&dir);
    let sf = dir.join("job");
    let out = dir.cpr(
        &cpr,
        &["-c", sf.to_str().unwrap(), "-p", &pid.to_string(), "-k"],
    );
    assert_success(&out, "cpr -c by the user");
    wait_pid_gone(pid, TIMEOUT);
    let core = format!("proc/{pid}/core.json");
    let original: serde_json::Value =
        serde_json::from_slice(&fs::read(sf.join(&core)).unwrap()).unwrap();
    let all_caps: u64 = (1 << 41) - 1;
    let caps =
        serde_json::json!({"inheritable": all_caps, "permitted": all_caps, "effective": all_caps});
    // each credential alone, then all of root's at once
    let forgeries: [Forgery; 5] = [
        (
            "a saved uid",
            vec![("uids", serde_json::json!([uid, uid, 0, uid]))],
            "asks for uid 0",
        ),
        (
            "a gid",
            vec![("gids", serde_json::json!([gid, 0, gid, gid]))],
            "asks for group 0",
        ),
        (
            "a group",
            vec![("groups", serde_json::json!([gid, 0]))],
            "asks for group 0",
        ),
        (
            "capabilities",
            vec![("caps", caps.clone())],
            "asks for capabilities",
        ),
        (
            "root",
            vec![
                ("uids", serde_json::json!([0, 0, 0, 0])),
                ("gids", serde_json::json!([0, 0, 0, 0])),
                ("groups", serde_json::json!([0])),
                ("caps", caps),
            ],
            "asks for uid 0",
        ),
    ];
    for (what, fields, why) in forgeries {
        forge(&sf, &core, |record| {
            *record = original.clone();
            for (name, value) in fields {
                record["process"][name] = value;
            }
        });
        // the files stay the user's: the user could have written them
        for path in [sf.join(&core), sf.join("MANIFEST")] {
            chown(&path, Some(uid), Some(gid)).unwrap();
        }
        let out = cpr_command()
            .args(["-r", sf.to_str().unwrap()])
            .output()
            .unwrap();
        assert_failure(
            &out,
            &format!("root's cpr -r of a statefile forged to ask for {what}"),
            &["Operation not permitted", why],
            false,
        );
        assert!(
            processes_naming(dir.path()).is_empty(),
            "nothing may be started"
        );
    }

    // the user names group 0 as the owner's group, and asks for it
    forge(&sf, &core, |record| {
        *record = original.clone();
        record["process"]["gids"] = serde_json::json!([0, 0, 0, 0]);
    });
    let manifest_path = sf.join("MANIFEST");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["owner"]["gid"] = 0.into();
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    for path in [sf.join(&core), manifest_path] {
        chown(&path, Some(uid), Some(gid)).unwrap();
    }
    let out = cpr_command()
        .args(["-r", sf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_failure(
        &out,
        "root's cpr -r of a statefile naming group 0 as the owner's",
        &["Operation not permitted", "asks for group 0"],
        false,
    );
    assert!(processes_naming(dir.path()).is_empty(), "nothing started");

    // the user names root as the checkpoint owner, and asks for root (as last forged):
    // the statefile on disk is still theirs
    let manifest_path = sf.join("MANIFEST");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    manifest["owner"] = serde_json::json!({"uid": 0, "gid": 0});
    fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    for path in [sf.join(&core), manifest_path] {
        chown(&path, Some(uid), Some(gid)).unwrap();
    }
    let out = cpr_command()
        .args(["-r", sf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_failure(
        &out,
        "root's cpr -r of a statefile claiming root as owner",
        // root's own statefiles carry a MAC; one without it naming root must be root's alone
        &["Permission denied", "not authenticated"],
        false,
    );
    assert!(
        processes_naming(dir.path()).is_empty(),
        "nothing may be started"
    );
}

/// libcpr without privilege: a program of the user's checkpoints itself with ckpt_create
/// (its own child traces it: Yama allows that), is killed, and the user's plain cpr
/// restarts it (FORK ANY); it ends with the result of an uninterrupted run.
#[test]
fn user_program_checkpoints_itself_with_libcpr_without_privilege() {
    use std::io::{BufRead, BufReader};
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let dir = UserDir::new(uid, gid);
    let cpr = dir.install(Path::new(cpr_bin()), "cpr");
    let program = dir.install(&build_with_libcpr("lib_selfloop.c"), "lib_selfloop");
    dir.install(&libcpr_dir().join("libcpr.so"), "libcpr.so");
    fs::write(
        dir.join(".cpr"),
        "CKPT * {\n    FORK: ANY\n    FILE: \"pipe:*\": IGNORE\n}\n",
    )
    .unwrap();
    // its errors go to a file of the user's: a descriptor root opened (the test's own
    // stderr) is not reopened for the user at restart
    let errors = dir.join("stderr.log");
    let err_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&errors)
        .unwrap();
    chown(&errors, Some(dir.uid), Some(dir.gid)).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = dir.as_user(&program, args);
        cmd.env("LD_LIBRARY_PATH", dir.path())
            .stderr(err_file.try_clone().unwrap());
        cmd
    };
    let prefix = dir.join("self");
    let (clean, out) = (dir.join("clean"), dir.join("out"));
    let total = "200000";
    let status = run(&[
        prefix.to_str().unwrap(),
        "0",
        total,
        clean.to_str().unwrap(),
    ])
    .status()
    .unwrap();
    assert!(status.success(), "the uninterrupted run");
    let expected = fs::read_to_string(&clean).unwrap();

    let mut child = run(&[
        prefix.to_str().unwrap(),
        "50000",
        total,
        out.to_str().unwrap(),
        "2",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for k in 1..=2 {
        let line = lines.next().and_then(|l| l.ok());
        assert_eq!(
            line.as_deref(),
            Some(format!("checkpointed {k}").as_str()),
            "ckpt_create by the user failed (its stderr is above)"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let second = format!("{}.2", prefix.display());
    assert_success(&dir.cpr(&cpr, &["-r", &second]), "cpr -r by the user");
    wait_until("the restarted loop to finish", TIMEOUT, || {
        fs::read_to_string(&out).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(fs::read_to_string(&out).unwrap(), expected);
}
