// SPDX-License-Identifier: GPL-2.0
/*
 * A multi-threaded data-integrity stress of one to four dmirror devices, for SECONDS.
 *
 * One region of NSLOTS slots of SLOT_PAGES anonymous private pages, each slot with a lock
 * and a shadow copy of what it must hold. Worker threads, each with its own open file of
 * every device, pick a random slot, lock it and do a random operation on it: migrate it to
 * a device or back, READ or WRITE it through a device, read or write it through the CPU
 * (which migrates device-private pages back), mprotect it read-only and back, MADV_DONTNEED
 * it, or, rarely, migrate it and fork a child that checks it; then they compare the slot
 * with its shadow through the CPU. A successful migration is sometimes followed by a second
 * operation, so that the others also meet pages that are on a device. Every data check is
 * against the shadow, and only under the slot's lock. At the end, RELEASE on every device
 * and a last comparison of the whole region.
 *
 * Prints one line: "ok: stress ..." or "FAIL: stress ..." with the first failures, and
 * exits 0 or 1 (2 on a usage error). A run that has not finished SECONDS + 60 s after its
 * start (or 60 s after the workers, for the final RELEASE) prints FAIL and exits 1.
 *
 * For the Rust module: the C module's known bugs (see shared/HMM-NOTES.md) are on this path.
 * Its other opens of the same device keep pointers to pages that moved (a use-after-free on
 * their READ and WRITE), and a device WRITE of a device-private page that the CPU maps
 * read-only (after a fork) never completes.
 *
 * Usage: dmirror-stress SECONDS SEED /dev/hmm_dmirrorA [/dev/hmm_dmirrorB ...]
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define NSLOTS		16
#define SLOT_PAGES	16
#define NTHREADS	4
#define NRACERS		3	/* threads racing over one range without a lock */
#define RACE_PAGES	64
#define CHAOS_PAGES	32	/* remapped under the racers: errors, never an oops or a hang */
#define MAX_DEVS	4
#define FORK_ONE_IN	64	/* a round is a fork with this odds */
#define HANG_SECONDS	60	/* beyond the run, before a hang is declared */
#define MAX_REPORTS	5	/* failures described in the summary */
#define WHAT_SIZE	256

enum op {
	OP_MIGRATE_TO_DEV,
	OP_MIGRATE_TO_SYS,
	OP_DEV_WRITE,
	OP_DEV_READ,
	OP_CPU_WRITE,
	OP_CPU_READ,
	OP_MPROTECT,
	OP_DONTNEED,
	NR_OPS
};

static const unsigned int op_weight[NR_OPS] = { 4, 2, 3, 3, 3, 1, 1, 1 };

struct slot {
	pthread_mutex_t lock;
	unsigned char *shadow;		/* what the slot must hold */
	/*
	 * The devices whose memory may hold pages of the slot: a migration to another device
	 * leaves those pages where they are, and MIGRATE_TO_DEV then says ENOENT. Even one that
	 * returns 0 may leave some (they can be in the device page table from an earlier READ),
	 * so only MADV_DONTNEED clears it. After each round only device-coherent ones remain:
	 * the CPU comparison brings device-private pages back.
	 */
	unsigned int maybe_on;
};

struct worker {
	pthread_t thread;
	uint64_t rng;
	int fd[MAX_DEVS];
	unsigned char *buf;		/* SLOT_PAGES pages the device reads into */
	unsigned char *data;		/* SLOT_PAGES pages of fresh bytes */
	char what[WHAT_SIZE];		/* the operations of this round, for the reports */
	pid_t child;			/* a forked child being waited for, or 0 */
	unsigned long ops, migrations, tolerated;
};

static unsigned long page;
static size_t slot_size;
static unsigned char *region;
static struct slot slots[NSLOTS];
static struct worker workers[NTHREADS];
static struct worker racers[NRACERS];
static unsigned char *race, *race_shadow;	/* never written after the start */
static unsigned char *chaos;			/* munmapped, remapped, forked under migrations */
static struct worker chaos_worker;
static int ndev;
static const char *dev_name[MAX_DEVS];
static unsigned int coherent_mask;	/* the devices whose pages the CPU maps */
static int64_t end_ms;			/* when the workers stop */

