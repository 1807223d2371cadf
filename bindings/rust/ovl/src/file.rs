//! `File`: a handle (file, pipe, socket, device) bound to a port, with
//! owned-buffer async I/O.
use std::any::Any;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::Arc;

use ovl_sys as sys;

use crate::op::{Keep, Kind, OpFuture, SyncFuture};
use crate::{Error, IoBuf, IoBufMut, Port};

/// A handle bound to a [`Port`]: a regular file, pipe, socket or character
/// device. Cheap to clone; the futures it returns are `'static` and can be
/// spawned.
///
/// `read_at`/`write_at` are positional (like `pread`/`pwrite`: the handle's
/// own position is neither used nor moved). `read`/`write` are stream I/O
/// (`OVL_OFFSET_CURRENT`) for pipes, sockets and character devices; on a
/// regular file use the positional forms.
///
/// Every operation takes its buffer by value and gives it back with the
/// result: `(io::Result<usize>, B)`. A read reports 0 at end of file.
///
/// ```
/// # let path = std::env::temp_dir().join(format!("ovl-doc-file-{}", std::process::id()));
/// let port = ovl::Port::new()?;
/// let file = ovl::File::create(&port, &path)?;
/// ovl::block_on(async {
///     let (n, _) = file.write_at(b"hello, world".to_vec(), 0).await;
///     assert_eq!(n?, 12);
///     let (n, buf) = file.read_at(vec![0u8; 5], 7).await;
///     assert_eq!(&buf[..n?], b"world");
///     let (n, _) = file.read_at(vec![0u8; 5], 12).await;
///     assert_eq!(n?, 0); // end of file
///     Ok::<(), std::io::Error>(())
/// })?;
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct File {
    port: Port,
    fd: sys::ovl_fd,
    /// The owner of the handle (None for a borrowed raw handle). Every op
    /// holds a clone until its completion, so the handle is closed only
    /// when the File and all of its operations are gone.
    keep: Option<Keep>,
}

/// A port handle that outlives the port: `ovl_port *` is a handle (slot and
/// generation), not an address, so after close it answers `OVL_ECLOSED`.
struct RawPort(*mut sys::ovl_port);
// SAFETY: the C port is thread-safe, and only used for ovl_unregister_fd.
unsafe impl Send for RawPort {}
unsafe impl Sync for RawPort {}

/// An owned handle registered with its port (`ovl_register_fd`). It is the
/// `keep` of the `File` and of every op on it, so it goes when the last of
/// them does: then the fd is unregistered first and closed after (the
/// order `ovl.h` requires; closing the port unregisters it too, and a
/// later unregister answers `OVL_ECLOSED`). It holds no `Port`, so ops in
/// flight do not keep the port open.
struct Registered {
    port: RawPort,
    fd: sys::ovl_fd,
    owner: Keep,
}

impl Drop for Registered {
    fn drop(&mut self) {
        // SAFETY: see RawPort. `owner` (the handle) is dropped after this.
        unsafe { sys::ovl_unregister_fd(self.port.0, self.fd) };
    }
}

fn read_prep<B: IoBufMut>(b: &mut B) -> (*mut u8, usize) {
    (b.stable_mut_ptr(), b.bytes_init())
}

fn write_prep<B: IoBuf>(b: &mut B) -> (*mut u8, usize) {
    (b.stable_ptr() as *mut u8, b.bytes_init())
}

impl File {
    /// Bind an owned handle to `port` (`ovl_associate`). The handle is
    /// closed when this `File`, its clones and all of their operations are
    /// gone. Works with `std::fs::File`, `UnixStream`, `TcpStream`,
    /// `ChildStdout`, ... anything `AsRawFd + Send + Sync`.
    #[cfg(unix)]
    pub fn new<T>(port: &Port, io: T) -> Result<File, Error>
    where
        T: std::os::unix::io::AsRawFd + Send + Sync + 'static,
    {
        let fd = io.as_raw_fd() as sys::ovl_fd;
        File::with_keep(port, fd, Some(Arc::new(io)))
    }

    /// Bind an owned handle to `port` (`ovl_associate`, which binds it to
    /// the completion port for the handle's lifetime). The handle must have
    /// been opened for overlapped I/O (`FILE_FLAG_OVERLAPPED`).
    #[cfg(windows)]
    pub fn new<T>(port: &Port, io: T) -> Result<File, Error>
    where
        T: std::os::windows::io::AsRawHandle + Send + Sync + 'static,
    {
        let fd = io.as_raw_handle() as usize as sys::ovl_fd;
        File::with_keep(port, fd, Some(Arc::new(io)))
    }

