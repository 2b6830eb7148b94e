//! A checkpoint must never harm its target, even when cpr itself is killed at any moment,
//! and must refuse, before touching anything, the targets it cannot safely stop: PID 1,
//! the init of a PID namespace, a process another tracer holds.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Size of the survivor's heap: enough for a dump that takes a while.
const MIB: &str = "64";

/// How many times cpr is killed in the sweep.
const KILLS: u32 = 32;

/// Sends SIGUSR1 to the survivor and waits for its `PASS check=N`.
fn check(w: &Workload, n: u32) {
    signal(w.pid, Signal::SIGUSR1);
    wait_for_line(&w.log, &format!("PASS check={n} "), TIMEOUT);
}

/// Waits until `pid` is neither traced nor stopped: what a tracer that vanished leaves.
fn wait_untraced(pid: i32) {
    wait_until(
        &format!("process {pid} untraced and running"),
        TIMEOUT,
        || matches!(proc_status(pid), Some((s, 0)) if !matches!(s, 't' | 'T')),
    );
    assert_running_untraced(pid);
}

/// Runs `cpr -c DIR/NAME -p PID [-g]`, SIGKILLs it after `delay` (unless it ended
/// first) and returns whether its statefile was complete by then.
fn kill_checkpoint_after(dir: &Path, pid: i32, cont: bool, delay: Duration) -> bool {
    let sf = dir.join("ckpt");
    let mut cmd = cpr_command();
    cmd.arg("-c").arg(&sf).args(["-p", &pid.to_string()]);
    if cont {
        cmd.arg("-g");
    }
    let mut child = cmd.spawn().expect("run cpr");
    std::thread::sleep(delay);
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
    sf.join("MANIFEST").is_file()
}

/// A survivor with a log of its own (`n`: how many came before it).
fn survivor(s: &Scratch, program: &Path, n: u32) -> Workload {
    let w = spawn_to(
        s,
        program,
        &[ctl(s), MIB.into()],
        s.join(&format!("survivor{n}.log")),
    );
    wait_for_line(&w.log, "READY", TIMEOUT);
    w
}

/// One checkpoint that runs to its end: how long a checkpoint of the survivor takes.
fn measure(dir: &Path, pid: i32) -> Duration {
    let start = Instant::now();
    let out = cpr(&[
        "-c",
        &dir.join("ckpt").display().to_string(),
        "-p",
        &pid.to_string(),
        "-g",
    ]);
    assert_success(&out, "cpr -c -g of the survivor");
    start.elapsed()
}

/// cpr is SIGKILLed at KILLS points spread over a checkpoint (half with -g, half with
/// WILL EXIT): every time, the target runs on untraced, with its own registers, signal
/// mask and memory, and passes its self-check. (Only a WILL EXIT checkpoint that had
/// completed its statefile may have ended the target, as it should.)
#[test]
fn killed_cpr_leaves_its_target_running() {
    let _serial = serial();
    let s = Scratch::new();
    let program = build("survivor.c");
    let dir = s.join("statefiles");
    let mut spawned = 0;
    let mut w = survivor(&s, &program, spawned);
    fs::create_dir_all(&dir).unwrap();
    let full = measure(&dir, w.pid);
    let mut checks = 1;
    check(&w, checks);
    for i in 0..KILLS {
        fs::remove_dir_all(&dir).unwrap();
        fs::create_dir_all(&dir).unwrap();
        let cont = i % 2 == 0;
        // from the first moments (attaching) to just past the end
        let delay = full * (i + 1) / KILLS + Duration::from_millis(u64::from(i % 3));
        let complete = kill_checkpoint_after(&dir, w.pid, cont, delay);
        if complete && !cont && !is_alive(w.pid) {
            // WILL EXIT did its job before the kill: a fresh target for the next round
            wait_pid_gone(w.pid, TIMEOUT);
            spawned += 1;
            w = survivor(&s, &program, spawned);
            checks = 0;
        } else {
            wait_untraced(w.pid);
        }
        checks += 1;
        check(&w, checks);
    }
}

/// `cpr -c` of `idlist` fails naming `needle`, and `still` runs on untraced.
fn refused(s: &Scratch, idlist: &str, needle: &str, still: i32) {
    let sf = s.join("refused");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", idlist]);
    assert_failure(&out, &format!("cpr -c -p {idlist}"), &[needle], false);
    assert!(!sf.exists(), "a refused checkpoint left {}", sf.display());
    assert_running_untraced(still);
}

