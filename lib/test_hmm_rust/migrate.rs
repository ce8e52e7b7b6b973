// SPDX-License-Identifier: GPL-2.0

//! HMM_DMIRROR_MIGRATE_TO_DEV and HMM_DMIRROR_MIGRATE_TO_SYS: move a range of the process's
//! memory into the device's memory and back (`dmirror_migrate_to_device`,
//! `dmirror_migrate_to_system`).

use crate::devmem::MemoryType;
use crate::devmem::{new_storage_page, Chunk};
use crate::dmirror::{chunk_end, CheckedRange, Dmirror};
use crate::uapi::*;
use core::cell::Cell;
use kernel::migrate::{migrate_vma, Select, Source, MIGRATE_BATCH_PAGES};
use kernel::mm::{
    range::for_each_piece,
    virt::{flags, VmaRef},
    MmWithUser, MmapReadGuard,
};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

/// The bytes of a batch of [`MIGRATE_BATCH_PAGES`].
const BATCH_SIZE: usize = MIGRATE_BATCH_PAGES * PAGE_SIZE;

impl Dmirror {
    /// Runs `batch` over `[start, end)` in pieces of at most [`MIGRATE_BATCH_PAGES`] that each
    /// lie in one VMA (which it gets), with the mmap read lock held, as C does in pieces of
    /// 64 pages: `EINVAL` for a hole or a VMA that cannot be read, and when the process has
    /// exited.
    pub(crate) fn for_each_batch(
        &self,
        range: &CheckedRange,
        mut batch: impl FnMut(&MmapReadGuard<'_>, &VmaRef, usize, usize) -> Result,
    ) -> Result {
        let mm = self.mirror.mm().mmget_not_zero().ok_or(EINVAL)?;
        let mmap = mm.mmap_read_lock_killable()?;
        let check = |vma: Option<&VmaRef>| match vma {
            Some(vma) if vma.flags() & flags::READ != 0 => Ok(()),
            _ => Err(EINVAL),
        };
        for_each_vma_batch(&mmap, range.start, range.end, check, |vma, start, end| {
            batch(&mmap, vma, start, end)
        })
    }

    /// HMM_DMIRROR_MIGRATE_TO_DEV: migrates the range into device memory, maps what moved in
    /// the device page table, and returns the data read through the device in `ptr`.
    pub(crate) fn migrate_to_dev(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        self.for_each_batch(range, |mmap, vma, start, end| {
            // Maps what moved in the device page table, as the CPU maps it after the
            // migration (a page an munmap or MADV_DONTNEED took meanwhile is not mapped).
            self.mirror
                .migrate_to_device(mmap, vma, start, end, |migration| {
                    let mut chunks = self.mdevice.chunks.lock();
                    for entry in migration.entries() {
                        let src = match entry.source() {
                            Source::Empty => None,
                            Source::System(page) => Some(page),
                            // Not selected: nothing to do.
                            Source::NotMigrating | Source::Device(_) => continue,
                        };
                        // Out of device memory: the page stays (C goes on the same way).
                        let Ok(page) = self.mdevice.alloc_page(&mut chunks) else {
                            continue;
                        };
                        let Some(dst) = new_storage_page(&page) else {
                            continue;
                        };
                        match src {
                            Some(src) => dst.copy_from(&src),
                            None => dst.zero(),
                        }
                        entry.set_device(page);
                    }
                })?;
            Ok(())
        })?;

        // Return the migrated data for verification: what the device page table maps.
        self.read_back(cmd, range)
    }

    /// Migrates the device's pages of `[start, end)` of `vma` (at most [`MIGRATE_BATCH_PAGES`])
    /// back to system memory; returns how many moved.
    fn migrate_batch_to_sys(&self, vma: &VmaRef, start: usize, end: usize) -> Result<usize> {
        let owner = self.owner();
        let select = match self.mdevice.memory {
            MemoryType::DevicePrivate => Select::DEVICE_PRIVATE,
            MemoryType::DeviceCoherent { .. } => Select::DEVICE_COHERENT,
        };
        let ((), migrated) = migrate_vma(vma, start, end, select, owner, |migration| {
            for entry in migration.entries() {
                let Source::Device(page) = entry.source() else {
                    continue;
                };
                let Some(page) = page.pagemap::<Chunk>(owner) else {
                    continue;
                };
                // A page that cannot be copied stays on the device.
                let _ = entry.copy_to_ram(&page);
            }
        })?;
        Ok(migrated.pages)
    }

    /// Migrates the device's pages of `[start, end)` (at most 64 pages) back to system
    /// memory, VMA by VMA.
    pub(crate) fn migrate_range_to_ram(&self, mm: &MmWithUser, start: usize, end: usize) -> Result {
        let mmap = mm.mmap_read_lock_killable()?;
        let check = |vma: Option<&VmaRef>| vma.map(drop).ok_or(EFAULT);
        for_each_vma_batch(&mmap, start, end, check, |vma, start, end| {
            self.migrate_batch_to_sys(vma, start, end).map(drop)
        })
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS: migrates the device's pages of the range back to system
    /// memory; `cpages` counts the pages that moved.
    pub(crate) fn migrate_to_sys(&self, cmd: &mut HmmDmirrorCmd, range: &CheckedRange) -> Result {
        cmd.cpages = 0;
        self.for_each_batch(range, |_, vma, start, end| {
            let pages = self.migrate_batch_to_sys(vma, start, end)?;
            cmd.cpages = cmd.cpages.saturating_add(u64::try_from(pages)?);
            Ok(())
        })
    }
}

/// Calls `batch` on the pieces of `[start, end)` of at most [`MIGRATE_BATCH_PAGES`] that each
/// lie in one VMA, with that VMA: one lookup per piece, as in C. `check` says whether the VMA
/// found at a piece's start (if any) will do, or with which error the walk stops.
///
/// The range may be sized by the user: the walk lets others run between batches, and stops
/// if the task is being killed.
fn for_each_vma_batch<'m>(
    mmap: &'m MmapReadGuard<'_>,
    start: usize,
    end: usize,
    check: impl Fn(Option<&VmaRef>) -> Result,
    mut batch: impl FnMut(&'m VmaRef, usize, usize) -> Result,
) -> Result {
    // The VMA of the piece that `next` cut, for `batch`.
    let cur = Cell::new(None);
    let next = |addr| {
        let vma = mmap.vma_lookup(addr);
        check(vma)?;
        // `check` refuses a hole in both callers; a `None` it let through is one too.
        let vma = vma.ok_or(EFAULT)?;
        cur.set(Some(vma));
        Ok(chunk_end(addr, end, BATCH_SIZE)?.min(vma.end()))
    };
    for_each_piece(start, end, next, |start, end| {
        batch(cur.get().ok_or(EFAULT)?, start, end)
    })
}
