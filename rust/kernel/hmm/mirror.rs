// SPDX-License-Identifier: GPL-2.0

//! A mirror: a device page table that follows a process's CPU page tables.
//!
//! A [`Mirror`] is an [`MmuIntervalNotifier`] whose state is a [`DevicePageTable`] plus the
//! driver's own data. Every invalidation clears the table over its range before the driver
//! hears of it (the driver's own migrations included), and the table can only be filled from
//! a [`range_fault`] result validated against the same mirror ([`MirrorCommit::map`]), or by a
//! checked migration (below). So a page found in the table ([`MirroredPage`]) is still mapped
//! by the CPU (or held by a migration that maps it), and stays so while the mirror lock is
//! held: the table holds no reference to it, and needs none.
//!
//! An entry maps a page the CPU can address (system memory, or device-coherent memory), or a
//! device-private page of the mirror's owner, whose data only the device's own storage holds:
//! [`MirroredPage::as_cpu`] gives no access to such a page. Pages that a migration put on the
//! device enter the table the same way, from a [`range_fault`] made after the migration, or
//! from the migration itself ([`Mirror::migrate_to_device`]) when nothing but migrations by the
//! mirror's owner changed the range meanwhile: those move only pages they hold locked.
//!
//! # Examples
//!
//! ```
//! use kernel::hmm::{Mirror, MirrorOps, Range, Request};
//! use kernel::mm::Mm;
//! use kernel::page::PAGE_SIZE;
//! use kernel::uaccess::UserSlice;
//!
//! struct Device;
//! impl MirrorOps for Device {}
//!
//! let addr = kernel::kunit::vm_mmap(2 * PAGE_SIZE)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
//! let mirror = Mirror::new(&mm, 0, usize::MAX & !(PAGE_SIZE - 1), Device);
//! let mirror = KBox::pin_init(mirror, GFP_KERNEL)?;
//!
//! // Fault both pages in for writing and map them in the device page table.
//! let mut range = Range::new(addr, addr + 2 * PAGE_SIZE, Request::Write, None)?;
//! mirror.fault(&mm, &mut range, |commit| commit.map())??;
//!
//! // The device writes through its table; the CPU sees it.
//! let guard = mirror.lock();
//! let page = guard.table().lookup(addr).ok_or(ENOENT)?;
//! assert!(page.is_writable());
//! let cpu = page.as_cpu().ok_or(EINVAL)?;
//! cpu.write(0, &[0x5a; 8])?;
//! let mut buf = [0u8; 8];
//! cpu.read(0, &mut buf)?;
//! assert_eq!(buf, [0x5a; 8]);
//! drop(guard);
//! let mut cpu = [0u8; 8];
//! UserSlice::new(addr, 8).reader().read_slice(&mut cpu)?;
//! assert_eq!(cpu, [0x5a; 8]);
//!
//! // The CPU unmaps the second page: the device page table loses it, and only it.
//! kernel::kunit::vm_munmap(addr + PAGE_SIZE, PAGE_SIZE)?;
//! let guard = mirror.lock();
//! assert!(guard.table().lookup(addr).is_some());
//! assert!(guard.table().lookup(addr + PAGE_SIZE).is_none());
//! drop(guard);
//! # Ok::<(), Error>(())
//! ```
//!
//! A mirror only hears of its own interval, so it refuses to read a page outside it: such a
//! page could be unmapped and freed behind the device's back.
//!
//! ```
//! use kernel::hmm::{Mirror, MirrorOps, Range, Request};
//! use kernel::mm::Mm;
//! use kernel::page::PAGE_SIZE;
//!
//! struct Device;
//! impl MirrorOps for Device {}
//!
//! let addr = kernel::kunit::vm_mmap(2 * PAGE_SIZE)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
//! // A mirror of the first page only.
//! let mirror = KBox::pin_init(Mirror::new(&mm, addr, PAGE_SIZE, Device), GFP_KERNEL)?;
//!
//! let mut outside = Range::new(addr + PAGE_SIZE, addr + 2 * PAGE_SIZE, Request::Read, None)?;
//! let ret = mirror.fault(&mm, &mut outside, |commit| commit.map());
//! assert_eq!(ret.err(), Some(EINVAL));
//! let mut across = Range::new(addr, addr + 2 * PAGE_SIZE, Request::Read, None)?;
//! let ret = mirror.fault(&mm, &mut across, |commit| commit.map());
//! assert_eq!(ret.err(), Some(EINVAL));
//! assert!(mirror.lock().table().lookup(addr + PAGE_SIZE).is_none());
//!
//! // Inside it works, also with the mmap lock already held.
//! let mut inside = Range::new(addr, addr + PAGE_SIZE, Request::Read, None)?;
//! let mmap = mm.mmap_read_lock();
//! mirror.fault_locked(&mmap, &mut inside, |commit| commit.map())??;
//! drop(mmap);
//! assert!(mirror.lock().table().lookup(addr).is_some());
//! # Ok::<(), Error>(())
//! ```

