#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the rust-hmm test initramfs. Kernel messages go to ttyS0; test output goes to
# ttyS1, between "@@@" marker lines that verdict.py reads. Runs the unmodified hmm-tests
# against the C test_hmm, unloads it, then against the Rust test_hmm_rust, then the kselftest
# of the GPU sample driver (gpu-tests on rust_hmm_gpu.ko), then powers off.
# rust_hmm.tests=c,rust,gpu (the default) chooses the suites.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages
OUT=/dev/ttyS1
say() { echo "$*" >$OUT; }

SPM="spm_addr_dev0=0x140000000 spm_addr_dev1=0x150000000"
NR_HUGEPAGES=64
TESTS=$(sed -n 's/.*rust_hmm.tests=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
[ -n "$TESTS" ] || TESTS="c rust gpu"
KMEMLEAK=/sys/kernel/debug/kmemleak
grep -q 'rust_hmm.kmemleak=0' /proc/cmdline && KMEMLEAK=/nonexistent
FUZZ=$(sed -n 's/.*rust_hmm.fuzz=\([0-9]*\).*/\1/p' /proc/cmdline)
FUZZ_SEED=$(sed -n 's/.*rust_hmm.fuzz_seed=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$FUZZ" ] || FUZZ=0
STRESS=$(sed -n 's/.*rust_hmm.stress=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$STRESS" ] || STRESS=0
EVICT_ROUNDS=$(sed -n 's/.*rust_hmm.evict_rounds=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$EVICT_ROUNDS" ] || EVICT_ROUNDS=12
EVICT_PAGES=$(sed -n 's/.*rust_hmm.evict_pages=\([0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$EVICT_PAGES" ] || EVICT_PAGES=4096
# rust_hmm.only=evict-race: only the eviction race reproducer, for each suite (make
# evict-race-unpatched boots a kernel without the mm fix with it); rust_hmm.only=checks: only
# dmirror-checks, to debug them.
ONLY=$(sed -n 's/.*rust_hmm.only=\([a-z-]*\).*/\1/p' /proc/cmdline)

# kmemleak: forget what boot left behind, so the final scan reports the tests' leaks only.
if [ -w $KMEMLEAK ]; then
	echo scan >$KMEMLEAK
	echo clear >$KMEMLEAK
fi

echo $NR_HUGEPAGES >/proc/sys/vm/nr_hugepages
say "@@@ BOOTED $(uname -r)"
# The CPUs the kernel brought up and its preemption model ("SMP PREEMPT" in its version): the
# verdict fails a test boot that is not SMP.
say "@@@ CPUS $(grep -c '^processor' /proc/cpuinfo) $(uname -v | grep -o 'SMP\( PREEMPT[_A-Z]*\)\?' || echo UP)"

# Run a command in the background and wait for it, so its pid is known: kmemleak names the
# task that allocated a leaked object, and verdict.py charges each leak to the suite whose
# commands allocated it. (The C module leaks its devices' names: it never puts them.)
run() {
	suite=$1
	shift
	"$@" &
	pid=$!
	say "@@@ PID $suite $pid $1"
	wait $pid
}

# Runs a checks program (one "ok: ..." or "FAIL: ..." line per check, "note: ..." lines the
# verdict prints) for suite $1 on device $2, through a file, not a pipe, to keep its exit
# status: a crash may print no FAIL line. Its stderr goes to $CHECKS_STDERR if set.
checks() {
	suite=$1
	dev=$2
	shift 2
	: >/tmp/checks.err
	"$@" >/tmp/checks.out 2>"${CHECKS_STDERR:-/tmp/checks.err}"
	rc=$?
	failed=0
	while read -r verdict what; do
		case $verdict in
		ok:) say "@@@ CHECK $suite ok: $dev $what" ;;
		note:) say "@@@ NOTE $suite $dev $what" ;;
		*) say "@@@ CHECK $suite FAIL: $dev $verdict $what"; failed=1 ;;
		esac
	done </tmp/checks.out
	# It exits 1 after a FAIL line; anything else (a signal is 128 + n) is a crash.
	if [ $rc -ne 0 ] && { [ $failed = 0 ] || [ $rc -ne 1 ]; }; then
		say "@@@ CHECK $suite FAIL: $dev ${1##*/} exited with $rc: $(tail -n 1 /tmp/checks.err)"
	fi
}

precondition() {
	free=$(sed -n 's/^HugePages_Free: *//p' /proc/meminfo)
	[ "${free:-0}" -gt 0 ] || { say "@@@ PRECONDITION $1 HugePages_Free is ${free:-missing}"; return 1; }
	[ -e /sys/kernel/debug/gup_test ] || { say "@@@ PRECONDITION $1 /sys/kernel/debug/gup_test is missing"; return 1; }
	for i in 0 1 2 3; do
		[ -c /dev/hmm_dmirror$i ] || { say "@@@ PRECONDITION $1 /dev/hmm_dmirror$i is missing"; return 1; }
	done
	return 0
}

# The GPU-like sample driver (samples/rust/rust_hmm_gpu) under its kselftest, gpu-tests (the
# kernel's kselftest harness, TAP), with 4 MiB of device memory. Its output goes to the test
# port as it comes, between BEGIN and END, then "gpu sample: N passed, F failed, S skipped"
# from its "# Totals" line, which verdict.py requires. Its last test unloads the module with
# jobs in flight and loads it again, from RUST_HMM_GPU_KO with RUST_HMM_GPU_PARAMS.
GPU_KO=/lib/modules/rust_hmm_gpu.ko
GPU_PARAMS="vram_mb=4"
# The count $1 of a kselftest "# Totals: pass:N fail:N xfail:N xpass:N skip:N error:N" line $2
# (0 if it is not there: /init must not die on a shell arithmetic error).
total() {
	echo "$2" | sed -n "s/.* $1:\([0-9][0-9]*\).*/\1/p" | grep . || echo 0
}
gpu_suite() {
	if [ ! -f $GPU_KO ]; then
		say "@@@ PRECONDITION gpu $GPU_KO is not in the initramfs: the sample driver was not built (CONFIG_SAMPLE_RUST_HMM_GPU=m)"
		return
	fi
	if ! run gpu insmod $GPU_KO $GPU_PARAMS; then
		say "@@@ PRECONDITION gpu insmod rust_hmm_gpu $GPU_PARAMS failed"
		return
	fi
	for i in 0 1; do
		[ -c /dev/rust_hmm_gpu$i ] || say "@@@ PRECONDITION gpu /dev/rust_hmm_gpu$i is missing"
	done
	say "@@@ BEGIN gpu"
	start=$(cut -d' ' -f1 /proc/uptime)
	# As run() does, with the output through tee to the port and a file; the PID line goes out
	# before the program starts, so that it cannot land inside its output.
	{
		RUST_HMM_GPU_KO=$GPU_KO RUST_HMM_GPU_PARAMS=$GPU_PARAMS sh -c \
			'echo "@@@ PID gpu $$ $1" >'$OUT'; exec "$@" 2>&1' gpu-tests \
			/bin/gpu-tests /dev/rust_hmm_gpu0 /dev/rust_hmm_gpu1
		echo $? >/tmp/gpu.rc
	} | tee /tmp/gpu.out >$OUT
	rc=$(cat /tmp/gpu.rc)
	end=$(cut -d' ' -f1 /proc/uptime)
	say "@@@ END gpu rc=$rc seconds=$(echo "$end $start" | awk '{printf "%.1f", $1 - $2}')"
	totals=$(grep '^# Totals:' /tmp/gpu.out | tail -n 1)
	if [ -n "$totals" ]; then
		failed=$(($(total fail "$totals") + $(total xpass "$totals") + $(total error "$totals")))
		say "gpu sample: $(total pass "$totals") passed, $failed failed, $(total skip "$totals") skipped"
	else
		failed=0
		say "@@@ CHECK gpu FAIL: gpu-tests printed no '# Totals' line (exit $rc)"
	fi
	# The harness exits 0 when every test passed (or skipped), 1 when one failed: anything
	# else, or 1 without a failure, is a crash.
	if [ "$rc" != 0 ] && { [ "$rc" != 1 ] || [ "$failed" = 0 ]; }; then
		say "@@@ CHECK gpu FAIL: gpu-tests exited with $rc: $(tail -n 1 /tmp/gpu.out)"
	fi
	run gpu rmmod rust_hmm_gpu || say "@@@ RMMOD gpu failed"
}

for t in $TESTS; do
	case $t in
	c) mod=test_hmm ;;
	rust) mod=test_hmm_rust ;;
	gpu)
		# Not with rust_hmm.only=, which is about the dmirror suites.
		[ -n "$ONLY" ] || gpu_suite
		continue
		;;
	*) say "@@@ UNKNOWN SUITE $t"; continue ;;
	esac
	if ! run $t insmod /lib/modules/$mod.ko $SPM; then
		say "@@@ PRECONDITION $t insmod $mod failed"
		continue
	fi
	if [ "$ONLY" = checks ]; then
		say "@@@ BEGIN $t"
		say "@@@ END $t rc=0 seconds=0"
		for dev in /dev/hmm_dmirror0 /dev/hmm_dmirror2; do
			checks $t $dev /bin/dmirror-checks $dev $t
		done
		rmmod $mod
		continue
	fi
	if [ "$ONLY" = evict-race ]; then
		say "@@@ BEGIN $t"
		say "@@@ END $t rc=0 seconds=0"
		# The rounds go out as they end: a kernel without the fix may hang in one.
		CHECKS_STDERR=$OUT checks $t /dev/hmm_dmirror0 /bin/dmirror-evict-race \
			/dev/hmm_dmirror0 $EVICT_ROUNDS $EVICT_PAGES
		rmmod $mod
		continue
	fi
	if precondition $t; then
		say "@@@ BEGIN $t"
		start=$(cut -d' ' -f1 /proc/uptime)
		run $t /bin/hmm-tests >$OUT 2>&1
		rc=$?
		end=$(cut -d' ' -f1 /proc/uptime)
		say "@@@ END $t rc=$rc seconds=$(echo "$end $start" | awk '{printf "%.1f", $1 - $2}')"
	fi
	# Our own checks of the file operations and ioctl argument checks (dmirror-checks.c),
	# and that migration really moves pages (dmirror-pagemap.c reads /proc/self/pagemap).
	for dev in /dev/hmm_dmirror0 /dev/hmm_dmirror2; do
		checks $t $dev /bin/dmirror-checks $dev $t
	done
	checks $t /dev/hmm_dmirror0 /bin/dmirror-pagemap /dev/hmm_dmirror0 private 0 $t
	# Minor 2 uses spm_addr_dev1, as in C.
	checks $t /dev/hmm_dmirror2 /bin/dmirror-pagemap /dev/hmm_dmirror2 coherent 0x150000000 $t
	# Device pages across close, exit, fork, a second open, MIGRATE_TO_SYS and munmap, with
	# the Rust device's page counters (debugfs) back where they started.
	for dev in /dev/hmm_dmirror0 /dev/hmm_dmirror2; do
		checks $t $dev /bin/dmirror-lifecycle $dev $t
	done
	# Eviction (RELEASE) racing munmap, by a child process, in rounds that sweep the window:
	# without the mm fix in patches/ KASAN reports a use-after-free of an anon_vma here
	# (make evict-race-unpatched shows it).
	checks $t /dev/hmm_dmirror0 /bin/dmirror-evict-race /dev/hmm_dmirror0 $EVICT_ROUNDS \
		$EVICT_PAGES
	# The benchmark's program (make bench) once over every operation, at 1, 64 and 600
	# pages (past one migration batch of 512), its data checked; no timing is judged.
	if out=$(/bin/dmirror-bench $t 0 /dev/hmm_dmirror0 /dev/hmm_dmirror2 all 1,64,600 2>&1); then
		say "@@@ CHECK $t ok: dmirror-bench ran every operation, data checked ($(echo "$out" | grep -c '^BENCH') cells)"
	else
		say "@@@ CHECK $t FAIL: dmirror-bench: $(echo "$out" | tail -n 1)"
	fi
	# Threads migrating one region between all four devices and back while others write
	# through the CPU and the devices, mprotect, zap and fork, every byte checked against a
	# shadow copy. Rust only: C's second opens read freed pages (see HMM-NOTES.md).
	if [ $t = rust ] && [ "$STRESS" -gt 0 ]; then
		checks $t all /bin/dmirror-stress $STRESS $FUZZ_SEED /dev/hmm_dmirror0 \
			/dev/hmm_dmirror1 /dev/hmm_dmirror2 /dev/hmm_dmirror3
	fi

	# Random ioctls racing mapping changes, on the Rust device only: the C module WARNs on
	# a huge READ (it vmallocs the whole buffer).
	if [ $t = rust ] && [ "$FUZZ" -gt 0 ]; then
		for dev in /dev/hmm_dmirror0 /dev/hmm_dmirror2; do
			if out=$(/bin/dmirror-fuzz $dev $FUZZ $FUZZ_SEED 2>&1); then
				say "@@@ CHECK $t ok: fuzz $dev: $out (seed $FUZZ_SEED)"
			else
				say "@@@ CHECK $t FAIL: fuzz $dev: $out (seed $FUZZ_SEED)"
			fi
		done
	fi

	# The module parameters read back from sysfs (C: mode 0644; Rust: 0444).
	param=/sys/module/$mod/parameters/spm_addr_dev0
	if [ "$(cat $param 2>/dev/null)" = "$((0x140000000))" ]; then
		say "@@@ CHECK $t ok: spm_addr_dev0 reads back from sysfs"
	else
		say "@@@ CHECK $t FAIL: spm_addr_dev0 in sysfs reads '$(cat $param 2>&1)'"
	fi

	# An open file pins the module (the cdev's owner).
	exec 3</dev/hmm_dmirror0
	if rmmod $mod 2>/dev/null; then
		say "@@@ CHECK $t FAIL: rmmod succeeded while /dev/hmm_dmirror0 was open"
		insmod /lib/modules/$mod.ko $SPM
	else
		say "@@@ CHECK $t ok: an open file pins the module"
	fi
	exec 3<&-

	# Unload with pages on the device (minor 0): the module migrates them back first.
	rm -f /tmp/go
	mkfifo /tmp/go
	/bin/dmirror-lifecycle --unload /dev/hmm_dmirror0 </tmp/go >/tmp/unload.out 2>&1 &
	upid=$!
	exec 4>/tmp/go
	i=0
	while ! grep -q '^ready$' /tmp/unload.out && [ $i -lt 120 ]; do
		sleep 1
		i=$((i + 1))
	done
	run $t rmmod $mod || say "@@@ RMMOD $t failed"
	echo go >&4
	exec 4>&-
	wait $upid
	urc=$?
	grep -v '^ready$' /tmp/unload.out >/tmp/checks.out
	failed=0
	while read -r verdict what; do
		case $verdict in
		ok:) say "@@@ CHECK $t ok: $what" ;;
		*) say "@@@ CHECK $t FAIL: $verdict $what"; failed=1 ;;
		esac
	done </tmp/checks.out
	[ $urc = 0 ] || [ $failed = 1 ] || say "@@@ CHECK $t FAIL: dmirror-lifecycle --unload exited with $urc"

	# Without both spm_addr_dev*, only the two device-private minors exist.
	if run $t insmod /lib/modules/$mod.ko spm_addr_dev0=0x140000000; then
		if [ -c /dev/hmm_dmirror0 ] && [ -c /dev/hmm_dmirror1 ] && [ ! -e /dev/hmm_dmirror2 ] &&
			[ ! -e /dev/hmm_dmirror3 ]; then
			say "@@@ CHECK $t ok: minors 2 and 3 need both spm_addr_dev0 and spm_addr_dev1"
		else
			say "@@@ CHECK $t FAIL: wrong device nodes with spm_addr_dev0 only: $(ls /dev | grep hmm_dmirror | tr '\n' ' ')"
		fi
		run $t rmmod $mod || say "@@@ RMMOD $t failed"
	else
		say "@@@ CHECK $t FAIL: insmod with spm_addr_dev0 only failed"
	fi
done

if [ -w $KMEMLEAK ]; then
	# kmemleak reports objects older than 5 s that two scans found unreferenced.
	sleep 6
	echo scan >$KMEMLEAK
	echo scan >$KMEMLEAK
	say "@@@ KMEMLEAK $(grep -c '^unreferenced object' $KMEMLEAK)"
	cat $KMEMLEAK >$OUT
else
	say "@@@ KMEMLEAK off"
fi

say "@@@ DONE"
sync
# No ACPI in this kernel: reboot, which QEMU (-no-reboot) turns into an exit.
reboot -f
