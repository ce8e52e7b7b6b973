// expect: E0277
// The data of a device page is reached by several threads at once (two mirrors after fork, a
// read racing a migration back): a `Cell` in it would race from safe code.

use core::cell::Cell;
use kernel::memremap::{DevicePage, PagemapOps};
use kernel::mm::highmem::CpuPage;

struct Vram;

impl PagemapOps for Vram {
    type PageData = KBox<Cell<u64>>;

    fn copy_to_ram(page: &DevicePage<'_, Self>, _dst: &CpuPage<'_>) -> Result {
        page.data().set(page.data().get() + 1);
        Ok(())
    }
}
