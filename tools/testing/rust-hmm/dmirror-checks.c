// SPDX-License-Identifier: GPL-2.0
/*
 * Checks of a dmirror device that hmm-tests does not make: the file operations (mmap,
 * llseek), the ioctl argument checks, ranges at the top of the address space and signals
 * during long ioctls. Run against the C test_hmm and the Rust test_hmm_rust in the same
 * boot; prints one "ok"/"FAIL" line per check and exits 1 if any failed.
 *
 * Usage: dmirror-checks /dev/hmm_dmirrorN c|rust
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

static int failed;

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failed = 1;
}

/* Runs ioctl @req with @cmd and returns 0 or -errno. */
static int dmirror_ioctl(int fd, unsigned long req, struct hmm_dmirror_cmd *cmd)
{
	return ioctl(fd, req, cmd) ? -errno : 0;
}

static const char *errname(int err)
{
	switch (err) {
	case -EINVAL:
		return "EINVAL";
	case -EFAULT:
		return "EFAULT";
	case -EOVERFLOW:
		return "EOVERFLOW";
	case -EBUSY:
		return "EBUSY";
	default:
		return "?";
	}
}

/*
 * Ranges that end near the top of the address space, with the C module's results. C ends
 * each chunk at addr + 64 pages, which wraps when the range starts in the last 64 pages:
 * READ and WRITE then fail in hmm_range_fault (walk_page_range of an inverted range is
 * EINVAL), SNAPSHOT in mmu_interval_notifier_insert (its last byte wraps: EOVERFLOW), except
 * when the chunk ends exactly at 2^64, where that last byte fits and hmm_range_fault is
 * EINVAL. Below that nothing is mapped: READ and WRITE fault (EFAULT), while SNAPSHOT, which
 * faults nothing in, succeeds and says ERROR.
 */
