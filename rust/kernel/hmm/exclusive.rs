// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access: pages the CPU must not touch while a device works on them
//! atomically (`make_device_exclusive_range`).
//!
//! [`make_device_exclusive`] replaces the CPU mappings of a range of anonymous memory by
//! device-exclusive entries: any CPU access faults, takes the page lock, revokes the
//! exclusivity (an MMU notifier sees [`Event::Exclusive`] with no owner) and maps the page
//! again, so that a device atomic and a CPU access never run at once on one page. The pages
//! made exclusive are locked and referenced while the caller's closure runs, then unlocked and
//! released by the abstraction itself.
//!
//! A [`Mirror`](super::Mirror) maps them for its device with
//! [`Mirror::make_exclusive`](super::Mirror::make_exclusive), validated against its notifier.
//!
//! On 6.12 the write fault that `make_device_exclusive_range` makes splits a transparent huge
//! page's PMD; only the head page is then returned for the PMD (the tail pages come back as
//! `None`), although the whole folio was made exclusive: with `transparent_hugepage=always`
//! a range of huge pages fails as the C test driver does (`EBUSY` there).
//!
//! C header: [`include/linux/rmap.h`](srctree/include/linux/rmap.h)
//!
//! [`Event::Exclusive`]: crate::mmu_notifier::Event::Exclusive
//!
//! # Examples
//!
//! ```
//! use kernel::hmm::{Mirror, MirrorOps};
//! use kernel::memremap::Owner;
//! use kernel::mm::Mm;
//! use kernel::page::PAGE_SIZE;
//! use kernel::sync::Arc;
//! use kernel::uaccess::UserSlice;
//!
//! struct Device;
//! impl MirrorOps for Device {}
//!
//! let addr = kernel::kunit::vm_mmap(PAGE_SIZE)?;
//! UserSlice::new(addr, 4).writer().write_slice(b"atom")?;
//! let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
//! let mirror = Mirror::with_owner(&mm, addr, PAGE_SIZE, owner, Device);
//! let mirror = KBox::pin_init(mirror, GFP_KERNEL)?;
//!
//! // The page becomes the device's: its table maps it, exclusive, and the data is there.
//! mirror.make_exclusive(&mm.mmap_read_lock(), addr, addr + PAGE_SIZE)?;
//! {
//!     let guard = mirror.lock();
//!     let page = guard.table().lookup(addr).ok_or(ENOENT)?;
//!     assert!(page.is_exclusive() && !page.is_writable());
//!     let mut buf = [0u8; 4];
//!     page.as_cpu().ok_or(EINVAL)?.read(0, &mut buf)?;
//!     assert_eq!(&buf, b"atom");
//!     assert!(guard.table().contains_exclusive(addr, addr + PAGE_SIZE));
//! }
//!
//! // A CPU access revokes it: the device page table loses the page.
//! let mut buf = [0u8; 4];
//! UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
//! assert_eq!(&buf, b"atom");
//! assert!(!mirror.lock().table().contains_exclusive(addr, addr + PAGE_SIZE));
//! # Ok::<(), Error>(())
//! ```
//!
//! The conversion faults the pages in writable first, so it converges where that fault
//! changes the CPU page tables: a page made exclusive twice (the second conversion revokes the
//! first), and a page the CPU maps read-only (here the zero page, after a read).
//!
//! ```
//! use kernel::hmm::{Mirror, MirrorOps};
//! use kernel::memremap::Owner;
//! use kernel::mm::Mm;
//! use kernel::page::PAGE_SIZE;
//! use kernel::sync::Arc;
//! use kernel::uaccess::UserSlice;
//!
//! struct Device;
//! impl MirrorOps for Device {}
//!
//! let addr = kernel::kunit::vm_mmap(2 * PAGE_SIZE)?;
//! let mut buf = [0xffu8; 4];
//! UserSlice::new(addr + PAGE_SIZE, 4).reader().read_slice(&mut buf)?;
//! assert_eq!(buf, [0; 4]);
//! UserSlice::new(addr, 4).writer().write_slice(b"atom")?;
//! let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?.mmget_not_zero().ok_or(ESRCH)?;
//! let mirror = Mirror::with_owner(&mm, addr, 2 * PAGE_SIZE, owner, Device);
//! let mirror = KBox::pin_init(mirror, GFP_KERNEL)?;
//! let end = addr + 2 * PAGE_SIZE;
//! for _ in 0..2 {
//!     mirror.make_exclusive(&mm.mmap_read_lock(), addr, end)?;
//!     assert!(mirror.lock().table().contains_exclusive(addr, end));
//! }
//! let guard = mirror.lock();
//! let page = guard.table().lookup(addr + PAGE_SIZE).ok_or(ENOENT)?;
//! page.as_cpu().ok_or(EINVAL)?.read(0, &mut buf)?;
//! assert_eq!(buf, [0; 4]);
//! drop(guard);
//! // A range that is not mapped whole is refused, and nothing of it is mapped.
//! kernel::kunit::vm_munmap(addr + PAGE_SIZE, PAGE_SIZE)?;
//! UserSlice::new(addr, 4).reader().read_slice(&mut buf)?;
//! assert_eq!(&buf, b"atom");
//! assert!(mirror.make_exclusive(&mm.mmap_read_lock(), addr, end).is_err());
//! assert!(!mirror.lock().table().contains_exclusive(addr, end));
//! # Ok::<(), Error>(())
//! ```

