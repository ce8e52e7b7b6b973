#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the kernel crate (rust/) for kernels configured without some of what its HMM modules
# need, each in its own tree, and fail on any error or warning in our files: the kernel crate
# must not break them. Incremental, like build.sh. The configurations (on tinyconfig):
#   build/minimal          kernel/configs/rust_hmm_minimal.config: RUST without MMU_NOTIFIER,
#                          HMM_MIRROR, ZONE_DEVICE and KUNIT;
#   build/minimal-nodevpriv  kernel/configs/rust_hmm_nodevpriv.config: HMM_MIRROR, ZONE_DEVICE
#                          and MIGRATION without DEVICE_PRIVATE (pmem or DAX with a mirror).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ROOT=${RUST_HMM_BUILD:-$REPO/build}

cd "$REPO"
RS=$(git ls-files -co --exclude-standard 'rust/*.rs')
ours=$(echo "$RS" | sed 's/[.]/[.]/g' | paste -sd'|')

for cfg in minimal:rust_hmm_minimal minimal-nodevpriv:rust_hmm_nodevpriv; do
	BUILD=$ROOT/${cfg%%:*}
	fragment=kernel/configs/${cfg#*:}.config
	# A run that warned rebuilds the crate, so that the warnings show again until they are
	# fixed.
	if [ -f "$BUILD/warned" ]; then
		touch "$BUILD/linux/rust/kernel/lib.rs"
		rm -f "$BUILD/warned"
	fi
	RUST_HMM_BUILD=$BUILD RUST_HMM_FRAGMENTS=$fragment RUST_HMM_TARGETS=rust/ \
		RUST_HMM_USERSPACE=0 "$HERE/build.sh" | sed "s/^\[build\]/[build-${cfg%%:*}]/"
	if grep -E -- "--> ($ours):" "$BUILD/logs/kernel.log" >/dev/null; then
		grep -E -B4 -A12 -- "--> ($ours):" "$BUILD/logs/kernel.log" >&2
		touch "$BUILD/warned"
		echo "build-minimal: rustc or clippy warnings in our files with $fragment" >&2
		exit 1
	fi
	echo "[build-${cfg%%:*}] the kernel crate builds with $fragment"
done
