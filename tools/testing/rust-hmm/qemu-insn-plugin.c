// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin for `RUST_HMM_BENCH_PROFILE=insn make bench`: counts the guest
 * instructions executed per translation block, and each time the guest executes the block at
 * marker=ADDR (the start of __x64_sys_sync, so a sync(2) in the guest) writes the counts
 * since the previous marker to out=PREFIX.N and starts again from zero. bench-insn.py maps
 * the blocks to functions (System.map, and the module symbols bench-init.sh logs) and
 * compares the C module's window with the Rust module's: instructions per page, per
 * function, Rust functions included (ftrace sees C functions only).
 *
 * With start=ADDR and stop=ADDR (__x64_sys_getpid and __x64_sys_getppid, which dmirror-bench
 * calls around its timed part when RUST_HMM_BENCH_GATE is set), only the blocks run between
 * a start and the next stop are counted: the timed operations, without their setup. Gated, it
 * also counts for each block how often it was entered from a block that starts on another
 * page: QEMU 7.2 chains a block to the next directly only within the page where the first
 * starts (translator_use_goto_tb), so each such entry is a lookup of the next block, as every
 * indirect jump and return is.
 *
 * Gated, it also counts the distinct pages each timed operation runs code on, and with pages=1
 * the distinct pages it reads or writes data on (a callback per memory access: slow): the
 * dump PREFIX.N.pages lists each page ("code" or "data", its address) with the number of
 * operations that touched it. After the munmap that ends each operation of dmirror-bench the
 * guest flushes its TLB, and QEMU its software TLB and its cache of block lookups with it:
 * each page an operation touches then costs a walk of the guest's page tables, which the
 * instruction counts do not show.
 *
 * Debian packages QEMU without qemu-plugin.h: the few declarations of the plugin API
 * (version 1, QEMU 7.2 and later) that this uses are written out below.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_mem_rw { QEMU_PLUGIN_MEM_R = 1, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW };
struct qemu_plugin_insn;
typedef uint32_t qemu_plugin_meminfo_t;
typedef void (*vcpu_mem_cb_t)(unsigned int vcpu_index, qemu_plugin_meminfo_t info,
			      uint64_t vaddr, void *userdata);
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
					      enum qemu_plugin_op op, void *ptr,
					      uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
					  enum qemu_plugin_cb_flags flags, void *userdata);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
void qemu_plugin_register_vcpu_mem_cb(struct qemu_plugin_insn *insn, vcpu_mem_cb_t cb,
				      enum qemu_plugin_cb_flags flags,
				      enum qemu_plugin_mem_rw rw, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One block: its address and length, and how many times it ran since the last marker. */
struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t count;
	/* Entries from a block that starts on another page (gated counting only). */
	uint64_t cross;
	struct block *next;
};

#define BUCKETS (1 << 20)
static struct block *table[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t marker, start, stop;
/* Whether blocks are counted: always, unless start= was given. */
static int counting = 1;
static const char *prefix = "insn";
static int dumps;
/* The block run last (gated counting). */
static struct block *prev;
/* pages=1: count the data pages of each operation too. */
static int data_pages;

/*
 * A page touched by the timed operations: its address (bit 0 set for data), the operations
 * that touched it, and the last of them (op counts the starts).
 */
struct page {
	uint64_t key;
	uint64_t ops;
	uint64_t last;
};

#define PAGES (1 << 16)
static struct page pages[PAGES];
static uint64_t op;

static void touch(uint64_t key)
{
	uint64_t h = (key >> 12) * 0x9e3779b97f4a7c15ull >> 48;

	for (uint64_t i = 0; i < PAGES; i++) {
		struct page *p = &pages[(h + i) & (PAGES - 1)];

		if (!p->key)
			p->key = key;
		if (p->key != key)
			continue;
		if (p->last != op) {
			p->last = op;
			p->ops++;
		}
		return;
	}
}

static void access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
	if (counting)
		touch((vaddr & ~0xfffull) | 1);
}

/* The block at vaddr of insns instructions (a block is translated again after a flush). */
static struct block *block(uint64_t vaddr, uint64_t insns)
{
	uint64_t h = (vaddr ^ (vaddr >> 20) ^ (insns << 7)) & (BUCKETS - 1);
	struct block *b;

	for (b = table[h]; b; b = b->next)
		if (b->vaddr == vaddr && b->insns == insns)
			return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	b->vaddr = vaddr;
	b->insns = insns;
	b->next = table[h];
	table[h] = b;
	return b;
}

static void dump(unsigned int vcpu, void *userdata)
{
	char name[4096];
	FILE *f;

	snprintf(name, sizeof(name), "%s.%d", prefix, dumps++);
	f = fopen(name, "w");
	pthread_mutex_lock(&lock);
	for (int i = 0; i < BUCKETS; i++)
		for (struct block *b = table[i]; b; b = b->next) {
			if (b->count && f)
				fprintf(f, "%llx %llu %llu %llu\n", (unsigned long long)b->vaddr,
					(unsigned long long)b->insns,
					(unsigned long long)b->count,
					(unsigned long long)b->cross);
			b->count = 0;
			b->cross = 0;
		}
	pthread_mutex_unlock(&lock);
	if (f)
		fclose(f);
	snprintf(name, sizeof(name), "%s.%d.pages", prefix, dumps - 1);
	f = fopen(name, "w");
	for (int i = 0; i < PAGES; i++) {
		if (pages[i].key && f)
			fprintf(f, "%s %llx %llu\n", pages[i].key & 1 ? "data" : "code",
				(unsigned long long)(pages[i].key & ~0xfffull),
				(unsigned long long)pages[i].ops);
	}
	if (f)
		fprintf(f, "ops %llu\n", (unsigned long long)op);
	memset(pages, 0, sizeof(pages));
	op = 0;
	if (f)
		fclose(f);
}

/* Gated counting: a call per block run (the inline add cannot be switched off). */
static void count(unsigned int vcpu, void *userdata)
{
	struct block *b = userdata;

	if (b->vaddr == start) {
		counting = 1;
		op++;
	}
	else if (b->vaddr == stop)
		counting = 0;
	if (counting) {
		b->count++;
		if (prev && (prev->vaddr ^ b->vaddr) >> 12)
			b->cross++;
		touch(b->vaddr & ~0xfffull);
	}
	prev = b;
}

static void translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	pthread_mutex_lock(&lock);
	b = block(vaddr, qemu_plugin_tb_n_insns(tb));
	pthread_mutex_unlock(&lock);
	if (start)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, count, QEMU_PLUGIN_CB_NO_REGS, b);
	else
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
							 &b->count, 1);
	if (start && data_pages)
		for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); i++)
			qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), access,
							 QEMU_PLUGIN_CB_NO_REGS,
							 QEMU_PLUGIN_MEM_RW, NULL);
	if (vaddr == marker)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, dump, QEMU_PLUGIN_CB_NO_REGS, NULL);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc,
			char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "marker=", 7))
			marker = strtoull(argv[i] + 7, NULL, 16);
		else if (!strncmp(argv[i], "start=", 6))
			start = strtoull(argv[i] + 6, NULL, 16);
		else if (!strncmp(argv[i], "stop=", 5))
			stop = strtoull(argv[i] + 5, NULL, 16);
		else if (!strcmp(argv[i], "pages=1"))
			data_pages = 1;
		else if (!strncmp(argv[i], "out=", 4))
			prefix = strdup(argv[i] + 4);
	}
	if (!marker || !start != !stop)
		return -1;
	counting = !start;
	qemu_plugin_register_vcpu_tb_trans_cb(id, translate);
	return 0;
}
