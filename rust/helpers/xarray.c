// SPDX-License-Identifier: GPL-2.0

#include <linux/xarray.h>

void rust_helper_xa_init_flags(struct xarray *xa, gfp_t flags)
{
	xa_init_flags(xa, flags);
}

void rust_helper_xa_lock(struct xarray *xa)
{
	xa_lock(xa);
}

void rust_helper_xa_unlock(struct xarray *xa)
{
	xa_unlock(xa);
}

int rust_helper_xa_err(void *entry)
{
	return xa_err(entry);
}

bool rust_helper_xa_is_internal(const void *entry)
{
	return xa_is_internal(entry);
}
