// SPDX-License-Identifier: GPL-2.0
/*
 * Checks through /proc/self/pagemap that MIGRATE_TO_DEV really moves pages into device
 * memory rather than keeping a copy in the driver: device-private pages show as swap-type
 * (non-present) entries, device-coherent pages as present PTEs whose PFN is in the reserved
 * SPM range. RELEASE and a CPU fault bring them back. Run against the C test_hmm and the
 * Rust test_hmm_rust in the same boot, as root (PFNs need CAP_SYS_ADMIN); prints one
 * "ok"/"FAIL" line per check and exits 1 if any failed.
 *
 * Usage: dmirror-pagemap /dev/hmm_dmirrorN private|coherent SPM_ADDR c|rust
 * SPM_ADDR (hex) is the start of the 256 MiB range the device uses when coherent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define NPAGES		64
#define SPM_SIZE	(256ULL << 20)
#define PM_PRESENT	(1ULL << 63)
#define PM_SWAP		(1ULL << 62)
#define PM_PFN_MASK	((1ULL << 55) - 1)
#define PM_SWAP_TYPE	0x1fULL

/* SNAPSHOT bytes: DEV_PRIVATE_LOCAL (0x20) or DEV_COHERENT_LOCAL (0x40), | WRITE (0x02). */
#define SNAP_PRIVATE	0x22
#define SNAP_COHERENT	0x42

enum state { OUTSIDE, INSIDE, DEVICE };

static int failed, pmfd;
static long page;
static uint64_t spm_lo, spm_hi;		/* PFNs; empty range for a private device */

static void check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failed = 1;
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

/* The pagemap entry of the page at @addr, 0 (not present) if it cannot be read. */
static uint64_t pm_entry(const void *addr)
{
	uint64_t e;

	if (pread(pmfd, &e, sizeof(e), (uintptr_t)addr / page * sizeof(e)) != sizeof(e)) {
		perror("pread /proc/self/pagemap");
		return 0;
	}
	return e;
}

static int entry_ok(uint64_t e, enum state want)
{
	uint64_t pfn = e & PM_PFN_MASK;

	switch (want) {
	case OUTSIDE:
		return (e & PM_PRESENT) && pfn && (pfn < spm_lo || pfn >= spm_hi);
	case INSIDE:
		return (e & PM_PRESENT) && pfn >= spm_lo && pfn < spm_hi;
	default:
		return (e & PM_SWAP) && !(e & PM_PRESENT);
	}
}

/*
 * Checks that pages @first..@first+@n-1 of @p are all in state @want. For DEVICE, the swap
 * offsets (the device pages' PFNs) must also differ: one device page per page.
 */
static void check_pages(const unsigned char *p, int first, int n, enum state want,
			const char *what)
{
	uint64_t e[NPAGES];
	int i, j, bad = 0, idx = -1, dup = -1;
	char text[256];

	for (i = 0; i < n; i++) {
		e[i] = pm_entry(p + (first + i) * page);
		if (!entry_ok(e[i], want) && !bad++)
			idx = i;
		for (j = 0; want == DEVICE && dup < 0 && j < i; j++)
			if (e[j] == e[i])
				dup = i;
	}
	if (!bad && dup < 0) {
		check(1, what);
		return;
	}
	if (bad && (e[idx] & PM_SWAP))
		snprintf(text, sizeof(text),
			 "%s (%d bad; page %d entry 0x%016llx: swap type %llu offset 0x%llx)",
			 what, bad, first + idx, (unsigned long long)e[idx],
			 (unsigned long long)(e[idx] & PM_SWAP_TYPE),
			 (unsigned long long)((e[idx] & PM_PFN_MASK) >> 5));
	else if (bad)
		snprintf(text, sizeof(text), "%s (%d bad; page %d entry 0x%016llx: pfn 0x%llx)",
			 what, bad, first + idx, (unsigned long long)e[idx],
			 (unsigned long long)(e[idx] & PM_PFN_MASK));
	else
		snprintf(text, sizeof(text), "%s (page %d has the same entry 0x%016llx as another)",
			 what, first + dup, (unsigned long long)e[dup]);
	check(0, text);
}

static unsigned char pattern(int i, long off)
{
	return (i * 7 + off) & 0xff;
}

static void fill(unsigned char *p, int base, int n)
{
	long off;
	int i;

	for (i = 0; i < n; i++)
		for (off = 0; off < page; off++)
			p[i * page + off] = pattern(base + i, off);
}

/*
 * Checks that pages @first..@first+@n-1 of @p hold pattern(@base + i), and that the ioctl
 * that produced them returned @err == 0 and @cpages == @want_cpages.
 */
static void check_data(const unsigned char *p, int base, int first, int n, int err,
		       unsigned long long cpages, unsigned long long want_cpages,
		       const char *what)
{
	int i, len, bad = -1;
	char text[256];
	long off = 0;

	for (i = first; bad < 0 && i < first + n; i++)
		for (off = 0; off < page; off++)
			if (p[i * page + off] != pattern(base + i, off)) {
				bad = i;
				break;
			}
	if (bad < 0 && !err && cpages == want_cpages) {
		check(1, what);
		return;
	}
	len = snprintf(text, sizeof(text), "%s (got %d, cpages %llu", what, err, cpages);
	if (bad >= 0)
		len += snprintf(text + len, sizeof(text) - len, "; page %d byte %ld is 0x%02x, not 0x%02x",
				bad, off, p[bad * page + off], pattern(base + bad, off));
	snprintf(text + len, sizeof(text) - len, ")");
	check(0, text);
}

