// SPDX-License-Identifier: GPL-2.0
/*
 * Eviction racing munmap: a reproducer of a use-after-free of an anon_vma in
 * migrate_device_range()/migrate_device_finalize() on 6.12.
 *
 * HMM_DMIRROR_RELEASE evicts every page of a dmirror device: migrate_device_range() locks the
 * device pages by pfn and replaces their mappings by migration entries, the driver copies
 * them, and migrate_device_finalize() walks each page's anon_vma to map the copies. No mmap
 * lock is held meanwhile, so a process that unmaps the pages in that window zaps the
 * migration entries and frees its VMA's anon_vma; unless migrate_device_range() pinned the
 * anon_vma, the finalize walks freed memory (KASAN: use-after-free in rmap_walk_anon or
 * down_read on the anon_vma's rwsem).
 *
 * Each round: a child process maps NPAGES of anonymous memory, writes them, moves them to
 * the device (MIGRATE_TO_DEV) and waits; the parent releases it and, at once, issues RELEASE
 * while the child unmaps the pages after a delay that sweeps the length of a RELEASE measured
 * beforehand. After each round it counts the KASAN reports the kernel logged (/dev/kmsg), so
 * that a boot with kasan_multi_shot measures how often the race is hit. It prints a "note:"
 * line with how many rounds had the munmap overlap the RELEASE (the race window) and how many
 * had a KASAN report, then "ok:", or "FAIL:" if a round had a report, an ioctl failed or no
 * round overlapped.
 *
 * Usage: dmirror-evict-race /dev/hmm_dmirrorN ROUNDS [NPAGES]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* 16 MiB by default: a RELEASE copies the pages one by one, a wide window. */
static unsigned long npages = 4096;
static unsigned long page;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dmirror_cmd(int fd, unsigned long request, void *addr, unsigned long npages,
		       void *buf)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)buf,
		.npages = npages,
	};

	return ioctl(fd, request, &cmd) ? -errno : 0;
}

struct times {
	uint64_t unmap_start, unmap_end;
	int err;
};

/*
 * The child: moves @npages to the device, reports, waits for @go, sleeps @delay_us and unmaps
 * them; writes its timestamps to @out and exits when @go closes. The file stays open until
 * then: closing it evicts the device's pages (6.12.86's fix to test_hmm), which would end the
 * round before the RELEASE.
 */
static void child(const char *dev, int ready, int go, int out, unsigned int delay_us)
{
	size_t size = npages * page;
	struct times t = { 0 };
	unsigned char *buf, *mem;
	char c = 0;
	int fd;

	fd = open(dev, O_RDWR);
	/* Two mappings of their own, so that their anon_vmas go with them. */
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || mem == MAP_FAILED || buf == MAP_FAILED) {
		t.err = -ENOMEM;
	} else {
		memset(mem, 0x5a, size);
		t.err = dmirror_cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, npages, buf);
		munmap(buf, size);
	}
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(2);
	if (!t.err) {
		if (delay_us)
			usleep(delay_us);
		t.unmap_start = now_us();
		munmap(mem, size);
		t.unmap_end = now_us();
	}
	if (write(out, &t, sizeof(t)) != sizeof(t))
		_exit(2);
	while (read(go, &c, 1) > 0)
		;
	_exit(0);
}

/*
 * One round: returns 1 if the munmap overlapped the RELEASE, 0 if not, -errno on failure.
 * *@release_us gets the time the RELEASE took.
 */
static int round_once(const char *dev, int fd, void *scratch, unsigned int delay_us,
		      uint64_t *release_us)
{
	int ready[2], go[2], out[2];
	uint64_t start, end;
	struct times t;
	int status, ret;
	pid_t pid;
	char c = 0;

	if (pipe(ready) || pipe(go) || pipe(out))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(ready[0]);
		close(go[1]);
		close(out[0]);
		close(fd);
		child(dev, ready[1], go[0], out[1], delay_us);
	}
	if (read(ready[0], &c, 1) != 1)
		return -EPIPE;
	start = now_us();
	if (write(go[1], &c, 1) != 1)
		return -EPIPE;
	ret = dmirror_cmd(fd, HMM_DMIRROR_RELEASE, scratch, 1, NULL);
	end = now_us();
	if (read(out[0], &t, sizeof(t)) != sizeof(t))
		t.err = -EPIPE;
	/* The child exits (and closes its file) only after the RELEASE. */
	close(go[0]);
	close(go[1]);
	waitpid(pid, &status, 0);
	close(ready[0]);
	close(ready[1]);
	close(out[0]);
	close(out[1]);
	*release_us = end - start;
	if (ret)
		return ret;
	if (t.err)
		return t.err;
	return t.unmap_start >= start && t.unmap_end <= end;
}

