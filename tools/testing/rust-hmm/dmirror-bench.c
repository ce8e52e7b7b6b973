// SPDX-License-Identifier: GPL-2.0
/*
 * One series of the rust-hmm benchmark (make bench, tools/testing/rust-hmm/bench.sh): every
 * operation of a dmirror device at 1, 64 and 512 pages and 64 MiB, on a device-private and a
 * device-coherent minor, one sample per cell. bench-init.sh runs it once per module load and
 * alternates the C test_hmm and the Rust test_hmm_rust; bench-table.py turns the samples
 * into the table.
 *
 * Each operation gets what it needs, untimed: fresh anonymous private memory filled by the
 * CPU (a pattern different in every page) for READ, WRITE, MIGRATE_TO_DEV and EXCLUSIVE, so
 * that each of them faults every page with hmm_range_fault or collects it with migrate_vma;
 * pages first migrated to the device for the CPU-fault migrate-back (a read of one word per
 * page) and for MIGRATE_TO_SYS. Only the operation is timed (CLOCK_MONOTONIC, which the
 * benchmark requires to run on the TSC); a sample repeats it until the timed part reaches
 * TARGET_NS and reports the count. The data each operation moves is checked (one word per
 * page), untimed, so that a fast wrong path cannot go unnoticed.
 *
 * Usage: dmirror-bench SERIES REP /dev/hmm_dmirrorP /dev/hmm_dmirrorC [OPS [PAGES]]
 *        dmirror-bench --memcpy REP
 * OPS and PAGES (comma-separated; "all" for every operation) narrow a run down; a device
 * given as "-" is skipped. bench-init.sh runs one operation on one minor per module load.
 * Prints one line per cell: "BENCH SERIES REP OP KIND PAGES ITERATIONS NANOSECONDS".
 * Exits 1 (with a "FAIL:" line on stderr) if an operation fails or moves wrong data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define TARGET_NS	50000000ULL	/* timed part of one sample: 50 ms, 50000 TSC-clock us */
#define MAX_ITERS	100000

static unsigned long sizes[16] = { 1, 64, 512, 16384 };
static unsigned int nsizes = 4;
static unsigned int ops_mask = ~0u;
static unsigned long page;
static const char *series;
static int rep;
/* RUST_HMM_BENCH_GATE set: mark the timed part for the QEMU plugin (bench.sh). */
static int gate;

