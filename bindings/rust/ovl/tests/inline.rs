//! The fast paths of the futures on a port with a completion thread:
//! completions taken on the polling thread (`ovl_poll(port, 0)` right after
//! the submit), the port's queue of requests submitted in one batch, a
//! future dropped from inside a delivery on the polling thread, and the
//! budget that makes a task of always-ready reads yield. Every assertion is
//! about behaviour, none about time; where the completion thread may win a
//! race, both outcomes are checked.
mod common;

use common::*;
use ovl::{block_on, File, OpFuture, Port};
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Where the fast path must show on this host: io_uring with a library
/// that lets a submitter take its own completions.
fn expect_inline(port: &Port) -> bool {
    port.backend_name() == "uring" && port.inline_delivery()
}

/// Whether the port batches submits through its queue (io_uring only: on
/// the threads backend the wait costs more than the lock it saves).
fn batches(port: &Port) -> bool {
    port.backend_name() == "uring"
}

/// A pipe read whose completion has woken its task, not polled since.
/// While it lives, the port has a woken task that is about to run, so new
/// ops join the port's queue instead of being submitted one by one.
struct Woken {
    fut: OpFuture<Vec<u8>>,
    _w: std::fs::File,
    _r: File,
}

fn woken_but_not_polled(port: &Port) -> Woken {
    let (r, mut w) = pipe();
    let r = File::new(port, r).unwrap();
    let (waker, wakes) = counting_waker();
    let mut fut = r.read(vec![0u8; 1]);
    assert!(poll_once(&mut fut, &waker).is_pending(), "an empty pipe");
    w.write_all(b"x").unwrap();
    let t0 = Instant::now();
    while wakes.count() == 0 {
        assert!(t0.elapsed() < WAIT, "the pipe read never completed");
        thread::sleep(Duration::from_millis(1));
    }
    Woken { fut, _w: w, _r: r }
}

impl Woken {
    fn collect(self) {
        let (n, buf) = block_on(self.fut);
        assert_eq!((n.unwrap(), buf), (1, b"x".to_vec()));
    }
}

/// A read from the page cache is usually complete when its submit returns;
/// the poll that submitted it then takes the completion itself: Ready at
/// once, and the task is never woken (its waker was not even registered).
/// Whether the futures submit with `ovl_submit_and_poll` (the default) or
/// with a plain submit followed by `ovl_poll(port, 0)` (`inline(false)`).
#[test]
fn ready_completions_resolve_in_the_submitting_poll_without_a_wake() {
    ready_reads_resolve_in_their_poll(port());
}

#[test]
fn ready_completions_resolve_in_the_submitting_poll_without_inline() {
    let port = Port::builder().inline(false).build().unwrap();
    assert_eq!(port.inline_delivery(), port.backend_name() == "uring");
    ready_reads_resolve_in_their_poll(port);
}

fn ready_reads_resolve_in_their_poll(port: Port) {
    let data = pattern(256 * 1024, 31);
    let tmp = TempFile::new("inline", &data);
    let file = tmp.open(&port);
    let (waker, wakes) = counting_waker();
    let (mut at_once, mut later) = (0, 0);
    for i in 0..300usize {
        let off = (i * 4096 * 7) % (256 * 1024 - 4096);
        let mut f = file.read_at(vec![0u8; 4096], off as u64);
        let before = wakes.count();
        let (n, buf) = match poll_once(&mut f, &waker) {
            Poll::Ready(r) => {
                at_once += 1;
                assert_eq!(
                    wakes.count(),
                    before,
                    "resolved at once, yet its task was woken"
                );
                r
            }
            Poll::Pending => {
                later += 1;
                block_on(f)
            }
        };
        assert_eq!(n.unwrap(), 4096);
        assert!(buf == data[off..off + 4096]);
    }
    println!(
        "{}: {} resolved in their first poll, {} later",
        port.backend_name(),
        at_once,
        later
    );
    if expect_inline(&port) {
        assert!(
            at_once > 0,
            "no read was ever taken by the submitting thread"
        );
    }
    drop(file);
    finish(&port);
}

