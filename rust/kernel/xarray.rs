// SPDX-License-Identifier: GPL-2.0

//! XArray: a sparse array of pointer-sized entries indexed by `usize`.
//!
//! An [`XArray<T>`] owns its entries, any [`ForeignOwnable`] (a [`KBox`], an
//! [`Arc`](crate::sync::Arc)) or a [`Value`], an integer kept in the entry itself: a table of
//! numbers, such as PFNs with flag bits, allocates nothing per entry.
//!
//! All access goes through a [`Guard`] of the array's own spinlock (`xa_lock`). A store may
//! need memory for the tree's nodes: with a sleeping `GFP_KERNEL` the store drops the lock
//! while it allocates. Where the caller holds a lock of its own that must not sleep (say, one
//! taken in an MMU notifier callback, which reclaim can reach), store with `GFP_NOWAIT` or
//! `GFP_ATOMIC` (with `__GFP_NOWARN` if failing is handled), or [`Guard::reserve`] the index
//! beforehand, outside that lock: a store into a reserved index needs no memory. Every
//! operation is a method of the guard, so none can take the spinlock a second time.
//!
//! C header: [`include/linux/xarray.h`](srctree/include/linux/xarray.h)
//!
//! # Examples
//!
//! ```
//! use kernel::alloc::flags::GFP_NOWAIT;
//! use kernel::xarray::{Value, XArray};
//!
//! let xa = KBox::pin_init(XArray::<KBox<u32>>::new(), GFP_KERNEL)?;
//! // Allocate before taking the lock: it is a spinlock.
//! let one = KBox::new(1, GFP_KERNEL)?;
//! let two = KBox::new(2, GFP_KERNEL)?;
//! let mut guard = xa.lock();
//! assert!(guard.store(10, one, GFP_KERNEL).is_ok());
//! assert_eq!(guard.get(10).copied(), Some(1));
//! assert!(guard.get(11).is_none());
//! drop(guard);
//!
//! // Reserve outside any other lock, then store without allocating.
//! xa.lock().reserve(20, GFP_KERNEL)?;
//! xa.lock().reserve(21, GFP_KERNEL)?;
//! let mut guard = xa.lock();
//! assert!(guard.get(20).is_none());
//! assert!(guard.store(20, two, GFP_NOWAIT).is_ok());
//! guard.release(21);
//! assert_eq!(guard.find(11, usize::MAX).map(|(i, v)| (i, *v)), Some((20, 2)));
//! assert_eq!(guard.remove(10).map(|v| *v), Some(1));
//! drop(guard);
//!
//! // Integers stored in the entries themselves.
//! let table = KBox::pin_init(XArray::<Value>::new(), GFP_KERNEL)?;
//! let v = Value::new(0x1234 << 2 | 1).ok_or(EINVAL)?;
//! let old = table.lock().store(7, v, GFP_KERNEL).map_err(|e| e.error)?;
//! assert!(old.is_none());
//! assert_eq!(table.lock().get(7), Some(v));
//! // Integers can also be read without the spinlock.
//! assert_eq!(table.load(7), Some(v));
//! assert_eq!(table.load(8), None);
//! assert!(Value::new(usize::MAX).is_none());
//! // And removed with one call (no guard may be held: it takes the table mutably).
//! let mut table = table;
//! assert_eq!(table.as_mut().erase(7), Some(v));
//! assert_eq!(table.as_mut().erase(7), None);
//! assert_eq!(table.load(7), None);
//! # Ok::<(), Error>(())
//! ```

use crate::{
    alloc::Flags,
    bindings,
    error::{to_result, Error, Result},
    ffi::c_void,
    init::PinInit,
    prelude::*,
    types::{ForeignOwnable, Opaque},
};
use core::marker::PhantomData;

crate::layout::assert_c_layout!(xarray {
    size: RUST_LAYOUT_xarray_SIZE,
    align: RUST_LAYOUT_xarray_ALIGN,
});

/// The mark `xa_find` takes to find every present entry (`XA_PRESENT`, a cast bindgen skips).
const XA_PRESENT: bindings::xa_mark_t = 8;

/// The entry of a reserved index (`XA_ZERO_ENTRY`, `xa_mk_internal(257)`): the XArray's own,
/// never handed to or taken from `T`.
const XA_ZERO_ENTRY: *mut c_void = ((257 << 2) | 2) as *mut c_void;

/// The errno an XArray function returned as its entry `bits`, or zero if the entry is not an
/// error (`xa_err`): an internal entry (low bits `10`) at or above `xa_mk_internal(-MAX_ERRNO)`.
///
/// Inline: it is called per entry stored.
#[inline]
const fn xa_err(bits: usize) -> crate::ffi::c_int {
    let first_error = ((-(bindings::MAX_ERRNO as isize)) as usize) << 2 | 2;
    if bits & 3 == 2 && bits >= first_error {
        // `(long)entry >> 2`, an arithmetic shift: the errno, negative.
        ((bits as isize) >> 2) as crate::ffi::c_int
    } else {
        0
    }
}

// `xa_err` of an error, a pointer, a value and the reserved entry, checked at build time.
const _: () = {
    let enomem = bindings::ENOMEM as isize;
    assert!(xa_err(((-enomem) as usize) << 2 | 2) == -(enomem as crate::ffi::c_int));
    assert!(xa_err(((-(bindings::MAX_ERRNO as isize)) as usize) << 2 | 2) == -4095);
    assert!(xa_err(0xffff_8880_0000_1000) == 0);
    assert!(xa_err(12 << 1 | 1) == 0);
    assert!(xa_err((257 << 2) | 2) == 0);
};

