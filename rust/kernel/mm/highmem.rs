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
//! # Ok::<(), Error>(())
//! ```

use crate::{bindings, page::Page, page::PAGE_SIZE, prelude::*};
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

    /// Copies `dst.len()` bytes from `offset` in the page into `dst`; `EINVAL` past the page.
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

    /// Copies `src` to `offset` in the page; `EINVAL` past the page.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result {
        Self::check(offset, src.len())?;
        // SAFETY: As in `read`; the page's memory is only ever reached through C copies, so
        // a shared borrow may write it.
        unsafe { bindings::memcpy_to_page(self.as_raw(), offset, src.as_ptr().cast(), src.len()) };
        Ok(())
    }

    /// Copies the whole of `src` into this page (`copy_highpage`).
    pub fn copy_from(&self, src: &CpuPage<'_>) {
        // SAFETY: Both pages are valid and CPU-addressable (type invariant).
        unsafe { bindings::copy_highpage(self.as_raw(), src.as_raw()) };
    }

    /// Fills the page with zeroes (`clear_highpage`).
    pub fn zero(&self) {
        // SAFETY: The page is valid and CPU-addressable (type invariant).
        unsafe { bindings::clear_highpage(self.as_raw()) };
    }
}
