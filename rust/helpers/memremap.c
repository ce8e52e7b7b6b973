// SPDX-License-Identifier: GPL-2.0

#include <linux/bug.h>

/* The pagemap warns with it when a driver drops it from one of its page_free calls. */
__rust_helper int rust_helper_WARN_ON(int condition)
{
	return WARN_ON(condition);
}
