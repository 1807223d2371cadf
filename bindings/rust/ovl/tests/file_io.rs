//! Positional I/O on regular files: known contents, many concurrent tasks,
//! back-pressure, writes, sync, end of file.
mod common;

use common::*;
use ovl::{block_on, File};
use std::sync::Arc;

#[test]
fn backend_matches_ovl_backend_env() {
    let port = port();
    match std::env::var("OVL_BACKEND").as_deref() {
        Ok("uring") => assert_eq!(port.backend_name(), "uring"),
        Ok("threads") => assert_eq!(port.backend_name(), "threads"),
        _ => assert!(["uring", "threads", "iocp"].contains(&port.backend_name())),
    }
    finish(&port);
}

#[test]
fn read_at_returns_known_contents_into_every_buffer_type() {
    let data = pattern(64 * 1024, 1);
    let tmp = TempFile::new("known", &data);
    let port = port();
    let file = tmp.open(&port);
    block_on(async {
        let (n, v) = file.read_at(vec![0u8; 4096], 8192).await;
        assert_eq!(n.unwrap(), 4096);
        assert_eq!(v, &data[8192..12288]);

        let (n, b) = file
            .read_at(vec![0u8; 1000].into_boxed_slice(), 12345)
            .await;
        assert_eq!(n.unwrap(), 1000);
        assert_eq!(&b[..], &data[12345..13345]);

        let (n, a) = file.read_at([0u8; 100], 60_000).await;
        assert_eq!(n.unwrap(), 100);
        assert_eq!(&a[..], &data[60_000..60_100]);
    });
    finish(&port);
}

/// 64 tasks, each reading 16 chunks at scattered offsets (some unaligned,
/// odd lengths) from a 1 MiB file whose every byte is known. The queue
/// depth of 8 forces most submits through the back-pressure path.
fn many_readers(
    port: &ovl::Port,
    file: &File,
    data: &Arc<Vec<u8>>,
    tasks: usize,
    seed: u64,
) -> usize {
    let futs: Vec<_> = (0..tasks)
        .map(|t| {
            let file = file.clone();
            let data = data.clone();
            async move {
                let offs = pattern(16 * 8, seed + t as u64);
                let mut done = 0;
                for i in 0..16 {
                    let mut o = 0u64;
                    for b in &offs[i * 8..i * 8 + 8] {
                        o = (o << 8) | *b as u64;
                    }
                    let len = 1 + (o % 8192) as usize;
                    let off = (o >> 16) as usize % (data.len() - len);
                    let (n, buf) = file.read_at(vec![0u8; len], off as u64).await;
                    assert_eq!(n.unwrap(), len);
                    assert!(
                        buf == data[off..off + len],
                        "task {} read {} wrong bytes at {}",
                        t,
                        len,
                        off
                    );
                    done += 1;
                }
                done
            }
        })
        .collect();
    let done: usize = block_on(join_all(futs)).into_iter().sum();
    assert!(port.stats().inflight <= port.queue_depth());
    done
}

#[test]
fn concurrent_reads_from_many_tasks() {
    let data = Arc::new(pattern(1 << 20, 2));
    let tmp = TempFile::new("many", &data);
    let port = port_depth(8);
    let file = tmp.open(&port);
    assert_eq!(many_readers(&port, &file, &data, 64, 100), 64 * 16);
    drop(file);
    finish(&port);
    assert_eq!(port.stats().completed, 64 * 16);
}

#[test]
fn concurrent_reads_from_many_threads_share_one_port() {
    let data = Arc::new(pattern(1 << 20, 3));
    let tmp = TempFile::new("threads", &data);
    let port = port_depth(4);
    let file = tmp.open(&port);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (port, file, data) = (port.clone(), file.clone(), data.clone());
            std::thread::spawn(move || many_readers(&port, &file, &data, 16, 1000 * i))
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 4 * 16 * 16);
    drop(file);
    finish(&port);
    assert_eq!(port.stats().completed, 4 * 16 * 16);
}

#[test]
fn queue_depth_one_still_completes_everything() {
    let data = pattern(256 * 1024, 4);
    let tmp = TempFile::new("depth1", &data);
    let port = port_depth(1);
    let file = tmp.open(&port);
    let futs: Vec<_> = (0..32u64)
        .map(|i| file.read_at(vec![0u8; 512], i * 4096))
        .collect();
    for (i, (n, buf)) in block_on(join_all(futs)).into_iter().enumerate() {
        assert_eq!(n.unwrap(), 512);
        assert_eq!(buf, &data[i * 4096..i * 4096 + 512]);
    }
    finish(&port);
    assert_eq!(port.stats().submitted, 32);
}

