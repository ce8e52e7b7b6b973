// SPDX-License-Identifier: GPL-2.0

//! The migration back to system memory of a device-private page that the CPU accessed
//! (`dev_pagemap_ops.migrate_to_ram`), with its neighbours if the driver asks.
//!
//! C header: [`include/linux/migrate.h`](srctree/include/linux/migrate.h)

use super::{DevicePage, DevicePageRef, Owner, Pagemap, PagemapOps};
use crate::{
    alloc::KVVec,
    bindings,
    mm::{
        highmem::CpuPage,
        pfn_array::{migrate_pfn, migrate_pfn_to_page, MIGRATE_PFN_MIGRATE},
        range::PageRange,
        virt::VmaRef,
    },
    page::PAGE_SIZE,
    prelude::*,
};
use core::ptr::NonNull;

/// The largest [`PagemapOps::fault_around_order`] honoured: a PMD's worth of pages.
const MAX_FAULT_AROUND_ORDER: u32 = 9;

/// Allocates a system page, locked, and copies the device page `page` into it with
/// `T::copy_to_ram`; returns its `migrate_pfn`, whose lock and reference go to the migration.
pub(crate) fn alloc_ram_copy<T: PagemapOps>(page: &DevicePage<'_, T>) -> Result<usize> {
    // `GFP_HIGHUSER_MOVABLE` is what user memory is allocated with.
    // SAFETY: Allocating a page has no precondition.
    let new = NonNull::new(unsafe { bindings::alloc_pages(bindings::GFP_HIGHUSER_MOVABLE, 0) })
        .ok_or(ENOMEM)?;
    // SAFETY: `new` is a page we just allocated; the migration callbacks may sleep.
    unsafe { bindings::lock_page(new.as_ptr()) };
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
    Ok(migrate_pfn(new))
}

/// Copies back, with one call of the driver's [`PagemapOps::copy_pages_to_ram`], the
/// collected pages of a migration's `src` that `page_of` names as pages of the pagemap: new
/// system pages, locked and referenced, go to `dst` for them. Returns `false`, having changed
/// nothing, if it could not (no memory, or the copy failed): the caller then copies page by
/// page.
pub(crate) fn copy_batch_to_ram<'a, T: PagemapOps>(
    src: &[usize],
    dst: &mut [usize],
    page_of: impl Fn(usize) -> Option<DevicePage<'a, T>>,
) -> bool {
    let n = src.len();
    let (Ok(mut index), Ok(mut pages), Ok(mut new), Ok(mut dsts)) = (
        KVec::with_capacity(n, GFP_KERNEL),
        KVec::with_capacity(n, GFP_KERNEL),
        KVec::with_capacity(n, GFP_KERNEL),
        KVec::with_capacity(n, GFP_KERNEL),
    ) else {
        return false;
    };
    // Drops the new pages when the batch is given up.
    let release = |new: &KVec<NonNull<bindings::page>>| {
        for page in new.iter() {
            // SAFETY: Each is a page allocated and locked below, with its one reference.
            unsafe {
                bindings::unlock_page(page.as_ptr());
                bindings::put_page(page.as_ptr());
            }
        }
    };
    for (i, &entry) in src.iter().enumerate() {
        if entry & MIGRATE_PFN_MIGRATE == 0 {
            continue;
        }
        let Some(page) = page_of(entry) else {
            continue;
        };
        // SAFETY: Allocating a page has no precondition.
        let new_page = unsafe { bindings::alloc_pages(bindings::GFP_HIGHUSER_MOVABLE, 0) };
        let Some(new_page) = NonNull::new(new_page) else {
            release(&new);
            return false;
        };
        // SAFETY: A fresh page nobody else can see: locking it does not wait.
        unsafe { bindings::lock_page(new_page.as_ptr()) };
        // SAFETY: A page of system memory, valid while the batch holds it.
        let cpu = unsafe { CpuPage::from_raw(new_page) };
        // The vectors have room for every entry: these do not allocate, and cannot fail but
        // in a way that leaves `new` holding the page to release.
        if new.push(new_page, GFP_KERNEL).is_err() {
            // SAFETY: As in `release`: the page is ours, locked.
            unsafe {
                bindings::unlock_page(new_page.as_ptr());
                bindings::put_page(new_page.as_ptr());
            }
            release(&new);
            return false;
        }
        if index.push(i, GFP_KERNEL).is_err()
            || pages.push(page, GFP_KERNEL).is_err()
            || dsts.push(cpu, GFP_KERNEL).is_err()
        {
            release(&new);
            return false;
        }
    }
    if T::copy_pages_to_ram(&pages, &dsts).is_err() {
        release(&new);
        return false;
    }
    for (&i, page) in index.iter().zip(new.iter()) {
        if let Some(slot) = dst.get_mut(i) {
            *slot = migrate_pfn(*page);
        }
    }
    true
}

/// The `migrate_to_ram` callback of a `Pagemap<T>`: a CPU access to one of its device-private
/// pages migrates it back to system memory, with its neighbours if the driver asks for them
/// ([`PagemapOps::fault_around_order`]).
///
/// # Safety
///
/// Called by the C fault handler with a valid `vmf` for a device-private page of a
/// `Pagemap<T>`, a reference to that page held and the mmap lock held.
pub(super) unsafe extern "C" fn migrate_to_ram<T: PagemapOps>(
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
    let order = pagemap
        .data()
        .fault_around_order()
        .min(MAX_FAULT_AROUND_ORDER);
    let block = PageRange::new(vma_ref.start(), vma_ref.end())
        .and_then(|vma| vma.block_around(addr, order));
    if let Some(block) = block.ok().filter(|block| block.npages() > 1) {
        let (start, end) = (block.start(), block.end());
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
        flags: bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE as usize,
        fault_page: page,
    };
    // SAFETY: The fault handler holds the mmap lock; `args` describes a range of `vma` that
    // holds the faulting page, with arrays of `npages` entries, and `fault_page` tells
    // migration about the reference the handler holds.
    if unsafe { bindings::migrate_vma_setup(&mut args) } != 0 {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    }
    let owner: &Owner = pagemap.owner();
    let page_of = |entry| {
        migrate_pfn_to_page(entry)
            // SAFETY: A collected page is locked and referenced until finalize; only this
            // owner's device-private pages are collected (`MIGRATE_VMA_SELECT_DEVICE_PRIVATE`),
            // so it is one.
            .map(|p| unsafe { DevicePageRef::from_raw_device(p) })
            .and_then(|p| p.pagemap::<T>(owner))
    };
    // A block: copied back in one go if the driver and memory allow, else page by page.
    if npages > 1 && copy_batch_to_ram(src, dst, page_of) {
        args.src = src.as_mut_ptr();
        args.dst = dst.as_mut_ptr();
        // SAFETY: As below.
        unsafe {
            bindings::migrate_vma_pages(&mut args);
            bindings::migrate_vma_finalize(&mut args);
        }
        return 0;
    }
    let mut ret = 0;
    for (&entry, slot) in src.iter().zip(dst.iter_mut()) {
        if entry & MIGRATE_PFN_MIGRATE == 0 {
            continue;
        }
        let Some(dpage) = page_of(entry) else {
            continue;
        };
        match alloc_ram_copy(&dpage) {
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
