// SPDX-License-Identifier: GPL-2.0

//! The mmap lock for reading, taken and released as C's inline functions do.
//!
//! `mmap_read_lock` and its kin are inline in C: a call to the rwsem, and around it a test of
//! each of the lock's tracepoints, which calls out only when a probe is attached. Through
//! helpers, Rust would make one call more per lock and per unlock, on every `ioctl` of a
//! driver that walks an address space. The functions here do what C inlines: the rwsem call
//! and the tracepoint tests (a patched jump, as C's, where the compiler has asm goto; else a
//! read of each tracepoint's static key).
//!
//! C header: [`include/linux/mmap_lock.h`](srctree/include/linux/mmap_lock.h)

use crate::bindings;

/// Whether the tracepoint `$tp` of the kernel image has a probe attached
/// (`tracepoint_enabled`): a test of its static key.
///
/// On x86-64 with jump labels and asm goto, as C tests it: a 5-byte NOP that the jump label
/// code patches into a jump while a probe is attached (`arch_static_branch`), so that the
/// test reads no data. (Under QEMU TCG a page of data more per operation costs a walk of the
/// page tables after every TLB flush.) Elsewhere, a read of the key's count.
#[cfg(all(CONFIG_TRACING, CONFIG_TRACEPOINTS))]
macro_rules! tracepoint_enabled {
    ($tp:ident) => {{
        #[cfg(all(CONFIG_X86_64, CONFIG_JUMP_LABEL, CONFIG_RUSTC_HAS_ASM_GOTO))]
        let enabled = 'test: {
            // SAFETY: The asm emits a 5-byte NOP and its `__jump_table` entry (the NOP, the
            // label to jump to, and the key, each relative to the entry, as C's
            // `JUMP_TABLE_ENTRY`: branch 0, so the NOP is the initial state of a disabled key).
            // The jump label code patches the NOP into a jump to the label while the key is
            // enabled, and back; the NOP itself changes nothing.
            unsafe {
                core::arch::asm!(
                    "2: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
                    ".pushsection __jump_table, \"aw\"",
                    ".balign 8",
                    ".long 2b - .",
                    ".long {yes} - .",
                    ".quad {tp} + {key} - .",
                    ".popsection",
                    tp = sym bindings::$tp,
                    key = const core::mem::offset_of!(bindings::tracepoint, key),
                    yes = label { break 'test true },
                    options(nomem, nostack, preserves_flags),
                );
            }
            false
        };
        #[cfg(not(all(CONFIG_X86_64, CONFIG_JUMP_LABEL, CONFIG_RUSTC_HAS_ASM_GOTO)))]
        // SAFETY: `$tp` is a tracepoint of the kernel image, alive for the kernel's lifetime.
        let enabled = unsafe { key_enabled(&raw const bindings::$tp) };
        enabled
    }};
}

/// Whether the static key of the tracepoint `tp` is enabled (`static_key_count(key) > 0`).
///
/// # Safety
///
/// `tp` points to a tracepoint, alive for the kernel's lifetime (a static).
#[cfg(all(
    CONFIG_TRACING,
    CONFIG_TRACEPOINTS,
    not(all(CONFIG_X86_64, CONFIG_JUMP_LABEL, CONFIG_RUSTC_HAS_ASM_GOTO))
))]
#[inline]
unsafe fn key_enabled(tp: *const bindings::tracepoint) -> bool {
    // SAFETY: `tp` is valid (the caller's guarantee). Its key's count changes by atomic
    // operations (when probes come and go): read it as one.
    let count = unsafe {
        core::sync::atomic::AtomicI32::from_ptr((&raw const (*tp).key.enabled.counter).cast_mut())
    }
    .load(core::sync::atomic::Ordering::Relaxed);
    // -1 means the first probe is being attached.
    count != 0
}

