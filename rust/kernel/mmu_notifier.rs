// SPDX-License-Identifier: GPL-2.0

//! MMU interval notifiers: learn when the CPU page tables of a range of an address space
//! change.
//!
//! A [`MmuIntervalNotifier<T>`] watches `[start, start + length)` of an address space and
//! owns the state `T` that depends on those page tables (typically a device page table),
//! behind a mutex: the *notifier lock*. The C protocol is built in, so a driver cannot get it
//! wrong:
//!
//! * on an invalidation, the abstraction takes the notifier lock (with `try_lock` when the
//!   callback may not block, failing the invalidation if it is contended, as the C API
//!   allows), records the new sequence (`mmu_interval_set_seq`) and only then calls
//!   [`IntervalNotifierOps::invalidate`] with the locked state;
//! * a reader takes a sequence with [`MmuIntervalNotifier::read_begin`], reads the CPU page
//!   tables (`hmm_range_fault`, see the `hmm` module), and gets the locked state from
//!   [`Seq::lock_if_unchanged`] only if no invalidation ran in between
//!   (`mmu_interval_read_retry`).
//!
//! The notifier lock is reachable from reclaim (an invalidation can come from it), so under it:
//! no sleeping allocation (`GFP_KERNEL`), no user copies, no mmap lock, no `hmm_range_fault`,
//! no removal of a notifier. [`crate::xarray::XArray`] stores take the `GFP` to use.
//!
//! # Deadlocks the types cannot rule out
//!
//! Lockdep reports each of these on a debug kernel; on others they hang:
//!
//! * creating a notifier with the mmap lock of its address space held: the first notifier of
//!   an address space takes the mmap lock for writing;
//! * taking the notifier lock again while holding it: from a [`NotifierGuard`], or from the
//!   `commit` of `hmm::range_fault`, which runs under it;
//! * dropping a notifier from its own [`IntervalNotifierOps::invalidate`]: removal waits for
//!   the running invalidation;
//! * sleeping in [`IntervalNotifierOps::invalidate`] when the range may not block
//!   ([`NotifierRange::may_block`]): the OOM reaper calls it so and cannot wait.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)
//!
//! # Examples
//!
//! ```
//! use kernel::memremap::Owner;
//! use kernel::mm::Mm;
//! use kernel::mmu_notifier::{IntervalNotifierOps, MmuIntervalNotifier, NotifierRange};
//! use kernel::page::PAGE_SIZE;
//!
//! struct Counter {
//!     calls: u32,
//!     owned: u32,
//!     owner: Pin<KBox<Owner>>,
//! }
//!
//! impl IntervalNotifierOps for Counter {
//!     fn invalidate(state: &mut Counter, range: &NotifierRange<'_>) {
//!         state.calls += 1;
//!         // An munmap is nobody's migration.
//!         if range.is_owned_by(&state.owner) {
//!             state.owned += 1;
//!         }
//!     }
//! }
//!
//! let counter = || -> Result<Counter> {
//!     Ok(Counter {
//!         calls: 0,
//!         owned: 0,
//!         owner: KBox::pin_init(Owner::new(), GFP_KERNEL)?,
//!     })
//! };
//! let addr = kernel::kunit::vm_mmap(4 * PAGE_SIZE)?;
//! let other = kernel::kunit::vm_mmap(PAGE_SIZE)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
//! let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
//! let state = counter()?;
//! let notifier =
//!     KBox::pin_init(MmuIntervalNotifier::new(&mm, addr, 4 * PAGE_SIZE, state), GFP_KERNEL)?;
//!
//! // Nothing changed since the sequence was read: the state may be used.
//! let seq = notifier.read_begin();
//! assert!(seq.lock_if_unchanged().is_some());
//!
//! // An munmap of part of the range invalidates it: once, and the sequence is stale.
//! let seq = notifier.read_begin();
//! kernel::kunit::vm_munmap(addr + PAGE_SIZE, PAGE_SIZE)?;
//! assert!(seq.lock_if_unchanged().is_none());
//! assert_eq!(notifier.lock().calls, 1);
//! assert_eq!(notifier.lock().owned, 0);
//!
//! // An munmap outside the range does not reach it.
//! kernel::kunit::vm_munmap(other, PAGE_SIZE)?;
//! assert_eq!(notifier.lock().calls, 1);
//! assert!(notifier.covers(addr, addr + 4 * PAGE_SIZE));
//! assert!(!notifier.covers(addr, addr + 5 * PAGE_SIZE));
//!
//! // An empty or wrapping interval is refused, as in C.
//! let empty = KBox::pin_init(MmuIntervalNotifier::new(&mm, addr, 0, counter()?), GFP_KERNEL);
//! assert_eq!(empty.err(), Some(EOVERFLOW));
//! let wrapping = MmuIntervalNotifier::new(&mm, addr, usize::MAX, counter()?);
//! assert_eq!(KBox::pin_init(wrapping, GFP_KERNEL).err(), Some(EOVERFLOW));
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    error::to_result,
    ffi::{c_uint, c_ulong, c_void},
    memremap::Owner,
    mm::{Mm, MmWithUser},
    prelude::*,
    str::CStr,
    sync::{lock::mutex::MutexBackend, lock::Guard, LockClassKey, Mutex},
    types::Opaque,
};
use core::marker::PhantomData;

