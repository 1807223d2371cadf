/* fuzz_api.c - libFuzzer harness: each input is a program of API calls with
 * random arguments (valid and invalid) run against one port. Asserts the
 * exactly-once accounting (every OVL_OK submit completes once, with its ctx
 * and id; a failed submit gives id 0 and no completion; nothing unknown or
 * stale), the documented error codes for bad input, and no crash (run it
 * under ASan/UBSan). The backend comes from OVL_BACKEND. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <ovl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "fuzz_api: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#define MAXOPS 512
#define BUFSZ 4096
#define DATA_SIZE 65536

static uint8_t data_byte(uint64_t o) { return (uint8_t)(o * 167u + (o >> 7)); }

/* Resources made once per process. */
static int data_fd = -1, write_fd = -1, pipe_fd[2] = {-1, -1}, sock_fd[2] = {-1, -1};

typedef struct rec {
    uint64_t id;
    int state; /* 0 unused, 1 in flight, 2 delivered */
    uint32_t op;
    int fd;
    int64_t offset;
    int64_t post_value;
    uint8_t *buf;
} rec;

typedef struct run {
    ovl_port *port;
    bool manual;
    uint32_t depth;
    rec recs[MAXOPS];
    size_t nrecs;
    pthread_mutex_t mu;
    size_t delivered;
    atomic_int in_cb;
    bool closed;
} run;

static void on_batch(const ovl_completion *it, size_t n, void *ud)
{
    run *R = ud;
    CHECK(n >= 1);
    CHECK(atomic_fetch_add(&R->in_cb, 1) == 0); /* never two at once */
    pthread_mutex_lock(&R->mu);
    for (size_t i = 0; i < n; i++) {
        rec *r = it[i].ctx;
        CHECK(r >= R->recs && r < R->recs + MAXOPS); /* a ctx we gave */
        CHECK(r->state == 1);                        /* in flight: once */
        CHECK(r->id == it[i].id);
        CHECK(it[i].op == r->op);
        if (r->op == OVL_OP_POST) {
            CHECK(it[i].result == r->post_value);
        } else if (it[i].result > 0 && r->op == OVL_OP_READ && r->fd == data_fd && r->offset >= 0) {
            CHECK(r->offset + it[i].result <= DATA_SIZE);
            for (int64_t j = 0; j < it[i].result; j++)
                CHECK(r->buf[j] == data_byte((uint64_t)(r->offset + j)));
        } else if (it[i].result < 0) {
            CHECK(it[i].result >= OVL__ERR_LAST);
        }
        r->state = 2;
        free(r->buf); /* ovl must never touch it again (ASan watches) */
        r->buf = NULL;
        R->delivered++;
    }
    pthread_mutex_unlock(&R->mu);
    atomic_fetch_sub(&R->in_cb, 1);
}

static void setup_resources(void)
{
    if (data_fd >= 0) return;
    char p1[] = "/tmp/ovl-fuzz-data-XXXXXX", p2[] = "/tmp/ovl-fuzz-w-XXXXXX";
    data_fd = mkstemp(p1);
    write_fd = mkstemp(p2);
    CHECK(data_fd >= 0 && write_fd >= 0);
    unlink(p1);
    unlink(p2);
    static uint8_t d[DATA_SIZE];
    for (size_t i = 0; i < DATA_SIZE; i++) d[i] = data_byte(i);
    CHECK(pwrite(data_fd, d, DATA_SIZE, 0) == DATA_SIZE);
    CHECK(pipe2(pipe_fd, O_CLOEXEC) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock_fd) == 0);
    /* Our own drains must never block. */
    fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup_resources();
    return 0;
}

/* ---- input decoding ------------------------------------------------------ */
typedef struct in {
    const uint8_t *p;
    size_t n;
} in;

static uint8_t u8(in *s)
{
    if (!s->n) return 0;
    s->n--;
    return *s->p++;
}
static uint32_t u32(in *s)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)u8(s) << (8 * i);
    return v;
}

static ovl_fd pick_fd(in *s, bool *valid_stream)
{
    *valid_stream = false;
    switch (u8(s) % 10) {
    case 0: return (ovl_fd)data_fd;
    case 1: return (ovl_fd)write_fd;
    case 2: *valid_stream = true; return (ovl_fd)pipe_fd[0];
    case 3: *valid_stream = true; return (ovl_fd)pipe_fd[1];
    case 4: *valid_stream = true; return (ovl_fd)sock_fd[0];
    case 5: *valid_stream = true; return (ovl_fd)sock_fd[1];
    case 6: return (ovl_fd)1000000;     /* plausible, not open: EBADF completion */
    case 7: return (ovl_fd)0x80000000u; /* never an fd: EBADF at submit */
    case 8: return UINT64_MAX;
    default: return (ovl_fd)data_fd;
    }
}

