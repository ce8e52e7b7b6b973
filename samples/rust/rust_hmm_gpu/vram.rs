// SPDX-License-Identifier: GPL-2.0

//! The device's memory: a device-private pagemap whose pages' data live in system pages (as
//! VRAM would on a real device), filled and drained by the copy engine; and the record of
//! what is resident, oldest first, from which eviction picks when the memory is full.

use crate::copy::{CopyEngine, CopyPair};
use crate::stats::Stats;
use core::sync::atomic::Ordering;
use kernel::memremap::{DevicePage, Memory, NewDevicePage, Owner, Pagemap, PagemapOps};
use kernel::migrate::{MigrateVma, Source};
use kernel::mm::highmem::CpuPage;
use kernel::page::Page;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// What the pagemap of a device keeps: its copy engine and counters.
pub(crate) struct Vram {
    pub(crate) copy: CopyEngine,
    pub(crate) stats: &'static Stats,
}

impl PagemapOps for Vram {
    type PageData = Page;

    fn fault_around_order(&self) -> u32 {
        crate::policy::cpu_fault_around_order()
    }

    fn page_free(pagemap: &Pagemap<Self>, data: Page) {
        // Runs wherever the last reference goes, in any context: counters only.
        pagemap
            .data()
            .stats
            .device_pages
            .fetch_sub(1, Ordering::Relaxed);
        drop(data);
    }

    fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
        let vram = page.pagemap().data();
        vram.copy.copy(&[(*dst, Some(page.data()))]);
        Stats::add(&vram.stats.pages_to_ram, 1);
        Ok(())
    }

    fn copy_pages_to_ram(pages: &[DevicePage<'_, Self>], dst: &[CpuPage<'_>]) -> Result {
        let Some(vram) = pages.first().map(|page| page.pagemap().data()) else {
            return Ok(());
        };
        // One hand-over to the copy engine for the whole block.
        let mut pairs = KVec::with_capacity(pages.len(), GFP_KERNEL)?;
        for (page, dst) in pages.iter().zip(dst) {
            pairs.push((*dst, Some(page.data())), GFP_KERNEL)?;
        }
        vram.copy.copy(&pairs);
        Stats::add(&vram.stats.pages_to_ram, pairs.len());
        Ok(())
    }
}

/// The indices in device memory of the pages one migration put there.
pub(crate) struct Resident {
    indices: KVec<u32>,
}

/// The resident records, oldest first, in a ring of fixed size (the device's page count: a
/// migration records at least one page).
pub(crate) struct Lru {
    ring: KVec<Option<Resident>>,
    head: usize,
    len: usize,
    /// Where eviction resumes when no record is left but memory is still full (records of
    /// pages freed and reused since no longer name what fills it).
    hand: usize,
}

impl Lru {
    fn new(capacity: usize) -> Result<Self> {
        let mut ring = KVec::with_capacity(capacity, GFP_KERNEL)?;
        for _ in 0..capacity {
            ring.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            ring,
            head: 0,
            len: 0,
            hand: 0,
        })
    }

    /// Records a migration, dropping the oldest record if the ring is full.
    fn push(&mut self, resident: Resident) {
        let cap = self.ring.len();
        if cap == 0 {
            return;
        }
        if self.len == cap {
            let _ = self.pop();
        }
        let slot = (self.head + self.len) % cap;
        if let Some(s) = self.ring.get_mut(slot) {
            *s = Some(resident);
            self.len += 1;
        }
    }

    /// Takes the oldest record.
    fn pop(&mut self) -> Option<Resident> {
        if self.len == 0 {
            return None;
        }
        let taken = self.ring.get_mut(self.head).and_then(Option::take);
        self.head = (self.head + 1).checked_rem(self.ring.len()).unwrap_or(0);
        self.len -= 1;
        taken
    }
}

/// A device's memory.
#[pin_data]
pub(crate) struct DeviceMemory {
    pub(crate) pagemap: Pin<KBox<Pagemap<Vram>>>,
    #[pin]
    lru: Mutex<Lru>,
    stats: &'static Stats,
}

