/* stress.c - issue 8's stress program: several submitter threads keep
 * thousands of ops in flight across a regular file, pipes and a socketpair,
 * with random cancels, random posts, callbacks that submit more, and ports
 * closed while busy. Every op is accounted for exactly once: each submit
 * that returned OVL_OK must produce one completion, a failed submit none,
 * each read's bytes are checked against the known content, each write is
 * read back after close, and no completion may name an unknown op.
 *
 *   stress [--long] [--seconds N] [--rounds N] [--ops N] [--seed N]
 *
 * The backend comes from OVL_BACKEND (uring|threads); a backend the host
 * lacks exits 77 (ctest SKIP_RETURN_CODE). Exit 1 on any mismatch. The last
 * line is one summary of the figures. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <ovl.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSUBMITTERS 3
#define DATA_SIZE (1u << 20) /* the read-only file with known content */
#define WSLOTS 64            /* the write file: WSLOTS slots of WSLOT bytes */
#define WSLOT 4096
#define NCHAN 6 /* stream channels: 4 pipes, 1 socketpair x2 */
#define MAXALT 8

/* ---- figures ------------------------------------------------------------ */
static struct {
    _Atomic uint64_t submitted, completed, rejected_full, rejected_closed;
    _Atomic uint64_t cancels_asked, cancels_ok, cancels_enoent, cancelled;
    _Atomic uint64_t posts, from_cb, reads, writes, fsyncs, stream_ops;
    _Atomic uint64_t bytes_read, bytes_written, errors_seen;
    _Atomic uint64_t edeadlk, dups, unknown;
    _Atomic uint64_t helped; /* delivered by ovl_poll(p, 0) on a threaded port */
    uint64_t peak_inflight, closes, closes_busy, inflight_at_close, rounds, failures;
} fig;

static atomic_int failed;
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stress: MISMATCH: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (atomic_fetch_add(&failed, 1) > 20) {
        fprintf(stderr, "stress: too many mismatches, giving up\n");
        exit(1);
    }
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}
static uint64_t rnd(uint64_t *s) { return mix(++*s * 0x9e3779b97f4a7c15ull); }

/* Byte at offset o of the data file. */
static uint8_t data_byte(uint64_t o) { return (uint8_t)(mix(o / 8) >> (8 * (o % 8))); }
/* Byte j of a write-slot image with seed s. */
static uint8_t slot_byte(uint64_t s, uint64_t j)
{
    return (uint8_t)(mix(s * 4099 + j / 8) >> (8 * (j % 8)));
}
/* Byte at stream position i of channel c (round-specific salt). */
static uint8_t stream_byte(uint64_t salt, uint64_t i)
{
    return (uint8_t)(mix(salt + i / 8) >> (8 * (i % 8)));
}

/* ---- per-op records --------------------------------------------------------
 * Each submit attempt takes a fresh record (never reused within a round), so
 * a record's state machine is NEW -> SUBMITTED -> COMPLETED, or NEW ->
 * SUBMITTED -> REJECTED when the submit returned an error. */
enum { R_NEW = 0, R_SUBMITTED, R_COMPLETED, R_REJECTED };
enum { K_READ = 1, K_WRITE, K_FSYNC, K_POST, K_SREAD, K_SWRITE };

typedef struct rec {
    _Atomic int state;
    _Atomic uint64_t sub_id; /* id the submit returned (0 before) */
    uint64_t done_id;        /* id the completion carried */
    int kind;
    uint32_t len;
    uint64_t off; /* file offset / stream position */
    int64_t post_value;
    int slot, chan;
    uint64_t seed;
    uint8_t *buf;
} rec;

typedef struct chan {
    int rfd, wfd;
    uint64_t salt;
    atomic_int rbusy, wbusy; /* one read and one write in flight at a time */
    uint64_t rpos, wpos;     /* owned by whoever holds the busy flag */
} chan;

typedef struct slot {
    atomic_int busy;      /* one write in flight per slot */
    uint64_t seed;        /* last fully written image (0: initial zeros) */
    uint64_t alt[MAXALT]; /* writes that failed/were cancelled since */
    int nalt;             /* -1: unknown (a short write happened) */
} slot;

