//! `.cpr` attribute files: `CKPT IDtype IDvalue { policy: instance: action ... }`.
//! Grammar in `cpr.pest`; this module parses and resolves the policies that apply to
//! one process and to one of its files.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::error::Result;
use crate::target::{IdType, ProcessIds};

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
}

impl ProcessPolicies {
    /// The disposition for one open file of this process.
    pub fn file_action(&self, path: &Path) -> FileAction {
        todo!("issue 2: {}", path.display())
    }
}

impl AttrFile {
    /// Parses attribute-file text; `source` names it in errors (file:line:column).
    pub fn parse(text: &str, source: &str) -> Result<AttrFile> {
        todo!("issue 2: parse {source} {}", text.len())
    }

    /// `$HOME/.cpr` (HOME unset: the password entry's home), else the built-in defaults.
    pub fn load_default() -> Result<AttrFile> {
        todo!("issue 2")
    }

    /// The built-in defaults, the same as `etc/cpr_proto`.
    pub fn builtin() -> AttrFile {
        todo!("issue 2")
    }

    /// The policies for one process. `ancestors` are the PIDs above it (parent first),
    /// for HID blocks.
    pub fn policies_for(&self, process: &ProcessIds, ancestors: &[i32]) -> ProcessPolicies {
        todo!("issue 2: {process:?} {ancestors:?}")
    }
}
