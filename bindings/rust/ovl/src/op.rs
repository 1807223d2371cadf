//! One operation: the state it shares with the port's completion callback,
//! and the futures that submit it and wait for it.
//!
//! The trick, Rust side: each submit hands the library a `ctx` that is a
//! strong reference (`Arc::into_raw`) to the op's shared state. The state
//! holds the result slot, the waker and the owned buffer. The callback
//! stores the result, takes the waker, drops the library's reference and
//! wakes the task. If the future was dropped first, that reference is the
//! last one, so the buffer is freed there and then: never while the kernel
//! may still write it.
//!
//! The fast path: a completion that is already there when the submit
//! returns (a read from the page cache completes inside io_uring_enter) is
//! delivered on this thread: inside the submit itself when the port's
//! futures submit with `ovl_submit_and_poll(..., 0)` (`Builder::inline`,
//! the default), else by the `ovl_poll(port, 0)` the future's poll makes
//! right after a plain submit. The callback finds no waker registered yet, wakes
//! nobody, and the poll returns Ready. So the op may be complete (and the
//! library's reference to it gone) before the code after a submit runs:
//! nothing after a submit assumes the op is still in flight. When other
//! tasks of the port were just woken (they are about to submit too), a new
//! op instead joins the port's queue (submitq.rs) and wakes its own task;
//! whichever future polls first submits the whole queue with one
//! `ovl_submit`. Locks are never held across `ovl_submit*`, `ovl_poll` or a
//! waker.
//!
//! `OpFuture::poll` is a small state machine: see `State` for the states
//! and what holds in each, and one `poll_*` function per state.
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::raw::c_void;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ovl_sys as sys;

use crate::port::lock;
use crate::submitq::SubmitQ;
use crate::{Error, Port};

/// Keeps a handle's owner (and so the fd) alive until every op on it has
/// completed, even if the `File` and the future are gone.
pub(crate) type Keep = Arc<dyn Any + Send + Sync>;

struct Slot {
    /// (result, os_error) once the completion was delivered (or a queued
    /// submit was rejected: then (error, 0)).
    done: Option<(i64, i32)>,
    waker: Option<Waker>,
    /// The callback took `waker` and counted this op in the port's
    /// `woken`; whoever consumes `done` (the future, or its drop) uncounts.
    woken: bool,
}

/// The type-independent head of every op: what the callback touches.
struct Header {
    slot: Mutex<Slot>,
    /// The op id once submitted from the port's queue (0 before), written
    /// by the flush that submitted it.
    id: AtomicU64,
    /// The future was dropped while its request was in a flush's hands:
    /// that flush does not submit it, or cancels it once it has the id.
    dropped: AtomicBool,
    /// Drops the reference the library held (knows the buffer type).
    release: unsafe fn(*const Header),
    _keep: Option<Keep>,
}

/// `#[repr(C)]` so that a pointer to the op is a pointer to its header.
#[repr(C)]
struct Op<B> {
    hdr: Header,
    /// The buffer: accessed by the future before submit and after the
    /// completion was delivered, never while the library owns the op.
    buf: UnsafeCell<Option<B>>,
}

// SAFETY: `buf` is accessed by one party at a time (the future, holding
// &mut to itself, outside the in-flight window; or the last Arc's drop), so
// sharing the op between threads needs only B: Send. The rest is Sync.
unsafe impl<B: Send> Sync for Op<B> {}

/// # Safety
/// `p` must come from `Arc::<Op<B>>::into_raw`, with the same `B`, and
/// that reference must not be used again.
unsafe fn release<B>(p: *const Header) {
    drop(Arc::from_raw(p as *const Op<B>));
}

