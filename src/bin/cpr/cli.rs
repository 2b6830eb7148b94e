//! The command line of cpr(1), as clap structs, and its mapping to one [`Request`].
//!
//! What the user typed ([`Cli`]) is kept apart from what cpr is asked to do
//! ([`Request`]); neither touches the system. `main.rs` beside it calls the library with it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use cpr::attrfile::WillAction;

const USAGE: &str = "\
cpr -c STATEFILE -p IDLIST [-f] [-g|-k] [-u] [--compress] [--attributes FILE] [--timeout SECONDS] [-q]
       cpr -c STATEFILE -p IDLIST --dry-run [--json] [-f] [-g|-k] [-u] [--attributes FILE]
       cpr -r [-j] [-q] [--any-pid] [--no-cwd] [--no-root] [--lazy] STATEFILE...
       cpr -i [--json] STATEFILE...
       cpr -D STATEFILE...";

const AFTER_HELP: &str = "\
IDLIST is a comma-separated list of ID[:TYPE] designators; TYPE is PID (the default),
GID (process group), SID (session), HID (process tree) or SGP (processes sharing an
address space). ASH and JID are IRIX-only and refused.

Examples:
  cpr -c ckptSep7 -p 1111          checkpoint process 1111 into ckptSep7
  cpr -c ckptSep8 -p 1113,1225,1397:HID
  cpr -j -r ckptSep7               restart it as a foreground job
  cpr -i ckptSep7                  show what it holds
  cpr -D ckptSep7                  delete it

See cpr(1) and cpr(5).";

/// Checkpoint and restart running Linux processes (IRIX CPR compatible).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "cpr",
    version,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    group(ArgGroup::new("mode").required(true).multiple(false)
        .args(["checkpoint", "restart", "info", "delete"])),
    group(ArgGroup::new("shows_json").multiple(true).args(["info", "dry_run"])),
)]
pub struct Cli {
    /// Checkpoint the processes named by -p into the statefile directory STATEFILE.
    #[arg(short = 'c', long, value_name = "STATEFILE", requires = "idlist")]
    pub checkpoint: Option<PathBuf>,

    /// Restart the processes saved in each STATEFILE, all or none.
    #[arg(short = 'r', long)]
    pub restart: bool,

    /// Show what each STATEFILE holds.
    #[arg(short = 'i', long)]
    pub info: bool,

    /// Delete each STATEFILE (only its owner or root).
    #[arg(short = 'D', long)]
    pub delete: bool,

    /// With -c: the processes to checkpoint, as ID[:TYPE],... (see below).
    #[arg(
        short = 'p',
        value_name = "IDLIST",
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub idlist: Option<String>,

    /// With -c: replace an existing statefile.
    #[arg(
        short = 'f',
        long,
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub force: bool,

