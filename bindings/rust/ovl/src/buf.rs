//! Owned buffers: an operation takes its buffer by value and hands it back
//! with the result, so memory the kernel (or a worker thread) may still write
//! is never freed early, even if the future is dropped.

/// A buffer an operation can write *from* (the source of a write).
///
/// While an operation is in flight its buffer sits inside the operation's
/// shared state, at a fixed address, untouched by Rust; it is returned (or
/// dropped, if the future was dropped) only after the completion arrived.
///
/// # Safety
///
/// Implementors promise that `stable_ptr()` points to `bytes_init()`
/// initialised bytes that stay valid and unchanged for as long as the value
/// is neither moved, accessed nor dropped; calling `stable_ptr` or
/// `bytes_init` again without such an event returns the same values.
///
/// ```
/// use ovl::IoBuf;
/// let v = b"hello".to_vec();
/// assert_eq!(v.bytes_init(), 5);
/// ```
pub unsafe trait IoBuf: Send + 'static {
    /// Start of the bytes.
    fn stable_ptr(&self) -> *const u8;
    /// How many bytes are initialised (what a write sends).
    fn bytes_init(&self) -> usize;
}

/// A buffer an operation can read *into*: all of its `bytes_init()` bytes
/// (a `Vec`'s length, not its capacity; like `std::io::Read::read`, the
/// result says how many were filled).
///
/// # Safety
///
/// As for [`IoBuf`], and `stable_mut_ptr()` is valid for writes of
/// `bytes_init()` bytes under the same conditions.
///
/// ```
/// use ovl::IoBufMut;
/// let mut v = vec![0u8; 4096];
/// assert!(!v.stable_mut_ptr().is_null());
/// ```
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the writable bytes.
    fn stable_mut_ptr(&mut self) -> *mut u8;
}

unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

// An array lives inline in the operation's heap-allocated state, which does
// not move while the operation is in flight.
unsafe impl<const N: usize> IoBuf for [u8; N] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        N
    }
}

unsafe impl<const N: usize> IoBufMut for [u8; N] {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
}

unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}

unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
}
