// SPDX-License-Identifier: GPL-2.0

//! Eviction: every allocated page of a pagemap migrated back to system memory
//! (`migrate_device_range`).

use super::{alloc_ram_copy, migrate_to_ram::copy_batch_to_ram, Pagemap, PagemapOps};
use crate::{
    alloc::KVVec,
    bindings,
    mm::pfn_array::{migrate_pfn_to_page, MIGRATE_PFN_MIGRATE},
    prelude::*,
    task::{cond_resched, fatal_signal_pending},
};

/// Pages of a pagemap looked at by one `migrate_device_range` call while evicting.
const EVICT_BATCH: usize = 512;

/// How many times eviction goes over a pagemap for pages that were busy.
const EVICT_PASSES: u32 = 100;

impl<T: PagemapOps> Pagemap<T> {
    /// Migrates every allocated page of the pagemap back to system memory
    /// (`migrate_device_range`), wherever it is mapped.
    ///
    /// Busy pages (locked by a concurrent migration or fault) are retried, a bounded number
    /// of times. Pages allocated meanwhile are not waited for.
    ///
    /// # Errors
    ///
    /// `EBUSY` if pages are left after the retries; `EINTR` if the task is being killed.
    ///
    /// # Context
    ///
    /// Sleeps; no mmap lock needed, and no lock that `page_free` or an MMU notifier of a
    /// process using the pages takes may be held.
    pub fn evict(&self) -> Result {
        evict(self, true)
    }

    /// Migrates the allocated pages among the `count` pages of the pagemap from index `first`
    /// back to system memory, once (busy pages are skipped), as [`Self::evict`] does for all;
    /// returns how many moved. A driver that runs out of device memory makes room this way.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the range is not inside the pagemap; `ENOMEM`; `EINTR` if the task is
    /// being killed.
    ///
    /// # Context
    ///
    /// As [`Self::evict`]; the copies back ([`PagemapOps::copy_to_ram`]) run in the caller.
    /// Make room before a migration that needs it, not from its `fill`: eviction skips the
    /// pages a migration holds locked, and the device memory a `fill` holds is not free yet
    /// (reserve first, as C drivers do).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::hmm::{Mirror, MirrorOps};
    /// use kernel::memremap::{DevicePage, Memory, Owner, Pagemap, PagemapOps};
    /// use kernel::migrate::{migrate_vma, Select, Source};
    /// use kernel::mm::{highmem::CpuPage, Mm};
    /// use kernel::page::{Page, PAGE_SIZE};
    /// use kernel::sync::Arc;
    /// use kernel::uaccess::UserSlice;
    ///
    /// struct Vram;
    ///
    /// impl PagemapOps for Vram {
    ///     type PageData = Page;
    ///
    ///     fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
    ///         dst.copy_from(&page.data());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
    /// // 2 MiB: the kernel reserves a 128 MiB section, the pagemap hands out 2 MiB of it.
    /// let memory = Memory::DevicePrivate { size: 2 << 20 };
    /// let name = kernel::c_str!("rust_evict_range_doctest");
    /// let pagemap = KBox::pin_init(Pagemap::new(owner.clone(), memory, name, Vram), GFP_KERNEL)?;
    /// assert_eq!(pagemap.npages(), 512);
    /// let addr = kernel::kunit::vm_mmap(2 * PAGE_SIZE)?;
    /// UserSlice::new(addr, 4).writer().write_slice(b"data")?;
    /// UserSlice::new(addr + PAGE_SIZE, 4).writer().write_slice(b"more")?;
    /// let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
    /// let mmap = mm.mmap_read_lock();
    /// let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
    /// let mut indices = [0usize; 2];
    /// let end = addr + 2 * PAGE_SIZE;
    /// let (filled, moved) = migrate_vma(vma, addr, end, Select::SYSTEM, &owner, |m| {
    ///     for (entry, index) in m.entries().zip(indices.iter_mut()) {
    ///         let Source::System(src) = entry.source() else { continue };
    ///         let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
    ///         page.data().copy_from(&src);
    ///         *index = page.page().pfn() - pagemap.start_pfn();
    ///         entry.set_device(page);
    ///     }
    ///     Ok::<(), Error>(())
    /// })?;
    /// filled?;
    /// drop(mmap);
    /// assert_eq!((moved.pages, pagemap.allocated()), (2, 2));
    ///
    /// // Evict the first page only: the second stays on the device.
    /// assert_eq!(pagemap.evict_range(indices[0], 1)?, 1);
    /// assert_eq!(pagemap.allocated(), 1);
    /// // Outside the pagemap: refused.
    /// assert!(pagemap.evict_range(pagemap.npages(), 1).is_err());
    /// let mut buf = [0u8; 4];
    /// UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
    /// assert_eq!(&buf, b"data");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn evict_range(&self, first: usize, count: usize) -> Result<usize> {
        match first.checked_add(count) {
            Some(end) if end <= self.npages() => {}
            _ => return Err(EINVAL),
        }
        let batch = EVICT_BATCH.min(count);
        let mut src = KVVec::from_elem(0usize, batch, GFP_KERNEL)?;
        let mut dst = KVVec::from_elem(0usize, batch, GFP_KERNEL)?;
        let mut moved = 0;
        let mut done = 0;
        while done < count {
            if fatal_signal_pending() {
                return Err(EINTR);
            }
            cond_resched();
            let n = batch.min(count - done);
            let pfn = self.start_pfn() + first + done;
            moved += evict_batch(self, pfn, &mut src[..n], &mut dst[..n]);
            done += n;
        }
        Ok(moved)
    }
}

