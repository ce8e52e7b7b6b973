/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The GPU-like sample device on the Rust HMM API (samples/rust/rust_hmm_gpu).
 *
 * An open file of /dev/rust_hmm_gpuN is a device context bound to the opener's address
 * space: the device runs command buffers on the process's virtual addresses, faults on what
 * its page table does not map, and services the faults from its own workers. Only the
 * address space that opened the file (its threads) may submit or wait on it (others get
 * EINVAL); unknown ioctls get ENOTTY.
 *
 * Any memory the process maps may be used: private anonymous memory migrates to the device,
 * the rest (shared, file-backed) is used where it is. An address the process does not map
 * (kernel and non-canonical addresses included) fails at run time with -EFAULT.
 */
#ifndef _UAPI_LINUX_RUST_HMM_GPU_H
#define _UAPI_LINUX_RUST_HMM_GPU_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Device operations, the op of struct rust_hmm_gpu_cmd. Addresses are the process's. */
enum rust_hmm_gpu_op {
	RUST_HMM_GPU_OP_LOAD = 1,	/* result = *(u64 *)addr */
	RUST_HMM_GPU_OP_STORE = 2,	/* *(u64 *)addr = value */
	RUST_HMM_GPU_OP_FILL = 3,	/* memset(addr, value & 0xff, len) */
	RUST_HMM_GPU_OP_COPY = 4,	/* memmove(addr, src, len) */
	RUST_HMM_GPU_OP_ATOMIC_ADD = 5,	/* result = old *(u64 *)addr; *addr = old + value */
	RUST_HMM_GPU_OP_ATOMIC_CAS = 6,	/* result = old; if old == compare: *addr = value */
	RUST_HMM_GPU_OP_STREAM = 7,	/* visit addr, addr + stride, ... below addr + len */
};

/* STREAM writes value & 0xff to each byte it visits instead of reading it. */
#define RUST_HMM_GPU_STREAM_WRITE	(1u << 0)

/*
 * One device operation. LOAD, STORE and the atomics act on the 8 bytes at addr, which must
 * be 8-byte aligned; the atomics are atomic against the device's other operations and the
 * CPU's atomic instructions. STREAM visits one byte every stride bytes (1 <= stride <= 4096)
 * of [addr, addr + len): its result is the sum of the bytes it read (0 with _WRITE).
 * STORE, FILL and COPY return 0. The atomics need write access (a CAS on a read-only page
 * fails, whatever compare is), and are atomic against other devices too. len is at most
 * 1 GiB (0 does nothing) and ranges (8-byte operands too) may not wrap nor reach the last
 * page of the address space; flags other
 * than RUST_HMM_GPU_STREAM_WRITE (and that one on other ops) are refused, as are unused
 * fields that are not 0 (src but for COPY, value but for STORE/FILL/atomics/STREAM with
 * _WRITE, compare but for CAS, stride but for STREAM, len for LOAD/STORE/atomics).
 */
struct rust_hmm_gpu_cmd {
	__u32 op;
	__u32 flags;
	__u64 addr;
	__u64 src;
	__u64 len;
	__u64 value;
	__u64 compare;
	__u64 stride;
};

/* The most commands in one submission, and the most jobs a context has queued or unwaited. */
#define RUST_HMM_GPU_MAX_CMDS	4096
#define RUST_HMM_GPU_MAX_JOBS	64

/*
 * RUST_HMM_GPU_SUBMIT: queue the ncmds (1..MAX_CMDS) commands at cmds as one job; its
 * fence (a sequence number of the context, from 1; a refused submission takes none) comes
 * back in fence (its value on input is ignored). pad must be 0. EINVAL for a malformed
 * command (nothing is queued), EBUSY when MAX_JOBS jobs of the context are queued or done but
 * not waited for. The jobs of a context run one at a time, in fence order.
 */
struct rust_hmm_gpu_submit {
	__u64 cmds;
	__u32 ncmds;
	__u32 pad;
	__u64 fence;
};

/*
 * RUST_HMM_GPU_WAIT: wait for the job of fence (at most timeout_ms, 0: forever), then copy
 * its results (one __u64 per command, the first nresults of them) to results and forget the
 * job. status (ignored on input) is 0 or the negative errno of the first command that
 * failed: -EFAULT, an address the process does not map as the command needs; -EBUSY, a page
 * the CPU kept taking back while the device faulted on it; -ENOMEM; -EINTR, the job was
 * stopped because its file was closed. The commands before it ran; the failing one may have
 * written the pages before the one it failed on; those after it did not run; both have 0 as
 * result. ETIMEDOUT when the job is still running at the timeout (at most about 49 days),
 * EINTR on a signal, EFAULT when the results cannot be written: the job is kept, wait
 * again. ENOENT for a fence already waited for, EINVAL for one never returned.
 */
struct rust_hmm_gpu_wait {
	__u64 fence;
	__u64 results;
	__u32 nresults;
	__s32 status;
	__u64 timeout_ms;
};

#define RUST_HMM_GPU_SUBMIT	_IOWR('R', 0x40, struct rust_hmm_gpu_submit)
#define RUST_HMM_GPU_WAIT	_IOWR('R', 0x41, struct rust_hmm_gpu_wait)

#endif /* _UAPI_LINUX_RUST_HMM_GPU_H */