/*
 * Forked children alive, and forks so far: a fork write-protects and shares every page, so a
 * migration of any slot that overlaps one may leave pages behind.
 */
static int forks_live;
static unsigned long fork_gen;

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char reports[MAX_REPORTS][WHAT_SIZE + 176];
static unsigned long nfailures;

/* For the watchdog: what runs now and when it must be done. */
static const char *phase;
static int64_t phase_deadline_ms;
static int finished;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void fill(uint64_t *s, unsigned char *p, size_t len)
{
	uint64_t x;

	for (; len >= 8; p += 8, len -= 8) {
		x = rnd(s);
		memcpy(p, &x, 8);
	}
	x = rnd(s);
	memcpy(p, &x, len);
}

static const char *errname(int ret)
{
	switch (-ret) {
	case 0:
		return "0";
	case ENOENT:
		return "ENOENT";
	case EINTR:
		return "EINTR";
	case EFAULT:
		return "EFAULT";
	case EBUSY:
		return "EBUSY";
	case ENOMEM:
		return "ENOMEM";
	case EINVAL:
		return "EINVAL";
	case EPERM:
		return "EPERM";
	case EAGAIN:
		return "EAGAIN";
	default:
		return "another error";
	}
}

/* Errors a device may return under memory pressure or contention. */
static int tolerated(int ret)
{
	return ret == -ENOMEM || ret == -EBUSY || ret == -EINTR;
}

static unsigned char *slot_addr(int s)
{
	return region + (size_t)s * slot_size;
}

/* Runs ioctl @req on @npages pages at @addr with @ptr; returns 0 or -errno. */
static int dmirror_ioctl(int fd, unsigned long req, void *addr, void *ptr,
			 unsigned long npages, struct hmm_dmirror_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->addr = (uintptr_t)addr;
	cmd->ptr = (uintptr_t)ptr;
	cmd->npages = npages;
	return ioctl(fd, req, cmd) ? -errno : 0;
}