int main(int argc, char **argv)
{
	unsigned char *p, *sh, *out, snap[NPAGES];
	int fd, i, ret, coherent, want_snap;
	struct hmm_dmirror_cmd cmd;
	unsigned long long spm;
	char text[256], *end;

	if (argc != 5 || (strcmp(argv[2], "private") && strcmp(argv[2], "coherent")) ||
	    (strcmp(argv[4], "c") && strcmp(argv[4], "rust"))) {
		fprintf(stderr, "usage: %s /dev/hmm_dmirrorN private|coherent SPM_ADDR c|rust\n",
			argv[0]);
		return 2;
	}
	coherent = !strcmp(argv[2], "coherent");
	spm = strtoull(argv[3], &end, 16);
	if (coherent && (*end || !spm)) {
		fprintf(stderr, "%s: bad SPM_ADDR %s\n", argv[0], argv[3]);
		return 2;
	}
	page = sysconf(_SC_PAGESIZE);
	if (coherent) {
		spm_lo = spm / page;
		spm_hi = (spm + SPM_SIZE) / page;
	}
	want_snap = coherent ? SNAP_COHERENT : SNAP_PRIVATE;
	/* init.sh reads our output from a file: keep what was printed before a crash. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	fd = open(argv[1], O_RDWR);
	pmfd = open("/proc/self/pagemap", O_RDONLY);
	check(fd >= 0 && pmfd >= 0, "open the device and /proc/self/pagemap");
	p = mmap(NULL, NPAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sh = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	out = malloc(NPAGES * page);
	if (fd < 0 || pmfd < 0 || p == MAP_FAILED || sh == MAP_FAILED || !out) {
		perror("setup");
		return 1;
	}

	/* 1: ordinary system pages. */
	fill(p, 0, NPAGES);
	check_pages(p, 0, NPAGES, OUTSIDE,
		    "before MIGRATE_TO_DEV every page is present outside the device range");

	/* 2: the module returns what it read through the device. */
	memset(out, 0, NPAGES * page);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, NPAGES, &cmd);
	check_data(out, 0, 0, NPAGES, ret, cmd.cpages, NPAGES,
		   "MIGRATE_TO_DEV of 64 pages returns 0, cpages 64 and their data");

	/* 3: where the pages are now; nothing here touches them from the CPU. */
	check_pages(p, 0, NPAGES, coherent ? INSIDE : DEVICE, coherent ?
		    "after MIGRATE_TO_DEV every page is present inside the SPM range" :
		    "after MIGRATE_TO_DEV every page is a device-private swap entry of its own");

	/* 4: before any CPU access, which would bring a device-private page back. */
	memset(snap, 0, sizeof(snap));
	ret = dmirror_ioctl(fd, HMM_DMIRROR_SNAPSHOT, p, snap, NPAGES, &cmd);
	for (i = 0; i < NPAGES && snap[i] == want_snap; i++)
		;
	snprintf(text, sizeof(text), "SNAPSHOT after MIGRATE_TO_DEV says 0x%02x for every page",
		 want_snap);
	if (ret || cmd.cpages != NPAGES || i < NPAGES)
		snprintf(text + strlen(text), sizeof(text) - strlen(text),
			 " (got %d, cpages %llu; page %d is 0x%02x)", ret,
			 (unsigned long long)cmd.cpages, i % NPAGES, snap[i % NPAGES]);
	check(!ret && cmd.cpages == NPAGES && i == NPAGES, text);

	/* 5: RELEASE evicts the device memory back to system pages. */
	ret = dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, p, out, NPAGES, &cmd);
	snprintf(text, sizeof(text), "RELEASE returns 0 (got %d)", ret);
	check(!ret, ret ? text : "RELEASE returns 0");
	check_pages(p, 0, NPAGES, OUTSIDE,
		    "after RELEASE every page is present outside the device range");
	check_data(p, 0, 0, NPAGES, 0, 0, 0, "after RELEASE the CPU reads every page's data");

	/* 6: the CPU-fault path (migrate_to_ram for device-private pages). */
	memset(out, 0, NPAGES * page);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, out, NPAGES, &cmd);
	check_data(out, 0, 0, NPAGES, ret, cmd.cpages, NPAGES,
		   "second MIGRATE_TO_DEV returns 0, cpages 64 and their data");
	check_data(p, 0, 0, 1, 0, 0, 0, "the CPU reads page 0's data after the second migration");
	check_pages(p, 0, 1, coherent ? INSIDE : OUTSIDE, coherent ?
		    "after that CPU read page 0 is still present inside the SPM range" :
		    "after that CPU read page 0 is present again outside the device");
	ret = dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, p, out, NPAGES, &cmd);
	check_data(p, 0, 0, NPAGES, ret, 0, 0,
		   "second RELEASE returns 0 and the CPU reads every page's data");
	check_pages(p, 0, NPAGES, OUTSIDE,
		    "after the second RELEASE every page is present outside the device range");

	/* 7: shared pages are not migrated; the module's read-back says ENOENT. */
	fill(sh, NPAGES, 4);
	ret = dmirror_ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, sh, out, 4, &cmd);
	snprintf(text, sizeof(text), "MIGRATE_TO_DEV of 4 MAP_SHARED pages is ENOENT (got %d)", ret);
	check(ret == -ENOENT, ret == -ENOENT ? "MIGRATE_TO_DEV of 4 MAP_SHARED pages is ENOENT" : text);
	check_pages(sh, 0, 4, OUTSIDE,
		    "after it the shared pages are present outside the device range");
	check_data(sh, NPAGES, 0, 4, 0, 0, 0, "after it the shared pages hold their data");

	/* Leave no device memory behind. */
	dmirror_ioctl(fd, HMM_DMIRROR_RELEASE, p, out, NPAGES, &cmd);
	munmap(p, NPAGES * page);
	munmap(sh, 4 * page);
	free(out);
	close(pmfd);
	close(fd);
	return failed;
}
