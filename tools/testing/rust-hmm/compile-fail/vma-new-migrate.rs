// expect: E0308
// The VMA of an mmap callback is not in its address space's tree yet: a migration of it would
// walk a VMA the page walk cannot find (a NULL dereference in migrate_vma_collect_hole).

use kernel::memremap::Owner;
use kernel::migrate::{migrate_vma, Select};
use kernel::mm::virt::VmaNew;

fn mmap(vma: &VmaNew, owner: &Owner) -> Result {
    migrate_vma(vma, vma.start(), vma.end(), Select::SYSTEM, owner, |_| ())?;
    Ok(())
}
