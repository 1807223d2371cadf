//! 4 KiB random reads from a page-cached file, at 1 and 64 in flight:
//! ovl futures (under ovl::block_on and under tokio) against tokio::fs::File
//! and tokio::task::spawn_blocking(pread). Cases are interleaved and
//! repeated; the median ops/s of each is printed with its ratio to tokio::fs.
//!
//!     cargo run --release --manifest-path bindings/rust/ovl-bench/Cargo.toml [-- SECS_PER_RUN REPEATS FILE_MIB]
//!     cargo bench --manifest-path bindings/rust/ovl-bench/Cargo.toml   # same, defaults
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

async fn ovl_loop(file: ovl::File, blocks: u64, seed: u64, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
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

fn ovl_block_on(s: &Setup, workers: usize, d: Duration) -> f64 {
    let port = ovl::Port::builder().queue_depth(256).build().unwrap();
    let file = ovl::File::open(&port, &s.path).unwrap();
    let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let t = timer(&stop, d);
    let futs = (0..workers)
        .map(|w| Some(Box::pin(ovl_loop(file.clone(), s.blocks, w as u64 * 7919 + 1, stop.clone(), ops.clone()))))
        .collect();
    ovl::block_on(JoinAll(futs));
    let secs = t0.elapsed().as_secs_f64();
    t.join().unwrap();
    ops.load(Ordering::Relaxed) as f64 / secs
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn ovl_tokio(s: &Setup, workers: usize, d: Duration) -> f64 {
    let rt = rt();
    let port = ovl::Port::builder().queue_depth(256).build().unwrap();
    let file = ovl::File::open(&port, &s.path).unwrap();
    let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let t = timer(&stop, d);
    rt.block_on(async {
        let hs: Vec<_> = (0..workers)
            .map(|w| tokio::spawn(ovl_loop(file.clone(), s.blocks, w as u64 * 7919 + 1, stop.clone(), ops.clone())))
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
    let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let t = timer(&stop, d);
    rt.block_on(async {
        let hs: Vec<_> = (0..workers)
            .map(|w| {
                let (path, blocks, stop, ops) = (s.path.clone(), s.blocks, stop.clone(), ops.clone());
                tokio::spawn(async move {
                    // tokio::fs::File has no positional read: one handle per
                    // worker, seek + read_exact (what its users write).
                    let mut f = tokio::fs::File::open(path).await.unwrap();
                    let mut rng = Rng(w as u64 * 7919 + 1);
                    let mut buf = vec![0u8; BLOCK as usize];
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        f.seek(std::io::SeekFrom::Start(rng.next(blocks) * BLOCK)).await.unwrap();
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
    let (stop, ops) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
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
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        for i in 0..mib {
            f.write_all_at(&chunk, i << 20).unwrap();
        }
    }
    let setup = Setup { path: path.clone(), blocks: (mib << 20) / BLOCK };
    let backend = ovl::Port::new().map(|p| p.backend_name()).unwrap_or("?");

    let cases: [(&str, Case); 4] = [
        ("ovl (block_on)", ovl_block_on),
        ("ovl (tokio)", ovl_tokio),
        ("tokio::fs", tokio_fs),
        ("spawn_blocking(pread)", spawn_blocking_pread),
    ];
    println!(
        "4 KiB random reads, {} MiB file in page cache, ovl backend {}, {:.1} s x {} runs each (median)",
        mib, backend, secs, repeats
    );
    println!("{:<24} {:>14} {:>9} {:>14} {:>9}", "", "1 in flight", "vs fs", "64 in flight", "vs fs");
    let mut table = vec![[0.0f64; 2]; cases.len()];
    for (col, &workers) in [1usize, 64].iter().enumerate() {
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for _ in 0..repeats {
            // Warm the file before every round: the page cache here is
            // reclaimed after about a minute unused.
            let _ = std::fs::read(&path).unwrap();
            for (i, (_, case)) in cases.iter().enumerate() {
                runs[i].push(case(&setup, workers, d));
            }
        }
        for (i, r) in runs.into_iter().enumerate() {
            table[i][col] = median(r);
        }
    }
    let fs = table[2];
    for (i, (name, _)) in cases.iter().enumerate() {
        println!(
            "{:<24} {:>12.0}/s {:>8.2}x {:>12.0}/s {:>8.2}x",
            name,
            table[i][0],
            table[i][0] / fs[0],
            table[i][1],
            table[i][1] / fs[1]
        );
    }
    let _ = std::fs::remove_file(&path);
}