typedef struct round {
    ovl_port *_Atomic port;
    bool manual;
    bool sap; /* submitters use ovl_submit_and_poll (threaded port) */
    int datafd, wfd;
    rec *recs;
    size_t nrecs;
    _Atomic size_t next_rec;
    chan ch[NCHAN];
    slot sl[WSLOTS];
    atomic_int in_cb;
    atomic_bool close_returned;
    atomic_bool stop;
    uint64_t seed;
} round_t;

static rec *rec_take(round_t *R)
{
    size_t i = atomic_fetch_add(&R->next_rec, 1);
    if (i >= R->nrecs) return NULL;
    return &R->recs[i];
}

static void submitted_result(round_t *R, rec *r, int32_t rc, uint64_t id);

/* One request: on a "sap" round, from outside a callback, through
 * ovl_submit_and_poll (what completed inside it, or within its wait, is
 * delivered on this thread, the callback running here); else through the plain call of its
 * kind. Returns the submit's code (a delivery error after the request was
 * accepted does not undo it) and sets *id. */
static int32_t submit1(round_t *R, bool in_cb, ovl_request q, uint64_t *id)
{
    ovl_port *port = atomic_load(&R->port);
    if (R->sap && !in_cb) {
        /* Every fourth call waits up to 1 ms, taking delivery over from
         * the completion thread (and from the other submitters). */
        static _Thread_local unsigned calls;
        size_t done = 0;
        int32_t rc = ovl_submit_and_poll(port, &q, 1, &done, ++calls % 4 == 0 ? 1 : 0);
        *id = done == 1 ? q.id : 0;
        if (done == 1) return OVL_OK;
        if (rc == OVL_EDEADLK) fail("ovl_submit_and_poll outside a callback: OVL_EDEADLK");
        return rc;
    }
    switch (q.op) {
    case OVL_OP_READ: return ovl_submit_read(port, q.fd, q.buf, q.len, q.offset, q.ctx, id);
    case OVL_OP_WRITE: return ovl_submit_write(port, q.fd, q.buf, q.len, q.offset, q.ctx, id);
    case OVL_OP_FSYNC: return ovl_submit_fsync(port, q.fd, q.flags, q.ctx, id);
    default: return ovl_post(port, q.offset, q.ctx, id);
    }
}

static ovl_request req_of(uint32_t op, int fd, void *buf, uint32_t len, int64_t off, uint32_t flags,
                          void *ctx)
{
    return (ovl_request){op, flags, (ovl_fd)fd, buf, len, off, ctx, 0, 0};
}

/* Start one op of a random kind. Returns the submit's code, or 1 when the
 * round's records are used up. */
