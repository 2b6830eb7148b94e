//! cview driven as a person would (issue 13): keys sent with `tmux send-keys`, the screen
//! read with `tmux capture-pane`, on an 80x24 terminal. A counter in a process group of
//! its own is checkpointed through the checkpoint panel (type GID, its log set to REPLACE),
//! restarted through the restart panel with any process ID, checks itself, and the
//! statefile is removed. Run alone: `cargo test --test cview`.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn cview_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cview")
}

/// A tmux server of the test's own (socket in the scratch directory), killed on drop.
struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    /// Starts cview in a detached 80x24 session whose working directory is `dir`.
    /// `None` when tmux is missing outside CI.
    fn start(s: &Scratch, dir: &Path) -> Option<Tmux> {
        Tmux::start_command(s, dir, cview_bin())
    }

    /// Starts `command` (a shell command line) as `start` starts cview.
    fn start_command(s: &Scratch, dir: &Path, command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(!in_ci(), "tmux is missing in CI");
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        let tmux = Tmux {
            sock: s.join("tmux.sock"),
        };
        let dir = dir.display().to_string();
        let o = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "cv",
            "-x",
            "80",
            "-y",
            "24",
            "-c",
            &dir,
            command,
        ]);
        assert!(o.status.success(), "tmux new-session: {o:?}");
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Sends keys by their tmux names (`Tab`, `F5`, `Space`, `Down`, ...).
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "cv", key]);
            // one key at a time, so that Escape is never read as Alt with the next key
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "cv", "-l", text]);
        std::thread::sleep(Duration::from_millis(60));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "cv"]).stdout).to_string()
    }

    /// Waits until the screen shows something `done` accepts; returns that screen.
    fn wait(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait(&format!("'{text}'"), |s| s.contains(text))
    }

    /// The line of the widget in focus that is chosen (marked `>`).
    fn chosen_line(screen: &str) -> Vec<String> {
        screen
            .lines()
            .filter(|l| l.starts_with("│>") || l.starts_with("║>"))
            .map(str::to_string)
            .collect()
    }

    /// Presses Down until the chosen line contains `text`.
    fn choose(&self, text: &str) {
        for _ in 0..30 {
            if Tmux::chosen_line(&self.screen())
                .iter()
                .any(|l| l.contains(text))
            {
                return;
            }
            self.keys(&["Down"]);
        }
        panic!("cannot choose '{text}':\n{}", self.screen());
    }

    fn size(&self) -> (usize, usize) {
        let screen = self.screen();
        let lines: Vec<&str> = screen.lines().collect();
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        (width, lines.len())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Every row of the screen is at most 80 wide and there are 24; the first row is the
/// panel bar, the last the key help.
fn assert_fits_80x24(screen: &str) {
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines.len() <= 24, "more than 24 lines:\n{screen}");
    assert!(
        lines.iter().all(|l| l.chars().count() <= 80),
        "a line wider than 80:\n{screen}"
    );
    assert!(lines[0].starts_with("cview"), "{screen}");
}