/*
 * Counts the records of the kernel log from @kmsg's position on that report a KASAN error,
 * and moves past them.
 */
static unsigned int kasan_reports(int kmsg)
{
	unsigned int n = 0;
	char rec[2048];
	ssize_t len;

	if (kmsg < 0)
		return 0;
	for (;;) {
		len = read(kmsg, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)	/* overwritten records: go on */
			continue;
		if (len <= 0)
			return n;
		rec[len] = 0;
		if (strstr(rec, "BUG: KASAN"))
			n++;
	}
}

/*
 * A process that prints the first KASAN report of the kernel log to stderr as it comes, "kmsg:"
 * before each line: the console may be quiet (loglevel), and a round may never end.
 */
static pid_t watcher;

static void stop_watcher(void)
{
	if (watcher > 0) {
		kill(watcher, SIGKILL);
		waitpid(watcher, NULL, 0);
	}
}

static pid_t kasan_watcher(void)
{
	char rec[2048], *text;
	int kmsg, dump = -1;
	ssize_t len;
	pid_t pid;

	pid = fork();
	if (pid)
		return pid;
	kmsg = open("/dev/kmsg", O_RDONLY);
	if (kmsg < 0)
		_exit(0);
	lseek(kmsg, 0, SEEK_END);
	while (dump != 0) {
		len = read(kmsg, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;
		if (len <= 0)
			break;
		rec[len] = 0;
		if (dump < 0 && strstr(rec, "BUG: KASAN"))
			dump = 60;
		if (dump > 0) {
			dump--;
			text = strchr(rec, ';');
			fprintf(stderr, "kmsg: %s", text ? text + 1 : rec);
		}
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	unsigned int rounds, i, overlapped = 0, delay, hit = 0, reports = 0, n;
	uint64_t release_us, window = 0, shortest;
	const char *dev;
	void *scratch;
	int fd, ret, kmsg;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN ROUNDS [NPAGES]\n", argv[0]);
		return 2;
	}
	dev = argv[1];
	rounds = strtoul(argv[2], NULL, 0);
	if (argc == 4)
		npages = strtoul(argv[3], NULL, 0);
	page = sysconf(_SC_PAGESIZE);
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	watcher = kasan_watcher();
	atexit(stop_watcher);
	fd = open(dev, O_RDWR);
	scratch = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || scratch == MAP_FAILED) {
		printf("FAIL: evict-race: open %s: %s\n", dev, strerror(errno));
		return 1;
	}
	memset(scratch, 0, page);

	/* Calibration: how long a RELEASE takes when nothing races it. */
	ret = round_once(dev, fd, scratch, 1000000, &window);
	if (ret < 0) {
		printf("FAIL: evict-race: calibration round: %s\n", strerror(-ret));
		return 1;
	}
	reports = kasan_reports(kmsg);
	hit = reports > 0;
	shortest = window;
	for (i = 0; i < rounds; i++) {
		/*
		 * Delays sweep the length of the shortest RELEASE so far (it varies from boot to
		 * boot, and a RELEASE that hits the bug takes minutes of KASAN reports).
		 */
		delay = shortest * i / rounds;
		ret = round_once(dev, fd, scratch, delay, &release_us);
		if (release_us < shortest)
			shortest = release_us;
		if (ret < 0) {
			printf("FAIL: evict-race: round %u (delay %u us): %s\n", i, delay,
			       strerror(-ret));
			return 1;
		}
		overlapped += ret;
		n = kasan_reports(kmsg);
		reports += n;
		hit += n > 0;
		fprintf(stderr, "round %u: delay %u us, RELEASE %llu us, overlap %d, KASAN reports %u\n",
			i, delay, (unsigned long long)release_us, ret, n);
	}
	stop_watcher();
	watcher = 0;
	ret = overlapped && !reports;
	printf("note: evict-race: munmap raced RELEASE of %lu pages in %u of %u rounds, KASAN reported in %u rounds (%u reports; a RELEASE took %llu ms alone)\n",
	       npages, overlapped, rounds, hit, reports, (unsigned long long)window / 1000);
	printf("%s: evict-race: munmap raced RELEASE of %lu pages in %u rounds, without a KASAN report\n",
	       ret ? "ok" : "FAIL", npages, rounds);
	return ret ? 0 : 1;
}
