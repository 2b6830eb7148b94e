//! The statefile directory: atomic writer, validating reader, `cpr -D`, `cpr -i`.
//! Every test works in its own temporary directory; a few mount a small tmpfs (we are
//! root) for full and read-only filesystems.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cpr::attrfile::{DirAction, FileAction, FileRule, ForkAction, ProcessPolicies, WillAction};
use cpr::statefile::info::{render_json, render_text};
use cpr::statefile::reader::Verify;
use cpr::statefile::{
    Flags, MANIFEST, Manifest, OpenFileSummary, Owner, ProcessSummary, REVISION, Statefile,
    StatefileWriter, remove,
};
use cpr::{Error, Kind};

// ---------------------------------------------------------------- fixtures

const ROOT: Owner = Owner { uid: 0, gid: 0 };
const NOBODY: Owner = Owner {
    uid: 65534,
    gid: 65534,
};

fn policies() -> ProcessPolicies {
    ProcessPolicies {
        will: WillAction::Exit,
        cdir: DirAction::Replace,
        rdir: DirAction::Ignore,
        fork: ForkAction::Original,
        files: vec![
            FileRule {
                pattern: Some("/tmp/*".into()),
                action: FileAction::Ignore,
            },
            FileRule {
                pattern: None,
                action: FileAction::Merge,
            },
        ],
        sockets: vec![],
    }
}

fn process(
    pid: i32,
    ppid: i32,
    args: &[&str],
    files: &[(i32, &str, FileAction)],
) -> ProcessSummary {
    ProcessSummary {
        pid,
        ppid,
        pgid: 4000,
        sid: 3999,
        uids: [1000, 1001, 1000, 1000],
        gids: [100, 101, 100, 100],
        command: args
            .first()
            .map(|a| a.rsplit('/').next().unwrap().to_string())
            .unwrap_or_else(|| "kworker".into()),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: "/home/alice/work".into(),
        root: "/".into(),
        threads: 3,
        open_files: files
            .iter()
            .map(|&(fd, path, action)| OpenFileSummary {
                fd,
                path: path.into(),
                action,
                disposition: None,
            })
            .collect(),
        policies: policies(),
    }
}

fn manifest(owner: Owner) -> Manifest {
    Manifest {
        revision: REVISION,
        cpr_version: env!("CARGO_PKG_VERSION").into(),
        created: "2024-09-07T12:34:56Z".into(),
        host: "testhost".into(),
        kernel: "6.18.0".into(),
        owner,
        designators: "4000:GID".into(),
        flags: Flags {
            will: WillAction::Exit,
            upgrade: false,
            compression: None,
        },
        processes: vec![
            process(
                4000,
                1,
                &["/usr/bin/simulate", "--steps", "1000"],
                &[
                    (0, "/dev/null", FileAction::Merge),
                    (3, "/home/alice/out.log", FileAction::Append),
                    (4, "/tmp/scratch", FileAction::Ignore),
                ],
            ),
            process(
                4001,
                4000,
                &["/usr/bin/helper"],
                &[(5, "/home/alice/input.dat", FileAction::Replace)],
            ),
        ],
        files: vec![],
    }
}

/// Page-like data that is not all the same byte.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Core {
    pid: i32,
    regs: Vec<u64>,
}

