// SPDX-License-Identifier: GPL-2.0

//! HMM test device in Rust: the twin of [`lib/test_hmm.c`](srctree/lib/test_hmm.c).
//!
//! It registers the character region `HMM_DMIRROR` with four minors, `/dev/hmm_dmirror0..3`,
//! with the C module's ioctls (see `uapi`), so that the unmodified
//! `tools/testing/selftests/mm/hmm-tests` runs against it. Minors 0 and 1 use device-private
//! memory; minors 2 and 3 device-coherent memory, and exist only when both `spm_addr_dev0`
//! and `spm_addr_dev1` are given. As in the C module, minor 2 uses `spm_addr_dev1` and minor
//! 3 `spm_addr_dev0`.
//!
//! Every number from an ioctl is the user's: arithmetic on it must not overflow (a panic is a
//! kernel BUG), so the crate denies unchecked arithmetic.

#![deny(clippy::arithmetic_side_effects)]

use devmem::COUNTERS;
use kernel::cdev::{ChrdevRegion, Registration};
use kernel::debugfs::Dir;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

mod access;
mod bounce;
mod device;
mod devmem;
mod dmirror;
mod exclusive;
mod migrate;
mod uapi;

use device::DmirrorDevice;
use devmem::MemoryType;
use dmirror::Dmirror;

/// Minors of the `HMM_DMIRROR` region, as in the C module.
const DMIRROR_NDEVICES: u32 = 4;

module! {
    type: HmmDmirror,
    name: "test_hmm_rust",
    author: "rust-hmm developers",
    description: "HMM test device in Rust, ABI-identical to test_hmm",
    license: "GPL",
    params: {
        spm_addr_dev0: i64 {
            default: 0,
            description: "Specify start address for SPM (special purpose memory) used for device 0. By setting this Coherent device type will be used. Make sure spm_addr_dev1 is set too. Minimum SPM size should be DEVMEM_CHUNK_SIZE.",
        },
        spm_addr_dev1: i64 {
            default: 0,
            description: "Specify start address for SPM (special purpose memory) used for device 1. By setting this Coherent device type will be used. Make sure spm_addr_dev0 is set too. Minimum SPM size should be DEVMEM_CHUNK_SIZE.",
        },
        fault_around_order: u32 {
            default: 0,
            description: "Rust only: a CPU fault on a device-private page migrates back the aligned block of 2^order pages around it (0, the default, as C: the page alone; at most 9).",
        },
    },
}

struct HmmDmirror {
    // Dropped before the region they live in.
    _devices: KVec<Pin<KBox<Registration<Dmirror>>>>,
    _region: Arc<ChrdevRegion>,
    /// The counters of the devices' pages, if debugfs is there.
    _debugfs: Option<Dir>,
}

/// Shows the counters of each device in `/sys/kernel/debug/test_hmm_rust/hmm_dmirrorN/`.
fn debugfs(ndevices: usize) -> Result<Dir> {
    let dir = Dir::new(kernel::c_str!("test_hmm_rust"))?;
    for (id, counters) in COUNTERS.iter().enumerate().take(ndevices) {
        let name = CString::try_from_fmt(kernel::fmt!("hmm_dmirror{}", id))?;
        let sub = dir.subdir(&name)?;
        sub.counter(kernel::c_str!("allocated"), &counters.allocated);
        sub.counter(kernel::c_str!("freed"), &counters.freed);
        sub.counter(kernel::c_str!("in_use"), &counters.in_use);
    }
    Ok(dir)
}

/// The memory of each minor that exists, from the module parameters.
fn memory_types() -> impl Iterator<Item = MemoryType> {
    let spm0 = module_parameters::spm_addr_dev0.value();
    let spm1 = module_parameters::spm_addr_dev1.value();
    // The C module's order: minor 2 takes spm_addr_dev1, minor 3 spm_addr_dev0.
    let types = [
        MemoryType::DevicePrivate,
        MemoryType::DevicePrivate,
        MemoryType::DeviceCoherent {
            spm_addr: spm1 as u64,
        },
        MemoryType::DeviceCoherent {
            spm_addr: spm0 as u64,
        },
    ];
    let count = if spm0 != 0 && spm1 != 0 { 4 } else { 2 };
    types.into_iter().take(count)
}

impl kernel::Module for HmmDmirror {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let region = ChrdevRegion::new(DMIRROR_NDEVICES, kernel::c_str!("HMM_DMIRROR"))?;
        let mut devices = KVec::with_capacity(DMIRROR_NDEVICES as usize, GFP_KERNEL)?;
        for (id, memory) in (0u32..).zip(memory_types()) {
            let mdevice = Arc::pin_init(DmirrorDevice::new(id, memory)?, GFP_KERNEL)?;
            match mdevice.memory {
                MemoryType::DevicePrivate => pr_info!("hmm_dmirror{id}: device-private memory\n"),
                MemoryType::DeviceCoherent { spm_addr } => {
                    pr_info!("hmm_dmirror{id}: device-coherent memory at {spm_addr:#x}\n")
                }
            }
            let name = CString::try_from_fmt(kernel::fmt!("hmm_dmirror{}", id))?;
            let reg = KBox::pin_init(
                Registration::new(&region, id, &name, module, mdevice),
                GFP_KERNEL,
            )?;
            devices.push(reg, GFP_KERNEL)?;
        }
        // Tests read the counters; the device works without them.
        let debugfs = debugfs(devices.len()).ok();
        pr_info!("HMM test module loaded. This is only for testing HMM.\n");
        Ok(Self {
            _devices: devices,
            _region: region,
            _debugfs: debugfs,
        })
    }
}
