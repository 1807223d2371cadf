//! Raw FFI declarations for ovl, overlapped (completion-based) I/O.
//!
//! Everything here is written by hand from `include/ovl.h` (no bindgen) and
//! kept honest by `tests/layout.rs`, which compiles a small C program against
//! the header and compares every struct's size, alignment and field offsets,
//! and every constant, with these declarations.
//!
//! This crate only declares; the safe API is the `ovl` crate. Read the
//! header's comments for the full contract of each function: who owns what,
//! which thread may call it and whether a completion follows.
//!
//! # Finding the library
//!
//! `build.rs` links `libovl` (`ovl.dll` on Windows) from, in order:
//! the directory in `OVL_LIB_DIR`; the project's in-tree CMake build
//! (`<repo>/build`); an installed ovl found with `pkg-config ovl`; else the
//! linker's default search path. On ELF platforms it also passes the
//! directory to dependents as `DEP_OVL_LIB_DIR` so that their build scripts
//! can add an rpath (this crate's own tests get one).
//!
//! # Example
//!
//! ```
//! let v = unsafe { ovl_sys::ovl_version() };
//! assert_eq!(v >> 16, ovl_sys::OVL_VERSION_MAJOR);
//! ```
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_void};

// ---- version ---------------------------------------------------------------

/// Major version of the header these declarations mirror.
pub const OVL_VERSION_MAJOR: u32 = 0;
/// Minor version of the header these declarations mirror.
pub const OVL_VERSION_MINOR: u32 = 1;
/// Patch version of the header these declarations mirror.
pub const OVL_VERSION_PATCH: u32 = 0;
/// `(MAJOR << 16) | (MINOR << 8) | PATCH`; compare with [`ovl_version`].
pub const OVL_VERSION_HEX: u32 =
    (OVL_VERSION_MAJOR << 16) | (OVL_VERSION_MINOR << 8) | OVL_VERSION_PATCH;

// ---- error codes (same numbers on every OS; append-only) -------------------

/// Success.
pub const OVL_OK: i32 = 0;
/// Invalid argument.
pub const OVL_EINVAL: i32 = -1;
/// Bad file descriptor or handle.
pub const OVL_EBADF: i32 = -2;
/// Out of memory.
pub const OVL_ENOMEM: i32 = -3;
/// Queue full: `queue_depth` operations already in flight.
pub const OVL_EQUEUEFULL: i32 = -4;
/// Port is closed.
pub const OVL_ECLOSED: i32 = -5;
/// Operation cancelled.
pub const OVL_ECANCELED: i32 = -6;
/// No such operation (unknown or already completed id).
pub const OVL_ENOENT: i32 = -7;
/// Not allowed from the port's own callback.
pub const OVL_EDEADLK: i32 = -8;
/// Backend not available on this host.
pub const OVL_EUNAVAIL: i32 = -9;
/// Operation not supported for this handle or backend.
pub const OVL_ENOTSUP: i32 = -10;
/// Input/output error.
pub const OVL_EIO: i32 = -11;
/// Permission denied.
pub const OVL_EACCES: i32 = -12;
/// No space left on device.
pub const OVL_ENOSPC: i32 = -13;
/// Broken pipe.
pub const OVL_EPIPE: i32 = -14;
/// Connection reset by peer.
pub const OVL_ECONNRESET: i32 = -15;
/// Resource temporarily unavailable.
pub const OVL_EAGAIN: i32 = -16;
/// Interrupted system call.
pub const OVL_EINTR: i32 = -17;
/// Bad address.
pub const OVL_EFAULT: i32 = -18;
/// Length exceeds [`OVL_MAX_IO_SIZE`].
pub const OVL_ETOOBIG: i32 = -19;
/// Is a directory.
pub const OVL_EISDIR: i32 = -20;
/// File too large or offset out of range.
pub const OVL_EFBIG: i32 = -21;
/// Wrong port mode (manual-mode call on a threaded port).
pub const OVL_EMODE: i32 = -22;
/// Other operating-system error (see `os_error`).
pub const OVL_EOS: i32 = -23;
/// The port belongs to the parent process (inherited across fork).
pub const OVL_EFORKED: i32 = -24;
/// Operation timed out.
pub const OVL_ETIMEDOUT: i32 = -25;
/// Connection refused.
pub const OVL_ECONNREFUSED: i32 = -26;
/// Address already in use.
pub const OVL_EADDRINUSE: i32 = -27;
/// Network is unreachable.
pub const OVL_ENETUNREACH: i32 = -28;
/// No route to host.
pub const OVL_EHOSTUNREACH: i32 = -29;
/// Connection aborted.
pub const OVL_ECONNABORTED: i32 = -30;
/// Socket is not connected.
pub const OVL_ENOTCONN: i32 = -31;
/// Address not available.
pub const OVL_EADDRNOTAVAIL: i32 = -32;
/// No such local endpoint (nothing listens on that name).
pub const OVL_ENOTFOUND: i32 = -33;
/// The last (most negative) code this header knows.
pub const OVL__ERR_LAST: i32 = -33;