/* Adds an operation to the description of the round. */
static void log_op(struct worker *w, const char *fmt, ...)
{
	size_t len = strlen(w->what);
	va_list ap;

	if (len >= sizeof(w->what) - 3)
		return;
	if (len) {
		memcpy(w->what + len, ", ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(w->what + len, sizeof(w->what) - len, fmt, ap);
	va_end(ap);
}

/* Records a failure; the first MAX_REPORTS are described with the round's operations. */
static void fail(struct worker *w, const char *fmt, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&report_lock);
	if (nfailures < MAX_REPORTS)
		snprintf(reports[nfailures], sizeof(reports[0]), "%s (after %s)", msg, w->what);
	nfailures++;
	pthread_mutex_unlock(&report_lock);
}

/* The offset of the first byte where @a and @b differ, or -1. */
static long first_diff(const unsigned char *a, const unsigned char *b, size_t len)
{
	size_t i;

	if (!memcmp(a, b, len))
		return -1;
	for (i = 0; a[i] == b[i]; i++)
		;
	return i;
}

/*
 * Compares slot @s with its shadow through the CPU, every page (which brings every
 * device-private page back), last page first if @backwards. On a mismatch, records the first
 * wrong byte and takes the slot's bytes as the new shadow, to go on.
 */
static void compare_slot(struct worker *w, int s, int backwards)
{
	unsigned char *mem = slot_addr(s), *shadow = slots[s].shadow;
	long off, bad = -1;
	int i, pg;

	for (i = 0; i < SLOT_PAGES; i++) {
		pg = backwards ? SLOT_PAGES - 1 - i : i;
		off = first_diff(mem + pg * page, shadow + pg * page, page);
		if (off >= 0 && (bad < 0 || (long)(pg * page) + off < bad))
			bad = pg * page + off;
	}
	if (bad < 0)
		return;
	fail(w, "slot %d page %lu byte %lu is 0x%02x, not 0x%02x", s, bad / page, bad % page,
	     mem[bad], shadow[bad]);
	memcpy(shadow, mem, slot_size);
}

/* MIGRATE_TO_DEV of slot @s to a random device; returns whether it returned 0. */
static int op_migrate_to_dev(struct worker *w, int s)
{
	int d = rnd(&w->rng) % ndev, live, ret;
	unsigned int before = slots[s].maybe_on;
	struct hmm_dmirror_cmd cmd;
	unsigned long gen;
	long off;

	gen = __atomic_load_n(&fork_gen, __ATOMIC_SEQ_CST);
	live = __atomic_load_n(&forks_live, __ATOMIC_SEQ_CST);
	memset(w->buf, 0xa5, slot_size);
	ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_MIGRATE_TO_DEV, slot_addr(s), w->buf,
			    SLOT_PAGES, &cmd);
	log_op(w, "MIGRATE_TO_DEV %s: %s", dev_name[d], errname(ret));
	slots[s].maybe_on |= 1u << d;
	if (!ret) {
		w->migrations++;
		off = first_diff(w->buf, slots[s].shadow, slot_size);
		if (cmd.cpages != SLOT_PAGES)
			fail(w, "MIGRATE_TO_DEV of slot %d to %s returned 0 with cpages %llu", s,
			     dev_name[d], (unsigned long long)cmd.cpages);
		else if (off >= 0)
			fail(w, "MIGRATE_TO_DEV of slot %d to %s returned byte %ld as 0x%02x, not 0x%02x",
			     s, dev_name[d], off, w->buf[off], slots[s].shadow[off]);
		return 1;
	}
	/*
	 * ENOENT: a page did not move and is missing from the device page table. Expected when
	 * it is on another device, or when a fork (write-protecting, then sharing every page)
	 * overlapped the migration; migration is best effort anyway (a page busy elsewhere
	 * stays), so ENOENT is always tolerated: what matters is that every byte stays right,
	 * which the comparison after the round checks.
	 */
	(void)before;
	(void)live;
	(void)gen;
	if (tolerated(ret) || ret == -ENOENT)
		w->tolerated++;
	else
		fail(w, "MIGRATE_TO_DEV of slot %d to %s returned %s (%d)", s, dev_name[d],
		     errname(ret), ret);
	return 0;
}

/* MIGRATE_TO_SYS of slot @s on a random device: any result, the data is checked after. */
static void op_migrate_to_sys(struct worker *w, int s)
{
	int d = rnd(&w->rng) % ndev, ret;
	struct hmm_dmirror_cmd cmd;

	ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_MIGRATE_TO_SYS, slot_addr(s), NULL,
			    SLOT_PAGES, &cmd);
	log_op(w, "MIGRATE_TO_SYS %s: %s, cpages %llu", dev_name[d], errname(ret),
	       (unsigned long long)cmd.cpages);
	if (ret)
		w->tolerated++;
}

/* A device WRITE of fresh bytes to random pages of slot @s. */
static void op_dev_write(struct worker *w, int s)
{
	int d = rnd(&w->rng) % ndev, first, n, k, ret;
	unsigned char *mem, *shadow;
	struct hmm_dmirror_cmd cmd;

	first = rnd(&w->rng) % SLOT_PAGES;
	n = 1 + rnd(&w->rng) % (SLOT_PAGES - first);
	mem = slot_addr(s) + first * page;
	shadow = slots[s].shadow + first * page;
	fill(&w->rng, w->data, n * page);
	ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_WRITE, mem, w->data, n, &cmd);
	log_op(w, "WRITE %s pages %d-%d: %s", dev_name[d], first, first + n - 1, errname(ret));
	if (!ret) {
		if (cmd.cpages != (unsigned long)n)
			fail(w, "WRITE of slot %d pages %d-%d through %s returned 0 with cpages %llu", s,
			     first, first + n - 1, dev_name[d], (unsigned long long)cmd.cpages);
		memcpy(shadow, w->data, n * page);
		return;
	}
	if (tolerated(ret))
		w->tolerated++;
	else
		fail(w, "WRITE of slot %d pages %d-%d through %s returned %s (%d)", s, first,
		     first + n - 1, dev_name[d], errname(ret), ret);
	/*
	 * Both modules write page by page, in order, and fault the next pages in as they go: a
	 * failed WRITE may have written the first pages. Nothing else may have changed.
	 */
	for (k = 0; k < n && !memcmp(mem + k * page, w->data + k * page, page); k++)
		memcpy(shadow + k * page, w->data + k * page, page);
	if (k)
		log_op(w, "its first %d pages written", k);
}

