// SPDX-License-Identifier: GPL-2.0
/*
 * The migration-policy part of the rust-hmm benchmark (make bench, bench.sh): one run of one
 * workload on the GPU-like sample device (samples/rust/rust_hmm_gpu, uapi
 * <linux/rust_hmm_gpu.h>), /dev/rust_hmm_gpu0. bench-init.sh loads the module once per mode,
 * "naive" (one page per fault and per eviction step, no thrashing detection, no migration for
 * atomics nor read in place: GPU_NAIVE there) or "policy" (its defaults), runs every workload
 * once, unloads it, and alternates the modes over the repetitions; bench-policy.py turns the
 * lines into the "Migration policy" section.
 *
 * Workloads (SIZE in KiB; the buffer is private anonymous memory, its own VMA, 2 MiB-aligned):
 *   streaming       the CPU writes a pattern over SIZE; one device STREAM (stride 1) reads every
 *                   byte; the CPU reads it all back, comparing it with a copy.
 *   random          the same, but the device visits the pages in a seeded random order: one
 *                   STREAM per page (len 4096, stride 1), 4096 commands per SUBMIT.
 *   ping-pong       ROUNDS rounds over SIZE: the device reads the CPU's last byte back (STREAM)
 *                   and FILLs a round's byte; the CPU checks every byte and memsets another.
 *   atomics         ROUNDS rounds over SIZE: the device ATOMIC_ADDs one u64 every 256 bytes (one
 *                   job of them), then the CPU __atomic_fetch_adds the same words; every old
 *                   value the device and the CPU get is checked, and every byte at the end.
 *   oversubscribed  ROUNDS device STREAM passes over SIZE (one job), the CPU checks at the end.
 * Only the workload's device and CPU passes are timed (CLOCK_MONOTONIC, the TSC in the
 * benchmark boot): not the CPU's first write of the buffer, nor its copy.
 *
 * Usage: gpu-bench MODE REP WORKLOAD SIZE_KIB [ROUNDS]
 *        gpu-bench --memcpy REP SIZE_KIB
 * Prints one line per run:
 *   GPU mode=M rep=R workload=W size=BYTES rounds=N bytes=TOUCHED ns=NS faults=... ...
 * where bytes are the bytes the workload touches (each device or CPU pass over the buffer
 * counts the bytes it reads or writes, the checks' reads included; an atomic counts its 8
 * bytes), ns the timed part, and the device's debugfs counters
 * (/sys/kernel/debug/rust_hmm_gpu/gpu0/) what they grew by over it (device_pages: its value at
 * the end). --memcpy: memcpy of SIZE between two populated buffers, repeated for 200 ms.
 * Exits 1 with a "FAIL:" line on stderr if a command fails or a byte is wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <include/uapi/linux/rust_hmm_gpu.h>

#define KIB		1024UL
#define MIB		(1024UL * 1024)
#define BLOCK		(2 * MIB)	/* the device's fault-around block: buffers align to it */
#define PAGE		4096UL
#define MAX_CMDS	RUST_HMM_GPU_MAX_CMDS
#define WAIT_MS		1800000		/* a job that takes 30 minutes is a hang */
#define ATOMIC_STRIDE	256		/* one counter every 256 bytes */
#define MEMCPY_NS	200000000ULL
#define SEED		20261208ULL
#define DEVICE		"/dev/rust_hmm_gpu0"
#define COUNTERS	"/sys/kernel/debug/rust_hmm_gpu/gpu0"

static const char *mode, *workload;
static int rep;

static const char *const counter_names[] = {
	"faults", "batches", "duplicates", "pages_to_device", "pages_to_ram", "evictions",
	"evicted_pages", "pins", "remote_maps", "exclusive", "copy_jobs", "device_pages",
};
#define NCOUNTERS	(sizeof(counter_names) / sizeof(counter_names[0]))
#define DEVICE_PAGES	(NCOUNTERS - 1)

