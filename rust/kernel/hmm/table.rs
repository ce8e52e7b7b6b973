// SPDX-License-Identifier: GPL-2.0

//! The device page table of a [`Mirror`](super::Mirror): for each mirrored virtual page, the
//! page the CPU maps there and how.
//!
//! The table is an XArray of blocks, each holding the entries of 64 consecutive virtual pages
//! (256 KiB with 4 KiB pages) and a mask of those present, and it remembers the block it used
//! last. C drivers keep one XArray entry per page (`test_hmm`'s `dmirror->pt`): at the index of
//! a user address (bit 47 down to 12) that is a walk of six levels for each page looked up,
//! stored or erased. Here a walk over consecutive pages, as READ, WRITE, a migration
//! and a fault back are, looks the XArray up once per 64 pages, and removing entries, for one
//! page or a range, clears bits of the mask; an empty block is freed.
//!
//! The table is only reachable under the mirror lock, which serialises every access: the
//! XArray's own spinlock is taken only to find, insert or remove a block.

use crate::{
    alloc::flags::{__GFP_NOWARN, GFP_ATOMIC},
    bindings,
    error::Result,
    mm::highmem::CpuPage,
    page::PAGE_SHIFT,
    prelude::*,
    xarray::XArray,
};
use core::{cell::Cell, marker::PhantomData, ptr::NonNull};

/// The pages of a block: as many as the bits of its mask.
const BLOCK_PAGES: usize = 64;

/// `log2(BLOCK_PAGES)`: the index of a page's block is its page index shifted right by this.
const BLOCK_SHIFT: usize = 6;

/// The slot of a page index in its block.
const SLOT_MASK: usize = BLOCK_PAGES - 1;

/// A slot of [`DevicePageTable::store_each`] that maps nothing: above every entry
/// ([`DevicePageTable::entry`]).
pub(super) const NO_ENTRY: usize = usize::MAX;

/// The entries of the 64 virtual pages of a naturally aligned block.
///
/// Its cells are changed through shared references: the table is reached only under the
/// mirror lock, by one thread at a time.
struct Block {
    /// Bit `i` is set when slot `i` holds an entry.
    present: Cell<u64>,
    slots: [Cell<usize>; BLOCK_PAGES],
}

impl Block {
    fn new() -> Self {
        Self {
            present: Cell::new(0),
            slots: core::array::from_fn(|_| Cell::new(0)),
        }
    }

    /// The entry of slot `slot` (below 64), if any.
    #[inline]
    fn get(&self, slot: usize) -> Option<usize> {
        let slot = slot & SLOT_MASK;
        if self.present.get() & 1u64.wrapping_shl(slot as u32) == 0 {
            return None;
        }
        self.slots.get(slot).map(Cell::get)
    }

    /// Makes `entry` the entry of slot `slot` (below 64).
    #[inline]
    fn set(&self, slot: usize, entry: usize) {
        let slot = slot & SLOT_MASK;
        if let Some(cell) = self.slots.get(slot) {
            cell.set(entry);
            self.present
                .set(self.present.get() | 1u64.wrapping_shl(slot as u32));
        }
    }

    /// The mask of slots `first..=last` (both below 64, `first <= last`).
    #[inline]
    fn mask(first: usize, last: usize) -> u64 {
        let high = u64::MAX.wrapping_shr((SLOT_MASK - (last & SLOT_MASK)) as u32);
        high & u64::MAX.wrapping_shl((first & SLOT_MASK) as u32)
    }

    /// Removes the entries of slots `first..=last`; returns whether the block is empty.
    #[inline]
    fn clear(&self, first: usize, last: usize) -> bool {
        let present = self.present.get() & !Self::mask(first, last);
        self.present.set(present);
        present == 0
    }

