/* deliver.c - delivery: reaping the backend's events into callback batches
 * and running the callback, on the completion thread or inside ovl_poll /
 * ovl_submit_and_poll; and the completion thread's park.
 *
 * One engine: ovl__deliver_once (reap one batch, waiting up to a timeout,
 * settle each event with the backend, run the callback, release the ops)
 * is the only place that runs callbacks. Every entry point below is a way
 * of taking the reaper role (deliver_lock) and deciding how long the call
 * may sleep; the backend's wait is the only place a caller sleeps for
 * completions, and the backends bound it by their own nearest deadline.
 * A plain submit or post never delivers: it only starts work.
 *
 *   entry point              thread          may it sleep            locks held while reaping
 *   -----------------------  --------------  ----------------------  ------------------------
 *   completion thread loop   the port's own  yes: after an adaptive  deliver_lock; io_uring
 *   (ovl__completion_thread)                 spin, in wait_ready     sleeps outside it
 *                                            (io_uring) or wait      (wait_ready), the others
 *                                                                    inside it
 *   ... its park (ct_park)   the port's own  yes, on park_cv, while  port lock (cond wait),
 *                                            the hint is set and     nothing reaped
 *                                            nothing is in flight,
 *                                            or a caller reaps
 *   ovl_poll(p, 0), threaded  any            no: trylock, one batch  deliver_lock (trylock)
 *   (ovl__poll_helping)       (not its cb)
 *   ovl_poll(p, t), threaded  any            up to t, as manual; the  deliver_lock (blocking),
 *   and ovl_submit_and_poll   (not its cb)    completion thread      taken before the submit
 *   (..., t) (poll_reaping)                   parks meanwhile
 *   ovl_poll(p, t), manual    any            up to t (-1: no limit); deliver_lock (blocking
 *   (poll_manual)             (not its cb)    t == 0: trylock         unless t == 0)
 *   ovl_submit_and_poll       any            as ovl_poll; on         deliver_lock, taken
 *                             (not its cb)    io_uring the submit     before the submit when
 *                                             rides the wait's call   free (manual: io_uring,
 *                                             (manual); threaded:     or a call that will
 *                                             sets the park hint      wait); threaded: as
 *                                                                     ovl_poll(p, t)
 *   manual close drain        the closer     yes, until drained      deliver_lock
 *   (port.c)
 *
 * Inside ovl__deliver_once the port lock is taken per batch for the
 * bookkeeping (settle, release, inflight) and dropped before the callback,
 * which runs holding only the reaper role (deliver_lock). The lock order
 * is written in ovl_internal.h. */
#include "ovl_internal.h"
#include "local.h"
#include "sys.h"

OVL__THREAD_LOCAL ovl__thr ovl__tls_thr;

/* ---- callbacks on the stack, and waits that could never end -------------
 * A thread inside a callback that blocks on another port (closing it, or
 * waiting for its delivery lock in ovl_poll) waits for whichever thread runs
 * that port's callback. If that thread is itself blocked, inside its
 * callback, on a port whose callback is on our stack, neither returns: the
 * wait-for graph has a cycle. Every such wait is registered under one lock
 * after checking the chain it would close, so of two threads closing each
 * other's ports from their callbacks the second to get there is refused
 * with OVL_EDEADLK, and the first then completes. */
static ovl__mutex graph_lock = OVL__MUTEX_INITIALIZER;

int32_t ovl__wait_begin(ovl_port *on)
{
    ovl__thr *me = &ovl__tls_thr;
    if (ovl__in_callback(on)) return OVL_EDEADLK;
    if (!me->top) return OVL_OK; /* no callback of ours for anyone to wait on */
    int32_t rc = OVL_OK;
    ovl__mutex_lock(&graph_lock);
    ovl_port *q = on;
    /* Each step follows a thread that is blocked; a chain longer than the
     * number of threads cannot be, but bound it anyway. */
    for (int steps = 0; q && steps < 4096; steps++) {
        ovl__thr *t = atomic_load(&q->cb_thr);
        if (!t) break;
        if (t == me) {
            rc = OVL_EDEADLK;
            break;
        }
        q = t->waiting_for;
        if (q && ovl__in_callback(q)) {
            rc = OVL_EDEADLK;
            break;
        }
    }
    if (rc == OVL_OK) me->waiting_for = on;
    ovl__mutex_unlock(&graph_lock);
    return rc;
}