    /// Bind an owned socket (`TcpStream`, ...) to `port`. A socket is a
    /// `SOCKET`, not a `HANDLE`, so [`File::new`] does not take it; std's
    /// sockets are created for overlapped I/O and work as they are. The
    /// same call exists on Unix (where it is [`File::new`]), so portable
    /// code binds sockets with it.
    #[cfg(windows)]
    pub fn from_socket<T>(port: &Port, io: T) -> Result<File, Error>
    where
        T: std::os::windows::io::AsRawSocket + Send + Sync + 'static,
    {
        let fd = io.as_raw_socket() as sys::ovl_fd;
        File::with_keep(port, fd, Some(Arc::new(io)))
    }

    /// Bind an owned socket to `port`. On Unix the same as [`File::new`];
    /// on Windows, where a socket is a `SOCKET` and not a `HANDLE`, the
    /// only way. Portable code binds sockets with this.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::{TcpListener, TcpStream};
    /// let port = ovl::Port::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (mut server, _) = listener.accept()?;
    /// let client = ovl::File::from_socket(&port, client)?;
    /// let (n, _) = ovl::block_on(client.write("ping"));
    /// assert_eq!(n?, 4);
    /// let mut got = [0u8; 4];
    /// server.read_exact(&mut got)?;
    /// assert_eq!(&got, b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn from_socket<T>(port: &Port, io: T) -> Result<File, Error>
    where
        T: std::os::unix::io::AsRawFd + Send + Sync + 'static,
    {
        File::new(port, io)
    }

