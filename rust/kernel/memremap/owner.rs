// SPDX-License-Identifier: GPL-2.0

//! The owner of device memory (`dev_pagemap.owner`).

use crate::{ffi::c_void, prelude::*, types::Opaque};

/// The owner of device memory: its address tells HMM which device-private pages are "ours".
///
/// One owner per device serves as the `owner` of its pagemap, as the `dev_private_owner` of
/// the ranges it reads ([`crate::hmm::Range`]), as the owner of its migrations and of its
/// device-exclusive entries, so that they cannot disagree.
///
/// # Invariants
///
/// The owner is pinned and not zero-sized: its address is unique while it lives.
#[pin_data]
pub struct Owner {
    #[pin]
    token: Opaque<u8>,
}

// SAFETY: An owner is only ever used for its address.
unsafe impl Send for Owner {}

// SAFETY: An owner is only ever used for its address.
unsafe impl Sync for Owner {}

impl Owner {
    /// Creates an owner; pin it (in a `KBox` or `Arc`, or a pinned field) to use it.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            token <- Opaque::ffi_init(|_| {}),
        })
    }

    /// Returns the address that identifies this owner to the C side.
    #[inline]
    pub fn as_ptr(&self) -> *mut c_void {
        self.token.get().cast()
    }

    /// Returns whether `ptr`, an owner pointer from the C side, is this owner.
    #[inline]
    pub fn is(&self, ptr: *const c_void) -> bool {
        core::ptr::eq(ptr, self.as_ptr())
    }
}
