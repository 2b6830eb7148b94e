//! The C ABI of libcpr (`<ckpt.h>`) and every `unsafe` the library needs: pointers
//! from C, the signal handlers, fork and _exit, memory C frees with free().

use std::ffi::{CStr, c_char, c_int, c_long, c_ulong, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use cpr_core::engine::cooperate::{self, SIGCKPT, SIGRESTART};

use crate::{Args, Failure};

/// `cpr_flags` of `<ckpt.h>`.
#[unsafe(no_mangle)]
pub static mut cpr_flags: c_ulong = 0;

fn flags() -> u64 {
    // SAFETY: a plain read of a word-sized global that C may write between calls; the
    // library never writes it.
    unsafe { std::ptr::read_volatile(&raw const cpr_flags) as u64 }
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = e }
}

fn get_errno() -> i32 {
    // SAFETY: as in set_errno.
    unsafe { *libc::__errno_location() }
}

/// -1 with errno and the message remembered.
fn fail(f: Failure) -> c_int {
    let e = crate::fail(&f);
    set_errno(e);
    -1
}

/// A path from C; `None` (EINVAL) for NULL.
fn path_arg(p: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    if p.is_null() {
        return Err(Failure::new(libc::EINVAL, format!("{what}: NULL path")));
    }
    // SAFETY: non-null and, by the C contract, a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::new(libc::ENOENT, format!("{what}: empty path")));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// `struct ckpt_args` of `<ckpt.h>`.
#[repr(C)]
pub struct CkptArgs {
    pub ckpt_type: c_ulong,
    pub ckpt_data: *const c_void,
}

/// Reads `args[0..nargs]`.
fn read_args(args: *const *const CkptArgs, nargs: usize) -> Result<Args, Failure> {
    let mut out = Args::default();
    if nargs == 0 {
        return Ok(out);
    }
    if args.is_null() {
        return Err(Failure::new(libc::EINVAL, "ckpt_args: NULL array"));
    }
    for i in 0..nargs {
        // SAFETY: the caller passes an array of nargs pointers.
        let a = unsafe { *args.add(i) };
        if a.is_null() {
            return Err(Failure::new(libc::EINVAL, format!("ckpt_args[{i}]: NULL")));
        }
        // SAFETY: a points to a struct ckpt_args.
        let a = unsafe { &*a };
        if a.ckpt_data.is_null() {
            return Err(Failure::new(
                libc::EINVAL,
                format!("ckpt_args[{i}]: NULL data"),
            ));
        }
        match a.ckpt_type {
            crate::CKPT_ARG_TIMEOUT => {
                // SAFETY: for CKPT_ARG_TIMEOUT, ckpt_data points to a struct timespec.
                let ts = unsafe { &*(a.ckpt_data as *const libc::timespec) };
                if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
                    return Err(Failure::new(
                        libc::EINVAL,
                        format!("ckpt_args[{i}]: bad timeout"),
                    ));
                }
                out.timeout = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            crate::CKPT_ARG_ATTRFILE => {
                out.attrfile = Some(path_arg(a.ckpt_data as *const c_char, "ckpt_args")?);
            }
            t => {
                return Err(Failure::new(
                    libc::EINVAL,
                    format!("ckpt_args[{i}]: unknown type {t}"),
                ));
            }
        }
    }
    Ok(out)
}

fn timespec_arg(t: *const libc::timespec) -> Result<Option<Duration>, Failure> {
    if t.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null pointer to a struct timespec from C.
    let ts = unsafe { &*t };
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Failure::new(libc::EINVAL, "ckpt_poll: bad timeout"));
    }
    Ok(Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)))
}

