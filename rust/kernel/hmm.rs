// SPDX-License-Identifier: GPL-2.0

//! Heterogeneous Memory Management: read a process's CPU page tables for a device.
//!
//! [`range_fault`] runs the canonical loop of
//! [Documentation/mm/hmm.rst](srctree/Documentation/mm/hmm.rst): take a sequence of an
//! [`MmuIntervalNotifier`], `hmm_range_fault` under the mmap read lock (retrying on `EBUSY`),
//! then take the notifier lock and check that no invalidation ran in between; only then is
//! the result handed to the caller's `commit`, with the notifier's state locked. The loop
//! gives up with `EBUSY` after [`RANGE_DEFAULT_TIMEOUT_MS`], and with `EINTR` when the task is
//! being killed; before each retry it lets others run. (Not before the first read, whose work
//! the range bounds: a caller that walks a range sized by the user, piece by piece, reschedules
//! and checks for a fatal signal between the pieces.) [`range_fault_locked`] is the same loop
//! for a caller that already holds the mmap read lock (a CPU fault handler, device-exclusive
//! access).
//!
//! A range must lie inside the notifier's interval: a page outside it would get no
//! invalidation, and a device table filled from it would keep pointing at the page after it
//! is freed. (`hmm_range_fault` itself does not check this on 6.12.)
//!
//! The pages in a result are not referenced: only the invalidation protocol keeps them
//! alive, so a result ([`FaultedRange`], [`HmmPfn`]) exists only inside `commit`. To keep
//! pages for later, a device uses a [`Mirror`], whose device page table is cleared by every
//! invalidation and can only be filled from a result validated against the same notifier.
//!
//! C header: [`include/linux/hmm.h`](srctree/include/linux/hmm.h)

use crate::{
    bindings,
    error::{to_result, Result},
    ffi::c_ulong,
    memremap::Owner,
    mm::{pfn_array::PfnArray, range::PageRange, MmWithUser, MmapReadGuard},
    mmu_notifier::{IntervalNotifierOps, MmuIntervalNotifier, Seq},
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    task::{cond_resched, fatal_signal_pending},
    time::{ktime_ms_delta, Ktime},
};
use core::marker::PhantomData;

#[cfg(CONFIG_DEVICE_PRIVATE)]
pub mod exclusive;
mod mirror;
pub mod policy;
mod table;
pub use mirror::{Mirror, MirrorCommit, MirrorGuard, MirrorOps};
pub use table::{DevicePageTable, MirroredPage};

/// How long [`range_fault`] retries a range that keeps being invalidated, in milliseconds
/// (`HMM_RANGE_DEFAULT_TIMEOUT`).
pub const RANGE_DEFAULT_TIMEOUT_MS: u32 = 1000;

/// The most pages a [`Range`] may span: a device works on a large range in pieces.
pub const RANGE_MAX_PAGES: usize = 1 << 16;

const PFN_VALID: usize = bindings::hmm_pfn_flags_HMM_PFN_VALID;
const PFN_WRITE: usize = bindings::hmm_pfn_flags_HMM_PFN_WRITE;
const PFN_ERROR: usize = bindings::hmm_pfn_flags_HMM_PFN_ERROR;
const PFN_FLAGS: usize = bindings::hmm_pfn_flags_HMM_PFN_FLAGS;

crate::layout::assert_c_layout!(hmm_range {
    size: RUST_LAYOUT_hmm_range_SIZE,
    align: RUST_LAYOUT_hmm_range_ALIGN,
    notifier: RUST_LAYOUT_hmm_range_notifier,
    notifier_seq: RUST_LAYOUT_hmm_range_notifier_seq,
    start: RUST_LAYOUT_hmm_range_start,
    end: RUST_LAYOUT_hmm_range_end,
    hmm_pfns: RUST_LAYOUT_hmm_range_hmm_pfns,
    default_flags: RUST_LAYOUT_hmm_range_default_flags,
    pfn_flags_mask: RUST_LAYOUT_hmm_range_pfn_flags_mask,
    dev_private_owner: RUST_LAYOUT_hmm_range_dev_private_owner,
});

