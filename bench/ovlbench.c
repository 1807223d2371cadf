/* ovlbench.c - ovl against the alternatives, side by side in one process:
 * 4 KiB random I/O on one file, and NOP round trips. The workload
 * (--workload) is reads from the page cache (the default), O_DIRECT reads
 * (the device: slow I/O, where a wake-up is cheap next to the read), or
 * buffered writes (the page cache again).
 * Competitors run interleaved (every repetition runs each of them once per
 * depth, in a rotating order), each figure is the median of the repetitions,
 * and every ratio is taken against liburing measured in the same repetition.
 * Prints Markdown on stdout, progress on stderr. Not a test: it asserts
 * nothing about timings, only that every read or write moved 4096 bytes. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <ovl.h>

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <linux/futex.h>
#include <unistd.h>
#include <uv.h>

#define BLK 4096u
#define MAXD 256
#define LAT_CAP (8u << 20)

/* ---- configuration and shared state ------------------------------------- */

static const char *g_path = "ovlbench.dat";
static uint64_t g_size = 1024ull << 20; /* bytes */
static uint64_t g_nblocks;
static double g_secs = 0.4; /* per run */
static int g_reps = 5;
static int g_depths[8] = {1, 16, 64, 256};
static int g_ndepths = 4;
static int g_fd = -1;   /* the file, buffered */
static int g_iofd = -1; /* what the runs use: g_fd, or an O_DIRECT fd */
enum { W_CACHE, W_DIRECT, W_WRITE };
static int g_work = W_CACHE;
static const char *const g_work_id[] = {"cache", "direct", "write"};
static const char *const g_work_title[] = {
    "4 KiB random reads from the page cache",
    "4 KiB O_DIRECT random reads (the device)",
    "4 KiB buffered random writes (page cache)",
};
static unsigned char *g_bufs;         /* MAXD aligned 4 KiB buffers */
static double g_min_resident = 100.0; /* lowest residency seen before a run */
static int g_rewarms;                 /* runs that found the file evicted */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ovlbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* xorshift64*: cheap, and every competitor draws the same kind of offsets. */
typedef struct {
    uint64_t s;
} rng;
static inline int64_t rnd_off(rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (int64_t)(((r->s * 2685821657736338717ull) >> 11) % g_nblocks * BLK);
}

static inline void *buf_of(int i) { return g_bufs + (size_t)i * BLK; }

/* ---- latency samples (depth 1 only) -------------------------------------- */

static uint32_t *g_lat; /* ns, saturated at 4 s */
static size_t g_nlat;
static inline void lat_add(uint64_t ns)
{
    if (g_nlat < LAT_CAP) g_lat[g_nlat++] = ns > 0xffffffffu ? 0xffffffffu : (uint32_t)ns;
}
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- one run's measurement ------------------------------------------------ */

typedef struct {
    double ops_s, cpu_us, csw, sys_op, p50_us, p99_us, batch;
    int has_sys, has_lat, has_batch;
} result;

typedef struct {
    uint64_t t;
    struct rusage ru;
} snap;

static void snap_take(snap *s)
{
    getrusage(RUSAGE_SELF, &s->ru);
    s->t = now_ns();
}

static double tv_us(struct timeval tv) { return tv.tv_sec * 1e6 + tv.tv_usec; }

/* CPU time and context switches of the whole process (every thread: the
 * completion thread, ovl's and libuv's workers) between a and b. */
static void finish(result *r, const snap *a, const snap *b, uint64_t ops, int lat)
{
    double secs = (double)(b->t - a->t) / 1e9;
    double cpu = tv_us(b->ru.ru_utime) - tv_us(a->ru.ru_utime) + tv_us(b->ru.ru_stime) -
                 tv_us(a->ru.ru_stime);
    double cs =
        (double)(b->ru.ru_nvcsw - a->ru.ru_nvcsw) + (double)(b->ru.ru_nivcsw - a->ru.ru_nivcsw);
    if (ops == 0) die("a run completed no operation");
    r->ops_s = (double)ops / secs;
    r->cpu_us = cpu / (double)ops;
    r->csw = cs / (double)ops;
    if (lat && g_nlat) {
        qsort(g_lat, g_nlat, sizeof *g_lat, cmp_u32);
        r->p50_us = g_lat[g_nlat / 2] / 1e3;
        r->p99_us = g_lat[(size_t)((double)g_nlat * 0.99)] / 1e3;
        r->has_lat = 1;
    }
}

static void check_read(int64_t res)
{
    if (res != (int64_t)BLK)
        die("%s returned %lld, expected %u", g_work == W_WRITE ? "write" : "read", (long long)res,
            BLK);
}

/* One synchronous op of the workload (pread or pwrite). */
static ssize_t sync_io(void *buf, int64_t off)
{
    return g_work == W_WRITE ? pwrite(g_iofd, buf, BLK, off) : pread(g_iofd, buf, BLK, off);
}

/* ---- the file: create, warm, check residency ------------------------------ */

static double residency(void)
{
    void *m = mmap(NULL, g_size, PROT_READ, MAP_SHARED, g_fd, 0);
    if (m == MAP_FAILED) die("mmap: %s", strerror(errno));
    size_t pages = (g_size + 4095) / 4096;
    unsigned char *v = malloc(pages);
    if (!v || mincore(m, g_size, v) != 0) die("mincore: %s", strerror(errno));
    size_t in = 0;
    for (size_t i = 0; i < pages; i++) in += v[i] & 1;
    free(v);
    munmap(m, g_size);
    return 100.0 * (double)in / (double)pages;
}

static void warm(void)
{
    static unsigned char big[1 << 20];
    for (uint64_t off = 0; off < g_size; off += sizeof big)
        if (pread(g_fd, big, sizeof big, (off_t)off) <= 0) die("warm pread: %s", strerror(errno));
}

/* Before every run: the page cache on these machines is reclaimed after
 * about a minute unused, and then the figures would be disk figures. */
static void ensure_resident(void)
{
    double r = residency();
    if (r < 100.0) {
        g_rewarms++;
        warm();
        r = residency();
    }
    if (r < g_min_resident) g_min_resident = r;
}