static const struct {
	unsigned long req;
	const char *name;
	unsigned int below;		/* addr = 2^64 - below pages */
	unsigned int npages;
	int err;			/* 0: SNAPSHOT says ERROR for each page */
} top_cases[] = {
	{ HMM_DMIRROR_READ, "READ", 2, 1, -EINVAL },
	{ HMM_DMIRROR_WRITE, "WRITE", 2, 1, -EINVAL },
	{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT", 2, 1, -EOVERFLOW },
	{ HMM_DMIRROR_READ, "READ", 64, 1, -EINVAL },
	{ HMM_DMIRROR_WRITE, "WRITE", 64, 1, -EINVAL },
	{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT", 64, 1, -EINVAL },
	{ HMM_DMIRROR_READ, "READ", 65, 1, -EFAULT },
	{ HMM_DMIRROR_WRITE, "WRITE", 65, 1, -EFAULT },
	{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT", 65, 1, 0 },
	{ HMM_DMIRROR_READ, "READ", 128, 127, -EFAULT },
	{ HMM_DMIRROR_EXCLUSIVE, "EXCLUSIVE", 2, 1, -EBUSY },
	{ HMM_DMIRROR_EXCLUSIVE, "EXCLUSIVE", 65, 1, -EBUSY },
};

static void check_top(int fd, long page)
{
	unsigned char *buf = calloc(128, page);
	struct hmm_dmirror_cmd cmd;
	char what[128];
	unsigned int i;
	int n, ok, ret;

	for (i = 0; i < sizeof(top_cases) / sizeof(top_cases[0]); i++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = -(uint64_t)top_cases[i].below * page;
		cmd.ptr = (uintptr_t)buf;
		cmd.npages = top_cases[i].npages;
		buf[0] = 0;
		ret = dmirror_ioctl(fd, top_cases[i].req, &cmd);
		n = snprintf(what, sizeof(what), "%s addr=2^64-%luK npages=%u ", top_cases[i].name,
			     (unsigned long)(top_cases[i].below * page / 1024), top_cases[i].npages);
		if (top_cases[i].err) {
			ok = ret == top_cases[i].err;
			n += snprintf(what + n, sizeof(what) - n, "is %s", errname(top_cases[i].err));
			if (!ok)
				snprintf(what + n, sizeof(what) - n, " (got %d)", ret);
		} else {
			ok = !ret && cmd.cpages == 1 && buf[0] == HMM_DMIRROR_PROT_ERROR;
			n += snprintf(what + n, sizeof(what) - n, "succeeds and says ERROR");
			if (!ok)
				snprintf(what + n, sizeof(what) - n, " (got %d, cpages %llu, 0x%02x)",
					 ret, (unsigned long long)cmd.cpages, buf[0]);
		}
		check(ok, what);
	}
	free(buf);
}

static void fill(unsigned char *p, unsigned long len, int seed)
{
	unsigned long i;

	for (i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 13 + seed);
}

/*
 * Pages on the device, seen through the device, where the C module goes wrong (see
 * shared/HMM-NOTES.md): after an mprotect it reads its own device-private pages through the
 * direct map (an oops), it WARNs on a write fault that returns a read-only device-private
 * page, and a second open of the device keeps pointers to pages that moved (a use-after-free
 * on its READ). They run on the Rust device only; the C module passes them without running.
 */
static void check_device_pages(const char *path, int fd, long page, int rust)
{
	unsigned long n = 16, len = n * page;
	struct hmm_dmirror_cmd cmd;
	unsigned char *mem, *buf, *want;
	int fd2, ret;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(len);
	want = malloc(len);
	if (!rust || mem == MAP_FAILED || !buf || !want) {
		check(!rust, "READ of this device's pages after mprotect gives their data");
		check(!rust, "WRITE of this device's pages made read-only fails");
		check(!rust, "a second open sees the data of pages another open migrated");
		check(!rust, "a WRITE through the second open reaches the migrated pages");
		goto out;
	}
	fill(mem, len, 1);
	memcpy(want, mem, len);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)mem;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = n;

	/* The mprotect invalidates the device page table; READ faults the pages back in. */
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
	mprotect(mem, len, PROT_READ);
	memset(buf, 0, len);
	check(!ret && !dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) && !memcmp(buf, want, len),
	      "READ of this device's pages after mprotect gives their data");
	check(dmirror_ioctl(fd, HMM_DMIRROR_WRITE, &cmd) < 0,
	      "WRITE of this device's pages made read-only fails");
	mprotect(mem, len, PROT_READ | PROT_WRITE);
	dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, &cmd);

	/* A second open maps the pages, then the first migrates them to the device. */
	fd2 = open(path, O_RDWR);
	ret = fd2 < 0 || dmirror_ioctl(fd2, HMM_DMIRROR_READ, &cmd) ||
	      dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
	memset(buf, 0, len);
	check(!ret && !dmirror_ioctl(fd2, HMM_DMIRROR_READ, &cmd) && !memcmp(buf, want, len),
	      "a second open sees the data of pages another open migrated");
	fill(buf, len, 2);
	memcpy(want, buf, len);
	ret = fd2 < 0 || dmirror_ioctl(fd2, HMM_DMIRROR_WRITE, &cmd);
	memset(buf, 0, len);
	check(!ret && !dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) && !memcmp(buf, want, len) &&
	      !memcmp(mem, want, len), "a WRITE through the second open reaches the migrated pages");
	if (fd2 >= 0)
		close(fd2);
	dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, &cmd);
out:
	if (mem != MAP_FAILED)
		munmap(mem, len);
	free(buf);
	free(want);
}

/*
 * MIGRATE_TO_DEV of a range whose first half is on the device already: only the second half
 * moves, and the data read back through the device is the whole range's. (The Rust device
 * maps pages from the migration only when all of them moved; here it maps from the page
 * tables.)
 */
static void check_migrate_half(int fd, long page)
{
	unsigned long n = 16, len = n * page;
	struct hmm_dmirror_cmd cmd;
	unsigned char *mem, *buf, *want;
	int ret;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(len);
	want = malloc(len);
	if (mem == MAP_FAILED || !buf || !want) {
		check(0, "MIGRATE_TO_DEV of a range half on the device gives the whole range's data");
		check(0, "MIGRATE_TO_SYS then moves the whole range back");
		goto out;
	}
	fill(mem, len, 3);
	memcpy(want, mem, len);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)mem;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = n / 2;
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
	cmd.npages = n;
	memset(buf, 0, len);
	ret = ret || dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
	check(!ret && cmd.cpages == n && !memcmp(buf, want, len),
	      "MIGRATE_TO_DEV of a range half on the device gives the whole range's data");
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_SYS, &cmd);
	check(!ret && cmd.cpages == n && !memcmp(mem, want, len),
	      "MIGRATE_TO_SYS then moves the whole range back");
	dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, &cmd);
