// SPDX-License-Identifier: GPL-2.0

//! Completion support.
//!
//! Reference: <https://docs.kernel.org/scheduler/completion.html>
//!
//! C header: [`include/linux/completion.h`](srctree/include/linux/completion.h)

use crate::{bindings, prelude::*, types::Opaque};

crate::layout::assert_c_layout!(completion {
    size: RUST_LAYOUT_completion_SIZE,
    align: RUST_LAYOUT_completion_ALIGN,
});

/// Synchronisation primitive to signal when a certain task has been completed.
///
/// A [`Completion`] is used by a task that waits ([`Completion::wait_for_completion`]) for
/// another one to finish something and say so ([`Completion::complete_all`]).
///
/// # Examples
///
/// ```
/// use kernel::sync::Completion;
///
/// let done = KBox::pin_init(Completion::new(), GFP_KERNEL)?;
/// done.complete_all();
/// // Completed already: does not wait.
/// done.wait_for_completion();
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `inner` was initialised with `init_completion`.
#[pin_data]
pub struct Completion {
    #[pin]
    inner: Opaque<bindings::completion>,
}

// SAFETY: `Completion` is safe to be sent to any task.
unsafe impl Send for Completion {}

// SAFETY: `Completion` is safe to be accessed concurrently: its C functions synchronise.
unsafe impl Sync for Completion {}

impl Completion {
    /// Creates an initialiser for a new [`Completion`].
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // INVARIANT: `init_completion` initialises it.
            inner <- Opaque::ffi_init(|slot: *mut bindings::completion| {
                // SAFETY: `slot` is a valid pointer to an uninitialised, pinned completion.
                unsafe { bindings::init_completion(slot) };
            }),
        })
    }

    fn as_raw(&self) -> *mut bindings::completion {
        self.inner.get()
    }

    /// Signals all tasks waiting on this completion, and those that will wait on it later.
    ///
    /// This method wakes up all tasks waiting on this completion; after this operation the
    /// completion is permanently done.
    pub fn complete_all(&self) {
        // SAFETY: `self.as_raw()` is a pointer to a valid, initialised completion (type
        // invariant).
        unsafe { bindings::complete_all(self.as_raw()) };
    }

    /// Waits for completion of a task.
    ///
    /// This method waits for the completion of a task; it is not interruptible and there is
    /// no timeout.
    ///
    /// # Context
    ///
    /// Sleeps.
    pub fn wait_for_completion(&self) {
        // SAFETY: `self.as_raw()` is a pointer to a valid, initialised completion (type
        // invariant).
        unsafe { bindings::wait_for_completion(self.as_raw()) };
    }
}