#[cfg(CONFIG_DEVICE_PRIVATE)]
use super::exclusive::make_device_exclusive;
use super::table::{DevicePageTable, NO_ENTRY};
use super::{range_fault, range_fault_locked, FaultedRange, HmmPfn, PageKind, Range};
use crate::{
    error::Result,
    memremap::Owner,
    mm::{Mm, MmWithUser, MmapReadGuard},
    mmu_notifier::{Event, IntervalNotifierOps, MmuIntervalNotifier, NotifierGuard, NotifierRange},
    page::PAGE_SHIFT,
    prelude::*,
    sync::Arc,
};

/// What a driver keeps in a [`Mirror`] besides its device page table.
pub trait MirrorOps: Send + Sized {
    /// Called on an invalidation of `range`, after the device page table lost the entries of
    /// the range, with the mirror lock held. The default does nothing more.
    ///
    /// # Context
    ///
    /// As [`IntervalNotifierOps::invalidate`]: reclaim context, no sleeping allocation, no
    /// mmap lock, no sleeping at all when the range may not block.
    fn invalidate(_data: &mut Self, _range: &NotifierRange<'_>) {}
}

/// The state of a [`Mirror`]: the device page table and the driver's data.
struct MirrorState<T> {
    table: DevicePageTable,
    data: T,
    /// The owner of the device's memory, if any.
    owner: Option<Arc<Owner>>,
    /// How many invalidations other than migrations by `owner` the mirror has seen (wrapping).
    foreign: usize,
    /// The ranges [`Mirror::make_exclusive`] calls watch.
    #[cfg(CONFIG_DEVICE_PRIVATE)]
    watch: Watch,
}

/// The invalidations of the ranges that [`Mirror::make_exclusive`] calls are converting: the
/// union of the ranges, and a count of the invalidations that overlapped it.
///
/// A call sees whether the count changed while it converted its pages: an invalidation
/// elsewhere in the address space does not fail it (one of another call's range may, once).
#[cfg(CONFIG_DEVICE_PRIVATE)]
#[derive(Default)]
struct Watch {
    calls: usize,
    start: usize,
    end: usize,
    /// Invalidations that overlapped the union (wrapping).
    hits: usize,
}

#[cfg(CONFIG_DEVICE_PRIVATE)]
impl Watch {
    /// Adds `[start, end)` to the union; returns the count to compare with later.
    fn add(&mut self, start: usize, end: usize) -> usize {
        if self.calls == 0 {
            (self.start, self.end) = (start, end);
        } else {
            (self.start, self.end) = (self.start.min(start), self.end.max(end));
        }
        self.calls += 1;
        self.hits
    }

    /// Ends a call's watch; the union is reset after the last one.
    fn remove(&mut self) {
        self.calls = self.calls.saturating_sub(1);
        if self.calls == 0 {
            (self.start, self.end) = (0, 0);
        }
    }