out:
	if (mem != MAP_FAILED)
		munmap(mem, len);
	free(buf);
	free(want);
}

/*
 * C's CHECK_EXCLUSIVE looks up every page of the user's range with no reschedule or signal
 * check: npages = 2^48 pins a CPU for good. The Rust device walks what its table holds.
 * Rust only; the bound is a hang guard, not a timing.
 */
static void check_exclusive_huge(int fd, long page, int rust)
{
	struct hmm_dmirror_cmd cmd;
	struct timespec a, b;
	int ret;

	if (!rust) {
		check(1, "CHECK_EXCLUSIVE of 2^48 pages returns at once");
		return;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = page;
	cmd.npages = (uint64_t)1 << 48;
	clock_gettime(CLOCK_MONOTONIC, &a);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd);
	clock_gettime(CLOCK_MONOTONIC, &b);
	check(ret == 0 && b.tv_sec - a.tv_sec < 10, "CHECK_EXCLUSIVE of 2^48 pages returns at once");
}

/*
 * EXCLUSIVE where its own write fault changes the CPU page tables, as C converges: pages the
 * CPU maps read-only (the zero page after a read, copy-on-write after a fork) and pages
 * exclusive to the device already (a second EXCLUSIVE); then a range whose tail is not mapped,
 * which fails with nothing of it left exclusive to the device (CHECK_EXCLUSIVE is 0).
 */
static void check_exclusive_converges(int fd, long page)
{
	unsigned long len = 4 * page;
	struct hmm_dmirror_cmd cmd;
	unsigned char *mem, *buf, *want;
	int status, ok, i;
	pid_t pid;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(len);
	want = malloc(len);
	if (mem == MAP_FAILED || !buf || !want) {
		check(0, "EXCLUSIVE checks: allocation");
		return;
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)mem;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = 4;

	/* The zero page, mapped read-only by a read. */
	for (i = 0; i < 4; i++)
		(void)((volatile unsigned char *)mem)[i * page];
	memset(buf, 0xff, len);
	memset(want, 0, len);
	ok = dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == 0 && !memcmp(buf, want, len) &&
	     dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd) == -EPERM;
	check(ok, "EXCLUSIVE of zero pages the CPU read succeeds, and they are exclusive");

	/* Twice in a row: the second revokes the first and converts again. */
	fill(mem, len, 11);
	fill(want, len, 11);
	ok = dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == 0 &&
	     dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == 0 && !memcmp(buf, want, len) &&
	     dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd) == -EPERM;
	check(ok, "EXCLUSIVE twice of the same pages succeeds both times");
	check(!memcmp(mem, want, len) &&
	      dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd) == 0,
	      "a CPU read revokes them, with their data");

	/* Copy-on-write: the child keeps its pages, the parent's EXCLUSIVE breaks the sharing. */
	pid = fork();
	if (pid == 0) {
		usleep(200000);
		_exit(memcmp(mem, want, len) ? 1 : 0);
	}
	ok = pid > 0 && dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == 0 &&
	     !memcmp(buf, want, len) &&
	     dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd) == -EPERM;
	check(ok, "EXCLUSIVE of pages shared copy-on-write with a child succeeds");
	if (pid > 0) {
		mem[0] ^= 0xff;		/* the parent's copy changes, not the child's */
		ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status);
		check(ok, "the child still reads its own copy of those pages");
		mem[0] ^= 0xff;
	}

	/* 2^48 pages from a mapped one: EBUSY at the first hole, at once (a hang guard). */
	cmd.npages = (uint64_t)1 << 48;
	check(dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == -EBUSY,
	      "EXCLUSIVE of 2^48 pages from a mapped one is EBUSY");
	cmd.npages = 4;

	/* The last two pages unmapped: EBUSY, and none of the range exclusive to the device. */
	munmap(mem + 2 * page, 2 * page);
	ok = dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd) == -EBUSY;
	cmd.npages = 2;
	ok = ok && dmirror_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, &cmd) == 0 &&
	     !memcmp(mem, want, 2 * page);
	check(ok, "EXCLUSIVE of a range with unmapped pages is EBUSY and maps none of it");
	munmap(mem, 2 * page);
	free(buf);
	free(want);
}

static volatile int storm_stop;
static volatile unsigned long storms;

static long storm_page_size;

