// SPDX-License-Identifier: GPL-2.0

//! XArray: a sparse array of pointer-sized entries indexed by `usize`.
//!
//! An [`XArray<T>`] owns its entries, any [`ForeignOwnable`] (a [`KBox`], an
//! [`Arc`](crate::sync::Arc)).
//!
//! All access goes through a [`Guard`] of the array's own spinlock (`xa_lock`). A store may
//! need memory for the tree's nodes: with a sleeping `GFP_KERNEL` the store drops the lock
//! while it allocates. Where the caller holds a lock of its own that must not sleep (say, one
//! taken in an MMU notifier callback, which reclaim can reach), store with `GFP_NOWAIT` or
//! `GFP_ATOMIC` (with `__GFP_NOWARN` if failing is handled). Every operation is a method of
//! the guard, so none can take the spinlock a second time.
//!
//! C header: [`include/linux/xarray.h`](srctree/include/linux/xarray.h)
//!
//! # Examples
//!
//! ```
//! use kernel::xarray::XArray;
//!
//! let xa = KBox::pin_init(XArray::<KBox<u32>>::new(), GFP_KERNEL)?;
//! // Allocate before taking the lock: it is a spinlock.
//! let one = KBox::new(1, GFP_KERNEL)?;
//! let two = KBox::new(2, GFP_KERNEL)?;
//! let mut guard = xa.lock();
//! assert!(guard.store(10, one, GFP_KERNEL).is_ok());
//! assert!(guard.store(20, two, GFP_KERNEL).is_ok());
//! assert_eq!(guard.get(10).copied(), Some(1));
//! assert!(guard.get(11).is_none());
//! assert_eq!(guard.find(11, usize::MAX).map(|(i, v)| (i, *v)), Some((20, 2)));
//! assert!(guard.find(21, usize::MAX).is_none());
//! assert_eq!(guard.remove(10).map(|v| *v), Some(1));
//! assert!(guard.remove(10).is_none());
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::Flags,
    bindings,
    error::Error,
    init::PinInit,
    prelude::*,
    types::{ForeignOwnable, Opaque},
};
use core::marker::PhantomData;

crate::layout::assert_c_layout!(xarray {
    size: RUST_LAYOUT_xarray_SIZE,
    align: RUST_LAYOUT_xarray_ALIGN,
});

/// The error of a failed [`Guard::store`]: the errno, and the value, handed back.
pub struct StoreError<T> {
    /// `ENOMEM` if memory for the tree could not be had, `EINVAL` for an entry the XArray
    /// cannot hold.
    pub error: Error,
    /// The value that was not stored.
    pub value: T,
}

impl<T> From<StoreError<T>> for Error {
    fn from(e: StoreError<T>) -> Error {
        e.error
    }
}

/// A sparse array of `T`, indexed by `usize`, that owns its entries.
///
/// # Invariants
///
/// `xa` is an initialised XArray whose every present entry came from `T::into_foreign`
/// and is owned by this array.
#[pin_data(PinnedDrop)]
pub struct XArray<T: ForeignOwnable> {
    #[pin]
    xa: Opaque<bindings::xarray>,
    _t: PhantomData<T>,
}

// SAFETY: The entries are `T`, which may be sent between threads, and all access is under the
// XArray's spinlock.
unsafe impl<T: ForeignOwnable + Send> Send for XArray<T> {}

// SAFETY: Shared references only reach the entries under the XArray's spinlock, and `T` may
// be sent between threads (a guard of another thread may take an entry out).
unsafe impl<T: ForeignOwnable + Send> Sync for XArray<T> {}

impl<T: ForeignOwnable> XArray<T> {
    /// Creates an empty XArray.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            xa <- Opaque::ffi_init(|xa: *mut bindings::xarray| {
                // SAFETY: `xa` is valid for writes and pinned.
                unsafe { bindings::xa_init_flags(xa, 0) }
            }),
            _t: PhantomData,
        })
    }

    /// Takes the XArray's spinlock.
    #[inline]
    pub fn lock(&self) -> Guard<'_, T> {
        // SAFETY: The XArray is initialised (type invariant).
        unsafe { bindings::xa_lock(self.xa.get()) };
        // INVARIANT: We just took the lock.
        Guard {
            xa: self,
            _not_send: PhantomData,
        }
    }
}

#[pinned_drop]
impl<T: ForeignOwnable> PinnedDrop for XArray<T> {
    fn drop(self: Pin<&mut Self>) {
        // Take the entries out one by one and drop them without the lock held: dropping a `T`
        // may sleep.
        let mut index = 0;
        loop {
            let mut guard = self.lock();
            let Some((next, _)) = guard.find(index, usize::MAX) else {
                break;
            };
            let entry = guard.remove(next);
            drop(guard);
            drop(entry);
            match next.checked_add(1) {
                Some(i) => index = i,
                None => break,
            }
        }
        // SAFETY: The XArray is initialised and not used after this; the entries are gone,
        // `xa_destroy` frees the tree's nodes.
        unsafe { bindings::xa_destroy(self.xa.get()) };
    }
}

