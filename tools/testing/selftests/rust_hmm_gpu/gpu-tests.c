// SPDX-License-Identifier: GPL-2.0
/*
 * gpu-tests: the kselftest of the GPU-like sample device on the Rust HMM API
 * (samples/rust/rust_hmm_gpu, uapi <linux/rust_hmm_gpu.h>).
 *
 * Every test drives the device through SUBMIT and WAIT on anonymous memory the CPU set, and
 * checks every result the device returns and every byte of memory afterwards against a shadow
 * copy the test keeps by applying the same commands itself (struct model). The device may move
 * pages to its memory, evict them or take them for atomics whenever it likes: the data must
 * be right whatever it does. The debugfs counters (read_stats()) are checked loosely only.
 *
 * Sizes are small: the test boot runs a debug kernel under QEMU TCG, about 100 times slower
 * than hardware. Only oversubscribed uses more memory, 4 times the module's vram_mb.
 *
 * Usage: gpu-tests [harness options] [/dev/rust_hmm_gpuA [/dev/rust_hmm_gpuB]]
 *   (default /dev/rust_hmm_gpu0 and /dev/rust_hmm_gpu1; -l lists the tests, -r runs one)
 * Environment: GPU_TESTS_SEED (the random tests' seed), RUST_HMM_GPU_KO and
 * RUST_HMM_GPU_PARAMS (the module file and its parameters, for unload.jobs_in_flight,
 * which reloads the module; without them it skips).
 */
#include "../kselftest_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/rust_hmm_gpu.h>

#define KIB			(1UL << 10)
#define MIB			(1UL << 20)
#define GIB			(1ULL << 30)

/* Sizes and rounds of the tests (see the header comment). */
#define STREAM_SIZE		(4 * MIB)
#define RANDOM_SIZE		(2 * MIB)
#define RANDOM_OPS_SIZE		(1 * MIB)
#define RANDOM_OPS_JOBS		40
#define PINGPONG_SIZE		(256 * KIB)
#define PINGPONG_ROUNDS		20
#define ATOMIC_SIZE		(64 * KIB)
#define ATOMIC_ROUNDS		3
#define CONCURRENT_ROUNDS	2
#define FORK_SIZE		(1 * MIB)
#define MUNMAP_SIZE		(2 * MIB)
#define MUNMAP_NEIGHBOUR	(256 * KIB)
#define EXIT_SIZE		(2 * MIB)
#define TWO_DEV_SIZE		(1 * MIB)
#define TWO_DEV_ROUNDS		4
#define UNLOAD_SIZE		(2 * MIB)
#define OVERSUBSCRIBE		4	/* times vram_mb */
#define DEFAULT_VRAM_MB		4

#define WAIT_MS			60000	/* a job that takes longer is a hang */
#define DRAIN_MS		2000	/* device_pages may come back asynchronously */
#define CHILD_MS		20000	/* a child that takes longer to exit is a hang */
#define UNLOAD_MS		10000	/* delete_module retried that long */
#define MAX_MAPS		16
#define MSG_SIZE		512

#define MAX_CMDS		RUST_HMM_GPU_MAX_CMDS

static const char *dev_path[2] = { "/dev/rust_hmm_gpu0", "/dev/rust_hmm_gpu1" };
static int dev_index[2] = { 0, 1 };
static unsigned long page_size;
static uint64_t seed = 20261125;

/* ---- The device's counters: the only code that knows their file and names. ---- */

enum {
	ST_FAULTS, ST_BATCHES, ST_DUPLICATES, ST_TO_DEVICE, ST_TO_RAM, ST_EVICTIONS,
	ST_DEVICE_PAGES, NSTATS
};
static const char *const stat_names[NSTATS] = {
	"faults", "batches", "duplicates", "pages_to_device", "pages_to_ram", "evictions",
	"device_pages",
};

struct gpu_stats {
	bool file;		/* the counters were there */
	bool have[NSTATS];	/* this one was */
	uint64_t v[NSTATS];
};

/*
 * Reads the counters of device @dev (0 or 1: dev_path[]) from debugfs: the file
 * /sys/kernel/debug/rust_hmm_gpu/gpu<N>/stats, lines "name value", or else one file per
 * counter in that directory, gpu<N>/<name>. Returns false if neither is there; a counter
 * that is missing has have[] false.
 */
static bool read_stats(int dev, struct gpu_stats *s)
{
	char dir[80], path[160], line[160], name[64];
	unsigned long long v;
	FILE *f;
	int i;

	memset(s, 0, sizeof(*s));
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/rust_hmm_gpu/gpu%d", dev_index[dev]);
	snprintf(path, sizeof(path), "%s/stats", dir);
	f = fopen(path, "r");
	if (f) {
		s->file = true;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%63[^: \t] %*[:]%llu", name, &v) != 2 &&
			    sscanf(line, "%63[^: \t] %llu", name, &v) != 2)
				continue;
			for (i = 0; i < NSTATS; i++) {
				if (!strcmp(name, stat_names[i])) {
					s->have[i] = true;
					s->v[i] = v;
				}
			}
		}
		fclose(f);
		return true;
	}
	for (i = 0; i < NSTATS; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, stat_names[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		s->file = true;
		if (fscanf(f, "%llu", &v) == 1) {
			s->have[i] = true;
			s->v[i] = v;
		}
		fclose(f);
	}
	return s->file;
}

/* EXPECTs counter @i of device @dev to have grown since @before (a logged skip without it). */
static void expect_stat_grew(struct __test_metadata *_metadata, int dev,
			     const struct gpu_stats *before, int i)
{
	struct gpu_stats now;

	if (!before->have[i] || !read_stats(dev, &now) || !now.have[i]) {
		TH_LOG("SKIP of this check only: counter %s of %s cannot be read", stat_names[i],
		       dev_path[dev]);
		return;
	}
	EXPECT_GT(now.v[i], before->v[i]) TH_LOG("counter %s of %s did not grow (%llu)",
						  stat_names[i], dev_path[dev],
						  (unsigned long long)now.v[i]);
}

/*
 * EXPECTs device_pages of @dev to come back to (at most) its value in @start, within
 * DRAIN_MS: the process has freed and closed everything of the test.
 */
static void expect_device_pages_back(struct __test_metadata *_metadata, int dev,
				     const struct gpu_stats *start)
{
	struct gpu_stats now;
	int waited;

	for (waited = 0;; waited += 20) {
		if (!start->have[ST_DEVICE_PAGES] || !read_stats(dev, &now) ||
		    !now.have[ST_DEVICE_PAGES]) {
			TH_LOG("SKIP of this check only: device_pages of %s cannot be read",
			       dev_path[dev]);
			return;
		}
		if (now.v[ST_DEVICE_PAGES] <= start->v[ST_DEVICE_PAGES] || waited >= DRAIN_MS)
			break;
		usleep(20000);
	}
	EXPECT_LE(now.v[ST_DEVICE_PAGES], start->v[ST_DEVICE_PAGES])
		TH_LOG("%s: %llu device pages %d ms after the test freed everything, %llu before it",
		       dev_path[dev], (unsigned long long)now.v[ST_DEVICE_PAGES], waited,
		       (unsigned long long)start->v[ST_DEVICE_PAGES]);
}

/* vram_mb of the loaded module, DEFAULT_VRAM_MB (logged) if it cannot be read. */
static unsigned long vram_mb(struct __test_metadata *_metadata)
{
	FILE *f = fopen("/sys/module/rust_hmm_gpu/parameters/vram_mb", "r");
	unsigned long v = 0;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	if (!v) {
		TH_LOG("/sys/module/rust_hmm_gpu/parameters/vram_mb cannot be read: assuming %d",
		       DEFAULT_VRAM_MB);
		v = DEFAULT_VRAM_MB;
	}
	return v;
}

/* ---- Commands, SUBMIT and WAIT ---- */

static struct rust_hmm_gpu_cmd cmd_op(uint32_t op, const void *addr)
{
	struct rust_hmm_gpu_cmd c = { .op = op, .addr = (uintptr_t)addr };

	return c;
}

static struct rust_hmm_gpu_cmd c_load(const void *a)
{
	return cmd_op(RUST_HMM_GPU_OP_LOAD, a);
}

static struct rust_hmm_gpu_cmd c_store(void *a, uint64_t value)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_STORE, a);

	c.value = value;
	return c;
}

static struct rust_hmm_gpu_cmd c_fill(void *a, uint64_t len, uint64_t value)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_FILL, a);

	c.len = len;
	c.value = value;
	return c;
}

static struct rust_hmm_gpu_cmd c_copy(void *dst, const void *src, uint64_t len)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_COPY, dst);

	c.src = (uintptr_t)src;
	c.len = len;
	return c;
}

static struct rust_hmm_gpu_cmd c_add(void *a, uint64_t value)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_ATOMIC_ADD, a);

	c.value = value;
	return c;
}

static struct rust_hmm_gpu_cmd c_cas(void *a, uint64_t compare, uint64_t value)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_ATOMIC_CAS, a);

	c.compare = compare;
	c.value = value;
	return c;
}

static struct rust_hmm_gpu_cmd c_stream(const void *a, uint64_t len, uint64_t stride)
{
	struct rust_hmm_gpu_cmd c = cmd_op(RUST_HMM_GPU_OP_STREAM, a);

	c.len = len;
	c.stride = stride;
	return c;
}

static struct rust_hmm_gpu_cmd c_stream_write(void *a, uint64_t len, uint64_t stride,
					      uint64_t value)
{
	struct rust_hmm_gpu_cmd c = c_stream(a, len, stride);

	c.flags = RUST_HMM_GPU_STREAM_WRITE;
	c.value = value;
	return c;
}

/* SUBMIT: returns 0 (the fence in *@fence) or -errno. */
static int gpu_submit(int fd, const struct rust_hmm_gpu_cmd *cmds, unsigned int n,
		      uint64_t *fence)
{
	struct rust_hmm_gpu_submit s = { .cmds = (uintptr_t)cmds, .ncmds = n };

	if (fence)
		*fence = 0;
	if (ioctl(fd, RUST_HMM_GPU_SUBMIT, &s))
		return -errno;
	if (fence)
		*fence = s.fence;
	return 0;
}

/* WAIT: returns 0 (the job's status in *@status) or -errno. */
static int gpu_wait(int fd, uint64_t fence, uint64_t *results, unsigned int n,
		    uint64_t timeout_ms, int *status)
{
	struct rust_hmm_gpu_wait w = {
		.fence = fence,
		.results = (uintptr_t)results,
		.nresults = n,
		.timeout_ms = timeout_ms,
	};

	if (status)
		*status = INT32_MIN;
	if (ioctl(fd, RUST_HMM_GPU_WAIT, &w))
		return -errno;
	if (status)
		*status = w.status;
	return 0;
}

/* SUBMIT then WAIT (WAIT_MS): returns 0 or the -errno of either; the status in *@status. */
static int gpu_run(int fd, const struct rust_hmm_gpu_cmd *cmds, unsigned int n,
		   uint64_t *results, int *status)
{
	uint64_t fence;
	int ret;

	*status = INT32_MIN;
	ret = gpu_submit(fd, cmds, n, &fence);
	if (ret)
		return ret;
	return gpu_wait(fd, fence, results, n, WAIT_MS, status);
}

/* ---- The shadow copy, and jobs whose results it predicts ---- */

struct model {
	uint8_t *base;		/* the buffer the device works on */
	uint8_t *shadow;	/* what it must hold */
	size_t len;
};

static bool in_model(const struct model *m, uint64_t addr, uint64_t len)
{
	uint64_t b = (uintptr_t)m->base;

	return addr >= b && len <= m->len && addr - b <= m->len - len;
}

