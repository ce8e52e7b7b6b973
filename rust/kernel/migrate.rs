// SPDX-License-Identifier: GPL-2.0

//! Page migration between system memory and device memory (`migrate_vma`,
//! `migrate_device_*`).
//!
//! [`migrate_vma`] moves the pages of a range of one VMA while the process keeps running. It
//! runs every step of the C protocol itself, around the driver's closure:
//!
//! 1. `migrate_vma_setup` collects and locks the pages the [`Select`] flags name, and replaces
//!    their CPU mappings with migration entries (an MMU notifier sees a
//!    [`Migrate`](crate::mmu_notifier::Event::Migrate) event carrying the owner);
//! 2. the closure sees each page as an [`Entry`], with its [`Source`], and gives the entries it
//!    wants to move a destination: a device page ([`Entry::set_device`]) or a copy in system
//!    memory ([`Entry::copy_to_ram`]);
//! 3. `migrate_vma_pages` moves what can be moved, and `migrate_vma_finalize` maps the new
//!    pages (or the old ones again) and releases everything.
//!
//! Steps 1 and 3 cannot be skipped: the closure gets no handle that outlives it, and the
//! abstraction does not rely on `Drop` (a value can be leaked with `mem::forget`).
//!
//! Device pages leave device memory the same way: a CPU access to a device-private page runs
//! the pagemap's `migrate_to_ram`, which this module implements with
//! [`PagemapOps::copy_to_ram`], and [`Pagemap::evict`] moves every page of a pagemap back
//! (`migrate_device_range`).
//!
//! C header: [`include/linux/migrate.h`](srctree/include/linux/migrate.h)
//!
//! # Examples
//!
//! A device whose memory is simulated by system pages: two pages move to it, a CPU access to
//! one brings both back (the driver asks for the neighbours of a faulting page), they move
//! again and are evicted.
//!
//! ```
//! use kernel::hmm::Owner;
//! use kernel::memremap::{DevicePage, Memory, Pagemap, PagemapOps};
//! use kernel::migrate::{migrate_vma, Select, Source};
//! use kernel::mm::{highmem::CpuPage, Mm};
//! use kernel::page::{Page, PAGE_SIZE};
//! use kernel::sync::Arc;
//! use kernel::uaccess::UserSlice;
//!
//! struct Vram;
//!
//! impl PagemapOps for Vram {
//!     type PageData = Page;
//!
//!     fn fault_around_order(&self) -> u32 {
//!         1
//!     }
//!
//!     fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
//!         dst.copy_from(&page.data());
//!         Ok(())
//!     }
//! }
//!
//! let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
//! let memory = Memory::DevicePrivate { size: 128 << 20 };
//! let name = kernel::c_str!("rust_migrate_doctest");
//! let pagemap = KBox::pin_init(Pagemap::new(owner.clone(), memory, name, Vram), GFP_KERNEL)?;
//!
//! // Two pages, aligned on two pages, both written (an untouched page is no page at all).
//! let mapping = kernel::kunit::vm_mmap(4 * PAGE_SIZE)?;
//! let addr = (mapping + 2 * PAGE_SIZE - 1) & !(2 * PAGE_SIZE - 1);
//! UserSlice::new(addr, 4).writer().write_slice(b"data")?;
//! UserSlice::new(addr + PAGE_SIZE, 4).writer().write_slice(b"more")?;
//! let mm = Mm::current().ok_or(EINVAL)?;
//! let to_device = || -> Result<usize> {
//!     mm.with_user(|mm| -> Result<usize> {
//!         let mmap = mm.mmap_read_lock();
//!         let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
//!         let (start, end) = (addr, addr + 2 * PAGE_SIZE);
//!         let (filled, moved) = migrate_vma(vma, start, end, Select::SYSTEM, &owner, |m| {
//!             for entry in m.entries() {
//!                 let Source::System(src) = entry.source() else {
//!                     continue;
//!                 };
//!                 let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
//!                 page.data().copy_from(&src);
//!                 entry.set_device(page);
//!             }
//!             Ok::<(), Error>(())
//!         })?;
//!         filled?;
//!         Ok(moved.pages)
//!     })
//!     .ok_or(EINVAL)?
//! };
//!
//! assert_eq!(to_device()?, 2);
//! assert_eq!(pagemap.allocated(), 2);
//! // The CPU touches the first page: `migrate_to_ram` brings both back, and frees the device
//! // pages.
//! let mut buf = [0u8; 4];
//! UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
//! assert_eq!(&buf, b"data");
//! assert_eq!(pagemap.allocated(), 0);
//!
//! // Again, then the pagemap evicts them.
//! assert_eq!(to_device()?, 2);
//! pagemap.evict()?;
//! assert_eq!(pagemap.allocated(), 0);
//! UserSlice::new(addr + PAGE_SIZE, 4).reader().read_slice(&mut buf)?;
//! assert_eq!(&buf, b"more");
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::KVVec,
    bindings,
    error::{to_result, Result},
    hmm::Owner,
    memremap::{DevicePage, DevicePageRef, NewDevicePage, Pagemap, PagemapOps},
    mm::{highmem::CpuPage, memmap::MemMap, page_ops, pfn_array::PfnArray, virt::VmaRef},
    page::PAGE_SIZE,
    prelude::*,
    task::{cond_resched, fatal_signal_pending},
};
use core::ptr::NonNull;

