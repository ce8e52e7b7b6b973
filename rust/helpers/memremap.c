// SPDX-License-Identifier: GPL-2.0

#include <linux/bug.h>
#include <linux/memremap.h>
#include <linux/mm.h>

__rust_helper bool rust_helper_is_device_private_page(const struct page *page)
{
	return is_device_private_page(page);
}

__rust_helper bool rust_helper_is_device_coherent_page(const struct page *page)
{
	return is_device_coherent_page(page);
}

/* The pagemap warns with it when a driver drops it from one of its page_free calls. */
__rust_helper int rust_helper_WARN_ON(int condition)
{
	return WARN_ON(condition);
}
