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
//!   tables (`hmm_range_fault`, see [`crate::hmm`]), and gets the locked state from
//!   [`MmuIntervalNotifier::lock_if_unchanged`] only if no invalidation ran in between
//!   (`mmu_interval_read_retry`).
//!
//! The notifier lock is reachable from reclaim (an invalidation can come from it), so under it:
//! no sleeping allocation (`GFP_KERNEL`), no user copies, no mmap lock, no `hmm_range_fault`,
//! no removal of a notifier. [`crate::xarray::XArray`] stores take the `GFP` to use.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)
//!
//! # Examples
//!
//! ```
//! use kernel::mm::Mm;
//! use kernel::mmu_notifier::{IntervalNotifierOps, MmuIntervalNotifier, NotifierRange};
//! use kernel::page::PAGE_SIZE;
//!
//! struct Counter(u32);
//!
//! impl IntervalNotifierOps for Counter {
//!     fn invalidate(state: &mut Counter, _range: &NotifierRange<'_>) {
//!         state.0 += 1;
//!     }
//! }
//!
//! let addr = kernel::kunit::vm_mmap(4 * PAGE_SIZE)?;
//! let mm = Mm::current().ok_or(EINVAL)?;
//! let notifier = mm
//!     .with_user(|mm| {
//!         KBox::pin_init(
//!             MmuIntervalNotifier::new(mm, addr, 4 * PAGE_SIZE, Counter(0)),
//!             GFP_KERNEL,
//!         )
//!     })
//!     .ok_or(EINVAL)??;
//! let seq = notifier.read_begin();
//! assert!(notifier.lock_if_unchanged(seq).is_some());
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    error::to_result,
    ffi::{c_uint, c_ulong, c_void},
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
    /// already recorded. Runs in reclaim context: it must not allocate with `GFP_KERNEL`,
    /// copy from or to user space, take an mmap lock or remove a notifier.
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
    /// Pages are migrated (`migrate_vma`); [`NotifierRange::owner`] tells by whom.
    Migrate,
    /// Device-exclusive access is taken; [`NotifierRange::owner`] tells by whom.
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
/// `range` is valid for the lifetime `'a`.
pub struct NotifierRange<'a> {
    range: *const bindings::mmu_notifier_range,
    _p: PhantomData<&'a bindings::mmu_notifier_range>,
}

impl NotifierRange<'_> {
    fn raw(&self) -> &bindings::mmu_notifier_range {
        // SAFETY: By the type invariant the range is valid while `self` lives.
        unsafe { &*self.range }
    }

    /// The first address of the range.
    #[inline]
    pub fn start(&self) -> usize {
        self.raw().start
    }

    /// The address just past the end of the range.
    #[inline]
    pub fn end(&self) -> usize {
        self.raw().end
    }

    /// Why the range changes.
    #[inline]
    pub fn event(&self) -> Event {
        Event::from_raw(self.raw().event)
    }

    /// Whether the invalidation may sleep (`mmu_notifier_range_blockable`).
    #[inline]
    pub fn may_block(&self) -> bool {
        self.raw().flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }

    /// The owner the migration or exclusive access is done for ([`Event::Migrate`],
    /// [`Event::Exclusive`]), as the address of its [`Owner`](crate::hmm::Owner); null
    /// otherwise. Compare it with [`Owner::is`](crate::hmm::Owner::is).
    #[inline]
    pub fn owner(&self) -> *const c_void {
        self.raw().owner
    }
}

/// A sequence number of a [`MmuIntervalNotifier`], from [`MmuIntervalNotifier::read_begin`].
#[derive(Clone, Copy, Debug)]
pub struct Seq(c_ulong);

