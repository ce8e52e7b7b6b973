// SPDX-License-Identifier: GPL-2.0

//! A device context: an open file, bound to the opener's address space through a mirror.
//! Submissions queue jobs; the device's engine runs them; waits collect their results.

use crate::command::Op;
use crate::device::Gpu;
use crate::uapi::*;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::alloc::{flags::GFP_KERNEL_ACCOUNT, KVVec};
use kernel::cdev;
use kernel::fs::File;
use kernel::hmm::policy::Thrashing;
use kernel::hmm::{Mirror, MirrorOps};
use kernel::mm::Mm;
use kernel::page::PAGE_SIZE;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow, CondVar, CondVarTimeoutResult, Mutex};
use kernel::time::msecs_to_jiffies;
use kernel::uaccess::UserSlice;
use kernel::workqueue::{Work, WorkItem};

/// Blocks whose thrashing a context follows at a time.
const THRASH_SLOTS: usize = 256;

/// The driver's data in a context's mirror: none beyond the device page table.
pub(crate) struct CtxMirror;

impl MirrorOps for CtxMirror {}

/// A job: its commands until the engine takes them, then its results.
struct Job {
    fence: u64,
    ops: Option<KVVec<Op>>,
    results: KVVec<u64>,
    status: i32,
    done: bool,
}

/// The jobs of a context, by slot.
struct Jobs {
    next_fence: u64,
    slots: KVec<Option<Job>>,
    /// The context's engine work is queued or running.
    running: bool,
}

/// What the engine waits for from the fault worker.
pub(crate) struct FaultWait {
    /// Faults raised and not serviced yet.
    pub(crate) pending: usize,
    /// The first fault that could not be serviced since the last raise: its page and error.
    pub(crate) error: Option<(usize, Error)>,
}

/// A device context.
#[pin_data]
pub(crate) struct Context {
    pub(crate) gpu: Arc<Gpu>,
    #[pin]
    pub(crate) mirror: Mirror<CtxMirror>,
    #[pin]
    jobs: Mutex<Jobs>,
    /// Signalled when a job is done or the engine stops.
    #[pin]
    jobs_cv: CondVar,
    #[pin]
    pub(crate) faults: Mutex<FaultWait>,
    /// Signalled when the fault worker serviced faults of this context.
    #[pin]
    pub(crate) faults_cv: CondVar,
    /// The blocks of the address space that thrash (the fault worker's).
    #[pin]
    pub(crate) thrashing: Mutex<Thrashing>,
    #[pin]
    work: Work<Context>,
    /// The file is closed: the engine stops the running job.
    pub(crate) cancelled: AtomicBool,
}

kernel::impl_has_work! {
    impl HasWork<Self> for Context { self.work }
}

impl WorkItem for Context {
    type Pointer = Arc<Context>;

    fn run(this: Arc<Context>) {
        this.run_jobs();
    }
}

