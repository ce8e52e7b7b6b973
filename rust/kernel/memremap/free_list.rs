// SPDX-License-Identifier: GPL-2.0

//! The free list of a pagemap: which of its pages are free.

use crate::{prelude::*, str::CStr, sync::LockClassKey};

/// The free pages of a [`Pagemap`](super::Pagemap): a stack of page indices, under the
/// pagemap's spinlock (as the C drivers keep theirs).
///
/// Pages are freed wherever the C side drops their last reference, possibly under a page-table
/// spinlock, and allocated by migrations: the lock is a spinlock, held for a push or a pop.
///
/// # Invariants
///
/// `stack[..top]` holds the index of every free page of the pagemap, each once; `stack` has
/// one slot per page, so a page freed always has a slot; `allocated` counts the other pages.
pub(super) struct FreeList {
    stack: KVVec<u32>,
    top: usize,
    pub(super) allocated: usize,
    /// The pagemap is going away: no more allocations.
    pub(super) removing: bool,
}

impl FreeList {
    pub(super) fn new(npages: usize) -> Result<Self> {
        let count = u32::try_from(npages)?;
        let mut stack = KVVec::with_capacity(npages, GFP_KERNEL)?;
        // Hand out the lowest pages first: page 0 on top.
        for i in (0..count).rev() {
            stack.push(i, GFP_KERNEL)?;
        }
        // INVARIANT: Every page is free, once.
        Ok(Self {
            stack,
            top: npages,
            allocated: 0,
            removing: false,
        })
    }

    /// Takes a free page's index off the stack: `EBUSY` once the pagemap is being removed,
    /// `ENOMEM` if every page is allocated.
    pub(super) fn pop(&mut self) -> Result<usize> {
        if self.removing {
            return Err(EBUSY);
        }
        let top = self.top.checked_sub(1).ok_or(ENOMEM)?;
        let index = *self.stack.get(top).ok_or(ENOMEM)?;
        // INVARIANT: The page leaves the stack, and counts as allocated.
        self.top = top;
        self.allocated += 1;
        Ok(index as usize)
    }

    /// Puts the index of an allocated page that was freed back on the stack.
    pub(super) fn push(&mut self, index: u32) {
        // A page is freed once per allocation (the C side drops its last reference once), so
        // the stack has room for it (type invariant).
        if let Some(slot) = self.stack.get_mut(self.top) {
            *slot = index;
            // INVARIANT: The page is free again.
            self.top += 1;
            self.allocated = self.allocated.saturating_sub(1);
        }
    }
}

/// The lockdep class of every free list.
///
/// Not generic, so that its key and name exist once, in the kernel image: statics and string
/// literals of a generic function would be instantiated in each module that uses it, and
/// lockdep rejects one key with two names.
#[inline(never)]
pub(super) fn free_list_lock_class() -> (&'static CStr, &'static LockClassKey) {
    (crate::c_str!("Pagemap::free"), crate::static_lock_class!())
}