/// Writes a small statefile with a core record, page data and a shared object.
fn write_sample(target: &Path, force: bool, owner: Owner, tag: &str) -> PathBuf {
    let mut w = StatefileWriter::create(target, force, owner).unwrap();
    w.write_json(
        "proc/4000/core",
        &Core {
            pid: 4000,
            regs: vec![1, 2, 3],
        },
    )
    .unwrap();
    let mut sink = w.create_file("proc/4000/pages").unwrap();
    sink.append(&pattern(10_000)).unwrap();
    sink.pad_to(4096).unwrap();
    sink.append(&pattern(4096)).unwrap();
    w.finish_file(sink).unwrap();
    w.write_file("shared/pipe-7", tag.as_bytes()).unwrap();
    w.write_file(&format!("files/{tag}"), b"saved copy")
        .unwrap();
    w.commit(manifest(owner)).unwrap()
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn open_err(path: &Path, verify: Verify) -> Error {
    match Statefile::open(path, verify) {
        Ok(_) => panic!("{} opened as a valid statefile", path.display()),
        Err(e) => e,
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {} failed", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------- write and read

#[test]
fn written_statefile_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckptSep7");
    let path = write_sample(&target, false, ROOT, "one");
    assert_eq!(path, target);
    // Nothing else is left in the parent: no staging directory.
    assert_eq!(names(dir.path()), ["ckptSep7"]);

    let sf = Statefile::open(&target, Verify::Full).unwrap();
    assert_eq!(sf.manifest.processes, manifest(ROOT).processes);
    let listed: Vec<&str> = sf.manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        listed,
        [
            "files/one",
            "proc/4000/core",
            "proc/4000/pages",
            "shared/pipe-7"
        ]
    );
    let core: Core = sf.read_json("proc/4000/core").unwrap();
    assert_eq!(core.regs, [1, 2, 3]);
    let pages = sf.read("proc/4000/pages").unwrap();
    assert_eq!(pages.len(), 12288 + 4096);
    assert_eq!(&pages[..10_000], &pattern(10_000)[..]);
    assert!(pages[10_000..12288].iter().all(|&b| b == 0));
    assert_eq!(&pages[12288..], &pattern(4096)[..]);
    assert_eq!(sf.entry("proc/4000/pages").unwrap().size, 16384);
    assert_eq!(sf.read("shared/pipe-7").unwrap(), b"one");

    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // MANIFEST is pretty JSON a person can read.
    let text = std::fs::read_to_string(target.join(MANIFEST)).unwrap();
    assert!(text.contains("\n  \"revision\": "), "{text}");
}

#[test]
fn large_streamed_file_hashes_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big");
    let mut w = StatefileWriter::create(&target, false, ROOT).unwrap();
    let mut sink = w.create_file("proc/1/pages").unwrap();
    let block = pattern(1 << 20);
    for i in 0..24u8 {
        let mut b = block.clone();
        b[0] = i;
        sink.write_all(&b).unwrap();
    }
    assert_eq!(sink.position(), 24 << 20);
    assert!(sink.file().metadata().unwrap().len() == 24 << 20);
    w.finish_file(sink).unwrap();
    w.commit(manifest(ROOT)).unwrap();
    Statefile::open(&target, Verify::Full).unwrap();
    // One flipped byte deep inside is found.
    let p = target.join("proc/1/pages");
    let mut data = std::fs::read(&p).unwrap();
    data[(17 << 20) + 5] ^= 0x01;
    std::fs::write(&p, &data).unwrap();
    let e = open_err(&target, Verify::Full);
    assert!(
        e.to_string().ends_with("proc/1/pages: checksum mismatch"),
        "{e}"
    );
}

#[test]
fn files_and_directories_belong_to_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nobodys");
    write_sample(&target, false, NOBODY, "x");
    for rel in [
        "",
        "MANIFEST",
        "proc",
        "proc/4000",
        "proc/4000/pages",
        "shared/pipe-7",
    ] {
        let md = std::fs::symlink_metadata(target.join(rel)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534), "{rel}");
        let want = if md.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(md.permissions().mode() & 0o777, want, "{rel}");
    }
}

// ---------------------------------------------------------------- create refusals

#[test]
fn existing_target_without_force_is_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    let e = StatefileWriter::create(&target, false, ROOT).err().unwrap();
    assert_eq!(e.kind, Kind::FileExists);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: File exists", target.display())),
        "{msg}"
    );
    assert!(msg.contains("-f"), "{msg}");

    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"x").unwrap();
    let e = StatefileWriter::create(&file, false, ROOT).err().unwrap();
    assert_eq!(e.kind, Kind::FileExists);
    assert_eq!(names(dir.path()), ["plainfile", "taken"]);
}

