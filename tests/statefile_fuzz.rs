//! Damaged records never panic the reader. A small valid statefile holding every record
//! type (written by the library's writer) has one of its JSON files mutated: bytes
//! changed, cut short, fields removed, values of the wrong type. The MANIFEST's sizes and
//! checksums are then made to match, as a forger could, so that the damage reaches the
//! record parsers. Opening it, reading every record as every record type, following the
//! file names the records hold and rendering `cpr -i` must give an error or a value —
//! never a panic.
//!
//! Also here, with the same records: a revision-1 statefile, whose records lack the
//! fields added while revision 1 was current, still reads.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cpr::statefile::layout::{self, MANIFEST, PSTREE, SHARED_TABLE, SHM_INDEX};
use cpr::statefile::reader::{self, Verify};
use cpr::statefile::records::{CoreRecord, Manifest, MmRecord, SharedTable, ShmIndex, TreeRecord};
use cpr::statefile::{Owner, ProcessSummary, REVISION, Statefile, StatefileWriter, info};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

const PID: i32 = 4000;
const OWNER: Owner = Owner { uid: 0, gid: 0 };

// ---------------------------------------------------------------- the sample records

fn manifest() -> Value {
    json!({
        "revision": REVISION,
        "cpr_version": "0.1.0",
        "created": "2024-09-07T12:34:56Z",
        "host": "testhost",
        "kernel": "6.18.0",
        "owner": {"uid": 0, "gid": 0},
        "designators": "4000",
        "flags": {"will": "Exit", "upgrade": true},
        "processes": [{
            "pid": PID, "ppid": 1, "pgid": PID, "sid": PID,
            "uids": [1000, 1000, 1000, 1000], "gids": [100, 100, 100, 100],
            "command": "sim", "args": ["/usr/bin/sim", "--steps", "9"],
            "cwd": "/home/alice", "root": "/", "threads": 1,
            "open_files": [
                {"fd": 0, "path": "/dev/null", "action": "Merge"},
                {"fd": 3, "path": "/home/alice/in.dat", "action": "Replace"}
            ],
            "policies": policies()
        }],
        "files": []
    })
}

fn policies() -> Value {
    json!({
        "will": "Exit", "cdir": "Replace", "rdir": "Replace", "fork": "Original",
        "files": [{"pattern": "/tmp/*", "action": "Ignore"}, {"pattern": null, "action": "Merge"}]
    })
}

fn fd(fd: i32, kind: Value, path: &str, saved: Option<String>, shared: Option<u32>) -> Value {
    json!({
        "fd": fd, "kind": kind, "path": path, "flags": 32770, "cloexec": false, "pos": 12,
        "action": if saved.is_some() { "Replace" } else { "Merge" },
        "saved": saved, "shared": shared
    })
}

