// SPDX-License-Identifier: GPL-2.0

#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/rmap.h>

struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}

void rust_helper_put_anon_vma(struct anon_vma *anon_vma)
{
	put_anon_vma(anon_vma);
}