static int32_t start_op(round_t *R, uint64_t *rs, bool in_cb)
{
    rec *r = rec_take(R);
    if (!r) return 1;
    uint64_t x = rnd(rs) % 100;
    int32_t rc;
    uint64_t id = 0;
    atomic_store(&r->state, R_SUBMITTED); /* the completion may beat us */
    if (x < 40) {
        r->kind = K_READ;
        r->len = 1 + (uint32_t)(rnd(rs) % 16384);
        r->off = rnd(rs) % (DATA_SIZE + 8192); /* some past EOF */
        r->buf = malloc(r->len);
        rc = submit1(R, in_cb,
                     req_of(OVL_OP_READ, R->datafd, r->buf, r->len, (int64_t)r->off, 0, r), &id);
    } else if (x < 55) {
        int s = (int)(rnd(rs) % WSLOTS), busy = 0;
        if (!atomic_compare_exchange_strong(&R->sl[s].busy, &busy, 1)) goto post;
        r->kind = K_WRITE;
        r->slot = s;
        r->seed = (rnd(rs) | 1);
        r->len = WSLOT;
        r->off = (uint64_t)s * WSLOT;
        r->buf = malloc(WSLOT);
        for (uint32_t j = 0; j < WSLOT; j++) r->buf[j] = slot_byte(r->seed, j);
        rc = submit1(R, in_cb, req_of(OVL_OP_WRITE, R->wfd, r->buf, r->len, (int64_t)r->off, 0, r),
                     &id);
        if (rc != OVL_OK) atomic_store(&R->sl[s].busy, 0);
    } else if (x < 85) {
        int c = (int)(rnd(rs) % NCHAN), busy = 0;
        chan *ch = &R->ch[c];
        bool wr = rnd(rs) & 1;
        atomic_int *flag = wr ? &ch->wbusy : &ch->rbusy;
        if (!atomic_compare_exchange_strong(flag, &busy, 1)) goto post;
        r->chan = c;
        r->len = 1 + (uint32_t)(rnd(rs) % 8192);
        r->buf = malloc(r->len);
        if (wr) {
            r->kind = K_SWRITE;
            r->off = ch->wpos;
            for (uint32_t j = 0; j < r->len; j++) r->buf[j] = stream_byte(ch->salt, r->off + j);
            rc = submit1(R, in_cb,
                         req_of(OVL_OP_WRITE, ch->wfd, r->buf, r->len, OVL_OFFSET_CURRENT, 0, r),
                         &id);
        } else {
            r->kind = K_SREAD;
            r->off = ch->rpos;
            rc = submit1(R, in_cb,
                         req_of(OVL_OP_READ, ch->rfd, r->buf, r->len, OVL_OFFSET_CURRENT, 0, r),
                         &id);
        }
        if (rc != OVL_OK) atomic_store(flag, 0);
    } else if (x < 88) {
        r->kind = K_FSYNC;
        uint32_t fl = (rnd(rs) & 1) ? OVL_FSYNC_DATA : 0;
        rc = submit1(R, in_cb, req_of(OVL_OP_FSYNC, R->wfd, NULL, 0, 0, fl, r), &id);
    } else {
    post:
        r->kind = K_POST;
        r->post_value = (int64_t)(rnd(rs) >> 1) * ((rnd(rs) & 1) ? 1 : -1);
        rc = submit1(R, in_cb, req_of(OVL_OP_POST, 0, NULL, 0, r->post_value, 0, r), &id);
    }
    if (in_cb) atomic_fetch_add(&fig.from_cb, 1);
    submitted_result(R, r, rc, id);
    return rc;
}

static void submitted_result(round_t *R, rec *r, int32_t rc, uint64_t id)
{
    (void)R;
    if (rc == OVL_OK) {
        if (id == 0) fail("submit returned OK with id 0");
        atomic_store(&r->sub_id, id);
        atomic_fetch_add(&fig.submitted, 1);
        return;
    }
    if (id != 0) fail("failed submit (%s) still gave an id", ovl_error_name(rc));
    int st = R_SUBMITTED;
    if (!atomic_compare_exchange_strong(&r->state, &st, R_REJECTED))
        fail("failed submit (%s) produced a completion", ovl_error_name(rc));
    if (rc == OVL_EQUEUEFULL) atomic_fetch_add(&fig.rejected_full, 1);
    else if (rc == OVL_ECLOSED) atomic_fetch_add(&fig.rejected_closed, 1);
    else fail("unexpected submit error %s", ovl_error_name(rc));
    free(r->buf);
    r->buf = NULL;
}

/* Cancel a recent op, or a made-up id. */
static void random_cancel(round_t *R, uint64_t *rs)
{
    ovl_port *port = atomic_load(&R->port);
    size_t n = atomic_load(&R->next_rec);
    if (n > R->nrecs) n = R->nrecs;
    if (n == 0) return;
    if (rnd(rs) % 16 == 0) {
        /* Garbage ids: never an op of ours (bit 63 set, or index 0). */
        uint64_t bogus = (rnd(rs) & 1) ? (rnd(rs) | (1ull << 63)) : (rnd(rs) << 32);
        int32_t rc = ovl_cancel(port, bogus);
        if (rc != OVL_ENOENT && rc != OVL_ECLOSED)
            fail("cancel of bogus id returned %s", ovl_error_name(rc));
        return;
    }
    size_t back = rnd(rs) % (n < 1024 ? n : 1024);
    rec *r = &R->recs[n - 1 - back];
    uint64_t id = atomic_load(&r->sub_id);
    if (!id) return;
    int before = atomic_load(&r->state);
    atomic_fetch_add(&fig.cancels_asked, 1);
    int32_t rc = ovl_cancel(port, id);
    if (rc == OVL_OK) {
        atomic_fetch_add(&fig.cancels_ok, 1);
        if (before == R_COMPLETED) fail("cancel accepted for an op already delivered");
    } else if (rc == OVL_ENOENT) {
        atomic_fetch_add(&fig.cancels_enoent, 1);
    } else if (rc != OVL_ECLOSED) {
        fail("cancel returned %s", ovl_error_name(rc));
    }
}

