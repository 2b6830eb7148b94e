//! libcpr: the IRIX CPR programming interface for C programs (`<ckpt.h>`), over the
//! `cpr` crate that the cpr command uses too.
//!
//! This file holds the logic, in safe Rust; `ffi.rs` holds the C ABI and every `unsafe`
//! (signal handlers, fork, raw pointers from C).
//!
//! - `atcheckpoint`/`atrestart` fill two lists, run first-in-first-out by the SIGCKPT and
//!   SIGRESTART handlers, which are installed only when a program first asks for them.
//! - The SIGCKPT handler speaks the protocol of `cpr::engine::cooperate`: it answers
//!   "started", "deferred" (in a critical section) and "done" with go or a refusal.
//! - `ckpt_create` and `ckpt_restart` run the operation in a forked child, so that the
//!   engine's ptrace, waits and signals never touch the caller. The child reports by
//!   writing a result record into the caller's memory (process_vm_writev) before it exits.
//!   A caller that checkpointed itself and was restarted from that statefile resumes in
//!   the wait for a child that, in the restarted world, does not exist and never wrote
//!   the record: that is how `ckpt_create` knows to return `CKPT_RESTARTED`.

mod ffi;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cpr_core::attrfile::{AttrFile, WillAction};
use cpr_core::engine::cooperate::{
    ANSWER_GO, ANSWER_PERMFAIL, ANSWER_TEMPFAIL, MSG_DEFERRED, MSG_DONE, MSG_STARTED,
};
use cpr_core::error::{Error, Kind};
use cpr_core::ops::{self, CheckpointOptions, RestartOptions};
use cpr_core::statefile::{self, Statefile, reader::Verify};
use cpr_core::target;

// ---- <ckpt.h> constants, as the header has them ----

pub const CKPT_CHECKPOINT_CONT: u64 = 0x01;
pub const CKPT_CHECKPOINT_KILL: u64 = 0x02;
pub const CKPT_CHECKPOINT_UPGRADE: u64 = 0x04;
pub const CKPT_OPENFILE_DISTRIBUTE: u64 = 0x08;
pub const CKPT_RESTART_INTERACTIVE: u64 = 0x10;
pub const CKPT_ARG_TIMEOUT: u64 = 1;
pub const CKPT_ARG_ATTRFILE: u64 = 2;
pub const CKPT_RESTARTED: i32 = 1;
pub const ECKPT: i32 = 200;
pub const CKPT_ETEMPFAIL: i32 = 1;
pub const CKPT_EPERMFAIL: i32 = 2;

/// The designator type names, indexed by the `CKPT_PROCESS`.. constants.
const TYPE_NAMES: [&str; 8] = ["unknown", "PID", "GID", "SID", "ASH", "HID", "SGP", "JID"];

/// `ckpt_type_str`: the name of an ID type.
pub fn type_name(t: u64) -> &'static str {
    TYPE_NAMES
        .get((t & 0xff) as usize)
        .copied()
        .unwrap_or("unknown")
}

// ---- errors ----

/// A failure as C sees it: errno and the whole message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub errno: i32,
    pub message: String,
}