static uint64_t pick_len(in *s)
{
    switch (u8(s) % 8) {
    case 0: return 0;
    case 1: return (uint64_t)OVL_MAX_IO_SIZE + 1;
    case 2: return UINT64_MAX;
    case 3: return BUFSZ;
    default: return 1 + u32(s) % BUFSZ;
    }
}

static int64_t pick_off(in *s, bool stream)
{
    switch (u8(s) % 8) {
    case 0: return OVL_OFFSET_CURRENT;
    case 1: return -2;
    case 2: return INT64_MAX;
    case 3: return INT64_MIN;
    case 4: return INT64_MAX - 10;
    default: return stream ? OVL_OFFSET_CURRENT : (int64_t)(u32(s) % (DATA_SIZE + 8192));
    }
}

static bool ovl__fd_ok(ovl_fd fd) { return fd <= 0x7fffffffu; }

static rec *new_rec(run *R)
{
    if (R->nrecs >= MAXOPS) return NULL;
    rec *r = &R->recs[R->nrecs++];
    memset(r, 0, sizeof *r);
    return r;
}

/* After a submit: OK means in flight with an id; an error, no id. */
static void account(run *R, rec *r, int32_t rc, uint64_t id)
{
    pthread_mutex_lock(&R->mu);
    if (rc == OVL_OK) {
        CHECK(id != 0);
        r->id = id;
        /* The completion may already be in (it checks the id under mu, so
         * set state before releasing: state was set to 1 before submit). */
    } else {
        CHECK(id == 0);
        CHECK(rc < 0 && rc >= OVL__ERR_LAST);
        CHECK(r->state == 1); /* no completion for a failed submit */
        r->state = 0;
        free(r->buf);
        r->buf = NULL;
    }
    pthread_mutex_unlock(&R->mu);
}

static void do_submit(run *R, in *s, uint32_t op)
{
    rec *r = new_rec(R);
    if (!r) return;
    bool stream;
    ovl_fd fd = pick_fd(s, &stream);
    if (op == OVL_OP_WRITE && fd == (ovl_fd)data_fd) fd = (ovl_fd)write_fd; /* keep it pristine */
    uint64_t len = op == OVL_OP_FSYNC ? 0 : pick_len(s);
    int64_t off = pick_off(s, stream);
    bool nullbuf = (u8(s) % 16) == 0;
    r->op = op;
    r->fd = fd <= 0x7fffffffu ? (int)fd : -1;
    r->offset = off;
    r->buf = nullbuf ? NULL : malloc(BUFSZ);
    if (r->buf) memset(r->buf, 0x33, BUFSZ);
    bool had_buf = r->buf != NULL; /* the callback frees it */
    /* Lengths that fit the buffer, or ones ovl must refuse before use. */
    size_t l = len <= BUFSZ ? (size_t)len : (len > OVL_MAX_IO_SIZE ? (size_t)len : BUFSZ);
    /* Guard the id in the rec before the completion can check it. */
    uint64_t id = 0;
    pthread_mutex_lock(&R->mu);
    r->state = 1;
    pthread_mutex_unlock(&R->mu);
    int32_t rc;
    /* The completion may run before we store the id: hold mu across the
     * submit so the callback sees r->id set (the callback takes mu). Not in
     * manual mode, where no callback runs concurrently anyway. */
    pthread_mutex_lock(&R->mu);
    switch (op) {
    case OVL_OP_READ: rc = ovl_submit_read(R->port, fd, r->buf, l, off, r, &id); break;
    case OVL_OP_WRITE: rc = ovl_submit_write(R->port, fd, r->buf, l, off, r, &id); break;
    default: rc = ovl_submit_fsync(R->port, fd, u8(s) % 4, r, &id); break;
    }
    if (rc == OVL_OK) r->id = id;
    pthread_mutex_unlock(&R->mu);
    /* Documented argument errors. */
    if (!ovl__fd_ok(fd)) CHECK(rc == OVL_EBADF || rc == OVL_ECLOSED || rc == OVL_EINVAL);
    if (rc == OVL_OK) {
        CHECK(!R->closed);
        CHECK(op == OVL_OP_FSYNC || l <= OVL_MAX_IO_SIZE);
        CHECK(op == OVL_OP_FSYNC || off >= 0 || off == OVL_OFFSET_CURRENT);
        CHECK(op == OVL_OP_FSYNC || had_buf || l == 0);
    }
    if (R->closed) CHECK(rc == OVL_ECLOSED);
    account(R, r, rc, id);
}