void ovl__wait_end(void)
{
    ovl__thr *me = &ovl__tls_thr;
    if (!me->top) return;
    ovl__mutex_lock(&graph_lock);
    me->waiting_for = NULL;
    ovl__mutex_unlock(&graph_lock);
}

/* ---- delivery ------------------------------------------------------------ */

/* Reap once (waiting up to timeout_ms), turn the events into one callback
 * batch and deliver it. Only one thread at a time: the completion thread, or
 * the holder of deliver_lock in manual mode. Returns completions delivered. */
size_t ovl__deliver_once(ovl_port *p, int32_t timeout_ms)
{
    OVL__ASSERT_HELD(&p->deliver_lock); /* the reaper role */
    size_t n = p->backend->wait(p, timeout_ms, p->events, p->batch_cap);
    if (n == 0) return 0;

    ovl__mutex_lock(&p->lock);
    size_t k = 0, again = 0;
    for (size_t i = 0; i < n; i++) {
        ovl__event *ev = &p->events[i];
        ovl__op *op = ovl__op_from_token(p, ev->token);
        if (!op) {
            /* Unknown or stale token: never deliver it twice. */
            p->stale++;
            continue;
        }
        if (p->backend->settle && !p->backend->settle(p, op, ev)) {
            again++; /* issued again: a thread's exit failed it */
            continue;
        }
        if (p->local && !ovl__local_settle(p, op, ev)) {
            again++; /* a local op's next stage (local.c) */
            continue;
        }
        ovl_completion *c = &p->batch[k++];
        c->ctx = op->ctx;
        c->id = ev->token;
        c->op = op->kind;
        if (op->kind == OVL_OP_POST) {
            c->result = op->result;
            c->os_error = 0;
        } else if (ev->result == OVL_EINTR && op->cancel_req) {
            /* A worker interrupted on our request: that is a cancel. */
            c->result = OVL_ECANCELED;
            c->os_error = ev->os_error;
        } else {
            c->result = ev->result;
            c->os_error = ev->result < 0 ? ev->os_error : 0;
        }
        /* The op is free again before the callback runs, so a callback
         * that resubmits always finds a slot (depth ops in flight, each
         * completion resubmitting one: the event-loop pattern). */
        ovl__op_release(p, op);
    }
    p->completed += k;
    if (k) p->batches++;
    ovl_callback cb = p->cb;
    void *ud = p->userdata;
    ovl__mutex_unlock(&p->lock);
    /* We hold delivery, so the backend outlives this call (close joins
     * the completion thread or waits for deliver_lock / users). */
    if (again) p->backend->kick(p, false);

    if (k && cb) {
        ovl__thr *me = &ovl__tls_thr;
        ovl__cb_frame frame = {p, me->top};
        me->top = &frame;
        atomic_store(&p->cb_thr, me);
        cb(p->batch, k, ud);
        atomic_store(&p->cb_thr, NULL);
        me->top = frame.prev;
    } else if (k && p->backend->close_handle) {
        /* No callback: the completions are discarded, and a connection
         * accepted for the caller would be lost with its handle open. */
        for (size_t i = 0; i < k; i++) {
            uint32_t kind = p->batch[i].op;
            if ((kind == OVL_OP_ACCEPT || kind == OVL_OP_LOCAL_ACCEPT ||
                 kind == OVL_OP_LOCAL_DIAL) &&
                p->batch[i].result >= 0)
                p->backend->close_handle((ovl_fd)p->batch[i].result, kind);
        }
    }
    return k;
}

bool ovl__port_drained(ovl_port *p)
{
    ovl__mutex_lock(&p->lock);
    bool done = atomic_load(&p->state) != OVL__PORT_OPEN && p->inflight == 0;
    ovl__mutex_unlock(&p->lock);
    return done;
}

/* The completion thread's turn at deliver_lock, which an ovl_poll(p, 0)
 * caller on another thread may hold for the length of one callback batch.
 * Spin briefly before sleeping on the mutex: a blocked completion thread
 * would make that caller's unlock a futex wake-up of another CPU, the very
 * hand-off ovl_poll(p, 0) is there to avoid. */