/// Called by the port callback for one completion of ours.
///
/// # Safety
/// `ctx` must be a reference handed to the library by a successful submit
/// whose completion this is (so it is delivered exactly once).
pub(crate) unsafe fn complete(ctx: *mut c_void, result: i64, os_error: i32, sq: &SubmitQ) {
    let hdr = ctx as *const Header;
    let waker = {
        let mut s = lock(&(*hdr).slot);
        s.done = Some((result, os_error));
        let w = s.waker.take();
        if w.is_some() {
            // Counted under the slot lock, so the future (which uncounts
            // under it) never sees its own wake uncounted.
            s.woken = true;
            sq.woken_add();
        }
        w
    };
    // The library's reference: may free the op (and the buffer) if the
    // future is gone. `hdr` is not used after this.
    ((*hdr).release)(hdr);
    if let Some(w) = waker {
        w.wake();
    }
}

/// Record the id of a queued op that a flush submitted; true if its future
/// was dropped meanwhile (perhaps before it could see the id: the caller
/// cancels the op).
///
/// # Safety
/// `ctx` must be an op reference that is still alive.
pub(crate) unsafe fn set_id(ctx: *mut c_void, id: u64) -> bool {
    let hdr = &*(ctx as *const Header);
    hdr.id.store(id, SeqCst);
    hdr.dropped.load(SeqCst)
}

/// A clone of a queued op's waker, if any.
///
/// # Safety
/// `ctx` must be an op reference that is still alive.
pub(crate) unsafe fn waker_of(ctx: *mut c_void) -> Option<Waker> {
    lock(&(*(ctx as *const Header)).slot).waker.clone()
}

/// Whether the future of a queued op was dropped (not to be submitted).
///
/// # Safety
/// `ctx` must be an op reference that is still alive.
pub(crate) unsafe fn is_dropped(ctx: *mut c_void) -> bool {
    (*(ctx as *const Header)).dropped.load(SeqCst)
}

/// A queued op whose submit was rejected with `code`: store the error as
/// its result and take its waker (to be woken by the caller, outside its
/// locks).
///
/// # Safety
/// `ctx` must be an op reference that is still alive.
pub(crate) unsafe fn fail(ctx: *mut c_void, code: i32) -> Option<Waker> {
    let mut s = lock(&(*(ctx as *const Header)).slot);
    s.done = Some((code as i64, 0));
    s.waker.take()
}

/// Drop an op reference that was handed out as a ctx (queued, never
/// submitted, or rejected).
///
/// # Safety
/// `ctx` must come from a submit's `Arc::into_raw` and not be used again.
pub(crate) unsafe fn release_ctx(ctx: *mut c_void) {
    let hdr = ctx as *const Header;
    ((*hdr).release)(hdr);
}

/// The result, if it is in; then the wake that delivered it (if any) is
/// uncounted: the caller resolves the future with it.
fn consume(sq: &SubmitQ, s: &mut Slot) -> Option<(i64, i32)> {
    let done = s.done;
    if done.is_some() && s.woken {
        s.woken = false;
        sq.woken_sub();
    }
    done
}

/// The op's buffer, handed back.
fn take_buf<B>(op: &Arc<Op<B>>) -> B {
    // SAFETY: called only when the library no longer owns the op (its
    // completion was delivered, or it was never submitted); the callback
    // never touches `buf`, and it is not the last reference while we
    // hold `op`.
    match unsafe { (*op.buf.get()).take() } {
        Some(b) => b,
        None => unreachable!("buffer taken twice"),
    }
}

/// Ops resolved in the poll that submitted them, in a row, on this thread.
/// Such a future never returns Pending, so a task that loops over them
/// would never yield to the others of its executor; after `BUDGET` of them
/// the next op yields once (wakes its task, returns Pending) before it is
/// submitted: on io_uring by joining the port's queue, which also switches
/// tasks that each did op after op alone to submitting together.
const BUDGET: u32 = 64;
thread_local! {
    static STREAK: Cell<u32> = const { Cell::new(0) };
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Read(i64),
    Write(i64),
    Fsync(u32),
}