/// The state kept by a [`MmuIntervalNotifier`], and what to do to it on an invalidation.
pub trait IntervalNotifierOps: Send + Sized {
    /// Stops using the CPU pages of `range`: after this returns, the device must not access
    /// them until it looked them up again.
    ///
    /// Called with the notifier lock held (`state` is the locked state) and the new sequence
    /// already recorded.
    ///
    /// # Context
    ///
    /// Runs in reclaim context: it must not allocate with `GFP_KERNEL`, copy from or to user
    /// space, take an mmap lock or drop a notifier (its own removal waits for it). When
    /// [`NotifierRange::may_block`] is false (the OOM reaper) it must not sleep at all.
    fn invalidate(state: &mut Self, range: &NotifierRange<'_>);
}

/// Why the CPU page tables of a range are changing (`enum mmu_notifier_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The range is unmapped (`munmap`, `mremap`).
    Unmap,
    /// The pages are being cleared (reclaim, `madvise(MADV_DONTNEED)`, ...).
    Clear,
    /// The protection of a VMA changes (`mprotect`).
    ProtectionVma,
    /// The protection of a page changes (write protection, COW).
    ProtectionPage,
    /// Soft-dirty tracking.
    SoftDirty,
    /// The address space is being torn down.
    Release,
    /// Pages are migrated (`migrate_vma`); [`NotifierRange::is_owned_by`] tells by whom.
    Migrate,
    /// Device-exclusive access is taken or revoked; [`NotifierRange::is_owned_by`] tells by
    /// whom it is taken (a revocation has no owner).
    Exclusive,
    /// An event this kernel crate does not know.
    Other(c_uint),
}

impl Event {
    fn from_raw(event: bindings::mmu_notifier_event) -> Self {
        match event {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Self::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR => Self::Clear,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Self::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Self::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Self::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Self::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Self::Migrate,
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Self::Exclusive,
            other => Self::Other(other),
        }
    }
}

/// The range of an invalidation (`struct mmu_notifier_range`).
///
/// # Invariants
///
/// `range` points to a valid `struct mmu_notifier_range` for the lifetime `'a`. Its fields are
/// read through the raw pointer, one by one: no Rust reference to the C struct is made.
pub struct NotifierRange<'a> {
    range: *const bindings::mmu_notifier_range,
    _p: PhantomData<&'a bindings::mmu_notifier_range>,
}

crate::layout::assert_c_layout!(mmu_notifier_range {
    start: RUST_LAYOUT_mmu_notifier_range_start,
    end: RUST_LAYOUT_mmu_notifier_range_end,
    event: RUST_LAYOUT_mmu_notifier_range_event,
    owner: RUST_LAYOUT_mmu_notifier_range_owner,
});