static void ct_deliver_lock(ovl_port *p)
{
    for (int i = 0; i < 2048; i++) {
        if (ovl__mutex_trylock(&p->deliver_lock)) return;
        if (i < 1024) ovl__cpu_relax();
        else ovl__yield();
    }
    ovl__mutex_lock(&p->deliver_lock);
}

/* One delivery round of the completion thread, waiting up to timeout_ms
 * (0 or -1). With a backend that can wait without reaping, the sleep
 * happens outside deliver_lock (see ovl__backend.wait_ready). */
static size_t ct_deliver(ovl_port *p, int32_t timeout_ms)
{
    size_t n;
    /* A caller holds or waits for the reaper role (the thread came here
     * instead of parking because the port is closing): never sleep in the
     * backend holding deliver_lock, which that caller (counted in users,
     * which close waits for) needs to see the close and go. */
    if (timeout_ms != 0 && atomic_load_explicit(&p->reapers, memory_order_relaxed)) {
        ovl__yield();
        return 0;
    }
    if (timeout_ms != 0 && p->backend->wait_ready) {
        p->backend->wait_ready(p);
        /* A caller took the reaper role meanwhile: the completions that
         * woke us are its; go and park instead of queueing for
         * deliver_lock behind it. */
        if (atomic_load_explicit(&p->reapers, memory_order_relaxed)) return 0;
        timeout_ms = 0;
    }
    ct_deliver_lock(p);
    n = ovl__deliver_once(p, timeout_ms);
    ovl__mutex_unlock(&p->deliver_lock);
    return n;
}

/* ---- the park ------------------------------------------------------------
 * A submitter that delivers what completes inside its own submit
 * (ovl_submit_and_poll on io_uring, whose page-cache reads and posts
 * complete inside its io_uring_enter) leaves the completion thread nothing
 * to do; yet a thread asleep in the kernel's CQ wait is woken for every
 * CQE, a cross-CPU wake-up per batch for nothing. So while such a
 * submitter is at work (the hint p->parking: set by ovl_submit_and_poll on
 * a backend with wait_ready, and by a caller that takes the reaper role
 * (poll_reaping) on any backend; cleared by a plain submit or post from outside
 * a callback, so that plain submitters never pay a wake-up of the park per
 * op) and nothing is in flight, the completion thread waits on park_cv
 * instead. Whatever the hint says, two rules under p->lock keep every op
 * watched:
 *
 *  1. the thread parks only after seeing parking && inflight == 0 && open;
 *  2. whoever raises inflight while it is parked wakes it: at once (a
 *     plain submit or post, ovl__submitted), or, when the caller delivers
 *     next (ovl_submit_and_poll on a threaded port, or a callback running
 *     inside such a caller's delivery), after that delivery if ops are
 *     still in flight (ovl__ct_unpark, from ovl__poll_helping). A callback
 *     on the completion thread submits while the thread is awake.
 *
 * Close sets CLOSING and broadcasts park_cv under the lock. */

/* Lock held: may the thread park now? (Rule 1, or a caller holds the
 * reaper role.) */
static bool ct_may_park(const ovl_port *p)
{
    if (atomic_load(&p->state) != OVL__PORT_OPEN) return false;
    if (atomic_load_explicit(&p->reapers, memory_order_relaxed)) return true;
    return atomic_load_explicit(&p->parking, memory_order_relaxed) && p->inflight == 0;
}

/* Wait while ct_may_park. Returns when ops are in flight and no caller
 * reaps, the hint is cleared and someone woke us, or the port is closing;
 * true if it waited at all. */
static bool ct_park(ovl_port *p)
{
    bool parked = false;
    ovl__mutex_lock(&p->lock);
    while (ct_may_park(p)) {
        atomic_store_explicit(&p->ct_parked, true, memory_order_relaxed);
        parked = true;
        ovl__cond_wait(&p->park_cv, &p->lock);
    }
    atomic_store_explicit(&p->ct_parked, false, memory_order_relaxed);
    ovl__mutex_unlock(&p->lock);
    return parked;
}

/* Lock held: wake the thread if it is parked (once: the flag is cleared
 * here, so later submitters do not signal again). */
