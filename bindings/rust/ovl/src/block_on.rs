//! Minimal executors: run one future to completion on the current thread
//! (`block_on`), or do so while delivering a port's completions on that
//! same thread (`Port::block_on`).
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use ovl_sys as sys;

use crate::Port;

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Run `fut` to completion on this thread, parking between polls: the
/// smallest executor that drives ovl's futures (the port's own thread does
/// the waking). Use your runtime's instead inside async code.
///
/// ```
/// assert_eq!(ovl::block_on(async { 6 * 7 }), 42);
/// ```
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let tw = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = fut;
    // SAFETY: `fut` is shadowed and never moved again.
    let mut fut = unsafe { Pin::new_unchecked(&mut fut) };
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // Park until woken; the flag absorbs spurious unparks and wakes
        // that came before we parked.
        while !tw.woken.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// The waker of `Port::block_on`: the runner waits
/// inside `ovl_poll`, so a wake from another thread posts a completion to
/// end that wait (a wake from the runner's own thread, i.e. from a callback
/// it is running, needs nothing: it checks the flag next).
struct PortWaker {
    port: Port,
    thread: Thread,
    woken: AtomicBool,
    /// The runner is (about to be) waiting inside ovl_poll.
    in_poll: AtomicBool,
}

impl Wake for PortWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if self.in_poll.load(Ordering::SeqCst) && thread::current().id() != self.thread.id() {
            // A post with no ctx: the port's callback ignores it. If it
            // fails (the queue is full: completions are coming anyway, or
            // the port is closed) the runner's bounded wait ends the wait.
            // SAFETY: the port handle is alive (we hold a clone).
            unsafe {
                sys::ovl_post(
                    self.port.as_raw(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        self.thread.unpark();
    }
}

/// The longest `Port::block_on` waits inside `ovl_poll`
/// before it looks at its wake flag again: bounds the delay of a wake whose
/// post could not be queued.
const MAX_WAIT_MS: i32 = 50;

pub(crate) fn block_on_port<F: Future>(port: &Port, fut: F) -> F::Output {
    // On a port with a completion thread too: a waiting ovl_poll takes
    // delivery over from that thread for the length of the wait.
    let pw = Arc::new(PortWaker {
        port: port.clone(),
        thread: thread::current(),
        woken: AtomicBool::new(false),
        in_poll: AtomicBool::new(false),
    });
    let waker = Waker::from(pw.clone());
    let mut cx = Context::from_waker(&waker);
    let raw = port.as_raw();
    let mut fut = fut;
    // SAFETY: `fut` is shadowed and never moved again.
    let mut fut = unsafe { Pin::new_unchecked(&mut fut) };
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // Deliver completions here until one of them (or anyone) woke us.
        loop {
            if pw.woken.swap(false, Ordering::SeqCst) {
                break;
            }
            // SAFETY: raw is the port's handle, alive while `port` is.
            if unsafe { sys::ovl_poll(raw, 0) } > 0 {
                continue;
            }
            pw.in_poll.store(true, Ordering::SeqCst);
            if pw.woken.load(Ordering::SeqCst) {
                pw.in_poll.store(false, Ordering::SeqCst);
                continue;
            }
            // SAFETY: as above.
            let rc = unsafe { sys::ovl_poll(raw, MAX_WAIT_MS) };
            pw.in_poll.store(false, Ordering::SeqCst);
            if rc < 0 {
                // Closed (close delivered everything) or called from inside
                // this port's callback: plain parking, woken by unpark.
                if !pw.woken.load(Ordering::SeqCst) {
                    thread::park_timeout(Duration::from_millis(MAX_WAIT_MS as u64));
                }
            }
        }
    }
}
