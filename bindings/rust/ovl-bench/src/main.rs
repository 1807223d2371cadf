//! 4 KiB random reads from a page-cached file, at 1 and 64 in flight:
//! ovl futures (under ovl::block_on and under tokio on a port with a
//! completion thread, and under Port::block_on on a manual-mode port; the
//! first two also with `Builder::inline(false)`, rows "plain submit")
//! against tokio::fs::File and tokio::task::spawn_blocking(pread), and the
//! C core on the same workload (raw ovl-sys, resubmitting from the callback: what
//! bench/ovlbench.c's "ovl uring, resubmit in callback" does). Cases are
//! interleaved and repeated; the median ops/s of each is printed with its
//! ratios to tokio::fs and to the C core.
//!
//!     cargo run --release --manifest-path bindings/rust/ovl-bench/Cargo.toml [-- SECS_PER_RUN REPEATS FILE_MIB]
//!     cargo bench --manifest-path bindings/rust/ovl-bench/Cargo.toml   # same, defaults
use std::future::Future;
use std::os::raw::c_void;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ovl::sys;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

const BLOCK: u64 = 4096;

/// xorshift: a cheap, per-worker stream of block numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self, blocks: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % blocks
    }
}

struct Setup {
    path: std::path::PathBuf,
    blocks: u64,
}

/// Runs `workers` copies of a read loop until `secs` pass; returns ops/s.
type Case = fn(&Setup, usize, Duration) -> f64;

struct JoinAll<F: Future + Unpin>(Vec<Option<F>>);
impl<F: Future + Unpin> Future for JoinAll<F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = false;
        for slot in self.get_mut().0.iter_mut() {
            if let Some(f) = slot {
                if Pin::new(f).poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

async fn ovl_loop(
    file: ovl::File,
    blocks: u64,
    seed: u64,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) {
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; BLOCK as usize];
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (res, b) = file.read_at(buf, rng.next(blocks) * BLOCK).await;
        assert_eq!(res.unwrap(), BLOCK as usize);
        buf = b;
        n += 1;
    }
    ops.fetch_add(n, Ordering::Relaxed);
}

fn timer(stop: &Arc<AtomicBool>, d: Duration) -> std::thread::JoinHandle<()> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        stop.store(true, Ordering::Relaxed);
    })
}

/// The "plain submit" rows: the same cases on a port built with
/// `Builder::inline(false)`: the futures submit with the plain calls and
/// then call ovl_poll(port, 0) themselves (not ovl_submit_and_poll), and
/// the completion thread sleeps in the kernel.
static NO_INLINE: AtomicBool = AtomicBool::new(false);

fn threaded_port() -> ovl::Port {
    ovl::Port::builder()
        .queue_depth(256)
        .inline(!NO_INLINE.load(Ordering::Relaxed))
        .build()
        .unwrap()
}

fn without_inline(case: Case, s: &Setup, workers: usize, d: Duration) -> f64 {
    NO_INLINE.store(true, Ordering::Relaxed);
    let r = case(s, workers, d);
    NO_INLINE.store(false, Ordering::Relaxed);
    r
}

fn ovl_block_on_no_inline(s: &Setup, workers: usize, d: Duration) -> f64 {
    without_inline(ovl_block_on, s, workers, d)
}

fn ovl_tokio_no_inline(s: &Setup, workers: usize, d: Duration) -> f64 {
    without_inline(ovl_tokio, s, workers, d)
}

