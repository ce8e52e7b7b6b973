// SPDX-License-Identifier: GPL-2.0

//! Virtual memory areas: `struct vm_area_struct`.
//!
//! [`VmaRef`] is a VMA found in its address space's tree under the mmap lock (see
//! [`MmapReadGuard::vma_lookup`]); it can be read but not changed, and what walks the page
//! tables of a range (a migration) takes one. [`VmaNew`] is the VMA that a file's `mmap`
//! operation is setting up: the mmap lock is held for writing and the VMA is not in the tree
//! yet, so it is the one place where a driver may make it a mixed map
//! ([`VmaNew::set_mixedmap`]) and insert pages ([`VmaMixedMap::vm_insert_page`]), and no
//! [`VmaRef`] can be made of it (a page walk of a VMA the tree does not hold finds no
//! VMA).
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! [`MmapReadGuard::vma_lookup`]: crate::mm::MmapReadGuard::vma_lookup

use crate::{bindings, error::to_result, mm::MmWithUser, page::Page, prelude::*, types::Opaque};

crate::layout::assert_c_layout!(vm_area_struct {
    vm_mm: RUST_LAYOUT_vm_area_struct_vm_mm,
    __bindgen_anon_1.__bindgen_anon_1.vm_start: RUST_LAYOUT_vm_area_struct_vm_start,
    __bindgen_anon_1.__bindgen_anon_1.vm_end: RUST_LAYOUT_vm_area_struct_vm_end,
    __bindgen_anon_2.vm_flags: RUST_LAYOUT_vm_area_struct_vm_flags,
});

/// The type of the flags of a VMA.
#[doc(inline)]
pub use bindings::vm_flags_t;

/// The `vm_flags` of a VMA (`VM_*`).
pub mod flags {
    use super::vm_flags_t;

    /// The memory may be read.
    pub const READ: vm_flags_t = crate::bindings::VM_READ as vm_flags_t;
    /// The memory may be written.
    pub const WRITE: vm_flags_t = crate::bindings::VM_WRITE as vm_flags_t;
    /// The memory may be executed.
    pub const EXEC: vm_flags_t = crate::bindings::VM_EXEC as vm_flags_t;
    /// The mapping is shared: writes reach the file or the other processes.
    pub const SHARED: vm_flags_t = crate::bindings::VM_SHARED as vm_flags_t;
    /// `mprotect` may add [`WRITE`].
    pub const MAYWRITE: vm_flags_t = crate::bindings::VM_MAYWRITE as vm_flags_t;
    /// Pages are mapped by PFN, without `struct page` (`remap_pfn_range`).
    pub const PFNMAP: vm_flags_t = crate::bindings::VM_PFNMAP as vm_flags_t;
    /// The pages are locked in memory (`mlock`).
    pub const LOCKED: vm_flags_t = crate::bindings::VM_LOCKED as vm_flags_t;
    /// Memory-mapped I/O.
    pub const IO: vm_flags_t = crate::bindings::VM_IO as vm_flags_t;
    /// `mremap` may not expand the mapping.
    pub const DONTEXPAND: vm_flags_t = crate::bindings::VM_DONTEXPAND as vm_flags_t;
    /// The mapping is of a hugetlbfs file.
    pub const HUGETLB: vm_flags_t = crate::bindings::VM_HUGETLB as vm_flags_t;
    /// Pages are mapped both with and without `struct page` (`vm_insert_page`).
    pub const MIXEDMAP: vm_flags_t = crate::bindings::VM_MIXEDMAP as vm_flags_t;
}

/// A VMA, valid with the mmap lock of its address space held: what [`VmaRef`] and [`VmaNew`]
/// both read.
///
/// # Invariants
///
/// The VMA is valid, the mmap lock of its address space held (at least for reading), and the
/// address space has users, for the lifetime of any `&Vma`.
#[repr(transparent)]
struct Vma(Opaque<bindings::vm_area_struct>);

impl Vma {
    #[inline]
    fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.get()
    }

    #[inline]
    fn mm(&self) -> &MmWithUser {
        // SAFETY: By the type invariant the VMA is valid and its address space has users for
        // as long as `self` lives.
        unsafe { MmWithUser::from_raw((*self.as_ptr()).vm_mm) }
    }

    #[inline]
    fn flags(&self) -> vm_flags_t {
        // SAFETY: By the type invariant the VMA is valid and the mmap lock held, which keeps
        // the flags from changing.
        unsafe { (*self.as_ptr()).__bindgen_anon_2.vm_flags }
    }

    #[inline]
    fn start(&self) -> usize {
        // SAFETY: By the type invariant the VMA is valid and the mmap lock held, which keeps
        // its range from changing.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.__bindgen_anon_1.vm_start }
    }

    #[inline]
    fn end(&self) -> usize {
        // SAFETY: As in `start`.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.__bindgen_anon_1.vm_end }
    }
}

