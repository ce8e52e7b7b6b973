#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make evict-race-unpatched: the use-after-free that patches/ (mm/migrate_device: pin the anon_vma) fixes, shown on a kernel
# without it. Builds the test kernel in build/unpatched without that patch, boots it with the
# C test_hmm only and runs dmirror-evict-race (RELEASE racing a child's munmap) with
# kasan_multi_shot, the console quiet (loglevel=3) so that a round with thousands of reports
# stays short, and the program counting the reports of each round from /dev/kmsg. Prints the
# rounds, the first report, and "evict-race-unpatched: KASAN reported in H of R rounds"; exits
# 0 if the bug showed (the point of the target), 1 if not.
#
# A round that hits the bug takes minutes (thousands of reports); the boot's timeout is an
# hour. Environment: RUST_HMM_EVICT_ROUNDS (default 10), RUST_HMM_EVICT_PAGES (default 4096),
# and run.sh's.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ROUNDS=${RUST_HMM_EVICT_ROUNDS:-10}
PAGES=${RUST_HMM_EVICT_PAGES:-4096}
export RUST_HMM_BUILD=$REPO/build/unpatched

"$HERE/setup.sh" || exit 1
RUST_HMM_SKIP_PATCHES='*-mm-migrate_device-pin-the-anon_vma-*' "$HERE/build.sh" || exit 1
RUST_HMM_SKIP_BUILD=1 RUST_HMM_SUITES=c RUST_HMM_KMEMLEAK=0 \
	RUST_HMM_TIMEOUT=${RUST_HMM_TIMEOUT:-3600} \
	RUST_HMM_APPEND="rust_hmm.only=evict-race rust_hmm.evict_rounds=$ROUNDS rust_hmm.evict_pages=$PAGES kasan_multi_shot loglevel=3" \
	"$HERE/run.sh" >"$RUST_HMM_BUILD/logs/verdict.log" 2>&1
results=$RUST_HMM_BUILD/logs/results.log
grep -E '^(round |kmsg: )' "$results"
hit=$(grep -cE '^round .*KASAN reports [1-9]' "$results")
total=$(grep -cE '^round ' "$results")
grep -h '^@@@ NOTE' "$results" | sed 's/^@@@ NOTE c [^ ]* /evict-race-unpatched: /'
# A round whose report came with a hang (the walk sleeps on the freed anon_vma's rwsem)
# never ends: the boot times out with the report printed.
if ! grep -q '^@@@ DONE' "$results"; then
	echo "evict-race-unpatched: the boot did not end (round $((total + 1)) hung)"
fi
reported=$(grep -c '^kmsg: .*BUG: KASAN' "$results")
echo "evict-race-unpatched: KASAN reported in $hit of $total rounds that ended, of $ROUNDS, of RELEASE racing munmap ($PAGES pages each), on 6.12 without patches/ (mm/migrate_device: pin the anon_vma)"
[ "$reported" -gt 0 ]
