/*
 * ovl_engine.c - an fio external I/O engine that drives libovl.
 *
 * An independent check of ovl's speed: fio generates the workload, keeps
 * the statistics and verifies the data; this file only turns fio's io_u
 * requests into ovl requests and ovl completions back into io_u events.
 *
 * Build (scripts/fio-check.sh does this) against the source tree of the
 * SAME fio version as the fio binary, after its ./configure:
 *
 *   cc -O2 -Wall -Wextra -fPIC -shared -D_GNU_SOURCE \
 *      -include $FIO/config-host.h -isystem $FIO -Iinclude \
 *      -o ovl_engine.so bench/fio/ovl_engine.c -Lbuild-fio -lovl
 *
 * and run with  ioengine=external:/path/to/ovl_engine.so  (fio looks the
 * engine up by the exported symbol `ioengine`).
 *
 * One ovl port per fio job (thread), created in init. queue() parks the
 * io_u on a pending list; commit() hands the pending ones to ovl in one
 * call, each request's context being the io_u; the port's callback sets
 * io_u->error / io_u->resid and appends the io_u to a completion array;
 * getevents() hands out completed io_us, waiting for at least `min`.
 *
 * Delivery mode: engine option mode=thread|manual|sap (after ioengine=),
 * else the environment variable OVL_FIO_MODE, else thread.
 *   thread  the port's completion thread runs the callback; getevents
 *           sleeps on a condition variable the callback signals (only when
 *           the waiter is asleep and has enough, once per batch).
 *   manual  OVL_PORT_MANUAL: getevents calls ovl_poll(port, remaining ms
 *           or -1) until `min` completions are there; the callback runs on
 *           fio's thread inside ovl_poll, so nothing is locked.
 *   sap     a port with a completion thread; commit uses
 *           ovl_submit_and_poll(port, reqs, n, &done, 0) (completions that
 *           finish inside the submit are delivered on fio's thread); when
 *           getevents would sleep it calls ovl_poll(port, remaining or -1),
 *           which takes delivery over from the completion thread.
 * The backend is ovl's usual choice: OVL_BACKEND=uring|threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fio.h"
#include "optgroup.h"

#include "ovl.h"

enum ovl_fio_mode { MODE_THREAD, MODE_MANUAL, MODE_SAP };

struct ovl_fio_options {
    void *pad; /* fio: an engine option must not sit at offset 0 */
    char *mode;
};

struct ovl_fio_data {
    ovl_port *port;
    enum ovl_fio_mode mode;
    unsigned int depth;

    /* fio's thread only */
    struct io_u **pending; /* queued, not yet committed */
    unsigned int npending;
    ovl_request *reqs;
    struct io_u **events; /* what the last getevents returned */

    /* written by the callback: under `lock` unless mode == MODE_MANUAL */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct io_u **done;
    unsigned int ndone;
    unsigned int want;  /* thread: how many the sleeping waiter needs */
    int sleeping;       /* thread: getevents waits on cond */
    int poll_waiting;   /* sap: getevents is in (or about to enter) ovl_poll */
    int wake_pending;   /* sap: a wake-up post is in flight */
    pthread_t waiter;   /* sap: the thread in ovl_poll */
    int32_t post_error; /* sap: a failed wake-up post */
};

/* ovl's completion codes are not errno values: use the errno the OS gave
 * (os_error) when there is one, else the nearest errno. */
