// SPDX-License-Identifier: GPL-2.0

//! READ, WRITE and SNAPSHOT: the device reads and writes the process's memory through its
//! device page table, faulting pages in with HMM when they are missing.

use crate::dmirror::{CheckedRange, Dmirror, DmirrorData, MAX_BOUNCE_PAGES};
use crate::uapi::*;
use kernel::alloc::KVVec;
use kernel::hmm::{HmmPfn, MirrorGuard, PageKind, Range, Request};
use kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use kernel::prelude::*;
use kernel::task::cond_resched;
use kernel::uaccess::UserSlice;

/// Pages faulted in by one `hmm_range_fault`, as in C.
const FAULT_CHUNK_PAGES: usize = 64;

/// A kernel copy of the user's buffer for the pages of a range.
struct Bounce {
    buf: KVVec<u8>,
    /// Pages copied so far, from the start of the range.
    cpages: usize,
}

impl Bounce {
    fn new(range: &CheckedRange) -> Result<Self> {
        if range.npages as u64 > MAX_BOUNCE_PAGES {
            return Err(EINVAL);
        }
        Ok(Self {
            buf: KVVec::from_elem(0u8, range.npages * PAGE_SIZE, GFP_KERNEL)?,
            cpages: 0,
        })
    }

    /// The part of the buffer for page `i` of the range.
    fn page(&mut self, i: usize) -> Result<&mut [u8]> {
        let start = i.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        self.buf.get_mut(start..start + PAGE_SIZE).ok_or(EINVAL)
    }
}

/// Why a device access stopped: a page missing from the device page table (fault it in and
/// go on), or an error.
enum Access {
    Missing,
    Failed(Error),
}

impl From<Error> for Access {
    fn from(e: Error) -> Self {
        Access::Failed(e)
    }
}

/// The result of one pass over the range under the mirror lock.
type StepResult = core::result::Result<(), Access>;

/// Copies the mapped pages from the start of the range on into `bounce`, until one is
/// missing (`dmirror_do_read`).
fn do_read(
    guard: &MirrorGuard<'_, DmirrorData>,
    range: &CheckedRange,
    bounce: &mut Bounce,
) -> StepResult {
    while bounce.cpages < range.npages {
        let addr = range.start + (bounce.cpages << PAGE_SHIFT);
        let page = guard.table().lookup(addr).ok_or(Access::Missing)?;
        page.read(bounce.page(bounce.cpages)?)?;
        bounce.cpages += 1;
    }
    Ok(())
}

/// Copies `bounce` into the pages from the start of the range on, until one is missing or
/// not writable in the device page table (`dmirror_do_write`).
fn do_write(
    guard: &MirrorGuard<'_, DmirrorData>,
    range: &CheckedRange,
    bounce: &mut Bounce,
) -> StepResult {
    while bounce.cpages < range.npages {
        let addr = range.start + (bounce.cpages << PAGE_SHIFT);
        let page = guard.table().lookup(addr).ok_or(Access::Missing)?;
        if !page.is_writable() {
            return Err(Access::Missing);
        }
        page.write(bounce.page(bounce.cpages)?)?;
        bounce.cpages += 1;
    }
    Ok(())
}

/// The snapshot byte of one page (`dmirror_mkentry`).
fn snapshot_entry(pfn: &HmmPfn<'_>) -> u8 {
    if pfn.is_error() {
        return HMM_DMIRROR_PROT_ERROR;
    }
    let Some(kind) = pfn.kind() else {
        return HMM_DMIRROR_PROT_NONE;
    };
    // No page of this device's memory exists yet, so device pages are another device's.
    let mut perm = match kind {
        PageKind::DevicePrivate => HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
        PageKind::DeviceCoherent => HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
        PageKind::Zero => HMM_DMIRROR_PROT_ZERO,
        PageKind::System => HMM_DMIRROR_PROT_NONE,
    };
    perm |= if pfn.is_writable() {
        HMM_DMIRROR_PROT_WRITE
    } else {
        HMM_DMIRROR_PROT_READ
    };
    match pfn.map_order() + PAGE_SHIFT as u32 {
        PMD_SHIFT => perm |= HMM_DMIRROR_PROT_PMD,
        PUD_SHIFT => perm |= HMM_DMIRROR_PROT_PUD,
        _ => {}
    }
    perm
}

