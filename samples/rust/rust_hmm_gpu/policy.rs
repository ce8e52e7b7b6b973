// SPDX-License-Identifier: GPL-2.0

//! The migration policy's knobs (module parameters, read at load time).

use kernel::hmm::policy::ThrashConfig;

/// The largest fault-around: a 2 MiB block.
const MAX_ORDER: u32 = 9;

/// A device fault migrates the aligned block of 2^order pages around the faulting page.
pub(crate) fn fault_around_order() -> u32 {
    crate::module_parameters::fault_around_order
        .value()
        .min(MAX_ORDER)
}

/// A CPU fault on a device page migrates back the aligned block of 2^order pages around it.
pub(crate) fn cpu_fault_around_order() -> u32 {
    crate::module_parameters::cpu_fault_around_order
        .value()
        .min(MAX_ORDER)
}

/// Eviction moves back this many pages at least per step, when it goes round the clock.
pub(crate) fn evict_pages() -> usize {
    1 << crate::module_parameters::evict_order.value().min(MAX_ORDER)
}

/// Thrashing detection: a block that moves `thrash_threshold` times, each within
/// `thrash_lapse_ms` of the last, stays in system memory for `pin_ms`.
pub(crate) fn thrashing() -> ThrashConfig {
    let ms = |v: u32| i64::from(v) * 1_000_000;
    ThrashConfig {
        threshold: crate::module_parameters::thrash_threshold.value(),
        lapse_ns: ms(crate::module_parameters::thrash_lapse_ms.value()),
        pin_ns: ms(crate::module_parameters::pin_ms.value()),
    }
}

/// Whether an atomic fault migrates its block to the device (where the atomics run on device
/// memory), or only makes its page exclusive to the device.
pub(crate) fn migrate_atomics() -> bool {
    crate::module_parameters::migrate_atomics.value() != 0
}

/// Whether a device read of a block that moved to the device before is served in place, in
/// system memory (read-mostly data: with a whole-block fault-around, what of the block is in
/// system memory came back from the device since, so the CPU uses it too).
pub(crate) fn read_in_place() -> bool {
    crate::module_parameters::read_in_place.value() != 0
}

/// Whether a page the CPU maps huge is mapped whole for the device.
pub(crate) fn huge_map() -> bool {
    crate::module_parameters::huge_map.value() != 0
}
