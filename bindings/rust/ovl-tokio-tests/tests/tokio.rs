//! ovl's futures under tokio, current-thread and multi-thread runtimes: the
//! port's completion thread wakes tokio tasks through std Wakers only.
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ovl::{File, IoBuf, IoBufMut, Port};

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, data: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ovl-tokio-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&p, data).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::unix::io::FromRawFd;
    extern "C" {
        fn pipe(fds: *mut i32) -> i32;
    }
    let mut fds = [0i32; 2];
    unsafe {
        assert_eq!(pipe(fds.as_mut_ptr()), 0);
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn finish(port: &Port) {
    port.close().unwrap();
    let s = port.stats();
    assert_eq!(s.inflight, 0, "{:?}", s);
    assert_eq!(s.submitted, s.completed, "{:?}", s);
}

/// A buffer that reports its drop on a channel.
struct Tracked(Vec<u8>, Arc<Mutex<mpsc::Sender<()>>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.1.lock().unwrap().send(());
    }
}

unsafe impl IoBuf for Tracked {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.0.len()
    }
}

unsafe impl IoBufMut for Tracked {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 64 spawned tasks x 16 reads each at scattered offsets of a known file,
/// through a queue of depth 8 (most submits meet back-pressure).
async fn many_spawned_readers() {
    let data = Arc::new(pattern(1 << 20, 11));
    let tmp = TempFile::new("many", &data);
    let port = Port::builder().queue_depth(8).build().unwrap();
    let file = File::new(&port, std::fs::File::open(&tmp.0).unwrap()).unwrap();
    let mut handles = Vec::new();
    for t in 0..64u64 {
        let (file, data) = (file.clone(), data.clone());
        handles.push(tokio::spawn(async move {
            let offs = pattern(16, 500 + t);
            for (i, o) in offs.iter().enumerate() {
                let off = (*o as usize * 4001 + i * 17) % (data.len() - 4096);
                let (n, buf) = file.read_at(vec![0u8; 4096], off as u64).await;
                assert_eq!(n.unwrap(), 4096);
                assert!(
                    buf == data[off..off + 4096],
                    "task {} wrong bytes at {}",
                    t,
                    off
                );
            }
            16
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    assert_eq!(total, 64 * 16);
    drop(file);
    finish(&port);
    assert_eq!(port.stats().completed, 64 * 16);
}

#[test]
fn concurrent_reads_current_thread() {
    current_thread().block_on(many_spawned_readers());
}

#[test]
fn concurrent_reads_multi_thread() {
    multi_thread().block_on(many_spawned_readers());
}

/// A task whose reads all resolve in their first poll (page cache, taken on
/// the polling thread) still yields now and then: on a current-thread
/// runtime a task spawned after it runs long before it has finished.
#[test]
fn always_ready_reads_let_other_tasks_run() {
    let data = pattern(1 << 20, 12);
    let tmp = TempFile::new("yield", &data);
    let port = Port::new().unwrap();
    let file = File::new(&port, std::fs::File::open(&tmp.0).unwrap()).unwrap();
    let flag = Arc::new(AtomicUsize::new(0));
    let seen_at = current_thread().block_on(async {
        let (f2, file2) = (flag.clone(), file.clone());
        let reader = tokio::spawn(async move {
            let mut seen_at = None;
            for i in 0..2000usize {
                if seen_at.is_none() && f2.load(Ordering::SeqCst) == 1 {
                    seen_at = Some(i);
                }
                let (n, _) = file2
                    .read_at(vec![0u8; 512], ((i * 4096) % (1 << 20)) as u64)
                    .await;
                assert_eq!(n.unwrap(), 512);
            }
            seen_at
        });
        let f3 = flag.clone();
        let other = tokio::spawn(async move { f3.store(1, Ordering::SeqCst) });
        other.await.unwrap();
        reader.await.unwrap()
    });
    let at = seen_at.expect("the other task ran only after 2000 reads");
    assert!(at <= 200, "the other task waited for {} reads", at);
    drop(file);
    finish(&port);
}

/// Two tasks talk over a pipe pair: ping on one, pong on the other.
async fn ping_pong() {
    let port = Port::new().unwrap();
    let (r1, w1) = pipe();
    let (r2, w2) = pipe();
    let (r1, w1) = (File::new(&port, r1).unwrap(), File::new(&port, w1).unwrap());
    let (r2, w2) = (File::new(&port, r2).unwrap(), File::new(&port, w2).unwrap());
    let echo = tokio::spawn(async move {
        loop {
            let (n, buf) = r1.read(vec![0u8; 16]).await;
            let n = n.unwrap();
            if n == 0 {
                return; // writer closed
            }
            let (m, _) = w2.write(buf[..n].to_vec()).await;
            assert_eq!(m.unwrap(), n);
        }
    });
    for i in 0..100u32 {
        let msg = i.to_le_bytes().to_vec();
        assert_eq!(w1.write(msg.clone()).await.0.unwrap(), 4);
        let mut got = Vec::new();
        while got.len() < 4 {
            let (n, buf) = r2.read(vec![0u8; 4 - got.len()]).await;
            got.extend_from_slice(&buf[..n.unwrap()]);
        }
        assert_eq!(got, msg);
    }
    drop(w1); // the echo task sees end of stream
    echo.await.unwrap();
    drop(r2);
    finish(&port);
}

#[test]
fn pipe_ping_pong_current_thread() {
    current_thread().block_on(ping_pong());
}

#[test]
fn pipe_ping_pong_multi_thread() {
    multi_thread().block_on(ping_pong());
}

/// tokio::time::timeout drops the pending read: the op is cancelled and
/// its buffer is freed once the completion arrives.
async fn timeout_cancels(port: Port) {
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tx, rx) = mpsc::channel();
    let buf = Tracked(vec![0u8; 64], Arc::new(Mutex::new(tx)));
    let res = tokio::time::timeout(Duration::from_millis(20), r.read(buf)).await;
    assert!(res.is_err(), "an empty pipe cannot be read");
    let freed = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(freed, Ok(()), "the dropped op's buffer was never freed");
    drop(r);
    finish(&port);
    assert_eq!(port.stats().cancels, 1);
}

#[test]
fn timeout_cancels_current_thread() {
    current_thread().block_on(timeout_cancels(Port::new().unwrap()));
}

#[test]
fn timeout_cancels_multi_thread() {
    multi_thread().block_on(timeout_cancels(Port::new().unwrap()));
}

/// select! between an ovl read and a tokio channel: the losing branch (the
/// read) is dropped and cancelled; the port is then still fully usable.
#[test]
fn select_drops_the_losing_read() {
    multi_thread().block_on(async {
        let port = Port::new().unwrap();
        let (r, mut w) = pipe();
        let r = File::new(&port, r).unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<u8>();
        tx.send(5).unwrap();
        let read = r.read(vec![0u8; 8]);
        tokio::select! {
            biased;
            v = &mut rx => assert_eq!(v.unwrap(), 5),
            _ = read => panic!("the pipe is empty"),
        }
        std::io::Write::write_all(&mut w, b"after").unwrap();
        let (n, buf) = r.read(vec![0u8; 8]).await;
        assert_eq!(&buf[..n.unwrap()], b"after");
        drop(r);
        finish(&port);
    });
}

/// Futures are Send + 'static: spawnable on any worker thread.
#[test]
fn futures_are_spawnable() {
    fn spawnable<F: Future + Send + 'static>(_: &F) {}
    let port = Port::new().unwrap();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let f = r.read(vec![0u8; 1]);
    spawnable(&f);
    spawnable(&r.sync());
    drop(f);
    drop(r);
    finish(&port);
}
