// SPDX-License-Identifier: GPL-2.0
/*
 * Checks of a dmirror device that hmm-tests does not make: the file operations (mmap,
 * llseek) and the ioctl argument checks. Run against the C test_hmm and the Rust
 * test_hmm_rust in the same boot; prints one "ok"/"FAIL" line per check and exits 1 if any
 * failed.
 *
 * Usage: dmirror-checks /dev/hmm_dmirrorN c|rust
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

	check(close(fd) == 0, "close");
	return failed;
}
