// SPDX-License-Identifier: GPL-2.0

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/sched/mm.h>

__rust_helper void rust_helper_mmgrab(struct mm_struct *mm)
{
	mmgrab(mm);
}

__rust_helper void rust_helper_mmdrop(struct mm_struct *mm)
{
	mmdrop(mm);
}

__rust_helper bool rust_helper_mmget_not_zero(struct mm_struct *mm)
{
	return mmget_not_zero(mm);
}

__rust_helper void rust_helper_mmap_write_lock(struct mm_struct *mm)
{
	mmap_write_lock(mm);
}

__rust_helper void rust_helper_mmap_write_unlock(struct mm_struct *mm)
{
	mmap_write_unlock(mm);
}

__rust_helper void
rust_helper_memcpy_from_page(char *to, struct page *page, size_t offset,
			     size_t len)
{
	memcpy_from_page(to, page, offset, len);
}

__rust_helper void rust_helper_memcpy_to_page(struct page *page, size_t offset,
					      const char *from, size_t len)
{
	memcpy_to_page(page, offset, from, len);
}

__rust_helper unsigned long rust_helper_page_offset(void)
{
	return PAGE_OFFSET;
}

__rust_helper void rust_helper_copy_highpage(struct page *to, struct page *from)
{
	copy_highpage(to, from);
}

__rust_helper void rust_helper_clear_highpage(struct page *page)
{
	clear_highpage(page);
}

__rust_helper void rust_helper_put_page(struct page *page)
{
	put_page(page);
}