static void fail(const char *what, const char *op, const char *kind, unsigned long npages)
{
	fprintf(stderr, "FAIL: %s: %s %s %lu pages: %s\n", series, op, kind, npages, what);
	exit(1);
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The word at the start of page i of a buffer filled for round r. */
static uint64_t pattern(unsigned long i, unsigned long r)
{
	return (r << 40) ^ (i * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a;
}

static void fill(void *buf, unsigned long npages, unsigned long r)
{
	for (unsigned long i = 0; i < npages; i++) {
		uint64_t *p = (uint64_t *)((char *)buf + i * page);

		p[0] = pattern(i, r);
		p[page / 8 - 1] = ~pattern(i, r);
	}
}

static int matches(const void *buf, unsigned long npages, unsigned long r)
{
	for (unsigned long i = 0; i < npages; i++) {
		const uint64_t *p = (const uint64_t *)((const char *)buf + i * page);

		if (p[0] != pattern(i, r) || p[page / 8 - 1] != ~pattern(i, r))
			return 0;
	}
	return 1;
}

static void *map(unsigned long npages)
{
	void *p = mmap(NULL, npages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* The ioctl on [addr, addr + npages pages) with ptr as the user buffer. */
static int dmirror(int fd, unsigned long request, void *addr, void *ptr, unsigned long npages,
		   struct hmm_dmirror_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->addr = (uintptr_t)addr;
	cmd->ptr = (uintptr_t)ptr;
	cmd->npages = npages;
	while (ioctl(fd, request, cmd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

enum op { READ, WRITE, TO_DEV, FAULT_BACK, TO_SYS, EXCLUSIVE, SNAPSHOT, NOPS };

static const char *const op_names[NOPS] = {
	[READ] = "read", [WRITE] = "write", [TO_DEV] = "migrate_to_dev",
	[FAULT_BACK] = "fault_back", [TO_SYS] = "migrate_to_sys", [EXCLUSIVE] = "exclusive",
	[SNAPSHOT] = "snapshot",
};

/* One timed run of op on a fresh buffer of npages; returns the nanoseconds it took. */
static unsigned long long once(enum op op, int fd, const char *kind, unsigned long npages,
			       unsigned long r, char *bounce, unsigned char *snap)
{
	const char *name = op_names[op];
	struct hmm_dmirror_cmd cmd;
	unsigned long long t0, t1;
	char *buf = map(npages);
	volatile uint64_t sink = 0;
	int ret;

	if (op == WRITE) {
		fill(buf, npages, r);		/* populated: WRITE faults, not allocates */
		fill(bounce, npages, r + 1);
	} else {
		fill(buf, npages, r);
	}
	if (op == FAULT_BACK || op == TO_SYS) {
		ret = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, bounce, npages, &cmd);
		if (ret || cmd.cpages != npages)
			fail("MIGRATE_TO_DEV before the timed part", name, kind, npages);
	}

	/* RUST_HMM_BENCH_PROFILE=insn: the QEMU plugin counts from here (getpid)... */
	if (gate)
		syscall(SYS_getpid);
	t0 = now_ns();
	switch (op) {
	case READ:
		ret = dmirror(fd, HMM_DMIRROR_READ, buf, bounce, npages, &cmd);
		break;
	case WRITE:
		ret = dmirror(fd, HMM_DMIRROR_WRITE, buf, bounce, npages, &cmd);
		break;
	case TO_DEV:
		ret = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, bounce, npages, &cmd);
		break;
	case FAULT_BACK:
		for (unsigned long i = 0; i < npages; i++)
			sink += *(volatile uint64_t *)(buf + i * page);
		ret = 0;
		cmd.cpages = npages;
		break;
	case TO_SYS:
		ret = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, bounce, npages, &cmd);
		break;
	case EXCLUSIVE:
		ret = dmirror(fd, HMM_DMIRROR_EXCLUSIVE, buf, bounce, npages, &cmd);
		break;
	case SNAPSHOT:
		ret = dmirror(fd, HMM_DMIRROR_SNAPSHOT, buf, snap, npages, &cmd);
		break;
	default:
		ret = -EINVAL;
	}
	t1 = now_ns();
	/* ... to here (getppid). */
	if (gate)
		syscall(SYS_getppid);
	(void)sink;

	if (ret) {
		fprintf(stderr, "FAIL: %s: %s %s %lu pages: %s\n", series, name, kind, npages,
			strerror(-ret));
		exit(1);
	}
	if (cmd.cpages != npages)
		fail("cpages differs from npages", name, kind, npages);
	/* What moved must be the data. */
	switch (op) {
	case READ:
	case EXCLUSIVE:
		if (!matches(bounce, npages, r))
			fail("wrong data in the buffer", name, kind, npages);
		break;
	case WRITE:
		if (!matches(buf, npages, r + 1))
			fail("wrong data in memory", name, kind, npages);
		break;
	case SNAPSHOT:
		for (unsigned long i = 0; i < npages; i++)
			if (snap[i] != HMM_DMIRROR_PROT_WRITE)
				fail("snapshot is not PROT_WRITE", name, kind, npages);
		break;
	default:
		if (!matches(buf, npages, r))
			fail("wrong data in memory", name, kind, npages);
	}
	if (munmap(buf, npages * page))
		fail("munmap", name, kind, npages);
	return t1 - t0;
}

static void cell(enum op op, int fd, const char *kind, unsigned long npages)
{
	static unsigned long round;
	char *bounce = map(npages);
	unsigned char *snap = malloc(npages);
	unsigned long long ns = 0;
	unsigned long iters = 0;

	if (!snap)
		fail("malloc", op_names[op], kind, npages);
	unsigned long long start = now_ns();

	/*
	 * Until the timed part reaches TARGET_NS; but an operation much cheaper than its
	 * untimed setup (a CPU read of device-coherent pages, which does not fault) stops when
	 * the whole loop has taken 20 times that, after at least 10 runs.
	 */
	while (ns < TARGET_NS && iters < MAX_ITERS &&
	       (iters < 10 || now_ns() - start < 20 * TARGET_NS)) {
		ns += once(op, fd, kind, npages, ++round, bounce, snap);
		iters++;
	}
	printf("BENCH %s %d %s %s %lu %lu %llu\n", series, rep, op_names[op], kind, npages, iters,
	       ns);
	fflush(stdout);
	munmap(bounce, npages * page);
	free(snap);
}

/* memcpy of the same sizes between two populated buffers: the VM's physical reference. */
static void memcpy_cells(void)
{
	for (unsigned int s = 0; s < nsizes; s++) {
		unsigned long npages = sizes[s];
		char *src = map(npages), *dst = map(npages);
		unsigned long long ns = 0, t0;
		unsigned long iters = 0;

		fill(src, npages, 1);
		memset(dst, 0, npages * page);
		while (ns < TARGET_NS && iters < MAX_ITERS) {
			t0 = now_ns();
			memcpy(dst, src, npages * page);
			ns += now_ns() - t0;
			iters++;
			/* Keep the copy from being optimized away, untimed. */
			src[iters % (npages * page)] ^= 1;
		}
		printf("BENCH %s %d memcpy cpu %lu %lu %llu\n", series, rep, npages, iters, ns);
		fflush(stdout);
		munmap(src, npages * page);
		munmap(dst, npages * page);
	}
}

int main(int argc, char **argv)
{
	const char *devs[2], *kinds[2] = { "private", "coherent" };
	int fds[2];

	gate = getenv("RUST_HMM_BENCH_GATE") != NULL;

	page = sysconf(_SC_PAGESIZE);
	if (argc == 3 && !strcmp(argv[1], "--memcpy")) {
		series = "memcpy";
		rep = atoi(argv[2]);
		memcpy_cells();
		return 0;
	}
	if (argc < 5 || argc > 7) {
		fprintf(stderr, "usage: %s SERIES REP /dev/hmm_dmirrorP /dev/hmm_dmirrorC [OPS [PAGES]]\n"
			"       %s --memcpy REP\n", argv[0], argv[0]);
		return 2;
	}
	series = argv[1];
	rep = atoi(argv[2]);
	devs[0] = argv[3];
	devs[1] = argv[4];
	if (argc > 5 && strcmp(argv[5], "all")) {
		ops_mask = 0;
		for (char *tok = strtok(argv[5], ","); tok; tok = strtok(NULL, ","))
			for (enum op op = 0; op < NOPS; op++)
				if (!strcmp(tok, op_names[op]))
					ops_mask |= 1u << op;
	}
	if (!ops_mask) {
		fprintf(stderr, "FAIL: %s: no known operation in %s\n", series, argv[5]);
		return 2;
	}
	if (argc > 6) {
		nsizes = 0;
		for (char *tok = strtok(argv[6], ","); tok && nsizes < 16; tok = strtok(NULL, ","))
			sizes[nsizes++] = strtoul(tok, NULL, 0);
	}
	for (int k = 0; k < 2; k++) {
		fds[k] = -1;
		if (!strcmp(devs[k], "-"))
			continue;
		fds[k] = open(devs[k], O_RDWR | O_CLOEXEC);
		if (fds[k] < 0) {
			fprintf(stderr, "FAIL: %s: open %s: %s\n", series, devs[k], strerror(errno));
			return 1;
		}
	}
	/*
	 * The first migration adds a chunk of device memory (memremap_pages of 256 MiB, tens of
	 * milliseconds): do it untimed, so that the cells measure steady-state operations.
	 */
	for (int k = 0; k < 2; k++) {
		struct hmm_dmirror_cmd cmd;
		char *warm;

		if (fds[k] < 0)
			continue;
		warm = map(1);

		fill(warm, 1, 0);
		if (dmirror(fds[k], HMM_DMIRROR_MIGRATE_TO_DEV, warm, warm, 1, &cmd) ||
		    cmd.cpages != 1)
			fail("warm-up MIGRATE_TO_DEV", "warm-up", kinds[k], 1);
		munmap(warm, page);
	}
	for (int k = 0; k < 2; k++)
		for (enum op op = 0; op < NOPS; op++)
			for (unsigned int s = 0; s < nsizes; s++)
				if (fds[k] >= 0 && (ops_mask & (1u << op)))
					cell(op, fds[k], kinds[k], sizes[s]);
	return 0;
}