static void ct_wake_locked(ovl_port *p)
{
    OVL__ASSERT_HELD(&p->lock);
    if (!atomic_load_explicit(&p->ct_parked, memory_order_relaxed)) return;
    atomic_store_explicit(&p->ct_parked, false, memory_order_relaxed);
    ovl__cond_signal(&p->park_cv);
}

/* Lock held, right after a submit or post from outside a callback raised
 * inflight (rule 2; the callers skip it for a submit from a callback of
 * this port: the thread delivering that callback, the completion thread,
 * awake, or a helper that calls ovl__ct_unpark afterwards, watches).
 * delivers: ovl_submit_and_poll on a threaded port, which delivers next
 * and then calls ovl__ct_unpark. */
void ovl__submitted(ovl_port *p, bool delivers)
{
    OVL__ASSERT_HELD(&p->lock);
    if (delivers) {
        /* Read before written: the hint's cache line stays shared while
         * it does not change. */
        if (p->backend->wait_ready && !atomic_load_explicit(&p->parking, memory_order_relaxed))
            atomic_store_explicit(&p->parking, true, memory_order_relaxed);
        return;
    }
    if (atomic_load_explicit(&p->parking, memory_order_relaxed))
        atomic_store_explicit(&p->parking, false, memory_order_relaxed);
    ct_wake_locked(p);
}

/* No lock held, after the caller's own delivery: if the thread is parked
 * while ops are in flight, it must watch them now. The relaxed read of
 * ct_parked before the lock is enough: the caller's last change to
 * inflight was made under p->lock, so a park that came before it is
 * visible here (that lock's acquire follows the park's release in
 * cond_wait), and a park that comes after it saw the ops in flight. */
void ovl__ct_unpark(ovl_port *p)
{
    if (!atomic_load_explicit(&p->ct_parked, memory_order_relaxed)) return;
    ovl__mutex_lock(&p->lock);
    if (p->inflight) ct_wake_locked(p);
    ovl__mutex_unlock(&p->lock);
}

/* No lock held, after the caller's own delivery, with the backend alive:
 * if the hint is set and nothing is in flight, the thread should be parked.
 * It reads the hint only between rounds, so one that went to sleep in the
 * kernel's completion wait just before the hint was raised, and whose
 * wake-up completions this caller then reaped itself, sleeps on there; a
 * backend wake-up brings it out to park. In the steady state (thread
 * parked, or hint cleared) this costs two relaxed loads. */
static void ct_nudge(ovl_port *p)
{
    if (!atomic_load_explicit(&p->parking, memory_order_relaxed) ||
        atomic_load_explicit(&p->ct_parked, memory_order_relaxed))
        return;
    ovl__mutex_lock(&p->lock);
    bool astray = p->inflight == 0 && !atomic_load_explicit(&p->ct_parked, memory_order_relaxed) &&
                  atomic_load_explicit(&p->parking, memory_order_relaxed) &&
                  atomic_load(&p->state) == OVL__PORT_OPEN;
    ovl__mutex_unlock(&p->lock);
    if (astray) p->backend->wake(p);
}

/* The completion thread's spin, when the port leaves it to the library
 * (spin_usec 0). A thread asleep in the kernel costs a wake-up per batch
 * (tens of µs when it must wake an idle vCPU: more than a page-cache read
 * and more than the op's own work), so after a batch the thread polls for
 * the next one for up to SPIN_MAX_US before it sleeps, but only while
 * spinning pays: each spin that found a batch earns a credit, each one that
 * timed out costs two, and with no credit left the thread sleeps at once,
 * trying one spin again only every SPIN_PROBE_EVERY sleeps. So a steady
 * stream of quick completions (a submitter waiting for each, page-cache
 * reads, local sockets) is taken without wake-ups, slow I/O (a disk, a
 * quiet network) spins about once per SPIN_PROBE_EVERY batches, and an idle
 * port never spins (a spin starts only after a batch). */
enum { SPIN_MAX_US = 50, SPIN_SUBMIT_MAX_US = 1000, SPIN_CREDIT_MAX = 8, SPIN_PROBE_EVERY = 64 };

typedef struct {
    int credit;
    unsigned sleeps; /* since the last spin */
} spin_state;