static void open_file(void)
{
    struct stat st;
    g_fd = open(g_path, O_RDWR | O_CREAT, 0644);
    if (g_fd < 0) die("open %s: %s", g_path, strerror(errno));
    if (fstat(g_fd, &st) != 0) die("fstat: %s", strerror(errno));
    if ((uint64_t)st.st_size != g_size) {
        fprintf(stderr, "creating %s (%llu MiB)\n", g_path, (unsigned long long)(g_size >> 20));
        if (ftruncate(g_fd, 0) != 0) die("ftruncate: %s", strerror(errno));
        static unsigned char blk[1 << 20];
        for (size_t i = 0; i < sizeof blk; i++) blk[i] = (unsigned char)(i * 131u + 7u);
        for (uint64_t off = 0; off < g_size; off += sizeof blk)
            if (pwrite(g_fd, blk, sizeof blk, (off_t)off) != (ssize_t)sizeof blk)
                die("pwrite: %s", strerror(errno));
    }
    g_nblocks = g_size / BLK;
    warm();
    g_iofd = g_fd;
    if (g_work == W_DIRECT) {
        /* Written and synced above: O_DIRECT reads then never wait for
         * writeback of a dirty range. */
        if (fsync(g_fd) != 0) die("fsync: %s", strerror(errno));
        g_iofd = open(g_path, O_RDONLY | O_DIRECT);
        if (g_iofd < 0) die("open %s with O_DIRECT: %s", g_path, strerror(errno));
    }
}

/* ---- competitor: a synchronous pread loop ---------------------------------- */

static void run_pread(int depth, int lat, result *out)
{
    (void)depth;
    rng r = {0x9e3779b97f4a7c15ull};
    snap a, b;
    uint64_t ops = 0;
    snap_take(&a);
    uint64_t deadline = a.t + (uint64_t)(g_secs * 1e9);
    for (;;) {
        uint64_t t0 = lat ? now_ns() : 0;
        check_read(sync_io(buf_of(0), rnd_off(&r)));
        ops++;
        if (lat) {
            uint64_t t1 = now_ns();
            lat_add(t1 - t0);
            if (t1 >= deadline) break;
        } else if ((ops & 63) == 0 && now_ns() >= deadline) {
            break;
        }
    }
    snap_take(&b);
    finish(out, &a, &b, ops, lat);
    out->sys_op = 1.0;
    out->has_sys = 1;
}

/* ---- competitor: liburing, one thread submits and reaps -------------------- */

/* fixed: the file registered with the ring (IOSQE_FIXED_FILE), which ovl
 * does not do (see bench/notes.md): shows what that would be worth. */
/* One SQE of the workload. */
static void prep_io(struct io_uring_sqe *sqe, int fd, void *buf, int64_t off)
{
    if (g_work == W_WRITE) io_uring_prep_write(sqe, fd, buf, BLK, (uint64_t)off);
    else io_uring_prep_read(sqe, fd, buf, BLK, (uint64_t)off);
}

/* setup_flags: fio's io_uring engine sets COOP_TASKRUN, SINGLE_ISSUER and
 * DEFER_TASKRUN (one thread submits and reaps, as here). */
static void run_liburing(int depth, int lat, int nop, int fixed, unsigned setup_flags, result *out)
{
    struct io_uring ring;
    unsigned entries = depth < 4 ? 4 : (unsigned)depth;
    int e = io_uring_queue_init(entries, &ring, setup_flags);
    if (e < 0) die("io_uring_queue_init(flags %#x): %s", setup_flags, strerror(-e));
    int rfd = g_iofd;
    if (fixed) {
        e = io_uring_register_files(&ring, &g_iofd, 1);
        if (e < 0) die("io_uring_register_files: %s", strerror(-e));
        rfd = 0;
    }
    rng r = {0x2545f4914f6cdd1dull};
    uint64_t tsub[MAXD];
    snap a, b;
    uint64_t ops = 0, sys = 0, batches = 0;
    int inflight = 0, stop = 0;

    snap_take(&a);
    uint64_t deadline = a.t + (uint64_t)(g_secs * 1e9);
    for (int i = 0; i < depth; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        if (nop) io_uring_prep_nop(sqe);
        else prep_io(sqe, rfd, buf_of(i), rnd_off(&r));
        if (fixed) sqe->flags |= IOSQE_FIXED_FILE;
        sqe->user_data = (uint64_t)i;
        if (lat) tsub[i] = now_ns();
        inflight++;
    }
    while (inflight > 0) {
        e = io_uring_submit_and_wait(&ring, 1);
        sys++;
        if (e < 0 && e != -EINTR && e != -EAGAIN) die("io_uring_submit_and_wait: %s", strerror(-e));
        struct io_uring_cqe *cqes[MAXD];
        unsigned n = io_uring_peek_batch_cqe(&ring, cqes, MAXD);
        if (n == 0) continue;
        batches++;
        uint64_t t = now_ns();
        if (t >= deadline) stop = 1;
        for (unsigned k = 0; k < n; k++) {
            int i = (int)cqes[k]->user_data;
            if (!nop) check_read(cqes[k]->res);
            ops++;
            if (lat) lat_add(t - tsub[i]);
            if (stop) {
                inflight--;
                continue;
            }
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (nop) io_uring_prep_nop(sqe);
            else prep_io(sqe, rfd, buf_of(i), rnd_off(&r));
            if (fixed) sqe->flags |= IOSQE_FIXED_FILE;
            sqe->user_data = (uint64_t)i;
            if (lat) tsub[i] = t;
        }
        io_uring_cq_advance(&ring, n);
    }
    snap_take(&b);
    io_uring_queue_exit(&ring);
    finish(out, &a, &b, ops, lat);
    out->sys_op = (double)sys / (double)ops;
    out->has_sys = 1;
    out->batch = (double)ops / (double)batches;
    out->has_batch = 1;
}

/* ---- competitor: libuv uv_fs_read (its thread pool) ------------------------ */

typedef struct {
    uv_loop_t loop;
    uv_fs_t req[MAXD];
    uv_buf_t buf[MAXD];
    uint64_t tsub[MAXD];
    rng r;
    uint64_t ops, deadline;
    int lat, stop;
} uvb;

static uvb *g_uv;
static void uv_cb(uv_fs_t *req);

static int uv_io(uv_loop_t *loop, uv_fs_t *req, uv_buf_t *buf, int64_t off)
{
    return g_work == W_WRITE ? uv_fs_write(loop, req, g_iofd, buf, 1, off, uv_cb)
                             : uv_fs_read(loop, req, g_iofd, buf, 1, off, uv_cb);
}

static void uv_cb(uv_fs_t *req)
{
    uvb *u = g_uv;
    int i = (int)(req - u->req);
    check_read(req->result);
    uv_fs_req_cleanup(req);
    u->ops++;
    uint64_t t = now_ns();
    if (u->lat) lat_add(t - u->tsub[i]);
    if (t >= u->deadline) u->stop = 1;
    if (u->stop) return;
    u->tsub[i] = t;
    int e = uv_io(&u->loop, req, &u->buf[i], rnd_off(&u->r));
    if (e) die("uv_fs_read/write: %s", uv_strerror(e));
}

