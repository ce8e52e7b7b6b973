// SPDX-License-Identifier: GPL-2.0

//! Compile-time checks that bindgen lays out C structs as the C compiler does.
//!
//! bindgen can get a layout wrong without a word: with `CONFIG_SCHEDSTATS` off, the empty
//! `____cacheline_aligned` `struct sched_statistics` loses its alignment, and every field of
//! `task_struct` after it sits 16 bytes early in Rust. Code that embeds a C struct, builds
//! one, or reads one of its fields would then corrupt memory silently. So every such struct
//! and field is listed here and in `rust/bindings/bindings_helper.h`, where the C compiler
//! computes its size, alignment or offset (`RUST_LAYOUT_*`), and the build fails on any
//! difference.

/// Asserts at compile time that bindgen's layout of `struct $ty` matches the C compiler's.
///
/// `size` and `align` name the `RUST_LAYOUT_*` constants of the struct's size and alignment;
/// each `field: CONSTANT` pair names a field (a path through bindgen's anonymous unions) and
/// the constant of its offset.
macro_rules! assert_c_layout {
    ($ty:ident { size: $size:ident, align: $align:ident $(,)? }) => {
        const _: () = {
            assert!(
                core::mem::size_of::<$crate::bindings::$ty>() == $crate::bindings::$size,
                concat!("bindgen's size of struct ", stringify!($ty), " differs from C's"),
            );
            assert!(
                core::mem::align_of::<$crate::bindings::$ty>() == $crate::bindings::$align,
                concat!("bindgen's alignment of struct ", stringify!($ty), " differs from C's"),
            );
        };
    };
    ($ty:ident { size: $size:ident, align: $align:ident, $($fields:tt)+ }) => {
        $crate::layout::assert_c_layout!($ty { size: $size, align: $align });
        $crate::layout::assert_c_layout!($ty { $($fields)+ });
    };
    ($ty:ident { $($($field:ident).+ : $off:ident),+ $(,)? }) => {
        const _: () = {
            $(
                assert!(
                    core::mem::offset_of!($crate::bindings::$ty, $($field).+)
                        == $crate::bindings::$off,
                    concat!(
                        "bindgen's offset of ",
                        stringify!($ty),
                        ".",
                        stringify!($($field).+),
                        " differs from C's"
                    ),
                );
            )+
        };
    };
}
pub(crate) use assert_c_layout;