/// A queued signal as the records hold it: 128 bytes of siginfo, hex.
fn siginfo(signo: u8) -> String {
    let mut bytes = [0u8; 128];
    bytes[0] = signo;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn core() -> Value {
    json!({
        "process": {
            "pid": PID, "ppid": 1, "pgid": PID, "sid": PID, "comm": "sim",
            "args": ["/usr/bin/sim", "--steps", "9"], "exe": "/usr/bin/sim",
            "cwd": "/home/alice", "root": "/", "umask": 18,
            "uids": [1000, 1000, 1000, 1000], "gids": [100, 100, 100, 100], "groups": [100, 27],
            "caps": {"inheritable": 0, "permitted": 0, "effective": 0},
            "rlimits": [[0, u64::MAX, u64::MAX], [7, 1024, 4096]],
            "personality": 0, "nice": 5, "sched_policy": 0, "sched_priority": 0, "dumpable": true
        },
        "threads": [{
            "tid": PID, "comm": "sim", "regs": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27],
            "xstate": "7f03000000000000a0a1", "sigmask": 65536,
            "pending": [siginfo(10)],
            "altstack": [0, 2, 0], "clear_child_tid": 140337553947152_u64,
            "robust_list": [140337553947168_u64, 24],
            "rseq": {"abi_pointer": 140337553948768_u64, "abi_size": 32, "signature": 1392848979, "flags": 0}
        }],
        "signals": {
            "actions": [[10, {"handler": 4198400, "flags": 67108864, "restorer": 4198500, "mask": 0}]],
            "shared_pending": [siginfo(12)],
            "itimers": [[0, 0, 2, 500], [0, 0, 0, 0], [0, 0, 0, 0]]
        },
        "fds": [
            fd(0, json!("Device"), "/dev/null", None, None),
            fd(1, json!({"Dup": {"of": 0}}), "/dev/null", None, None),
            fd(3, json!("Regular"), "/home/alice/in.dat", Some(layout::saved_file_path(PID, 3)), None),
            fd(4, json!({"Pipe": {"ino": 7}}), "pipe:[7]", None, Some(0)),
            fd(5, json!({"Event": {"Timerfd": {"clockid": 1, "ticks": 0, "settime_flags": 0, "value": [1, 0], "interval": [0, 5]}}}), "anon_inode:[timerfd]", None, None),
            fd(6, json!({"Event": {"Epoll": {"targets": [{"fd": 5, "events": 1, "data": 5}]}}}), "anon_inode:[eventpoll]", None, None),
            fd(7, json!({"Event": {"Inotify": {"watches": [{"wd": 1, "mask": 2, "path": "/tmp"}]}}}), "anon_inode:inotify", None, None),
            fd(8, json!("Directory"), "/home/alice", None, None)
        ],
        "policies": policies(),
        "locks": [{"fd": 3, "path": "/home/alice/in.dat", "kind": "Posix", "lock_type": "Write", "start": 0, "end": 99}],
        "posix_timers": [{"id": 0, "clock": 1, "signo": 14, "sival": 0, "notify": 0, "target": 0, "interval": [0, 0], "value": [3, 0]}]
    })
}

fn mm() -> Value {
    json!({
        "vmas": [
            {"start": 4194304, "end": 4202496, "prot": 5, "shared": false,
             "backing": {"File": {"path": "/usr/bin/sim", "offset": 0}}, "name": "/usr/bin/sim",
             "flags": ["rd", "ex"], "runs": []},
            {"start": 4202496, "end": 4210688, "prot": 3, "shared": false, "backing": "Anon",
             "name": "[heap]", "flags": ["rd", "wr"], "runs": [[0, 2]]},
            {"start": 8388608, "end": 8392704, "prot": 3, "shared": true,
             "backing": {"SharedMem": {"ino": 9, "offset": 0}}, "name": "/dev/zero (deleted)",
             "flags": ["rd", "wr", "sh"], "runs": []},
            {"start": 12582912, "end": 12587008, "prot": 3, "shared": true,
             "backing": {"SysvShm": {"shmid": 5}}, "name": "SYSV00000000", "flags": [], "runs": []},
            {"start": 16777216, "end": 16785408, "prot": 5, "shared": false, "backing": "Vdso",
             "name": "[vdso]", "flags": [], "runs": []}
        ],
        "fields": {"start_code": 4194304, "end_code": 4202496, "start_data": 4202496,
                   "end_data": 4206592, "start_brk": 4206592, "brk": 4210688,
                   "start_stack": 140737488347136_u64, "arg_start": 1, "arg_end": 2,
                   "env_start": 3, "env_end": 4},
        "auxv": [33, 16777216, 0, 0],
        "exe": "/usr/bin/sim",
        "pages_bytes": 8192,
        "components": [{"path": "/usr/bin/sim", "dev": 2049, "ino": 131, "size": 8192,
                        "mtime_ns": 1725712496000000000_i64, "saved": layout::upgrade_copy_path(0)}]
    })
}

fn tree() -> Value {
    json!({"zombies": [{"pid": 4002, "ppid": PID, "pgid": PID, "sid": PID, "status": 256}]})
}

fn table() -> Value {
    json!({
        "files": [{"id": 0, "template": fd(4, json!({"Pipe": {"ino": 7}}), "pipe:[7]", None, Some(0))}],
        "pipes": [{"ino": 7, "capacity": 65536, "data": layout::pipe_data_path(7)}],
        "mems": [{"ino": 9, "size": 4096, "runs": [[0, 4096]], "data": layout::shared_mem_path(9)}]
    })
}