static void run_libuv(int depth, int lat, result *out)
{
    uvb *u = calloc(1, sizeof *u);
    if (!u) die("out of memory");
    g_uv = u;
    if (uv_loop_init(&u->loop)) die("uv_loop_init");
    u->r.s = 0x94d049bb133111ebull;
    u->lat = lat;
    snap a, b;
    snap_take(&a);
    u->deadline = a.t + (uint64_t)(g_secs * 1e9);
    for (int i = 0; i < depth; i++) {
        u->buf[i] = uv_buf_init(buf_of(i), BLK);
        u->tsub[i] = now_ns();
        int e = uv_io(&u->loop, &u->req[i], &u->buf[i], rnd_off(&u->r));
        if (e) die("uv_fs_read/write: %s", uv_strerror(e));
    }
    uv_run(&u->loop, UV_RUN_DEFAULT);
    snap_take(&b);
    uv_loop_close(&u->loop);
    finish(out, &a, &b, u->ops, lat);
    free(u);
}

/* ---- ovl, pattern A: resubmit from the callback (event-loop style) --------- */

typedef struct {
    ovl_port *port;
    pthread_mutex_t m;
    pthread_cond_t c;
    int finished;
    int inflight; /* completion thread only, after the initial submit */
    int stop, lat, nop;
    uint64_t ops, deadline;
    rng r;
    uint64_t tsub[MAXD];
    ovl_request reqs[MAXD];
} ovla;

static void fill_req(ovl_request *q, int i, int64_t off)
{
    memset(q, 0, sizeof *q);
    q->op = g_work == W_WRITE ? OVL_OP_WRITE : OVL_OP_READ;
    q->fd = (ovl_fd)g_iofd;
    q->buf = buf_of(i);
    q->len = BLK;
    q->offset = off;
    q->ctx = (void *)(uintptr_t)i;
}

static void ovla_cb(const ovl_completion *items, size_t n, void *ud)
{
    ovla *s = ud;
    uint64_t t = now_ns();
    if (t >= s->deadline) s->stop = 1;
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        int i = (int)(uintptr_t)items[k].ctx;
        if (!s->nop) check_read(items[k].result);
        s->ops++;
        if (s->lat) lat_add(t - s->tsub[i]);
        if (s->stop) {
            s->inflight--;
            continue;
        }
        s->tsub[i] = t;
        if (s->nop == 2) {
            /* Posts through the batch call: the value travels in offset. */
            ovl_request *q = &s->reqs[m++];
            memset(q, 0, sizeof *q);
            q->op = OVL_OP_POST;
            q->ctx = (void *)(uintptr_t)i;
        } else if (s->nop) {
            int32_t rc = ovl_post(s->port, 0, (void *)(uintptr_t)i, NULL);
            if (rc) die("ovl_post: %s", ovl_strerror(rc));
        } else {
            fill_req(&s->reqs[m++], i, rnd_off(&s->r));
        }
    }
    if (m) {
        /* One call for the whole batch; the port flushes it with one
         * io_uring_enter after this callback returns. */
        size_t done = 0;
        int32_t rc = ovl_submit(s->port, s->reqs, m, &done);
        if (rc || done != m) die("ovl_submit in callback: %s", ovl_strerror(rc));
    }
    if (s->stop && s->inflight == 0) {
        pthread_mutex_lock(&s->m);
        s->finished = 1;
        pthread_cond_signal(&s->c);
        pthread_mutex_unlock(&s->m);
    }
}

static void port_figures(result *out, ovl_port *p, uint64_t ops)
{
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (ovl_port_stats(p, &st) != OVL_OK) die("ovl_port_stats");
    out->sys_op = (double)st.syscalls / (double)ops;
    out->has_sys = 1;
    if (st.batches) {
        out->batch = (double)st.completed / (double)st.batches;
        out->has_batch = 1;
    }
}

static uint32_t g_port_flags; /* OVL_PORT_* for the next make_port */

static ovl_port *make_port(uint32_t backend, int depth, uint32_t spin_usec, ovl_callback cb,
                           void *ud)
{
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.flags = g_port_flags;
    cfg.backend = backend;
    cfg.queue_depth = (uint32_t)depth;
    cfg.callback = cb;
    cfg.userdata = ud;
    cfg.spin_usec = spin_usec;
    const char *spin = getenv("OVLBENCH_SPIN_USEC"); /* override, for experiments */
    if (spin) cfg.spin_usec = (uint32_t)atoi(spin);
    ovl_port *p = NULL;
    int32_t rc = ovl_create_port(&cfg, &p);
    if (rc)
        die("ovl_create_port(%s): %s", backend == OVL_BACKEND_URING ? "uring" : "threads",
            ovl_strerror(rc));
    return p;
}

/* fixed: register the file with the port first (ovl_register_fd).
 * With OVL_PORT_MANUAL in g_port_flags this thread drives delivery with
 * ovl_poll(port, -1) (an event loop on a manual port). */
static void run_ovl_a(uint32_t backend, int depth, int lat, int nop, int fixed, result *out)
{
    ovla *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
    s->r.s = 0xbf58476d1ce4e5b9ull;
    s->lat = lat;
    s->nop = nop;
    s->port = make_port(backend, depth, 0, ovla_cb, s);
    if (fixed && ovl_register_fd(s->port, (ovl_fd)g_iofd) != OVL_OK) die("ovl_register_fd");
    snap a, b;
    snap_take(&a);
    s->deadline = a.t + (uint64_t)(g_secs * 1e9);
    s->inflight = depth;
    /* Written before the first submit; the callback sees them through the
     * port's lock (submit and delivery both take it). */
    for (int i = 0; i < depth; i++) s->tsub[i] = now_ns();
    if (nop) {
        for (int i = 0; i < depth; i++) {
            int32_t rc = ovl_post(s->port, 0, (void *)(uintptr_t)i, NULL);
            if (rc) die("ovl_post: %s", ovl_strerror(rc));
        }
    } else {
        ovl_request init[MAXD];
        for (int i = 0; i < depth; i++) fill_req(&init[i], i, rnd_off(&s->r));
        size_t done = 0;
        int32_t rc = ovl_submit(s->port, init, (size_t)depth, &done);
        if (rc || done != (size_t)depth) die("ovl_submit: %s", ovl_strerror(rc));
    }
    if (g_port_flags & OVL_PORT_MANUAL) {
        /* The callback runs in here, on this thread: finished is ours. */
        while (!s->finished) {
            int32_t rc = ovl_poll(s->port, -1);
            if (rc < 0) die("ovl_poll: %s", ovl_strerror(rc));
        }
    } else {
        pthread_mutex_lock(&s->m);
        while (!s->finished) pthread_cond_wait(&s->c, &s->m);
        pthread_mutex_unlock(&s->m);
    }
    snap_take(&b);
    finish(out, &a, &b, s->ops, lat);
    port_figures(out, s->port, s->ops);
    ovl_close_port(s->port);
    pthread_mutex_destroy(&s->m);
    pthread_cond_destroy(&s->c);
    free(s);
}

/* ---- ovl, pattern B: an external submitter thread keeps depth in flight ---- */

