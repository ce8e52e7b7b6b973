// SPDX-License-Identifier: GPL-2.0

#include <linux/xarray.h>

__rust_helper void rust_helper_xa_init_flags(struct xarray *xa, gfp_t flags)
{
	xa_init_flags(xa, flags);
}

__rust_helper void rust_helper_xa_lock(struct xarray *xa)
{
	xa_lock(xa);
}

__rust_helper void rust_helper_xa_unlock(struct xarray *xa)
{
	xa_unlock(xa);
}

__rust_helper int rust_helper_xa_err(void *entry)
{
	return xa_err(entry);
}

__rust_helper bool rust_helper_xa_is_internal(const void *entry)
{
	return xa_is_internal(entry);
}
