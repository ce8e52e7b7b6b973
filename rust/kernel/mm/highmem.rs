// SPDX-License-Identifier: GPL-2.0

//! Pages the CPU can address, and copies to and from them.
//!
//! A [`CpuPage`] borrows a `struct page` of system memory or of device-coherent memory: memory
//! the CPU reaches through the kernel's (possibly temporary, `kmap_local`) mapping. Its
//! contents may be shared with user space, which can write them at any time, so they are only
//! ever copied by the C helpers of `highmem.h`, never reached through a Rust reference.
//! Device-private pages have no such mapping: there is no way to make a [`CpuPage`] of one.
//!
//! C header: [`include/linux/highmem.h`](srctree/include/linux/highmem.h)
//!
//! # Examples
//!
//! ```
//! use kernel::mm::highmem::CpuPage;
//! use kernel::page::{Page, PAGE_SIZE};
//!
//! let a = Page::alloc_page(GFP_KERNEL)?;
//! let b = Page::alloc_page(GFP_KERNEL)?;
//! let (a, b) = (CpuPage::from_page(&a), CpuPage::from_page(&b));
//! a.write(100, b"device")?;
//! b.copy_from(&a);
//! let mut buf = [0u8; 6];
//! b.read(100, &mut buf)?;
//! assert_eq!(&buf, b"device");
//! b.zero();
//! b.read(100, &mut buf)?;
//! assert_eq!(buf, [0; 6]);
//! assert_eq!(a.write(PAGE_SIZE - 1, b"xy"), Err(EINVAL));
//!
//! // Pages appended to a vector with room for them, without zeroing it first.
//! let mut v = KVVec::with_capacity(2 * PAGE_SIZE, GFP_KERNEL)?;
//! a.append_to(&mut v)?;
//! b.append_to(&mut v)?;
//! assert_eq!(v.len(), 2 * PAGE_SIZE);
//! assert_eq!(&v[100..106], b"device");
//! assert_eq!(&v[PAGE_SIZE + 100..PAGE_SIZE + 106], &[0; 6]);
//! assert_eq!(a.append_to(&mut v), Err(ENOSPC));
//!
//! // A page handed to C code as a pointer, and borrowed meanwhile.
//! use kernel::types::ForeignOwnable;
//! let page = Page::alloc_page(GFP_KERNEL)?;
//! CpuPage::from_page(&page).write(0, b"stored")?;
//! let foreign = Some(page).into_foreign();
//! // SAFETY: `foreign` comes from `into_foreign` and is taken back below, after the borrow.
//! let borrowed = unsafe { <Option<Page>>::borrow(foreign) }.ok_or(EINVAL)?;
//! borrowed.read(0, &mut buf)?;
//! assert_eq!(&buf, b"stored");
//! // SAFETY: As above; taken back once.
//! let page = unsafe { <Option<Page>>::from_foreign(foreign) }.ok_or(EINVAL)?;
//! let none = None::<Page>.into_foreign();
//! assert!(!none.is_null());
//! // SAFETY: `none` comes from `into_foreign`.
//! assert!(unsafe { <Option<Page>>::from_foreign(none) }.is_none());
//! drop(page);
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::Allocator,
    bindings,
    ffi::c_void,
    page::{Page, PAGE_SIZE},
    prelude::*,
    types::ForeignOwnable,
};
use core::{marker::PhantomData, ptr::NonNull};

/// A page that the CPU can address, borrowed for `'a`.
///
/// # Invariants
///
/// `page` is a valid `struct page` of system memory or of device-coherent memory (not
/// device-private) for the lifetime `'a`.
#[derive(Clone, Copy)]
pub struct CpuPage<'a> {
    page: NonNull<bindings::page>,
    _p: PhantomData<&'a bindings::page>,
}

// SAFETY: A borrowed page may be reached from any thread: every access maps it for the
// moment of a C copy (`kmap_local_page`) on the CPU that makes it.
unsafe impl Send for CpuPage<'_> {}

// SAFETY: As for `Send`: the methods take `&self` and only copy through C.
unsafe impl Sync for CpuPage<'_> {}

impl<'a> CpuPage<'a> {
    /// Borrows a page allocated with [`Page::alloc_page`].
    #[inline]
    pub fn from_page(page: &'a Page) -> Self {
        // INVARIANT: `Page` owns a page of system memory, alive while it is borrowed.
        Self {
            // SAFETY: `Page::as_ptr` is never null.
            page: unsafe { NonNull::new_unchecked(page.as_ptr()) },
            _p: PhantomData,
        }
    }