impl Failure {
    fn new(errno: i32, message: impl Into<String>) -> Failure {
        Failure {
            errno,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::new(errno_of(e.kind), e.to_string())
    }
}

/// The errno of an IRIX message kind.
pub fn errno_of(kind: Kind) -> i32 {
    match kind {
        Kind::PermissionDenied => libc::EACCES,
        Kind::ResourceBusy => libc::EBUSY,
        Kind::CheckpointError => ECKPT,
        Kind::FileExists => libc::EEXIST,
        Kind::InvalidArgument => libc::EINVAL,
        Kind::TooManySymlinks => libc::ELOOP,
        Kind::NoSuchFile => libc::ENOENT,
        Kind::NotADirectory => libc::ENOTDIR,
        Kind::NameTooLong => libc::ENAMETOOLONG,
        Kind::NoSpace => libc::ENOSPC,
        Kind::NotPermitted => libc::EPERM,
        Kind::ReadOnlyFs => libc::EROFS,
        Kind::NoSuchProcess => libc::ESRCH,
        Kind::TryAgain => libc::EAGAIN,
        Kind::Deadlock => libc::EDEADLK,
        Kind::NotEnoughSpace => libc::ENOMEM,
        Kind::NotImplemented => libc::ENOSYS,
        Kind::Os(errno) => errno,
    }
}

/// `ckpt_strerror`.
pub fn strerror(err: i32) -> String {
    if err == ECKPT {
        Kind::CheckpointError.message()
    } else {
        Kind::from_errno(err).message()
    }
}

thread_local! {
    static LAST_MESSAGE: std::cell::RefCell<CString> = std::cell::RefCell::new(CString::default());
}

/// Remembers the message of a failure for `ckpt_errmsg` and returns its errno.
fn remember(f: &Failure) -> i32 {
    let text = CString::new(f.message.replace('\0', " ")).unwrap_or_default();
    LAST_MESSAGE.with(|m| *m.borrow_mut() = text);
    f.errno
}

/// Runs `body`, turning a panic into a failure (a panic must not cross into C).
fn guarded<T>(what: &str, body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(p) => {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(Failure::new(
                libc::ENOSYS,
                format!("{what}: Not implemented: {why}"),
            ))
        }
    }
}

// ---- callbacks and the SIGCKPT / SIGRESTART handlers ----

const MAX_CALLBACKS: usize = 128;

/// One list of `void (*)(void)`, appended under a lock, read without one (in a handler).
struct CallbackList {
    slots: [AtomicUsize; MAX_CALLBACKS],
    len: AtomicUsize,
    add: Mutex<()>,
}

impl CallbackList {
    const fn new() -> CallbackList {
        CallbackList {
            slots: [const { AtomicUsize::new(0) }; MAX_CALLBACKS],
            len: AtomicUsize::new(0),
            add: Mutex::new(()),
        }
    }

    fn push(&self, f: usize) -> Result<(), Failure> {
        let _g = self.add.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.len.load(Ordering::Acquire);
        if n == MAX_CALLBACKS {
            return Err(Failure::new(
                libc::ENOMEM,
                format!("at most {MAX_CALLBACKS} handlers can be registered"),
            ));
        }
        self.slots[n].store(f, Ordering::Release);
        self.len.store(n + 1, Ordering::Release);
        Ok(())
    }

    /// Calls each in registration order while `go()` says so.
    fn run(&self, go: impl Fn() -> bool) {
        let n = self.len.load(Ordering::Acquire);
        for slot in &self.slots[..n] {
            if !go() {
                break;
            }
            ffi::call_callback(slot.load(Ordering::Acquire));
        }
    }
}

static CHECKPOINT_FNS: CallbackList = CallbackList::new();
static RESTART_FNS: CallbackList = CallbackList::new();

/// Critical sections: depth in the low 32 bits, a deferred request in `PENDING`.
static CS_STATE: AtomicU64 = AtomicU64::new(0);
const PENDING: u64 = 1 << 32;
const DEPTH: u64 = PENDING - 1;
/// The token of the deferred request.
static PENDING_TOKEN: AtomicU64 = AtomicU64::new(0);
/// Set while the atcheckpoint functions run; their refusal, if any.
static IN_CALLBACKS: AtomicBool = AtomicBool::new(false);
static REFUSAL: AtomicI32 = AtomicI32::new(0);
/// `ckpt_refuse(CKPT_EPERMFAIL)`: every checkpoint is refused from now on.
static REFUSED_FOR_GOOD: AtomicBool = AtomicBool::new(false);

/// The SIGCKPT handler's work (async-signal-safe: atomics and ffi::answer only).
pub(crate) fn on_sigckpt(token: u64) {
    if REFUSED_FOR_GOOD.load(Ordering::Acquire) {
        ffi::answer(token, MSG_DONE, ANSWER_PERMFAIL);
        return;
    }
    PENDING_TOKEN.store(token, Ordering::Release);
    loop {
        let s = CS_STATE.load(Ordering::Acquire);
        if s & DEPTH == 0 {
            break;
        }
        if CS_STATE
            .compare_exchange(s, s | PENDING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            ffi::answer(token, MSG_DEFERRED, 0);
            return;
        }
    }
    serve(token);
}