use super::{Owner, RANGE_MAX_PAGES};
use crate::{
    alloc::KVVec,
    bindings,
    mm::{highmem::CpuPage, range::PageRange, MmapReadGuard},
    prelude::*,
};
use core::ptr::NonNull;

/// Makes the pages of `[start, end)` exclusive to the device of `owner`, and calls `f` with
/// them, in address order: `None` for a page that could not be made exclusive.
///
/// The MMU notifier event of the change carries `owner` (the C test driver passes none;
/// a revocation by a CPU access never has one).
///
/// # Errors
///
/// `EINVAL` for an unaligned or empty range or one of more than [`RANGE_MAX_PAGES`] pages;
/// the errno of `make_device_exclusive_range` (`EFAULT` where nothing is mapped, ...).
///
/// # Context
///
/// Sleeps (it write-faults the pages); the mmap read lock of the address space is held
/// (`mmap`). `f` runs with the pages locked: it must not fault them from the CPU.
pub fn make_device_exclusive<R>(
    mmap: &MmapReadGuard<'_>,
    start: usize,
    end: usize,
    owner: &Owner,
    f: impl FnOnce(&[Option<CpuPage<'_>>]) -> R,
) -> Result<R> {
    let npages = PageRange::new(start, end)?.npages();
    if npages > RANGE_MAX_PAGES {
        return Err(EINVAL);
    }
    let mut raw: KVVec<*mut bindings::page> =
        KVVec::from_elem(core::ptr::null_mut(), npages, GFP_KERNEL)?;
    let mut pages: KVVec<Option<CpuPage<'_>>> = KVVec::with_capacity(npages, GFP_KERNEL)?;
    // SAFETY: The mmap read lock of the address space is held (`mmap`), and `raw` has one
    // slot per page of the range.
    let ret = unsafe {
        bindings::make_device_exclusive_range(
            mmap.mm().as_raw(),
            start,
            end,
            raw.as_mut_ptr(),
            owner.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    // From here on nothing may return early: the pages must be released.
    // At most `npages`: GUP fills no more than it is asked for.
    let got = usize::try_from(ret).unwrap_or(0).min(npages);
    for (i, page) in raw.iter().enumerate() {
        let page = if i < got { NonNull::new(*page) } else { None };
        // SAFETY: A returned page is an anonymous system page, locked and referenced by us
        // until released below, after `f`.
        let page = page.map(|p| unsafe { CpuPage::from_raw(p) });
        // Within the capacity reserved above: this does not allocate, and cannot fail.
        if pages.push(page, GFP_KERNEL).is_err() {
            break;
        }
    }
    let ret = f(&pages);
    drop(pages);
    for page in raw.iter().take(got) {
        if !page.is_null() {
            // SAFETY: Each returned page is locked and holds a reference that is ours.
            unsafe {
                bindings::unlock_page(*page);
                bindings::put_page(*page);
            }
        }
    }
    Ok(ret)
}