/* Applies @c to the shadow copy as the device must; returns the result it must give. */
static uint64_t model_apply(struct model *m, const struct rust_hmm_gpu_cmd *c)
{
	bool write = c->flags & RUST_HMM_GPU_STREAM_WRITE;
	uint64_t old = 0, sum = 0, off, span;
	uint8_t *p;

	span = (c->op == RUST_HMM_GPU_OP_FILL || c->op == RUST_HMM_GPU_OP_COPY ||
		c->op == RUST_HMM_GPU_OP_STREAM) ? c->len : 8;
	if (!m || !in_model(m, c->addr, span) ||
	    (c->op == RUST_HMM_GPU_OP_COPY && !in_model(m, c->src, c->len)))
		return 0;
	p = m->shadow + (c->addr - (uintptr_t)m->base);
	memcpy(&old, p, c->op == RUST_HMM_GPU_OP_FILL || c->op == RUST_HMM_GPU_OP_COPY ||
	       c->op == RUST_HMM_GPU_OP_STREAM ? 0 : 8);
	switch (c->op) {
	case RUST_HMM_GPU_OP_LOAD:
		return old;
	case RUST_HMM_GPU_OP_STORE:
		memcpy(p, &c->value, 8);
		return 0;
	case RUST_HMM_GPU_OP_FILL:
		memset(p, c->value & 0xff, c->len);
		return 0;
	case RUST_HMM_GPU_OP_COPY:
		memmove(p, m->shadow + (c->src - (uintptr_t)m->base), c->len);
		return 0;
	case RUST_HMM_GPU_OP_ATOMIC_ADD:
		sum = old + c->value;
		memcpy(p, &sum, 8);
		return old;
	case RUST_HMM_GPU_OP_ATOMIC_CAS:
		if (old == c->compare)
			memcpy(p, &c->value, 8);
		return old;
	case RUST_HMM_GPU_OP_STREAM:
		for (off = 0; off < c->len; off += c->stride) {
			if (write)
				p[off] = c->value & 0xff;
			else
				sum += p[off];
		}
		return write ? 0 : sum;
	}
	return 0;
}

/*
 * Compares @len bytes the device left at @got with @want; logs how many differ and the first
 * few. Reading @got through the CPU brings any page the device holds back.
 */
static bool same_bytes(struct __test_metadata *_metadata, const uint8_t *got,
		       const uint8_t *want, size_t len, const char *what)
{
	size_t i, bad = 0, first = 0;

	if (!memcmp(got, want, len))
		return true;
	for (i = 0; i < len; i++) {
		if (got[i] == want[i])
			continue;
		if (bad < 4)
			TH_LOG("%s: byte %#zx (page %zu + %#zx) is %#04x, want %#04x", what, i,
			       i / page_size, i % page_size, got[i], want[i]);
		if (!bad++)
			first = i;
	}
	TH_LOG("%s: %zu of %zu bytes wrong, the first at %#zx", what, bad, len, first);
	return false;
}

static bool model_check(struct __test_metadata *_metadata, const struct model *m,
			const char *what)
{
	return same_bytes(_metadata, m->base, m->shadow, m->len, what);
}

struct job {
	unsigned int n;
	struct rust_hmm_gpu_cmd cmd[MAX_CMDS];
	uint64_t want[MAX_CMDS];
	uint64_t got[MAX_CMDS];
};

/* Adds @c to @j, with the result @m predicts for it (@m NULL: 0). */
static void job_add(struct job *j, struct model *m, struct rust_hmm_gpu_cmd c)
{
	if (j->n >= MAX_CMDS)
		abort();	/* a bug of the test */
	j->cmd[j->n] = c;
	j->want[j->n] = model_apply(m, &c);
	j->n++;
}

/* Runs @j on @fd: WAIT must succeed, the status be 0 and every result right. Empties @j. */
static bool job_run(struct __test_metadata *_metadata, int fd, struct job *j, const char *what)
{
	unsigned int i, n = j->n, bad = 0;
	int status, ret;

	j->n = 0;
	memset(j->got, 0xa5, n * sizeof(j->got[0]));
	ret = gpu_run(fd, j->cmd, n, j->got, &status);
	if (ret || status) {
		TH_LOG("%s: job of %u commands: %s%s, status %d", what, n, ret ? "WAIT: " : "",
		       ret ? strerror(-ret) : "done", status);
		return false;
	}
	for (i = 0; i < n; i++) {
		if (j->got[i] == j->want[i])
			continue;
		if (bad++ < 4)
			TH_LOG("%s: command %u of %u (op %u at %#llx len %llu stride %llu): result %#llx, want %#llx",
			       what, i, n, j->cmd[i].op, (unsigned long long)j->cmd[i].addr,
			       (unsigned long long)j->cmd[i].len,
			       (unsigned long long)j->cmd[i].stride,
			       (unsigned long long)j->got[i], (unsigned long long)j->want[i]);
	}
	if (bad)
		TH_LOG("%s: %u of %u results wrong", what, bad, n);
	return !bad;
}

/* ---- Patterns and random numbers ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Writes a pattern of its own to every 8 bytes of @p (@len a multiple of 8). */
static void fill_pattern(void *p, size_t len, uint64_t s)
{
	uint64_t *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = mix64(s * 0x100000001b3ULL + i);
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rnd_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void rnd_seed(uint64_t s)
{
	rnd_state = mix64(s) | 1;
}

/* A random number in [0, n). */
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static uint64_t sum_bytes(const uint8_t *p, size_t len, size_t stride)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < len; i += stride)
		sum += p[i];
	return sum;
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Waits up to @ms for child @pid, then kills it. Returns its wait status, -1 on timeout. */
static int wait_child(pid_t pid, int ms)
{
	struct timespec start;
	int status;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (elapsed_ms(&start) > ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(5000);
	}
}

/* Reads one byte from @fd within @ms: returns it, or -1. */
static int read_byte(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return (unsigned char)c;
}

/* ---- The fixture: both devices open, the test's mappings unmapped at the end ---- */

FIXTURE(gpu) {
	int fd[2];
	struct gpu_stats start[2];	/* the counters before the test */
	struct job *job;
	struct {
		void *addr;
		size_t len;
		void *shadow;
	} maps[MAX_MAPS];
	unsigned int nmaps;
	char *msg;			/* MAP_SHARED: why a child failed */
};

FIXTURE_SETUP(gpu)
{
	int i;

	for (i = 0; i < 2; i++) {
		read_stats(i, &self->start[i]);
		self->fd[i] = open(dev_path[i], O_RDWR | O_CLOEXEC);
		ASSERT_GE(self->fd[i], 0) TH_LOG("open %s: %s", dev_path[i], strerror(errno));
	}
	self->job = calloc(1, sizeof(*self->job));
	ASSERT_NE(NULL, self->job);
	self->msg = mmap(NULL, MSG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			 -1, 0);
	ASSERT_NE(MAP_FAILED, self->msg);
	self->msg[0] = 0;
}

/* Closes both files and unmaps what the test mapped: the device pages must come back. */
FIXTURE_TEARDOWN(gpu)
{
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (self->fd[i] >= 0)
			close(self->fd[i]);
	for (i = 0; i < self->nmaps; i++) {
		if (self->maps[i].addr)
			munmap(self->maps[i].addr, self->maps[i].len);
		free(self->maps[i].shadow);
	}
	free(self->job);
	munmap(self->msg, MSG_SIZE);
	for (i = 0; i < 2; i++)
		expect_device_pages_back(_metadata, i, &self->start[i]);
}

/* Remembers a mapping (and a shadow to free) for the teardown. */
static void track(FIXTURE_DATA(gpu) *self, void *addr, size_t len, void *shadow)
{
	if (self->nmaps < MAX_MAPS) {
		self->maps[self->nmaps].addr = addr;
		self->maps[self->nmaps].len = len;
		self->maps[self->nmaps].shadow = shadow;
		self->nmaps++;
	}
}

/* Forgets a mapping the test unmapped itself. */
static void untrack(FIXTURE_DATA(gpu) *self, void *addr)
{
	unsigned int i;

	for (i = 0; i < self->nmaps; i++)
		if (self->maps[i].addr == addr)
			self->maps[i].addr = NULL;
}

/* Anonymous private read-write memory the CPU has not touched, or NULL. */
static void *map_anon(FIXTURE_DATA(gpu) *self, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	track(self, p, len, NULL);
	return p;
}

/* A buffer of @len bytes and its shadow, the CPU's pattern @s in both (0: untouched, zero). */
static bool model_new(FIXTURE_DATA(gpu) *self, struct model *m, size_t len, uint64_t s)
{
	m->len = len;
	m->base = map_anon(self, len);
	m->shadow = calloc(1, len);
	if (!m->base || !m->shadow)
		return false;
	track(self, NULL, 0, m->shadow);
	if (s) {
		fill_pattern(m->base, len, s);
		memcpy(m->shadow, m->base, len);
	}
	return true;
}

/* The CPU writes the pattern @s over [@off, @off + @len) of @m, and the shadow with it. */
static void cpu_write(struct model *m, size_t off, size_t len, uint64_t s)
{
	fill_pattern(m->base + off, len, s);
	memcpy(m->shadow + off, m->base + off, len);
}

/* ---- basic ---- */

TEST_F_TIMEOUT(gpu, basic_ops, 60)
{
	size_t len = 16 * page_size, ps = page_size;
	struct job *j = self->job;
	struct model m;
	uint8_t *b;
	unsigned int i;

	ASSERT_TRUE(model_new(self, &m, len, 1));
	b = m.base;

	/* LOAD: the first and last words, either side of a page boundary. */
	job_add(j, &m, c_load(b));
	job_add(j, &m, c_load(b + len - 8));
	job_add(j, &m, c_load(b + ps - 8));
	job_add(j, &m, c_load(b + ps));
	/* STORE, and a LOAD of it in the same job: commands run in order. */
	job_add(j, &m, c_store(b + 8, 0x0123456789abcdefULL));
	job_add(j, &m, c_load(b + 8));
	job_add(j, &m, c_store(b + 3 * ps - 8, ~0ULL));
	/* FILL writes the low byte of value. */
	job_add(j, &m, c_fill(b + 2 * ps + 5, 100, 0x1a5));
	job_add(j, &m, c_load(b + 2 * ps));
	/* ATOMIC_ADD returns the old value, and wraps around. */
	job_add(j, &m, c_store(b + 16, ~0ULL - 1));
	job_add(j, &m, c_add(b + 16, 3));
	job_add(j, &m, c_load(b + 16));
	job_add(j, &m, c_add(b + 4 * ps + 64, 5));
	job_add(j, &m, c_add(b + 4 * ps + 64, 0));
	/* ATOMIC_CAS swaps only if old == compare, and returns old either way. */
	job_add(j, &m, c_store(b + 24, 42));
	job_add(j, &m, c_cas(b + 24, 42, 43));
	job_add(j, &m, c_cas(b + 24, 42, 44));
	job_add(j, &m, c_cas(b + 24, 43, 43));
	job_add(j, &m, c_load(b + 24));
	/* STREAM: sums of the bytes visited, at several strides; _WRITE returns 0. */
	job_add(j, &m, c_stream(b, len, 1));
	job_add(j, &m, c_stream(b + 1, 3 * ps + 5, 7));
	job_add(j, &m, c_stream(b + 3, len - 3, 4096));
	job_add(j, &m, c_stream(b + 3, len - 3, 4095));
	job_add(j, &m, c_stream(b + ps - 1, 2, 1));
	job_add(j, &m, c_stream_write(b + 5 * ps + 3, 2 * ps, 3, 0x1ee));
	job_add(j, &m, c_stream(b + 5 * ps, 3 * ps, 1));
	job_add(j, &m, c_copy(b + 9 * ps + 1, b + 12 * ps + 2, 2 * ps + 5));
	job_add(j, &m, c_stream(b, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "first job"));
	ASSERT_TRUE(model_check(_metadata, &m, "after the first job"));

	/* The CPU changes some words, the device sees them, and the other way round. */
	for (i = 0; i < 16; i++)
		cpu_write(&m, i * ps + (i * 72) % ps, 8, 1000 + i);
	for (i = 0; i < 16; i++)
		job_add(j, &m, c_load(b + i * ps + (i * 72) % ps));
	job_add(j, &m, c_stream(b, len, 1));
	job_add(j, &m, c_fill(b + 7 * ps - 3, 6, 0x3c));
	job_add(j, &m, c_add(b + 11 * ps + 8, 1ULL << 40));
	job_add(j, &m, c_cas(b + 12 * ps, 0, 5));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "second job"));
	ASSERT_TRUE(model_check(_metadata, &m, "after the second job"));

	/* RUST_HMM_GPU_MAX_CMDS commands in one job: a STORE to each word of the last pages. */
	for (i = 0; i < MAX_CMDS; i++)
		job_add(j, &m, c_store(b + len - MAX_CMDS * 8 + i * 8, mix64(i)));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "MAX_CMDS STOREs"));
	ASSERT_TRUE(model_check(_metadata, &m, "after MAX_CMDS STOREs"));
}