/// The tracepoint before the lock is taken (`__mmap_lock_trace_start_locking`).
///
/// # Safety
///
/// `mm` is a valid address space.
#[inline]
unsafe fn trace_start_locking(mm: *mut bindings::mm_struct) {
    #[cfg(all(CONFIG_TRACING, CONFIG_TRACEPOINTS))]
    if tracepoint_enabled!(__tracepoint_mmap_lock_start_locking) {
        // SAFETY: `mm` is valid (the caller's guarantee).
        unsafe { bindings::__mmap_lock_do_trace_start_locking(mm, false) };
    }
    let _ = mm;
}

/// The tracepoint once the lock is taken, or not (`__mmap_lock_trace_acquire_returned`).
///
/// # Safety
///
/// `mm` is a valid address space.
#[inline]
unsafe fn trace_acquire_returned(mm: *mut bindings::mm_struct, success: bool) {
    #[cfg(all(CONFIG_TRACING, CONFIG_TRACEPOINTS))]
    if tracepoint_enabled!(__tracepoint_mmap_lock_acquire_returned) {
        // SAFETY: `mm` is valid (the caller's guarantee).
        unsafe { bindings::__mmap_lock_do_trace_acquire_returned(mm, false, success) };
    }
    let _ = (mm, success);
}

/// Takes the mmap lock of `mm` for reading (`mmap_read_lock`).
///
/// # Safety
///
/// `mm` is a valid address space, and the caller may sleep.
#[inline]
pub(crate) unsafe fn read_lock(mm: *mut bindings::mm_struct) {
    // SAFETY: `mm` is valid (the caller's guarantee), here and below.
    unsafe {
        trace_start_locking(mm);
        bindings::down_read(&raw mut (*mm).__bindgen_anon_1.mmap_lock);
        trace_acquire_returned(mm, true);
    }
}

/// Takes the mmap lock of `mm` for reading unless a fatal signal comes first
/// (`mmap_read_lock_killable`): zero if taken, `-EINTR` if not.
///
/// # Safety
///
/// `mm` is a valid address space, and the caller may sleep.
#[inline]
pub(crate) unsafe fn read_lock_killable(mm: *mut bindings::mm_struct) -> crate::ffi::c_int {
    // SAFETY: `mm` is valid (the caller's guarantee), here and below.
    unsafe {
        trace_start_locking(mm);
        let ret = bindings::down_read_killable(&raw mut (*mm).__bindgen_anon_1.mmap_lock);
        trace_acquire_returned(mm, ret == 0);
        ret
    }
}

/// Takes the mmap lock of `mm` for reading if nobody holds it for writing
/// (`mmap_read_trylock`); whether it was taken.
///
/// # Safety
///
/// `mm` is a valid address space.
#[inline]
pub(crate) unsafe fn read_trylock(mm: *mut bindings::mm_struct) -> bool {
    // SAFETY: `mm` is valid (the caller's guarantee), here and below.
    unsafe {
        trace_start_locking(mm);
        let taken = bindings::down_read_trylock(&raw mut (*mm).__bindgen_anon_1.mmap_lock) != 0;
        trace_acquire_returned(mm, taken);
        taken
    }
}

/// Releases the mmap lock of `mm` held for reading (`mmap_read_unlock`).
///
/// # Safety
///
/// The caller holds the mmap lock of `mm` for reading, and took it in this task.
#[inline]
pub(crate) unsafe fn read_unlock(mm: *mut bindings::mm_struct) {
    #[cfg(all(CONFIG_TRACING, CONFIG_TRACEPOINTS))]
    if tracepoint_enabled!(__tracepoint_mmap_lock_released) {
        // SAFETY: `mm` is the address space whose lock is being released.
        unsafe { bindings::__mmap_lock_do_trace_released(mm, false) };
    }
    // SAFETY: The caller holds the lock for reading.
    unsafe { bindings::up_read(&raw mut (*mm).__bindgen_anon_1.mmap_lock) };
}