/* How long to spin before the next sleep (0: do not). */
static uint32_t spin_budget(const ovl_port *p, spin_state *st)
{
    if (p->spin_usec == OVL_SPIN_NONE) return 0;
    if (p->spin_usec) return p->spin_usec; /* fixed, as configured */
    if (st->credit > 0 || st->sleeps >= SPIN_PROBE_EVERY) return SPIN_MAX_US;
    return 0;
}

/* Whether a spin that began at start may go on: for its budget, and
 * beyond it (up to SPIN_SUBMIT_MAX_US) while a caller is inside the port,
 * which for a submitter means inside its io_uring_enter: page-cache reads
 * run there, inline, and their completions all appear when it returns (a
 * batch of 64 takes longer than SPIN_MAX_US). Sleeping then would make
 * the end of that batch a wake-up of this thread on another CPU, the very
 * cost the spin is there to save. An idle port has no such caller. A
 * spin the port fixed (spin_usec) keeps to its length. */
static bool spin_goes_on(const ovl_port *p, uint64_t start, uint32_t budget)
{
    uint64_t t = ovl__now_us() - start;
    if (t < budget) return true;
    return p->spin_usec == 0 && t < SPIN_SUBMIT_MAX_US &&
           atomic_load_explicit(&p->users, memory_order_relaxed);
}

static void spin_result(const ovl_port *p, spin_state *st, bool found)
{
    if (p->spin_usec) return;
    st->sleeps = 0;
    if (found) st->credit = st->credit + 1 > SPIN_CREDIT_MAX ? SPIN_CREDIT_MAX : st->credit + 1;
    else st->credit = st->credit > 2 ? st->credit - 2 : 0;
}

/* No lock: is the park hint raised, or does a caller hold the reaper
 * role? (A cheap look; ct_park decides under the lock.) */
static bool park_asked(const ovl_port *p)
{
    return atomic_load_explicit(&p->parking, memory_order_relaxed) ||
           atomic_load_explicit(&p->reapers, memory_order_relaxed);
}

void *ovl__completion_thread(void *arg)
{
    ovl_port *p = arg;
    spin_state st = {0, 0};
    bool after_batch = false; /* the last round delivered something */
    for (;;) {
        size_t n = 0;
        if (park_asked(p)) (void)ct_park(p);
        uint32_t budget = after_batch ? spin_budget(p, &st) : 0;
        if (budget) {
            /* Poll without sleeping for a while first: saves the wake-up
             * when the next completion comes soon. */
            uint64_t start = ovl__now_us();
            while ((n = ct_deliver(p, 0)) == 0 &&
                   !atomic_load_explicit(&p->reapers, memory_order_relaxed) &&
                   spin_goes_on(p, start, budget))
                ovl__cpu_relax();
            spin_result(p, &st, n != 0);
            /* A close's wake-up consumed while spinning looks like an
             * empty poll (0): check before sleeping, or we sleep for ever
             * with nothing left in flight to wake us. */
            if (n == 0 && ovl__port_drained(p)) break;
        } else if (after_batch) {
            st.sleeps++;
        }
        /* The hint may have been raised while we spun, and the spin may
         * have taken the wake-up meant to bring us here (ct_nudge): look
         * again before the kernel's wait, which only a completion ends. */
        if (n == 0 && budget && park_asked(p) && ct_park(p)) continue;
        /* The wait also flushes submits made by the previous batch's
         * callbacks (io_uring: one io_uring_enter submits and waits). */
        if (n == 0) n = ct_deliver(p, -1);
        after_batch = n != 0;
        if (atomic_load(&p->state) != OVL__PORT_OPEN && ovl__port_drained(p)) break;
    }
    return NULL;
}

/* ---- manual mode -------------------------------------------------------- */

/* ovl_poll(p, 0) on a port with a completion thread: deliver what is ready
 * on the calling thread, unless someone (the completion thread) is
 * delivering right now. One round only: the callbacks' deferred submits are
 * flushed at the end and what they produce is the completion thread's, so
 * a resubmitting callback cannot keep the caller here for ever. Then a
 * parked completion thread is woken if ops are left in flight (the park's
 * rule 2: the caller's own submits and its callbacks' did not wake it). */
