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
//! the pagemap's `migrate_to_ram`, with [`PagemapOps::copy_to_ram`], and
//! [`Pagemap::evict`](crate::memremap::Pagemap::evict) moves every page of a pagemap back
//! (`migrate_device_range`): see [`crate::memremap`].
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
//! use kernel::memremap::{DevicePage, Memory, Owner, Pagemap, PagemapOps};
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
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
//! let to_device = || -> Result<usize> {
//!     let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
//!     let mmap = mm.mmap_read_lock();
//!     let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
//!     let (start, end) = (addr, addr + 2 * PAGE_SIZE);
//!     let (filled, moved) = migrate_vma(vma, start, end, Select::SYSTEM, &owner, |m| {
//!         for entry in m.entries() {
//!             let Source::System(src) = entry.source() else {
//!                 continue;
//!             };
//!             let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
//!             page.data().copy_from(&src);
//!             entry.set_device(page);
//!         }
//!         Ok::<(), Error>(())
//!     })?;
//!     filled?;
//!     Ok(moved.pages)
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
    bindings,
    error::{to_result, Result},
    memremap::{alloc_ram_copy, DevicePage, DevicePageRef, NewDevicePage, Owner, PagemapOps},
    mm::{
        highmem::CpuPage,
        pfn_array::{
            migrate_pfn, migrate_pfn_to_page, PfnArray, MIGRATE_PFN_MIGRATE, MIGRATE_PFN_VALID,
            MIGRATE_PFN_WRITE,
        },
        range::PageRange,
        virt::VmaRef,
    },
    page::PAGE_SIZE,
    prelude::*,
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

/// The most pages one [`migrate_vma`] may move: a driver moves a large range in batches.
pub const MIGRATE_MAX_PAGES: usize = 1 << 16;

/// A batch for a driver to hand [`migrate_vma`] when it moves a large range: a PMD's worth
/// of pages, whose two arrays take 4 KiB each.
///
/// Each call pays once for what is done per range rather than per page: the MMU notifier
/// calls (every mirror of the address space takes its lock), the page walk setup, the LRU
/// drain and the TLB flush of the unmapped range. C drivers use 64 pages (`test_hmm`) or
/// more (nouveau).
pub const MIGRATE_BATCH_PAGES: usize = 512;

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
        if self.src & MIGRATE_PFN_MIGRATE == 0 {
            return Source::NotMigrating;
        }
        let Some(page) = migrate_pfn_to_page(self.src) else {
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
        self.src & MIGRATE_PFN_WRITE != 0
    }

    /// Makes `page`, filled by the caller, the page's destination.
    ///
    /// The migration takes the page's lock and reference. Whether the page really moves is
    /// known only afterwards ([`Migrated`]); if it does not, the new page is freed.
    #[inline]
    pub fn set_device<T: PagemapOps>(self, page: NewDevicePage<'_, T>) {
        // INVARIANT: The slot was empty; the page is locked and its reference handed over,
        // as `migrate_vma_pages` and `migrate_vma_finalize` expect of a destination.
        *self.dst = migrate_pfn(page.into_raw());
    }

    /// Gives the page a destination in system memory, filled by `T::copy_to_ram` from the
    /// device page `page` (its source).
    ///
    /// # Errors
    ///
    /// `EINVAL` if `page` is not this entry's source; `ENOMEM`; or the copy's error. The page then
    /// stays where it is.
    #[inline]
    pub fn copy_to_ram<T: PagemapOps>(self, page: &DevicePage<'_, T>) -> Result {
        if migrate_pfn_to_page(self.src) != NonNull::new(page.as_ref().as_raw()) {
            return Err(EINVAL);
        }
        *self.dst = alloc_ram_copy(page)?;
        Ok(())
    }
}

