//! `.cpr` attribute files: `CKPT IDtype IDvalue { policy: instance: action ... }`.
//! Grammar in `cpr.pest` (read by `parse`); `resolve` picks the policies that apply to
//! one process and to one of its files. The format and its precedence rules are
//! documented in man/cpr.5.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{Error, Kind, Result};
use crate::target::{IdType, ProcessIds};

mod parse;
mod resolve;
mod socket_instance;

/// The longest attribute file read: far more than any set of policies needs.
const MAX_SIZE: u64 = 1 << 20;

/// Reads an attribute file: a regular file of at most `MAX_SIZE` bytes, not reached
/// through a symbolic link. It is opened without blocking (a FIFO or a device named by
/// mistake or malice would hang cpr) and without following a final link (a link to a
/// file the caller may not read would have root quote it in a parse error), then
/// checked with fstat before a byte is read.
fn read_attribute_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let source = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::with_detail(
                &source,
                Kind::InvalidArgument,
                "a symbolic link; name the attribute file itself",
            ),
            _ => Error::io(&source, e),
        })?;
    let meta = file.metadata().map_err(|e| Error::io(&source, e))?;
    if !meta.is_file() {
        return Err(Error::with_detail(
            &source,
            Kind::InvalidArgument,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_SIZE {
        return Err(Error::with_detail(
            &source,
            Kind::InvalidArgument,
            format!("larger than {MAX_SIZE} bytes: not an attribute file"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&source, e))?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(Error::with_detail(
            &source,
            Kind::InvalidArgument,
            format!("larger than {MAX_SIZE} bytes: not an attribute file"),
        ));
    }
    Ok(bytes)
}

/// The sample attribute file; its policies are the built-in defaults.
const CPR_PROTO: &str = include_str!("../../etc/cpr_proto");

/// How the built-in defaults are named in messages and in `AttrFile::source`.
pub const BUILTIN_SOURCE: &str = "built-in defaults";

/// FILE policy actions (guide, "FILE Policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum FileAction {
    #[default]
    Merge,
    Ignore,
    Append,
    Replace,
    Substitute,
}

/// WILL policy: what happens to the original process after checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum WillAction {
    #[default]
    Exit,
    Kill,
    Cont,
}

/// CDIR and RDIR policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum DirAction {
    #[default]
    Replace,
    Ignore,
}

/// FORK policy: the original PID, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ForkAction {
    #[default]
    Original,
    Any,
}

/// SOCKET policy actions (our extension beyond IRIX, cpr(5)): what becomes of a socket
/// whose peer is outside the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SocketAction {
    /// Refuse the checkpoint, as IRIX did for every socket.
    #[default]
    Refuse,
    /// Restore the connection as it was (a peer that is still there).
    Repair,
    /// Connect a new socket to the same address at restart.
    Reconnect,
    /// Come back as a socket whose peer has gone (EOF, EPIPE).
    Close,
}

/// One SOCKET line: an instance (`"tcp:*:5432"`, `"unix:/run/*"`, `"*"`) or none (the
/// block's default for sockets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRule {
    pub pattern: Option<String>,
    pub action: SocketAction,
}

/// The designator a block applies to: an ID type and value, or `*` for any process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockTarget {
    Any,
    Id(IdType, u64),
}

/// One FILE line: a glob (`"/tmp/*"`) or none (the block's default for files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRule {
    pub pattern: Option<String>,
    pub action: FileAction,
}

/// One `CKPT ... { }` block. Policies it does not mention are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub target: BlockTarget,
    pub files: Vec<FileRule>,
    pub will: Option<WillAction>,
    pub cdir: Option<DirAction>,
    pub rdir: Option<DirAction>,
    pub fork: Option<ForkAction>,
    /// SOCKET lines, in file order.
    #[serde(default)]
    pub sockets: Vec<SocketRule>,
    /// 1-based line of `CKPT`, for messages.
    pub line: usize,
}

/// A parsed attribute file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttrFile {
    /// Where it came from (path, or "built-in defaults").
    pub source: String,
    pub blocks: Vec<Block>,
}

