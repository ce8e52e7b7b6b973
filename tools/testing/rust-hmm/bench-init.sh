#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the benchmark initramfs (bench.sh). Runs dmirror-bench for one operation on one
# minor per module load, alternating three series: "c" (test_hmm), "rust" (test_hmm_rust) and
# "c2" (test_hmm again, to measure the noise of the method by comparing C with itself), in an
# order that rotates from one load to the next, plus the memcpy reference, each repetition;
# for the CPU-fault migrate-back on minor 0 also "rust-fa", the Rust device with
# fault_around_order=4 (device-coherent pages do not fault).
# Repetition 0 warms up and is not counted. Samples go to ttyS1 as "BENCH ..." lines, with
# "@@@" marker lines.
# Then, with rust_hmm.bench_gpu=MB (bench.sh: the wall-clock boot, or the only one), the
# migration policy of the GPU-like sample driver (rust_hmm_gpu.ko): gpu-bench runs every
# workload once per load of the module, in mode "naive" (GPU_NAIVE below) or "policy" (its
# defaults), alternating, plus memcpy each repetition; samples as "GPU ..." lines.
# rust_hmm.bench_dmirror=0 skips the dmirror part (RUST_HMM_BENCH_SECTION=policy).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
OUT=/dev/ttyS1
say() { echo "$*" >$OUT; }

