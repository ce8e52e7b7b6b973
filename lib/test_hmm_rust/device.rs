// SPDX-License-Identifier: GPL-2.0

//! One dmirror device (`/dev/hmm_dmirrorN`): what all files opened on it share.

use crate::devmem::{Chunks, Counters, COUNTERS};
use kernel::memremap::Owner;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

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