    /// Creates a `CpuPage` from a raw page.
    ///
    /// # Safety
    ///
    /// `page` is a valid page of system or device-coherent memory for the lifetime `'a`.
    #[inline]
    pub unsafe fn from_raw(page: NonNull<bindings::page>) -> Self {
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
        // SAFETY: The page is valid (type invariant).
        unsafe { bindings::page_to_pfn(self.as_raw()) }
    }

    fn check(offset: usize, len: usize) -> Result {
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(()),
            _ => Err(EINVAL),
        }
    }

    /// Copies `dst.len()` bytes from `offset` in the page into `dst`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the bytes would reach past the page.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result {
        Self::check(offset, dst.len())?;
        // SAFETY: The page is valid and CPU-addressable (type invariant) and the bytes are
        // within it; `dst` is valid for its length. Whoever else maps the page may write it
        // meanwhile: the C `memcpy` copies what it finds, and no Rust reference to the page's
        // memory exists.
        unsafe {
            bindings::memcpy_from_page(dst.as_mut_ptr().cast(), self.as_raw(), offset, dst.len())
        };
        Ok(())
    }

    /// Appends the bytes of the page to `dst`, in its spare capacity: it never allocates, so
    /// it may run under a lock that reclaim takes (an MMU notifier's, say).
    ///
    /// With a vector allocated once for the pages it will hold, the bytes are copied once:
    /// nothing zeroes the memory first.
    ///
    /// # Errors
    ///
    /// `ENOSPC` if `dst` has no room for a page.
    pub fn append_to<A: Allocator>(&self, dst: &mut Vec<u8, A>) -> Result {
        let len = dst.len();
        let spare = dst
            .spare_capacity_mut()
            .get_mut(..PAGE_SIZE)
            .ok_or(ENOSPC)?;
        // SAFETY: As in `read`; `spare` is valid for writes of `PAGE_SIZE` bytes.
        unsafe {
            bindings::memcpy_from_page(spare.as_mut_ptr().cast(), self.as_raw(), 0, PAGE_SIZE)
        };
        // SAFETY: The `PAGE_SIZE` bytes after the first `len` were just written, within the
        // capacity.
        unsafe { dst.set_len(len + PAGE_SIZE) };
        Ok(())
    }

    /// Copies `src` to `offset` in the page.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the bytes would reach past the page.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result {
        Self::check(offset, src.len())?;
        // SAFETY: As in `read`; the page's memory is only ever reached through C copies, so
        // a shared borrow may write it.
        unsafe { bindings::memcpy_to_page(self.as_raw(), offset, src.as_ptr().cast(), src.len()) };
        Ok(())
    }

    /// Copies the whole of `src` into this page (`copy_highpage`).
    #[inline]
    pub fn copy_from(&self, src: &CpuPage<'_>) {
        // SAFETY: Both pages are valid and CPU-addressable (type invariant), `src` may be
        // read and `self` written; the page's memory is only ever reached through C copies.
        unsafe { bindings::copy_highpage(self.as_raw(), src.as_raw()) };
    }

    /// Runs `op` on the `u64` at `offset` (8-byte aligned) in the page, mapped for the moment
    /// (`kmap_local_page`), as a C `atomic64_t`: `op` calls C's atomics on it, which are
    /// atomic against the CPU's own atomic instructions on that memory through any mapping (a
    /// user's included), as a device's atomics over a coherent bus would be.
    fn atomic64<R>(
        &self,
        offset: usize,
        op: impl FnOnce(*mut bindings::atomic64_t) -> R,
    ) -> Result<R> {
        if offset % 8 != 0 {
            return Err(EINVAL);
        }
        Self::check(offset, 8)?;
        // SAFETY: The page is valid and CPU-addressable (type invariant); the mapping is
        // undone below, on this CPU, before anything else is mapped.
        let base = unsafe { bindings::kmap_local_page(self.as_raw()) };
        // SAFETY: `offset + 8` is within the page, which is mapped at `base`.
        let word = unsafe { base.cast::<u8>().add(offset) }.cast::<bindings::atomic64_t>();
        let ret = op(word);
        // SAFETY: `base` was mapped above, on this CPU, and is the last mapping made.
        unsafe { bindings::kunmap_local(base) };
        Ok(ret)
    }

    /// Atomically adds `value` to the `u64` at `offset` (8-byte aligned; native byte order)
    /// and returns the old value; atomic against the CPU's atomics on the page.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an offset that is not 8-byte aligned or past the page.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::alloc::flags::__GFP_ZERO;
    /// use kernel::mm::highmem::CpuPage;
    /// use kernel::page::Page;
    ///
    /// let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
    /// let cpu = CpuPage::from_page(&page);
    /// assert_eq!(cpu.fetch_add_u64(8, 5)?, 0);
    /// assert_eq!(cpu.compare_exchange_u64(8, 5, 7)?, 5);
    /// assert_eq!(cpu.compare_exchange_u64(8, 5, 9)?, 7);
    /// let mut bytes = [0u8; 8];
    /// cpu.read(8, &mut bytes)?;
    /// assert_eq!(u64::from_ne_bytes(bytes), 7);
    /// assert!(cpu.fetch_add_u64(4, 1).is_err());
    /// assert!(cpu.fetch_add_u64(4096, 1).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fetch_add_u64(&self, offset: usize, value: u64) -> Result<u64> {
        // SAFETY: `word` is an aligned `atomic64_t` in the mapped page (`atomic64`); other
        // accesses to it are C atomics too, or C copies and user space, none through a Rust
        // reference. The casts reinterpret the bits.
        let old = self.atomic64(offset, |word| unsafe {
            bindings::atomic64_fetch_add(value as i64, word)
        })?;
        Ok(old as u64)
    }

    /// Atomically replaces the `u64` at `offset` (8-byte aligned) with `new` if it is
    /// `current`; returns the value it had either way.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an offset that is not 8-byte aligned or past the page.
    pub fn compare_exchange_u64(&self, offset: usize, current: u64, new: u64) -> Result<u64> {
        // SAFETY: As in `fetch_add_u64`.
        let old = self.atomic64(offset, |word| unsafe {
            bindings::atomic64_cmpxchg(word, current as i64, new as i64)
        })?;
        Ok(old as u64)
    }

    /// Fills the page with zeroes (`clear_highpage`).
    #[inline]
    pub fn zero(&self) {
        // SAFETY: The page is valid and CPU-addressable (type invariant).
        unsafe { bindings::clear_highpage(self.as_raw()) };
    }
}