/// Runs the atcheckpoint functions and answers.
fn serve(token: u64) {
    ffi::answer(token, MSG_STARTED, 0);
    REFUSAL.store(0, Ordering::Release);
    IN_CALLBACKS.store(true, Ordering::Release);
    CHECKPOINT_FNS.run(|| REFUSAL.load(Ordering::Acquire) == 0);
    IN_CALLBACKS.store(false, Ordering::Release);
    let answer = match REFUSAL.swap(0, Ordering::AcqRel) {
        0 if REFUSED_FOR_GOOD.load(Ordering::Acquire) => ANSWER_PERMFAIL,
        0 => ANSWER_GO,
        CKPT_ETEMPFAIL => ANSWER_TEMPFAIL,
        _ => ANSWER_PERMFAIL,
    };
    ffi::answer(token, MSG_DONE, answer);
}

/// The SIGRESTART handler's work.
pub(crate) fn on_sigrestart() {
    RESTART_FNS.run(|| true);
}

pub fn atcheckpoint(f: usize) -> Result<(), Failure> {
    if f == 0 {
        return Err(Failure::new(libc::EINVAL, "atcheckpoint: NULL function"));
    }
    CHECKPOINT_FNS.push(f)?;
    ffi::install_sigckpt()
}

pub fn atrestart(f: usize) -> Result<(), Failure> {
    if f == 0 {
        return Err(Failure::new(libc::EINVAL, "atrestart: NULL function"));
    }
    RESTART_FNS.push(f)?;
    ffi::install_sigrestart()
}

pub fn refuse(how: i32) -> Result<(), Failure> {
    match how {
        CKPT_EPERMFAIL => {
            REFUSED_FOR_GOOD.store(true, Ordering::Release);
            if IN_CALLBACKS.load(Ordering::Acquire) {
                REFUSAL.store(CKPT_EPERMFAIL, Ordering::Release);
            }
            ffi::install_sigckpt()
        }
        CKPT_ETEMPFAIL if IN_CALLBACKS.load(Ordering::Acquire) => {
            REFUSAL.store(CKPT_ETEMPFAIL, Ordering::Release);
            Ok(())
        }
        CKPT_ETEMPFAIL => Err(Failure::new(
            libc::EINVAL,
            "ckpt_refuse: CKPT_ETEMPFAIL outside an atcheckpoint function",
        )),
        _ => Err(Failure::new(
            libc::EINVAL,
            format!("ckpt_refuse: {how} is neither CKPT_ETEMPFAIL nor CKPT_EPERMFAIL"),
        )),
    }
}

pub fn enter_cs() -> Result<(), Failure> {
    ffi::install_sigckpt()?;
    let s = CS_STATE.fetch_add(1, Ordering::AcqRel);
    if s & DEPTH == DEPTH {
        CS_STATE.fetch_sub(1, Ordering::AcqRel);
        return Err(Failure::new(libc::EINVAL, "ckpt_enter_cs: nested too deep"));
    }
    Ok(())
}

pub fn leave_cs() -> Result<(), Failure> {
    loop {
        let s = CS_STATE.load(Ordering::Acquire);
        if s & DEPTH == 0 {
            return Err(Failure::new(
                libc::EINVAL,
                "ckpt_leave_cs: not in a critical section",
            ));
        }
        let mut new = s - 1;
        let run = new & DEPTH == 0 && s & PENDING != 0;
        if run {
            new &= !PENDING;
        }
        if CS_STATE
            .compare_exchange(s, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if run {
                // SIGCKPT blocked while serving, as in the handler: cpr waits for it to
                // be unblocked, so the answer socket is closed before it freezes us
                ffi::with_sigckpt_blocked(|| serve(PENDING_TOKEN.load(Ordering::Acquire)));
            }
            return Ok(());
        }
    }
}

