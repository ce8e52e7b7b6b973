// SPDX-License-Identifier: GPL-2.0

//! The pagemap: a range of device memory pages (`struct dev_pagemap`), and its callbacks.

use super::{
    evict::evict_for_removal,
    free_list::{free_list_lock_class, FreeList},
    migrate_to_ram::migrate_to_ram,
    page::{page_pgmap, set_zone_device_data, zone_device_data},
    DevicePage, NewDevicePage, Owner,
};
use crate::{
    bindings,
    error::{from_err_ptr, Result},
    mm::highmem::CpuPage,
    page::{Page, PAGE_SHIFT},
    prelude::*,
    str::CStr,
    sync::{Arc, SpinLock},
    types::{ForeignOwnable, Opaque},
};
use core::{
    any::TypeId,
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
};

/// The kind of memory a [`Pagemap`] provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// Memory the CPU cannot address (`MEMORY_DEVICE_PRIVATE`).
    DevicePrivate,
    /// Memory the CPU addresses coherently (`MEMORY_DEVICE_COHERENT`).
    DeviceCoherent,
}

/// Where the memory of a [`Pagemap`] is.
#[derive(Clone, Copy, Debug)]
pub enum Memory {
    /// Device-private memory of `size` bytes (whole pages), in a physical range no RAM or
    /// device uses. The kernel reserves the range rounded up to a memory section (128 MiB on
    /// x86-64); the pagemap hands out `size` bytes of it, no more.
    DevicePrivate {
        /// The size in bytes.
        size: usize,
    },
    /// Device-coherent memory at the physical range `[start, start + size)`, which must not be
    /// RAM: the pagemap claims it, and fails with `EBUSY` if anyone else has.
    DeviceCoherent {
        /// The physical address of the range, 2 MiB aligned.
        start: u64,
        /// The size in bytes, a multiple of 2 MiB.
        size: usize,
    },
}

mod private {
    pub trait Sealed {}
}

/// What a page of a [`Pagemap`] may keep as its data ([`PagemapOps::PageData`]): memory, and
/// nothing else.
///
/// The data of a page is dropped when the page is freed, wherever the C side drops the page's
/// last reference: under a page-table spinlock (an munmap, a process exit), inside a
/// migration, in the CPU fault handler. Its drop must free memory and do nothing more: no
/// sleeping, and above all no last reference to an object of the driver, such as the
/// pagemap itself, whose teardown would then wait for the page being freed. And the data of a
/// page is reached by every thread that reaches the page at once (two mirrors of a process
/// after `fork`, a read racing a migration back), so it is `Sync`.
///
/// Hence the trait is sealed, and implemented for:
///
/// * [`Page`]: a page of system memory that holds the data of a device-private page, kept as
///   the `struct page` pointer itself and borrowed as a [`CpuPage`] (no allocation);
/// * `Option<Page>`, where only some pages need one (device-coherent memory holds its own
///   data);
/// * [`KBox<U>`] of plain data (`U: Copy`, which has no `Drop`), borrowed as `&U`: a device
///   address, an index into the driver's own tables.
pub trait PageData: ForeignOwnable + Send + Sync + private::Sealed {}

impl private::Sealed for Page {}
impl PageData for Page {}
impl private::Sealed for Option<Page> {}
impl PageData for Option<Page> {}
impl<U: Copy + Send + Sync + 'static> private::Sealed for KBox<U> {}
impl<U: Copy + Send + Sync + 'static> PageData for KBox<U> {}