static int ovl_to_errno(int64_t code, int32_t os_error)
{
    if (os_error > 0) return os_error;
    switch (code) {
    case OVL_EINVAL: return EINVAL;
    case OVL_EBADF: return EBADF;
    case OVL_ENOMEM: return ENOMEM;
    case OVL_EQUEUEFULL: return EBUSY;
    case OVL_ECLOSED: return EPIPE;
    case OVL_ECANCELED: return ECANCELED;
    case OVL_EDEADLK: return EDEADLK;
    case OVL_EUNAVAIL: return ENOSYS;
    case OVL_ENOTSUP: return EOPNOTSUPP;
    case OVL_EACCES: return EACCES;
    case OVL_ENOSPC: return ENOSPC;
    case OVL_EPIPE: return EPIPE;
    case OVL_EAGAIN: return EAGAIN;
    case OVL_EINTR: return EINTR;
    case OVL_EFAULT: return EFAULT;
    case OVL_ETOOBIG: return E2BIG;
    case OVL_EISDIR: return EISDIR;
    case OVL_EFBIG: return EFBIG;
    case OVL_ETIMEDOUT: return ETIMEDOUT;
    default: return EIO;
    }
}

static void ovl_fio_complete_one(struct io_u *io_u, int64_t result, int32_t os_error)
{
    if (result < 0) {
        io_u->error = ovl_to_errno(result, os_error);
    } else if (ddir_rw(io_u->ddir) && (unsigned long long)result < io_u->xfer_buflen) {
        io_u->resid = io_u->xfer_buflen - (unsigned long long)result;
        io_u->error = 0;
    } else {
        io_u->error = 0;
    }
}

static void ovl_fio_callback(const ovl_completion *items, size_t n, void *userdata)
{
    struct ovl_fio_data *d = userdata;
    const int locked = d->mode != MODE_MANUAL;
    size_t i;

    if (locked) pthread_mutex_lock(&d->lock);
    for (i = 0; i < n; i++) {
        struct io_u *io_u = items[i].ctx;

        if (items[i].op == OVL_OP_POST) { /* sap's wake-up, carries no io_u */
            d->wake_pending = 0;
            continue;
        }
        ovl_fio_complete_one(io_u, items[i].result, items[i].os_error);
        d->done[d->ndone++] = io_u;
    }
    if (d->mode == MODE_THREAD) {
        if (d->sleeping && d->ndone >= d->want) {
            d->sleeping = 0;
            pthread_cond_signal(&d->cond);
        }
    } else if (d->mode == MODE_SAP) {
        /* fio's thread decided to wait in ovl_poll after it looked at
         * `done`, but this batch was delivered by the completion thread
         * before ovl_poll took delivery over: ovl_poll would wait for
         * completions that already came. Wake it with a post. */
        if (d->poll_waiting && !d->wake_pending && !pthread_equal(pthread_self(), d->waiter)) {
            int32_t rc = ovl_post(d->port, 0, NULL, NULL);

            if (rc == OVL_OK) d->wake_pending = 1;
            else if (!d->post_error) d->post_error = rc;
        }
    }
    if (locked) pthread_mutex_unlock(&d->lock);
}

static enum ovl_fio_mode parse_mode(const char *s, int *bad)
{
    *bad = 0;
    if (!s || !*s || !strcmp(s, "thread")) return MODE_THREAD;
    if (!strcmp(s, "manual")) return MODE_MANUAL;
    if (!strcmp(s, "sap")) return MODE_SAP;
    *bad = 1;
    return MODE_THREAD;
}

static const char *mode_name(enum ovl_fio_mode m)
{
    return m == MODE_MANUAL ? "manual" : m == MODE_SAP ? "sap" : "thread";
}