/// Where an `OpFuture` is. Each state's poll is one function of
/// `OpFuture` (`poll_unsubmitted`, `poll_queued`, `poll_in_flight`); a poll
/// may pass through several states (submitted, then complete at once).
///
/// Invariants of each state:
///
/// - `Unsubmitted(op)`: neither the library nor the port's queue holds a
///   reference to `op`, so the future alone touches its buffer. Nothing is
///   registered in the op's slot (a task that found the library's queue
///   full waits in the port's wait list instead, see submitq.rs).
/// - `Queued(op)`: the request was put in the port's queue, which owns one
///   reference to `op` as its ctx (plus a guard). It may since have been
///   taken by a flush (perhaps on another thread) and then submitted (the
///   header's `id` is no longer 0 and the library owns that reference),
///   rejected (the slot's `done` holds the error) or put back (queue full).
///   The slot's waker is the task to wake for any of these; `done` may be
///   set already (the completion was delivered before we saw the id).
/// - `InFlight { op, id }`: the library holds one reference to `op` until
///   the completion is delivered; the buffer is not touched until the
///   slot's `done` is set. The slot's waker, if any, is the task to wake.
/// - `Failed(err, buf)`: rejected before an op was made (e.g. an offset
///   out of range); resolves at the first poll, with the buffer.
/// - `Done`: resolved (the buffer was handed back); polling again panics,
///   dropping does nothing.
enum State<B> {
    Unsubmitted(Arc<Op<B>>),
    Queued(Arc<Op<B>>),
    InFlight { op: Arc<Op<B>>, id: u64 },
    Failed(Error, B),
    Done,
}

/// What polling one state did.
enum Step<T> {
    /// What `poll` returns.
    Out(Poll<T>),
    /// The state changed: poll the new one. `submitted`: by this poll (if
    /// the op then resolves at once, that counts against `BUDGET`).
    Next { submitted: bool },
}

/// The future of one read or write: resolves to the byte count (or the
/// error) **and the buffer**, which is yours again.
///
/// The operation is submitted when the future is first polled — or, when
/// other tasks of the same port were just woken and are about to submit
/// theirs, queued at that poll and submitted together with theirs (one
/// `ovl_submit`) by the first of them to poll, at the latest by this
/// future's next poll (it wakes its own task at once). Dropping a queued
/// future just takes its request out of the queue. Dropping the future
/// once submitted, before it resolves, cancels the operation
/// (`ovl_cancel`); its buffer then stays inside the operation until the
/// completion arrives and is freed there. Works under any executor.
///
/// On an io_uring port with a completion thread, the poll that submits also
/// delivers the completions that are already there on the calling thread
/// (see [`Port::inline_delivery`](crate::Port::inline_delivery)), so a
/// page-cache read usually resolves at once, with no cross-thread wake-up.
/// The port queue is used on io_uring ports only.
///
/// ```
/// # let path = std::env::temp_dir().join(format!("ovl-doc-op-{}", std::process::id()));
/// # std::fs::write(&path, b"0123456789").unwrap();
/// let port = ovl::Port::new()?;
/// let file = ovl::File::open(&port, &path)?;
/// let (res, buf) = ovl::block_on(file.read_at(vec![0u8; 4], 3));
/// assert_eq!(res?, 4);
/// assert_eq!(&buf, b"3456");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct OpFuture<B: Send + 'static> {
    port: Port,
    fd: sys::ovl_fd,
    kind: Kind,
    prep: fn(&mut B) -> (*mut u8, usize),
    state: State<B>,
}

// The buffer is never pinned (it lives behind an Arc or is moved out
// whole), so the future can be Unpin whatever B is.
impl<B: Send + 'static> Unpin for OpFuture<B> {}

