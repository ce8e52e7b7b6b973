// SPDX-License-Identifier: GPL-2.0

//! Device page faults: the engine raises them into the device's fault buffer and waits; the
//! fault service worker takes them in batches, sorts them, drops duplicates, groups them by
//! 2 MiB block, services each group from its own context (migrating to the device, or
//! mapping in place), and replays: the waiting engines look again.

use crate::context::Context;
use crate::context::CtxMirror;
use crate::device::Gpu;
use crate::policy;
use crate::stats::Stats;
use crate::vram::Vram;
use kernel::hmm::policy::now_ns;
use kernel::hmm::{MirrorCommit, MirroredPage, Range, Request};
use kernel::migrate::MigrateVma;
use kernel::mm::highmem::CpuPage;
use kernel::mm::range::PageRange;
use kernel::mm::{virt::flags, MmapReadGuard};
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;

/// Faults the buffer holds.
const FAULT_BUFFER: usize = 1024;
/// Faults one batch of the worker takes at most (NVIDIA UVM's default).
const BATCH: usize = 256;
/// The block faults are grouped by.
const BLOCK: usize = 2 << 20;

/// How the engine accesses a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    Read,
    Write,
    /// An atomic: serviced by making the page exclusive to the device (or by a migration to
    /// the device); where that cannot be (shared memory), by mapping it writable in place,
    /// where the engine's atomics are the CPU's own atomic instructions.
    Atomic,
    /// A write or an atomic that must be serviced in place, without a migration: what an
    /// atomic becomes after the CPU took its page back a few times.
    InPlace,
}

/// Whether the device page table's entry `page` serves `access`. An atomic runs on any
/// entry the device may write (a page of this device, or a system page through the CPU's
/// atomic instructions) or that is exclusive to it.
pub(crate) fn usable(page: &MirroredPage<'_>, access: Access) -> bool {
    match access {
        Access::Read => true,
        Access::Write => page.is_writable(),
        Access::Atomic => page.is_writable() || page.is_exclusive(),
        Access::InPlace => page.is_writable(),
    }
}

/// The memory that holds the data of a mapped page: the page itself, or the device memory's
/// storage of a page of this device.
pub(crate) fn storage<'a>(gpu: &Gpu, page: &MirroredPage<'a>) -> Option<CpuPage<'a>> {
    if let Some(cpu) = page.as_cpu() {
        return Some(cpu);
    }
    let device = page.as_device()?.pagemap::<Vram>(&gpu.owner)?;
    Some(device.data())
}

/// A fault of the engine.
pub(crate) struct Fault {
    ctx: Arc<Context>,
    addr: usize,
    access: Access,
}

/// The device's fault buffer: slots, filled from the front.
pub(crate) struct FaultBuffer {
    slots: KVec<Option<Fault>>,
    len: usize,
}

impl FaultBuffer {
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVec::with_capacity(FAULT_BUFFER, GFP_KERNEL)?;
        for _ in 0..FAULT_BUFFER {
            slots.push(None, GFP_KERNEL)?;
        }
        Ok(Self { slots, len: 0 })
    }

    /// Adds a fault; gives it back when the buffer is full.
    fn push(&mut self, fault: Fault) -> Result<(), Fault> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(fault);
                self.len += 1;
                Ok(())
            }
            None => Err(fault),
        }
    }

    /// Moves up to `max` faults into `out` (which has room for them).
    fn take(&mut self, out: &mut KVec<Fault>, max: usize) {
        while self.len > 0 && out.len() < max {
            self.len -= 1;
            let Some(fault) = self.slots.get_mut(self.len).and_then(Option::take) else {
                continue;
            };
            // `out` has room: no allocation under the lock.
            if out.push(fault, GFP_NOWAIT).is_err() {
                break;
            }
        }
    }
}

/// Raises a fault of `access` on each page of `pages` and waits until all are serviced.
/// Returns the first page whose fault could not be serviced, with the error.
///
/// # Context
///
/// The engine, holding no lock.
pub(crate) fn raise_and_wait(
    ctx: &Arc<Context>,
    pages: &[usize],
    access: Access,
) -> Option<(usize, Error)> {
    let gpu = &ctx.gpu;
    {
        let mut wait = ctx.faults.lock();
        wait.pending += pages.len();
        wait.error = None;
    }
    for &addr in pages {
        let mut fault = Fault {
            ctx: ctx.clone(),
            addr,
            access,
        };
        let mut buffer = gpu.faults.lock();
        loop {
            match buffer.push(fault) {
                Ok(()) => break,
                Err(back) => {
                    // Full: let the worker drain it.
                    fault = back;
                    gpu.kick();
                    gpu.space.wait(&mut buffer);
                }
            }
        }
    }
    Stats::add(&gpu.stats.faults, pages.len());
    gpu.kick();
    let mut wait = ctx.faults.lock();
    while wait.pending > 0 {
        ctx.faults_cv.wait(&mut wait);
    }
    wait.error
}

