//! `Port`: one ovl port and its completion callback bridged into wakers
//! (the back-pressure wait list and the batching of submits: submitq.rs).
use std::ffi::CStr;
use std::os::raw::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;
use std::{fmt, ptr, slice};

use ovl_sys as sys;

use crate::submitq::SubmitQ;
use crate::Error;

/// Lock a mutex, ignoring poisoning: the data behind our mutexes (a result
/// slot, a waker list) stays consistent even if a waker panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which ovl backend a port uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring if usable, else threads; IOCP on Windows. The environment
    /// variable `OVL_BACKEND=uring|threads|iocp|auto` overrides this choice
    /// (and only this one).
    Auto,
    /// Linux io_uring.
    Uring,
    /// The POSIX worker-pool fallback.
    Threads,
    /// Windows I/O completion ports.
    Iocp,
}

impl Backend {
    fn raw(self) -> u32 {
        match self {
            Backend::Auto => sys::OVL_BACKEND_AUTO,
            Backend::Uring => sys::OVL_BACKEND_URING,
            Backend::Threads => sys::OVL_BACKEND_THREADS,
            Backend::Iocp => sys::OVL_BACKEND_IOCP,
        }
    }

    fn from_raw(v: u32) -> Option<Backend> {
        match v {
            sys::OVL_BACKEND_AUTO => Some(Backend::Auto),
            sys::OVL_BACKEND_URING => Some(Backend::Uring),
            sys::OVL_BACKEND_THREADS => Some(Backend::Threads),
            sys::OVL_BACKEND_IOCP => Some(Backend::Iocp),
            _ => None,
        }
    }

    /// What [`Backend::Auto`] resolves to on this host (before any
    /// `OVL_BACKEND` override) and why, e.g. `"io_uring available"`.
    ///
    /// ```
    /// let (backend, why) = ovl::Backend::auto_choice();
    /// assert_ne!(backend, ovl::Backend::Auto);
    /// assert!(!why.is_empty());
    /// ```
    pub fn auto_choice() -> (Backend, &'static str) {
        let mut b = 0u32;
        // SAFETY: returns a static string; `b` is a valid out-pointer.
        let why = unsafe { CStr::from_ptr(sys::ovl_backend_reason(&mut b)) };
        (
            Backend::from_raw(b).unwrap_or(Backend::Auto),
            why.to_str().unwrap_or("?"),
        )
    }
}

/// Counters of a port (see `ovl_stats` in `ovl.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Ops submitted whose completion has not been delivered yet.
    pub inflight: u32,
    /// Ops accepted since the port was created.
    pub submitted: u64,
    /// Completions delivered.
    pub completed: u64,
    /// Cancellation requests accepted.
    pub cancels: u64,
    /// Callback invocations (each delivers a batch).
    pub batches: u64,
    /// OS completions for unknown ops (0 unless something is badly wrong).
    pub stale: u64,
    /// Enter/wait system calls made by the backend.
    pub syscalls: u64,
}

/// Options for [`Port`]; start from [`Port::builder`].
///
/// ```
/// let port = ovl::Port::builder().queue_depth(32).build()?;
/// assert_eq!(port.queue_depth(), 32);
/// # Ok::<(), ovl::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    queue_depth: u32,
    backend: Backend,
    threads: u32,
    spin_usec: u32,
    manual: bool,
    inline: bool,
}

impl Builder {
    /// Most ops in flight at once (1..=16384; default 256). Submits past it
    /// wait for a completion (see [`Port`]).
    pub fn queue_depth(mut self, n: u32) -> Builder {
        self.queue_depth = n;
        self
    }

    /// The backend; an explicitly named one the host lacks makes
    /// [`build`](Builder::build) fail with `OVL_EUNAVAIL`.
    pub fn backend(mut self, b: Backend) -> Builder {
        self.backend = b;
        self
    }

    /// Worker threads of the threads backend (0 = the library's default).
    pub fn threads(mut self, n: u32) -> Builder {
        self.threads = n;
        self
    }