impl Seq {
    /// The raw sequence number, for `struct hmm_range`.
    pub(crate) fn raw(self) -> c_ulong {
        self.0
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
/// `notifier` was inserted with `mmu_interval_notifier_insert` and the vtable of `T`, and is
/// removed only in `drop`.
#[pin_data(PinnedDrop)]
pub struct MmuIntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    state: Mutex<T>,
    #[pin]
    notifier: Opaque<bindings::mmu_interval_notifier>,
}

// SAFETY: The C notifier may be used from any thread, and the state is `Send` behind a mutex.
unsafe impl<T: IntervalNotifierOps> Send for MmuIntervalNotifier<T> {}

// SAFETY: Shared references reach the state only through its mutex, and the C notifier's
// functions may be called concurrently.
unsafe impl<T: IntervalNotifierOps> Sync for MmuIntervalNotifier<T> {}

impl<T: IntervalNotifierOps> MmuIntervalNotifier<T> {
    /// Watches `[start, start + length)` of `mm` with `state` as the notifier's state.
    ///
    /// The notifier keeps `mm` (the struct, not its users) until it is dropped. Fails with
    /// `EINVAL` for a range that wraps around.
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        state: T,
    ) -> impl PinInit<Self, Error> + '_
    where
        T: 'static,
    {
        try_pin_init!(Self {
            state <- {
                let (name, key) = notifier_lock_class();
                Mutex::new(state, name, key)
            },
            notifier <- Opaque::try_ffi_init(move |slot: *mut bindings::mmu_interval_notifier| {
                start.checked_add(length).ok_or(EINVAL)?;
                // SAFETY: `slot` is valid for writes and pinned; the C code initialises every
                // field it uses. The ops are static; `mm` has users, as insertion needs.
                to_result(unsafe {
                    core::ptr::write_bytes(slot, 0, 1);
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        mm.as_raw(),
                        start,
                        length,
                        &NotifierVtable::<T>::OPS,
                    )
                })
            }),
        }? Error)
    }

    /// Returns the address space the notifier watches.
    #[inline]
    pub fn mm(&self) -> &Mm {
        // SAFETY: An inserted notifier holds `mmgrab` on its mm until it is removed.
        unsafe { Mm::from_raw((*self.notifier.get()).mm) }
    }

    /// Begins reading the CPU page tables of the range (`mmu_interval_read_begin`).
    ///
    /// May sleep until a running invalidation has finished. Do not call it with the notifier
    /// lock held.
    #[inline]
    pub fn read_begin(&self) -> Seq {
        // SAFETY: The notifier is inserted (type invariant).
        Seq(unsafe { bindings::mmu_interval_read_begin(self.notifier.get()) })
    }

    /// Returns whether an invalidation ran since `seq` was read (`mmu_interval_check_retry`).
    ///
    /// Without the notifier lock this is only a hint; see [`Self::lock_if_unchanged`].
    #[inline]
    pub fn check_retry(&self, seq: Seq) -> bool {
        // SAFETY: The notifier is inserted (type invariant).
        unsafe { bindings::mmu_interval_check_retry(self.notifier.get(), seq.0) }
    }

    /// Takes the notifier lock and returns the state, if no invalidation ran since `seq`
    /// (`mmu_interval_read_retry` under the lock); returns `None` otherwise, and the reader
    /// starts again from [`Self::read_begin`].
    pub fn lock_if_unchanged(&self, seq: Seq) -> Option<NotifierGuard<'_, T>> {
        let guard = self.state.lock();
        // SAFETY: The notifier is inserted (type invariant), and the lock that the
        // invalidation callback sets the sequence under is held.
        if unsafe { bindings::mmu_interval_read_retry(self.notifier.get(), seq.0) } {
            return None;
        }
        Some(guard)
    }

    /// Takes the notifier lock, to read or clear the state without new page-table data.
    #[inline]
    pub fn lock(&self) -> NotifierGuard<'_, T> {
        self.state.lock()
    }

    /// Returns the raw notifier, for `hmm_range_fault`.
    pub(crate) fn as_raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.notifier.get()
    }
}

#[pinned_drop]
impl<T: IntervalNotifierOps> PinnedDrop for MmuIntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The notifier is inserted and removed only here (type invariant). Removal
        // waits for running invalidations, which use `state`, still alive here. It cannot run
        // from the callback, which only has a shared reference.
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

/// A notifier whose only state is its sequence: for a reader that needs to know whether the
/// page tables changed, without a table to clear.
impl IntervalNotifierOps for () {
    fn invalidate(_state: &mut (), _range: &NotifierRange<'_>) {}
}
