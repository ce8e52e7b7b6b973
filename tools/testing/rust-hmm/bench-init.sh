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
say "@@@ BENCH-DONE"
sync
reboot -f