static void do_batch(run *R, in *s)
{
    size_t k = 1 + u8(s) % 8;
    ovl_request q[8];
    rec *rs[8];
    size_t m = 0;
    for (; m < k; m++) {
        rec *r = new_rec(R);
        if (!r) break;
        bool stream;
        uint32_t op = 1 + u8(s) % 5; /* includes POST, and 5: invalid */
        if (op == 5) op = 99;        /* 5 and up are connection ops now: not fuzzed here */
        ovl_fd fd = pick_fd(s, &stream);
        if (op != OVL_OP_READ && fd == (ovl_fd)data_fd) fd = (ovl_fd)write_fd;
        uint64_t len = pick_len(s);
        if (len > BUFSZ && len <= OVL_MAX_IO_SIZE) len = BUFSZ;
        r->op = op;
        r->fd = fd <= 0x7fffffffu ? (int)fd : -1;
        r->offset = pick_off(s, stream);
        r->buf = malloc(BUFSZ);
        r->state = 1;
        rs[m] = r;
        q[m] =
            (ovl_request){op, u8(s) % 3 == 0 ? u8(s) : 0, fd, r->buf, len, r->offset, r, 0xdead, 0};
        if (op == OVL_OP_POST && (u8(s) & 1)) {
            /* A well-formed batch post: the value travels in offset. */
            r->post_value = r->offset;
            q[m] = (ovl_request){op, 0, 0, NULL, 0, r->offset, r, 0xdead, 0};
        }
    }
    if (!m) return;
    size_t done = 12345;
    pthread_mutex_lock(&R->mu);
    int32_t rc = ovl_submit(R->port, q, m, &done);
    for (size_t i = 0; i < m && i < done; i++) rs[i]->id = q[i].id;
    pthread_mutex_unlock(&R->mu);
    CHECK(done <= m);
    CHECK((rc == OVL_OK) == (done == m));
    for (size_t i = 0; i < m; i++) {
        if (i < done) {
            CHECK(rs[i]->op == OVL_OP_READ || rs[i]->op == OVL_OP_WRITE ||
                  rs[i]->op == OVL_OP_FSYNC || (rs[i]->op == OVL_OP_POST && q[i].buf == NULL));
            account(R, rs[i], OVL_OK, q[i].id);
        } else {
            CHECK(q[i].id == 0);
            account(R, rs[i], rc, 0);
        }
    }
}

