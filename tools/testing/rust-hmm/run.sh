#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (incrementally), boot the test kernel under QEMU TCG and run the unmodified
# hmm-tests against the C test_hmm and the Rust test_hmm_rust in the same boot, then the
# kselftest of the GPU sample driver (gpu-tests on rust_hmm_gpu.ko); then judge the results
# with verdict.py. Logs: build/logs/{console,results}.log.
#
# Environment: RUST_HMM_TIMEOUT (seconds for the whole boot, default 900),
# RUST_HMM_SUITES (default "c,rust,gpu"), RUST_HMM_SKIP_BUILD=1, RUST_HMM_KMEMLEAK=0 (skip the
# kmemleak scans, which take about a minute under TCG; the verdict then says so),
# RUST_HMM_FUZZ (ioctls of dmirror-fuzz per Rust device node, default 2000; 0: none),
# RUST_HMM_FUZZ_SEED (also the stress's), RUST_HMM_STRESS (seconds of dmirror-stress on the
# Rust device, default 15; 0: none), RUST_HMM_APPEND (more kernel parameters).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${RUST_HMM_BUILD:-$REPO/build}
KSRC=$BUILD/linux
LOGS=$BUILD/logs
TIMEOUT=${RUST_HMM_TIMEOUT:-900}
SUITES=${RUST_HMM_SUITES:-c,rust,gpu}
KMEMLEAK=${RUST_HMM_KMEMLEAK:-1}
FUZZ=${RUST_HMM_FUZZ:-2000}
FUZZ_SEED=${RUST_HMM_FUZZ_SEED:-20261125}
STRESS=${RUST_HMM_STRESS:-15}
# The GPU sample driver's module (CONFIG_SAMPLE_RUST_HMM_GPU=m) in the kernel tree.
GPU_KO=$KSRC/samples/rust/rust_hmm_gpu/rust_hmm_gpu.ko

"$HERE/setup.sh"
[ "${RUST_HMM_SKIP_BUILD:-0}" = 1 ] || "$HERE/build.sh"

# The initramfs: busybox, the init script, the test programs and the modules.
root=$BUILD/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$HERE/init.sh" "$root/init"
cp "$HERE/shell-init.sh" "$root/shell-init"
cp "$BUILD/hmm-tests" "$BUILD/dmirror-checks" "$BUILD/dmirror-fuzz" "$BUILD/dmirror-pagemap" \
	"$BUILD/dmirror-lifecycle" "$BUILD/dmirror-stress" "$BUILD/dmirror-bench" \
	"$BUILD/dmirror-evict-race" "$BUILD/gpu-tests" "$root/bin/"
cp "$KSRC/lib/test_hmm.ko" "$KSRC/lib/test_hmm_rust/test_hmm_rust.ko" "$root/lib/modules/"
# Without the GPU sample's module, init.sh says so and the verdict fails the gpu suite.
if [ -f "$GPU_KO" ]; then
	cp "$GPU_KO" "$root/lib/modules/rust_hmm_gpu.ko"
elif [[ ",$SUITES," == *,gpu,* ]]; then
	echo "[run] ${GPU_KO#"$REPO/"} was not built (CONFIG_SAMPLE_RUST_HMM_GPU=m?): the gpu suite will fail" >&2
fi
(cd "$root" && find . | cpio -o -H newc --quiet) >"$BUILD/initramfs.cpio"
# make shell: the same initramfs, with a shell on the console instead of the tests.
if [ "${RUST_HMM_SHELL:-0}" = 1 ]; then
	exec qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 6G \
		-kernel "$KSRC/arch/x86/boot/bzImage" -initrd "$BUILD/initramfs.cpio" \
		-append "console=ttyS0 rdinit=/shell-init transparent_hugepage=madvise memmap=256M\$0x140000000 memmap=256M\$0x150000000 ${RUST_HMM_APPEND:-}" \
		-nographic -no-reboot
fi

rm -f "$LOGS/console.log" "$LOGS/results.log"
echo "[run] booting (TCG, timeout ${TIMEOUT}s; logs: build/logs/console.log, results.log)"
start=$(date +%s)
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu max -smp 2 -m 6G \
	-kernel "$KSRC/arch/x86/boot/bzImage" -initrd "$BUILD/initramfs.cpio" \
	-append "console=ttyS0 oops=panic panic=-1 transparent_hugepage=madvise memmap=256M\$0x140000000 memmap=256M\$0x150000000 rust_hmm.tests=$SUITES rust_hmm.kmemleak=$KMEMLEAK rust_hmm.fuzz=$FUZZ rust_hmm.fuzz_seed=$FUZZ_SEED rust_hmm.stress=$STRESS ${RUST_HMM_APPEND:-}" \
	-display none -monitor none -no-reboot \
	-serial "file:$LOGS/console.log" -serial "file:$LOGS/results.log" \
	</dev/null >"$LOGS/qemu.log" 2>&1
qemu_rc=$?
set -e
echo "[run] QEMU exited with $qemu_rc after $(($(date +%s) - start)) s"

args=(--console "$LOGS/console.log" --results "$LOGS/results.log"
	--expected "$HERE/expected-failures" --suites "$SUITES")
[ $qemu_rc = 124 ] && args+=(--timed-out "$TIMEOUT")
exec python3 "$HERE/verdict.py" "${args[@]}"
