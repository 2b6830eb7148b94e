//! Kernel structures passed to system calls, each defined once as a `#[repr(C)]` type:
//! used directly by cpr's own calls, and as bytes (`as_bytes`) where the call is injected
//! into another process and the structure must be copied into its memory first.

use std::mem::size_of;

/// Plain kernel structures: integers only, no padding, so every byte is initialised.
///
/// # Safety
/// An implementor must be `#[repr(C)]`, made only of integer fields, without padding
/// (checked for each below by a size assertion).
pub unsafe trait KernelStruct: Copy + Sized {
    /// The structure as the kernel reads it, to be copied into a remote process.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `self` is a live value of `size_of::<Self>()` bytes, all initialised
        // (the trait's contract: integers, no padding); the slice borrows `self`.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>()) }
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    /// Address of an array of `set_tid_size` PIDs (innermost namespace first).
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

const _: () = assert!(size_of::<CloneArgs>() == 88);
// SAFETY: repr(C), eleven u64 fields, no padding (asserted above).
unsafe impl KernelStruct for CloneArgs {}

/// `_LINUX_CAPABILITY_VERSION_3`: two data words, 64 capability bits per set.
pub const CAP_V3: u32 = 0x2008_0522;

/// Capability sets (inheritable, permitted, effective), 64 bits each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Caps {
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CapUserHeader {
    pub version: u32,
    pub pid: i32,
}

/// `struct __user_cap_data_struct`: one 32-bit word of each set.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CapUserData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

/// What capset(2) takes for version 3: the header, then two data words (low, high). The
/// data starts `CapsetArgs::DATA_OFFSET` bytes after the header.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CapsetArgs {
    pub header: CapUserHeader,
    pub data: [CapUserData; 2],
}

const _: () = assert!(size_of::<CapsetArgs>() == 8 + 2 * 12);
// SAFETY: repr(C), u32/i32 fields only, no padding (asserted above).
unsafe impl KernelStruct for CapsetArgs {}

impl CapsetArgs {
    /// Offset of `data` from the start of the structure.
    pub const DATA_OFFSET: u64 = size_of::<CapUserHeader>() as u64;

    /// The arguments that set `caps` on thread `pid` (0: the calling thread).
    pub fn new(pid: i32, caps: &Caps) -> CapsetArgs {
        let word = |half: u32| CapUserData {
            effective: (caps.effective >> half) as u32,
            permitted: (caps.permitted >> half) as u32,
            inheritable: (caps.inheritable >> half) as u32,
        };
        CapsetArgs {
            header: CapUserHeader {
                version: CAP_V3,
                pid,
            },
            data: [word(0), word(32)],
        }
    }
}

/// prctl(PR_SET_MM, PR_SET_MM_MAP) layout (`struct prctl_mm_map`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

const _: () = assert!(size_of::<PrctlMmMap>() == 12 * 8 + 2 * 4);
// SAFETY: repr(C), integer fields only, no padding (asserted above).
unsafe impl KernelStruct for PrctlMmMap {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capset_args_lay_out_header_then_low_and_high_words() {
        let caps = Caps {
            inheritable: 0x1_0000_0002,
            permitted: 0x3_0000_0004,
            effective: 0x5_0000_0006,
        };
        let b = CapsetArgs::new(0, &caps);
        let words: Vec<u32> = b
            .as_bytes()
            .chunks(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(words, [CAP_V3, 0, 6, 4, 2, 5, 3, 1]);
        assert_eq!(CapsetArgs::DATA_OFFSET, 8);
    }

    #[test]
    fn clone_args_are_eleven_words_in_order() {
        let a = CloneArgs {
            flags: 1,
            set_tid: 9,
            set_tid_size: 10,
            ..Default::default()
        };
        let words: Vec<u64> = a
            .as_bytes()
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(words, [1, 0, 0, 0, 0, 0, 0, 0, 9, 10, 0]);
    }

    #[test]
    fn prctl_mm_map_is_104_bytes_ending_with_auxv_size_and_exe_fd() {
        let m = PrctlMmMap {
            start_code: 7,
            auxv_size: 3,
            exe_fd: 4,
            ..Default::default()
        };
        let b = m.as_bytes();
        assert_eq!(b.len(), 104);
        assert_eq!(&b[..8], &7u64.to_ne_bytes());
        assert_eq!(&b[96..100], &3u32.to_ne_bytes());
        assert_eq!(&b[100..], &4u32.to_ne_bytes());
    }
}
