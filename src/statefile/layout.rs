//! The one table of the files a statefile holds: each name is defined here once, with
//! what it holds and whether it is bulk page data.
//!
//! Restart checks the small records (sizes and checksums) before it creates anything;
//! bulk page data, which may be GiB, is checked while the address spaces are built and
//! before anything runs. [`is_bulk`] tells them apart by the table, not by the caller.
//!
//! In a name, `<...>` stands for a decimal number (a PID, an inode, a shmid, ...).

/// What a file of the statefile holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Manifest,
    ManifestMac,
    Core,
    Mm,
    Pages,
    Tree,
    SharedTable,
    PipeData,
    SharedMem,
    ShmIndex,
    ShmContents,
    SavedFile,
    UpgradeCopy,
    SemIndex,
    MsgIndex,
    MsgData,
    UnixSocketData,
    MqueueIndex,
    Chain,
    Precopy,
    PrecopyIndex,
    InetSocketData,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    pub kind: FileKind,
    /// The name, `/`-separated, relative to the statefile directory.
    pub name: &'static str,
    /// Bulk page data: verified while restart works rather than before it starts.
    pub bulk: bool,
    /// What it holds, and the record type (and its module) for JSON files.
    pub holds: &'static str,
}

/// The name of the manifest, written last: a directory without it is not a statefile.
pub const MANIFEST: &str = "MANIFEST";
/// The MANIFEST's HMAC under the host key, when root wrote the statefile (`auth`); not
/// listed in the MANIFEST (it is computed over it).
pub const MANIFEST_MAC: &str = "MANIFEST.mac";
const CORE: &str = "proc/<pid>/core.json";
const MM: &str = "proc/<pid>/mm.json";
const PAGES: &str = "proc/<pid>/pages";
/// Zombies of the checkpointed tree (`pstree::TreeRecord`).
pub const PSTREE: &str = "pstree.json";
/// Descriptions shared between processes, pipes, shared memory (`shared_fds::SharedTable`).
pub const SHARED_TABLE: &str = "shared/table.json";
const PIPE_DATA: &str = "shared/pipe-<ino>";
const SHARED_MEM: &str = "shared/mem-<ino>";
/// SysV shared memory segments (`sysv_shm::ShmIndex`).
pub const SHM_INDEX: &str = "shared/shm.json";
const SHM_CONTENTS: &str = "shared/shm-<shmid>";
const SAVED_FILE: &str = "files/<pid>-fd<fd>";
const UPGRADE_COPY: &str = "files/upgrade/<n>";
/// SysV semaphore sets (`sysv_sem::SemIndex`).
pub const SEM_INDEX: &str = "shared/sem.json";
/// SysV message queues (`sysv_msg::MsgIndex`).
pub const MSG_INDEX: &str = "shared/msg.json";
const MSG_DATA: &str = "shared/msg-<msqid>";
const UNIX_SOCKET_DATA: &str = "shared/unix-<ino>";
/// POSIX message queues with their messages (`posix_mqueue::MqIndex`).
pub const MQUEUE_INDEX: &str = "shared/mqueue.json";

/// The parent of an incremental checkpoint, and per process what the next one needs
/// (`incremental::ChainRecord`).
pub const CHAIN: &str = "chain.json";
const PRECOPY: &str = "proc/<pid>/precopy";
const PRECOPY_INDEX: &str = "proc/<pid>/precopy.json";

const INET_SOCKET_DATA: &str = "shared/inet-<ino>";

