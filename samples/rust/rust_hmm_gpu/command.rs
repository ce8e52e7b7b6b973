// SPDX-License-Identifier: GPL-2.0

//! A command of a submission, checked: what the engine runs.

use crate::uapi::*;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;

/// A checked device operation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Load {
        addr: usize,
    },
    Store {
        addr: usize,
        value: u64,
    },
    Fill {
        addr: usize,
        len: usize,
        byte: u8,
    },
    Copy {
        dst: usize,
        src: usize,
        len: usize,
    },
    AtomicAdd {
        addr: usize,
        value: u64,
    },
    AtomicCas {
        addr: usize,
        compare: u64,
        value: u64,
    },
    Stream {
        addr: usize,
        len: usize,
        stride: usize,
        write: Option<u8>,
    },
}

/// The start of the last page of the address space, which no range may reach: so the engine
/// and the fault worker can take the end of any page a command touches (no user space maps
/// it anyway).
const TOP: u64 = u64::MAX - (PAGE_SIZE as u64 - 1);

/// `[addr, addr + len)`, which may not wrap, reach the last page or exceed [`MAX_LEN`].
fn range(addr: u64, len: u64) -> Result<(usize, usize)> {
    match addr.checked_add(len) {
        Some(end) if len <= MAX_LEN && end <= TOP => {}
        _ => return Err(EINVAL),
    }
    Ok((usize::try_from(addr)?, usize::try_from(len)?))
}

/// The address of an 8-byte operand, which must be aligned (and is a range of 8 bytes).
fn word(addr: u64) -> Result<usize> {
    if addr % 8 != 0 {
        return Err(EINVAL);
    }
    Ok(range(addr, 8)?.0)
}

/// Fails unless every one of `fields` is 0.
fn unused(fields: &[u64]) -> Result {
    if fields.iter().any(|&f| f != 0) {
        return Err(EINVAL);
    }
    Ok(())
}

impl Op {
    /// Checks a command as the uapi header says.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown op or flag, a field the op does not use that is not 0, a
    /// misaligned 8-byte operand, a range that wraps or is longer than 1 GiB, or a stride out
    /// of `1..=4096`.
    pub(crate) fn parse(cmd: &Cmd) -> Result<Op> {
        let flags_ok = match cmd.op {
            OP_STREAM => cmd.flags & !STREAM_WRITE == 0,
            _ => cmd.flags == 0,
        };
        if !flags_ok {
            return Err(EINVAL);
        }
        let c = cmd;
        Ok(match c.op {
            OP_LOAD => {
                unused(&[c.src, c.len, c.value, c.compare, c.stride])?;
                Op::Load {
                    addr: word(c.addr)?,
                }
            }
            OP_STORE => {
                unused(&[c.src, c.len, c.compare, c.stride])?;
                Op::Store {
                    addr: word(c.addr)?,
                    value: c.value,
                }
            }
            OP_FILL => {
                unused(&[c.src, c.compare, c.stride])?;
                let (addr, len) = range(c.addr, c.len)?;
                Op::Fill {
                    addr,
                    len,
                    byte: c.value as u8,
                }
            }
            OP_COPY => {
                unused(&[c.value, c.compare, c.stride])?;
                let (dst, len) = range(c.addr, c.len)?;
                let (src, _) = range(c.src, c.len)?;
                Op::Copy { dst, src, len }
            }
            OP_ATOMIC_ADD => {
                unused(&[c.src, c.len, c.compare, c.stride])?;
                Op::AtomicAdd {
                    addr: word(c.addr)?,
                    value: c.value,
                }
            }
            OP_ATOMIC_CAS => {
                unused(&[c.src, c.len, c.stride])?;
                Op::AtomicCas {
                    addr: word(c.addr)?,
                    compare: c.compare,
                    value: c.value,
                }
            }
            OP_STREAM => {
                unused(&[c.src, c.compare])?;
                let write = c.flags & STREAM_WRITE != 0;
                if !write {
                    unused(&[c.value])?;
                }
                if c.stride == 0 || c.stride > 4096 {
                    return Err(EINVAL);
                }
                let (addr, len) = range(c.addr, c.len)?;
                Op::Stream {
                    addr,
                    len,
                    stride: usize::try_from(c.stride)?,
                    write: write.then_some(c.value as u8),
                }
            }
            _ => return Err(EINVAL),
        })
    }
}
