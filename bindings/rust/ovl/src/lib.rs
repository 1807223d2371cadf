//! Overlapped (completion-based) I/O for Rust: futures over the ovl C
//! library that work under any executor.
//!
//! A [`Port`] owns an ovl port and its completion thread. A [`File`] binds a
//! handle (file, pipe, socket) to a port and offers `read_at`, `write_at`,
//! `read`, `write`, `sync` and `sync_data`. Each operation takes its buffer
//! **by value** and resolves to `(io::Result<usize>, B)`: the buffer comes
//! back with the result. This is what makes cancellation safe: dropping a
//! pending future cancels the operation, and its buffer stays inside the
//! operation until the completion arrives — the kernel never writes into
//! freed memory.
//!
//! Only `std::task` is used: the port's callback stores each result and
//! calls the task's [`Waker`](std::task::Waker), so tokio, async-std, a
//! hand-written executor or the bundled [`block_on`] all work.
//!
//! ```
//! # let path = std::env::temp_dir().join(format!("ovl-doc-lib-{}", std::process::id()));
//! # std::fs::write(&path, vec![7u8; 8192]).unwrap();
//! let port = ovl::Port::new()?;
//! let file = ovl::File::open(&port, &path)?;
//! // Two reads in flight at once, driven by the minimal executor.
//! let (a, b) = ovl::block_on(async {
//!     let a = file.read_at(vec![0u8; 4096], 0);
//!     let b = file.read_at(vec![0u8; 4096], 4096);
//!     (a.await, b.await)
//! });
//! assert_eq!(a.0?, 4096);
//! assert_eq!(b.1, vec![7u8; 4096]);
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors are [`io::Error`](std::io::Error)s made from an [`Error`] (the
//! ovl code plus the raw OS error), recoverable with [`Error::from_io`].
//!
//! The library itself is found at build time by `ovl-sys` (see its docs:
//! `OVL_LIB_DIR`, the in-tree CMake build, or `pkg-config ovl`).
#![warn(missing_docs)]

mod block_on;
mod buf;
mod error;
mod file;
mod op;
mod port;
mod submitq;

pub use crate::block_on::block_on;
pub use crate::buf::{IoBuf, IoBufMut};
pub use crate::error::Error;
pub use crate::file::File;
pub use crate::op::{OpFuture, SyncFuture};
pub use crate::port::{Backend, Builder, Port, Stats};

/// The raw declarations this crate is built on.
pub use ovl_sys as sys;