/* ---- the callback ------------------------------------------------------- */

static void check_completion(round_t *R, const ovl_completion *c)
{
    rec *r = c->ctx;
    if (!r || r < R->recs || r >= R->recs + R->nrecs) {
        atomic_fetch_add(&fig.unknown, 1);
        fail("completion with unknown ctx %p id %" PRIx64, c->ctx, c->id);
        return;
    }
    int st = R_SUBMITTED;
    if (!atomic_compare_exchange_strong(&r->state, &st, R_COMPLETED)) {
        atomic_fetch_add(&fig.dups, 1);
        fail("completion for an op in state %d (duplicate or rejected) id %" PRIx64, st, c->id);
        return;
    }
    r->done_id = c->id;
    atomic_fetch_add(&fig.completed, 1);
    if (c->result == OVL_ECANCELED) atomic_fetch_add(&fig.cancelled, 1);
    else if (c->result < 0 && r->kind != K_POST) atomic_fetch_add(&fig.errors_seen, 1);
    if (c->result < 0 && r->kind != K_POST && c->os_error == 0 && c->result != OVL_ECANCELED)
        fail("error completion %s without os_error", ovl_error_name((int32_t)c->result));
    uint32_t want_op = r->kind == K_POST                           ? OVL_OP_POST
                       : r->kind == K_FSYNC                        ? OVL_OP_FSYNC
                       : (r->kind == K_READ || r->kind == K_SREAD) ? OVL_OP_READ
                                                                   : OVL_OP_WRITE;
    if (c->op != want_op) fail("op kind %u, expected %u", c->op, want_op);

    switch (r->kind) {
    case K_POST:
        atomic_fetch_add(&fig.posts, 1);
        if (c->result != r->post_value)
            fail("post value %" PRId64 " != %" PRId64, c->result, r->post_value);
        break;
    case K_FSYNC:
        atomic_fetch_add(&fig.fsyncs, 1);
        if (c->result != 0 && c->result != OVL_ECANCELED)
            fail("fsync result %s", ovl_error_name((int32_t)c->result));
        break;
    case K_READ: {
        atomic_fetch_add(&fig.reads, 1);
        if (c->result == OVL_ECANCELED) break;
        uint64_t avail = r->off >= DATA_SIZE ? 0 : DATA_SIZE - r->off;
        uint64_t want = avail < r->len ? avail : r->len;
        if (c->result != (int64_t)want) {
            fail("read at %" PRIu64 " len %u: result %" PRId64 ", expected %" PRIu64, r->off,
                 r->len, c->result, want);
            break;
        }
        for (uint64_t j = 0; j < want; j++)
            if (r->buf[j] != data_byte(r->off + j)) {
                fail("read at %" PRIu64 ": wrong byte at +%" PRIu64, r->off, j);
                break;
            }
        atomic_fetch_add(&fig.bytes_read, want);
        break;
    }
    case K_WRITE: {
        atomic_fetch_add(&fig.writes, 1);
        slot *s = &R->sl[r->slot];
        if (c->result == WSLOT) {
            s->seed = r->seed;
            s->nalt = 0;
            atomic_fetch_add(&fig.bytes_written, WSLOT);
        } else if (c->result == OVL_ECANCELED || (c->result > 0 && c->result < WSLOT)) {
            /* Not (fully) written: the slot holds the old image or this one
             * (or, after a short write, a mix: no longer checkable). */
            if (c->result > 0) s->nalt = -1;
            else if (s->nalt >= 0 && s->nalt < MAXALT) s->alt[s->nalt++] = r->seed;
            else s->nalt = -1;
        } else {
            fail("write result %" PRId64, c->result);
        }
        atomic_store(&s->busy, 0);
        break;
    }
    case K_SWRITE:
    case K_SREAD: {
        atomic_fetch_add(&fig.stream_ops, 1);
        chan *ch = &R->ch[r->chan];
        if (c->result > (int64_t)r->len) fail("stream result past len");
        if (r->kind == K_SWRITE) {
            if (c->result > 0) {
                ch->wpos += (uint64_t)c->result;
                atomic_fetch_add(&fig.bytes_written, (uint64_t)c->result);
            } else if (c->result != OVL_ECANCELED) {
                fail("stream write result %s", ovl_error_name((int32_t)c->result));
            }
            atomic_store(&ch->wbusy, 0);
        } else {
            if (c->result > 0) {
                for (int64_t j = 0; j < c->result; j++)
                    if (r->buf[j] != stream_byte(ch->salt, ch->rpos + (uint64_t)j)) {
                        fail("stream read chan %d pos %" PRIu64 ": wrong byte at +%" PRId64,
                             r->chan, ch->rpos, j);
                        break;
                    }
                ch->rpos += (uint64_t)c->result;
                atomic_fetch_add(&fig.bytes_read, (uint64_t)c->result);
            } else if (c->result != OVL_ECANCELED) {
                fail("stream read result %s", ovl_error_name((int32_t)c->result));
            }
            atomic_store(&ch->rbusy, 0);
        }
        break;
    }
    }
    free(r->buf);
    r->buf = NULL;
}