typedef struct {
    ovl_port *port;
    pthread_mutex_t m;
    pthread_cond_t c;
    int freeq[MAXD];
    int nfree;
    int waiting;
    uint64_t ops;
    int lat;
    uint64_t tsub[MAXD];
} ovlb;

/* The callback hands the slots back and wakes the submitter at most once
 * per batch, and only if it is asleep. */
static void ovlb_cb(const ovl_completion *items, size_t n, void *ud)
{
    ovlb *s = ud;
    uint64_t t = s->lat ? now_ns() : 0;
    pthread_mutex_lock(&s->m);
    for (size_t k = 0; k < n; k++) {
        int i = (int)(uintptr_t)items[k].ctx;
        check_read(items[k].result);
        if (s->lat) lat_add(t - s->tsub[i]);
        s->freeq[s->nfree++] = i;
    }
    s->ops += n;
    if (s->waiting) pthread_cond_signal(&s->c);
    pthread_mutex_unlock(&s->m);
}

/* The submitter's state with every slot free and its port (flags from
 * g_port_flags); ovlb_end measures the run and frees both. */
static ovlb *ovlb_new(uint32_t backend, int depth, int lat, uint32_t spin)
{
    ovlb *s = calloc(1, sizeof *s);
    if (!s) die("out of memory");
    pthread_mutex_init(&s->m, NULL);
    pthread_cond_init(&s->c, NULL);
    s->lat = lat;
    for (int i = 0; i < depth; i++) s->freeq[s->nfree++] = depth - 1 - i;
    s->port = make_port(backend, depth, spin, ovlb_cb, s);
    return s;
}

static void ovlb_end(ovlb *s, const snap *a, result *out)
{
    snap b;
    snap_take(&b);
    finish(out, a, &b, s->ops, s->lat);
    port_figures(out, s->port, s->ops);
    ovl_close_port(s->port);
    pthread_mutex_destroy(&s->m);
    pthread_cond_destroy(&s->c);
    free(s);
}

/* How the submitter submits: ovl_submit alone, or followed by
 * ovl_poll(port, 0), or ovl_submit_and_poll(..., 0) (both of the latter
 * take the completions that finished inside the submitter's own
 * io_uring_enter, as page-cache reads do, instead of waiting for the
 * completion thread's hand-off; ovl_submit_and_poll also lets the
 * completion thread wait outside the kernel while nothing is in flight),
 * or ovl_submit_and_poll(..., -1): the submitter has nothing else to do
 * until a slot comes back, so it waits in the call, which delivers at
 * least one completion on this thread (the one whose callback frees a
 * slot for the next round) and leaves the completion thread parked. */
enum { B_SUBMIT, B_POLL, B_SAP, B_SAPW };

static void run_ovl_b(uint32_t backend, int depth, int lat, uint32_t spin, int how, result *out)
{
    ovlb *s = ovlb_new(backend, depth, lat, spin);
    rng r = {0xd6e8feb86659fd93ull};
    ovl_request reqs[MAXD];
    int slots[MAXD];
    snap a;
    snap_take(&a);
    uint64_t deadline = a.t + (uint64_t)(g_secs * 1e9);
    uint64_t submitted = 0;
    for (;;) {
        pthread_mutex_lock(&s->m);
        while (s->nfree == 0) {
            s->waiting = 1;
            pthread_cond_wait(&s->c, &s->m);
            s->waiting = 0;
        }
        int m = s->nfree;
        memcpy(slots, s->freeq, (size_t)m * sizeof *slots);
        s->nfree = 0;
        pthread_mutex_unlock(&s->m);
        uint64_t t = now_ns();
        if (t >= deadline) break;
        for (int k = 0; k < m; k++) {
            fill_req(&reqs[k], slots[k], rnd_off(&r));
            if (lat) s->tsub[slots[k]] = t;
        }
        size_t done = 0;
        int32_t rc;
        if (how == B_SAP || how == B_SAPW) {
            rc = ovl_submit_and_poll(s->port, reqs, (size_t)m, &done, how == B_SAPW ? -1 : 0);
            if (rc < 0 || done != (size_t)m) die("ovl_submit_and_poll: %s", ovl_strerror(rc));
        } else {
            rc = ovl_submit(s->port, reqs, (size_t)m, &done);
            if (rc || done != (size_t)m) die("ovl_submit: %s", ovl_strerror(rc));
        }
        submitted += (uint64_t)m;
        if (how == B_POLL && (rc = ovl_poll(s->port, 0)) < 0) die("ovl_poll: %s", ovl_strerror(rc));
    }
    /* Drain what is still in flight. */
    pthread_mutex_lock(&s->m);
    while (s->ops < submitted) {
        s->waiting = 1;
        pthread_cond_wait(&s->c, &s->m);
        s->waiting = 0;
    }
    pthread_mutex_unlock(&s->m);
    ovlb_end(s, &a, out);
}

/* ---- ovl, submit and deliver on one thread (ovl_submit_and_poll) ---------- */

/* A manual port and one thread: each call submits the slots that came back
 * and then delivers, waiting for at least one completion (the shape of
 * liburing's io_uring_submit_and_wait). The callback runs inside the call,
 * on this thread. */
static void run_ovl_s(uint32_t backend, int depth, int lat, result *out)
{
    g_port_flags = OVL_PORT_MANUAL;
    ovlb *s = ovlb_new(backend, depth, lat, 0);
    g_port_flags = 0;
    rng r = {0x8cb92ba72f3d8dd7ull};
    ovl_request reqs[MAXD];
    snap a;
    snap_take(&a);
    uint64_t deadline = a.t + (uint64_t)(g_secs * 1e9);
    uint64_t submitted = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= deadline) break;
        int m = s->nfree; /* the callback only runs inside our calls */
        for (int k = 0; k < m; k++) {
            fill_req(&reqs[k], s->freeq[k], rnd_off(&r));
            if (lat) s->tsub[s->freeq[k]] = t;
        }
        s->nfree = 0;
        size_t done = 0;
        int32_t rc = ovl_submit_and_poll(s->port, reqs, (size_t)m, &done, -1);
        if (rc < 0 || done != (size_t)m) die("ovl_submit_and_poll: %s", ovl_strerror(rc));
        submitted += (uint64_t)m;
    }
    while (s->ops < submitted) {
        int32_t rc = ovl_poll(s->port, -1);
        if (rc < 0) die("ovl_poll: %s", ovl_strerror(rc));
    }
    ovlb_end(s, &a, out);
}

/* ---- the limit of a hand-off: a futex ping-pong ----------------------------- */

/* Two threads pass a token back and forth through a futex, each sleeping
 * in the kernel until the other wakes it: one round trip is the two
 * hand-offs an external submitter's op costs at depth 1 (submitter ->
 * completion thread -> submitter), with no I/O at all. Both threads on one
 * CPU, or on two (a wake-up of a thread on another, idle vCPU). */
