// SPDX-License-Identifier: GPL-2.0

//! The execution engine: runs a job's commands on the process's virtual addresses through
//! the device page table, faulting (and waiting for the fault worker) where it has no usable
//! entry. Every access to a page happens with the mirror lock held, so the page stays what
//! the table says until the access is done.

use crate::command::Op;
use crate::context::Context;
use crate::fault::{raise_and_wait, storage, usable, Access};
use core::sync::atomic::Ordering;
use kernel::mm::highmem::CpuPage;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::task::cond_resched;

/// Pages a miss faults on at once: the missing pages of the window ahead of it, as the warps
/// of a real device would fault together.
const LOOKAHEAD: usize = 64;
/// Faults on one page before the engine gives up on it (the CPU keeps taking it back).
const MAX_ATTEMPTS: usize = 1000;
/// Faults of an atomic on one page before it asks for the page in place: the CPU's own
/// atomics keep taking it back from the device (exclusive access, or device memory), and
/// the engine's atomics work on a page mapped in place too.
const ATOMIC_TRIES: usize = 4;
/// Bytes the engine moves through its own buffer at a time.
const PIECE: usize = 256;

/// Runs the commands of a job, each result into `results`; returns 0 or the negative errno
/// of the command that failed (the later ones do not run).
pub(crate) fn run_job(ctx: &Arc<Context>, ops: &[Op], results: &mut [u64]) -> i32 {
    for (op, result) in ops.iter().zip(results.iter_mut()) {
        if ctx.cancelled.load(Ordering::Relaxed) {
            return EINTR.to_errno();
        }
        match run(ctx, op) {
            Ok(value) => *result = value,
            Err(e) => return e.to_errno(),
        }
        cond_resched();
    }
    0
}

fn run(ctx: &Arc<Context>, op: &Op) -> Result<u64> {
    match *op {
        Op::Load { addr } => word(ctx, addr, Access::Read, |old| (old, None)),
        Op::Store { addr, value } => word(ctx, addr, Access::Write, |_| (0, Some(value))),
        // The CPU's atomic instructions on the page's memory (system memory, or this device's
        // storage of the page): atomic against the CPU's atomics wherever the page is mapped.
        Op::AtomicAdd { addr, value } => {
            with_page(ctx, addr, addr + 8, Access::Atomic, |page, off| {
                page.fetch_add_u64(off, value)
            })?
        }
        Op::AtomicCas {
            addr,
            compare,
            value,
        } => with_page(ctx, addr, addr + 8, Access::Atomic, |page, off| {
            page.compare_exchange_u64(off, compare, value)
        })?,
        Op::Fill { addr, len, byte } => {
            let buf = [byte; PIECE];
            pieces(addr, len, |a, n| {
                with_page(ctx, a, addr + len, Access::Write, |page, off| {
                    page.write(off, &buf[..n])
                })?
            })?;
            Ok(0)
        }
        Op::Stream {
            addr,
            len,
            stride,
            write,
        } => stream(ctx, addr, len, stride, write),
        Op::Copy { dst, src, len } => {
            copy(ctx, dst, src, len)?;
            Ok(0)
        }
    }
}

/// Calls `f(addr, n)` for the pieces of `[addr, addr + len)`: at most [`PIECE`] bytes, none
/// across a page boundary.
fn pieces(addr: usize, len: usize, mut f: impl FnMut(usize, usize) -> Result) -> Result {
    let end = addr + len;
    let mut a = addr;
    while a < end {
        let n = (end - a).min(PIECE).min(PAGE_SIZE - a % PAGE_SIZE);
        f(a, n)?;
        a += n;
    }
    Ok(())
}

/// Reads the 8 bytes at `addr` and writes back what `op` returns, if anything, in one hold
/// of the mirror lock; returns the first value `op` returns.
fn word(
    ctx: &Arc<Context>,
    addr: usize,
    access: Access,
    op: impl Fn(u64) -> (u64, Option<u64>),
) -> Result<u64> {
    with_page(ctx, addr, addr + 8, access, |page, off| {
        let mut bytes = [0u8; 8];
        page.read(off, &mut bytes)?;
        let (ret, new) = op(u64::from_ne_bytes(bytes));
        if let Some(new) = new {
            page.write(off, &new.to_ne_bytes())?;
        }
        Ok(ret)
    })?
}

