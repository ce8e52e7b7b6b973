// SPDX-License-Identifier: GPL-2.0
/*
 * A small ioctl fuzzer for a dmirror device: random commands, addresses, sizes and buffers,
 * while a second thread changes the mappings under it (mprotect, MADV_DONTNEED, munmap and
 * mmap again), so that invalidations race the device's faults. Errors are expected; an
 * oops, WARN or leak is what the harness looks for on the console. Deterministic for a seed.
 *
 * Every ORACLE_EVERY iterations, a data check on a stable region that the churn thread and
 * the random WRITEs leave alone, against a shadow copy of it: any error or wrong byte there
 * fails the run.
 *
 * Usage: dmirror-fuzz /dev/hmm_dmirrorN ITERATIONS SEED
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define NPAGES 16
#define BUF_SIZE ((64UL << 20) + 4096)
#define STABLE_PAGES 8
#define ORACLE_EVERY 16

static long page;
static unsigned char *anon;		/* NPAGES, remapped by the other thread */
static volatile int stop;
static unsigned char *stable;		/* STABLE_PAGES, known content */
static unsigned char *shadow;		/* what stable holds */
static unsigned char *scratch;		/* STABLE_PAGES, for the data checks' ioctls */
static unsigned long oracle_ok, oracle_failed;

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void fill(uint64_t *s, unsigned char *p, unsigned long len)
{
	while (len--)
		*p++ = rnd(s);
}

/* Device READ or WRITE of @npages pages of stable from page @first, through scratch. */
static int stable_ioctl(int fd, unsigned long i, const char *what, unsigned long req,
			unsigned long first, unsigned long npages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)stable + first * page,
		.ptr = (uintptr_t)scratch,
		.npages = npages,
	};
	int ret = ioctl(fd, req, &cmd) ? -errno : 0;

	if (!ret && cmd.cpages == npages)
		return 0;
	if (oracle_failed < 10)
		printf("iteration %lu: %s: the ioctl on pages %lu-%lu of the stable region returned "
		       "%d, cpages %llu\n", i, what, first, first + npages - 1, ret,
		       (unsigned long long)cmd.cpages);
	return -1;
}

/* Compares @len bytes of @got with the shadow from @off; reports the first difference. */
static int stable_cmp(unsigned long i, const char *what, const unsigned char *got,
		      unsigned long off, unsigned long len)
{
	unsigned long j;

	for (j = 0; j < len; j++) {
		if (got[j] != shadow[off + j]) {
			if (oracle_failed < 10)
				printf("iteration %lu: %s: byte %lu of the stable region is 0x%02x, "
				       "expected 0x%02x\n", i, what, off + j, got[j], shadow[off + j]);
			return -1;
		}
	}
	return 0;
}

/*
 * One data check on the stable region: (a) device READ of it all; (b) device WRITE of
 * random bytes to some of its pages, seen by the CPU; (c) CPU write of random bytes to
 * some of it, seen by a device READ.
 */
static void oracle(int fd, unsigned long i, uint64_t *s)
{
	unsigned long len = STABLE_PAGES * page, first, npages, off, n;
	const char *what;
	int bad;

	switch (rnd(s) % 3) {
	case 0:
		what = "device READ";
		bad = stable_ioctl(fd, i, what, HMM_DMIRROR_READ, 0, STABLE_PAGES) ||
		      stable_cmp(i, what, scratch, 0, len);
		break;
	case 1:
		what = "device WRITE, CPU read";
		first = rnd(s) % STABLE_PAGES;
		npages = 1 + rnd(s) % (STABLE_PAGES - first);
		fill(s, scratch, npages * page);
		bad = stable_ioctl(fd, i, what, HMM_DMIRROR_WRITE, first, npages);
		if (!bad) {
			memcpy(shadow + first * page, scratch, npages * page);
			bad = stable_cmp(i, what, stable, 0, len);
		}
		break;
	default:
		what = "CPU write, device READ";
		off = rnd(s) % len;
		n = 1 + rnd(s) % (len - off);
		fill(s, stable + off, n);
		memcpy(shadow + off, stable + off, n);
		bad = stable_ioctl(fd, i, what, HMM_DMIRROR_READ, 0, STABLE_PAGES) ||
		      stable_cmp(i, what, scratch, 0, len);
		break;
	}
	if (bad) {
		oracle_failed++;
		/* Resynchronise, so that one failure is not reported again and again. */
		memcpy(shadow, stable, len);
	} else {
		oracle_ok++;
	}
}

