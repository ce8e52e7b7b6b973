#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
#
# /shell-init of the test initramfs (make shell): mounts what the tests use and gives a shell
# on the console. The modules are in /lib/modules, the test programs in /bin.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
cat <<'MSG'
rust-hmm test kernel. For instance:
  insmod /lib/modules/rust_hmm_gpu.ko vram_mb=16
  gpu-tests -l; gpu-tests -r gpu.streaming /dev/rust_hmm_gpu0 /dev/rust_hmm_gpu1
  grep . /sys/kernel/debug/rust_hmm_gpu/gpu0/*
  insmod /lib/modules/test_hmm_rust.ko; hmm-tests -r hmm.migrate
  Ctrl-A X leaves QEMU (poweroff -f only halts the guest)
MSG
exec setsid cttyhack sh
