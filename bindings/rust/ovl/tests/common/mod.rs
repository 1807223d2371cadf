//! Helpers shared by the integration tests (std only: these tests build with
//! Rust 1.63 too).
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use ovl::{IoBuf, IoBufMut, Port};

/// A port with the default backend (the library's choice, or OVL_BACKEND).
pub fn port() -> Port {
    Port::new().expect("create port")
}

pub fn port_depth(depth: u32) -> Port {
    Port::builder()
        .queue_depth(depth)
        .build()
        .expect("create port")
}

/// Close the port and check the exactly-once accounting: nothing in flight,
/// every accepted op delivered, no stale completion.
pub fn finish(port: &Port) {
    port.close().expect("close");
    let s = port.stats();
    assert_eq!(s.inflight, 0, "ops left in flight: {:?}", s);
    assert_eq!(s.submitted, s.completed, "{:?}", s);
    assert_eq!(s.stale, 0, "{:?}", s);
}

/// Deterministic, non-periodic bytes (xorshift), so a read from the wrong
/// offset cannot match by accident.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A temporary file removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(tag: &str, contents: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ovl-rust-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile { path }
    }

    /// Opened read-only through ovl (FILE_FLAG_OVERLAPPED on Windows).
    pub fn open(&self, port: &Port) -> ovl::File {
        ovl::File::open(port, &self.path).unwrap()
    }

    /// Opened read-write through ovl.
    pub fn open_rw(&self, port: &Port) -> ovl::File {
        ovl::File::open_with(
            port,
            std::fs::OpenOptions::new().read(true).write(true),
            &self.path,
        )
        .unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A pipe as (read end, write end), both ends usable with `ovl::File::new`.
/// On Windows an overlapped byte-mode named pipe (the read end is the
/// server, the write end the client), since anonymous pipes cannot do
/// overlapped I/O.
#[cfg(unix)]
pub fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::unix::io::FromRawFd;
    extern "C" {
        fn pipe(fds: *mut i32) -> i32;
    }
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors; we own them after.
    unsafe {
        assert_eq!(pipe(fds.as_mut_ptr()), 0);
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[cfg(windows)]
pub fn pipe() -> (std::fs::File, std::fs::File) {
    win::named_pipe(true)
}

/// A pipe whose read end is for ovl and whose write end is for std's
/// blocking `Write`. On Unix the same as [`pipe`]; on Windows the write end
/// is opened without `FILE_FLAG_OVERLAPPED` (std's synchronous I/O on an
/// overlapped handle aborts the process when the call pends).
pub fn pipe_with_blocking_writer() -> (std::fs::File, std::fs::File) {
    #[cfg(unix)]
    return pipe();
    #[cfg(windows)]
    return win::named_pipe(false);
}

/// A connected pair of stream sockets, for `ovl::File::from_socket`: a
/// `UnixStream` pair on Unix, a loopback TCP connection on Windows.
#[cfg(unix)]
pub fn socket_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    std::os::unix::net::UnixStream::pair().unwrap()
}

#[cfg(windows)]
pub fn socket_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

#[cfg(windows)]
mod win {
    use std::ffi::c_void;
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::{FromRawHandle, RawHandle};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const PIPE_ACCESS_INBOUND: u32 = 0x1;
    const FILE_FLAG_FIRST_PIPE_INSTANCE: u32 = 0x0008_0000;
    const FILE_FLAG_OVERLAPPED: u32 = 0x4000_0000;
    const PIPE_TYPE_BYTE_READMODE_BYTE_WAIT: u32 = 0;

    #[link(name = "kernel32")]
    extern "system" {
        fn CreateNamedPipeW(
            name: *const u16,
            open_mode: u32,
            pipe_mode: u32,
            max_instances: u32,
            out_buffer: u32,
            in_buffer: u32,
            default_timeout_ms: u32,
            security: *mut c_void,
        ) -> RawHandle;
    }

    /// (server = read end, overlapped; client = write end, overlapped if
    /// asked), like tests/windows/compat.h's pipe() for the C suite.
    pub fn named_pipe(overlapped_writer: bool) -> (std::fs::File, std::fs::File) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            r"\\.\pipe\ovl-rust-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let wide: Vec<u16> = std::ffi::OsStr::new(&name)
            .encode_wide()
            .chain(Some(0))
            .collect();
        // SAFETY: `wide` is NUL-terminated; no security attributes.
        let h = unsafe {
            CreateNamedPipeW(
                wide.as_ptr(),
                PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                PIPE_TYPE_BYTE_READMODE_BYTE_WAIT,
                1,
                65536,
                65536,
                0,
                std::ptr::null_mut(),
            )
        };
        assert!(
            h as isize != -1 && !h.is_null(),
            "CreateNamedPipeW: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh handle that nothing else owns.
        let server = unsafe { std::fs::File::from_raw_handle(h) };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if overlapped_writer {
            opts.custom_flags(FILE_FLAG_OVERLAPPED);
        }
        // Opening the client end connects the (only) pipe instance.
        let client = opts.open(&name).expect("open the pipe's client end");
        (server, client)
    }
}

/// Counts live buffers and reports each drop on a channel: proves that a
/// buffer is freed exactly once, and not before its operation completed.
#[derive(Clone)]
pub struct Tracker {
    live: Arc<AtomicUsize>,
    created: Arc<AtomicUsize>,
    tx: Arc<Mutex<mpsc::Sender<usize>>>,
}

pub struct Tracked {
    pub data: Vec<u8>,
    pub tag: usize,
    tracker: Tracker,
}

impl Tracker {
    pub fn new() -> (Tracker, mpsc::Receiver<usize>) {
        let (tx, rx) = mpsc::channel();
        (
            Tracker {
                live: Arc::new(AtomicUsize::new(0)),
                created: Arc::new(AtomicUsize::new(0)),
                tx: Arc::new(Mutex::new(tx)),
            },
            rx,
        )
    }

    pub fn buf(&self, len: usize, tag: usize) -> Tracked {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.created.fetch_add(1, Ordering::SeqCst);
        Tracked {
            data: vec![0xee; len],
            tag,
            tracker: self.clone(),
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let before = self.tracker.live.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a tracked buffer was dropped twice");
        let _ = self.tracker.tx.lock().unwrap().send(self.tag);
    }
}

// SAFETY: the Vec's heap block does not move while the Tracked is untouched.
unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
}

unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
}