impl NotifierRange<'_> {
    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        // SAFETY: By the type invariant the range is valid while `self` lives.
        unsafe { (*self.range).start }
    }

    /// The address just past the end of the range.
    #[inline]
    pub fn end(&self) -> usize {
        // SAFETY: By the type invariant the range is valid while `self` lives.
        unsafe { (*self.range).end }
    }

    /// Why the range changes.
    #[inline]
    pub fn event(&self) -> Event {
        // SAFETY: By the type invariant the range is valid while `self` lives.
        Event::from_raw(unsafe { (*self.range).event })
    }

    /// Whether the invalidation may sleep (`mmu_notifier_range_blockable`).
    #[inline]
    pub fn may_block(&self) -> bool {
        // SAFETY: By the type invariant the range is valid while `self` lives.
        unsafe { bindings::mmu_notifier_range_blockable(self.range) }
    }

    /// Whether this is a migration or the taking of device-exclusive access done for `owner`
    /// (an [`Event::Migrate`] or [`Event::Exclusive`] event whose owner is `owner`).
    ///
    /// Only those two events carry an owner: the C side leaves it unset for the others
    /// (`mmu_notifier_range_init` does not write it), and a CPU access revoking exclusive
    /// access passes none. A driver may skip the invalidations it caused itself, as long as
    /// it updates its own state for the pages it migrates.
    #[inline]
    pub fn is_owned_by(&self, owner: &Owner) -> bool {
        if !matches!(self.event(), Event::Migrate | Event::Exclusive) {
            return false;
        }
        // SAFETY: By the type invariant the range is valid while `self` lives, and the owner
        // is set for these two events (`mmu_notifier_range_init_owner`).
        owner.is(unsafe { (*self.range).owner })
    }
}

/// A sequence number of one [`MmuIntervalNotifier`], from [`MmuIntervalNotifier::read_begin`].
///
/// It names the notifier it was read from, so it cannot be checked against another one.
#[must_use]
pub struct Seq<'a, T: IntervalNotifierOps> {
    notifier: &'a MmuIntervalNotifier<T>,
    seq: c_ulong,
}

impl<'a, T: IntervalNotifierOps> Seq<'a, T> {
    /// The raw sequence number, for `struct hmm_range`.
    #[inline]
    pub(crate) fn raw(&self) -> c_ulong {
        self.seq
    }

    /// The notifier the sequence was read from.
    #[inline]
    pub fn notifier(&self) -> &'a MmuIntervalNotifier<T> {
        self.notifier
    }

    /// Takes the notifier lock and returns the state, if no invalidation ran since the
    /// sequence was read (`mmu_interval_read_retry` under the lock); returns `None` otherwise,
    /// and the reader starts again from [`MmuIntervalNotifier::read_begin`].
    ///
    /// # Context
    ///
    /// Takes the notifier lock: not with it held.
    pub fn lock_if_unchanged(self) -> Option<NotifierGuard<'a, T>> {
        let guard = self.notifier.state.lock();
        // SAFETY: The notifier is inserted (type invariant of `MmuIntervalNotifier`), and the
        // invalidation callback sets the sequence under the lock now held, as
        // `mmu_interval_read_retry` requires.
        if unsafe { bindings::mmu_interval_read_retry(self.notifier.as_raw(), self.seq) } {
            return None;
        }
        Some(guard)
    }
}

/// The lockdep class of every notifier lock.
///
/// Not generic, so that its key and name exist once, in the kernel image: statics and string
/// literals of a generic function would be instantiated in each module that uses it, and
/// lockdep rejects one key with two names.
#[inline(never)]
fn notifier_lock_class() -> (&'static CStr, &'static LockClassKey) {
    (
        crate::c_str!("MmuIntervalNotifier::state"),
        crate::static_lock_class!(),
    )
}

/// The notifier lock, held: the state of a [`MmuIntervalNotifier`].
pub type NotifierGuard<'a, T> = Guard<'a, T, MutexBackend>;

/// An MMU interval notifier over a range of an address space, owning the state that depends
/// on the range's page tables. Removed when dropped.
///
/// # Invariants
///
/// `notifier` was inserted with `mmu_interval_notifier_insert` and the vtable of `T` over
/// `[start, last]`, and is removed only in `drop`.
#[pin_data(PinnedDrop)]
pub struct MmuIntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    state: Mutex<T>,
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
    start: usize,
    last: usize,
    /// The owner whose device-exclusive conversions the notifier ignores, or null: only ever
    /// compared with the owner of an event, never dereferenced.
    exclusive_owner: *const c_void,
}