/// While another task of the port is woken and about to run, new ops wait
/// in the port's queue (each wakes its own task), nothing is submitted; the
/// next poll of any of them submits them all in one `ovl_submit`. A queued
/// future that is dropped was never submitted: its buffer goes at once.
#[test]
fn queued_ops_are_submitted_together_by_the_first_poll() {
    let data = pattern(64 * 4096, 32);
    let tmp = TempFile::new("queue", &data);
    let port = port();
    if !batches(&port) {
        println!("{}: no port queue, nothing to test", port.backend_name());
        return;
    }
    let file = tmp.open(&port);
    let woken = woken_but_not_polled(&port);
    let before = port.stats().submitted;
    let (tracker, rx) = Tracker::new();
    let (waker, wakes) = counting_waker();
    let mut futs: Vec<_> = (0..16usize)
        .map(|i| (i, file.read_at(tracker.buf(4096, i), (i * 4096) as u64)))
        .collect();
    for (_, f) in futs.iter_mut() {
        assert!(
            poll_once(f, &waker).is_pending(),
            "queued behind the woken task"
        );
        assert_eq!(f.id(), None, "not submitted yet");
    }
    assert_eq!(
        port.stats().submitted,
        before,
        "a queued op reached the library"
    );
    assert_eq!(wakes.count(), 16, "each queued future wakes its own task");

    let (_, dropped) = futs.remove(3);
    drop(dropped);
    assert_eq!(rx.recv_timeout(WAIT), Ok(3));
    assert_eq!(
        tracker.live(),
        15,
        "a queued future's buffer is freed by its drop"
    );

    let first = poll_once(&mut futs[0].1, &waker);
    assert_eq!(
        port.stats().submitted,
        before + 15,
        "one poll submitted the whole queue"
    );
    for (_, f) in futs.iter().skip(1) {
        assert!(f.id().is_some(), "submitted by the first poll");
    }
    let mut results = Vec::new();
    let mut futs = futs.into_iter();
    let (i0, f0) = futs.next().unwrap();
    results.push((
        i0,
        if let Poll::Ready(r) = first {
            r
        } else {
            block_on(f0)
        },
    ));
    for (i, f) in futs {
        results.push((i, block_on(f)));
    }
    for (i, (n, buf)) in results {
        assert_eq!(n.unwrap(), 4096);
        assert_eq!(buf.tag, i);
        assert!(buf.data == data[i * 4096..(i + 1) * 4096]);
    }
    woken.collect();
    drop(file);
    finish(&port);
    assert_eq!((tracker.live(), tracker.created()), (0, 16));
    assert_eq!(port.stats().submitted, before + 15);
}

/// A waker that, once armed, records the thread it ran on and drops a
/// future: the drop then happens inside the port's callback, on whichever
/// thread delivered the completion.
struct DropOnWake {
    armed: AtomicBool,
    victim: Mutex<Option<OpFuture<Tracked>>>,
    ran_on: Mutex<Option<ThreadId>>,
    wakes: AtomicUsize,
}

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if self.armed.load(Ordering::SeqCst) {
            *self.ran_on.lock().unwrap() = Some(thread::current().id());
            self.wakes.fetch_add(1, Ordering::SeqCst);
            drop(self.victim.lock().unwrap().take());
        }
    }
}

