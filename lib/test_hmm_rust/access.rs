// SPDX-License-Identifier: GPL-2.0

//! READ, WRITE and SNAPSHOT: the device reads and writes the process's memory through its
//! device page table, faulting pages in with HMM when they are missing (`dmirror_fault`,
//! `dmirror_read`, `dmirror_write`, `dmirror_snapshot`).

use crate::bounce::Bounce;
use crate::devmem::{storage_page, Chunk};
use crate::dmirror::{chunk_end, CheckedRange, Dmirror, DmirrorData};
use crate::uapi::*;
use kernel::hmm::{HmmPfn, MirrorGuard, MirroredPage, PageKind, Range, Request, Retry};
use kernel::memremap::{DevicePageRef, Owner};
use kernel::mm::{highmem::CpuPage, range::for_each_piece, PMD_SHIFT, PUD_SHIFT};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::uaccess::UserSlice;

/// Pages faulted in by one `hmm_range_fault`, as in C.
const FAULT_CHUNK_PAGES: usize = 64;

/// The bytes of a chunk of [`FAULT_CHUNK_PAGES`].
pub(crate) const FAULT_CHUNK_SIZE: usize = FAULT_CHUNK_PAGES * PAGE_SIZE;

/// [`chunk_end`] for SNAPSHOT, which C reads with a temporary notifier over the chunk: the
/// notifier's insertion fails first, with `EOVERFLOW`, when the chunk's last byte wraps.
fn snapshot_chunk_end(addr: usize, end: usize) -> Result<usize> {
    addr.checked_add(FAULT_CHUNK_SIZE - 1).ok_or(EOVERFLOW)?;
    chunk_end(addr, end, FAULT_CHUNK_SIZE)
}

/// Why a device access stopped: a page missing from the device page table (fault it in and
/// go on), or an error.
pub(crate) enum Access {
    Missing,
    Failed(Error),
}

impl From<Error> for Access {
    fn from(e: Error) -> Self {
        Access::Failed(e)
    }
}

/// The result of one pass over the range under the mirror lock.
pub(crate) type StepResult = core::result::Result<(), Access>;

/// The page that holds the data of a page in the device page table: the page itself if the
/// CPU can address it, the device's storage for a device-private page of this device.
fn data_page<'a>(page: &MirroredPage<'a>, owner: &Owner) -> Result<CpuPage<'a>> {
    if let Some(cpu) = page.as_cpu() {
        return Ok(cpu);
    }
    let device = page.as_device().ok_or(EFAULT)?;
    storage_page(&device.pagemap::<Chunk>(owner).ok_or(EFAULT)?)
}

/// Copies the mapped pages from the start of the range on into `bounce`, until one is
/// missing (`dmirror_do_read`).
pub(crate) fn do_read(
    guard: &MirrorGuard<'_, DmirrorData>,
    owner: &Owner,
    range: &CheckedRange,
    bounce: &mut Bounce<'_>,
) -> StepResult {
    while bounce.cpages < range.npages {
        let addr = range.page_addr(bounce.cpages)?;
        let page = guard.table().lookup(addr).ok_or(Access::Missing)?;
        bounce.copy_in(&data_page(&page, owner)?)?;
    }
    Ok(())
}

/// Copies `bounce` into the pages from the start of the range on, until one is missing or
/// not writable in the device page table (`dmirror_do_write`).
fn do_write(
    guard: &MirrorGuard<'_, DmirrorData>,
    owner: &Owner,
    range: &CheckedRange,
    bounce: &mut Bounce<'_>,
) -> StepResult {
    while bounce.cpages < range.npages {
        let addr = range.page_addr(bounce.cpages)?;
        let page = guard.table().lookup(addr).ok_or(Access::Missing)?;
        if !page.is_writable() {
            return Err(Access::Missing);
        }
        data_page(&page, owner)?.write(0, bounce.next_page()?)?;
        bounce.advance();
    }
    Ok(())
}

/// The snapshot byte of one page (`dmirror_mkentry`).
#[inline]
fn snapshot_entry(pfn: &HmmPfn<'_>, owner: &Owner) -> u8 {
    if pfn.is_error() {
        return HMM_DMIRROR_PROT_ERROR;
    }
    // System memory, the common case, takes two tests; device pages have an owner to compare.
    let mut perm = match pfn.kind() {
        None => return HMM_DMIRROR_PROT_NONE,
        Some(PageKind::System) => HMM_DMIRROR_PROT_NONE,
        Some(PageKind::Zero) => HMM_DMIRROR_PROT_ZERO,
        Some(kind) => device_entry(pfn.device_page(), kind, owner),
    };
    perm |= if pfn.is_writable() {
        HMM_DMIRROR_PROT_WRITE
    } else {
        HMM_DMIRROR_PROT_READ
    };
    // One test for the common PTE mapping.
    if pfn.map_order() != 0 {
        perm |= huge_entry(pfn.map_shift());
    }
    perm
}

/// The snapshot bits of a mapping larger than a page, of size `1 << shift`.
#[cold]
fn huge_entry(shift: u32) -> u8 {
    match shift {
        PMD_SHIFT => HMM_DMIRROR_PROT_PMD,
        PUD_SHIFT => HMM_DMIRROR_PROT_PUD,
        _ => 0,
    }
}

/// The snapshot bits of a device page of `kind`: local to this device or remote.
#[inline(never)]
fn device_entry(page: Option<DevicePageRef<'_>>, kind: PageKind, owner: &Owner) -> u8 {
    let local = page.is_some_and(|page| page.is_owned_by(owner));
    match (kind == PageKind::DevicePrivate, local) {
        (true, true) => HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
        (true, false) => HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
        (false, true) => HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
        (false, false) => HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
    }
}