#[test]
fn target_appearing_before_commit_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("race");
    let mut w = StatefileWriter::create(&target, false, ROOT).unwrap();
    w.write_file("a", b"a").unwrap();
    // An empty directory: plain rename(2) would silently replace it.
    std::fs::create_dir(&target).unwrap();
    let e = w.commit(manifest(ROOT)).unwrap_err();
    assert_eq!(e.kind, Kind::FileExists);
    assert!(names(&target).is_empty());
    assert_eq!(names(dir.path()), ["race"]);
}

#[test]
fn parent_directory_problems_get_irix_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.path().join("nodir/sf"), "No such file or directory"),
        (dir.path().join("afile/sf"), "Not a directory"),
        (dir.path().join("x".repeat(300)), "Filename too long"),
        (dir.path().join("loop/sf"), "Too many symbolic links"),
    ];
    std::fs::write(dir.path().join("afile"), b"").unwrap();
    std::os::unix::fs::symlink("loop", dir.path().join("loop")).unwrap();
    for (target, text) in cases {
        let e = StatefileWriter::create(&target, false, ROOT).err().unwrap();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("{}: {text}", target.display())),
            "{msg}"
        );
    }
    assert_eq!(names(dir.path()), ["afile", "loop"]);
}

#[test]
fn read_only_filesystem_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _m = Tmpfs::mount(dir.path(), "ro,size=1m");
    let target = dir.path().join("sf");
    let e = StatefileWriter::create(&target, false, ROOT).err().unwrap();
    assert_eq!(e.kind, Kind::ReadOnlyFs);
    assert!(e.to_string().contains("Read-only file system"), "{e}");
}

// ---------------------------------------------------------------- force

#[test]
fn force_replaces_an_old_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    write_sample(&target, false, ROOT, "old");
    write_sample(&target, true, ROOT, "new");
    assert_eq!(names(dir.path()), ["sf"]);
    let sf = Statefile::open(&target, Verify::Full).unwrap();
    assert_eq!(sf.read("shared/pipe-7").unwrap(), b"new");
    assert!(sf.entry("files/old").is_none());
    assert!(!target.join("files/old").exists());
    assert!(target.join("files/new").exists());
}

#[test]
fn force_never_replaces_what_is_not_a_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("alice")).unwrap();
    std::fs::write(home.join("alice/thesis.tex"), b"precious").unwrap();
    let e = StatefileWriter::create(&home, true, ROOT).err().unwrap();
    assert_eq!(e.kind, Kind::FileExists);
    assert!(e.to_string().contains("not a cpr statefile"), "{e}");

    // A MANIFEST that is not a statefile's does not count either.
    std::fs::write(home.join(MANIFEST), b"Manifest-Version: 1.0\n").unwrap();
    assert!(StatefileWriter::create(&home, true, ROOT).is_err());
    // Nor a plain file.
    let file = dir.path().join("notes");
    std::fs::write(&file, b"keep").unwrap();
    assert!(StatefileWriter::create(&file, true, ROOT).is_err());

    assert_eq!(
        std::fs::read(home.join("alice/thesis.tex")).unwrap(),
        b"precious"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    assert_eq!(names(dir.path()), ["home", "notes"]);
}

#[test]
fn force_rechecks_the_target_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    write_sample(&target, false, ROOT, "old");
    let mut w = StatefileWriter::create(&target, true, ROOT).unwrap();
    w.write_file("a", b"a").unwrap();
    // Meanwhile someone puts their own directory there.
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("data"), b"theirs").unwrap();
    assert!(w.commit(manifest(ROOT)).is_err());
    assert_eq!(std::fs::read(target.join("data")).unwrap(), b"theirs");
    assert_eq!(names(dir.path()), ["sf"]);
}

