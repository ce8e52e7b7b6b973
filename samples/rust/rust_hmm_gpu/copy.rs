// SPDX-License-Identifier: GPL-2.0

//! The copy engine: a queue of copy jobs run by a worker of its own, standing in for a DMA
//! engine and its fences. Submitters wait for their jobs (`workqueue::scope`), holding the
//! pages of a migration locked meanwhile; so the engine's jobs take no lock at all (no mmap
//! lock, page lock, mirror lock or allocator lock) and never allocate.

use crate::stats::Stats;
use kernel::mm::highmem::CpuPage;
use kernel::prelude::*;
use kernel::workqueue::{scope, OwnedQueue, QueueFlags};

/// Pages one copy job moves at most.
const PAGES_PER_JOB: usize = 32;

/// One page to copy: `src` into `dst`, or zeroes into `dst` when there is no source.
pub(crate) type CopyPair<'a> = (CpuPage<'a>, Option<CpuPage<'a>>);

/// A device's copy engine.
pub(crate) struct CopyEngine {
    queue: OwnedQueue,
    stats: &'static Stats,
}

impl CopyEngine {
    /// Creates the engine of device `id`.
    pub(crate) fn new(id: u32, stats: &'static Stats) -> Result<Self> {
        let name = kernel::str::CString::try_from_fmt(kernel::fmt!("rust_hmm_gpu{}_copy", id))?;
        // Ordered, one job at a time as one engine would; a rescuer, as CPU faults and
        // eviction wait for its jobs with pages locked.
        let queue = OwnedQueue::ordered(&name, QueueFlags::MEM_RECLAIM)?;
        Ok(Self { queue, stats })
    }

    /// Copies every pair, in jobs of the engine, and waits for all of them.
    ///
    /// A job that cannot be allocated is copied by the caller instead: the data moves either
    /// way.
    pub(crate) fn copy(&self, pairs: &[CopyPair<'_>]) {
        scope::scope(&self.queue, |s| {
            for chunk in pairs.chunks(PAGES_PER_JOB) {
                if s.spawn(GFP_KERNEL, move || copy_chunk(chunk)).is_ok() {
                    Stats::add(&self.stats.copy_jobs, 1);
                } else {
                    copy_chunk(chunk);
                }
            }
        });
    }
}

/// The work of one copy job.
fn copy_chunk(chunk: &[CopyPair<'_>]) {
    for (dst, src) in chunk {
        match src {
            Some(src) => dst.copy_from(src),
            None => dst.zero(),
        }
    }
}
