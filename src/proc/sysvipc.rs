//! `/proc/sysvipc/shm`: a header line, then one line per System V shared memory segment
//! (`key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap`,
//! perms in octal; keys above 0x7fffffff print negative). `/proc/sysvipc/sem`
//! (`key semid perms nsems uid gid cuid cgid otime ctime`) and `/proc/sysvipc/msg`
//! (`key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime`), for
//! the sets and queues a checkpoint refuses.

use super::malformed;
use crate::error::{Error, Result};

pub const SHM_PATH: &str = "/proc/sysvipc/shm";

/// One segment: the columns cpr uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmInfo {
    pub key: i32,
    pub shmid: i32,
    /// Permission bits with SHM_DEST and SHM_LOCKED.
    pub mode: u32,
    pub size: u64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

/// Parses the table. A line that does not parse is an error naming its number and the
/// column.
pub fn parse_shm(text: &str) -> Result<Vec<ShmInfo>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() || f[0] == "key" {
            continue;
        }
        let bad = |what: String| malformed("sysvipc/shm", format!("line {}: {what}", n + 1));
        if f.len() < 11 {
            return Err(bad(format!("{} columns, not 16: '{line}'", f.len())));
        }
        fn column<T: std::str::FromStr>(
            f: &[&str],
            i: usize,
            name: &str,
            bad: &dyn Fn(String) -> Error,
        ) -> Result<T> {
            f[i].parse()
                .map_err(|_| bad(format!("{name} '{}' is not a number", f[i])))
        }
        let mode_ok = f[2].bytes().all(|b| (b'0'..=b'7').contains(&b));
        out.push(ShmInfo {
            key: column(&f, 0, "key", &bad)?,
            shmid: column(&f, 1, "shmid", &bad)?,
            mode: mode_ok
                .then(|| u32::from_str_radix(f[2], 8).ok())
                .flatten()
                .ok_or_else(|| bad(format!("perms '{}' is not octal", f[2])))?,
            size: column(&f, 3, "size", &bad)?,
            cpid: column(&f, 4, "cpid", &bad)?,
            lpid: column(&f, 5, "lpid", &bad)?,
            nattch: column(&f, 6, "nattch", &bad)?,
            uid: column(&f, 7, "uid", &bad)?,
            gid: column(&f, 8, "gid", &bad)?,
            cuid: column(&f, 9, "cuid", &bad)?,
            cgid: column(&f, 10, "cgid", &bad)?,
        });
    }
    Ok(out)
}

/// Every segment of this IPC namespace.
pub fn read_shm() -> Result<Vec<ShmInfo>> {
    let text = std::fs::read_to_string(SHM_PATH).map_err(|e| Error::io(SHM_PATH, e))?;
    parse_shm(&text).map_err(|e| e.context(SHM_PATH))
}

pub const SEM_PATH: &str = "/proc/sysvipc/sem";
pub const MSG_PATH: &str = "/proc/sysvipc/msg";

/// One semaphore set: the columns cpr uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemInfo {
    pub key: i32,
    pub semid: i32,
    pub nsems: u32,
}

/// One message queue: the columns cpr uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgInfo {
    pub key: i32,
    pub msqid: i32,
    pub qnum: u64,
    /// The last process to send, and to receive.
    pub lspid: i32,
    pub lrpid: i32,
}

/// The number columns of each line of table `name` with `columns` columns (after the
/// header); the first `used` are parsed as i64 (the rest are times cpr does not use).
fn rows(text: &str, name: &str, columns: usize, used: usize) -> Result<Vec<Vec<i64>>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() || (n == 0 && f[0] == "key") {
            continue;
        }
        let bad = |what: String| malformed(name, format!("line {}: {what}", n + 1));
        if f.len() != columns {
            return Err(bad(format!("{} columns, not {columns}: '{line}'", f.len())));
        }
        let mut row = Vec::with_capacity(used);
        for (i, v) in f.iter().take(used).enumerate() {
            row.push(
                v.parse::<i64>()
                    .map_err(|_| bad(format!("column {} '{v}' is not a number", i + 1)))?,
            );
        }
        out.push(row);
    }
    Ok(out)
}

fn int<T: TryFrom<i64>>(v: i64, name: &str, what: &str) -> Result<T> {
    T::try_from(v).map_err(|_| malformed(name, format!("{what} {v} out of range")))
}

pub fn parse_sem(text: &str) -> Result<Vec<SemInfo>> {
    let name = "sysvipc/sem";
    rows(text, name, 10, 4)?
        .into_iter()
        .map(|r| {
            Ok(SemInfo {
                key: int(r[0], name, "key")?,
                semid: int(r[1], name, "semid")?,
                nsems: int(r[3], name, "nsems")?,
            })
        })
        .collect()
}