typedef struct {
    _Atomic uint32_t turn; /* 0: the pinger's, 1: the ponger's */
    _Atomic int stop;
} pingpong;

static void pp_wait(_Atomic uint32_t *w, uint32_t busy)
{
    while (atomic_load(w) == busy)
        syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, busy, NULL, NULL, 0);
}

static void pp_pass(_Atomic uint32_t *w, uint32_t to)
{
    atomic_store(w, to);
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *ponger(void *arg)
{
    pingpong *pp = arg;
    for (;;) {
        pp_wait(&pp->turn, 0);
        if (atomic_load(&pp->stop)) return NULL;
        pp_pass(&pp->turn, 0);
    }
}

static void run_pingpong(int same_cpu, result *out)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!same_cpu && ncpu < 2) die("ping-pong across CPUs needs two CPUs");
    cpu_set_t old, mine, theirs;
    if (pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0) die("getaffinity");
    int cpu = sched_getcpu();
    if (cpu < 0) cpu = 0;
    CPU_ZERO(&mine);
    CPU_SET(cpu, &mine);
    CPU_ZERO(&theirs);
    CPU_SET(same_cpu ? cpu : (int)((cpu + 1) % ncpu), &theirs);
    if (pthread_setaffinity_np(pthread_self(), sizeof mine, &mine) != 0) die("setaffinity");
    pingpong pp;
    atomic_init(&pp.turn, 0);
    atomic_init(&pp.stop, 0);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setaffinity_np(&at, sizeof theirs, &theirs);
    pthread_t th;
    if (pthread_create(&th, &at, ponger, &pp) != 0) die("pthread_create");
    pthread_attr_destroy(&at);
    snap a, b;
    snap_take(&a);
    uint64_t deadline = a.t + (uint64_t)(g_secs * 1e9), trips = 0;
    do {
        pp_pass(&pp.turn, 1);
        pp_wait(&pp.turn, 1);
        trips++;
    } while ((trips & 63) || now_ns() < deadline);
    snap_take(&b);
    atomic_store(&pp.stop, 1);
    pp_pass(&pp.turn, 1);
    pthread_join(th, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    finish(out, &a, &b, trips, 0);
}

/* ---- the competitors ------------------------------------------------------ */

enum {
    K_LIBURING,
    K_LIBURING_FIXED,
    K_PREAD,
    K_LIBUV,
    K_OVL_U_A,
    K_OVL_U_A_FIXED,
    K_OVL_U_B,
    K_OVL_U_B_POLL,
    K_OVL_U_B_SAP,
    K_OVL_U_B_SAPW,
    K_OVL_U_B_SPIN,
    K_OVL_U_B_PIN,
    K_OVL_T_A,
    K_OVL_T_B,
    K_OVL_U_M,
    K_OVL_U_S,
    K_OVL_T_M,
    K_LIBURING_COOP,
    K_LIBURING_COOP1,
    K_LIBURING_DEFER,
    K_PING_1CPU,
    K_PING_2CPU,
    K_NOP_LIBURING,
    K_NOP_OVL_U,
    K_NOP_OVL_U_BATCH,
    K_NOP_OVL_T,
    K_N
};

static const char *const k_name[K_N] = {
    "liburing, 1 thread (ceiling)",
    "liburing, 1 thread, registered file",
    "pread loop, 1 thread (sync)",
    "libuv uv_fs_read (4 pool threads)",
    "ovl uring, resubmit in callback",
    "ovl uring, resubmit in callback, registered file",
    "ovl uring, external submitter",
    "ovl uring, external submitter + ovl_poll(p, 0)",
    "ovl uring, external submitter, ovl_submit_and_poll",
    "ovl uring, external submitter, ovl_submit_and_poll waiting in the call",
    "ovl uring, external submitter, spin_usec=200",
    "ovl uring, external submitter, both threads on one CPU",
    "ovl threads, resubmit in callback",
    "ovl threads, external submitter",
    "ovl uring, manual port, ovl_poll loop, resubmit in callback",
    "ovl uring, manual port, ovl_submit_and_poll (submit and deliver)",
    "ovl threads, manual port, ovl_poll loop, resubmit in callback",
    "liburing, COOP_TASKRUN + SINGLE_ISSUER + DEFER_TASKRUN (fio's flags)",
    "liburing, COOP_TASKRUN alone",
    "liburing, SINGLE_ISSUER + DEFER_TASKRUN",
    "futex ping-pong, 2 threads on one CPU (round trips; no I/O)",
    "futex ping-pong, 2 threads on two CPUs (round trips; no I/O)",
    "liburing NOP, 1 thread",
    "ovl uring ovl_post from callback",
    "ovl uring posts from callback, one ovl_submit per batch",
    "ovl threads ovl_post from callback",
};
static const char *const k_id[K_N] = {
    "liburing",
    "liburing-fixed",
    "pread",
    "libuv",
    "ovl-uring-cb",
    "ovl-uring-cb-fixed",
    "ovl-uring-ext",
    "ovl-uring-ext-poll",
    "ovl-uring-ext-sap",
    "ovl-uring-ext-sapw",
    "ovl-uring-ext-spin",
    "ovl-uring-ext-pin",
    "ovl-threads-cb",
    "ovl-threads-ext",
    "ovl-uring-manual",
    "ovl-uring-sap",
    "ovl-threads-manual",
    "liburing-coop",
    "liburing-coop1",
    "liburing-defer",
    "pingpong-1cpu",
    "pingpong-2cpu",
    "nop-liburing",
    "nop-ovl-uring",
    "nop-ovl-uring-batch",
    "nop-ovl-threads",
};

static int g_enabled[K_N];

/* A run that hangs (a lost wake-up in the library, say) must not hang the
 * whole bench command: name it and fail. */
static volatile sig_atomic_t g_cur_k = -1, g_cur_depth;
static void on_alarm(int sig)
{
    (void)sig;
    char b[160];
    int n = snprintf(b, sizeof b, "ovlbench: run '%s' at depth %d did not finish in time (hang?)\n",
                     g_cur_k >= 0 ? k_id[g_cur_k] : "?", (int)g_cur_depth);
    if (n > 0) (void)!write(2, b, (size_t)n);
    _exit(3);
}

