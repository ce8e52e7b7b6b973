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
#
# The migration policy of the GPU-like sample driver (samples/rust/rust_hmm_gpu): the
# wall-clock boot (the instruction-counted one with RUST_HMM_BENCH_ICOUNT=1) then also runs
# gpu-bench (gpu-bench.c) on rust_hmm_gpu.ko loaded "naive" and with its default "policy",
# alternating (bench-init.sh), and bench-policy.py writes the section "### Migration policy"
# at the end of BENCHMARK.md. RUST_HMM_BENCH_SECTION=policy boots once for that section alone
# (no dmirror-bench) and puts it into the existing file, in place of its "### Migration
# policy" section or at its end, leaving the rest as it is. RUST_HMM_BENCH_POLICY_MB (default
# 64, a multiple of 4) scales it for a smoke run: streaming, random and oversubscribed over
# that many MiB with a quarter of it as device memory (vram_mb), ping-pong and atomics over
# 1/64 of it; with another value than 64 the section says it is a smoke run (combine with
# RUST_HMM_BENCH_REPS=1 and RUST_HMM_BENCH_OUT=/tmp/policy.md to keep BENCHMARK.md).
# RUST_HMM_BENCH_POLICY_NAIVE (e.g. "fault_around_order=0 thrash_threshold=0") replaces the
# module parameters of the naive mode (bench-init.sh: GPU_NAIVE).
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
SECTION=${RUST_HMM_BENCH_SECTION:-}
case "$SECTION" in
"" | policy) ;;
*) echo "bench: RUST_HMM_BENCH_SECTION is policy (or unset: everything)" >&2; exit 2 ;;
esac
GPU_MB=${RUST_HMM_BENCH_POLICY_MB:-64}
if ! [[ "$GPU_MB" =~ ^[0-9]+$ ]] || [ "$GPU_MB" -lt 4 ] || [ $((GPU_MB % 4)) != 0 ] ||
	[ "$GPU_MB" -gt 4096 ]; then
	echo "bench: RUST_HMM_BENCH_POLICY_MB is a multiple of 4 from 4 to 4096 (MiB)" >&2
	exit 2
fi

"$HERE/setup.sh"
if [ "${RUST_HMM_SKIP_BUILD:-0}" != 1 ]; then
	RUST_HMM_BUILD=$BUILD RUST_HMM_USERSPACE=0 \
		RUST_HMM_FRAGMENTS="kernel/configs/rust_hmm.config kernel/configs/rust_hmm_bench.config" \
		"$HERE/build.sh"
fi
mkdir -p "$LOGS"
gcc -static -Wall -O2 -I "$KSRC" -o "$BUILD/dmirror-bench" "$HERE/dmirror-bench.c"
gcc -static -Wall -O2 -I "$KSRC" -o "$BUILD/gpu-bench" "$HERE/gpu-bench.c"
GPU_KO=$KSRC/samples/rust/rust_hmm_gpu/rust_hmm_gpu.ko

root=$BUILD/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$HERE/bench-init.sh" "$root/init"
cp "$BUILD/dmirror-bench" "$BUILD/gpu-bench" "$root/bin/"
cp "$KSRC/lib/test_hmm.ko" "$KSRC/lib/test_hmm_rust/test_hmm_rust.ko" "$root/lib/modules/"
if [ ! -f "$GPU_KO" ]; then
	echo "bench: $GPU_KO is missing (CONFIG_SAMPLE_RUST_HMM_GPU=m, kernel/configs/rust_hmm.config)" >&2
	exit 1
fi
cp "$GPU_KO" "$root/lib/modules/"
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
# One benchmark boot: $1 is the QEMU accelerator, $2 the instruction-counting options, $3
# more of the kernel's command line; the logs stay in $LOGS/console.log and $LOGS/bench.log.
bench_boot() {
	local accel=$1 icount_opts=$2 more=${3:-} boot qemu_rc
	for boot in 1 2 3; do
		rm -f "$LOGS/console.log" "$LOGS/bench.log"
		echo "[bench] booting (TCG${icount_opts:+, -icount}, tsc=reliable, $REPS repetitions + 1 warm-up; logs: build/bench/logs/)"
		set +e
		timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
			-accel "$accel" $icount_opts -cpu max -smp 2 -m 6G \
			-kernel "$KSRC/arch/x86/boot/bzImage" -initrd "$BUILD/initramfs.cpio" \
			-append "console=ttyS0 oops=panic panic=-1 tsc=reliable transparent_hugepage=madvise memmap=256M\$0x140000000 memmap=256M\$0x150000000 rust_hmm.bench=$REPS $extra $more" \
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

# The migration-policy part (bench-init.sh) runs in the last boot of the table.
gpu="rust_hmm.bench_gpu=$GPU_MB"
naive=${RUST_HMM_BENCH_POLICY_NAIVE:-}
[ -z "$naive" ] || gpu="$gpu rust_hmm.bench_gpu_naive=$(echo $naive | tr ' ' ,)"
start=$(date +%s)
if [ "$profile" = insn ] || [ -n "$extra" ]; then
	# A profile or a study of a few cells: one boot, as asked.
	accel=tcg,thread=multi
	[ -z "$icount" ] || accel=tcg
	bench_boot "$accel" "$icount"
elif [ "$SECTION" = policy ]; then
	# The migration-policy section alone: one boot without dmirror-bench, on the wall clock
	# (instruction-counted with RUST_HMM_BENCH_ICOUNT=1).
	accel=tcg,thread=multi
	[ -z "$icount" ] || accel=tcg
	bench_boot "$accel" "$icount" "rust_hmm.bench_dmirror=0 $gpu"
	cp "$LOGS/bench.log" "$LOGS/bench-policy.log"
	cp "$LOGS/console.log" "$LOGS/console-policy.log"
else
	# The table: the instruction-counted boot (the headline: the guest's work, deterministic),
	# then the wall-clock one.
	more=
	[ -z "$icount" ] || more=$gpu
	bench_boot tcg "-icount shift=0,sleep=off" "$more"
	cp "$LOGS/bench.log" "$LOGS/bench-icount.log"
	cp "$LOGS/console.log" "$LOGS/console-icount.log"
	policy_boot=icount
	# RUST_HMM_BENCH_ICOUNT=1: that boot only.
	if [ -z "$icount" ]; then
		bench_boot tcg,thread=multi "" "$gpu"
		cp "$LOGS/bench.log" "$LOGS/bench-wall.log"
		cp "$LOGS/console.log" "$LOGS/console-wall.log"
		policy_boot=wall
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
qemu_version=$(qemu-system-x86_64 --version | head -n 1)
if [ "$SECTION" = policy ]; then
	# The section replaces its predecessor in $OUT (or goes at its end); the rest stays.
	policy_clock=wall
	[ -z "$icount" ] || policy_clock=icount
	exec python3 "$HERE/bench-policy.py" --log "$LOGS/bench-policy.log" \
		--console "$LOGS/console-policy.log" --clock "$policy_clock" --out "$OUT" \
		--seconds "$seconds" --qemu "$qemu_version"
fi
# The samples of the tables stay in bench-icount.log and bench-wall.log, apart from the next
# (partial or profiling) run's log.
wall=()
[ -n "$icount" ] || wall=(--wall-log "$LOGS/bench-wall.log" --wall-console "$LOGS/console-wall.log")
python3 "$HERE/bench-table.py" --log "$LOGS/bench-icount.log" --console "$LOGS/console-icount.log" \
	"${wall[@]}" --policy-boot "$policy_boot" --out "$OUT" --seconds "$seconds" \
	--qemu "$qemu_version"