/// What [`range_fault`] asks of every page of a [`Range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Report what is mapped, fault nothing in.
    Snapshot,
    /// Fault in what is not mapped, so that every page can be read.
    Read,
    /// Fault in, breaking COW, so that every page can be written.
    Write,
}

impl Request {
    /// `0` for a snapshot, valid to read, valid and writable to write.
    #[inline]
    fn default_flags(self) -> usize {
        match self {
            Self::Snapshot => 0,
            Self::Read => PFN_VALID,
            Self::Write => PFN_VALID | PFN_WRITE,
        }
    }
}

/// A page-aligned range of an address space, and what to ask of its pages.
///
/// The array `hmm_range_fault` fills for it lives in [`range_fault`]'s own frame, inline for
/// up to 64 pages: a range is cheap to create and to move.
pub struct Range<'o> {
    start: usize,
    end: usize,
    request: Request,
    owner: Option<&'o Owner>,
}

impl<'o> Range<'o> {
    /// Creates a range `[start, end)`, to be read as `request` says.
    ///
    /// Device-private pages of `owner` are reported as they are; those of other owners are
    /// migrated back to system memory first (a fault), as are all of them without an owner.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned or empty range or one of more than [`RANGE_MAX_PAGES`] pages.
    #[inline]
    pub fn new(
        start: usize,
        end: usize,
        request: Request,
        owner: Option<&'o Owner>,
    ) -> Result<Self> {
        if PageRange::new(start, end)?.npages() > RANGE_MAX_PAGES {
            return Err(EINVAL);
        }
        Ok(Self {
            start,
            end,
            request,
            owner,
        })
    }

    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The address just past the end of the range.
    #[inline]
    pub fn end(&self) -> usize {
        self.end
    }

    /// The number of pages of the range.
    #[inline]
    fn npages(&self) -> usize {
        (self.end - self.start) / PAGE_SIZE
    }

    /// Runs `hmm_range_fault` once, into `pfns`, an array of one entry per page.
    ///
    /// The caller holds the mmap read lock of the notifier's mm, the notifier is inserted and
    /// covers the range, and `seq` was read from it.
    fn fault_once(
        &self,
        pfns: &mut [usize],
        notifier: *mut bindings::mmu_interval_notifier,
        seq: c_ulong,
    ) -> Result {
        if pfns.len() != self.npages() {
            return Err(EINVAL);
        }
        let flags = self.request.default_flags();
        let mut raw = bindings::hmm_range {
            notifier,
            notifier_seq: seq,
            start: self.start,
            end: self.end,
            hmm_pfns: pfns.as_mut_ptr(),
            default_flags: flags,
            pfn_flags_mask: 0,
            dev_private_owner: self.owner.map_or(core::ptr::null_mut(), |o| o.as_ptr()),
        };
        // SAFETY: `raw` describes this range and its array, which has one entry per page; the
        // caller holds the mmap read lock of the notifier's mm, and the notifier is inserted
        // and covers the range.
        to_result(unsafe { bindings::hmm_range_fault(&mut raw) })
    }
}

/// The result of [`range_fault`] for one page: the CPU PTE as HMM reports it.
///
/// Exists only while the result is valid: under the notifier lock, before the next
/// invalidation.
#[derive(Clone, Copy)]
pub struct HmmPfn<'a> {
    raw: usize,
    _p: PhantomData<&'a ()>,
}

/// The kind of page an [`HmmPfn`] maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// System memory.
    System,
    /// The shared zero page.
    Zero,
    /// Device-private memory, not addressable by the CPU.
    DevicePrivate,
    /// Device-coherent memory.
    DeviceCoherent,
}

