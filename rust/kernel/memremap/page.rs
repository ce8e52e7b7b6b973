// SPDX-License-Identifier: GPL-2.0

//! Device pages: pages of a pagemap, named without a reference of their own.

use super::{MemoryType, Owner, Pagemap, PagemapOps};
use crate::{bindings, ffi::c_void, mm::highmem::CpuPage, types::ForeignOwnable};
use core::{marker::PhantomData, ptr::NonNull};

/// The pagemap of a `ZONE_DEVICE` page (`page->pgmap`).
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page.
#[inline]
pub(super) unsafe fn page_pgmap(page: *const bindings::page) -> *mut bindings::dev_pagemap {
    // SAFETY: A `ZONE_DEVICE` page's `pgmap` is set before the page is in the memory map and
    // never changes (the caller's guarantee that it is one).
    unsafe { (*page).__bindgen_anon_1.__bindgen_anon_4.pgmap }
}

/// The driver's data of a `ZONE_DEVICE` page (`page->zone_device_data`).
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page, whose data nobody sets meanwhile.
#[inline]
pub(super) unsafe fn zone_device_data(page: *const bindings::page) -> *mut c_void {
    // SAFETY: The caller guarantees it.
    unsafe { (*page).__bindgen_anon_1.__bindgen_anon_4.zone_device_data }
}

/// Sets the driver's data of a `ZONE_DEVICE` page (`page->zone_device_data = data`).
///
/// # Safety
///
/// `page` is a valid `ZONE_DEVICE` page, whose data nobody reads or sets meanwhile.
#[inline]
pub(super) unsafe fn set_zone_device_data(page: *mut bindings::page, data: *mut c_void) {
    // SAFETY: The caller guarantees it.
    unsafe { (*page).__bindgen_anon_1.__bindgen_anon_4.zone_device_data = data };
}

/// A page of device memory (device-private or device-coherent), borrowed for `'a`.
///
/// It names a page without owning a reference: whatever made it (a locked page-table result,
/// a migration source) keeps the page allocated for `'a`.
///
/// # Invariants
///
/// `page` is an allocated device-private or device-coherent page for the lifetime `'a`.
#[derive(Clone, Copy)]
pub struct DevicePageRef<'a> {
    pub(super) page: NonNull<bindings::page>,
    pub(super) _p: PhantomData<&'a bindings::page>,
}

impl<'a> DevicePageRef<'a> {
    /// Creates a reference to `page` if it is device-private or device-coherent.
    ///
    /// # Safety
    ///
    /// `page` is a valid page, allocated for the lifetime `'a`.
    #[inline]
    pub(crate) unsafe fn from_raw(page: *mut bindings::page) -> Option<Self> {
        // SAFETY: The caller guarantees the page is valid; a `ZONE_DEVICE` page has a
        // pagemap, alive while the page is allocated, whose type never changes.
        let device = unsafe {
            bindings::is_zone_device_page(page)
                && matches!(
                    (*page_pgmap(page)).type_,
                    bindings::memory_type_MEMORY_DEVICE_PRIVATE
                        | bindings::memory_type_MEMORY_DEVICE_COHERENT
                )
        };
        // INVARIANT: Checked just above; the caller guarantees the rest.
        device.then(|| Self {
            // SAFETY: A valid page is not null.
            page: unsafe { NonNull::new_unchecked(page) },
            _p: PhantomData,
        })
    }

    /// Creates a reference to `page`, known to be device-private or device-coherent.
    ///
    /// # Safety
    ///
    /// `page` is a device-private or device-coherent page (a migration of device-private
    /// pages collected it, say), allocated for the lifetime `'a`.
    #[inline]
    pub(crate) unsafe fn from_raw_device(page: NonNull<bindings::page>) -> Self {
        // INVARIANT: The caller guarantees it.
        Self {
            page,
            _p: PhantomData,
        }
    }

    /// Returns the raw page.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Returns the page frame number.
    #[inline]
    pub fn pfn(&self) -> usize {
        // SAFETY: The page is valid (type invariant), in the memory map.
        unsafe { bindings::page_to_pfn(self.as_raw()) }
    }

    /// The kind of memory of the page.
    #[inline]
    pub fn memory_type(&self) -> MemoryType {
        // SAFETY: The page is valid (type invariant).
        if unsafe { bindings::is_device_private_page(self.as_raw()) } {
            MemoryType::DevicePrivate
        } else {
            MemoryType::DeviceCoherent
        }
    }

    /// Returns whether the page's memory belongs to `owner`.
    #[inline]
    pub fn is_owned_by(&self, owner: &Owner) -> bool {
        // SAFETY: The page is allocated (type invariant), so its pagemap is alive.
        owner.is(unsafe { (*page_pgmap(self.as_raw())).owner })
    }