/* A device READ of slot @s: it must give the shadow. */
static void op_dev_read(struct worker *w, int s)
{
	int d = rnd(&w->rng) % ndev, ret;
	struct hmm_dmirror_cmd cmd;
	long off;

	memset(w->buf, 0xa5, slot_size);
	ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_READ, slot_addr(s), w->buf, SLOT_PAGES, &cmd);
	log_op(w, "READ %s: %s", dev_name[d], errname(ret));
	if (ret) {
		if (tolerated(ret))
			w->tolerated++;
		else
			fail(w, "READ of slot %d through %s returned %s (%d)", s, dev_name[d],
			     errname(ret), ret);
		return;
	}
	off = first_diff(w->buf, slots[s].shadow, slot_size);
	if (cmd.cpages != SLOT_PAGES)
		fail(w, "READ of slot %d through %s returned 0 with cpages %llu", s, dev_name[d],
		     (unsigned long long)cmd.cpages);
	else if (off >= 0)
		fail(w, "READ of slot %d through %s gave byte %ld as 0x%02x, not 0x%02x", s,
		     dev_name[d], off, w->buf[off], slots[s].shadow[off]);
}

/* A CPU write of fresh bytes to a random byte range of slot @s. */
static void op_cpu_write(struct worker *w, int s)
{
	size_t off = rnd(&w->rng) % slot_size;
	size_t len = 1 + rnd(&w->rng) % (slot_size - off);

	fill(&w->rng, w->data, len);
	memcpy(slot_addr(s) + off, w->data, len);
	memcpy(slots[s].shadow + off, w->data, len);
	log_op(w, "CPU write of bytes %zu-%zu", off, off + len - 1);
}

/* mprotect read-only, a CPU comparison meanwhile, and back to read-write. */
static void op_mprotect(struct worker *w, int s)
{
	int ret;

	ret = mprotect(slot_addr(s), slot_size, PROT_READ) ? -errno : 0;
	log_op(w, "mprotect read-only: %s", errname(ret));
	compare_slot(w, s, 1);
	if (ret)
		fail(w, "mprotect of slot %d read-only returned %s (%d)", s, errname(ret), ret);
	ret = mprotect(slot_addr(s), slot_size, PROT_READ | PROT_WRITE) ? -errno : 0;
	log_op(w, "back to read-write: %s", errname(ret));
	if (ret)
		fail(w, "mprotect of slot %d read-write returned %s (%d)", s, errname(ret), ret);
}

/* MADV_DONTNEED: an anonymous private slot reads as zeroes afterwards. */
static void op_dontneed(struct worker *w, int s)
{
	int ret = madvise(slot_addr(s), slot_size, MADV_DONTNEED) ? -errno : 0;

	log_op(w, "MADV_DONTNEED: %s", errname(ret));
	if (ret) {
		fail(w, "MADV_DONTNEED of slot %d returned %s (%d)", s, errname(ret), ret);
		return;
	}
	memset(slots[s].shadow, 0, slot_size);
	slots[s].maybe_on = 0;
}

/*
 * Migrates slot @s to a random device and forks: the child, which shares the pages
 * copy-on-write, compares the slot with the shadow through the CPU.
 */
