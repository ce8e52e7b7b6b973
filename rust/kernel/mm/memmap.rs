// SPDX-License-Identifier: GPL-2.0

//! The memory map: the `struct page` of a page frame number, and the zone of a page.
//!
//! C inlines `pfn_to_page`, `page_to_pfn` and `page_zonenum`; Rust reaches them through helper
//! calls, one per page in a loop over a range. With `CONFIG_SPARSEMEM_VMEMMAP` (x86-64, arm64,
//! riscv, powerpc, s390 and the distributions' configurations) the memory map is one virtual
//! array, `vmemmap`, and both translations are pointer arithmetic: a [`MemMap`] reads the
//! array's base once (one call) and translates every page of a loop inline. Without it, a
//! [`MemMap`] makes the helper calls. On x86-64 every page of memory is also in the kernel's
//! direct map at `PAGE_OFFSET + pfn * PAGE_SIZE`: a [`MemMap`] copies a page (`copy_highpage`)
//! with one call, to the architecture's `copy_page`.
//!
//! C header: [`include/asm-generic/memory_model.h`](srctree/include/asm-generic/memory_model.h)

use crate::bindings;
// Where a base is a variable of C, read once (`boot_constant`).
#[cfg(any(
    all(CONFIG_X86_64, CONFIG_DYNAMIC_MEMORY_LAYOUT),
    all(not(CONFIG_X86_64), CONFIG_SPARSEMEM_VMEMMAP)
))]
use core::sync::atomic::{AtomicUsize, Ordering};

/// A value C sets at boot and never changes after (the base of an array of the memory map,
/// say), asked of C the first time it is needed, then kept in `cell`.
///
/// The value is never zero; a zero in `cell` means not asked yet. Two first callers may both
/// ask: they get the same value.
///
/// Built only where a base is not a constant (x86-64 with a dynamic memory layout, other
/// architectures with a virtually mapped memory map).
#[cfg(any(
    all(CONFIG_X86_64, CONFIG_DYNAMIC_MEMORY_LAYOUT),
    all(not(CONFIG_X86_64), CONFIG_SPARSEMEM_VMEMMAP)
))]
#[inline]
fn boot_constant(cell: &AtomicUsize, ask: impl FnOnce() -> usize) -> usize {
    let mut value = cell.load(Ordering::Relaxed);
    if value == 0 {
        value = ask();
        cell.store(value, Ordering::Relaxed);
    }
    value
}

// `page_to_pfn` divides by the size of a `struct page`: bindgen's must be C's.
crate::layout::assert_c_layout!(page {
    size: RUST_LAYOUT_page_SIZE,
    align: RUST_LAYOUT_page_ALIGN,
    flags: RUST_LAYOUT_page_flags,
});

/// The shift of a page's zone in its flags (`ZONES_PGSHIFT`).
const ZONES_PGSHIFT: u32 = bindings::ZONES_PGSHIFT as u32;

/// The mask of a page's zone once shifted (`ZONES_MASK`).
const ZONES_MASK: usize = bindings::ZONES_MASK as usize;

/// Translates between page frame numbers and `struct page`s, inline where the map allows.
#[derive(Clone, Copy)]
pub(crate) struct MemMap {
    /// `vmemmap`, the `struct page` of pfn 0.
    #[cfg(CONFIG_SPARSEMEM_VMEMMAP)]
    base: *mut bindings::page,
    /// `PAGE_OFFSET`, the kernel address of pfn 0 in the direct map.
    #[cfg(CONFIG_X86_64)]
    direct: usize,
}

// SAFETY: A `MemMap` is the address of the memory map, the same for every thread; it
// dereferences nothing itself.
unsafe impl Send for MemMap {}

// SAFETY: As above.
unsafe impl Sync for MemMap {}

impl MemMap {
    /// The memory map, for a loop over many pages.
    ///
    /// Its bases are set at boot (`vmemmap` and `PAGE_OFFSET`, constants or variables
    /// depending on the architecture and configuration): asked of C once, then kept.
    #[inline]
    pub(crate) fn get() -> Self {
        Self {
            #[cfg(CONFIG_SPARSEMEM_VMEMMAP)]
            base: {
                // x86-64 without a dynamic layout (KASLR of the memory regions, 5-level
                // paging): a constant, as C's `vmemmap`, so that no static of ours costs a
                // page of data per operation (QEMU TCG walks the page tables for each page
                // after every TLB flush).
                #[cfg(all(CONFIG_X86_64, not(CONFIG_DYNAMIC_MEMORY_LAYOUT)))]
                let base = bindings::VMEMMAP_START as usize;
                #[cfg(not(all(CONFIG_X86_64, not(CONFIG_DYNAMIC_MEMORY_LAYOUT))))]
                let base = {
                    /// `vmemmap` once read (the memory map is never at address zero).
                    static BASE: AtomicUsize = AtomicUsize::new(0);

                    // SAFETY: With `CONFIG_SPARSEMEM_VMEMMAP`, `pfn_to_page(pfn)` is
                    // `vmemmap + pfn`: arithmetic, which dereferences nothing, whatever the
                    // pfn.
                    boot_constant(&BASE, || unsafe { bindings::pfn_to_page(0) } as usize)
                };
                base as *mut bindings::page
            },
            #[cfg(CONFIG_X86_64)]
            direct: {
                // A constant too without a dynamic layout (`__PAGE_OFFSET`, patch 0002).
                #[cfg(not(CONFIG_DYNAMIC_MEMORY_LAYOUT))]
                let direct = bindings::__PAGE_OFFSET;
                #[cfg(CONFIG_DYNAMIC_MEMORY_LAYOUT)]
                let direct = {
                    /// `PAGE_OFFSET` once read (the direct map is in the upper half).
                    static DIRECT: AtomicUsize = AtomicUsize::new(0);

                    // SAFETY: Reading `PAGE_OFFSET` has no precondition.
                    boot_constant(&DIRECT, || unsafe { bindings::page_offset() } as usize)
                };
                direct
            },
        }
    }