    /// Make the completion thread spin this long for completions after each
    /// batch before it sleeps. By default (or with `Duration::ZERO`) the
    /// library decides: it spins briefly, only while that finds
    /// completions, and never on an idle port.
    pub fn spin(mut self, d: Duration) -> Builder {
        // u32::MAX is OVL_SPIN_NONE ("never"), not a duration.
        self.spin_usec = d.as_micros().min(u32::MAX as u128 - 1) as u32;
        self
    }

    /// Make the completion thread never spin: it sleeps in the kernel as
    /// soon as a batch is delivered (`OVL_SPIN_NONE`), for a port that must
    /// spend no CPU on polling. Replaces any [`Builder::spin`].
    pub fn no_spin(mut self) -> Builder {
        self.spin_usec = sys::OVL_SPIN_NONE;
        self
    }

    /// Manual mode: no completion thread; completions are delivered (and
    /// futures woken) only inside [`Port::poll`] or [`Port::close`].
    pub fn manual(mut self, yes: bool) -> Builder {
        self.manual = yes;
        self
    }

    /// On io_uring, with a completion thread: submits deliver what is
    /// ready on the submitting thread (default: yes; ignored for
    /// manual-mode ports and on other backends). The futures then submit
    /// with `ovl_submit_and_poll(..., 0)`, which delivers, on the polling
    /// thread, what completed inside the submit and lets the completion
    /// thread wait outside the kernel while nothing is in flight: a future
    /// whose read is served from the page cache resolves in the poll that
    /// submitted it and no other thread is woken at all. The futures need
    /// no care from you either way (their wakers may run on the polling
    /// thread, as they already may with [`Port::inline_delivery`]). With
    /// `false` the futures submit with the plain calls and then take what
    /// is ready themselves (`ovl_poll(port, 0)`), and the completion
    /// thread sleeps in the kernel, woken for every completion.
    pub fn inline(mut self, yes: bool) -> Builder {
        self.inline = yes;
        self
    }

    /// Create the port.
    pub fn build(self) -> Result<Port, Error> {
        let sq = Box::into_raw(Box::new(SubmitQ::new()));
        match self.create(sq) {
            Ok((raw, depth, caps)) => {
                // SAFETY: the SubmitQ lives until the port is dropped; no
                // op was submitted yet.
                unsafe { (*sq).set_submit_delivers(caps.submit_delivers) };
                Ok(self.port(raw, sq, depth, caps))
            }
            Err(rc) => {
                // SAFETY: no port was created, so nothing else refers to it.
                drop(unsafe { Box::from_raw(sq) });
                Err(Error::new(rc, 0))
            }
        }
    }

    fn port(&self, raw: *mut sys::ovl_port, sq: *mut SubmitQ, depth: u32, caps: Caps) -> Port {
        Port {
            inner: Arc::new(PortInner {
                raw,
                sq,
                depth,
                manual: self.manual,
                caps,
            }),
        }
    }

    /// Create the C port, its callback bound to `sq`, and decide what it
    /// can do: its handle, its queue depth and its capabilities.
    fn create(&self, sq: *mut SubmitQ) -> Result<(*mut sys::ovl_port, u32, Caps), i32> {
        let flags = if self.manual { sys::OVL_PORT_MANUAL } else { 0 };
        let (raw, depth) = self.create_raw(sq, flags)?;
        // Delivery on the submitting thread pays on io_uring only:
        // elsewhere the completion thread holds delivery while it waits,
        // so the submitter would mostly find it busy. Which backend Auto
        // got (OVL_BACKEND, the host) is known only now.
        let uring = backend_is_uring(raw);
        let threaded_uring = uring && !self.manual;
        let caps = Caps {
            uring,
            submit_delivers: threaded_uring && self.inline,
            poll_inline: threaded_uring && !self.inline,
        };
        Ok((raw, depth, caps))
    }