/// Reports the outcome of `count` faults of `ctx` on `addr`.
fn replay(ctx: &Context, addr: usize, count: usize, result: Result) {
    let mut wait = ctx.faults.lock();
    wait.pending = wait.pending.saturating_sub(count);
    if let Err(e) = result {
        wait.error.get_or_insert((addr, e));
    }
    if wait.pending == 0 {
        ctx.faults_cv.notify_all();
    }
}

/// A fault of a batch after duplicates are merged: its page, the strongest access asked,
/// how many faults it stands for, and the outcome.
struct Unique {
    addr: usize,
    access: Access,
    count: usize,
    result: Result,
}

/// The fault service worker: batches until the buffer is empty.
pub(crate) fn service_faults(gpu: &Arc<Gpu>) {
    loop {
        let mut batch = match KVec::with_capacity(BATCH, GFP_KERNEL) {
            Ok(batch) => batch,
            Err(_) => {
                fail_buffered(gpu);
                return;
            }
        };
        gpu.faults.lock().take(&mut batch, BATCH);
        gpu.space.notify_all();
        if batch.is_empty() {
            return;
        }
        Stats::add(&gpu.stats.batches, 1);
        service_batch(gpu, &mut batch);
    }
}

/// Fails every buffered fault with `ENOMEM`: the worker could not get memory for a batch.
fn fail_buffered(gpu: &Gpu) {
    loop {
        let fault = {
            let mut buffer = gpu.faults.lock();
            if buffer.len == 0 {
                break;
            }
            buffer.len -= 1;
            let len = buffer.len;
            buffer.slots.get_mut(len).and_then(Option::take)
        };
        if let Some(fault) = fault {
            replay(&fault.ctx, fault.addr, 1, Err(ENOMEM));
        }
    }
    gpu.space.notify_all();
}

/// Sorts a batch by context and address, merges duplicates, services each context's 2 MiB
/// blocks and replays every fault.
fn service_batch(gpu: &Arc<Gpu>, batch: &mut KVec<Fault>) {
    batch.sort_unstable_by_key(|f| (&*f.ctx as *const Context as usize, f.addr, f.access));
    let faults = batch.as_slice();
    let mut start = 0;
    while start < faults.len() {
        // The faults of one context and one block: [start, end).
        let ctx = &faults[start].ctx;
        let block = faults[start].addr & !(BLOCK - 1);
        let end = faults[start..]
            .iter()
            .position(|f| !Arc::ptr_eq(&f.ctx, ctx) || f.addr & !(BLOCK - 1) != block)
            .map_or(faults.len(), |n| start + n);
        let group = &faults[start..end];
        let mut unique: KVec<Unique> = KVec::new();
        for fault in group {
            match unique.as_mut_slice().last_mut() {
                Some(u) if u.addr == fault.addr => {
                    u.access = u.access.max(fault.access);
                    u.count += 1;
                    Stats::add(&gpu.stats.duplicates, 1);
                }
                _ => {
                    let u = Unique {
                        addr: fault.addr,
                        access: fault.access,
                        count: 1,
                        result: Ok(()),
                    };
                    if unique.push(u, GFP_KERNEL).is_err() {
                        replay(ctx, fault.addr, 1, Err(ENOMEM));
                    }
                }
            }
        }
        service_block(gpu, ctx, unique.as_mut_slice());
        for u in unique.iter() {
            replay(ctx, u.addr, u.count, u.result);
        }
        start = end;
    }
}

/// Services the faults of one block of one context.
fn service_block(gpu: &Gpu, ctx: &Context, faults: &mut [Unique]) {
    if ctx.cancelled.load(core::sync::atomic::Ordering::Relaxed) {
        faults.iter_mut().for_each(|f| f.result = Err(EINTR));
        return;
    }
    // The address space is pinned only while the faults are serviced.
    let Some(mm) = ctx.mirror.mm().mmget_not_zero() else {
        faults.iter_mut().for_each(|f| f.result = Err(EFAULT));
        return;
    };
    let mmap = mm.mmap_read_lock();
    // A block that thrashes stays in system memory, mapped in place, while it is pinned.
    let block = faults.first().map_or(0, |f| f.addr / BLOCK);
    if ctx.thrashing.lock().is_pinned(block, now_ns()) {
        for fault in faults.iter_mut() {
            if fault.access == Access::Atomic {
                fault.access = Access::InPlace;
            }
        }
    } else {
        migrate_around(gpu, ctx, &mmap, faults);
    }
    for fault in faults.iter_mut() {
        let mapped = {
            let guard = ctx.mirror.lock();
            guard
                .table()
                .lookup(fault.addr)
                .is_some_and(|page| usable(&page, fault.access))
        };
        if !mapped {
            // What the process may not access as asked is a fault of the command.
            fault.result = match map_in_place(gpu, ctx, &mmap, fault.addr, fault.access) {
                Err(e) if e == EPERM || e == EACCES => Err(EFAULT),
                ret => ret,
            };
        }
    }
}

/// Whether a fault migrates its block to the device, rather than mapping its page in place.
fn migrates(ctx: &Context, fault: &Unique) -> bool {
    match fault.access {
        Access::InPlace => false,
        Access::Atomic => policy::migrate_atomics(),
        Access::Write => true,
        // Read-mostly: a block that came back from the device since it moved there (the CPU
        // used it) is read where it is.
        Access::Read => {
            !(policy::read_in_place() && ctx.thrashing.lock().has_moved(fault.addr / BLOCK))
        }
    }
}

