// SPDX-License-Identifier: GPL-2.0
/*
 * What becomes of pages on a dmirror device when their owner goes away or changes: the file
 * is closed, the process exits, forks, a second open of the device uses them, MIGRATE_TO_SYS
 * brings them back, or they are unmapped. Each scenario fills fresh anonymous private pages
 * with a pattern of its own (different in every page) and checks every byte through the CPU
 * afterwards.
 *
 * The Rust module counts its device pages in debugfs (test_hmm_rust/hmm_dmirrorN/allocated,
 * freed and in_use): those counters must come back to where they started. The C module has
 * none; there the counter checks pass without running, with the same text. Run against the
 * C test_hmm and the Rust test_hmm_rust in the same boot, as root (debugfs); prints one
 * "ok"/"FAIL" line per check and exits 1 if any failed. The counters go to stderr at the end.
 *
 * Usage: dmirror-lifecycle /dev/hmm_dmirrorN c|rust
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define NPAGES		32
#define NSCENARIOS	6	/* each migrates NPAGES pages to the device once */
#define WHY_SIZE	512

static int failed;
static unsigned long page;
static const char *dev;
static unsigned char *scratch;		/* one mapped page, the address RELEASE names */
static char *child_why;			/* shared with the children: why they failed */
static char why[WHY_SIZE];		/* why the current check fails */

static int have_counters;
static unsigned long long start_alloc, start_freed, start_in_use;

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failed = 1;
}

/* Appends a reason to why, "; " between two. */
static void because(const char *fmt, ...)
{
	size_t len = strlen(why);
	va_list ap;

	if (len && len < sizeof(why) - 2) {
		memcpy(why + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(why + len, sizeof(why) - len, fmt, ap);
	va_end(ap);
}

/* Prints the check @what, with the reasons only if it failed, and forgets them. */
static void verdict(int ok, const char *what)
{
	char text[WHY_SIZE + 160];

	if (!ok && why[0]) {
		snprintf(text, sizeof(text), "%s (%s)", what, why);
		check(0, text);
	} else {
		check(ok, what);
	}
	why[0] = 0;
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

/* RELEASE: every page of the device back to system memory. Returns 0 or -errno. */
static int release(int fd)
{
	struct hmm_dmirror_cmd cmd;

	return dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, scratch, NULL, 1, &cmd);
}

/*
 * The Rust module's counters of the device @dev (/dev/hmm_dmirrorN): device pages ever
 * allocated, ever freed, and in use now. Returns -1 if they do not exist (the C module).
 */
static int counters(const char *dev, unsigned long long *alloc, unsigned long long *freed,
		    unsigned long long *in_use)
{
	static const char *const names[] = { "allocated", "freed", "in_use" };
	unsigned long long *vals[] = { alloc, freed, in_use };
	const char *digits = dev + strlen(dev);
	char path[128];
	unsigned int i;
	FILE *f;
	int ok;

	while (digits > dev && isdigit((unsigned char)digits[-1]))
		digits--;
	if (!*digits)
		return -1;
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/test_hmm_rust/hmm_dmirror%lu/%s",
			 strtoul(digits, NULL, 10), names[i]);
		f = fopen(path, "r");
		if (!f)
			return -1;
		ok = fscanf(f, "%llu", vals[i]) == 1;
		fclose(f);
		if (!ok)
			return -1;
	}
	return 0;
}

/* Whether in_use is back to its value at the start; true without counters. */
static int in_use_back(void)
{
	unsigned long long alloc, freed, in_use;

	if (!have_counters)
		return 1;
	if (counters(dev, &alloc, &freed, &in_use)) {
		because("the counters are gone");
		return 0;
	}
	if (in_use == start_in_use)
		return 1;
	because("in_use is %llu, was %llu; allocated +%llu, freed +%llu", in_use, start_in_use,
		alloc - start_alloc, freed - start_freed);
	return 0;
}