/// The spinlock of an [`XArray`], held; released on drop. Gives access to the entries.
///
/// Only one guard of an XArray exists at a time: taking the lock again while holding it, on
/// the same thread, deadlocks (a spinlock).
///
/// # Invariants
///
/// The spinlock of `xa` is held while this guard exists, apart from the time a store with a
/// sleeping allocation drops it, during which the guard is mutably borrowed.
#[must_use = "the XArray unlocks immediately when the guard is unused"]
pub struct Guard<'a, T: ForeignOwnable> {
    xa: &'a XArray<T>,
    // A spinlock is released by the task that took it.
    _not_send: PhantomData<*mut ()>,
}

impl<'a, T: ForeignOwnable> Guard<'a, T> {
    fn raw(&self) -> *mut bindings::xarray {
        self.xa.xa.get()
    }

    /// Returns the entry at `index`, if any.
    pub fn get(&self, index: usize) -> Option<T::Borrowed<'_>> {
        // SAFETY: The XArray is initialised; `xa_load` may be called with the lock held.
        let ptr = unsafe { bindings::xa_load(self.raw(), index) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: Present entries came from `T::into_foreign` (type invariant of `XArray`), and
        // the entry cannot be removed while `self` is borrowed: removing needs `&mut self`.
        Some(unsafe { T::borrow(ptr) })
    }

    /// Returns the first entry in `[start, max]` and its index, if any.
    ///
    /// Walks only the entries that exist, however large the range.
    pub fn find(&self, start: usize, max: usize) -> Option<(usize, T::Borrowed<'_>)> {
        let mut index = start;
        // SAFETY: The XArray is initialised; `index` is a valid in/out pointer. `xa_find` may
        // be called with the lock held.
        let ptr = unsafe { bindings::xa_find(self.raw(), &mut index, max, bindings::XA_PRESENT) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: As in `get`: a present entry, which cannot be removed while `self` is
        // borrowed.
        Some((index, unsafe { T::borrow(ptr) }))
    }

    /// Stores `value` at `index` and returns the entry it replaces.
    ///
    /// `gfp` is for the tree's nodes: with a sleeping allocation the lock is dropped while
    /// allocating.
    ///
    /// # Errors
    ///
    /// [`StoreError`], with the value handed back: `ENOMEM` if a node cannot be allocated with
    /// `gfp`; `EINVAL` if the value's pointer is null or has the bits of one of the XArray's
    /// internal entries.
    pub fn store(
        &mut self,
        index: usize,
        value: T,
        gfp: Flags,
    ) -> core::result::Result<Option<T>, StoreError<T>> {
        let new = value.into_foreign();
        // Null is no entry, and the XArray keeps internal entries of its own.
        // SAFETY: `xa_is_internal` tests the bits of a pointer.
        if new.is_null() || unsafe { bindings::xa_is_internal(new) } {
            return Err(StoreError {
                error: EINVAL,
                // SAFETY: `new` just came from `into_foreign` and was not stored.
                value: unsafe { T::from_foreign(new) },
            });
        }
        // SAFETY: The XArray is initialised and its lock held (type invariant); `new` is a
        // normal or value entry.
        let old = unsafe { bindings::__xa_store(self.raw(), index, new.cast_mut(), gfp.as_raw()) };
        // SAFETY: `xa_err` tests the bits of an entry.
        let err = unsafe { bindings::xa_err(old) };
        if err != 0 {
            return Err(StoreError {
                error: Error::from_errno(err),
                // SAFETY: `new` came from `into_foreign` and was not stored.
                value: unsafe { T::from_foreign(new) },
            });
        }
        if old.is_null() {
            return Ok(None);
        }
        // SAFETY: A present entry came from `T::into_foreign` (type invariant of `XArray`), and
        // it is no longer in the array: we own it again.
        Ok(Some(unsafe { T::from_foreign(old) }))
    }

    /// Removes the entry at `index` and returns it, if any.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        // SAFETY: The XArray is initialised and its lock held (type invariant).
        let old = unsafe { bindings::__xa_erase(self.raw(), index) };
        if old.is_null() {
            return None;
        }
        // SAFETY: A present entry came from `T::into_foreign` (type invariant of `XArray`), and
        // it is no longer in the array: we own it again.
        Some(unsafe { T::from_foreign(old) })
    }
}

impl<T: ForeignOwnable> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold the lock.
        unsafe { bindings::xa_unlock(self.raw()) };
    }
}