/// The callbacks of a [`Pagemap`], and the data it keeps per page.
pub trait PagemapOps: Send + Sync + Sized + 'static {
    /// What the driver keeps for each allocated page (`zone_device_data`): for device-private
    /// memory, where the page's data really is. See [`PageData`] for what it may be.
    type PageData: PageData;

    /// How many pages a CPU fault on a device-private page of this pagemap migrates back: the
    /// naturally aligned block of `1 << order` pages around it, within its VMA (at most a
    /// PMD's worth, order 9). The default, 0, moves the faulting page alone, as the C test
    /// driver does. A driver that expects the CPU to go on through its pages asks for more:
    /// one fault then moves the block with one migration, instead of one fault and one
    /// migration per page (`make bench` shows the difference). Values above 9 count as 9.
    ///
    /// # Context
    ///
    /// Called in the CPU fault handler, with the mmap lock held and the faulting page
    /// referenced: it must not sleep on anything the fault path may hold (return a value
    /// read at creation, as the test device does).
    fn fault_around_order(&self) -> u32 {
        0
    }

    /// Called when the last reference to an allocated page is gone, with its data, before
    /// the page returns to the free list. The default drops the data.
    ///
    /// # Context
    ///
    /// Atomic: it may run under a page-table spinlock (an munmap, a process exit), or wherever
    /// a page reference is dropped (a migration, the CPU fault handler). No sleeping, no lock
    /// that is held around a `put_page`, and no drop of the last reference to anything that
    /// owns the pagemap: its teardown would wait for this very page (a kernel warning says so
    /// when it happens).
    fn page_free(_pagemap: &Pagemap<Self>, data: Self::PageData) {
        drop(data);
    }

    /// Copies the data of `page` into `dst`, a page of system memory, to migrate it back: on
    /// a CPU access to a device-private page, on eviction, or for a driver's own migration.
    ///
    /// # Errors
    ///
    /// A page that cannot be copied stays on the device. For the page a CPU access faulted
    /// on, `ENOMEM` is out of memory (`VM_FAULT_OOM`: the fault handler retries a user
    /// access, and a kernel access, such as a user copy, fails with `EFAULT`), any other
    /// error is `VM_FAULT_SIGBUS`. Eviction tries again later.
    ///
    /// # Context
    ///
    /// Process context, may sleep; the mmap lock of the address space may be held (for a CPU
    /// fault): do not take it. `page` and `dst` are locked: a copy engine this waits for
    /// (a worker of the driver's, standing in for DMA) must not lock or wait on pages, take an
    /// mmap lock, a mirror lock or a lock the device's fault path holds while it migrates,
    /// nor allocate with `GFP_KERNEL` (reclaim may wait on the locked pages); give it a
    /// queue with `WQ_MEM_RECLAIM` ([`OwnedQueue`](crate::workqueue::OwnedQueue)).
    ///
    /// # Examples
    ///
    /// A device that is out of memory once: the user copy that faulted fails, the next one
    /// migrates the page back.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicBool, Ordering};
    /// use kernel::memremap::Owner;
    /// use kernel::memremap::{DevicePage, Memory, Pagemap, PagemapOps};
    /// use kernel::migrate::{migrate_vma, Select, Source};
    /// use kernel::mm::{highmem::CpuPage, Mm};
    /// use kernel::page::{Page, PAGE_SIZE};
    /// use kernel::sync::Arc;
    /// use kernel::uaccess::UserSlice;
    ///
    /// struct Vram {
    ///     out_of_memory: AtomicBool,
    /// }
    ///
    /// impl PagemapOps for Vram {
    ///     type PageData = Page;
    ///
    ///     fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
    ///         if page.pagemap().data().out_of_memory.swap(false, Ordering::Relaxed) {
    ///             return Err(ENOMEM);
    ///         }
    ///         dst.copy_from(&page.data());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
    /// let memory = Memory::DevicePrivate { size: 128 << 20 };
    /// let name = kernel::c_str!("rust_copy_to_ram_doctest");
    /// let vram = Vram { out_of_memory: AtomicBool::new(false) };
    /// let pagemap = KBox::pin_init(Pagemap::new(owner.clone(), memory, name, vram), GFP_KERNEL)?;
    /// let addr = kernel::kunit::vm_mmap(PAGE_SIZE)?;
    /// UserSlice::new(addr, 4).writer().write_slice(b"data")?;
    /// let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
    /// let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
    /// let mmap = mm.mmap_read_lock();
    /// let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
    /// let (filled, _) = migrate_vma(vma, addr, addr + PAGE_SIZE, Select::SYSTEM, &owner, |m| {
    ///     for entry in m.entries() {
    ///         let Source::System(src) = entry.source() else {
    ///             continue;
    ///         };
    ///         let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
    ///         page.data().copy_from(&src);
    ///         entry.set_device(page);
    ///     }
    ///     Ok::<(), Error>(())
    /// })?;
    /// filled?;
    /// drop(mmap);
    /// assert_eq!(pagemap.allocated(), 1);
    ///
    /// pagemap.data().out_of_memory.store(true, Ordering::Relaxed);
    /// let mut buf = [0u8; 4];
    /// assert_eq!(UserSlice::new(addr, 4).reader().read_slice(&mut buf), Err(EFAULT));
    /// assert_eq!(pagemap.allocated(), 1);
    /// UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
    /// assert_eq!(&buf, b"data");
    /// assert_eq!(pagemap.allocated(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result;

    /// Copies several pages back at once, `pages[i]` into `dst[i]`: the block around a CPU
    /// fault, or a batch of eviction. A driver with a copy engine hands them to it in one go
    /// and waits once; the default copies each with [`Self::copy_to_ram`].
    ///
    /// # Errors
    ///
    /// Any error fails the whole batch: the abstraction then copies page by page with
    /// [`Self::copy_to_ram`].
    ///
    /// # Context
    ///
    /// As [`Self::copy_to_ram`]: every page of both slices is locked.
    ///
    /// # Examples
    ///
    /// A CPU fault on one page of a block of two brings both back, in one batch.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicUsize, Ordering};
    /// use kernel::memremap::{DevicePage, Memory, Owner, Pagemap, PagemapOps};
    /// use kernel::migrate::{migrate_vma, Select, Source};
    /// use kernel::mm::{highmem::CpuPage, Mm};
    /// use kernel::page::{Page, PAGE_SIZE};
    /// use kernel::sync::Arc;
    /// use kernel::uaccess::UserSlice;
    ///
    /// struct Vram {
    ///     batches: AtomicUsize,
    ///     pages: AtomicUsize,
    /// }
    ///
    /// impl PagemapOps for Vram {
    ///     type PageData = Page;
    ///
    ///     fn fault_around_order(&self) -> u32 {
    ///         1
    ///     }
    ///
    ///     fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
    ///         dst.copy_from(&page.data());
    ///         Ok(())
    ///     }
    ///
    ///     fn copy_pages_to_ram(pages: &[DevicePage<'_, Self>], dst: &[CpuPage<'_>]) -> Result {
    ///         for (page, dst) in pages.iter().zip(dst) {
    ///             dst.copy_from(&page.data());
    ///         }
    ///         if let Some(page) = pages.first() {
    ///             let vram = page.pagemap().data();
    ///             vram.batches.fetch_add(1, Ordering::Relaxed);
    ///             vram.pages.fetch_add(pages.len(), Ordering::Relaxed);
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
    /// let memory = Memory::DevicePrivate { size: 2 << 20 };
    /// let name = kernel::c_str!("rust_copy_pages_to_ram_doctest");
    /// let vram = Vram { batches: AtomicUsize::new(0), pages: AtomicUsize::new(0) };
    /// let pagemap = KBox::pin_init(Pagemap::new(owner.clone(), memory, name, vram), GFP_KERNEL)?;
    /// // Two pages, aligned to two pages: one block.
    /// let map = kernel::kunit::vm_mmap(4 * PAGE_SIZE)?;
    /// let addr = (map + 2 * PAGE_SIZE - 1) & !(2 * PAGE_SIZE - 1);
    /// UserSlice::new(addr, 4).writer().write_slice(b"one.")?;
    /// UserSlice::new(addr + PAGE_SIZE, 4).writer().write_slice(b"two.")?;
    /// let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
    /// let mmap = mm.mmap_read_lock();
    /// let vma = mmap.vma_lookup(addr).ok_or(EFAULT)?;
    /// let end = addr + 2 * PAGE_SIZE;
    /// let (filled, _) = migrate_vma(vma, addr, end, Select::SYSTEM, &owner, |m| {
    ///     for entry in m.entries() {
    ///         let Source::System(src) = entry.source() else { continue };
    ///         let page = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
    ///         page.data().copy_from(&src);
    ///         entry.set_device(page);
    ///     }
    ///     Ok::<(), Error>(())
    /// })?;
    /// filled?;
    /// drop(mmap);
    /// assert_eq!(pagemap.allocated(), 2);
    ///
    /// // The CPU reads the second page: both come back, in one batch.
    /// let mut buf = [0u8; 4];
    /// UserSlice::new(addr + PAGE_SIZE, 4).reader().read_slice(&mut buf)?;
    /// assert_eq!(&buf, b"two.");
    /// assert_eq!(pagemap.allocated(), 0);
    /// let vram = pagemap.data();
    /// assert_eq!(vram.batches.load(Ordering::Relaxed), 1);
    /// assert_eq!(vram.pages.load(Ordering::Relaxed), 2);
    /// UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
    /// assert_eq!(&buf, b"one.");
    /// # Ok::<(), Error>(())
    /// ```
    fn copy_pages_to_ram(pages: &[DevicePage<'_, Self>], dst: &[CpuPage<'_>]) -> Result {
        for (page, dst) in pages.iter().zip(dst) {
            Self::copy_to_ram(page, dst)?;
        }
        Ok(())
    }
}

