//! A checkpoint must never harm its target, even when cpr itself is killed at any moment,
//! and must refuse, before touching anything, the targets it cannot safely stop: PID 1,
//! the init of a PID namespace, a process another tracer holds.

mod common;

use std::fs;
use std::path::Path;
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