    /// Open an existing file for reading, bound to `port`.
    ///
    /// ```
    /// let port = ovl::Port::new()?;
    /// let file = ovl::File::open(&port, "Cargo.toml")?;
    /// let (n, buf) = ovl::block_on(file.read_at(vec![0u8; 9], 0));
    /// assert_eq!(&buf[..n?], b"[package]");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open<P: AsRef<Path>>(port: &Port, path: P) -> io::Result<File> {
        File::open_with(port, OpenOptions::new().read(true), path)
    }

    /// Create (or truncate) a file for reading and writing, bound to `port`.
    pub fn create<P: AsRef<Path>>(port: &Port, path: P) -> io::Result<File> {
        File::open_with(
            port,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
            path,
        )
    }

    /// Open `path` with `options`, bound to `port`. On Windows this sets
    /// `FILE_FLAG_OVERLAPPED` through `custom_flags` (replacing custom flags
    /// set before), which IOCP requires; elsewhere the options are used as
    /// they are.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("ovl-doc-open-with-{}", std::process::id()));
    /// use std::fs::OpenOptions;
    /// let port = ovl::Port::new()?;
    /// let file = ovl::File::open_with(&port, OpenOptions::new().write(true).create(true), &path)?;
    /// let (n, _) = ovl::block_on(file.write_at("abc", 0));
    /// assert_eq!(n?, 3);
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_with<P: AsRef<Path>>(
        port: &Port,
        options: &mut OpenOptions,
        path: P,
    ) -> io::Result<File> {
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            const FILE_FLAG_OVERLAPPED: u32 = 0x4000_0000;
            options.custom_flags(FILE_FLAG_OVERLAPPED);
        }
        let f = options.open(path)?;
        Ok(File::new(port, f)?)
    }

    /// Use a raw handle that this `File` does not own.
    ///
    /// # Safety
    ///
    /// The handle must stay open, and refer to the same object, until every
    /// operation submitted through this `File` (or its clones) has
    /// *completed* — not merely until the futures are dropped: a dropped
    /// future's operation may still be running. Closing the port (or
    /// dropping every handle to it) waits for all of them. Breaking this
    /// can make a write land in whatever file reuses the number.
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::os::unix::io::AsRawFd;
    /// let port = ovl::Port::new()?;
    /// let f = std::fs::File::open("/dev/zero")?;
    /// // SAFETY: `f` outlives the port, whose close waits for every op.
    /// let file = unsafe { ovl::File::from_raw(&port, f.as_raw_fd() as u64)? };
    /// let (n, buf) = ovl::block_on(file.read(vec![1u8; 8]));
    /// assert_eq!((n?, buf), (8, vec![0u8; 8]));
    /// port.close()?;
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn from_raw(port: &Port, fd: sys::ovl_fd) -> Result<File, Error> {
        File::with_keep(port, fd, None)
    }

    fn with_keep(port: &Port, fd: sys::ovl_fd, keep: Option<Keep>) -> Result<File, Error> {
        // SAFETY: the port handle is alive; the fd is borrowed by the call.
        Error::check(unsafe { sys::ovl_associate(port.as_raw(), fd) })?;
        let keep = match keep {
            // An owned handle on io_uring: register it (a fixed file, no
            // per-op file lookup in the kernel), as long as the port has a
            // free slot. Borrowed handles are not: we could not tell when
            // they are closed.
            // SAFETY: as above.
            Some(owner)
                if port.caps().uring
                    && unsafe { sys::ovl_register_fd(port.as_raw(), fd) } == sys::OVL_OK =>
            {
                Some(Arc::new(Registered {
                    port: RawPort(port.as_raw()),
                    fd,
                    owner,
                }) as Keep)
            }
            other => other,
        };
        Ok(File {
            port: port.clone(),
            fd,
            keep,
        })
    }

    /// The port this handle is bound to.
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The raw handle (as `ovl_fd`).
    pub fn as_raw(&self) -> sys::ovl_fd {
        self.fd
    }

    /// The owned handle this `File` was made from, if it is a `T`.
    ///
    /// ```
    /// let port = ovl::Port::new()?;
    /// let file = ovl::File::open(&port, "Cargo.toml")?;
    /// assert!(file.get_ref::<std::fs::File>().is_some());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn get_ref<T: Any>(&self) -> Option<&T> {
        let k = self.keep.as_ref()?;
        match k.downcast_ref::<Registered>() {
            Some(r) => r.owner.downcast_ref::<T>(),
            None => k.downcast_ref::<T>(),
        }
    }

    fn positional(offset: u64) -> Result<i64, Error> {
        if offset > i64::MAX as u64 {
            Err(Error::new(sys::OVL_EINVAL, 0))
        } else {
            Ok(offset as i64)
        }
    }

    fn op<B: Send + 'static>(
        &self,
        kind: Kind,
        buf: B,
        prep: fn(&mut B) -> (*mut u8, usize),
    ) -> OpFuture<B> {
        OpFuture::new(
            self.port.clone(),
            self.fd,
            self.keep.clone(),
            kind,
            buf,
            prep,
        )
    }

    /// Read into `buf` (all of its `bytes_init()` bytes, e.g. a `Vec`'s
    /// length) at `offset`. Resolves to the byte count — less than asked
    /// near the end of the file, 0 at or past it — and the buffer.
    ///
    /// An offset above `i64::MAX` resolves to `OVL_EINVAL`.
    pub fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> OpFuture<B> {
        match File::positional(offset) {
            Ok(off) => self.op(Kind::Read(off), buf, read_prep::<B>),
            Err(e) => OpFuture::failed(self.port.clone(), Kind::Read(-1), e, buf),
        }
    }

    /// Write `buf` (its `bytes_init()` bytes) at `offset`. Resolves to the
    /// byte count, which may be short, and the buffer.
    pub fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> OpFuture<B> {
        match File::positional(offset) {
            Ok(off) => self.op(Kind::Write(off), buf, write_prep::<B>),
            Err(e) => OpFuture::failed(self.port.clone(), Kind::Write(-1), e, buf),
        }
    }

    /// Stream read (pipes, sockets, devices): the next bytes available, up
    /// to the buffer's length. 0 means end of stream (writer closed).
    ///
    /// ```
    /// # #[cfg(unix)] {
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// let port = ovl::Port::new()?;
    /// let (mut a, b) = UnixStream::pair()?;
    /// a.write_all(b"ping")?;
    /// let b = ovl::File::new(&port, b)?;
    /// let (n, buf) = ovl::block_on(b.read(vec![0u8; 16]));
    /// assert_eq!(&buf[..n?], b"ping");
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read<B: IoBufMut>(&self, buf: B) -> OpFuture<B> {
        self.op(Kind::Read(sys::OVL_OFFSET_CURRENT), buf, read_prep::<B>)
    }

    /// Stream write (pipes, sockets, devices). May be short.
    pub fn write<B: IoBuf>(&self, buf: B) -> OpFuture<B> {
        self.op(Kind::Write(sys::OVL_OFFSET_CURRENT), buf, write_prep::<B>)
    }

    /// Flush data and metadata to storage (`fsync`).
    pub fn sync(&self) -> SyncFuture {
        SyncFuture(self.op(Kind::Fsync(0), (), |_| (std::ptr::null_mut(), 0)))
    }

    /// Flush data to storage (`fdatasync`).
    pub fn sync_data(&self) -> SyncFuture {
        SyncFuture(self.op(Kind::Fsync(sys::OVL_FSYNC_DATA), (), |_| {
            (std::ptr::null_mut(), 0)
        }))
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.fd)
            .field("owned", &self.keep.is_some())
            .finish()
    }
}