/* The byte at @off of page @pg in scenario @scn: differs per page and per scenario. */
static unsigned char pattern(int scn, unsigned long pg, unsigned long off)
{
	uint64_t x = ((uint64_t)scn << 48) ^ ((uint64_t)pg << 24) ^ off;

	/* The splitmix64 finaliser. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static void fill(unsigned char *p, unsigned long first, unsigned long n, int scn)
{
	unsigned long pg, off;

	for (pg = first; pg < first + n; pg++)
		for (off = 0; off < page; off++)
			p[pg * page + off] = pattern(scn, pg, off);
}

/* Checks that pages @first..@first+@n-1 of @p hold scenario @scn's pattern. */
static int verify(const unsigned char *p, unsigned long first, unsigned long n, int scn,
		  const char *where)
{
	unsigned long pg, off;

	for (pg = first; pg < first + n; pg++)
		for (off = 0; off < page; off++)
			if (p[pg * page + off] != pattern(scn, pg, off)) {
				because("%s page %lu byte %lu is 0x%02x, not 0x%02x", where, pg,
					off, p[pg * page + off], pattern(scn, pg, off));
				return 0;
			}
	return 1;
}

/* NPAGES fresh anonymous private pages filled with scenario @scn's pattern, or NULL. */
static unsigned char *map_pages(int scn)
{
	unsigned char *p = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		because("mmap: %s", strerror(errno));
		return NULL;
	}
	fill(p, 0, NPAGES, scn);
	return p;
}

/*
 * MIGRATE_TO_DEV of the NPAGES pages at @p through @fd: returns whether it returned 0,
 * cpages NPAGES and, in @buf, the data of scenario @scn.
 */
static int migrate(int fd, unsigned char *p, int scn, unsigned char *buf)
{
	struct hmm_dmirror_cmd cmd;
	int ret;

	memset(buf, 0, NPAGES * page);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, NPAGES, &cmd);
	if (ret || cmd.cpages != NPAGES) {
		because("MIGRATE_TO_DEV got %d, cpages %llu", ret, (unsigned long long)cmd.cpages);
		return 0;
	}
	return verify(buf, 0, NPAGES, scn, "MIGRATE_TO_DEV returned");
}

/* In a child: hands why to the parent and exits 0 if @ok, else 1. */
static void child_exit(int ok)
{
	snprintf(child_why, WHY_SIZE, "%s", why);
	_exit(ok ? 0 : 1);
}