/// A physical range claimed in `iomem_resource`; released when dropped.
///
/// # Invariants
///
/// `[start, start + len)` was claimed with `__request_region` or `request_free_mem_region`
/// and is released only in `drop`.
struct MemRegion {
    start: u64,
    len: u64,
}

impl MemRegion {
    fn claim(memory: Memory, name: &'static CStr) -> Result<Self> {
        match memory {
            Memory::DevicePrivate { size } => {
                // SAFETY: `iomem_resource` is the root of physical memory resources, and
                // `name` lives forever. Returns a resource or an `ERR_PTR`, never null.
                let res = from_err_ptr(unsafe {
                    bindings::request_free_mem_region(
                        &raw mut bindings::iomem_resource,
                        size,
                        name.as_char_ptr(),
                    )
                })?;
                // SAFETY: `res` is a valid resource that stays claimed until released.
                let (start, end) = unsafe { ((*res).start, (*res).end) };
                // INVARIANT: `request_free_mem_region` claimed `[start, end]`.
                Ok(Self {
                    start,
                    len: end - start + 1,
                })
            }
            Memory::DeviceCoherent { start, size } => {
                let len = u64::try_from(size)?;
                if len == 0 || start.checked_add(len).is_none() {
                    return Err(EINVAL);
                }
                // SAFETY: As above; `__request_region` checks that the range is free.
                let res = unsafe {
                    bindings::__request_region(
                        &raw mut bindings::iomem_resource,
                        start,
                        len,
                        name.as_char_ptr(),
                        0,
                    )
                };
                if res.is_null() {
                    return Err(EBUSY);
                }
                // INVARIANT: The range was just claimed.
                Ok(Self { start, len })
            }
        }
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        // SAFETY: The range was claimed and is released only here (type invariant).
        unsafe {
            bindings::__release_region(&raw mut bindings::iomem_resource, self.start, self.len)
        };
    }
}