int32_t ovl__poll_helping(ovl_port *p, const ovl_port *h)
{
    /* `users` keeps close from destroying the backend under us. Close
     * stores CLOSING before it waits for users to drop to zero, we raise
     * users before we look at the state: with both seq_cst, at least one
     * of us sees the other. */
    atomic_fetch_add(&p->users, 1);
    int32_t rc = 0;
    if (!ovl__port_open(p, h)) {
        rc = OVL_ECLOSED;
    } else {
        if (ovl__mutex_trylock(&p->deliver_lock)) {
            size_t n = ovl__deliver_once(p, 0);
            if (n) p->backend->kick(p, false);
            ovl__mutex_unlock(&p->deliver_lock);
            rc = (int32_t)n;
        }
        ovl__ct_unpark(p);
        ct_nudge(p);
    }
    atomic_fetch_sub(&p->users, 1);
    return rc;
}

/* Manual mode: let go of deliver_lock. A ovl_poll(p, 0) that found it taken
 * meanwhile returned 0 at once, trusting this holder to deliver what is
 * ready; but a completion that came after our last reap is not ours, and
 * its wake-up (the port's event handle) may have been spent on that
 * caller: an edge-triggered outside poller (Go's netpoller, tokio) would
 * then never look again. So that caller sets poll_again before it tries
 * the lock a second time, and here, after the unlock, a full barrier,
 * then poll_again is read: either we see it and look again (without
 * waiting), or its second try sees the lock free and delivers itself.
 * Returns what those looks delivered. The port struct outlives the call
 * (type-stable); `users` keeps close from destroying the backend between
 * the state check and the trylock (close waits for deliver_lock after
 * that). */
static size_t delivery_release(ovl_port *p, const ovl_port *port)
{
    size_t total = 0;
    for (;;) {
        ovl__mutex_unlock(&p->deliver_lock);
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load(&p->poll_again)) return total;
        atomic_fetch_add(&p->users, 1);
        bool mine = ovl__port_open(p, port) && ovl__mutex_trylock(&p->deliver_lock);
        atomic_fetch_sub(&p->users, 1);
        /* Not mine: closing (close delivers the rest), or a new holder,
         * which sees poll_again when it lets go. */
        if (!mine) return total;
        atomic_store(&p->poll_again, false);
        size_t n = ovl__deliver_once(p, 0);
        if (n) p->backend->kick(p, false);
        total += n;
    }
}

/* Manual mode, deliver_lock held (released here): the delivery loop of
 * ovl_poll, waiting until `deadline` (ms, 0 = no limit) when timeout_ms is
 * not 0. */
static int32_t poll_manual_locked(ovl_port *p, const ovl_port *port, int32_t timeout_ms,
                                  uint64_t deadline, bool quiet)
{
    int32_t rc = 0;
    size_t total = 0;
    int32_t wait_ms = timeout_ms < 0 ? -1 : timeout_ms;
    for (;;) {
        if (!ovl__port_open(p, port)) {
            if (!total) rc = OVL_ECLOSED;
            break;
        }
        if (timeout_ms > 0) {
            uint64_t now = ovl__now_ms();
            wait_ms = now >= deadline ? 0 : (int32_t)(deadline - now);
        }
        size_t n = ovl__deliver_once(p, wait_ms);
        if (n) {
            total += n;
            /* A full batch may have left more behind: deliver whatever
             * else is ready now, without waiting, up to about one queue's
             * worth (everything that was ready when the call began, but no
             * more, or a callback that answers every completion with a
             * submit, whose reads and posts complete as soon as they are
             * flushed, would keep this call going for ever). After a
             * partial batch the CQ was empty: another round would only
             * cost the manual-mode eventfd's reset, one read() per call,
             * and leaving it signalled costs an outside poller at most one
             * spurious wake-up. */
            while (n == p->batch_cap && total < p->depth && (n = ovl__deliver_once(p, 0)) > 0)
                total += n;
            break;
        }
        if (timeout_ms == 0 || wait_ms == 0) break;
    }
    /* Submits made by the callbacks above were deferred; nobody else will
     * flush them before the next ovl_poll, so do it now. */
    if (total) p->backend->kick(p, false);
    if (quiet) p->backend->quiet_event(p, false);
    total += delivery_release(p, port);
    return rc && !total ? rc : (int32_t)total;
}

