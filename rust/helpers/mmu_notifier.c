// SPDX-License-Identifier: GPL-2.0

#include <linux/mmu_notifier.h>

#ifdef CONFIG_MMU_NOTIFIER

__rust_helper bool
rust_helper_mmu_interval_check_retry(struct mmu_interval_notifier *interval_sub,
				     unsigned long seq)
{
	return mmu_interval_check_retry(interval_sub, seq);
}

#endif /* CONFIG_MMU_NOTIFIER */
