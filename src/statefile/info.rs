//! `cpr -i`: what a statefile holds, as tables (tabled) or JSON.

use std::fmt::Write as _;

use chrono::{DateTime, Local};
use nix::unistd::{Gid, Group, Uid, User};
use serde_json::{Value, json};
use tabled::builder::Builder;
use tabled::settings::Style;

use super::format::{Manifest, ProcessSummary};
use super::reader::Statefile;

/// Renders one statefile for `cpr -i`: revision, checkpoint time (local), and per process
/// the command line, PID/PPID, PGRP/SID, credentials, cwd, open files with dispositions.
pub fn render_text(statefile: &Statefile) -> String {
    let m = &statefile.manifest;
    let mut out = String::new();
    write_header(&mut out, statefile);
    if !m.processes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", process_table(&m.processes));
    }
    for p in &m.processes {
        write_process(&mut out, p);
    }
    // Tables pad their last column; keep lines clean for diff and grep.
    let mut clean = String::with_capacity(out.len());
    for line in out.lines() {
        clean.push_str(line.trim_end());
        clean.push('\n');
    }
    clean
}

/// The statefile's own fields, one per line.
fn write_header(out: &mut String, statefile: &Statefile) {
    let m = &statefile.manifest;
    let _ = writeln!(out, "Statefile: {}", statefile.path.display());
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "  {:<15} {value}", format!("{name}:"));
    };
    field(
        "Revision",
        &format!("{} (cpr {})", m.revision, m.cpr_version),
    );
    field("Checkpointed", &local_time(&m.created));
    field("Host", &format!("{} (kernel {})", m.host, m.kernel));
    field(
        "Owner",
        &format!(
            "uid {}, gid {}",
            with_name(m.owner.uid, user_name(m.owner.uid)),
            with_name(m.owner.gid, group_name(m.owner.gid))
        ),
    );
    field("Designators", &m.designators);
    field("WILL", &upper(&m.flags.will));
    field("Upgrade (-u)", if m.flags.upgrade { "yes" } else { "no" });
    field("Processes", &m.processes.len().to_string());
    let size = total_size(statefile);
    field("Size", &format!("{} ({size} bytes)", human(size)));
    if let Some(c) = &m.flags.compression {
        let stored = stored_page_bytes(statefile);
        field(
            "Page data",
            &format!(
                "{} compressed ({}) to {}, ratio {}",
                human(c.raw_bytes),
                c.method,
                human(stored),
                ratio(c.raw_bytes, stored)
            ),
        );
    }
}

/// Bytes of the processes' page files as stored.
fn stored_page_bytes(statefile: &Statefile) -> u64 {
    statefile
        .manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("proc/") && f.path.ends_with("/pages"))
        .fold(0u64, |sum, f| sum.saturating_add(f.size))
}

/// `raw / stored` with two decimals ("-" for nothing stored).
fn ratio(raw: u64, stored: u64) -> String {
    if stored == 0 {
        "-".to_string()
    } else {
        format!("{:.2}", raw as f64 / stored as f64)
    }
}

/// One row per process: IDs, credentials, threads, directory, command line.
fn process_table(processes: &[ProcessSummary]) -> String {
    let mut table = Builder::default();
    table.push_record([
        "PID", "PPID", "PGRP", "SID", "UID", "GID", "THREADS", "CWD", "COMMAND",
    ]);
    for p in processes {
        table.push_record([
            p.pid.to_string(),
            p.ppid.to_string(),
            p.pgid.to_string(),
            p.sid.to_string(),
            format!("{}/{}", p.uids[0], p.uids[1]),
            format!("{}/{}", p.gids[0], p.gids[1]),
            p.threads.to_string(),
            p.cwd.clone(),
            command_line(p),
        ]);
    }
    table.build().with(Style::psql()).to_string()
}