TEST_F_TIMEOUT(gpu, untouched_memory, 30)
{
	size_t len = 8 * page_size, ps = page_size;
	struct job *j = self->job;
	struct model m;
	uint8_t *b;

	/* Memory nobody touched reads as zeros; the device may populate it. */
	ASSERT_TRUE(model_new(self, &m, len, 0));
	b = m.base;
	job_add(j, &m, c_stream(b, len, 1));
	job_add(j, &m, c_load(b + 3 * ps));
	job_add(j, &m, c_store(b + 5 * ps + 8, 0xfeedfacecafebeefULL));
	job_add(j, &m, c_fill(b + 6 * ps + 100, 10, 0x77));
	job_add(j, &m, c_add(b + 7 * ps, 9));
	job_add(j, &m, c_stream(b, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "on untouched memory"));
	ASSERT_TRUE(model_check(_metadata, &m, "untouched memory"));
}

TEST_F_TIMEOUT(gpu, copy_overlap, 30)
{
	size_t len = 8 * page_size, ps = page_size;
	struct job *j = self->job;
	struct model m;
	uint8_t *b;
	unsigned int i;

	ASSERT_TRUE(model_new(self, &m, len, 2));
	b = m.base;
	/* COPY is memmove: each overlap on its own, checked, then all in one job. */
	for (i = 0; i < 2; i++) {
		job_add(j, &m, c_copy(b + 3, b, 2 * ps + 11));			/* dst above src */
		if (!i)
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "COPY dst = src + 3"));
		job_add(j, &m, c_copy(b + ps, b + ps + 5, 3 * ps));		/* dst below src */
		if (!i)
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "COPY dst = src - 5"));
		job_add(j, &m, c_copy(b + 2 * ps, b + ps, 2 * ps));		/* a page apart */
		if (!i)
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "COPY dst = src + page"));
		job_add(j, &m, c_copy(b + 4 * ps + 17, b + 4 * ps + 17, 1000));	/* dst == src */
		job_add(j, &m, c_copy(b + 7 * ps - 1, b + 1, 1));
		job_add(j, &m, c_copy(b + 5 * ps - 9, b + 5 * ps - 1, 17));	/* across a page */
		job_add(j, &m, c_stream(b, len, 1));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, i ? "all COPYs" : "COPYs"));
		ASSERT_TRUE(model_check(_metadata, &m, i ? "after all COPYs" : "after the COPYs"));
	}
}

TEST_F_TIMEOUT(gpu, page_crossing, 60)
{
	static const struct { unsigned long off, len; } spans[] = {
		{ 4095, 2 }, { 4093, 4096 + 7 }, { 1, 3 * 4096 - 2 }, { 2 * 4096 - 7, 13 },
		{ 3 * 4096 + 11, 4096 }, { 5 * 4096 - 1, 1 }, { 4 * 4096 + 4095, 2 * 4096 + 2 },
		{ 6 * 4096 + 1, 4096 - 2 },
	};
	size_t len = 16 * page_size, half = len / 2;
	struct job *j = self->job;
	struct model m;
	unsigned int i;
	uint8_t *b;

	ASSERT_TRUE(model_new(self, &m, len, 3));
	b = m.base;
	for (i = 0; i < ARRAY_SIZE(spans); i++) {
		uint8_t *p = b + spans[i].off, *q = b + half + 3 + spans[i].off;
		unsigned long n = spans[i].len;

		ASSERT_LE(spans[i].off + n + half + 3, len);
		job_add(j, &m, c_stream(p, n, 1));
		job_add(j, &m, c_fill(p, n, 0x10 + i));
		job_add(j, &m, c_stream(p, n, 1));
		job_add(j, &m, c_copy(q, p - (i & 1), n));
		job_add(j, &m, c_stream(q, n, 3));
		job_add(j, &m, c_stream_write(p, n, 4096, 0xc0 + i));
		job_add(j, &m, c_stream(p, n, 2));
		job_add(j, &m, c_stream_write(q, n, 5, 0xe0 + i));
		job_add(j, &m, c_stream(b, len, 1));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "across pages"))
			TH_LOG("span %u: offset %#lx, length %lu", i, spans[i].off, n);
		ASSERT_TRUE(model_check(_metadata, &m, "across pages"))
			TH_LOG("span %u: offset %#lx, length %lu", i, spans[i].off, n);
		/* The CPU writes either end, so that the next span finds pages in both places. */
		cpu_write(&m, (spans[i].off & ~7UL), 8, 500 + i);
		cpu_write(&m, half + ((spans[i].off + n) & ~7UL), 8, 600 + i);
	}
}

/* ---- bad input ---- */

