//! `ovl::Error`: an ovl code plus the raw OS error behind it.
use std::ffi::CStr;
use std::fmt;
use std::io;

use ovl_sys as sys;

/// An error reported by ovl: one of the `OVL_E*` codes (the same number on
/// every OS) and, when the OS was involved, its raw error (`errno` or
/// `GetLastError()`), kept for diagnostics.
///
/// Operations on files return [`io::Error`]; an `ovl::Error` converts into
/// one with a fitting [`io::ErrorKind`] and can be recovered from it with
/// [`Error::from_io`].
///
/// ```
/// use std::io;
/// let e = ovl::Error::new(ovl::sys::OVL_EPIPE, 32);
/// assert_eq!(e.name(), "OVL_EPIPE");
/// let io: io::Error = e.into();
/// assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
/// assert_eq!(ovl::Error::from_io(&io), Some(e));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    code: i32,
    os_error: i32,
}

impl Error {
    /// An error from an `OVL_E*` code (negative) and a raw OS error (0 if
    /// none).
    pub fn new(code: i32, os_error: i32) -> Error {
        Error { code, os_error }
    }

    /// Turn a return value of the C API into a `Result`.
    pub(crate) fn check(rc: i32) -> Result<(), Error> {
        if rc >= 0 {
            Ok(())
        } else {
            Err(Error::new(rc, 0))
        }
    }

    /// The `OVL_E*` code, e.g. [`ovl_sys::OVL_EBADF`].
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The raw OS error behind the code (errno / `GetLastError()`), 0 if none.
    pub fn os_error(&self) -> i32 {
        self.os_error
    }

    /// The code's name, e.g. `"OVL_EINVAL"`.
    pub fn name(&self) -> &'static str {
        // SAFETY: ovl_error_name returns a static NUL-terminated string.
        unsafe { static_str(sys::ovl_error_name(self.code)) }
    }

    /// The code's message, e.g. `"invalid argument"`.
    pub fn message(&self) -> &'static str {
        // SAFETY: ovl_strerror returns a static NUL-terminated string.
        unsafe { static_str(sys::ovl_strerror(self.code)) }
    }

    /// The [`io::ErrorKind`] this error maps to.
    ///
    /// Notable choices: `OVL_EQUEUEFULL` and `OVL_EAGAIN` are `WouldBlock`;
    /// `OVL_ECANCELED` is `Other` (not `Interrupted`, which `std` retries);
    /// `OVL_ECLOSED` is `NotConnected`; `OVL_EOS` takes the kind of its OS
    /// error.
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self.code {
            sys::OVL_EINVAL | sys::OVL_EFAULT | sys::OVL_ETOOBIG => K::InvalidInput,
            sys::OVL_ENOMEM => K::OutOfMemory,
            sys::OVL_EQUEUEFULL | sys::OVL_EAGAIN => K::WouldBlock,
            sys::OVL_ECLOSED => K::NotConnected,
            sys::OVL_ENOENT => K::NotFound,
            sys::OVL_EUNAVAIL | sys::OVL_ENOTSUP => K::Unsupported,
            sys::OVL_EACCES => K::PermissionDenied,
            sys::OVL_EPIPE => K::BrokenPipe,
            sys::OVL_ECONNRESET => K::ConnectionReset,
            sys::OVL_EINTR => K::Interrupted,
            sys::OVL_ETIMEDOUT => K::TimedOut,
            sys::OVL_ECONNREFUSED => K::ConnectionRefused,
            sys::OVL_EADDRINUSE => K::AddrInUse,
            sys::OVL_EADDRNOTAVAIL => K::AddrNotAvailable,
            sys::OVL_ECONNABORTED => K::ConnectionAborted,
            sys::OVL_ENOTCONN => K::NotConnected,
            sys::OVL_ENOTFOUND => K::NotFound,
            sys::OVL_EOS if self.os_error != 0 => {
                io::Error::from_raw_os_error(self.os_error).kind()
            }
            _ => K::Other,
        }
    }

    /// The `ovl::Error` inside an [`io::Error`] made from one, if any.
    pub fn from_io(e: &io::Error) -> Option<Error> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
            .copied()
    }
}

/// # Safety
/// `p` must be a NUL-terminated string with static storage.
unsafe fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    CStr::from_ptr(p).to_str().unwrap_or("?")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())?;
        if self.os_error != 0 {
            write!(f, " (os error {})", self.os_error)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &format_args!("{} ({})", self.name(), self.code))
            .field("os_error", &self.os_error)
            .finish()
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}