/// An integer kept in an XArray entry itself (`xa_mk_value`).
///
/// # Invariants
///
/// The value is at most [`Value::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(usize);

impl Value {
    /// The largest value an entry can hold (`LONG_MAX`).
    pub const MAX: usize = isize::MAX as usize;

    /// Returns `v` as an entry value, or `None` if it is larger than [`Value::MAX`].
    #[inline]
    pub const fn new(v: usize) -> Option<Self> {
        if v > Self::MAX {
            None
        } else {
            // INVARIANT: Just checked.
            Some(Self(v))
        }
    }

    /// Returns the integer.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }
}

impl ForeignOwnable for Value {
    type Borrowed<'a> = Value;

    #[inline]
    fn into_foreign(self) -> *const c_void {
        // `xa_mk_value`: by the invariant the shift loses no bit.
        ((self.0 << 1) | 1) as *const c_void
    }

    #[inline]
    unsafe fn from_foreign(ptr: *const c_void) -> Self {
        // INVARIANT: `into_foreign` shifted a value of at most `MAX`; `xa_to_value`.
        Self(ptr as usize >> 1)
    }

    #[inline]
    unsafe fn borrow<'a>(ptr: *const c_void) -> Self::Borrowed<'a> {
        // SAFETY: The caller passes a pointer from `into_foreign`.
        unsafe { Self::from_foreign(ptr) }
    }
}

impl XArray<Value> {
    /// Returns the integer at `index`, if any, without taking the spinlock.
    ///
    /// `xa_load` walks the tree under RCU; an integer is copied out, so nothing it returns
    /// can be freed under the caller. Without a lock against writers the result may be stale
    /// as soon as it is returned: callers that need it current hold their own lock around
    /// every store and removal.
    #[inline]
    pub fn load(&self, index: usize) -> Option<Value> {
        // SAFETY: The XArray is initialised (type invariant); `xa_load` takes the RCU read lock
        // itself and may be called without the spinlock.
        let ptr = unsafe { bindings::xa_load(self.xa.get(), index) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: Present entries came from `Value::into_foreign` (type invariant).
        Some(unsafe { Value::from_foreign(ptr) })
    }

    /// Removes the integer at `index`, if any (`xa_erase`: the spinlock is taken for this
    /// removal alone, one call where [`XArray::lock`] and [`Guard::remove`] make three).
    ///
    /// Takes the XArray mutably, so that no [`Guard`] of it is held: the spinlock would be
    /// taken twice.
    #[inline]
    pub fn erase(self: Pin<&mut Self>, index: usize) -> Option<Value> {
        // SAFETY: The XArray is initialised (type invariant); `xa_erase` takes the spinlock,
        // which nobody holds through `self` (borrowed mutably).
        let ptr = unsafe { bindings::xa_erase(self.xa.get(), index) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: Present entries came from `Value::into_foreign` (type invariant).
        Some(unsafe { Value::from_foreign(ptr) })
    }
}

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

    /// Takes the XArray's spinlock if that does not need to wait.
    #[inline]
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        // SAFETY: The XArray is initialised (type invariant).
        if unsafe { bindings::xa_trylock(self.xa.get()) } == 0 {
            return None;
        }
        // INVARIANT: We just took the lock.
        Some(Guard {
            xa: self,
            _not_send: PhantomData,
        })
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
        // `xa_destroy` frees the tree's nodes (and reservations).
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
        let ptr = unsafe { bindings::xa_find(self.raw(), &mut index, max, XA_PRESENT) };
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
    /// allocating. On failure the value is handed back.
    pub fn store(
        &mut self,
        index: usize,
        value: T,
        gfp: Flags,
    ) -> core::result::Result<Option<T>, StoreError<T>> {
        let new = value.into_foreign();
        // Null is no entry, and pointers ending in binary 10 are the XArray's internal entries.
        if new.is_null() || (new as usize) & 3 == 2 {
            return Err(StoreError {
                error: EINVAL,
                // SAFETY: `new` just came from `into_foreign` and was not stored.
                value: unsafe { T::from_foreign(new) },
            });
        }
        // SAFETY: The XArray is initialised and its lock held (type invariant); `new` is a
        // normal or value entry.
        let old = unsafe { bindings::__xa_store(self.raw(), index, new.cast_mut(), gfp.as_raw()) };
        let err = xa_err(old as usize);
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

    /// Reserves `index`, so that a later store there needs no memory.
    ///
    /// A reserved index reads as empty; a reservation that is not used is dropped with
    /// [`Guard::release`]. Does nothing to an index that holds an entry. `gfp` is as for
    /// [`Guard::store`]: reserve with a sleeping allocation before taking a lock that forbids
    /// one, then store with `GFP_NOWAIT` under it.
    pub fn reserve(&mut self, index: usize, gfp: Flags) -> Result {
        // SAFETY: The XArray is initialised and its lock held (type invariant). The zero entry
        // is what `xa_reserve` stores; it is not an advanced entry.
        let old = unsafe {
            bindings::__xa_cmpxchg(
                self.raw(),
                index,
                core::ptr::null_mut(),
                XA_ZERO_ENTRY,
                gfp.as_raw(),
            )
        };
        to_result(xa_err(old as usize))
    }

    /// Drops the reservation of `index`, if the index is still reserved and empty
    /// (`xa_release`).
    pub fn release(&mut self, index: usize) {
        // SAFETY: The XArray is initialised and its lock held (type invariant). Replacing the
        // zero entry by nothing needs no memory and touches no entry of `T`.
        unsafe {
            bindings::__xa_cmpxchg(self.raw(), index, XA_ZERO_ENTRY, core::ptr::null_mut(), 0)
        };
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