static _Thread_local uint64_t cb_rng;

static void callback(const ovl_completion *items, size_t n, void *ud)
{
    round_t *R = ud;
    if (atomic_fetch_add(&R->in_cb, 1) != 0) fail("two callbacks at once on one port");
    if (atomic_load(&R->close_returned)) fail("callback after ovl_close_port returned");
    if (!cb_rng) cb_rng = R->seed ^ (uint64_t)(uintptr_t)&cb_rng;
    if (n == 0) fail("empty batch");
    for (size_t i = 0; i < n; i++) check_completion(R, &items[i]);
    /* Callbacks submit more: the event-loop pattern (deferred flush). */
    size_t more = n / 2 + (rnd(&cb_rng) % 2);
    for (size_t i = 0; i < more && !atomic_load(&R->stop); i++)
        if (start_op(R, &cb_rng, true) != OVL_OK) break;
    if (rnd(&cb_rng) % 8 == 0) random_cancel(R, &cb_rng);
    ovl_port *port = atomic_load(&R->port);
    if (rnd(&cb_rng) % 64 == 0) {
        int32_t rc = ovl_close_port(port);
        if (rc != OVL_EDEADLK) fail("close from own callback returned %s", ovl_error_name(rc));
        else atomic_fetch_add(&fig.edeadlk, 1);
    }
    if (rnd(&cb_rng) % 64 == 0) {
        int32_t rc = ovl_poll(port, 0);
        if (rc != OVL_EDEADLK) fail("poll from own callback returned %s", ovl_error_name(rc));
    }
    atomic_fetch_sub(&R->in_cb, 1);
}

/* ---- threads ------------------------------------------------------------ */

typedef struct worker {
    round_t *R;
    uint64_t rng;
    pthread_t t;
} worker;

