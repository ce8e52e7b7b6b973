// SPDX-License-Identifier: GPL-2.0

//! The device's counters, in debugfs: /sys/kernel/debug/rust_hmm_gpu/gpu<N>/<counter>.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::str::CString;

/// The counters of one device (names as NVIDIA UVM's fault statistics where one exists).
pub(crate) struct Stats {
    /// Device faults the engine raised (duplicates included).
    pub(crate) faults: AtomicU64,
    /// Batches of faults the fault worker took.
    pub(crate) batches: AtomicU64,
    /// Faults on a page another fault of the same batch had raised.
    pub(crate) duplicates: AtomicU64,
    /// Pages migrated to the device.
    pub(crate) pages_to_device: AtomicU64,
    /// Pages copied back to system memory (CPU faults and evictions).
    pub(crate) pages_to_ram: AtomicU64,
    /// Eviction steps (a block, or a range of device memory) to make room.
    pub(crate) evictions: AtomicU64,
    /// Pages migrated back by eviction.
    pub(crate) evicted_pages: AtomicU64,
    /// Blocks pinned in system memory for thrashing.
    pub(crate) pins: AtomicU64,
    /// Pages mapped for the device where they are, in system memory.
    pub(crate) remote_maps: AtomicU64,
    /// Huge pages of the CPU mapped whole for the device.
    pub(crate) huge_maps: AtomicU64,
    /// Pages made exclusive to the device for atomics.
    pub(crate) exclusive: AtomicU64,
    /// Jobs of the copy engine.
    pub(crate) copy_jobs: AtomicU64,
    /// Pages allocated in device memory now.
    pub(crate) device_pages: AtomicU64,
}

impl Stats {
    const fn new() -> Self {
        Self {
            faults: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            pages_to_device: AtomicU64::new(0),
            pages_to_ram: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            evicted_pages: AtomicU64::new(0),
            pins: AtomicU64::new(0),
            remote_maps: AtomicU64::new(0),
            huge_maps: AtomicU64::new(0),
            exclusive: AtomicU64::new(0),
            copy_jobs: AtomicU64::new(0),
            device_pages: AtomicU64::new(0),
        }
    }

    /// Adds `n` to `counter`.
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The counters of the devices; a static, as debugfs files point to them.
pub(crate) static STATS: [Stats; crate::NDEVICES] = [Stats::new(), Stats::new()];

/// Creates rust_hmm_gpu/gpu<N>/ with a file per counter.
pub(crate) fn debugfs() -> Result<Dir> {
    let dir = Dir::new(kernel::c_str!("rust_hmm_gpu"))?;
    for (id, s) in STATS.iter().enumerate() {
        let name = CString::try_from_fmt(kernel::fmt!("gpu{}", id))?;
        let sub = dir.subdir(&name)?;
        let counters = [
            (kernel::c_str!("faults"), &s.faults),
            (kernel::c_str!("batches"), &s.batches),
            (kernel::c_str!("duplicates"), &s.duplicates),
            (kernel::c_str!("pages_to_device"), &s.pages_to_device),
            (kernel::c_str!("pages_to_ram"), &s.pages_to_ram),
            (kernel::c_str!("evictions"), &s.evictions),
            (kernel::c_str!("evicted_pages"), &s.evicted_pages),
            (kernel::c_str!("pins"), &s.pins),
            (kernel::c_str!("remote_maps"), &s.remote_maps),
            (kernel::c_str!("huge_maps"), &s.huge_maps),
            (kernel::c_str!("exclusive"), &s.exclusive),
            (kernel::c_str!("copy_jobs"), &s.copy_jobs),
            (kernel::c_str!("device_pages"), &s.device_pages),
        ];
        for (name, counter) in counters {
            sub.counter(name, counter);
        }
    }
    Ok(dir)
}