impl<B: Send + 'static> OpFuture<B> {
    pub(crate) fn new(
        port: Port,
        fd: sys::ovl_fd,
        keep: Option<Keep>,
        kind: Kind,
        buf: B,
        prep: fn(&mut B) -> (*mut u8, usize),
    ) -> OpFuture<B> {
        let op = Arc::new(Op {
            hdr: Header {
                slot: Mutex::new(Slot {
                    done: None,
                    waker: None,
                    woken: false,
                }),
                id: AtomicU64::new(0),
                dropped: AtomicBool::new(false),
                release: release::<B>,
                _keep: keep,
            },
            buf: UnsafeCell::new(Some(buf)),
        });
        OpFuture {
            port,
            fd,
            kind,
            prep,
            state: State::Unsubmitted(op),
        }
    }

    pub(crate) fn failed(port: Port, kind: Kind, err: Error, buf: B) -> OpFuture<B> {
        OpFuture {
            port,
            fd: 0,
            kind,
            prep: |_| (std::ptr::null_mut(), 0),
            state: State::Failed(err, buf),
        }
    }

    /// The op id, once submitted and until it resolves (for `ovl_cancel` or
    /// logs); `None` before the first poll (and while it waits in the
    /// port's queue).
    pub fn id(&self) -> Option<u64> {
        match self.state {
            State::InFlight { id, .. } => Some(id),
            State::Queued(ref op) => Some(op.hdr.id.load(SeqCst)).filter(|&id| id != 0),
            _ => None,
        }
    }

    /// `Unsubmitted` → `Queued`: put the op in the port's queue (see
    /// `SubmitQ::queue`), with `cx`'s waker in its slot for a completion
    /// delivered by another thread after someone else's flush.
    fn enqueue(&mut self, cx: &Context<'_>) {
        let op = match std::mem::replace(&mut self.state, State::Done) {
            State::Unsubmitted(op) => op,
            _ => unreachable!("enqueue in a state other than Unsubmitted"),
        };
        // SAFETY: the library holds no reference to this op yet, so we are
        // the only party touching the buffer.
        let (ptr, len) = match unsafe { (*op.buf.get()).as_mut() } {
            Some(b) => (self.prep)(b),
            None => unreachable!("buffer missing before submit"),
        };
        let req = self.request(ptr, len, Arc::into_raw(op.clone()) as *mut c_void);
        lock(&op.hdr.slot).waker = Some(cx.waker().clone());
        self.port.submitq().enqueue(req, op.clone());
        self.state = State::Queued(op);
    }

    /// The op's result is in: hand back the buffer.
    fn finish(&mut self, (res, os_error): (i64, i32)) -> (io::Result<usize>, B) {
        let op = match std::mem::replace(&mut self.state, State::Done) {
            State::InFlight { op, .. } | State::Queued(op) => op,
            _ => unreachable!(),
        };
        let buf = take_buf(&op);
        let res = if res >= 0 {
            Ok(res as usize)
        } else {
            Err(Error::new(res as i32, os_error).into())
        };
        (res, buf)
    }

    /// This op as a request of `ovl_submit`, on buffer `ptr`/`len`, with
    /// `ctx`.
    fn request(&self, ptr: *mut u8, len: usize, ctx: *mut c_void) -> sys::ovl_request {
        let (op, flags, offset) = match self.kind {
            Kind::Read(off) => (sys::OVL_OP_READ, 0, off),
            Kind::Write(off) => (sys::OVL_OP_WRITE, 0, off),
            Kind::Fsync(flags) => (sys::OVL_OP_FSYNC, flags, 0),
        };
        sys::ovl_request {
            op,
            flags,
            fd: self.fd,
            buf: ptr as *mut c_void,
            len: len as u64,
            offset,
            ctx,
            id: 0,
            timeout_ns: 0,
        }
    }

    /// The one-op submit of this op: its code and the op id. Through
    /// `ovl_submit_and_poll(..., 0)` when the port's submits deliver (the
    /// callback may then run inside it, on this thread, and find this op
    /// complete), else the plain call of the op's kind.
    ///
    /// # Safety
    /// `ptr`/`len` must describe the op's buffer, which stays put and
    /// untouched until the completion if the call succeeds; `ctx` is then
    /// the library's reference to the op.
    unsafe fn submit_call(&self, ptr: *mut u8, len: usize, ctx: *mut c_void) -> (i32, u64) {
        let raw = self.port.as_raw();
        if self.port.caps().submit_delivers {
            let mut req = [self.request(ptr, len, ctx)];
            let (rc, _) = crate::submitq::submit_reqs(raw, true, &mut req);
            return (rc, req[0].id);
        }
        let mut id = 0u64;
        let rc = match self.kind {
            Kind::Read(off) => {
                sys::ovl_submit_read(raw, self.fd, ptr as *mut c_void, len, off, ctx, &mut id)
            }
            Kind::Write(off) => {
                sys::ovl_submit_write(raw, self.fd, ptr as *const c_void, len, off, ctx, &mut id)
            }
            Kind::Fsync(flags) => sys::ovl_submit_fsync(raw, self.fd, flags, ctx, &mut id),
        };
        (rc, id)
    }

    /// Try to hand the op to the library. Ok(true): in flight; Ok(false):
    /// queue full, the waker is registered.
    fn submit(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let op = match &self.state {
            State::Unsubmitted(op) => op.clone(),
            _ => unreachable!("submit in a state other than Unsubmitted"),
        };
        let sq = self.port.submitq();
        loop {
            let gen = sq.generation();
            // SAFETY: the library holds no reference to this op (never
            // submitted, or the last submit failed), so we are the only
            // party touching the buffer.
            let (ptr, len) = match unsafe { (*op.buf.get()).as_mut() } {
                Some(b) => (self.prep)(b),
                None => unreachable!("buffer missing before submit"),
            };
            let ctx = Arc::into_raw(op.clone()) as *mut c_void;
            sq.begin_submit();
            // SAFETY: ptr/len describe the op's buffer, which stays put and
            // untouched until the completion (the library's reference keeps
            // the op alive); ctx is that reference.
            let (rc, id) = unsafe { self.submit_call(ptr, len, ctx) };
            if rc == sys::OVL_OK {
                self.state = State::InFlight { op, id };
                return Ok(true);
            }
            sq.submit_failed();
            // SAFETY: a failed submit produces no completion, so the
            // reference we gave the library comes straight back.
            unsafe { release::<B>(ctx as *const Header) };
            if rc != sys::OVL_EQUEUEFULL {
                return Err(Error::new(rc, 0));
            }
            if !sq.wait_for_room(cx, gen, self.port.queue_depth()) {
                return Ok(false);
            }
        }
    }
}

