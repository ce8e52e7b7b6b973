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

int rust_helper_xa_trylock(struct xarray *xa)
{
	return xa_trylock(xa);
}

void rust_helper_xa_unlock(struct xarray *xa)
{
	xa_unlock(xa);
}

int rust_helper_xa_err(void *entry)
{
	return xa_err(entry);
}

int rust_helper_xa_reserve(struct xarray *xa, unsigned long index, gfp_t gfp)
{
	return xa_reserve(xa, index, gfp);
}

void rust_helper_xa_release(struct xarray *xa, unsigned long index)
{
	xa_release(xa, index);
}
