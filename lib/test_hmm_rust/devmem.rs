// SPDX-License-Identifier: GPL-2.0

//! The device's memory: 256 MiB chunks of ZONE_DEVICE pages, added on demand
//! (`dmirror_allocate_chunk`).
//!
//! Device-private memory cannot be addressed by the CPU; this fake device keeps the data of
//! each of its pages in a page of system memory, the page's data in its pagemap (C's
//! `BACKING_PAGE`). Device-coherent memory is the `spm_addr_devN` reservation, which the CPU
//! addresses directly: one chunk, whose pages need no such page.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::memremap::{DevicePage, NewDevicePage, Pagemap, PagemapOps};
use kernel::mm::highmem::CpuPage;
use kernel::page::Page;
use kernel::prelude::*;

/// The kind of device memory a dmirror device migrates pages into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoryType {
    /// `MEMORY_DEVICE_PRIVATE`: not addressable by the CPU.
    DevicePrivate,
    /// `MEMORY_DEVICE_COHERENT`: CPU-addressable memory at a reserved physical address.
    DeviceCoherent {
        /// The start of the reserved physical range (`spm_addr_devN`).
        spm_addr: u64,
    },
}

/// The size of a chunk of device memory, as in C.
pub(crate) const DEVMEM_CHUNK_SIZE: usize = 256 << 20;

/// The most chunks of device-private memory a device adds (16 GiB): past that, `ENOMEM`.
pub(crate) const DEVMEM_MAX_CHUNKS: usize = 64;

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
    pub(crate) counters: &'static Counters,
    /// The `fault_around_order` module parameter.
    pub(crate) fault_around_order: u32,
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
