//! The online help: one screen per panel and per widget (F1 or `?`), in our own words
//! after the guide's Appendix A.

/// The help screen for a widget: its own text, then its panel's.
pub fn screen(topic: &str, panel: &str) -> (&'static str, String) {
    let (title, own) = text(topic);
    let (_, whole) = text(panel);
    if own == whole {
        (title, own.to_string())
    } else {
        (title, format!("{own}\n\n{whole}"))
    }
}

/// The help of one widget or panel: its title and text.
fn text(topic: &str) -> (&'static str, &'static str) {
    match topic {
        "user" => ("Help: User", USER),
        "processes" => ("Help: Processes", PROCESSES),
        "type" => ("Help: Process type", TYPE),
        "options" => ("Help: Checkpoint options", CKPT_OPTIONS),
        "files" => ("Help: Open and mapped files", FILES),
        "statefile" => ("Help: Statefile name", STATEFILE),
        "path" => ("Help: Directory", PATH),
        "browser" => ("Help: Statefiles", BROWSER),
        "restart-options" => ("Help: Restart options", RESTART_OPTIONS),
        "restart" => ("Help: Restart panel", RESTART_PANEL),
        _ => ("Help: Checkpoint panel", CHECKPOINT_PANEL),
    }
}

const CHECKPOINT_PANEL: &str = "\
The checkpoint panel saves running processes into a statefile, as cpr -c does.
Step I: pick a process in the list and the process type: which processes the
        choice takes in is shown below the list, and marked * in it.
Step II: name the statefile.
Step III: set the options and, if you wish, the FILE disposition of each
        open or mapped file. Then OK (F5) checkpoints; Cancel (Esc) drops
        the choices.

Keys: Tab / Shift-Tab move between widgets; F2 checkpoint panel, F3 restart
panel; F1 or ? help on the widget in focus; F6 shows the attribute file made
from your choices; F7 previews the checkpoint without stopping anything (as
cpr -c --dry-run); F10 quits. cview follows the permission rules of cpr: you
may checkpoint only your own processes, root any.";

const USER: &str = "\
Whose processes the list shows. It starts as you. Root may type another user
name (or uid) and press Enter; Up and Down recall the names typed before.
Anyone else sees only their own processes, as cpr lets them checkpoint no
others.";

const PROCESSES: &str = "\
The processes of the user: USER PID PPID PGID SID COMMAND. Up/Down, PgUp/PgDn
choose a process; typing filters the list (any column containing the text);
Backspace undoes the filter; F4 switches between list and tree.

IRIX also shows JID (job) and ASH (array session) columns. Linux has neither,
so they are left out, and the types JID and ASH cannot be chosen.";

const TYPE: &str = "\
How the chosen process names what to checkpoint (Left/Right, or the letter):
  p PID  the process alone
  g GID  its whole process group
  s SID  its whole session
  h HID  the process and all its descendants
  S SGP  the processes sharing its address space
The line under the process list shows at once which processes that takes in,
as cpr would resolve it. JID and ASH (IRIX jobs and array sessions) do not
exist on Linux.";

const CKPT_OPTIONS: &str = "\
Up/Down choose an option, Space or Enter changes it.
  After checkpoint   exit (WILL EXIT), continue (-g, WILL CONT), kill (-k)
  Upgrade (-u)       also save programs and libraries, so that the processes
                     restart after a system upgrade replaced them
  Restart PID        FORK: the original PID, or any free one
  Working dir        CDIR: restore it (REPLACE), or use restart's (IGNORE)
  Root dir           RDIR: restore it (REPLACE), or use restart's (IGNORE)
  Replace statefile  -f: overwrite a statefile of the same name
'attr' means: as your attribute file ($HOME/.cpr, or the defaults) says.";

const FILES: &str = "\
The open files and mapped data files of the processes taken in, with the FILE
disposition each will get. Up/Down choose a file; the letter sets it:
  m MERGE       reopen it at restart at the saved offset (the default)
  i IGNORE      reopen it at offset zero, as it is then
  a APPEND      reopen it at its end
  r REPLACE     save its contents now and put them back at restart
  s SUBSTITUTE  save its contents now and give the process that copy
  d             back to what the attribute file says
Mapped data files are listed as (mapped): cpr maps them again at restart as
they are then; FILE dispositions apply to open files. Programs and libraries
are not listed: the upgrade option governs them.";

const STATEFILE: &str = "\
The name of the statefile directory to create. Tab completes directory names;
Up/Down recall earlier names; Enter checkpoints (as OK).";

const RESTART_PANEL: &str = "\
The restart panel restarts, inspects and removes statefiles, as cpr -r, -i and
-D do. Choose a statefile in the directory list (statefiles are marked SF),
set the options, then:
  F5 Restart        restart it; the processes run detached from cview
  F6 Tell me more   what the statefile holds (as cpr -i shows it)
  F8 Remove         delete it, after you confirm
Only the checkpoint owner or root may restart or remove a statefile.";

const PATH: &str = "\
The directory shown below. Type a path and press Enter; Tab completes
directory names; Up/Down recall the directories visited before.";

const BROWSER: &str = "\
Every file and directory here, with its owner and time of change; statefiles
are marked SF. Up/Down choose; Enter opens a directory (.. goes up) or tells
more about a statefile; typing a name's first letters jumps to it.";

const RESTART_OPTIONS: &str = "\
Up/Down choose, Space changes:
  Any process ID     give the processes any free PID (cpr -r --any-pid),
                     whatever the statefile's FORK policy says
  Keep working dir   do not restore the working directory (--no-cwd)
  Keep root dir      do not restore the root directory (--no-root)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_help_screen_fits_80_columns() {
        for topic in [
            "user",
            "processes",
            "type",
            "options",
            "files",
            "statefile",
            "path",
            "browser",
            "restart-options",
            "restart",
            "checkpoint",
        ] {
            let (title, text) = screen(topic, "checkpoint");
            for line in text.lines() {
                assert!(line.chars().count() <= 78, "{title}: {line}");
            }
        }
    }
}