    /// The `struct page` of `pfn` (`pfn_to_page`).
    ///
    /// # Safety
    ///
    /// `pfn` has a `struct page` (it is in the memory map).
    #[inline]
    pub(crate) unsafe fn pfn_to_page(self, pfn: usize) -> *mut bindings::page {
        #[cfg(CONFIG_SPARSEMEM_VMEMMAP)]
        {
            // `vmemmap + pfn`, as `__pfn_to_page` computes it.
            self.base.wrapping_add(pfn)
        }
        #[cfg(not(CONFIG_SPARSEMEM_VMEMMAP))]
        {
            // SAFETY: The caller guarantees that `pfn` has a `struct page`.
            unsafe { bindings::pfn_to_page(pfn) }
        }
    }

    /// The page frame number of `page` (`page_to_pfn`).
    ///
    /// # Safety
    ///
    /// `page` is a `struct page` of the memory map.
    #[inline]
    pub(crate) unsafe fn page_to_pfn(self, page: *const bindings::page) -> usize {
        #[cfg(CONFIG_SPARSEMEM_VMEMMAP)]
        {
            // `page - vmemmap`, as `__page_to_pfn` computes it; a page of the map is at or
            // above its base, a whole number of `struct page`s away.
            (page as usize).wrapping_sub(self.base as usize)
                / core::mem::size_of::<bindings::page>()
        }
        #[cfg(not(CONFIG_SPARSEMEM_VMEMMAP))]
        {
            // SAFETY: The caller guarantees that `page` is a page of the memory map.
            unsafe { bindings::page_to_pfn(page) }
        }
    }

    /// The kernel address of the memory of `page` (`page_address`): x86-64 has no highmem,
    /// and every page of memory is in the direct map.
    ///
    /// # Safety
    ///
    /// `page` is a page of the memory map.
    #[cfg(CONFIG_X86_64)]
    #[inline]
    unsafe fn page_address(self, page: *const bindings::page) -> *mut crate::ffi::c_void {
        // SAFETY: The caller guarantees that `page` is a page of the memory map.
        let pfn = unsafe { self.page_to_pfn(page) };
        (self.direct + (pfn << bindings::PAGE_SHIFT)) as *mut crate::ffi::c_void
    }

    /// Copies the page `from` to the page `to` (`copy_highpage`).
    ///
    /// # Safety
    ///
    /// `to` and `from` are valid pages of system memory or CPU-accessible device memory (both
    /// mapped in the kernel's direct map), the caller may write `to` and read `from`, and
    /// nobody reads or writes `to` meanwhile.
    #[inline]
    pub(crate) unsafe fn copy_page(self, to: *mut bindings::page, from: *mut bindings::page) {
        // `copy_highpage` is `copy_page` on the two pages' addresses (plus KMSAN's metadata
        // copy: with KMSAN, the helper does that).
        #[cfg(all(CONFIG_X86_64, not(CONFIG_KMSAN)))]
        // SAFETY: The caller guarantees that both are pages of the memory map, in the direct
        // map, and that `to` may be written and `from` read.
        unsafe {
            bindings::copy_page(self.page_address(to), self.page_address(from))
        }
        #[cfg(not(all(CONFIG_X86_64, not(CONFIG_KMSAN))))]
        // SAFETY: As above.
        unsafe {
            bindings::copy_highpage(to, from)
        }
    }

    /// Copies `len` bytes at `offset` in `page` to `to` (`memcpy_from_page`).
    ///
    /// # Safety
    ///
    /// `page` is a valid page of system memory or CPU-accessible device memory that the caller
    /// may read, `offset + len` is at most `PAGE_SIZE`, and `to` is valid for writes of `len`
    /// bytes.
    #[inline]
    pub(crate) unsafe fn copy_from_page(
        self,
        to: *mut crate::ffi::c_void,
        page: *mut bindings::page,
        offset: usize,
        len: usize,
    ) {
        #[cfg(CONFIG_X86_64)]
        // SAFETY: The caller guarantees that `page` is in the direct map, that the bytes are
        // within it, and that `to` is valid for `len` bytes.
        unsafe {
            bindings::memcpy(to, self.page_address(page).add(offset), len)
        };
        #[cfg(not(CONFIG_X86_64))]
        // SAFETY: As above.
        unsafe {
            bindings::memcpy_from_page(to.cast(), page, offset, len)
        };
    }

