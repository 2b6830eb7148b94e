//! The few raw system calls nix lacks. All `unsafe` lives here or in `engine/ptrace/`.

pub mod kcmp;