// ---------------------------------------------------------------- damage

/// A fresh sample statefile in its own temporary directory.
fn sample() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    write_sample(&target, false, ROOT, "t");
    (dir, target)
}

fn expect_damage(path: &Path, verify: Verify, ending: &str) {
    let e = open_err(path, verify);
    let msg = e.to_string();
    assert_eq!(e.kind, Kind::CheckpointError, "{msg}");
    assert!(
        msg.starts_with(&format!(
            "{}: Checkpoint error: statefile damaged: ",
            path.display()
        )),
        "{msg}"
    );
    assert!(msg.ends_with(ending), "{msg}");
}

#[test]
fn truncated_file_is_damage() {
    let (_d, sf) = sample();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(sf.join("proc/4000/pages"))
        .unwrap();
    f.set_len(5000).unwrap();
    expect_damage(
        &sf,
        Verify::Sizes,
        "proc/4000/pages: size 5000, expected 16384",
    );
    expect_damage(
        &sf,
        Verify::Full,
        "proc/4000/pages: size 5000, expected 16384",
    );
}

#[test]
fn flipped_byte_is_a_checksum_mismatch() {
    let (_d, sf) = sample();
    let p = sf.join("proc/4000/pages");
    let mut data = std::fs::read(&p).unwrap();
    data[12345] ^= 0x80;
    std::fs::write(&p, &data).unwrap();
    // Sizes alone cannot see it; a full check does.
    Statefile::open(&sf, Verify::Sizes).unwrap();
    expect_damage(&sf, Verify::Full, "proc/4000/pages: checksum mismatch");
}

#[test]
fn a_record_changed_after_the_check_is_refused_when_read() {
    let (_d, sf) = sample();
    // fully checked first; then the record is changed in place, size kept (a swap
    // between the check and the use)
    let opened = Statefile::open(&sf, Verify::Full).unwrap();
    assert!(opened.read("proc/4000/core").is_ok());
    let p = sf.join("proc/4000/core");
    let mut data = std::fs::read(&p).unwrap();
    data[0] ^= 0x01;
    std::fs::write(&p, &data).unwrap();
    let e = opened.read("proc/4000/core").unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind, Kind::CheckpointError, "{msg}");
    assert!(
        msg.ends_with("statefile damaged: proc/4000/core: checksum mismatch"),
        "{msg}"
    );
    // put back, the same bytes read again
    data[0] ^= 0x01;
    std::fs::write(&p, &data).unwrap();
    assert_eq!(opened.read("proc/4000/core").unwrap(), data);
}

#[test]
fn missing_file_is_damage() {
    let (_d, sf) = sample();
    std::fs::remove_file(sf.join("shared/pipe-7")).unwrap();
    expect_damage(&sf, Verify::Sizes, "shared/pipe-7: missing");
}

#[test]
fn extra_files_are_ignored() {
    let (_d, sf) = sample();
    std::fs::write(sf.join("README"), b"notes by a person").unwrap();
    Statefile::open(&sf, Verify::Full).unwrap();
}

#[test]
fn missing_manifest_is_not_a_statefile() {
    let (_d, sf) = sample();
    std::fs::remove_file(sf.join(MANIFEST)).unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: Invalid argument: not a cpr statefile (no MANIFEST)",
            sf.display()
        )
    );
    // A plain file neither.
    let f = sf.join("proc/4000/core");
    let e = open_err(&f, Verify::Sizes);
    assert!(
        e.to_string().ends_with("not a cpr statefile (no MANIFEST)"),
        "{e}"
    );
    // And a path that is not there says so.
    let e = open_err(&sf.join("nothere"), Verify::Sizes);
    assert_eq!(e.kind, Kind::NoSuchFile);
}

