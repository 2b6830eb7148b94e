//! `/proc/sysvipc/shm`: a header line, then one line per System V shared memory segment
//! (`key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime rss swap`,
//! perms in octal; keys above 0x7fffffff print negative).

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

/// One semaphore set of `/proc/sysvipc/sem`
/// (`key semid perms nsems uid gid cuid cgid otime ctime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemInfo {
    pub key: i32,
    pub semid: i32,
    pub mode: u32,
    pub nsems: u64,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

/// One message queue of `/proc/sysvipc/msg` (`key msqid perms cbytes qnum lspid lrpid
/// uid gid cuid cgid stime rtime ctime`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgInfo {
    pub key: i32,
    pub msqid: i32,
    pub mode: u32,
    pub cbytes: u64,
    pub qnum: u64,
    /// The last sender and receiver (0: none yet).
    pub lspid: i32,
    pub lrpid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
}

/// The columns of one line of a sysvipc table, checked as numbers (`perms` in octal).
struct Columns<'a> {
    f: Vec<&'a str>,
    file: &'static str,
    line: usize,
}

impl Columns<'_> {
    fn bad(&self, what: String) -> Error {
        malformed(self.file, format!("line {}: {what}", self.line))
    }

    fn num<T: std::str::FromStr>(&self, i: usize, name: &str) -> Result<T> {
        self.f[i]
            .parse()
            .map_err(|_| self.bad(format!("{name} '{}' is not a number", self.f[i])))
    }

    /// A PID column: printed unsigned.
    fn pid(&self, i: usize, name: &str) -> Result<i32> {
        let n: u32 = self.num(i, name)?;
        i32::try_from(n).map_err(|_| self.bad(format!("{name} '{n}' is no PID")))
    }

    fn octal(&self, i: usize) -> Result<u32> {
        let s = self.f[i];
        s.bytes()
            .all(|b| (b'0'..=b'7').contains(&b))
            .then(|| u32::from_str_radix(s, 8).ok())
            .flatten()
            .ok_or_else(|| self.bad(format!("perms '{s}' is not octal")))
    }
}

/// Every line of a table but its header, as `Columns` of exactly `width` columns.
fn table_lines<'a>(text: &'a str, file: &'static str, width: usize) -> Result<Vec<Columns<'a>>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() || f[0] == "key" {
            continue;
        }
        if f.len() != width {
            return Err(malformed(
                file,
                format!("line {}: {} columns, not {width}: '{line}'", n + 1, f.len()),
            ));
        }
        out.push(Columns {
            f,
            file,
            line: n + 1,
        });
    }
    Ok(out)
}

/// Parses `/proc/sysvipc/sem`.
pub fn parse_sem(text: &str) -> Result<Vec<SemInfo>> {
    table_lines(text, "sysvipc/sem", 10)?
        .iter()
        .map(|c| {
            Ok(SemInfo {
                key: c.num(0, "key")?,
                semid: c.num(1, "semid")?,
                mode: c.octal(2)?,
                nsems: c.num(3, "nsems")?,
                uid: c.num(4, "uid")?,
                gid: c.num(5, "gid")?,
                cuid: c.num(6, "cuid")?,
                cgid: c.num(7, "cgid")?,
            })
        })
        .collect()
}

/// Parses `/proc/sysvipc/msg`.
pub fn parse_msg(text: &str) -> Result<Vec<MsgInfo>> {
    table_lines(text, "sysvipc/msg", 14)?
        .iter()
        .map(|c| {
            Ok(MsgInfo {
                key: c.num(0, "key")?,
                msqid: c.num(1, "msqid")?,
                mode: c.octal(2)?,
                cbytes: c.num(3, "cbytes")?,
                qnum: c.num(4, "qnum")?,
                lspid: c.pid(5, "lspid")?,
                lrpid: c.pid(6, "lrpid")?,
                uid: c.num(7, "uid")?,
                gid: c.num(8, "gid")?,
                cuid: c.num(9, "cuid")?,
                cgid: c.num(10, "cgid")?,
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
    }
}

#[cfg(test)]
mod sem_msg_tests {
    use super::*;

    #[test]
    fn parses_the_sem_and_msg_tables() {
        let sem =
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
 305441741          3   640          2  1000   100     0     0          0 1795319253
-559038737      32772   600          1     0     0     0     0 1795319260 1795319253
";
        let t = parse_sem(sem).unwrap();
        assert_eq!(
            t[0],
            SemInfo {
                key: 0x1234abcd,
                semid: 3,
                mode: 0o640,
                nsems: 2,
                uid: 1000,
                gid: 100,
                cuid: 0,
                cgid: 0
            }
        );
        assert_eq!((t[1].key as u32, t[1].semid), (0xdeadbeef, 32772));
        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
         0          1   666         12          3  4242  4243     0     0     0     0 1795319253          0 1795319253
";
        let m = parse_msg(msg).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].msqid, m[0].mode, m[0].cbytes, m[0].qnum),
            (1, 0o666, 12, 3)
        );
        assert_eq!((m[0].lspid, m[0].lrpid), (4242, 4243));
        assert_eq!(parse_msg("").unwrap(), vec![]);
    }

    #[test]
    fn bad_sem_and_msg_lines_are_errors() {
        for (text, want) in [
            (" 1 2 600 1 0 0 0 0 0\n", "line 1: 9 columns, not 10"),
            (" 1 2 800 1 0 0 0 0 0 0\n", "perms '800' is not octal"),
            (" 1 2 600 x 0 0 0 0 0 0\n", "nsems 'x' is not a number"),
        ] {
            let msg = parse_sem(text).expect_err(text).to_string();
            assert!(
                msg.contains("malformed sysvipc/sem") && msg.contains(want),
                "{msg}"
            );
        }
        let msg = parse_msg(" 1 2 600 1 0 -3 0 0 0 0 0 0 0 0\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("malformed sysvipc/msg"), "{msg}");
        let msg = parse_msg(" 1 2 600 1 0 0 0 -1 0 0 0 0 0 0\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("uid '-1'"), "{msg}");
    }

    #[test]
    fn this_system_tables_parse() {
        read_sem().unwrap();
        read_msg().unwrap();
    }
}