TEST_F_TIMEOUT(gpu, bad_commands, 30)
{
	struct bad {
		const char *what;
		struct rust_hmm_gpu_cmd c;
	} bad[64];
	size_t len = 4 * page_size, ps = page_size;
	struct rust_hmm_gpu_cmd two[2], c;
	struct job *j = self->job;
	unsigned int n = 0, i;
	uint64_t fence, top = ~0ULL - 4095, marker = 0x6d61726b6572ULL;
	struct model m;
	uint8_t *b, *none;
	int status;

	ASSERT_TRUE(model_new(self, &m, len, 4));
	b = m.base;

#define BAD(_what, _c, _field, _value) do { \
	c = (_c); \
	c._field = (_value); \
	bad[n].what = (_what); \
	bad[n].c = c; \
	n++; \
} while (0)
	BAD("op 0", c_load(b), op, 0);
	BAD("op 8", c_load(b), op, 8);
	BAD("op ~0", c_load(b), op, ~0U);
	BAD("STREAM with flag 2", c_stream(b, 64, 1), flags, 2);
	BAD("STREAM with flag 1 << 31", c_stream(b, 64, 1), flags, (1U << 31) | 1);
	BAD("LOAD with STREAM_WRITE", c_load(b), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("STORE with STREAM_WRITE", c_store(b, 1), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("FILL with STREAM_WRITE", c_fill(b, 8, 1), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("COPY with STREAM_WRITE", c_copy(b, b + ps, 8), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("ATOMIC_ADD with STREAM_WRITE", c_add(b, 1), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("ATOMIC_CAS with STREAM_WRITE", c_cas(b, 1, 2), flags, RUST_HMM_GPU_STREAM_WRITE);
	BAD("LOAD at + 1", c_load(b), addr, (uintptr_t)b + 1);
	BAD("STORE at + 4", c_store(b, 1), addr, (uintptr_t)b + 4);
	BAD("ATOMIC_ADD at + 2", c_add(b, 1), addr, (uintptr_t)b + 2);
	BAD("ATOMIC_CAS at + 7", c_cas(b, 1, 2), addr, (uintptr_t)b + 7);
	BAD("LOAD misaligned across a page", c_load(b), addr, (uintptr_t)b + ps - 4);
	BAD("FILL of 1 GiB + 1", c_fill(b, 0, 1), len, GIB + 1);
	BAD("COPY of 1 GiB + 1", c_copy(b, b + ps, 0), len, GIB + 1);
	BAD("STREAM of 1 GiB + 1", c_stream(b, 0, 1), len, GIB + 1);
	BAD("STREAM of ~0", c_stream(b, 0, 1), len, ~0ULL);
	BAD("FILL wrapping", c_fill(b, 0x2000, 1), addr, top);
	BAD("COPY, dst wrapping", c_copy(b, b, 0x2000), addr, top);
	BAD("COPY, src wrapping", c_copy(b, b, 0x2000), src, top);
	BAD("STREAM wrapping", c_stream(b, 32, 1), addr, ~0ULL - 15);
	BAD("STREAM_WRITE wrapping", c_stream_write(b, 32, 1, 1), addr, ~0ULL - 15);
	BAD("STREAM stride 0", c_stream(b, 64, 1), stride, 0);
	BAD("STREAM stride 4097", c_stream(b, 64, 1), stride, 4097);
	BAD("STREAM_WRITE stride 0", c_stream_write(b, 64, 1, 1), stride, 0);
	BAD("STREAM_WRITE stride 4097", c_stream_write(b, 64, 1, 1), stride, 4097);
	BAD("LOAD with src", c_load(b), src, (uintptr_t)b);
	BAD("LOAD with value", c_load(b), value, 1);
	BAD("LOAD with compare", c_load(b), compare, 1);
	BAD("LOAD with stride", c_load(b), stride, 1);
	BAD("LOAD with len 8", c_load(b), len, 8);
	BAD("STORE with src", c_store(b, 1), src, (uintptr_t)b);
	BAD("STORE with compare", c_store(b, 1), compare, 1);
	BAD("STORE with stride", c_store(b, 1), stride, 1);
	BAD("STORE with len 8", c_store(b, 1), len, 8);
	BAD("FILL with src", c_fill(b, 8, 1), src, (uintptr_t)b);
	BAD("FILL with compare", c_fill(b, 8, 1), compare, 1);
	BAD("FILL with stride", c_fill(b, 8, 1), stride, 1);
	BAD("COPY with value", c_copy(b, b + ps, 8), value, 1);
	BAD("COPY with compare", c_copy(b, b + ps, 8), compare, 1);
	BAD("COPY with stride", c_copy(b, b + ps, 8), stride, 1);
	BAD("ATOMIC_ADD with src", c_add(b, 1), src, (uintptr_t)b);
	BAD("ATOMIC_ADD with compare", c_add(b, 1), compare, 1);
	BAD("ATOMIC_ADD with stride", c_add(b, 1), stride, 1);
	BAD("ATOMIC_ADD with len 8", c_add(b, 1), len, 8);
	BAD("ATOMIC_CAS with src", c_cas(b, 1, 2), src, (uintptr_t)b);
	BAD("ATOMIC_CAS with stride", c_cas(b, 1, 2), stride, 1);
	BAD("ATOMIC_CAS with len 8", c_cas(b, 1, 2), len, 8);
	BAD("STREAM with src", c_stream(b, 64, 1), src, (uintptr_t)b);
	BAD("STREAM (read) with value", c_stream(b, 64, 1), value, 1);
	BAD("STREAM with compare", c_stream(b, 64, 1), compare, 1);
	BAD("STREAM_WRITE with compare", c_stream_write(b, 64, 1, 1), compare, 1);
#undef BAD
	ASSERT_LE(n, ARRAY_SIZE(bad));

	/* Alone, and after a good STORE: EINVAL, and nothing is queued (the STORE never runs). */
	for (i = 0; i < n; i++) {
		EXPECT_EQ(-EINVAL, gpu_submit(self->fd[0], &bad[i].c, 1, &fence))
			TH_LOG("%s: SUBMIT did not fail with EINVAL", bad[i].what);
		two[0] = c_store(b + 2 * ps, marker + i);
		two[1] = bad[i].c;
		EXPECT_EQ(-EINVAL, gpu_submit(self->fd[0], two, 2, &fence))
			TH_LOG("%s, after a STORE: SUBMIT did not fail with EINVAL", bad[i].what);
	}

	/* The limits themselves are accepted. */
	job_add(j, &m, c_stream(b, len, 4096));
	job_add(j, &m, c_stream(b + 1, len - 1, 1));
	job_add(j, &m, c_stream_write(b + ps, 64, 4096, 0x11));
	job_add(j, &m, c_copy(b + 3 * ps, b + 3 * ps + 1, ps - 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "the limits"));
	/* The drained queue ran none of the STOREs above. */
	ASSERT_TRUE(model_check(_metadata, &m, "after the refused SUBMITs"));

	/* A STREAM of exactly 1 GiB is well-formed; it faults on the PROT_NONE page it starts at. */
	none = mmap((void *)(1UL << 30), ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, none);
	track(self, none, ps, NULL);
	c = c_stream(none, GIB, 4096);
	ASSERT_EQ(0, gpu_run(self->fd[0], &c, 1, j->got, &status))
		TH_LOG("a STREAM of exactly 1 GiB was refused");
	EXPECT_EQ(-EFAULT, status);
}

TEST_F_TIMEOUT(gpu, bad_submit, 30)
{
	struct rust_hmm_gpu_cmd *cmds, *edge;
	struct rust_hmm_gpu_submit s;
	size_t ps = page_size;
	uint64_t fence, *res;
	uint8_t *b, *area;
	unsigned int i, bad;
	int status;

	b = map_anon(self, ps);
	ASSERT_NE(NULL, b);
	cmds = calloc(MAX_CMDS + 1, sizeof(*cmds));
	ASSERT_NE(NULL, cmds);
	for (i = 0; i <= MAX_CMDS; i++)
		cmds[i] = c_load(b);

	EXPECT_EQ(-EINVAL, gpu_submit(self->fd[0], cmds, 0, &fence)) TH_LOG("ncmds 0");
	EXPECT_EQ(-EINVAL, gpu_submit(self->fd[0], cmds, MAX_CMDS + 1, &fence))
		TH_LOG("ncmds MAX_CMDS + 1");
	EXPECT_EQ(-EINVAL, gpu_submit(self->fd[0], cmds, ~0U, &fence)) TH_LOG("ncmds ~0");

	memset(&s, 0, sizeof(s));
	s.cmds = (uintptr_t)cmds;
	s.ncmds = 1;
	s.pad = 1;
	EXPECT_EQ(-1, ioctl(self->fd[0], RUST_HMM_GPU_SUBMIT, &s)) TH_LOG("pad 1");
	EXPECT_EQ(EINVAL, errno);
	s.pad = 1U << 31;
	EXPECT_EQ(-1, ioctl(self->fd[0], RUST_HMM_GPU_SUBMIT, &s)) TH_LOG("pad 1 << 31");
	EXPECT_EQ(EINVAL, errno);

	/* Commands the kernel cannot read: EFAULT. */
	area = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	track(self, area, 2 * ps, NULL);
	ASSERT_EQ(0, mprotect(area + ps, ps, PROT_NONE));
	EXPECT_EQ(-EFAULT, gpu_submit(self->fd[0], NULL, 1, &fence)) TH_LOG("cmds NULL");
	EXPECT_EQ(-EFAULT, gpu_submit(self->fd[0], (void *)(area + ps), 1, &fence))
		TH_LOG("cmds on a PROT_NONE page");
	/* The second command runs into the PROT_NONE page. */
	edge = (void *)(area + ps - sizeof(*edge) - 8);
	edge[0] = c_load(b);
	EXPECT_EQ(-EFAULT, gpu_submit(self->fd[0], edge, 2, &fence))
		TH_LOG("the second command half on a PROT_NONE page");
	EXPECT_EQ(-EFAULT, gpu_submit(self->fd[0], edge, MAX_CMDS, &fence))
		TH_LOG("MAX_CMDS commands, one page of them readable");
	EXPECT_EQ(-EFAULT, gpu_submit(self->fd[0], (void *)(0xffff888000000000ULL), 1, &fence))
		TH_LOG("cmds at a kernel address");

	/* The argument structs themselves unreadable. */
	EXPECT_EQ(-1, ioctl(self->fd[0], RUST_HMM_GPU_SUBMIT, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd[0], RUST_HMM_GPU_WAIT, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd[0], RUST_HMM_GPU_SUBMIT, area + ps));
	EXPECT_EQ(EFAULT, errno);

	/* An ioctl the device does not know fails. */
	errno = 0;
	EXPECT_EQ(-1, ioctl(self->fd[0], _IOWR('R', 0x42, struct rust_hmm_gpu_wait), &s));
	TH_LOG("an unknown ioctl: %s (ENOTTY expected by convention)", strerror(errno));

	/* After all that, the context works: MAX_CMDS LOADs in one job. */
	*(uint64_t *)b = 77;
	res = calloc(MAX_CMDS, sizeof(*res));
	ASSERT_NE(NULL, res);
	ASSERT_EQ(0, gpu_run(self->fd[0], cmds, MAX_CMDS, res, &status));
	EXPECT_EQ(0, status);
	for (i = 0, bad = 0; i < MAX_CMDS; i++)
		bad += res[i] != 77;
	EXPECT_EQ(0, bad) TH_LOG("%u of %u LOADs wrong", bad, MAX_CMDS);
	free(res);
	free(cmds);
}

TEST_F_TIMEOUT(gpu, fences, 30)
{
	struct rust_hmm_gpu_cmd c[3];
	uint64_t fence[3], r;
	uint8_t *b;
	int i, status;

	b = map_anon(self, page_size);
	ASSERT_NE(NULL, b);
	for (i = 0; i < 3; i++) {
		((uint64_t *)b)[i] = 100 + i;
		c[i] = c_load(b + 8 * i);
	}
	/* A fresh context numbers its jobs from 1. */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, gpu_submit(self->fd[1], &c[i], 1, &fence[i]));
	EXPECT_EQ(1, fence[0]);
	EXPECT_EQ(fence[0] + 1, fence[1]);
	EXPECT_EQ(fence[1] + 1, fence[2]);
	/* Waited for in any order, each job gives its own results. */
	for (i = 2; i >= 0; i--) {
		r = 0;
		ASSERT_EQ(0, gpu_wait(self->fd[1], fence[i], &r, 1, WAIT_MS, &status));
		EXPECT_EQ(0, status);
		EXPECT_EQ(100 + i, r);
	}
	/* Fences are the context's own: the other context never returned these. */
	EXPECT_EQ(-EINVAL, gpu_wait(self->fd[0], fence[0], &r, 1, WAIT_MS, &status))
		TH_LOG("WAIT on another context's fence");
}

TEST_F_TIMEOUT(gpu, bad_wait, 30)
{
	uint64_t fence, r[4], sentinel = 0x5e5e5e5e5e5e5e5eULL;
	struct rust_hmm_gpu_cmd c[4];
	int i, ret, status = 0;
	uint8_t *b, *ro;

	b = map_anon(self, page_size);
	ASSERT_NE(NULL, b);
	for (i = 0; i < 4; i++) {
		((uint64_t *)b)[i] = 10 + i;
		c[i] = c_load(b + 8 * i);
	}
	EXPECT_EQ(-EINVAL, gpu_wait(self->fd[0], 0, r, 1, WAIT_MS, &status)) TH_LOG("fence 0");
	EXPECT_EQ(-EINVAL, gpu_wait(self->fd[0], 1, r, 1, WAIT_MS, &status))
		TH_LOG("fence 1 before any SUBMIT");
	ASSERT_EQ(0, gpu_submit(self->fd[0], c, 4, &fence));
	EXPECT_EQ(-EINVAL, gpu_wait(self->fd[0], fence + 1, r, 1, WAIT_MS, &status))
		TH_LOG("a fence never returned");
	EXPECT_EQ(-EINVAL, gpu_wait(self->fd[0], 1ULL << 63, r, 1, WAIT_MS, &status))
		TH_LOG("fence 1 << 63");

	/* nresults 2 of 4: only the first two results are written. */
	for (i = 0; i < 4; i++)
		r[i] = sentinel;
	ASSERT_EQ(0, gpu_wait(self->fd[0], fence, r, 2, WAIT_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(10, r[0]);
	EXPECT_EQ(11, r[1]);
	EXPECT_EQ(sentinel, r[2]);
	EXPECT_EQ(sentinel, r[3]);
	/* Waited for twice: ENOENT. */
	EXPECT_EQ(-ENOENT, gpu_wait(self->fd[0], fence, r, 4, WAIT_MS, &status))
		TH_LOG("a fence waited for twice");

	/* Results the kernel cannot write: EFAULT. */
	ro = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	track(self, ro, page_size, NULL);
	ASSERT_EQ(0, gpu_submit(self->fd[0], c, 4, &fence));
	EXPECT_EQ(-EFAULT, gpu_wait(self->fd[0], fence, (uint64_t *)ro, 4, WAIT_MS, &status))
		TH_LOG("results on a read-only page");
	/* Whether that forgot the job is not specified: a second WAIT may give it or ENOENT. */
	ret = gpu_wait(self->fd[0], fence, r, 4, WAIT_MS, &status);
	EXPECT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("WAIT after EFAULT: %s", strerror(-ret));
	TH_LOG("WAIT again after an EFAULT of its results: %s", ret ? strerror(-ret) : "the job");
	ASSERT_EQ(0, gpu_submit(self->fd[0], c, 4, &fence));
	EXPECT_EQ(-EFAULT, gpu_wait(self->fd[0], fence, NULL, 4, WAIT_MS, &status))
		TH_LOG("results NULL");
	ret = gpu_wait(self->fd[0], fence, r, 4, WAIT_MS, &status);
	EXPECT_TRUE(ret == 0 || ret == -ENOENT) TH_LOG("WAIT after EFAULT: %s", strerror(-ret));

	/* The context still works. */
	memset(r, 0, sizeof(r));
	ASSERT_EQ(0, gpu_run(self->fd[0], c, 4, r, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(13, r[3]);
}

static void on_signal(int sig)
{
	(void)sig;
}

struct kicker {
	pthread_t target;
	int delay_us;
};

static void *kick(void *arg)
{
	struct kicker *k = arg;

	usleep(k->delay_us);
	pthread_kill(k->target, SIGUSR1);
	return NULL;
}

TEST_F_TIMEOUT(gpu, wait_timeout, 60)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	struct rust_hmm_gpu_cmd c;
	struct kicker k;
	pthread_t thread;
	uint64_t fence, r, want;
	uint8_t *b;
	int ret, status;

	b = map_anon(self, STREAM_SIZE);
	ASSERT_NE(NULL, b);
	fill_pattern(b, STREAM_SIZE, 5);
	want = sum_bytes(b, STREAM_SIZE, 1);
	c = c_stream(b, STREAM_SIZE, 1);

	/* timeout_ms 1 on a long job: ETIMEDOUT (wait again) or, on a fast machine, done. */
	ASSERT_EQ(0, gpu_submit(self->fd[0], &c, 1, &fence));
	ret = gpu_wait(self->fd[0], fence, &r, 1, 1, &status);
	EXPECT_TRUE(ret == 0 || ret == -ETIMEDOUT) TH_LOG("WAIT with 1 ms: %s", strerror(-ret));
	TH_LOG("WAIT of 1 ms on a STREAM of 4 MiB: %s", ret ? strerror(-ret) : "done in time");
	if (ret == -ETIMEDOUT) {
		r = 0;
		ASSERT_EQ(0, gpu_wait(self->fd[0], fence, &r, 1, WAIT_MS, &status))
			TH_LOG("the job timed out once and is gone");
	}
	EXPECT_EQ(0, status);
	EXPECT_EQ(want, r);

	/* A signal interrupts WAIT (EINTR), which gives the job later. */
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, gpu_submit(self->fd[0], &c, 1, &fence));
	k.target = pthread_self();
	k.delay_us = 2000;
	ASSERT_EQ(0, pthread_create(&thread, NULL, kick, &k));
	r = 0;
	ret = gpu_wait(self->fd[0], fence, &r, 1, 0, &status);
	pthread_join(thread, NULL);
	EXPECT_TRUE(ret == 0 || ret == -EINTR) TH_LOG("WAIT with a signal: %s", strerror(-ret));
	TH_LOG("WAIT interrupted by a signal: %s", ret ? strerror(-ret) : "done before it");
	if (ret == -EINTR)
		ASSERT_EQ(0, gpu_wait(self->fd[0], fence, &r, 1, WAIT_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(want, r);
}

TEST_F_TIMEOUT(gpu, max_jobs, 60)
{
	uint64_t fence[RUST_HMM_GPU_MAX_JOBS], extra, r;
	struct rust_hmm_gpu_cmd c[RUST_HMM_GPU_MAX_JOBS];
	int i, status, fd;
	uint64_t *w;

	w = map_anon(self, page_size);
	ASSERT_NE(NULL, w);
	for (i = 0; i < RUST_HMM_GPU_MAX_JOBS; i++) {
		w[i] = 1000 + i;
		c[i] = c_load(&w[i]);
		ASSERT_EQ(0, gpu_submit(self->fd[0], &c[i], 1, &fence[i])) TH_LOG("job %d", i);
	}
	/* MAX_JOBS queued or done but not waited for: EBUSY, even once they are all done. */
	EXPECT_EQ(-EBUSY, gpu_submit(self->fd[0], &c[0], 1, &extra));
	usleep(200000);
	EXPECT_EQ(-EBUSY, gpu_submit(self->fd[0], &c[0], 1, &extra));
	/* The limit is the context's: another context of the device takes jobs. */
	fd = open(dev_path[0], O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	r = 0;
	EXPECT_EQ(0, gpu_run(fd, &c[5], 1, &r, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(1005, r);
	close(fd);
	/* One waited for makes room for one. */
	ASSERT_EQ(0, gpu_wait(self->fd[0], fence[0], &r, 1, WAIT_MS, &status));
	EXPECT_EQ(1000, r);
	ASSERT_EQ(0, gpu_submit(self->fd[0], &c[0], 1, &extra));
	EXPECT_EQ(-EBUSY, gpu_submit(self->fd[0], &c[0], 1, &fence[0]));
	for (i = 1; i < RUST_HMM_GPU_MAX_JOBS; i++) {
		r = 0;
		ASSERT_EQ(0, gpu_wait(self->fd[0], fence[i], &r, 1, WAIT_MS, &status));
		EXPECT_EQ(0, status);
		EXPECT_EQ(1000 + i, r);
	}
	ASSERT_EQ(0, gpu_wait(self->fd[0], extra, &r, 1, WAIT_MS, &status));
	EXPECT_EQ(1000, r);
}

TEST_F_TIMEOUT(gpu, fault_status, 30)
{
	size_t ps = page_size, len = 6 * ps;
	struct rust_hmm_gpu_cmd c[8], k;
	const uint64_t v1 = 0x1111111111111111ULL, v2 = 0x2222222222222222ULL;
	uint64_t r[8], p1old;
	uint8_t *b, *hole, *none;
	struct {
		const char *what;
		struct rust_hmm_gpu_cmd c;
	} faulting[12];
	static const uint64_t kernel_addrs[] = {
		0xffff888000000000ULL, 0xffffffff81000000ULL, 0x0000800000000000ULL, 0,
		/* The last page of the address space: its end is 2^64. */
		0xfffffffffffff000ULL, 0xfffffffffffffff8ULL,
	};
	unsigned int i, n = 0;
	int status, ret;
	struct model m;

	/* Pages 0, 1, 3 and 5 data; page 2 a hole; page 4 PROT_NONE. */
	ASSERT_TRUE(model_new(self, &m, len, 6));
	b = m.base;
	hole = b + 2 * ps;
	none = b + 4 * ps;
	ASSERT_EQ(0, munmap(hole, ps));
	ASSERT_EQ(0, mprotect(none, ps, PROT_NONE));
	memcpy(&p1old, b + ps, 8);

	/* The first failing command stops the job: those before ran, those after did not. */
	c[0] = c_store(b, v1);
	c[1] = c_load(b);
	c[2] = c_add(b + ps, 5);
	c[3] = c_load(hole + 8);
	c[4] = c_store(b + 3 * ps, v2);
	c[5] = c_fill(b + 5 * ps, 64, 0x99);
	for (i = 0; i < 6; i++)
		r[i] = 0xa5a5;
	ASSERT_EQ(0, gpu_run(self->fd[0], c, 6, r, &status));
	EXPECT_EQ(-EFAULT, status);
	EXPECT_EQ(0, r[0]);
	EXPECT_EQ(v1, r[1]);
	EXPECT_EQ(p1old, r[2]);
	model_apply(&m, &c[0]);
	model_apply(&m, &c[2]);
	EXPECT_TRUE(same_bytes(_metadata, b, m.shadow, 2 * ps, "pages 0-1 (ran)"));
	EXPECT_TRUE(same_bytes(_metadata, b + 3 * ps, m.shadow + 3 * ps, ps, "page 3 (not run)"));
	EXPECT_TRUE(same_bytes(_metadata, b + 5 * ps, m.shadow + 5 * ps, ps, "page 5 (not run)"));

	/* Each kind of command on the hole and the PROT_NONE page. */
#define FAULTING(_what, _c) do { faulting[n].what = (_what); faulting[n].c = (_c); n++; } while (0)
	FAULTING("STORE into a hole", c_store(hole, 1));
	FAULTING("FILL of a hole", c_fill(hole + 1, 100, 1));
	FAULTING("COPY from a hole", c_copy(b + 8, hole, 64));
	FAULTING("COPY into a hole", c_copy(hole, b + 8, 64));
	FAULTING("STREAM of a hole", c_stream(hole, ps, 1));
	FAULTING("STREAM_WRITE of a hole", c_stream_write(hole, ps, 7, 1));
	FAULTING("ATOMIC_ADD in a hole", c_add(hole + 64, 1));
	FAULTING("ATOMIC_CAS in a hole", c_cas(hole + 64, 0, 1));
	FAULTING("LOAD of PROT_NONE", c_load(none));
	FAULTING("STORE into PROT_NONE", c_store(none, 1));
	FAULTING("STREAM of PROT_NONE", c_stream(none + 5, 10, 1));
	FAULTING("COPY from PROT_NONE", c_copy(b + 8, none, 64));
#undef FAULTING
	for (i = 0; i < n; i++) {
		c[0] = c_load(b + 16);
		c[1] = faulting[i].c;
		c[2] = c_store(b + 3 * ps + 8, v2);
		r[0] = 0xa5a5;
		ASSERT_EQ(0, gpu_run(self->fd[0], c, 3, r, &status)) TH_LOG("%s", faulting[i].what);
		EXPECT_EQ(-EFAULT, status) TH_LOG("%s", faulting[i].what);
		EXPECT_EQ(*(uint64_t *)(m.shadow + 16), r[0]) TH_LOG("%s", faulting[i].what);
	}
	EXPECT_TRUE(same_bytes(_metadata, b, m.shadow, 2 * ps, "pages 0-1"));
	EXPECT_TRUE(same_bytes(_metadata, b + 3 * ps, m.shadow + 3 * ps, ps, "page 3"));
	EXPECT_TRUE(same_bytes(_metadata, b + 5 * ps, m.shadow + 5 * ps, ps, "page 5"));

	/* Kernel, non-canonical and NULL addresses: refused at SUBMIT or -EFAULT, never run. */
	for (i = 0; i < ARRAY_SIZE(kernel_addrs); i++) {
		k = c_load((void *)(uintptr_t)kernel_addrs[i]);
		ret = gpu_run(self->fd[0], &k, 1, r, &status);
		EXPECT_TRUE(ret == -EINVAL || (ret == 0 && status == -EFAULT))
			TH_LOG("LOAD at %#llx: %s, status %d", (unsigned long long)kernel_addrs[i],
			       ret ? strerror(-ret) : "submitted", status);
		k = c_store((void *)(uintptr_t)kernel_addrs[i], 0);
		ret = gpu_run(self->fd[0], &k, 1, r, &status);
		EXPECT_TRUE(ret == -EINVAL || (ret == 0 && status == -EFAULT))
			TH_LOG("STORE at %#llx: %s, status %d", (unsigned long long)kernel_addrs[i],
			       ret ? strerror(-ret) : "submitted", status);
		/* A range of bytes there too (it ends at or before 2^64). */
		k = c_fill((void *)(uintptr_t)kernel_addrs[i], 8, 0x5a);
		ret = gpu_run(self->fd[0], &k, 1, r, &status);
		EXPECT_TRUE(ret == -EINVAL || (ret == 0 && status == -EFAULT))
			TH_LOG("FILL at %#llx: %s, status %d", (unsigned long long)kernel_addrs[i],
			       ret ? strerror(-ret) : "submitted", status);
	}
}

TEST_F_TIMEOUT(gpu, read_only, 30)
{
	size_t ps = page_size, len = 4 * ps;
	struct rust_hmm_gpu_cmd c[3], writes[6];
	struct job *j = self->job;
	uint64_t r[3];
	unsigned int i, round;
	struct model m;
	uint8_t *ro, *rw;
	int status;

	/* Pages 0-1 read-only, pages 2-3 read-write. */
	ASSERT_TRUE(model_new(self, &m, len, 7));
	ro = m.base;
	rw = m.base + 2 * ps;
	for (round = 0; round < 2; round++) {
		if (round) {
			/* Now with the pages on the device first: it wrote them while writable. */
			ASSERT_EQ(0, mprotect(ro, 2 * ps, PROT_READ | PROT_WRITE));
			job_add(j, &m, c_fill(ro + 3, 2 * ps - 6, 0x42));
			job_add(j, &m, c_store(ro + ps, 0x1234));
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "while writable"));
		}
		ASSERT_EQ(0, mprotect(ro, 2 * ps, PROT_READ));
		/* Reading is fine. */
		job_add(j, &m, c_load(ro + 8));
		job_add(j, &m, c_load(ro + ps + 16));
		job_add(j, &m, c_stream(ro, 2 * ps, 1));
		job_add(j, &m, c_copy(rw + 5, ro + 9, ps + 3));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "reading read-only pages"));

		/* Every kind of write: -EFAULT, nothing written, the job stops. */
		writes[0] = c_store(ro + 8, 1);
		writes[1] = c_fill(ro + ps - 4, 8, 1);
		writes[2] = c_copy(ro + 1, rw, 16);
		writes[3] = c_add(ro + ps + 16, 1);
		writes[4] = c_cas(ro + 24, *(uint64_t *)(m.shadow + 24), 1);
		writes[5] = c_stream_write(ro, 2 * ps, 1, 1);
		for (i = 0; i < ARRAY_SIZE(writes); i++) {
			c[0] = c_load(rw);
			c[1] = writes[i];
			c[2] = c_store(rw + 8, 0xdead);
			ASSERT_EQ(0, gpu_run(self->fd[0], c, 3, r, &status));
			EXPECT_EQ(-EFAULT, status) TH_LOG("write %u to a read-only page, round %u",
							  i, round);
			EXPECT_EQ(*(uint64_t *)(m.shadow + 2 * ps), r[0])
				TH_LOG("the LOAD before write %u", i);
		}
		ASSERT_TRUE(model_check(_metadata, &m, "after writes to read-only pages"));
	}
	/* Writable again: the device writes. */
	ASSERT_EQ(0, mprotect(ro, 2 * ps, PROT_READ | PROT_WRITE));
	job_add(j, &m, c_store(ro + 8, 0xabcdef));
	job_add(j, &m, c_stream_write(ro + ps, ps, 1, 0x24));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "writable again"));
	ASSERT_TRUE(model_check(_metadata, &m, "writable again"));
}

TEST_F_TIMEOUT(gpu, forked_fd, 30)
{
	struct rust_hmm_gpu_cmd c;
	uint64_t fence, r;
	uint64_t *w;
	int status;
	pid_t pid;

	w = map_anon(self, page_size);
	ASSERT_NE(NULL, w);
	*w = 4242;
	c = c_load(w);
	ASSERT_EQ(0, gpu_submit(self->fd[0], &c, 1, &fence));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* Only the process that opened the file may SUBMIT or WAIT on it. */
		uint64_t f2, r2;
		int st, bad = 0;

		if (gpu_submit(self->fd[0], &c, 1, &f2) != -EINVAL)
			bad |= 1;
		if (gpu_wait(self->fd[0], fence, &r2, 1, 100, &st) != -EINVAL)
			bad |= 2;
		if (gpu_submit(self->fd[1], &c, 1, &f2) != -EINVAL)
			bad |= 4;
		if (gpu_wait(self->fd[0], 0, &r2, 1, 100, &st) != -EINVAL)
			bad |= 8;
		_exit(bad);
	}
	status = wait_child(pid, CHILD_MS);
	ASSERT_NE(-1, status) TH_LOG("the child hung");
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("child: bit 0 SUBMIT, 1 WAIT, 2 SUBMIT on the other device, 3 WAIT fence 0 did not give EINVAL");
	/* The parent's job is still its own. */
	r = 0;
	ASSERT_EQ(0, gpu_wait(self->fd[0], fence, &r, 1, WAIT_MS, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(4242, r);
	r = 0;
	ASSERT_EQ(0, gpu_run(self->fd[0], &c, 1, &r, &status));
	EXPECT_EQ(4242, r);
}

/* ---- data through the device ---- */

TEST_F_TIMEOUT(gpu, streaming, 90)
{
	struct job *j = self->job;
	struct gpu_stats before;
	struct model m;

	ASSERT_TRUE(model_new(self, &m, STREAM_SIZE, 8));
	read_stats(0, &before);
	/* The device reads every byte: the sum the CPU computes. */
	job_add(j, &m, c_stream(m.base, STREAM_SIZE, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "STREAM of 4 MiB"));
	expect_stat_grew(_metadata, 0, &before, ST_FAULTS);
	expect_stat_grew(_metadata, 0, &before, ST_TO_DEVICE);
	/* The CPU reads everything back: the pattern is intact. */
	ASSERT_TRUE(model_check(_metadata, &m, "after the device's STREAM"));
	/* The device writes every byte, and reads them back. */
	job_add(j, &m, c_stream_write(m.base, STREAM_SIZE, 1, 0x5a));
	job_add(j, &m, c_stream(m.base, STREAM_SIZE, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "STREAM_WRITE of 4 MiB"));
	ASSERT_TRUE(model_check(_metadata, &m, "after the device's STREAM_WRITE"));
	/* Once more on what the CPU just read back, at a stride that is not a power of 2. */
	cpu_write(&m, 0, STREAM_SIZE, 9);
	job_add(j, &m, c_stream(m.base + 1, STREAM_SIZE - 1, 3));
	job_add(j, &m, c_stream_write(m.base + 2, STREAM_SIZE - 2, 4093, 0xa7));
	job_add(j, &m, c_stream(m.base, STREAM_SIZE, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "second pass"));
	ASSERT_TRUE(model_check(_metadata, &m, "after the second pass"));
}

TEST_F_TIMEOUT(gpu, random_stores, 60)
{
	size_t ps = page_size, npages = RANDOM_SIZE / ps, i, k, t;
	struct job *j = self->job;
	unsigned int round, *perm;
	struct model m;

	TH_LOG("seed %llu (GPU_TESTS_SEED)", (unsigned long long)seed);
	rnd_seed(seed ^ 0x5707e5);
	ASSERT_TRUE(model_new(self, &m, RANDOM_SIZE, 10));
	perm = calloc(npages, sizeof(*perm));
	ASSERT_NE(NULL, perm);
	for (i = 0; i < npages; i++)
		perm[i] = i;
	for (round = 0; round < 2; round++) {
		for (i = npages - 1; i > 0; i--) {
			k = rnd_below(i + 1);
			t = perm[i];
			perm[i] = perm[k];
			perm[k] = t;
		}
		/* Four STOREs per page, the pages in random order, and LOADs of earlier pages. */
		for (i = 0; i < npages; i++) {
			uint8_t *p = m.base + perm[i] * ps;

			for (k = 0; k < 4; k++)
				job_add(j, &m, c_store(p + rnd_below(ps / 8) * 8, rnd()));
			if (i & 1)
				job_add(j, &m, c_load(m.base + perm[rnd_below(i)] * ps +
						      rnd_below(ps / 8) * 8));
			if (j->n > MAX_CMDS - 8)
				ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "random STOREs"))
					TH_LOG("round %u, seed %llu", round, (unsigned long long)seed);
		}
		if (j->n)
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "random STOREs"))
				TH_LOG("round %u, seed %llu", round, (unsigned long long)seed);
		ASSERT_TRUE(model_check(_metadata, &m, "after random STOREs"))
			TH_LOG("round %u, seed %llu", round, (unsigned long long)seed);
		/* The CPU writes words in random pages between the rounds. */
		for (k = 0; k < 64; k++)
			cpu_write(&m, rnd_below(npages) * ps + rnd_below(ps / 8) * 8, 8, rnd());
	}
	free(perm);
}

/* A random well-formed command inside @m, its lengths up to 3 pages. */
static struct rust_hmm_gpu_cmd random_cmd(const struct model *m)
{
	size_t len = m->len, ps = page_size, n, off, src;
	uint8_t *b = m->base;
	uint64_t word = rnd_below(len / 8) * 8;

	switch (1 + rnd_below(7)) {
	case RUST_HMM_GPU_OP_LOAD:
		return c_load(b + word);
	case RUST_HMM_GPU_OP_STORE:
		return c_store(b + word, rnd());
	case RUST_HMM_GPU_OP_FILL:
		n = 1 + rnd_below(3 * ps);
		return c_fill(b + rnd_below(len - n + 1), n, rnd());
	case RUST_HMM_GPU_OP_COPY:
		n = 1 + rnd_below(3 * ps);
		off = rnd_below(len - n + 1);
		src = rnd_below(len - n + 1);
		if (rnd() & 1) {	/* overlapping: src within 32 bytes of dst */
			src = off + rnd_below(65);
			src = src < 32 ? 0 : src - 32;
			src = src > len - n ? len - n : src;
		}
		return c_copy(b + off, b + src, n);
	case RUST_HMM_GPU_OP_ATOMIC_ADD:
		return c_add(b + word, rnd());
	case RUST_HMM_GPU_OP_ATOMIC_CAS: {
		uint64_t cur;

		memcpy(&cur, m->shadow + word, 8);
		return c_cas(b + word, rnd() & 1 ? cur : rnd(), rnd());
	}
	default:
		n = 1 + rnd_below(3 * ps);
		off = rnd_below(len - n + 1);
		if (rnd() & 1)
			return c_stream(b + off, n, rnd() & 1 ? 1 : 1 + rnd_below(4096));
		return c_stream_write(b + off, n, rnd() & 1 ? 1 : 1 + rnd_below(4096), rnd());
	}
}

TEST_F_TIMEOUT(gpu, random_ops, 60)
{
	struct job *j = self->job;
	unsigned int i, k, n;
	struct model m;

	TH_LOG("seed %llu (GPU_TESTS_SEED)", (unsigned long long)seed);
	rnd_seed(seed ^ 0x0b5);
	ASSERT_TRUE(model_new(self, &m, RANDOM_OPS_SIZE, 11));
	for (i = 0; i < RANDOM_OPS_JOBS; i++) {
		n = 1 + rnd_below(64);
		for (k = 0; k < n; k++) {
			/* The CAS's compare is the model's value when the command is made. */
			struct rust_hmm_gpu_cmd c = random_cmd(&m);

			job_add(j, &m, c);
		}
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "random commands"))
			TH_LOG("job %u, seed %llu", i, (unsigned long long)seed);
		/* The CPU writes a few pages in between; every 8 jobs it checks every byte. */
		for (k = 0; k < 4; k++)
			cpu_write(&m, rnd_below(RANDOM_OPS_SIZE / 8 - 8) * 8, 8 * (1 + rnd_below(8)),
				  rnd());
		if (i % 8 == 7 || i == RANDOM_OPS_JOBS - 1)
			ASSERT_TRUE(model_check(_metadata, &m, "random commands"))
				TH_LOG("after job %u, seed %llu", i, (unsigned long long)seed);
	}
}