/// A waker that counts its wake-ups, for polling futures by hand.
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counting_waker() -> (Waker, Arc<CountingWaker>) {
    let w = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (Waker::from(w.clone()), w)
}

impl CountingWaker {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Poll a future once by hand.
pub fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Run many futures concurrently inside one task (polls those not done on
/// each wake-up): enough to keep many ops in flight under `block_on`.
pub struct JoinAll<F: Future> {
    futs: Vec<Option<Pin<Box<F>>>>,
    outs: Vec<Option<F::Output>>,
}

pub fn join_all<F: Future>(futs: Vec<F>) -> JoinAll<F> {
    let n = futs.len();
    JoinAll {
        futs: futs.into_iter().map(|f| Some(Box::pin(f))).collect(),
        outs: (0..n).map(|_| None).collect(),
    }
}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<F::Output>> {
        // SAFETY: we never move the boxed futures or the vectors' elements
        // out while pinned (the futures are boxed: their pins are separate).
        let this = unsafe { self.get_unchecked_mut() };
        let mut pending = false;
        for (slot, out) in this.futs.iter_mut().zip(this.outs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(this.outs.iter_mut().map(|o| o.take().unwrap()).collect())
        }
    }
}

pub fn code_of(e: &std::io::Error) -> i32 {
    ovl::Error::from_io(e)
        .unwrap_or_else(|| panic!("not an ovl error: {:?}", e))
        .code()
}