/* Invalidates one page of @arg over and over (MADV_DONTNEED, then a write faults it in). */
static void *storm_loop(void *arg)
{
	volatile unsigned char *p = arg;

	while (!storm_stop) {
		madvise((void *)p, storm_page_size, MADV_DONTNEED);
		p[0] = (unsigned char)storms;
		storms = storms + 1;
	}
	return NULL;
}

/* Starts a thread invalidating the page @p, and returns once it has; 0, or -1. */
static int storm_start(pthread_t *thread, unsigned char *p, long page)
{
	storm_page_size = page;
	storm_stop = 0;
	storms = 0;
	if (pthread_create(thread, NULL, storm_loop, p))
		return -1;
	while (storms < 10)
		sched_yield();
	return 0;
}

static void storm_end(pthread_t thread)
{
	storm_stop = 1;
	pthread_join(thread, NULL);
}

/*
 * EXCLUSIVE while another thread keeps invalidating a page elsewhere in the address space: C
 * never looks, and succeeds; so must the Rust device, whose mirror follows the whole address
 * space (it used to retry on every invalidation anywhere, and fail with EBUSY after 1 s).
 */
static void check_exclusive_storm(int fd, long page)
{
	unsigned char *mem, *other, *buf;
	struct hmm_dmirror_cmd cmd;
	struct timespec a, b;
	unsigned long before;
	pthread_t thread;
	int i, ret = 0, ok = 1;

	mem = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/*
	 * The page invalidated is the middle one of three: C's invalidation clears its table up
	 * to and including the page that follows the range (xa_for_each_range's last index is
	 * end >> PAGE_SHIFT), so a page right below @mem would drop @mem's first entry, and C's
	 * EXCLUSIVE fail its read-back with ENOENT.
	 */
	other = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(4 * page);
	if (mem == MAP_FAILED || other == MAP_FAILED || !buf ||
	    storm_start(&thread, other + page, page)) {
		check(0, "EXCLUSIVE storm check: allocation and thread");
		return;
	}
	fill(mem, 4 * page, 5);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)mem;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = 4;
	before = storms;
	for (i = 0; i < 20 && ok; i++) {
		ret = dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd);
		ok = ret == 0 && !memcmp(buf, mem, 4 * page);
	}
	storm_end(thread);
	if (!ok)
		printf("note: EXCLUSIVE %d of 20 under invalidations elsewhere: %s%s\n", i,
		       strerror(-ret), ret ? "" : ", wrong data");
	else if (storms == before)
		printf("note: the invalidating thread did not run during the EXCLUSIVEs\n");
	check(ok, "EXCLUSIVE succeeds 20 times while another page is invalidated all along");

	/*
	 * A page of the range itself invalidated all along: the Rust device tries again for 1 s,
	 * then gives up with EBUSY, unless a try got through; C does not look, and its read-back
	 * may find the entry gone (ENOENT). Either way it returns (the bound is a hang guard,
	 * not a timing).
	 */
	if (storm_start(&thread, mem + 2 * page, page)) {
		check(0, "EXCLUSIVE storm check: pthread_create");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, &cmd);
	clock_gettime(CLOCK_MONOTONIC, &b);
	storm_end(thread);
	check((ret == 0 || ret == -EBUSY || ret == -ENOENT) && b.tv_sec - a.tv_sec < 10,
	      "EXCLUSIVE of a range invalidated all along returns");
	munmap(mem, 4 * page);
	munmap(other, 3 * page);
	free(buf);
}

static volatile sig_atomic_t sigusr1_count;
static volatile int stop_kill;
static pthread_t main_thread;

/* Writes @val to the tracing file @name; 0 or -1. */
static int write_tracing(const char *name, const char *val)
{
	char path[256];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/%s", name);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/*
 * The mmap lock's tracepoints fire for every SNAPSHOT (which always walks the CPU page
 * table, under that lock), as for any taker of the lock: C's inline mmap_read_lock tests
 * their keys itself, and so must a Rust device that takes the lock without the helpers.
 */
