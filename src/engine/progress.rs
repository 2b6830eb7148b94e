//! Progress of a checkpoint or a restart, as the engine reports it: the phase it is in,
//! the bytes it expects in that phase when it knows them, and the bytes done. Whoever
//! shows it (the progress bar of cpr(1), a panel of cview) implements [`Observer`]; the
//! engine knows nothing of terminals.

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Kind, Result};

/// The phases a checkpoint or restart reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Checkpoint: stopping every thread of every target.
    Freeze,
    /// Checkpoint: page data and records written, process by process.
    Dump,
    /// Checkpoint: pipes, shared memory and SysV segments saved once each.
    Shared,
    /// Checkpoint: fsync and rename into place.
    Commit,
    /// Restart: records read and checked.
    Validate,
    /// Restart: the processes created with their IDs.
    Create,
    /// Restart: address spaces filled with their page data, threads and the rest.
    Restore,
    /// Restart: every process released at once.
    Release,
    /// Checkpoint with `-g`: memory copied while the processes run (live pre-copy).
    Precopy,
}

impl Phase {
    /// The phase in a few words.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Freeze => "freezing",
            Phase::Dump => "writing",
            Phase::Shared => "shared objects",
            Phase::Commit => "committing",
            Phase::Validate => "checking",
            Phase::Create => "creating processes",
            Phase::Restore => "restoring",
            Phase::Release => "releasing",
            Phase::Precopy => "copying while running",
        }
    }
}

/// What is told of the progress. Called from the engine's threads (the page writer runs
/// beside the reader), hence `Send + Sync`.
pub trait Observer: Send + Sync {
    /// A phase begins; `total` is the number of bytes it will move, when known.
    fn phase(&self, phase: Phase, total: Option<u64>);
    /// `bytes` more were written to the statefile (checkpoint) or put in place (restart).
    fn bytes(&self, bytes: u64);
    /// The operation is over, whether it succeeded or not.
    fn finish(&self) {}
    /// Asked between phases: true stops the operation as a failure would (a checkpoint
    /// leaves its targets running untouched and no statefile).
    fn cancelled(&self) -> bool {
        false
    }
}

/// The engine's handle on an optional observer: cheap to clone, does nothing without one.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Observer>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(observed)"
        } else {
            "Progress(none)"
        })
    }
}

impl Progress {
    /// Nobody watching.
    pub fn none() -> Progress {
        Progress(None)
    }

    pub fn new(observer: Arc<dyn Observer>) -> Progress {
        Progress(Some(observer))
    }

    /// Someone watches (work done only to report progress is skipped otherwise).
    pub fn is_observed(&self) -> bool {
        self.0.is_some()
    }

    pub fn phase(&self, phase: Phase, total: Option<u64>) {
        if let Some(o) = &self.0 {
            o.phase(phase, total);
        }
    }

    pub fn bytes(&self, bytes: u64) {
        if let Some(o) = &self.0 {
            o.bytes(bytes);
        }
    }

    pub fn finish(&self) {
        if let Some(o) = &self.0 {
            o.finish();
        }
    }

    /// The observer has asked to stop.
    pub fn cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|o| o.cancelled())
    }

    /// "Operation canceled" once the observer has asked to stop.
    pub fn check_cancelled(&self, what: &str) -> Result<()> {
        match &self.0 {
            Some(o) if o.cancelled() => Err(Error::with_detail(
                what,
                Kind::Os(libc::ECANCELED),
                "cancelled by the caller",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
        cancel: bool,
    }

    impl Observer for Recorder {
        fn phase(&self, phase: Phase, total: Option<u64>) {
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} {total:?}", phase.name()));
        }
        fn bytes(&self, bytes: u64) {
            self.seen.lock().unwrap().push(format!("+{bytes}"));
        }
        fn cancelled(&self) -> bool {
            self.cancel
        }
    }

    #[test]
    fn reports_reach_the_observer_and_none_is_silent() {
        let r = Arc::new(Recorder::default());
        let p = Progress::new(r.clone());
        p.phase(Phase::Dump, Some(10));
        p.bytes(4);
        assert!(p.check_cancelled("x").is_ok());
        assert_eq!(*r.seen.lock().unwrap(), ["writing Some(10)", "+4"]);
        let none = Progress::none();
        none.bytes(1);
        assert!(!none.is_observed() && none.check_cancelled("x").is_ok());
    }

    #[test]
    fn a_cancelled_observer_stops_the_operation() {
        let p = Progress::new(Arc::new(Recorder {
            cancel: true,
            ..Default::default()
        }));
        let e = p.check_cancelled("ckpt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ckpt: Operation canceled: cancelled by the caller"
        );
    }
}