    /// `ovl_create_port` with this builder's options and `flags`: the
    /// port and its queue depth, or the library's error code.
    fn create_raw(&self, sq: *mut SubmitQ, flags: u32) -> Result<(*mut sys::ovl_port, u32), i32> {
        // SAFETY: zeroed is a valid ovl_port_config (integers, a None
        // callback, a null pointer); init then fills the defaults.
        let mut cfg: sys::ovl_port_config = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<sys::ovl_port_config>() as u32;
        let mut raw = ptr::null_mut();
        // SAFETY: cfg and raw are valid out-pointers; `sq` outlives the
        // port: it is freed only after ovl_close_port returned.
        let rc = unsafe {
            let rc = sys::ovl_port_config_init(&mut cfg, size);
            if rc == sys::OVL_OK {
                cfg.queue_depth = self.queue_depth;
                cfg.backend = self.backend.raw();
                cfg.threads = self.threads;
                cfg.spin_usec = self.spin_usec;
                cfg.flags = flags;
                cfg.callback = Some(on_batch);
                cfg.userdata = sq as *mut c_void;
                sys::ovl_create_port(&cfg, &mut raw)
            } else {
                rc
            }
        };
        if rc == sys::OVL_OK {
            Ok((raw, cfg.queue_depth))
        } else {
            Err(rc)
        }
    }
}

fn backend_is_uring(raw: *mut sys::ovl_port) -> bool {
    // SAFETY: raw is a live port (a static string back).
    unsafe { CStr::from_ptr(sys::ovl_backend_name(raw)) }.to_bytes() == b"uring"
}

/// What a port can do, decided once when it is built (the binding ships
/// with the library it is built against, so nothing is probed later).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// The backend is io_uring. Then ops made alone may wait in the submit
    /// queue to be submitted together (one `io_uring_enter` for the batch;
    /// on the threads backend the delay before a queued op is submitted
    /// costs more than the lock it saves), and owned handles are
    /// registered as fixed files.
    pub(crate) uring: bool,
    /// The futures submit with `ovl_submit_and_poll(..., 0)` (io_uring, a
    /// completion thread, `Builder::inline(true)`): the library delivers,
    /// on the submitting thread, what completed inside the submit, and its
    /// completion thread waits outside the kernel while nothing is in
    /// flight.
    pub(crate) submit_delivers: bool,
    /// The futures submit with the plain calls and then take the
    /// completions that are ready with `ovl_poll(port, 0)`: an io_uring
    /// port with a completion thread and `Builder::inline(false)`. (The
    /// threads and IOCP completion threads hold delivery while they wait:
    /// there either call would mostly find it busy.)
    pub(crate) poll_inline: bool,
}

/// The registered C callback: one call per batch of completions, on the
/// port's completion thread (or inside `ovl_poll`/`ovl_close_port` in
/// manual mode). Each completion's ctx is an op of ours (see `op.rs`): store
/// the result, wake its task, drop the reference the library held.
unsafe extern "C" fn on_batch(items: *const sys::ovl_completion, n: usize, userdata: *mut c_void) {
    // Unwinding into C is undefined behaviour: a panic here (a waker that
    // panics) ends the process instead.
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: userdata is the port's SubmitQ, alive until close
        // returned; items/n describe a batch borrowed for this call.
        let sq = &*(userdata as *const SubmitQ);
        let items = slice::from_raw_parts(items, n);
        let mut ours = 0;
        for c in items {
            if c.op != sys::OVL_OP_POST && !c.ctx.is_null() {
                crate::op::complete(c.ctx, c.result, c.os_error, sq);
                ours += 1;
            }
        }
        sq.after_batch(ours);
    }));
    if r.is_err() {
        std::process::abort();
    }
}

pub(crate) struct PortInner {
    raw: *mut sys::ovl_port,
    /// What the callback shares with the futures.
    sq: *mut SubmitQ,
    depth: u32,
    manual: bool,
    caps: Caps,
}

// SAFETY: the C port is thread-safe (any thread may submit, cancel, poll
// and close); SubmitQ is Sync.
unsafe impl Send for PortInner {}
unsafe impl Sync for PortInner {}

struct SendPtrs(*mut sys::ovl_port, *mut SubmitQ);
// SAFETY: as for PortInner.
unsafe impl Send for SendPtrs {}