crate::layout::assert_c_layout!(mmu_interval_notifier {
    size: RUST_LAYOUT_mmu_interval_notifier_SIZE,
    align: RUST_LAYOUT_mmu_interval_notifier_ALIGN,
    mm: RUST_LAYOUT_mmu_interval_notifier_mm,
});

crate::layout::assert_c_layout!(mmu_interval_notifier_ops {
    size: RUST_LAYOUT_mmu_interval_notifier_ops_SIZE,
    align: RUST_LAYOUT_mmu_interval_notifier_ops_ALIGN,
    invalidate: RUST_LAYOUT_mmu_interval_notifier_ops_invalidate,
});

// The notifier lock is a `Mutex`, which embeds a C `struct mutex`.
crate::layout::assert_c_layout!(mutex {
    size: RUST_LAYOUT_mutex_SIZE,
    align: RUST_LAYOUT_mutex_ALIGN,
});

// SAFETY: The C notifier may be used from any thread, and the state is `Send` behind a mutex.
unsafe impl<T: IntervalNotifierOps> Send for MmuIntervalNotifier<T> {}

// SAFETY: Shared references reach the state only through its mutex, and the C notifier's
// functions may be called concurrently.
unsafe impl<T: IntervalNotifierOps> Sync for MmuIntervalNotifier<T> {}

impl<T: IntervalNotifierOps> MmuIntervalNotifier<T> {
    /// Watches `[start, start + length)` of `mm` with `state` as the notifier's state.
    ///
    /// The notifier keeps `mm` (the struct, not its users) until it is dropped.
    ///
    /// # Errors
    ///
    /// `EOVERFLOW` for an empty range or one that wraps around, as the C function does;
    /// `ENOMEM`.
    ///
    /// # Context
    ///
    /// Sleeps. The first notifier of an address space takes its mmap lock for writing: do not
    /// call it with the mmap lock of `mm` held.
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        state: T,
    ) -> impl PinInit<Self, Error> + '_
    where
        T: 'static,
    {
        Self::new_ignoring_exclusive(mm, start, length, state, None)
    }

    /// [`Self::new`], for a notifier that ignores the [`Event::Exclusive`] events of `owner`:
    /// the conversions to device-exclusive entries that its own device asks for
    /// (`make_device_exclusive_range` with `owner`), which keep the same pages at the same
    /// addresses. Neither the state nor the sequence sees them, so that the device may keep
    /// using what it looked up before (nouveau's notifier skips them the same way). The
    /// revocation of such an entry (a CPU access) carries no owner, and invalidates. With
    /// `None`, this is [`Self::new`].
    ///
    /// # Errors
    ///
    /// As [`Self::new`]'s.
    pub fn new_ignoring_exclusive<'a>(
        mm: &'a MmWithUser,
        start: usize,
        length: usize,
        state: T,
        owner: Option<&Owner>,
    ) -> impl PinInit<Self, Error> + 'a
    where
        T: 'static,
    {
        let owner: *const c_void = owner.map_or(core::ptr::null(), |o| o.as_ptr());
        // The C function's own check: the last address must not wrap around. (The fields
        // `start` and `last` shadow these names inside the initialiser.)
        let first = start;
        let last = length
            .checked_sub(1)
            .and_then(|l| first.checked_add(l))
            .ok_or(EOVERFLOW);
        try_pin_init!(Self {
            start: first,
            last: last?,
            exclusive_owner: owner,
            state <- {
                let (name, key) = notifier_lock_class();
                Mutex::new(state, name, key)
            },
            notifier <- Opaque::try_ffi_init(move |slot: *mut bindings::mmu_interval_notifier| {
                // SAFETY: `slot` is valid for writes and pinned; the C code initialises every
                // field it uses. The ops are static; `mm` has users, as insertion needs.
                to_result(unsafe {
                    core::ptr::write_bytes(slot, 0, 1);
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        mm.as_raw(),
                        first,
                        length,
                        &NotifierVtable::<T>::OPS,
                    )
                })
            }),
        }? Error)
    }

    /// The first address watched.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The last address watched (inclusive: the interval may end at the top of the address
    /// space).
    #[inline]
    pub fn last(&self) -> usize {
        self.last
    }

    /// Returns whether `[start, end)` is not empty and lies within the watched interval.
    #[inline]
    pub fn covers(&self, start: usize, end: usize) -> bool {
        start < end && start >= self.start && end - 1 <= self.last
    }

    /// Returns the address space the notifier watches.
    #[inline]
    pub fn mm(&self) -> &Mm {
        // SAFETY: An inserted notifier holds `mmgrab` on its mm until it is removed, and never
        // changes the field; it is read through the raw pointer, without a reference.
        unsafe { Mm::from_raw((*self.notifier.get()).mm) }
    }

    /// Begins reading the CPU page tables of the range (`mmu_interval_read_begin`).
    ///
    /// # Context
    ///
    /// May sleep until a running invalidation has finished: not with the notifier lock held.
    #[inline]
    pub fn read_begin(&self) -> Seq<'_, T> {
        Seq {
            notifier: self,
            // SAFETY: The notifier is inserted (type invariant).
            seq: unsafe { bindings::mmu_interval_read_begin(self.notifier.get()) },
        }
    }

    /// Takes the notifier lock, to read or clear the state without new page-table data.
    ///
    /// # Context
    ///
    /// Sleeps; not with the notifier lock already held (from a guard, or in the `commit` of
    /// `hmm::range_fault`).
    #[inline]
    pub fn lock(&self) -> NotifierGuard<'_, T> {
        self.state.lock()
    }

    /// Returns the raw notifier, for `hmm_range_fault`.
    #[inline]
    pub(crate) fn as_raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.notifier.get()
    }
}

