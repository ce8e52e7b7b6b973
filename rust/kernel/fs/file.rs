// SPDX-License-Identifier: GPL-2.0

//! Files: the kernel's `struct file`.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use crate::{bindings, types::Opaque};

crate::layout::assert_c_layout!(file {
    f_flags: RUST_LAYOUT_file_f_flags,
    private_data: RUST_LAYOUT_file_private_data,
});

/// An open file, as seen by the file operations of a device.
///
/// The file operations only ever get a `&File` for the duration of one callback, during which
/// the caller holds a reference to the file; this type cannot take or drop references.
///
/// # Invariants
///
/// The inner `struct file` is valid for the lifetime of any `&File`.
#[repr(transparent)]
pub struct File {
    inner: Opaque<bindings::file>,
}

// SAFETY: A `struct file` may be used from any thread: its mutable fields are protected by the
// file's own locks, and `File` exposes no unsynchronised access.
unsafe impl Sync for File {}

impl File {
    /// Creates a reference to a [`File`] from a valid pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a `struct file` that stays valid for the lifetime `'a`.
    #[inline]
    pub unsafe fn from_raw_file<'a>(ptr: *const bindings::file) -> &'a File {
        // SAFETY: `File` is `repr(transparent)` over the C struct, and the caller guarantees
        // that the pointer is valid for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw C pointer to the file.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::file {
        self.inner.get()
    }

    /// Returns the flags the file was opened with (`O_RDWR`, `O_NONBLOCK`, ...).
    ///
    /// Flags that `fcntl(F_SETFL)` changes may change between two reads.
    #[inline]
    pub fn flags(&self) -> u32 {
        // SAFETY: The file is valid (type invariant); `f_flags` is read once, racing only
        // with `fcntl`, which writes a whole aligned word.
        unsafe { core::ptr::addr_of!((*self.as_ptr()).f_flags).read_volatile() }
    }
}
