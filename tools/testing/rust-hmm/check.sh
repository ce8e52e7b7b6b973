#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole rust-hmm test suite: hygiene of our sources, the harness's own unit tests, then
# the test boot (run.sh: hmm-tests on C and Rust, the GPU sample driver's kselftest, KUnit
# doctests, kernel reports).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}
KSRC=$BUILD/linux
LOGS=$BUILD/logs
export PATH="$HOME/.cargo/bin:$PATH"
fail=0
bad() { echo "check: $*" >&2; fail=1; }

"$HERE/setup.sh"
"$HERE/build.sh"

cd "$REPO"
# Our Rust files: everything at a kernel path in this repository.
RS=$(git ls-files -co --exclude-standard 'rust/*.rs' 'lib/*.rs' 'drivers/*.rs' 'samples/*.rs')
DRIVER_RS=$(echo "$RS" | grep -E '^(lib|drivers|samples)/' || true)

# 1. rustfmt, with the kernel's settings.
echo "[check] rustfmt"
rustfmt --check --edition 2021 --config-path "$KSRC/.rustfmt.toml" $RS || bad "rustfmt: run 'make fmt'"

# 2. clippy: the build runs with CLIPPY=1; make sure our crates were compiled in the log read.
echo "[check] clippy"
if ! grep -q 'rust/kernel.o' "$LOGS/kernel.log" || ! grep -q 'test_hmm_rust.o' "$LOGS/kernel.log"; then
	touch "$KSRC/rust/kernel/lib.rs" "$KSRC/lib/test_hmm_rust/test_hmm_rust.rs"
	"$HERE/build.sh" >/dev/null
fi
ours=$(echo "$RS" | sed 's/[.]/[.]/g' | paste -sd'|')
if grep -E -- "--> ($ours):" "$LOGS/kernel.log" >/dev/null; then
	grep -E -B4 -A12 -- "--> ($ours):" "$LOGS/kernel.log" >&2
	bad "rustc or clippy warnings in our files"
fi

# 2b. The C helpers are inlined (CONFIG_RUST_INLINE_HELPERS): no Rust object calls one and
# vmlinux exports none.
echo "[check] helpers inlined"
if grep -q '^CONFIG_RUST_INLINE_HELPERS=y' "$KSRC/.config"; then
	"$HERE/helper-calls.sh" --check "$KSRC" || bad "C helpers are called or exported"
fi

# 2c. rustdoc of the kernel crate: no warning in our files (broken or private intra-doc
# links, bare URLs, invalid code blocks...). The HTML lands in $KSRC/Documentation/output/rust.
echo "[check] rustdoc and htmldocs (Documentation/rust)"
. "$HERE/toolchain.sh"
# `make htmldocs` (2c' below) builds the rustdoc too, with CONFIG_RUST: one build, one log.
rustdoc_log=$LOGS/htmldocs.log
make -C "$KSRC" "${KMAKE[@]}" CLIPPY=1 htmldocs SPHINXDIRS=rust >"$rustdoc_log" 2>&1 ||
	bad "htmldocs: the build failed (see $rustdoc_log)"