TEST_F_TIMEOUT(gpu, ping_pong, 90)
{
	size_t ps = page_size, npages = PINGPONG_SIZE / ps, p;
	struct job *j = self->job;
	struct model m;
	unsigned int r;

	ASSERT_TRUE(model_new(self, &m, PINGPONG_SIZE, 12));
	for (r = 0; r < PINGPONG_ROUNDS; r++) {
		/* The device writes every byte and a word of each page... */
		job_add(j, &m, c_fill(m.base, PINGPONG_SIZE, r * 37 + 1));
		for (p = 0; p < npages; p++)
			job_add(j, &m, c_store(m.base + p * ps + (r * 8 * (p + 1)) % ps,
					       mix64(r * 1000 + p)));
		job_add(j, &m, c_stream(m.base, PINGPONG_SIZE, 1));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "device writes")) TH_LOG("round %u", r);
		ASSERT_TRUE(model_check(_metadata, &m, "after the device wrote"))
			TH_LOG("round %u", r);
		/* ...then the CPU, and the device reads what it wrote. */
		cpu_write(&m, 0, PINGPONG_SIZE, 100 + r);
		job_add(j, &m, c_stream(m.base, PINGPONG_SIZE, 1));
		for (p = 0; p < npages; p += 7)
			job_add(j, &m, c_load(m.base + p * ps + (r * 24) % ps));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "device reads")) TH_LOG("round %u", r);
		ASSERT_TRUE(model_check(_metadata, &m, "after the device read"))
			TH_LOG("round %u", r);
	}
}