/// Evicts every page of a pagemap that is being dropped; signals do not stop it.
pub(super) fn evict_for_removal<T: PagemapOps>(pagemap: &Pagemap<T>) {
    let _ = evict(pagemap, false);
}

fn evict<T: PagemapOps>(pagemap: &Pagemap<T>, killable: bool) -> Result {
    let batch = EVICT_BATCH.min(pagemap.npages());
    let mut src = KVVec::from_elem(0usize, batch, GFP_KERNEL)?;
    let mut dst = KVVec::from_elem(0usize, batch, GFP_KERNEL)?;
    for pass in 0..EVICT_PASSES {
        if pagemap.allocated() == 0 {
            return Ok(());
        }
        if pass > 0 {
            // Let whoever holds the busy pages finish.
            // SAFETY: Just a sleep, in process context.
            unsafe { bindings::msleep(1) };
        }
        let mut first = 0;
        while first < pagemap.npages() {
            if killable && fatal_signal_pending() {
                return Err(EINTR);
            }
            cond_resched();
            let n = batch.min(pagemap.npages() - first);
            let _ = evict_batch(
                pagemap,
                pagemap.start_pfn() + first,
                &mut src[..n],
                &mut dst[..n],
            );
            first += n;
        }
    }
    if pagemap.allocated() == 0 {
        Ok(())
    } else {
        Err(EBUSY)
    }
}

/// Migrates the allocated pages of `src.len()` pfns from `pfn` back to system memory; returns
/// how many moved.
///
/// `migrate_device_range` locks each page that is allocated and mapped, and takes a reference
/// on its `anon_vma` (6.12 needs the fix in this tree's patches for that): no mmap lock is
/// held, and an munmap meanwhile would otherwise free the `anon_vma` that
/// `migrate_device_finalize` walks.
fn evict_batch<T: PagemapOps>(
    pagemap: &Pagemap<T>,
    pfn: usize,
    src: &mut [usize],
    dst: &mut [usize],
) -> usize {
    dst.fill(0);
    let count = src.len();
    // SAFETY: The pfns are in the pagemap's range, which is mapped; both arrays have `count`
    // entries. Free pages (refcount zero) are skipped by the C side.
    unsafe { bindings::migrate_device_range(src.as_mut_ptr(), pfn, count) };
    let page_of = |s| {
        // SAFETY: A collected page is locked and referenced until finalize.
        migrate_pfn_to_page(s).and_then(|p| unsafe { pagemap.page(p.as_ptr()) })
    };
    // In one go if the driver and memory allow, else page by page.
    if !copy_batch_to_ram(src, dst, page_of) {
        for (&s, d) in src.iter().zip(dst.iter_mut()) {
            if s & MIGRATE_PFN_MIGRATE == 0 {
                continue;
            }
            let Some(dpage) = page_of(s) else {
                continue;
            };
            // A page that could not be copied stays on the device, for the next pass.
            if let Ok(mpfn) = alloc_ram_copy(&dpage) {
                *d = mpfn;
            }
        }
    }
    // SAFETY: The arrays come from `migrate_device_range`; the destinations are locked pages
    // with a reference each, or zero.
    unsafe {
        bindings::migrate_device_pages(src.as_mut_ptr(), dst.as_mut_ptr(), count);
    }
    // `migrate_device_pages` cleared the flag of the pages that did not move.
    let moved = src
        .iter()
        .zip(dst.iter())
        .filter(|(&s, &d)| s & MIGRATE_PFN_MIGRATE != 0 && d != 0)
        .count();
    // SAFETY: As above.
    unsafe { bindings::migrate_device_finalize(src.as_mut_ptr(), dst.as_mut_ptr(), count) };
    moved
}
