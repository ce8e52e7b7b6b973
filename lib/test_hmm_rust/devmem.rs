// SPDX-License-Identifier: GPL-2.0

//! The device's memory: 256 MiB chunks of ZONE_DEVICE pages, added on demand
//! (`dmirror_allocate_chunk`).
//!
//! Device-private memory cannot be addressed by the CPU; this fake device keeps the data of
//! each of its pages in a page of system memory, the page's data in its pagemap (C's
//! `BACKING_PAGE`). Device-coherent memory is the `spm_addr_devN` reservation, which the CPU
//! addresses directly: one chunk, whose pages need no such page.

use crate::device::{DmirrorDevice, MemoryType};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::memremap::{DevicePage, Memory, NewDevicePage, Pagemap, PagemapOps};
use kernel::mm::highmem::CpuPage;
use kernel::page::Page;
use kernel::prelude::*;

/// The size of a chunk of device memory, as in C.
pub(crate) const DEVMEM_CHUNK_SIZE: usize = 256 << 20;

/// The most chunks of device-private memory a device adds (16 GiB): past that, `ENOMEM`.
const DEVMEM_MAX_CHUNKS: usize = 64;

/// Counts of a device's pages: allocated and freed since the module was loaded, and in use
/// now; shown in debugfs (`/sys/kernel/debug/test_hmm_rust/hmm_dmirrorN/`), so that tests can
/// see every page come back.
pub(crate) struct Counters {
    pub(crate) allocated: AtomicU64,
    pub(crate) freed: AtomicU64,
    pub(crate) in_use: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Self {
            allocated: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
        }
    }
}

/// The counters of each minor.
pub(crate) static COUNTERS: [Counters; 4] = [
    Counters::new(),
    Counters::new(),
    Counters::new(),
    Counters::new(),
];

/// A chunk of device memory (`struct dmirror_chunk`).
pub(crate) struct Chunk {
    counters: &'static Counters,
    /// The `fault_around_order` module parameter.
    fault_around_order: u32,
}

impl PagemapOps for Chunk {
    /// The system page that holds the data of a device-private page; `None` for
    /// device-coherent memory, which holds its own data.
    type PageData = Option<Page>;

    fn fault_around_order(&self) -> u32 {
        self.fault_around_order
    }

    #[inline]
    fn page_free(pagemap: &Pagemap<Self>, data: Option<Page>) {
        let counters = pagemap.data().counters;
        counters.freed.fetch_add(1, Ordering::Relaxed);
        counters.in_use.fetch_sub(1, Ordering::Relaxed);
        drop(data);
    }

    #[inline]
    fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
        dst.copy_from(&storage_page(page)?);
        Ok(())
    }
}

/// The page that holds the data of the device page `page`: the page itself if it is
/// device-coherent, its storage if it is device-private.
pub(crate) fn storage_page<'a>(page: &DevicePage<'a, Chunk>) -> Result<CpuPage<'a>> {
    page.data().or_else(|| page.as_cpu()).ok_or(EINVAL)
}

/// The page that will hold the data of the new device page `page`.
pub(crate) fn new_storage_page<'a>(page: &'a NewDevicePage<'_, Chunk>) -> Option<CpuPage<'a>> {
    page.data().or_else(|| page.as_cpu())
}

/// The chunks of a device (`devmem_chunks`, under `devmem_lock`).
pub(crate) type Chunks = KVec<Pin<KBox<Pagemap<Chunk>>>>;

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