#[test]
fn garbage_manifest_is_damage_naming_it() {
    let (_d, sf) = sample();
    std::fs::write(sf.join(MANIFEST), b"{\"revision\": 1, \"host\": ").unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert!(
        e.to_string().starts_with(&format!(
            "{}: Checkpoint error: statefile damaged: MANIFEST: ",
            sf.display()
        )),
        "{e}"
    );
    // Valid JSON that is not a manifest.
    std::fs::write(sf.join(MANIFEST), b"{\"revision\": 1}").unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert!(
        e.to_string()
            .contains("statefile damaged: MANIFEST: missing field"),
        "{e}"
    );
}

#[test]
fn future_revision_is_refused_naming_both() {
    let (_d, sf) = sample();
    let mpath = sf.join(MANIFEST);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    v["revision"] = (REVISION + 1).into();
    v["cpr_version"] = "9.9.9".into();
    std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: Checkpoint error: statefile revision {} (written by cpr 9.9.9), this cpr reads revisions 1 to {}",
            sf.display(),
            REVISION + 1,
            REVISION
        )
    );
}

#[test]
fn revision_one_is_still_read_and_zero_is_not() {
    let (_d, sf) = sample();
    let mpath = sf.join(MANIFEST);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    v["revision"] = 1.into();
    std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
    let s = Statefile::open(&sf, Verify::Full).unwrap();
    assert_eq!(s.manifest.revision, 1);
    v["revision"] = 0.into();
    std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert_eq!(e.kind, Kind::CheckpointError);
    assert!(
        e.to_string().ends_with(&format!(
            "statefile revision 0 (written by cpr {}), this cpr reads revisions 1 to {REVISION}",
            env!("CARGO_PKG_VERSION")
        )),
        "{e}"
    );
}

#[test]
fn manifest_naming_files_outside_is_damage() {
    let (_d, sf) = sample();
    let mpath = sf.join(MANIFEST);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    v["files"][0]["path"] = "../../etc/passwd".into();
    std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = open_err(&sf, Verify::Sizes);
    assert!(e.to_string().contains("bad file name"), "{e}");
}

#[test]
fn names_from_records_are_checked_where_they_are_joined() {
    let (_d, sf) = sample();
    let s = Statefile::open(&sf, Verify::Sizes).unwrap();
    for bad in [
        "../../etc/passwd",
        "/etc/passwd",
        "shared/../../x",
        "",
        "a//b",
    ] {
        for e in [s.file(bad).unwrap_err(), s.read(bad).unwrap_err()] {
            assert_eq!(e.kind, Kind::CheckpointError, "{bad:?}");
            assert!(
                e.to_string()
                    .contains(&format!("statefile damaged: bad file name {bad:?}")),
                "{e}"
            );
        }
    }
    // a symbolic link on the way, to a directory or to a file, leads out: refused, as
    // is any name the MANIFEST does not list (its checksum was never checked)
    std::os::unix::fs::symlink("/etc", sf.join("shared/out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", sf.join("files/passwd")).unwrap();
    for escape in ["shared/out/passwd", "files/passwd", "proc/9/pages"] {
        let e = s.read(escape).unwrap_err();
        assert!(
            e.to_string().ends_with(&format!(
                "statefile damaged: {escape}: not listed in MANIFEST"
            )),
            "{e}"
        );
    }
    assert_eq!(s.file("shared/pipe-7").unwrap(), sf.join("shared/pipe-7"));
}

#[test]
fn listed_file_behind_a_linked_directory_is_damage() {
    let (dir, sf) = sample();
    // the same files, reached through a symbolic link: sizes and checksums match
    let outside = dir.path().join("outside");
    std::fs::rename(sf.join("shared"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, sf.join("shared")).unwrap();
    let e = open_err(&sf, Verify::Full);
    assert!(
        e.to_string()
            .ends_with("statefile damaged: shared/pipe-7: leads through a symbolic link"),
        "{e}"
    );
}

#[test]
fn unreadable_record_names_the_file() {
    let (_d, sf) = sample();
    let s = Statefile::open(&sf, Verify::Sizes).unwrap();
    let e = s.read_json::<Core>("shared/pipe-7").unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: Checkpoint error: statefile damaged: shared/pipe-7: ",
            sf.display()
        )),
        "{e}"
    );
    let e = s.read_json::<Core>("proc/9/core").unwrap_err();
    assert!(
        e.to_string()
            .ends_with("proc/9/core: not listed in MANIFEST"),
        "{e}"
    );
}