static void check_mmap_lock_trace(int fd, long page)
{
	unsigned long started = 0, acquired = 0, released = 0;
	struct hmm_dmirror_cmd cmd;
	unsigned char *data, *buf;
	char line[512], task[32];
	int i, n = 20, ok = 1;
	FILE *f;

	data = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = malloc(page);
	memset(data, 0x77, page);
	memset(buf, 0, page);
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = (uintptr_t)data;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = 1;
	if (write_tracing("trace", "") || write_tracing("events/mmap_lock/enable", "1")) {
		check(0, "the mmap_lock trace events can be enabled");
		goto out;
	}
	for (i = 0; i < n; i++)
		ok &= dmirror_ioctl(fd, HMM_DMIRROR_SNAPSHOT, &cmd) == 0;
	write_tracing("events/mmap_lock/enable", "0");
	/* Our events: "<comm>-<pid> [cpu] ..." with comm cut to 15 characters. */
	snprintf(task, sizeof(task), "-%d ", getpid());
	f = fopen("/sys/kernel/debug/tracing/trace", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strstr(line, task))
			continue;
		started += !!strstr(line, "mmap_lock_start_locking:");
		acquired += strstr(line, "mmap_lock_acquire_returned:") && strstr(line, "success=true");
		released += !!strstr(line, "mmap_lock_released:");
	}
	if (f)
		fclose(f);
	write_tracing("trace", "");
	check(ok && started >= n && acquired >= n && released >= n,
	      "every SNAPSHOT fires the mmap lock's tracepoints (start, acquired, released)");
	if (started < n || acquired < n || released < n)
		printf("  %d SNAPSHOTs: %lu started, %lu acquired, %lu released\n", n, started,
		       acquired, released);
out:
	munmap(data, page);
	free(buf);
}

static void on_sigusr1(int sig)
{
	sigusr1_count++;
}

/* Sends SIGUSR1 to the main thread every 200 us until told to stop. */
static void *kill_loop(void *arg)
{
	while (!stop_kill) {
		pthread_kill(main_thread, SIGUSR1);
		usleep(200);
	}
	return NULL;
}

/*
 * Runs @req on @npages pages at @addr into or from @ptr three times and checks that each
 * returns 0 with every page, and for READ that @ptr holds @addr's bytes.
 */
static void check_thrice(int fd, unsigned long req, void *addr, unsigned char *ptr,
			 unsigned long npages, unsigned long len, const char *what)
{
	struct hmm_dmirror_cmd cmd;
	char text[192];
	int i, ret;

	for (i = 0; i < 3; i++) {
		memset(ptr, 0, len);
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = (uintptr_t)addr;
		cmd.ptr = (uintptr_t)ptr;
		cmd.npages = npages;
		ret = dmirror_ioctl(fd, req, &cmd);
		if (ret || cmd.cpages != npages ||
		    (req == HMM_DMIRROR_READ && memcmp(ptr, addr, len))) {
			snprintf(text, sizeof(text), "%s (got %d, cpages %llu, try %d)", what, ret,
				 (unsigned long long)cmd.cpages, i + 1);
			check(0, text);
			return;
		}
	}
	check(1, what);
}

/*
 * A signal that does not kill the task must not interrupt a long ioctl: C never returns
 * EINTR. Without SA_RESTART, an ERESTARTSYS would reach us as EINTR.
 */
