// SPDX-License-Identifier: GPL-2.0

//! debugfs: files for developers under `/sys/kernel/debug`.
//!
//! A [`Dir`] is a top-level directory, removed with everything in it when dropped. The
//! directories made inside it ([`Dir::subdir`]) and the files go with it: they borrow it, and
//! remove nothing themselves. A file shows a value that outlives it: [`Dir::counter`] exposes a
//! `'static` [`AtomicU64`] read-only (`debugfs_create_u64`), such as a statistic of a driver.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h)
//!
//! # Examples
//!
//! ```
//! use core::sync::atomic::{AtomicU64, Ordering};
//! use kernel::debugfs::Dir;
//!
//! static EVENTS: AtomicU64 = AtomicU64::new(0);
//!
//! let dir = Dir::new(kernel::c_str!("rust_debugfs_doctest"))?;
//! dir.subdir(kernel::c_str!("device0"))?
//!     .counter(kernel::c_str!("events"), &EVENTS);
//! EVENTS.fetch_add(1, Ordering::Relaxed);
//! // Removes `device0/events` too.
//! drop(dir);
//! # Ok::<(), Error>(())
//! ```

use crate::{bindings, error::from_err_ptr, prelude::*, str::CStr};
use core::{marker::PhantomData, ptr::NonNull, sync::atomic::AtomicU64};

/// Creates the directory `name` in `parent` (null: at the top).
///
/// # Safety
///
/// `parent` is null or a live debugfs directory.
unsafe fn create_dir(
    name: &CStr,
    parent: *mut bindings::dentry,
) -> Result<NonNull<bindings::dentry>> {
    // SAFETY: `name` is a NUL-terminated string; the caller guarantees `parent`.
    let dentry = from_err_ptr(unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent) })?;
    NonNull::new(dentry).ok_or(ENOMEM)
}

/// Creates a read-only file `name` in `dir` that shows `value`.
///
/// # Safety
///
/// `dir` is a live debugfs directory.
unsafe fn create_counter(dir: NonNull<bindings::dentry>, name: &CStr, value: &'static AtomicU64) {
    // SAFETY: The caller guarantees `dir`; `name` is NUL-terminated; `value` outlives the file.
    // The C side only reads the aligned 64-bit word.
    unsafe {
        bindings::debugfs_create_u64(name.as_char_ptr(), 0o444, dir.as_ptr(), value.as_ptr())
    };
}

/// A top-level debugfs directory; removed, with everything in it, when dropped.
///
/// # Invariants
///
/// `dentry` was created by `debugfs_create_dir` and is removed only in `drop`.
pub struct Dir {
    dentry: NonNull<bindings::dentry>,
}

// SAFETY: debugfs directories may be used and removed from any thread.
unsafe impl Send for Dir {}

// SAFETY: The only operations on a shared `Dir` create entries in it, which debugfs
// serialises.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates the directory `name` at the top of debugfs.
    ///
    /// # Errors
    ///
    /// `EEXIST` if the directory exists, `ENODEV` if debugfs is not available, `ENOMEM`.
    pub fn new(name: &CStr) -> Result<Self> {
        // INVARIANT: Created here, removed in `drop`.
        Ok(Self {
            // SAFETY: A null parent is the top of debugfs.
            dentry: unsafe { create_dir(name, core::ptr::null_mut()) }?,
        })
    }

    /// Creates the directory `name` in this one; it is removed with it.
    ///
    /// # Errors
    ///
    /// `EEXIST` if the directory exists, `ENOMEM`.
    pub fn subdir(&self, name: &CStr) -> Result<SubDir<'_>> {
        Ok(SubDir {
            // SAFETY: The directory is live (type invariant).
            dentry: unsafe { create_dir(name, self.dentry.as_ptr()) }?,
            _p: PhantomData,
        })
    }

    /// Creates a read-only file `name` that shows `value` in decimal. Like C's callers of
    /// `debugfs_create_u64`, it reports no error: a file that could not be created is missing.
    pub fn counter(&self, name: &CStr, value: &'static AtomicU64) {
        // SAFETY: The directory is live (type invariant).
        unsafe { create_counter(self.dentry, name, value) };
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: The directory is live and removed only here (type invariant); everything in
        // it goes with it (`debugfs_remove` is recursive), and nothing borrows it any more.
        unsafe { bindings::debugfs_remove(self.dentry.as_ptr()) };
    }
}

/// A directory inside a [`Dir`], removed with it.
///
/// # Invariants
///
/// `dentry` is a directory inside the borrowed [`Dir`], live while it is.
pub struct SubDir<'a> {
    dentry: NonNull<bindings::dentry>,
    _p: PhantomData<&'a Dir>,
}

impl SubDir<'_> {
    /// Creates a read-only file `name` that shows `value` in decimal. Like C's callers of
    /// `debugfs_create_u64`, it reports no error: a file that could not be created is missing.
    pub fn counter(&self, name: &CStr, value: &'static AtomicU64) {
        // SAFETY: The directory is live while its parent is (type invariant).
        unsafe { create_counter(self.dentry, name, value) };
    }
}