impl Context {
    /// Fails unless the caller is of the address space the context is bound to.
    fn check_caller(&self) -> Result {
        let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
        if !core::ptr::eq(mm.as_raw(), self.mirror.mm().as_raw()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// RUST_HMM_GPU_SUBMIT.
    fn submit(this: ArcBorrow<'_, Context>, arg: usize) -> Result<isize> {
        this.check_caller()?;
        let size = core::mem::size_of::<Submit>();
        let (mut reader, mut writer) = UserSlice::new(arg, size).reader_writer();
        let mut submit: Submit = reader.read()?;
        if submit.pad != 0 || submit.ncmds == 0 || submit.ncmds > MAX_CMDS {
            return Err(EINVAL);
        }
        let n = submit.ncmds as usize;
        let len = n * core::mem::size_of::<Cmd>();
        let mut cmds = UserSlice::new(usize::try_from(submit.cmds)?, len).reader();
        // A job's memory is charged to the submitter's memory cgroup: a process that queues
        // the most jobs on many files pays for them.
        let mut ops = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..n {
            let cmd: Cmd = cmds.read()?;
            ops.push(Op::parse(&cmd)?, GFP_KERNEL_ACCOUNT)?;
        }
        let results = KVVec::from_elem(0u64, n, GFP_KERNEL_ACCOUNT)?;
        let mut jobs = this.jobs.lock();
        let fence = jobs.next_fence;
        let slot = jobs
            .slots
            .iter_mut()
            .find(|slot| slot.is_none())
            .ok_or(EBUSY)?;
        // The fence goes out before the job is queued: a job nobody can wait for is never
        // queued.
        submit.fence = fence;
        writer.write(&submit)?;
        *slot = Some(Job {
            fence,
            ops: Some(ops),
            results,
            status: 0,
            done: false,
        });
        jobs.next_fence += 1;
        if !jobs.running {
            jobs.running = true;
            let this: Arc<Context> = this.into();
            let _ = this.gpu.engine.enqueue(this.clone());
        }
        Ok(0)
    }

    /// RUST_HMM_GPU_WAIT.
    fn wait(&self, arg: usize) -> Result<isize> {
        self.check_caller()?;
        let size = core::mem::size_of::<Wait>();
        let (mut reader, mut writer) = UserSlice::new(arg, size).reader_writer();
        let mut wait: Wait = reader.read()?;
        let mut jobs = self.jobs.lock();
        if wait.fence == 0 || wait.fence >= jobs.next_fence {
            return Err(EINVAL);
        }
        let forever = wait.timeout_ms == 0;
        let ms = u32::try_from(wait.timeout_ms).unwrap_or(u32::MAX);
        let mut left = msecs_to_jiffies(ms);
        loop {
            let job = jobs
                .slots
                .iter()
                .flatten()
                .find(|job| job.fence == wait.fence)
                .ok_or(ENOENT)?;
            if job.done {
                break;
            }
            if forever {
                if self.jobs_cv.wait_interruptible(&mut jobs) {
                    return Err(EINTR);
                }
                continue;
            }
            match self.jobs_cv.wait_interruptible_timeout(&mut jobs, left) {
                CondVarTimeoutResult::Woken { jiffies } => left = jiffies,
                CondVarTimeoutResult::Timeout => return Err(ETIMEDOUT),
                CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            }
        }
        let slot = jobs
            .slots
            .iter_mut()
            .find(|slot| slot.as_ref().is_some_and(|job| job.fence == wait.fence))
            .ok_or(ENOENT)?;
        let job = slot.as_ref().ok_or(ENOENT)?;
        // The results go out before the job is forgotten: a wait that cannot write them can
        // be made again.
        let n = job.results.len().min(wait.nresults as usize);
        if n > 0 {
            let mut out = UserSlice::new(usize::try_from(wait.results)?, n * 8).writer();
            for result in job.results.iter().take(n) {
                out.write(result)?;
            }
        }
        wait.status = job.status;
        writer.write(&wait)?;
        *slot = None;
        Ok(0)
    }

    /// The engine: runs the queued jobs in fence order, until none is left.
    fn run_jobs(self: &Arc<Self>) {
        loop {
            let next = {
                let mut jobs = self.jobs.lock();
                let job = jobs
                    .slots
                    .iter_mut()
                    .flatten()
                    .filter(|job| job.ops.is_some())
                    .min_by_key(|job| job.fence);
                match job {
                    Some(job) => {
                        let results = core::mem::replace(&mut job.results, KVVec::new());
                        job.ops.take().map(|ops| (job.fence, ops, results))
                    }
                    None => None,
                }
            };
            let Some((fence, ops, mut results)) = next else {
                let mut jobs = self.jobs.lock();
                // A job queued since the look above is seen on the next turn.
                if jobs.slots.iter().flatten().any(|job| job.ops.is_some()) {
                    continue;
                }
                jobs.running = false;
                self.jobs_cv.notify_all();
                return;
            };
            let status = crate::engine::run_job(self, &ops, &mut results);
            let mut jobs = self.jobs.lock();
            if let Some(job) = jobs
                .slots
                .iter_mut()
                .flatten()
                .find(|job| job.fence == fence)
            {
                job.results = results;
                job.status = status;
                job.done = true;
            }
            self.jobs_cv.notify_all();
        }
    }
}

#[vtable]
impl cdev::Operations for Context {
    type Data = Arc<Gpu>;
    type Ptr = Arc<Context>;

    fn open(gpu: &Arc<Gpu>, _file: &File) -> Result<Arc<Context>> {
        let mm = Mm::mmgrab_current().ok_or(EINVAL)?;
        let mm = mm.mmget_not_zero().ok_or(EINVAL)?;
        let mut slots = KVec::with_capacity(MAX_JOBS, GFP_KERNEL)?;
        for _ in 0..MAX_JOBS {
            slots.push(None, GFP_KERNEL)?;
        }
        let jobs = Jobs {
            next_fence: 1,
            slots,
            running: false,
        };
        let end = usize::MAX & !(PAGE_SIZE - 1);
        let owner = gpu.owner.clone();
        let thrashing = Thrashing::new(crate::policy::thrashing(), THRASH_SLOTS)?;
        Arc::pin_init(
            try_pin_init!(Context {
                gpu: gpu.clone(),
                mirror <- Mirror::with_owner(&mm, 0, end, owner, CtxMirror),
                jobs <- kernel::new_mutex!(jobs),
                jobs_cv <- kernel::new_condvar!(),
                faults <- kernel::new_mutex!(FaultWait { pending: 0, error: None }),
                faults_cv <- kernel::new_condvar!(),
                thrashing <- kernel::new_mutex!(thrashing),
                work <- kernel::new_work!("Context::work"),
                cancelled: AtomicBool::new(false),
            }? Error),
            GFP_KERNEL,
        )
    }

    fn release(this: Arc<Context>, _file: &File) {
        // Stop the running job and wait for the engine to let go: the module may unload once
        // the last file is closed.
        this.cancelled.store(true, Ordering::Relaxed);
        let mut jobs = this.jobs.lock();
        while jobs.running {
            this.jobs_cv.wait(&mut jobs);
        }
    }

    fn ioctl(this: ArcBorrow<'_, Context>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            SUBMIT => Context::submit(this, arg),
            WAIT => this.wait(arg),
            _ => Err(ENOTTY),
        }
    }
}