/// PID 1, however it is written, is refused before anything is attached.
#[test]
fn pid_1_is_refused_in_any_form() {
    let _serial = serial();
    let s = Scratch::new();
    for idlist in ["1", "0x1", "1:HID", "0X1:hid", "1:SGP"] {
        refused(
            &s,
            idlist,
            "process 1: Operation not permitted: it is init (PID 1)",
            1,
        );
    }
}

/// The init of a PID namespace (made with unshare) is refused, named alone or in its
/// tree, and runs on untouched.
#[test]
fn namespace_init_is_refused() {
    let _serial = serial();
    let s = Scratch::new();
    let program = build("survivor.c");
    let mut cmd = Command::new("unshare");
    cmd.args(["-fp", "--mount-proc"])
        .arg(&program)
        .arg(ctl(&s))
        .arg("1");
    let w = spawn_command(&s, cmd, s.join("out.log"));
    wait_for_line(&w.log, "READY", TIMEOUT);
    // the survivor says its PID in the namespace (1); its PID here is unshare's child
    let init = *s
        .processes()
        .iter()
        .find(|&&p| ppid(p) == Some(w.pid))
        .expect("the namespace's init");
    let why = "Operation not permitted: it is the init of its PID namespace";
    refused(&s, &init.to_string(), why, init);
    refused(&s, &format!("{}:HID", w.pid), why, init);
    // it still answers
    signal(init, Signal::SIGUSR1);
    wait_for_line(&w.log, "PASS check=1 ", TIMEOUT);
}

/// A process another tracer holds is refused with the tracer named, not with
/// "Operation not permitted" from ptrace; once that tracer is gone it checkpoints.
#[test]
fn a_traced_process_is_refused_naming_its_tracer() {
    let _serial = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("survivor.c"), &[ctl(&s), "1".into()]);
    let tracer = spawn_to(
        &s,
        &build("tracer.c"),
        &[ctl(&s), w.pid.to_string()],
        s.join("tracer.log"),
    );
    wait_for_line(&tracer.log, "READY", TIMEOUT);
    let sf = s.join("refused");
    let out = cpr(&["-c", &sf.display().to_string(), "-p", &w.pid.to_string()]);
    assert_failure(
        &out,
        "cpr -c of a traced process",
        &[&format!(
            "process {}: Resource busy: it is already being traced by process {} (tracer)",
            w.pid, tracer.pid
        )],
        false,
    );
    assert_eq!(proc_status(w.pid).map(|(_, t)| t), Some(tracer.pid));
    drop(tracer);
    wait_until("the tracer's end", TIMEOUT, || {
        proc_status(w.pid).is_some_and(|(_, t)| t == 0)
    });
    let out = cpr(&[
        "-c",
        &sf.display().to_string(),
        "-p",
        &w.pid.to_string(),
        "-g",
    ]);
    assert_success(&out, "cpr -c -g once the tracer is gone");
    check(&w, 1);
}

/// A tracer holding only one thread (not the main one) is named too.
#[test]
fn a_traced_thread_is_refused_naming_its_tracer() {
    let _serial = serial();
    let s = Scratch::new();
    let (w, _) = spawn_ready(&s, &build("survivor.c"), &[ctl(&s), "1".into()]);
    let thread: i32 = fs::read_dir(format!("/proc/{}/task", w.pid))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .find(|&t| t != w.pid)
        .expect("a second thread");
    let tracer = spawn_to(
        &s,
        &build("tracer.c"),
        &[ctl(&s), thread.to_string()],
        s.join("tracer.log"),
    );
    wait_for_line(&tracer.log, "READY", TIMEOUT);
    let out = cpr(&[
        "-c",
        &s.join("refused").display().to_string(),
        "-p",
        &w.pid.to_string(),
    ]);
    assert_failure(
        &out,
        "cpr -c of a process with a traced thread",
        &[&format!(
            "process {}: Resource busy: its thread {thread} is already being traced by process {} (tracer)",
            w.pid, tracer.pid
        )],
        false,
    );
    assert_running_untraced(w.pid);
}

/// IRIX IDs are shown back as they were typed.
#[test]
fn ash_is_echoed_as_typed() {
    for typed in ["4699:ASH", "0x125b:ASH"] {
        let out = cpr(&["-c", "/nonexistent/sf", "-p", typed]);
        assert_failure(
            &out,
            typed,
            &[&format!("-p {typed}: Invalid argument")],
            false,
        );
    }
}