/// A queued read is delivered inside the poll that submits the queue, on
/// the polling thread: its waker (registered when it was queued) runs
/// there, inside the callback, and drops another future whose pipe read
/// is in flight. That drop cancels the read; its buffer stays alive until
/// the cancellation's completion and is freed exactly once; nothing
/// deadlocks. Repeated until the delivery happened on the polling thread
/// at least once (the completion thread may win the race; then the same
/// checks hold there).
/// Polls `f` with `waker` until it resolves (it is woken exactly once, by
/// the delivery of its completion, wherever that happens; possibly just
/// after the poll that already saw the result), checks that it read
/// `want`, then waits for that one wake-up.
fn finish_read(f: &mut OpFuture<Vec<u8>>, waker: &Waker, dow: &DropOnWake, want: &[u8]) {
    let t0 = Instant::now();
    let wait_woken = || {
        while dow.wakes.load(Ordering::SeqCst) == 0 {
            assert!(t0.elapsed() < WAIT, "the read's task was never woken");
            thread::sleep(Duration::from_millis(1));
        }
    };
    let (n, buf) = loop {
        if let Poll::Ready(r) = poll_once(f, waker) {
            break r;
        }
        wait_woken();
    };
    assert_eq!(n.unwrap(), want.len());
    assert!(buf == want);
    wait_woken();
}

#[test]
fn future_dropped_inside_a_delivery_on_the_polling_thread() {
    let data = pattern(64 * 4096, 33);
    let tmp = TempFile::new("dropinline", &data);
    let port = port();
    if !batches(&port) {
        // The read's waker is registered before its delivery only when it
        // waits in the port's queue.
        println!("{}: no port queue, nothing to test", port.backend_name());
        return;
    }
    let file = tmp.open(&port);
    let (pr, _pw) = pipe();
    let pr = File::new(&port, pr).unwrap();
    let woken = woken_but_not_polled(&port);
    let (tracker, rx) = Tracker::new();
    let (vwaker, _) = counting_waker();
    let me = thread::current().id();
    let mut on_this_thread = 0;
    let mut rounds = 0;
    while rounds < 200 && on_this_thread == 0 {
        rounds += 1;
        let mut victim = pr.read(tracker.buf(8, rounds));
        assert!(poll_once(&mut victim, &vwaker).is_pending());
        let dow = Arc::new(DropOnWake {
            armed: AtomicBool::new(false),
            victim: Mutex::new(Some(victim)),
            ran_on: Mutex::new(None),
            wakes: AtomicUsize::new(0),
        });
        let waker = Waker::from(dow.clone());
        let off = (rounds * 4096) % (60 * 4096);
        let mut f = file.read_at(vec![0u8; 4096], off as u64);
        assert!(
            poll_once(&mut f, &waker).is_pending(),
            "queued behind the woken task"
        );
        dow.armed.store(true, Ordering::SeqCst);
        // Submits the queue (the victim's read and ours) and takes what is
        // ready: our read, whose waker drops the victim.
        // Polled with the same waker until it resolves (not block_on,
        // whose waker would replace ours).
        finish_read(&mut f, &waker, &dow, &data[off..off + 4096]);
        assert_eq!(dow.wakes.load(Ordering::SeqCst), 1, "woken once");
        assert!(
            dow.victim.lock().unwrap().is_none(),
            "the waker dropped the victim"
        );
        if *dow.ran_on.lock().unwrap() == Some(me) {
            on_this_thread += 1;
        }
        // The cancelled read's completion frees its buffer, exactly once.
        assert_eq!(rx.recv_timeout(WAIT), Ok(rounds));
        assert_eq!(tracker.live(), 0);
    }
    println!(
        "{}: {} of {} round(s) delivered on the polling thread",
        port.backend_name(),
        on_this_thread,
        rounds
    );
    if expect_inline(&port) {
        assert!(
            on_this_thread > 0,
            "never delivered on the polling thread in {} rounds",
            rounds
        );
    }
    woken.collect();
    drop((file, pr));
    finish(&port);
    assert_eq!(tracker.created(), rounds);
}