/// `ckpt_status`: 1 (`CKPT_STATE_PENDING`) while a request waits for the critical
/// sections, else 0.
pub fn status() -> i32 {
    i32::from(CS_STATE.load(Ordering::Acquire) & PENDING != 0)
}

// ---- ckpt_create, ckpt_request, ckpt_poll ----

/// The optional arguments, read from C.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub timeout: Option<Duration>,
    pub attrfile: Option<PathBuf>,
}

/// `id` and `type` as a `-p` designator.
pub fn designator(id: i64, t: u64) -> Result<String, Failure> {
    let name = match t & 0xff {
        1..=7 => type_name(t),
        _ => {
            return Err(Failure::new(
                libc::EINVAL,
                format!("ckpt_create: unknown ID type {t:#x}"),
            ));
        }
    };
    if t & !0xff != 0 {
        return Err(Failure::new(
            libc::EINVAL,
            format!("ckpt_create: reserved bits set in type {t:#x}"),
        ));
    }
    let text = match name {
        "PID" => format!("{id}"),
        "ASH" | "JID" => format!("{:#x}:{name}", id as u64),
        _ => format!("{id}:{name}"),
    };
    target::parse_idlist(&text)?;
    Ok(text)
}

/// The checkpoint options a C call describes (checked before anything is forked).
pub fn checkpoint_options(
    path: &Path,
    id: i64,
    t: u64,
    args: &Args,
    flags: u64,
) -> Result<CheckpointOptions, Failure> {
    let idlist = designator(id, t)?;
    let will = match (
        flags & CKPT_CHECKPOINT_CONT != 0,
        flags & CKPT_CHECKPOINT_KILL != 0,
    ) {
        (true, true) => {
            return Err(Failure::new(
                libc::EINVAL,
                "cpr_flags: CKPT_CHECKPOINT_CONT and CKPT_CHECKPOINT_KILL together",
            ));
        }
        (true, false) => Some(WillAction::Cont),
        (false, true) => Some(WillAction::Kill),
        (false, false) => None,
    };
    let attributes = match &args.attrfile {
        Some(p) => AttrFile::load(p)?,
        None => AttrFile::load_default()?,
    };
    Ok(CheckpointOptions {
        statefile: path.to_path_buf(),
        idlist,
        force: false,
        will,
        upgrade: flags & CKPT_CHECKPOINT_UPGRADE != 0,
        attributes: Some(attributes),
        handler_timeout: args.timeout,
        openfile_distribute: flags & CKPT_OPENFILE_DISTRIBUTE != 0,
        parent: None,
        compress: false,
    })
}

/// What a child writes into its parent before it exits.
#[repr(C)]
pub struct Report {
    /// `REPORT_DONE` once written.
    pub done: u32,
    pub errno: i32,
    pub message: [u8; 1016],
}

const REPORT_DONE: u32 = 0x4350_5231; // "CPR1"

/// Outstanding requests: child pid -> its report, which the child fills in.
static REQUESTS: Mutex<BTreeMap<i32, Box<Report>>> = Mutex::new(BTreeMap::new());

/// In the child: the checkpoint itself. Designators that take in the child (a group,
/// session or tree of the caller) are replaced by the list of their other processes.
fn child_checkpoint(mut options: CheckpointOptions) -> Result<(), Failure> {
    let set = target::resolve(&target::parse_idlist(&options.idlist)?, ops::caller_uid())?;
    let me = std::process::id() as i32;
    if set.processes.contains_key(&me) {
        let others: Vec<String> = set
            .pids()
            .into_iter()
            .filter(|&p| p != me)
            .map(|p| p.to_string())
            .collect();
        options.idlist = others.join(",");
    }
    ops::checkpoint(&options)?;
    Ok(())
}