/* Waits for @pid and says why it failed unless it exited 0; returns whether it did. */
static int child_ok(pid_t pid)
{
	int status;

	if (pid < 0) {
		because("fork: %s", strerror(errno));
		return 0;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			because("waitpid: %s", strerror(errno));
			return 0;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 1;
	if (WIFSIGNALED(status))
		because("the child was killed by signal %d", WTERMSIG(status));
	else
		because("the child exited with %d", WEXITSTATUS(status));
	if (child_why[0])
		because("%s", child_why);
	return 0;
}

/* a: the file is closed with pages on the device. */
static void scenario_close(unsigned char *buf)
{
	unsigned char *p = map_pages('a');
	int fd, ret, ok;

	fd = open(dev, O_RDWR);
	if (fd < 0)
		because("open: %s", strerror(errno));
	ok = fd >= 0 && p && migrate(fd, p, 'a', buf);
	if (fd >= 0)
		close(fd);
	/* Device-private pages come back on this access, device-coherent ones stay valid. */
	ok = p && verify(p, 0, NPAGES, 'a', "after the close") && ok;
	verdict(ok, "close with 32 pages on the device: the CPU then reads every byte right");

	fd = open(dev, O_RDWR);
	ret = fd < 0 ? -errno : release(fd);
	if (fd >= 0)
		close(fd);
	if (ret)
		because("RELEASE through a fresh open got %d", ret);
	ok = in_use_back() && !ret;
	verdict(ok,
		"close: after RELEASE through a fresh open, in_use is back to where it started");
	if (p)
		munmap(p, NPAGES * page);
}

/* b: a process exits with its file open and its pages on the device. */
static void scenario_exit(int fd, unsigned char *buf)
{
	pid_t pid;
	int ret, ok;

	fflush(stdout);
	child_why[0] = 0;
	pid = fork();
	if (!pid) {
		int cfd = open(dev, O_RDWR);
		unsigned char *p = map_pages('b');

		if (cfd < 0)
			because("the child's open: %s", strerror(errno));
		/* Neither closed nor unmapped: the exit does both. */
		child_exit(cfd >= 0 && p && migrate(cfd, p, 'b', buf));
	}
	verdict(child_ok(pid), "exit: a child exits with 32 pages on the device, its file open");

	/* The exit freed them: before RELEASE, which would evict them otherwise. */
	ok = in_use_back();
	ret = release(fd);
	if (ret)
		because("RELEASE got %d", ret);
	verdict(ok && !ret,
		"exit: the child's device pages were freed at its exit (in_use is back to where it started), then RELEASE succeeds");
}

/* c: a fork shares the pages on the device with the child, copy-on-write. */
static void scenario_fork(int fd, unsigned char *buf)
{
	unsigned char *p = map_pages('c');
	int ok, ret;
	pid_t pid;

	ok = p && migrate(fd, p, 'c', buf);
	fflush(stdout);
	child_why[0] = 0;
	pid = p ? fork() : -1;
	if (!pid) {
		int cok;

		/* Reading migrates device-private pages back, in the child. */
		why[0] = 0;
		cok = verify(p, 0, NPAGES, 'c', "in the child");

		fill(p, 0, NPAGES / 2, 'C');
		cok = verify(p, 0, NPAGES / 2, 'C', "in the child after its write") &&
		      verify(p, NPAGES / 2, NPAGES / 2, 'c', "in the child after its write") && cok;
		child_exit(cok);
	}
	ok = (p ? child_ok(pid) : 0) && ok;
	verdict(ok, "fork: the child reads the 32 pages on the device right and writes to half");

	ok = p && verify(p, 0, NPAGES, 'c', "in the parent");
	ret = release(fd);
	if (ret)
		because("RELEASE got %d", ret);
	ok = in_use_back() && !ret && ok;
	verdict(ok,
		"fork: the parent still reads its own bytes (copy-on-write); after RELEASE, in_use is back to where it started");
	if (p)
		munmap(p, NPAGES * page);
}

/*
 * d: a second open of the same device uses pages that the first migrated. The C module
 * keeps pointers to the pages that moved there (a use-after-free): Rust only.
 */
static void scenario_second_open(unsigned char *buf, int rust)
{
	static const char *const what1 =
		"second open: after the first open migrated the pages, a READ through the second gives their data";
	static const char *const what2 =
		"second open: a WRITE through it is seen by a READ through the first and by the CPU";
	struct hmm_dmirror_cmd cmd;
	unsigned char *p;
	int fd1, fd2, ret, ok;

	if (!rust) {
		check(1, what1);
		check(1, what2);
		return;
	}
	p = map_pages('d');
	fd1 = open(dev, O_RDWR);
	fd2 = open(dev, O_RDWR);
	if (fd1 < 0 || fd2 < 0)
		because("open: %s", strerror(errno));
	ok = p && fd1 >= 0 && fd2 >= 0;
	if (ok) {
		/* The second open maps the system pages in its device page table. */
		memset(buf, 0, NPAGES * page);
		ret = dmirror_ioctl(fd2, HMM_DMIRROR_READ, p, buf, NPAGES, &cmd);
		if (ret)
			because("the first READ through the second open got %d", ret);
		ok = !ret && verify(buf, 0, NPAGES, 'd', "the first READ through the second open:");
		ok = migrate(fd1, p, 'd', buf) && ok;
		memset(buf, 0, NPAGES * page);
		ret = dmirror_ioctl(fd2, HMM_DMIRROR_READ, p, buf, NPAGES, &cmd);
		if (ret)
			because("READ through the second open got %d", ret);
		ok = !ret && verify(buf, 0, NPAGES, 'd', "READ through the second open:") && ok;
	}
	verdict(ok, what1);

	ok = p && fd1 >= 0 && fd2 >= 0;
	if (ok) {
		fill(buf, 0, NPAGES, 'D');
		ret = dmirror_ioctl(fd2, HMM_DMIRROR_WRITE, p, buf, NPAGES, &cmd);
		if (ret)
			because("WRITE through the second open got %d", ret);
		ok = !ret;
		memset(buf, 0, NPAGES * page);
		ret = dmirror_ioctl(fd1, HMM_DMIRROR_READ, p, buf, NPAGES, &cmd);
		if (ret)
			because("READ through the first open got %d", ret);
		ok = !ret && verify(buf, 0, NPAGES, 'D', "READ through the first open:") && ok;
		ok = verify(p, 0, NPAGES, 'D', "the CPU reads") && ok;
		release(fd1);
	}
	verdict(ok, what2);
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	if (p)
		munmap(p, NPAGES * page);
}

/* e: MIGRATE_TO_SYS brings every page back, for device-coherent minors too. */
/* The thread of scenario g: migrates its pages back and forth until the process exits. */
static void *exit_racer(void *arg)
{
	unsigned char *p = arg, *buf = malloc(NPAGES * page);
	struct hmm_dmirror_cmd cmd;
	int fd = open(dev, O_RDWR);

	for (;;) {
		dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, NPAGES, &cmd);
		dmirror_ioctl(fd, HMM_DMIRROR_READ, p, buf, NPAGES, &cmd);
		dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_SYS, p, buf, NPAGES, &cmd);
	}
	return NULL;
}