fn ovl_block_on(s: &Setup, workers: usize, d: Duration) -> f64 {
    let port = threaded_port();
    let file = ovl::File::open(&port, &s.path).unwrap();
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t0 = Instant::now();
    let t = timer(&stop, d);
    let futs = (0..workers)
        .map(|w| {
            Some(Box::pin(ovl_loop(
                file.clone(),
                s.blocks,
                w as u64 * 7919 + 1,
                stop.clone(),
                ops.clone(),
            )))
        })
        .collect();
    ovl::block_on(JoinAll(futs));
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

/// The C core's own pattern, through raw ovl-sys: `workers` reads submitted
/// with one batch `ovl_submit`, and the callback (on the port's completion
/// thread) resubmits each finished one in one batch `ovl_submit`, which the
/// port flushes with one system call after the callback returns. No futures,
/// no wakers, no cross-thread hand-off: the ceiling for the binding. The
/// file is registered with the port on io_uring, as `ovl::File` does.
struct Core {
    port: *mut sys::ovl_port,
    fd: sys::ovl_fd,
    blocks: u64,
    rng: Rng,
    deadline: Instant,
    stop: bool,
    inflight: usize,
    ops: u64,
    bufs: Vec<Vec<u8>>,
    reqs: Vec<sys::ovl_request>,
    finished: Mutex<bool>,
    cv: Condvar,
}

impl Core {
    fn req(&mut self, i: usize) -> sys::ovl_request {
        sys::ovl_request {
            op: sys::OVL_OP_READ,
            flags: 0,
            fd: self.fd,
            buf: self.bufs[i].as_mut_ptr() as *mut c_void,
            len: BLOCK,
            offset: (self.rng.next(self.blocks) * BLOCK) as i64,
            ctx: i as *mut c_void,
            id: 0,
            timeout_ns: 0,
        }
    }
}

unsafe extern "C" fn core_cb(items: *const sys::ovl_completion, n: usize, ud: *mut c_void) {
    // SAFETY: ud is the Core, touched only by callbacks (which never run
    // two at once) once the first batch was submitted; items/n is the batch.
    let s = &mut *(ud as *mut Core);
    let items = std::slice::from_raw_parts(items, n);
    if Instant::now() >= s.deadline {
        s.stop = true;
    }
    let mut reqs = std::mem::take(&mut s.reqs);
    reqs.clear();
    for c in items {
        if c.result != BLOCK as i64 {
            eprintln!("core: read returned {}", c.result);
            std::process::abort();
        }
        s.ops += 1;
        if s.stop {
            s.inflight -= 1;
        } else {
            reqs.push(s.req(c.ctx as usize));
        }
    }
    if !reqs.is_empty() {
        let mut done = 0;
        let rc = sys::ovl_submit(s.port, reqs.as_mut_ptr(), reqs.len(), &mut done);
        if rc != sys::OVL_OK || done != reqs.len() {
            eprintln!("core: ovl_submit in callback: {}", rc);
            std::process::abort();
        }
    }
    s.reqs = reqs;
    if s.stop && s.inflight == 0 {
        *s.finished.lock().unwrap() = true;
        s.cv.notify_one();
    }
}

fn c_core(s: &Setup, workers: usize, d: Duration) -> f64 {
    let f = std::fs::File::open(&s.path).unwrap();
    let mut core = Box::new(Core {
        port: std::ptr::null_mut(),
        fd: f.as_raw_fd() as sys::ovl_fd,
        blocks: s.blocks,
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        deadline: Instant::now() + d,
        stop: false,
        inflight: workers,
        ops: 0,
        bufs: vec![vec![0u8; BLOCK as usize]; workers],
        reqs: Vec::with_capacity(workers),
        finished: Mutex::new(false),
        cv: Condvar::new(),
    });
    let ud = &mut *core as *mut Core;
    // SAFETY: plain FFI on a port we own; `core` outlives the port (closed
    // below before it is dropped) and is only touched by the callback
    // between the first submit and `finished`.
    unsafe {
        let mut cfg: sys::ovl_port_config = std::mem::zeroed();
        sys::ovl_port_config_init(&mut cfg, std::mem::size_of::<sys::ovl_port_config>() as u32);
        cfg.queue_depth = 256;
        cfg.callback = Some(core_cb);
        cfg.userdata = ud as *mut c_void;
        assert_eq!(sys::ovl_create_port(&cfg, &mut (*ud).port), sys::OVL_OK);
        // As ovl::File does with a handle it owns: a fixed file on io_uring.
        if std::ffi::CStr::from_ptr(sys::ovl_backend_name((*ud).port)).to_bytes() == b"uring" {
            assert_eq!(sys::ovl_register_fd((*ud).port, (*ud).fd), sys::OVL_OK);
        }
        let mut init: Vec<sys::ovl_request> = (0..workers).map(|i| (*ud).req(i)).collect();
        let t0 = Instant::now();
        (*ud).deadline = t0 + d;
        let mut done = 0;
        assert_eq!(
            sys::ovl_submit((*ud).port, init.as_mut_ptr(), workers, &mut done),
            sys::OVL_OK
        );
        assert_eq!(done, workers);
        {
            let fin = &(*ud).finished;
            let mut g = fin.lock().unwrap();
            while !*g {
                g = (*ud).cv.wait(g).unwrap();
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        sys::ovl_close_port((*ud).port);
        let ops = (*ud).ops;
        drop(core);
        drop(f);
        ops as f64 / secs
    }
}

/// The same futures on a manual-mode port under `Port::block_on`: one
/// thread submits, delivers the completions and polls; no completion
/// thread.
fn ovl_manual(s: &Setup, workers: usize, d: Duration) -> f64 {
    let port = ovl::Port::builder()
        .queue_depth(256)
        .manual(true)
        .build()
        .unwrap();
    let file = ovl::File::open(&port, &s.path).unwrap();
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t0 = Instant::now();
    let t = timer(&stop, d);
    let futs = (0..workers)
        .map(|w| {
            Some(Box::pin(ovl_loop(
                file.clone(),
                s.blocks,
                w as u64 * 7919 + 1,
                stop.clone(),
                ops.clone(),
            )))
        })
        .collect();
    port.block_on(JoinAll(futs));
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn ovl_tokio(s: &Setup, workers: usize, d: Duration) -> f64 {
    let rt = rt();
    let port = threaded_port();
    let file = ovl::File::open(&port, &s.path).unwrap();
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t0 = Instant::now();
    let t = timer(&stop, d);
    rt.block_on(async {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                tokio::spawn(ovl_loop(
                    file.clone(),
                    s.blocks,
                    w as u64 * 7919 + 1,
                    stop.clone(),
                    ops.clone(),
                ))
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn tokio_fs(s: &Setup, workers: usize, d: Duration) -> f64 {
    let rt = rt();
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t0 = Instant::now();
    let t = timer(&stop, d);
    rt.block_on(async {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                let (path, blocks, stop, ops) =
                    (s.path.clone(), s.blocks, stop.clone(), ops.clone());
                tokio::spawn(async move {
                    // tokio::fs::File has no positional read: one handle per
                    // worker, seek + read_exact (what its users write).
                    let mut f = tokio::fs::File::open(path).await.unwrap();
                    let mut rng = Rng(w as u64 * 7919 + 1);
                    let mut buf = vec![0u8; BLOCK as usize];
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        f.seek(std::io::SeekFrom::Start(rng.next(blocks) * BLOCK))
                            .await
                            .unwrap();
                        f.read_exact(&mut buf).await.unwrap();
                        n += 1;
                    }
                    ops.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn spawn_blocking_pread(s: &Setup, workers: usize, d: Duration) -> f64 {
    let rt = rt();
    let file = Arc::new(std::fs::File::open(&s.path).unwrap());
    let (stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let t0 = Instant::now();
    let t = timer(&stop, d);
    rt.block_on(async {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                let (file, blocks, stop, ops) = (file.clone(), s.blocks, stop.clone(), ops.clone());
                tokio::spawn(async move {
                    let mut rng = Rng(w as u64 * 7919 + 1);
                    let mut buf = vec![0u8; BLOCK as usize];
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let off = rng.next(blocks) * BLOCK;
                        let f = file.clone();
                        buf = tokio::task::spawn_blocking(move || {
                            f.read_exact_at(&mut buf, off).unwrap();
                            buf
                        })
                        .await
                        .unwrap();
                        n += 1;
                    }
                    ops.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench: keep only our positional arguments.
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let mib: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(256);
    let d = Duration::from_secs_f64(secs);

    let path = std::env::temp_dir().join(format!("ovl-bench-{}", std::process::id()));
    {
        let f = std::fs::File::create(&path).unwrap();
        let chunk: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for i in 0..mib {
            f.write_all_at(&chunk, i << 20).unwrap();
        }
    }
    let setup = Setup {
        path: path.clone(),
        blocks: (mib << 20) / BLOCK,
    };
    let backend = ovl::Port::new().map(|p| p.backend_name()).unwrap_or("?");

    const FS: usize = 5;
    const CORE: usize = 7;
    let cases: [(&str, Case); 8] = [
        ("ovl (block_on)", ovl_block_on),
        ("ovl (tokio)", ovl_tokio),
        ("ovl (manual port)", ovl_manual),
        ("ovl (block_on), plain submit", ovl_block_on_no_inline),
        ("ovl (tokio), plain submit", ovl_tokio_no_inline),
        ("tokio::fs", tokio_fs),
        ("spawn_blocking(pread)", spawn_blocking_pread),
        ("C core (ovl-sys, cb)", c_core),
    ];
    println!(
        "4 KiB random reads, {} MiB file in page cache, ovl backend {}, {:.1} s x {} rounds (medians; \
         ratios are medians of per-round ratios)",
        mib, backend, secs, repeats
    );
    println!(
        "{:<30} {:>13} {:>7} {:>7} {:>13} {:>7} {:>7}",
        "", "1 in flight", "vs fs", "vs C", "64 in flight", "vs fs", "vs C"
    );
    // [case][column] -> (ops/s, vs fs, vs C)
    let mut table = vec![[(0.0f64, 0.0f64, 0.0f64); 2]; cases.len()];
    for (col, &workers) in [1usize, 64].iter().enumerate() {
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for round in 0..repeats {
            // Warm the file before every round: the page cache here is
            // reclaimed after about a minute unused.
            let _ = std::fs::read(&path).unwrap();
            // Rotate the order, so that no case always runs first.
            for k in 0..cases.len() {
                let i = (round + k) % cases.len();
                runs[i].push((cases[i].1)(&setup, workers, d));
            }
        }
        for i in 0..cases.len() {
            let ratio = |j: usize| median((0..repeats).map(|r| runs[i][r] / runs[j][r]).collect());
            table[i][col] = (median(runs[i].clone()), ratio(FS), ratio(CORE));
        }
    }
    for (i, (name, _)) in cases.iter().enumerate() {
        let [a, b] = table[i];
        println!(
            "{:<30} {:>11.0}/s {:>6.2}x {:>6.2}x {:>11.0}/s {:>6.2}x {:>6.2}x",
            name, a.0, a.1, a.2, b.0, b.1, b.2
        );
    }
    let _ = std::fs::remove_file(&path);
}
