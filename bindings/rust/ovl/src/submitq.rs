//! The submit queue: what a port's futures share with its completion
//! callback about submitting. Two things live here:
//!
//! - **Back-pressure.** A submit that finds the library's queue full
//!   (`OVL_EQUEUEFULL`) does not fail: its task waits in `waiters` and is
//!   woken after the next completion batch, then retries.
//! - **Batching** (io_uring ports only: the futures consult the queue only
//!   there, see `Caps::uring` in port.rs). While tasks of the port have
//!   been woken by completions and not yet run (`woken`), or requests are
//!   already queued, a future that would submit its op alone appends the
//!   request to `queue` instead and wakes its own task; the first of those
//!   futures to poll submits the whole queue with one `ovl_submit` (one
//!   `io_uring_enter`). This is what brings many tasks each awaiting one op
//!   close to a C callback that resubmits: without it every op costs a
//!   system call of its own, and the 64-in-flight rows of ovl-bench
//!   (`ovl::block_on`, a manual port, tokio with `Builder::inline(false)`)
//!   lose about half their throughput.
//!
//! Invariants:
//!
//! 1. `inflight` counts the ops this binding handed to the library whose
//!    completion has not been delivered: raised before every submit (by the
//!    batch's length for a flush), lowered by what the library did not
//!    accept and, in the callback, by each delivered completion.
//! 2. `gen` is bumped by the callback after each batch, *before* it drains
//!    `waiters`. A task that read `gen` before a submit that failed with
//!    `OVL_EQUEUEFULL` is either in `waiters` when they are drained or sees
//!    the new `gen` and retries: no lost wake-up (see `wait_for_room`).
//! 3. Every request in `queue` carries as its `ctx` an op reference
//!    (`Arc::into_raw`) that the queue owns, and beside it a guard (another
//!    reference to the same op). `queued == queue.len()` whenever the lock
//!    is free. The queue's order is the submission order.
//! 4. The `queue` lock is held only briefly: never across a call that can
//!    run the callback (`ovl_poll`, `ovl_submit_and_poll`), a waker, or the
//!    drop of an op (which may run a user buffer's `Drop`).
//! 5. One flush at a time (`flushing`). A flush takes the requests out of
//!    the queue and owns their references until each is submitted (then the
//!    library owns it), rejected (the flush fails the op and releases it) or
//!    put back at the front (queue full). The guards keep every op alive
//!    until the flush has written its id, even if the library delivered the
//!    completion and the future finished meanwhile.
//! 6. The id race. A future dropped while its request is queued takes it
//!    back (`dequeue`). If a flush holds it, the future cannot: it marks the
//!    op `dropped` instead, and the flush does not submit a marked op, or,
//!    if it already did, cancels it as soon as it knows the id (`set_id`
//!    answers whether the mark is set).
//! 7. Liveness. Every queued op's future has woken its own task, so it is
//!    polled again and flushes if nobody did before. A flush that leaves
//!    requests queued because the library's queue is full wakes all of
//!    their tasks; each then waits for room as in 2.
//! 8. `woken` counts the ops whose completion woke their task (under the
//!    op's slot lock) and whose future has not yet collected the result or
//!    been dropped (which uncount it, under the same lock).
use std::os::raw::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use ovl_sys as sys;

use crate::port::lock;

/// Another reference to a queued op, held beside its request so that the
/// op outlives the flush that submits it (see `SubmitQ::flush`).
pub(crate) type Guard = Arc<dyn std::any::Any + Send + Sync>;

/// Requests not yet handed to the library (see `SubmitQ::queue`), and a
/// guard for each. Raw pointers inside: each `ctx` is an op reference
/// (`Arc::into_raw`), each `buf` points into that op's buffer.
struct Queue(Vec<sys::ovl_request>, Vec<Guard>);
// SAFETY: the requests only carry pointers to ops, which are Send + Sync
// (see op.rs); they are used by one thread at a time (under the mutex, or
// taken out of it by the one flush running).
unsafe impl Send for Queue {}

impl Drop for Queue {
    fn drop(&mut self) {
        // Requests never submitted (a flush that lost a race with close):
        // the references they hold. The queue dies with its port, after
        // close, so no flush runs any more.
        for r in &self.0 {
            // SAFETY: an op reference owned by the queue.
            unsafe { crate::op::release_ctx(r.ctx) };
        }
    }
}

/// A request a flush took and the library rejected: its op reference (the
/// ctx), the waker to wake and its guard, all let go after the flush.
type Failed = (*mut c_void, Option<Waker>, Guard);

