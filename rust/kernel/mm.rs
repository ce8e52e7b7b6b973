// SPDX-License-Identifier: GPL-2.0

//! Address spaces: `struct mm_struct` and its mmap lock.
//!
//! An address space has two reference counts: `mm_count` keeps the `struct mm_struct` alive
//! ([`Mm`], `mmgrab`), `mm_users` keeps its mappings alive (`mmget`). A driver that mirrors a
//! process keeps an [`ARef<Mm>`] for as long as it likes, and pins the users only for the
//! length of one operation with [`Mm::with_user`], which hands out a [`MmWithUser`]. Holding
//! the users for longer, say for the lifetime of a file, would keep every mapping of the
//! process alive after it exits, including an mmap of that very file: a leak.
//!
//! The mmap lock is taken through guards that unlock on drop ([`MmapReadGuard`],
//! [`MmapWriteGuard`]), and VMAs are looked up on them, so a [`virt::VmaRef`] cannot outlive
//! the lock.
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
//! let mm = Mm::current().ok_or(EINVAL)?;
//! let found = mm.with_user(|mm| {
//!     let guard = mm.mmap_read_lock();
//!     guard
//!         .vma_lookup(addr)
//!         .map(|vma| (vma.start(), vma.end(), vma.flags() & virt::flags::WRITE != 0))
//! });
//! assert_eq!(found, Some(Some((addr, addr + 4 * kernel::page::PAGE_SIZE, true))));
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    error::{to_result, Result},
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

crate::layout::assert_c_layout!(task_struct {
    mm: RUST_LAYOUT_task_struct_mm
});

pub mod highmem;
// Used by the HMM and device memory modules (a configuration with only one uses a part) and
// by `highmem` (the page copy).
#[cfg_attr(
    not(all(CONFIG_HMM_MIRROR, CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION)),
    allow(dead_code)
)]
pub(crate) mod memmap;
mod mmap_lock;
// The page operations of a migration.
#[cfg(all(CONFIG_HMM_MIRROR, CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub(crate) mod page_ops;
// The arrays of `hmm_range_fault` and `migrate_vma`: only their users need them.
#[cfg(CONFIG_HMM_MIRROR)]
pub(crate) mod pfn_array;
pub mod virt;

/// The shift of the size a PMD entry maps (2 MiB on x86-64).
pub const PMD_SHIFT: u32 = bindings::PMD_SHIFT;

/// The shift of the size a PUD entry maps (1 GiB on x86-64).
pub const PUD_SHIFT: u32 = bindings::PUD_SHIFT;

/// An address space, kept alive by a reference on `mm_count` (`mmgrab`).
///
/// The reference keeps the `struct mm_struct` but not its mappings, which go away when the
/// process exits. Use [`Mm::with_user`] to work on the mappings.
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

    /// Returns the address space of the current task, or `None` for a kernel thread that has
    /// none.
    pub fn current() -> Option<ARef<Mm>> {
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

    /// Takes a reference on the users of the address space unless it has none left
    /// (`mmget_not_zero`); whether it took one.
    #[inline]
    fn mmget_not_zero(&self) -> bool {
        // On x86-64, C's `atomic_inc_not_zero` is a loop of `lock cmpxchg`, as is this one (a
        // fully ordered increment when it succeeds): no helper call.
        #[cfg(CONFIG_X86_64)]
        {
            use core::sync::atomic::{AtomicI32, Ordering};

            // SAFETY: The pointer is valid since `self` is a reference, and `mm_users` changes
            // only by atomic operations.
            let users = unsafe {
                AtomicI32::from_ptr(&raw mut (*self.as_raw()).__bindgen_anon_1.mm_users.counter)
            };
            let mut n = users.load(Ordering::Relaxed);
            while n != 0 {
                // Wrapping, as C's atomics do (no overflow check to panic on).
                let more = n.wrapping_add(1);
                match users.compare_exchange_weak(n, more, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => return true,
                    Err(now) => n = now,
                }
            }
            false
        }
        #[cfg(not(CONFIG_X86_64))]
        // SAFETY: The pointer is valid since `self` is a reference.
        unsafe {
            bindings::mmget_not_zero(self.as_raw())
        }
    }

    /// Calls `f` with the users of the address space pinned (`mmget_not_zero`), for the length
    /// of the call.
    ///
    /// Returns `None`, without calling `f`, when the address space has no users left (the
    /// process has exited). `f` may sleep; dropping the users afterwards may tear down the
    /// address space.
    pub fn with_user<R>(&self, f: impl FnOnce(&MmWithUser) -> R) -> Option<R> {
        if !self.mmget_not_zero() {
            return None;
        }
        // SAFETY: We just took a reference on `mm_users`, held until `mmput` below.
        let mm = unsafe { MmWithUser::from_raw(self.as_raw()) };
        let ret = f(mm);
        // SAFETY: Drops the reference taken above; `mm` is not used after this.
        unsafe { bindings::mmput(self.as_raw()) };
        Some(ret)
    }
}