/// Every file a statefile can hold. The MANIFEST lists all but itself, with sizes and
/// checksums.
pub const FILES: [FileSpec; 22] = [
    FileSpec {
        kind: FileKind::Manifest,
        name: MANIFEST,
        bulk: false,
        holds: "revision, host, owner, flags, process summaries, every other file's size and checksum (format::Manifest)",
    },
    FileSpec {
        kind: FileKind::ManifestMac,
        name: MANIFEST_MAC,
        bulk: false,
        holds: "HMAC-SHA256 of MANIFEST under the host key, when root wrote it (auth)",
    },
    FileSpec {
        kind: FileKind::Core,
        name: CORE,
        bulk: false,
        holds: "a process but its memory: ids, threads, signals, descriptors, policies, locks, POSIX timers (records::CoreRecord)",
    },
    FileSpec {
        kind: FileKind::Mm,
        name: MM,
        bulk: false,
        holds: "a process's mappings, which pages are saved, mm fields, components (memory::MmRecord)",
    },
    FileSpec {
        kind: FileKind::Pages,
        name: PAGES,
        bulk: true,
        holds: "a process's page data, raw and page aligned, in the order mm.json lists it",
    },
    FileSpec {
        kind: FileKind::Tree,
        name: PSTREE,
        bulk: false,
        holds: "zombies of the tree (pstree::TreeRecord)",
    },
    FileSpec {
        kind: FileKind::SharedTable,
        name: SHARED_TABLE,
        bulk: false,
        holds: "open file descriptions shared between processes, pipes, shared memory (shared_fds::SharedTable)",
    },
    FileSpec {
        kind: FileKind::PipeData,
        name: PIPE_DATA,
        bulk: false,
        holds: "the bytes in flight in a pipe",
    },
    FileSpec {
        kind: FileKind::SharedMem,
        name: SHARED_MEM,
        bulk: true,
        holds: "the data runs of a shared anonymous mapping or memfd",
    },
    FileSpec {
        kind: FileKind::ShmIndex,
        name: SHM_INDEX,
        bulk: false,
        holds: "SysV shared memory segments (sysv_shm::ShmIndex)",
    },
    FileSpec {
        kind: FileKind::ShmContents,
        name: SHM_CONTENTS,
        bulk: false,
        holds: "the saved pages of a SysV shared memory segment",
    },
    FileSpec {
        kind: FileKind::SavedFile,
        name: SAVED_FILE,
        bulk: false,
        holds: "a copy of an open file (REPLACE, SUBSTITUTE, deleted while open)",
    },
    FileSpec {
        kind: FileKind::UpgradeCopy,
        name: UPGRADE_COPY,
        bulk: false,
        holds: "a copy of a mapped program or library (cpr -c -u)",
    },
    FileSpec {
        kind: FileKind::SemIndex,
        name: SEM_INDEX,
        bulk: false,
        holds: "SysV semaphore sets with their values (sysv_sem::SemIndex)",
    },
    FileSpec {
        kind: FileKind::MsgIndex,
        name: MSG_INDEX,
        bulk: false,
        holds: "SysV message queues and their messages' types and lengths (sysv_msg::MsgIndex)",
    },
    FileSpec {
        kind: FileKind::MsgData,
        name: MSG_DATA,
        bulk: false,
        holds: "the bodies of a SysV message queue's messages, in queue order",
    },
    FileSpec {
        kind: FileKind::UnixSocketData,
        name: UNIX_SOCKET_DATA,
        bulk: false,
        holds: "the messages waiting in a UNIX socket, one after another (their lengths in shared/table.json)",
    },
    FileSpec {
        kind: FileKind::MqueueIndex,
        name: MQUEUE_INDEX,
        bulk: false,
        holds: "POSIX message queues with their limits, owners and messages (posix_mqueue::MqIndex)",
    },
    FileSpec {
        kind: FileKind::Chain,
        name: CHAIN,
        bulk: false,
        holds: "the parent statefile of an incremental checkpoint, start times, dirty tracking, live pre-copy (incremental::ChainRecord)",
    },
    FileSpec {
        kind: FileKind::Precopy,
        name: PRECOPY,
        bulk: true,
        holds: "a live checkpoint's pages copied while the process ran (its mappings' inherited pages)",
    },
    FileSpec {
        kind: FileKind::PrecopyIndex,
        name: PRECOPY_INDEX,
        bulk: false,
        holds: "where each pre-copied page is in proc/<pid>/precopy (incremental::PrecopyIndex)",
    },
    FileSpec {
        kind: FileKind::InetSocketData,
        name: INET_SOCKET_DATA,
        bulk: false,
        holds: "a TCP connection's receive then send queue, or a UDP socket's datagrams one after another (lengths in shared/table.json)",
    },
];

/// `proc/<pid>/precopy`.
pub fn precopy_path(pid: i32) -> String {
    fill(PRECOPY, &[&pid])
}

/// `proc/<pid>/precopy.json`.
pub fn precopy_index_path(pid: i32) -> String {
    fill(PRECOPY_INDEX, &[&pid])
}

/// `proc/<pid>/core.json`.
pub fn core_path(pid: i32) -> String {
    fill(CORE, &[&pid])
}

/// `proc/<pid>/mm.json`.
pub fn mm_path(pid: i32) -> String {
    fill(MM, &[&pid])
}

/// `proc/<pid>/pages`.
pub fn pages_path(pid: i32) -> String {
    fill(PAGES, &[&pid])
}

/// `shared/pipe-<ino>`.
pub fn pipe_data_path(ino: u64) -> String {
    fill(PIPE_DATA, &[&ino])
}

/// `shared/mem-<ino>`.
pub fn shared_mem_path(ino: u64) -> String {
    fill(SHARED_MEM, &[&ino])
}

/// `shared/shm-<shmid>`.
pub fn shm_contents_path(shmid: i32) -> String {
    fill(SHM_CONTENTS, &[&shmid])
}

/// `shared/msg-<msqid>`.
pub fn msg_data_path(msqid: i32) -> String {
    fill(MSG_DATA, &[&msqid])
}

/// `shared/unix-<ino>`.
pub fn unix_socket_data_path(ino: u64) -> String {
    fill(UNIX_SOCKET_DATA, &[&ino])
}

/// `shared/inet-<ino>`.
pub fn inet_socket_data_path(ino: u64) -> String {
    fill(INET_SOCKET_DATA, &[&ino])
}

/// `files/<pid>-fd<fd>`.
pub fn saved_file_path(pid: i32, fd: i32) -> String {
    fill(SAVED_FILE, &[&pid, &fd])
}