    /// With -c: let the processes continue after the checkpoint (WILL: CONT).
    #[arg(
        short = 'g',
        long = "continue",
        requires = "checkpoint",
        conflicts_with_all = ["kill", "restart", "info", "delete"],
    )]
    pub cont: bool,

    /// With -c: kill the processes after the checkpoint (WILL: KILL).
    #[arg(
        short = 'k',
        long,
        requires = "checkpoint",
        conflicts_with_all = ["cont", "restart", "info", "delete"],
    )]
    pub kill: bool,

    /// With -c: compress the page data (LZ4); worth it for memory that compresses.
    #[arg(
        long,
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub compress: bool,

    /// With -c: also save executables and libraries, for a restart after an upgrade.
    #[arg(
        short = 'u',
        long,
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub upgrade: bool,

    /// With -c: read policies from FILE instead of $HOME/.cpr (see cpr(5)).
    #[arg(
        long,
        value_name = "FILE",
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub attributes: Option<PathBuf>,

    /// With -c: wait at most SECONDS (default 60) for the SIGCKPT handlers of
    /// checkpoint-aware processes; a handler still running then fails the checkpoint.
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = parse_timeout,
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub timeout: Option<Duration>,

    /// With -c: an incremental checkpoint: save only the pages written since statefile
    /// OLD, an earlier checkpoint of the same processes taken with -g; restart finds the
    /// others in OLD and the statefiles it depends on.
    #[arg(
        long,
        value_name = "OLD",
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub parent: Option<PathBuf>,

    /// With -c: tell what the checkpoint would take in and whether it would succeed,
    /// without stopping the processes; exit status 0 if it would, 1 if not.
    #[arg(
        long = "dry-run",
        requires = "checkpoint",
        conflicts_with_all = ["restart", "info", "delete"],
    )]
    pub dry_run: bool,

    /// With -c or -r: no progress bar, even on a terminal.
    #[arg(short = 'q', long, conflicts_with_all = ["info", "delete"])]
    pub quiet: bool,

    /// With -r: restart as an interactive, job-controlled foreground job.
    #[arg(
        short = 'j',
        long,
        requires = "restart",
        conflicts_with_all = ["checkpoint", "info", "delete"],
    )]
    pub interactive: bool,

    /// With -r: give each process any free process ID (FORK ANY), whatever the
    /// statefile's FORK policy says.
    #[arg(
        long,
        requires = "restart",
        conflicts_with_all = ["checkpoint", "info", "delete"],
    )]
    pub any_pid: bool,

    /// With -r: do not restore the working directory; the processes start in cpr's
    /// (CDIR IGNORE, whatever the statefile says).
    #[arg(
        long,
        requires = "restart",
        conflicts_with_all = ["checkpoint", "info", "delete"],
    )]
    pub no_cwd: bool,

    /// With -r: do not restore the root directory; the processes keep cpr's (RDIR
    /// IGNORE, whatever the statefile says).
    #[arg(
        long,
        requires = "restart",
        conflicts_with_all = ["checkpoint", "info", "delete"],
    )]
    pub no_root: bool,

    /// With -r: return as soon as the processes run; their memory is filled on demand
    /// and in the background by a filler process (see cpr(1) for what happens if it
    /// dies).
    #[arg(
        long,
        requires = "restart",
        conflicts_with_all = ["checkpoint", "info", "delete"],
    )]
    pub lazy: bool,

    /// With -i: print a JSON array, one object per statefile. With --dry-run: print
    /// the preview as one JSON object.
    #[arg(
        long,
        requires = "shows_json",
        conflicts_with_all = ["restart", "delete"],
    )]
    pub json: bool,

    /// The statefiles for -r, -i and -D.
    #[arg(
        value_name = "STATEFILE",
        required_if_eq_any = [("restart", "true"), ("info", "true"), ("delete", "true")],
        conflicts_with = "checkpoint"
    )]
    pub statefiles: Vec<PathBuf>,
}

/// What cpr is asked to do, once the command line is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Checkpoint(CheckpointRequest),
    /// `-c --dry-run`: what the checkpoint would do; `json` for `--json`.
    Preview {
        request: CheckpointRequest,
        json: bool,
    },
    Restart {
        statefiles: Vec<PathBuf>,
        interactive: bool,
        /// `--any-pid`, `--no-cwd`, `--no-root`: FORK ANY, CDIR and RDIR IGNORE.
        any_pid: bool,
        no_cwd: bool,
        no_root: bool,
        /// `--lazy`: memory filled after release.
        lazy: bool,
    },
    Info {
        statefiles: Vec<PathBuf>,
        json: bool,
    },
    Delete {
        statefiles: Vec<PathBuf>,
    },
}

/// `-c`: everything of [`cpr::ops::CheckpointOptions`] but the attribute file, which
/// is read only when the request is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRequest {
    pub statefile: PathBuf,
    pub idlist: String,
    pub force: bool,
    pub will: Option<WillAction>,
    pub upgrade: bool,
    /// `--attributes FILE`; `None` means `$HOME/.cpr` or the built-in defaults.
    pub attributes: Option<PathBuf>,
    /// `--timeout SECONDS`: how long SIGCKPT handlers may take.
    pub handler_timeout: Option<Duration>,
    /// `--parent OLD`: an incremental checkpoint after statefile OLD.
    pub parent: Option<PathBuf>,
    /// `--compress`: page data compressed.
    pub compress: bool,
}