static void op_fork(struct worker *w, int s)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	unsigned char *mem = slot_addr(s);
	int status, i, bad;
	pid_t pid;

	w->ops += 2;
	op_migrate_to_dev(w, s);
	__atomic_add_fetch(&forks_live, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&fork_gen, 1, __ATOMIC_SEQ_CST);
	pid = fork();
	if (!pid) {
		/* No locks, no allocation, no output here: other threads held them. */
		sigaction(SIGBUS, &dfl, NULL);
		sigaction(SIGSEGV, &dfl, NULL);
		close(STDOUT_FILENO);
		close(STDERR_FILENO);
		for (i = 0, bad = 0; i < SLOT_PAGES; i++)
			bad |= !!memcmp(mem + i * page, slots[s].shadow + i * page, page);
		_exit(bad);
	}
	if (pid < 0) {
		__atomic_sub_fetch(&forks_live, 1, __ATOMIC_SEQ_CST);
		log_op(w, "fork: %s", errname(-errno));
		w->tolerated++;
		return;
	}
	__atomic_store_n(&w->child, pid, __ATOMIC_SEQ_CST);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	__atomic_store_n(&w->child, 0, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&forks_live, 1, __ATOMIC_SEQ_CST);
	log_op(w, "fork");
	if (WIFSIGNALED(status))
		fail(w, "the child forked with slot %d was killed by signal %d", s,
		     WTERMSIG(status));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail(w, "the child forked with slot %d read wrong data from it", s);
}

static enum op pick(struct worker *w)
{
	unsigned int total = 0, r, i;

	for (i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	r = rnd(&w->rng) % total;
	for (i = 0; r >= op_weight[i]; i++)
		r -= op_weight[i];
	return i;
}

/* Runs @op on slot @s; returns whether it was a successful MIGRATE_TO_DEV. */
static int run_op(struct worker *w, int s, enum op op)
{
	w->ops++;
	switch (op) {
	case OP_MIGRATE_TO_DEV:
		return op_migrate_to_dev(w, s);
	case OP_MIGRATE_TO_SYS:
		op_migrate_to_sys(w, s);
		break;
	case OP_DEV_WRITE:
		op_dev_write(w, s);
		break;
	case OP_DEV_READ:
		op_dev_read(w, s);
		break;
	case OP_CPU_WRITE:
		op_cpu_write(w, s);
		break;
	case OP_CPU_READ:
		log_op(w, "CPU read, last page first");
		compare_slot(w, s, 1);
		break;
	case OP_MPROTECT:
		op_mprotect(w, s);
		break;
	default:
		op_dontneed(w, s);
		break;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int s;

	while (now_ms() < end_ms) {
		s = rnd(&w->rng) % NSLOTS;
		pthread_mutex_lock(&slots[s].lock);
		w->what[0] = 0;
		if (rnd(&w->rng) % FORK_ONE_IN == 0)
			op_fork(w, s);
		/* Half the time, the pages just migrated meet another operation. */
		else if (run_op(w, s, pick(w)) && rnd(&w->rng) % 2)
			run_op(w, s, pick(w));
		log_op(w, "CPU comparison");
		compare_slot(w, s, 0);
		slots[s].maybe_on &= coherent_mask;
		pthread_mutex_unlock(&slots[s].lock);
	}
	return NULL;
}

static void chaos_op(struct worker *w);

/*
 * Racers: threads that migrate one range to random devices and back, read it through the
 * devices and the CPU, all at once and without a lock: two migrations of the same pages to
 * two devices, a CPU fault racing a migration or the freeing of a page. Nothing writes the
 * range, so whatever succeeds must return its original bytes.
 */
static void *racer_main(void *arg)
{
	struct worker *w = arg;
	size_t len = RACE_PAGES * page;
	struct hmm_dmirror_cmd cmd;
	long off;
	int d, ret;

	while (now_ms() < end_ms) {
		d = rnd(&w->rng) % ndev;
		w->what[0] = 0;
		if (rnd(&w->rng) % 4 == 0) {
			chaos_op(w);
			w->ops++;
			continue;
		}
		switch (rnd(&w->rng) % 4) {
		case 0:
			log_op(w, "racing MIGRATE_TO_DEV to %s", dev_name[d]);
			ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_MIGRATE_TO_DEV, race, w->buf,
					    RACE_PAGES, &cmd);
			break;
		case 1:
			log_op(w, "racing MIGRATE_TO_SYS from %s", dev_name[d]);
			ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_MIGRATE_TO_SYS, race, NULL,
					    RACE_PAGES, &cmd);
			ret = ret ? ret : 1;
			break;
		case 2:
			log_op(w, "racing READ through %s", dev_name[d]);
			ret = dmirror_ioctl(w->fd[d], HMM_DMIRROR_READ, race, w->buf, RACE_PAGES,
					    &cmd);
			break;
		default:
			log_op(w, "racing CPU read");
			memcpy(w->buf, race, len);
			ret = 0;
			break;
		}
		w->ops++;
		if (ret == 0) {
			off = first_diff(w->buf, race_shadow, len);
			if (off >= 0)
				fail(w, "race byte %ld is 0x%02x, not 0x%02x", off, w->buf[off],
				     race_shadow[off]);
		} else if (ret < 0) {
			/* Pages another racer holds or moved: ENOENT too. */
			if (ret == -ENOENT || tolerated(ret))
				w->tolerated++;
			else
				fail(w, "%s", errname(ret));
		}
	}
	return NULL;
}

