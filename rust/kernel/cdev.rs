// SPDX-License-Identifier: GPL-2.0

//! Character devices: a region of device numbers and the `cdev` + `device` pairs that live in
//! it, with their file operations.
//!
//! A driver allocates a [`ChrdevRegion`] once, then registers one [`Registration`] per minor.
//! Each registration creates `/dev/<name>` (through devtmpfs) and calls the driver's
//! [`Operations`] for every file opened on it. A registration holds a reference to its
//! region, so the device numbers cannot be released while a device still uses them.
//!
//! C header: [`include/linux/cdev.h`](srctree/include/linux/cdev.h)
//!
//! # Examples
//!
//! ```
//! use kernel::cdev::{self, ChrdevRegion, Registration};
//! use kernel::fs::File;
//! use kernel::prelude::*;
//! use kernel::str::CString;
//!
//! struct Counter;
//!
//! #[vtable]
//! impl cdev::Operations for Counter {
//!     type Data = u32;
//!     type Ptr = KBox<u32>;
//!
//!     fn open(data: &u32, _file: &File) -> Result<KBox<u32>> {
//!         Ok(KBox::new(*data, GFP_KERNEL)?)
//!     }
//!
//!     fn ioctl(this: &u32, _file: &File, cmd: u32, _arg: usize) -> Result<isize> {
//!         match cmd {
//!             0 => Ok((*this).try_into()?),
//!             _ => Err(EINVAL),
//!         }
//!     }
//! }
//!
//! # // SAFETY: Doctests are built into the kernel image, which has no module pointer.
//! # static THIS_MODULE: ThisModule = unsafe { ThisModule::from_ptr(core::ptr::null_mut()) };
//! let region = ChrdevRegion::new(2, kernel::c_str!("rust_cdev_doctest"))?;
//! let name = CString::try_from_fmt(kernel::fmt!("rust_cdev_doctest{}", 1))?;
//! let reg = KBox::pin_init(
//!     Registration::<Counter>::new(&region, 1, &name, &THIS_MODULE, 42),
//!     GFP_KERNEL,
//! )?;
//! assert!(core::ptr::eq(&**reg.region(), &*region));
//! assert_eq!(*reg.data(), 42);
//! // The registration keeps the region: dropping the driver's reference first is fine.
//! drop(region);
//! // Dropping the registration removes the device, then the region is released.
//! drop(reg);
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    error::{from_result, to_result, VTABLE_DEFAULT_ERROR},
    ffi::{c_int, c_long, c_uint, c_ulong},
    fs::File,
    mm::virt::VmaNew,
    prelude::*,
    str::CStr,
    sync::{Arc, Completion},
    types::{ForeignOwnable, Opaque},
    ThisModule,
};
use core::{marker::PhantomData, ptr::addr_of};

crate::layout::assert_c_layout!(inode {
    __bindgen_anon_4.i_cdev: RUST_LAYOUT_inode_i_cdev,
});
crate::layout::assert_c_layout!(file_operations {
    size: RUST_LAYOUT_file_operations_SIZE,
    align: RUST_LAYOUT_file_operations_ALIGN,
    owner: RUST_LAYOUT_file_operations_owner,
    llseek: RUST_LAYOUT_file_operations_llseek,
    unlocked_ioctl: RUST_LAYOUT_file_operations_unlocked_ioctl,
    mmap: RUST_LAYOUT_file_operations_mmap,
    open: RUST_LAYOUT_file_operations_open,
    release: RUST_LAYOUT_file_operations_release,
});
crate::layout::assert_c_layout!(cdev {
    size: RUST_LAYOUT_cdev_SIZE,
    align: RUST_LAYOUT_cdev_ALIGN,
    owner: RUST_LAYOUT_cdev_owner,
});
crate::layout::assert_c_layout!(device {
    size: RUST_LAYOUT_device_SIZE,
    align: RUST_LAYOUT_device_ALIGN,
    devt: RUST_LAYOUT_device_devt,
    release: RUST_LAYOUT_device_release,
});

/// The number of bits of a device number that hold the minor (`MINORBITS`).
const MINOR_BITS: u32 = 20;

/// A range of character device numbers with one major and consecutive minors.
///
/// # Invariants
///
/// `base` is the first of `count` device numbers allocated with `alloc_chrdev_region` and not
/// yet released.
pub struct ChrdevRegion {
    base: bindings::dev_t,
    count: u32,
}