static void *submitter(void *arg)
{
    worker *w = arg;
    round_t *R = w->R;
    while (!atomic_load(&R->stop)) {
        uint64_t x = rnd(&w->rng) % 100;
        if (x < 6) {
            random_cancel(R, &w->rng);
        } else if (x < 8) {
            /* A burst through the batch API: one lock, one syscall. */
            ovl_request q[8];
            rec *rs[8];
            size_t k = 0, done = 0;
            for (; k < 8; k++) {
                if (!(rs[k] = rec_take(R))) break;
                rec *r = rs[k];
                r->kind = K_READ;
                r->len = 1 + (uint32_t)(rnd(&w->rng) % 4096);
                r->off = rnd(&w->rng) % DATA_SIZE;
                r->buf = malloc(r->len);
                atomic_store(&r->state, R_SUBMITTED);
                q[k] = (ovl_request){
                    OVL_OP_READ, 0, (ovl_fd)R->datafd, r->buf, r->len, (int64_t)r->off, r, 0, 0};
            }
            if (k == 0) break;
            int32_t rc;
            if (R->sap) {
                /* What it delivers after the submit does not count here. */
                rc = ovl_submit_and_poll(atomic_load(&R->port), q, k, &done, 0);
                if (done == k) rc = OVL_OK;
                else if (rc >= 0)
                    fail("ovl_submit_and_poll: %zu of %zu submitted, rc %d", done, k, rc);
            } else {
                rc = ovl_submit(atomic_load(&R->port), q, k, &done);
            }
            if ((rc == OVL_OK) != (done == k)) fail("ovl_submit rc/count disagree");
            for (size_t i = 0; i < k; i++)
                submitted_result(R, rs[i], i < done ? OVL_OK : rc, q[i].id);
            if (rc == OVL_ECLOSED) break;
        } else {
            int32_t rc = start_op(R, &w->rng, false);
            if (rc == 1 || rc == OVL_ECLOSED) break;
            if (!R->manual && x % 4 == 0) {
                /* Take what is ready on this thread, racing the
                 * completion thread (and close) for it. */
                int32_t n = ovl_poll(atomic_load(&R->port), 0);
                if (n == OVL_ECLOSED) break;
                if (n < 0) fail("ovl_poll(p, 0) returned %s", ovl_error_name(n));
                else atomic_fetch_add(&fig.helped, (uint64_t)n);
            }
            /* Back-pressure: wait for completions to free slots. */
            if (rc == OVL_EQUEUEFULL) sched_yield();
        }
    }
    return NULL;
}

static void *poller(void *arg)
{
    round_t *R = arg;
    for (;;) {
        int32_t rc = ovl_poll(atomic_load(&R->port), 20);
        if (rc == OVL_ECLOSED) break;
        if (rc < 0) {
            fail("ovl_poll returned %s", ovl_error_name(rc));
            break;
        }
    }
    return NULL;
}

/* ---- a round: one port from creation to close ---------------------------- */

static int make_tmp(const char *tag)
{
    char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/ovl-stress-%s-XXXXXX", dir && *dir ? dir : "/tmp", tag);
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    unlink(path);
    return fd;
}

static int data_fd = -1;