const PMD_SHIFT: u32 = 21;
const PUD_SHIFT: u32 = 30;

impl Dmirror {
    /// Faults `[start, end)` into the device page table (`dmirror_fault`).
    fn fault(&self, start: usize, end: usize, request: Request) -> Result {
        let mm = self.mirror.mm();
        mm.with_user(|mm| {
            let mut addr = start;
            while addr < end {
                cond_resched();
                let next = end.min(addr + FAULT_CHUNK_PAGES * PAGE_SIZE);
                let mut range = Range::new(addr, next, request, Some(&self.mdevice.owner))?;
                self.mirror.fault(mm, &mut range, |commit| commit.map())??;
                addr = next;
            }
            Ok(())
        })
        // Like C: the process has exited.
        .ok_or(EFAULT)?
    }

    /// Runs `step` over the range under the mirror lock, faulting the missing pages in with
    /// `request` and going on, until it completes (`dmirror_read`/`dmirror_write`).
    fn access(
        &self,
        cmd: &mut HmmDmirrorCmd,
        range: &CheckedRange,
        bounce: &mut Bounce,
        request: Request,
        step: fn(&MirrorGuard<'_, DmirrorData>, &CheckedRange, &mut Bounce) -> StepResult,
    ) -> Result {
        let ret = loop {
            match step(&self.mirror.lock(), range, bounce) {
                Ok(()) => break Ok(()),
                Err(Access::Failed(e)) => break Err(e),
                Err(Access::Missing) => {}
            }
            let start = range.start + (bounce.cpages << PAGE_SHIFT);
            if let Err(e) = self.fault(start, range.end, request) {
                break Err(e);
            }
            cmd.faults += 1;
        };
        cmd.cpages = bounce.cpages as u64;
        ret
    }

    /// HMM_DMIRROR_READ: copies the range into the user's buffer, through the device.
    pub(crate) fn read(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut bounce = Bounce::new(range)?;
        self.access(cmd, range, &mut bounce, Request::Read, do_read)?;
        let user = UserSlice::new(usize::try_from(cmd.ptr)?, bounce.buf.len());
        user.writer().write_slice(&bounce.buf)
    }

    /// HMM_DMIRROR_WRITE: copies the user's buffer into the range, through the device.
    pub(crate) fn write(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut bounce = Bounce::new(range)?;
        let user = UserSlice::new(usize::try_from(cmd.ptr)?, bounce.buf.len());
        user.reader().read_slice(&mut bounce.buf)?;
        self.access(cmd, range, &mut bounce, Request::Write, do_write)
    }

    /// HMM_DMIRROR_SNAPSHOT: one byte per page of the range describing its CPU mapping,
    /// without faulting anything in.
    pub(crate) fn snapshot(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        let mut out = UserSlice::new(usize::try_from(cmd.ptr)?, range.npages).writer();
        let mm = self.mirror.mm();
        mm.with_user(|mm| -> Result {
            let mut addr = range.start;
            while addr < range.end {
                // The range is sized by the user: let others run, and stop when asked to.
                cond_resched();
                if kernel::current!().signal_pending() {
                    return Err(EINTR);
                }
                let next = range.end.min(addr + FAULT_CHUNK_PAGES * PAGE_SIZE);
                let mut hmm_range =
                    Range::new(addr, next, Request::Snapshot, Some(&self.mdevice.owner))?;
                let mut perm = [0u8; FAULT_CHUNK_PAGES];
                let n = self.mirror.fault(mm, &mut hmm_range, |commit| {
                    let mut n = 0;
                    for (slot, (_, pfn)) in perm.iter_mut().zip(commit.range().iter()) {
                        *slot = snapshot_entry(&pfn);
                        n += 1;
                    }
                    n
                })?;
                out.write_slice(&perm[..n])?;
                cmd.cpages += n as u64;
                addr = next;
            }
            Ok(())
        })
        // Like C: the process has exited.
        .ok_or(EINVAL)?
    }
}
