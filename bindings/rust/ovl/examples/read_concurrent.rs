//! Reads a file with many 4 KiB reads in flight under the crate's minimal
//! executor, checks every byte against a plain `std::fs::read`, and prints
//! the backend and the throughput.
//!
//!     cargo run --release --example read_concurrent [FILE] [IN_FLIGHT]
//!
//! Without FILE it writes (and removes) an 8 MiB temporary file.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Poll all futures of a vector until every one has resolved.
struct JoinAll<F: Future + Unpin> {
    futs: Vec<Option<F>>,
    outs: Vec<Option<F::Output>>,
}

// Outputs are only moved, never pinned.
impl<F: Future + Unpin> Unpin for JoinAll<F> {}

impl<F: Future + Unpin> Future for JoinAll<F> {
    type Output = Vec<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut pending = false;
        for (slot, out) in this.futs.iter_mut().zip(this.outs.iter_mut()) {
            if let Some(f) = slot {
                match Pin::new(f).poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.outs.iter_mut().map(|o| o.take().unwrap()).collect())
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let temp = std::env::temp_dir().join(format!("ovl-read-concurrent-{}", std::process::id()));
    let path = match args.get(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let data: Vec<u8> = (0..8u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            std::fs::write(&temp, data)?;
            temp.clone()
        }
    };
    let in_flight: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    const CHUNK: usize = 4096;

    let expect = std::fs::read(&path)?;
    let port = ovl::Port::builder().queue_depth(in_flight as u32).build()?;
    let file = ovl::File::open(&port, &path)?;
    let chunks = (expect.len() + CHUNK - 1) / CHUNK;

    let start = Instant::now();
    let mut got = vec![0u8; expect.len()];
    let mut next = 0;
    while next < chunks {
        // One wave of `in_flight` reads, each owning its buffer.
        let wave: Vec<_> = (next..chunks.min(next + in_flight))
            .map(|c| file.read_at(vec![0u8; CHUNK], (c * CHUNK) as u64))
            .collect();
        let n = wave.len();
        let all = JoinAll {
            outs: (0..n).map(|_| None).collect(),
            futs: wave.into_iter().map(Some).collect(),
        };
        let results = ovl::block_on(all);
        for (i, (res, buf)) in results.into_iter().enumerate() {
            let off = (next + i) * CHUNK;
            let len = res?;
            got[off..off + len].copy_from_slice(&buf[..len]);
        }
        next += n;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = got == expect;
    println!(
        "rust read_concurrent: backend {}, {} reads of {} B, {} in flight: {:.0} ops/s, {:.1} MiB/s, contents {}",
        port.backend_name(),
        chunks,
        CHUNK,
        in_flight,
        chunks as f64 / secs,
        expect.len() as f64 / secs / (1 << 20) as f64,
        if ok { "verified" } else { "MISMATCH" }
    );
    drop(file);
    port.close()?;
    let _ = std::fs::remove_file(&temp);
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