fn shm() -> Value {
    json!({"segments": [{"shmid": 5, "key": 0, "mode": 384, "size": 4096, "uid": 1000,
                         "gid": 100, "cuid": 1000, "cgid": 100, "dest": false, "locked": false,
                         "runs": [[0, 1]]}]})
}

/// Parses a sample as its record type (so that the samples are what cpr writes).
fn record<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("the sample is a valid record")
}

/// The JSON files of the sample statefile: the ones mutated.
fn json_files() -> [String; 6] {
    [
        MANIFEST.to_string(),
        layout::core_path(PID),
        layout::mm_path(PID),
        PSTREE.to_string(),
        SHARED_TABLE.to_string(),
        SHM_INDEX.to_string(),
    ]
}

/// Writes the sample statefile at `target` through `StatefileWriter`; `edit` may change
/// each JSON record before it is written (name, record).
fn write_sample(target: &Path, edit: impl Fn(&str, &mut Value)) -> PathBuf {
    let mut w = StatefileWriter::create(target, false, OWNER).unwrap();
    let put = |w: &mut StatefileWriter, rel: String, mut v: Value| {
        edit(&rel, &mut v);
        w.write_json(&rel, &v).unwrap();
    };
    // typed first: each sample must be a record of its type
    let _: CoreRecord = record(core());
    let _: MmRecord = record(mm());
    let _: TreeRecord = record(tree());
    let _: SharedTable = record(table());
    let _: ShmIndex = record(shm());
    put(&mut w, layout::core_path(PID), core());
    put(&mut w, layout::mm_path(PID), mm());
    put(&mut w, PSTREE.to_string(), tree());
    put(&mut w, SHARED_TABLE.to_string(), table());
    put(&mut w, SHM_INDEX.to_string(), shm());
    let raw: [(String, &[u8]); 5] = [
        (layout::pages_path(PID), &[0x5a; 8192]),
        (layout::pipe_data_path(7), b"in flight"),
        (layout::shared_mem_path(9), &[1; 4096]),
        (layout::shm_contents_path(5), &[2; 4096]),
        (layout::saved_file_path(PID, 3), b"saved copy"),
    ];
    for (rel, data) in raw {
        w.write_file(&rel, data).unwrap();
    }
    w.write_file(&layout::upgrade_copy_path(0), b"\x7fELF")
        .unwrap();
    let mut m = manifest();
    // the summary restart compares with the records, of the records as edited
    let mut c = core();
    edit(&layout::core_path(PID), &mut c);
    if let Ok(c) = serde_json::from_value::<CoreRecord>(c) {
        m["processes"][0] = serde_json::to_value(ProcessSummary::of(&c)).unwrap();
    }
    edit(MANIFEST, &mut m);
    w.commit(record::<Manifest>(m)).unwrap()
}

/// The sample, written once; each case works on a copy.
fn template() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = write_sample(&dir.path().join("sample"), |_, _| {});
        (dir, path)
    });
    path
}

/// A directory for one case: in memory where there is a tmpfs (hundreds of cases).
fn scratch() -> tempfile::TempDir {
    match Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

// ---------------------------------------------------------------- mutations

/// Values of every JSON type, and some that are the right type but out of range.
fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(i64::MIN),
        json!(1e300),
        json!(0.5),
        serde_json::from_str("18446744073709551616").unwrap(),
        json!(""),
        json!("../../etc/passwd"),
        json!("/etc/passwd"),
        json!("zz\u{e9}\u{1f600}"),
        json!([]),
        json!([[1, 2, 3]]),
        json!({}),
        json!({"Unknown": {}}),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// One byte replaced.
    Byte(Index, u8),
    /// Cut short.
    Truncate(Index),
    /// A field of an object (or an item of an array) removed.
    Remove(Index),
    /// A value replaced by one of another type.
    Retype(Index, Index),
    /// A file name of the statefile replaced by one that leads elsewhere.
    Rename(Index, Index),
    /// An array or object emptied (`"threads": []`, `"process": {}`).
    Empty(Index),
    /// A number replaced by an extreme one of the same type.
    Huge(Index, Index),
}

