# SPDX-License-Identifier: GPL-2.0
#
# The LLVM toolchain of every kernel build of rust-hmm, sourced by the scripts (and read by the
# top Makefile): clang, lld and the LLVM tools of the major version of rustc's LLVM, because
# CONFIG_RUST_INLINE_HELPERS links clang's bitcode of the C helpers into rustc's bitcode, and
# LLVM reads only the bitcode of its own major version reliably (rustc 1.95 carries LLVM 22).
#
# RUST_HMM_LLVM: the suffix of the tools, as the kernel's LLVM= takes it (clang$RUST_HMM_LLVM,
# ld.lld$RUST_HMM_LLVM...). bindgen loads the libclang of the same version (LIBCLANG_PATH, read
# by clang-sys), so that C is parsed for Rust as clang compiles it.
RUST_HMM_LLVM=${RUST_HMM_LLVM:--22}
export LIBCLANG_PATH=/usr/lib/llvm$RUST_HMM_LLVM/lib
# The arguments of every make in the kernel tree.
KMAKE=(LLVM="$RUST_HMM_LLVM" ARCH=x86_64)
# The rustc versions the kernel crate and the device are tested with (make check): the
# crate uses unstable features that the kernel enables, which change from release to release,
# and rustc's LLVM must be clang's (above). setup.sh checks rustc against it.
RUST_HMM_RUSTC_TESTED="1.95"
