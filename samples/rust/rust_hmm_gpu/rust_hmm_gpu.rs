// SPDX-License-Identifier: GPL-2.0

//! A GPU-like device on the kernel crate's HMM API.
//!
//! A process opens `/dev/rust_hmm_gpuN` (a device context, bound to its address space through
//! a [`Mirror`](kernel::hmm::Mirror)) and submits command buffers on its own virtual
//! addresses (include/uapi/linux/rust_hmm_gpu.h). The device's engine runs them in a worker,
//! through its device page table; a miss is a device fault, which the engine raises into the
//! device's fault buffer. The fault service worker takes faults in batches, sorts them,
//! removes duplicates, groups them by 2 MiB block, and services them from its own context:
//! it migrates the block around each fault to the device's memory (device-private pages,
//! `vram_mb` of them, evicting the oldest resident pages when full), copies through the
//! device's copy engine (a worker of its own), maps what cannot move where it is, and takes
//! exclusive access for atomics on system pages. A CPU access to a page on the device
//! migrates it back, again through the copy engine.
//!
//! The driver holds no `unsafe` code: the kernel crate's types carry the rules.

use kernel::cdev::{ChrdevRegion, Registration};
use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

mod command;
mod context;
mod copy;
mod device;
mod engine;
mod fault;
mod policy;
mod stats;
mod uapi;
mod vram;

use context::Context;
use device::Gpu;

/// Devices the module creates.
pub(crate) const NDEVICES: usize = 2;

module! {
    type: RustHmmGpu,
    name: "rust_hmm_gpu",
    author: "rust-hmm developers",
    description: "A GPU-like device on the Rust HMM API",
    license: "GPL",
    params: {
        vram_mb: u32 {
            default: 16,
            description: "Device memory of each device, in MiB (1 to 4096).",
        },
        fault_around_order: u32 {
            default: 9,
            description: "A device fault migrates the aligned block of 2^order pages around it (0: the page alone; at most 9).",
        },
        cpu_fault_around_order: u32 {
            default: 9,
            description: "A CPU fault on a device page migrates back the aligned block of 2^order pages around it (0: the page alone; at most 9).",
        },
        thrash_threshold: u32 {
            default: 3,
            description: "A 2 MiB block that moves to the device this many times, each within thrash_lapse_ms of the last, is pinned in system memory (0: never).",
        },
        thrash_lapse_ms: u32 {
            default: 100,
            description: "The longest gap between two moves of a block that counts as thrashing, in ms.",
        },
        pin_ms: u32 {
            default: 1000,
            description: "How long a thrashing block stays pinned in system memory, mapped in place for the device, in ms.",
        },
        migrate_atomics: u32 {
            default: 1,
            description: "An atomic fault migrates its block to the device (1), or makes its page exclusive to the device where it is (0).",
        },
        read_in_place: u32 {
            default: 1,
            description: "A device read of a block that moved to the device before is served in place, in system memory (1), or migrates it again (0). With fault_around_order=9 the whole block moved: what of it is in system memory came back.",
        },
        huge_map: u32 {
            default: 1,
            description: "Where the CPU maps a huge page, the device maps all of it on a fault in place (1), or the faulting page only (0).",
        },
        evict_order: u32 {
            default: 9,
            description: "Eviction without a resident record to follow moves back 2^order pages of device memory per step (at most 9).",
        },
    },
}

struct RustHmmGpu {
    devices: KVec<Pin<KBox<Registration<Context>>>>,
    gpus: KVec<Arc<Gpu>>,
    _region: Arc<ChrdevRegion>,
    _debugfs: Option<Dir>,
}

impl kernel::Module for RustHmmGpu {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mb = module_parameters::vram_mb.value();
        if !(1..=4096).contains(&mb) {
            pr_err!("vram_mb={mb} is outside 1..4096\n");
            return Err(EINVAL);
        }
        let size = (mb as usize) << 20;
        let region = ChrdevRegion::new(NDEVICES as u32, kernel::c_str!("rust_hmm_gpu"))?;
        let mut devices = KVec::with_capacity(NDEVICES, GFP_KERNEL)?;
        let mut gpus = KVec::with_capacity(NDEVICES, GFP_KERNEL)?;
        for id in 0..NDEVICES as u32 {
            let gpu = Arc::pin_init(Gpu::new(id, size)?, GFP_KERNEL)?;
            gpus.push(gpu.clone(), GFP_KERNEL)?;
            let name = CString::try_from_fmt(kernel::fmt!("rust_hmm_gpu{}", id))?;
            let reg = KBox::pin_init(
                Registration::new(&region, id, &name, module, gpu),
                GFP_KERNEL,
            )?;
            devices.push(reg, GFP_KERNEL)?;
        }
        pr_info!("{NDEVICES} devices, {mb} MiB of device memory each\n");
        Ok(Self {
            devices,
            gpus,
            _region: region,
            _debugfs: stats::debugfs().ok(),
        })
    }
}

impl Drop for RustHmmGpu {
    fn drop(&mut self) {
        // No file is open (each pins the module): remove the devices, then wait for the
        // last work of the closed contexts before the memory goes.
        self.devices = KVec::new();
        for gpu in self.gpus.iter() {
            gpu.quiesce();
        }
    }
}