/// A range of device memory pages (`struct dev_pagemap`), with the driver's data `T`.
///
/// Created pinned ([`Pagemap::new`]); dropping it evicts every page still allocated, then
/// unmaps the range, waiting for the last page reference.
///
/// # Invariants
///
/// * `pgmap` was mapped with `memremap_pages` (type as `memory`; a range from `start_pfn` of
///   at least `npages` pages; owner `owner`; ops `PagemapVtable<T>`) and is unmapped only in
///   `drop`.
/// * The struct is `repr(C)` and its first two fields do not depend on `T`: the `type_id` of
///   any `Pagemap<U>` sits at the same offset from its `pgmap`, so a page's pagemap can be
///   checked to be a `Pagemap<T>` before it is used as one.
/// * A page of the first `npages` is allocated (refcount above zero, `zone_device_data` from
///   `T::PageData::into_foreign`) exactly when its index is not among the free pages; the
///   pages after them (up to the end of a section) are never allocated.
#[repr(C)]
#[pin_data(PinnedDrop)]
pub struct Pagemap<T: PagemapOps> {
    #[pin]
    pgmap: Opaque<bindings::dev_pagemap>,
    type_id: TypeId,
    owner: Arc<Owner>,
    memory: MemoryType,
    start_pfn: usize,
    npages: usize,
    #[pin]
    free: SpinLock<FreeList>,
    /// The task running [`PagemapOps::page_free`] for a page of this pagemap, if one does (the
    /// first of several at once): a pagemap dropped from there would wait for itself.
    freeing: AtomicPtr<bindings::task_struct>,
    data: T,
    region: MemRegion,
}