/// A post made with `ovl_submit_and_poll(..., 0)`: the port's callback
/// ignores it (no ctx). Returns whether the call delivered it itself.
fn post_submit_and_poll(port: &Port, v: i64) -> bool {
    let before = port.stats().completed;
    let mut req = ovl_sys::ovl_request {
        op: ovl_sys::OVL_OP_POST,
        flags: 0,
        fd: 0,
        buf: std::ptr::null_mut(),
        len: 0,
        offset: v,
        ctx: std::ptr::null_mut(),
        id: 0,
        timeout_ns: 0,
    };
    let mut done = 0;
    // SAFETY: a post needs no buffer; port is live.
    let rc = unsafe { ovl_sys::ovl_submit_and_poll(port.as_raw(), &mut req, 1, &mut done, 0) };
    assert!(rc >= 0 && done == 1, "ovl_submit_and_poll: {}", rc);
    let inside = port.stats().completed == before + 1;
    while port.stats().completed != before + 1 {
        std::thread::yield_now();
    }
    inside
}

/// On an io_uring port with a completion thread (and `Builder::inline`,
/// the default) submits go through `ovl_submit_and_poll(..., 0)`: the
/// library delivers what completed inside a submit on the submitting
/// thread before the call returns, and its completion thread waits outside
/// the kernel while nothing is in flight, so it does not take the
/// completion first. A post completes inside the call: delivered before it
/// returns, all but perhaps the first few times (until the completion
/// thread, asleep in the kernel when the first call came, has parked). A
/// read of cached data completes inside io_uring_enter nearly always: its
/// future resolves in its first poll and its task is never woken.
#[test]
fn inline_port_delivers_inside_the_submit() {
    let port = port();
    if !expect_inline(&port) {
        println!(
            "{}: no inline delivery, nothing to test",
            port.backend_name()
        );
        return;
    }
    let inside = (0..200i64)
        .filter(|&i| post_submit_and_poll(&port, i))
        .count();
    assert!(
        inside >= 190,
        "only {} of 200 posts delivered inside ovl_submit_and_poll",
        inside
    );
    assert!(
        inside >= 100,
        "only {} of 200 posts delivered inside ovl_post",
        inside
    );
    let data = pattern(256 * 1024, 35);
    let tmp = TempFile::new("inlineport", &data);
    let file = tmp.open(&port);
    let (waker, wakes) = counting_waker();
    let (mut at_once, mut later, mut yields) = (0, 0, 0);
    for i in 0..200usize {
        let off = (i * 4096 * 11) % (256 * 1024 - 4096);
        let mut f = file.read_at(vec![0u8; 4096], off as u64);
        let mut r = poll_once(&mut f, &waker);
        if r.is_pending() && f.id().is_none() {
            // The yield budget (64 ready ops in a row): not submitted yet.
            yields += 1;
            r = poll_once(&mut f, &waker);
        }
        let before = wakes.count();
        let (n, buf) = match r {
            Poll::Ready(r) => {
                at_once += 1;
                assert_eq!(
                    wakes.count(),
                    before,
                    "resolved at once, yet its task was woken"
                );
                r
            }
            Poll::Pending => {
                later += 1;
                block_on(f)
            }
        };
        assert_eq!(n.unwrap(), 4096);
        assert!(buf == data[off..off + 4096]);
    }
    println!("uring, submits that deliver: {} of 200 reads resolved in the poll that submitted them, {} later, {} budget yields", at_once, later, yields);
    assert!(
        at_once >= 190,
        "only {} of 200 cached reads resolved in their submitting poll",
        at_once
    );
    drop(file);
    finish(&port);
}