/// The policies that apply to one process, after precedence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPolicies {
    pub will: WillAction,
    pub cdir: DirAction,
    pub rdir: DirAction,
    pub fork: ForkAction,
    /// FILE rules that apply, most specific first; the first whose glob matches wins.
    pub files: Vec<FileRule>,
    /// SOCKET rules that apply, most specific first; the first that matches wins.
    #[serde(default)]
    pub sockets: Vec<SocketRule>,
}

impl ProcessPolicies {
    /// The disposition for one open file of this process: the action of the first rule
    /// in `files` whose pattern matches `path` (a rule without pattern matches every
    /// file), else MERGE.
    pub fn file_action(&self, path: &Path) -> FileAction {
        resolve::file_action(&self.files, path)
    }

    /// The action of the first FILE rule whose glob names `path` explicitly (rules
    /// without an instance do not count). Objects that are not files, such as a pipe to
    /// a process outside the checkpoint (`"pipe:*"`), are kept only when a rule names them.
    pub fn explicit_file_action(&self, path: &str) -> Option<FileAction> {
        resolve::explicit_file_action(&self.files, path)
    }

    /// The disposition of a socket whose peer is outside the checkpoint, by its canonical
    /// address (`tcp:HOST:PORT`, `udp:[::1]:53`, `unix:/path`, `unix:@name`, `unix:` for
    /// an unnamed one): the action of the first SOCKET rule that matches, else REFUSE.
    pub fn socket_action(&self, address: &str) -> SocketAction {
        resolve::socket_action(&self.sockets, address)
    }
}

impl AttrFile {
    /// Parses attribute-file text; `source` names it in errors (file:line:column).
    pub fn parse(text: &str, source: &str) -> Result<AttrFile> {
        Ok(AttrFile {
            source: source.to_string(),
            blocks: parse::parse_blocks(text, source)?,
        })
    }

    /// Reads and parses one attribute file. A file that is missing, unreadable, not
    /// UTF-8 or not valid is an error naming it.
    pub fn load(path: &Path) -> Result<AttrFile> {
        let source = path.display().to_string();
        let bytes = read_attribute_file(path)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            // `good` is valid UTF-8 by construction.
            let good = std::str::from_utf8(good).unwrap_or("");
            let line = good.matches('\n').count() + 1;
            let col = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            Error::with_detail(
                format!("{source}:{line}:{col}"),
                Kind::InvalidArgument,
                "text is not UTF-8",
            )
        })?;
        AttrFile::parse(&text, &source)
    }

    /// Where the user's attribute file is: `$HOME/.cpr`, or, when HOME is unset or
    /// empty, `.cpr` in the home directory of the caller's password entry. `None` when
    /// neither gives a home directory.
    pub fn default_path() -> Option<PathBuf> {
        let home = match std::env::var_os("HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => {
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()?
                    .dir
            }
        };
        Some(home.join(".cpr"))
    }

    /// `$HOME/.cpr` (HOME unset: the password entry's home), else the built-in defaults.
    /// A file that exists but cannot be read or is not valid is an error.
    pub fn load_default() -> Result<AttrFile> {
        let Some(path) = AttrFile::default_path() else {
            return Ok(AttrFile::builtin());
        };
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AttrFile::builtin()),
            _ => AttrFile::load(&path),
        }
    }

    /// The built-in defaults: `etc/cpr_proto`, compiled in.
    pub fn builtin() -> AttrFile {
        // A test parses the same text, so this cannot fail in a built cpr; fall back to
        // no blocks (which also means every default) rather than panic.
        AttrFile::parse(CPR_PROTO, BUILTIN_SOURCE).unwrap_or_else(|_| AttrFile {
            source: BUILTIN_SOURCE.to_string(),
            blocks: Vec::new(),
        })
    }

    /// The policies for one process. `ancestors` are the PIDs above it (parent first),
    /// for HID blocks. Each policy comes from the most specific matching block that sets
    /// it (PID > SGP > HID, nearest root first > GID > SID > `*`; ties: later block);
    /// unset policies take their defaults.
    pub fn policies_for(&self, process: &ProcessIds, ancestors: &[i32]) -> ProcessPolicies {
        resolve::policies_for(&self.blocks, process, ancestors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpr_proto_parses_so_builtin_never_falls_back() {
        let parsed = AttrFile::parse(CPR_PROTO, BUILTIN_SOURCE).unwrap();
        assert_eq!(parsed.blocks.len(), 1);
        assert_eq!(AttrFile::builtin(), parsed);
    }
}
