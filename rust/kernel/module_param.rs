// SPDX-License-Identifier: GPL-2.0

//! Module parameters.
//!
//! A module declares its parameters in the `params` section of [`module!`](crate::prelude::module)
//! and reads them through the generated `module_parameters` module:
//!
//! ```ignore
//! module! {
//!     type: MyModule,
//!     name: "my_module",
//!     license: "GPL",
//!     params: {
//!         base_addr: i64 {
//!             default: 0,
//!             description: "Base address of the device memory",
//!         },
//!     },
//! }
//!
//! fn base() -> i64 {
//!     crate::module_parameters::base_addr.value()
//! }
//! ```
//!
//! The values are parsed by the C kernel's own `param_ops_*` (see [`ModuleParam`]), so
//! `insmod my_module.ko base_addr=0x140000000` takes exactly what a C module's
//! `module_param(base_addr, long, ...)` takes. The parameters are read-only in sysfs
//! (`/sys/module/NAME/parameters/`, mode 0444, where a C module often has 0644): they are
//! written only while the module's arguments are parsed, before its `init` runs, which is
//! what makes [`ModuleParamAccess::value`] race-free.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)

use crate::{bindings, ffi::c_void, str::CStr};
use core::cell::UnsafeCell;

crate::layout::assert_c_layout!(kernel_param {
    size: RUST_LAYOUT_kernel_param_SIZE,
    align: RUST_LAYOUT_kernel_param_ALIGN,
    name: RUST_LAYOUT_kernel_param_name,
    mod_: RUST_LAYOUT_kernel_param_mod,
    ops: RUST_LAYOUT_kernel_param_ops,
    perm: RUST_LAYOUT_kernel_param_perm,
    level: RUST_LAYOUT_kernel_param_level,
    flags: RUST_LAYOUT_kernel_param_flags,
    __bindgen_anon_1.arg: RUST_LAYOUT_kernel_param_arg,
});

/// A type that can be a module parameter, parsed and printed by one of the C `param_ops_*`.
///
/// # Safety
///
/// [`ModuleParam::OPS`] must read and write a value of exactly the layout of `Self` at
/// `kernel_param::arg`, and every bit pattern it writes there must be a valid `Self`.
pub unsafe trait ModuleParam: Copy + Send + Sync + 'static {
    /// The C operations that parse and print the value.
    const OPS: *const bindings::kernel_param_ops;
}

macro_rules! impl_module_param {
    ($($t:ty => $ops:ident),* $(,)?) => {$(
        // SAFETY: The C `param_ops` named here store a C value of the same size, signedness
        // and alignment as the Rust type, and every bit pattern is valid for it.
        unsafe impl ModuleParam for $t {
            const OPS: *const bindings::kernel_param_ops = &raw const bindings::$ops;
        }
    )*};
}

impl_module_param! {
    u8 => param_ops_byte,
    i16 => param_ops_short,
    u16 => param_ops_ushort,
    i32 => param_ops_int,
    u32 => param_ops_uint,
    u64 => param_ops_ullong,
}

// `long` is the pointer width; the kernel crate only builds for 64-bit targets today, but
// say it where it matters.
#[cfg(CONFIG_64BIT)]
impl_module_param! {
    i64 => param_ops_long,
}

// SAFETY: `param_ops_bool` stores a C `bool`, which has the layout of Rust's `bool`, and it
// only ever writes `true` or `false`.
unsafe impl ModuleParam for bool {
    const OPS: *const bindings::kernel_param_ops = &raw const bindings::param_ops_bool;
}

/// The storage of one module parameter, read with [`ModuleParamAccess::value`].
///
/// Created by [`module!`](crate::prelude::module); drivers only read it.
///
/// # Invariants
///
/// The value is written only by the C parameter parser, while the module's arguments are
/// parsed and before the module's `init` runs (its sysfs file is read-only).
#[repr(transparent)]
pub struct ModuleParamAccess<T> {
    value: UnsafeCell<T>,
}

// SAFETY: After the arguments are parsed the value is only read (type invariant), and `T` is
// `Sync`, so sharing a reference between threads is sound.
unsafe impl<T: ModuleParam> Sync for ModuleParamAccess<T> {}

impl<T: ModuleParam> ModuleParamAccess<T> {
    /// Creates the storage of a parameter with its default value.
    #[doc(hidden)]
    pub const fn new(default: T) -> Self {
        Self {
            value: UnsafeCell::new(default),
        }
    }

    /// Returns the parameter's value: the one given at load time, or the default.
    #[inline]
    pub fn value(&self) -> T {
        // SAFETY: By the type invariant nothing writes the value once the module runs, and
        // the module's code, the only reader, runs after the arguments were parsed.
        unsafe { *self.value.get() }
    }
}

/// One entry of the `__param` section: the C `struct kernel_param` of a parameter.
///
/// Created by [`module!`](crate::prelude::module).
#[doc(hidden)]
#[repr(transparent)]
pub struct KernelParam(bindings::kernel_param);

// SAFETY: The C side reads the entry (it is never changed); it holds pointers to a static
// name, the module, the static C operations and a `ModuleParamAccess`, all of which are safe
// to use from any thread.
unsafe impl Sync for KernelParam {}

impl KernelParam {
    /// Describes the parameter `name` of `module`, stored in `param`.
    ///
    /// `module` is null for built-in code, where `name` carries the `module.` prefix.
    #[doc(hidden)]
    pub const fn new<T: ModuleParam>(
        name: &'static CStr,
        module: *mut bindings::module,
        param: &'static ModuleParamAccess<T>,
    ) -> Self {
        Self(bindings::kernel_param {
            name: name.as_char_ptr(),
            mod_: module,
            ops: T::OPS,
            // Read-only in sysfs: see the invariant of `ModuleParamAccess`.
            perm: 0o444,
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                arg: param.value.get().cast::<c_void>(),
            },
        })
    }
}
