//! Batches of injected system calls: many calls run inside a stopped restore child for
//! one ptrace round trip. A small runner (`BATCH_RUNNER`, next to the injection stub in
//! the child's scratch page) walks a table of calls in the child's memory, storing each
//! result, and stops at its `int3` after the last call or the first one that fails.
//! Each round trip costs two context switches and several ptrace requests; a restart
//! makes dozens of calls per process (munmap of cpr's own mappings, one mmap per
//! mapping, protections, closes), which on a busy machine was most of its time.

use nix::errno::Errno;

use super::remote::{RemoteAddr, RemoteScratch};
use super::{Injector, get_regs};
use crate::error::{Error, Kind, Result};

/// The runner, x86-64. On entry rbx points to the table and r12 holds the number of
/// calls. Each entry is 8 words: the call number (low half; a non-zero high half means
/// "a failure does not stop the batch"), six arguments, and the result the runner
/// stores. It stops at `int3` with r12 = calls not finished (0 when all ran; else the
/// failed call is the first of them).
///
/// ```text
/// 1: test r12, r12 ; jz 2f
///    mov eax, [rbx] ; mov rdi, [rbx+8] ; mov rsi, [rbx+16] ; mov rdx, [rbx+24]
///    mov r10, [rbx+32] ; mov r8, [rbx+40] ; mov r9, [rbx+48]
///    syscall
///    mov [rbx+56], rax
///    cmp dword [rbx+4], 0 ; jne 3f
///    cmp rax, -4095 ; jae 2f
/// 3: add rbx, 64 ; dec r12 ; jmp 1b
/// 2: int3
/// ```
pub const BATCH_RUNNER: [u8; 61] = [
    0x4d, 0x85, 0xe4, 0x74, 0x37, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08, 0x48, 0x8b, 0x73, 0x10, 0x48,
    0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f,
    0x05, 0x48, 0x89, 0x43, 0x38, 0x83, 0x7b, 0x04, 0x00, 0x75, 0x08, 0x48, 0x3d, 0x01, 0xf0, 0xff,
    0xff, 0x73, 0x09, 0x48, 0x83, 0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xc4, 0xcc,
];

/// Bytes of one table entry.
const ENTRY: u64 = 64;

/// Calls gathered to run in one round trip.
#[derive(Default)]
pub struct Batch {
    calls: Vec<Call>,
}

struct Call {
    nr: i64,
    args: [u64; 6],
    /// What a failure is called (None: a failure is ignored, as `Injector::call`).
    what: Option<String>,
    /// Said after the failure, as `Error::detail`.
    detail: Option<String>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// A call whose failure stops the batch and is the error (as `Injector::check`),
    /// named `what`, with `detail` after it.
    pub fn check(&mut self, what: &str, nr: i64, args: [u64; 6], detail: Option<String>) {
        self.calls.push(Call {
            nr,
            args,
            what: Some(what.to_string()),
            detail,
        });
    }

    /// A call whose failure is ignored.
    pub fn call(&mut self, nr: i64, args: [u64; 6]) {
        self.calls.push(Call {
            nr,
            args,
            what: None,
            detail: None,
        });
    }

    /// The calls of `other`, after this batch's own.
    pub fn append(&mut self, mut other: Batch) {
        self.calls.append(&mut other.calls);
    }

    /// Runs every call in `inj`'s thread, through its runner (`Injector::with_runner`)
    /// with the table in `scratch` (in parts of `PART` calls), or one by one when it has
    /// none; returns each call's raw result. Empties the batch.
    pub fn run(&mut self, inj: &Injector, scratch: &mut RemoteScratch) -> Result<Vec<i64>> {
        const PART: usize = 512;
        let calls = std::mem::take(&mut self.calls);
        let mut results = Vec::with_capacity(calls.len());
        let Some(runner) = inj.runner else {
            for c in &calls {
                let rc = match &c.what {
                    None => inj.call(c.nr, c.args)?,
                    Some(what) => inj
                        .check(what, c.nr, c.args)
                        .map_err(|e| with_detail(e, c))? as i64,
                };
                results.push(rc);
            }
            return Ok(results);
        };
        for part in calls.chunks(PART) {
            results.extend(run_part(part, inj, runner, scratch)?);
        }
        Ok(results)
    }
}