impl ChrdevRegion {
    /// Allocates `count` device numbers with a free major, named `name` in `/proc/devices`.
    ///
    /// The region is shared with the [`Registration`]s in it, and released with the last of
    /// them.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `count` is 0 or more than the minors of a major; the errno of
    /// `alloc_chrdev_region` (`EBUSY` when no major is free); `ENOMEM`.
    pub fn new(count: u32, name: &'static CStr) -> Result<Arc<Self>> {
        if count == 0 || count > 1 << MINOR_BITS {
            return Err(EINVAL);
        }
        let mut base: bindings::dev_t = 0;
        // SAFETY: `base` is a valid out pointer and `name` a NUL-terminated string that outlives
        // the region (it is `'static`).
        to_result(unsafe {
            bindings::alloc_chrdev_region(&mut base, 0, count, name.as_char_ptr())
        })?;
        // INVARIANT: The call succeeded, so `count` numbers from `base` are ours. If the
        // allocation of the `Arc` fails, dropping the region releases them.
        Ok(Arc::new(Self { base, count }, GFP_KERNEL)?)
    }

    /// Returns how many minors the region holds.
    #[inline]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Returns the device number of the `index`-th minor of the region.
    fn devt(&self, index: u32) -> Result<bindings::dev_t> {
        if index >= self.count {
            return Err(EINVAL);
        }
        Ok(self.base + index)
    }
}

impl Drop for ChrdevRegion {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the numbers were allocated and are released only here.
        unsafe { bindings::unregister_chrdev_region(self.base, self.count) };
    }
}

/// The file operations of a character device, called for each file opened on it.
///
/// Every open file owns one [`Operations::Ptr`], created by [`Operations::open`] and handed
/// back to [`Operations::release`] when the last reference to the file goes away.
#[vtable]
pub trait Operations: Sized {
    /// The data of one device, shared by all files opened on it.
    type Data: Send + Sync;

    /// The state of one open file.
    type Ptr: ForeignOwnable + Send + Sync;

    /// Called when a file is opened on the device.
    fn open(data: &Self::Data, file: &File) -> Result<Self::Ptr>;

    /// Called when the last reference to the file is dropped.
    fn release(this: Self::Ptr, _file: &File) {
        drop(this);
    }

    /// Handles an `ioctl` on the file: `cmd` and `arg` are the user's.
    ///
    /// Returns the (non-negative) value the system call returns.
    fn ioctl(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _cmd: u32,
        _arg: usize,
    ) -> Result<isize> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps the file into `vma` (`mmap(2)`), with the mmap lock held for writing.
    fn mmap(
        _this: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        _file: &File,
        _vma: &VmaNew,
    ) -> Result {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// One character device: a `cdev` bound to a `struct device` named `/dev/<name>`.
///
/// Registered in [`Registration::new`], removed when dropped. Dropping waits until every file
/// opened on the device has been released, so [`Operations::Data`] outlives all of them.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Operations> {
    data: T::Data,
    #[pin]
    chardev: CharDevice,
    /// The region of the device's number, dropped after the device is removed.
    region: Arc<ChrdevRegion>,
    _t: PhantomData<T>,
}

/// The C objects of a [`Registration`], apart from the driver's data.
///
/// # Invariants
///
/// `cdev` and `dev` were added with `cdev_device_add` and are removed only by the owning
/// [`Registration`]'s drop; `released` is an initialised completion that [`release_device`]
/// completes when the last reference to `dev` goes away.
#[pin_data]
struct CharDevice {
    #[pin]
    released: Completion,
    #[pin]
    dev: Opaque<bindings::device>,
    #[pin]
    cdev: Opaque<bindings::cdev>,
}

// SAFETY: The C objects are used by the C side from any thread and `Registration` only adds
// `T::Data`, which is `Send`.
unsafe impl<T: Operations> Send for Registration<T> {}

// SAFETY: Shared references only reach `T::Data`, which is `Sync`, and the C objects, whose
// state the C side synchronises.
unsafe impl<T: Operations> Sync for Registration<T> {}

impl<T: Operations> Registration<T> {
    /// Registers minor `index` of `region` as `/dev/<name>`, with `data` for its files.
    ///
    /// An open file holds a reference to `module`, so the module cannot go away under it.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `index` is not a minor of `region`; `ENOMEM`; the errno of `cdev_device_add`
    /// (`EEXIST` if the name is taken).
    pub fn new<'a>(
        region: &'a Arc<ChrdevRegion>,
        index: u32,
        name: &'a CStr,
        module: &'static ThisModule,
        data: T::Data,
    ) -> impl PinInit<Self, Error> + 'a
    where
        T: 'a,
    {
        // `data` comes first: the device can be opened as soon as `chardev` is initialised.
        try_pin_init!(Self {
            data,
            chardev <- CharDevice::new(
                region,
                index,
                name,
                module,
                &OperationsVtable::<T>::VTABLE,
            ),
            region: region.clone(),
            _t: PhantomData,
        }? Error)
    }

