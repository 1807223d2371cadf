//! The hand-written declarations must match `include/ovl.h` exactly: this
//! test compiles a C program against the header (`layout_probe.c`, with the
//! system's `cc`, or `$CC`; or runs the prebuilt `$OVL_LAYOUT_PROBE`) that
//! prints every struct's size, alignment and field offsets and every
//! constant, and compares each line with what Rust says.
use ovl_sys::*;
use std::collections::BTreeMap;
use std::mem::{align_of, size_of, MaybeUninit};
use std::path::PathBuf;
use std::process::Command;
use std::ptr::addr_of;

macro_rules! offset {
    ($t:ty, $f:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        let base = u.as_ptr();
        // addr_of! on an uninitialised place creates no reference.
        let field = unsafe { addr_of!((*base).$f) };
        field as usize - base as usize
    }};
}

/// (key, value) pairs as the Rust side sees them; the C program prints the
/// same keys.
fn rust_side() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    macro_rules! st {
        ($t:ident { $($f:ident),* }) => {
            m.insert(format!("sizeof {}", stringify!($t)), size_of::<$t>() as i64);
            m.insert(format!("alignof {}", stringify!($t)), align_of::<$t>() as i64);
            $( m.insert(format!("offsetof {}.{}", stringify!($t), stringify!($f)),
                        offset!($t, $f) as i64); )*
        };
    }
    st!(ovl_completion {
        ctx,
        id,
        result,
        op,
        os_error
    });
    st!(ovl_port_config {
        size,
        queue_depth,
        backend,
        flags,
        threads,
        spin_usec,
        callback,
        userdata
    });
    st!(ovl_request {
        op,
        flags,
        fd,
        buf,
        len,
        offset,
        ctx,
        id,
        timeout_ns
    });
    st!(ovl_local_config {
        size,
        flags,
        mode,
        backlog,
        in_buffer,
        out_buffer,
        sddl
    });
    st!(ovl_addr {
        data,
        len,
        reserved
    });
    st!(ovl_stats {
        size,
        inflight,
        submitted,
        completed,
        cancels,
        batches,
        stale,
        syscalls
    });
    m.insert("sizeof ovl_fd".into(), size_of::<ovl_fd>() as i64);
    m.insert(
        "sizeof ovl_callback".into(),
        size_of::<ovl_callback>() as i64,
    );

    macro_rules! c {
        ($($n:ident),* $(,)?) => { $( m.insert(format!("const {}", stringify!($n)), $n as i64); )* };
    }
    c!(
        OVL_OK,
        OVL_EINVAL,
        OVL_EBADF,
        OVL_ENOMEM,
        OVL_EQUEUEFULL,
        OVL_ECLOSED,
        OVL_ECANCELED,
        OVL_ENOENT,
        OVL_EDEADLK,
        OVL_EUNAVAIL,
        OVL_ENOTSUP,
        OVL_EIO,
        OVL_EACCES,
        OVL_ENOSPC,
        OVL_EPIPE,
        OVL_ECONNRESET,
        OVL_EAGAIN,
        OVL_EINTR,
        OVL_EFAULT,
        OVL_ETOOBIG,
        OVL_EISDIR,
        OVL_EFBIG,
        OVL_EMODE,
        OVL_EOS,
        OVL_EFORKED,
        OVL_ETIMEDOUT,
        OVL_ECONNREFUSED,
        OVL_EADDRINUSE,
        OVL_ENETUNREACH,
        OVL_EHOSTUNREACH,
        OVL_ECONNABORTED,
        OVL_ENOTCONN,
        OVL_EADDRNOTAVAIL,
        OVL_ENOTFOUND,
        OVL__ERR_LAST,
        OVL_VERSION_MAJOR,
        OVL_VERSION_MINOR,
        OVL_VERSION_PATCH,
        OVL_VERSION_HEX,
        OVL_OFFSET_CURRENT,
        OVL_MAX_IO_SIZE,
        OVL_DEFAULT_QUEUE_DEPTH,
        OVL_MAX_QUEUE_DEPTH,
        OVL_MAX_REGISTERED_FDS,
        OVL_OP_READ,
        OVL_OP_WRITE,
        OVL_OP_FSYNC,
        OVL_OP_POST,
        OVL_FSYNC_DATA,
        OVL_OP_ACCEPT,
        OVL_OP_CONNECT,
        OVL_OP_SHUTDOWN,
        OVL_OP_TIMER,
        OVL_OP_LOCAL_ACCEPT,
        OVL_OP_LOCAL_DIAL,
        OVL_LOCAL_MESSAGE,
        OVL_LOCAL_ALLOW_REMOTE,
        OVL_SHUT_RD,
        OVL_SHUT_WR,
        OVL_SHUT_RDWR,
        OVL_ADDR_MAX,
        OVL_BACKEND_AUTO,
        OVL_BACKEND_URING,
        OVL_BACKEND_THREADS,
        OVL_BACKEND_IOCP,
        OVL_PORT_MANUAL,
        OVL_SPIN_NONE,
    );
    m
}

/// The probe's source (also compiled by scripts/test-windows-rust.sh with
/// the mingw-w64 compiler for the cross-built tests).
const C_PROGRAM: &str = include_str!("layout_probe.c");

fn include_dir() -> PathBuf {
    match std::env::var_os("OVL_INCLUDE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../include"),
    }
}

/// Build the probe with `$CC` (default `cc`) and return its path. A cross
/// build (the Windows tests under wine) cannot run the host's compiler: it
/// sets `OVL_LAYOUT_PROBE` to a probe compiled from `layout_probe.c` by the
/// target's C compiler, and this test runs that instead.
fn probe_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("OVL_LAYOUT_PROBE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ovl-sys-layout");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join(if cfg!(windows) {
        "layout.exe"
    } else {
        "layout"
    });
    std::fs::write(&src, C_PROGRAM).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {}", cc, e));
    assert!(
        out.status.success(),
        "compiling the layout probe failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn c_side() -> BTreeMap<String, i64> {
    let exe = probe_exe();
    let run = Command::new(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the layout probe {:?}: {}", exe, e));
    assert!(
        run.status.success(),
        "the layout probe {:?} failed: {:?}",
        exe,
        run.status
    );
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse::<i64>().unwrap())
        })
        .collect()
}

#[test]
fn rust_declarations_match_the_c_header() {
    let c = c_side();
    let r = rust_side();
    let mut problems = Vec::new();
    for (k, cv) in &c {
        match r.get(k) {
            None => problems.push(format!("{}: C has {}, Rust has no such item", k, cv)),
            Some(rv) if rv != cv => problems.push(format!("{}: C {} != Rust {}", k, cv, rv)),
            _ => {}
        }
    }
    for k in r.keys() {
        if !c.contains_key(k) {
            problems.push(format!(
                "{}: Rust declares it, the C probe does not print it",
                k
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ovl-sys drifted from ovl.h:\n{}",
        problems.join("\n")
    );
    // Sanity: the probe really printed the structs (not an empty map).
    assert_eq!(c["sizeof ovl_completion"], 32);
    assert_eq!(c["sizeof ovl_request"], 64);
    assert_eq!(c["sizeof ovl_addr"], 136);
}