#[test]
fn checkpoint_and_restart_a_group_through_both_panels() {
    let mut session = Session::new();
    let exe = build("counter.c");
    let count_log = session.path("count.log");
    let mut cmd = Command::new(&exe);
    cmd.arg(session.s.ctl()).arg(&count_log).process_group(0);
    let w = spawn_command(&session.s, cmd, session.path("out.log"));
    let out_log = w.log.clone();
    let original = session.keep(w);
    wait_for_line(&out_log, "READY", TIMEOUT);
    let Some(tmux) = Tmux::start(&session.s, session.s.path()) else {
        return;
    };
    let screen = tmux.wait_for("Processes");
    assert_fits_80x24(&screen);

    // Step I: the counter (filtered by its log's name), its process group
    tmux.type_text("count.log");
    tmux.wait(&format!("process {original}"), |s| {
        Tmux::chosen_line(s)
            .iter()
            .any(|l| l.contains(&original.to_string()))
    });
    tmux.keys(&["Tab", "g"]);
    tmux.wait_for(&format!(
        "-p {original}:GID takes in 1 process(es): {original}"
    ));
    // Step III: its log REPLACE (saved now, put back at restart)
    tmux.keys(&["Tab", "Tab"]);
    tmux.choose("count.log");
    tmux.keys(&["r"]);
    tmux.wait("count.log REPLACE", |s| {
        Tmux::chosen_line(s)
            .iter()
            .any(|l| l.contains("count.log") && l.contains("REPLACE"))
    });
    // seeing before freezing: the dry run of the same choices
    tmux.keys(&["F7"]);
    tmux.wait_for("the checkpoint would succeed");
    tmux.keys(&["q"]);
    // Step II: the statefile; Enter there is OK
    let statefile = session.path("ckpt");
    tmux.keys(&["Tab"]);
    tmux.type_text(&statefile.display().to_string());
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("Checkpointed into");
    assert_fits_80x24(&screen);
    wait_until("the original to exit (WILL EXIT)", TIMEOUT, || {
        reap_children();
        !processes_naming(&count_log).contains(&original)
    });
    // only REPLACE brings the log back as it was: MERGE would reopen this
    fs::write(&count_log, "garbage\n").unwrap();

    // the restart panel: find the statefile, tell me more
    tmux.keys(&["F3"]);
    tmux.wait_for("Files and statefiles");
    tmux.type_text("ckpt");
    tmux.wait("ckpt chosen", |s| {
        Tmux::chosen_line(s).iter().any(|l| l.contains("SF  ckpt"))
    });
    tmux.keys(&["F6"]);
    let screen = tmux.wait_for("Tell me more");
    assert!(
        screen.contains(&format!("Designators:    {original}:GID")),
        "{screen}"
    );
    assert_fits_80x24(&screen);
    tmux.keys(&["q"]);
    // any process ID, restart
    tmux.keys(&["Tab", "Space"]);
    tmux.wait_for("[x] Any process ID");
    tmux.keys(&["F5"]);
    let screen = tmux.wait("the restart's outcome", |s| {
        s.contains("Restarted") || s.contains("cpr:")
    });
    assert!(
        screen.contains(&format!("Restarted {}", statefile.display())),
        "{screen}"
    );
    let restarted: Vec<i32> = processes_naming(&count_log);
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_ne!(
        restarted[0], original,
        "FORK ANY gave the original PID back"
    );
    session.s.go();
    wait_for_line(&out_log, "PASS", TIMEOUT);

    // remove, after confirmation
    tmux.keys(&["F8"]);
    tmux.wait_for("Remove the statefile");
    tmux.keys(&["y"]);
    tmux.wait_for("Removed");
    assert!(!statefile.exists());
    tmux.keys(&["F10"]);
}

#[test]
fn screen_follows_resizes_and_asks_for_80x24() {
    let _l = serial();
    let s = Scratch::new();
    let Some(tmux) = Tmux::start(&s, s.path()) else {
        return;
    };
    let screen = tmux.wait_for("Processes");
    assert_fits_80x24(&screen);
    assert!(
        screen.lines().last().unwrap().contains("F10 quit"),
        "{screen}"
    );

    tmux.run(&["resize-window", "-t", "cv", "-x", "120", "-y", "40"]);
    let screen = tmux.wait("a 120x40 layout", |s| {
        s.lines().count() == 40 && s.lines().last().is_some_and(|l| l.contains("F10 quit"))
    });
    assert_eq!(tmux.size().0, 120, "{screen}");

    tmux.run(&["resize-window", "-t", "cv", "-x", "60", "-y", "20"]);
    tmux.wait_for("at least 80x24");

    tmux.run(&["resize-window", "-t", "cv", "-x", "80", "-y", "24"]);
    let screen = tmux.wait("the 80x24 layout again", |s| {
        s.contains("Processes") && s.lines().last().is_some_and(|l| l.contains("F10 quit"))
    });
    assert_fits_80x24(&screen);
    // the restart panel fits too
    tmux.keys(&["F3"]);
    assert_fits_80x24(&tmux.wait_for("Files and statefiles"));
    tmux.keys(&["F10"]);
}

/// `cpr -r --no-cwd --any-pid`, the restart panel's choices on the command line: they
/// override the CDIR REPLACE and FORK ORIGINAL the statefile recorded.
#[test]
fn cpr_restart_flags_override_the_recorded_policies() {
    let mut session = Session::new();
    let wd = session.path("wd");
    let elsewhere = session.path("elsewhere");
    fs::create_dir(&wd).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    let ctl = session.s.ctl().display().to_string();
    let w = spawn(
        &session.s,
        &build("cwd.c"),
        &[ctl, wd.display().to_string()],
    );
    let log = w.log.clone();
    let original = session.keep(w);
    wait_for_line(&log, "READY", TIMEOUT);
    let statefile = session.path("ckpt");
    let out = Command::new(cpr_bin())
        .arg("-c")
        .arg(&statefile)
        .arg("-p")
        .arg(original.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "cpr -c: {out:?}");
    wait_until("the original to exit", TIMEOUT, || {
        reap_children();
        !processes_naming(&wd).contains(&original)
    });
    let out = Command::new(cpr_bin())
        .args(["-r", "--no-cwd", "--any-pid"])
        .arg(&statefile)
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "cpr -r: {out:?}");
    let restarted = processes_naming(&wd);
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_ne!(
        restarted[0], original,
        "--any-pid gave the original PID back"
    );
    session.s.go();
    let line = wait_for_line(&log, "CWD ", TIMEOUT);
    wait_for_line(&log, "PASS", TIMEOUT);
    let cwd = PathBuf::from(line.strip_prefix("CWD ").unwrap());
    assert_eq!(cwd, elsewhere.canonicalize().unwrap());
}

