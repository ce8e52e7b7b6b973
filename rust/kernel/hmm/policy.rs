// SPDX-License-Identifier: GPL-2.0

//! Generic pieces of a migration policy, for drivers that move pages between system memory
//! and their own: what NVIDIA's UVM driver calls performance heuristics, which no C HMM
//! driver shares.
//!
//! [`Thrashing`] detects blocks of an address space that move back and forth: a device that
//! migrates a block to its memory while the CPU keeps taking it back pays two copies per
//! access. A block that moves more than a threshold of times, each within a lapse of the
//! previous move, is pinned for a while: the driver keeps it where it is (in system memory)
//! and maps it for the device in place, until the pin expires.

use crate::{prelude::*, time::Ktime};

/// The knobs of [`Thrashing`].
#[derive(Clone, Copy, Debug)]
pub struct ThrashConfig {
    /// Moves of a block, each within `lapse_ns` of the previous one, that pin it (0: never).
    pub threshold: u32,
    /// The longest gap between two moves that counts them as thrashing, in nanoseconds.
    pub lapse_ns: i64,
    /// How long a pin lasts, in nanoseconds.
    pub pin_ns: i64,
}

/// What [`Thrashing`] knows of one block.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// The block, plus one (0: the slot is empty).
    key: usize,
    /// The time of the last move (ns).
    last: i64,
    /// Moves in a row, each within the lapse of the previous one.
    count: u32,
    /// Moves since the block took the slot.
    total: u32,
    /// The end of the pin (ns); none if in the past.
    pinned_until: i64,
}

/// Thrashing detection over the blocks of an address space (of a driver's chosen size: 2 MiB
/// for most), in a table of fixed size: a block whose slot another block takes starts over,
/// which only delays its detection.
///
/// # Examples
///
/// ```
/// use kernel::hmm::policy::{ThrashConfig, Thrashing};
/// use kernel::time::Ktime;
///
/// let ms = 1_000_000;
/// let config = ThrashConfig { threshold: 3, lapse_ns: 10 * ms, pin_ns: 100 * ms };
/// let mut thrashing = Thrashing::new(config, 64)?;
/// let t0 = Ktime::ktime_get().to_ns();
///
/// // Block 7 moves three times, 1 ms apart: the third move pins it.
/// assert!(!thrashing.has_moved(7));
/// assert!(!thrashing.moved(7, t0));
/// assert!(thrashing.has_moved(7));
/// assert!(!thrashing.moved(7, t0 + ms));
/// assert!(thrashing.moved(7, t0 + 2 * ms));
/// assert!(thrashing.is_pinned(7, t0 + 50 * ms));
/// // Until the pin expires.
/// assert!(!thrashing.is_pinned(7, t0 + 103 * ms));
///
/// // Block 8 moves three times, 20 ms apart (more than the lapse): not thrashing.
/// for i in 0..3 {
///     assert!(!thrashing.moved(8, t0 + 20 * ms * i));
/// }
/// assert!(!thrashing.is_pinned(8, t0 + 41 * ms));
///
/// // A threshold of 0 turns detection off.
/// let off = ThrashConfig { threshold: 0, ..config };
/// let mut never = Thrashing::new(off, 64)?;
/// for i in 0..10 {
///     assert!(!never.moved(7, t0 + i));
/// }
/// # Ok::<(), Error>(())
/// ```
pub struct Thrashing {
    config: ThrashConfig,
    slots: KVec<Slot>,
}

impl Thrashing {
    /// A detector with `nslots` slots.
    ///
    /// # Errors
    ///
    /// `EINVAL` for no slot; `ENOMEM`.
    pub fn new(config: ThrashConfig, nslots: usize) -> Result<Self> {
        if nslots == 0 {
            return Err(EINVAL);
        }
        Ok(Self {
            config,
            slots: KVec::from_elem(Slot::default(), nslots, GFP_KERNEL)?,
        })
    }

    /// The knobs.
    pub fn config(&self) -> ThrashConfig {
        self.config
    }

    fn slot(&mut self, block: usize) -> Option<&mut Slot> {
        let n = self.slots.len();
        self.slots.get_mut(block.checked_rem(n)?)
    }

    /// Records that `block` moved at `now` (ns, as [`Ktime::to_ns`]); returns whether it is
    /// pinned now, by this move or an earlier one.
    pub fn moved(&mut self, block: usize, now: i64) -> bool {
        let config = self.config;
        let key = block.wrapping_add(1);
        let Some(slot) = self.slot(block) else {
            return false;
        };
        if slot.key != key {
            *slot = Slot {
                key,
                ..Slot::default()
            };
        } else if now.saturating_sub(slot.last) > config.lapse_ns {
            slot.count = 0;
        }
        slot.last = now;
        slot.count = slot.count.saturating_add(1);
        slot.total = slot.total.saturating_add(1);
        if config.threshold != 0 && slot.count >= config.threshold && slot.pinned_until <= now {
            slot.pinned_until = now.saturating_add(config.pin_ns);
            slot.count = 0;
            return true;
        }
        slot.pinned_until > now
    }

    /// Whether `block` moved before (as far as its slot remembers): a block that moves to a
    /// device again has come back in between, so the CPU uses it too.
    pub fn has_moved(&mut self, block: usize) -> bool {
        let key = block.wrapping_add(1);
        self.slot(block)
            .is_some_and(|slot| slot.key == key && slot.total > 0)
    }

    /// Whether `block` is pinned at `now` (ns).
    pub fn is_pinned(&mut self, block: usize, now: i64) -> bool {
        let key = block.wrapping_add(1);
        self.slot(block)
            .is_some_and(|slot| slot.key == key && slot.pinned_until > now)
    }
}

/// The time now, in the nanoseconds [`Thrashing`] takes.
#[inline]
pub fn now_ns() -> i64 {
    Ktime::ktime_get().to_ns()
}