// ---- basic types -------------------------------------------------------------

/// A file descriptor (POSIX), `HANDLE` or `SOCKET` (Windows), widened to 64
/// bits. On POSIX pass `fd as ovl_fd` (a negative fd becomes a value above
/// `INT_MAX`, which submits reject with [`OVL_EBADF`]).
pub type ovl_fd = u64;

/// Offset marker for stream I/O (pipes, sockets, character devices).
pub const OVL_OFFSET_CURRENT: i64 = -1;
/// The largest length a single read or write accepts.
pub const OVL_MAX_IO_SIZE: u32 = 0x7fff_f000;
/// Default queue depth (ops in flight per port).
pub const OVL_DEFAULT_QUEUE_DEPTH: u32 = 256;
/// Largest queue depth.
pub const OVL_MAX_QUEUE_DEPTH: u32 = 16384;
/// Most fds one port can have registered at a time ([`ovl_register_fd`]).
pub const OVL_MAX_REGISTERED_FDS: u32 = 64;

/// Op kind: read.
pub const OVL_OP_READ: u32 = 1;
/// Op kind: write.
pub const OVL_OP_WRITE: u32 = 2;
/// Op kind: fsync.
pub const OVL_OP_FSYNC: u32 = 3;
/// Op kind: user-posted completion.
pub const OVL_OP_POST: u32 = 4;
/// Op kind: accept a connection.
pub const OVL_OP_ACCEPT: u32 = 5;
/// Op kind: connect a socket.
pub const OVL_OP_CONNECT: u32 = 6;
/// Op kind: shut down a socket's directions.
pub const OVL_OP_SHUTDOWN: u32 = 7;
/// Op kind: a timer.
pub const OVL_OP_TIMER: u32 = 8;
/// Op kind: a connection on a local listener.
pub const OVL_OP_LOCAL_ACCEPT: u32 = 9;
/// Op kind: connect to a local endpoint by name.
pub const OVL_OP_LOCAL_DIAL: u32 = 10;
/// `ovl_local_config.flags`: a message-mode pipe (Windows).
pub const OVL_LOCAL_MESSAGE: u32 = 1;
/// `ovl_local_config.flags`: let remote clients connect (Windows).
pub const OVL_LOCAL_ALLOW_REMOTE: u32 = 2;
/// Shutdown: no more receives.
pub const OVL_SHUT_RD: u32 = 1;
/// Shutdown: no more sends (the peer reads end of file).
pub const OVL_SHUT_WR: u32 = 2;
/// Shutdown: both directions.
pub const OVL_SHUT_RDWR: u32 = 3;
/// Bytes of address an [`ovl_addr`] holds.
pub const OVL_ADDR_MAX: u32 = 128;

/// `ovl_submit_fsync` flag: data only (fdatasync).
pub const OVL_FSYNC_DATA: u32 = 1;

