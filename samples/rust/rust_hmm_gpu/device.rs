// SPDX-License-Identifier: GPL-2.0

//! A device: its memory, its engines (the execution engine, the fault service worker, the
//! copy engine inside its memory) and its fault buffer.

use crate::fault::FaultBuffer;
use crate::stats::{Stats, STATS};
use crate::vram::DeviceMemory;
use kernel::memremap::Owner;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, CondVar, SpinLock};
use kernel::workqueue::{OwnedQueue, QueueFlags, Work, WorkItem};

/// A GPU-like device.
#[pin_data]
pub(crate) struct Gpu {
    pub(crate) id: u32,
    pub(crate) owner: Arc<Owner>,
    pub(crate) stats: &'static Stats,
    /// Runs the contexts' jobs, several contexts at a time.
    pub(crate) engine: OwnedQueue,
    /// Runs `fault_work`: one fault service worker.
    fault_queue: OwnedQueue,
    /// Faults the engine raised, for the fault worker.
    #[pin]
    pub(crate) faults: SpinLock<FaultBuffer>,
    /// Signalled when the fault worker took faults out of the buffer.
    #[pin]
    pub(crate) space: CondVar,
    #[pin]
    fault_work: Work<Gpu>,
    #[pin]
    pub(crate) memory: DeviceMemory,
}

kernel::impl_has_work! {
    impl HasWork<Self> for Gpu { self.fault_work }
}

impl WorkItem for Gpu {
    type Pointer = Arc<Gpu>;

    fn run(this: Arc<Gpu>) {
        crate::fault::service_faults(&this);
    }
}

impl Gpu {
    /// Device `id`, with `size` bytes of device memory.
    pub(crate) fn new(id: u32, size: usize) -> Result<impl PinInit<Self, Error>> {
        let owner = Arc::pin_init(Owner::new(), GFP_KERNEL)?;
        let stats = STATS.get(usize::try_from(id)?).ok_or(EINVAL)?;
        let name = CString::try_from_fmt(kernel::fmt!("rust_hmm_gpu{}_engine", id))?;
        let engine = OwnedQueue::new(&name, QueueFlags::UNBOUND, 0)?;
        let name = CString::try_from_fmt(kernel::fmt!("rust_hmm_gpu{}_fault", id))?;
        let fault_queue = OwnedQueue::ordered(&name, QueueFlags::NONE)?;
        let memory = DeviceMemory::new(id, owner.clone(), size, stats)?;
        let buffer = FaultBuffer::new()?;
        Ok(try_pin_init!(Self {
            id,
            owner,
            stats,
            engine,
            fault_queue,
            faults <- kernel::new_spinlock!(buffer),
            space <- kernel::new_condvar!(),
            fault_work <- kernel::new_work!("Gpu::fault_work"),
            memory <- memory,
        }? Error))
    }

    /// Wakes the fault worker.
    pub(crate) fn kick(self: &Arc<Self>) {
        // Already queued: it will see the new faults.
        let _ = self.fault_queue.enqueue(self.clone());
    }

    /// Waits for the work of every context and of the fault worker to finish: the module
    /// calls it before it lets the device go, once every file is closed.
    pub(crate) fn quiesce(&self) {
        self.engine.flush();
        self.fault_queue.flush();
        self.engine.flush();
    }
}