/// The pages of a [`migrate_vma`] between its setup and its end, handed to its closure.
///
/// [`Self::entries`] consumes it, and [`Entry::set_device`] and [`Entry::copy_to_ram`] consume
/// their entry: each page gets at most one destination, which the migration then owns.
pub struct MigrateVma<'a> {
    start: usize,
    src: &'a [usize],
    dst: &'a mut [usize],
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
        let start = self.start;
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
/// whole migration. Returns what `fill` returned, and what moved.
///
/// [`MmapReadGuard::vma_lookup`]: crate::mm::MmapReadGuard::vma_lookup
///
/// # Errors
///
/// `EINVAL` for a range that is unaligned, empty, of more than [`MIGRATE_MAX_PAGES`] pages or
/// not inside `vma`, or for a VMA that cannot migrate (hugetlb, `VM_IO`, `VM_PFNMAP`, DAX...);
/// `ENOMEM`.
///
/// # Context
///
/// Sleeps; the mmap lock of `vma`'s address space is held (it is borrowed). MMU notifiers of
/// the range run inside (setup, and the insertion of new pages into empty entries): their
/// locks must not be held. `fill` runs with the pages of the range locked and their CPU
/// mappings replaced by migration entries: anything it does that touches the range from the
/// CPU (a user copy, a mirror's fault, `get_user_pages`) waits for those pages, that is for
/// itself, forever. It may hand the copies to another thread (a copy engine) and wait for it,
/// as drivers do with DMA: [`workqueue::scope`](crate::workqueue::scope) waits before `fill`
/// returns, so the pages stay locked and the entries borrowed; the engine holds no lock
/// the migration's pages wait on (see [`PagemapOps::copy_to_ram`]). No reference to the pages
/// may outlive `fill`: the migration checks their reference counts.
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
}

impl<'a> Moved<'a> {
    /// Whether every page of the range moves (empty entries included).
    pub(crate) fn all(&self) -> bool {
        self.src
            .iter()
            .zip(self.dst)
            .all(|(&s, &d)| s & MIGRATE_PFN_MIGRATE != 0 && d & MIGRATE_PFN_VALID != 0)
    }

    /// For each page of the range, in address order: the device page it moves to, if it
    /// moves to one, and whether the CPU will map it writable (as its source was, or as the
    /// new entry says for an empty one).
    pub(crate) fn device_pages(
        &self,
    ) -> impl Iterator<Item = Option<(DevicePageRef<'a>, bool)>> + '_ {
        self.src.iter().zip(self.dst).map(move |(&s, &d)| {
            if s & MIGRATE_PFN_MIGRATE == 0 {
                return None;
            }
            let page = migrate_pfn_to_page(d)?;
            // SAFETY: A destination of a migrating entry is a page locked and referenced by
            // the migration until finalize, after `'a`.
            let page = unsafe { DevicePageRef::from_raw(page.as_ptr()) }?;
            let flags = if s & MIGRATE_PFN_VALID != 0 { s } else { d };
            Some((page, flags & MIGRATE_PFN_WRITE != 0))
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
    let npages = PageRange::new(start, end)?.npages();
    if start < vma.start() || end > vma.end() || npages > MIGRATE_MAX_PAGES {
        return Err(EINVAL);
    }
    let mut src = PfnArray::new();
    let mut dst = PfnArray::new();
    src.reset(npages)?;
    dst.reset(npages)?;
    let mut args = bindings::migrate_vma {
        vma: vma.as_ptr(),
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
    let ret = fill(MigrateVma {
        start,
        src: src.as_slice(),
        dst: dst.as_mut_slice(),
    });
    repoint(&mut args, &mut src, &mut dst);
    // SAFETY: Setup succeeded and the destinations are locked pages with a reference each, or
    // zero; the arrays and the mmap lock are still there.
    unsafe { bindings::migrate_vma_pages(&mut args) };
    let mut pages = 0;
    for &s in src.as_slice() {
        if s & (MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE) == MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE
        {
            pages += 1;
        }
    }
    let then = then(&Moved {
        src: src.as_slice(),
        dst: dst.as_slice(),
    });
    repoint(&mut args, &mut src, &mut dst);
    // SAFETY: As above; this ends the migration, and releases every page it holds.
    unsafe { bindings::migrate_vma_finalize(&mut args) };
    Ok((ret, then, Migrated { collected, pages }))
}