/// `--timeout`: a positive number of seconds, fractions allowed (`0.5`), at most a day.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86400.0) {
        return Err(format!(
            "'{text}': give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Cli {
    /// Maps a parsed command line to its request. Clap has enforced the rules (one mode,
    /// -p with -c, ...), so this cannot fail.
    pub fn request(self) -> Request {
        if let Some(statefile) = self.checkpoint {
            let will = if self.cont {
                Some(WillAction::Cont)
            } else if self.kill {
                Some(WillAction::Kill)
            } else {
                None
            };
            let request = CheckpointRequest {
                statefile,
                idlist: self.idlist.unwrap_or_default(),
                force: self.force,
                will,
                upgrade: self.upgrade,
                attributes: self.attributes,
                handler_timeout: self.timeout,
                parent: self.parent,
                compress: self.compress,
            };
            if self.dry_run {
                Request::Preview {
                    request,
                    json: self.json,
                }
            } else {
                Request::Checkpoint(request)
            }
        } else if self.restart {
            Request::Restart {
                statefiles: self.statefiles,
                interactive: self.interactive,
                any_pid: self.any_pid,
                no_cwd: self.no_cwd,
                no_root: self.no_root,
                lazy: self.lazy,
            }
        } else if self.info {
            Request::Info {
                statefiles: self.statefiles,
                json: self.json,
            }
        } else {
            Request::Delete {
                statefiles: self.statefiles,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Request, clap::Error> {
        let argv = std::iter::once("cpr").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(Cli::request)
    }

    fn usage_error(args: &[&str]) -> String {
        let err = parse(args).expect_err("a usage error");
        assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        assert_eq!(err.exit_code(), 2, "{args:?}");
        err.to_string()
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn checkpoint_short_and_long_forms() {
        let plain = CheckpointRequest {
            statefile: "ckptSep7".into(),
            idlist: "1111".into(),
            force: false,
            will: None,
            upgrade: false,
            attributes: None,
            handler_timeout: None,
            parent: None,
            compress: false,
        };
        assert_eq!(
            parse(&["-c", "ckptSep7", "-p", "1111"]).unwrap(),
            Request::Checkpoint(plain.clone())
        );
        let all = CheckpointRequest {
            force: true,
            will: Some(WillAction::Cont),
            upgrade: true,
            attributes: Some("my.cpr".into()),
            idlist: "1113,1225,1397:HID".into(),
            ..plain.clone()
        };
        assert_eq!(
            parse(&[
                "-c",
                "ckptSep7",
                "-p",
                "1113,1225,1397:HID",
                "-f",
                "-g",
                "-u",
                "--attributes",
                "my.cpr"
            ])
            .unwrap(),
            Request::Checkpoint(all.clone())
        );
        assert_eq!(
            parse(&[
                "--checkpoint=ckptSep7",
                "-p1113,1225,1397:HID",
                "--force",
                "--continue",
                "--upgrade",
                "--attributes=my.cpr"
            ])
            .unwrap(),
            Request::Checkpoint(all)
        );
        let kill = CheckpointRequest {
            will: Some(WillAction::Kill),
            ..plain.clone()
        };
        assert_eq!(
            parse(&["-c", "ckptSep7", "-p", "1111", "--compress"]).unwrap(),
            Request::Checkpoint(CheckpointRequest {
                compress: true,
                ..plain.clone()
            })
        );
        assert_eq!(
            parse(&["-kc", "ckptSep7", "-p", "1111"]).unwrap(),
            Request::Checkpoint(kill.clone())
        );
        assert_eq!(
            parse(&["-p", "1111", "--kill", "--checkpoint", "ckptSep7"]).unwrap(),
            Request::Checkpoint(kill)
        );
    }

    #[test]
    fn dry_run_is_a_preview_of_the_same_checkpoint() {
        let request = CheckpointRequest {
            statefile: "ck".into(),
            idlist: "12:HID".into(),
            force: true,
            will: Some(WillAction::Kill),
            upgrade: false,
            attributes: None,
            handler_timeout: None,
            parent: None,
            compress: false,
        };
        assert_eq!(
            parse(&["-c", "ck", "-p", "12:HID", "-f", "-k", "--dry-run"]).unwrap(),
            Request::Preview {
                request: request.clone(),
                json: false
            }
        );
        assert_eq!(
            parse(&[
                "--dry-run",
                "--json",
                "-c",
                "ck",
                "-p",
                "12:HID",
                "-f",
                "-k"
            ])
            .unwrap(),
            Request::Preview {
                request,
                json: true
            }
        );
        // --json shows data for -i and --dry-run only; --dry-run belongs to -c
        let e = usage_error(&["-c", "ck", "-p", "1", "--json"]);
        assert!(e.contains("--json"), "{e}");
        let e = usage_error(&["-r", "--dry-run", "x"]);
        assert!(e.contains("--dry-run"), "{e}");
    }

    #[test]
    fn quiet_goes_with_checkpoint_and_restart() {
        assert!(parse(&["-q", "-c", "ck", "-p", "1"]).is_ok());
        assert!(parse(&["-r", "-q", "ck"]).is_ok());
        let e = usage_error(&["-i", "-q", "ck"]);
        assert!(e.contains("--quiet"), "{e}");
    }

    #[test]
    fn timeout_is_seconds_for_checkpoint_only() {
        let Request::Checkpoint(r) = parse(&["-c", "x", "-p", "1", "--timeout", "2.5"]).unwrap()
        else {
            panic!("not a checkpoint");
        };
        assert_eq!(r.handler_timeout, Some(Duration::from_millis(2500)));
        for bad in ["0", "-1", "soon", "1e9"] {
            let e = usage_error(&["-c", "x", "-p", "1", "--timeout", bad]);
            assert!(e.contains("--timeout"), "{bad}: {e}");
        }
        let e = usage_error(&["-r", "--timeout", "5", "x"]);
        assert!(e.contains("--timeout"), "{e}");
    }

    #[test]
    fn restart_info_delete_take_several_statefiles() {
        assert_eq!(
            parse(&["-j", "-r", "ckptSep7"]).unwrap(),
            Request::Restart {
                statefiles: paths(&["ckptSep7"]),
                interactive: true,
                any_pid: false,
                no_cwd: false,
                no_root: false,
                lazy: false,
            }
        );
        assert_eq!(
            parse(&["--restart", "a", "b", "--interactive", "c"]).unwrap(),
            Request::Restart {
                statefiles: paths(&["a", "b", "c"]),
                interactive: true,
                any_pid: false,
                no_cwd: false,
                no_root: false,
                lazy: false,
            }
        );
        assert_eq!(
            parse(&["-r", "a", "b"]).unwrap(),
            Request::Restart {
                statefiles: paths(&["a", "b"]),
                interactive: false,
                any_pid: false,
                no_cwd: false,
                no_root: false,
                lazy: false,
            }
        );
        assert_eq!(
            parse(&["-r", "--any-pid", "--no-cwd", "--no-root", "a"]).unwrap(),
            Request::Restart {
                statefiles: paths(&["a"]),
                interactive: false,
                any_pid: true,
                no_cwd: true,
                no_root: true,
                lazy: false,
            }
        );
        assert_eq!(
            parse(&["-r", "--lazy", "a"]).unwrap(),
            Request::Restart {
                statefiles: paths(&["a"]),
                interactive: false,
                any_pid: false,
                no_cwd: false,
                no_root: false,
                lazy: true,
            }
        );
        for flag in ["--any-pid", "--no-cwd", "--no-root", "--lazy"] {
            let e = usage_error(&["-c", "x", "-p", "1", flag]);
            assert!(e.contains(flag), "{flag}: {e}");
            let e = usage_error(&["-i", flag, "x"]);
            assert!(e.contains(flag), "{flag}: {e}");
        }
        assert_eq!(
            parse(&["-i", "a", "b"]).unwrap(),
            Request::Info {
                statefiles: paths(&["a", "b"]),
                json: false
            }
        );
        assert_eq!(
            parse(&["--info", "--json", "a"]).unwrap(),
            Request::Info {
                statefiles: paths(&["a"]),
                json: true
            }
        );
        assert_eq!(
            parse(&["-D", "a", "b"]).unwrap(),
            Request::Delete {
                statefiles: paths(&["a", "b"])
            }
        );
        assert_eq!(
            parse(&["--delete", "--", "-odd-name"]).unwrap(),
            Request::Delete {
                statefiles: paths(&["-odd-name"])
            }
        );
    }

    #[test]
    fn exactly_one_mode() {
        let none = usage_error(&["ckptSep7"]);
        assert!(none.contains("--checkpoint"), "{none}");
        assert!(none.contains("--restart"), "{none}");
        let two = usage_error(&["-c", "x", "-p", "1", "-r"]);
        assert!(two.contains("--restart"), "{two}");
        assert!(two.contains("--checkpoint"), "{two}");
        let two = usage_error(&["-i", "-D", "x"]);
        assert!(two.contains("--info") && two.contains("--delete"), "{two}");
        let empty = usage_error(&[]);
        assert!(empty.contains("--checkpoint"), "{empty}");
    }

    #[test]
    fn checkpoint_options_need_checkpoint() {
        let e = usage_error(&["-c", "x"]);
        assert!(e.contains("-p"), "{e}");
        let e = usage_error(&["-p", "1"]);
        assert!(e.contains("--checkpoint"), "{e}");
        let e = usage_error(&["-r", "-p", "1", "x"]);
        assert!(e.contains("-p") && e.contains("--restart"), "{e}");
        for flag in ["-f", "-g", "-k", "-u"] {
            let e = usage_error(&["-r", flag, "x"]);
            assert!(e.contains("--restart"), "{flag}: {e}");
        }
        let e = usage_error(&["-i", "--attributes", "f", "x"]);
        assert!(e.contains("--attributes"), "{e}");
        let e = usage_error(&["-c", "x", "-p", "1", "-g", "-k"]);
        assert!(e.contains("--continue") && e.contains("--kill"), "{e}");
        let e = usage_error(&["-c", "x", "-p", "1", "y"]);
        assert!(e.contains("STATEFILE"), "{e}");
    }

    #[test]
    fn restart_and_info_flags_stay_with_their_mode() {
        let e = usage_error(&["-j", "-c", "x", "-p", "1"]);
        assert!(
            e.contains("--interactive") && e.contains("--checkpoint"),
            "{e}"
        );
        let e = usage_error(&["-j", "-i", "x"]);
        assert!(e.contains("--interactive") && e.contains("--info"), "{e}");
        let e = usage_error(&["--json", "-r", "x"]);
        assert!(e.contains("--json") && e.contains("--restart"), "{e}");
        let e = usage_error(&["--json", "-D", "x"]);
        assert!(e.contains("--json") && e.contains("--delete"), "{e}");
    }

    #[test]
    fn modes_without_statefiles_are_usage_errors() {
        for mode in ["-r", "-i", "-D"] {
            let e = usage_error(&[mode]);
            assert!(e.contains("STATEFILE"), "{mode}: {e}");
        }
    }

    #[test]
    fn help_and_version_are_not_errors() {
        let help = parse(&["-h"]).unwrap_err();
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
        let text = help.to_string();
        for opt in [
            "--checkpoint",
            "--restart",
            "--info",
            "--delete",
            "--force",
            "--continue",
            "--kill",
            "--interactive",
            "--any-pid",
            "--no-cwd",
            "--no-root",
            "--upgrade",
            "--json",
            "--attributes",
            "--timeout",
            "-p <IDLIST>",
        ] {
            assert!(text.contains(opt), "help lacks {opt}:\n{text}");
        }
        let version = parse(&["--version"]).unwrap_err();
        assert_eq!(version.kind(), ErrorKind::DisplayVersion);
    }
}