/* g. A process exits while one of its threads migrates: the exit frees every device page. */
static void scenario_exit_race(int fd)
{
	pthread_t thread;
	pid_t pid;
	int ret, ok;

	fflush(stdout);
	child_why[0] = 0;
	pid = fork();
	if (!pid) {
		unsigned char *p = map_pages('g');

		if (!p || pthread_create(&thread, NULL, exit_racer, p))
			child_exit(0);
		usleep(20000);
		/* exit_group() with the other thread in an ioctl. */
		child_exit(1);
	}
	ok = child_ok(pid) && in_use_back();
	ret = release(fd);
	if (ret)
		because("RELEASE got %d", ret);
	verdict(ok && !ret,
		"exit racing a migration: the process's device pages are freed (in_use is back to where it started)");
}

static void scenario_migrate_to_sys(int fd, unsigned char *buf)
{
	unsigned char *p = map_pages('e');
	struct hmm_dmirror_cmd cmd;
	int ok, ret;

	ok = p && migrate(fd, p, 'e', buf);
	if (p) {
		/* No CPU access before it: every page is still on the device. */
		ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_SYS, p, NULL, NPAGES, &cmd);
		if (ret || cmd.cpages != NPAGES)
			because("MIGRATE_TO_SYS got %d, cpages %llu", ret,
				(unsigned long long)cmd.cpages);
		ok = !ret && cmd.cpages == NPAGES && ok;
		ok = verify(p, 0, NPAGES, 'e', "after it") && ok;
		release(fd);
		munmap(p, NPAGES * page);
	}
	verdict(ok,
		"MIGRATE_TO_SYS of 32 pages on the device says cpages 32, and every byte is right");
}

