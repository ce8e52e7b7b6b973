#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel crate (rust/) for a tinyconfig + RUST kernel without MMU_NOTIFIER,
# HMM_MIRROR, ZONE_DEVICE and KUNIT (kernel/configs/rust_hmm_minimal.config), in its own tree
# (build/minimal), and fail on any error or warning in our files: the kernel crate must not
# break kernels configured without what its HMM modules need. Incremental, like build.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}/minimal

# A run that warned rebuilds the crate, so that the warnings show again until they are fixed.
if [ -f "$BUILD/warned" ]; then
	touch "$BUILD/linux/rust/kernel/lib.rs"
	rm -f "$BUILD/warned"
fi
RUST_HMM_BUILD=$BUILD RUST_HMM_FRAGMENTS=kernel/configs/rust_hmm_minimal.config \
	RUST_HMM_TARGETS=rust/ RUST_HMM_USERSPACE=0 "$HERE/build.sh" | sed 's/^\[build\]/[build-minimal]/'

cd "$REPO"
RS=$(git ls-files -co --exclude-standard 'rust/*.rs')
ours=$(echo "$RS" | sed 's/[.]/[.]/g' | paste -sd'|')
if grep -E -- "--> ($ours):" "$BUILD/logs/kernel.log" >/dev/null; then
	grep -E -B4 -A12 -- "--> ($ours):" "$BUILD/logs/kernel.log" >&2
	touch "$BUILD/warned"
	echo "build-minimal: rustc or clippy warnings in our files without HMM" >&2
	exit 1
fi
echo "[build-minimal] the kernel crate builds without MMU_NOTIFIER and HMM_MIRROR"
