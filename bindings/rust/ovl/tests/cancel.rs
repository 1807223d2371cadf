//! Cancellation by drop, close with operations pending, and the buffer's
//! life: kept until the completion arrives, then freed exactly once. The
//! pending reads are on pipes (named pipes on Windows: `common::pipe`).
mod common;

use common::*;
use ovl::{block_on, File, Port};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Manual mode makes the timing deterministic: completions (and so buffer
/// releases) happen only inside `poll`. A dropped future's buffer must
/// survive the drop and be freed by the completion, not before.
#[test]
fn dropped_future_keeps_its_buffer_until_the_completion() {
    let port = Port::builder().manual(true).build().unwrap();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tracker, _rx) = Tracker::new();
    let (waker, wakes) = counting_waker();

    let mut fut = r.read(tracker.buf(64, 1));
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(port.stats().inflight, 1);
    drop(fut); // cancels

    assert_eq!(tracker.live(), 1, "freed while the library still owns it");
    assert_eq!(
        port.stats().inflight,
        1,
        "the cancelled op still owes its completion"
    );
    assert_eq!(port.stats().cancels, 1);

    let mut delivered = 0;
    while delivered == 0 {
        delivered = port.poll(Some(WAIT)).unwrap();
    }
    assert_eq!(delivered, 1);
    assert_eq!(tracker.live(), 0, "the completion frees the parked buffer");
    assert_eq!(wakes.count(), 0, "a dropped future's task is not woken");
    drop(r);
    finish(&port);
    assert_eq!(tracker.created(), 1);
}

/// The same with a completion thread: the drop is reported on a channel by
/// the buffer itself, which must happen (within a generous bound).
#[test]
fn dropped_pending_read_frees_its_buffer_once_cancelled() {
    let port = port();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tracker, rx) = Tracker::new();
    let (waker, _) = counting_waker();
    let mut fut = r.read(tracker.buf(64, 7));
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut);
    assert_eq!(
        rx.recv_timeout(WAIT),
        Ok(7),
        "the cancelled op's buffer was never freed"
    );
    assert_eq!(tracker.live(), 0);
    drop(r);
    finish(&port);
    let s = port.stats();
    assert_eq!((s.submitted, s.completed, s.cancels), (1, 1, 1));
}

/// close() resolves every pending future with OVL_ECANCELED and hands each
/// buffer back intact.
#[test]
fn close_with_ops_pending_resolves_them_as_cancelled() {
    let port = port();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tracker, _rx) = Tracker::new();
    let (waker, wakes) = counting_waker();
    let mut futs: Vec<_> = (0..8).map(|i| r.read(tracker.buf(32, i))).collect();
    for f in futs.iter_mut() {
        assert!(poll_once(f, &waker).is_pending());
    }
    assert_eq!(port.stats().inflight, 8);
    port.close().unwrap(); // returns after every completion was delivered
    assert_eq!(wakes.count(), 8, "every pending task was woken by close");
    for (i, mut f) in futs.into_iter().enumerate() {
        match poll_once(&mut f, &waker) {
            std::task::Poll::Ready((res, buf)) => {
                let e = res.unwrap_err();
                assert_eq!(code_of(&e), ovl::sys::OVL_ECANCELED);
                assert_eq!(buf.tag, i);
                assert_eq!(
                    buf.data,
                    vec![0xee; 32],
                    "a cancelled read leaves the buffer as it was"
                );
            }
            std::task::Poll::Pending => panic!("future {} still pending after close", i),
        }
    }
    assert_eq!(tracker.live(), 0);
    let s = port.stats();
    assert_eq!((s.inflight, s.submitted, s.completed), (0, 8, 8));

    // Use after close: fails at submit, buffer returned.
    let (res, buf) = block_on(r.read(tracker.buf(8, 99)));
    assert_eq!(code_of(&res.unwrap_err()), ovl::sys::OVL_ECLOSED);
    assert_eq!(buf.tag, 99);
    assert_eq!(port.close().unwrap_err().code(), ovl::sys::OVL_ECLOSED);
}

/// Dropping the futures and then every handle to the port closes it, and
/// the close waits for the cancelled ops: when `drop` returns, every buffer
/// is gone. No waiting involved: this is synchronous.
#[test]
fn dropping_the_last_port_handle_waits_for_parked_buffers() {
    let port = port();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tracker, _rx) = Tracker::new();
    let (waker, _) = counting_waker();
    let mut futs: Vec<_> = (0..16).map(|i| r.read(tracker.buf(32, i))).collect();
    for f in futs.iter_mut() {
        assert!(poll_once(f, &waker).is_pending());
    }
    drop(futs);
    drop(r);
    drop(port);
    assert_eq!(tracker.live(), 0);
    assert_eq!(tracker.created(), 16);
}