static void run_round(uint64_t seed, size_t budget, uint32_t depth, bool manual, uint64_t max_us)
{
    round_t *R = calloc(1, sizeof *R);
    R->seed = seed;
    R->manual = manual;
    R->datafd = data_fd;
    R->wfd = make_tmp("w");
    if (ftruncate(R->wfd, (off_t)WSLOTS * WSLOT) != 0) exit(2);
    R->nrecs = budget;
    R->recs = calloc(budget, sizeof *R->recs);
    for (int i = 0; i < NCHAN; i++) {
        int fds[2];
        chan *ch = &R->ch[i];
        if (i < 4) {
            if (pipe2(fds, O_CLOEXEC) != 0) exit(2);
            ch->rfd = fds[0];
            ch->wfd = fds[1];
        } else if (i == 4) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) exit(2);
            ch->rfd = sv[0];
            ch->wfd = sv[1];
            R->ch[5].rfd = sv[1];
            R->ch[5].wfd = sv[0];
        }
        ch->salt = mix(seed + 1000 + (uint64_t)i);
    }

    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = depth;
    /* Every other threaded port's submitters use ovl_submit_and_poll. */
    cfg.flags = manual ? OVL_PORT_MANUAL : 0;
    R->sap = !manual && (seed & 1);
    cfg.callback = callback;
    cfg.userdata = R;
    cfg.threads = 2 + (uint32_t)(seed % 4);
    ovl_port *port;
    int32_t rc = ovl_create_port(&cfg, &port);
    if (rc != OVL_OK) {
        fail("ovl_create_port: %s", ovl_error_name(rc));
        exit(1);
    }
    atomic_store(&R->port, port);

    worker w[NSUBMITTERS];
    pthread_t pt;
    if (manual) pthread_create(&pt, NULL, poller, R);
    for (int i = 0; i < NSUBMITTERS; i++) {
        w[i].R = R;
        w[i].rng = mix(seed * 31 + (uint64_t)i + 1);
        pthread_create(&w[i].t, NULL, submitter, &w[i]);
    }
    /* Close while busy: once most of the budget is used (or the time cap),
     * with the submitters still running and ops in flight. */
    uint64_t start = now_us();
    size_t close_at = budget * 3 / 4 + (size_t)(seed % (budget / 8 + 1));
    ovl_stats st = {.size = sizeof st};
    while (atomic_load(&R->next_rec) < close_at && now_us() - start < max_us) {
        usleep(1000);
        ovl_port_stats(port, &st);
        if (st.inflight > fig.peak_inflight) fig.peak_inflight = st.inflight;
    }
    ovl_port_stats(port, &st);
    fig.inflight_at_close += st.inflight;
    if (st.inflight) fig.closes_busy++;
    rc = ovl_close_port(port);
    atomic_store(&R->close_returned, true);
    if (rc != OVL_OK) fail("ovl_close_port: %s", ovl_error_name(rc));
    fig.closes++;
    atomic_store(&R->stop, true);
    for (int i = 0; i < NSUBMITTERS; i++) pthread_join(w[i].t, NULL);
    if (manual) pthread_join(pt, NULL);
    if (ovl_close_port(port) != OVL_ECLOSED) fail("second close did not return OVL_ECLOSED");
    uint64_t dummy;
    if (ovl_post(port, 1, NULL, &dummy) != OVL_ECLOSED) fail("post after close not ECLOSED");

    /* Exactly once: every submitted op completed, every rejected none. */
    size_t used = atomic_load(&R->next_rec);
    if (used > R->nrecs) used = R->nrecs;
    uint64_t nsub = 0, ncomp = 0;
    for (size_t i = 0; i < used; i++) {
        rec *r = &R->recs[i];
        int s = atomic_load(&r->state);
        if (s == R_SUBMITTED) {
            fail("op %zu (kind %d id %" PRIx64 ") never completed", i, r->kind,
                 atomic_load(&r->sub_id));
        } else if (s == R_COMPLETED) {
            ncomp++;
            nsub++;
            if (r->done_id != atomic_load(&r->sub_id))
                fail("completion id %" PRIx64 " != submitted id %" PRIx64, r->done_id,
                     atomic_load(&r->sub_id));
        } else if (s == R_NEW && r->kind) {
            fail("record %zu half-used", i);
        }
        free(r->buf);
    }
    ovl_port_stats(port, &st);
    if (st.inflight != 0 || st.submitted != st.completed || st.submitted != nsub || st.stale != 0)
        fail("port stats: inflight %u submitted %" PRIu64 " completed %" PRIu64 " stale %" PRIu64
             " (ours: %" PRIu64 ")",
             st.inflight, st.submitted, st.completed, st.stale, nsub);
    (void)ncomp;

    /* Every write: read the slots back. */
    uint8_t *img = malloc(WSLOT);
    for (int s = 0; s < WSLOTS; s++) {
        slot *sl = &R->sl[s];
        if (sl->nalt < 0) continue;
        if (pread(R->wfd, img, WSLOT, (off_t)s * WSLOT) != WSLOT) {
            fail("pread back");
            continue;
        }
        bool ok = false;
        for (int a = -1; a < sl->nalt && !ok; a++) {
            uint64_t sd = a < 0 ? sl->seed : sl->alt[a];
            bool same = true;
            for (uint32_t j = 0; j < WSLOT && same; j++)
                same = img[j] == (sd ? slot_byte(sd, j) : 0);
            ok = same;
        }
        if (!ok) fail("write slot %d holds none of the written images", s);
    }
    free(img);
    for (int i = 0; i < NCHAN; i++) {
        if (R->ch[i].rpos > R->ch[i].wpos) fail("chan %d read past what was written", i);
        if (i < 4) {
            close(R->ch[i].rfd);
            close(R->ch[i].wfd);
        } else if (i == 4) {
            close(R->ch[i].rfd);
            close(R->ch[i].wfd);
        }
    }
    close(R->wfd);
    free(R->recs);
    free(R);
    fig.rounds++;
}