impl Drop for PortInner {
    fn drop(&mut self) {
        // SAFETY: raw is a port we created (closing a closed one is safe:
        // ECLOSED); SubmitQ is freed only when no callback can run any more.
        unsafe {
            if sys::ovl_close_port(self.raw) == sys::OVL_EDEADLK {
                // The last handle went away inside this port's own callback
                // (a buffer or waker that owned a Port): close it from
                // another thread, which waits for this callback to return.
                let p = SendPtrs(self.raw, self.sq);
                std::thread::spawn(move || {
                    let p = p;
                    sys::ovl_close_port(p.0);
                    drop(Box::from_raw(p.1));
                });
                return;
            }
            drop(Box::from_raw(self.sq));
        }
    }
}

/// An ovl port: the completion queue that all of its files' operations
/// complete through. Cheap to clone (a reference-counted handle).
///
/// The port's C callback runs on its completion thread and wakes the task
/// of each finished operation, so futures from a port work under any
/// executor (or [`block_on`](crate::block_on)).
///
/// **Closing.** The C port is closed when [`close`](Port::close) is called
/// or when the last handle goes away — and every pending future and every
/// [`File`](crate::File) holds one. Closing cancels what is in flight and
/// returns only after every completion has been delivered, so after it no
/// buffer of a dropped future is still owned by the library.
///
/// **Back-pressure.** At most [`queue_depth`](Port::queue_depth) ops are in
/// flight. A future whose submit finds the queue full does not fail: it
/// registers its waker and is woken after the next completion batch, then
/// retries (an `OVL_EQUEUEFULL` never reaches the caller).
///
/// ```
/// let port = ovl::Port::new()?;
/// println!("backend: {}", port.backend_name());
/// port.close()?;
/// assert_eq!(port.stats().inflight, 0);
/// # Ok::<(), ovl::Error>(())
/// ```
#[derive(Clone)]
pub struct Port {
    inner: Arc<PortInner>,
}

impl Port {
    /// A port with default options (backend chosen by the library, or by
    /// `OVL_BACKEND` in the environment).
    pub fn new() -> Result<Port, Error> {
        Port::builder().build()
    }

    /// Options for a new port.
    pub fn builder() -> Builder {
        Builder {
            queue_depth: sys::OVL_DEFAULT_QUEUE_DEPTH,
            backend: Backend::Auto,
            threads: 0,
            spin_usec: 0,
            manual: false,
            inline: true,
        }
    }

    /// The raw port, for calls through `ovl_sys`. Valid (never dangling:
    /// a closed port answers `OVL_ECLOSED`) while this handle lives.
    pub fn as_raw(&self) -> *mut sys::ovl_port {
        self.inner.raw
    }

    pub(crate) fn submitq(&self) -> &SubmitQ {
        // SAFETY: freed only when the last PortInner is dropped.
        unsafe { &*self.inner.sq }
    }

    pub(crate) fn caps(&self) -> Caps {
        self.inner.caps
    }

    /// After a submit: deliver, on this thread, the completions that are
    /// ready now (`ovl_poll(p, 0)`), if the futures do so on this port
    /// (`Caps::poll_inline`; with `Caps::submit_delivers` the submit did
    /// it). Must be called with no lock held that the callback or a waker
    /// may take.
    pub(crate) fn poll_inline(&self) {
        if self.inner.caps.poll_inline {
            // SAFETY: raw is our port. OVL_EDEADLK (polled from inside this
            // port's callback, by a waker that polls): nothing delivered,
            // the completion thread will. OVL_ECLOSED: close delivers
            // everything itself. Another thread delivering: 0.
            unsafe { sys::ovl_poll(self.inner.raw, 0) };
        }
    }