    /// Returns the page as a page of a `Pagemap<T>` of `owner`, if it is one.
    #[inline]
    pub fn pagemap<T: PagemapOps>(&self, owner: &Owner) -> Option<DevicePage<'a, T>> {
        // SAFETY: The page is an allocated device page for `'a` (type invariant).
        let pagemap = unsafe { Pagemap::<T>::of_page(self.as_raw(), owner) }?;
        Some(DevicePage {
            page: self.page,
            pagemap,
        })
    }

    /// Returns the page as a page the CPU can address, if it is device-coherent.
    #[inline]
    pub fn as_cpu(&self) -> Option<CpuPage<'a>> {
        match self.memory_type() {
            // SAFETY: A device-coherent page is CPU-addressable, allocated for `'a`.
            MemoryType::DeviceCoherent => Some(unsafe { CpuPage::from_raw(self.page) }),
            MemoryType::DevicePrivate => None,
        }
    }
}

/// A page of a `Pagemap<T>`, borrowed for `'a`, with its data.
///
/// # Invariants
///
/// `page` is an allocated page of `pagemap` for the lifetime `'a`.
pub struct DevicePage<'a, T: PagemapOps> {
    pub(super) page: NonNull<bindings::page>,
    pub(super) pagemap: &'a Pagemap<T>,
}

impl<'a, T: PagemapOps> DevicePage<'a, T> {
    /// The pagemap of the page.
    #[inline]
    pub fn pagemap(&self) -> &'a Pagemap<T> {
        self.pagemap
    }

    /// The page as an untyped device page.
    #[inline]
    pub fn as_ref(&self) -> DevicePageRef<'a> {
        // INVARIANT: A page of a pagemap is a device page, allocated for `'a`.
        DevicePageRef {
            page: self.page,
            _p: PhantomData,
        }
    }

    /// The index of the page in its pagemap.
    #[inline]
    pub fn index(&self) -> usize {
        // The page is in the range (type invariant).
        self.as_ref().pfn() - self.pagemap.start_pfn()
    }

    /// The driver's data of the page.
    #[inline]
    pub fn data(&self) -> <T::PageData as ForeignOwnable>::Borrowed<'a> {
        // SAFETY: The page is allocated for `'a` (type invariant), so its data came from
        // `into_foreign` and is taken back (`from_foreign`) only when it is freed, after `'a`.
        unsafe { T::PageData::borrow(zone_device_data(self.page.as_ptr())) }
    }

    /// The page as a page the CPU can address, if it is device-coherent.
    #[inline]
    pub fn as_cpu(&self) -> Option<CpuPage<'a>> {
        self.as_ref().as_cpu()
    }
}

/// A page just allocated from a [`Pagemap`] for a migration: locked, with one reference that
/// this value owns. Hand it to a migration ([`crate::migrate`]); dropped unused, it is
/// unlocked and freed.
///
/// # Invariants
///
/// `page` is an allocated, locked page of a `Pagemap<T>` alive for `'a`, whose one reference
/// this value owns.
pub struct NewDevicePage<'a, T: PagemapOps> {
    pub(super) page: NonNull<bindings::page>,
    pub(super) _p: PhantomData<&'a Pagemap<T>>,
}

impl<'a, T: PagemapOps> NewDevicePage<'a, T> {
    /// The page, borrowed.
    #[inline]
    pub fn page(&self) -> DevicePageRef<'_> {
        // INVARIANT: Allocated while `self` lives.
        DevicePageRef {
            page: self.page,
            _p: PhantomData,
        }
    }

    /// The driver's data of the page.
    #[inline]
    pub fn data(&self) -> <T::PageData as ForeignOwnable>::Borrowed<'_> {
        // SAFETY: Allocated (with data) while `self` lives.
        unsafe { T::PageData::borrow(zone_device_data(self.page.as_ptr())) }
    }

    /// The page as a page the CPU can address, if it is device-coherent.
    #[inline]
    pub fn as_cpu(&self) -> Option<CpuPage<'_>> {
        self.page().as_cpu()
    }

    /// Gives up the page: its lock and reference now belong to the caller.
    pub(crate) fn into_raw(self) -> NonNull<bindings::page> {
        let page = self.page;
        core::mem::forget(self);
        page
    }
}

impl<T: PagemapOps> Drop for NewDevicePage<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The page is locked and its reference ours (type invariant); dropping the last
        // reference frees it back to its pagemap.
        unsafe {
            bindings::unlock_page(self.page.as_ptr());
            bindings::put_page(self.page.as_ptr());
        }
    }
}
