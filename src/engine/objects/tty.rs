//! The terminal: at restart with `-j`, the restored processes get cpr's controlling
//! terminal, and cpr stands for them in the shell's job control.

/// cpr's controlling terminal (its standard input), if it has one.
pub fn controlling_tty() -> Option<String> {
    let t = std::fs::read_link("/proc/self/fd/0").ok()?;
    let s = t.to_string_lossy().into_owned();
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        Some(s)
    } else {
        None
    }
}

/// Makes the process group of `leader` the terminal's foreground group and returns it.
/// Called before the job is released too: a job that reads the terminal at once must
/// find itself in the foreground, or SIGTTIN stops it.
pub fn hand_over(leader: i32) -> nix::unistd::Pid {
    use nix::unistd::{Pid, tcsetpgrp};
    let job = nix::unistd::getpgid(Some(Pid::from_raw(leader))).unwrap_or(Pid::from_raw(leader));
    // ignoring SIGTTOU lets cpr hand the terminal over while not in the foreground
    let _ = crate::sys::ignore_signal(libc::SIGTTOU);
    let _ = tcsetpgrp(std::io::stdin(), job);
    job
}

/// Gives the terminal back to cpr's own process group (the job was not released).
pub fn take_back() {
    let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpgrp());
    let _ = crate::sys::default_signal(libc::SIGTTOU);
}

/// `-j`: the restored processes are the caller's foreground job, and cpr stands for
/// them in the shell's job control, as `sudo` or `script` do: when the job stops
/// (Ctrl-Z), cpr stops too, and when the shell continues cpr (`fg`), cpr gives the job
/// the terminal back and continues it. cpr ends with the status of the first process.
pub fn wait_foreground(roots: &[i32]) -> i32 {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{Pid, getpgrp, tcsetpgrp};
    let Some(&first) = roots.first() else {
        return 0;
    };
    let job = hand_over(first);
    let tty = std::io::stdin();
    let mut left: Vec<i32> = roots.to_vec();
    let mut status = 0;
    while !left.is_empty() {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::Exited(pid, c)) => {
                if pid.as_raw() == first {
                    status = c;
                }
                left.retain(|p| *p != pid.as_raw());
            }
            Ok(WaitStatus::Signaled(pid, s, _)) => {
                if pid.as_raw() == first {
                    status = 128 + s as i32;
                }
                left.retain(|p| *p != pid.as_raw());
            }
            Ok(WaitStatus::Stopped(..)) => {
                // the job stopped: so does cpr, with the terminal back to its shell
                let _ = tcsetpgrp(&tty, getpgrp());
                let _ = kill(nix::unistd::getpid(), Signal::SIGSTOP);
                // continued (fg): the job goes on in the foreground
                let _ = tcsetpgrp(&tty, job);
                let _ = killpg(job, Signal::SIGCONT);
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    let _ = tcsetpgrp(&tty, getpgrp());
    let _ = crate::sys::default_signal(libc::SIGTTOU);
    status
}