/// Backend: io_uring if usable, else threads; IOCP on Windows.
pub const OVL_BACKEND_AUTO: u32 = 0;
/// Backend: Linux io_uring.
pub const OVL_BACKEND_URING: u32 = 1;
/// Backend: POSIX worker pool + readiness.
pub const OVL_BACKEND_THREADS: u32 = 2;
/// Backend: Windows I/O completion port.
pub const OVL_BACKEND_IOCP: u32 = 3;

/// `ovl_port_config.flags`: no completion thread; drive with [`ovl_poll`].
/// (The only flag: the retired `OVL_PORT_INLINE` is refused, and
/// submits that deliver on their thread are [`ovl_submit_and_poll`].)
pub const OVL_PORT_MANUAL: u32 = 1;

/// `ovl_port_config.spin_usec`: the completion thread never spins (0 means
/// the library decides; any other value is a fixed spin in µs).
pub const OVL_SPIN_NONE: u32 = 0xFFFF_FFFF;

/// An opaque port (`struct ovl_port`).
#[repr(C)]
pub struct ovl_port {
    _opaque: [u8; 0],
    // Not Send/Sync/Unpin by itself: only ever used behind a raw pointer.
    _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// One finished operation, as handed to the callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ovl_completion {
    /// The caller's context, exactly as submitted.
    pub ctx: *mut c_void,
    /// The op id the submit returned (never 0).
    pub id: u64,
    /// `>= 0`: bytes transferred (0 on a read = end of file); `< 0`: an
    /// `OVL_E*` code.
    pub result: i64,
    /// `OVL_OP_*`.
    pub op: u32,
    /// Raw errno / `GetLastError()` behind a negative result; 0 otherwise.
    pub os_error: i32,
}

/// The batch callback: `n >= 1` completions, `items` borrowed for the call.
/// Runs on the port's completion thread (or inside [`ovl_poll`] /
/// [`ovl_close_port`] in manual mode), never concurrently for one port.
/// It must not unwind into C.
pub type ovl_callback =
    Option<unsafe extern "C" fn(items: *const ovl_completion, n: usize, userdata: *mut c_void)>;

/// An opaque local listener (a named pipe on Windows, a Unix socket
/// elsewhere).
#[repr(C)]
pub struct ovl_local {
    _opaque: [u8; 0],
    _marker: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// Local listener options (versioned: fill with [`ovl_local_config_init`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ovl_local_config {
    /// `size_of::<ovl_local_config>()` as the caller knows it.
    pub size: u32,
    /// `OVL_LOCAL_*`.
    pub flags: u32,
    /// POSIX: the socket file's permission bits (default 0o600).
    pub mode: u32,
    /// POSIX: the listen() backlog (default 128).
    pub backlog: u32,
    /// Input buffer bytes (Windows pipe; POSIX SO_RCVBUF, 0 = default).
    pub in_buffer: u32,
    /// Output buffer bytes (Windows pipe; POSIX SO_SNDBUF, 0 = default).
    pub out_buffer: u32,
    /// Windows: an SDDL security descriptor, or NULL; POSIX: NULL.
    pub sddl: *const c_char,
}

/// Port configuration (versioned: fill with [`ovl_port_config_init`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ovl_port_config {
    /// `size_of::<ovl_port_config>()` as the caller knows it.
    pub size: u32,
    /// Max ops in flight; default 256, 1..=16384.
    pub queue_depth: u32,
    /// `OVL_BACKEND_*`; `OVL_BACKEND=...` in the environment overrides AUTO.
    pub backend: u32,
    /// `OVL_PORT_*`.
    pub flags: u32,
    /// Worker threads of the threads backend; 0 = 4.
    pub threads: u32,
    /// Opt-in spin before sleeping, in microseconds; 0 = never spin.
    pub spin_usec: u32,
    /// May be `None` and set later with [`ovl_set_callback`].
    pub callback: ovl_callback,
    /// Passed to `callback`.
    pub userdata: *mut c_void,
}