/* ---- atomics ---- */

TEST_F_TIMEOUT(gpu, atomics, 60)
{
	size_t n = ATOMIC_SIZE / 8, i;
	struct job *j = self->job;
	uint64_t *w, *s;
	struct model m;
	unsigned int r;

	ASSERT_TRUE(model_new(self, &m, ATOMIC_SIZE, 0));
	w = (uint64_t *)m.base;
	s = (uint64_t *)m.shadow;
	for (i = 0; i < n; i++)
		w[i] = s[i] = i * 1000;
	/* Device and CPU add in turn: every old value and every total exact. */
	for (r = 0; r < ATOMIC_ROUNDS; r++) {
		for (i = 0; i < n; i++) {
			job_add(j, &m, c_add(&w[i], r + 1));
			if (j->n == MAX_CMDS)
				ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "ATOMIC_ADD"))
					TH_LOG("round %u", r);
		}
		if (j->n)
			ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "ATOMIC_ADD"));
		for (i = 0; i < n; i++) {
			__atomic_fetch_add(&w[i], 3, __ATOMIC_SEQ_CST);
			s[i] += 3;
		}
		ASSERT_TRUE(model_check(_metadata, &m, "after device and CPU adds"))
			TH_LOG("round %u", r);
	}
	/* CAS: swaps on a match, not on a stale compare, returns the old value either way. */
	for (i = 0; i < 64; i++) {
		uint64_t old = s[i * 8];

		job_add(j, &m, c_cas(&w[i * 8], old, 7000 + i));
		job_add(j, &m, c_cas(&w[i * 8], old, 8000 + i));			/* stale */
		job_add(j, &m, c_cas(&w[i * 8 + 1], s[i * 8 + 1] + 1, 9000));	/* no match */
		job_add(j, &m, c_load(&w[i * 8]));
	}
	/* Wrapping, and an add of 0. */
	job_add(j, &m, c_store(&w[n - 1], ~0ULL));
	job_add(j, &m, c_add(&w[n - 1], 2));
	job_add(j, &m, c_add(&w[n - 2], 0));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "CAS"));
	ASSERT_TRUE(model_check(_metadata, &m, "after CAS"));
	/* Atomics on pages the device holds (it streamed them) and on pages the CPU holds. */
	job_add(j, &m, c_stream(m.base, ATOMIC_SIZE, 1));
	for (i = 0; i < n; i += 97)
		job_add(j, &m, c_add(&w[i], 1ULL << 33));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "after a STREAM"));
	ASSERT_TRUE(model_check(_metadata, &m, "after a STREAM"));
}

struct adder {
	int fd;			/* -1: the CPU adds */
	uint64_t *w;
	size_t n;
	unsigned int rounds;	/* the device's passes over all counters */
	uint64_t inc;
	bool cas;		/* the CPU adds with a CAS loop */
	int *devices_left;	/* the CPU passes until the device threads are done */
	unsigned int passes;	/* the CPU's passes over all counters */
	struct job *job;
	char why[160];
};