// SAFETY: The C pagemap may be used from any thread; the free list is under a spinlock and
// `T` is `Send + Sync`.
unsafe impl<T: PagemapOps> Send for Pagemap<T> {}

// SAFETY: Shared references reach only `T` (`Sync`), the free list under its lock, an atomic,
// and the C pagemap, whose state the C side synchronises.
unsafe impl<T: PagemapOps> Sync for Pagemap<T> {}

impl<T: PagemapOps> Pagemap<T> {
    /// Maps device memory as `memory` says, owned by `owner`, with `data` as the driver's
    /// data; `name` names the range in `/proc/iomem`.
    ///
    /// # Errors
    ///
    /// `EBUSY` if a device-coherent range is claimed already, `ENXIO` if it is RAM, `ERANGE` if no
    /// free range is left for device-private memory, `EINVAL` for a bad size; `ENOMEM`.
    ///
    /// # Context
    ///
    /// Sleeps.
    pub fn new(
        owner: Arc<Owner>,
        memory: Memory,
        name: &'static CStr,
        data: T,
    ) -> impl PinInit<Self, Error> {
        let region = MemRegion::claim(memory, name);
        // The pages handed out: what was asked, even where the range claimed is larger.
        let (memory, size) = match memory {
            Memory::DevicePrivate { size } => (MemoryType::DevicePrivate, size),
            Memory::DeviceCoherent { size, .. } => (MemoryType::DeviceCoherent, size),
        };
        try_pin_init!(Self {
            region: region?,
            type_id: TypeId::of::<T>(),
            owner,
            memory,
            start_pfn: usize::try_from(region.start >> PAGE_SHIFT)?,
            npages: match size >> PAGE_SHIFT {
                0 => Err(EINVAL)?,
                n => n.min(usize::try_from(region.len >> PAGE_SHIFT)?),
            },
            free <- {
                let (name, key) = free_list_lock_class();
                SpinLock::new(FreeList::new(*npages)?, name, key)
            },
            freeing: AtomicPtr::new(core::ptr::null_mut()),
            data,
            // Last: once mapped, the pagemap must be unmapped by `drop`, which needs the rest.
            pgmap <- {
                let (start, end) = (region.start, region.start + (region.len - 1));
                let type_ = match memory {
                    MemoryType::DevicePrivate => bindings::memory_type_MEMORY_DEVICE_PRIVATE,
                    MemoryType::DeviceCoherent => bindings::memory_type_MEMORY_DEVICE_COHERENT,
                };
                let owner_ptr = owner.as_ptr();
                Opaque::try_ffi_init(move |pgmap: *mut bindings::dev_pagemap| {
                    // SAFETY: `pgmap` is valid for writes and pinned. The ops are static, the
                    // owner outlives the pagemap (a field of it), and the range was claimed
                    // for it. On failure `memremap_pages` undoes what it did.
                    unsafe {
                        core::ptr::write_bytes(pgmap, 0, 1);
                        (*pgmap).type_ = type_;
                        let range = (*pgmap).__bindgen_anon_1.range.as_mut();
                        range.start = start;
                        range.end = end;
                        (*pgmap).nr_range = 1;
                        (*pgmap).ops = &PagemapVtable::<T>::OPS;
                        (*pgmap).owner = owner_ptr;
                        from_err_ptr(bindings::memremap_pages(pgmap, bindings::NUMA_NO_NODE))?;
                    }
                    Ok::<(), Error>(())
                })
            },
        }? Error)
    }

    /// The driver's data.
    #[inline]
    pub fn data(&self) -> &T {
        &self.data
    }