/// A port's submit queue (see the module's invariants).
pub(crate) struct SubmitQ {
    /// Bumped after every callback batch.
    gen: AtomicU64,
    /// Ops this binding counts as in flight: incremented before a submit,
    /// decremented when its completion is delivered (or the submit failed).
    inflight: AtomicUsize,
    /// Tasks whose submit hit OVL_EQUEUEFULL; all woken after each batch.
    waiters: Mutex<Vec<Waker>>,
    /// Ops whose completion woke their task and whose future has not yet
    /// collected it (or been dropped): tasks of this port that are about
    /// to run. While there are any, a new op joins `queue` instead of being
    /// submitted alone, so that they go to the library in one batch.
    woken: AtomicUsize,
    /// Requests waiting to be submitted in one `ovl_submit` (one system
    /// call on io_uring). Each waiting future has woken itself, so it is
    /// polled again and flushes the queue then if nobody did before.
    /// Held only briefly: never across a call that can run the callback
    /// (`ovl_poll`, `ovl_submit_and_poll`), a waker or a drop of an op.
    queue: Mutex<Queue>,
    /// `queue`'s length, readable without the lock.
    queued: AtomicUsize,
    /// A flush is running (one at a time, so the queue's order is the
    /// submission order).
    flushing: AtomicBool,
    /// Flushes submit with `ovl_submit_and_poll(..., 0)` (the port's
    /// `Caps::submit_delivers`), set once before the port is used.
    submit_delivers: AtomicBool,
}

/// Submit `reqs` in one call: `ovl_submit_and_poll(..., 0)` when `deliver`
/// (then the callback may run inside it, on this thread, for what
/// completed inside the submit), else `ovl_submit`. Returns the submit's
/// code (`OVL_OK` once all were accepted: an error of the delivery that
/// follows does not undo them) and how many were accepted; the library
/// wrote their ids into `reqs`. From inside this port's callback (a waker
/// that polls a future) `ovl_submit_and_poll` is refused before it submits
/// anything (`OVL_EDEADLK`), and the plain `ovl_submit` is made instead.
///
/// # Safety
/// Each request must describe a live op (its `ctx` a reference handed to
/// the library if it is accepted) and a buffer that stays put and
/// untouched until its completion; `raw` must be a port handle.
pub(crate) unsafe fn submit_reqs(
    raw: *mut sys::ovl_port,
    deliver: bool,
    reqs: &mut [sys::ovl_request],
) -> (i32, usize) {
    let n = reqs.len();
    let mut done = 0;
    if deliver {
        let rc = sys::ovl_submit_and_poll(raw, reqs.as_mut_ptr(), n, &mut done, 0);
        if done == n {
            return (sys::OVL_OK, n);
        }
        if rc != sys::OVL_EDEADLK {
            return (rc, done);
        }
    }
    let rc = sys::ovl_submit(raw, reqs.as_mut_ptr(), n, &mut done);
    (rc, done)
}

impl SubmitQ {
    pub(crate) fn new() -> SubmitQ {
        SubmitQ {
            gen: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            waiters: Mutex::new(Vec::new()),
            woken: AtomicUsize::new(0),
            queue: Mutex::new(Queue(Vec::new(), Vec::new())),
            queued: AtomicUsize::new(0),
            flushing: AtomicBool::new(false),
            submit_delivers: AtomicBool::new(false),
        }
    }

    pub(crate) fn set_submit_delivers(&self, yes: bool) {
        self.submit_delivers.store(yes, SeqCst);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.gen.load(SeqCst)
    }

    pub(crate) fn begin_submit(&self) {
        self.inflight.fetch_add(1, SeqCst);
    }

    pub(crate) fn submit_failed(&self) {
        self.inflight.fetch_sub(1, SeqCst);
    }

    /// After a submit failed with OVL_EQUEUEFULL: arrange to be woken when
    /// there may be room. Returns true if the caller should retry at once.
    ///
    /// No lost wake-up: `gen_before` was read before the failed submit, and
    /// the callback bumps `gen` *before* it drains the waiter list. Either
    /// our waker is in the list when it drains, or we see the new `gen` and
    /// retry. One gap remains: the library may return an op's queue slot
    /// only after its callback returned. Then our count (already lowered
    /// in the callback) is below the depth while the library still says
    /// full; no further completion may come to wake us, so we yield (wake
    /// ourselves) and retry: a short, bounded spin.
    pub(crate) fn wait_for_room(&self, cx: &mut Context<'_>, gen_before: u64, depth: u32) -> bool {
        if self.inflight.load(SeqCst) < depth as usize {
            cx.waker().wake_by_ref();
            return false;
        }
        {
            let mut w = lock(&self.waiters);
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
        }
        self.gen.load(SeqCst) != gen_before
    }