// ---- the interface ----

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_create(
    path: *const c_char,
    id: i64,
    t: c_ulong,
    args: *const *const CkptArgs,
    nargs: usize,
) -> c_int {
    let options = path_arg(path, "ckpt_create").and_then(|p| {
        let a = read_args(args, nargs)?;
        crate::guarded("ckpt_create", || {
            crate::checkpoint_options(&p, id, t, &a, flags())
        })
    });
    match options.and_then(crate::create) {
        Ok(rc) => rc,
        Err(f) => fail(f),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_request(
    path: *const c_char,
    id: i64,
    t: c_ulong,
    args: *const *const CkptArgs,
    nargs: usize,
    handle: *mut c_long,
) -> c_int {
    if handle.is_null() {
        return fail(Failure::new(libc::EINVAL, "ckpt_request: NULL handle"));
    }
    let options = path_arg(path, "ckpt_request").and_then(|p| {
        let a = read_args(args, nargs)?;
        crate::guarded("ckpt_request", || {
            crate::checkpoint_options(&p, id, t, &a, flags())
        })
    });
    match options.and_then(crate::request) {
        Ok(pid) => {
            // SAFETY: non-null pointer to the caller's ckpt_handle_t.
            unsafe { *handle = pid as c_long };
            0
        }
        Err(f) => fail(f),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_poll(handle: *mut c_long, timeout: *const libc::timespec) -> c_int {
    if handle.is_null() {
        return fail(Failure::new(libc::EINVAL, "ckpt_poll: NULL handle"));
    }
    // SAFETY: non-null pointer to the caller's ckpt_handle_t.
    let h = unsafe { *handle } as i32;
    match timespec_arg(timeout).and_then(|t| crate::poll(h, t)) {
        Ok(rc) => rc,
        Err(f) => fail(f),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_restart(
    path: *const c_char,
    args: *const *const CkptArgs,
    nargs: usize,
) -> c_int {
    let r = path_arg(path, "ckpt_restart").and_then(|p| {
        read_args(args, nargs)?;
        crate::restart(&p, flags())
    });
    match r {
        Ok(rc) => rc,
        Err(f) => fail(f),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_remove(path: *const c_char) -> c_int {
    match path_arg(path, "ckpt_remove").and_then(|p| crate::remove(&p)) {
        Ok(()) => 0,
        Err(f) => fail(f),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_setup(_args: *const *const CkptArgs, _nargs: usize) -> c_int {
    0
}

/// `ckpt_stat_t` of `<ckpt.h>`.
#[repr(C)]
pub struct CkptStat {
    pub cs_next: *mut CkptStat,
    pub cs_revision: c_long,
    pub cs_pid: libc::pid_t,
    pub cs_ppid: libc::pid_t,
    pub cs_pgrp: libc::pid_t,
    pub cs_sid: libc::pid_t,
    pub cs_uid: libc::uid_t,
    pub cs_gid: libc::gid_t,
    pub cs_nfiles: c_int,
    pub cs_nthreads: c_int,
    pub cs_time: libc::time_t,
    pub cs_stat: libc::stat,
    pub cs_comm: [c_char; 16],
    pub cs_psargs: [c_char; 80],
    pub cs_cdir: [c_char; 4096],
}

/// Copies `s` into a C char array, truncated, NUL-terminated.
fn copy_str(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_stat(path: *const c_char, list: *mut *mut CkptStat) -> c_int {
    if list.is_null() {
        return fail(Failure::new(libc::EINVAL, "ckpt_stat: NULL list"));
    }
    let (entries, manifest) = match path_arg(path, "ckpt_stat").and_then(|p| crate::stat(&p)) {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    let st = match nix::sys::stat::stat(Path::new(&manifest)) {
        Ok(st) => st,
        Err(e) => {
            return fail(Failure::new(
                e as i32,
                format!("{}: {}", manifest.display(), e.desc()),
            ));
        }
    };
    let mut head: *mut CkptStat = std::ptr::null_mut();
    for e in entries.iter().rev() {
        // SAFETY: malloc of the struct's size; NULL is handled; the memory is then fully
        // initialised by the write below, and C frees it with free().
        let p = unsafe { libc::malloc(std::mem::size_of::<CkptStat>()) } as *mut CkptStat;
        if p.is_null() {
            free_list(head);
            return fail(Failure::new(libc::ENOMEM, "ckpt_stat: out of memory"));
        }
        let mut st = st;
        st.st_mtime = e.time;
        let mut v = CkptStat {
            cs_next: head,
            cs_revision: e.revision as c_long,
            cs_pid: e.pid,
            cs_ppid: e.ppid,
            cs_pgrp: e.pgrp,
            cs_sid: e.sid,
            cs_uid: e.uid,
            cs_gid: e.gid,
            cs_nfiles: e.nfiles,
            cs_nthreads: e.nthreads,
            cs_time: e.time,
            cs_stat: st,
            cs_comm: [0; 16],
            cs_psargs: [0; 80],
            cs_cdir: [0; 4096],
        };
        copy_str(&mut v.cs_comm, &e.comm);
        copy_str(&mut v.cs_psargs, &e.psargs);
        copy_str(&mut v.cs_cdir, &e.cdir);
        // SAFETY: p is a fresh allocation of the right size and alignment (malloc).
        unsafe { p.write(v) };
        head = p;
    }
    // SAFETY: non-null pointer from the caller.
    unsafe { *list = head };
    0
}

fn free_list(mut p: *mut CkptStat) {
    while !p.is_null() {
        // SAFETY: p came from malloc in ckpt_stat and is freed once.
        let next = unsafe { (*p).cs_next };
        // SAFETY: as above.
        unsafe { libc::free(p as *mut c_void) };
        p = next;
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_type_str(t: c_ulong) -> *const c_char {
    let s: &'static CStr = match crate::type_name(t) {
        "PID" => c"PID",
        "GID" => c"GID",
        "SID" => c"SID",
        "ASH" => c"ASH",
        "HID" => c"HID",
        "SGP" => c"SGP",
        "JID" => c"JID",
        _ => c"unknown",
    };
    s.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_strerror(err: c_int) -> *const c_char {
    if err == crate::ECKPT {
        return c"Checkpoint error".as_ptr();
    }
    // SAFETY: strerror returns a valid C string (thread-unsafe only for unknown values
    // on old libcs; glibc's is fine).
    unsafe { libc::strerror(err) }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_errmsg() -> *const c_char {
    // The CString lives in this thread's storage until the next failure.
    crate::with_last_message(|m| m.as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn atcheckpoint(f: Option<extern "C" fn()>) -> c_int {
    match crate::atcheckpoint(f.map_or(0, |f| f as usize)) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn atrestart(f: Option<extern "C" fn()>) -> c_int {
    match crate::atrestart(f.map_or(0, |f| f as usize)) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_refuse(how: c_int) -> c_int {
    match crate::refuse(how) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_enter_cs() -> c_int {
    match crate::enter_cs() {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_leave_cs() -> c_int {
    match crate::leave_cs() {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn ckpt_status() -> c_int {
    crate::status()
}

// ---- signal handlers ----

/// Calls a registered `void (*)(void)`.
pub(crate) fn call_callback(f: usize) {
    if f == 0 {
        return;
    }
    // SAFETY: f was registered through atcheckpoint/atrestart as a non-null
    // `void (*)(void)` and stored unchanged.
    let f: extern "C" fn() = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f) };
    f();
}

extern "C" fn sigckpt_handler(_sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let saved = get_errno();
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; for a queued
    // signal si_value holds the sender's value (0 for a plain kill).
    let token = if info.is_null() {
        0
    } else {
        let info = unsafe { &*info };
        if info.si_code == libc::SI_QUEUE {
            // SAFETY: si_code SI_QUEUE: the _rt member of the union is the valid one.
            unsafe { info.si_value() }.sival_ptr as usize as u64
        } else {
            0
        }
    };
    crate::on_sigckpt(token);
    set_errno(saved);
}

extern "C" fn sigrestart_handler(_sig: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let saved = get_errno();
    crate::on_sigrestart();
    set_errno(saved);
}

fn install(
    sig: c_int,
    handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void),
) -> Result<(), Failure> {
    // SAFETY: a zeroed sigaction is a valid start; the handler is an SA_SIGINFO
    // function of the right type that stays alive (static code).
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(sig, &act, std::ptr::null_mut())
    };
    if rc != 0 {
        let e = get_errno();
        return Err(Failure::new(
            e,
            format!("sigaction({sig}): {}", crate::strerror(e)),
        ));
    }
    Ok(())
}

static SIGCKPT_ONCE: Once = Once::new();
static SIGRESTART_ONCE: Once = Once::new();

pub(crate) fn install_sigckpt() -> Result<(), Failure> {
    let mut r = Ok(());
    SIGCKPT_ONCE.call_once(|| r = install(SIGCKPT, sigckpt_handler));
    r
}

pub(crate) fn install_sigrestart() -> Result<(), Failure> {
    let mut r = Ok(());
    SIGRESTART_ONCE.call_once(|| r = install(SIGRESTART, sigrestart_handler));
    r
}

/// Runs `f` with SIGCKPT blocked in the calling thread.
pub(crate) fn with_sigckpt_blocked(f: impl FnOnce()) {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask reads
    // `set` and writes `old`, both live locals.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIGCKPT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// Sends one answer to the checkpointer that sent `token`. Async-signal-safe: socket,
/// sendto, close. Token 0 (a plain kill) has nobody to answer.
pub(crate) fn answer(token: u64, kind: u32, code: i32) {
    if token == 0 {
        return;
    }
    let name = cooperate::socket_name(token);
    let msg = cooperate::encode(kind, code);
    // SAFETY: sockaddr_un is plain data, zeroed is valid; the name fits in sun_path
    // (108 bytes) after the leading NUL of the abstract namespace; the pointers passed to
    // sendto are to live locals of the sizes given; the fd is closed once.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in name.iter().enumerate() {
            addr.sun_path[i + 1] = *b as c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
        libc::sendto(
            fd,
            msg.as_ptr() as *const c_void,
            msg.len(),
            libc::MSG_NOSIGNAL,
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        );
        libc::close(fd);
    }
}

// ---- the child that does the work ----

/// fork(): `Some(child)` in the parent, `None` in the child.
pub(crate) fn fork() -> Result<Option<i32>, nix::errno::Errno> {
    // SAFETY: the child only runs the operation (Rust code of this library and the cpr
    // crate) and leaves with _exit, never returning into the C program; the caller's
    // other threads do not exist in the child (documented in ckpt_create(3)).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(None),
    }
}

/// Lets the child trace the caller under Yama's ptrace_scope 1 (no effect without Yama).
pub(crate) fn allow_tracer(child: i32) {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PTRACER, child as c_ulong, 0, 0, 0) };
}

/// Ends the child at once: no atexit handlers, no stdio flush of the C program's
/// buffers (they belong to the parent).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches nothing of the process.
    unsafe { libc::_exit(code) }
}

/// Writes the child's report into the parent's copy of it (same address: fork).
pub(crate) fn write_report(parent: i32, addr: usize, report: &crate::Report) {
    // SAFETY: Report is repr(C) plain data; we view it as bytes of its own size.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            report as *const crate::Report as *const u8,
            std::mem::size_of::<crate::Report>(),
        )
    };
    let remote = [nix::sys::uio::RemoteIoVec {
        base: addr,
        len: bytes.len(),
    }];
    let _ = nix::sys::uio::process_vm_writev(
        nix::unistd::Pid::from_raw(parent),
        &[std::io::IoSlice::new(bytes)],
        &remote,
    );
}