/// A queued future dropped while a flush has its request in hand: on an
/// io_uring port, the flush submits the queue and the library delivers a
/// cached read inside that very `ovl_submit`, on this thread; that read's
/// waker drops the other queued future, a pipe read now submitted but
/// whose id the flush has not recorded yet. The drop must not deadlock
/// (the flush holds no lock across the submit), the flush cancels the
/// read once it has the id, and the buffer is freed exactly once, by the
/// cancellation's completion.
#[test]
fn queued_future_dropped_inside_its_own_flush() {
    let data = pattern(64 * 4096, 36);
    let tmp = TempFile::new("dropflush", &data);
    let port = port();
    if !batches(&port) {
        println!("{}: no port queue, nothing to test", port.backend_name());
        return;
    }
    let file = tmp.open(&port);
    let (pr, _pw) = pipe();
    let pr = File::new(&port, pr).unwrap();
    let woken = woken_but_not_polled(&port);
    let (tracker, rx) = Tracker::new();
    let (vwaker, _) = counting_waker();
    let me = thread::current().id();
    let cancels = port.stats().cancels;
    let mut on_this_thread = 0;
    let mut rounds = 0;
    while rounds < 50 && (on_this_thread == 0 || rounds < 5) {
        rounds += 1;
        let dow = Arc::new(DropOnWake {
            armed: AtomicBool::new(false),
            victim: Mutex::new(None),
            ran_on: Mutex::new(None),
            wakes: AtomicUsize::new(0),
        });
        let waker = Waker::from(dow.clone());
        let off = (rounds * 4096) % (60 * 4096);
        let mut f = file.read_at(vec![0u8; 4096], off as u64);
        assert!(
            poll_once(&mut f, &waker).is_pending(),
            "queued behind the woken task"
        );
        let mut victim = pr.read(tracker.buf(8, rounds));
        assert!(
            poll_once(&mut victim, &vwaker).is_pending(),
            "queued behind the woken task"
        );
        assert_eq!(victim.id(), None);
        *dow.victim.lock().unwrap() = Some(victim);
        dow.armed.store(true, Ordering::SeqCst);
        finish_read(&mut f, &waker, &dow, &data[off..off + 4096]);
        assert!(
            dow.victim.lock().unwrap().is_none(),
            "the waker dropped the victim"
        );
        if *dow.ran_on.lock().unwrap() == Some(me) {
            on_this_thread += 1;
        }
        // The pipe stays empty: only a cancel ends the victim's read.
        assert_eq!(
            rx.recv_timeout(WAIT),
            Ok(rounds),
            "the dropped read was never cancelled"
        );
        assert_eq!(tracker.live(), 0);
    }
    println!(
        "{}: {} of {} round(s) dropped inside the flush on this thread",
        port.backend_name(),
        on_this_thread,
        rounds
    );
    if expect_inline(&port) {
        assert!(
            on_this_thread > 0,
            "never delivered inside the flush in {} rounds",
            rounds
        );
    }
    assert!(port.stats().cancels >= cancels + rounds as u64);
    woken.collect();
    drop((file, pr));
    finish(&port);
    assert_eq!(tracker.created(), rounds);
}

/// Reads that always resolve in their first poll would never let their
/// task yield; after a run of them one returns Pending once (waking its
/// own task) before it is submitted. So among 300 reads at most 64 in a
/// row resolve at once.
#[test]
fn a_task_of_always_ready_reads_still_yields() {
    let data = pattern(64 * 1024, 34);
    let tmp = TempFile::new("budget", &data);
    let port = port();
    let file = tmp.open(&port);
    let (waker, _) = counting_waker();
    let (mut run, mut longest) = (0, 0);
    for i in 0..300usize {
        let off = (i * 512) % (64 * 1024 - 512);
        let mut f = file.read_at(vec![0u8; 512], off as u64);
        let (n, buf) = match poll_once(&mut f, &waker) {
            Poll::Ready(r) => {
                run += 1;
                r
            }
            Poll::Pending => {
                run = 0;
                block_on(f)
            }
        };
        longest = longest.max(run);
        assert_eq!(n.unwrap(), 512);
        assert!(buf == data[off..off + 512]);
    }
    assert!(longest <= 64, "{} reads in a row without a yield", longest);
    drop(file);
    finish(&port);
}

