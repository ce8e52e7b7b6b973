#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Self-test of the harness: build the Rust device with a WARN injected into its open (a
# 1 TiB allocation, which the page allocator WARNs about), boot, and require that the run
# fails and names the WARNING, although hmm-tests' results are otherwise unchanged. The tree
# is restored (and rebuilt) afterwards.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}
KSRC=$BUILD/linux
export PATH="$HOME/.cargo/bin:$PATH"
. "$HERE/toolchain.sh"

"$HERE/build.sh"
target=$KSRC/lib/test_hmm_rust/dmirror.rs
restore() { "$HERE/build.sh" >/dev/null; }
trap restore EXIT
python3 - "$target" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
anchor = "    fn open(mdevice: &Arc<DmirrorDevice>, _file: &File) -> Result<Pin<KBox<Dmirror>>> {\n"
assert anchor in s, "inject-warn: open() not found"
s = s.replace(anchor, anchor + "        let _ = KVec::<u8>::with_capacity(1 << 40, GFP_KERNEL);\n")
open(p, "w").write(s)
PY
make -C "$KSRC" "${KMAKE[@]}" -j"$(nproc)" modules >"$BUILD/logs/inject-warn-build.log" 2>&1
set +e
RUST_HMM_SKIP_BUILD=1 RUST_HMM_KMEMLEAK=0 "$HERE/run.sh" >"$BUILD/logs/inject-warn.log" 2>&1
rc=$?
set -e
if [ $rc != 0 ] && grep -q "kernel report on the console" "$BUILD/logs/inject-warn.log" &&
	grep -q "WARNING: CPU" "$BUILD/logs/inject-warn.log"; then
	grep -m1 -A3 "kernel report on the console" "$BUILD/logs/inject-warn.log"
	echo "inject-warn: the injected WARN failed the run (exit $rc), as it must"
	exit 0
fi
echo "inject-warn: the injected WARN did NOT fail the run (exit $rc); see build/logs/inject-warn.log" >&2
exit 1