    /// Returns whether an entry of slots `first..=last` satisfies `pred`.
    fn any(&self, first: usize, last: usize, pred: impl Fn(usize) -> bool) -> bool {
        let mut present = self.present.get() & Self::mask(first, last);
        while present != 0 {
            let slot = present.trailing_zeros() as usize;
            if self.get(slot).is_some_and(&pred) {
                return true;
            }
            present &= present.wrapping_sub(1);
        }
        false
    }
}

/// The device page table of a [`Mirror`](super::Mirror): for each mirrored virtual page, the
/// CPU page and whether the device may write it.
///
/// Only reachable under the mirror lock; holds no reference on the pages.
///
/// # Examples
///
/// Entries come and go by blocks of 64 pages; a range that spans several, cleared in part,
/// keeps exactly the rest, and a block emptied and freed comes back when pages are mapped
/// there again.
///
/// ```
/// use kernel::hmm::{Mirror, MirrorOps, Range, Request};
/// use kernel::mm::Mm;
/// use kernel::page::PAGE_SIZE;
///
/// struct Device;
/// impl MirrorOps for Device {}
///
/// // 130 pages hold at least one whole block and parts of two others.
/// let pages = 130;
/// let addr = kernel::kunit::vm_mmap(pages * PAGE_SIZE)?;
/// let end = addr + pages * PAGE_SIZE;
/// let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
/// let mirror = Mirror::new(&mm, 0, usize::MAX & !(PAGE_SIZE - 1), Device);
/// let mirror = KBox::pin_init(mirror, GFP_KERNEL)?;
/// let map = |start: usize, end: usize| -> Result {
///     let mut range = Range::new(start, end, Request::Write, None)?;
///     mirror.fault(&mm, &mut range, |commit| commit.map())?
/// };
/// map(addr, end)?;
///
/// // Clear pages 3 to 100, across a block boundary, page by page from the top for the first
/// // ten, then as one range.
/// let mut guard = mirror.lock();
/// for i in (91..101).rev() {
///     guard.clear(addr + i * PAGE_SIZE, addr + (i + 1) * PAGE_SIZE);
/// }
/// guard.clear(addr + 3 * PAGE_SIZE, addr + 91 * PAGE_SIZE);
/// for i in 0..pages {
///     let a = addr + i * PAGE_SIZE;
///     let kept = !(3..101).contains(&i);
///     assert_eq!(guard.table().lookup(a).is_some(), kept);
///     assert_eq!(guard.table().lookup(a).is_some_and(|p| p.is_writable()), kept);
/// }
/// assert!(!guard.table().contains_exclusive(addr, end));
///
/// // Clear everything (the blocks are freed), then map it again.
/// guard.clear(addr, end);
/// assert!((0..pages).all(|i| guard.table().lookup(addr + i * PAGE_SIZE).is_none()));
/// drop(guard);
/// map(addr, end)?;
/// let guard = mirror.lock();
/// assert!((0..pages).all(|i| guard.table().lookup(addr + i * PAGE_SIZE).is_some()));
/// drop(guard);
///
/// // The CPU unmaps the middle: the rest stays.
/// kernel::kunit::vm_munmap(addr + PAGE_SIZE, (pages - 2) * PAGE_SIZE)?;
/// let guard = mirror.lock();
/// assert!(guard.table().lookup(addr).is_some());
/// assert!(guard.table().lookup(end - PAGE_SIZE).is_some());
/// assert!((1..pages - 1).all(|i| guard.table().lookup(addr + i * PAGE_SIZE).is_none()));
/// drop(guard);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// Every entry maps the page index of a virtual address to `pfn << 3 | exclusive << 2 |
/// private << 1 | writable` for a page that the CPU maps at that address with that permission
/// (or, if `exclusive`, that is device-exclusive there; or that a migration to the mirror's
/// device holds locked and maps there when it ends), `private` telling a device-private page
/// (of the mirror's owner) from one the CPU can address: an entry is inserted only from a
/// validated [`range_fault`](super::range_fault) result, a device-exclusive conversion or a
/// migration checked by [`Mirror::migrate_to_device`](super::Mirror::migrate_to_device), and
/// removed by every invalidation of its address (but the conversions the mirror asked for
/// itself), both under the mirror lock.
///
/// The entry of page index `i` is in the block at index `i >> 6` of `blocks`, slot `i & 63`.
/// `last`, if set, is the index of a block of `blocks` and a pointer to that block, which
/// `blocks` owns: a block is removed from `blocks` only with `&mut self`, and `last` cleared
/// first if it points to it. A block of `blocks` holds at least one entry, but the block at
/// index `empty`, if set, which holds none.
pub struct DevicePageTable {
    blocks: Pin<KBox<XArray<KBox<Block>>>>,
    /// The block used last and its index: consecutive pages look the XArray up once per block.
    last: Cell<Option<(usize, NonNull<Block>)>>,
    /// The index of the block emptied last, which stays in `blocks`, empty, until another
    /// block empties: pages that come and go in one block (a migration there and back, a
    /// fault after an invalidation) do not allocate, insert, remove and free it each time.
    empty: Cell<Option<usize>>,
}

