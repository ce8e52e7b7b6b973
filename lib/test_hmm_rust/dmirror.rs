// SPDX-License-Identifier: GPL-2.0

//! One open file of a dmirror device and its ioctls.

use crate::device::DmirrorDevice;
use crate::uapi::*;
use kernel::alloc::flags::__GFP_ZERO;
use kernel::cdev;
use kernel::fs::File;
use kernel::mm::{virt::VmaNew, Mm};
use kernel::page::Page;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::ARef;
use kernel::uaccess::UserSlice;

/// The state of one open file: a mirror of the opener's address space on one device.
pub(crate) struct Dmirror {
    mdevice: Arc<DmirrorDevice>,
    /// The address space of the task that opened the file.
    mm: ARef<Mm>,
}

/// The range an ioctl names, checked: page aligned, not empty, not wrapping around.
struct CheckedRange {
    start: u64,
    end: u64,
}

impl CheckedRange {
    /// Checks `cmd`'s range as the C module does, and more.
    ///
    /// The C module computes `addr + (npages << PAGE_SHIFT)` in wrapping arithmetic, so a huge
    /// `npages` can pass its check; here any overflow is `EINVAL`.
    fn new(cmd: &HmmDmirrorCmd) -> Result<Self> {
        let page_size = PAGE_SIZE as u64;
        if cmd.addr % page_size != 0 {
            return Err(EINVAL);
        }
        let len = cmd.npages.checked_mul(page_size).ok_or(EINVAL)?;
        let end = cmd.addr.checked_add(len).ok_or(EINVAL)?;
        if end <= cmd.addr {
            return Err(EINVAL);
        }
        Ok(Self {
            start: cmd.addr,
            end,
        })
    }
}

impl Dmirror {
    fn ioctl(&self, command: u32, arg: usize) -> Result<isize> {
        let (mut reader, mut writer) =
            UserSlice::new(arg, core::mem::size_of::<HmmDmirrorCmd>()).reader_writer();
        let mut cmd: HmmDmirrorCmd = reader.read()?;
        let range = CheckedRange::new(&cmd)?;
        cmd.cpages = 0;
        cmd.faults = 0;

        match command {
            HMM_DMIRROR_READ
            | HMM_DMIRROR_WRITE
            | HMM_DMIRROR_MIGRATE_TO_DEV
            | HMM_DMIRROR_MIGRATE_TO_SYS
            | HMM_DMIRROR_SNAPSHOT
            | HMM_DMIRROR_EXCLUSIVE
            | HMM_DMIRROR_CHECK_EXCLUSIVE => {
                // Like C, a process that has exited (the mm has no users) gets EINVAL.
                self.mm.with_user(|_mm| ()).ok_or(EINVAL)?;
                pr_debug!(
                    "hmm_dmirror{}: ioctl {:#x} on [{:#x}, {:#x}) is not implemented yet\n",
                    self.mdevice.id,
                    command,
                    range.start,
                    range.end
                );
                return Err(EOPNOTSUPP);
            }
            // This device has no device memory yet, so there is nothing to evict.
            HMM_DMIRROR_RELEASE => {}
            _ => return Err(EINVAL),
        }

        writer.write(&cmd)?;
        Ok(0)
    }
}

#[vtable]
impl cdev::Operations for Dmirror {
    type Data = Arc<DmirrorDevice>;
    type Ptr = Pin<KBox<Dmirror>>;

    fn open(mdevice: &Arc<DmirrorDevice>, _file: &File) -> Result<Pin<KBox<Dmirror>>> {
        // A kernel thread without an address space has nothing to mirror.
        let mm = Mm::current().ok_or(EINVAL)?;
        Ok(KBox::pin(
            Dmirror {
                mdevice: mdevice.clone(),
                mm,
            },
            GFP_KERNEL,
        )?)
    }

    /// Maps zeroed system pages, as the C module does (the `mixedmap` test).
    fn mmap(_this: Pin<&Dmirror>, _file: &File, vma: &VmaNew) -> Result {
        for addr in (vma.start()..vma.end()).step_by(PAGE_SIZE) {
            let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
            // The mapping holds its own reference; ours goes with `page`.
            vma.vm_insert_page(addr, &page)?;
        }
        Ok(())
    }

    fn ioctl(this: Pin<&Dmirror>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        this.ioctl(cmd, arg)
    }
}
