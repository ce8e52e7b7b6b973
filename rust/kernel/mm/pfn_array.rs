// SPDX-License-Identifier: GPL-2.0

//! Arrays of page frame entries that the HMM and migration calls fill, one word per page.
//!
//! C drivers keep such arrays on the stack for their usual batch of 64 pages; a batch that
//! size is kept inline here too, so that the common case allocates nothing.

use crate::{alloc::KVVec, prelude::*};

/// The entries a [`PfnArray`] holds without allocating (512 bytes).
pub(crate) const PFN_ARRAY_INLINE: usize = 64;

/// `len` words, zeroed: inline up to [`PFN_ARRAY_INLINE`], in a `KVVec` beyond.
// Keeping the small case inline, on the caller's stack, is the point.
#[allow(clippy::large_enum_variant)]
pub(crate) enum PfnArray {
    /// The first `.1` entries of the array are used.
    Inline([usize; PFN_ARRAY_INLINE], usize),
    /// Every entry is used.
    Heap(KVVec<usize>),
}

impl PfnArray {
    /// A zeroed array of `len` entries; `ENOMEM` if a large one cannot be allocated.
    pub(crate) fn new(len: usize) -> Result<Self> {
        if len <= PFN_ARRAY_INLINE {
            return Ok(Self::Inline([0; PFN_ARRAY_INLINE], len));
        }
        Ok(Self::Heap(KVVec::from_elem(0, len, GFP_KERNEL)?))
    }

    /// The entries.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[usize] {
        match self {
            // `len <= PFN_ARRAY_INLINE` by construction, so the slice is the prefix.
            Self::Inline(a, len) => a.get(..*len).unwrap_or(&[]),
            Self::Heap(v) => v,
        }
    }

    /// The entries, for writing.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [usize] {
        match self {
            Self::Inline(a, len) => a.get_mut(..*len).unwrap_or(&mut []),
            Self::Heap(v) => v,
        }
    }
}
