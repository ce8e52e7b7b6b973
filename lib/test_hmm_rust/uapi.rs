// SPDX-License-Identifier: GPL-2.0

//! The user ABI of the HMM test device, identical to
//! [`lib/test_hmm_uapi.h`](srctree/lib/test_hmm_uapi.h).

use kernel::ioctl::_IOWR;
use kernel::types::{AsBytes, FromBytes};

/// The argument of every ioctl (`struct hmm_dmirror_cmd`).
///
/// `addr` and `npages` give the range of the caller's address space; `ptr` is the caller's
/// buffer for READ, WRITE and SNAPSHOT; `cpages` and `faults` are written back on success.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HmmDmirrorCmd {
    pub(crate) addr: u64,
    pub(crate) ptr: u64,
    pub(crate) npages: u64,
    pub(crate) cpages: u64,
    pub(crate) faults: u64,
}

// SAFETY: `HmmDmirrorCmd` is five `u64`s: no padding, and any bit pattern is valid.
unsafe impl FromBytes for HmmDmirrorCmd {}

// SAFETY: `HmmDmirrorCmd` is five `u64`s: no padding, so every byte is initialised.
unsafe impl AsBytes for HmmDmirrorCmd {}

const fn cmd(nr: u32) -> u32 {
    _IOWR::<HmmDmirrorCmd>(b'H' as u32, nr)
}

/// Copy from the mirrored range into `ptr`.
pub(crate) const HMM_DMIRROR_READ: u32 = cmd(0x00);
/// Copy from `ptr` into the mirrored range.
pub(crate) const HMM_DMIRROR_WRITE: u32 = cmd(0x01);
/// Migrate the range to device memory.
pub(crate) const HMM_DMIRROR_MIGRATE_TO_DEV: u32 = cmd(0x02);
/// Migrate the range back to system memory.
pub(crate) const HMM_DMIRROR_MIGRATE_TO_SYS: u32 = cmd(0x03);
/// Write one byte per page describing the range into `ptr`.
pub(crate) const HMM_DMIRROR_SNAPSHOT: u32 = cmd(0x04);
/// Take device-exclusive access to the range.
pub(crate) const HMM_DMIRROR_EXCLUSIVE: u32 = cmd(0x05);
/// Check that device-exclusive access to the range is still held.
pub(crate) const HMM_DMIRROR_CHECK_EXCLUSIVE: u32 = cmd(0x06);
/// Evict every page of the device and free its memory.
pub(crate) const HMM_DMIRROR_RELEASE: u32 = cmd(0x07);

/// SNAPSHOT: the address cannot be accessed.
pub(crate) const HMM_DMIRROR_PROT_ERROR: u8 = 0xFF;
/// SNAPSHOT: nothing is mapped.
pub(crate) const HMM_DMIRROR_PROT_NONE: u8 = 0x00;
/// SNAPSHOT: mapped read-only.
pub(crate) const HMM_DMIRROR_PROT_READ: u8 = 0x01;
/// SNAPSHOT: mapped writable.
pub(crate) const HMM_DMIRROR_PROT_WRITE: u8 = 0x02;
/// SNAPSHOT: mapped by a PMD.
pub(crate) const HMM_DMIRROR_PROT_PMD: u8 = 0x04;
/// SNAPSHOT: mapped by a PUD.
pub(crate) const HMM_DMIRROR_PROT_PUD: u8 = 0x08;
/// SNAPSHOT: the shared zero page.
pub(crate) const HMM_DMIRROR_PROT_ZERO: u8 = 0x10;
/// SNAPSHOT: device-private memory of this device.
pub(crate) const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL: u8 = 0x20;
/// SNAPSHOT: device-private memory of another device.
pub(crate) const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE: u8 = 0x30;
/// SNAPSHOT: device-coherent memory of this device.
pub(crate) const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL: u8 = 0x40;
/// SNAPSHOT: device-coherent memory of another device.
pub(crate) const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE: u8 = 0x50;