/// Numbers at the edges of every integer type records use.
fn huge_numbers() -> Vec<Value> {
    vec![
        json!(u64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u32::MAX),
        json!(i32::MIN),
        json!(0),
        json!(-1),
    ]
}

/// Names a forger may put in a record, to reach outside the statefile.
const HOSTILE_NAMES: [&str; 8] = [
    "../../etc/passwd",
    "/etc/passwd",
    "shared/../../x",
    "out/etc/passwd",
    "shared/out/passwd",
    "",
    "a\u{0}b",
    "proc/4000/pages/",
];

/// Symbolic links planted in each case's copy: `out` to `/`, `shared/out` to `/etc`.
fn plant_links(sf: &Path) {
    std::os::unix::fs::symlink("/", sf.join("out")).unwrap();
    std::os::unix::fs::symlink("/etc", sf.join("shared/out")).unwrap();
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        2 => any::<Index>().prop_map(Mutation::Remove),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Rename(i, v)),
        2 => any::<Index>().prop_map(Mutation::Empty),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, v)| Mutation::Huge(i, v)),
    ]
}

/// Every value below the root: (JSON pointer of its parent, its key or index).
fn members(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.push((at.to_string(), k.clone()));
                members(child, &format!("{at}/{}", escape(k)), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                out.push((at.to_string(), i.to_string()));
                members(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Byte(at, b) => {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::Empty(at) => structural(
            bytes,
            *at,
            |v| v.is_array() || v.is_object(),
            |v| match v {
                Value::Array(items) => items.clear(),
                Value::Object(map) => map.clear(),
                _ => {}
            },
        ),
        Mutation::Huge(at, which) => structural(bytes, *at, Value::is_number, |v| {
            let values = huge_numbers();
            *v = values[which.index(values.len())].clone();
        }),
        Mutation::Remove(at) | Mutation::Retype(at, _) | Mutation::Rename(at, _) => {
            let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else {
                return;
            };
            let mut all = Vec::new();
            members(&v, "", &mut all);
            if let Mutation::Rename(..) = m {
                all.retain(|(parent, key)| {
                    let at = format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"));
                    v.pointer(&at)
                        .and_then(Value::as_str)
                        .is_some_and(|name| layout::kind_of(name).is_some())
                });
            }
            if all.is_empty() {
                return;
            }
            let (parent, key) = &all[at.index(all.len())];
            let Some(p) = v.pointer_mut(parent) else {
                return;
            };
            match (p, m) {
                (Value::Object(map), Mutation::Remove(_)) => {
                    map.remove(key);
                }
                (Value::Array(items), Mutation::Remove(_)) => {
                    items.remove(key.parse::<usize>().unwrap());
                }
                (Value::Object(map), Mutation::Retype(_, which)) => {
                    let values = wrong_values();
                    map.insert(key.clone(), values[which.index(values.len())].clone());
                }
                (Value::Array(items), Mutation::Retype(_, which)) => {
                    let values = wrong_values();
                    items[key.parse::<usize>().unwrap()] =
                        values[which.index(values.len())].clone();
                }
                (Value::Object(map), Mutation::Rename(_, which)) => {
                    let name = HOSTILE_NAMES[which.index(HOSTILE_NAMES.len())];
                    map.insert(key.clone(), name.into());
                }
                (Value::Array(items), Mutation::Rename(_, which)) => {
                    let name = HOSTILE_NAMES[which.index(HOSTILE_NAMES.len())];
                    items[key.parse::<usize>().unwrap()] = name.into();
                }
                _ => {}
            }
            *bytes = serde_json::to_vec_pretty(&v).unwrap();
        }
    }
}

/// Changes, in place, the `at`th value of the JSON in `bytes` for which `pick` holds.
fn structural(
    bytes: &mut Vec<u8>,
    at: Index,
    pick: impl Fn(&Value) -> bool,
    change: impl Fn(&mut Value),
) {
    let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let mut all = Vec::new();
    members(&v, "", &mut all);
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    let pointers: Vec<String> = all
        .iter()
        .map(|(parent, key)| format!("{parent}/{}", escape(key)))
        .filter(|p| v.pointer(p).is_some_and(&pick))
        .collect();
    if pointers.is_empty() {
        return;
    }
    if let Some(target) = v.pointer_mut(&pointers[at.index(pointers.len())]) {
        change(target);
    }
    *bytes = serde_json::to_vec_pretty(&v).unwrap();
}

/// Writes `bytes` as `rel` of the statefile at `sf` and, for any file but the MANIFEST,
/// makes the MANIFEST's size and checksum match (as a forger can). The forger cannot
/// make the MAC (the host key is root's): the MAC and the SHA-256 sums go, and the
/// statefile passes root's restart only as one no one but root could have changed
/// (this copy is root's, mode 0700), so that the damage reaches the record checks.
fn forge(sf: &Path, rel: &str, bytes: &[u8]) {
    std::fs::write(sf.join(rel), bytes).unwrap();
    let _ = std::fs::remove_file(sf.join(layout::MANIFEST_MAC));
    if rel == MANIFEST {
        return;
    }
    let (size, xxh3) = reader::hash_file(&sf.join(rel)).unwrap();
    let mpath = sf.join(MANIFEST);
    let mut m: Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    for entry in m["files"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("sha256");
        if entry["path"] == rel {
            entry["size"] = size.into();
            entry["xxh3"] = xxh3.clone().into();
        }
    }
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

// ---------------------------------------------------------------- reading it all

/// Reads a record as every record type; returns the value of type `T` if it is one.
fn read_as_all<T: serde::de::DeserializeOwned>(sf: &Statefile, rel: &str) -> Option<T> {
    let _ = sf.read_json::<Manifest>(rel);
    let _ = sf.read_json::<CoreRecord>(rel);
    let _ = sf.read_json::<MmRecord>(rel);
    let _ = sf.read_json::<TreeRecord>(rel);
    let _ = sf.read_json::<SharedTable>(rel);
    let _ = sf.read_json::<ShmIndex>(rel);
    sf.read_json::<T>(rel).ok()
}

/// A name a record holds: joined to the statefile only if it stays inside.
fn follow(sf: &Statefile, rel: &str) {
    if let Ok(path) = sf.file(rel) {
        let inside = sf.path.canonicalize().unwrap();
        if let Ok(real) = path.canonicalize() {
            assert!(
                real.starts_with(&inside),
                "{rel} leads out: {}",
                real.display()
            );
        }
        let _ = sf.read(rel);
    }
}

/// Everything restart and `cpr -i` read of a statefile, as far as it reads.
fn read_everything(path: &Path) {
    let _ = reader::probe(path);
    // what a restart reads and decodes before it creates anything
    let _ = cpr::engine::restart::validate::load(&[path.to_path_buf()], 0);
    if Statefile::open(path, Verify::Sizes).is_err() {
        return;
    }
    let Ok(sf) = Statefile::open(path, Verify::Full) else {
        return;
    };
    let _ = info::render_text(&sf);
    let _ = info::render_json(&sf);
    let _ = sf.verify_files(layout::is_bulk);
    let mut pids: Vec<i32> = sf.manifest.processes.iter().map(|p| p.pid).collect();
    pids.push(PID);
    for pid in pids {
        if let Some(core) = read_as_all::<CoreRecord>(&sf, &layout::core_path(pid)) {
            for saved in core.fds.iter().filter_map(|f| f.saved.as_deref()) {
                follow(&sf, saved);
            }
        }
        if let Some(mm) = read_as_all::<MmRecord>(&sf, &layout::mm_path(pid)) {
            for saved in mm.components.iter().filter_map(|c| c.saved.as_deref()) {
                follow(&sf, saved);
            }
        }
        let _ = sf.file(&layout::pages_path(pid));
    }
    let _ = read_as_all::<TreeRecord>(&sf, PSTREE);
    if let Some(table) = read_as_all::<SharedTable>(&sf, SHARED_TABLE) {
        for data in table.pipes.iter().filter_map(|p| p.data.as_deref()) {
            follow(&sf, data);
        }
        for m in &table.mems {
            follow(&sf, &m.data);
        }
    }
    if let Some(index) = read_as_all::<ShmIndex>(&sf, SHM_INDEX) {
        for s in &index.segments {
            follow(&sf, &layout::shm_contents_path(s.shmid));
        }
    }
    for entry in &sf.manifest.files {
        follow(&sf, &entry.path);
    }
}

// ---------------------------------------------------------------- the tests

#[test]
fn the_sample_reads_whole() {
    let sf = Statefile::open(template(), Verify::Full).unwrap();
    assert_eq!(sf.manifest.files.len(), 11);
    let core: CoreRecord = sf.read_json(&layout::core_path(PID)).unwrap();
    assert_eq!(core.locks.len(), 1);
    assert_eq!(core.fds[2].saved.as_deref(), Some("files/4000-fd3"));
    let table: SharedTable = sf.read_json(SHARED_TABLE).unwrap();
    assert_eq!(
        sf.read(table.pipes[0].data.as_deref().unwrap()).unwrap(),
        b"in flight"
    );
    assert!(info::render_text(&sf).contains("/usr/bin/sim --steps 9"));
    read_everything(template());
}

#[test]
fn the_sample_passes_restart_validation() {
    let loaded = cpr::engine::restart::validate::load(&[template().to_path_buf()], 0).unwrap();
    assert_eq!(loaded.images.len(), 1);
    assert_eq!(loaded.images[0].core.threads[0].tid, PID);
}

/// The forger's copy of the sample, unchanged but without its MAC and SHA-256 sums,
/// still passes root's validation: so the mutations below reach the record checks
/// rather than stopping at authentication.
#[test]
fn a_forged_copy_reaches_the_record_checks() {
    let dir = scratch();
    let sf = dir.path().join("sf");
    copy_tree(template(), &sf);
    let rel = layout::core_path(PID);
    let bytes = std::fs::read(sf.join(&rel)).unwrap();
    forge(&sf, &rel, &bytes);
    assert!(!sf.join(layout::MANIFEST_MAC).exists());
    cpr::engine::restart::validate::load(&[sf], 0).unwrap();
}

/// Values that parse but that restore could not use are refused by the validation that
/// runs before anything is created, naming the statefile, the process and the damage.
#[test]
fn unusable_records_are_refused_before_anything_is_created() {
    type Edit = fn(&str, &mut Value);
    let cases: [(&str, Edit); 7] = [
        ("lock on fd 3: bytes 100-99", |rel, v| {
            if rel.ends_with("core.json") {
                v["locks"][0]["start"] = json!(100);
            }
        }),
        ("overlaps the one before", |rel, v| {
            if rel.ends_with("mm.json") {
                // the same 2^63 bytes twice: their pages would add up past 2^64
                let huge = json!({"start": 0, "end": 1_u64 << 63, "prot": 3, "shared": false,
                    "backing": "Anon", "name": "", "flags": [], "runs": [[0, 1_u64 << 51]]});
                v["vmas"] = json!([huge.clone(), huge]);
            }
        }),
        ("pages 1+2", |rel, v| {
            if rel.ends_with("mm.json") {
                v["vmas"][1]["runs"] = json!([[1, 2]]);
            }
        }),
        ("mapping 0x402000-0x401000", |rel, v| {
            if rel.ends_with("mm.json") {
                v["vmas"][1]["end"] = json!(4198400);
            }
        }),
        ("registers", |rel, v| {
            if rel.ends_with("core.json") {
                v["threads"][0]["regs"] = json!([1, 2, 3]);
            }
        }),
        ("xstate", |rel, v| {
            if rel.ends_with("core.json") {
                v["threads"][0]["xstate"] = json!("7f0é");
            }
        }),
        ("pending signal", |rel, v| {
            if rel.ends_with("core.json") {
                v["signals"]["shared_pending"] = json!(["0c00"]);
            }
        }),
    ];
    for (needle, edit) in cases {
        let dir = scratch();
        let sf = write_sample(&dir.path().join("sf"), edit);
        Statefile::open(&sf, Verify::Full).expect("the records parse");
        let err = cpr::engine::restart::validate::load(std::slice::from_ref(&sf), 0)
            .err()
            .unwrap_or_else(|| panic!("{needle}: accepted"));
        let text = err.to_string();
        assert!(
            text.contains(&sf.display().to_string())
                && text.contains(&format!("process {PID}"))
                && text.contains(needle),
            "{needle}: {text}"
        );
    }
}

/// Runs of shared memory or SysV segment pages outside their object (restore computes
/// offsets from them, which overflowed) are refused before anything is created.
#[test]
fn shared_memory_runs_outside_their_object_are_refused() {
    type Edit = fn(&str, &mut Value);
    let cases: [(&str, Edit); 2] = [
        ("shmid 5: pages 18446744073709551615+2", |rel, v| {
            if rel == SHM_INDEX {
                v["segments"][0]["runs"] = json!([[u64::MAX, 2]]);
            }
        }),
        ("shared memory 9: bytes 4096+1", |rel, v| {
            if rel == SHARED_TABLE {
                v["mems"][0]["runs"] = json!([[4096, 1]]);
            }
        }),
    ];
    for (needle, edit) in cases {
        let dir = scratch();
        let sf = write_sample(&dir.path().join("sf"), edit);
        let err = cpr::engine::restart::validate::load(std::slice::from_ref(&sf), 0)
            .err()
            .unwrap_or_else(|| panic!("{needle}: accepted"));
        let text = err.to_string();
        assert!(
            text.contains(&sf.display().to_string()) && text.contains(needle),
            "{needle}: {text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn damaged_records_are_errors_never_panics(
        which in 0..6usize,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = scratch();
        let sf = dir.path().join("sf");
        copy_tree(template(), &sf);
        plant_links(&sf);
        let rel = &json_files()[which];
        let mut bytes = std::fs::read(sf.join(rel)).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        forge(&sf, rel, &bytes);
        read_everything(&sf);
    }
}

// ---------------------------------------------------------------- revision 1

/// Removes what was added to the records while revision 1 was current.
fn as_revision_one(rel: &str, v: &mut Value) {
    let drop_field = |v: &mut Value, key: &str| {
        v.as_object_mut().unwrap().remove(key);
    };
    if rel == MANIFEST {
        v["revision"] = 1.into();
    } else if rel == layout::core_path(PID) {
        drop_field(v, "locks");
        drop_field(v, "posix_timers");
        for fd in v["fds"].as_array_mut().unwrap() {
            drop_field(fd, "shared");
        }
    } else if rel == layout::mm_path(PID) {
        drop_field(v, "components");
    }
}

#[test]
fn revision_one_statefile_reads_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_sample(&dir.path().join("old"), as_revision_one);
    let sf = Statefile::open(&path, Verify::Full).unwrap();
    assert_eq!(sf.manifest.revision, 1);
    let core: CoreRecord = sf.read_json(&layout::core_path(PID)).unwrap();
    assert!(core.locks.is_empty() && core.posix_timers.is_empty());
    assert!(core.fds.iter().all(|f| f.shared.is_none()));
    assert_eq!(core.fds.len(), 8);
    let mm: MmRecord = sf.read_json(&layout::mm_path(PID)).unwrap();
    assert!(mm.components.is_empty());
    assert_eq!(mm.vmas.len(), 5);
    assert!(info::render_text(&sf).contains("Revision:       1 (cpr 0.1.0)"));
}

#[test]
fn unknown_revisions_are_refused_naming_both() {
    for revision in [0, REVISION + 1, u32::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_sample(&dir.path().join("sf"), |rel, v| {
            if rel == MANIFEST {
                v["revision"] = revision.into();
            }
        });
        let e = Statefile::open(&path, Verify::Sizes).unwrap_err();
        assert_eq!(e.kind, cpr::Kind::CheckpointError);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: Checkpoint error: statefile revision {revision} (written by cpr 0.1.0), this cpr reads revisions 1 to {REVISION}",
                path.display()
            )
        );
        // still a statefile its owner may remove
        assert_eq!(reader::probe(&path).unwrap().revision, revision);
    }
}
