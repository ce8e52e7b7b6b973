// SPDX-License-Identifier: GPL-2.0

//! One open file of a dmirror device and its ioctl dispatch.

use crate::device::DmirrorDevice;
use crate::uapi::*;
use kernel::alloc::flags::__GFP_ZERO;
use kernel::alloc::VVec;
use kernel::cdev;
use kernel::fs::File;
use kernel::hmm::{Mirror, MirrorOps};
use kernel::memremap::Owner;
use kernel::mm::{virt::VmaNew, Mm};
use kernel::page::{Page, PAGE_SIZE};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::uaccess::UserSlice;

/// The most pages one READ or WRITE may name: the C module has no limit and fails its
/// `vmalloc` of the bounce buffer instead; here the buffer is capped at 64 MiB.
pub(crate) const MAX_BOUNCE_PAGES: usize = (64 << 20) / PAGE_SIZE;

/// The bounce buffer an open file keeps between ioctls: C `vmalloc`s and frees one per ioctl,
/// which costs as much as the rest of a READ of one page. 64 pages, C's chunk.
pub(crate) const BOUNCE_CACHE_PAGES: usize = 64;

/// What the mirror of an open file keeps besides its device page table: nothing yet.
pub(crate) struct DmirrorData;

impl MirrorOps for DmirrorData {}

/// The state of one open file: a mirror of the opener's address space on one device.
#[pin_data]
pub(crate) struct Dmirror {
    pub(crate) mdevice: Arc<DmirrorDevice>,
    /// The owner of the device's memory, kept here too: the ioctls that pass it to HMM then
    /// read nothing of the device (C passes its device's address, without reading it).
    owner: Arc<Owner>,
    /// The device page table, following the whole address space of the opener.
    #[pin]
    pub(crate) mirror: Mirror<DmirrorData>,
    /// A bounce buffer of [`BOUNCE_CACHE_PAGES`] kept between ioctls (`bounce::Bounce`).
    #[pin]
    pub(crate) bounce_cache: Mutex<Option<VVec<u8>>>,
}

/// The range an ioctl names, checked: page aligned, not empty, not wrapping around.
pub(crate) struct CheckedRange {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) npages: usize,
}

impl CheckedRange {
    /// Checks `cmd`'s range as the C module does, and more.
    ///
    /// The C module computes `addr + (npages << PAGE_SHIFT)` in wrapping arithmetic, so a huge
    /// `npages` can pass its check; here any overflow is `EINVAL`.
    fn new(cmd: &HmmDmirrorCmd) -> Result<Self> {
        const PAGE_OFFSET_MASK: u64 = PAGE_SIZE as u64 - 1;
        let page_size = PAGE_SIZE as u64;
        if cmd.addr & PAGE_OFFSET_MASK != 0 {
            return Err(EINVAL);
        }
        let len = cmd.npages.checked_mul(page_size).ok_or(EINVAL)?;
        let end = cmd.addr.checked_add(len).ok_or(EINVAL)?;
        if end <= cmd.addr {
            return Err(EINVAL);
        }
        Ok(Self {
            start: usize::try_from(cmd.addr)?,
            end: usize::try_from(end)?,
            npages: usize::try_from(cmd.npages)?,
        })
    }

    /// The address of page `i` of the range; `EINVAL` past its end.
    pub(crate) fn page_addr(&self, i: usize) -> Result<usize> {
        i.checked_mul(PAGE_SIZE)
            .and_then(|offset| self.start.checked_add(offset))
            .filter(|&addr| addr < self.end)
            .ok_or(EINVAL)
    }
}

/// The end of the piece of at most `size` bytes that starts at `addr`, within `[addr, end)`.
///
/// C computes `addr + size` in wrapping arithmetic. When that wraps (the range ends within a
/// piece of the top of the address space, where nothing can be mapped), C's page walk gets an
/// inverted range and fails with `EINVAL`: so does this.
pub(crate) fn chunk_end(addr: usize, end: usize, size: usize) -> Result<usize> {
    Ok(addr.checked_add(size).ok_or(EINVAL)?.min(end))
}

impl Dmirror {
    /// The owner of the device's memory.
    #[inline]
    pub(crate) fn owner(&self) -> &Owner {
        &self.owner
    }

    // Inline into the file operation that calls it: one call per ioctl fewer.
    #[inline]
    fn ioctl(&self, command: u32, arg: usize) -> Result<isize> {
        let (mut reader, mut writer) =
            UserSlice::new(arg, core::mem::size_of::<HmmDmirrorCmd>()).reader_writer();
        let mut cmd: HmmDmirrorCmd = reader.read()?;
        let range = CheckedRange::new(&cmd)?;
        cmd.cpages = 0;
        cmd.faults = 0;

        match command {
            HMM_DMIRROR_READ => self.read(&mut cmd, &range)?,
            HMM_DMIRROR_WRITE => self.write(&mut cmd, &range)?,
            HMM_DMIRROR_SNAPSHOT => self.snapshot(&mut cmd, &range)?,
            HMM_DMIRROR_MIGRATE_TO_DEV => self.migrate_to_dev(&mut cmd, &range)?,
            HMM_DMIRROR_MIGRATE_TO_SYS => self.migrate_to_sys(&mut cmd, &range)?,
            HMM_DMIRROR_EXCLUSIVE => self.exclusive(&mut cmd, &range)?,
            HMM_DMIRROR_CHECK_EXCLUSIVE => self.check_exclusive(&range)?,
            HMM_DMIRROR_RELEASE => self.mdevice.remove_chunks()?,
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
        let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
        let mm = mm.mmget_not_zero().ok_or(EINVAL)?;
        // Mirror the whole address space of the opener, as C does.
        let end = usize::MAX & !(PAGE_SIZE - 1);
        KBox::pin_init(
            try_pin_init!(Dmirror {
                mdevice: mdevice.clone(),
                owner: mdevice.owner.clone(),
                mirror <- Mirror::with_owner(&mm, 0, end, mdevice.owner.clone(), DmirrorData),
                bounce_cache <- kernel::new_mutex!(None),
            }? Error),
            GFP_KERNEL,
        )
    }

    fn ioctl(this: Pin<&Dmirror>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        this.ioctl(cmd, arg)
    }

    /// Maps zeroed system pages, as the C module does (the `mixedmap` test).
    fn mmap(_this: Pin<&Dmirror>, _file: &File, vma: &VmaNew) -> Result {
        let (start, end) = (vma.start(), vma.end());
        let vma = vma.set_mixedmap();
        for addr in (start..end).step_by(PAGE_SIZE) {
            let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
            // The mapping holds its own reference; ours goes with `page`.
            vma.vm_insert_page(addr, &page)?;
        }
        Ok(())
    }
}
