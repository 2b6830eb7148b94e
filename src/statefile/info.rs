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
    write_ipc(&mut out, statefile);
    write_sockets(&mut out, statefile);
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
    for (name, value) in crate::engine::objects::incremental::info_lines(statefile) {
        field(&name, &value);
    }
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
        let disposition = f.disposition.clone().unwrap_or_else(|| upper(&f.action));
        files.push_record([f.fd.to_string(), f.path.clone(), disposition]);
    }
    let table = files.build().with(Style::psql()).to_string();
    for line in table.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

/// A JSON index of the statefile (`rel`), if it holds one and it reads.
fn index(statefile: &Statefile, rel: &str) -> Option<Value> {
    statefile.entry(rel)?;
    statefile.read_json(rel).ok()
}

/// POSIX message queues (name, mode, owner, limits, messages) and SysV semaphore sets
/// (semid, key, values, undo adjustments), as the indexes give them.
fn ipc_summary(statefile: &Statefile) -> Value {
    let queues: Vec<Value> = index(statefile, super::layout::MQUEUE_INDEX)
        .and_then(|v| v.get("queues").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|q| {
            let count = q
                .get("messages")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            json!({
                "name": q.get("name"),
                "mode": q.get("mode").and_then(Value::as_u64).map(|m| format!("{m:04o}")),
                "uid": q.get("uid"),
                "gid": q.get("gid"),
                "maxmsg": q.get("maxmsg"),
                "msgsize": q.get("msgsize"),
                "messages": count,
                "removed": q.get("removed").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    let sets: Vec<Value> = index(statefile, super::layout::SEM_INDEX)
        .and_then(|v| v.get("sets").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            json!({
                "semid": s.get("semid"),
                "key": s.get("key"),
                "values": s.get("values"),
                "undo": s.get("undo").cloned().unwrap_or(json!([])),
            })
        })
        .collect();
    json!({ "posix_mqueues": queues, "sysv_semaphore_sets": sets })
}

fn write_ipc(out: &mut String, statefile: &Statefile) {
    let ipc = ipc_summary(statefile);
    let text = |v: Option<&Value>| v.map_or_else(String::new, |v| v.to_string());
    for q in ipc["posix_mqueues"].as_array().into_iter().flatten() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "POSIX message queue {}{}: mode {}, uid {}, gid {}, {} message(s) (at most {} of {} bytes)",
            q["name"].as_str().unwrap_or("?"),
            if q["removed"] == true {
                " (name removed)"
            } else {
                ""
            },
            q["mode"].as_str().unwrap_or("?"),
            text(q.get("uid")),
            text(q.get("gid")),
            text(q.get("messages")),
            text(q.get("maxmsg")),
            text(q.get("msgsize")),
        );
    }
    for s in ipc["sysv_semaphore_sets"].as_array().into_iter().flatten() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "SysV semaphore set semid {} (key {}): values {}",
            text(s.get("semid")),
            text(s.get("key")),
            text(s.get("values")),
        );
        for u in s["undo"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  undo adjustments of process {}: {}",
                text(u.get("pid")),
                text(u.get("adj")),
            );
        }
    }
}

/// The TCP and UDP sockets of the statefile with what restart makes of each.
fn inet_sockets(statefile: &Statefile) -> Vec<[String; 4]> {
    let table: Option<super::records::SharedTable> = statefile
        .read(super::layout::SHARED_TABLE)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    table.map_or(Vec::new(), |t| {
        t.inet_sockets
            .iter()
            .map(crate::engine::objects::inet_sockets::summary)
            .collect()
    })
}

fn write_sockets(out: &mut String, statefile: &Statefile) {
    let rows = inet_sockets(statefile);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Sockets:");
    let mut table = Builder::default();
    table.push_record(["SOCKET", "KIND", "ADDRESSES", "DISPOSITION"]);
    for r in rows {
        table.push_record(r);
    }
    for line in table.build().with(Style::psql()).to_string().lines() {
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
        "ipc": ipc_summary(statefile),
        "chain": crate::engine::objects::incremental::info_json(statefile),
        "sockets": inet_sockets(statefile)
            .into_iter()
            .map(|[socket, kind, addresses, disposition]| json!({
                "socket": socket,
                "kind": kind,
                "addresses": addresses,
                "disposition": disposition,
            }))
            .collect::<Vec<_>>(),
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