/// An address space whose users are pinned: its mappings stay while this reference exists.
///
/// Obtained from [`Mm::with_user`], for the length of one call.
///
/// # Invariants
///
/// `mm_users` of the inner `mm_struct` is non-zero for the lifetime of any `&MmWithUser`.
#[repr(transparent)]
pub struct MmWithUser {
    mm: Mm,
}

// SAFETY: The mappings may be worked on from any thread while the users are pinned.
unsafe impl Sync for MmWithUser {}

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
        unsafe { mmap_lock::read_lock(self.as_raw()) };
        // INVARIANT: We just took the read lock.
        MmapReadGuard {
            mm: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the mmap lock for reading, or returns `EINTR` if a fatal signal arrives first.
    #[inline]
    pub fn mmap_read_lock_killable(&self) -> Result<MmapReadGuard<'_>> {
        // SAFETY: The pointer is valid since `self` is a reference; taking a sleeping lock, the
        // caller may sleep.
        to_result(unsafe { mmap_lock::read_lock_killable(self.as_raw()) })?;
        // INVARIANT: We just took the read lock.
        Ok(MmapReadGuard {
            mm: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the mmap lock for reading if that does not need to wait.
    #[inline]
    pub fn mmap_read_trylock(&self) -> Option<MmapReadGuard<'_>> {
        // SAFETY: The pointer is valid since `self` is a reference.
        if !unsafe { mmap_lock::read_trylock(self.as_raw()) } {
            return None;
        }
        // INVARIANT: We just took the read lock.
        Some(MmapReadGuard {
            mm: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the mmap lock for writing, sleeping until it is available.
    #[inline]
    pub fn mmap_write_lock(&self) -> MmapWriteGuard<'_> {
        // SAFETY: The pointer is valid since `self` is a reference.
        unsafe { bindings::mmap_write_lock(self.as_raw()) };
        // INVARIANT: We just took the write lock.
        MmapWriteGuard {
            mm: self,
            _not_send: PhantomData,
        }
    }
}

/// Looks up the VMA that contains `addr` in `mm`.
///
/// # Safety
///
/// The caller holds the mmap lock of `mm` (for reading or writing) for the lifetime `'a`.
#[inline]
unsafe fn vma_lookup<'a>(mm: &MmWithUser, addr: usize) -> Option<&'a virt::VmaRef> {
    // `vma_lookup`: the VMA that the maple tree of `mm` holds at `addr`.
    // SAFETY: `mm` is valid (a reference).
    let tree = unsafe { &raw mut (*mm.as_raw()).__bindgen_anon_1.mm_mt };
    // SAFETY: The caller holds the mmap lock of `mm`, which the tree's readers need.
    let vma = unsafe { bindings::mtree_load(tree, addr as _) }.cast::<bindings::vm_area_struct>();
    if vma.is_null() {
        return None;
    }
    // SAFETY: The VMA belongs to `mm` and stays valid while its mmap lock is held, which the
    // caller ties to `'a`.
    Some(unsafe { virt::VmaRef::from_raw(vma) })
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
        // SAFETY: By the type invariant the lock is held while `self` lives, and the returned
        // reference borrows `self`.
        unsafe { vma_lookup(self.mm, addr) }
    }
}

impl Drop for MmapReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold the read lock; the guard is not `Send`, so this
        // is the task that took it.
        unsafe { mmap_lock::read_unlock(self.mm.as_raw()) };
    }
}

/// The mmap lock of an address space, held for writing; released on drop.
///
/// # Invariants
///
/// The mmap lock of `mm` is held for writing while this guard exists.
#[must_use = "the mmap lock is released immediately when the guard is unused"]
pub struct MmapWriteGuard<'a> {
    mm: &'a MmWithUser,
    // The lock must be released by the task that took it.
    _not_send: PhantomData<*mut ()>,
}

impl<'a> MmapWriteGuard<'a> {
    /// Returns the address space whose lock is held.
    #[inline]
    pub fn mm(&self) -> &'a MmWithUser {
        self.mm
    }

    /// Returns the VMA that contains `addr`, if any.
    #[inline]
    pub fn vma_lookup(&self, addr: usize) -> Option<&virt::VmaRef> {
        // SAFETY: By the type invariant the lock is held while `self` lives, and the returned
        // reference borrows `self`.
        unsafe { vma_lookup(self.mm, addr) }
    }
}

impl Drop for MmapWriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold the write lock.
        unsafe { bindings::mmap_write_unlock(self.mm.as_raw()) };
    }
}