static void *adder(void *arg)
{
	struct adder *a = arg;
	unsigned int r;
	size_t i, k, m;
	int status, ret;

	while (a->fd < 0) {
		for (i = 0; i < a->n; i++) {
			uint64_t old = __atomic_load_n(&a->w[i], __ATOMIC_RELAXED);

			if (!a->cas) {
				__atomic_fetch_add(&a->w[i], a->inc, __ATOMIC_SEQ_CST);
				continue;
			}
			while (!__atomic_compare_exchange_n(&a->w[i], &old, old + a->inc, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
				;
		}
		a->passes++;
		if (!__atomic_load_n(a->devices_left, __ATOMIC_SEQ_CST))
			return NULL;
	}
	for (r = 0; r < a->rounds; r++) {
		for (i = 0; i < a->n; i += MAX_CMDS) {
			m = a->n - i < MAX_CMDS ? a->n - i : MAX_CMDS;
			for (k = 0; k < m; k++)
				a->job->cmd[k] = c_add(&a->w[i + k], a->inc);
			ret = gpu_run(a->fd, a->job->cmd, m, a->job->got, &status);
			if (ret || status) {
				snprintf(a->why, sizeof(a->why), "round %u: WAIT %s, status %d", r,
					 ret ? strerror(-ret) : "done", status);
				goto out;
			}
		}
	}
out:
	__atomic_fetch_sub(a->devices_left, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST_F_TIMEOUT(gpu, atomics_concurrent, 120)
{
	size_t n = ATOMIC_SIZE / 8, i, bad = 0;
	int devices_left = 2;
	struct adder a[4];
	pthread_t t[4];
	uint64_t *w, want = 0;
	unsigned int k;

	w = map_anon(self, ATOMIC_SIZE);
	ASSERT_NE(NULL, w);
	memset(w, 0, ATOMIC_SIZE);
	/*
	 * Two threads add through the device (one context, CONCURRENT_ROUNDS passes over the
	 * counters), one with a CPU CAS loop and the main thread with the CPU's fetch_add, all
	 * on the same counters at once: the CPU keeps passing until the device is done. Each
	 * adds its own power of 2^16, so that a wrong total tells who lost updates.
	 */
	for (k = 0; k < 4; k++) {
		memset(&a[k], 0, sizeof(a[k]));
		a[k].fd = k < 2 ? self->fd[0] : -1;
		a[k].w = w;
		a[k].n = n;
		a[k].rounds = CONCURRENT_ROUNDS;
		a[k].inc = 1ULL << (k * 16);
		a[k].cas = k == 2;
		a[k].devices_left = &devices_left;
		a[k].job = k < 2 ? calloc(1, sizeof(struct job)) : NULL;
	}
	ASSERT_TRUE(a[0].job && a[1].job);
	for (k = 0; k < 3; k++)
		ASSERT_EQ(0, pthread_create(&t[k], NULL, adder, &a[k]));
	adder(&a[3]);
	for (k = 0; k < 3; k++)
		pthread_join(t[k], NULL);
	for (k = 0; k < 2; k++) {
		EXPECT_EQ(0, a[k].why[0]) TH_LOG("device thread %u: %s", k, a[k].why);
		free(a[k].job);
		want += a[k].inc * a[k].rounds;
	}
	for (k = 2; k < 4; k++)
		want += a[k].inc * a[k].passes;
	TH_LOG("the CPU passed %u times (CAS) and %u times (fetch_add) meanwhile", a[2].passes,
	       a[3].passes);
	for (i = 0; i < n; i++) {
		if (w[i] == want)
			continue;
		if (bad++ < 4)
			TH_LOG("counter %zu is %#llx, want %#llx (16 bits per adder: CPU add, CPU CAS, device, device)",
			       i, (unsigned long long)w[i], (unsigned long long)want);
	}
	EXPECT_EQ(0, bad) TH_LOG("%zu of %zu counters wrong", bad, n);
}

/* ---- other kinds of memory ---- */

TEST_F_TIMEOUT(gpu, shared_memory, 30)
{
	size_t len = 256 * KIB;
	struct job *j = self->job;
	struct model m;
	uint8_t *view;
	int memfd;

	/* A shared file mapping (the device cannot migrate it) seen through a second mapping. */
	memfd = memfd_create("gpu-tests", MFD_CLOEXEC);
	ASSERT_GE(memfd, 0);
	ASSERT_EQ(0, ftruncate(memfd, len));
	m.len = len;
	m.base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	close(memfd);
	ASSERT_NE(MAP_FAILED, m.base);
	ASSERT_NE(MAP_FAILED, view);
	m.shadow = malloc(len);
	ASSERT_NE(NULL, m.shadow);
	track(self, m.base, len, m.shadow);
	track(self, view, len, NULL);
	fill_pattern(view, len, 13);
	memcpy(m.shadow, view, len);
	job_add(j, &m, c_stream(m.base, len, 1));
	job_add(j, &m, c_store(m.base + 8, 0x5eed));
	job_add(j, &m, c_fill(m.base + 4095, 4098, 0x66));
	job_add(j, &m, c_copy(m.base + 10 * 4096 + 1, m.base + 20 * 4096, 3 * 4096));
	job_add(j, &m, c_add(m.base + 30 * 4096, 5));
	job_add(j, &m, c_stream_write(m.base + 40 * 4096, 8 * 4096, 5, 0x3));
	job_add(j, &m, c_stream(m.base, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "on shared memory"));
	ASSERT_TRUE(same_bytes(_metadata, view, m.shadow, len, "the other mapping"));
	ASSERT_TRUE(model_check(_metadata, &m, "shared memory"));

	/* Shared anonymous memory too. */
	m.base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m.base);
	track(self, m.base, len, NULL);
	cpu_write(&m, 0, len, 14);
	job_add(j, &m, c_stream(m.base, len, 1));
	job_add(j, &m, c_fill(m.base + 100, 3 * 4096, 0x12));
	job_add(j, &m, c_stream(m.base, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "on shared anonymous memory"));
	ASSERT_TRUE(model_check(_metadata, &m, "shared anonymous memory"));
}

TEST_F_TIMEOUT(gpu, huge_page, 60)
{
	size_t huge = 2 * MIB, len = 2 * huge, ps = page_size, p;
	struct job *j = self->job;
	struct model m;
	uint8_t *area;

	/* Two transparent huge pages (madvise; the boot has transparent_hugepage=madvise). */
	area = map_anon(self, len + huge);
	ASSERT_NE(NULL, area);
	m.base = (uint8_t *)(((uintptr_t)area + huge - 1) & ~(huge - 1));
	m.len = len;
	m.shadow = malloc(len);
	ASSERT_NE(NULL, m.shadow);
	track(self, NULL, 0, m.shadow);
	madvise(m.base, len, MADV_HUGEPAGE);
	cpu_write(&m, 0, len, 15);
	job_add(j, &m, c_stream(m.base, len, 1));
	for (p = 0; p < len / ps; p += 3)
		job_add(j, &m, c_store(m.base + p * ps + (p * 8) % ps, mix64(p)));
	job_add(j, &m, c_fill(m.base + huge - 5000, 10000, 0x7e));	/* across both */
	job_add(j, &m, c_copy(m.base + 100, m.base + huge + 3, 3 * ps));
	job_add(j, &m, c_add(m.base + huge + 8, 11));
	job_add(j, &m, c_stream(m.base, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "on huge pages"));
	ASSERT_TRUE(model_check(_metadata, &m, "huge pages"));
	/* The CPU writes half of each; the device reads. */
	cpu_write(&m, huge / 2, huge, 16);
	job_add(j, &m, c_stream(m.base, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "reading huge pages back"));
	ASSERT_TRUE(model_check(_metadata, &m, "huge pages, again"));
}

/* ---- more than the device's memory ---- */

TEST_F_TIMEOUT(gpu, oversubscribed, 180)
{
	size_t len, ps = page_size, npages, p;
	struct job *j = self->job;
	struct gpu_stats before;
	unsigned long vram;
	unsigned int pass;
	struct model m;

	vram = vram_mb(_metadata);
	len = OVERSUBSCRIBE * vram * MIB;
	npages = len / ps;
	TH_LOG("%zu MiB over %lu MiB of device memory", len / MIB, vram);
	ASSERT_TRUE(model_new(self, &m, len, 17));
	read_stats(0, &before);
	/* The device streams all of it twice, and writes a word of every page the second time. */
	for (pass = 0; pass < 2; pass++) {
		if (pass) {
			for (p = 0; p < npages; p++) {
				job_add(j, &m, c_store(m.base + p * ps + (p * 8) % ps,
						       mix64(p + 77)));
				if (j->n == MAX_CMDS)
					ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "STOREs"));
			}
		}
		job_add(j, &m, c_stream(m.base, len, 1));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "STREAM")) TH_LOG("pass %u", pass);
	}
	ASSERT_TRUE(model_check(_metadata, &m, "oversubscribed"));
	expect_stat_grew(_metadata, 0, &before, ST_EVICTIONS);
}

/* ---- processes and mappings going away ---- */

/* The child's side of fork_cow. Returns 0, or 1 with why in @msg. */
static int fork_cow_child(const char *devpath, struct model *m, int to_parent, int from_parent,
			  char *msg)
{
	size_t len = m->len, half = len / 2;
	struct job *j = calloc(1, sizeof(*j));
	unsigned int i;
	int fd, status;

	/* What the parent had at fork, its device's pages included. */
	if (memcmp(m->base, m->shadow, len)) {
		snprintf(msg, MSG_SIZE, "child: the data at fork is wrong");
		return 1;
	}
	/* Its own context reads and writes its copy. */
	fd = open(devpath, O_RDWR | O_CLOEXEC);
	if (fd < 0 || !j) {
		snprintf(msg, MSG_SIZE, "child: open %s: %s", devpath, strerror(errno));
		return 1;
	}
	job_add(j, m, c_stream(m->base, len, 1));
	for (i = 0; i < len / page_size; i += 2)
		job_add(j, m, c_store(m->base + i * page_size + 16, 0xc0c0c0c0 + i));
	job_add(j, m, c_fill(m->base + half, half / 2, 0xcc));
	if (gpu_run(fd, j->cmd, j->n, j->got, &status) || status ||
	    memcmp(j->got, j->want, j->n * 8)) {
		snprintf(msg, MSG_SIZE, "child: its device job failed or gave wrong results (status %d)",
			 status);
		return 1;
	}
	cpu_write(m, half / 2, half, 0xc41d);
	if (memcmp(m->base, m->shadow, len)) {
		snprintf(msg, MSG_SIZE, "child: its own writes are wrong");
		return 1;
	}
	if (write(to_parent, "w", 1) != 1 || read_byte(from_parent, CHILD_MS) != 'p') {
		snprintf(msg, MSG_SIZE, "child: no word from the parent");
		return 1;
	}
	/* The parent wrote its copy meanwhile: not this one. */
	if (memcmp(m->base, m->shadow, len)) {
		snprintf(msg, MSG_SIZE, "child: the parent's writes show in the child's copy");
		return 1;
	}
	close(fd);
	return 0;
}

TEST_F_TIMEOUT(gpu, fork_cow, 90)
{
	size_t len = FORK_SIZE, half = len / 2, p;
	int to_parent[2], to_child[2], status;
	struct job *j = self->job;
	struct model m;
	pid_t pid;

	ASSERT_TRUE(model_new(self, &m, len, 18));
	/* The parent's data on the device first. */
	job_add(j, &m, c_stream(m.base, len, 1));
	for (p = 0; p < len / page_size; p++)
		job_add(j, &m, c_store(m.base + p * page_size + 8, 0xf0f0 + p));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "before fork"));
	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(fork_cow_child(dev_path[0], &m, to_parent[1], to_child[0], self->msg));

	/* The child wrote its copy: the parent's is unchanged. */
	EXPECT_EQ('w', read_byte(to_parent[0], CHILD_MS)) TH_LOG("%s", self->msg);
	EXPECT_TRUE(model_check(_metadata, &m, "the parent's copy after the child wrote"));
	/* The parent writes through the device and the CPU; the child's copy must not change. */
	job_add(j, &m, c_fill(m.base, half, 0xaa));
	job_add(j, &m, c_stream(m.base, len, 1));
	ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "after fork"));
	cpu_write(&m, half, half / 2, 0x9a7e);
	EXPECT_EQ(1, write(to_child[1], "p", 1));
	status = wait_child(pid, CHILD_MS);
	ASSERT_NE(-1, status) TH_LOG("the child hung");
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child status %#x: %s", status, self->msg);
	EXPECT_TRUE(model_check(_metadata, &m, "the parent's copy at the end"));
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

struct streamer {
	int fd;
	uint8_t *a, *b;		/* STREAM over a (munmapped meanwhile), then over b */
	size_t alen, blen;
	int wait_a, status_a, wait_b, status_b;
	uint64_t sum_b;
};

static void *streamer(void *arg)
{
	struct streamer *s = arg;
	struct rust_hmm_gpu_cmd c = c_stream(s->a, s->alen, 1);
	uint64_t r;

	s->wait_a = gpu_run(s->fd, &c, 1, &r, &s->status_a);
	c = c_stream(s->b, s->blen, 1);
	s->wait_b = gpu_run(s->fd, &c, 1, &s->sum_b, &s->status_b);
	return NULL;
}

