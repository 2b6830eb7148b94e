//! `cpr -i`: what a statefile holds, as tables (tabled) or JSON.

use super::reader::Statefile;

/// Renders one statefile for `cpr -i`: revision, checkpoint time (local), and per process
/// the command line, PID/PPID, PGRP/SID, credentials, cwd, open files with dispositions.
pub fn render_text(statefile: &Statefile) -> String {
    todo!("issue 2 {}", statefile.path.display())
}

/// The same as JSON (one object per statefile).
pub fn render_json(statefile: &Statefile) -> serde_json::Value {
    todo!("issue 2 {}", statefile.path.display())
}