impl Dmirror {
    /// Faults `[start, end)` into the device page table (`dmirror_fault`).
    fn fault(&self, start: usize, end: usize, request: Request) -> Result {
        // Like C: `EFAULT` if the process has exited.
        let mm = self.mirror.mm().mmget_not_zero().ok_or(EFAULT)?;
        // The range is sized by the user: the walk lets others run between chunks, and stops
        // if the task is being killed (`Mirror::fault` does so only between its retries).
        let chunk = |addr| chunk_end(addr, end, FAULT_CHUNK_SIZE);
        for_each_piece(start, end, chunk, |addr, next| {
            let mut range = Range::new(addr, next, request, Some(self.owner()))?;
            match self.mirror.fault(&mm, &mut range, |commit| commit.map())? {
                // Pages of this device that the CPU maps read-only (after an mprotect or
                // a fork): move them back to system memory, where the write fault breaks
                // copy-on-write, and fault again.
                Err(e) if e == EACCES => {
                    self.migrate_range_to_ram(&mm, addr, next)?;
                    let mut range = Range::new(addr, next, request, Some(self.owner()))?;
                    self.mirror
                        .fault(&mm, &mut range, |commit| commit.map())?
                        .map_err(|e| if e == EACCES { EFAULT } else { e })?;
                }
                ret => ret?,
            }
            Ok(())
        })
    }

    /// Runs `step` over the range under the mirror lock, faulting the missing pages in with
    /// `request` and going on, until it completes (`dmirror_read`/`dmirror_write`).
    ///
    /// Another thread may invalidate the pages as fast as they are faulted in: the loop stops
    /// with `EINTR` when the task is killed, and with `EBUSY` when no page got through for
    /// [`RANGE_DEFAULT_TIMEOUT_MS`](kernel::hmm::RANGE_DEFAULT_TIMEOUT_MS) (C's loop does not
    /// stop at all).
    fn access(
        &self,
        cmd: &mut HmmDmirrorCmd,
        range: &CheckedRange,
        bounce: &mut Bounce<'_>,
        request: Request,
        step: fn(
            &MirrorGuard<'_, DmirrorData>,
            &Owner,
            &CheckedRange,
            &mut Bounce<'_>,
        ) -> StepResult,
    ) -> Result {
        let mut progress = (bounce.cpages, Retry::new());
        let ret = loop {
            match step(&self.mirror.lock(), self.owner(), range, bounce) {
                Ok(()) => break Ok(()),
                Err(Access::Failed(e)) => break Err(e),
                Err(Access::Missing) => {}
            }
            if bounce.cpages != progress.0 {
                progress = (bounce.cpages, Retry::new());
            }
            if let Err(e) = progress.1.again() {
                break Err(e);
            }
            let start = match range.page_addr(bounce.cpages) {
                Ok(start) => start,
                Err(e) => break Err(e),
            };
            if let Err(e) = self.fault(start, range.end, request) {
                break Err(e);
            }
            cmd.faults = cmd.faults.saturating_add(1);
        };
        cmd.cpages = u64::try_from(bounce.cpages)?;
        ret
    }

    /// Copies what the device page table maps of the range into the user's buffer, without
    /// faulting anything in (`dmirror_do_read` after a migration or EXCLUSIVE): like C,
    /// `ENOENT` if a page is missing.
    pub(crate) fn read_back(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut bounce = Bounce::new(self, range)?;
        let ret = match do_read(&self.mirror.lock(), self.owner(), range, &mut bounce) {
            Ok(()) => Ok(()),
            Err(Access::Missing) => Err(ENOENT),
            Err(Access::Failed(e)) => Err(e),
        };
        if ret.is_ok() {
            bounce.write_user(usize::try_from(cmd.ptr)?)?;
        }
        cmd.cpages = u64::try_from(bounce.cpages)?;
        ret
    }

    /// HMM_DMIRROR_READ: copies the range into the user's buffer, through the device.
    pub(crate) fn read(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut bounce = Bounce::new(self, range)?;
        self.access(cmd, range, &mut bounce, Request::Read, do_read)?;
        bounce.write_user(usize::try_from(cmd.ptr)?)
    }

    /// HMM_DMIRROR_WRITE: copies the user's buffer into the range, through the device.
    pub(crate) fn write(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut bounce = Bounce::new(self, range)?;
        bounce.read_user(usize::try_from(cmd.ptr)?)?;
        self.access(cmd, range, &mut bounce, Request::Write, do_write)
    }

    /// HMM_DMIRROR_SNAPSHOT: one byte per page of the range describing its CPU mapping,
    /// without faulting anything in.
    pub(crate) fn snapshot(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut out = UserSlice::new(usize::try_from(cmd.ptr)?, range.npages).writer();
        // Like C: `EINVAL` if the process has exited.
        let mm = self.mirror.mm().mmget_not_zero().ok_or(EINVAL)?;
        // The range is sized by the user: the walk lets others run between chunks, and stops
        // with `EINTR` if the task is killed. Other signals do not interrupt it, as in C.
        let chunk = |addr| snapshot_chunk_end(addr, range.end);
        for_each_piece(range.start, range.end, chunk, |addr, next| {
            let mut hmm_range = Range::new(addr, next, Request::Snapshot, Some(self.owner()))?;
            let mut perm = [0u8; FAULT_CHUNK_PAGES];
            let n = self.mirror.fault(&mm, &mut hmm_range, |commit| {
                perm.iter_mut()
                    .zip(commit.range().iter())
                    .map(|(slot, (_, pfn))| *slot = snapshot_entry(&pfn, self.owner()))
                    .count()
            })?;
            out.write_slice(perm.get(..n).ok_or(EINVAL)?)?;
            cmd.cpages = cmd.cpages.saturating_add(u64::try_from(n)?);
            Ok(())
        })
    }
}
