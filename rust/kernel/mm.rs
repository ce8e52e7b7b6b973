// SPDX-License-Identifier: GPL-2.0

//! Address spaces: `struct mm_struct` and its mmap lock.
//!
//! An address space has two reference counts: `mm_count` keeps the `struct mm_struct` alive
//! ([`Mm`], `mmgrab`), `mm_users` keeps its mappings alive ([`MmWithUser`], `mmget`). A driver
//! that mirrors a process keeps an [`ARef<Mm>`] for as long as it likes, and pins the users
//! only for the length of one operation with [`Mm::mmget_not_zero`]. Holding the users for
//! longer, say for the lifetime of a file, would keep every mapping of the process alive after
//! it exits, including an mmap of that very file: a leak.
//!
//! The mmap lock is taken through a guard that unlocks on drop ([`MmapReadGuard`]), and VMAs
//! are looked up on it, so a [`virt::VmaRef`] cannot outlive the lock.
//!
//! C headers: [`include/linux/mm_types.h`](srctree/include/linux/mm_types.h),
//! [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h),
//! [`include/linux/mmap_lock.h`](srctree/include/linux/mmap_lock.h)
//!
//! # Examples
//!
//! ```
//! use kernel::mm::{virt, Mm};
//!
//! // A KUnit test runs in a kernel thread: give it an address space with one mapping.
//! let addr = kernel::kunit::vm_mmap(4 * kernel::page::PAGE_SIZE)?;
//! let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
//! let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
//! let guard = mm.mmap_read_lock();
//! let vma = guard.vma_lookup(addr).ok_or(EFAULT)?;
//! assert_eq!((vma.start(), vma.end()), (addr, addr + 4 * kernel::page::PAGE_SIZE));
//! assert!(vma.flags() & virt::flags::WRITE != 0);
//! assert!(guard.vma_lookup(addr + 4 * kernel::page::PAGE_SIZE).is_none());
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    error::{to_result, Result},
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

pub mod highmem;
// The arrays of `hmm_range_fault` and `migrate_vma`: only their users need them.
#[cfg(any(CONFIG_HMM_MIRROR, all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION)))]
pub(crate) mod pfn_array;
pub mod range;
pub mod virt;

/// The shift of the size a PMD entry maps (2 MiB on x86-64).
pub const PMD_SHIFT: u32 = bindings::PMD_SHIFT;

/// The shift of the size a PUD entry maps (1 GiB on x86-64).
pub const PUD_SHIFT: u32 = bindings::PUD_SHIFT;

/// An address space, kept alive by a reference on `mm_count` (`mmgrab`).
///
/// The reference keeps the `struct mm_struct` but not its mappings, which go away when the
/// process exits. Use [`Mm::mmget_not_zero`] to work on the mappings.
///
/// # Invariants
///
/// Values of this type are always refcounted with `mmgrab`/`mmdrop`.
#[repr(transparent)]
pub struct Mm {
    mm: Opaque<bindings::mm_struct>,
}

// SAFETY: `struct mm_struct` may be used and its `mm_count` dropped from any thread.
unsafe impl Send for Mm {}

// SAFETY: All the methods of `Mm` that take `&self` are safe to call concurrently.
unsafe impl Sync for Mm {}

// SAFETY: By the type invariant, `mmgrab`/`mmdrop` are the reference count of `Mm`.
unsafe impl AlwaysRefCounted for Mm {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The pointer is valid since `self` is a reference.
        unsafe { bindings::mmgrab(self.as_raw()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller is giving up their refcount.
        unsafe { bindings::mmdrop(obj.cast().as_ptr()) };
    }
}

impl Mm {
    /// Creates a reference to an [`Mm`] from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to an `mm_struct` whose `mm_count` is non-zero for the lifetime `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::mm_struct) -> &'a Mm {
        // SAFETY: `Mm` is `repr(transparent)` over the C struct; the caller guarantees validity.
        unsafe { &*ptr.cast() }
    }

    /// Returns a raw pointer to the inner `mm_struct`.
    #[inline]
    pub fn as_raw(&self) -> *mut bindings::mm_struct {
        self.mm.get()
    }

    /// Returns the address space of the current task, with a reference on `mm_count`, or
    /// `None` for a kernel thread that has none.
    pub fn mmgrab_current() -> Option<ARef<Mm>> {
        // SAFETY: `current` is always valid, and a task's `mm` is only changed by the task
        // itself (exec, exit, `kthread_use_mm`), so it cannot change under this read.
        let mm = unsafe { (*bindings::get_current()).mm };
        if mm.is_null() {
            return None;
        }
        // SAFETY: The current task holds a reference to its own mm while it runs.
        let mm = unsafe { Mm::from_raw(mm) };
        Some(ARef::from(mm))
    }