crate::layout::assert_c_layout!(migrate_vma {
    size: RUST_LAYOUT_migrate_vma_SIZE,
    align: RUST_LAYOUT_migrate_vma_ALIGN,
    vma: RUST_LAYOUT_migrate_vma_vma,
    dst: RUST_LAYOUT_migrate_vma_dst,
    src: RUST_LAYOUT_migrate_vma_src,
    cpages: RUST_LAYOUT_migrate_vma_cpages,
    npages: RUST_LAYOUT_migrate_vma_npages,
    start: RUST_LAYOUT_migrate_vma_start,
    end: RUST_LAYOUT_migrate_vma_end,
    pgmap_owner: RUST_LAYOUT_migrate_vma_pgmap_owner,
    flags: RUST_LAYOUT_migrate_vma_flags,
    fault_page: RUST_LAYOUT_migrate_vma_fault_page,
});

crate::layout::assert_c_layout!(vm_fault {
    __bindgen_anon_1.vma: RUST_LAYOUT_vm_fault_vma,
    __bindgen_anon_1.address: RUST_LAYOUT_vm_fault_address,
    page: RUST_LAYOUT_vm_fault_page,
});

const PFN_VALID: usize = bindings::MIGRATE_PFN_VALID as usize;
const PFN_MIGRATE: usize = bindings::MIGRATE_PFN_MIGRATE as usize;
const PFN_WRITE: usize = bindings::MIGRATE_PFN_WRITE as usize;
const PFN_SHIFT: u32 = bindings::MIGRATE_PFN_SHIFT;

/// The most pages one [`migrate_vma`] may move: a driver moves a large range in batches.
pub const MIGRATE_MAX_PAGES: usize = 1 << 16;

/// A batch for a driver to hand [`migrate_vma`] when it moves a large range: a PMD's worth
/// of pages, whose two arrays take 4 KiB each.
///
/// Each call pays once for what is done per range rather than per page: the MMU notifier
/// calls (every mirror of the address space takes its lock), the page walk setup, the LRU
/// drain and the TLB flush of the unmapped range. C drivers use 64 pages (`test_hmm`) or
/// more (nouveau). Measured with `make bench` under QEMU TCG, 512 and 64 gave the same speed
/// within the noise: the per-page work dominates there.
pub const MIGRATE_BATCH_PAGES: usize = 512;

/// The largest [`PagemapOps::fault_around_order`] honoured: a PMD's worth of pages.
const MAX_FAULT_AROUND_ORDER: u32 = 9;

/// Pages of a pagemap looked at by one `migrate_device_range` call while evicting.
const EVICT_BATCH: usize = 512;

/// How many times eviction goes over a pagemap for pages that were busy.
const EVICT_PASSES: u32 = 100;

/// The `migrate_pfn` of a page: its pfn, valid.
#[inline]
fn migrate_pfn(memmap: MemMap, page: NonNull<bindings::page>) -> usize {
    // SAFETY: The page is valid, in the memory map.
    let pfn = unsafe { memmap.page_to_pfn(page.as_ptr()) };
    (pfn << PFN_SHIFT) | PFN_VALID
}

