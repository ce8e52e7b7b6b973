// SPDX-License-Identifier: GPL-2.0

//! Device memory: ZONE_DEVICE pagemaps (`struct dev_pagemap`) and their owners.
//!
//! A [`Pagemap`] gives a range of device memory `struct page`s, so that the pages of a process
//! can be migrated into it ([`crate::migrate`]) while the process keeps running:
//!
//! * [`MemoryType::DevicePrivate`] memory cannot be addressed by the CPU. Its physical range
//!   is a free one that the kernel picks (`request_free_mem_region`); where the data of each
//!   page really lives is up to the driver, which keeps it as the page's [`PagemapOps::PageData`].
//!   A CPU access to such a page faults, and the abstraction migrates it back to system
//!   memory, asking the driver to copy it ([`PagemapOps::copy_to_ram`]).
//! * [`MemoryType::DeviceCoherent`] memory is real memory at a physical range the driver
//!   names, which the CPU addresses like RAM; the pagemap claims the range
//!   (`request_mem_region`), so it can be neither RAM nor another device's.
//!
//! The pagemap keeps its own free list of pages. [`Pagemap::alloc_page`] hands out a page for
//! a migration destination ([`NewDevicePage`]); when the last reference to an allocated page
//! goes, the page returns to the free list and its data is dropped. Dropping a pagemap first
//! migrates every allocated page back to system memory (eviction), then unmaps the range.
//!
//! Pages are named by [`DevicePageRef`] (any device page, borrowed) and [`DevicePage`] (a page
//! of a given pagemap type, with its data); a device-private page can never be turned into a
//! [`CpuPage`](crate::mm::highmem::CpuPage).
//!
//! A CPU access to a device-private page migrates it back (`migrate_to_ram`, with the
//! driver's [`PagemapOps::copy_to_ram`]), and [`Pagemap::evict`] moves every page of a
//! pagemap back. The [`Owner`] of the memory names it to HMM and to migrations.
//!
//! C header: [`include/linux/memremap.h`](srctree/include/linux/memremap.h)

#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
mod evict;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
mod free_list;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
mod migrate_to_ram;
mod owner;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
mod page;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
mod pagemap;

#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub(crate) use migrate_to_ram::alloc_ram_copy;
pub use owner::Owner;
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub use page::{DevicePage, DevicePageRef, NewDevicePage};
#[cfg(all(CONFIG_DEVICE_PRIVATE, CONFIG_DEVICE_MIGRATION))]
pub use pagemap::{Memory, MemoryType, PageData, Pagemap, PagemapOps};