// ---------------------------------------------------------------- interrupted writers

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    {
        let mut w = StatefileWriter::create(&target, false, ROOT).unwrap();
        w.write_file("proc/1/core", b"{}").unwrap();
        let mut sink = w.create_file("proc/1/pages").unwrap();
        sink.append(&pattern(100_000)).unwrap();
        assert!(w.staging.exists());
        // dropped here, sink unfinished
        drop(sink);
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn dropped_forced_writer_keeps_the_old_statefile() {
    let (dir, sf) = sample();
    {
        let mut w = StatefileWriter::create(&sf, true, ROOT).unwrap();
        w.write_file("shared/pipe-7", b"new").unwrap();
    }
    assert_eq!(names(dir.path()), ["sf"]);
    let s = Statefile::open(&sf, Verify::Full).unwrap();
    assert_eq!(s.read("shared/pipe-7").unwrap(), b"t");
}

const SLOW_WRITER: &str = "CPR_TEST_SLOW_WRITER";

/// Not a test of its own: run (an ignored test) by `kill_writer_midway` in a child test
/// process with SLOW_WRITER set, which it kills with SIGKILL in the middle of writing.
#[test]
#[ignore = "the child side of kill_writer_midway(), run by it"]
fn helper_slow_writer() {
    let target = std::env::var_os(SLOW_WRITER).unwrap_or_else(|| {
        panic!("helper_slow_writer is run by kill_writer_midway(), with {SLOW_WRITER} set")
    });
    let target = PathBuf::from(target);
    let mut w = StatefileWriter::create(&target, true, ROOT).unwrap();
    w.write_file("proc/1/core", b"{\"pid\": 1}").unwrap();
    let mut sink = w.create_file("proc/1/pages").unwrap();
    sink.append(&pattern(1 << 20)).unwrap();
    // Go on writing (bounded) in another thread while this one waits for the parent,
    // which kills us; if the parent goes away instead, stdin ends and we return.
    let writing = std::thread::spawn(move || {
        let block = pattern(4096);
        for _ in 0..16384 {
            if sink.append(&block).is_err() {
                break;
            }
        }
        sink
    });
    // libtest has printed "test helper_slow_writer ... " without a newline before us.
    println!("\nSTAGING {}\nREADY", w.staging.display());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(writing);
}

fn kill_writer_midway(target: &Path) -> PathBuf {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_slow_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SLOW_WRITER, target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut staging = None;
    loop {
        let line = lines
            .next()
            .expect("the writer ended before it started writing")
            .unwrap();
        if let Some((_, p)) = line.split_once("STAGING ") {
            staging = Some(PathBuf::from(p));
        }
        if line == "READY" {
            break;
        }
    }
    let staging = staging.expect("the writer named its staging directory");
    child.kill().unwrap(); // SIGKILL: no destructor runs
    let status = child.wait().unwrap();
    assert!(!status.success());
    staging
}

#[test]
fn killed_writer_leaves_no_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    let staging = kill_writer_midway(&target);
    assert!(!target.exists());
    assert_eq!(open_err(&target, Verify::Sizes).kind, Kind::NoSuchFile);
    // What it left is hidden, marked partial, and not a statefile.
    assert!(staging.exists());
    let name = staging.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(".sf.cpr-partial-"), "{name}");
    assert!(staging.join("proc/1/pages").exists());
    let e = open_err(&staging, Verify::Sizes);
    assert!(
        e.to_string().ends_with("not a cpr statefile (no MANIFEST)"),
        "{e}"
    );
    // cpr -D refuses it too (it is not a statefile).
    assert!(remove(&staging, 0).is_err());
    assert!(staging.exists());
}