static void __attribute__((format(printf, 1, 2), noreturn)) fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: %s %s rep %d: ", mode, workload, rep);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void read_counters(uint64_t *v)
{
	char path[128];

	for (unsigned int i = 0; i < NCOUNTERS; i++) {
		unsigned long long x;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", COUNTERS, counter_names[i]);
		f = fopen(path, "r");
		if (!f)
			fail("counter %s: %s", path, strerror(errno));
		if (fscanf(f, "%llu", &x) != 1)
			fail("counter %s cannot be read", path);
		fclose(f);
		v[i] = x;
	}
}

/*
 * A buffer of len bytes (a multiple of the page size), 2 MiB-aligned, in a VMA of its own:
 * PROT_NONE on both sides, so that the device's fault-around, which stops at the VMA, moves
 * this buffer's pages only.
 */
static void *buffer(size_t len)
{
	size_t span = len + 3 * BLOCK;
	char *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	char *p;

	if (base == MAP_FAILED)
		fail("mmap of %zu bytes: %s", span, strerror(errno));
	p = (char *)(((uintptr_t)base + 2 * BLOCK - 1) & ~(BLOCK - 1));
	if (mprotect(p, len, PROT_READ | PROT_WRITE))
		fail("mprotect: %s", strerror(errno));
	return p;
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill_pattern(void *p, size_t len, uint64_t s)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix64(s * 0x100000001b3ULL + i);
}

static uint64_t byte_sum(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return sum;
}

/* Fails with the first byte of got that differs from want. */
static void compare(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	size_t i, bad = 0, first = 0;

	if (!memcmp(got, want, len))
		return;
	for (i = 0; i < len; i++) {
		if (got[i] != want[i] && !bad++)
			first = i;
	}
	fail("%s: %zu of %zu bytes wrong, the first at %#zx (page %zu): %#04x, want %#04x",
	     what, bad, len, first, first / PAGE, got[first], want[first]);
}

/* Fails unless every byte of p is byte (word loads: a CPU read pass). */
static void check_bytes(const uint8_t *p, size_t len, uint8_t byte, const char *what,
			unsigned int round)
{
	const uint64_t *w = (const uint64_t *)p, want = byte * 0x0101010101010101ULL;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != want)
			break;
	if (i == len / 8)
		return;
	for (i *= 8; i < len && p[i] == byte; i++)
		;
	fail("round %u: %s: byte %#zx (page %zu) is %#04x, want %#04x", round, what, i, i / PAGE,
	     p[i], byte);
}

static struct rust_hmm_gpu_cmd c_stream(const void *a, uint64_t len)
{
	struct rust_hmm_gpu_cmd c = {
		.op = RUST_HMM_GPU_OP_STREAM, .addr = (uintptr_t)a, .len = len, .stride = 1,
	};

	return c;
}

static struct rust_hmm_gpu_cmd c_fill(void *a, uint64_t len, uint8_t byte)
{
	struct rust_hmm_gpu_cmd c = {
		.op = RUST_HMM_GPU_OP_FILL, .addr = (uintptr_t)a, .len = len, .value = byte,
	};

	return c;
}

static struct rust_hmm_gpu_cmd c_add(void *a, uint64_t value)
{
	struct rust_hmm_gpu_cmd c = {
		.op = RUST_HMM_GPU_OP_ATOMIC_ADD, .addr = (uintptr_t)a, .value = value,
	};

	return c;
}

static uint64_t submit(int fd, const struct rust_hmm_gpu_cmd *cmds, unsigned int n)
{
	struct rust_hmm_gpu_submit s = { .cmds = (uintptr_t)cmds, .ncmds = n };

	while (ioctl(fd, RUST_HMM_GPU_SUBMIT, &s)) {
		if (errno != EINTR)
			fail("SUBMIT of %u commands: %s", n, strerror(errno));
	}
	return s.fence;
}