    pub(crate) fn woken_add(&self) {
        self.woken.fetch_add(1, SeqCst);
    }

    pub(crate) fn woken_sub(&self) {
        self.woken.fetch_sub(1, SeqCst);
    }

    /// Whether a new op should join the queue rather than be submitted on
    /// its own (on a port that batches): other ops are queued (keep their
    /// order) or other tasks of this port were woken and are about to
    /// submit theirs.
    pub(crate) fn should_queue(&self) -> bool {
        self.queued.load(SeqCst) != 0 || self.woken.load(SeqCst) != 0
    }

    /// Append a request (its ctx an op reference that the queue now owns;
    /// `guard` another reference to the same op).
    pub(crate) fn enqueue(&self, req: sys::ovl_request, guard: Guard) {
        let mut q = lock(&self.queue);
        q.0.push(req);
        q.1.push(guard);
        self.queued.store(q.0.len(), SeqCst);
    }

    /// Take the request whose ctx is `ctx` out of the queue, if it is still
    /// there (not taken by a flush): the caller gets the op reference back
    /// (and its guard, to drop outside the lock).
    pub(crate) fn dequeue(&self, ctx: *mut c_void) -> Option<Guard> {
        let mut q = lock(&self.queue);
        match q.0.iter().position(|r| r.ctx == ctx) {
            Some(i) => {
                q.0.remove(i);
                let g = q.1.remove(i);
                self.queued.store(q.0.len(), SeqCst);
                Some(g)
            }
            None => None,
        }
    }

    /// Submit every queued request in one `ovl_submit` (in order). Each
    /// submitted op gets its id; a request the library rejects fails its op
    /// (result = the error); on OVL_EQUEUEFULL the rest go back to the
    /// front of the queue. Returns the last `ovl_submit` code (OVL_OK when
    /// the queue was empty) and how many were submitted, or `None` if
    /// another flush is running: that one submits what is queued before it
    /// ends (or, if the library's queue is full, wakes the tasks of what
    /// it leaves queued), so the caller waits for its op's waker.
    ///
    /// The requests are taken out of the queue and submitted without any
    /// lock held: with `Caps::submit_delivers` the callback runs inside
    /// `ovl_submit_and_poll`, and it wakes tasks and drops ops (user buffers, and
    /// through a waker possibly whole tasks whose futures dequeue theirs).
    /// The library may deliver an op's completion, and its future finish
    /// and let go of the op, before `ovl_submit` returns; the guards keep
    /// every op alive until its id is written. A future dropped meanwhile
    /// marks its op (it found no request to take back and, perhaps, no id
    /// to cancel): a marked op is not submitted, or is cancelled here once
    /// its id is known.
    pub(crate) fn flush(&self, raw: *mut sys::ovl_port) -> Option<(i32, usize)> {
        if self.queued.load(SeqCst) == 0 {
            // Perhaps because a running flush took the requests: ours may
            // be among them, not submitted yet.
            return if self.flushing.load(SeqCst) {
                None
            } else {
                Some((sys::OVL_OK, 0))
            };
        }
        if self.flushing.swap(true, SeqCst) {
            return None;
        }
        let mut rc;
        let mut total = 0;
        loop {
            let (r, n) = self.flush_once(raw);
            rc = r;
            total += n;
            // A flush that found us busy left its request for us: if the
            // queue is not empty now, it may hold such requests, whose
            // futures wait for their wakers.
            self.flushing.store(false, SeqCst);
            if self.queued.load(SeqCst) == 0 {
                break;
            }
            if rc == sys::OVL_EQUEUEFULL {
                // No room: wake them all; each retries and, still finding
                // no room, waits for a completion batch (wait_for_room).
                let wakers: Vec<Waker> = {
                    let q = lock(&self.queue);
                    // SAFETY: each ctx is an op reference owned by the queue.
                    q.0.iter()
                        .filter_map(|r| unsafe { crate::op::waker_of(r.ctx) })
                        .collect()
                };
                for w in wakers {
                    w.wake();
                }
                break;
            }
            if self.flushing.swap(true, SeqCst) {
                break; // someone else took over
            }
        }
        Some((rc, total))
    }

