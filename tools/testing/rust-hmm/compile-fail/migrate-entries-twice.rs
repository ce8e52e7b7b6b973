// expect: E0382
// A migration's pages are handed out once: a second pass over them, giving a page a second
// destination, would leave the first one locked and referenced forever.

use kernel::memremap::{DevicePage, Owner, Pagemap, PagemapOps};
use kernel::migrate::{migrate_vma, Select};
use kernel::mm::{highmem::CpuPage, virt::VmaRef};
use kernel::page::Page;

struct Vram;

impl PagemapOps for Vram {
    type PageData = Page;

    fn copy_to_ram(page: &DevicePage<'_, Self>, dst: &CpuPage<'_>) -> Result {
        dst.copy_from(&page.data());
        Ok(())
    }
}

fn to_device(vma: &VmaRef, owner: &Owner, pagemap: &Pagemap<Vram>) -> Result {
    let (start, end) = (vma.start(), vma.end());
    migrate_vma(vma, start, end, Select::SYSTEM, owner, |m| {
        for _ in 0..2 {
            for entry in m.entries() {
                if let Ok(page) = pagemap.alloc_page(Page::alloc_page(GFP_KERNEL)?) {
                    entry.set_device(page);
                }
            }
        }
        Ok::<(), Error>(())
    })?
    .0
}