static void run_one(int k, int depth, result *out)
{
    g_cur_k = k;
    g_cur_depth = depth;
    alarm((unsigned)(g_secs * 20) + 30);
    int lat = depth == 1 && k < K_PING_1CPU;
    g_nlat = 0;
    memset(out, 0, sizeof *out);
    if (k < K_PING_1CPU && g_work != W_DIRECT) ensure_resident();
    switch (k) {
    case K_LIBURING: run_liburing(depth, lat, 0, 0, 0, out); break;
    case K_LIBURING_FIXED: run_liburing(depth, lat, 0, 1, 0, out); break;
    case K_LIBURING_COOP:
        run_liburing(depth, lat, 0, 0,
                     IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
                         IORING_SETUP_DEFER_TASKRUN,
                     out);
        break;
    case K_LIBURING_COOP1: run_liburing(depth, lat, 0, 0, IORING_SETUP_COOP_TASKRUN, out); break;
    case K_LIBURING_DEFER:
        run_liburing(depth, lat, 0, 0, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                     out);
        break;
    case K_OVL_U_M:
    case K_OVL_T_M:
        g_port_flags = OVL_PORT_MANUAL;
        run_ovl_a(k == K_OVL_U_M ? OVL_BACKEND_URING : OVL_BACKEND_THREADS, depth, lat, 0, 0, out);
        g_port_flags = 0;
        break;
    case K_OVL_U_S: run_ovl_s(OVL_BACKEND_URING, depth, lat, out); break;
    case K_PING_1CPU: run_pingpong(1, out); break;
    case K_PING_2CPU: run_pingpong(0, out); break;
    case K_PREAD: run_pread(depth, lat, out); break;
    case K_LIBUV: run_libuv(depth, lat, out); break;
    case K_OVL_U_A: run_ovl_a(OVL_BACKEND_URING, depth, lat, 0, 0, out); break;
    case K_OVL_U_A_FIXED: run_ovl_a(OVL_BACKEND_URING, depth, lat, 0, 1, out); break;
    case K_OVL_U_B: run_ovl_b(OVL_BACKEND_URING, depth, lat, 0, B_SUBMIT, out); break;
    case K_OVL_U_B_POLL: run_ovl_b(OVL_BACKEND_URING, depth, lat, 0, B_POLL, out); break;
    case K_OVL_U_B_SAP: run_ovl_b(OVL_BACKEND_URING, depth, lat, 0, B_SAP, out); break;
    case K_OVL_U_B_SAPW: run_ovl_b(OVL_BACKEND_URING, depth, lat, 0, B_SAPW, out); break;
    case K_OVL_U_B_SPIN: run_ovl_b(OVL_BACKEND_URING, depth, lat, 200, B_SUBMIT, out); break;
    case K_OVL_U_B_PIN: {
        /* The completion thread inherits the creating thread's affinity:
         * pin this thread to the CPU it is on, create the port, run, and
         * restore. The hand-off then never crosses CPUs. */
        cpu_set_t old, one;
        if (pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0) die("getaffinity");
        CPU_ZERO(&one);
        int cpu = sched_getcpu();
        CPU_SET(cpu < 0 ? 0 : cpu, &one);
        if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) die("setaffinity");
        run_ovl_b(OVL_BACKEND_URING, depth, lat, 0, B_SUBMIT, out);
        pthread_setaffinity_np(pthread_self(), sizeof old, &old);
        break;
    }
    case K_OVL_T_A: run_ovl_a(OVL_BACKEND_THREADS, depth, lat, 0, 0, out); break;
    case K_OVL_T_B: run_ovl_b(OVL_BACKEND_THREADS, depth, lat, 0, B_SUBMIT, out); break;
    case K_NOP_LIBURING: run_liburing(depth, 0, 1, 0, 0, out); break;
    case K_NOP_OVL_U: run_ovl_a(OVL_BACKEND_URING, depth, 0, 1, 0, out); break;
    case K_NOP_OVL_U_BATCH: run_ovl_a(OVL_BACKEND_URING, depth, 0, 2, 0, out); break;
    case K_NOP_OVL_T: run_ovl_a(OVL_BACKEND_THREADS, depth, 0, 1, 0, out); break;
    }
    alarm(0);
}

/* ---- statistics and tables ----------------------------------------------- */

#define MAXREP 64
static result g_res[K_N][8][MAXREP];
static double g_ratio[K_N][8][MAXREP]; /* vs liburing (NOP: vs liburing NOP), same rep */
static int g_have[K_N][8];

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median over the repetitions of one field (offset into result). */
static double med_field(int k, int d, size_t off)
{
    double v[MAXREP];
    for (int i = 0; i < g_reps; i++) v[i] = *(const double *)((const char *)&g_res[k][d][i] + off);
    return median(v, g_reps);
}

static double med_ratio(int k, int d)
{
    double v[MAXREP];
    memcpy(v, g_ratio[k][d], (size_t)g_reps * sizeof *v);
    return median(v, g_reps);
}

static void fmt_rate(char *b, size_t n, double v)
{
    if (v >= 1e6) snprintf(b, n, "%.2fM", v / 1e6);
    else snprintf(b, n, "%.0fk", v / 1e3);
}

/* Rows with no depth: they run at depth 1 only. */
static int pread_only_d1(int k) { return k == K_PREAD || k == K_PING_1CPU || k == K_PING_2CPU; }

static void print_header(const char *first)
{
    printf("| %s |", first);
    for (int d = 0; d < g_ndepths; d++) printf(" depth %d |", g_depths[d]);
    printf("\n|---|");
    for (int d = 0; d < g_ndepths; d++) printf("---:|");
    printf("\n");
}

static void table_rates(int lo, int hi, const char *title)
{
    printf("\n### %s\n\nops/s (median of %d runs) and, in parentheses, the median of the "
           "per-repetition ratio "
           "to %s measured in the same repetition.\n\n",
           title, g_reps, lo == K_NOP_LIBURING ? "liburing NOP" : "liburing");
    print_header("competitor");
    for (int k = lo; k < hi; k++) {
        if (!g_enabled[k]) continue;
        printf("| %s |", k_name[k]);
        for (int d = 0; d < g_ndepths; d++) {
            if (!g_have[k][d]) {
                printf(" – |");
                continue;
            }
            char b[32];
            fmt_rate(b, sizeof b, med_field(k, d, offsetof(result, ops_s)));
            printf(" %s (%.2f×) |", b, med_ratio(k, d));
        }
        printf("\n");
    }
}

static void table_field(int lo, int hi, const char *title, size_t off, size_t flag_off,
                        const char *fmt)
{
    printf("\n### %s\n\n", title);
    print_header("competitor");
    for (int k = lo; k < hi; k++) {
        if (!g_enabled[k]) continue;
        printf("| %s |", k_name[k]);
        for (int d = 0; d < g_ndepths; d++) {
            if (!g_have[k][d] || (flag_off != (size_t)-1 &&
                                  !*(const int *)((const char *)&g_res[k][d][0] + flag_off))) {
                printf(" – |");
                continue;
            }
            printf(" ");
            printf(fmt, med_field(k, d, off));
            printf(" |");
        }
        printf("\n");
    }
}

static int depth_index(int depth)
{
    for (int d = 0; d < g_ndepths; d++)
        if (g_depths[d] == depth) return d;
    return -1;
}