    /// Counts an invalidation of `[start, end)`.
    #[inline]
    fn invalidate(&mut self, start: usize, end: usize) {
        if start < self.end && end > self.start {
            self.hits = self.hits.wrapping_add(1);
        }
    }
}

impl<T: MirrorOps> IntervalNotifierOps for MirrorState<T> {
    fn invalidate(state: &mut Self, range: &NotifierRange<'_>) {
        // A migration by the mirror's owner changes the mapping only of pages it has locked:
        // see `Mirror::migrate_to_device`, which counts on it.
        let own = range.event() == Event::Migrate
            && state.owner.as_deref().is_some_and(|o| range.is_owned_by(o));
        if !own {
            state.foreign = state.foreign.wrapping_add(1);
        }
        #[cfg(CONFIG_DEVICE_PRIVATE)]
        state.watch.invalidate(range.start(), range.end());
        state.table.clear(range.start(), range.end());
        T::invalidate(&mut state.data, range);
    }
}

/// A device page table that follows the CPU page tables of a range of an address space.
///
/// Removed from the address space when dropped.
#[pin_data]
pub struct Mirror<T: MirrorOps> {
    #[pin]
    notifier: MmuIntervalNotifier<MirrorState<T>>,
    /// The owner of the device's memory, if the mirror is for a device that has some.
    owner: Option<Arc<Owner>>,
}

impl<T: MirrorOps + 'static> Mirror<T> {
    /// Mirrors `[start, start + length)` of `mm`, with `data` as the driver's state.
    ///
    /// # Errors
    ///
    /// As [`MmuIntervalNotifier::new`]'s, and `ENOMEM`.
    ///
    /// # Context
    ///
    /// Sleeps; not with the mmap lock of `mm` held (see [`MmuIntervalNotifier::new`]).
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        data: T,
    ) -> impl PinInit<Self, Error> + '_ {
        Self::init(mm, start, length, None, data)
    }

    /// [`Self::new`] for a device whose memory belongs to `owner`: the mirror can map
    /// device-exclusive pages ([`Self::make_exclusive`]).
    ///
    /// # Errors
    ///
    /// As [`Self::new`]'s.
    pub fn with_owner(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        owner: Arc<Owner>,
        data: T,
    ) -> impl PinInit<Self, Error> + '_ {
        Self::init(mm, start, length, Some(owner), data)
    }

    fn init(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        owner: Option<Arc<Owner>>,
        data: T,
    ) -> impl PinInit<Self, Error> + '_ {
        let state = DevicePageTable::new().map(|table| MirrorState {
            table,
            data,
            owner: owner.clone(),
            foreign: 0,
            #[cfg(CONFIG_DEVICE_PRIVATE)]
            watch: Watch::default(),
        });
        // SAFETY: The closure initialises both fields in place, or fails having initialised
        // none: `owner` is written only once the notifier is in place.
        unsafe {
            kernel::init::pin_init_from_closure(move |slot: *mut Self| {
                let state = state?;
                let init = MmuIntervalNotifier::new_ignoring_exclusive(
                    mm,
                    start,
                    length,
                    state,
                    owner.as_deref(),
                );
                init.__pinned_init(core::ptr::addr_of_mut!((*slot).notifier))?;
                core::ptr::addr_of_mut!((*slot).owner).write(owner);
                Ok(())
            })
        }
    }

    /// Makes the pages of `[start, end)` exclusive to the mirror's device
    /// ([`make_device_exclusive`]) and maps them all in the device page table as exclusive
    /// entries, read-only for the device until a CPU access revokes them; or none of them.
    ///
    /// The pages are first faulted in writable: the invalidations that takes (a copy-on-write
    /// broken, the zero page replaced, an exclusive entry of this device revoked, a huge page
    /// split) come before the conversion, whose own invalidation carries the mirror's owner
    /// and is ignored. Any other invalidation of the range during the conversion makes it
    /// start again, for at most [`RANGE_DEFAULT_TIMEOUT_MS`](super::RANGE_DEFAULT_TIMEOUT_MS)
    /// (then `EBUSY`); invalidations elsewhere in the address space do not.
    ///
    /// Pages converted but not mapped stay device-exclusive in the CPU page tables until the
    /// CPU touches them, as in C.
    ///
    /// # Errors
    ///
    /// `EBUSY` if a page cannot be made exclusive (not anonymous memory, a tail page of a huge
    /// page) or invalidations of the range kept coming; `EINVAL` for a mirror without an owner,
    /// another address space or a range outside the mirror; `EINTR` if the task is being killed;
    /// `EFAULT` where nothing is mapped, and `EPERM` (or `EFAULT`) where the mapping cannot be
    /// written.
    ///
    /// # Context
    ///
    /// Sleeps; the mmap read lock is held (`mmap`); takes the mirror lock, which must not be
    /// held.
    #[cfg(CONFIG_DEVICE_PRIVATE)]
    pub fn make_exclusive(&self, mmap: &MmapReadGuard<'_>, start: usize, end: usize) -> Result {
        let owner = self.owner.as_deref().ok_or(EINVAL)?;
        if !core::ptr::eq(mmap.mm().as_raw(), self.notifier.mm().as_raw())
            || !self.notifier.covers(start, end)
        {
            return Err(EINVAL);
        }
        // Device-private pages, of this device too, come back to system memory here.
        let range = Range::new(start, end, super::Request::Write, None)?;
        let retry = super::Retry::new();
        loop {
            super::fault_in_locked(&self.notifier, mmap, &range)?;
            // Watch the range from a moment when no invalidation is under way: one that
            // started before would not be counted.
            let hits = match self.notifier.read_begin().lock_if_unchanged() {
                Some(mut state) => state.watch.add(start, end),
                None => {
                    retry.again()?;
                    continue;
                }
            };
            let mapped = make_device_exclusive(mmap, start, end, owner, |pages| {
                // The pages are locked: a CPU access that would revoke them waits.
                let mut state = self.notifier.lock();
                if state.watch.hits != hits {
                    return None;
                }
                // All or nothing, as C maps only a range GUP got whole.
                if pages.iter().any(Option::is_none) {
                    return Some(Err(EBUSY));
                }
                let entries = pages.iter().map(|page| match page {
                    Some(page) => DevicePageTable::entry(page.pfn(), false, false, true),
                    None => Ok(NO_ENTRY),
                });
                Some(state.table.store_each(start >> PAGE_SHIFT, entries))
            });
            self.notifier.lock().watch.remove();
            if let Some(ret) = mapped? {
                return ret;
            }
            retry.again()?;
        }
    }

    /// Migrates the system memory of `[start, end)` of `vma` to the device, as
    /// [`migrate_vma`](crate::migrate::migrate_vma) does with [`Select::SYSTEM`] and the
    /// mirror's owner (`fill` gives the destinations), then maps in the device page table every
    /// page of the range that is on the device: read-only where the CPU maps it read-only.
    ///
    /// When every page of the range moves, the process may read them (a `PROT_NONE` range is
    /// not mapped; C drivers map it) and no invalidation other than migrations by the
    /// mirror's owner ran since the start, the pages are mapped from the migration itself,
    /// while it still holds them locked (C drivers do the same, without the check): no other
    /// migration can move them before the CPU maps them, and any other change of the range
    /// would have been seen. Otherwise they are mapped from a read of the CPU page tables after
    /// the migration, as [`Self::fault_locked`] with [`Request::Snapshot`] would.
    ///
    /// Returns what `fill` returned and what moved.
    ///
    /// [`Select::SYSTEM`]: crate::migrate::Select::SYSTEM
    /// [`Request::Snapshot`]: super::Request::Snapshot
    ///
    /// # Errors
    ///
    /// `EINVAL` for a mirror without an owner, a lock or VMA of another address space or a range
    /// outside the mirror; then as [`migrate_vma`](crate::migrate::migrate_vma) does, and as the
    /// read of the CPU page tables does ([`range_fault`](super::range_fault)).
    ///
    /// # Context
    ///
    /// Sleeps; the mmap read lock is held (`mmap`, which `vma` comes from); takes the mirror
    /// lock, which must not be held. `fill` runs with the range's pages locked by the
    /// migration: see [`migrate_vma`](crate::migrate::migrate_vma) for what it must not do.
    ///
    /// # Examples
    ///
    /// A written page and an untouched one move to the device; both are then in the device
    /// page table, as device pages.
    ///
    /// ```
    /// use kernel::hmm::{Mirror, MirrorOps};
    /// use kernel::memremap::{DevicePage, Memory, Owner, Pagemap, PagemapOps};
    /// use kernel::migrate::Source;
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
    /// struct Device;
    /// impl MirrorOps for Device {}
    ///
    /// let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
    /// let memory = Memory::DevicePrivate { size: 128 << 20 };
    /// let name = kernel::c_str!("rust_mirror_migrate_doctest");
    /// let pagemap = KBox::pin_init(Pagemap::new(owner.clone(), memory, name, Vram), GFP_KERNEL)?;
    /// let addr = kernel::kunit::vm_mmap(2 * PAGE_SIZE)?;
    /// UserSlice::new(addr, 4).writer().write_slice(b"data")?;
    /// let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
    /// let mirror = Mirror::with_owner(&mm, addr, 2 * PAGE_SIZE, owner.clone(), Device);
    /// let mirror = KBox::pin_init(mirror, GFP_KERNEL)?;
    /// let mmap = mm.mmap_read_lock();
    /// let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
    /// // Beyond the mirrored range: refused before anything moves.
    /// let end = addr + 3 * PAGE_SIZE;
    /// let beyond = mirror.migrate_to_device(&mmap, vma, addr, end, |_| ());
    /// assert!(matches!(beyond, Err(e) if e == EINVAL));
    /// let (filled, moved) =
    ///     mirror.migrate_to_device(&mmap, vma, addr, addr + 2 * PAGE_SIZE, |m| {
    ///         for entry in m.entries() {
    ///             let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
    ///             match entry.source() {
    ///                 Source::System(src) => page.data().copy_from(&src),
    ///                 Source::Empty => page.data().zero(),
    ///                 _ => continue,
    ///             }
    ///             entry.set_device(page);
    ///         }
    ///         Ok::<(), Error>(())
    ///     })?;
    /// filled?;
    /// drop(mmap);
    /// let guard = mirror.lock();
    /// for a in [addr, addr + PAGE_SIZE] {
    ///     let page = guard.table().lookup(a).ok_or(ENOENT)?;
    ///     assert!(page.as_device().is_some() && page.as_cpu().is_none());
    /// }
    /// // The written page; the empty one is mapped read-only until a write faults.
    /// assert!(guard.table().lookup(addr).is_some_and(|p| p.is_writable()));
    /// drop(guard);
    /// assert_eq!(moved.pages, 1);
    /// # Ok::<(), Error>(())
    /// ```
    #[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
    pub fn migrate_to_device<R>(
        &self,
        mmap: &MmapReadGuard<'_>,
        vma: &crate::mm::virt::VmaRef,
        start: usize,
        end: usize,
        fill: impl FnOnce(crate::migrate::MigrateVma<'_>) -> R,
    ) -> Result<(R, crate::migrate::Migrated)> {
        let owner = self.owner.as_deref().ok_or(EINVAL)?;
        let mm = self.notifier.mm().as_raw();
        // `vma` must be of the mirrored address space too: a VMA of another one, whose lock
        // the caller also holds, would put that process's pages in this table.
        if !core::ptr::eq(mmap.mm().as_raw(), mm)
            || !core::ptr::eq(vma.mm().as_raw(), mm)
            || !self.notifier.covers(start, end)
        {
            return Err(EINVAL);
        }
        // The count of other invalidations, read with the sequence unchanged: none was under
        // way, and any later one adds to the count. (Read once: if the range is busy, the pages
        // are mapped from the page tables afterwards.)
        let foreign = self
            .notifier
            .read_begin()
            .lock_if_unchanged()
            .map(|state| state.foreign);
        let select = crate::migrate::Select::SYSTEM;
        let (ret, mapped, migrated) =
            crate::migrate::migrate_vma_then(vma, start, end, select, owner, fill, |moved| {
                let foreign = foreign?;
                // Pages the process may not read (`PROT_NONE`) move, but the device must not
                // read them either: left to the read of the page tables, which refuses them.
                if !moved.all() || vma.flags() & crate::mm::virt::flags::READ == 0 {
                    return None;
                }
                let mut state = self.notifier.lock();
                if state.foreign != foreign {
                    return None;
                }
                // INVARIANT: Each page is locked by the migration, which maps it in the CPU
                // page tables at finalize; no migration can take it before, and any other
                // invalidation of the range clears these entries. A destination of another
                // owner's memory (a careless `fill`) is not mapped, as the snapshot would not.
                let entries = moved.device_pages().map(|page| match page {
                    Some((page, writable)) if page.is_owned_by(owner) => {
                        let private =
                            page.memory_type() == crate::memremap::MemoryType::DevicePrivate;
                        DevicePageTable::entry(page.pfn(), writable, private, false)
                    }
                    _ => Ok(NO_ENTRY),
                });
                state.table.store_each(start >> PAGE_SHIFT, entries).ok()
            })?;
        if mapped.is_none() {
            let mut range = Range::new(start, end, super::Request::Snapshot, Some(owner))?;
            self.fault_locked(mmap, &mut range, |commit| {
                commit.map_if(
                    |pfn| {
                        pfn.device_page()
                            .is_some_and(|page| page.is_owned_by(owner))
                    },
                    true,
                )
            })??;
        }
        Ok((ret, migrated))
    }

    /// Returns the address space the mirror follows.
    #[inline]
    pub fn mm(&self) -> &Mm {
        self.notifier.mm()
    }

    /// Reads the CPU page tables of `range` ([`range_fault`]) and calls `commit` with the
    /// result and the mirror locked; `commit` may [`MirrorCommit::map`] it into the device
    /// page table.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `range` is not inside the mirrored interval; otherwise as
    /// [`range_fault`](super::range_fault).
    ///
    /// # Context
    ///
    /// Sleeps; takes the mmap read lock of `mm`, then the mirror lock: call it with neither
    /// held (not from `commit`, not with a [`MirrorGuard`]). With the mmap lock already held,
    /// use [`Self::fault_locked`].
    pub fn fault<R>(
        &self,
        mm: &MmWithUser,
        range: &mut Range<'_>,
        commit: impl FnOnce(&mut MirrorCommit<'_, T>) -> R,
    ) -> Result<R> {
        range_fault(&self.notifier, mm, range, |state, range| {
            commit(&mut MirrorCommit { state, range })
        })
    }

    /// [`Self::fault`] for a caller that holds the mmap read lock of the mirrored address
    /// space.
    ///
    /// # Errors
    ///
    /// As [`Self::fault`]'s, but for the wait for the mmap lock, which the caller holds.
    ///
    /// # Context
    ///
    /// Sleeps; takes the mirror lock, which must not be held.
    pub fn fault_locked<R>(
        &self,
        mmap: &MmapReadGuard<'_>,
        range: &mut Range<'_>,
        commit: impl FnOnce(&mut MirrorCommit<'_, T>) -> R,
    ) -> Result<R> {
        range_fault_locked(&self.notifier, mmap, range, |state, range| {
            commit(&mut MirrorCommit { state, range })
        })
    }

    /// Takes the mirror lock.
    ///
    /// # Context
    ///
    /// Sleeps; not with the mirror lock already held.
    #[inline]
    pub fn lock(&self) -> MirrorGuard<'_, T> {
        MirrorGuard {
            guard: self.notifier.lock(),
        }
    }
}

/// The mirror lock, held: the device page table and the driver's data.
#[must_use = "the mirror unlocks immediately when the guard is unused"]
pub struct MirrorGuard<'a, T: MirrorOps> {
    guard: NotifierGuard<'a, MirrorState<T>>,
}