    /// Takes a reference on the users of the address space (`mmget_not_zero`), unless it has
    /// none left (the process has exited): `None` then.
    ///
    /// Dropping the returned reference may tear the address space down (`mmput`): hold it for
    /// the length of an operation, not for the lifetime of a file.
    #[inline]
    pub fn mmget_not_zero(&self) -> Option<ARef<MmWithUser>> {
        // SAFETY: The pointer is valid since `self` is a reference.
        if !unsafe { bindings::mmget_not_zero(self.as_raw()) } {
            return None;
        }
        // SAFETY: We just took a reference on `mm_users`; `ARef` owns it from now on.
        let mm = unsafe { NonNull::new_unchecked(self.as_raw().cast::<MmWithUser>()) };
        // SAFETY: The reference taken above is handed over.
        Some(unsafe { ARef::from_raw(mm) })
    }
}

/// An address space whose users are pinned: its mappings stay while this reference exists.
///
/// # Invariants
///
/// Values of this type are always refcounted with `mmget`/`mmput`: `mm_users` is non-zero for
/// the lifetime of any `&MmWithUser`.
#[repr(transparent)]
pub struct MmWithUser {
    mm: Mm,
}

// SAFETY: The mappings may be worked on, and `mm_users` dropped, from any thread.
unsafe impl Send for MmWithUser {}

// SAFETY: The mappings may be worked on from any thread while the users are pinned.
unsafe impl Sync for MmWithUser {}

// SAFETY: By the type invariant, `mmget`/`mmput` are the reference count of `MmWithUser`.
unsafe impl AlwaysRefCounted for MmWithUser {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The pointer is valid since `self` is a reference.
        unsafe { bindings::mmget(self.as_raw()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller is giving up their refcount. `mmput` may sleep (it may tear the
        // address space down), as dropping any `ARef<MmWithUser>` may.
        unsafe { bindings::mmput(obj.cast().as_ptr()) };
    }
}

impl Deref for MmWithUser {
    type Target = Mm;

    #[inline]
    fn deref(&self) -> &Mm {
        &self.mm
    }
}

impl MmWithUser {
    /// Creates a reference to an [`MmWithUser`] from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to an `mm_struct` whose `mm_users` is non-zero for the lifetime `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *const bindings::mm_struct) -> &'a MmWithUser {
        // SAFETY: `MmWithUser` is `repr(transparent)` over the C struct; the caller guarantees
        // validity and the type invariant.
        unsafe { &*ptr.cast() }
    }

    /// Takes the mmap lock for reading, sleeping until it is available.
    #[inline]
    pub fn mmap_read_lock(&self) -> MmapReadGuard<'_> {
        // SAFETY: The pointer is valid since `self` is a reference; taking a sleeping lock, the
        // caller may sleep.
        unsafe { bindings::mmap_read_lock(self.as_raw()) };
        // INVARIANT: We just took the read lock.
        MmapReadGuard {
            mm: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the mmap lock for reading.
    ///
    /// # Errors
    ///
    /// `EINTR` if a fatal signal arrives before the lock is taken.
    #[inline]
    pub fn mmap_read_lock_killable(&self) -> Result<MmapReadGuard<'_>> {
        // SAFETY: The pointer is valid since `self` is a reference; taking a sleeping lock, the
        // caller may sleep.
        to_result(unsafe { bindings::mmap_read_lock_killable(self.as_raw()) })?;
        // INVARIANT: We just took the read lock.
        Ok(MmapReadGuard {
            mm: self,
            _not_send: PhantomData,
        })
    }
}

/// The mmap lock of an address space, held for reading; released on drop.
///
/// # Invariants
///
/// The mmap lock of `mm` is held for reading while this guard exists.
#[must_use = "the mmap lock is released immediately when the guard is unused"]
pub struct MmapReadGuard<'a> {
    mm: &'a MmWithUser,
    // The lock must be released by the task that took it.
    _not_send: PhantomData<*mut ()>,
}

impl<'a> MmapReadGuard<'a> {
    /// Returns the address space whose lock is held.
    #[inline]
    pub fn mm(&self) -> &'a MmWithUser {
        self.mm
    }

    /// Returns the VMA that contains `addr`, if any.
    #[inline]
    pub fn vma_lookup(&self, addr: usize) -> Option<&virt::VmaRef> {
        // SAFETY: By the type invariant the mmap lock is held, as `vma_lookup` needs.
        let vma = unsafe { bindings::vma_lookup(self.mm.as_raw(), addr) };
        if vma.is_null() {
            return None;
        }
        // SAFETY: The VMA belongs to the address space and stays valid while its mmap lock is
        // held: the returned reference borrows `self`.
        Some(unsafe { virt::VmaRef::from_raw(vma) })
    }
}

impl Drop for MmapReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold the read lock; the guard is not `Send`, so this
        // is the task that took it.
        unsafe { bindings::mmap_read_unlock(self.mm.as_raw()) };
    }
}