#[test]
fn killed_forced_writer_keeps_the_old_statefile() {
    let (_d, sf) = sample();
    let staging = kill_writer_midway(&sf);
    let s = Statefile::open(&sf, Verify::Full).unwrap();
    assert_eq!(s.read("shared/pipe-7").unwrap(), b"t");
    assert!(
        open_err(&staging, Verify::Sizes)
            .to_string()
            .contains("no MANIFEST")
    );
}

// ---------------------------------------------------------------- full disk

#[test]
fn full_disk_is_no_space_left_naming_the_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let _m = Tmpfs::mount(dir.path(), "size=1m");
    let target = dir.path().join("sf");
    let data = pattern(4 << 20);

    let mut w = StatefileWriter::create(&target, false, ROOT).unwrap();
    let e = w.write_file("proc/1/pages", &data).unwrap_err();
    assert_eq!(e.kind, Kind::NoSpace);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: No space left on device: proc/1/pages",
            target.display()
        )
    );
    drop(w);
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

    // Streaming through the Write impl gives the raw errno, which maps the same way.
    let mut w = StatefileWriter::create(&target, false, ROOT).unwrap();
    let mut sink = w.create_file("proc/1/pages").unwrap();
    let io = sink.write_all(&data).unwrap_err();
    let e = Error::io(target.display().to_string(), io);
    assert!(e.to_string().contains("No space left on device"), "{e}");
    drop(sink);
    drop(w);
    assert!(!target.exists());
    assert!(names(dir.path()).is_empty());
}

// ---------------------------------------------------------------- cpr -D

#[test]
fn owner_removes_their_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    write_sample(&target, false, NOBODY, "x");
    remove(&target, 65534).unwrap();
    assert!(!target.exists());
    assert!(names(dir.path()).is_empty());
}

#[test]
fn another_user_may_not_remove() {
    let (_d, sf) = sample();
    let e = remove(&sf, 65534).unwrap_err();
    assert_eq!(e.kind, Kind::NotPermitted);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: Operation not permitted", sf.display())),
        "{e}"
    );
    Statefile::open(&sf, Verify::Full).unwrap();
}

#[test]
fn root_removes_anyones_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sf");
    write_sample(&target, false, NOBODY, "x");
    assert_eq!(remove(&target, 1000).unwrap_err().kind, Kind::NotPermitted);
    remove(&target, 0).unwrap();
    assert!(!target.exists());
}

#[test]
fn manifest_owner_alone_is_not_enough() {
    // The MANIFEST says nobody, but the directory belongs to root: nobody may not.
    let (_d, sf) = sample();
    let mpath = sf.join(MANIFEST);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    v["owner"]["uid"] = 65534.into();
    std::fs::write(&mpath, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(remove(&sf, 65534).unwrap_err().kind, Kind::NotPermitted);
    assert!(sf.join("proc/4000/pages").exists());
}

#[test]
fn damaged_statefile_can_still_be_removed() {
    let (_d, sf) = sample();
    std::fs::remove_file(sf.join("proc/4000/pages")).unwrap();
    remove(&sf, 0).unwrap();
    assert!(!sf.exists());
}

#[test]
fn remove_refuses_what_is_not_a_statefile() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("alice")).unwrap();
    std::fs::write(home.join("alice/thesis.tex"), b"precious").unwrap();
    for uid in [0, 65534] {
        let e = remove(&home, uid).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert!(e.to_string().contains("not a cpr statefile"), "{e}");
    }
    std::fs::write(home.join(MANIFEST), b"{\"revision\": 1}").unwrap();
    assert!(remove(&home, 0).is_err());
    let file = dir.path().join("notes");
    std::fs::write(&file, b"keep").unwrap();
    assert!(remove(&file, 0).is_err());
    // A link to a statefile is not removed through.
    let (_d2, sf) = sample();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&sf, &link).unwrap();
    assert!(remove(&link, 0).is_err());
    assert!(sf.join(MANIFEST).exists());

    assert_eq!(
        std::fs::read(home.join("alice/thesis.tex")).unwrap(),
        b"precious"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    assert_eq!(names(dir.path()), ["home", "link", "notes"]);
    assert_eq!(
        remove(&dir.path().join("gone"), 0).unwrap_err().kind,
        Kind::NoSuchFile
    );
}

