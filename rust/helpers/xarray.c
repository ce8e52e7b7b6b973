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

__rust_helper int rust_helper_xa_trylock(struct xarray *xa)
{
	return xa_trylock(xa);
}

__rust_helper void rust_helper_xa_unlock(struct xarray *xa)
{
	xa_unlock(xa);
}
