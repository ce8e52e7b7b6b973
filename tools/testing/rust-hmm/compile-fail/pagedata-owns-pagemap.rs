// expect: E0277
// The data of a device page is dropped when the page is freed, under a page-table spinlock:
// if it held the last reference to the chunk that owns the pagemap, the pagemap's teardown
// would sleep there and wait for the page being freed.

use kernel::memremap::{DevicePage, Pagemap, PagemapOps};
use kernel::mm::highmem::CpuPage;
use kernel::sync::Arc;

struct Chunk {
    _pagemap: Option<Pin<KBox<Pagemap<Vram>>>>,
}

struct Vram;

impl PagemapOps for Vram {
    type PageData = Arc<Chunk>;

    fn copy_to_ram(_page: &DevicePage<'_, Self>, _dst: &CpuPage<'_>) -> Result {
        Ok(())
    }
}