impl<B: Send + 'static> OpFuture<B> {
    /// `Unsubmitted`: submit the op (→ `InFlight`, with what is ready taken
    /// on this thread), or queue it (→ `Queued`), or yield.
    fn poll_unsubmitted(&mut self, cx: &mut Context<'_>) -> Step<<Self as Future>::Output> {
        let caps = self.port.caps();
        let over_budget = STREAK.with(|s| s.get()) >= BUDGET;
        if over_budget && !caps.uring {
            // Yield before submitting; the next poll submits.
            STREAK.with(|s| s.set(0));
            cx.waker().wake_by_ref();
            return Step::Out(Poll::Pending);
        }
        // Over budget on io_uring, yield through the queue: when several
        // tasks each resolve op after op at once (their completions taken
        // inline, nobody ever woken), this is what lets them meet in one
        // batch. Otherwise queue while other tasks of the port were woken:
        // they submit theirs meanwhile, and the first poll among them (ours
        // at the latest) submits them all.
        if over_budget || (caps.uring && self.port.submitq().should_queue()) {
            STREAK.with(|s| s.set(0));
            self.enqueue(cx);
            cx.waker().wake_by_ref();
            return Step::Out(Poll::Pending);
        }
        match self.submit(cx) {
            Ok(true) => {
                // Take what is ready on this thread; our own completion
                // finds no waker, so no wake-up.
                self.port.poll_inline();
                Step::Next { submitted: true }
            }
            Ok(false) => {
                STREAK.with(|s| s.set(0));
                Step::Out(Poll::Pending)
            }
            Err(e) => match std::mem::replace(&mut self.state, State::Done) {
                State::Unsubmitted(op) => Step::Out(Poll::Ready((Err(e.into()), take_buf(&op)))),
                _ => unreachable!(),
            },
        }
    }

    /// `Queued`: resolve if the result is in, move to `InFlight` once a
    /// flush submitted the op, else flush the queue (ours included).
    fn poll_queued(&mut self, cx: &mut Context<'_>) -> Step<<Self as Future>::Output> {
        let op = match &self.state {
            State::Queued(op) => op,
            _ => unreachable!(),
        };
        let done = consume(self.port.submitq(), &mut lock(&op.hdr.slot));
        if let Some(done) = done {
            // A flush (perhaps on another thread) that is still recording
            // the batch's ids holds its own reference to the op: finishing
            // cannot free it under it.
            return Step::Out(Poll::Ready(self.finish(done)));
        }
        let id = op.hdr.id.load(SeqCst);
        if id != 0 {
            self.state = match std::mem::replace(&mut self.state, State::Done) {
                State::Queued(op) => State::InFlight { op, id },
                _ => unreachable!(),
            };
            return Step::Next { submitted: false };
        }
        self.flush_queue(cx)
    }

    /// `Queued`, not submitted yet: submit the port's queue. Stays
    /// `Queued` (the next `poll_queued` sees the id or the result), or
    /// waits: for another thread's flush, or for room in a full queue.
    fn flush_queue(&mut self, cx: &mut Context<'_>) -> Step<<Self as Future>::Output> {
        let op = match &self.state {
            State::Queued(op) => op,
            _ => unreachable!(),
        };
        let sq = self.port.submitq();
        let gen = sq.generation();
        let (rc, n) = match sq.flush(self.port.as_raw()) {
            Some(r) => r,
            None => {
                // Another thread is flushing, perhaps our request with its
                // own; it submits ours before it ends, and its completion
                // (or rejection) wakes us; if there is no room, it wakes us.
                STREAK.with(|s| s.set(0));
                let mut s = lock(&op.hdr.slot);
                if s.done.is_some() {
                    return Step::Next { submitted: false };
                }
                let old = set_waker(&mut s, cx);
                drop(s);
                drop(old);
                return Step::Out(Poll::Pending);
            }
        };
        if n > 0 {
            self.port.poll_inline();
        }
        if op.hdr.id.load(SeqCst) != 0 || lock(&op.hdr.slot).done.is_some() {
            return Step::Next { submitted: true };
        }
        // Left in the queue: it is full (rc OVL_EQUEUEFULL).
        debug_assert_eq!(rc, sys::OVL_EQUEUEFULL);
        STREAK.with(|s| s.set(0));
        if sq.wait_for_room(cx, gen, self.port.queue_depth()) {
            return Step::Next { submitted: false };
        }
        // The task may have changed since the op was queued: whoever
        // submits (or rejects) it wakes this one.
        let old = set_waker(&mut lock(&op.hdr.slot), cx);
        drop(old);
        Step::Out(Poll::Pending)
    }

    /// `InFlight`: resolve if the completion was delivered, else register
    /// the waker for the callback.
    fn poll_in_flight(
        &mut self,
        cx: &mut Context<'_>,
        submitted_now: bool,
    ) -> Poll<<Self as Future>::Output> {
        let op = match &self.state {
            State::InFlight { op, .. } => op,
            _ => unreachable!(),
        };
        let mut s = lock(&op.hdr.slot);
        if let Some(done) = consume(self.port.submitq(), &mut s) {
            drop(s);
            if submitted_now {
                STREAK.with(|c| c.set(c.get() + 1));
            }
            return Poll::Ready(self.finish(done));
        }
        let old = set_waker(&mut s, cx);
        drop(s);
        drop(old);
        STREAK.with(|c| c.set(0));
        Poll::Pending
    }
}