/// STREAM: visits `addr`, `addr + stride`, ... below `addr + len`; sums the bytes it reads,
/// or writes `write` to each.
fn stream(
    ctx: &Arc<Context>,
    addr: usize,
    len: usize,
    stride: usize,
    write: Option<u8>,
) -> Result<u64> {
    let end = addr + len;
    let access = if write.is_some() {
        Access::Write
    } else {
        Access::Read
    };
    let mut sum = 0u64;
    let mut visit = addr;
    while visit < end {
        let page_end = ((visit & !(PAGE_SIZE - 1)) + PAGE_SIZE).min(end);
        // The visits in this page: [visit, page_end), every stride bytes.
        let added = with_page(ctx, visit, end, access, |page, _| {
            stream_page(page, visit, page_end, stride, write)
        })??;
        sum = sum.wrapping_add(added);
        // The first visit at or past the page's end.
        let steps = (page_end - visit).div_ceil(stride);
        visit = match steps.checked_mul(stride).and_then(|s| visit.checked_add(s)) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(sum)
}

/// The visits of STREAM in one page, from `visit` (in the page) below `page_end`.
fn stream_page(
    page: &CpuPage<'_>,
    mut visit: usize,
    page_end: usize,
    stride: usize,
    write: Option<u8>,
) -> Result<u64> {
    let off = |a: usize| a % PAGE_SIZE;
    let mut sum = 0u64;
    if let Some(byte) = write {
        if stride == 1 {
            let buf = [byte; PIECE];
            while visit < page_end {
                let n = (page_end - visit).min(PIECE);
                page.write(off(visit), &buf[..n])?;
                visit += n;
            }
        } else {
            // Only the visited bytes: the CPU may be writing the others.
            while visit < page_end {
                page.write(off(visit), &[byte])?;
                visit += stride;
            }
        }
        return Ok(0);
    }
    let mut buf = [0u8; PIECE];
    while visit < page_end {
        // Read a piece from this visit; sum the visits inside it.
        let n = if stride >= PIECE {
            1
        } else {
            (page_end - visit).min(PIECE)
        };
        page.read(off(visit), &mut buf[..n])?;
        for byte in buf[..n].iter().step_by(stride) {
            sum = sum.wrapping_add(u64::from(*byte));
        }
        visit += n.div_ceil(stride) * stride;
    }
    Ok(sum)
}

/// COPY: `memmove(dst, src, len)`, through the engine's buffer.
fn copy(ctx: &Arc<Context>, dst: usize, src: usize, len: usize) -> Result {
    let mut buf = [0u8; PIECE];
    let mut piece = |off: usize, n: usize| -> Result {
        let buf = &mut buf[..n];
        with_page(ctx, src + off, src + len, Access::Read, |page, o| {
            page.read(o, buf)
        })??;
        with_page(ctx, dst + off, dst + len, Access::Write, |page, o| {
            page.write(o, buf)
        })?
    };
    // The length of the piece at `off`, going forward or backward from it.
    let forward = |off: usize| {
        (len - off)
            .min(PIECE)
            .min(PAGE_SIZE - (src + off) % PAGE_SIZE)
            .min(PAGE_SIZE - (dst + off) % PAGE_SIZE)
    };
    let backward = |off: usize| {
        off.min(PIECE)
            .min((src + off - 1) % PAGE_SIZE + 1)
            .min((dst + off - 1) % PAGE_SIZE + 1)
    };
    if dst <= src || dst >= src + len {
        let mut off = 0;
        while off < len {
            let n = forward(off);
            piece(off, n)?;
            off += n;
        }
    } else {
        // The destination overlaps the end of the source: copy from the end.
        let mut off = len;
        while off > 0 {
            let n = backward(off);
            off -= n;
            piece(off, n)?;
        }
    }
    Ok(())
}

/// Runs `f` on the page of `addr` (with the offset of `addr` in it) once the device page
/// table maps it for `access`, with the mirror lock held. Until then, faults on it and on
/// the missing pages ahead of it below `window_end`, and waits for the fault worker.
fn with_page<R>(
    ctx: &Arc<Context>,
    addr: usize,
    window_end: usize,
    access: Access,
    f: impl FnOnce(&CpuPage<'_>, usize) -> R,
) -> Result<R> {
    let page_addr = addr & !(PAGE_SIZE - 1);
    let mut f = Some(f);
    let mut access = access;
    for attempt in 0..MAX_ATTEMPTS {
        if access == Access::Atomic && attempt >= ATOMIC_TRIES {
            access = Access::InPlace;
        }
        if ctx.cancelled.load(Ordering::Relaxed) {
            return Err(EINTR);
        }
        let mut missing = [0usize; LOOKAHEAD];
        let mut nmissing = 0;
        {
            let guard = ctx.mirror.lock();
            let table = guard.table();
            if let Some(page) = table.lookup(page_addr) {
                if usable(&page, access) {
                    if let Some(data) = storage(&ctx.gpu, &page) {
                        if let Some(f) = f.take() {
                            return Ok(f(&data, addr - page_addr));
                        }
                    }
                }
            }
            let mut a = page_addr;
            while nmissing < LOOKAHEAD && a < window_end {
                if a == page_addr || !table.lookup(a).is_some_and(|p| usable(&p, access)) {
                    missing[nmissing] = a;
                    nmissing += 1;
                }
                a = match a.checked_add(PAGE_SIZE) {
                    Some(next) => next,
                    None => break,
                };
            }
        }
        if let Some((page, e)) = raise_and_wait(ctx, &missing[..nmissing], access) {
            if page == page_addr {
                return Err(e);
            }
        }
    }
    Err(EBUSY)
}