/// `files/upgrade/<n>`: the `n`th copy (`-u`).
pub fn upgrade_copy_path(n: usize) -> String {
    fill(UPGRADE_COPY, &[&n])
}

/// The row of the table a name matches, if any.
pub fn spec_of(rel: &str) -> Option<&'static FileSpec> {
    FILES.iter().find(|s| matches(s.name, rel))
}

/// What a file holds, if it is one of the table.
pub fn kind_of(rel: &str) -> Option<FileKind> {
    spec_of(rel).map(|s| s.kind)
}

/// Whether a file is bulk page data (checked while restart works, not before).
pub fn is_bulk(rel: &str) -> bool {
    spec_of(rel).is_some_and(|s| s.bulk)
}

/// The name with each `<...>` replaced by the next of `args`.
fn fill(name: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    let mut args = args.iter();
    let mut rest = name;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('>').map_or(rest.len(), |c| open + c + 1);
        if let Some(arg) = args.next() {
            out.push_str(&arg.to_string());
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Whether `rel` is `name` with each `<...>` standing for one or more decimal digits.
fn matches(name: &str, rel: &str) -> bool {
    let (mut name, mut rel) = (name, rel);
    loop {
        let Some(open) = name.find('<') else {
            return name == rel;
        };
        let Some(after) = rel.strip_prefix(&name[..open]) else {
            return false;
        };
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        name = name[open..].find('>').map_or("", |c| &name[open + c + 1..]);
        rel = &after[digits..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_found_again_in_the_table() {
        let built = [
            (MANIFEST.to_string(), FileKind::Manifest),
            (MANIFEST_MAC.to_string(), FileKind::ManifestMac),
            (core_path(12), FileKind::Core),
            (mm_path(12), FileKind::Mm),
            (pages_path(4000), FileKind::Pages),
            (PSTREE.to_string(), FileKind::Tree),
            (SHARED_TABLE.to_string(), FileKind::SharedTable),
            (pipe_data_path(28259), FileKind::PipeData),
            (shared_mem_path(7), FileKind::SharedMem),
            (SHM_INDEX.to_string(), FileKind::ShmIndex),
            (shm_contents_path(0), FileKind::ShmContents),
            (saved_file_path(12, 3), FileKind::SavedFile),
            (upgrade_copy_path(2), FileKind::UpgradeCopy),
            (SEM_INDEX.to_string(), FileKind::SemIndex),
            (MSG_INDEX.to_string(), FileKind::MsgIndex),
            (msg_data_path(32768), FileKind::MsgData),
            (unix_socket_data_path(81), FileKind::UnixSocketData),
            (MQUEUE_INDEX.to_string(), FileKind::MqueueIndex),
            (CHAIN.to_string(), FileKind::Chain),
            (precopy_path(31), FileKind::Precopy),
            (precopy_index_path(31), FileKind::PrecopyIndex),
            (inet_socket_data_path(82), FileKind::InetSocketData),
        ];
        assert_eq!(built.len(), FILES.len());
        for (name, kind) in &built {
            assert_eq!(kind_of(name), Some(*kind), "{name}");
            assert!(super::super::reader::valid_rel(name), "{name}");
        }
        for (i, a) in FILES.iter().enumerate() {
            assert!(
                FILES[i + 1..].iter().all(|b| b.kind != a.kind),
                "{:?} twice",
                a.kind
            );
        }
    }

    #[test]
    fn names_read_as_before() {
        assert_eq!(core_path(12), "proc/12/core.json");
        assert_eq!(mm_path(12), "proc/12/mm.json");
        assert_eq!(pages_path(12), "proc/12/pages");
        assert_eq!(pipe_data_path(5), "shared/pipe-5");
        assert_eq!(shared_mem_path(5), "shared/mem-5");
        assert_eq!(shm_contents_path(65538), "shared/shm-65538");
        assert_eq!(saved_file_path(12, 4), "files/12-fd4");
        assert_eq!(upgrade_copy_path(0), "files/upgrade/0");
    }

    #[test]
    fn bulk_is_page_data_only() {
        assert!(is_bulk("proc/12/pages"));
        assert!(is_bulk("shared/mem-99"));
        for small in [
            "MANIFEST",
            "proc/12/core.json",
            "proc/12/mm.json",
            "pstree.json",
            "shared/table.json",
            "shared/pipe-3",
            "shared/shm.json",
            "shared/shm-3",
            "files/12-fd4",
            "files/upgrade/0",
        ] {
            assert!(!is_bulk(small), "{small}");
        }
    }

    #[test]
    fn near_misses_are_no_file_of_the_table() {
        for other in [
            "proc/x/pages",
            "proc//pages",
            "proc/12/pages2",
            "proc/12/core",
            "shared/mem-",
            "shared/mem-1a",
            "files/12-fd",
            "files/upgrade/x",
            "pages",
            "",
        ] {
            assert_eq!(kind_of(other), None, "{other}");
        }
    }
}