static void target_line(const char *what, double got, double want)
{
    printf("| %s | %.3f× | ≥ %.2f× | %s |\n", what, got, want, got >= want ? "met" : "**missed**");
}

/* Ratios of two competitors, each rep against the same rep. */
static double med_vs(int k, int other, int d)
{
    double v[MAXREP];
    for (int i = 0; i < g_reps; i++) v[i] = g_res[k][d][i].ops_s / g_res[other][d][i].ops_s;
    return median(v, g_reps);
}

/* O_DIRECT and buffered writes: slow I/O must not pay for what wins page-cache
 * hits, and writes must keep up with fio's ring flags: every ovl mode at
 * least 0.95x liburing (and, for writes, liburing with those flags). */
static void targets_other(void)
{
    printf("\n### Targets: every ovl mode against liburing (ratios within the same repetition, "
           "median)\n\n"
           "| target | measured | wanted | |\n|---|---:|---:|---|\n");
    char b[200];
    for (int k = K_OVL_U_A; k < K_PING_1CPU; k++) {
        if (k >= K_LIBURING_COOP || !g_enabled[k]) continue;
        for (int d = 0; d < g_ndepths; d++) {
            if (!g_have[k][d]) continue;
            snprintf(b, sizeof b, "%s / liburing, depth %d", k_name[k], g_depths[d]);
            target_line(b, med_ratio(k, d), 0.95);
            if (g_work == W_WRITE && g_enabled[K_LIBURING_COOP] && g_have[K_LIBURING_COOP][d]) {
                snprintf(b, sizeof b, "%s / liburing with fio's flags, depth %d", k_name[k],
                         g_depths[d]);
                target_line(b, med_vs(k, K_LIBURING_COOP, d), 0.95);
            }
        }
    }
}

static void targets(void)
{
    if (g_work != W_CACHE) {
        targets_other();
        return;
    }
    printf("\n### Page-cache targets (ratios within the same repetition, median)\n\n"
           "| target | measured | wanted | |\n|---|---:|---:|---|\n");
    char b[128];
    for (int d = 0; d < g_ndepths; d++) {
        int depth = g_depths[d];
        if (g_enabled[K_OVL_U_A] && g_have[K_OVL_U_A][d] && g_enabled[K_LIBURING]) {
            snprintf(b, sizeof b, "ovl uring resubmit-in-callback / liburing, depth %d", depth);
            target_line(b, med_ratio(K_OVL_U_A, d), depth == 1 ? 0.90 : 0.95);
        }
        if (g_enabled[K_OVL_U_A_FIXED] && g_have[K_OVL_U_A_FIXED][d] &&
            g_enabled[K_LIBURING_FIXED]) {
            snprintf(b, sizeof b, "same, both with a registered file, depth %d", depth);
            target_line(b, med_vs(K_OVL_U_A_FIXED, K_LIBURING_FIXED, d), depth == 1 ? 0.90 : 0.95);
        }
    }
    for (int d = 0; d < g_ndepths; d++) {
        if (g_depths[d] < 64 || !g_enabled[K_OVL_U_B] || !g_have[K_OVL_U_B][d]) continue;
        snprintf(b, sizeof b, "ovl uring external submitter / liburing, depth %d", g_depths[d]);
        target_line(b, med_ratio(K_OVL_U_B, d), 0.80);
        if (g_enabled[K_OVL_U_B_POLL] && g_have[K_OVL_U_B_POLL][d]) {
            snprintf(b, sizeof b,
                     "same, submitter calls ovl_poll(p, 0) after each submit, depth %d",
                     g_depths[d]);
            target_line(b, med_ratio(K_OVL_U_B_POLL, d), 0.80);
        }
        if (g_enabled[K_OVL_U_B_SAP] && g_have[K_OVL_U_B_SAP][d]) {
            snprintf(b, sizeof b, "same, submitter calls ovl_submit_and_poll(..., 0), depth %d",
                     g_depths[d]);
            target_line(b, med_ratio(K_OVL_U_B_SAP, d), 0.80);
        }
        if (g_enabled[K_OVL_U_B_SPIN] && g_have[K_OVL_U_B_SPIN][d]) {
            snprintf(b, sizeof b, "same, opt-in spin_usec=200, depth %d", g_depths[d]);
            target_line(b, med_ratio(K_OVL_U_B_SPIN, d), 0.80);
        }
        if (g_enabled[K_OVL_U_B_PIN] && g_have[K_OVL_U_B_PIN][d]) {
            snprintf(b, sizeof b, "same, submitter and completion thread on one CPU, depth %d",
                     g_depths[d]);
            target_line(b, med_ratio(K_OVL_U_B_PIN, d), 0.80);
        }
    }
    for (int d = 0; d < g_ndepths; d++) {
        if (!g_enabled[K_NOP_OVL_U] || !g_have[K_NOP_OVL_U][d] || g_depths[d] < 16) continue;
        snprintf(b, sizeof b, "ovl_post (uring) / liburing NOP, depth %d", g_depths[d]);
        target_line(b, med_ratio(K_NOP_OVL_U, d), 0.80);
        if (g_enabled[K_NOP_OVL_U_BATCH] && g_have[K_NOP_OVL_U_BATCH][d]) {
            snprintf(b, sizeof b, "same, posts batched through ovl_submit, depth %d", g_depths[d]);
            target_line(b, med_ratio(K_NOP_OVL_U_BATCH, d), 0.80);
        }
    }
    int d1 = depth_index(1), d64 = depth_index(64);
    if (g_enabled[K_LIBUV] && g_enabled[K_OVL_U_A]) {
        if (d1 >= 0)
            target_line("ovl uring (callback) / libuv, depth 1", med_vs(K_OVL_U_A, K_LIBUV, d1),
                        10.0);
        if (d64 >= 0)
            target_line("ovl uring (callback) / libuv, depth 64", med_vs(K_OVL_U_A, K_LIBUV, d64),
                        1.2);
    }
}

