#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Misuse of the kernel crate's HMM API that its types must reject: each file of compile-fail/
# is the body of a small module (this script adds the module! boilerplate) that a careless
# driver could write, with its first line "// expect: EXXXX", the rustc error it must fail
# with, or "// expect: ok" for a control that must build. Each is built as an external module
# against the test kernel's tree (build/linux, built by build.sh). Prints one line per case and
# "compile-fail: N cases, F wrong"; exits 1 if any case is wrong.
#
# Environment: RUST_HMM_BUILD (default build/).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}
KSRC=$BUILD/linux
OUT=$BUILD/compile-fail
export PATH="$HOME/.cargo/bin:$PATH"
. "$HERE/toolchain.sh"

n=0
wrong=0
for src in "$HERE"/compile-fail/*.rs; do
	name=$(basename "$src" .rs)
	mod=cf_${name//-/_}
	expect=$(sed -n '1s|^// expect: *||p' "$src")
	dir=$OUT/$name
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "obj-m := $mod.o" >"$dir/Kbuild"
	{
		echo "// SPDX-License-Identifier: GPL-2.0"
		echo "#![allow(dead_code, unused_imports)]"
		echo "use kernel::prelude::*;"
		echo "module! { type: M, name: \"$mod\", license: \"GPL\", }"
		echo "struct M;"
		echo "impl kernel::Module for M {"
		echo "    fn init(_module: &'static ThisModule) -> Result<Self> { Ok(M) }"
		echo "}"
		cat "$src"
	} >"$dir/$mod.rs"
	make -C "$KSRC" "${KMAKE[@]}" M="$dir" modules >"$dir/build.log" 2>&1
	rc=$?
	n=$((n + 1))
	if [ "$expect" = ok ]; then
		if [ $rc = 0 ]; then
			echo "compile-fail: ok: $name builds"
		else
			echo "compile-fail: WRONG: $name (a control) does not build:" >&2
			grep -E '^error' -A12 "$dir/build.log" | head -40 >&2
			wrong=$((wrong + 1))
		fi
	elif [ $rc != 0 ] && grep -q "^error\[$expect\]" "$dir/build.log"; then
		echo "compile-fail: ok: $name is rejected ($(grep -m1 "^error\[$expect\]" "$dir/build.log"))"
	elif [ $rc = 0 ]; then
		echo "compile-fail: WRONG: $name builds; it must fail with $expect" >&2
		wrong=$((wrong + 1))
	else
		echo "compile-fail: WRONG: $name fails, but not with $expect:" >&2
		grep -E '^error' -A12 "$dir/build.log" | head -40 >&2
		wrong=$((wrong + 1))
	fi
done
echo "compile-fail: $n cases, $wrong wrong"
[ $wrong = 0 ]