// ---------------------------------------------------------------- cpr -i

#[test]
fn info_text_shows_processes_and_dispositions() {
    let (_d, sf) = sample();
    let s = Statefile::open(&sf, Verify::Sizes).unwrap();
    let text = render_text(&s);
    assert!(
        text.starts_with(&format!("Statefile: {}\n", sf.display())),
        "{text}"
    );
    for want in [
        &format!("Revision:       {REVISION} (cpr "),
        "Host:           testhost (kernel 6.18.0)",
        "Owner:          uid 0 (root), gid 0 (root)",
        "Designators:    4000:GID",
        "Processes:      2",
        "Checkpointed:   2024-09-0",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // The process table: one header and one row per process.
    let header = text
        .lines()
        .find(|l| l.contains("PPID"))
        .expect("table header");
    for col in [
        "PID", "PGRP", "SID", "UID", "GID", "THREADS", "CWD", "COMMAND",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("/usr/bin/simulate --steps 1000"))
        .expect("row of 4000");
    for cell in [
        "4000",
        " 1 ",
        "3999",
        "1000/1001",
        "100/101",
        "/home/alice/work",
    ] {
        assert!(row.contains(cell), "{cell:?} not in {row:?}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("4001") && l.contains("/usr/bin/helper"))
    );
    // Per process: policies and files with dispositions.
    assert!(text.contains("Process 4000 (simulate):"), "{text}");
    assert!(
        text.contains("WILL EXIT, CDIR REPLACE, RDIR IGNORE, FORK ORIGINAL"),
        "{text}"
    );
    let line_of = |path: &str| {
        text.lines()
            .find(|l| l.contains(path))
            .unwrap_or_else(|| panic!("{path} not shown in\n{text}"))
            .to_string()
    };
    assert!(line_of("/home/alice/out.log").contains("APPEND"));
    assert!(line_of("/tmp/scratch").contains("IGNORE"));
    assert!(line_of("/dev/null").contains("MERGE"));
    assert!(line_of("/home/alice/input.dat").contains("REPLACE"));
}

#[test]
fn info_json_carries_the_same_facts() {
    let (_d, sf) = sample();
    let s = Statefile::open(&sf, Verify::Sizes).unwrap();
    let text = serde_json::to_string_pretty(&render_json(&s)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["statefile"], sf.display().to_string());
    assert_eq!(v["revision"], REVISION);
    assert_eq!(v["created"], "2024-09-07T12:34:56Z");
    assert!(
        v["created_local"]
            .as_str()
            .unwrap()
            .starts_with("2024-09-0")
    );
    assert_eq!(v["owner"]["user"], "root");
    assert_eq!(v["process_count"], 2);
    assert_eq!(v["will"], "EXIT");
    let on_disk: u64 = s.manifest.files.iter().map(|f| f.size).sum::<u64>()
        + std::fs::metadata(sf.join(MANIFEST)).unwrap().len();
    assert_eq!(v["total_size"], on_disk);
    let p = &v["processes"][0];
    assert_eq!(p["pid"], 4000);
    assert_eq!(p["command_line"], "/usr/bin/simulate --steps 1000");
    assert_eq!(p["open_files"][1]["path"], "/home/alice/out.log");
    assert_eq!(p["open_files"][1]["action"], "Append");
    assert_eq!(v["processes"][1]["ppid"], 4000);
}