static void drain_pipe(void)
{
    uint8_t b[4096];
    while (read(pipe_fd[0], b, sizeof b) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_resources();
    in s = {data, size};
    run *R = calloc(1, sizeof *R);
    pthread_mutex_init(&R->mu, NULL);
    uint8_t h = u8(&s);
    ovl_port_config cfg;
    CHECK(ovl_port_config_init(&cfg, sizeof cfg) == OVL_OK);
    cfg.queue_depth = 1 + (h & 31u);
    cfg.flags = (h & 0x20) ? OVL_PORT_MANUAL : 0;
    cfg.threads = 1 + ((h >> 6) & 3u);
    cfg.callback = on_batch;
    cfg.userdata = R;
    R->manual = cfg.flags & OVL_PORT_MANUAL;
    R->depth = cfg.queue_depth;
    int32_t rc = ovl_create_port(&cfg, &R->port);
    if (rc == OVL_EUNAVAIL) {
        fprintf(stderr, "fuzz_api: backend unavailable\n");
        exit(77);
    }
    CHECK(rc == OVL_OK);

    size_t steps = 0;
    while (s.n && steps++ < 256) {
        uint8_t cmd = u8(&s);
        switch (cmd % 16) {
        case 0:
        case 1:
        case 2: do_submit(R, &s, OVL_OP_READ); break;
        case 3:
        case 4: do_submit(R, &s, OVL_OP_WRITE); break;
        case 5: do_submit(R, &s, OVL_OP_FSYNC); break;
        case 6: {
            rec *r = new_rec(R);
            if (!r) break;
            uint64_t id = 0;
            r->op = OVL_OP_POST;
            r->post_value = (int64_t)((uint64_t)u32(&s) << 32 | u32(&s));
            pthread_mutex_lock(&R->mu);
            r->state = 1;
            rc = ovl_post(R->port, r->post_value, r, &id);
            if (rc == OVL_OK) r->id = id;
            pthread_mutex_unlock(&R->mu);
            CHECK(rc == OVL_OK || rc == OVL_EQUEUEFULL || rc == OVL_ECLOSED);
            account(R, r, rc, id);
            break;
        }
        case 7: { /* cancel: a known id, or garbage */
            uint64_t id;
            uint8_t k = u8(&s);
            if (k & 1 && R->nrecs) id = R->recs[k % R->nrecs].id;
            else id = (uint64_t)u32(&s) << 32 | u32(&s);
            rc = ovl_cancel(R->port, id);
            CHECK(rc == OVL_OK || rc == OVL_ENOENT || rc == OVL_ECLOSED);
            if (R->closed) CHECK(rc == OVL_ECLOSED);
            break;
        }
        case 8: do_batch(R, &s); break;
        case 9: {
            int32_t t = u8(&s) % 3 == 0 ? 1 : 0;
            rc = ovl_poll(R->port, t);
            if (R->closed) CHECK(rc == OVL_ECLOSED); /* closed comes first */
            else CHECK(rc >= 0);
        } break;
        case 10: { /* feed / drain the streams so parked ops can finish */
            uint8_t b[256];
            memset(b, u8(&s), sizeof b);
            if (u8(&s) & 1) {
                ssize_t w = send(sock_fd[u8(&s) & 1], b, 1 + u8(&s), MSG_DONTWAIT);
                (void)w;
            } else {
                drain_pipe();
            }
            break;
        }
        case 11: {
            bool st;
            ovl_fd fd = pick_fd(&s, &st);
            switch (u8(&s) % 3) {
            case 0:
                rc = ovl_associate(R->port, fd);
                CHECK(rc == OVL_OK || rc == OVL_EBADF || rc == OVL_ECLOSED);
                break;
            case 1: /* the fuzzer's fds stay open for the whole run */
                rc = ovl_register_fd(R->port, fd);
                CHECK(rc == OVL_OK || rc == OVL_EBADF || rc == OVL_EINVAL || rc == OVL_ENOSPC ||
                      rc == OVL_ECLOSED);
                break;
            default:
                rc = ovl_unregister_fd(R->port, fd);
                CHECK(rc == OVL_OK || rc == OVL_ENOENT || rc == OVL_ECLOSED);
                break;
            }
            break;
        }
        case 12: {
            ovl_stats st = {.size = sizeof st};
            CHECK(ovl_port_stats(R->port, &st) == OVL_OK);
            CHECK(st.inflight <= R->depth);
            CHECK(st.stale == 0);
            CHECK(st.submitted >= st.completed);
            ovl_fd ev;
            rc = ovl_port_event(R->port, &ev);
            if (R->closed) CHECK(rc == OVL_ECLOSED);
            else if (!R->manual) CHECK(rc == OVL_EMODE);
            break;
        }
        case 13: /* bad handles and arguments */
            CHECK(ovl_submit_read(NULL, 0, NULL, 0, 0, NULL, NULL) == OVL_EINVAL);
            CHECK(ovl_cancel(NULL, 1) == OVL_EINVAL);
            CHECK(ovl_poll(NULL, 0) == OVL_EINVAL);
            CHECK(ovl_close_port(NULL) == OVL_EINVAL);
            rc = ovl_submit(R->port, NULL, 1, NULL);
            CHECK(rc == OVL_EINVAL || (R->closed && rc == OVL_ECLOSED));
            CHECK(ovl_submit(R->port, NULL, 0, NULL) == OVL_OK || R->closed);
            break;
        case 14:
            if ((u8(&s) & 7) == 0 && !R->closed) {
                CHECK(ovl_close_port(R->port) == OVL_OK);
                R->closed = true;
            }
            break;
        default:
            CHECK(ovl_set_callback(R->port, on_batch, R) == (R->closed ? OVL_ECLOSED : OVL_OK));
            break;
        }
    }
    if (!R->closed) CHECK(ovl_close_port(R->port) == OVL_OK);
    CHECK(ovl_close_port(R->port) == OVL_ECLOSED);
    /* Exactly once: every accepted op delivered, nothing else. */
    size_t want = 0;
    for (size_t i = 0; i < R->nrecs; i++) {
        CHECK(R->recs[i].state != 1);
        if (R->recs[i].state == 2) want++;
    }
    CHECK(want == R->delivered);
    ovl_stats st = {.size = sizeof st};
    CHECK(ovl_port_stats(R->port, &st) == OVL_OK);
    CHECK(st.inflight == 0 && st.submitted == want && st.completed == want && st.stale == 0);
    drain_pipe();
    pthread_mutex_destroy(&R->mu);
    free(R);
    return 0;
}
