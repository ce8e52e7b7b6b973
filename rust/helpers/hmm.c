// SPDX-License-Identifier: GPL-2.0

#include <linux/hmm.h>

#ifdef CONFIG_HMM_MIRROR

__rust_helper struct page *rust_helper_hmm_pfn_to_page(unsigned long hmm_pfn)
{
	return hmm_pfn_to_page(hmm_pfn);
}

__rust_helper unsigned int rust_helper_hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return hmm_pfn_to_map_order(hmm_pfn);
}

#endif /* CONFIG_HMM_MIRROR */