/// Starts `work` in a child; the handle is its pid.
fn spawn(what: &'static str, work: impl FnOnce() -> Result<(), Failure>) -> Result<i32, Failure> {
    let report = Box::new(Report {
        done: 0,
        errno: 0,
        message: [0; 1016],
    });
    let report_addr = &*report as *const Report as usize;
    let mut requests = REQUESTS.lock().unwrap_or_else(|p| p.into_inner());
    match ffi::fork().map_err(|e| Failure::new(e as i32, format!("{what}: fork: {}", e.desc())))? {
        Some(child) => {
            ffi::allow_tracer(child);
            requests.insert(child, report);
            Ok(child)
        }
        None => {
            drop(requests);
            let result = guarded(what, work);
            let (errno, message) = match &result {
                Ok(()) => (0, String::new()),
                Err(f) => (f.errno, f.message.clone()),
            };
            let mut out = Report {
                done: REPORT_DONE,
                errno,
                message: [0; 1016],
            };
            let n = message.len().min(out.message.len() - 1);
            out.message[..n].copy_from_slice(&message.as_bytes()[..n]);
            ffi::write_report(nix::unistd::getppid().as_raw(), report_addr, &out);
            ffi::exit_now(if errno == 0 { 0 } else { (errno & 0xff).max(1) })
        }
    }
}

pub fn request(options: CheckpointOptions) -> Result<i32, Failure> {
    spawn("ckpt_create", move || child_checkpoint(options))
}

/// Waits for a request. `Ok(0)`: done, the caller runs on; `Ok(CKPT_RESTARTED)`: the
/// caller was restarted from it; `Err(ETIMEDOUT)`: not done yet.
pub fn poll(handle: i32, timeout: Option<Duration>) -> Result<i32, Failure> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let deadline = timeout.map(|t| Instant::now() + t);
    let pid = nix::unistd::Pid::from_raw(handle);
    if !REQUESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains_key(&handle)
    {
        return Err(Failure::new(
            libc::EINVAL,
            format!("ckpt_poll: {handle} is not an outstanding request"),
        ));
    }
    let status = loop {
        let flags = deadline.map(|_| WaitPidFlag::WNOHANG);
        match waitpid(pid, flags) {
            Ok(WaitStatus::StillAlive) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Failure::new(
                        libc::ETIMEDOUT,
                        "ckpt_poll: the checkpoint is not finished yet",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(WaitStatus::Exited(_, code)) => break Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Some(-(sig as i32)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break None, // ECHILD: no such child in this world
        }
    };
    let report = REQUESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&handle);
    finish(report, status)
}

/// The outcome of a request from its report and its exit status (`None`: no such
/// child, `Some(-sig)`: killed).
fn finish(report: Option<Box<Report>>, status: Option<i32>) -> Result<i32, Failure> {
    let report = report.filter(|r| r.done == REPORT_DONE);
    match (report, status) {
        (Some(r), _) if r.errno == 0 => Ok(0),
        (Some(r), _) => {
            let end = r.message.iter().position(|&b| b == 0).unwrap_or(0);
            Err(Failure::new(
                r.errno,
                String::from_utf8_lossy(&r.message[..end]).into_owned(),
            ))
        }
        // The child never reported and is not ours: this is the restarted world.
        (None, None) => Ok(CKPT_RESTARTED),
        (None, Some(code)) if code < 0 => Err(Failure::new(
            ECKPT,
            format!(
                "Checkpoint error: the checkpointing process died of signal {}",
                -code
            ),
        )),
        (None, Some(code)) => Err(Failure::new(
            if code == 0 { ECKPT } else { code },
            "Checkpoint error: the checkpointing process ended without a report",
        )),
    }
}

pub fn create(options: CheckpointOptions) -> Result<i32, Failure> {
    let handle = request(options)?;
    poll(handle, None)
}

// ---- ckpt_restart, ckpt_stat, ckpt_remove ----

pub fn restart(path: &Path, flags: u64) -> Result<i32, Failure> {
    let options = RestartOptions {
        statefiles: vec![path.to_path_buf()],
        interactive: flags & CKPT_RESTART_INTERACTIVE != 0,
        ..RestartOptions::default()
    };
    let handle = spawn("ckpt_restart", move || {
        ops::restart(&options)?;
        Ok(())
    })?;
    match poll(handle, None)? {
        0 => Ok(0),
        _ => Err(Failure::new(
            ECKPT,
            "ckpt_restart: the restarting process vanished",
        )),
    }
}