#[test]
fn write_at_then_read_back_and_sync() {
    let tmp = TempFile::new("write", b"");
    let port = port();
    let file = tmp.open_rw(&port);
    let data = pattern(20_000, 5);
    block_on(async {
        let (n, back) = file.write_at(data.clone(), 0).await;
        assert_eq!(n.unwrap(), data.len());
        assert_eq!(back, data, "the buffer comes back unchanged");
        let (n, _) = file.write_at(String::from("tail"), 20_000).await;
        assert_eq!(n.unwrap(), 4);
        let (n, _) = file.write_at(&b"static"[..], 30_000).await;
        assert_eq!(n.unwrap(), 6);
        file.sync().await.unwrap();
        file.sync_data().await.unwrap();
    });
    let on_disk = std::fs::read(&tmp.path).unwrap();
    assert_eq!(on_disk.len(), 30_006);
    assert_eq!(&on_disk[..20_000], &data[..]);
    assert_eq!(&on_disk[20_000..20_004], b"tail");
    assert!(
        on_disk[20_004..30_000].iter().all(|&b| b == 0),
        "a hole reads as zeros"
    );
    assert_eq!(&on_disk[30_000..], b"static");
    finish(&port);
}

#[test]
fn end_of_file_and_short_reads() {
    let data = pattern(10_000, 6);
    let tmp = TempFile::new("eof", &data);
    let empty = TempFile::new("empty", b"");
    let port = port();
    let file = tmp.open(&port);
    let efile = empty.open(&port);
    block_on(async {
        // Straddling the end: a short read of what is there.
        let (n, buf) = file.read_at(vec![0u8; 4096], 8000).await;
        let n = n.unwrap();
        assert_eq!(n, 2000);
        assert_eq!(&buf[..n], &data[8000..]);
        // At and past the end: 0.
        assert_eq!(file.read_at(vec![0u8; 10], 10_000).await.0.unwrap(), 0);
        assert_eq!(file.read_at(vec![0u8; 10], 1 << 40).await.0.unwrap(), 0);
        assert_eq!(efile.read_at(vec![0u8; 10], 0).await.0.unwrap(), 0);
        // A zero-length read completes with 0.
        assert_eq!(file.read_at(Vec::new(), 0).await.0.unwrap(), 0);
    });
    drop((file, efile));
    finish(&port);
}

#[test]
fn futures_are_send_and_static() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let tmp = TempFile::new("send", b"abc");
    let port = port();
    let file = tmp.open(&port);
    let fut = file.read_at(vec![0u8; 3], 0);
    assert_send_static(&fut);
    // Submitted on one thread's executor, finished after being moved.
    let (n, buf) = std::thread::spawn(move || block_on(fut)).join().unwrap();
    assert_eq!((n.unwrap(), buf), (3, b"abc".to_vec()));
    drop(file);
    finish(&port);
}

/// On io_uring an owned handle is registered with the port (a fixed file)
/// while its `File` or any op on it lives, and unregistered before it is
/// closed: a file opened afterwards under the same number is read, not the
/// old one (what a registration left behind would make the kernel do).
#[cfg(unix)]
#[test]
fn owned_handles_are_registered_until_closed() {
    use ovl::sys::{ovl_register_fd, ovl_unregister_fd, OVL_EINVAL, OVL_ENOENT, OVL_OK};
    let a = TempFile::new("rega", &pattern(8192, 41));
    let b = TempFile::new("regb", &pattern(8192, 42));
    let port = port();
    let file = a.open(&port);
    let fd = file.as_raw();
    let (n, buf) = block_on(file.read_at(vec![0u8; 4096], 4096));
    assert_eq!(n.unwrap(), 4096);
    assert!(buf == pattern(8192, 41)[4096..]);
    // SAFETY: plain calls on a live port; they only change the fd's slot.
    let rc = unsafe { ovl_register_fd(port.as_raw(), fd) };
    if port.backend_name() == "uring" {
        assert_eq!(rc, OVL_EINVAL, "already registered by File::open");
    } else {
        // Not registered by the binding elsewhere; undo ours.
        assert_eq!(rc, OVL_OK);
        assert_eq!(unsafe { ovl_unregister_fd(port.as_raw(), fd) }, OVL_OK);
    }
    assert!(
        file.get_ref::<std::fs::File>().is_some(),
        "the owner is still reachable"
    );
    drop(file);
    assert_eq!(
        unsafe { ovl_unregister_fd(port.as_raw(), fd) },
        OVL_ENOENT,
        "unregistered with the File"
    );
    // The lowest free number: usually the one just closed.
    let f = std::fs::File::open(&b.path).unwrap();
    use std::os::unix::io::AsRawFd;
    if f.as_raw_fd() as u64 == fd {
        // SAFETY: `f` outlives the port's use of it (finish below).
        let raw = unsafe { File::from_raw(&port, fd).unwrap() };
        let (n, buf) = block_on(raw.read_at(vec![0u8; 4096], 0));
        assert_eq!(n.unwrap(), 4096);
        assert!(
            buf == pattern(8192, 42)[..4096],
            "read the old file through a stale registration"
        );
    }
    finish(&port);
    drop(f);
}
