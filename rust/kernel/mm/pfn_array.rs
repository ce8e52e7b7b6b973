// SPDX-License-Identifier: GPL-2.0

//! Arrays of page frame entries that the HMM and migration calls fill, one word per page.
//!
//! C drivers keep such arrays on the stack for their usual batch of 64 pages; a batch that
//! size is kept inline here too, so that the common case allocates nothing. The entries of a
//! migration's arrays are encoded by `migrate_pfn` and read by `migrate_pfn_to_page`.
//!
//! C header: [`include/linux/migrate.h`](srctree/include/linux/migrate.h)

#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
use crate::bindings;
use crate::{alloc::KVVec, prelude::*};
use core::mem::MaybeUninit;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
use core::ptr::NonNull;

/// The entries a [`PfnArray`] holds without allocating (512 bytes).
pub(crate) const PFN_ARRAY_INLINE: usize = 64;

/// `len` words, zeroed: inline up to [`PFN_ARRAY_INLINE`], in a `KVVec` beyond.
///
/// # Invariants
///
/// The first `.1` entries of an inline array are initialised, and `.1 <= PFN_ARRAY_INLINE`.
// Keeping the small case inline, on the caller's stack, is the point.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PfnArray {
    /// The first `.1` entries of the array are used; the others are never touched, so a
    /// batch of one page does not zero 64 words (nor do two arrays, per migration).
    Inline([MaybeUninit<usize>; PFN_ARRAY_INLINE], usize),
    /// Every entry is used.
    Heap(KVVec<usize>),
}

impl PfnArray {
    /// An empty array, to be sized with [`PfnArray::reset`] where it is kept: the inline
    /// array is 512 bytes, which moving a sized array (out of a `Result`, say) would copy.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        // INVARIANT: No entry is used.
        Self::Inline([const { MaybeUninit::uninit() }; PFN_ARRAY_INLINE], 0)
    }

    /// Makes the array `len` zeroed entries; `ENOMEM` if a large one cannot be allocated.
    #[inline(always)]
    pub(crate) fn reset(&mut self, len: usize) -> Result {
        if len > PFN_ARRAY_INLINE {
            *self = Self::Heap(KVVec::from_elem(0, len, GFP_KERNEL)?);
            return Ok(());
        }
        if let Self::Heap(_) = self {
            *self = Self::new();
        }
        if let Self::Inline(a, used) = self {
            for entry in a.iter_mut().take(len) {
                entry.write(0);
            }
            // INVARIANT: The first `len` entries were just written; `len` fits.
            *used = len;
        }
        Ok(())
    }

    /// The entries.
    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[usize] {
        match self {
            // SAFETY: The first `len` entries are initialised, within the array (type
            // invariant); `MaybeUninit<usize>` has the layout of `usize`.
            Self::Inline(a, len) => unsafe {
                core::slice::from_raw_parts(a.as_ptr().cast::<usize>(), *len)
            },
            Self::Heap(v) => v,
        }
    }

    /// The entries, for writing.
    #[inline(always)]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [usize] {
        match self {
            // SAFETY: As in `as_slice`; the slice borrows the array mutably.
            Self::Inline(a, len) => unsafe {
                core::slice::from_raw_parts_mut(a.as_mut_ptr().cast::<usize>(), *len)
            },
            Self::Heap(v) => v,
        }
    }
}

/// The entry of a migration array is valid: it holds a pfn (`MIGRATE_PFN_VALID`).
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub(crate) const MIGRATE_PFN_VALID: usize = bindings::MIGRATE_PFN_VALID as usize;

/// The page of a source entry is collected and migrates (`MIGRATE_PFN_MIGRATE`).
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub(crate) const MIGRATE_PFN_MIGRATE: usize = bindings::MIGRATE_PFN_MIGRATE as usize;

/// The page was (source) or will be (destination) mapped writable (`MIGRATE_PFN_WRITE`).
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub(crate) const MIGRATE_PFN_WRITE: usize = bindings::MIGRATE_PFN_WRITE as usize;

/// The entry of a migration array for `page`: its pfn, valid (`migrate_pfn`).
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
#[inline]
pub(crate) fn migrate_pfn(page: NonNull<bindings::page>) -> usize {
    // SAFETY: A `NonNull<page>` handed to a migration is a page of the memory map;
    // `migrate_pfn` is arithmetic.
    unsafe { bindings::migrate_pfn(bindings::page_to_pfn(page.as_ptr())) }
}

/// The page of a migration array's entry, if it holds one (`migrate_pfn_to_page`).
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
#[inline]
pub(crate) fn migrate_pfn_to_page(mpfn: usize) -> Option<NonNull<bindings::page>> {
    // SAFETY: `migrate_pfn_to_page` is arithmetic on the entry: null unless it is valid, and
    // the `struct page` of its pfn, which an entry's pfn has, if it is.
    NonNull::new(unsafe { bindings::migrate_pfn_to_page(mpfn) })
}