/* Waits for the job of fence; its n results go to results. Fails unless its status is 0. */
static void wait_job(int fd, uint64_t fence, uint64_t *results, unsigned int n)
{
	struct rust_hmm_gpu_wait w = {
		.fence = fence, .results = (uintptr_t)results, .nresults = n, .timeout_ms = WAIT_MS,
	};

	while (ioctl(fd, RUST_HMM_GPU_WAIT, &w)) {
		if (errno != EINTR)
			fail("WAIT for fence %llu: %s", (unsigned long long)fence, strerror(errno));
	}
	if (w.status)
		fail("job of fence %llu: status %d (%s)", (unsigned long long)fence, w.status,
		     strerror(-w.status));
}

static void run_job(int fd, const struct rust_hmm_gpu_cmd *cmds, unsigned int n,
		    uint64_t *results)
{
	wait_job(fd, submit(fd, cmds, n), results, n);
}

static void expect_result(uint64_t got, uint64_t want, const char *what, unsigned int i)
{
	if (got != want)
		fail("%s %u: result %#llx, want %#llx", what, i, (unsigned long long)got,
		     (unsigned long long)want);
}

/* One device pass (or passes streaming passes in one job), then the CPU reads back. */
static void streaming(int fd, uint8_t *buf, const uint8_t *want, size_t len,
		      unsigned int passes, uint64_t sum)
{
	struct rust_hmm_gpu_cmd cmds[16];
	uint64_t results[16];

	if (passes > 16)
		fail("at most 16 passes");
	for (unsigned int i = 0; i < passes; i++)
		cmds[i] = c_stream(buf, len);
	run_job(fd, cmds, passes, results);
	for (unsigned int i = 0; i < passes; i++)
		expect_result(results[i], sum, "STREAM pass", i);
	compare(buf, want, len, "the CPU's read-back");
}

/* Jobs of random a context keeps queued at most (below RUST_HMM_GPU_MAX_JOBS). */
#define QUEUED		32

static size_t job_cmds(size_t npages, size_t i)
{
	return npages - i * MAX_CMDS < MAX_CMDS ? npages - i * MAX_CMDS : MAX_CMDS;
}

/*
 * One STREAM per page in the order of perm, MAX_CMDS per job, all submitted (up to QUEUED at
 * a time: 4 jobs for 64 MiB), then waited.
 */
static void random_pages(int fd, uint8_t *buf, const uint8_t *want, size_t npages,
			 const uint32_t *perm, struct rust_hmm_gpu_cmd *cmds, uint64_t *results,
			 const uint64_t *sums, uint64_t *fences)
{
	size_t njobs = (npages + MAX_CMDS - 1) / MAX_CMDS, i;

	for (i = 0; i < npages; i++)
		cmds[i] = c_stream(buf + (size_t)perm[i] * PAGE, PAGE);
	for (i = 0; i < njobs; i++) {
		if (i >= QUEUED)
			wait_job(fd, fences[i - QUEUED], results + (i - QUEUED) * MAX_CMDS,
				 job_cmds(npages, i - QUEUED));
		fences[i] = submit(fd, cmds + i * MAX_CMDS, job_cmds(npages, i));
	}
	for (i = njobs > QUEUED ? njobs - QUEUED : 0; i < njobs; i++)
		wait_job(fd, fences[i], results + i * MAX_CMDS, job_cmds(npages, i));
	for (i = 0; i < npages; i++)
		expect_result(results[i], sums[perm[i]], "STREAM of page", perm[i]);
	compare(buf, want, npages * PAGE, "the CPU's read-back");
}

static uint8_t device_byte(unsigned int r)
{
	return 0x10 + r % 0x60;
}

static uint8_t cpu_byte(unsigned int r)
{
	return 0x80 + r % 0x60;
}

static void ping_pong(int fd, uint8_t *buf, size_t len, unsigned int rounds)
{
	struct rust_hmm_gpu_cmd cmds[2];
	uint64_t results[2];

	for (unsigned int r = 1; r <= rounds; r++) {
		/* The device reads what the CPU wrote last (the sum checks it), then writes. */
		cmds[0] = c_stream(buf, len);
		cmds[1] = c_fill(buf, len, device_byte(r));
		run_job(fd, cmds, 2, results);
		expect_result(results[0], (uint64_t)cpu_byte(r - 1) * len, "STREAM of round", r);
		check_bytes(buf, len, device_byte(r), "after the device's FILL", r);
		memset(buf, cpu_byte(r), len);
	}
}