/// A process's policies, root and open files with their dispositions.
fn write_process(out: &mut String, p: &ProcessSummary) {
    let _ = writeln!(out);
    let _ = writeln!(out, "Process {} ({}):", p.pid, p.command);
    let pol = &p.policies;
    let _ = writeln!(
        out,
        "  Policies: WILL {}, CDIR {}, RDIR {}, FORK {}",
        upper(&pol.will),
        upper(&pol.cdir),
        upper(&pol.rdir),
        upper(&pol.fork)
    );
    if !pol.files.is_empty() {
        let rules: Vec<String> = pol
            .files
            .iter()
            .map(|r| match &r.pattern {
                Some(g) => format!("\"{g}\" {}", upper(&r.action)),
                None => format!("(any) {}", upper(&r.action)),
            })
            .collect();
        let _ = writeln!(out, "  FILE rules: {}", rules.join(", "));
    }
    if p.root != "/" && !p.root.is_empty() {
        let _ = writeln!(out, "  Root: {}", p.root);
    }
    if p.open_files.is_empty() {
        let _ = writeln!(out, "  No open files");
        return;
    }
    let mut files = Builder::default();
    files.push_record(["FD", "PATH", "DISPOSITION"]);
    for f in &p.open_files {
        files.push_record([f.fd.to_string(), f.path.clone(), upper(&f.action)]);
    }
    let table = files.build().with(Style::psql()).to_string();
    for line in table.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

/// The same as JSON (one object per statefile).
pub fn render_json(statefile: &Statefile) -> Value {
    let m = &statefile.manifest;
    let processes: Vec<Value> = m
        .processes
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("command_line".into(), Value::String(command_line(p)));
            }
            v
        })
        .collect();
    let mut out = json!({
        "statefile": statefile.path.display().to_string(),
        "revision": m.revision,
        "cpr_version": m.cpr_version,
        "created": m.created,
        "created_local": local_time(&m.created),
        "host": m.host,
        "kernel": m.kernel,
        "owner": {
            "uid": m.owner.uid,
            "gid": m.owner.gid,
            "user": user_name(m.owner.uid),
            "group": group_name(m.owner.gid),
        },
        "designators": m.designators,
        "will": upper(&m.flags.will),
        "upgrade": m.flags.upgrade,
        "process_count": m.processes.len(),
        "total_size": total_size(statefile),
        "processes": processes,
    });
    if let (Some(c), Value::Object(map)) = (&m.flags.compression, &mut out) {
        let stored = stored_page_bytes(statefile);
        map.insert(
            "compression".into(),
            json!({
                "method": c.method,
                "raw_bytes": c.raw_bytes,
                "stored_bytes": stored,
                "ratio": ratio(c.raw_bytes, stored),
            }),
        );
    }
    out
}

/// RFC 3339 → local time; an unreadable time is shown as stored.
fn local_time(created: &str) -> String {
    match DateTime::parse_from_rfc3339(created) {
        Ok(t) => t
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S %z")
            .to_string(),
        Err(_) => created.to_string(),
    }
}

/// `Merge` → `MERGE`, as the attribute file spells policies.
fn upper<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}").to_uppercase()
}

fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

fn with_name(id: u32, name: Option<String>) -> String {
    match name {
        Some(n) => format!("{id} ({n})"),
        None => id.to_string(),
    }
}

/// The argument list, or `[comm]` as ps shows a process without one.
fn command_line(p: &ProcessSummary) -> String {
    if p.args.is_empty() {
        format!("[{}]", p.command)
    } else {
        p.args.join(" ")
    }
}

/// Bytes of every listed file plus the MANIFEST.
fn total_size(statefile: &Statefile) -> u64 {
    let m: &Manifest = &statefile.manifest;
    let files = m
        .files
        .iter()
        .fold(0u64, |sum, f| sum.saturating_add(f.size));
    let manifest = std::fs::metadata(statefile.manifest_path())
        .map(|md| md.len())
        .unwrap_or(0);
    files.saturating_add(manifest)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }

    #[test]
    fn bad_time_is_shown_as_stored() {
        assert_eq!(local_time("yesterday"), "yesterday");
        assert!(local_time("2024-09-07T12:00:00Z").starts_with("2024-09-0"));
    }
}