#[pinned_drop]
impl<T: IntervalNotifierOps> PinnedDrop for MmuIntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The notifier is inserted and removed only here (type invariant). Removal
        // waits for running invalidations, which use `state`, still alive here. (Dropping a
        // notifier from its own callback would wait forever: documented on the trait.)
        unsafe { bindings::mmu_interval_notifier_remove(self.notifier.get()) };
    }
}

/// The C operations of a [`MmuIntervalNotifier<T>`].
struct NotifierVtable<T: IntervalNotifierOps>(PhantomData<T>);

impl<T: IntervalNotifierOps> NotifierVtable<T> {
    /// # Safety
    ///
    /// Called by the MMU notifier core for a notifier inserted by
    /// [`MmuIntervalNotifier::new`] and not yet removed, with a valid range.
    unsafe extern "C" fn invalidate(
        mni: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: c_ulong,
    ) -> bool {
        // SAFETY: `mni` is the `notifier` field of a live `MmuIntervalNotifier<T>` (an `Opaque`
        // has the address of its content): only those use this vtable.
        let this = unsafe { &*kernel::container_of!(mni, MmuIntervalNotifier<T>, notifier) };
        // INVARIANT: The range is valid for the duration of the callback.
        let range = NotifierRange {
            range,
            _p: PhantomData,
        };
        if !this.exclusive_owner.is_null()
            && range.event() == Event::Exclusive
            // SAFETY: The range is valid for the call; an EXCLUSIVE event sets its owner.
            && core::ptr::eq(unsafe { (*range.range).owner }, this.exclusive_owner)
        {
            // Nothing the notifier's state depends on changes: keep the sequence.
            return true;
        }
        let mut guard = if range.may_block() {
            this.state.lock()
        } else {
            match this.state.try_lock() {
                Some(guard) => guard,
                // Allowed only because the callback may not block: the core retries.
                None => return false,
            }
        };
        // SAFETY: `mni` is inserted; the sequence is set under the lock that readers check it
        // under, as `mmu_interval_set_seq` requires.
        unsafe { bindings::mmu_interval_set_seq(mni, cur_seq) };
        T::invalidate(&mut guard, &range);
        true
    }

    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate),
    };
}