static uint64_t device_inc(unsigned int r)
{
	return r + 1;
}

static uint64_t cpu_inc(unsigned int r)
{
	return (uint64_t)(r + 1) << 32;
}

/* Device and CPU add in turn to one word every ATOMIC_STRIDE bytes; shadow follows. */
static void atomics(int fd, uint8_t *buf, uint8_t *shadow, size_t len, unsigned int rounds,
		    struct rust_hmm_gpu_cmd *cmds, uint64_t *results)
{
	size_t n = len / ATOMIC_STRIDE, i, done;

	for (unsigned int r = 0; r < rounds; r++) {
		for (done = 0; done < n; done += MAX_CMDS) {
			size_t k = n - done < MAX_CMDS ? n - done : MAX_CMDS;

			for (i = 0; i < k; i++)
				cmds[i] = c_add(buf + (done + i) * ATOMIC_STRIDE, device_inc(r));
			run_job(fd, cmds, k, results);
			for (i = 0; i < k; i++) {
				uint64_t *s = (uint64_t *)(shadow + (done + i) * ATOMIC_STRIDE);

				expect_result(results[i], *s, "device ATOMIC_ADD of word", done + i);
				*s += device_inc(r);
			}
		}
		for (i = 0; i < n; i++) {
			uint64_t *w = (uint64_t *)(buf + i * ATOMIC_STRIDE);
			uint64_t *s = (uint64_t *)(shadow + i * ATOMIC_STRIDE);
			uint64_t old = __atomic_fetch_add(w, cpu_inc(r), __ATOMIC_SEQ_CST);

			if (old != *s)
				fail("round %u: the CPU's add on word %zu found %#llx, want %#llx", r,
				     i, (unsigned long long)old, (unsigned long long)*s);
			*s += cpu_inc(r);
		}
	}
}

static void memcpy_run(size_t len)
{
	uint8_t *src = buffer(len), *dst = buffer(len);
	unsigned long long ns = 0, t0;
	unsigned long iters = 0;

	fill_pattern(src, len, 1);
	memset(dst, 0, len);
	while (ns < MEMCPY_NS) {
		t0 = now_ns();
		memcpy(dst, src, len);
		ns += now_ns() - t0;
		iters++;
		/* Keep the copy from being optimized away, untimed. */
		src[(iters * 4093) % len] ^= 1;
	}
	printf("GPU mode=memcpy rep=%d workload=memcpy size=%zu rounds=%lu bytes=%zu ns=%llu\n",
	       rep, len, iters, len * iters, ns);
}