/// The page of a source or destination entry, if any (`migrate_pfn_to_page`).
#[inline]
fn entry_page(memmap: MemMap, mpfn: usize) -> Option<NonNull<bindings::page>> {
    if mpfn & PFN_VALID == 0 {
        return None;
    }
    // SAFETY: A valid entry holds the pfn of a page, which has a `struct page`.
    NonNull::new(unsafe { memmap.pfn_to_page(mpfn >> PFN_SHIFT) })
}

/// Which pages [`migrate_vma`] collects (`enum migrate_vma_direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Select(u32);

impl Select {
    /// Pages of system memory, the zero page and empty entries of anonymous memory.
    pub const SYSTEM: Select = Select(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM);
    /// Device-private pages of the migration's owner.
    pub const DEVICE_PRIVATE: Select =
        Select(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
    /// Device-coherent pages of the migration's owner.
    pub const DEVICE_COHERENT: Select =
        Select(bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_COHERENT);
}

impl core::ops::BitOr for Select {
    type Output = Select;

    #[inline]
    fn bitor(self, rhs: Select) -> Select {
        Select(self.0 | rhs.0)
    }
}

/// What a page of a migration is before it moves.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// The page does not migrate: it was not selected, or is busy, pinned, or of another
    /// owner. A destination given to it is released unused.
    NotMigrating,
    /// Nothing is mapped there (or the zero page): the destination gets zeroes.
    Empty,
    /// A page of system memory, copied by the CPU.
    System(CpuPage<'a>),
    /// A device page of the migration's owner.
    Device(DevicePageRef<'a>),
}

/// One page of a [`migrate_vma`]: its source, and the slot of its destination.
///
/// # Invariants
///
/// `src` is the source entry of the page at `addr` after `migrate_vma_setup`, valid (the page
/// locked and referenced) for `'a`; `dst` is its destination slot, empty.
pub struct Entry<'a> {
    addr: usize,
    src: usize,
    dst: &'a mut usize,
    memmap: MemMap,
}

impl<'a> Entry<'a> {
    /// The virtual address of the page.
    #[inline]
    pub fn address(&self) -> usize {
        self.addr
    }

    /// What the page is.
    #[inline]
    pub fn source(&self) -> Source<'a> {
        if self.src & PFN_MIGRATE == 0 {
            return Source::NotMigrating;
        }
        let Some(page) = entry_page(self.memmap, self.src) else {
            return Source::Empty;
        };
        // SAFETY: A collected page is valid, locked and referenced until finalize, after `'a`
        // (type invariant).
        if let Some(device) = unsafe { DevicePageRef::from_raw(page.as_ptr()) } {
            return Source::Device(device);
        }
        // SAFETY: Not a device page: system memory, valid as above.
        Source::System(unsafe { CpuPage::from_raw(page) })
    }

    /// Whether the CPU mapped the page writable.
    #[inline]
    pub fn is_writable(&self) -> bool {
        self.src & PFN_WRITE != 0
    }

    /// Makes `page`, filled by the caller, the page's destination.
    ///
    /// The migration takes the page's lock and reference. Whether the page really moves is
    /// known only afterwards ([`Migrated`]); if it does not, the new page is freed.
    #[inline]
    pub fn set_device<T: PagemapOps>(self, page: NewDevicePage<'_, T>) {
        // INVARIANT: The slot was empty; the page is locked and its reference handed over,
        // as `migrate_vma_pages` and `migrate_vma_finalize` expect of a destination.
        *self.dst = migrate_pfn(self.memmap, page.into_raw());
    }

    /// Gives the page a destination in system memory, filled by `T::copy_to_ram` from the
    /// device page `page` (its source).
    ///
    /// Fails with `EINVAL` if `page` is not this entry's source, `ENOMEM`, or as the copy
    /// does; the page then stays where it is.
    #[inline]
    pub fn copy_to_ram<T: PagemapOps>(self, page: &DevicePage<'_, T>) -> Result {
        if entry_page(self.memmap, self.src) != NonNull::new(page.as_ref().as_raw()) {
            return Err(EINVAL);
        }
        *self.dst = alloc_ram_copy(self.memmap, page)?;
        Ok(())
    }
}