    /// Copies `len` bytes at `from` to `offset` in `page` (`memcpy_to_page`).
    ///
    /// # Safety
    ///
    /// `page` is a valid page of system memory or CPU-accessible device memory that the caller
    /// may write, `offset + len` is at most `PAGE_SIZE`, and `from` is valid for reads of `len`
    /// bytes.
    #[inline]
    pub(crate) unsafe fn copy_to_page(
        self,
        page: *mut bindings::page,
        offset: usize,
        from: *const crate::ffi::c_void,
        len: usize,
    ) {
        // x86 needs no data cache flush after a write (`flush_dcache_page` is empty).
        #[cfg(CONFIG_X86_64)]
        // SAFETY: The caller guarantees that `page` is in the direct map, that the bytes are
        // within it, and that `from` is valid for `len` bytes.
        unsafe {
            bindings::memcpy(self.page_address(page).add(offset), from, len)
        };
        #[cfg(not(CONFIG_X86_64))]
        // SAFETY: As above.
        unsafe {
            bindings::memcpy_to_page(page, offset, from.cast(), len)
        };
    }
}

/// Whether `page` is in `ZONE_DEVICE` (`is_zone_device_page`), inline.
///
/// # Safety
///
/// `page` is a valid `struct page`.
#[inline]
pub(crate) unsafe fn is_zone_device_page(page: *const bindings::page) -> bool {
    #[cfg(CONFIG_ZONE_DEVICE)]
    {
        // SAFETY: The page is valid (the caller's guarantee). Its zone bits never change once
        // the page is in the map; other flags do, by atomic operations: read the word once,
        // as `READ_ONCE` does.
        let flags = unsafe { core::ptr::read_volatile(&raw const (*page).flags) } as usize;
        (flags >> ZONES_PGSHIFT) & ZONES_MASK == bindings::zone_type_ZONE_DEVICE as usize
    }
    #[cfg(not(CONFIG_ZONE_DEVICE))]
    {
        let _ = page;
        false
    }
}

/// The pagemap of a `ZONE_DEVICE` page (`page->pgmap`), inline.
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page.
#[inline]
pub(crate) unsafe fn page_pgmap(page: *const bindings::page) -> *mut bindings::dev_pagemap {
    // SAFETY: A `ZONE_DEVICE` page's `pgmap` (at the offset C computes) is set before the page
    // is in the map and never changes (the caller's guarantee that it is one).
    unsafe {
        page.cast::<u8>()
            .add(bindings::RUST_LAYOUT_page_pgmap)
            .cast::<*mut bindings::dev_pagemap>()
            .read()
    }
}

/// The driver's data of a `ZONE_DEVICE` page (`page->zone_device_data`), inline.
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page, whose data nobody sets meanwhile.
#[inline]
pub(crate) unsafe fn zone_device_data(page: *const bindings::page) -> *mut crate::ffi::c_void {
    // SAFETY: The field is at the offset C computes; the caller guarantees the rest.
    unsafe {
        page.cast::<u8>()
            .add(bindings::RUST_LAYOUT_page_zone_device_data)
            .cast::<*mut crate::ffi::c_void>()
            .read()
    }
}

/// Sets the driver's data of a `ZONE_DEVICE` page (`page->zone_device_data = data`), inline.
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page, whose data nobody reads or sets meanwhile.
#[inline]
pub(crate) unsafe fn set_zone_device_data(
    page: *mut bindings::page,
    data: *mut crate::ffi::c_void,
) {
    // SAFETY: The field is at the offset C computes; the caller guarantees the rest.
    unsafe {
        page.cast::<u8>()
            .add(bindings::RUST_LAYOUT_page_zone_device_data)
            .cast::<*mut crate::ffi::c_void>()
            .write(data)
    }
}

/// The type of the memory of `page`, if it is a `ZONE_DEVICE` page, inline.
///
/// # Safety
///
/// `page` is a valid `struct page`.
#[inline]
pub(crate) unsafe fn zone_device_type(
    page: *const bindings::page,
) -> Option<bindings::memory_type> {
    // SAFETY: The page is valid (the caller's guarantee); a `ZONE_DEVICE` page has a pagemap,
    // alive while the page is in the map, whose type never changes.
    unsafe { is_zone_device_page(page).then(|| (*page_pgmap(page)).type_) }
}

/// Whether `page` is device-private memory (`is_device_private_page`), inline.
///
/// # Safety
///
/// `page` is a valid `struct page`.
#[inline]
pub(crate) unsafe fn is_device_private_page(page: *const bindings::page) -> bool {
    cfg!(CONFIG_DEVICE_PRIVATE)
        // SAFETY: The caller guarantees that the page is valid.
        && unsafe { zone_device_type(page) }
            == Some(bindings::memory_type_MEMORY_DEVICE_PRIVATE)
}
