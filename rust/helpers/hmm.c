// SPDX-License-Identifier: GPL-2.0

#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/mm.h>

__rust_helper unsigned long rust_helper_my_zero_pfn(unsigned long addr)
{
	return my_zero_pfn(addr);
}

__rust_helper bool rust_helper_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper struct page *rust_helper_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}
