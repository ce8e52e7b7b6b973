// SPDX-License-Identifier: GPL-2.0

//! Ranges of whole pages, and loops over large ones.
//!
//! A driver's operation on a range sized by its user (an `ioctl` over `2^48` pages, say) works
//! in pieces and lets the rest of the system run between them: [`for_each_piece`] reschedules
//! between pieces and stops with `EINTR` once the task is being killed.

use crate::{
    page::PAGE_SIZE,
    prelude::*,
    task::{cond_resched, fatal_signal_pending},
};

/// A range of addresses `[start, end)`, page-aligned and not empty.
///
/// # Invariants
///
/// `start` and `end` are multiples of `PAGE_SIZE`, and `start < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    start: usize,
    end: usize,
}

impl PageRange {
    /// The range `[start, end)`.
    ///
    /// # Errors
    ///
    /// `EINVAL` unless both ends are page-aligned and `start < end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::mm::range::PageRange;
    /// use kernel::page::PAGE_SIZE;
    ///
    /// let range = PageRange::new(PAGE_SIZE, 3 * PAGE_SIZE)?;
    /// assert_eq!((range.start(), range.end(), range.npages()), (PAGE_SIZE, 3 * PAGE_SIZE, 2));
    /// assert_eq!(PageRange::new(PAGE_SIZE, PAGE_SIZE), Err(EINVAL));
    /// assert_eq!(PageRange::new(1, PAGE_SIZE), Err(EINVAL));
    /// assert_eq!(PageRange::new(2 * PAGE_SIZE, PAGE_SIZE), Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn new(start: usize, end: usize) -> Result<Self> {
        if start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 || start >= end {
            return Err(EINVAL);
        }
        // INVARIANT: Checked just above.
        Ok(Self { start, end })
    }

    /// The first address.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The address just past the end.
    #[inline]
    pub fn end(&self) -> usize {
        self.end
    }

    /// The number of pages, at least one.
    #[inline]
    pub fn npages(&self) -> usize {
        (self.end - self.start) / PAGE_SIZE
    }

    /// Whether `addr` is in the range.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The block of `2^order` pages, aligned to its size, that holds `addr`, cut to this range
    /// (a VMA's, say): what a fault-around moves or maps. The result holds the page of
    /// `addr`; an order past the address space's is cut to it.
    ///
    /// So a driver that maps (or migrates) as large as the CPU maps never reaches past the
    /// range it looked at: a CPU huge page may start before a VMA or end after it (the lesson
    /// of `drm_gpusvm_hmm_pfn_to_order`).
    ///
    /// # Errors
    ///
    /// `EINVAL` if `addr` is not in the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::mm::range::PageRange;
    /// use kernel::page::PAGE_SIZE;
    ///
    /// let vma = PageRange::new(0x20_1000, 0x60_0000)?;
    /// // The 2 MiB block of 0x41_2345: whole.
    /// let block = vma.block_around(0x41_2345, 9)?;
    /// assert_eq!((block.start(), block.end()), (0x40_0000, 0x60_0000));
    /// // The block of 0x20_3000 starts before the VMA: cut to it.
    /// let block = vma.block_around(0x20_3000, 9)?;
    /// assert_eq!((block.start(), block.end()), (0x20_1000, 0x40_0000));
    /// // Order 0: the page alone.
    /// let page = vma.block_around(0x41_2345, 0)?;
    /// assert_eq!((page.start(), page.npages()), (0x41_2000, 1));
    /// assert_eq!(vma.block_around(0x60_0000, 9), Err(EINVAL));
    /// assert!(vma.block_around(0x41_2345, 200).is_ok());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn block_around(&self, addr: usize, order: u32) -> Result<PageRange> {
        if !self.contains(addr) {
            return Err(EINVAL);
        }
        let size = PAGE_SIZE.checked_shl(order).unwrap_or(0);
        let mask = if size == 0 { usize::MAX } else { size - 1 };
        let start = (addr & !mask).max(self.start);
        let end = (addr | mask).saturating_add(1).min(self.end);
        // INVARIANT: Both ends are page-aligned (the mask keeps at least the page's bits, and
        // so do the range's ends), and `start <= addr & !(PAGE_SIZE - 1) < end`.
        Ok(PageRange { start, end })
    }
}

/// Calls `f` on the pieces of `[start, end)` that `next` cuts, in order: `next(pos)` is the
/// end of the piece that begins at `pos` (above `pos`, at most `end`, or an error that stops
/// the walk).
///
/// Between pieces it lets others run (`cond_resched`), and stops with `EINTR` if the task is
/// being killed: a walk over a range sized by user space cannot hold a CPU or an unkillable
/// task for long. Not before the first piece: a walk of one piece is one call.
///
/// # Errors
///
/// `EINTR` if the task is being killed between pieces; `EINVAL` if `next` does not move
/// forward or goes past `end`; the first error of `next` or `f`.
///
/// # Examples
///
/// ```
/// use kernel::mm::range::for_each_piece;
///
/// let mut pieces = KVec::new();
/// for_each_piece(0, 10, |pos| Ok((pos + 4).min(10)), |a, b| {
///     pieces.push((a, b), GFP_KERNEL)?;
///     Ok(())
/// })?;
/// assert_eq!(&pieces[..], &[(0, 4), (4, 8), (8, 10)]);
/// // A `next` that does not move forward is a bug of the caller: `EINVAL`, not a hang.
/// assert_eq!(for_each_piece(0, 10, Ok, |_, _| Ok(())), Err(EINVAL));
/// # Ok::<(), Error>(())
/// ```
///
/// # Context
///
/// Process context; may sleep (between pieces), so no spinlock may be held around it.
pub fn for_each_piece(
    start: usize,
    end: usize,
    mut next: impl FnMut(usize) -> Result<usize>,
    mut f: impl FnMut(usize, usize) -> Result,
) -> Result {
    let mut pos = start;
    while pos < end {
        if pos != start {
            cond_resched();
            if fatal_signal_pending() {
                return Err(EINTR);
            }
        }
        let piece_end = next(pos)?;
        if piece_end <= pos || piece_end > end {
            return Err(EINVAL);
        }
        f(pos, piece_end)?;
        pos = piece_end;
    }
    Ok(())
}