    /// The backend in use: `"uring"`, `"threads"` or `"iocp"`.
    pub fn backend_name(&self) -> &'static str {
        // SAFETY: returns a static string.
        unsafe { CStr::from_ptr(sys::ovl_backend_name(self.inner.raw)) }
            .to_str()
            .unwrap_or("?")
    }

    /// Most ops in flight at once.
    pub fn queue_depth(&self) -> u32 {
        self.inner.depth
    }

    /// Whether a future's poll takes the completions that are ready on
    /// its own thread (inside its `ovl_submit_and_poll` with
    /// [`Builder::inline`], else with `ovl_poll(port, 0)` right after a
    /// plain submit): io_uring ports with a completion thread only. When true, a read
    /// served from the page cache usually resolves in the poll that
    /// submitted it, with no wake-up from the completion thread. (The
    /// threads and IOCP completion threads hold delivery while they wait,
    /// so there the call would mostly find it busy: it is not made.)
    pub fn inline_delivery(&self) -> bool {
        let caps = self.inner.caps;
        caps.submit_delivers || caps.poll_inline
    }

    /// Whether this port was built in manual mode.
    pub fn is_manual(&self) -> bool {
        self.inner.manual
    }

    /// Close the port now: new operations fail with `OVL_ECLOSED`, those in
    /// flight are cancelled and their futures resolve (with
    /// `OVL_ECANCELED`, or their real result if they finished first).
    /// Returns once every completion was delivered. A second call returns
    /// `OVL_ECLOSED`; calling it from inside a completion (a waker) returns
    /// `OVL_EDEADLK`.
    pub fn close(&self) -> Result<(), Error> {
        // Ops still waiting in the binding's queue are submitted first, so
        // that they are cancelled like every other op in flight.
        self.submitq().flush(self.inner.raw);
        // SAFETY: raw is our port.
        Error::check(unsafe { sys::ovl_close_port(self.inner.raw) })
    }

    /// Run `fut` to completion on this thread, delivering the port's
    /// completions here too while the future waits: one thread does
    /// everything, as a C program resubmitting from its callback does,
    /// with no cross-thread wake-up (a wake from another thread posts to
    /// the port to end the wait). On a port with a completion thread, each
    /// wait takes delivery over from that thread (`ovl_poll` with a
    /// timeout). Futures of other ports (or anything else) may be awaited
    /// inside; they wake it as usual.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("ovl-doc-port-block-on-{}", std::process::id()));
    /// # std::fs::write(&path, b"0123456789").unwrap();
    /// let port = ovl::Port::builder().manual(true).build()?;
    /// let file = ovl::File::open(&port, &path)?;
    /// let (n, buf) = port.block_on(file.read_at(vec![0u8; 4], 3));
    /// assert_eq!((n?, &buf[..]), (4, &b"3456"[..]));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        crate::block_on::block_on_port(self, fut)
    }

    /// Wait up to `timeout` (`None` = forever) for completions, deliver
    /// all that are ready on this thread (waking their tasks) and return
    /// how many. On a port with a completion thread, a non-zero timeout
    /// takes delivery over from that thread for the length of the call
    /// (`ovl_poll` in the C header).
    pub fn poll(&self, timeout: Option<Duration>) -> Result<usize, Error> {
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as i32,
        };
        // SAFETY: raw is our port.
        let rc = unsafe { sys::ovl_poll(self.inner.raw, ms) };
        Error::check(rc).map(|_| rc as usize)
    }

    /// Manual mode: a handle (an eventfd on Linux) that becomes readable
    /// when completions may be ready; then call `poll(Some(Duration::ZERO))`.
    /// Borrowed: valid until the port is closed.
    pub fn event_handle(&self) -> Result<sys::ovl_fd, Error> {
        let mut fd = 0;
        // SAFETY: raw is our port, fd a valid out-pointer.
        Error::check(unsafe { sys::ovl_port_event(self.inner.raw, &mut fd) }).map(|_| fd)
    }

    /// A snapshot of the port's counters (final figures after close).
    pub fn stats(&self) -> Stats {
        let mut s = sys::ovl_stats {
            size: std::mem::size_of::<sys::ovl_stats>() as u32,
            ..Default::default()
        };
        // SAFETY: raw is our port, s a valid out-pointer with size set.
        let rc = unsafe { sys::ovl_port_stats(self.inner.raw, &mut s) };
        debug_assert_eq!(rc, sys::OVL_OK);
        Stats {
            inflight: s.inflight,
            submitted: s.submitted,
            completed: s.completed,
            cancels: s.cancels,
            batches: s.batches,
            stale: s.stale,
            syscalls: s.syscalls,
        }
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("backend", &self.backend_name())
            .field("queue_depth", &self.inner.depth)
            .field("manual", &self.inner.manual)
            .finish()
    }
}