int main(int argc, char **argv)
{
	uint64_t before[NCOUNTERS], after[NCOUNTERS];
	unsigned long long t0, t1;
	unsigned int rounds = 1;
	size_t len, npages, bytes;
	uint8_t *buf, *want;
	int fd;

	if (argc == 4 && !strcmp(argv[1], "--memcpy")) {
		mode = workload = "memcpy";
		rep = atoi(argv[2]);
		memcpy_run(strtoul(argv[3], NULL, 0) * KIB);
		return 0;
	}
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: %s MODE REP WORKLOAD SIZE_KIB [ROUNDS]\n"
			"       %s --memcpy REP SIZE_KIB\n", argv[0], argv[0]);
		return 2;
	}
	mode = argv[1];
	rep = atoi(argv[2]);
	workload = argv[3];
	len = strtoul(argv[4], NULL, 0) * KIB;
	if (argc > 5)
		rounds = strtoul(argv[5], NULL, 0);
	if (!len || len % PAGE || !rounds)
		fail("SIZE_KIB must be a positive multiple of 4, ROUNDS positive");
	npages = len / PAGE;
	if (sysconf(_SC_PAGESIZE) != PAGE)
		fail("the page size is not 4096");

	fd = open(DEVICE, O_RDWR);
	if (fd < 0)
		fail("open %s: %s", DEVICE, strerror(errno));
	buf = buffer(len);
	/* The expected bytes, apart from the buffer: populated, in system memory. */
	want = buffer(len);

	if (!strcmp(workload, "streaming") || !strcmp(workload, "oversubscribed")) {
		unsigned int passes = !strcmp(workload, "streaming") ? 1 : rounds;
		uint64_t sum;

		rounds = passes;
		fill_pattern(buf, len, SEED + rep);
		memcpy(want, buf, len);
		sum = byte_sum(want, len);
		bytes = (passes + 1) * len;
		read_counters(before);
		t0 = now_ns();
		streaming(fd, buf, want, len, passes, sum);
		t1 = now_ns();
	} else if (!strcmp(workload, "random")) {
		size_t njobs = (npages + MAX_CMDS - 1) / MAX_CMDS;
		struct rust_hmm_gpu_cmd *cmds = calloc(npages, sizeof(*cmds));
		uint64_t *results = calloc(npages, sizeof(*results));
		uint64_t *sums = calloc(npages, sizeof(*sums));
		uint64_t *fences = calloc(njobs, sizeof(*fences));
		uint32_t *perm = calloc(npages, sizeof(*perm));
		uint64_t x = mix64(SEED) | 1;

		if (!cmds || !results || !sums || !fences || !perm)
			fail("calloc");
		fill_pattern(buf, len, SEED + rep);
		memcpy(want, buf, len);
		for (size_t i = 0; i < npages; i++) {
			sums[i] = byte_sum(want + i * PAGE, PAGE);
			perm[i] = i;
		}
		/* Fisher-Yates with a fixed seed (xorshift64*): every run visits the same order. */
		for (size_t i = npages - 1; i > 0; i--) {
			size_t j;
			uint32_t t;

			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			j = (x * 0x2545f4914f6cdd1dULL) % (i + 1);
			t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		bytes = 2 * len;
		read_counters(before);
		t0 = now_ns();
		random_pages(fd, buf, want, npages, perm, cmds, results, sums, fences);
		t1 = now_ns();
	} else if (!strcmp(workload, "ping-pong")) {
		memset(buf, cpu_byte(0), len);
		bytes = 4 * len * rounds;
		read_counters(before);
		t0 = now_ns();
		ping_pong(fd, buf, len, rounds);
		t1 = now_ns();
		/* What the CPU wrote last, read by the device (untimed). */
		{
			struct rust_hmm_gpu_cmd c = c_stream(buf, len);
			uint64_t r;

			run_job(fd, &c, 1, &r);
			expect_result(r, (uint64_t)cpu_byte(rounds) * len, "STREAM after round",
				      rounds);
		}
	} else if (!strcmp(workload, "atomics")) {
		struct rust_hmm_gpu_cmd *cmds = calloc(MAX_CMDS, sizeof(*cmds));
		uint64_t *results = calloc(MAX_CMDS, sizeof(*results));

		if (!cmds || !results)
			fail("calloc");
		if (len % ATOMIC_STRIDE)
			fail("the size is not a multiple of %d", ATOMIC_STRIDE);
		fill_pattern(buf, len, SEED + rep);
		memcpy(want, buf, len);
		bytes = 2 * rounds * (len / ATOMIC_STRIDE) * 8;
		read_counters(before);
		t0 = now_ns();
		atomics(fd, buf, want, len, rounds, cmds, results);
		t1 = now_ns();
		/* Every counter's total, and every byte around them (untimed). */
		compare(buf, want, len, "after the adds");
	} else {
		fail("unknown workload (streaming, random, ping-pong, atomics, oversubscribed)");
	}
	read_counters(after);

	printf("GPU mode=%s rep=%d workload=%s size=%zu rounds=%u bytes=%zu ns=%llu", mode, rep,
	       workload, len, rounds, bytes, t1 - t0);
	for (unsigned int i = 0; i < NCOUNTERS; i++)
		printf(" %s=%llu", counter_names[i],
		       (unsigned long long)(i == DEVICE_PAGES ? after[i] : after[i] - before[i]));
	printf("\n");
	fflush(stdout);
	close(fd);
	return 0;
}