/// A mouse click (an SGR mouse report, as a terminal sends it) at the 1-based column
/// and row of the first occurrence of `text` on the screen.
fn click_on(tmux: &Tmux, text: &str) {
    let screen = tmux.screen();
    let (row, col) = screen
        .lines()
        .enumerate()
        .find_map(|(y, l)| l.find(text).map(|i| (y + 1, l[..i].chars().count() + 1)))
        .unwrap_or_else(|| panic!("no '{text}' to click on:\n{screen}"));
    for end in ['M', 'm'] {
        tmux.type_text(&format!("\x1b[<0;{col};{row}{end}"));
    }
}

#[test]
fn mouse_chooses_the_type_and_changes_an_option() {
    let _l = serial();
    let s = Scratch::new();
    let Some(tmux) = Tmux::start(&s, s.path()) else {
        return;
    };
    tmux.wait_for("Processes");
    click_on(&tmux, "SID");
    tmux.wait_for(":SID");
    // the first click chooses the option, the second changes it
    click_on(&tmux, "FORK:");
    click_on(&tmux, "FORK:");
    tmux.wait_for("FORK:    ORIGINAL");
    click_on(&tmux, "F3 Restart");
    tmux.wait_for("Files and statefiles");
    click_on(&tmux, "Any process ID");
    click_on(&tmux, "Any process ID");
    tmux.wait_for("[x] Any process ID");
    tmux.keys(&["F10"]);
}

/// Run by an ordinary user, cview shows that user's processes only, may not show
/// another's, and resolves a choice with cpr's permission rules: a session that holds
/// root's processes too is refused.
#[test]
fn ordinary_user_sees_and_takes_in_only_their_own_processes() {
    let _l = serial();
    let s = Scratch::new();
    // nobody's processes name the scratch directory and must reach it
    s.open_to_other_users();
    // nobody's process in a session whose leader is root's: a session of its own, as
    // the test's own may have its leader outside this PID namespace (SID 0 in CI)
    let mut cmd = Command::new("setsid");
    cmd.args([
        "sh",
        "-c",
        "setpriv --reuid=65534 --regid=65534 --clear-groups \
         sh -c 'while :; do sleep 1; done' \"$0\" & wait",
    ])
    .arg(s.path());
    let leader = spawn_command(&s, cmd, s.join("out.log"));
    let nobody = nobody_child_of(leader.pid);
    let command = format!(
        "env HOME=/nonexistent setpriv --reuid=65534 --regid=65534 --clear-groups {}",
        cview_bin()
    );
    let Some(tmux) = Tmux::start_command(&s, Path::new("/"), &command) else {
        return;
    };
    let screen = tmux.wait_for("Processes");
    assert!(screen.contains("User: [nobody"), "{screen}");
    let rows: Vec<&str> = screen.lines().skip(4).take(6).collect();
    assert!(rows.iter().any(|l| l.contains("nobody")), "{screen}");
    assert!(!rows.iter().any(|l| l.contains(" root ")), "{screen}");

    let name = s.path().file_name().unwrap().to_str().unwrap().to_string();
    tmux.type_text(&name);
    tmux.wait_for(&format!("-p {nobody} takes in 1 process(es)"));
    tmux.keys(&["Tab", "s"]);
    tmux.wait_for("cpr: Operation not permitted: processes have several owners");
    tmux.keys(&["BTab", "BTab", "r"]);
    tmux.wait_for("Only root may show another user's processes");
    tmux.keys(&["F10"]);
    let _ = kill(Pid::from_raw(nobody), Signal::SIGKILL);
}

/// The child `leader` started as nobody, once it runs as nobody.
fn nobody_child_of(leader: i32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = fs::read_to_string(format!("/proc/{leader}/task/{leader}/children"))
            .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sh" && status.lines().any(|l| l.starts_with("Uid:\t65534\t")) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no nobody child of {leader}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