impl<'a> HmmPfn<'a> {
    /// Whether a page is mapped (`HMM_PFN_VALID`).
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.raw & PFN_VALID != 0
    }

    /// Whether the page may be written (`HMM_PFN_WRITE`).
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.raw & PFN_WRITE != 0
    }

    /// Whether the address cannot be accessed at all (`HMM_PFN_ERROR`): `PROT_NONE`, or a
    /// special mapping.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.raw & PFN_ERROR != 0
    }

    /// The order of the CPU mapping: 0 for a PTE, 9 for a PMD on x86-64
    /// (`hmm_pfn_to_map_order`).
    #[inline]
    pub fn map_order(&self) -> u32 {
        // SAFETY: `hmm_pfn_to_map_order` reads bits of the entry.
        unsafe { bindings::hmm_pfn_to_map_order(self.raw) }
    }

    /// The shift of the size of the CPU mapping: [`PAGE_SHIFT`] for a PTE,
    /// [`PMD_SHIFT`](crate::mm::PMD_SHIFT) or [`PUD_SHIFT`](crate::mm::PUD_SHIFT) for a huge
    /// mapping.
    #[inline]
    pub fn map_shift(&self) -> u32 {
        self.map_order() + PAGE_SHIFT as u32
    }

    /// The page frame number, if a page is mapped.
    #[inline]
    pub fn pfn(&self) -> Option<usize> {
        (self.is_valid() && !self.is_error()).then_some(self.raw & !PFN_FLAGS)
    }

    /// The page mapped, if any (`hmm_pfn_to_page`).
    #[inline]
    fn page(&self) -> Option<*mut bindings::page> {
        self.pfn()?;
        // SAFETY: A valid result's pfn has a `struct page`, alive while the result is valid.
        Some(unsafe { bindings::hmm_pfn_to_page(self.raw) })
    }

    /// The device page mapped, if it is one (device-private pages are only reported to their
    /// owner; device-coherent ones to anyone).
    #[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
    #[inline]
    pub fn device_page(&self) -> Option<crate::memremap::DevicePageRef<'a>> {
        // SAFETY: While the result is valid (`'a`), the CPU maps the page, which keeps it
        // allocated.
        unsafe { crate::memremap::DevicePageRef::from_raw(self.page()?) }
    }

    /// The kind of page mapped, if any.
    #[inline]
    pub fn kind(&self) -> Option<PageKind> {
        let pfn = self.pfn()?;
        let page = self.page()?;
        // SAFETY: `page` is valid while the result is (see `page`); the tests read its flags
        // and, for a `ZONE_DEVICE` page, the type of its pagemap, alive while the page is.
        let kind = unsafe {
            if !bindings::is_zone_device_page(page) {
                if bindings::is_zero_pfn(pfn) {
                    PageKind::Zero
                } else {
                    PageKind::System
                }
            } else if bindings::is_device_private_page(page) {
                PageKind::DevicePrivate
            } else if bindings::is_device_coherent_page(page) {
                PageKind::DeviceCoherent
            } else {
                // Other ZONE_DEVICE memory (DAX, P2P) is addressed as system memory is.
                PageKind::System
            }
        };
        Some(kind)
    }
}

/// The result of [`range_fault`]: one [`HmmPfn`] per page of the range.
///
/// Only exists inside the `commit` of [`range_fault`], where it is valid.
pub struct FaultedRange<'a> {
    range: &'a Range<'a>,
    /// What `hmm_range_fault` wrote: one entry per page of the range.
    pfns: &'a [usize],
}

impl FaultedRange<'_> {
    /// The owner whose device-private pages the result reports as they are.
    #[inline]
    pub(crate) fn owner(&self) -> Option<&Owner> {
        self.range.owner
    }

    /// What was asked of every page.
    #[inline]
    pub fn request(&self) -> Request {
        self.range.request
    }
}

impl<'a> FaultedRange<'a> {
    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.range.start
    }

    /// The address just past the end of the range.
    #[inline]
    pub fn end(&self) -> usize {
        self.range.end
    }

    /// Returns the result for each page, with its address.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (usize, HmmPfn<'a>)> + 'a {
        let start = self.range.start;
        self.pfns
            .iter()
            .enumerate()
            // The range's pages are addresses of the address space: no overflow (and no
            // overflow check in a loop that runs once per page).
            .map(move |(i, raw)| {
                (
                    start.wrapping_add(i.wrapping_mul(PAGE_SIZE)),
                    HmmPfn {
                        raw: *raw,
                        _p: PhantomData,
                    },
                )
            })
    }
}

