//! Root restarting an ordinary user's statefile opens the paths its records name with
//! the user's rights, never root's, and never through a link at a file it writes
//! (issue 11, item 4): a user may edit their statefile, or plant links, to name any file.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::user::{USER, user};
use common::*;

const SECRET: &str = "root's secret\n";

/// The user's directory in /tmp with the user's counter job checkpointed (and killed) by
/// root, so that root may restart it (MANIFEST.mac), its log `logs/count.log` under FILE
/// REPLACE and its working directory `wd`; and a root-only directory holding a secret.
/// What the records name is the user's to change after the checkpoint: directories and
/// files in their own directory, replaced by links.
struct Setup {
    dir: tempfile::TempDir,
    root_only: tempfile::TempDir,
    sf: PathBuf,
    uid: u32,
    gid: u32,
}

impl Setup {
    fn new(uid: u32, gid: u32) -> Setup {
        Setup::with_job(uid, gid, "counter.c")
    }

    /// As `new`, the job `workload` (the counter, or a workload taking only its control
    /// directory, `ctl`).
    fn with_job(uid: u32, gid: u32, workload: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("cpr-userpaths-")
            .tempdir_in("/tmp")
            .unwrap();
        let root_only = tempfile::Builder::new()
            .prefix("cpr-rootonly-")
            .tempdir_in("/tmp")
            .unwrap();
        fs::set_permissions(root_only.path(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(root_only.path().join("count.log"), SECRET).unwrap();
        let mut s = Setup {
            dir,
            root_only,
            sf: PathBuf::new(),
            uid,
            gid,
        };
        for d in [s.path(""), s.path("logs"), s.path("wd"), s.path("ctl")] {
            fs::create_dir_all(&d).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
            chown(&d, Some(uid), Some(gid)).unwrap();
        }
        let program = s.path("program");
        fs::copy(build(workload), &program).unwrap();
        fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
        let args = match workload {
            "counter.c" => vec![s.path(""), s.log()],
            _ => vec![s.path("ctl")],
        };
        let attrs = s.path("attrs.cpr");
        fs::write(
            &attrs,
            format!(
                "CKPT * {{\n    FILE: \"{}\": REPLACE\n}}\n",
                s.log().display()
            ),
        )
        .unwrap();
        let out = s.path("out.log");
        let out_file = fs::File::create(&out).unwrap();
        chown(&out, Some(uid), Some(gid)).unwrap();
        // reaped by reap_children: the restarted job re-parents to this test
        #[allow(clippy::zombie_processes)]
        let child = as_user(&s.path("wd"), &program)
            .args(&args)
            .stdout(out_file.try_clone().unwrap())
            .stderr(out_file)
            .spawn()
            .unwrap();
        wait_for_line(&out, "READY", TIMEOUT);
        let pid = child.id() as i32;
        let sf = s.path("job");
        let out = cpr_command()
            .args(["-c", sf.to_str().unwrap(), "-p", &pid.to_string(), "-k"])
            .arg("--attributes")
            .arg(&attrs)
            .output()
            .unwrap();
        assert_success(&out, &format!("root's cpr -c of the user's {workload}"));
        wait_pid_gone(pid, TIMEOUT);
        s.sf = sf;
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            return self.dir.path().to_path_buf();
        }
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("logs/count.log")
    }

    fn secret(&self) -> PathBuf {
        self.root_only.path().join("count.log")
    }

    /// The user's directory `rel` moved aside and a link to the root-only directory put
    /// in its place; `undo` puts it back.
    fn plant_dir_link(&self, rel: &str) {
        fs::rename(self.path(rel), self.path(&format!("{rel}.away"))).unwrap();
        self.plant_link(rel, self.root_only.path());
    }

    fn undo_dir_link(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
        fs::rename(self.path(&format!("{rel}.away")), self.path(rel)).unwrap();
    }

    fn plant_link(&self, rel: &str, target: &Path) {
        symlink(target, self.path(rel)).unwrap();
        std::os::unix::fs::lchown(self.path(rel), Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Root's `cpr -r`, which must fail naming `path`, start nothing and leave the
    /// secret as it was.
    fn assert_restart_refused(&self, what: &str, path: &Path) {
        let out = root_restart(&self.sf);
        assert_failure(&out, what, &[path.to_str().unwrap()], false);
        assert!(
            processes_naming(self.dir.path()).is_empty(),
            "{what}: nothing may be started"
        );
        assert_eq!(
            fs::read_to_string(self.secret()).unwrap(),
            SECRET,
            "{what}: the root-only file must be untouched"
        );
    }

    /// Root's `cpr -r` works, and the job passes its own check.
    fn assert_restart_passes(&self) {
        assert_success(&root_restart(&self.sf), "root's cpr -r of the user's job");
        let tmp = self.path(".GO.tmp");
        fs::write(&tmp, "").unwrap();
        fs::rename(&tmp, self.path("GO")).unwrap();
        wait_for_line(&self.path("out.log"), "PASS", TIMEOUT);
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for pid in processes_naming(self.dir.path()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until("the user's processes to end", TIMEOUT, || {
            reap_children();
            processes_naming(self.dir.path()).is_empty()
        });
    }
}

fn as_user(dir: &Path, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
        .arg(program)
        .current_dir(dir)
        .env("HOME", dir)
        .stdin(Stdio::null());
    cmd
}

fn root_restart(sf: &Path) -> Output {
    cpr_command()
        .args(["-r", sf.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn replace_path_through_a_link_to_a_root_only_directory_is_refused_when_root_restarts() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let s = Setup::new(uid, gid);
    s.plant_dir_link("logs");
    s.assert_restart_refused(
        "root's cpr -r with the REPLACE file's directory a link to root's",
        &s.log(),
    );

    // as checkpointed: root restarts it, with the user's rights, and the job passes its
    // own check of the log REPLACE brought back, which keeps its owner and mode
    s.undo_dir_link("logs");
    s.assert_restart_passes();
    let meta = fs::metadata(s.log()).unwrap();
    assert_eq!(
        (meta.uid(), meta.permissions().mode() & 0o777),
        (uid, 0o644),
        "REPLACE keeps the log's owner and mode"
    );
}

#[test]
fn link_planted_at_a_replace_path_is_not_followed_when_root_restarts() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let s = Setup::new(uid, gid);
    fs::remove_file(s.log()).unwrap();
    s.plant_link("logs/count.log", &s.secret());
    s.assert_restart_refused("root's cpr -r with a link at the REPLACE path", &s.log());
    assert!(fs::symlink_metadata(s.log()).unwrap().is_symlink());
}

#[test]
fn working_directory_through_a_link_to_a_root_only_directory_is_refused_when_root_restarts() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    let s = Setup::new(uid, gid);
    s.plant_dir_link("wd");
    s.assert_restart_refused(
        "root's cpr -r with the working directory a link to root's",
        &s.path("wd"),
    );
}

#[test]
fn mapped_file_through_a_link_to_a_root_only_directory_is_refused_when_root_restarts() {
    let _serial = serial();
    let Some((uid, gid)) = user() else { return };
    // files of the control directory mapped shared, one that may become writable
    let s = Setup::with_job(uid, gid, "mem_maywrite.c");
    let secret = s.root_only.path().join("rw.dat");
    fs::write(&secret, SECRET).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    s.plant_dir_link("ctl");
    s.assert_restart_refused(
        "root's cpr -r with a mapped file's directory a link to root's",
        &s.path("ctl"),
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
}