/// A socket address (a `struct sockaddr` in `data`, `len` bytes of it).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct ovl_addr {
    /// The sockaddr's bytes.
    pub data: [u8; 128],
    /// Bytes of `data` in use.
    pub len: u32,
    /// 0.
    pub reserved: u32,
}

/// One request of a batch submit ([`ovl_submit`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ovl_request {
    /// `OVL_OP_READ`, `OVL_OP_WRITE` or `OVL_OP_FSYNC`.
    pub op: u32,
    /// `OVL_FSYNC_DATA` for fsync; 0 otherwise.
    pub flags: u32,
    /// The handle.
    pub fd: ovl_fd,
    /// Read target / write source.
    pub buf: *mut c_void,
    /// Length in bytes.
    pub len: u64,
    /// `>= 0` or [`OVL_OFFSET_CURRENT`].
    pub offset: i64,
    /// The caller's context.
    pub ctx: *mut c_void,
    /// Out: the op id once submitted, 0 if not.
    pub id: u64,
    /// `> 0`: cancel with `OVL_ETIMEDOUT` after this long; 0: none. For a
    /// timer, its delay.
    pub timeout_ns: i64,
}

/// Counters of a port (versioned: set `size` before [`ovl_port_stats`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ovl_stats {
    /// `size_of::<ovl_stats>()`.
    pub size: u32,
    /// Ops submitted whose completion has not been delivered.
    pub inflight: u32,
    /// Ops accepted since creation (posts included).
    pub submitted: u64,
    /// Completions delivered.
    pub completed: u64,
    /// Cancellation requests accepted.
    pub cancels: u64,
    /// Callback invocations.
    pub batches: u64,
    /// OS completions for unknown/stale ops (always 0 unless badly wrong).
    pub stale: u64,
    /// Enter/wait system calls made by the backend.
    pub syscalls: u64,
}

