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
use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::raw::c_void;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use ovl_sys as sys;

use crate::port::lock;
use crate::{Error, Port};

/// Keeps a handle's owner (and so the fd) alive until every op on it has
/// completed, even if the `File` and the future are gone.
pub(crate) type Keep = Arc<dyn Any + Send + Sync>;

struct Slot {
    /// (result, os_error) once the completion was delivered.
    done: Option<(i64, i32)>,
    waker: Option<Waker>,
}

/// The type-independent head of every op: what the callback touches.
struct Header {
    slot: Mutex<Slot>,
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
pub(crate) unsafe fn complete(ctx: *mut c_void, result: i64, os_error: i32) {
    let hdr = ctx as *const Header;
    let waker = {
        let mut s = lock(&(*hdr).slot);
        s.done = Some((result, os_error));
        s.waker.take()
    };
    // The library's reference: may free the op (and the buffer) if the
    // future is gone. `hdr` is not used after this.
    ((*hdr).release)(hdr);
    if let Some(w) = waker {
        w.wake();
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Read(i64),
    Write(i64),
    Fsync(u32),
}

enum State<B> {
    /// Not yet accepted by the library (never polled, or the queue was full).
    Unsubmitted(Arc<Op<B>>),
    InFlight { op: Arc<Op<B>>, id: u64 },
    /// Rejected before reaching the library.
    Failed(Error, B),
    Done,
}

/// The future of one read or write: resolves to the byte count (or the
/// error) **and the buffer**, which is yours again.
///
/// The operation is submitted when the future is first polled. Dropping the
/// future before it resolves cancels the operation (`ovl_cancel`); its
/// buffer then stays inside the operation until the completion arrives and
/// is freed there. Works under any executor.
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
                slot: Mutex::new(Slot { done: None, waker: None }),
                release: release::<B>,
                _keep: keep,
            },
            buf: UnsafeCell::new(Some(buf)),
        });
        OpFuture { port, fd, kind, prep, state: State::Unsubmitted(op) }
    }

    pub(crate) fn failed(port: Port, kind: Kind, err: Error, buf: B) -> OpFuture<B> {
        OpFuture { port, fd: 0, kind, prep: |_| (std::ptr::null_mut(), 0), state: State::Failed(err, buf) }
    }

    /// The op id, once submitted and until it resolves (for `ovl_cancel` or
    /// logs); `None` before the first poll.
    pub fn id(&self) -> Option<u64> {
        match self.state {
            State::InFlight { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Try to hand the op to the library. Ok(true): in flight; Ok(false):
    /// queue full, the waker is registered.
    fn submit(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let op = match &self.state {
            State::Unsubmitted(op) => op.clone(),
            _ => unreachable!("submit in a state other than Unsubmitted"),
        };
        let shared = self.port.shared();
        let raw = self.port.as_raw();
        loop {
            let gen = shared.generation();
            // SAFETY: the library holds no reference to this op (never
            // submitted, or the last submit failed), so we are the only
            // party touching the buffer.
            let (ptr, len) = match unsafe { (*op.buf.get()).as_mut() } {
                Some(b) => (self.prep)(b),
                None => unreachable!("buffer missing before submit"),
            };
            let ctx = Arc::into_raw(op.clone()) as *mut c_void;
            shared.begin_submit();
            let mut id = 0u64;
            // SAFETY: ptr/len describe the op's buffer, which stays put and
            // untouched until the completion (the library's reference keeps
            // the op alive); ctx is that reference.
            let rc = unsafe {
                match self.kind {
                    Kind::Read(off) => sys::ovl_submit_read(raw, self.fd, ptr as *mut c_void, len, off, ctx, &mut id),
                    Kind::Write(off) => {
                        sys::ovl_submit_write(raw, self.fd, ptr as *const c_void, len, off, ctx, &mut id)
                    }
                    Kind::Fsync(flags) => sys::ovl_submit_fsync(raw, self.fd, flags, ctx, &mut id),
                }
            };
            if rc == sys::OVL_OK {
                self.state = State::InFlight { op, id };
                return Ok(true);
            }
            shared.submit_failed();
            // SAFETY: a failed submit produces no completion, so the
            // reference we gave the library comes straight back.
            unsafe { release::<B>(ctx as *const Header) };
            if rc != sys::OVL_EQUEUEFULL {
                return Err(Error::new(rc, 0));
            }
            if !shared.wait_for_room(cx, gen, self.port.queue_depth()) {
                return Ok(false);
            }
        }
    }

    fn take_buf(op: &Arc<Op<B>>) -> B {
        // SAFETY: called only when the library no longer owns the op (its
        // completion was delivered, or it was never submitted); the callback
        // never touches `buf`, and it is not the last reference while we
        // hold `op`.
        match unsafe { (*op.buf.get()).take() } {
            Some(b) => b,
            None => unreachable!("buffer taken twice"),
        }
    }
}

impl<B: Send + 'static> Future for OpFuture<B> {
    type Output = (io::Result<usize>, B);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &this.state {
                State::Unsubmitted(_) => match this.submit(cx) {
                    Ok(true) => continue,
                    Ok(false) => return Poll::Pending,
                    Err(e) => match std::mem::replace(&mut this.state, State::Done) {
                        State::Unsubmitted(op) => return Poll::Ready((Err(e.into()), Self::take_buf(&op))),
                        _ => unreachable!(),
                    },
                },
                State::InFlight { op, .. } => {
                    let mut s = lock(&op.hdr.slot);
                    if let Some((res, os_error)) = s.done {
                        drop(s);
                        let buf = Self::take_buf(op);
                        this.state = State::Done;
                        let res = if res >= 0 {
                            Ok(res as usize)
                        } else {
                            Err(Error::new(res as i32, os_error).into())
                        };
                        return Poll::Ready((res, buf));
                    }
                    match &s.waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => s.waker = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                State::Failed(..) => match std::mem::replace(&mut this.state, State::Done) {
                    State::Failed(e, buf) => return Poll::Ready((Err(e.into()), buf)),
                    _ => unreachable!(),
                },
                State::Done => panic!("ovl::OpFuture polled after it resolved"),
            }
        }
    }
}

impl<B: Send + 'static> Drop for OpFuture<B> {
    fn drop(&mut self) {
        if let State::InFlight { op, id } = &self.state {
            let pending = {
                let mut s = lock(&op.hdr.slot);
                s.waker = None;
                s.done.is_none()
            };
            if pending {
                // Its one completion still follows (ECANCELED or the real
                // result); the library's reference keeps the buffer until
                // then. ENOENT (it is being delivered right now) is fine.
                // SAFETY: the port handle is alive (we hold a clone).
                unsafe { sys::ovl_cancel(self.port.as_raw(), *id) };
            }
        }
    }
}

impl<B: Send + 'static> fmt::Debug for OpFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Unsubmitted(_) => "unsubmitted",
            State::InFlight { .. } => "in flight",
            State::Failed(..) => "failed",
            State::Done => "done",
        };
        f.debug_struct("OpFuture").field("kind", &self.kind).field("state", &state).finish()
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
        Pin::new(&mut self.get_mut().0).poll(cx).map(|(r, ())| r.map(|_| ()))
    }
}