/*
 * Chaos: one thread munmaps and maps again, mprotects, zaps and forks (a child that exits at
 * once, with the pages shared) a range while the racers migrate it to and from the devices.
 * Nothing is compared there: the kernel must give errnos or partial results, never an oops,
 * a hang or a leak (the harness watches the console and kmemleak).
 */
static void *chaos_main(void *arg)
{
	struct worker *w = arg;
	size_t len = CHAOS_PAGES * page;
	pid_t pid;

	while (now_ms() < end_ms) {
		switch (rnd(&w->rng) % 5) {
		case 0:
			mmap(chaos, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			     -1, 0);
			memset(chaos, (int)rnd(&w->rng), len);
			break;
		case 1:
			munmap(chaos, len);
			break;
		case 2:
			mprotect(chaos, len, rnd(&w->rng) % 2 ? PROT_READ : PROT_READ | PROT_WRITE);
			break;
		case 3:
			madvise(chaos, len, MADV_DONTNEED);
			break;
		default:
			/* Like the workers' forks, it may leave a migration of theirs short. */
			__atomic_add_fetch(&forks_live, 1, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&fork_gen, 1, __ATOMIC_SEQ_CST);
			pid = fork();
			if (pid == 0)
				_exit(0);
			if (pid > 0)
				waitpid(pid, NULL, 0);
			__atomic_add_fetch(&fork_gen, 1, __ATOMIC_SEQ_CST);
			__atomic_sub_fetch(&forks_live, 1, __ATOMIC_SEQ_CST);
			break;
		}
		w->ops++;
		usleep(rnd(&w->rng) % 300);
	}
	return NULL;
}

/* A racer's operation on the chaos range: anything goes but an oops or a hang. */
static void chaos_op(struct worker *w)
{
	static const unsigned long reqs[] = {
		HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_READ,
		HMM_DMIRROR_WRITE, HMM_DMIRROR_SNAPSHOT,
	};
	struct hmm_dmirror_cmd cmd;
	int d = rnd(&w->rng) % ndev;

	dmirror_ioctl(w->fd[d], reqs[rnd(&w->rng) % 5], chaos, w->buf, CHAOS_PAGES, &cmd);
}

/* Ends the run when the current phase has not finished in time: an ioctl hangs. */
static void *watchdog_main(void *arg)
{
	const char *what;
	pid_t pid;
	int i;

	for (;;) {
		usleep(100000);
		if (__atomic_load_n(&finished, __ATOMIC_SEQ_CST))
			return NULL;
		pthread_mutex_lock(&report_lock);
		what = phase;
		if (now_ms() < phase_deadline_ms) {
			pthread_mutex_unlock(&report_lock);
			continue;
		}
		pthread_mutex_unlock(&report_lock);
		for (i = 0; i < NTHREADS; i++) {
			pid = __atomic_load_n(&workers[i].child, __ATOMIC_SEQ_CST);
			if (pid > 0)
				kill(pid, SIGKILL);
		}
		dprintf(STDOUT_FILENO,
			"FAIL: stress on %d devices: %s did not finish in time; an ioctl or a fault hangs\n",
			ndev, what);
		_exit(1);
	}
}

static void set_phase(const char *what, int64_t deadline_ms)
{
	pthread_mutex_lock(&report_lock);
	phase = what;
	phase_deadline_ms = deadline_ms;
	pthread_mutex_unlock(&report_lock);
}

