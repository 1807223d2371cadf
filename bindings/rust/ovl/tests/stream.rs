//! Stream I/O (OVL_OFFSET_CURRENT) on pipes and sockets. On Unix plain
//! pipes and `UnixStream` pairs; on Windows overlapped named pipes and
//! loopback TCP sockets (see `common::pipe`, `common::socket_pair`).
mod common;

use common::*;
use ovl::{block_on, File};
use std::io::{Read, Write};

#[test]
fn pipe_roundtrip() {
    let port = port();
    let (r, w) = pipe();
    let (r, w) = (File::new(&port, r).unwrap(), File::new(&port, w).unwrap());
    let msg = pattern(3000, 7);
    block_on(async {
        let (n, _) = w.write(msg.clone()).await;
        assert_eq!(n.unwrap(), 3000);
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let (n, buf) = r.read(vec![0u8; 1024]).await;
            let n = n.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, msg);
    });
    drop((r, w));
    finish(&port);
}

#[test]
fn read_on_an_empty_pipe_waits_for_the_writer() {
    let port = port();
    let (r, mut w) = pipe_with_blocking_writer();
    let r = File::new(&port, r).unwrap();
    let (waker, wakes) = counting_waker();
    let mut fut = r.read(vec![0u8; 64]);
    // Nothing has been written, so the read cannot have completed.
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert!(fut.id().is_some());
    assert_eq!(wakes.count(), 0);
    w.write_all(b"hello").unwrap();
    let (n, buf) = block_on(fut);
    assert_eq!(&buf[..n.unwrap()], b"hello");
    drop(r);
    finish(&port);
}

#[test]
fn pipe_end_of_stream_is_zero() {
    let port = port();
    let (r, mut w) = pipe_with_blocking_writer();
    w.write_all(b"last").unwrap();
    drop(w);
    let r = File::new(&port, r).unwrap();
    block_on(async {
        let (n, buf) = r.read(vec![0u8; 64]).await;
        assert_eq!(&buf[..n.unwrap()], b"last");
        assert_eq!(r.read(vec![0u8; 64]).await.0.unwrap(), 0);
    });
    drop(r);
    finish(&port);
}

#[test]
fn pending_pipe_read_sees_end_of_stream_when_writer_closes() {
    let port = port();
    let (r, w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (waker, _) = counting_waker();
    let mut fut = r.read(vec![0u8; 64]);
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(w);
    assert_eq!(block_on(fut).0.unwrap(), 0);
    drop(r);
    finish(&port);
}

#[test]
fn write_to_a_pipe_without_reader_is_broken_pipe() {
    let port = port();
    let (r, w) = pipe();
    drop(r);
    let w = File::new(&port, w).unwrap();
    let (res, buf) = block_on(w.write(b"x".to_vec()));
    let e = res.unwrap_err();
    assert_eq!(code_of(&e), ovl::sys::OVL_EPIPE);
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(buf, b"x", "the buffer comes back with the error");
    drop(w);
    finish(&port);
}

#[test]
fn socket_pair_echo_between_two_threads() {
    let port = port();
    let (a, b) = socket_pair();
    let (a, b) = (
        File::from_socket(&port, a).unwrap(),
        File::from_socket(&port, b).unwrap(),
    );
    const ROUNDS: usize = 50;
    let server = std::thread::spawn(move || {
        block_on(async move {
            for _ in 0..ROUNDS {
                let mut req = Vec::new();
                while req.len() < 8 {
                    let (n, buf) = b.read(vec![0u8; 8 - req.len()]).await;
                    let n = n.unwrap();
                    assert!(n > 0, "client hung up early");
                    req.extend_from_slice(&buf[..n]);
                }
                assert_eq!(b.write(req.to_ascii_uppercase()).await.0.unwrap(), 8);
            }
        })
    });
    block_on(async {
        for i in 0..ROUNDS {
            let msg = format!("msg{:05}", i);
            assert_eq!(a.write(msg.clone().into_bytes()).await.0.unwrap(), 8);
            let mut reply = Vec::new();
            while reply.len() < 8 {
                let (n, buf) = a.read(vec![0u8; 8 - reply.len()]).await;
                let n = n.unwrap();
                assert!(n > 0, "server hung up early");
                reply.extend_from_slice(&buf[..n]);
            }
            assert_eq!(reply, msg.to_uppercase().into_bytes());
        }
    });
    server.join().unwrap();
    drop(a);
    finish(&port);
}

#[test]
fn many_stream_reads_in_flight_on_one_pipe_lose_no_byte() {
    let port = port_depth(16);
    let (r, mut w) = pipe_with_blocking_writer();
    let r = File::new(&port, r).unwrap();
    let (waker, _) = counting_waker();
    // 16 reads of 100 bytes in flight, then 1600 bytes written in one go.
    let mut futs: Vec<_> = (0..16).map(|_| r.read(vec![0u8; 100])).collect();
    for f in futs.iter_mut() {
        assert!(poll_once(f, &waker).is_pending());
    }
    let data = pattern(1600, 8);
    w.write_all(&data).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    for f in futs {
        let (n, buf) = block_on(f);
        let n = n.unwrap();
        total += n;
        got.push(buf[..n].to_vec());
    }
    assert_eq!(total, 1600);
    // Each read took a contiguous piece; together they are the whole stream.
    let mut all: Vec<u8> = got.concat();
    let mut want = data.clone();
    all.sort_unstable();
    want.sort_unstable();
    assert_eq!(all, want);
    drop(r);
    finish(&port);
    drop(w);
}

#[test]
fn std_side_sees_what_ovl_wrote_to_a_socket() {
    let port = port();
    let (a, mut b) = socket_pair();
    let a = File::from_socket(&port, a).unwrap();
    let (n, _) = block_on(a.write("via ovl"));
    assert_eq!(n.unwrap(), 7);
    let mut got = [0u8; 7];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"via ovl");
    drop(a);
    finish(&port);
}