# A warning's first location line ("--> path:line:col") names its file.
rustdoc_ours=$(awk -v ours="^($ours):" '
	/^warning: [0-9]+ warnings? emitted/ { next }
	/^(warning|error)/ { pending = 1; next }
	pending && /^ *--> / { pending = 0; f = $2; if (f ~ ours) n++ }
	END { print n + 0 }' "$rustdoc_log")
echo "rustdoc: $rustdoc_ours warnings"
if [ "$rustdoc_ours" != 0 ]; then
	grep -E -B2 -A10 -- "--> ($ours):" "$rustdoc_log" >&2
	bad "rustdoc warnings in our files"
fi

# 2c'. Documentation/rust/hmm.rst renders (make htmldocs of Documentation/rust) without a
# warning of its own; the HTML lands in $KSRC/Documentation/output/rust/hmm.html.
htmldocs_log=$rustdoc_log
htmldocs_ours=$(grep -c 'Documentation/rust/hmm\.rst' "$htmldocs_log" || true)
echo "htmldocs: Documentation/rust/hmm.rst: $htmldocs_ours warnings"
if [ "$htmldocs_ours" != 0 ] || [ ! -s "$KSRC/Documentation/output/rust/hmm.html" ]; then
	grep 'Documentation/rust/hmm\.rst' "$htmldocs_log" >&2 || true
	bad "htmldocs: Documentation/rust/hmm.rst has warnings or did not render"
fi

# 2d. Every fallible public function of the kernel crate has an `# Errors` section.
echo "[check] # Errors sections"
python3 "$HERE/doc-errors.py" $(echo "$RS" | grep '^rust/kernel/') || bad "doc-errors: a fallible public function has no # Errors section"

# 3. checkpatch on our patches to existing kernel files and on our C files.
echo "[check] checkpatch"
for p in patches/*.patch; do
	# From stdin: given the path of a file git tracks, checkpatch checks it as a source file.
	# Without the kernel's git history, the commit ids of Fixes: tags cannot be looked up.
	"$KSRC/scripts/checkpatch.pl" --no-tree -q --ignore UNKNOWN_COMMIT_ID - <"$p" || bad "checkpatch: $p"
done
for c in $(git ls-files -co --exclude-standard 'rust/helpers/*.c'); do
	"$KSRC/scripts/checkpatch.pl" --no-tree -q -f "$c" || bad "checkpatch: $c"
done

# 4. Drivers and samples use the kernel crate's safe API: no unsafe and no bindings, apart
# from FromBytes/AsBytes on their uapi structs.
echo "[check] no unsafe in drivers and samples"
for f in $DRIVER_RS; do
	grep -nE '\bunsafe\b|bindings::' "$f" | grep -vE '^[0-9]+:\s*//' |
		grep -vE '^[0-9]+:unsafe impl (FromBytes|AsBytes) for \w+ \{\}$' |
		sed "s|^|$f:|" | grep . >&2 && bad "$f uses unsafe or bindings"
done

# 5. C helpers are one-line wrappers.
echo "[check] helpers are one-line wrappers"
for c in $(git ls-files -co --exclude-standard 'rust/helpers/*.c'); do
	awk -v f="$c" '
		/^\{/ { body = 0; inside = 1; next }
		/^\}/ { if (body != 1) { print f ": a helper body has " body " lines"; bad = 1 } inside = 0; next }
		inside && NF { body++ }
		END { exit bad }' "$c" >&2 || bad "$c"
done

# 6. The verdict's own tests: it must fail on what it is there to catch.
echo "[check] verdict unit tests"
python3 "$HERE/test_verdict.py" -q 2>&1 | tail -3 || bad "verdict.py unit tests"

# 7. The kernel crate builds, without warnings, for a kernel without MMU_NOTIFIER, HMM_MIRROR,
# ZONE_DEVICE and KUNIT, and for one with HMM_MIRROR and ZONE_DEVICE but no DEVICE_PRIVATE (their
# own trees, build/minimal*).
echo "[check] kernel crate without HMM (build-minimal.sh)"
"$HERE/build-minimal.sh" || bad "the kernel crate does not build without HMM"

# 8. Misuse of the HMM API that its types must reject, built as external modules.
echo "[check] compile-fail cases (compile-fail.sh)"
"$HERE/compile-fail.sh" || bad "an API misuse of compile-fail/ builds, or a control does not"

if [ $fail != 0 ]; then
	echo "check: hygiene failed; not booting" >&2
	exit 1
fi

# 9. The test boot: hmm-tests on the C reference and the Rust device, gpu-tests on the GPU
# sample driver, KUnit doctests. The verdict's summary shows "gpu sample: N passed, F failed,
# S skipped" (F or S not 0 fails it), then ends with the Rust device's line.
RUST_HMM_SKIP_BUILD=1 exec "$HERE/run.sh"