static void report(void)
{
    table_rates(K_LIBURING, K_NOP_LIBURING, g_work_title[g_work]);
    table_field(K_LIBURING, K_NOP_LIBURING,
                "CPU time per op, µs (user + system, every thread of the process)",
                offsetof(result, cpu_us), (size_t)-1, "%.2f");
    table_field(K_LIBURING, K_NOP_LIBURING,
                "Context switches per op (voluntary + involuntary, every thread)",
                offsetof(result, csw), (size_t)-1, "%.3f");
    table_field(K_LIBURING, K_NOP_LIBURING,
                "System calls per op (ovl: ovl_port_stats; liburing: io_uring_enter calls made)",
                offsetof(result, sys_op), offsetof(result, has_sys), "%.3f");
    table_field(K_LIBURING, K_NOP_LIBURING,
                "Completions per callback batch (ovl_port_stats; liburing: CQEs per reap)",
                offsetof(result, batch), offsetof(result, has_batch), "%.1f");
    int d1 = depth_index(1);
    if (d1 >= 0) {
        printf("\n### Latency at depth 1 (submit to completion seen by the caller, µs; median of "
               "runs)\n\n"
               "| competitor | p50 | p99 |\n|---|---:|---:|\n");
        for (int k = K_LIBURING; k < K_PING_1CPU; k++) {
            if (!g_enabled[k] || !g_have[k][d1]) continue;
            printf("| %s | %.2f | %.2f |\n", k_name[k], med_field(k, d1, offsetof(result, p50_us)),
                   med_field(k, d1, offsetof(result, p99_us)));
        }
    }
    int nops = 0;
    for (int k = K_NOP_LIBURING + 1; k < K_N; k++) nops += g_enabled[k];
    if (nops) {
        table_rates(K_NOP_LIBURING, K_N, "NOP round trips (liburing NOP vs ovl_post)");
        table_field(K_NOP_LIBURING, K_N, "NOP: CPU time per op, µs", offsetof(result, cpu_us),
                    (size_t)-1, "%.3f");
        table_field(K_NOP_LIBURING, K_N, "NOP: system calls per op", offsetof(result, sys_op),
                    offsetof(result, has_sys), "%.3f");
    }
    targets();
    if (g_work == W_DIRECT)
        printf("\nFile: %llu MiB, %s, opened with O_DIRECT (written and synced first).\n",
               (unsigned long long)(g_size >> 20), g_path);
    else
        printf("\nFile: %llu MiB, %s; page-cache residency checked with mincore before every run: "
               "lowest seen %.1f%%, re-warmed %d time(s).\n",
               (unsigned long long)(g_size >> 20), g_path, g_min_resident, g_rewarms);
}

/* ---- main ------------------------------------------------------------------ */

/* Every ovl user is a multi-threaded process (the completion thread), and
 * in one the kernel takes and drops a file reference for every read on a
 * plain fd, which a single-threaded process skips. Without this thread
 * liburing would get that discount only in the runs before libuv first
 * starts its pool; with it, every competitor runs multi-threaded. */
static void *parked(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: ovlbench [--file PATH] [--size-mib N] [--secs S] [--reps N]\n"
                    "                [--depths 1,16,64,256] [--only id,id,...]\n"
                    "                [--workload cache|direct|write]\n"
                    "ids: ");
    for (int k = 0; k < K_N; k++) fprintf(stderr, "%s%s", k_id[k], k + 1 < K_N ? "," : "\n");
    exit(2);
}

int main(int argc, char **argv)
{
    for (int k = 0; k < K_N; k++) g_enabled[k] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--file") && v) g_path = argv[++i];
        else if (!strcmp(a, "--size-mib") && v) g_size = strtoull(argv[++i], NULL, 10) << 20;
        else if (!strcmp(a, "--secs") && v) g_secs = atof(argv[++i]);
        else if (!strcmp(a, "--reps") && v) g_reps = atoi(argv[++i]);
        else if (!strcmp(a, "--workload") && v) {
            const char *w = argv[++i];
            int found = 0;
            for (int k = 0; k < 3; k++)
                if (!strcmp(w, g_work_id[k])) g_work = k, found = 1;
            if (!found) usage();
        } else if (!strcmp(a, "--depths") && v) {
            char *s = argv[++i], *tok, *save = NULL;
            g_ndepths = 0;
            for (tok = strtok_r(s, ",", &save); tok && g_ndepths < 8;
                 tok = strtok_r(NULL, ",", &save))
                g_depths[g_ndepths++] = atoi(tok);
        } else if (!strcmp(a, "--only") && v) {
            char *s = argv[++i], *tok, *save = NULL;
            for (int k = 0; k < K_N; k++) g_enabled[k] = 0;
            for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int found = 0;
                for (int k = 0; k < K_N; k++)
                    if (!strcmp(tok, k_id[k])) g_enabled[k] = found = 1;
                if (!found) usage();
            }
            /* Ratios need their reference. */
            g_enabled[K_LIBURING] = 1;
            for (int k = K_NOP_LIBURING + 1; k < K_N; k++)
                if (g_enabled[k]) g_enabled[K_NOP_LIBURING] = 1;
        } else usage();
    }
    if (g_reps < 1 || g_reps > MAXREP || g_secs <= 0 || g_size < (1u << 20)) usage();
    /* Which of fio's flags carries a write gain, if any: each set alone,
     * for the write workload only (reads are the same with or without). */
    if (g_work != W_WRITE) g_enabled[K_LIBURING_COOP1] = g_enabled[K_LIBURING_DEFER] = 0;
    for (int d = 0; d < g_ndepths; d++)
        if (g_depths[d] < 1 || g_depths[d] > MAXD) usage();

    signal(SIGALRM, on_alarm);
    pthread_t parked_thread;
    if (pthread_create(&parked_thread, NULL, parked, NULL) != 0) die("pthread_create");
    g_bufs = aligned_alloc(4096, (size_t)MAXD * BLK);
    g_lat = malloc(LAT_CAP * sizeof *g_lat);
    if (!g_bufs || !g_lat) die("out of memory");
    memset(g_bufs, 0, (size_t)MAXD * BLK);
    open_file();

    uint32_t auto_be = 0;
    const char *why = ovl_backend_reason(&auto_be);
    fprintf(stderr, "ovl %s; auto backend: %s; workload: %s\n", ovl_version_string(), why,
            g_work_id[g_work]);

    for (int rep = 0; rep < g_reps; rep++) {
        for (int d = 0; d < g_ndepths; d++) {
            /* Rotate the order every repetition and depth, so no competitor
             * always runs right after the same one. */
            for (int j = 0; j < K_N; j++) {
                int k = (j + rep + d) % K_N;
                if (!g_enabled[k]) continue;
                if (pread_only_d1(k) && g_depths[d] != 1) continue;
                run_one(k, g_depths[d], &g_res[k][d][rep]);
                g_have[k][d] = 1;
            }
            for (int k = 0; k < K_N; k++) {
                if (!g_have[k][d]) continue;
                int ref = k >= K_NOP_LIBURING ? K_NOP_LIBURING : K_LIBURING;
                g_ratio[k][d][rep] = g_res[k][d][rep].ops_s / g_res[ref][d][rep].ops_s;
            }
            fprintf(stderr, "rep %d/%d depth %d: liburing %.0fk ovl-cb %.0fk\n", rep + 1, g_reps,
                    g_depths[d], g_res[K_LIBURING][d][rep].ops_s / 1e3,
                    g_res[K_OVL_U_A][d][rep].ops_s / 1e3);
        }
    }
    report();
    if (g_iofd != g_fd) close(g_iofd);
    close(g_fd);
    return 0;
}