/// Make `cx`'s waker the one the op's slot wakes (unless it already wakes
/// the same task). Returns the replaced waker, to be dropped by the caller
/// once the slot lock is released (dropping a waker may run anything).
fn set_waker(s: &mut Slot, cx: &Context<'_>) -> Option<Waker> {
    match &s.waker {
        Some(w) if w.will_wake(cx.waker()) => None,
        _ => s.waker.replace(cx.waker().clone()),
    }
}

impl<B: Send + 'static> Future for OpFuture<B> {
    type Output = (io::Result<usize>, B);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Whether this poll submitted the op: if it then resolves at once,
        // that counts against the thread's BUDGET.
        let mut submitted_now = false;
        loop {
            let step = match this.state {
                State::Unsubmitted(_) => this.poll_unsubmitted(cx),
                State::Queued(_) => this.poll_queued(cx),
                State::InFlight { .. } => return this.poll_in_flight(cx, submitted_now),
                State::Failed(..) => match std::mem::replace(&mut this.state, State::Done) {
                    State::Failed(e, buf) => return Poll::Ready((Err(e.into()), buf)),
                    _ => unreachable!(),
                },
                State::Done => panic!("ovl::OpFuture polled after it resolved"),
            };
            match step {
                Step::Out(p) => return p,
                Step::Next { submitted } => submitted_now |= submitted,
            }
        }
    }
}