pub fn parse_msg(text: &str) -> Result<Vec<MsgInfo>> {
    let name = "sysvipc/msg";
    rows(text, name, 14, 7)?
        .into_iter()
        .map(|r| {
            Ok(MsgInfo {
                key: int(r[0], name, "key")?,
                msqid: int(r[1], name, "msqid")?,
                qnum: int(r[4], name, "qnum")?,
                lspid: int(r[5], name, "lspid")?,
                lrpid: int(r[6], name, "lrpid")?,
            })
        })
        .collect()
}

/// Every semaphore set of this IPC namespace.
pub fn read_sem() -> Result<Vec<SemInfo>> {
    let text = std::fs::read_to_string(SEM_PATH).map_err(|e| Error::io(SEM_PATH, e))?;
    parse_sem(&text).map_err(|e| e.context(SEM_PATH))
}

/// Every message queue of this IPC namespace.
pub fn read_msg() -> Result<Vec<MsgInfo>> {
    let text = std::fs::read_to_string(MSG_PATH).map_err(|e| Error::io(MSG_PATH, e))?;
    parse_msg(&text).map_err(|e| e.context(MSG_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
 305441741          0   640                 10000 24520 24520      2     0     0     0     0 1795319253          0 1795319253                  4096                     0
         0      32769  1600                  8192 24520 24521      1 65534 65534     0     0 1795319253          0 1795319253                     0                     0
-559038737          5  2666                  4096   100   100      0  1000   100  1000   100          0          0 1795319253                     0                     0
";

    use crate::sys::shm::{SHM_DEST, SHM_LOCKED};

    #[test]
    fn parses_the_kernel_table() {
        let t = parse_shm(TABLE).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            ShmInfo {
                key: 0x1234abcd,
                shmid: 0,
                mode: 0o640,
                size: 10000,
                cpid: 24520,
                lpid: 24520,
                nattch: 2,
                uid: 0,
                gid: 0,
                cuid: 0,
                cgid: 0,
            }
        );
        assert_eq!(t[1].shmid, 32769);
        assert_eq!(t[1].mode & SHM_DEST, SHM_DEST);
        assert_eq!((t[1].uid, t[1].lpid), (65534, 24521));
        // keys above 0x7fffffff print negative
        assert_eq!(t[2].key as u32, 0xdeadbeef);
        assert_eq!(t[2].mode & SHM_LOCKED, SHM_LOCKED);
        assert_eq!(t[2].mode & 0o777, 0o666);
    }

    #[test]
    fn empty_table_and_bad_lines() {
        assert_eq!(parse_shm(TABLE.lines().next().unwrap()).unwrap(), vec![]);
        assert_eq!(parse_shm("").unwrap(), vec![]);
        for (text, want) in [
            (
                "key shmid\n 1 2 999 4096 1 1 0 0 0 0 0 0 0 0 0 0\n",
                "line 2: perms '999' is not octal",
            ),
            (" 1 2 600 4096\n", "line 1: 4 columns"),
            (
                " x 2 600 4096 1 1 0 0 0 0 0 0 0 0 0 0\n",
                "line 1: key 'x' is not a number",
            ),
            (
                " 1 2 600 4096 1 1 0 -1 0 0 0 0 0 0 0 0\n",
                "uid '-1' is not a number",
            ),
            (
                " 1 4294967296 600 4096 1 1 0 0 0 0 0 0 0 0 0 0\n",
                "shmid '4294967296'",
            ),
        ] {
            let msg = parse_shm(text).expect_err(text).to_string();
            assert!(msg.contains("malformed sysvipc/shm"), "{msg}");
            assert!(msg.contains(want), "{msg:?} wanted {want:?}");
        }
    }

    #[test]
    fn this_system_table_parses() {
        read_shm().unwrap();
        read_sem().unwrap();
        read_msg().unwrap();
    }

    #[test]
    fn semaphore_and_message_tables() {
        let sem =
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
         0          3   600          2     0     0     0     0 1795319253 1795319253
";
        assert_eq!(
            parse_sem(sem).unwrap(),
            vec![SemInfo {
                key: 0,
                semid: 3,
                nsems: 2
            }]
        );
        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
 -559038737          1   600           5          1   321   322     0     0     0     0 1795319253          0 1795319253
";
        let m = parse_msg(msg).unwrap();
        assert_eq!((m[0].key as u32, m[0].msqid, m[0].qnum), (0xdeadbeef, 1, 1));
        assert_eq!((m[0].lspid, m[0].lrpid), (321, 322));
        for bad in [
            " 0 3 600 2 0 0\n",
            " 0 x 600 2 0 0 0 0 1 1\n",
            " 0 3 600 -2 0 0 0 0 1 1\n",
        ] {
            let e = parse_sem(bad).expect_err(bad).to_string();
            assert!(e.contains("malformed sysvipc/sem"), "{e}");
        }
    }
}