/* f: an munmap frees the pages on the device. */
static void scenario_munmap(int fd, unsigned char *buf)
{
	unsigned char *p = map_pages('f');
	int ok, ret;

	ok = p && migrate(fd, p, 'f', buf);
	if (p)
		munmap(p, NPAGES * page);
	ok = in_use_back() && ok;
	verdict(ok,
		"munmap with 32 pages on the device frees them: in_use is back to where it started");
	ret = release(fd);
	if (ret)
		because("got %d", ret);
	verdict(!ret, "RELEASE after that munmap succeeds");
}

/*
 * `--unload`: the module goes away with pages on the device. Migrates NPAGES pages, closes
 * the device, prints "ready" and waits for a line on stdin while the harness unloads the
 * module, which must migrate them back; then reads every byte through the CPU.
 */
static int unload(void)
{
	unsigned char *buf = malloc(NPAGES * page), *p = map_pages(7);
	int fd = open(dev, O_RDWR), ok;
	char line[16];

	ok = fd >= 0 && p && buf && migrate(fd, p, 7, buf);
	if (fd >= 0)
		close(fd);
	printf("ready\n");
	if (!fgets(line, sizeof(line), stdin))
		because("no go from the harness");
	verdict(ok && p && verify(p, 0, NPAGES, 7, "after the unload the CPU read"),
		"the module unloads with 32 pages on the device; the CPU then reads every byte right");
	return failed;
}

int main(int argc, char **argv)
{
	unsigned long long alloc, freed, in_use;
	unsigned char *buf;
	int fd, rust, ok;

	if (argc == 3 && !strcmp(argv[1], "--unload")) {
		dev = argv[2];
		page = sysconf(_SC_PAGESIZE);
		setvbuf(stdout, NULL, _IOLBF, 0);
		return unload();
	}
	if (argc != 3 || (strcmp(argv[2], "c") && strcmp(argv[2], "rust"))) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN c|rust | --unload /dev/hmm_dmirrorN\n",
			argv[0]);
		return 2;
	}
	dev = argv[1];
	rust = !strcmp(argv[2], "rust");
	page = sysconf(_SC_PAGESIZE);
	/* init.sh reads our output from a file: keep what was printed before a crash. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open(dev, O_RDWR);
	if (fd < 0)
		because("%s", strerror(errno));
	verdict(fd >= 0, "open");
	scratch = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	child_why = mmap(NULL, WHY_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	buf = malloc(NPAGES * page);
	if (fd < 0 || scratch == MAP_FAILED || child_why == MAP_FAILED || !buf) {
		perror("setup");
		return 1;
	}
	/* Whatever an earlier program left on the device goes first. */
	release(fd);
	have_counters = !counters(dev, &start_alloc, &start_freed, &start_in_use);

	scenario_close(buf);
	scenario_exit(fd, buf);
	scenario_fork(fd, buf);
	scenario_second_open(buf, rust);
	scenario_migrate_to_sys(fd, buf);
	scenario_munmap(fd, buf);
	scenario_exit_race(fd);

	/* Counters that never move would pass every check above. */
	ok = 1;
	if (have_counters && !counters(dev, &alloc, &freed, &in_use)) {
		ok = alloc - start_alloc >= NSCENARIOS * NPAGES &&
		     freed - start_freed >= NSCENARIOS * NPAGES && in_use == start_in_use;
		if (!ok)
			because("allocated +%llu, freed +%llu, in_use %llu, was %llu",
				alloc - start_alloc, freed - start_freed, in_use, start_in_use);
	} else if (have_counters) {
		because("the counters are gone");
		ok = 0;
	}
	verdict(ok,
		"at the end allocated and freed each grew by at least 192 pages, and in_use is back to where it started");
	if (have_counters && !counters(dev, &alloc, &freed, &in_use))
		fprintf(stderr,
			"counters of %s: allocated %llu (was %llu), freed %llu (was %llu), in_use %llu (was %llu)\n",
			dev, alloc, start_alloc, freed, start_freed, in_use, start_in_use);

	close(fd);
	free(buf);
	return failed;
}
