// SPDX-License-Identifier: GPL-2.0

//! Work that borrows from its submitter: [`scope`] runs a closure that may queue work items
//! ([`Scope::spawn`]) on a workqueue, and returns only once every one of them has run. So a
//! work item may borrow what lives on the submitter's stack, as a device's copy engine does
//! with the pages of a migration: those stay locked and referenced until the copies are done.
//!
//! The wait is in [`scope`] itself, around the caller's closure: no value whose drop could be
//! skipped (`mem::forget` is safe) stands between a work item and what it borrows.
//!
//! # Examples
//!
//! ```
//! use core::sync::atomic::{AtomicUsize, Ordering};
//! use kernel::workqueue::{scope, OwnedQueue, QueueFlags};
//!
//! let queue = OwnedQueue::ordered(kernel::c_str!("rust_scope_doctest"), QueueFlags::NONE)?;
//! let sum = AtomicUsize::new(0);
//! let parts = [1usize, 2, 3, 4];
//! scope::scope(&queue, |s| {
//!     for part in &parts {
//!         // Borrows `sum` and `parts` from this stack frame.
//!         s.spawn(GFP_KERNEL, || {
//!             sum.fetch_add(*part, Ordering::Relaxed);
//!         })?;
//!     }
//!     Ok::<(), Error>(())
//! })?;
//! // Every work item has run.
//! assert_eq!(sum.load(Ordering::Relaxed), 10);
//! # Ok::<(), Error>(())
//! ```

use super::Queue;
use crate::{
    alloc::{AllocError, Flags},
    bindings,
    prelude::*,
    sync::Completion,
    types::Opaque,
};
use core::{
    cell::Cell,
    marker::PhantomData,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
};

/// What the work items of a [`Scope`] report to: how many have not finished, and the
/// completion the submitter waits on.
#[pin_data]
struct ScopeState {
    /// The work items queued and not finished, plus one while the submitter's closure runs.
    pending: AtomicUsize,
    #[pin]
    done: Completion,
}

impl ScopeState {
    /// Counts one finished work item (or the end of the closure); the last one wakes the
    /// submitter. Nothing touches `self` after the count that lets the submitter return,
    /// except the completion, whose `complete_all` holds its lock until it is done with it.
    fn finish(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.complete_all();
        }
    }
}

/// The work items queued within a call of [`scope`], which waits for all of them.
///
/// `'a` is invariant: a work item may borrow only what outlives the whole call of [`scope`].
///
/// # Invariants
///
/// `state` is the pinned state of the call of [`scope`] that made this value, alive until
/// that call returns, which it does only once its closure has returned and every job has
/// finished.
pub struct Scope<'a> {
    queue: &'a Queue,
    state: *const ScopeState,
    _invariant: PhantomData<Cell<&'a ()>>,
}

/// A work item of a [`Scope`]: the C work, the scope to report to, and the closure.
///
/// `work` is the first field of a `#[repr(C)]` struct, so a pointer to it is a pointer to the
/// job.
#[repr(C)]
struct Job<F> {
    work: Opaque<bindings::work_struct>,
    state: *const ScopeState,
    f: F,
}

impl<'a> Scope<'a> {
    /// Queues `f` on the scope's workqueue; [`scope`] returns only after it has run.
    ///
    /// # Errors
    ///
    /// `AllocError` if the work item cannot be allocated (`flags`); `f` is then dropped, not
    /// run.
    ///
    /// # Context
    ///
    /// May sleep, as `flags` allow.
    pub fn spawn<F: FnOnce() + Send + 'a>(&self, flags: Flags, f: F) -> Result<(), AllocError> {
        let state = self.state;
        let job = KBox::new(
            Job {
                work: Opaque::uninit(),
                state,
                f,
            },
            flags,
        )?;
        let (name, key) = job_lock_class();
        // SAFETY: `work` is valid for writes; `run::<F>` takes a `work_struct` that is the first
        // field of a `Job<F>`, as this one is.
        unsafe {
            bindings::init_work_with_key(
                job.work.get(),
                Some(run::<F>),
                false,
                name.as_char_ptr(),
                key.as_ptr(),
            )
        };
        // SAFETY: The closure of `scope` is running, so the state is alive (type invariant).
        unsafe { (*state).pending.fetch_add(1, Ordering::Relaxed) };
        let work = KBox::into_raw(job).cast::<bindings::work_struct>();
        // SAFETY: The queue is valid for `'a`; `work` is a fresh, initialised work item that is
        // in no queue, so `queue_work_on` queues it (and returns true). It is freed by `run`.
        unsafe {
            bindings::queue_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as _,
                self.queue.0.get(),
                work,
            )
        };
        Ok(())
    }
}

/// The lockdep class of the work items of scopes: one name and key, from one function, so
/// that every instance of the generic `spawn` (in any module) names the class alike.
#[inline(never)]
fn job_lock_class() -> (
    &'static crate::str::CStr,
    &'static crate::sync::LockClassKey,
) {
    (
        crate::c_str!("workqueue::scope"),
        crate::static_lock_class!(),
    )
}

/// Runs a job of a scope: its closure, then reports to the scope.
///
/// # Safety
///
/// `work` is the `work` of a `Job<F>` leaked from a `KBox` by [`Scope::spawn`], whose scope
/// is waiting for it.
unsafe extern "C" fn run<F: FnOnce()>(work: *mut bindings::work_struct) {
    // SAFETY: As the caller guarantees: the job is ours now (the workqueue is done with it).
    let job = unsafe { KBox::from_raw(work.cast::<Job<F>>()) };
    let Job { state, f, .. } = KBox::into_inner(job);
    f();
    // SAFETY: The scope waits for this job, so its state is alive until `finish` returns.
    unsafe { (*state).finish() };
}

/// Calls `f` with a [`Scope`] whose work items run on `queue`, and waits for all of them
/// before returning what `f` returned.
///
/// The work items queued may borrow anything that outlives this call.
///
/// # Context
///
/// Sleeps (uninterruptibly) until the work items have run, whatever they wait for: they must
/// not wait for anything the caller holds. Not in atomic context, and not from a work item of
/// `queue` itself when it runs one item at a time (an ordered queue): the jobs would wait
/// behind their waiter. A module's work items must be finished before the
/// module unloads: queue them on an [`OwnedQueue`](super::OwnedQueue) dropped on unload,
/// which drains it (the end of the last work item may still be running when this returns).
#[allow(unused_mut)] // `stack_pin_init!` declares its slot `mut`.
pub fn scope<'a, R>(queue: &'a Queue, f: impl FnOnce(&Scope<'a>) -> R) -> R {
    crate::stack_pin_init!(let state = pin_init!(ScopeState {
        pending: AtomicUsize::new(1),
        done <- Completion::new(),
    }));
    let state: Pin<&ScopeState> = state.as_mut().into_ref();
    // INVARIANT: The state lives on this stack frame, pinned, and this function returns only
    // once every job has finished with it (below).
    let scope = Scope {
        queue,
        state: state.get_ref(),
        _invariant: PhantomData,
    };
    let ret = f(&scope);
    if state.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
        state.done.wait_for_completion();
    }
    ret
}
