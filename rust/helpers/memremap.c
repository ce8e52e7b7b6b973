// SPDX-License-Identifier: GPL-2.0

#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/rmap.h>

struct dev_pagemap *rust_helper_page_pgmap(struct page *page)
{
	return page->pgmap;
}

void *rust_helper_zone_device_data(struct page *page)
{
	return page->zone_device_data;
}

void rust_helper_set_zone_device_data(struct page *page, void *data)
{
	page->zone_device_data = data;
}

struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}

void rust_helper_put_anon_vma(struct anon_vma *anon_vma)
{
	put_anon_vma(anon_vma);
}