/* A SIGBUS or SIGSEGV in the region: a migration lost a page. */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
	uintptr_t addr = (uintptr_t)si->si_addr, base = (uintptr_t)region;
	long s = -1;
	char msg[160];
	ssize_t r;
	int n;

	if (addr >= base && addr < base + NSLOTS * slot_size)
		s = (addr - base) / slot_size;
	n = snprintf(msg, sizeof(msg), "FAIL: stress on %d devices: signal %d at %#lx (slot %ld)\n",
		     ndev, sig, (unsigned long)addr, s);
	r = write(STDOUT_FILENO, msg, n);
	(void)r;
	_exit(1);
}

/* Whether /dev/hmm_dmirrorN is device-coherent (minors 2 and 3); unknown: coherent. */
static int is_coherent(const char *path)
{
	const char *digits = path + strlen(path);

	while (digits > path && isdigit((unsigned char)digits[-1]))
		digits--;
	return !*digits || strtoul(digits, NULL, 10) >= 2;
}

int main(int argc, char **argv)
{
	unsigned long ops = 0, migrations = 0, tolerated_errors = 0, seconds, i;
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
	int main_fd[MAX_DEVS], d, s, ret;
	struct hmm_dmirror_cmd cmd;
	struct worker final = { 0 };
	pthread_t watchdog;
	uint64_t seed, rng;
	char *end;

	if (argc < 4 || argc > 3 + MAX_DEVS) {
		fprintf(stderr,
			"usage: %s SECONDS SEED /dev/hmm_dmirrorA [/dev/hmm_dmirrorB ...] (1 to %d devices)\n",
			argv[0], MAX_DEVS);
		return 2;
	}
	seconds = strtoul(argv[1], &end, 10);
	if (*end || !seconds) {
		fprintf(stderr, "%s: bad SECONDS %s\n", argv[0], argv[1]);
		return 2;
	}
	seed = strtoull(argv[2], &end, 0);
	if (*end) {
		fprintf(stderr, "%s: bad SEED %s\n", argv[0], argv[2]);
		return 2;
	}
	ndev = argc - 3;
	page = sysconf(_SC_PAGESIZE);
	slot_size = SLOT_PAGES * page;
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (d = 0; d < ndev; d++) {
		end = strrchr(argv[3 + d], '/');
		dev_name[d] = end ? end + 1 : argv[3 + d];
		if (is_coherent(argv[3 + d]))
			coherent_mask |= 1u << d;
		main_fd[d] = open(argv[3 + d], O_RDWR);
		if (main_fd[d] < 0) {
			printf("FAIL: stress: open %s: %s\n", argv[3 + d], strerror(errno));
			return 1;
		}
	}
	region = mmap(NULL, NSLOTS * slot_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED) {
		printf("FAIL: stress: mmap: %s\n", strerror(errno));
		return 1;
	}
	rng = seed * 0x9e3779b97f4a7c15ULL + 1;
	fill(&rng, region, NSLOTS * slot_size);
	for (s = 0; s < NSLOTS; s++) {
		pthread_mutex_init(&slots[s].lock, NULL);
		slots[s].shadow = malloc(slot_size);
		if (!slots[s].shadow) {
			printf("FAIL: stress: out of memory\n");
			return 1;
		}
		memcpy(slots[s].shadow, slot_addr(s), slot_size);
	}
	race = mmap(NULL, RACE_PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	race_shadow = malloc(RACE_PAGES * page);
	if (race == MAP_FAILED || !race_shadow) {
		printf("FAIL: stress: out of memory\n");
		return 1;
	}
	fill(&rng, race, RACE_PAGES * page);
	memcpy(race_shadow, race, RACE_PAGES * page);
	chaos = mmap(NULL, CHAOS_PAGES * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (chaos == MAP_FAILED) {
		printf("FAIL: stress: out of memory\n");
		return 1;
	}
	chaos_worker.rng = seed | 1;
	for (i = 0; i < NRACERS; i++) {
		struct worker *w = &racers[i];

		w->rng = (seed ^ (0x7f4a7c159e3779b9ULL * (i + 1))) | 1;
		w->buf = malloc(RACE_PAGES * page);
		if (!w->buf) {
			printf("FAIL: stress: out of memory\n");
			return 1;
		}
		for (d = 0; d < ndev; d++) {
			w->fd[d] = open(argv[3 + d], O_RDWR);
			if (w->fd[d] < 0) {
				printf("FAIL: stress: open %s: %s\n", argv[3 + d], strerror(errno));
				return 1;
			}
		}
	}
	for (i = 0; i < NTHREADS; i++) {
		struct worker *w = &workers[i];

		w->rng = (seed ^ (0x9e3779b97f4a7c15ULL * (i + 1))) | 1;
		w->buf = malloc(slot_size);
		w->data = malloc(slot_size);
		if (!w->buf || !w->data) {
			printf("FAIL: stress: out of memory\n");
			return 1;
		}
		for (d = 0; d < ndev; d++) {
			w->fd[d] = open(argv[3 + d], O_RDWR);
			if (w->fd[d] < 0) {
				printf("FAIL: stress: open %s: %s\n", argv[3 + d], strerror(errno));
				return 1;
			}
		}
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	end_ms = now_ms() + seconds * 1000;
	set_phase("the worker threads", end_ms + HANG_SECONDS * 1000);
	if (pthread_create(&watchdog, NULL, watchdog_main, NULL)) {
		printf("FAIL: stress: pthread_create\n");
		return 1;
	}
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) {
			printf("FAIL: stress: pthread_create\n");
			return 1;
		}
	for (i = 0; i < NRACERS; i++)
		if (pthread_create(&racers[i].thread, NULL, racer_main, &racers[i])) {
			printf("FAIL: stress: pthread_create\n");
			return 1;
		}
	if (pthread_create(&chaos_worker.thread, NULL, chaos_main, &chaos_worker)) {
		printf("FAIL: stress: pthread_create\n");
		return 1;
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(workers[i].thread, NULL);
	for (i = 0; i < NRACERS; i++)
		pthread_join(racers[i].thread, NULL);
	pthread_join(chaos_worker.thread, NULL);

	/* Every device's memory back to the system, then every byte once more. */
	set_phase("the final RELEASE and comparison", now_ms() + HANG_SECONDS * 1000);
	snprintf(final.what, sizeof(final.what), "the final RELEASE of every device");
	for (d = 0; d < ndev; d++) {
		ret = dmirror_ioctl(main_fd[d], HMM_DMIRROR_RELEASE, region, NULL, 1, &cmd);
		if (ret)
			fail(&final, "RELEASE of %s returned %s (%d)", dev_name[d], errname(ret),
			     ret);
	}
	for (s = 0; s < NSLOTS; s++)
		compare_slot(&final, s, 0);
	if (memcmp(race, race_shadow, RACE_PAGES * page))
		fail(&final, "the raced range changed");
	__atomic_store_n(&finished, 1, __ATOMIC_SEQ_CST);
	pthread_join(watchdog, NULL);

	for (i = 0; i < NTHREADS; i++) {
		ops += workers[i].ops;
		migrations += workers[i].migrations;
		tolerated_errors += workers[i].tolerated;
	}
	for (i = 0; i < NRACERS; i++) {
		ops += racers[i].ops;
		tolerated_errors += racers[i].tolerated;
	}
	ops += chaos_worker.ops;
	if (!nfailures) {
		printf("ok: stress %lu ops (%lu migrations to device, %lu errors tolerated) on %d devices, every byte right\n",
		       ops, migrations, tolerated_errors, ndev);
	} else {
		printf("FAIL: stress %lu ops (%lu migrations to device, %lu errors tolerated) on %d devices: %lu failures",
		       ops, migrations, tolerated_errors, ndev, nfailures);
		for (i = 0; i < MAX_REPORTS && i < nfailures; i++)
			printf("; %s", reports[i]);
		printf("\n");
	}
	for (d = 0; d < ndev; d++) {
		close(main_fd[d]);
		for (i = 0; i < NTHREADS; i++)
			close(workers[i].fd[d]);
	}
	return nfailures ? 1 : 0;
}
