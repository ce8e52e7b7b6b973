// SPDX-License-Identifier: GPL-2.0

//! Eviction: every allocated page of a pagemap migrated back to system memory
//! (`migrate_device_range`).

use super::{alloc_ram_copy, Pagemap, PagemapOps};
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
            evict_batch(
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

/// Migrates the allocated pages of `src.len()` pfns from `pfn` back to system memory.
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
) {
    dst.fill(0);
    let count = src.len();
    // SAFETY: The pfns are in the pagemap's range, which is mapped; both arrays have `count`
    // entries. Free pages (refcount zero) are skipped by the C side.
    unsafe { bindings::migrate_device_range(src.as_mut_ptr(), pfn, count) };
    for (s, d) in src.iter().zip(dst.iter_mut()) {
        if *s & MIGRATE_PFN_MIGRATE == 0 {
            continue;
        }
        // SAFETY: A collected page is locked and referenced until finalize.
        let Some(dpage) = migrate_pfn_to_page(*s).and_then(|p| unsafe { pagemap.page(p.as_ptr()) })
        else {
            continue;
        };
        // A page that could not be copied stays on the device, for the next pass.
        if let Ok(mpfn) = alloc_ram_copy(&dpage) {
            *d = mpfn;
        }
    }
    // SAFETY: The arrays come from `migrate_device_range`; the destinations are locked pages
    // with a reference each, or zero.
    unsafe {
        bindings::migrate_device_pages(src.as_mut_ptr(), dst.as_mut_ptr(), count);
        bindings::migrate_device_finalize(src.as_mut_ptr(), dst.as_mut_ptr(), count);
    }
}
