// SPDX-License-Identifier: GPL-2.0

//! The bounce buffer of READ and WRITE: a kernel copy of the user's buffer (`dmirror_bounce`).

use crate::dmirror::{CheckedRange, Dmirror, BOUNCE_CACHE_PAGES, MAX_BOUNCE_PAGES};
use kernel::alloc::VVec;
use kernel::mm::highmem::CpuPage;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Mutex;
use kernel::uaccess::UserSlice;

/// A kernel copy of the user's buffer for the pages of a range.
///
/// Up to [`BOUNCE_CACHE_PAGES`] it is the open file's cached buffer (taken, then given back
/// when dropped), else a new one. A reused buffer holds earlier bytes past what this ioctl
/// wrote: they never reach the user, since READ copies out only when every page was copied
/// in, and WRITE fills the buffer from the user first. A new buffer is allocated empty, as
/// C's `vmalloc` is, and filled as it goes: nothing zeroes it first.
pub(crate) struct Bounce<'a> {
    buf: VVec<u8>,
    /// The bytes of the range: `buf[..len]` once filled.
    len: usize,
    /// Where the buffer goes back to, if it is the cached one.
    cache: Option<&'a Mutex<Option<VVec<u8>>>>,
    /// Pages copied so far, from the start of the range.
    pub(crate) cpages: usize,
}

impl<'a> Bounce<'a> {
    pub(crate) fn new(dmirror: &'a Dmirror, range: &CheckedRange) -> Result<Self> {
        if range.npages > MAX_BOUNCE_PAGES {
            return Err(EINVAL);
        }
        let len = range.npages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        let cached = if range.npages <= BOUNCE_CACHE_PAGES {
            dmirror.bounce_cache.lock().take()
        } else {
            None
        };
        let (buf, cache) = match cached {
            Some(buf) => (buf, Some(&dmirror.bounce_cache)),
            None if range.npages <= BOUNCE_CACHE_PAGES => (
                VVec::from_elem(0u8, BOUNCE_CACHE_SIZE, GFP_KERNEL)?,
                Some(&dmirror.bounce_cache),
            ),
            None => (VVec::with_capacity(len, GFP_KERNEL)?, None),
        };
        Ok(Self {
            buf,
            len,
            cache,
            cpages: 0,
        })
    }

    /// Fills the buffer with the user's bytes at `ptr`, the range's length of them.
    pub(crate) fn read_user(&mut self, ptr: usize) -> Result {
        let user = UserSlice::new(ptr, self.len);
        if self.cache.is_some() {
            let bytes = self.buf.get_mut(..self.len).ok_or(EINVAL)?;
            return user.reader().read_slice(bytes);
        }
        // A new buffer: its capacity is the range, so this does not allocate.
        user.read_all(&mut self.buf, GFP_KERNEL)
    }

    /// Copies the whole buffer, every page copied in, to the user at `ptr`.
    pub(crate) fn write_user(&self, ptr: usize) -> Result {
        let bytes = self.buf.get(..self.len).ok_or(EINVAL)?;
        UserSlice::new(ptr, self.len).writer().write_slice(bytes)
    }

    /// Copies `page` into the buffer as page `cpages`, and counts it.
    pub(crate) fn copy_in(&mut self, page: &CpuPage<'_>) -> Result {
        if self.cache.is_some() {
            // The cached buffer, whole.
            let start = self.cpages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
            let end = start.checked_add(PAGE_SIZE).ok_or(EINVAL)?;
            page.read(0, self.buf.get_mut(start..end).ok_or(EINVAL)?)?;
        } else {
            // A new buffer grows a page at a time, in order; it has room for the range, so
            // this does not allocate (not under the mirror lock, which reclaim takes).
            page.append_to(&mut self.buf)?;
        }
        self.advance();
        Ok(())
    }

    /// The bytes of page `cpages`, to copy out.
    pub(crate) fn next_page(&self) -> Result<&[u8]> {
        let start = self.cpages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        let end = start.checked_add(PAGE_SIZE).ok_or(EINVAL)?;
        self.buf.get(start..end).ok_or(EINVAL)
    }

    /// Records that one more page was copied.
    pub(crate) fn advance(&mut self) {
        // Bounded by `npages`, itself bounded by `MAX_BOUNCE_PAGES`.
        self.cpages = self.cpages.saturating_add(1);
    }
}

impl Drop for Bounce<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            let mut cached = cache.lock();
            if cached.is_none() {
                *cached = Some(core::mem::replace(&mut self.buf, VVec::new()));
            }
        }
    }
}

/// The bytes of the cached bounce buffer.
const BOUNCE_CACHE_SIZE: usize = BOUNCE_CACHE_PAGES * PAGE_SIZE;