    /// One round of `flush`, by the thread that set `flushing`.
    fn flush_once(&self, raw: *mut sys::ovl_port) -> (i32, usize) {
        let (mut reqs, mut guards, dead) = self.take_queue();
        let mut failed = Vec::new();
        let (rc, submitted) = self.submit_in_order(raw, &mut reqs, &mut guards, &mut failed);
        if submitted < reqs.len() {
            // Queue full: the rest go back, ahead of what was queued since.
            let mut q = lock(&self.queue);
            let q = &mut *q;
            q.0.splice(0..0, reqs.drain(submitted..));
            q.1.splice(0..0, guards.drain(submitted..));
            self.queued.store(q.0.len(), SeqCst);
        }
        // Dropping a guard or a reference may free an op (a user buffer's
        // Drop), and a waker may run anything: after the flush is over.
        drop(guards);
        for ctx in dead {
            // SAFETY: the queue's reference to a dropped future's op.
            unsafe { crate::op::release_ctx(ctx) };
        }
        for (ctx, waker, guard) in failed {
            // SAFETY: the queue's reference, not used again.
            unsafe { crate::op::release_ctx(ctx) };
            drop(guard);
            if let Some(w) = waker {
                w.wake();
            }
        }
        (rc, submitted)
    }

    /// Take every request out of the queue: those to submit (with their
    /// guards), and the references of those whose future was dropped
    /// (marked: not to be submitted), for the caller to release later.
    fn take_queue(&self) -> (Vec<sys::ovl_request>, Vec<Guard>, Vec<*mut c_void>) {
        let (mut reqs, mut guards) = {
            let mut q = lock(&self.queue);
            self.queued.store(0, SeqCst);
            (std::mem::take(&mut q.0), std::mem::take(&mut q.1))
        };
        let mut dead = Vec::new();
        let mut i = 0;
        while i < reqs.len() {
            // SAFETY: each ctx is an op reference owned by `reqs`.
            if unsafe { crate::op::is_dropped(reqs[i].ctx) } {
                dead.push(reqs.remove(i).ctx);
                guards.remove(i);
            } else {
                i += 1;
            }
        }
        (reqs, guards, dead)
    }

    /// Submit `reqs` in order until all are in or the library's queue is
    /// full. A request the library rejects is removed (with its guard), its
    /// op failed with the code, and moved to `failed` (its reference, its
    /// waker to wake, its guard). Returns the last `ovl_submit` code and how
    /// many of `reqs`, from the front, were submitted.
    fn submit_in_order(
        &self,
        raw: *mut sys::ovl_port,
        reqs: &mut Vec<sys::ovl_request>,
        guards: &mut Vec<Guard>,
        failed: &mut Vec<Failed>,
    ) -> (i32, usize) {
        let mut rc = sys::OVL_OK;
        let mut start = 0;
        while start < reqs.len() {
            let (r, done) = self.submit_some(raw, &mut reqs[start..]);
            rc = r;
            start += done;
            if rc == sys::OVL_OK || rc == sys::OVL_EQUEUEFULL || start == reqs.len() {
                break;
            }
            // reqs[start] was rejected (no completion will come for it).
            let r = reqs.remove(start);
            let g = guards.remove(start);
            // SAFETY: r.ctx is an op reference owned by `reqs`.
            failed.push((r.ctx, unsafe { crate::op::fail(r.ctx, rc) }, g));
        }
        (rc, start)
    }

    /// One submit of `reqs` (`submit_reqs`): the code and how many were
    /// accepted, each of those with its id recorded (and cancelled at once
    /// if its future was dropped meanwhile, see invariant 6).
    fn submit_some(&self, raw: *mut sys::ovl_port, reqs: &mut [sys::ovl_request]) -> (i32, usize) {
        let n = reqs.len();
        self.inflight.fetch_add(n, SeqCst);
        let deliver = self.submit_delivers.load(SeqCst);
        // SAFETY: the requests describe live ops and their buffers (each
        // ctx is a reference the caller owns, handed over to the library
        // for those that get submitted).
        let (rc, done) = unsafe { submit_reqs(raw, deliver, reqs) };
        self.inflight.fetch_sub(n - done, SeqCst);
        for r in &reqs[..done] {
            // SAFETY: the reference now belongs to the library, which may
            // already have delivered the completion and dropped it, and the
            // future may have finished or been dropped; the caller's guard
            // still holds the op.
            if unsafe { crate::op::set_id(r.ctx, r.id) } {
                // Its future was dropped before it saw this id.
                // SAFETY: raw is a live port; ENOENT if already done.
                unsafe { sys::ovl_cancel(raw, r.id) };
            }
        }
        (rc, done)
    }

    pub(crate) fn after_batch(&self, ours: usize) {
        self.inflight.fetch_sub(ours, SeqCst);
        self.gen.fetch_add(1, SeqCst);
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.wake();
        }
    }
}
