//! membarrier(2) registrations of a process (REGISTER_GLOBAL_EXPEDITED,
//! REGISTER_PRIVATE_EXPEDITED and its SYNC_CORE and RSEQ forms), kept by the kernel with
//! the address space and shown nowhere in /proc. Checkpoint asks the process itself
//! (MEMBARRIER_CMD_GET_REGISTRATIONS, Linux 6.3 and later, through an injected call);
//! the restore child registers its address space again (it keeps it when it becomes the
//! process) and asks the kernel back: a difference fails the restart.

use crate::engine::ptrace::Questions;
use crate::error::{Error, Kind, Result};

const GET_REGISTRATIONS: i32 = 1 << 9;

/// The registration commands a process may have used; their bits are the mask
/// GET_REGISTRATIONS answers.
const REGISTRATIONS: [(i32, &str); 4] = [
    (1 << 2, "REGISTER_GLOBAL_EXPEDITED"),
    (1 << 4, "REGISTER_PRIVATE_EXPEDITED"),
    (1 << 6, "REGISTER_PRIVATE_EXPEDITED_SYNC_CORE"),
    (1 << 8, "REGISTER_PRIVATE_EXPEDITED_RSEQ"),
];

/// Checkpoint: adds the question, injected into the process, whose raw answer
/// `registrations` reads. A kernel without GET_REGISTRATIONS (EINVAL) cannot tell: none
/// are kept.
pub fn ask(questions: &mut Questions) -> usize {
    questions.ask(
        "membarrier(GET_REGISTRATIONS)",
        libc::SYS_membarrier,
        [GET_REGISTRATIONS as u64, 0, 0, 0, 0, 0],
    )
}

/// The registrations, from membarrier(GET_REGISTRATIONS)'s raw result (none where the
/// kernel has no membarrier).
pub fn registrations(rc: i64) -> Result<u32> {
    match rc {
        r if r >= 0 => Ok(r as u32),
        r if r == -(libc::EINVAL as i64) || r == -(libc::ENOSYS as i64) => Ok(0),
        r => Err(Error::errno(
            "membarrier(GET_REGISTRATIONS)",
            nix::errno::Errno::from_raw(-r as i32),
        )),
    }
}

/// A statefile's mask must hold registration commands only.
pub fn check(mask: u32) -> std::result::Result<(), String> {
    let known = REGISTRATIONS.iter().fold(0, |m, (bit, _)| m | *bit as u32);
    if mask & !known != 0 {
        return Err(format!("membarrier registrations {mask:#x}"));
    }
    Ok(())
}

/// In the restore child, on its own address space: each registration again, then the
/// kernel's answer compared.
pub fn restore(mask: u32, who: &str) -> Result<()> {
    if mask == 0 {
        return Ok(());
    }
    check(mask).map_err(crate::statefile::reader::damaged_record)?;
    for (bit, name) in REGISTRATIONS {
        if mask & bit as u32 != 0 {
            crate::sys::membarrier::membarrier(bit)
                .map_err(|e| Error::errno(format!("{who}: membarrier({name})"), e))?;
        }
    }
    let now = crate::sys::membarrier::membarrier(GET_REGISTRATIONS)
        .map_err(|e| Error::errno(format!("{who}: membarrier(GET_REGISTRATIONS)"), e))?;
    if now as u32 != mask {
        return Err(Error::with_detail(
            format!("{who}: membarrier registrations"),
            Kind::CheckpointError,
            format!("restored as {now:#x}, the statefile says {mask:#x}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registration_commands_are_taken_from_a_statefile() {
        assert!(check(0).is_ok());
        assert!(check(1 << 4 | 1 << 8).is_ok());
        // MEMBARRIER_CMD_GLOBAL (an execution, not a registration)
        assert!(check(1).is_err());
        assert!(check(1 << 9).is_err());
    }
}