/* Manual mode: take delivery (waiting for it unless timeout_ms is 0). */
static int32_t poll_manual(ovl_port *p, const ovl_port *port, int32_t timeout_ms, uint64_t deadline)
{
    int32_t rc;
    if (timeout_ms == 0) {
        /* "Don't wait" includes not waiting for another thread that is
         * delivering right now: it will deliver what is ready, looking
         * again once it lets go if asked to (delivery_release). */
        if (!ovl__mutex_trylock(&p->deliver_lock)) {
            atomic_store(&p->poll_again, true);
            if (!ovl__mutex_trylock(&p->deliver_lock)) return 0;
        }
    } else {
        /* The holder may be inside a callback that waits for one of ours. */
        if ((rc = ovl__wait_begin(p)) != OVL_OK) return rc;
        ovl__mutex_lock(&p->deliver_lock);
        ovl__wait_end();
    }
    return poll_manual_locked(p, port, timeout_ms, deadline, false);
}

/* ovl_poll(p, t) and ovl_submit_and_poll(..., t), t != 0, on a port with a
 * completion thread: the caller takes the reaper role from the thread for
 * one delivery (the manual loop above: at least one batch, or until the
 * deadline), so that a submitter about to wait for its own I/O pays no
 * hand-off. The role is taken before the submit (reqs, n), so what this
 * call submits is delivered by it or left in flight at the deadline, never
 * taken by the thread in between. While callers hold or wait for the role
 * the thread parks (ct_may_park) instead of waking for the same
 * completions; the last one out wakes it if it must watch what is left.
 * `users` keeps close from destroying the backend under us; close wakes
 * the backend before it waits for users, so a caller asleep with nothing
 * in flight comes out (OVL_ECLOSED). */
static int32_t poll_reaping(ovl_port *p, const ovl_port *port, ovl_request *reqs, size_t n,
                            size_t *out_submitted, int32_t timeout_ms, uint64_t deadline)
{
    int32_t rc;
    atomic_fetch_add(&p->users, 1);
    if (!ovl__port_open(p, port)) {
        atomic_fetch_sub(&p->users, 1);
        return OVL_ECLOSED;
    }
    ovl__mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->reapers, 1u, memory_order_relaxed);
    /* A caller that delivers for itself: raise the park hint (as
     * ovl_submit_and_poll(..., 0) does on io_uring), so that once it is
     * gone, with nothing in flight, the thread stays parked instead of
     * being woken only to wait, and the next such caller finds it so. */
    if (!atomic_load_explicit(&p->parking, memory_order_relaxed))
        atomic_store_explicit(&p->parking, true, memory_order_relaxed);
    /* A thread that sleeps holding deliver_lock (a backend without
     * wait_ready) lets go of it once woken, and then parks; a parked one
     * holds nothing. */
    bool wake =
        !p->backend->wait_ready && !atomic_load_explicit(&p->ct_parked, memory_order_relaxed);
    ovl__mutex_unlock(&p->lock);
    if (wake) p->backend->wake(p);
    /* The holder may be inside a callback that waits for one of ours. */
    if ((rc = ovl__wait_begin(p)) == OVL_OK) {
        ovl__mutex_lock(&p->deliver_lock);
        ovl__wait_end();
        if (n) {
            /* With a backend that submits in the system call that waits
             * (io_uring), the wait below makes one call of both. */
            bool defer = p->backend->wait_submits;
            size_t done = 0;
            rc = ovl__submit_batch(p, port, reqs, n, &done,
                                   OVL__SUBMIT_DELIVERS | (defer ? OVL__SUBMIT_NO_KICK : 0u));
            if (out_submitted) *out_submitted = done;
            if (rc != OVL_OK) {
                /* No delivery after a failed submit: push what it did
                 * submit (the backend is alive: we hold users), and the
                 * thread watches it once we leave. */
                if (done && defer) p->backend->kick(p, false);
                ovl__mutex_unlock(&p->deliver_lock);
            }
        }
        if (rc == OVL_OK) rc = poll_manual_locked(p, port, timeout_ms, deadline, false);
    }
    ovl__mutex_lock(&p->lock);
    atomic_fetch_sub_explicit(&p->reapers, 1u, memory_order_relaxed);
    if (atomic_load_explicit(&p->ct_parked, memory_order_relaxed) && !ct_may_park(p))
        ct_wake_locked(p);
    ovl__mutex_unlock(&p->lock);
    atomic_fetch_sub(&p->users, 1);
    return rc;
}