/// `Port::block_on` on a manual-mode port: the port's completions are
/// delivered on the running thread while the futures wait; many reads in
/// flight at once (so through the port's queue) return the right bytes.
#[test]
fn port_block_on_drives_a_manual_port() {
    let data = pattern(256 * 1024, 35);
    let tmp = TempFile::new("manualrun", &data);
    let port = Port::builder()
        .manual(true)
        .queue_depth(32)
        .build()
        .unwrap();
    let file = tmp.open(&port);
    let futs: Vec<_> = (0..200usize)
        .map(|i| {
            let off = (i * 4096 * 13) % (256 * 1024 - 4096);
            let f = file.read_at(vec![0u8; 4096], off as u64);
            async move { (off, f.await) }
        })
        .collect();
    let results = port.block_on(join_all(futs));
    assert_eq!(results.len(), 200);
    for (off, (n, buf)) in results {
        assert_eq!(n.unwrap(), 4096);
        assert!(buf == data[off..off + 4096]);
    }
    drop(file);
    finish(&port);
}

/// A wake from another thread ends `Port::block_on`'s wait inside the
/// manual port's `ovl_poll`: here the awaited read belongs to another port,
/// whose completion thread wakes the task.
#[test]
fn port_block_on_is_woken_from_another_thread() {
    let manual = Port::builder().manual(true).build().unwrap();
    let threaded = port();
    let (r, mut w) = pipe();
    let r = File::new(&threaded, r).unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        w.write_all(b"ping").unwrap();
        w
    });
    let (n, buf) = manual.block_on(r.read(vec![0u8; 4]));
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"ping"[..]));
    drop(writer.join().unwrap());
    // Also from inside: a manual-port read and nothing else.
    let (r2, mut w2) = pipe();
    let r2 = File::new(&manual, r2).unwrap();
    w2.write_all(b"pong").unwrap();
    let (n, buf) = manual.block_on(r2.read(vec![0u8; 4]));
    assert_eq!((n.unwrap(), &buf[..]), (4, &b"pong"[..]));
    drop((r, r2));
    finish(&threaded);
    finish(&manual);
}

/// Forwards to the runner's waker and records the thread each wake came
/// from (the thread that delivered the completion).
struct WakeFrom {
    inner: Mutex<Option<Waker>>,
    from: Mutex<Vec<ThreadId>>,
}

impl Wake for WakeFrom {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.from.lock().unwrap().push(thread::current().id());
        if let Some(w) = self.inner.lock().unwrap().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Polls `fut` with a `WakeFrom` waker that forwards to the runner's.
struct Recorded<F: Future> {
    fut: std::pin::Pin<Box<F>>,
    waker: Waker,
    wf: Arc<WakeFrom>,
}

impl<F: Future> Future for Recorded<F> {
    type Output = F::Output;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let me = self.get_mut();
        *me.wf.inner.lock().unwrap() = Some(cx.waker().clone());
        let waker = me.waker.clone();
        me.fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    }
}

/// `Port::block_on` on a port with a completion thread: while the future
/// waits, the running thread takes delivery over, so a read that completes
/// later (the pipe's data comes from another thread) is delivered, and its
/// task woken, on the running thread.
#[test]
fn port_block_on_delivers_on_the_running_thread_of_a_threaded_port() {
    let port = port();
    for _ in 0..5 {
        let (r, mut w) = pipe();
        let r = File::new(&port, r).unwrap();
        let writer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            w.write_all(b"late").unwrap();
            w
        });
        let wf = Arc::new(WakeFrom {
            inner: Mutex::new(None),
            from: Mutex::new(Vec::new()),
        });
        let (n, buf) = port.block_on(Recorded {
            fut: Box::pin(r.read(vec![0u8; 4])),
            waker: Waker::from(wf.clone()),
            wf: wf.clone(),
        });
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"late"[..]));
        let from = wf.from.lock().unwrap().clone();
        assert!(!from.is_empty(), "the read's task was never woken");
        assert!(
            from.iter().all(|t| *t == thread::current().id()),
            "woken from another thread: {:?}",
            from
        );
        drop(writer.join().unwrap());
        drop(r);
    }
    finish(&port);
}