// SAFETY: The table owns its blocks, `last` points to one of them: sending the table sends
// them all, and nothing in it belongs to a thread. (It is not `Sync`: its cells change through
// shared references, under the mirror lock.)
unsafe impl Send for DevicePageTable {}

impl DevicePageTable {
    pub(super) fn new() -> Result<Self> {
        Ok(Self {
            blocks: KBox::pin_init(XArray::new(), GFP_KERNEL)?,
            last: Cell::new(None),
            empty: Cell::new(None),
        })
    }

    /// Remembers `block`, at `index` of `blocks`, as the block used last, and returns it.
    ///
    /// # Safety
    ///
    /// `block` is the block that `blocks` holds at `index`.
    #[inline]
    unsafe fn remember(&self, index: usize, block: &Block) -> &Block {
        let ptr = NonNull::from(block);
        // INVARIANT: `block` is the block at `index` of `blocks` (the caller's guarantee).
        self.last.set(Some((index, ptr)));
        // SAFETY: `blocks` owns the block until it is removed, which takes `&mut self`: it
        // outlives the borrow of `self` (type invariant).
        unsafe { ptr.as_ref() }
    }

    /// The block of the lowest index in `[first, last]` and that index, if any.
    #[inline]
    fn find_block(&self, first: usize, last: usize) -> Option<(usize, &Block)> {
        if let Some((index, ptr)) = self.last.get() {
            if index == first {
                // SAFETY: `ptr` points to the block at `index` of `blocks`, which stays there
                // while `self` is borrowed (type invariant).
                return Some((index, unsafe { ptr.as_ref() }));
            }
        }
        let guard = self.blocks.lock();
        let (index, block) = guard.find(first, last)?;
        let ptr = NonNull::from(block);
        drop(guard);
        // SAFETY: `ptr` is the block `blocks` holds at `index`, and owns while `self` is
        // borrowed (a block is removed only with `&mut self`).
        Some((index, unsafe { self.remember(index, ptr.as_ref()) }))
    }

    /// The block at `index`, inserted empty if there is none.
    ///
    /// Fails with `ENOMEM`: the mirror lock is held, and an invalidation from reclaim takes
    /// it, so nothing here sleeps to allocate, and failing is fine (the caller gets `ENOMEM`)
    /// where warning is not.
    ///
    /// The caller stores an entry in the block before it lets go of `self`.
    fn block_or_insert(&self, index: usize) -> Result<&Block> {
        if let Some((_, block)) = self.find_block(index, index) {
            if self.empty.get() == Some(index) {
                // INVARIANT: The caller stores an entry in it.
                self.empty.set(None);
            }
            return Ok(block);
        }
        let new = KBox::new(Block::new(), GFP_ATOMIC | __GFP_NOWARN)?;
        let mut guard = self.blocks.lock();
        // There was no block at `index`, and only the holder of the mirror lock inserts one.
        let old = guard
            .store(index, new, GFP_ATOMIC | __GFP_NOWARN)
            .map_err(|e| e.error)?;
        let ptr = NonNull::from(guard.get(index).ok_or(ENOMEM)?);
        drop(guard);
        drop(old);
        // SAFETY: `ptr` is the block `blocks` holds at `index` (just stored), and owns while
        // `self` is borrowed (a block is removed only with `&mut self`).
        Ok(unsafe { self.remember(index, ptr.as_ref()) })
    }