/// The deadline of a loop that retries while invalidations keep interrupting it:
/// [`RANGE_DEFAULT_TIMEOUT_MS`] from its creation (`HMM_RANGE_DEFAULT_TIMEOUT`, which C
/// drivers' loops around `hmm_range_fault` use).
///
/// [`range_fault`] retries with one; a driver's own loop that waits for progress (a device
/// access that faults its pages in again and again) makes one per step that got somewhere.
///
/// # Examples
///
/// ```
/// use kernel::hmm::Retry;
///
/// let retry = Retry::new();
/// // Well before the deadline, in a task that is not being killed.
/// retry.again()?;
/// # Ok::<(), Error>(())
/// ```
pub struct Retry {
    start: Ktime,
}

impl Retry {
    /// Starts the clock.
    #[inline]
    pub fn new() -> Self {
        Self {
            start: Ktime::ktime_get(),
        }
    }

    /// Before another try: lets others run (invalidations, say).
    ///
    /// # Errors
    ///
    /// `EINTR` if the task is being killed, `EBUSY` once the deadline has passed.
    ///
    /// # Context
    ///
    /// Process context; may sleep.
    pub fn again(&self) -> Result {
        if fatal_signal_pending() {
            return Err(EINTR);
        }
        cond_resched();
        if ktime_ms_delta(Ktime::ktime_get(), self.start) > i64::from(RANGE_DEFAULT_TIMEOUT_MS) {
            return Err(EBUSY);
        }
        Ok(())
    }
}