/// The pages of the VMA of `addr` as a range.
fn vma_range(mmap: &MmapReadGuard<'_>, addr: usize) -> Option<PageRange> {
    let vma = mmap.vma_lookup(addr)?;
    PageRange::new(vma.start(), vma.end()).ok()
}

/// Migrates the aligned fault-around block of each fault to the device, where the policy
/// says so.
fn migrate_around(gpu: &Gpu, ctx: &Context, mmap: &MmapReadGuard<'_>, faults: &[Unique]) {
    let order = policy::fault_around_order();
    let mut done_to = 0;
    for fault in faults {
        if fault.addr < done_to || !migrates(ctx, fault) {
            continue;
        }
        let (Some(vma), Some(range)) = (mmap.vma_lookup(fault.addr), vma_range(mmap, fault.addr))
        else {
            continue;
        };
        let Ok(around) = range.block_around(fault.addr, order) else {
            continue;
        };
        let (start, end) = (around.start(), around.end());
        done_to = end;
        gpu.memory.make_room(around.npages(), policy::evict_pages());
        // For a write, pages the process may not write (copy-on-write after fork) stay: on
        // the device they would be read-only too, and the write would take them back.
        let writable_only = fault.access != Access::Read;
        let fill = |m: MigrateVma<'_>| gpu.memory.fill(m, writable_only);
        if let Ok((_, moved)) = ctx.mirror.migrate_to_device(mmap, vma, start, end, fill) {
            Stats::add(&gpu.stats.pages_to_device, moved.pages);
            if moved.pages > 0 && ctx.thrashing.lock().moved(start / BLOCK, now_ns()) {
                Stats::add(&gpu.stats.pins, 1);
            }
        }
    }
}

/// Maps the page of `addr` for the device where it is: in system memory (or on this device,
/// read-only), or exclusive to the device for atomics.
fn map_in_place(
    gpu: &Gpu,
    ctx: &Context,
    mmap: &MmapReadGuard<'_>,
    addr: usize,
    access: Access,
) -> Result {
    let end = addr + PAGE_SIZE;
    let shared = mmap
        .vma_lookup(addr)
        .is_some_and(|vma| vma.flags() & flags::SHARED != 0);
    if access == Access::Atomic && !shared {
        // Pages of this device come back to system memory first. The CPU may keep taking
        // the page back meanwhile (its own atomics): then it is mapped writable in place.
        match ctx.mirror.make_exclusive(mmap, addr, end) {
            Err(e) if e == EBUSY => {}
            ret => {
                ret?;
                Stats::add(&gpu.stats.exclusive, 1);
                return Ok(());
            }
        }
    }
    // A read maps the whole fault-around block in place, as a migration would have moved it
    // (a write, only its page: it would break copy-on-write all over the block).
    if access == Access::Read && policy::fault_around_order() > 0 {
        let block = vma_range(mmap, addr)
            .and_then(|r| r.block_around(addr, policy::fault_around_order()).ok());
        if let Some(block) = block.filter(|b| b.npages() > 1) {
            let mut range =
                Range::new(block.start(), block.end(), Request::Read, Some(&gpu.owner))?;
            if let Ok(Ok(())) = ctx.mirror.fault_locked(mmap, &mut range, |c| c.map()) {
                Stats::add(&gpu.stats.remote_maps, block.npages());
                return Ok(());
            }
        }
    }
    let request = match access {
        Access::Read => Request::Read,
        _ => Request::Write,
    };
    // The page, and the order the CPU maps it at.
    let map = |commit: &mut MirrorCommit<'_, CtxMirror>| -> Result<u32> {
        commit.map()?;
        Ok(commit
            .range()
            .iter()
            .next()
            .map_or(0, |(_, pfn)| pfn.map_order()))
    };
    let mut range = Range::new(addr, end, request, Some(&gpu.owner))?;
    let order = match ctx.mirror.fault_locked(mmap, &mut range, map)? {
        // A page of this device that may not be written (shared after fork): back to system
        // memory, where the write fault breaks copy-on-write.
        Err(e) if e == EACCES => {
            let mut range = Range::new(addr, end, request, None)?;
            ctx.mirror.fault_locked(mmap, &mut range, map)??
        }
        ret => ret?,
    };
    Stats::add(&gpu.stats.remote_maps, 1);
    // Where the CPU maps a huge page, the device maps all of it (as far as the VMA goes).
    if order > 0 && policy::huge_map() {
        if let Some(block) = vma_range(mmap, addr).and_then(|r| r.block_around(addr, order).ok()) {
            let mut range = Range::new(block.start(), block.end(), request, Some(&gpu.owner))?;
            if let Ok(Ok(())) = ctx.mirror.fault_locked(mmap, &mut range, |c| c.map()) {
                Stats::add(&gpu.stats.huge_maps, 1);
            }
        }
    }
    Ok(())
}