    /// Removes the block at `index` and frees it.
    fn remove_block(&mut self, index: usize) {
        if matches!(self.last.get(), Some((last, _)) if last == index) {
            // INVARIANT: `last` no longer points to the block that goes.
            self.last.set(None);
        }
        let block = self.blocks.lock().remove(index);
        drop(block);
    }

    /// Keeps the block at `index`, which `clear` emptied, as the empty block of the table, and
    /// removes the one kept before, if any.
    fn keep_empty(&mut self, index: usize) {
        match self.empty.replace(Some(index)) {
            Some(old) if old != index => self.remove_block(old),
            _ => {}
        }
    }

    /// Stores the entries that `entries` yields at the page indices from `first` on (a
    /// [`NO_ENTRY`] skips its index). Stops at the first error, the entries before it stored;
    /// `ENOMEM` if a block cannot be allocated.
    ///
    /// The mirror lock is held: the iterator may sleep, but nothing here sleeps to allocate
    /// (reclaim takes the lock).
    pub(super) fn store_each(
        &mut self,
        first: usize,
        entries: impl Iterator<Item = Result<usize>>,
    ) -> Result {
        let mut current: Option<(usize, &Block)> = None;
        for (i, entry) in entries.enumerate() {
            let entry = entry?;
            if entry == NO_ENTRY {
                continue;
            }
            let index = first.checked_add(i).ok_or(EINVAL)?;
            let b = index >> BLOCK_SHIFT;
            let block = match current {
                Some((cb, block)) if cb == b => block,
                _ => {
                    let block = self.block_or_insert(b)?;
                    current = Some((b, block));
                    block
                }
            };
            block.set(index & SLOT_MASK, entry);
        }
        Ok(())
    }

    /// The entry of a page: `pfn << 3 | exclusive << 2 | private << 1 | writable`; `EINVAL`
    /// if the pfn does not fit.
    #[inline]
    pub(super) fn entry(
        pfn: usize,
        writable: bool,
        private: bool,
        exclusive: bool,
    ) -> Result<usize> {
        let flags = usize::from(exclusive) << 2 | usize::from(private) << 1 | usize::from(writable);
        pfn.checked_mul(8)
            .map(|e| e | flags)
            .filter(|&e| e != NO_ENTRY)
            .ok_or(EINVAL)
    }

    /// The entry of the page index `index`, if any.
    #[inline]
    fn get(&self, index: usize) -> Option<usize> {
        let b = index >> BLOCK_SHIFT;
        self.find_block(b, b)?.1.get(index & SLOT_MASK)
    }

