#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The calls to the C helpers (rust_helper_*, rust/helpers/) left in the Rust code of a built
# tree, and the helpers vmlinux exports: with CONFIG_RUST_INLINE_HELPERS both are 0, without
# it every helper is a call. For each Rust object: the call sites (a call or tail-call jump to
# rust_helper_*: by its relocation in an object or a module, by its target in vmlinux) and the
# rust_helper_* symbols it has (defined or undefined; an inlined helper leaves none).
#
# Usage: helper-calls.sh [TREE] (default build/linux). With --check, exits 1 unless no helper
# is called or exported (check.sh, when the tree's .config has CONFIG_RUST_INLINE_HELPERS=y).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
check=0
if [ "${1:-}" = --check ]; then
	check=1
	shift
fi
KSRC=${1:-${RUST_HMM_BUILD:-$REPO/build}/linux}

# A call or jump to a helper: to its symbol (<rust_helper_foo>, not an offset in it) or through a
# relocation against it. A helper that remains (its address is taken: the allocators pass
# krealloc, kvrealloc and vrealloc as function pointers) is internal to its object, and its own
# jump to the C function is not counted.
calls() {
	objdump -dr --no-show-raw-insn "$1" | awk '
		/^[0-9a-f]+ <.*>:$/ { in_helper = ($2 ~ /^<rust_helper_/) }
		/\t(call|jmp)/ { c = !in_helper; if (c && $0 ~ /<rust_helper_[A-Za-z0-9_]+>$/) n++; next }
		c && /R_X86_64_(PLT32|PC32)[ \t]+rust_helper_/ { n++ }
		{ c = 0 }
		END { print n + 0 }'
}

total=0
printf '%-45s %12s %15s\n' "object" "helper calls" "helper symbols"
for o in rust/kernel.o rust/doctests_kernel_generated.o lib/test_hmm_rust/test_hmm_rust.ko vmlinux; do
	[ -f "$KSRC/$o" ] || continue
	c=$(calls "$KSRC/$o")
	s=$(nm "$KSRC/$o" | grep -c ' rust_helper_' || true)
	printf '%-45s %12s %15s\n' "$o" "$c" "$s"
	total=$((total + c))
done
e=$(grep -c '	rust_helper_' "$KSRC/Module.symvers" || true)
printf '%-45s %12s\n' "helpers exported (Module.symvers)" "$e"
total=$((total + e))
if [ $check = 1 ] && [ $total != 0 ]; then
	echo "helper-calls: CONFIG_RUST_INLINE_HELPERS is set but helpers are still called or exported" >&2
	exit 1
fi