/// Allocates a system page, locked, and copies the device page `page` into it with
/// `T::copy_to_ram`; returns its `migrate_pfn`, whose lock and reference go to the migration.
// Always inline: once per page migrated back, and LLVM keeps it apart otherwise (a call and
// return per page, which cost more than their instructions under QEMU TCG).
#[inline(always)]
fn alloc_ram_copy<T: PagemapOps>(memmap: MemMap, page: &DevicePage<'_, T>) -> Result<usize> {
    // `GFP_HIGHUSER_MOVABLE` is what user memory is allocated with.
    let new = page_ops::alloc_page(bindings::GFP_HIGHUSER_MOVABLE).ok_or(ENOMEM)?;
    // SAFETY: `new` is a page of order 0 we just allocated; the migration callbacks may sleep.
    unsafe { page_ops::lock_new_page(new) };
    // SAFETY: `new` is a system page we own, alive until the reference is dropped.
    let copy = T::copy_to_ram(page, &unsafe { CpuPage::from_raw(new) });
    if let Err(e) = copy {
        // SAFETY: We own the lock and the only reference.
        unsafe {
            bindings::unlock_page(new.as_ptr());
            bindings::put_page(new.as_ptr());
        }
        return Err(e);
    }
    Ok(migrate_pfn(memmap, new))
}

/// The pages of a [`migrate_vma`] between its setup and its end, handed to its closure.
///
/// [`Self::entries`] consumes it, and [`Entry::set_device`] and [`Entry::copy_to_ram`] consume
/// their entry: each page gets at most one destination, which the migration then owns.
pub struct MigrateVma<'a> {
    start: usize,
    src: &'a [usize],
    dst: &'a mut [usize],
    memmap: MemMap,
}

impl<'a> MigrateVma<'a> {
    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The number of pages of the range.
    #[inline]
    pub fn npages(&self) -> usize {
        self.src.len()
    }

    /// The pages of the range, in address order; once: a second destination for a page would
    /// leave the first one locked and referenced for good.
    #[inline]
    pub fn entries(self) -> impl Iterator<Item = Entry<'a>> {
        let (start, memmap) = (self.start, self.memmap);
        self.src
            .iter()
            .zip(self.dst.iter_mut())
            .enumerate()
            // INVARIANT: The entries come from setup; the range is `npages` pages long, so the
            // address does not overflow.
            .map(move |(i, (&src, dst))| Entry {
                addr: start + i * PAGE_SIZE,
                src,
                dst,
                memmap,
            })
    }
}

/// What [`migrate_vma`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Entries the collection step picked (`cpages`), empty ones included.
    pub collected: usize,
    /// Pages that moved, empty ones not included (source valid and still migrating after
    /// `migrate_vma_pages`).
    pub pages: usize,
}

/// Migrates the pages of `[start, end)` of `vma` that `select` names, with `owner` as the
/// owner of the device memory involved, and the destinations given by `fill`.
///
/// `vma` comes from a held mmap lock ([`MmapReadGuard::vma_lookup`]), which stays held for the
/// whole migration. Returns what `fill` returned, and what moved. Fails with `EINVAL` for a
/// range that is unaligned, empty, of more than [`MIGRATE_MAX_PAGES`] pages or not inside
/// `vma`, or for a VMA that cannot migrate (hugetlb, `VM_IO`, `VM_PFNMAP`, DAX...), and
/// `ENOMEM`.
///
/// [`MmapReadGuard::vma_lookup`]: crate::mm::MmapReadGuard::vma_lookup
///
/// # Context
///
/// Sleeps; the mmap lock of `vma`'s address space is held (it is borrowed). MMU notifiers of
/// the range run inside (setup, and the insertion of new pages into empty entries): their
/// locks must not be held. `fill` runs with the pages of the range locked and their CPU
/// mappings replaced by migration entries: anything it does that touches the range from the
/// CPU (a user copy, [`Mirror::fault_locked`], `get_user_pages`) waits for those pages, that
/// is for itself, forever.
///
/// [`Mirror::fault_locked`]: crate::hmm::Mirror::fault_locked
pub fn migrate_vma<R>(
    vma: &VmaRef,
    start: usize,
    end: usize,
    select: Select,
    owner: &Owner,
    fill: impl FnOnce(MigrateVma<'_>) -> R,
) -> Result<(R, Migrated)> {
    migrate_vma_then(vma, start, end, select, owner, fill, |_| ()).map(|(r, (), m)| (r, m))
}

/// The pages of a [`migrate_vma_then`] after `migrate_vma_pages`, before `migrate_vma_finalize`:
/// what moves is known, and every page involved is still locked by the migration.
pub(crate) struct Moved<'a> {
    src: &'a [usize],
    dst: &'a [usize],
    memmap: MemMap,
}