impl Default for Retry {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks that `range` can be read for `notifier` in `mm`: `EINVAL` if `mm` is not the
/// notifier's or the range is not inside the notifier's interval.
fn check_range<T: IntervalNotifierOps>(
    notifier: &MmuIntervalNotifier<T>,
    mm: &MmWithUser,
    range: &Range<'_>,
) -> Result {
    if !core::ptr::eq(mm.as_raw(), notifier.mm().as_raw()) {
        return Err(EINVAL);
    }
    if !notifier.covers(range.start, range.end) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The canonical HMM loop: `fault` reads the range into the array for a sequence, then
/// `commit` runs under the notifier lock if no invalidation ran since.
///
/// The array is built here, in place: moving a 64-entry inline array costs a 512-byte copy.
#[inline(always)]
fn fault_loop<T: IntervalNotifierOps, R>(
    notifier: &MmuIntervalNotifier<T>,
    range: &Range<'_>,
    mut fault: impl FnMut(&Range<'_>, &mut [usize], c_ulong) -> Result,
    commit: impl FnOnce(&mut T, FaultedRange<'_>) -> R,
) -> Result<R> {
    let mut pfns = PfnArray::new();
    pfns.reset(range.npages())?;
    let retry = Retry::new();
    loop {
        let seq = walk(notifier, range, pfns.as_mut_slice(), &mut fault, &retry)?;
        if let Some(mut state) = seq.lock_if_unchanged() {
            return Ok(commit(
                &mut state,
                FaultedRange {
                    range,
                    pfns: pfns.as_slice(),
                },
            ));
        }
        retry.again()?;
    }
}

/// Reads `range` into `pfns` with `fault`, for a sequence read just before, until a walk gets
/// through (what a walk faulted in stays: the next one goes on from there); returns that
/// sequence. Invalidations may keep the walk busy: before each new try `retry` lets them run,
/// unless the task is dying or the deadline passed. Not before the first (the caller's loop
/// over pieces does it between them).
#[inline(always)]
fn walk<'n, T: IntervalNotifierOps>(
    notifier: &'n MmuIntervalNotifier<T>,
    range: &Range<'_>,
    pfns: &mut [usize],
    fault: &mut impl FnMut(&Range<'_>, &mut [usize], c_ulong) -> Result,
    retry: &Retry,
) -> Result<Seq<'n, T>> {
    loop {
        let seq = notifier.read_begin();
        match fault(range, pfns, seq.raw()) {
            Err(e) if e == EBUSY => retry.again()?,
            Err(e) => return Err(e),
            Ok(()) => return Ok(seq),
        }
    }
}

/// Reads the CPU page tables of `range` and hands the result to `commit`, with the state of
/// `notifier` locked and no invalidation since the read (the canonical HMM loop).
///
/// `mm` is the notifier's address space, its users pinned by the caller (see
/// [`Mm::mmget_not_zero`](crate::mm::Mm::mmget_not_zero)).
///
/// # Errors
///
/// `EINVAL` if `mm` is not the notifier's address space or the range is not inside the
/// notifier's interval; `EBUSY` if invalidations kept interrupting the read for
/// [`RANGE_DEFAULT_TIMEOUT_MS`]; `EINTR` if the task is being killed (while it waits for the
/// mmap lock, or before a retry); and what `hmm_range_fault` returns: `EFAULT` for an address
/// with no VMA, or one whose VMA does not allow the request, `EPERM` for a write to a
/// read-only mapping.
///
/// # Context
///
/// Sleeps. Takes the mmap read lock of `mm` (killable), then the notifier lock: call it with
/// neither held. With the mmap lock already held use [`range_fault_locked`]: taking a read
/// lock twice deadlocks once a writer waits between the two. `commit` runs under the notifier
/// lock: see [`crate::mmu_notifier`] for what it must not do.
pub fn range_fault<T: IntervalNotifierOps, R>(
    notifier: &MmuIntervalNotifier<T>,
    mm: &MmWithUser,
    range: &mut Range<'_>,
    commit: impl FnOnce(&mut T, FaultedRange<'_>) -> R,
) -> Result<R> {
    check_range(notifier, mm, range)?;
    fault_loop(
        notifier,
        range,
        |range, pfns, seq| {
            let _lock = mm.mmap_read_lock_killable()?;
            range.fault_once(pfns, notifier.as_raw(), seq)
        },
        commit,
    )
}

/// Faults the pages of `range` in, as its request asks, for a caller that holds the mmap read
/// lock and needs the pages present but not the result: `hmm_range_fault` again until one
/// walk gets through, whatever invalidates the address space meanwhile. Fails as
/// [`range_fault_locked`] does.
#[cfg(CONFIG_DEVICE_PRIVATE)]
pub(crate) fn fault_in_locked<T: IntervalNotifierOps>(
    notifier: &MmuIntervalNotifier<T>,
    mmap: &MmapReadGuard<'_>,
    range: &Range<'_>,
) -> Result {
    check_range(notifier, mmap.mm(), range)?;
    let mut pfns = PfnArray::new();
    pfns.reset(range.npages())?;
    // The guard proves that the mmap read lock is held.
    let mut fault = |r: &Range<'_>, p: &mut [usize], seq| r.fault_once(p, notifier.as_raw(), seq);
    let retry = Retry::new();
    walk(notifier, range, pfns.as_mut_slice(), &mut fault, &retry).map(drop)
}

/// [`range_fault`] for a caller that holds the mmap read lock of the notifier's address space.
///
/// # Errors
///
/// As [`range_fault`]'s, but for the wait for the mmap lock, which the caller holds.
///
/// # Context
///
/// Sleeps; takes the notifier lock, which must not be held. The mmap lock stays held
/// throughout, so an invalidation that needs it for writing (munmap) cannot run meanwhile.
pub fn range_fault_locked<T: IntervalNotifierOps, R>(
    notifier: &MmuIntervalNotifier<T>,
    mmap: &MmapReadGuard<'_>,
    range: &mut Range<'_>,
    commit: impl FnOnce(&mut T, FaultedRange<'_>) -> R,
) -> Result<R> {
    check_range(notifier, mmap.mm(), range)?;
    fault_loop(
        notifier,
        range,
        // The guard proves that the mmap read lock is held.
        |range, pfns, seq| range.fault_once(pfns, notifier.as_raw(), seq),
        commit,
    )
}