    /// Returns the data shared by the device's files.
    #[inline]
    pub fn data(&self) -> &T::Data {
        &self.data
    }

    /// Returns the region the device's number belongs to.
    #[inline]
    pub fn region(&self) -> &Arc<ChrdevRegion> {
        &self.region
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        let chardev = &self.chardev;
        // SAFETY: By the type invariant both were added and not yet removed. After this no new
        // file can be opened on the device.
        unsafe { bindings::cdev_device_del(chardev.cdev.get(), chardev.dev.get()) };
        // SAFETY: This drops the reference of `device_initialize`. Open files hold the `cdev`,
        // which holds `dev`, so this waits until all of them have been released.
        unsafe { put_device_and_wait(chardev.dev.get()) };
    }
}

impl CharDevice {
    fn new<'a>(
        region: &'a ChrdevRegion,
        index: u32,
        name: &'a CStr,
        module: &'static ThisModule,
        fops: &'static bindings::file_operations,
    ) -> impl PinInit<Self, Error> + 'a {
        try_pin_init!(Self {
            released <- Completion::new(),
            dev <- Opaque::try_ffi_init(|dev: *mut bindings::device| {
                let devt = region.devt(index)?;
                // SAFETY: `dev` is valid for writes and pinned. `device_initialize` expects a
                // zeroed device and sets up the fields the driver core needs; the ones set
                // after it are ours to choose.
                unsafe {
                    core::ptr::write_bytes(dev, 0, 1);
                    bindings::device_initialize(dev);
                    (*dev).devt = devt;
                    (*dev).release = Some(release_device);
                }
                let format = crate::c_str!("%s").as_char_ptr();
                // SAFETY: The format is `"%s"` and `name` a NUL-terminated string, which
                // `dev_set_name` copies.
                let ret = unsafe { bindings::dev_set_name(dev, format, name.as_char_ptr()) };
                if ret != 0 {
                    // SAFETY: `dev` is the `dev` field of a `CharDevice` whose `released` is
                    // already initialised; this drops the only reference.
                    unsafe { put_device_and_wait(dev) };
                }
                to_result(ret)
            }),
            cdev <- Opaque::try_ffi_init(|cdev: *mut bindings::cdev| {
                // SAFETY: `cdev` is the `cdev` field of a `CharDevice` being initialised (an
                // `Opaque` has the address of its content), whose `dev` field already is.
                let dev = unsafe {
                    let chardev = kernel::container_of!(cdev, CharDevice, cdev);
                    Opaque::raw_get(addr_of!((*chardev).dev))
                };
                // SAFETY: `cdev` is valid for writes and pinned; `fops` is static.
                unsafe {
                    bindings::cdev_init(cdev, fops);
                    (*cdev).owner = module.as_ptr();
                }
                // SAFETY: Both are initialised; once added, the device can be opened.
                let ret = unsafe { bindings::cdev_device_add(cdev, dev) };
                if ret != 0 {
                    // SAFETY: On failure `cdev_device_add` undid what it did; dropping the only
                    // reference to `dev`, set up above, is what remains.
                    unsafe { put_device_and_wait(dev) };
                }
                to_result(ret)
            }),
        }? Error)
    }
}