static void ovl_fio_free(struct ovl_fio_data *d)
{
    free(d->pending);
    free(d->reqs);
    free(d->events);
    free(d->done);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static int fio_ovl_init(struct thread_data *td)
{
    struct ovl_fio_options *o = td->eo;
    struct ovl_fio_data *d;
    pthread_condattr_t ca;
    ovl_port_config cfg;
    const char *ms;
    int bad;
    int32_t rc;

    d = calloc(1, sizeof(*d));
    if (!d) {
        td_verror(td, ENOMEM, "calloc");
        return 1;
    }
    ms = (o && o->mode && *o->mode) ? o->mode : getenv("OVL_FIO_MODE");
    d->mode = parse_mode(ms, &bad);
    if (bad) {
        log_err("ovl: unknown mode '%s' (thread, manual or sap)\n", ms);
        free(d);
        td_verror(td, EINVAL, "ovl mode");
        return 1;
    }
    d->depth = td->o.iodepth ? td->o.iodepth : 1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    d->pending = calloc(d->depth, sizeof(*d->pending));
    d->reqs = calloc(d->depth, sizeof(*d->reqs));
    d->events = calloc(d->depth, sizeof(*d->events));
    d->done = calloc(d->depth, sizeof(*d->done));
    if (!d->pending || !d->reqs || !d->events || !d->done) {
        ovl_fio_free(d);
        td_verror(td, ENOMEM, "calloc");
        return 1;
    }

    ovl_port_config_init(&cfg, sizeof(cfg));
    /* fio never has more than iodepth io_us in flight; sap may add one
     * wake-up post. */
    cfg.queue_depth = d->depth + 2;
    cfg.flags = d->mode == MODE_MANUAL ? OVL_PORT_MANUAL : 0;
    cfg.callback = ovl_fio_callback;
    cfg.userdata = d;
    rc = ovl_create_port(&cfg, &d->port);
    if (rc != OVL_OK) {
        log_err("ovl: ovl_create_port: %s (%s)\n", ovl_strerror(rc), ovl_error_name(rc));
        ovl_fio_free(d);
        td_verror(td, ovl_to_errno(rc, 0), "ovl_create_port");
        return 1;
    }
    if (getenv("OVL_FIO_VERBOSE"))
        log_info("ovl: port backend=%s mode=%s queue_depth=%u\n", ovl_backend_name(d->port),
                 mode_name(d->mode), cfg.queue_depth);
    td->io_ops_data = d;
    return 0;
}

static void fio_ovl_cleanup(struct thread_data *td)
{
    struct ovl_fio_data *d = td->io_ops_data;

    if (!d) return;
    /* Delivers whatever is left (the callback still appends to `done`). */
    if (d->port) {
        int32_t rc = ovl_close_port(d->port);

        if (rc != OVL_OK) log_err("ovl: ovl_close_port: %s\n", ovl_strerror(rc));
    }
    ovl_fio_free(d);
    td->io_ops_data = NULL;
}

static enum fio_q_status fio_ovl_queue(struct thread_data *td, struct io_u *io_u)
{
    struct ovl_fio_data *d = td->io_ops_data;

    fio_ro_check(td, io_u);

    if (d->npending == d->depth) return FIO_Q_BUSY;

    if (io_u->ddir == DDIR_TRIM || io_u->ddir == DDIR_SYNC_FILE_RANGE) {
        /* Not ovl ops: done synchronously, as fio's libaio does. */
        if (d->npending) return FIO_Q_BUSY;
        if (io_u->ddir == DDIR_TRIM) do_io_u_trim(td, io_u);
        else do_io_u_sync(td, io_u);
        io_u_mark_submit(td, 1);
        io_u_mark_complete(td, 1);
        return FIO_Q_COMPLETED;
    }

    d->pending[d->npending++] = io_u;
    return FIO_Q_QUEUED;
}

static void fill_request(ovl_request *r, struct io_u *io_u)
{
    memset(r, 0, sizeof(*r));
    r->fd = (ovl_fd)io_u->file->fd;
    r->ctx = io_u;
    switch (io_u->ddir) {
    case DDIR_READ:
        r->op = OVL_OP_READ;
        r->buf = io_u->xfer_buf;
        r->len = io_u->xfer_buflen;
        r->offset = (int64_t)io_u->offset;
        break;
    case DDIR_WRITE:
        r->op = OVL_OP_WRITE;
        r->buf = io_u->xfer_buf;
        r->len = io_u->xfer_buflen;
        r->offset = (int64_t)io_u->offset;
        break;
    case DDIR_DATASYNC:
        r->op = OVL_OP_FSYNC;
        r->flags = OVL_FSYNC_DATA;
        break;
    default: /* DDIR_SYNC */ r->op = OVL_OP_FSYNC; break;
    }
}

static int fio_ovl_commit(struct thread_data *td)
{
    struct ovl_fio_data *d = td->io_ops_data;
    unsigned int n = d->npending, i;
    size_t submitted = 0;
    int32_t rc;

    if (!n) return 0;

    if (fio_fill_issue_time(td)) {
        struct timespec now;

        fio_gettime(&now, NULL);
        for (i = 0; i < n; i++) {
            memcpy(&d->pending[i]->issue_time, &now, sizeof(now));
            io_u_queued(td, d->pending[i]);
        }
    }
    for (i = 0; i < n; i++) fill_request(&d->reqs[i], d->pending[i]);
    d->npending = 0;

    if (d->mode == MODE_SAP) {
        rc = ovl_submit_and_poll(d->port, d->reqs, n, &submitted, 0);
        if (rc >= 0) {
            submitted = n;
            rc = OVL_OK;
        }
    } else {
        rc = ovl_submit(d->port, d->reqs, n, &submitted);
    }
    io_u_mark_submit(td, n);

    if (rc != OVL_OK) {
        /* Those not submitted get no completion from ovl: complete them
         * here with the error, so fio sees failed I/O and stops cleanly. */
        int err = ovl_to_errno(rc, 0);
        const int locked = d->mode != MODE_MANUAL;

        log_err("ovl: submit failed after %zu of %u: %s\n", submitted, n, ovl_strerror(rc));
        if (locked) pthread_mutex_lock(&d->lock);
        for (i = (unsigned int)submitted; i < n; i++) {
            struct io_u *io_u = d->reqs[i].ctx;

            io_u->error = err;
            d->done[d->ndone++] = io_u;
        }
        if (locked) pthread_mutex_unlock(&d->lock);
    }
    return 0;
}

/* Move up to max completed io_us from `done` to `events`; caller holds the
 * lock where one is needed. */
static unsigned int take_done(struct ovl_fio_data *d, unsigned int max)
{
    unsigned int k = d->ndone < max ? d->ndone : max;

    memcpy(d->events, d->done, k * sizeof(*d->done));
    if (k < d->ndone) memmove(d->done, d->done + k, (d->ndone - k) * sizeof(*d->done));
    d->ndone -= k;
    return k;
}

static void deadline_from(struct timespec *dl, const struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, dl);
    dl->tv_sec += t->tv_sec;
    dl->tv_nsec += t->tv_nsec;
    while (dl->tv_nsec >= 1000000000L) {
        dl->tv_nsec -= 1000000000L;
        dl->tv_sec++;
    }
}

