//! cpr(1): parse, call the library, print an error once, exit.
//!
//! Exit status: 0 when every operation succeeded, 1 when any failed, 2 for a usage error
//! (clap prints those itself).

mod cli;
mod progress_bar;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use cli::{CheckpointRequest, Cli, Request};
use cpr::attrfile::AttrFile;
use cpr::error::{Error, Result};
use cpr::ops::{self, CheckpointOptions, Preview, Progress, RestartOptions};
use cpr::statefile::{self, Statefile, reader::Verify};

fn main() -> ExitCode {
    // an installed cpr run by a user keeps only the capabilities it was installed with
    if let Err(e) = cpr::engine::privilege::limit() {
        eprintln!("cpr: {e}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let progress = progress(cli.quiet);
    let request = cli.request();
    if matches!(request, Request::Info { .. } | Request::Delete { .. }) {
        // -i and -D read and remove files with the user's rights alone
        cpr::engine::privilege::drop_all();
    }
    let mut job_status = 0;
    let failures = match request {
        Request::Checkpoint(request) => checkpoint(request, &progress).err().into_iter().collect(),
        Request::Preview { request, json } => preview(request, json),
        Request::Restart {
            statefiles,
            interactive,
            any_pid,
            no_cwd,
            no_root,
            lazy,
        } => match ops::restart_with_progress(
            &RestartOptions {
                statefiles,
                interactive,
                any_pid,
                no_cwd,
                no_root,
                lazy,
            },
            &progress,
        ) {
            // with -j, cpr ends as the job it stood for did
            Ok(status) => {
                job_status = status;
                Vec::new()
            }
            Err(e) => vec![e],
        },
        Request::Info { statefiles, json } => info(&statefiles, json),
        Request::Delete { statefiles } => statefiles
            .iter()
            .filter_map(|path| statefile::remove(path, ops::caller_uid()).err())
            .collect(),
    };
    for error in &failures {
        eprintln!("cpr: {error}");
    }
    if failures.is_empty() {
        ExitCode::from(job_status.clamp(0, 255) as u8)
    } else {
        ExitCode::FAILURE
    }
}

/// `-c`: reads the attribute file and hands over to the library, which resolves the
/// designators first. Quiet on success, as IRIX.
fn checkpoint(request: CheckpointRequest, progress: &Progress) -> Result<()> {
    ops::checkpoint_with_progress(&checkpoint_options(request)?, progress)?;
    Ok(())
}

/// A progress bar when standard error is a terminal and `-q` was not given.
fn progress(quiet: bool) -> Progress {
    if quiet || !std::io::stderr().is_terminal() {
        return Progress::none();
    }
    Progress::new(std::sync::Arc::new(progress_bar::Bar::new()))
}

/// `-c --dry-run`: the preview on standard output; each refusal is also one error line,
/// as the checkpoint would print it (exit status 1).
fn preview(request: CheckpointRequest, json: bool) -> Vec<Error> {
    let statefile = request.statefile.clone();
    let preview = match checkpoint_options(request).and_then(|o| ops::preview(&o)) {
        Ok(p) => p,
        // with --json, standard output is JSON whatever happens
        Err(e) if json => Preview::failed(&statefile, &e),
        Err(e) => return vec![e],
    };
    let text = if json {
        let mut text = serde_json::to_string_pretty(&preview).expect("a preview serializes");
        text.push('\n');
        text
    } else {
        preview.render_text()
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return vec![Error::io("standard output", e)];
    }
    preview.refusals.iter().map(|r| r.to_error()).collect()
}

/// The options of `-c`, with the attribute file read.
fn checkpoint_options(request: CheckpointRequest) -> Result<CheckpointOptions> {
    let attributes = match &request.attributes {
        Some(path) => load_attributes(path)?,
        None => AttrFile::load_default()?,
    };
    Ok(CheckpointOptions {
        statefile: request.statefile,
        idlist: request.idlist,
        force: request.force,
        will: request.will,
        upgrade: request.upgrade,
        attributes: Some(attributes),
        handler_timeout: request.handler_timeout,
        openfile_distribute: false,
        parent: request.parent,
        compress: request.compress,
    })
}

/// `--attributes FILE`: read as the library reads it (a regular file, not a link).
fn load_attributes(path: &Path) -> Result<AttrFile> {
    AttrFile::load(path)
}

/// `-i`: every statefile that opens is shown; each one that does not is one error.
fn info(statefiles: &[PathBuf], json: bool) -> Vec<Error> {
    let mut failures = Vec::new();
    let mut shown = Vec::new();
    for path in statefiles {
        match Statefile::open(path, Verify::Sizes) {
            Ok(sf) => shown.push(sf),
            Err(e) => failures.push(e),
        }
    }
    let text = if json {
        let values: Vec<_> = shown.iter().map(statefile::info::render_json).collect();
        let mut text = serde_json::to_string_pretty(&values).expect("JSON values serialize");
        text.push('\n');
        text
    } else {
        let pages: Vec<_> = shown.iter().map(statefile::info::render_text).collect();
        pages
            .iter()
            .map(|p| p.trim_end_matches('\n'))
            .collect::<Vec<_>>()
            .join("\n\n")
            + if pages.is_empty() { "" } else { "\n" }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A closed pipe (`cpr -i x | head`) is not worth a complaint.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            failures.push(Error::io("standard output", e));
        }
    }
    failures
}