static void *churn(void *arg)
{
	uint64_t s = (uintptr_t)arg | 1;

	while (!stop) {
		switch (rnd(&s) % 5) {
		case 0:
			mprotect(anon, NPAGES * page, PROT_READ);
			break;
		case 1:
			mprotect(anon, NPAGES * page, PROT_READ | PROT_WRITE);
			break;
		case 2:
			madvise(anon, NPAGES * page, MADV_DONTNEED);
			break;
		case 3:
			mmap(anon, NPAGES * page, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		default:
			mprotect(anon, NPAGES * page, PROT_READ | PROT_WRITE);
			memset(anon, (int)rnd(&s), page);
			break;
		}
		usleep(rnd(&s) % 500);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const unsigned long cmds[] = {
		HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
		HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_EXCLUSIVE,
		HMM_DMIRROR_CHECK_EXCLUSIVE, HMM_DMIRROR_RELEASE,
		_IOWR('H', 0x08, struct hmm_dmirror_cmd), _IO('H', 0x00),
	};
	struct hmm_dmirror_cmd cmd;
	unsigned char *none, *ro, *dev, *buf;
	unsigned long i, req, iterations, errors = 0;
	pthread_t thread;
	uint64_t s, end;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN ITERATIONS SEED\n", argv[0]);
		return 2;
	}
	iterations = strtoul(argv[2], NULL, 0);
	s = strtoull(argv[3], NULL, 0) | 1;
	page = sysconf(_SC_PAGESIZE);
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	anon = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(NULL, NPAGES * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, NPAGES * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dev = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	stable = mmap(NULL, STABLE_PAGES * page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shadow = malloc(STABLE_PAGES * page);
	scratch = malloc(STABLE_PAGES * page);
	if (anon == MAP_FAILED || none == MAP_FAILED || ro == MAP_FAILED || dev == MAP_FAILED ||
	    buf == MAP_FAILED || stable == MAP_FAILED || !shadow || !scratch) {
		perror("mmap");
		return 1;
	}
	fill(&s, stable, STABLE_PAGES * page);
	memcpy(shadow, stable, STABLE_PAGES * page);
	pthread_create(&thread, NULL, churn, (void *)(uintptr_t)s);

	for (i = 0; i < iterations; i++) {
		unsigned char *bases[] = { anon, none, ro, dev };
		uint64_t r = rnd(&s);

		memset(&cmd, 0, sizeof(cmd));
		switch (r % 6) {
		case 0:
			cmd.addr = rnd(&s);
			break;
		case 1:
			cmd.addr = rnd(&s) & ~(uint64_t)(page - 1);
			break;
		default:
			cmd.addr = (uintptr_t)bases[rnd(&s) % 4] + (rnd(&s) % NPAGES) * page;
			break;
		}
		switch ((r >> 8) % 6) {
		case 0:
			cmd.npages = rnd(&s);
			break;
		case 1:
			cmd.npages = rnd(&s) % (BUF_SIZE / page + 2);
			break;
		default:
			cmd.npages = rnd(&s) % (NPAGES + 2);
			break;
		}
		/* Now and then a small range in the last pages, where chunk ends wrap. */
		if (rnd(&s) % 32 == 0) {
			cmd.addr = -(1 + rnd(&s) % 80) * page;
			cmd.npages = rnd(&s) % 8;
		}
		/*
		 * A huge range with a valid buffer would SNAPSHOT a byte per page of it, for
		 * minutes under TCG: huge ranges get a bad buffer.
		 */
		if (cmd.npages > BUF_SIZE / page + 2)
			r &= ~((uint64_t)0xffff << 16);
		switch ((r >> 16) % 5) {
		case 0:
			cmd.ptr = rnd(&s);
			break;
		case 1:
			cmd.ptr = 0;
			break;
		default:
			cmd.ptr = (uintptr_t)buf;
			break;
		}
		cmd.cpages = rnd(&s);
		cmd.faults = rnd(&s);
		req = cmds[(r >> 24) % (sizeof(cmds) / sizeof(cmds[0]))];
		/* Only the data checks write the stable region (the range as C computes it). */
		end = cmd.addr + cmd.npages * page;
		if (req == HMM_DMIRROR_WRITE && cmd.addr < end &&
		    cmd.addr < (uintptr_t)stable + STABLE_PAGES * page && end > (uintptr_t)stable)
			req = HMM_DMIRROR_READ;
		if (ioctl(fd, req, (r >> 32) % 50 ? (void *)&cmd : (void *)(uintptr_t)rnd(&s)))
			errors++;
		if (i % ORACLE_EVERY == ORACLE_EVERY - 1)
			oracle(fd, i, &s);
	}
	stop = 1;
	pthread_join(thread, NULL);
	printf("%lu ioctls, %lu errors, %lu data checks", iterations, errors, oracle_ok);
	if (oracle_failed)
		printf(", %lu FAILED on the stable region", oracle_failed);
	printf("\n");
	close(fd);
	return oracle_failed ? 1 : 0;
}
