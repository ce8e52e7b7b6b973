#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: build the benchmark kernel (the test kernel's options without the debug
# fragment, -O2; in build/bench, beside the test kernel's build/), boot it under QEMU TCG with
# tsc=reliable and run dmirror-bench against the C test_hmm and the Rust test_hmm_rust,
# alternating them over the repetitions (bench-init.sh); then write the table
# (bench-table.py) to BENCHMARK.md. Logs: build/bench/logs/{console,bench}.log; the samples
# of the last table written: build/bench/logs/table-samples.log.
#
# Environment: RUST_HMM_BENCH_REPS (counted repetitions, default 5; one more warms up),
# RUST_HMM_BENCH_OUT (the table, default BENCHMARK.md), RUST_HMM_TIMEOUT (seconds for the
# boot, default 3600), RUST_HMM_SKIP_BUILD=1. To study a few cells, RUST_HMM_BENCH_OPS
# (e.g. read,snapshot) and RUST_HMM_BENCH_PAGES (e.g. 64,128): the samples are then only in
# build/bench/logs/bench.log, no table is written. RUST_HMM_BENCH_PROFILE=1 prints the
# function profiler's top kernel functions for one run of each module over those cells on
# minor 0 (RUST_HMM_BENCH_MINOR=2: the device-coherent one), RUST_HMM_BENCH_PROFILE=graph the function graph of their last ioctls, and
# RUST_HMM_BENCH_PROFILE=insn (one operation and one size) the instructions each function
# executes per page, Rust functions included, C module against Rust module (bench-insn.py),
# and the distinct pages of code each operation runs (RUST_HMM_BENCH_PROFILE=pages: and of
# data it touches).
# RUST_HMM_BENCH_SERIES=rust (or c) runs one module only, to profile QEMU from the host
# (perf record -p on its pid): where TCG spends the time, which instruction counts miss.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=$REPO/build/bench
KSRC=$BUILD/linux
LOGS=$BUILD/logs
REPS=${RUST_HMM_BENCH_REPS:-5}
OUT=${RUST_HMM_BENCH_OUT:-$REPO/BENCHMARK.md}
TIMEOUT=${RUST_HMM_TIMEOUT:-3600}
case "${RUST_HMM_BENCH_MINOR:-0}" in
0 | 2) ;;
*) echo "bench: RUST_HMM_BENCH_MINOR is 0 (device-private) or 2 (device-coherent)" >&2; exit 2 ;;
esac

"$HERE/setup.sh"
if [ "${RUST_HMM_SKIP_BUILD:-0}" != 1 ]; then
	RUST_HMM_BUILD=$BUILD RUST_HMM_USERSPACE=0 \
		RUST_HMM_FRAGMENTS="kernel/configs/rust_hmm.config kernel/configs/rust_hmm_bench.config" \
		"$HERE/build.sh"
fi
mkdir -p "$LOGS"
gcc -static -Wall -O2 -I "$KSRC" -o "$BUILD/dmirror-bench" "$HERE/dmirror-bench.c"

root=$BUILD/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$HERE/bench-init.sh" "$root/init"
cp "$BUILD/dmirror-bench" "$root/bin/"
cp "$KSRC/lib/test_hmm.ko" "$KSRC/lib/test_hmm_rust/test_hmm_rust.ko" "$root/lib/modules/"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$BUILD/initramfs.cpio"

# RUST_HMM_BENCH_PROFILE=pages: insn, and the distinct data pages of each operation too.
profile=${RUST_HMM_BENCH_PROFILE:-}
pages=
[ "$profile" != pages ] || { profile=insn pages=,pages=1; }
extra=
[ -z "${RUST_HMM_BENCH_OPS:-}" ] || extra="rust_hmm.bench_ops=$RUST_HMM_BENCH_OPS"
[ -z "${RUST_HMM_BENCH_PAGES:-}" ] || extra="$extra rust_hmm.bench_pages=$RUST_HMM_BENCH_PAGES"
[ -z "$profile" ] || extra="$extra rust_hmm.bench_profile=$profile"
[ -z "${RUST_HMM_BENCH_SERIES:-}" ] || extra="$extra rust_hmm.bench_series=$RUST_HMM_BENCH_SERIES"
[ -z "${RUST_HMM_BENCH_MINOR:-}" ] || extra="$extra rust_hmm.bench_minor=$RUST_HMM_BENCH_MINOR"
# RUST_HMM_BENCH_ICOUNT=1: QEMU counts instructions and the guest's clock follows the count
# (1 ns per instruction), so that a timing measures the work of the guest code, the same
# from run to run whatever the host is doing, rather than the time it took under TCG.
icount=
[ "${RUST_HMM_BENCH_ICOUNT:-0}" = 0 ] || icount="-icount shift=0,sleep=off"
# RUST_HMM_BENCH_PROFILE=insn: instructions per function, C module against Rust module,
# counted by a QEMU plugin (qemu-insn-plugin.c) in one window per module (bench-init.sh).
if [ "$profile" = insn ]; then
	gcc -Wall -O2 -shared -fPIC -o "$BUILD/qemu-insn-plugin.so" "$HERE/qemu-insn-plugin.c"
	sym() { awk -v s="$1" '$3 == s { print $1 }' "$KSRC/System.map"; }
	rm -f "$LOGS"/insn.*
	# Only the timed operations count: dmirror-bench calls getpid and getppid around them.
	gate="start=$(sym __x64_sys_getpid),stop=$(sym __x64_sys_getppid)"
	icount="-icount shift=0,sleep=off -plugin $BUILD/qemu-insn-plugin.so,marker=$(sym __x64_sys_sync),$gate,out=$LOGS/insn$pages"