/* Milliseconds left to the deadline, rounded up; 0 once it has passed. */
static int32_t ms_left(const struct timespec *dl)
{
    struct timespec now;
    int64_t ns;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (int64_t)(dl->tv_sec - now.tv_sec) * 1000000000LL + (dl->tv_nsec - now.tv_nsec);
    if (ns <= 0) return 0;
    ns = (ns + 999999) / 1000000;
    return ns > INT32_MAX ? INT32_MAX : (int32_t)ns;
}

static int getevents_thread(struct ovl_fio_data *d, unsigned int min, unsigned int max,
                            const struct timespec *t)
{
    struct timespec dl;
    unsigned int k;

    if (t) deadline_from(&dl, t);
    pthread_mutex_lock(&d->lock);
    while (d->ndone < min) {
        int rc;

        d->want = min;
        d->sleeping = 1;
        rc = t ? pthread_cond_timedwait(&d->cond, &d->lock, &dl)
               : pthread_cond_wait(&d->cond, &d->lock);
        d->sleeping = 0;
        if (rc == ETIMEDOUT) break;
    }
    k = take_done(d, max);
    pthread_mutex_unlock(&d->lock);
    return (int)k;
}

static int getevents_manual(struct ovl_fio_data *d, unsigned int min, unsigned int max,
                            const struct timespec *t)
{
    struct timespec dl;

    if (t) deadline_from(&dl, t);
    if (d->ndone < max) {
        /* What is ready now, without waiting. */
        int32_t r = ovl_poll(d->port, 0);

        if (r < 0) return -ovl_to_errno(r, 0);
    }
    while (d->ndone < min) {
        int32_t wait = t ? ms_left(&dl) : -1;
        int32_t r;

        if (wait == 0) break;
        r = ovl_poll(d->port, wait);
        if (r < 0) return -ovl_to_errno(r, 0);
    }
    return (int)take_done(d, max);
}

