#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the rust-hmm test kernel: extract Debian's 6.12 source into build/linux
# (once), lay this repository's kernel files over it, apply patches/, configure
# from kernel/configs/rust_hmm*.config and build the kernel, both HMM test
# modules and the static hmm-tests binary. Every step is incremental: only what
# changed is copied, so kbuild rebuilds only what depends on it.
#
# Environment: RUST_HMM_BUILD (default build/), RUST_HMM_FRAGMENTS (config fragments, default
# the test kernel's), RUST_HMM_TARGETS (default "bzImage modules"), RUST_HMM_USERSPACE=0 (skip
# the userspace test programs): build-minimal.sh uses them for a kernel without HMM.
# RUST_HMM_SKIP_PATCHES: a glob of patches/ not to apply (evict-race-unpatched.sh).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}
KSRC=$BUILD/linux
TARBALL=${RUST_HMM_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
LOGS=$BUILD/logs
export PATH="$HOME/.cargo/bin:$PATH"
. "$REPO/tools/testing/rust-hmm/toolchain.sh"
MAKEFLAGS_K=("${KMAKE[@]}" -j"$(nproc)")

# Directories of this repository that are kernel paths and laid over the source.
OVERLAY_DIRS="Documentation drivers include kernel lib rust samples tools/testing/selftests"

mkdir -p "$BUILD" "$LOGS"
step() { printf '[build] %s\n' "$*"; }

# 1. Extract, once per tarball.
stamp="$(stat -c '%s %Y' "$TARBALL") $TARBALL"
if [ ! -f "$KSRC/.rust-hmm-extracted" ] || [ "$(cat "$KSRC/.rust-hmm-extracted")" != "$stamp" ]; then
	step "extracting $TARBALL"
	rm -rf "$KSRC" "$BUILD/pristine" "$BUILD/overlay.list" "$BUILD/tmp"
	mkdir -p "$BUILD/tmp"
	tar -xf "$TARBALL" -C "$BUILD/tmp"
	mv "$BUILD/tmp"/linux-source-* "$KSRC"
	rmdir "$BUILD/tmp"
	echo "$stamp" >"$KSRC/.rust-hmm-extracted"
fi

# Copy $1 to $2 only when the content differs, so mtimes move only on change.
sync_file() {
	if ! cmp -s "$1" "$2"; then
		mkdir -p "$(dirname "$2")"
		cp "$1" "$2"
		echo "$2" >>"$BUILD/changed.list"
	fi
}
: >"$BUILD/changed.list"

# 2. Overlay: new files at their kernel paths. Files dropped from the
# repository since the last run are removed from the tree again.
cd "$REPO"
new_list=$(for d in $OVERLAY_DIRS; do if [ -d "$d" ]; then find "$d" -type f; fi; done | sort)
if [ -f "$BUILD/overlay.list" ]; then
	comm -23 "$BUILD/overlay.list" <(echo "$new_list") | while read -r f; do
		if [ -n "$f" ]; then rm -f "$KSRC/$f"; step "removed $f"; fi
	done
fi
for f in $new_list; do
	if [ -e "$KSRC/$f" ] && ! grep -qxF "$f" "$BUILD/overlay.list" 2>/dev/null; then
		echo "build: $f exists in the kernel source: change it with a patch" >&2
		exit 1
	fi
	sync_file "$REPO/$f" "$KSRC/$f"
done
echo "$new_list" >"$BUILD/overlay.list"

# 3. Patches: every file a patch ever touched is regenerated from its pristine
# copy with the current patch set, so editing or dropping a patch just works.
mkdir -p "$BUILD/pristine"
work=$(mktemp -d "$BUILD/patch.XXXXXX")
trap 'rm -rf "$work"' EXIT
skipped() { [ -n "${RUST_HMM_SKIP_PATCHES:-}" ] && [[ "$(basename "$1")" == $RUST_HMM_SKIP_PATCHES ]]; }
touched=$(cat patches/*.patch 2>/dev/null | sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' | sort -u)
for f in $touched; do
	if [ ! -e "$BUILD/pristine/$f" ]; then
		mkdir -p "$(dirname "$BUILD/pristine/$f")"
		cp "$KSRC/$f" "$BUILD/pristine/$f"
	fi
done
(cd "$BUILD/pristine" && find . -type f) | while read -r f; do
	mkdir -p "$work/$(dirname "$f")"
	cp "$BUILD/pristine/$f" "$work/$f"
done
for p in patches/*.patch; do
	[ -e "$p" ] || continue
	if skipped "$p"; then
		step "not applying $p"
		continue
	fi
	patch -s -p1 -d "$work" --no-backup-if-mismatch <"$p" ||
		{ echo "build: $p does not apply" >&2; exit 1; }
done
(cd "$work" && find . -type f) | while read -r f; do sync_file "$work/$f" "$KSRC/$f"; done

# 4. Configure: tinyconfig plus the fragments, redone when a fragment or a
# patch (Kconfig) changed; an unchanged result keeps the old .config's mtime.
FRAGMENTS=${RUST_HMM_FRAGMENTS:-kernel/configs/rust_hmm.config kernel/configs/rust_hmm_debug.config}
TARGETS=${RUST_HMM_TARGETS:-bzImage modules}
cfg_hash=$( (cat $FRAGMENTS patches/*.patch; echo "${RUST_HMM_SKIP_PATCHES:-}") | sha256sum | cut -d' ' -f1)
if [ ! -f "$KSRC/.config" ] || [ "$(cat "$BUILD/config.hash" 2>/dev/null)" != "$cfg_hash" ]; then
	step "configuring (tinyconfig + ${FRAGMENTS//kernel\/configs\//})"
	[ -f "$KSRC/.config" ] && cp -p "$KSRC/.config" "$BUILD/config.old"
	make -C "$KSRC" "${MAKEFLAGS_K[@]}" tinyconfig >"$LOGS/config.log" 2>&1
	(cd "$KSRC" && scripts/kconfig/merge_config.sh -m .config $(cd "$REPO" && realpath $FRAGMENTS)) \
		>>"$LOGS/config.log" 2>&1
	make -C "$KSRC" "${MAKEFLAGS_K[@]}" olddefconfig >>"$LOGS/config.log" 2>&1
	bad=0
	for frag in $FRAGMENTS; do
		while read -r line; do
			case "$line" in
			CONFIG_*=*) want=$line ;;
			"# CONFIG_"*" is not set") want=$line ;;
			*) continue ;;
			esac
			sym=$(echo "$want" | grep -o 'CONFIG_[A-Za-z0-9_]*')
			have=$(grep -E "^($sym=|# $sym is not set)" "$KSRC/.config" || echo "# $sym is not set")
			if [ "$have" != "$want" ]; then
				echo "build: $frag wants '$want' but got '$have'" >&2
				if [ "$sym" = CONFIG_RUST_INLINE_HELPERS ] &&
					! grep -q '^CONFIG_RUSTC_CLANG_LLVM_COMPATIBLE=y' "$KSRC/.config"; then
					echo "build: rustc's and clang$RUST_HMM_LLVM's LLVM differ (setup.sh says what to install)" >&2
				fi
				bad=1
			fi
		done <"$frag"
	done
	[ $bad = 0 ] || exit 1
	if [ -f "$BUILD/config.old" ] && cmp -s "$BUILD/config.old" "$KSRC/.config"; then
		cp -p "$BUILD/config.old" "$KSRC/.config"
	fi
	echo "$cfg_hash" >"$BUILD/config.hash"
fi

# 5. Kernel and modules. CLIPPY=1 runs clippy as the Rust compiler, so its
# warnings land in the log that `check.sh` reads.
step "make (log: build/logs/kernel.log)"
if ! make -C "$KSRC" "${MAKEFLAGS_K[@]}" CLIPPY=1 $TARGETS >"$LOGS/kernel.log" 2>&1; then
	grep -E 'error|Error|warning' "$LOGS/kernel.log" | tail -40 >&2
	echo "build: kernel build failed; see $LOGS/kernel.log" >&2
	exit 1
fi

if [ "${RUST_HMM_USERSPACE:-1}" = 0 ]; then
	step "done"
	exit 0
fi

# 6. The unmodified hmm-tests, static, against this tree's headers (installed again when our
# uapi header of the GPU sample changed).
GPU_UAPI=$KSRC/include/uapi/linux/rust_hmm_gpu.h
if [ ! -f "$KSRC/usr/include/linux/types.h" ] || [ "$KSRC/Makefile" -nt "$KSRC/usr/include/linux/types.h" ] ||
	[ "$GPU_UAPI" -nt "$KSRC/usr/include/linux/rust_hmm_gpu.h" ]; then
	make -C "$KSRC" "${MAKEFLAGS_K[@]}" headers >"$LOGS/headers.log" 2>&1
fi
SELFTEST=$KSRC/tools/testing/selftests/mm/hmm-tests.c
if [ ! -x "$BUILD/hmm-tests" ] || [ "$SELFTEST" -nt "$BUILD/hmm-tests" ] ||
	[ "$KSRC/lib/test_hmm_uapi.h" -nt "$BUILD/hmm-tests" ]; then
	step "hmm-tests (static)"
	gcc -static -Wall -O2 -U_FORTIFY_SOURCE -no-pie -I "$KSRC" -isystem "$KSRC/usr/include" \
		-isystem "$KSRC/tools/include/uapi" -o "$BUILD/hmm-tests" "$SELFTEST" -lrt -lpthread -lm
fi
CHECKS=$REPO/tools/testing/rust-hmm/dmirror-checks.c
if [ ! -x "$BUILD/dmirror-checks" ] || [ "$CHECKS" -nt "$BUILD/dmirror-checks" ]; then
	step "dmirror-checks (static)"
	gcc -static -Wall -O2 -I "$KSRC" -isystem "$KSRC/usr/include" -o "$BUILD/dmirror-checks" "$CHECKS" -lpthread
fi
PAGEMAP=$REPO/tools/testing/rust-hmm/dmirror-pagemap.c
if [ ! -x "$BUILD/dmirror-pagemap" ] || [ "$PAGEMAP" -nt "$BUILD/dmirror-pagemap" ]; then
	step "dmirror-pagemap (static)"
	gcc -static -Wall -O2 -I "$KSRC" -isystem "$KSRC/usr/include" -o "$BUILD/dmirror-pagemap" "$PAGEMAP"
fi
for prog in dmirror-lifecycle dmirror-stress dmirror-bench dmirror-evict-race; do
	src=$REPO/tools/testing/rust-hmm/$prog.c
	if [ ! -x "$BUILD/$prog" ] || [ "$src" -nt "$BUILD/$prog" ]; then
		step "$prog (static)"
		gcc -static -Wall -O2 -I "$KSRC" -isystem "$KSRC/usr/include" -o "$BUILD/$prog" "$src" -lpthread
	fi
done
FUZZ=$REPO/tools/testing/rust-hmm/dmirror-fuzz.c
if [ ! -x "$BUILD/dmirror-fuzz" ] || [ "$FUZZ" -nt "$BUILD/dmirror-fuzz" ]; then
	step "dmirror-fuzz (static)"
	gcc -static -Wall -O2 -I "$KSRC" -isystem "$KSRC/usr/include" -o "$BUILD/dmirror-fuzz" "$FUZZ" -lpthread
fi
# The kselftest of the GPU sample driver (tools/testing/selftests/rust_hmm_gpu, on the kernel's
# kselftest_harness.h), static like the rest; compiled in its directory for short log lines.
GPU_TESTS=$KSRC/tools/testing/selftests/rust_hmm_gpu/gpu-tests.c
if [ ! -x "$BUILD/gpu-tests" ] || [ "$GPU_TESTS" -nt "$BUILD/gpu-tests" ] ||
	[ "$KSRC/usr/include/linux/rust_hmm_gpu.h" -nt "$BUILD/gpu-tests" ]; then
	step "gpu-tests (static)"
	(cd "$(dirname "$GPU_TESTS")" && gcc -static -Wall -O2 -isystem "$KSRC/usr/include" \
		-o "$BUILD/gpu-tests" gpu-tests.c -lpthread)
fi
step "done"