impl<'a> Moved<'a> {
    /// Whether every page of the range moves (empty entries included).
    pub(crate) fn all(&self) -> bool {
        self.src
            .iter()
            .zip(self.dst)
            .all(|(&s, &d)| s & PFN_MIGRATE != 0 && d & PFN_VALID != 0)
    }

    /// For each page of the range, in address order: the device page it moves to, if it
    /// moves to one, and whether the CPU will map it writable (as its source was, or as the
    /// new entry says for an empty one).
    pub(crate) fn device_pages(
        &self,
    ) -> impl Iterator<Item = Option<(DevicePageRef<'a>, bool)>> + '_ {
        let memmap = self.memmap;
        self.src.iter().zip(self.dst).map(move |(&s, &d)| {
            if s & PFN_MIGRATE == 0 {
                return None;
            }
            let page = entry_page(memmap, d)?;
            // SAFETY: A destination of a migrating entry is a page locked and referenced by
            // the migration until finalize, after `'a`.
            let page = unsafe { DevicePageRef::from_raw(page.as_ptr()) }?;
            let flags = if s & PFN_VALID != 0 { s } else { d };
            Some((page, flags & PFN_WRITE != 0))
        })
    }
}

/// Hands the C side fresh pointers to the arrays, after Rust code borrowed them anew.
#[inline(always)]
fn repoint(args: &mut bindings::migrate_vma, src: &mut PfnArray, dst: &mut PfnArray) {
    args.src = src.as_mut_slice().as_mut_ptr();
    args.dst = dst.as_mut_slice().as_mut_ptr();
}

/// [`migrate_vma`], with `then` called after `migrate_vma_pages` and before
/// `migrate_vma_finalize`, where the migration still holds every page it moves.
pub(crate) fn migrate_vma_then<R, M>(
    vma: &VmaRef,
    start: usize,
    end: usize,
    select: Select,
    owner: &Owner,
    fill: impl FnOnce(MigrateVma<'_>) -> R,
    then: impl FnOnce(&Moved<'_>) -> M,
) -> Result<(R, M, Migrated)> {
    if start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 || start >= end {
        return Err(EINVAL);
    }
    if start < vma.start() || end > vma.end() {
        return Err(EINVAL);
    }
    let npages = (end - start) / PAGE_SIZE;
    if npages > MIGRATE_MAX_PAGES {
        return Err(EINVAL);
    }
    let mut src = PfnArray::new();
    let mut dst = PfnArray::new();
    src.reset(npages)?;
    dst.reset(npages)?;
    let mut args = bindings::migrate_vma {
        vma: vma.as_raw(),
        dst: dst.as_mut_slice().as_mut_ptr(),
        src: src.as_mut_slice().as_mut_ptr(),
        cpages: 0,
        npages: 0,
        start,
        end,
        pgmap_owner: owner.as_ptr(),
        flags: select.0 as usize,
        fault_page: core::ptr::null_mut(),
    };
    // SAFETY: `args` describes a range inside `vma`, whose mmap lock the caller holds (`vma`
    // is borrowed from a guard); both arrays have one entry per page.
    to_result(unsafe { bindings::migrate_vma_setup(&mut args) })?;
    let collected = args.cpages;
    let memmap = MemMap::get();
    let ret = fill(MigrateVma {
        start,
        src: src.as_slice(),
        dst: dst.as_mut_slice(),
        memmap,
    });
    repoint(&mut args, &mut src, &mut dst);
    // SAFETY: Setup succeeded and the destinations are locked pages with a reference each, or
    // zero; the arrays and the mmap lock are still there.
    unsafe { bindings::migrate_vma_pages(&mut args) };
    let mut pages = 0;
    for &s in src.as_slice() {
        if s & (PFN_VALID | PFN_MIGRATE) == PFN_VALID | PFN_MIGRATE {
            pages += 1;
        }
    }
    let then = then(&Moved {
        src: src.as_slice(),
        dst: dst.as_slice(),
        memmap,
    });
    repoint(&mut args, &mut src, &mut dst);
    // SAFETY: As above; this ends the migration, and releases every page it holds.
    unsafe { bindings::migrate_vma_finalize(&mut args) };
    Ok((ret, then, Migrated { collected, pages }))
}

/// The `migrate_to_ram` callback of a `Pagemap<T>`: a CPU access to one of its device-private
/// pages migrates it back to system memory, with its neighbours if the driver asks for them
/// ([`PagemapOps::fault_around_order`]).
///
/// # Safety
///
/// Called by the C fault handler with a valid `vmf` for a device-private page of a
/// `Pagemap<T>`, a reference to that page held and the mmap lock held.
pub(crate) unsafe extern "C" fn migrate_to_ram<T: PagemapOps>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: The caller passes a valid `vmf`, whose page is a device-private page of a
    // `Pagemap<T>` (only those use this callback), referenced for the call.
    let (vma, addr, page) = unsafe {
        (
            (*vmf).__bindgen_anon_1.vma,
            (*vmf).__bindgen_anon_1.address,
            (*vmf).page,
        )
    };
    // SAFETY: As above: `page` is allocated for the call, and its pagemap a `Pagemap<T>`.
    let pagemap = unsafe { Pagemap::<T>::of_page_unchecked(page) };
    // SAFETY: The fault handler holds the mmap lock, which keeps the VMA.
    let vma_ref = unsafe { VmaRef::from_raw(vma) };

    // The naturally aligned block of `1 << order` pages around the fault, inside the VMA.
    let size = PAGE_SIZE
        << pagemap
            .data()
            .fault_around_order()
            .min(MAX_FAULT_AROUND_ORDER);
    let start = (addr & !(size - 1)).max(vma_ref.start());
    let end = (addr & !(size - 1)).saturating_add(size).min(vma_ref.end());
    if end - start > PAGE_SIZE {
        // SAFETY: As this function's: `[start, end)` is inside the VMA and holds `addr`.
        if let Some(ret) = unsafe { migrate_around_to_ram(pagemap, vmf, start, end) } {
            return ret;
        }
    }
    // The faulting page alone: arrays on the stack.
    let (mut src, mut dst) = (0usize, 0usize);
    // SAFETY: As this function's: the page at `addr` is the faulting one; one entry each.
    unsafe {
        migrate_range_to_ram(
            pagemap,
            vmf,
            addr,
            addr + PAGE_SIZE,
            core::slice::from_mut(&mut src),
            core::slice::from_mut(&mut dst),
        )
    }
}

/// [`migrate_to_ram`] for the pages of `[start, end)`, with arrays on the heap; `None` if they
/// cannot be allocated (the faulting page then moves alone).
///
/// # Safety
///
/// As [`migrate_to_ram`]'s; `[start, end)` is a range of `vmf`'s VMA that holds the fault.
#[inline(never)]
unsafe fn migrate_around_to_ram<T: PagemapOps>(
    pagemap: &Pagemap<T>,
    vmf: *mut bindings::vm_fault,
    start: usize,
    end: usize,
) -> Option<bindings::vm_fault_t> {
    let npages = (end - start) / PAGE_SIZE;
    let mut src = KVVec::from_elem(0usize, npages, GFP_KERNEL).ok()?;
    let mut dst = KVVec::from_elem(0usize, npages, GFP_KERNEL).ok()?;
    // SAFETY: The caller's guarantees; the arrays have one entry per page of the range.
    Some(unsafe { migrate_range_to_ram(pagemap, vmf, start, end, &mut src, &mut dst) })
}

/// Migrates the device-private pages of `pagemap` in `[start, end)` back to system memory,
/// for the fault `vmf`, with `src` and `dst` as the arrays (one entry per page).
///
/// # Safety
///
/// As [`migrate_to_ram`]'s; `[start, end)` is a range of `vmf`'s VMA that holds the fault.
#[inline(always)]
unsafe fn migrate_range_to_ram<T: PagemapOps>(
    pagemap: &Pagemap<T>,
    vmf: *mut bindings::vm_fault,
    start: usize,
    end: usize,
    src: &mut [usize],
    dst: &mut [usize],
) -> bindings::vm_fault_t {
    let npages = (end - start) / PAGE_SIZE;
    if src.len() != npages || dst.len() != npages {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    }
    // SAFETY: The caller passes a valid `vmf`.
    let (vma, page) = unsafe { ((*vmf).__bindgen_anon_1.vma, (*vmf).page) };
    let mut args = bindings::migrate_vma {
        vma,
        dst: dst.as_mut_ptr(),
        src: src.as_mut_ptr(),
        cpages: 0,
        npages: 0,
        start,
        end,
        pgmap_owner: pagemap.owner().as_ptr(),
        flags: Select::DEVICE_PRIVATE.0 as usize,
        fault_page: page,
    };
    // SAFETY: The fault handler holds the mmap lock; `args` describes a range of `vma` that
    // holds the faulting page, with arrays of `npages` entries, and `fault_page` tells
    // migration about the reference the handler holds.
    if unsafe { bindings::migrate_vma_setup(&mut args) } != 0 {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    }
    let owner: &Owner = pagemap.owner();
    let memmap = MemMap::get();
    let mut ret = 0;
    for (&entry, slot) in src.iter().zip(dst.iter_mut()) {
        if entry & PFN_MIGRATE == 0 {
            continue;
        }
        // SAFETY: A collected page is locked and referenced until finalize; only this owner's
        // device-private pages are collected (`Select::DEVICE_PRIVATE`), so it is one.
        let Some(dpage) = entry_page(memmap, entry)
            .map(|p| unsafe { DevicePageRef::from_raw_device(p) })
            .and_then(|p| p.pagemap::<T>(owner))
        else {
            continue;
        };
        match alloc_ram_copy(memmap, &dpage) {
            Ok(mpfn) => *slot = mpfn,
            // A neighbour that cannot be copied stays on the device. The faulting page is out
            // of memory (as C's `test_hmm` says; the page fault handler retries a user access,
            // a kernel access such as a user copy fails), or an error.
            Err(e) if dpage.as_ref().as_raw() == page => {
                ret = if e == ENOMEM {
                    bindings::vm_fault_reason_VM_FAULT_OOM
                } else {
                    bindings::vm_fault_reason_VM_FAULT_SIGBUS
                };
            }
            Err(_) => {}
        }
    }
    // The loop borrowed the arrays anew: hand the C side fresh pointers.
    args.src = src.as_mut_ptr();
    args.dst = dst.as_mut_ptr();
    // SAFETY: Setup succeeded; each destination is zero or a locked page whose reference it
    // hands over.
    unsafe {
        bindings::migrate_vma_pages(&mut args);
        bindings::migrate_vma_finalize(&mut args);
    }
    ret
}

impl<T: PagemapOps> Pagemap<T> {
    /// Migrates every allocated page of the pagemap back to system memory
    /// (`migrate_device_range`), wherever it is mapped.
    ///
    /// Busy pages (locked by a concurrent migration or fault) are retried, a bounded number
    /// of times: fails with `EBUSY` if pages are left, and with `EINTR` if the task is being
    /// killed. Pages allocated meanwhile are not waited for.
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
pub(crate) fn evict_for_removal<T: PagemapOps>(pagemap: &Pagemap<T>) {
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
    let memmap = MemMap::get();
    let count = src.len();
    // SAFETY: The pfns are in the pagemap's range, which is mapped; both arrays have `count`
    // entries. Free pages (refcount zero) are skipped by the C side.
    unsafe { bindings::migrate_device_range(src.as_mut_ptr(), pfn, count) };
    for (s, d) in src.iter().zip(dst.iter_mut()) {
        if *s & PFN_MIGRATE == 0 {
            continue;
        }
        // SAFETY: A collected page is locked and referenced until finalize.
        let Some(dpage) = entry_page(memmap, *s).and_then(|p| unsafe { pagemap.page(p.as_ptr()) })
        else {
            continue;
        };
        // A page that could not be copied stays on the device, for the next pass.
        if let Ok(mpfn) = alloc_ram_copy(memmap, &dpage) {
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