fi
# The vCPUs run in parallel, one host thread each (multi-threaded TCG), except when QEMU
# counts instructions: -icount runs them round-robin on one thread.
# One benchmark boot: $1 is the QEMU accelerator and instruction-counting options; the logs
# stay in $LOGS/console.log and $LOGS/bench.log.
bench_boot() {
	local accel=$1 icount_opts=$2 boot qemu_rc
	for boot in 1 2 3; do
		rm -f "$LOGS/console.log" "$LOGS/bench.log"
		echo "[bench] booting (TCG${icount_opts:+, -icount}, tsc=reliable, $REPS repetitions + 1 warm-up; logs: build/bench/logs/)"
		set +e
		timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
			-accel "$accel" $icount_opts -cpu max -smp 2 -m 6G \
			-kernel "$KSRC/arch/x86/boot/bzImage" -initrd "$BUILD/initramfs.cpio" \
			-append "console=ttyS0 oops=panic panic=-1 tsc=reliable transparent_hugepage=madvise memmap=256M\$0x140000000 memmap=256M\$0x150000000 rust_hmm.bench=$REPS $extra" \
			-display none -monitor none -no-reboot \
			-serial "file:$LOGS/console.log" -serial "file:$LOGS/bench.log" \
			</dev/null >"$LOGS/qemu.log" 2>&1
		qemu_rc=$?
		set -e
		echo "[bench] QEMU exited with $qemu_rc after $(($(date +%s) - start)) s"
		# The guest could not calibrate its TSC (bench-init.sh): boot again.
		grep -q '^@@@ BENCH-RETRY' "$LOGS/bench.log" || break
		echo "[bench] $(grep '^@@@ BENCH-RETRY' "$LOGS/bench.log" | cut -d' ' -f3-): booting again"
	done
}

start=$(date +%s)
if [ "$profile" = insn ] || [ -n "$extra" ]; then
	# A profile or a study of a few cells: one boot, as asked.
	accel=tcg,thread=multi
	[ -z "$icount" ] || accel=tcg
	bench_boot "$accel" "$icount"
else
	# The table: the instruction-counted boot (the headline: the guest's work, deterministic),
	# then the wall-clock one.
	bench_boot tcg "-icount shift=0,sleep=off"
	cp "$LOGS/bench.log" "$LOGS/bench-icount.log"
	cp "$LOGS/console.log" "$LOGS/console-icount.log"
	# RUST_HMM_BENCH_ICOUNT=1: that boot only.
	if [ -z "$icount" ]; then
		bench_boot tcg,thread=multi ""
		cp "$LOGS/bench.log" "$LOGS/bench-wall.log"
		cp "$LOGS/console.log" "$LOGS/console-wall.log"
	fi
fi
seconds=$(($(date +%s) - start))

if [ "$profile" = insn ]; then
	# The plugin's dumps: boot to the first sync, the C window, between, the Rust window.
	exec python3 "$HERE/bench-insn.py" "$KSRC/System.map" "$LOGS/bench.log" \
		"$LOGS/insn.1" "$LOGS/insn.3"
fi
if [ -n "$extra" ]; then
	cat "$LOGS/bench.log"
	exit 0
fi
# The samples of the tables stay in bench-icount.log and bench-wall.log, apart from the next
# (partial or profiling) run's log.
wall=()
[ -n "$icount" ] || wall=(--wall-log "$LOGS/bench-wall.log" --wall-console "$LOGS/console-wall.log")
python3 "$HERE/bench-table.py" --log "$LOGS/bench-icount.log" --console "$LOGS/console-icount.log" \
	"${wall[@]}" --out "$OUT" --seconds "$seconds" \
	--qemu "$(qemu-system-x86_64 --version | head -n 1)"