/// One table of calls, run; the first failure of a checked call is the error.
fn run_part(
    calls: &[Call],
    inj: &Injector,
    runner: RemoteAddr,
    scratch: &mut RemoteScratch,
) -> Result<Vec<i64>> {
    let mut table = Vec::with_capacity(calls.len() * ENTRY as usize);
    for c in calls {
        let tolerant: u64 = if c.what.is_none() { 1 << 32 } else { 0 };
        table.extend_from_slice(&((c.nr as u64 & 0xffff_ffff) | tolerant).to_ne_bytes());
        for a in c.args {
            table.extend_from_slice(&a.to_ne_bytes());
        }
        table.extend_from_slice(&0u64.to_ne_bytes());
    }
    let mut frame = scratch.frame();
    let at = frame.put(&table)?;
    let left = inj.run_runner(runner, at, calls.len() as u64)?;
    let back = frame.read(at, table.len())?;
    let results: Vec<i64> = back
        .chunks_exact(ENTRY as usize)
        .map(|e| i64::from_ne_bytes(e[56..64].try_into().unwrap_or_default()))
        .collect();
    if left == 0 {
        return Ok(results);
    }
    let Some(failed) = calls.len().checked_sub(left as usize) else {
        return Err(Error::with_detail(
            format!("thread {}", inj.tid),
            Kind::CheckpointError,
            format!("batch of {} calls stopped with {left} left", calls.len()),
        ));
    };
    let c = &calls[failed];
    let rc = results[failed];
    let subject = format!(
        "thread {}: {}",
        inj.tid,
        c.what.as_deref().unwrap_or("injected call")
    );
    let e = if rc < 0 && rc > -4096 {
        Error::errno(subject, Errno::from_raw(-rc as i32))
    } else {
        Error::with_detail(
            subject,
            Kind::CheckpointError,
            format!("batch stopped at call {failed} (result {rc})"),
        )
    };
    Err(with_detail(e, c))
}

fn with_detail(e: Error, c: &Call) -> Error {
    match &c.detail {
        Some(d) => e.detail(d.clone()),
        None => e,
    }
}

impl Injector {
    /// Runs the batch runner at `runner` over `count` entries at `table`; returns the
    /// number of entries not finished (its r12 at the stop).
    pub(super) fn run_runner(
        &self,
        runner: RemoteAddr,
        table: RemoteAddr,
        count: u64,
    ) -> Result<u64> {
        self.run_at(runner, |r| {
            r.rbx = table.as_u64();
            r.r12 = count;
        })?;
        Ok(get_regs(self.tid)?.r12)
    }
}

/// Calls that only ask (`Injector::ask`), gathered to run in one go, each named for the
/// error its failure makes.
#[derive(Default)]
pub struct Questions {
    names: Vec<&'static str>,
    calls: Vec<(i64, [u64; 6])>,
}

/// What `Questions` were told, in the order asked.
pub struct Answers {
    tid: i32,
    names: Vec<&'static str>,
    results: Vec<i64>,
}

impl Questions {
    /// Adds `nr(args...)`, named `what`; returns its place in the `Answers`.
    pub fn ask(&mut self, what: &'static str, nr: i64, args: [u64; 6]) -> usize {
        self.names.push(what);
        self.calls.push((nr, args));
        self.calls.len() - 1
    }

    /// Runs them all in `inj`'s thread (the table in `scratch`).
    pub fn run(self, inj: &Injector, scratch: &mut RemoteScratch) -> Result<Answers> {
        let results = inj.ask(&self.calls, scratch)?;
        Ok(Answers {
            tid: inj.tid,
            names: self.names,
            results,
        })
    }
}

impl Answers {
    /// The raw result of question `i` (negative errno on failure).
    pub fn raw(&self, i: usize) -> i64 {
        self.results
            .get(i)
            .copied()
            .unwrap_or(-(libc::EINVAL as i64))
    }

    /// The result of question `i`; a failure is an error naming it (as `Injector::check`).
    pub fn checked(&self, i: usize) -> Result<u64> {
        let rc = self.raw(i);
        if rc < 0 && rc > -4096 {
            return Err(Error::errno(
                format!("thread {}: {}", self.tid, self.names.get(i).unwrap_or(&"?")),
                Errno::from_raw(-rc as i32),
            ));
        }
        Ok(rc as u64)
    }
}