pub fn remove(path: &Path) -> Result<(), Failure> {
    guarded("ckpt_remove", || {
        statefile::remove(path, ops::caller_uid())?;
        Ok(())
    })
}

/// One process of `ckpt_stat`, before it is copied into C memory.
#[derive(Debug, Clone, Default)]
pub struct StatEntry {
    pub revision: i64,
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub uid: u32,
    pub gid: u32,
    pub nfiles: i32,
    pub nthreads: i32,
    pub time: i64,
    pub comm: String,
    pub psargs: String,
    pub cdir: String,
}

/// `ckpt_stat`: the processes of a statefile, and the path to stat for `cs_stat`.
pub fn stat(path: &Path) -> Result<(Vec<StatEntry>, PathBuf), Failure> {
    guarded("ckpt_stat", || {
        let sf = Statefile::open(path, Verify::Sizes)?;
        let m = &sf.manifest;
        let time = chrono::DateTime::parse_from_rfc3339(&m.created)
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let entries = m
            .processes
            .iter()
            .map(|p| StatEntry {
                revision: m.revision as i64,
                pid: p.pid,
                ppid: p.ppid,
                pgrp: p.pgid,
                sid: p.sid,
                uid: p.uids[0],
                gid: p.gids[0],
                nfiles: p.open_files.len() as i32,
                nthreads: p.threads as i32,
                time,
                comm: p.command.clone(),
                psargs: p.args.join(" "),
                cdir: p.cwd.clone(),
            })
            .collect();
        Ok((entries, sf.manifest_path()))
    })
}

/// Remembers a failure and gives C its errno (for ffi.rs).
pub(crate) fn fail(f: &Failure) -> i32 {
    remember(f)
}

/// The message of this thread's last failure (for ffi.rs).
pub(crate) fn with_last_message<T>(f: impl FnOnce(&CString) -> T) -> T {
    LAST_MESSAGE.with(|m| f(&m.borrow()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn designators_from_id_and_type() {
        assert_eq!(designator(12, 1).unwrap(), "12");
        assert_eq!(designator(12, 5).unwrap(), "12:HID");
        assert_eq!(designator(12, 2).unwrap(), "12:GID");
        assert_eq!(designator(12, 99).unwrap_err().errno, libc::EINVAL);
        assert_eq!(designator(12, 0x101).unwrap_err().errno, libc::EINVAL);
        assert_eq!(designator(0, 1).unwrap_err().errno, libc::EINVAL);
        assert_eq!(type_name(6), "SGP");
        assert_eq!(type_name(0x105), "HID");
        assert_eq!(type_name(42), "unknown");
    }

    #[test]
    fn flags_map_to_options() {
        let args = Args {
            attrfile: None,
            timeout: Some(Duration::from_secs(3)),
        };
        let o = checkpoint_options(
            Path::new("sf"),
            5,
            1,
            &args,
            CKPT_CHECKPOINT_CONT | CKPT_CHECKPOINT_UPGRADE | CKPT_OPENFILE_DISTRIBUTE,
        )
        .unwrap();
        assert_eq!(o.will, Some(WillAction::Cont));
        assert!(o.upgrade && o.openfile_distribute);
        assert_eq!(o.handler_timeout, Some(Duration::from_secs(3)));
        let both = CKPT_CHECKPOINT_CONT | CKPT_CHECKPOINT_KILL;
        assert_eq!(
            checkpoint_options(Path::new("sf"), 5, 1, &args, both)
                .unwrap_err()
                .errno,
            libc::EINVAL
        );
    }

    #[test]
    fn errno_round_trip() {
        for e in [
            libc::EACCES,
            libc::EEXIST,
            libc::ESRCH,
            libc::EPERM,
            libc::ENOSPC,
        ] {
            assert_eq!(errno_of(Kind::from_errno(e)), e);
        }
        assert_eq!(errno_of(Kind::CheckpointError), ECKPT);
        assert_eq!(strerror(ECKPT), "Checkpoint error");
    }
}