int main(int argc, char **argv)
{
    bool lng = false;
    double seconds = 0;
    unsigned rounds = 0;
    size_t ops = 0;
    uint64_t seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--long")) lng = true;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc) ops = (size_t)atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: %s [--long] [--seconds N] [--rounds N] [--ops N] [--seed N]\n",
                    argv[0]);
            return 2;
        }
    }
    /* Bounded default: 12 ports of up to 50k ops each, capped at ~25 s even
     * under a sanitizer. --long soaks for 10 minutes unless told. */
    if (!rounds) rounds = lng ? 1000000 : 12;
    if (!ops) ops = lng ? 200000 : 50000;
    if (seconds <= 0) seconds = lng ? 600 : 25;

    ovl_port *probe;
    int32_t rc = ovl_create_port(NULL, &probe);
    if (rc == OVL_EUNAVAIL) {
        printf("stress: backend %s unavailable on this host: skipped\n",
               getenv("OVL_BACKEND") ? getenv("OVL_BACKEND") : "auto");
        return 77;
    }
    if (rc != OVL_OK) {
        fprintf(stderr, "stress: ovl_create_port: %s\n", ovl_error_name(rc));
        return 1;
    }
    char backend[16];
    snprintf(backend, sizeof backend, "%s", ovl_backend_name(probe));
    ovl_close_port(probe);

    data_fd = make_tmp("data");
    uint8_t *d = malloc(DATA_SIZE);
    for (uint64_t o = 0; o < DATA_SIZE; o++) d[o] = data_byte(o);
    if (pwrite(data_fd, d, DATA_SIZE, 0) != DATA_SIZE) return 2;
    free(d);

    printf("stress: backend=%s seed=%" PRIu64 " rounds<=%u ops/round=%zu limit=%.0fs\n", backend,
           seed, rounds, ops, seconds);
    fflush(stdout);
    uint64_t t0 = now_us(), limit = (uint64_t)(seconds * 1e6);
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t el = now_us() - t0;
        if (el >= limit) break;
        uint64_t left = limit - el;
        uint64_t per = left / (rounds - i);
        if (per < 200000) per = 200000;
        static const uint32_t depths[] = {4096, 512, 64};
        run_round(seed + i * 7919u, ops, depths[i % 3], i % 4 == 3, per);
        if (atomic_load(&failed)) break;
    }
    double dur = (double)(now_us() - t0) / 1e6;
    close(data_fd);

    uint64_t sub = atomic_load(&fig.submitted), comp = atomic_load(&fig.completed);
    int bad = atomic_load(&failed);
    printf("stress: backend=%s ports=%" PRIu64 " closed_busy=%" PRIu64 " peak_inflight=%" PRIu64
           " inflight_at_close=%" PRIu64 " ops=%" PRIu64 " completed=%" PRIu64 " lost=%" PRIu64
           " dup=%" PRIu64 " unknown=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64
           " stream=%" PRIu64 " fsyncs=%" PRIu64 " posts=%" PRIu64 " from_callback=%" PRIu64
           " cancels=%" PRIu64 "/%" PRIu64 " cancelled=%" PRIu64 " queue_full=%" PRIu64
           " after_close=%" PRIu64 " edeadlk=%" PRIu64 " polled_by_submitters=%" PRIu64
           " MiB_verified=%.1f duration=%.1fs mismatches=%d\n",
           backend, fig.closes, fig.closes_busy, fig.peak_inflight, fig.inflight_at_close, sub,
           comp, sub - comp, atomic_load(&fig.dups), atomic_load(&fig.unknown),
           atomic_load(&fig.reads), atomic_load(&fig.writes), atomic_load(&fig.stream_ops),
           atomic_load(&fig.fsyncs), atomic_load(&fig.posts), atomic_load(&fig.from_cb),
           atomic_load(&fig.cancels_ok), atomic_load(&fig.cancels_asked),
           atomic_load(&fig.cancelled), atomic_load(&fig.rejected_full),
           atomic_load(&fig.rejected_closed), atomic_load(&fig.edeadlk), atomic_load(&fig.helped),
           (double)(atomic_load(&fig.bytes_read) + atomic_load(&fig.bytes_written)) / 1048576.0,
           dur, bad);
    return bad || sub != comp ? 1 : 0;
}