/// Many reads on a regular file, half of them dropped at once after their
/// submit: the kept ones return correct data, and every buffer is freed
/// exactly once (the tracker panics on a double drop).
#[test]
fn dropping_half_of_many_in_flight_reads() {
    let data = pattern(1 << 20, 9);
    let tmp = TempFile::new("cancelmix", &data);
    let port = port_depth(64);
    let file = tmp.open(&port);
    let (tracker, _rx) = Tracker::new();
    let (waker, _) = counting_waker();
    let mut kept = Vec::new();
    let mut results = Vec::new();
    for i in 0..64usize {
        let mut f = file.read_at(tracker.buf(4096, i), (i * 4096) as u64);
        // Submitted (maybe already complete) or queued: either way
        // dropping is safe.
        let first = poll_once(&mut f, &waker);
        if i % 2 == 0 {
            drop(f);
        } else if let std::task::Poll::Ready(r) = first {
            results.push((i, r));
        } else {
            kept.push((i, f));
        }
    }
    for (i, f) in kept {
        results.push((i, block_on(f)));
    }
    assert_eq!(results.len(), 32);
    for (i, (n, buf)) in results {
        assert_eq!(n.unwrap(), 4096);
        assert_eq!(buf.tag, i);
        assert!(buf.data == data[i * 4096..(i + 1) * 4096]);
    }
    drop(file);
    finish(&port);
    assert_eq!(tracker.live(), 0);
    assert_eq!(tracker.created(), 64);
    // A dropped read may have been waiting in the port's queue (tasks woken
    // by earlier completions were about to run): then it was taken out,
    // never submitted. Every kept one was.
    let submitted = port.stats().submitted;
    assert!((32..=64).contains(&submitted), "{} submitted", submitted);
}

/// A future never polled submits nothing; dropping it just frees the buffer.
#[test]
fn unpolled_future_submits_nothing() {
    let port = port();
    let (r, _w) = pipe();
    let r = File::new(&port, r).unwrap();
    let (tracker, _rx) = Tracker::new();
    let fut = r.read(tracker.buf(8, 0));
    assert_eq!(tracker.live(), 1);
    drop(fut);
    assert_eq!(tracker.live(), 0);
    assert_eq!(port.stats().submitted, 0);
    drop(r);
    finish(&port);
}

/// A completed read whose result was never collected (the future dropped
/// after the completion arrived): the buffer is freed with the future.
#[test]
fn future_dropped_after_completion_frees_buffer_once() {
    let port = Port::builder().manual(true).build().unwrap();
    let (r, mut w) = pipe_with_blocking_writer();
    std::io::Write::write_all(&mut w, b"data").unwrap();
    let r = File::new(&port, r).unwrap();
    let (tracker, _rx) = Tracker::new();
    let (waker, wakes) = counting_waker();
    let mut fut = r.read(tracker.buf(4, 0));
    assert!(
        poll_once(&mut fut, &waker).is_pending(),
        "manual mode delivers only in poll"
    );
    let mut n = 0;
    while n == 0 {
        n = port.poll(Some(WAIT)).unwrap();
    }
    assert_eq!(tracker.live(), 1, "the future still holds the op");
    assert_eq!(wakes.count(), 1);
    drop(fut);
    assert_eq!(tracker.live(), 0);
    assert_eq!(port.stats().cancels, 0, "nothing to cancel once completed");
    drop(r);
    finish(&port);
}

/// Cancel racing completion from several threads at once: reads that
/// finish in microseconds are dropped right after their submit, so the
/// drop's ovl_cancel meets ops that are in flight, completing, or done.
/// Every buffer must still be freed exactly once, and the port's
/// accounting must balance.
#[test]
fn cancel_races_completion_across_threads() {
    let data = pattern(256 * 1024, 10);
    let tmp = TempFile::new("race", &data);
    let port = port_depth(32);
    let file = tmp.open(&port);
    let (tracker, _rx) = Tracker::new();
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let (file, tracker) = (file.clone(), tracker.clone());
            std::thread::spawn(move || {
                let (waker, _) = counting_waker();
                let mut completed = 0;
                for i in 0..300usize {
                    let off = ((t * 300 + i) * 512) % (256 * 1024 - 512);
                    let mut f = file.read_at(tracker.buf(512, i), off as u64);
                    if poll_once(&mut f, &waker).is_ready() {
                        completed += 1;
                    }
                    if i % 3 == 0 {
                        // Some are awaited to the end between the drops.
                        let (n, _) = block_on(file.read_at(vec![0u8; 16], 0));
                        assert_eq!(n.unwrap(), 16);
                    }
                    drop(f);
                }
                completed
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(file);
    finish(&port);
    assert_eq!(tracker.created(), 4 * 300);
    assert_eq!(tracker.live(), 0, "a buffer leaked");
    // Each awaited read is submitted; a dropped one may have been waiting
    // in the port's queue (other tasks had just been woken), and then it
    // was taken out, never submitted. Either way the accounting balances.
    let s = port.stats();
    assert!(
        s.submitted >= 4 * 100 && s.submitted <= 4 * 300 + 4 * 100,
        "{:?}",
        s
    );
    assert_eq!((s.inflight, s.completed), (0, s.submitted));
}
