//! The files a process's memory comes from (its executable, shared libraries, other
//! mapped files): what they were at checkpoint, so that restart can tell when one has
//! changed or gone ("component unavailable"), and with `cpr -u` (upgrade) a saved copy
//! of each executable mapping to use instead. At restart, the list of files the restore
//! child opens for memory.rs to map.

use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use super::memory::{Backing, Vma};
use crate::error::{Context, Error, Kind, Result};
use crate::statefile::{Statefile, StatefileWriter};

/// One mapped file as it was at checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    /// The statefile's copy (`cpr -u`).
    pub saved: Option<String>,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64, u64, i128) {
    (
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    )
}

/// Records every file the process maps; with `upgrade`, saves a copy of those mapped
/// executable (program and libraries), read through /proc/PID/map_files so that the
/// copy is the very file in use even if its path has been replaced already.
pub fn dump(
    pid: i32,
    vmas: &[Vma],
    upgrade: bool,
    writer: &mut StatefileWriter,
    saved_paths: &mut Vec<(String, String)>,
) -> Result<Vec<Component>> {
    let mut out = identify(pid, vmas)?;
    if !upgrade {
        return Ok(out);
    }
    for v in vmas.iter().filter(|v| v.prot & libc::PROT_EXEC != 0) {
        let Backing::File { path, .. } = &v.backing else {
            continue;
        };
        if let Some(c) = out
            .iter_mut()
            .find(|c| &c.path == path && c.saved.is_none())
        {
            c.saved = Some(save(pid, v, path, writer, saved_paths)?);
        }
    }
    Ok(out)
}

/// The programs and libraries of a process (the files with an executable mapping; data
/// files mapped are governed by the FILE policies, like open files), each identified
/// through /proc/PID/map_files as the very file in use. Reads /proc only: `cpr -c
/// --dry-run` makes the same check on a running process.
pub fn identify(pid: i32, vmas: &[Vma]) -> Result<Vec<Component>> {
    let mut out: Vec<Component> = Vec::new();
    let programs: Vec<&String> = vmas
        .iter()
        .filter_map(|v| match &v.backing {
            Backing::File { path, .. } if v.prot & libc::PROT_EXEC != 0 => Some(path),
            _ => None,
        })
        .collect();
    for v in vmas {
        let Backing::File { path, .. } = &v.backing else {
            continue;
        };
        if !programs.contains(&path) || out.iter().any(|c| &c.path == path) {
            continue;
        }
        let meta = crate::engine::privilege::mapped_file_metadata(pid, v.start, v.end, path)?;
        let (dev, ino, size, mtime_ns) = identity(&meta);
        out.push(Component {
            path: path.clone(),
            dev,
            ino,
            size,
            mtime_ns,
            saved: None,
        });
    }
    Ok(out)
}

fn save(
    pid: i32,
    v: &Vma,
    path: &str,
    writer: &mut StatefileWriter,
    saved_paths: &mut Vec<(String, String)>,
) -> Result<String> {
    // one copy per file for the whole statefile
    if let Some((_, rel)) = saved_paths.iter().find(|(p, _)| p == path) {
        return Ok(rel.clone());
    }
    let rel = crate::statefile::layout::upgrade_copy_path(saved_paths.len());
    let mut src = crate::engine::privilege::open_mapped_file(pid, v.start, v.end, path)?;
    let mut sink = writer.create_file(&rel)?;
    // PR_SET_MM_MAP takes the copy as the process's executable only if it may be
    // executed (EACCES otherwise, even for root): owner-only, like the rest
    sink.file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .ctx(format!("saving {path}"))?;
    std::io::copy(&mut src, &mut sink).ctx(format!("saving {path}"))?;
    writer.finish_file(sink)?;
    saved_paths.push((path.to_string(), rel.clone()));
    Ok(rel)
}

/// The path restart maps for `path`: the file itself while it is the one the process
/// had, else the saved copy; neither is "component unavailable".
pub fn resolve(components: &[Component], path: &str, sf: &Statefile) -> Result<String> {
    let Some(c) = components.iter().find(|c| c.path == path) else {
        return Ok(path.to_string());
    };
    let unchanged = std::fs::metadata(path)
        .map(|m| identity(&m) == (c.dev, c.ino, c.size, c.mtime_ns))
        .unwrap_or(false);
    if unchanged {
        return Ok(path.to_string());
    }
    match &c.saved {
        Some(rel) => Ok(sf.file(rel)?.to_string_lossy().into_owned()),
        None => Err(Error::with_detail(
            path.to_string(),
            Kind::CheckpointError,
            "component unavailable: the file changed or went away since the checkpoint (checkpoint with cpr -u to keep copies of programs and libraries)",
        )),
    }
}

/// A file a mapping needs, opened by the restore child before it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    pub path: String,
    pub writable: bool,
}

/// The files the image maps, each once, in a stable order.
pub fn list(vmas: &[Vma]) -> Vec<MappedFile> {
    let mut out: Vec<MappedFile> = Vec::new();
    for v in vmas {
        if let Backing::File { path, .. } = &v.backing {
            // a shared mapping that may become writable needs a read-write descriptor
            let writable = v.shared && (v.prot & libc::PROT_WRITE != 0 || v.has_flag("mw"));
            match out.iter_mut().find(|f| &f.path == path) {
                Some(f) => f.writable |= writable,
                None => out.push(MappedFile {
                    path: path.clone(),
                    writable,
                }),
            }
        }
    }
    out
}
