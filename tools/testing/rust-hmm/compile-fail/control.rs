// expect: ok
// The control: the uses the other cases get wrong, done right, compile.

use kernel::memremap::{DevicePage, Owner, Pagemap, PagemapOps};
use kernel::migrate::{migrate_vma, Select, Source};
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
        for entry in m.entries() {
            let Source::System(src) = entry.source() else {
                continue;
            };
            let Ok(page) = Page::alloc_page(GFP_KERNEL) else {
                continue;
            };
            if let Ok(page) = pagemap.alloc_page(page) {
                page.data().copy_from(&src);
                entry.set_device(page);
            }
        }
    })?;
    Ok(())
}
