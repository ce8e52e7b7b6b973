// SPDX-License-Identifier: GPL-2.0

//! One dmirror device (`/dev/hmm_dmirrorN`): what all files opened on it share.

use crate::devmem::{
    Chunk, Chunks, Counters, MemoryType, COUNTERS, DEVMEM_CHUNK_SIZE, DEVMEM_MAX_CHUNKS,
};
use core::sync::atomic::Ordering;
use kernel::memremap::{Memory, NewDevicePage, Owner, Pagemap};
use kernel::page::Page;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// A dmirror device: one minor of the `HMM_DMIRROR` region.
#[pin_data]
pub(crate) struct DmirrorDevice {
    /// The minor, and the `N` of `/dev/hmm_dmirrorN`.
    pub(crate) id: u32,
    /// What memory the device migrates pages into.
    pub(crate) memory: MemoryType,
    /// The owner of the device's memory, for HMM and migration.
    pub(crate) owner: Arc<Owner>,
    /// The counts of the device's pages.
    pub(crate) counters: &'static Counters,
    /// The chunks of device memory (`devmem_chunks` under `devmem_lock`).
    #[pin]
    pub(crate) chunks: Mutex<Chunks>,
}

impl DmirrorDevice {
    pub(crate) fn new(id: u32, memory: MemoryType) -> Result<impl PinInit<Self, Error>> {
        let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
        let counters = COUNTERS.get(usize::try_from(id)?).ok_or(EINVAL)?;
        Ok(try_pin_init!(Self {
            id,
            memory,
            owner,
            counters,
            chunks <- kernel::new_mutex!(KVec::new()),
        }? Error))
    }
}

impl DmirrorDevice {
    /// Allocates a free page of device memory from `chunks`, adding a chunk when every one is
    /// full (`dmirror_devmem_alloc_page`).
    pub(crate) fn alloc_page<'a>(
        &self,
        chunks: &'a mut Chunks,
    ) -> Result<NewDevicePage<'a, Chunk>> {
        let storage = || -> Result<Option<Page>> {
            Ok(match self.memory {
                MemoryType::DevicePrivate => Some(Page::alloc_page(GFP_KERNEL)?),
                MemoryType::DeviceCoherent { .. } => None,
            })
        };
        let index = match chunks.iter().position(|c| c.allocated() < c.npages()) {
            Some(index) => index,
            None => {
                let index = chunks.len();
                let chunk = self.new_chunk(index)?;
                chunks.push(chunk, GFP_KERNEL)?;
                index
            }
        };
        let page = chunks.get(index).ok_or(ENOMEM)?.alloc_page(storage()?)?;
        self.counters.allocated.fetch_add(1, Ordering::Relaxed);
        self.counters.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }

    /// Maps a new chunk of device memory, the `n`-th of the device.
    fn new_chunk(&self, n: usize) -> Result<Pin<KBox<Pagemap<Chunk>>>> {
        let memory = match self.memory {
            MemoryType::DevicePrivate if n < DEVMEM_MAX_CHUNKS => Memory::DevicePrivate {
                size: DEVMEM_CHUNK_SIZE,
            },
            // The reservation holds one chunk.
            MemoryType::DeviceCoherent { spm_addr } if n == 0 => Memory::DeviceCoherent {
                start: spm_addr,
                size: DEVMEM_CHUNK_SIZE,
            },
            _ => return Err(ENOMEM),
        };
        let chunk = KBox::pin_init(
            Pagemap::new(
                self.owner.clone(),
                memory,
                kernel::c_str!("hmm_dmirror"),
                Chunk {
                    counters: self.counters,
                    fault_around_order: crate::module_parameters::fault_around_order.value(),
                },
            ),
            GFP_KERNEL,
        )?;
        pr_info!(
            "hmm_dmirror{}: added new {} MB chunk (total {} chunks) PFNs [{:#x} {:#x})\n",
            self.id,
            DEVMEM_CHUNK_SIZE >> 20,
            n.saturating_add(1),
            chunk.start_pfn(),
            chunk.start_pfn().saturating_add(chunk.npages())
        );
        Ok(chunk)
    }

    /// Migrates every page of the device back to system memory and removes its chunks
    /// (`dmirror_device_remove_chunks`, HMM_DMIRROR_RELEASE).
    ///
    /// The chunks stay if the eviction stops: with `EINTR` if the task is killed, with `EBUSY`
    /// if pages are still busy after its retries (C unmaps the chunk anyway and waits for
    /// them, uninterruptibly, in `memunmap_pages`).
    pub(crate) fn remove_chunks(&self) -> Result {
        let mut guard = self.chunks.lock();
        // Nothing allocates from the chunks while the lock is held: once evicted, a chunk has
        // no page left for its unmapping to wait for.
        for chunk in guard.iter() {
            chunk.evict()?;
        }
        let chunks = core::mem::take(&mut *guard);
        drop(guard);
        drop(chunks);
        Ok(())
    }
}