    /// The owner of the memory.
    #[inline]
    pub fn owner(&self) -> &Arc<Owner> {
        &self.owner
    }

    /// The kind of memory.
    #[inline]
    pub fn memory_type(&self) -> MemoryType {
        self.memory
    }

    /// The first page frame number of the range.
    #[inline]
    pub fn start_pfn(&self) -> usize {
        self.start_pfn
    }

    /// The number of pages the pagemap hands out: the size asked for, in pages.
    #[inline]
    pub fn npages(&self) -> usize {
        self.npages
    }

    /// The number of pages allocated and not yet freed.
    pub fn allocated(&self) -> usize {
        self.free.lock().allocated
    }

    /// Allocates a free page, with `data` as its [`PagemapOps::PageData`], for a migration
    /// destination (`zone_device_page_init`).
    ///
    /// # Errors
    ///
    /// `ENOMEM` when every page is in use; `EBUSY` once the pagemap is being removed. `data` is
    /// dropped then.
    ///
    /// # Context
    ///
    /// Sleeps (the new page is locked).
    pub fn alloc_page(&self, data: T::PageData) -> Result<NewDevicePage<'_, T>> {
        let index = self.free.lock().pop()?;
        // The index is below `npages` (type invariant), so this does not overflow.
        let pfn = self.start_pfn + index;
        // SAFETY: `pfn` is in the mapped range, which has a `struct page` for each pfn.
        let page = unsafe { bindings::pfn_to_page(pfn) };
        // SAFETY: The page is free (its index was in the free list): refcount zero and no
        // data. `zone_device_page_init` takes a pagemap reference, sets the refcount to one
        // and locks the page; the data is set before anyone else can see the page.
        unsafe {
            bindings::zone_device_page_init(page);
            set_zone_device_data(page, data.into_foreign().cast_mut());
        }
        // INVARIANT: The page is allocated, locked, and its one reference is ours.
        Ok(NewDevicePage {
            // SAFETY: `pfn_to_page` of a mapped pfn is never null.
            page: unsafe { NonNull::new_unchecked(page) },
            _p: PhantomData,
        })
    }

    /// Returns `page` as a page of this pagemap, if it is one.
    ///
    /// # Safety
    ///
    /// `page` is a valid page, allocated for the lifetime `'a` if it is one of this pagemap.
    pub(crate) unsafe fn page<'a>(
        &'a self,
        page: *mut bindings::page,
    ) -> Option<DevicePage<'a, T>> {
        // SAFETY: The page is valid (the caller's guarantee), in the memory map.
        let pfn = unsafe { bindings::page_to_pfn(page) };
        if pfn < self.start_pfn || pfn - self.start_pfn >= self.npages {
            return None;
        }
        // INVARIANT: A page of the range, allocated for `'a` (the caller's guarantee).
        Some(DevicePage {
            // SAFETY: A valid page is not null.
            page: unsafe { NonNull::new_unchecked(page) },
            pagemap: self,
        })
    }

    /// Marks the pagemap as going away: [`Self::alloc_page`] fails from now on.
    pub(crate) fn stop_allocating(&self) {
        self.free.lock().removing = true;
    }

    /// Returns the pagemap of the device page `page`, if it is a `Pagemap<T>` of `owner`.
    ///
    /// # Safety
    ///
    /// `page` is a device-private or device-coherent page, valid and allocated for `'a`.
    #[inline]
    pub(super) unsafe fn of_page<'a>(page: *mut bindings::page, owner: &Owner) -> Option<&'a Self> {
        // SAFETY: The page is an allocated ZONE_DEVICE page (the caller's guarantee): its
        // pagemap is alive while it is.
        let pgmap = unsafe { page_pgmap(page) };
        // SAFETY: As above; the owner field is set before the pagemap is mapped.
        if !owner.is(unsafe { (*pgmap).owner }) {
            return None;
        }
        // Only `Pagemap::new` makes a pagemap whose owner is an `Owner`, so `pgmap` is the
        // `pgmap` field of a `Pagemap<U>` for some `U`; `type_id` is at the same offset in all
        // of them (type invariant).
        // SAFETY: See above: `pgmap` is a field of a `Pagemap`.
        let this = unsafe { kernel::container_of!(pgmap, Pagemap<T>, pgmap) };
        // SAFETY: See above: the field is readable whatever `U` is.
        if unsafe { core::ptr::addr_of!((*this).type_id).read() } != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: It is a `Pagemap<T>`, alive for `'a` since one of its pages is allocated.
        Some(unsafe { &*this })
    }

    /// Returns the pagemap of `page`.
    ///
    /// # Safety
    ///
    /// `page` is a page of a `Pagemap<T>`, allocated for the lifetime `'a`.
    pub(crate) unsafe fn of_page_unchecked<'a>(page: *mut bindings::page) -> &'a Self {
        // SAFETY: The page's pagemap is the `pgmap` field of a `Pagemap<T>` (the caller's
        // guarantee), alive while the page is allocated.
        unsafe { &*kernel::container_of!(page_pgmap(page), Pagemap<T>, pgmap) }
    }

    /// Called by the C side when the last reference to an allocated page is dropped.
    fn free_page(&self, page: *mut bindings::page) {
        let current = current_task();
        // Only the first of the pages freed at once is recorded: enough to tell a drop from
        // inside a single `page_free` (the natural way to get it wrong) from any other.
        let recorded = self
            .freeing
            .compare_exchange(
                core::ptr::null_mut(),
                current,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        // SAFETY: The page is ours and just lost its last reference: its data, set by
        // `alloc_page` from `into_foreign`, is ours to take back (type invariant).
        unsafe {
            let data = zone_device_data(page);
            set_zone_device_data(page, core::ptr::null_mut());
            if !data.is_null() {
                T::page_free(self, T::PageData::from_foreign(data));
            }
        }
        if recorded {
            self.freeing.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        // SAFETY: The page is valid, in the memory map.
        let pfn = unsafe { bindings::page_to_pfn(page) };
        let Some(index) = pfn
            .checked_sub(self.start_pfn)
            .and_then(|i| u32::try_from(i).ok())
        else {
            return;
        };
        self.free.lock().push(index);
    }
}

#[pinned_drop]
impl<T: PagemapOps> PinnedDrop for Pagemap<T> {
    fn drop(self: Pin<&mut Self>) {
        // Dropped by `page_free` of one of its own pages: the teardown below would wait for
        // that page, whose last reference the C side drops only after `page_free` returns.
        if core::ptr::eq(self.freeing.load(Ordering::Relaxed), current_task()) {
            crate::pr_err!("memremap: a pagemap was dropped from its own page_free\n");
            // SAFETY: Reports a kernel warning with a backtrace; no other effect.
            unsafe { bindings::WARN_ON(1) };
        }
        self.stop_allocating();
        // `memunmap_pages` waits, uninterruptibly, for the last reference to every page:
        // migrate them all back first. Pages that are busy (locked by a concurrent migration
        // or fault) are retried; what is left after the bound is waited for by the C side.
        evict_for_removal(&self);
        // SAFETY: The pagemap is mapped and unmapped only here (type invariant). The region is
        // released afterwards, when the field is dropped.
        unsafe { bindings::memunmap_pages(self.pgmap.get()) };
    }
}

/// The `task_struct` of the current task, only to be compared.
#[inline]
fn current_task() -> *mut bindings::task_struct {
    crate::current!().0.get()
}

/// The C operations of a [`Pagemap<T>`].
pub(crate) struct PagemapVtable<T: PagemapOps>(PhantomData<T>);

impl<T: PagemapOps> PagemapVtable<T> {
    /// # Safety
    ///
    /// Called by the C side for a page of a mapped `Pagemap<T>` whose last reference is gone.
    unsafe extern "C" fn page_free(page: *mut bindings::page) {
        // SAFETY: Only the pages of a `Pagemap<T>` use this vtable; the pagemap stays mapped
        // until every page is freed, this one included.
        let this = unsafe { Pagemap::<T>::of_page_unchecked(page) };
        this.free_page(page);
    }

    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        page_free: Some(Self::page_free),
        migrate_to_ram: Some(migrate_to_ram::<T>),
        memory_failure: None,
    };
}