SPM="spm_addr_dev0=0x140000000 spm_addr_dev1=0x150000000"
REPS=$(sed -n 's/.*rust_hmm.bench=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$REPS" ] || REPS=5
# To study a few cells: rust_hmm.bench_ops=read,write rust_hmm.bench_pages=64,128.
OPS=$(sed -n 's/.*rust_hmm.bench_ops=\([^ ]*\).*/\1/p' /proc/cmdline)
PAGES=$(sed -n 's/.*rust_hmm.bench_pages=\([^ ]*\).*/\1/p' /proc/cmdline)
# To profile one module from the host (perf on QEMU): rust_hmm.bench_series=rust.
SERIES=$(sed -n 's/.*rust_hmm.bench_series=\([^ ]*\).*/\1/p' /proc/cmdline)
CLOCK=/sys/devices/system/clocksource/clocksource0/current_clocksource

# The kernel switches from tsc-early to tsc a second or two into the boot. Under TCG its
# calibration of the TSC against the PIT sometimes fails, and the clock is then jiffies
# for good: say so, and bench.sh boots again.
i=0
while [ "$(cat $CLOCK)" != tsc ] && [ $i -lt 10 ]; do
	sleep 1
	i=$((i + 1))
done
if [ "$(cat $CLOCK)" != tsc ]; then
	say "@@@ BENCH-RETRY clocksource is $(cat $CLOCK)"
	sync
	reboot -f
fi

# rust_hmm.bench_profile=1: the function profiler's top functions (time including children)
# of one run of each module over the cells chosen, instead of the benchmark;
# rust_hmm.bench_profile=graph: the function graph (C functions only) of its last ioctls;
# rust_hmm.bench_profile=insn: a second run of each module (the first one adds the device
# memory) between two sync(2) calls, where bench.sh's QEMU plugin counts the instructions of
# every function, Rust code included; the module's symbols go to the log.
PROFILE=$(sed -n 's/.*rust_hmm.bench_profile=\([^ ]*\).*/\1/p' /proc/cmdline)
# rust_hmm.bench_minor=2: profile the device-coherent minor instead of minor 0.
PMINOR=$(sed -n 's/.*rust_hmm.bench_minor=\([0-9]\).*/\1/p' /proc/cmdline)
PDEVS="/dev/hmm_dmirror0 -"
[ "$PMINOR" = 2 ] && PDEVS="- /dev/hmm_dmirror2"
if [ -n "$PROFILE" ]; then
	T=/sys/kernel/tracing
	mount -t tracefs tracefs $T
	for s in c rust; do
		mod=test_hmm
		[ $s = rust ] && mod=test_hmm_rust
		insmod /lib/modules/$mod.ko $SPM
		if [ "$PROFILE" = insn ]; then
			/bin/dmirror-bench $s 0 $PDEVS ${OPS:-all} $PAGES >/dev/null 2>&1
			say "@@@ INSN $s"
			grep "\[$mod\]" /proc/kallsyms >$OUT
			sync
			RUST_HMM_BENCH_GATE=1 /bin/dmirror-bench $s 1 $PDEVS ${OPS:-all} \
				$PAGES >$OUT 2>&1
			sync
			rmmod $mod
			continue
		fi
		if [ "$PROFILE" = graph ]; then
			echo function_graph >$T/current_tracer
			echo __x64_sys_ioctl >$T/set_graph_function
			echo funcgraph-abstime >$T/trace_options
			echo >$T/trace
			echo 1 >$T/tracing_on
		else
			echo 0 >$T/function_profile_enabled
			echo 1 >$T/function_profile_enabled
		fi
		/bin/dmirror-bench $s 0 $PDEVS ${OPS:-all} $PAGES >$OUT 2>&1
		if [ "$PROFILE" = graph ]; then
			echo 0 >$T/tracing_on
			say "@@@ GRAPH $s"
			tail -n 300 $T/trace >$OUT
			echo nop >$T/current_tracer
		else
			echo 0 >$T/function_profile_enabled
			say "@@@ PROFILE $s"
			head -n 400 $T/trace_stat/function0 >$OUT
		fi
		rmmod $mod
	done
	say "@@@ BENCH-DONE"
	sync
	reboot -f
fi
say "@@@ BENCH-BOOT $(uname -r) clocksource=$(cat $CLOCK) cpus=$(nproc)"
say "@@@ BENCH-CPU $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
# The order of the Rust device's fault-around in series rust-fa: 16 pages, 64 KiB, the
# default fault_around_bytes of the kernel's own fault-around for file pages.
FA_ORDER=4
# rotate N A B C...: the words A B C... rotated left by N modulo their count.
rotate() {
	k=$(($1 % ($# - 1)))
	shift
	i=0
	for x in "$@"; do [ $i -ge $k ] && printf '%s ' "$x"; i=$((i + 1)); done
	i=0
	for x in "$@"; do [ $i -lt $k ] && printf '%s ' "$x"; i=$((i + 1)); done
}
ALL_OPS="read write migrate_to_dev fault_back migrate_to_sys exclusive snapshot"
[ -z "$OPS" ] || ALL_OPS=$(echo "$OPS" | tr , ' ')
rep=0
grep -q 'rust_hmm.bench_dmirror=0' /proc/cmdline && rep=$((REPS + 1))
while [ $rep -le "$REPS" ]; do
	# One module load per operation and minor (four sizes), the series alternating, so that a
	# slower stretch of the host hits C and Rust alike.
	turn=$rep
	for op in $ALL_OPS; do
		for minor in 0 2; do
			# Fault-back also runs the Rust device with its fault-around (FA_ORDER).
			series="c rust c2"
			[ $op = fault_back ] && [ $minor = 0 ] && series="c rust c2 rust-fa"
			[ -z "$SERIES" ] || series=$(echo "$SERIES" | tr , ' ')
			order=$(rotate $turn $series)
			turn=$((turn + 1))
			if [ $minor = 0 ]; then
				devs="/dev/hmm_dmirror0 -"
			else
				devs="- /dev/hmm_dmirror2"
			fi
			for s in $order; do
				params=$SPM
				case $s in
				rust) mod=test_hmm_rust ;;
				rust-fa) mod=test_hmm_rust params="$SPM fault_around_order=$FA_ORDER" ;;
				*) mod=test_hmm ;;
				esac
				if ! insmod /lib/modules/$mod.ko $params; then
					say "@@@ BENCH-FAIL insmod $mod"
					continue
				fi
				/bin/dmirror-bench $s $rep $devs $op $PAGES >$OUT 2>/tmp/err ||
					say "@@@ BENCH-FAIL $(tail -n 1 /tmp/err)"
				rmmod $mod || say "@@@ BENCH-FAIL rmmod $mod"
			done
		done
	done
	/bin/dmirror-bench --memcpy $rep >$OUT 2>/tmp/err || say "@@@ BENCH-FAIL $(tail -n 1 /tmp/err)"
	# Under TCG the guest may give up on the TSC mid-run: every sample after that is
	# quantized to jiffies, so the run says so and the table is not written.
	[ "$(cat $CLOCK)" = tsc ] || say "@@@ BENCH-FAIL clocksource is $(cat $CLOCK) after repetition $rep"
	rep=$((rep + 1))
done

# The migration policy of the GPU-like sample driver, with rust_hmm.bench_gpu=MB: MB (64) is
# the size of streaming and random, 4 times the device memory (vram_mb=MB/4) and the size of
# oversubscribed; ping-pong and atomics take MB/64 MiB (1 MiB).
GPU_MB=$(sed -n 's/.*rust_hmm.bench_gpu=\([0-9]*\).*/\1/p' /proc/cmdline)
GPU_KO=/lib/modules/rust_hmm_gpu.ko
# Naive: one page per device fault, per CPU fault and per eviction step, no thrashing
# detection, atomics through exclusive access page by page, device reads migrate (no
# read-mostly service in place), no huge mapping in place; rust_hmm.bench_gpu_naive=A=0,B=0
# (bench.sh: RUST_HMM_BENCH_POLICY_NAIVE) sets other parameters.
GPU_NAIVE="fault_around_order=0 cpu_fault_around_order=0 evict_order=0 thrash_threshold=0 migrate_atomics=0 read_in_place=0 huge_map=0"
naive=$(sed -n 's/.*rust_hmm.bench_gpu_naive=\([^ ]*\).*/\1/p' /proc/cmdline)
[ -z "$naive" ] || GPU_NAIVE=$(echo "$naive" | tr , ' ')
GPU_WORKLOADS="streaming random ping-pong atomics oversubscribed"
PINGPONG_ROUNDS=50
ATOMIC_ROUNDS=10
OVERSUB_PASSES=3
gpu_part() {
	vram=$((GPU_MB / 4))
	big=$((GPU_MB * 1024))
	small=$((GPU_MB * 16))
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	say "@@@ GPU-BEGIN uptime=$(cut -d' ' -f1 /proc/uptime) mb=$GPU_MB vram_mb=$vram"
	rep=0
	while [ $rep -le "$REPS" ]; do
		# Naive first in even repetitions, policy first in odd ones.
		order="naive policy"
		[ $((rep % 2)) = 1 ] && order="policy naive"
		for mode in $order; do
			params="vram_mb=$vram"
			[ $mode = naive ] && params="$params $GPU_NAIVE"
			if ! insmod $GPU_KO $params; then
				say "@@@ GPU-FAIL insmod rust_hmm_gpu $params"
				return
			fi
			if [ $rep = 0 ]; then
				loaded=
				for f in /sys/module/rust_hmm_gpu/parameters/*; do
					loaded="$loaded ${f##*/}=$(cat $f)"
				done
				say "@@@ GPU-PARAMS $mode given: $params; loaded:$loaded"
			fi
			for w in $GPU_WORKLOADS; do
				case $w in
				streaming | random) args=$big ;;
				ping-pong) args="$small $PINGPONG_ROUNDS" ;;
				atomics) args="$small $ATOMIC_ROUNDS" ;;
				oversubscribed) args="$((vram * 4 * 1024)) $OVERSUB_PASSES" ;;
				esac
				if ! /bin/gpu-bench $mode $rep $w $args >$OUT 2>/tmp/err; then
					# A wrong byte or a failed command: the section is not written.
					say "@@@ GPU-FAIL $(tail -n 1 /tmp/err)"
					rmmod rust_hmm_gpu
					return
				fi
			done
			rmmod rust_hmm_gpu || { say "@@@ GPU-FAIL rmmod rust_hmm_gpu"; return; }
		done
		/bin/gpu-bench --memcpy $rep $big >$OUT 2>/tmp/err || say "@@@ GPU-FAIL $(tail -n 1 /tmp/err)"
		[ "$(cat $CLOCK)" = tsc ] || say "@@@ GPU-FAIL clocksource is $(cat $CLOCK) after repetition $rep"
		rep=$((rep + 1))
	done
	say "@@@ GPU-END uptime=$(cut -d' ' -f1 /proc/uptime)"
}
[ -z "$GPU_MB" ] || [ "$GPU_MB" = 0 ] || gpu_part
say "@@@ BENCH-DONE"
sync
reboot -f