    /// Returns the page mapped at `addr` in the device page table, if any.
    #[inline]
    pub fn lookup(&self, addr: usize) -> Option<MirroredPage<'_>> {
        let entry = self.get(addr >> PAGE_SHIFT)?;
        // SAFETY: By the type invariant the pfn is of a page the CPU maps, which has a
        // `struct page`.
        let page = unsafe { bindings::pfn_to_page(entry >> 3) };
        // INVARIANT: The entry is present under the mirror lock, which `&self` borrows.
        Some(MirroredPage {
            // SAFETY: `pfn_to_page` of a page's pfn is not null.
            page: unsafe { NonNull::new_unchecked(page) },
            writable: entry & 1 != 0,
            private: entry & 2 != 0,
            exclusive: entry & 4 != 0,
            _p: PhantomData,
        })
    }

    /// The first and last page indices of `[start, end)`, if it is not empty.
    #[inline]
    fn pages(start: usize, end: usize) -> Option<(usize, usize)> {
        (end > start).then(|| (start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT))
    }

    /// Calls `f` with each block that holds entries of the page indices `[first, last]`, from
    /// the block index `from` on, in order, with the first and last slots of the range in the
    /// block, until `f` returns `true`; returns the index of that block. Walks only the blocks
    /// that exist, however large the range.
    fn walk(
        &self,
        (first, last): (usize, usize),
        mut from: usize,
        mut f: impl FnMut(&Block, usize, usize) -> bool,
    ) -> Option<usize> {
        let (first_block, last_block) = (first >> BLOCK_SHIFT, last >> BLOCK_SHIFT);
        // Past the range, `find_block` could still return the block used last.
        while from <= last_block {
            let (b, block) = self.find_block(from, last_block)?;
            let from_slot = if b == first_block { first } else { 0 };
            let to_slot = if b == last_block { last } else { SLOT_MASK };
            if f(block, from_slot & SLOT_MASK, to_slot & SLOT_MASK) {
                return Some(b);
            }
            from = b.checked_add(1)?;
        }
        None
    }

    /// Returns whether an entry of `[start, end)` is device-exclusive; walks only the entries
    /// that exist, however large the range.
    pub fn contains_exclusive(&self, start: usize, end: usize) -> bool {
        Self::pages(start, end).is_some_and(|range| {
            self.walk(range, range.0 >> BLOCK_SHIFT, |block, from, to| {
                block.any(from, to, |entry| entry & 4 != 0)
            })
            .is_some()
        })
    }

    /// Removes the entries of `[start, end)`, and frees the blocks that this empties but the
    /// last, which stays for the next entries; walks only the blocks that exist, however large
    /// the range.
    #[inline]
    pub(super) fn clear(&mut self, start: usize, end: usize) {
        let Some(range) = Self::pages(start, end) else {
            return;
        };
        let mut from = range.0 >> BLOCK_SHIFT;
        // Each emptied block is kept, and the one kept before removed, outside the walk, which
        // borrows the table; the walk then goes on from the next block.
        while let Some(b) = self.walk(range, from, |block, from, to| block.clear(from, to)) {
            self.keep_empty(b);
            let Some(next) = b.checked_add(1) else {
                return;
            };
            from = next;
        }
    }
}

/// A page mapped in a device page table, usable while the mirror lock is held.
///
/// # Invariants
///
/// `page` is a page that the CPU maps at the mirrored address (writable if `writable`), or
/// that a migration holds locked and maps there when it ends, and stays so for `'a`, the borrow
/// of the locked [`DevicePageTable`]; it is a device-private
/// page of the mirror's owner if `private`, else a page the CPU can address.
pub struct MirroredPage<'a> {
    page: NonNull<bindings::page>,
    writable: bool,
    private: bool,
    exclusive: bool,
    _p: PhantomData<&'a DevicePageTable>,
}

impl<'a> MirroredPage<'a> {
    /// Whether the device may write the page.
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether the page is device-exclusive (mapped by
    /// [`Mirror::make_exclusive`](super::Mirror::make_exclusive)).
    #[inline]
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// The page, if the CPU can address it (system or device-coherent memory): the device
    /// reads and writes it through the CPU. `None` for a device-private page.
    #[inline]
    pub fn as_cpu(&self) -> Option<CpuPage<'a>> {
        // SAFETY: Not device-private: CPU-addressable, and mapped for `'a` (type invariant).
        (!self.private).then(|| unsafe { CpuPage::from_raw(self.page) })
    }

    /// The page, if it is device memory (device-private of the mirror's owner, or
    /// device-coherent of any owner).
    #[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
    #[inline]
    pub fn as_device(&self) -> Option<crate::memremap::DevicePageRef<'a>> {
        // SAFETY: The CPU maps the page for `'a` (type invariant), so it is allocated.
        unsafe { crate::memremap::DevicePageRef::from_raw(self.page.as_ptr()) }
    }
}