/// A page of system memory owned by C code for a while (the storage of a device-private
/// page, say: [`crate::memremap::PagemapOps::PageData`]), borrowed as a [`CpuPage`]. Its
/// foreign form is the `struct page` pointer itself: nothing is allocated.
impl ForeignOwnable for Page {
    type Borrowed<'a> = CpuPage<'a>;

    #[inline]
    fn into_foreign(self) -> *const c_void {
        self.into_raw().as_ptr().cast_const().cast()
    }

    #[inline]
    unsafe fn borrow<'a>(ptr: *const c_void) -> CpuPage<'a> {
        // SAFETY: `ptr` came from `into_foreign` and is not taken back before `'a` (the
        // caller's guarantee): a page of system memory, allocated for `'a`.
        unsafe { CpuPage::from_raw(NonNull::new_unchecked(ptr.cast_mut().cast())) }
    }

    #[inline]
    unsafe fn from_foreign(ptr: *const c_void) -> Self {
        // SAFETY: `ptr` came from `into_foreign`, so from `Page::into_raw`, and is taken back
        // once (the caller's guarantee).
        unsafe { Page::from_raw(NonNull::new_unchecked(ptr.cast_mut().cast())) }
    }
}

/// The foreign form of `Option::<Page>::None`: not null (which C code may take for no data at
/// all) and never the address of a `struct page`.
const NO_PAGE: *const c_void = NonNull::<u64>::dangling().as_ptr().cast_const().cast();

/// A page, or none, as in [`ForeignOwnable for Page`](#impl-ForeignOwnable-for-Page), for
/// per-page data that only some pages need.
impl ForeignOwnable for Option<Page> {
    type Borrowed<'a> = Option<CpuPage<'a>>;

    #[inline]
    fn into_foreign(self) -> *const c_void {
        match self {
            Some(page) => page.into_foreign(),
            None => NO_PAGE,
        }
    }

    #[inline]
    unsafe fn borrow<'a>(ptr: *const c_void) -> Option<CpuPage<'a>> {
        // SAFETY: Not `NO_PAGE`: a page's foreign form, as the caller guarantees for `'a`.
        (ptr != NO_PAGE).then(|| unsafe { Page::borrow(ptr) })
    }

    #[inline]
    unsafe fn from_foreign(ptr: *const c_void) -> Self {
        // SAFETY: Not `NO_PAGE`: a page's foreign form, taken back once (the caller's
        // guarantee).
        (ptr != NO_PAGE).then(|| unsafe { Page::from_foreign(ptr) })
    }
}
