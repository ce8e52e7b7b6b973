// SPDX-License-Identifier: GPL-2.0

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