TEST_F_TIMEOUT(gpu, munmap_running, 120)
{
	static const int delay_us[] = { 0, 1000, 10000, 50000 };
	size_t alen = MUNMAP_SIZE, blen = MUNMAP_NEIGHBOUR;
	struct job *j = self->job;
	struct streamer s;
	unsigned int round;
	pthread_t thread;
	struct model nb;
	uint8_t *region;

	for (round = 0; round < ARRAY_SIZE(delay_us); round++) {
		/* One mapping: a (streamed and unmapped) then its neighbour b. */
		region = map_anon(self, alen + blen);
		ASSERT_NE(NULL, region);
		fill_pattern(region, alen + blen, 20 + round);
		nb.base = region + alen;
		nb.len = blen;
		nb.shadow = malloc(blen);
		ASSERT_NE(NULL, nb.shadow);
		track(self, NULL, 0, nb.shadow);
		memcpy(nb.shadow, nb.base, blen);
		/* b's pages on the device first. */
		job_add(j, &nb, c_stream(nb.base, blen, 1));
		job_add(j, &nb, c_fill(nb.base + 3 * page_size + 5, 2 * page_size, 0x70 + round));
		ASSERT_TRUE(job_run(_metadata, self->fd[0], j, "the neighbour"));

		memset(&s, 0, sizeof(s));
		s.fd = self->fd[0];
		s.a = region;
		s.alen = alen;
		s.b = nb.base;
		s.blen = blen;
		ASSERT_EQ(0, pthread_create(&thread, NULL, streamer, &s));
		usleep(delay_us[round]);
		EXPECT_EQ(0, munmap(region, alen));
		pthread_join(thread, NULL);
		untrack(self, region);
		track(self, nb.base, blen, NULL);

		/* The job over a ends, whole or cut short; b's is whole. */
		EXPECT_EQ(0, s.wait_a) TH_LOG("round %u: WAIT on the unmapped region: %s", round,
					      strerror(-s.wait_a));
		EXPECT_TRUE(s.status_a == 0 || s.status_a == -EFAULT)
			TH_LOG("round %u: status %d", round, s.status_a);
		TH_LOG("munmap after %d us: the STREAM's status %d", delay_us[round], s.status_a);
		EXPECT_EQ(0, s.wait_b);
		EXPECT_EQ(0, s.status_b);
		EXPECT_EQ(sum_bytes(nb.shadow, blen, 1), s.sum_b) TH_LOG("round %u", round);
		ASSERT_TRUE(model_check(_metadata, &nb, "the neighbour")) TH_LOG("round %u", round);
	}
}

/* The child of exit_running: jobs on both devices, then _exit without waiting. */
static void exit_running_child(int delay_us, char *msg)
{
	struct rust_hmm_gpu_cmd c[4];
	int fd[2], i, k;
	uint64_t fence;
	uint8_t *b;

	b = mmap(NULL, EXIT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		_exit(2);
	fill_pattern(b, EXIT_SIZE, 30);
	for (i = 0; i < 2; i++) {
		fd[i] = open(dev_path[i], O_RDWR | O_CLOEXEC);
		if (fd[i] < 0) {
			snprintf(msg, MSG_SIZE, "child: open %s: %s", dev_path[i], strerror(errno));
			_exit(2);
		}
	}
	c[0] = c_stream(b, EXIT_SIZE, 1);
	c[1] = c_stream_write(b, EXIT_SIZE, 1, 0x31);
	c[2] = c_fill(b + 1, EXIT_SIZE / 2, 0x32);
	c[3] = c_copy(b + EXIT_SIZE / 2, b, EXIT_SIZE / 2);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < 2; i++) {
			int ret = gpu_submit(fd[i], c, 4, &fence);

			if (ret) {
				snprintf(msg, MSG_SIZE, "child: SUBMIT: %s", strerror(-ret));
				_exit(2);
			}
		}
	}
	usleep(delay_us);
	_exit(0);
}

TEST_F_TIMEOUT(gpu, exit_running, 120)
{
	static const int delay_us[] = { 0, 5000, 30000 };
	struct job *j = self->job;
	unsigned int round;
	struct model m;
	int status, fd;
	pid_t pid;

	for (round = 0; round < ARRAY_SIZE(delay_us); round++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (!pid)
			exit_running_child(delay_us[round], self->msg);
		status = wait_child(pid, CHILD_MS);
		ASSERT_NE(-1, status) TH_LOG("round %u: the child did not exit within %d ms",
					     round, CHILD_MS);
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("round %u: child status %#x: %s", round, status, self->msg);
	}
	/* A fresh context works, and so does the one opened before. */
	ASSERT_TRUE(model_new(self, &m, 16 * page_size, 31));
	fd = open(dev_path[0], O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	job_add(j, &m, c_stream(m.base, m.len, 1));
	job_add(j, &m, c_store(m.base + 8, 0x600d));
	job_add(j, &m, c_fill(m.base + 3 * page_size - 1, 2, 0x5));
	job_add(j, &m, c_stream(m.base, m.len, 1));
	EXPECT_TRUE(job_run(_metadata, fd, j, "a fresh context"));
	close(fd);
	job_add(j, &m, c_copy(m.base + 5 * page_size, m.base, 2 * page_size));
	job_add(j, &m, c_stream(m.base, m.len, 1));
	EXPECT_TRUE(job_run(_metadata, self->fd[0], j, "the older context"));
	EXPECT_TRUE(model_check(_metadata, &m, "after the children"));
}

/* ---- two devices ---- */

TEST_F_TIMEOUT(gpu, two_devices, 90)
{
	size_t len = TWO_DEV_SIZE, half = len / 2, ps = page_size, p;
	struct job *j = self->job;
	unsigned int r;
	struct model m;
	int x, y;

	ASSERT_TRUE(model_new(self, &m, len, 40));
	for (r = 0; r < TWO_DEV_ROUNDS; r++) {
		x = self->fd[r & 1];
		y = self->fd[!(r & 1)];
		/* One device writes the first half... */
		for (p = 0; p < half / ps; p++) {
			job_add(j, &m, c_fill(m.base + p * ps, ps, r * 17 + p));
			job_add(j, &m, c_store(m.base + p * ps + (r * 64) % ps, mix64(r * 100 + p)));
		}
		ASSERT_TRUE(job_run(_metadata, x, j, "the first device writes")) TH_LOG("round %u", r);
		/* ...the other reads it and writes the second half... */
		job_add(j, &m, c_stream(m.base, half, 1));
		job_add(j, &m, c_stream_write(m.base + half, half, 1, 0x80 + r));
		for (p = half / ps; p < len / ps; p += 3)
			job_add(j, &m, c_store(m.base + p * ps + 8 * r, mix64(r * 200 + p)));
		job_add(j, &m, c_copy(m.base + half + 2 * ps + 1, m.base + 5, ps));
		ASSERT_TRUE(job_run(_metadata, y, j, "the second device reads and writes"))
			TH_LOG("round %u", r);
		/* ...the first reads that back, and the CPU checks all. */
		job_add(j, &m, c_stream(m.base + half, half, 1));
		job_add(j, &m, c_load(m.base + half + 8 * r));
		ASSERT_TRUE(job_run(_metadata, x, j, "the first device reads")) TH_LOG("round %u", r);
		ASSERT_TRUE(model_check(_metadata, &m, "two devices")) TH_LOG("round %u", r);
	}
}

/* ---- unloading the module with jobs in flight (last: it reloads the module) ---- */

FIXTURE(unload) {
	int unused;
};

FIXTURE_SETUP(unload)
{
}

FIXTURE_TEARDOWN(unload)
{
}

/* The child of unload.jobs_in_flight: long jobs on both devices, then close and exit. */
static void unload_child(int ready, char *msg)
{
	struct rust_hmm_gpu_cmd c[3];
	uint64_t fence;
	int fd[2], i, k;
	uint8_t *b;

	b = mmap(NULL, UNLOAD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		_exit(2);
	fill_pattern(b, UNLOAD_SIZE, 50);
	for (i = 0; i < 2; i++) {
		fd[i] = open(dev_path[i], O_RDWR | O_CLOEXEC);
		if (fd[i] < 0) {
			snprintf(msg, MSG_SIZE, "child: open %s: %s", dev_path[i], strerror(errno));
			_exit(2);
		}
	}
	c[0] = c_stream(b, UNLOAD_SIZE, 1);
	c[1] = c_stream_write(b, UNLOAD_SIZE, 1, 0x51);
	c[2] = c_stream(b, UNLOAD_SIZE, 1);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < 2; i++) {
			int ret = gpu_submit(fd[i], c, 3, &fence);

			if (ret) {
				snprintf(msg, MSG_SIZE, "child: SUBMIT: %s", strerror(-ret));
				_exit(2);
			}
		}
	}
	if (write(ready, "r", 1) != 1)
		_exit(2);
	close(fd[0]);
	close(fd[1]);
	_exit(0);
}

TEST_F_TIMEOUT(unload, jobs_in_flight, 90)
{
	const char *ko = getenv("RUST_HMM_GPU_KO"), *params = getenv("RUST_HMM_GPU_PARAMS");
	size_t len = 8 * page_size;
	struct rust_hmm_gpu_cmd c[4];
	struct timespec start;
	int kofd, ready[2], status, fd = -1, ret = -1, err = 0, i;
	uint64_t r[4];
	uint8_t *b;
	char *msg;
	pid_t pid;

	if (!ko || !*ko)
		SKIP(return, "RUST_HMM_GPU_KO (the module file to reload) is not set");
	/* Whether we may unload at all, asked of a module that does not exist. */
	if (syscall(SYS_delete_module, "rust_hmm_gpu_no_such_module", O_NONBLOCK) &&
	    (errno == EPERM || errno == ENOSYS))
		SKIP(return, "delete_module is not permitted here (%s)", strerror(errno));
	kofd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_GE(kofd, 0) TH_LOG("open %s: %s", ko, strerror(errno));
	msg = mmap(NULL, MSG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, msg);
	msg[0] = 0;
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		unload_child(ready[1], msg);
	close(ready[1]);
	ASSERT_EQ('r', read_byte(ready[0], CHILD_MS)) TH_LOG("the child: %s", msg);

	/* Unload while the child closes its files and exits with its jobs in flight. */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ret = syscall(SYS_delete_module, "rust_hmm_gpu", O_NONBLOCK);
		err = errno;
		if (!ret || (err != EAGAIN && err != EBUSY && err != EWOULDBLOCK) ||
		    elapsed_ms(&start) > UNLOAD_MS)
			break;
		usleep(10000);
	}
	status = wait_child(pid, CHILD_MS);
	EXPECT_NE(-1, status) TH_LOG("the child did not exit");
	EXPECT_TRUE(status != -1 && WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("child status %#x: %s", status, msg);
	ASSERT_EQ(0, ret) TH_LOG("delete_module: %s after %ld ms", strerror(err),
				 elapsed_ms(&start));
	TH_LOG("unloaded after %ld ms", elapsed_ms(&start));

	/* Reload it, and a simple job works. */
	ASSERT_EQ(0, syscall(SYS_finit_module, kofd, params ? params : "", 0))
		TH_LOG("finit_module %s %s: %s", ko, params ? params : "", strerror(errno));
	close(kofd);
	for (i = 0; i < 100 && fd < 0; i++) {
		fd = open(dev_path[0], O_RDWR | O_CLOEXEC);
		if (fd < 0)
			usleep(20000);
	}
	ASSERT_GE(fd, 0) TH_LOG("open %s after the reload: %s", dev_path[0], strerror(errno));
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, b);
	fill_pattern(b, len, 51);
	c[0] = c_store(b + 8, 0x4e10ad);
	c[1] = c_load(b + 8);
	c[2] = c_fill(b + page_size - 2, 4, 0x2);
	c[3] = c_stream(b, len, 1);
	ASSERT_EQ(0, gpu_run(fd, c, 4, r, &status));
	EXPECT_EQ(0, status);
	EXPECT_EQ(0x4e10ad, r[1]);
	EXPECT_EQ(0x4e10ad, ((uint64_t *)b)[1]);
	EXPECT_EQ(0x02020202, *(uint32_t *)(b + page_size - 2));
	EXPECT_EQ(sum_bytes(b, len, 1), r[3]);
	close(fd);
	munmap(b, len);
	munmap(msg, MSG_SIZE);
}

int main(int argc, char **argv)
{
	const char *s = getenv("GPU_TESTS_SEED");
	int opt, n = 0, i;

	page_size = sysconf(_SC_PAGESIZE);
	if (s && *s)
		seed = strtoull(s, NULL, 0);
	/* The arguments that are not the harness's options name the devices. */
	opterr = 0;
	while ((opt = getopt(argc, argv, "hlF:f:V:v:t:T:r:")) != -1)
		;
	for (i = optind; i < argc && n < 2; i++)
		dev_path[n++] = argv[i];
	for (i = 0; i < 2; i++) {
		const char *d = dev_path[i] + strlen(dev_path[i]);

		while (d > dev_path[i] && d[-1] >= '0' && d[-1] <= '9')
			d--;
		dev_index[i] = *d ? atoi(d) : i;
	}
	optind = 1;
	opterr = 1;
	return test_harness_run(argc, argv);
}