/// Drops a reference to `dev` and waits until its last reference is gone.
///
/// # Safety
///
/// `dev` is the `dev` field of a [`CharDevice`] whose `released` is initialised, set up with
/// [`release_device`] as release callback, and the caller owns a reference to it.
unsafe fn put_device_and_wait(dev: *mut bindings::device) {
    // SAFETY: `dev` is a field of a `CharDevice` (the caller's guarantee).
    let chardev = unsafe { kernel::container_of!(dev, CharDevice, dev) };
    // SAFETY: The caller owns this reference.
    unsafe { bindings::put_device(dev) };
    // SAFETY: `released` is initialised; `release_device` completes it, and the memory stays
    // valid until we return, since our caller owns it.
    unsafe { (*chardev).released.wait_for_completion() };
}

/// The release callback of a [`CharDevice`]'s `struct device`: its last reference is gone.
///
/// It is not generic, so it lives in the kernel image rather than in a module.
///
/// # Safety
///
/// `dev` is the `dev` field of a [`CharDevice`] whose `released` is initialised.
unsafe extern "C" fn release_device(dev: *mut bindings::device) {
    // SAFETY: `dev` is a field of a `CharDevice` (the caller's guarantee).
    let chardev = unsafe { kernel::container_of!(dev, CharDevice, dev) };
    // SAFETY: `released` is initialised; whoever dropped the last reference waits on it and
    // keeps the memory valid until it returns.
    unsafe { (*chardev).released.complete_all() };
}

/// Builds the C `file_operations` of a [`Registration`] from an [`Operations`] implementation.
struct OperationsVtable<T: Operations>(PhantomData<T>);

impl<T: Operations> OperationsVtable<T> {
    /// # Safety
    ///
    /// Called by the VFS for an inode of a `Registration<T>`'s `cdev`, with a valid `file`.
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: The inode's `cdev` is the `cdev` field of the `CharDevice` of a
        // `Registration<T>`, since only those use this vtable, and it is alive: `chrdev_open`
        // holds a reference to it, and the registration waits for that reference to go away.
        let reg = unsafe {
            let chardev = kernel::container_of!((*inode).__bindgen_anon_4.i_cdev, CharDevice, cdev);
            &*kernel::container_of!(chardev, Registration<T>, chardev)
        };
        // SAFETY: The caller passes a valid file for the duration of the call.
        let file_ref = unsafe { File::from_raw_file(file) };
        match T::open(&reg.data, file_ref) {
            Ok(ptr) => {
                // SAFETY: `file` is valid and its private data is ours to set.
                unsafe { (*file).private_data = ptr.into_foreign().cast_mut() };
                0
            }
            Err(err) => err.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS once per file on which `open` succeeded.
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored a `T::Ptr` in the private data, and this is the last use.
        let ptr = unsafe { T::Ptr::from_foreign((*file).private_data) };
        // SAFETY: The caller passes a valid file for the duration of the call.
        T::release(ptr, unsafe { File::from_raw_file(file) });
        0
    }

    /// # Safety
    ///
    /// Called by the VFS for a file on which `open` succeeded and that is not released yet.
    unsafe extern "C" fn unlocked_ioctl(
        file: *mut bindings::file,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: `open` stored a `T::Ptr` in the private data and `release` has not run, as
        // the caller holds a reference to the file.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // SAFETY: The caller passes a valid file for the duration of the call.
        let file = unsafe { File::from_raw_file(file) };
        from_result(|| {
            let ret = T::ioctl(this, file, cmd, arg)?;
            Ok(ret as c_long)
        })
    }

    /// # Safety
    ///
    /// Called by the VFS's `mmap` for a file on which `open` succeeded, with the mmap lock of
    /// the VMA's address space held for writing.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: `open` stored a `T::Ptr` in the private data and `release` has not run, as
        // the caller holds a reference to the file.
        let this = unsafe { T::Ptr::borrow((*file).private_data) };
        // SAFETY: The caller passes a valid file for the duration of the call.
        let file = unsafe { File::from_raw_file(file) };
        // SAFETY: This is the `mmap` operation: `vma` is the VMA being set up, under the mmap
        // lock held for writing, in an address space with users (the one calling mmap).
        let vma = unsafe { VmaNew::from_raw(vma) };
        match T::mmap(this, file, vma) {
            Ok(()) => 0,
            Err(err) => err.to_errno(),
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::unlocked_ioctl)
        } else {
            None
        },
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        llseek: Some(bindings::default_llseek),
        // SAFETY: All zeros is a valid `file_operations`: every callback is optional.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}