impl DeviceMemory {
    /// The memory of device `id`: `size` bytes of device-private memory of `owner`.
    pub(crate) fn new(
        id: u32,
        owner: Arc<Owner>,
        size: usize,
        stats: &'static Stats,
    ) -> Result<impl PinInit<Self, Error>> {
        let vram = Vram {
            copy: CopyEngine::new(id, stats)?,
            stats,
        };
        let memory = Memory::DevicePrivate { size };
        let pagemap = KBox::pin_init(
            Pagemap::new(owner, memory, kernel::c_str!("rust_hmm_gpu"), vram),
            GFP_KERNEL,
        )?;
        let lru = Lru::new(pagemap.npages())?;
        Ok(try_pin_init!(Self {
            pagemap,
            lru <- kernel::new_mutex!(lru),
            stats,
        }? Error))
    }

    /// Free pages of device memory.
    pub(crate) fn free(&self) -> usize {
        self.pagemap
            .npages()
            .saturating_sub(self.pagemap.allocated())
    }

    /// Evicts the oldest resident pages until `npages` pages are free (as far as it can).
    ///
    /// # Context
    ///
    /// Sleeps; holds no page lock of a migration (memory is made room for before one).
    pub(crate) fn make_room(&self, npages: usize, evict_pages: usize) {
        let npages = npages.min(self.pagemap.npages());
        // Bounded: each step evicts a record or a range of the clock.
        let mut steps = 0;
        while self.free() < npages && steps < 2 * self.pagemap.npages() / evict_pages.max(1) + 2 {
            steps += 1;
            let record = self.lru.lock().pop();
            let moved = match record {
                Some(record) => self.evict_record(&record),
                None => self.evict_clock(evict_pages),
            };
            Stats::add(&self.stats.evictions, 1);
            Stats::add(&self.stats.evicted_pages, moved);
        }
    }

    /// Evicts the pages of a record, by runs of consecutive indices.
    fn evict_record(&self, record: &Resident) -> usize {
        let mut moved = 0;
        let mut run: Option<(usize, usize)> = None;
        for &index in record.indices.iter() {
            let index = index as usize;
            run = match run {
                Some((first, count)) if first + count == index => Some((first, count + 1)),
                Some((first, count)) => {
                    moved += self.pagemap.evict_range(first, count).unwrap_or(0);
                    Some((index, 1))
                }
                None => Some((index, 1)),
            };
        }
        if let Some((first, count)) = run {
            moved += self.pagemap.evict_range(first, count).unwrap_or(0);
        }
        moved
    }

    /// Evicts the next `count` pages of device memory, round the clock.
    fn evict_clock(&self, count: usize) -> usize {
        let npages = self.pagemap.npages();
        let count = count.clamp(1, npages.max(1));
        let first = {
            let mut lru = self.lru.lock();
            let first = lru.hand % npages.max(1);
            lru.hand = first + count;
            first
        };
        let count = count.min(npages - first);
        self.pagemap.evict_range(first, count).unwrap_or(0)
    }

    /// Fills a migration to the device: a page of device memory for each page of system
    /// memory (or empty) the migration collected (with `writable_only`, each page the process
    /// may write), as long as memory lasts, copied by the copy engine; records what moved.
    pub(crate) fn fill(&self, m: MigrateVma<'_>, writable_only: bool) -> Result {
        let npages = m.npages();
        let mut moving = KVec::with_capacity(npages, GFP_KERNEL)?;
        for entry in m.entries() {
            let src = match entry.source() {
                Source::System(src) if entry.is_writable() || !writable_only => Some(src),
                Source::Empty => None,
                _ => continue,
            };
            let Ok(page) = self.alloc_page() else {
                // Out of device memory: the rest stays in system memory.
                break;
            };
            moving.push((entry, page, src), GFP_KERNEL)?;
        }
        let mut pairs: KVec<CopyPair<'_>> = KVec::with_capacity(moving.len(), GFP_KERNEL)?;
        let mut indices = KVec::with_capacity(moving.len(), GFP_KERNEL)?;
        for (_, page, src) in moving.iter() {
            pairs.push((page.data(), *src), GFP_KERNEL)?;
            let index = page.page().pfn() - self.pagemap.start_pfn();
            indices.push(u32::try_from(index)?, GFP_KERNEL)?;
        }
        self.pagemap.data().copy.copy(&pairs);
        drop(pairs);
        for (entry, page, _) in moving {
            entry.set_device(page);
        }
        if !indices.is_empty() {
            self.lru.lock().push(Resident { indices });
        }
        Ok(())
    }

    fn alloc_page(&self) -> Result<NewDevicePage<'_, Vram>> {
        let page = self.pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?)?;
        self.stats.device_pages.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }
}
