// SPDX-License-Identifier: GPL-2.0

//! The device's ioctl ABI: include/uapi/linux/rust_hmm_gpu.h.

use kernel::ioctl::_IOWR;
use kernel::types::{AsBytes, FromBytes};

/// `struct rust_hmm_gpu_cmd`: one device operation.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Cmd {
    pub(crate) op: u32,
    pub(crate) flags: u32,
    pub(crate) addr: u64,
    pub(crate) src: u64,
    pub(crate) len: u64,
    pub(crate) value: u64,
    pub(crate) compare: u64,
    pub(crate) stride: u64,
}

// SAFETY: Integers only, no padding (two u32 then six u64): any bit pattern is a valid `Cmd`.
unsafe impl FromBytes for Cmd {}

/// `struct rust_hmm_gpu_submit`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Submit {
    pub(crate) cmds: u64,
    pub(crate) ncmds: u32,
    pub(crate) pad: u32,
    pub(crate) fence: u64,
}

// SAFETY: Integers only, no padding (u64, two u32, u64): any bit pattern is valid.
unsafe impl FromBytes for Submit {}

// SAFETY: Integers only, no padding: every byte is initialised.
unsafe impl AsBytes for Submit {}

/// `struct rust_hmm_gpu_wait`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Wait {
    pub(crate) fence: u64,
    pub(crate) results: u64,
    pub(crate) nresults: u32,
    pub(crate) status: i32,
    pub(crate) timeout_ms: u64,
}

// SAFETY: Integers only, no padding (u64, u64, u32, i32, u64): any bit pattern is valid.
unsafe impl FromBytes for Wait {}

// SAFETY: Integers only, no padding: every byte is initialised.
unsafe impl AsBytes for Wait {}

pub(crate) const OP_LOAD: u32 = 1;
pub(crate) const OP_STORE: u32 = 2;
pub(crate) const OP_FILL: u32 = 3;
pub(crate) const OP_COPY: u32 = 4;
pub(crate) const OP_ATOMIC_ADD: u32 = 5;
pub(crate) const OP_ATOMIC_CAS: u32 = 6;
pub(crate) const OP_STREAM: u32 = 7;

/// STREAM writes instead of reading.
pub(crate) const STREAM_WRITE: u32 = 1 << 0;

/// The most commands in one submission.
pub(crate) const MAX_CMDS: u32 = 4096;
/// The most jobs of a context queued or not waited for.
pub(crate) const MAX_JOBS: usize = 64;
/// The longest range of one command.
pub(crate) const MAX_LEN: u64 = 1 << 30;

pub(crate) const SUBMIT: u32 = _IOWR::<Submit>(b'R' as u32, 0x40);
pub(crate) const WAIT: u32 = _IOWR::<Wait>(b'R' as u32, 0x41);