extern "C" {
    /// `OVL_VERSION_HEX` of the library actually loaded.
    pub fn ovl_version() -> u32;
    /// `"MAJOR.MINOR.PATCH"` of the loaded library; static storage.
    pub fn ovl_version_string() -> *const c_char;

    /// Message for an `OVL_E*` code; static storage, never NULL.
    pub fn ovl_strerror(code: i32) -> *const c_char;
    /// The code's name, e.g. `"OVL_EINVAL"`; static storage, never NULL.
    pub fn ovl_error_name(code: i32) -> *const c_char;

    /// Fill `*out` with defaults for a struct of `size` bytes.
    pub fn ovl_port_config_init(out: *mut ovl_port_config, size: u32) -> i32;
    /// Create a port; `cfg` may be NULL for defaults.
    pub fn ovl_create_port(cfg: *const ovl_port_config, out: *mut *mut ovl_port) -> i32;
    /// Register (or replace) the batch callback.
    pub fn ovl_set_callback(port: *mut ovl_port, cb: ovl_callback, userdata: *mut c_void) -> i32;
    /// Bind a handle to the port (required on Windows, harmless elsewhere).
    pub fn ovl_associate(port: *mut ovl_port, fd: ovl_fd) -> i32;
    /// Register an fd for speed (io_uring fixed file). The port holds its
    /// own reference to the open file: unregister BEFORE closing the fd.
    pub fn ovl_register_fd(port: *mut ovl_port, fd: ovl_fd) -> i32;
    /// Undo [`ovl_register_fd`].
    pub fn ovl_unregister_fd(port: *mut ovl_port, fd: ovl_fd) -> i32;
    /// Stop the port, deliver every remaining completion, free everything.
    pub fn ovl_close_port(port: *mut ovl_port) -> i32;
    /// `"uring"`, `"threads"` or `"iocp"`; `"invalid"` for NULL.
    pub fn ovl_backend_name(port: *const ovl_port) -> *const c_char;
    /// Why `OVL_BACKEND_AUTO` chooses what it chooses on this host.
    pub fn ovl_backend_reason(out_backend: *mut u32) -> *const c_char;

    /// Submit a read of `len` bytes into `buf` at `offset`.
    pub fn ovl_submit_read(
        port: *mut ovl_port,
        fd: ovl_fd,
        buf: *mut c_void,
        len: usize,
        offset: i64,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Submit a write of `len` bytes from `buf` at `offset`.
    pub fn ovl_submit_write(
        port: *mut ovl_port,
        fd: ovl_fd,
        buf: *const c_void,
        len: usize,
        offset: i64,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Submit an fsync (`OVL_FSYNC_DATA` for fdatasync).
    pub fn ovl_submit_fsync(
        port: *mut ovl_port,
        fd: ovl_fd,
        flags: u32,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Submit `n` requests with one lock and (io_uring) one system call.
    pub fn ovl_submit(
        port: *mut ovl_port,
        reqs: *mut ovl_request,
        n: usize,
        out_submitted: *mut usize,
    ) -> i32;
    /// Submit `n` requests, then deliver on the calling thread as
    /// `ovl_poll(port, timeout_ms)` does (one system call on a manual
    /// io_uring port). Returns completions delivered or a negative code.
    pub fn ovl_submit_and_poll(
        port: *mut ovl_port,
        reqs: *mut ovl_request,
        n: usize,
        out_submitted: *mut usize,
        timeout_ms: i32,
    ) -> i32;
    /// Accept a connection on a listening socket; the result is its handle.
    pub fn ovl_submit_accept(
        port: *mut ovl_port,
        listener: ovl_fd,
        peer: *mut ovl_addr,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Connect a socket to `addr` (borrowed until the completion).
    pub fn ovl_submit_connect(
        port: *mut ovl_port,
        sock: ovl_fd,
        addr: *const ovl_addr,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Shut down one or both directions (`OVL_SHUT_*`).
    pub fn ovl_submit_shutdown(
        port: *mut ovl_port,
        sock: ovl_fd,
        how: u32,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// A timer completing with 0 after `delay_ns`.
    pub fn ovl_submit_timer(
        port: *mut ovl_port,
        delay_ns: i64,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Post a user completion carrying `value` and `ctx`.
    pub fn ovl_post(port: *mut ovl_port, value: i64, ctx: *mut c_void, out_id: *mut u64) -> i32;
    /// Fill a local listener config with defaults.
    pub fn ovl_local_config_init(out: *mut ovl_local_config, size: u32) -> i32;
    /// Create a local listener on `port` (see ovl.h, "local endpoints").
    pub fn ovl_local_listen(
        port: *mut ovl_port,
        name: *const c_char,
        cfg: *const ovl_local_config,
        out: *mut *mut ovl_local,
    ) -> i32;
    /// Accept one connection on a local listener; the result is the handle.
    pub fn ovl_submit_local_accept(
        listener: *mut ovl_local,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Connect to a local endpoint by name; the result is the handle.
    pub fn ovl_submit_local_dial(
        port: *mut ovl_port,
        name: *const c_char,
        timeout_ns: i64,
        ctx: *mut c_void,
        out_id: *mut u64,
    ) -> i32;
    /// Close a local listener (its accepts in flight complete cancelled).
    pub fn ovl_local_close(listener: *mut ovl_local) -> i32;
    /// Request cancellation of op `id`; its one completion still follows.
    pub fn ovl_cancel(port: *mut ovl_port, id: u64) -> i32;

    /// Manual mode: deliver completions on the calling thread.
    pub fn ovl_poll(port: *mut ovl_port, timeout_ms: i32) -> i32;
    /// Manual mode: a handle that becomes readable when completions may be ready.
    pub fn ovl_port_event(port: *mut ovl_port, out: *mut ovl_fd) -> i32;

    /// Snapshot the port's counters (works on a closed port too).
    pub fn ovl_port_stats(port: *const ovl_port, out: *mut ovl_stats) -> i32;
}
