// SPDX-License-Identifier: GPL-2.0

#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/mm.h>

struct page *rust_helper_hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return hmm_pfn_to_page(hmm_pfn);
}

bool rust_helper_is_zone_device_page(const struct page *page)
{
	return is_zone_device_page(page);
}

bool rust_helper_pfn_is_zone_device(unsigned long pfn)
{
	return is_zone_device_page(pfn_to_page(pfn));
}

unsigned long rust_helper_my_zero_pfn(unsigned long addr)
{
	return my_zero_pfn(addr);
}

bool rust_helper_is_device_private_page(const struct page *page)
{
	return is_device_private_page(page);
}

bool rust_helper_is_device_coherent_page(const struct page *page)
{
	return is_device_coherent_page(page);
}

bool rust_helper_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

struct page *rust_helper_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}
