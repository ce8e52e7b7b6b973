// SPDX-License-Identifier: GPL-2.0
/*
 * A small ioctl fuzzer for a dmirror device: random commands, addresses, sizes and buffers,
 * while a second thread changes the mappings under it (mprotect, MADV_DONTNEED, munmap and
 * mmap again), so that invalidations race the device's faults. Errors are expected; an
 * oops, WARN or leak is what the harness looks for on the console. Deterministic for a seed.
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

static long page;
static unsigned char *anon;		/* NPAGES, remapped by the other thread */
static volatile int stop;

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
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
	unsigned long i, iterations, errors = 0;
	pthread_t thread;
	uint64_t s;
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
	if (anon == MAP_FAILED || none == MAP_FAILED || ro == MAP_FAILED || dev == MAP_FAILED ||
	    buf == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
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
		if (ioctl(fd, cmds[(r >> 24) % (sizeof(cmds) / sizeof(cmds[0]))],
			  (r >> 32) % 50 ? (void *)&cmd : (void *)(uintptr_t)rnd(&s)))
			errors++;
	}
	stop = 1;
	pthread_join(thread, NULL);
	printf("%lu ioctls, %lu errors\n", iterations, errors);
	close(fd);
	return 0;
}