static uint64_t deadline_of(int32_t timeout_ms)
{
    return timeout_ms > 0 ? ovl__now_ms() + (uint64_t)timeout_ms : 0;
}

OVL_API int32_t ovl_poll(ovl_port *port, int32_t timeout_ms)
{
    int32_t rc;
    uint64_t deadline = deadline_of(timeout_ms); /* measured from the call */
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (ovl__in_callback(p)) return OVL_EDEADLK;
    /* Closed before wrong mode: a stale handle always says OVL_ECLOSED. */
    if (!ovl__port_open(p, port)) return OVL_ECLOSED;
    if (!(p->flags & OVL_PORT_MANUAL)) {
        if (timeout_ms != 0) return poll_reaping(p, port, NULL, 0, NULL, timeout_ms, deadline);
        return ovl__poll_helping(p, port);
    }
    return poll_manual(p, port, timeout_ms, deadline);
}

OVL_API int32_t ovl_submit_and_poll(ovl_port *port, ovl_request *reqs, size_t n,
                                    size_t *out_submitted, int32_t timeout_ms)
{
    int32_t rc;
    uint64_t deadline = deadline_of(timeout_ms);
    if (out_submitted) *out_submitted = 0;
    ovl_port *p = ovl__port_get(port, &rc);
    if (!p) return rc;
    if (ovl__in_callback(p)) return OVL_EDEADLK;
    if (!ovl__port_open(p, port)) return OVL_ECLOSED;
    bool manual = p->flags & OVL_PORT_MANUAL;
    if (n && !reqs) return OVL_EINVAL;
    if (!manual && timeout_ms != 0)
        return poll_reaping(p, port, reqs, n, out_submitted, timeout_ms, deadline);
    /* On a manual port, take delivery before the submit when it is free:
     * with a backend that submits in the system call that waits (io_uring)
     * the kick is held back and the wait below makes one system call of
     * both (only with delivery in hand: a thread already waiting in the
     * kernel would not see the new work); and a caller that will wait
     * reaps what it submitted itself, so the port's event handle stays
     * quiet for it (quiet_event) instead of waking an outside poller that
     * would only find the lock taken. */
    bool defer = manual && n && p->backend->wait_submits;
    bool quiet = manual && n && timeout_ms != 0 && p->backend->quiet_event;
    bool merge = (defer || quiet) && ovl__mutex_trylock(&p->deliver_lock);
    defer = defer && merge;
    quiet = quiet && merge;
    if (quiet) {
        /* Open now, with delivery in hand: a close cannot destroy the
         * backend before we let go (its drain takes deliver_lock). */
        if (!ovl__port_open(p, port)) {
            ovl__mutex_unlock(&p->deliver_lock);
            return OVL_ECLOSED;
        }
        p->backend->quiet_event(p, true);
    }
    if (n) {
        size_t done = 0;
        /* Threaded: this call delivers next, then wakes a parked completion
         * thread for what it leaves in flight (ovl__poll_helping), and it
         * sets the park hint on a backend with wait_ready. */
        unsigned how = manual ? (defer ? OVL__SUBMIT_NO_KICK : 0u) : OVL__SUBMIT_DELIVERS;
        rc = ovl__submit_batch(p, port, reqs, n, &done, how);
        if (out_submitted) *out_submitted = done;
        if (rc != OVL_OK) {
            /* No delivery after a failed submit: what it did submit goes
             * to a parked completion thread now. (The struct outlives the
             * port; on a closed one nothing is parked.) */
            if (!manual && done) ovl__ct_unpark(p);
            if (merge) {
                /* Push what was submitted. With none, the port may be
                 * closed and its backend gone: touch nothing. */
                if (done && defer) p->backend->kick(p, false);
                if (quiet) p->backend->quiet_event(p, false);
                ovl__mutex_unlock(&p->deliver_lock);
            }
            return rc;
        }
    }
    if (!manual) return ovl__poll_helping(p, port);
    if (merge) return poll_manual_locked(p, port, timeout_ms, deadline, quiet);
    if (!ovl__port_open(p, port)) return OVL_ECLOSED;
    return poll_manual(p, port, timeout_ms, deadline);
}
