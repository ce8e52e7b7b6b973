// SPDX-License-Identifier: GPL-2.0

//! The page operations of a migration that C inlines: allocating a page and locking it.
//!
//! A migration to system memory allocates and locks one page per page it moves. C inlines
//! `alloc_page` (without NUMA) and `lock_page`; through helpers, Rust would make one call more
//! for each, per page. Here the allocation calls the page allocator itself, and the lock takes
//! C's fast path inline (one atomic test-and-set of the lock bit), calling C only when the page
//! is locked already.
//!
//! C headers: [`include/linux/gfp.h`](srctree/include/linux/gfp.h),
//! [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)

use crate::bindings;
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};

/// Allocates one page with the flags `gfp` (`alloc_page`); `None` if there is no memory.
#[inline]
pub(crate) fn alloc_page(gfp: bindings::gfp_t) -> Option<NonNull<bindings::page>> {
    // Without NUMA, `alloc_pages` is the page allocator on node 0 with no node mask (and
    // without allocation profiling, nothing around it: with it, `alloc_pages` also sets the
    // allocation's tag, which the helper does).
    #[cfg(not(any(CONFIG_NUMA, CONFIG_MEM_ALLOC_PROFILING)))]
    // SAFETY: Allocating a page has no precondition.
    let page = unsafe { bindings::__alloc_pages_noprof(gfp, 0, 0, core::ptr::null_mut()) };
    #[cfg(any(CONFIG_NUMA, CONFIG_MEM_ALLOC_PROFILING))]
    // SAFETY: As above.
    let page = unsafe { bindings::alloc_pages(gfp, 0) };
    NonNull::new(page)
}

/// Locks `page` (`lock_page`), sleeping while somebody else holds its lock.
///
/// # Safety
///
/// `page` is a page of order 0 that the caller allocated and holds a reference to (it is its
/// own folio and stays so), and the caller may sleep.
#[inline]
pub(crate) unsafe fn lock_new_page(page: NonNull<bindings::page>) {
    // `might_sleep`'s check, where the configuration makes it.
    #[cfg(CONFIG_DEBUG_ATOMIC_SLEEP)]
    // SAFETY: The arguments are a C string and a line number.
    unsafe {
        bindings::__might_sleep(crate::c_str!(core::file!()).as_char_ptr(), line!() as _)
    };
    // SAFETY: The page is valid while the caller holds its reference; C changes its flags only
    // by atomic operations (those of a page being allocated or freed aside, and it is
    // neither), as this does.
    let flags = unsafe { AtomicUsize::from_ptr((&raw mut (*page.as_ptr()).flags).cast()) };
    // `folio_trylock`: `test_and_set_bit_lock`, an atomic OR with acquire ordering.
    let lock = 1usize << bindings::pageflags_PG_locked;
    if flags.fetch_or(lock, Ordering::Acquire) & lock != 0 {
        // SAFETY: The page is its own folio (the caller's guarantee), and the caller may
        // sleep.
        unsafe { bindings::__folio_lock(page.as_ptr().cast()) };
    }
}