static void check_signals(int fd, long page)
{
	unsigned long i, snap_pages = (64UL << 20) / page, read_pages = (4UL << 20) / page;
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	unsigned char *big, *snap, *data, *out;
	pthread_t thread;
	int before;

	big = mmap(NULL, snap_pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	data = mmap(NULL, read_pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	snap = malloc(snap_pages);
	out = malloc(read_pages * page);
	if (big == MAP_FAILED || data == MAP_FAILED || !snap || !out) {
		check(0, "signal checks: allocation");
		return;
	}
	/* A different byte in each page, so that misplaced pages show. */
	for (i = 0; i < read_pages; i++)
		memset(data + i * page, 0x40 + i % 151, page);

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();
	if (pthread_create(&thread, NULL, kill_loop, NULL)) {
		check(0, "signal checks: pthread_create");
		return;
	}
	/* Start once the signals fly. */
	for (i = 0; i < 1000 && !sigusr1_count; i++)
		usleep(1000);
	before = sigusr1_count;

	check_thrice(fd, HMM_DMIRROR_SNAPSHOT, big, snap, snap_pages, snap_pages,
		     "SNAPSHOT of 64 MiB while SIGUSR1 flies returns 0 and every page");
	check_thrice(fd, HMM_DMIRROR_READ, data, out, read_pages, read_pages * page,
		     "READ of 4 MiB while SIGUSR1 flies returns 0 and the data");

	stop_kill = 1;
	pthread_join(thread, NULL);
	/* Otherwise the two checks above tested nothing. */
	check(sigusr1_count > before, "SIGUSR1 arrived while those ioctls ran");
	munmap(big, snap_pages * page);
	munmap(data, read_pages * page);
	free(snap);
	free(out);
}

/*
 * READ and WRITE of more pages than a bounce buffer an open file keeps (64 in the Rust
 * device, which fills a larger one as it goes): an error after some pages were copied in
 * leaves the user's buffer untouched and counts the pages copied; a bad user buffer for
 * WRITE changes nothing; a short READ after a long one writes only its own pages.
 */
static void check_large(int fd, long page)
{
	const unsigned long n = 200, bad = 150;
	struct hmm_dmirror_cmd cmd;
	unsigned char *data = mmap(NULL, n * page, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *buf = mmap(NULL, n * page, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long i, same;

	if (data == MAP_FAILED || buf == MAP_FAILED) {
		check(0, "mmap for the large READ and WRITE checks");
		return;
	}
	for (i = 0; i < n; i++)
		memset(data + i * page, (int)(i & 0x7f) + 1, page);
	memset(&cmd, 0, sizeof(cmd));
	/* The first pages in the device page table, then one page of the range PROT_NONE. */
	cmd.addr = (uintptr_t)data;
	cmd.ptr = (uintptr_t)buf;
	cmd.npages = bad;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0, "READ of 150 pages");
	mprotect(data + bad * page, page, PROT_NONE);
	memset(buf, 0xee, n * page);
	cmd.npages = n;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EFAULT && cmd.cpages == bad,
	      "READ of 200 pages, page 150 PROT_NONE, is EFAULT with cpages 150");
	for (i = 0, same = 1; i < n * page; i++)
		same &= buf[i] == 0xee;
	check(same, "that READ wrote nothing to the user's buffer");
	mprotect(data + bad * page, page, PROT_READ | PROT_WRITE);

	/* WRITE from a buffer whose last page is gone: EFAULT, nothing written. */
	memset(buf, 0x77, n * page);
	munmap(buf + (n - 1) * page, page);
	check(dmirror_ioctl(fd, HMM_DMIRROR_WRITE, &cmd) == -EFAULT,
	      "WRITE of 200 pages from a buffer missing its last page is EFAULT");
	for (i = 0, same = 1; i < n; i++)
		same &= data[i * page] == (unsigned char)((i & 0x7f) + 1) &&
			data[i * page + page - 1] == (unsigned char)((i & 0x7f) + 1);
	check(same, "that WRITE changed nothing");
	munmap(buf, (n - 1) * page);

	buf = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		check(0, "mmap for the large READ and WRITE checks");
		munmap(data, n * page);
		return;
	}
	cmd.ptr = (uintptr_t)buf;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0 && cmd.cpages == n,
	      "READ of 200 pages");
	for (i = 0, same = 1; i < n; i++)
		same &= buf[i * page] == (unsigned char)((i & 0x7f) + 1) &&
			buf[i * page + page - 1] == (unsigned char)((i & 0x7f) + 1);
	check(same, "that READ returned every page");

	/* 64 pages, then 2 pages of other data into a buffer of 64: 2 pages written, no more. */
	cmd.npages = 64;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0, "READ of 64 pages");
	memset(buf, 0xee, 64 * page);
	cmd.addr = (uintptr_t)(data + 100 * page);
	cmd.npages = 2;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0 && cmd.cpages == 2,
	      "READ of 2 pages after one of 64");
	same = buf[0] == 101 && buf[2 * page - 1] == 102;
	for (i = 2 * page; i < 64 * page; i++)
		same &= buf[i] == 0xee;
	check(same, "that READ wrote its 2 pages and nothing past them");
	munmap(buf, n * page);
	munmap(data, n * page);
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	struct hmm_dmirror_cmd cmd;
	unsigned char *p;
	int fd, i, zero = 1, rust;

	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN c|rust\n", argv[0]);
		return 2;
	}
	rust = !strcmp(argv[2], "rust");
	/* init.sh reads our output from a file: keep what was printed before a crash. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open(argv[1], O_RDWR);
	check(fd >= 0, "open");
	if (fd < 0)
		return 1;

	/* The C module seeks with default_llseek; without llseek it would be ESPIPE. */
	check(lseek(fd, 0, SEEK_SET) == 0, "lseek(0, SEEK_SET) succeeds");

	/* mmap gives zeroed, writable system pages (vm_insert_page). */
	p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(p != MAP_FAILED, "mmap of 4 pages");
	if (p != MAP_FAILED) {
		for (i = 0; i < 4 * page; i++)
			zero &= p[i] == 0;
		check(zero, "mmapped pages read as zero");
		memset(p, 0x5a, 4 * page);
		check(p[0] == 0x5a && p[4 * page - 1] == 0x5a, "mmapped pages are writable");
		check(munmap(p, 4 * page) == 0, "munmap");
	}

	/* The ioctl argument checks, in the C module's order. */
	check(ioctl(fd, HMM_DMIRROR_READ, (void *)8) == -1 && errno == EFAULT,
	      "a bad argument pointer is EFAULT");
	memset(&cmd, 0, sizeof(cmd));
	cmd.addr = 4096 + 1;
	cmd.npages = 1;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EINVAL, "an unaligned addr is EINVAL");
	cmd.addr = 4096;
	cmd.npages = 0;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EINVAL, "npages == 0 is EINVAL");
	cmd.addr = UINT64_MAX & ~(uint64_t)(page - 1);
	cmd.npages = 1;
	check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EINVAL,
	      "a range that wraps around is EINVAL");
	cmd.addr = 4096;
	cmd.npages = 1;
	check(dmirror_ioctl(fd, _IOWR('H', 0x42, struct hmm_dmirror_cmd), &cmd) == -EINVAL,
	      "an unknown command is EINVAL");
	check(dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, &cmd) == 0, "RELEASE succeeds");

	/* Bad memory: each is an errno, never an oops. */
	{
		unsigned char *buf = malloc(4 * page);
		unsigned char *none = mmap(NULL, 4 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *data = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *hole = mmap(NULL, 4 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		munmap(hole, 4 * page);
		memset(data, 0x33, 4 * page);
		cmd.ptr = (uintptr_t)buf;
		cmd.npages = 4;

		cmd.addr = (uintptr_t)hole;
		check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EFAULT, "READ of unmapped memory is EFAULT");
		check(dmirror_ioctl(fd, HMM_DMIRROR_WRITE, &cmd) == -EFAULT, "WRITE of unmapped memory is EFAULT");
		cmd.addr = (uintptr_t)none;
		check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EFAULT, "READ of PROT_NONE memory is EFAULT");
		check(dmirror_ioctl(fd, HMM_DMIRROR_SNAPSHOT, &cmd) == 0 && buf[0] == HMM_DMIRROR_PROT_ERROR,
		      "SNAPSHOT of PROT_NONE memory says ERROR");
		cmd.addr = (uintptr_t)data;
		cmd.ptr = 8;
		check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == -EFAULT, "READ into a bad buffer is EFAULT");
		check(dmirror_ioctl(fd, HMM_DMIRROR_WRITE, &cmd) == -EFAULT, "WRITE from a bad buffer is EFAULT");
		check(dmirror_ioctl(fd, HMM_DMIRROR_SNAPSHOT, &cmd) == -EFAULT,
		      "SNAPSHOT into a bad buffer is EFAULT");
		cmd.ptr = (uintptr_t)buf;
		check(dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0 && buf[0] == 0x33 &&
		      buf[4 * page - 1] == 0x33 && cmd.cpages == 4, "READ after the errors still works");
		/* The C module vmallocs the whole bounce buffer, which WARNs: not for it. */
		cmd.npages = (uint64_t)1 << 40;
		check(!rust || dmirror_ioctl(fd, HMM_DMIRROR_READ, &cmd) < 0, "READ of 2^40 pages fails");
		munmap(none, 4 * page);
		munmap(data, 4 * page);
		free(buf);
	}

	check_top(fd, page);
	check_large(fd, page);
	check_signals(fd, page);
	check_device_pages(argv[1], fd, page, rust);
	check_migrate_half(fd, page);
	check_exclusive_huge(fd, page, rust);
	check_exclusive_converges(fd, page);
	check_exclusive_storm(fd, page);
	check_mmap_lock_trace(fd, page);

	check(close(fd) == 0, "close");
	return failed;
}
