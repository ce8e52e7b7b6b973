// SPDX-License-Identifier: GPL-2.0

//! Workqueues of a driver's own (`alloc_workqueue`).
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use super::Queue;
use crate::{bindings, prelude::*, str::CStr};
use core::{ops::Deref, ptr::NonNull};

/// The flags of an [`OwnedQueue`] (`WQ_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFlags(u32);

impl QueueFlags {
    /// No flag: a per-CPU queue.
    pub const NONE: QueueFlags = QueueFlags(0);
    /// `WQ_UNBOUND`: work items run on any CPU, in workers not bound to one.
    pub const UNBOUND: QueueFlags = QueueFlags(bindings::wq_flags_WQ_UNBOUND);
    /// `WQ_MEM_RECLAIM`: the queue has a rescuer thread, so its work items make progress when
    /// memory is short (a queue that memory reclaim may wait on needs it).
    pub const MEM_RECLAIM: QueueFlags = QueueFlags(bindings::wq_flags_WQ_MEM_RECLAIM);
    /// `WQ_HIGHPRI`: workers of high priority.
    pub const HIGHPRI: QueueFlags = QueueFlags(bindings::wq_flags_WQ_HIGHPRI);
}

impl core::ops::BitOr for QueueFlags {
    type Output = QueueFlags;

    #[inline]
    fn bitor(self, rhs: QueueFlags) -> QueueFlags {
        QueueFlags(self.0 | rhs.0)
    }
}

/// A workqueue allocated by its user, destroyed when dropped: the drop waits for the work
/// items queued on it to finish (`destroy_workqueue` drains it), so a module that owns one
/// outlives its work items. So it must not be dropped by one of its own work items (one that
/// drops the last reference to what owns the queue, say): the drain would wait for itself.
/// Flush the queue first where that can happen, as a module's exit does.
///
/// # Invariants
///
/// `ptr` is a workqueue from `alloc_workqueue`, owned by this value until it is dropped.
///
/// # Examples
///
/// ```
/// use kernel::workqueue::{OwnedQueue, QueueFlags};
///
/// let queue = OwnedQueue::ordered(kernel::c_str!("rust_owned_doctest"), QueueFlags::NONE)?;
/// queue.try_spawn(GFP_KERNEL, || kernel::pr_info!("ran on an owned queue\n"))?;
/// queue.flush();
/// # Ok::<(), Error>(())
/// ```
pub struct OwnedQueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: A workqueue may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}

// SAFETY: The C functions that use a workqueue synchronise.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates a workqueue named `name` (`alloc_workqueue`), running at most `max_active`
    /// work items at a time per CPU (0: the default).
    ///
    /// # Errors
    ///
    /// `ENOMEM`; `EINVAL` for a negative `max_active`.
    pub fn new(name: &CStr, flags: QueueFlags, max_active: i32) -> Result<Self> {
        if max_active < 0 {
            return Err(EINVAL);
        }
        // SAFETY: `"%s"` with a NUL-terminated string: C copies the formatted name.
        let ptr = unsafe {
            bindings::alloc_workqueue(
                crate::c_str!("%s").as_char_ptr(),
                flags.0,
                max_active,
                name.as_char_ptr(),
            )
        };
        // INVARIANT: The queue is ours until dropped.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// Allocates an ordered workqueue (`alloc_ordered_workqueue`): its work items run one at
    /// a time, in the order they were queued.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn ordered(name: &CStr, flags: QueueFlags) -> Result<Self> {
        let ordered = QueueFlags(bindings::wq_flags___WQ_ORDERED);
        Self::new(name, flags | QueueFlags::UNBOUND | ordered, 1)
    }

    /// Waits for every work item queued so far to finish (`flush_workqueue`).
    ///
    /// # Context
    ///
    /// Sleeps; not from a work item of this queue.
    pub fn flush(&self) {
        // SAFETY: The queue is valid (type invariant).
        unsafe { bindings::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    #[inline]
    fn deref(&self) -> &Queue {
        // SAFETY: The queue is valid while `self` lives (type invariant).
        unsafe { Queue::from_raw(self.ptr.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: The queue is ours (type invariant) and nothing can queue on it any more:
        // every borrow of it has ended.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