static int getevents_sap(struct ovl_fio_data *d, unsigned int min, unsigned int max,
                         const struct timespec *t)
{
    struct timespec dl;
    unsigned int k;

    if (t) deadline_from(&dl, t);
    pthread_mutex_lock(&d->lock);
    for (;;) {
        int32_t wait, r;

        if (d->post_error) {
            r = d->post_error;
            pthread_mutex_unlock(&d->lock);
            log_err("ovl: wake-up post failed: %s\n", ovl_strerror(r));
            return -ovl_to_errno(r, 0);
        }
        if (d->ndone >= min) break;
        wait = t ? ms_left(&dl) : -1;
        if (wait == 0) break;
        d->poll_waiting = 1;
        d->waiter = pthread_self();
        pthread_mutex_unlock(&d->lock);
        /* Takes delivery over from the completion thread: the callback
         * runs here, on fio's thread, without a hand-off. */
        r = ovl_poll(d->port, wait);
        pthread_mutex_lock(&d->lock);
        d->poll_waiting = 0;
        if (r < 0) {
            pthread_mutex_unlock(&d->lock);
            return -ovl_to_errno(r, 0);
        }
    }
    k = take_done(d, max);
    pthread_mutex_unlock(&d->lock);
    return (int)k;
}

static int fio_ovl_getevents(struct thread_data *td, unsigned int min, unsigned int max,
                             const struct timespec *t)
{
    struct ovl_fio_data *d = td->io_ops_data;

    if (max > d->depth) max = d->depth;
    if (min > max) min = max;
    switch (d->mode) {
    case MODE_MANUAL: return getevents_manual(d, min, max, t);
    case MODE_SAP: return getevents_sap(d, min, max, t);
    default: return getevents_thread(d, min, max, t);
    }
}

static struct io_u *fio_ovl_event(struct thread_data *td, int event)
{
    struct ovl_fio_data *d = td->io_ops_data;

    return d->events[event];
}

static struct fio_option options[] = {
    {
        .name = "mode",
        .lname = "ovl delivery mode",
        .type = FIO_OPT_STR_STORE,
        .off1 = offsetof(struct ovl_fio_options, mode),
        .help = "ovl delivery: thread (default), manual or sap (else $OVL_FIO_MODE)",
        .category = FIO_OPT_C_ENGINE,
        .group = FIO_OPT_G_INVALID,
    },
    {
        .name = NULL,
    },
};

/* fio's dlopen_ioengine() looks this symbol up by name. */
struct ioengine_ops ioengine = {
    .name = "ovl",
    .version = FIO_IOOPS_VERSION,
    .flags = FIO_NO_OFFLOAD | FIO_ASYNCIO_SETS_ISSUE_TIME,
    .init = fio_ovl_init,
    .cleanup = fio_ovl_cleanup,
    .queue = fio_ovl_queue,
    .commit = fio_ovl_commit,
    .getevents = fio_ovl_getevents,
    .event = fio_ovl_event,
    .open_file = generic_open_file,
    .close_file = generic_close_file,
    .get_file_size = generic_get_file_size,
    .option_struct_size = sizeof(struct ovl_fio_options),
    .options = options,
};