impl<B: Send + 'static> Drop for OpFuture<B> {
    fn drop(&mut self) {
        let (op, id) = match &self.state {
            State::InFlight { op, id } => (op, *id),
            State::Queued(op) => {
                let ctx = Arc::as_ptr(op) as *mut c_void;
                if let Some(guard) = self.port.submitq().dequeue(ctx) {
                    // Never submitted: the queue's reference comes back.
                    // SAFETY: that reference, not used again.
                    unsafe { release::<B>(ctx as *const Header) };
                    drop(guard);
                    return;
                }
                // A flush took it: submitted (then the id is here, or the
                // flush, seeing the mark, cancels it once it has it), left
                // unsubmitted (the mark keeps it so), or rejected (done).
                op.hdr.dropped.store(true, SeqCst);
                (op, op.hdr.id.load(SeqCst))
            }
            _ => return,
        };
        let (pending, waker) = {
            let mut s = lock(&op.hdr.slot);
            if s.woken {
                s.woken = false;
                self.port.submitq().woken_sub();
            }
            (s.done.is_none(), s.waker.take())
        };
        drop(waker);
        if pending && id != 0 {
            // Its one completion still follows (ECANCELED or the real
            // result); the library's reference keeps the buffer until
            // then. ENOENT (it is being delivered right now) is fine.
            // SAFETY: the port handle is alive (we hold a clone).
            unsafe { sys::ovl_cancel(self.port.as_raw(), id) };
        }
    }
}

impl<B: Send + 'static> fmt::Debug for OpFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unsubmitted(_) => "unsubmitted",
            State::Queued(_) => "queued",
            State::InFlight { .. } => "in flight",
            State::Failed(..) => "failed",
            State::Done => "done",
        };
        f.debug_struct("OpFuture")
            .field("kind", &self.kind)
            .field("state", &state)
            .finish()
    }
}

/// The future of [`File::sync`](crate::File::sync) and
/// [`File::sync_data`](crate::File::sync_data).
///
/// ```
/// # let path = std::env::temp_dir().join(format!("ovl-doc-sync-{}", std::process::id()));
/// let port = ovl::Port::new()?;
/// let file = ovl::File::create(&port, &path)?;
/// let (res, _) = ovl::block_on(file.write_at(b"hello".to_vec(), 0));
/// assert_eq!(res?, 5);
/// ovl::block_on(file.sync())?;
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct SyncFuture(pub(crate) OpFuture<()>);

impl Future for SyncFuture {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0)
            .poll(cx)
            .map(|(r, ())| r.map(|_| ()))
    }
}
