// SPDX-License-Identifier: GPL-2.0

#include <linux/atomic.h>
#include <linux/highmem.h>

__rust_helper void rust_helper_memcpy_from_page(char *to, struct page *page, size_t offset,
				  size_t len)
{
	memcpy_from_page(to, page, offset, len);
}

__rust_helper void rust_helper_memcpy_to_page(struct page *page, size_t offset,
				const char *from, size_t len)
{
	memcpy_to_page(page, offset, from, len);
}

__rust_helper void rust_helper_copy_highpage(struct page *to, struct page *from)
{
	copy_highpage(to, from);
}

__rust_helper void rust_helper_clear_highpage(struct page *page)
{
	clear_highpage(page);
}

__rust_helper s64 rust_helper_atomic64_fetch_add(s64 i, atomic64_t *v)
{
	return atomic64_fetch_add(i, v);
}

__rust_helper s64 rust_helper_atomic64_cmpxchg(atomic64_t *v, s64 old, s64 new)
{
	return atomic64_cmpxchg(v, old, new);
}