/// A virtual memory area in the tree of its address space, read under the mmap lock.
///
/// # Invariants
///
/// The VMA is valid, in its address space's tree of VMAs (`vma_lookup` finds it), and the
/// mmap lock of the address space held (at least for reading), for the lifetime of any
/// `&VmaRef`; the address space has users.
#[repr(transparent)]
pub struct VmaRef(Vma);

impl VmaRef {
    /// Creates a reference to a VMA from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to a VMA in the tree of its address space (found by `vma_lookup`, or the
    /// VMA of a page fault), whose address space has users and whose mmap lock is held for
    /// reading or writing for the lifetime `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::vm_area_struct) -> &'a VmaRef {
        // SAFETY: `VmaRef` is `repr(transparent)` over the C struct; the caller guarantees
        // the type invariant.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the VMA.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }

    /// Returns the address space the VMA belongs to.
    #[inline]
    pub fn mm(&self) -> &MmWithUser {
        self.0.mm()
    }

    /// Returns the VMA's flags (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> vm_flags_t {
        self.0.flags()
    }

    /// Returns the first address of the VMA.
    #[inline]
    pub fn start(&self) -> usize {
        self.0.start()
    }

    /// Returns the address just past the end of the VMA.
    #[inline]
    pub fn end(&self) -> usize {
        self.0.end()
    }
}

/// A VMA being set up by a file's `mmap` operation: not in its address space's tree yet.
///
/// It is not a [`VmaRef`]: what needs a VMA the tree holds (a migration, whose page walk
/// looks the VMA up) cannot be given one.
///
/// # Invariants
///
/// The mmap lock of the VMA's address space is held for writing for the lifetime of any
/// `&VmaNew`, and the VMA is not yet reachable by anyone else.
#[repr(transparent)]
pub struct VmaNew(Vma);

impl VmaNew {
    /// Creates a reference to a VMA being mapped.
    ///
    /// # Safety
    ///
    /// `ptr` is the VMA passed to an `mmap` file operation, for the duration of that call
    /// (which holds the mmap lock for writing), and its address space has users.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::vm_area_struct) -> &'a VmaNew {
        // SAFETY: `VmaNew` is `repr(transparent)` over the C struct; the caller guarantees the
        // type invariant.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the VMA.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }

    /// Returns the VMA's flags (see [`flags`]).
    #[inline]
    pub fn flags(&self) -> vm_flags_t {
        self.0.flags()
    }

    /// Returns the first address of the VMA.
    #[inline]
    pub fn start(&self) -> usize {
        self.0.start()
    }

    /// Returns the address just past the end of the VMA.
    #[inline]
    pub fn end(&self) -> usize {
        self.0.end()
    }

    /// Makes the VMA a mixed map (`VM_MIXEDMAP`), where pages may be inserted.
    #[inline]
    pub fn set_mixedmap(&self) -> &VmaMixedMap {
        // SAFETY: The VMA is valid and its mmap lock held for writing (type invariant), as
        // `vm_flags_set` requires.
        unsafe { bindings::vm_flags_set(self.as_ptr(), flags::MIXEDMAP) };
        // SAFETY: The flag was just set, and the mmap lock stays held for writing while
        // `self` is borrowed.
        unsafe { VmaMixedMap::from_raw(self.as_ptr()) }
    }
}

/// A VMA being set up by a file's `mmap` operation that is a mixed map (`VM_MIXEDMAP`): pages
/// may be inserted into it.
///
/// # Invariants
///
/// As [`VmaNew`]'s, and the VMA has `VM_MIXEDMAP` set.
#[repr(transparent)]
pub struct VmaMixedMap(Vma);

impl VmaMixedMap {
    /// Creates a reference to a mixed-map VMA being mapped.
    ///
    /// # Safety
    ///
    /// As for [`VmaNew::from_raw`], and the VMA has `VM_MIXEDMAP` set.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::vm_area_struct) -> &'a VmaMixedMap {
        // SAFETY: `VmaMixedMap` is `repr(transparent)` over the C struct; the caller
        // guarantees the type invariant.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the VMA.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }

    /// Maps `page` at `address`, which must be page aligned and inside the VMA.
    ///
    /// The mapping takes its own reference to the page, so the caller may drop `page`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unaligned address, `EFAULT` for an address outside the VMA (as the C
    /// function), `EBUSY` if something is mapped there already, `ENOMEM` if a page table
    /// cannot be allocated.
    pub fn vm_insert_page(&self, address: usize, page: &Page) -> Result {
        if address % crate::page::PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        // SAFETY: The VMA is valid, a mixed map, and its mmap lock held for writing (type
        // invariant); `page` is a valid order-0 page that is not a slab page.
        to_result(unsafe { bindings::vm_insert_page(self.as_ptr(), address, page.as_ptr()) })
    }
}
