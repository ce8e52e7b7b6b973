// SPDX-License-Identifier: GPL-2.0

//! HMM_DMIRROR_EXCLUSIVE and HMM_DMIRROR_CHECK_EXCLUSIVE: pages made exclusive to the device
//! for its atomics, until a CPU access revokes them (`dmirror_exclusive`,
//! `dmirror_check_atomic`).

use crate::access::FAULT_CHUNK_SIZE;
use crate::dmirror::{chunk_end, CheckedRange, Dmirror};
use crate::uapi::*;
use kernel::mm::range::for_each_piece;
use kernel::prelude::*;

impl Dmirror {
    /// HMM_DMIRROR_EXCLUSIVE: makes the range exclusive to the device, 64 pages at a time,
    /// maps it in the device page table, and returns the data read through the device.
    ///
    /// Like C: `EINVAL` if the process has exited, `EBUSY` unless every page of the range was
    /// made exclusive and mapped (holes, file pages, a wrapping range...).
    pub(crate) fn exclusive(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mm = self.mirror.mm().mmget_not_zero().ok_or(EINVAL)?;
        let mmap = mm.mmap_read_lock_killable()?;
        for_each_piece(
            range.start,
            range.end,
            |addr| chunk_end(addr, range.end, FAULT_CHUNK_SIZE).map_err(|_| EBUSY),
            |start, end| match self.mirror.make_exclusive(&mmap, start, end) {
                Err(e) if e != EINTR => Err(EBUSY),
                ret => ret,
            },
        )?;
        // The read back takes the mmap lock itself.
        drop(mmap);
        self.read_back(cmd, range)
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE: `EPERM` if a page of the range is still exclusive to the
    /// device.
    ///
    /// C looks up every page of the user's range, however large (`npages = 2^48` pins a CPU
    /// for good); this walks only the entries the device page table has.
    pub(crate) fn check_exclusive(&self, range: &CheckedRange) -> Result {
        if self
            .mirror
            .lock()
            .table()
            .contains_exclusive(range.start, range.end)
        {
            return Err(EPERM);
        }
        Ok(())
    }
}
