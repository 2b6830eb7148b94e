//! cpr: checkpoint and restart of running Linux processes, compatible with IRIX CPR.
//!
//! The `cpr` command is a thin layer over [`ops`]; the C library (libcpr) shares it.

pub mod attrfile;
pub mod engine;
pub mod error;
pub mod ops;
pub mod proc;
pub mod statefile;
pub mod sys;
pub mod target;

pub use error::{Error, Kind, Result};
