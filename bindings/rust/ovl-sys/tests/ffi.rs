//! Raw calls that need the library: version, error strings, a port's
//! create/post/close cycle through the callback, and bad input.
use ovl_sys::*;
use std::ffi::CStr;
use std::os::raw::c_void;
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

#[test]
fn version_matches_header() {
    assert_eq!(unsafe { ovl_version() }, OVL_VERSION_HEX);
    let s = unsafe { CStr::from_ptr(ovl_version_string()) }
        .to_str()
        .unwrap();
    assert_eq!(
        s,
        format!(
            "{}.{}.{}",
            OVL_VERSION_MAJOR, OVL_VERSION_MINOR, OVL_VERSION_PATCH
        )
    );
}

#[test]
fn error_names_and_messages() {
    let name = |c| {
        unsafe { CStr::from_ptr(ovl_error_name(c)) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    let msg = |c| {
        unsafe { CStr::from_ptr(ovl_strerror(c)) }
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(name(OVL_EINVAL), "OVL_EINVAL");
    assert_eq!(name(OVL_EQUEUEFULL), "OVL_EQUEUEFULL");
    assert_eq!(msg(OVL_ECANCELED), "operation cancelled");
    assert_eq!(msg(12345), "unknown error");
}

struct Seen {
    count: AtomicUsize,
    sum: AtomicI64,
}

unsafe extern "C" fn on_batch(items: *const ovl_completion, n: usize, userdata: *mut c_void) {
    let seen = &*(userdata as *const Seen);
    for c in std::slice::from_raw_parts(items, n) {
        assert_eq!(c.op, OVL_OP_POST);
        seen.sum.fetch_add(c.result, Ordering::SeqCst);
        seen.count.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn post_then_close_delivers_every_completion() {
    let seen = Seen {
        count: AtomicUsize::new(0),
        sum: AtomicI64::new(0),
    };
    unsafe {
        let mut cfg = std::mem::zeroed::<ovl_port_config>();
        assert_eq!(
            ovl_port_config_init(&mut cfg, std::mem::size_of::<ovl_port_config>() as u32),
            OVL_OK
        );
        assert_eq!(cfg.queue_depth, OVL_DEFAULT_QUEUE_DEPTH);
        cfg.callback = Some(on_batch);
        cfg.userdata = &seen as *const Seen as *mut c_void;
        let mut port = ptr::null_mut();
        assert_eq!(ovl_create_port(&cfg, &mut port), OVL_OK);
        for v in 1..=10 {
            let mut id = 0;
            assert_eq!(ovl_post(port, v, ptr::null_mut(), &mut id), OVL_OK);
            assert_ne!(id, 0);
        }
        assert_eq!(ovl_close_port(port), OVL_OK);
        // Closed: the stale handle is recognised, nothing crashes.
        assert_eq!(ovl_close_port(port), OVL_ECLOSED);
        let mut st = ovl_stats {
            size: std::mem::size_of::<ovl_stats>() as u32,
            ..Default::default()
        };
        assert_eq!(ovl_port_stats(port, &mut st), OVL_OK);
        assert_eq!(st.inflight, 0);
        assert_eq!(st.submitted, 10);
        assert_eq!(st.completed, 10);
    }
    assert_eq!(seen.count.load(Ordering::SeqCst), 10);
    assert_eq!(seen.sum.load(Ordering::SeqCst), 55);
}

#[test]
fn bad_input_is_rejected() {
    unsafe {
        assert_eq!(ovl_create_port(ptr::null(), ptr::null_mut()), OVL_EINVAL);
        assert_eq!(ovl_port_config_init(ptr::null_mut(), 40), OVL_EINVAL);
        let mut b = [0u8; 8];
        assert_eq!(
            ovl_submit_read(
                ptr::null_mut(),
                0,
                b.as_mut_ptr().cast(),
                8,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_EINVAL
        );
        let mut port = ptr::null_mut();
        assert_eq!(ovl_create_port(ptr::null(), &mut port), OVL_OK);
        // A NULL buffer with a length, a bad negative offset, a huge length,
        // an fd that can never be one: all fail at submit, no completion.
        // `fd` is a plausible descriptor / handle value (on Windows 0 is the
        // NULL handle, itself rejected with OVL_EBADF before the arguments).
        let fd: ovl_fd = if cfg!(windows) { 4 } else { 0 };
        assert_eq!(
            ovl_submit_read(
                port,
                fd,
                ptr::null_mut(),
                8,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_EINVAL
        );
        assert_eq!(
            ovl_submit_read(
                port,
                fd,
                b.as_mut_ptr().cast(),
                8,
                -2,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_EINVAL
        );
        assert_eq!(
            ovl_submit_read(
                port,
                fd,
                b.as_mut_ptr().cast(),
                OVL_MAX_IO_SIZE as usize + 1,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_ETOOBIG
        );
        assert_eq!(
            ovl_submit_read(
                port,
                u64::MAX,
                b.as_mut_ptr().cast(),
                8,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_EBADF
        );
        assert_eq!(ovl_cancel(port, 123_456), OVL_ENOENT);
        assert_eq!(ovl_close_port(port), OVL_OK);
        assert_eq!(
            ovl_submit_read(
                port,
                0,
                b.as_mut_ptr().cast(),
                8,
                0,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            OVL_ECLOSED
        );
    }
}