impl<T: MirrorOps> MirrorGuard<'_, T> {
    /// The device page table.
    #[inline]
    pub fn table(&self) -> &DevicePageTable {
        &self.guard.table
    }

    /// Removes the entries of `[start, end)` from the device page table.
    #[inline]
    pub fn clear(&mut self, start: usize, end: usize) {
        self.guard.table.clear(start, end)
    }

    /// The driver's data.
    #[inline]
    pub fn data(&mut self) -> &mut T {
        &mut self.guard.data
    }
}

/// The commit step of [`Mirror::fault`]: a valid result, with the mirror locked.
pub struct MirrorCommit<'a, T: MirrorOps> {
    state: &'a mut MirrorState<T>,
    range: FaultedRange<'a>,
}

impl<'a, T: MirrorOps> MirrorCommit<'a, T> {
    /// The result of the fault.
    #[inline]
    pub fn range(&self) -> &FaultedRange<'a> {
        &self.range
    }

    /// The device page table.
    #[inline]
    pub fn table(&self) -> &DevicePageTable {
        &self.state.table
    }

    /// The driver's data.
    #[inline]
    pub fn data(&mut self) -> &mut T {
        &mut self.state.data
    }

    /// Maps every page of the result into the device page table (writable where the CPU
    /// mapping is).
    ///
    /// # Errors
    ///
    /// `EFAULT` if a page is not mapped (a [`Request::Snapshot`] result) or cannot be accessed;
    /// `ENOMEM`. The pages before the failing one are mapped.
    ///
    /// [`Request::Snapshot`]: super::Request::Snapshot
    pub fn map(&mut self) -> Result {
        self.map_if(|_| true, false)
    }

    /// Maps the pages of the result that the CPU maps and for which `pred` is true.
    ///
    /// Other pages (not mapped, or not accessible) are skipped if `skip_unmapped`, else fail
    /// with `EFAULT`. A page of a [`Request::Write`] result that is not writable fails with
    /// `EACCES`: a device-private page of the range's owner is reported as it is, read-only
    /// after `mprotect` or `fork`, even when writing was asked (the C module `WARN`s there);
    /// the caller that wants to write it migrates it back to system memory, where the write
    /// fault breaks copy-on-write, and faults again.
    ///
    /// # Errors
    ///
    /// `EFAULT` for a page that is not mapped or not accessible, unless `skip_unmapped`; `EACCES`
    /// for a page of a [`Request::Write`] result that is not writable; `ENOMEM`. The pages before
    /// the failing one are mapped.
    ///
    /// [`Request::Write`]: super::Request::Write
    pub fn map_if(
        &mut self,
        mut pred: impl FnMut(&HmmPfn<'_>) -> bool,
        skip_unmapped: bool,
    ) -> Result {
        let has_owner = self.range.owner().is_some();
        let write = self.range.request() == super::Request::Write;
        let first = self.range.start() >> PAGE_SHIFT;
        let table = &mut self.state.table;
        // The mirror lock is held (`pred` may sleep); each entry goes into its block as it is
        // made.
        table.store_each(
            first,
            self.range
                .iter()
                .map(|(_, pfn)| match (pfn.kind(), pfn.pfn()) {
                    (Some(kind), Some(page)) if pred(&pfn) => {
                        let private = kind == PageKind::DevicePrivate;
                        if write && !pfn.is_writable() {
                            Err(EACCES)
                        } else if private && !has_owner {
                            // `hmm_range_fault` reports the device-private pages of the range's
                            // owner only.
                            Err(EFAULT)
                        } else {
                            DevicePageTable::entry(page, pfn.is_writable(), private, false)
                        }
                    }
                    (Some(_), Some(_)) => Ok(NO_ENTRY),
                    _ if skip_unmapped => Ok(NO_ENTRY),
                    _ => Err(EFAULT),
                }),
        )
    }
}
