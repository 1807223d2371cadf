/* Regular files: positional reads and writes at offsets, short reads and
 * EOF, fsync, batch submit, buffers untouched after completion. */
#include "common.h"

#define FILE_SIZE (1u << 20)

Test(file_io, reads_at_offsets_return_the_right_bytes)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, 0);
    int fd = temp_file(FILE_SIZE, 1);
    enum { N = 64, LEN = 4096 };
    static uint8_t bufs[N][LEN];
    uint64_t ids[N], offs[N];
    srand(42);
    for (int i = 0; i < N; i++) {
        offs[i] = (uint64_t)(rand() % (FILE_SIZE / 512 - 8)) * 512 + (uint64_t)(i % 3);
        cr_assert_eq(t_submit_read(p, (ovl_fd)fd, bufs[i], LEN, (int64_t)offs[i], bufs[i], &ids[i]),
                     OVL_OK);
        cr_assert_neq(ids[i], 0u);
    }
    rec_wait(&r, N);
    for (int i = 0; i < N; i++) {
        ovl_completion c = rec_one(&r, ids[i]);
        cr_assert_eq(c.result, LEN, "op %d: %lld", i, (long long)c.result);
        cr_assert_eq(c.ctx, bufs[i]);
        cr_assert_eq(c.op, OVL_OP_READ);
        cr_assert(matches_pattern(bufs[i], LEN, offs[i], 1), "bytes of read %d", i);
    }
    close_clean(p, &r);
    close(fd);
}

Test(file_io, short_read_and_eof)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fd = temp_file(10000, 2);
    uint8_t a[4096], b[4096], c[4096], z[1];
    uint64_t ia, ib, ic, iz;
    cr_assert_eq(t_submit_read(p, fd, a, sizeof a, 10000 - 100, NULL, &ia), OVL_OK);
    cr_assert_eq(t_submit_read(p, fd, b, sizeof b, 10000, NULL, &ib), OVL_OK);
    cr_assert_eq(t_submit_read(p, fd, c, sizeof c, 1 << 30, NULL, &ic), OVL_OK);
    cr_assert_eq(t_submit_read(p, fd, z, 0, 0, NULL, &iz), OVL_OK);
    rec_wait(&r, 4);
    cr_assert_eq(rec_one(&r, ia).result, 100, "short read reported as it happened");
    cr_assert(matches_pattern(a, 100, 10000 - 100, 2));
    cr_assert_eq(rec_one(&r, ib).result, 0, "EOF is result 0");
    cr_assert_eq(rec_one(&r, ic).result, 0, "past EOF is result 0");
    cr_assert_eq(rec_one(&r, iz).result, 0, "zero-length read");
    close_clean(p, &r);
    close(fd);
}

Test(file_io, writes_land_at_their_offsets_then_fsync)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 32, 0);
    int fd = temp_file(0, 0);
    enum { N = 16, LEN = 3000 };
    static uint8_t bufs[N][LEN];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < LEN; j++) bufs[i][j] = pattern_at((uint64_t)i * LEN + j, 3);
        cr_assert_eq(t_submit_write(p, fd, bufs[i], LEN, (int64_t)i * LEN, NULL, &ids[i]), OVL_OK);
    }
    rec_wait(&r, N);
    for (int i = 0; i < N; i++) cr_assert_eq(rec_one(&r, ids[i]).result, LEN);
    uint64_t f1, f2;
    cr_assert_eq(t_submit_fsync(p, fd, 0, NULL, &f1), OVL_OK);
    cr_assert_eq(t_submit_fsync(p, fd, OVL_FSYNC_DATA, NULL, &f2), OVL_OK);
    cr_assert_eq(t_submit_fsync(p, fd, 0x10, NULL, NULL), OVL_EINVAL);
    rec_wait(&r, N + 2);
    ovl_completion c1 = rec_one(&r, f1), c2 = rec_one(&r, f2);
    cr_assert_eq(c1.result, 0);
    cr_assert_eq(c1.op, OVL_OP_FSYNC);
    cr_assert_eq(c2.result, 0);
    static uint8_t back[N * LEN];
    cr_assert_eq(pread(fd, back, sizeof back, 0), (ssize_t)sizeof back);
    cr_assert(matches_pattern(back, sizeof back, 0, 3));
    close_clean(p, &r);
    close(fd);
}

Test(file_io, batch_submit)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, 0);
    int fd = temp_file(FILE_SIZE, 4);
    enum { N = 40, LEN = 512 };
    static uint8_t bufs[N][LEN];
    ovl_request reqs[N];
    for (int i = 0; i < N; i++) {
        ovl_request q = {OVL_OP_READ,          0, (ovl_fd)fd, bufs[i], LEN, (int64_t)i * 1000,
                         (void *)(uintptr_t)i, 0, 0};
        reqs[i] = q;
    }
    size_t done = 0;
    cr_assert_eq(t_submit_batch(p, reqs, N, &done), OVL_OK);
    cr_assert_eq(done, (size_t)N);
    rec_wait(&r, N);
    for (int i = 0; i < N; i++) {
        ovl_completion c = rec_one(&r, reqs[i].id);
        cr_assert_eq(c.result, LEN);
        cr_assert_eq((uintptr_t)c.ctx, (uintptr_t)i);
        cr_assert(matches_pattern(bufs[i], LEN, (uint64_t)i * 1000, 4));
    }
    /* A bad request in the middle stops the batch there: the ones before it
     * are submitted (and complete), the rest get id 0 and no completion. */
    for (int i = 0; i < 10; i++) reqs[i].id = 99;
    reqs[4].offset = -5;
    cr_assert_eq(t_submit_batch(p, reqs, 10, &done), OVL_EINVAL);
    cr_assert_eq(done, 4u);
    for (int i = 0; i < 4; i++) cr_assert_neq(reqs[i].id, 0u);
    for (int i = 4; i < 10; i++) cr_assert_eq(reqs[i].id, 0u);
    rec_wait(&r, N + 4);
    /* fsync and write kinds in a batch */
    ovl_request mix[2] = {
        {OVL_OP_WRITE, 0, (ovl_fd)fd, bufs[0], LEN, 0, NULL, 0, 0},
        {OVL_OP_FSYNC, OVL_FSYNC_DATA, (ovl_fd)fd, NULL, 0, 0, NULL, 0, 0},
    };
    cr_assert_eq(t_submit_batch(p, mix, 2, NULL), OVL_OK);
    rec_wait(&r, N + 6);
    cr_assert_eq(rec_one(&r, mix[0].id).result, LEN);
    cr_assert_eq(rec_one(&r, mix[1].id).result, 0);
    cr_assert_eq(t_submit_batch(p, NULL, 0, &done), OVL_OK);
    cr_assert_eq(done, 0u);
    close_clean(p, &r);
    close(fd);
}

Test(file_io, buffers_untouched_after_completion)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fd = temp_file(8192, 5);
    uint8_t buf[4096 + 64];
    memset(buf, 0xee, sizeof buf);
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fd, buf, 4096, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, id).result, 4096);
    for (size_t i = 4096; i < sizeof buf; i++) cr_assert_eq(buf[i], 0xee, "wrote past len");
    /* Scribble, run more traffic through the port, and check nothing came
     * back to the old buffer. */
    memset(buf, 0xaa, sizeof buf);
    uint8_t other[4096];
    for (int i = 0; i < 20; i++) {
        uint64_t oid;
        size_t before = rec_count(&r);
        cr_assert_eq(t_submit_read(p, fd, other, sizeof other, 4096, NULL, &oid), OVL_OK);
        rec_wait(&r, before + 1);
        cr_assert_eq(rec_one(&r, oid).result, 4096);
        round_trip(p, &r);
    }
    for (size_t i = 0; i < sizeof buf; i++) cr_assert_eq(buf[i], 0xaa);
    close_clean(p, &r);
    close(fd);
}

Test(file_io, bad_fd_is_reported_in_the_completion)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fd = temp_file(16, 6);
    close(fd); /* now a closed descriptor number */
    char buf[16];
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fd, buf, sizeof buf, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, OVL_EBADF);
#ifdef _WIN32
    cr_assert_eq(c.os_error, 6 /* ERROR_INVALID_HANDLE */);
#else
    cr_assert_eq(c.os_error, EBADF);
    /* and a write on a read-only fd */
    int ro = open("/dev/null", O_RDONLY);
    cr_assert_eq(t_submit_write(p, ro, buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, &id), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, id).result, OVL_EBADF);
    close(ro);
#endif
    close_clean(p, &r);
}

Test(file_io, large_offsets)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fd = temp_file(0, 0);
    const int64_t off = (int64_t)5 << 30; /* 5 GiB: sparse */
    const char msg[] = "beyond 4 GiB";
    uint64_t w, rd;
    cr_assert_eq(t_submit_write(p, fd, msg, sizeof msg, off, NULL, &w), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, w).result, (int64_t)sizeof msg);
    char back[sizeof msg] = {0};
    cr_assert_eq(t_submit_read(p, fd, back, sizeof back, off, NULL, &rd), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, rd).result, (int64_t)sizeof msg);
    cr_assert_str_eq(back, msg);
    close_clean(p, &r);
    close(fd);
}

/* The event-loop pattern: every completion's callback submits the next read
 * (io_uring: deferred, flushed by one io_uring_enter after the batch). */
typedef struct chain {
    int fd;
    uint8_t bufs[4][4096];
    int64_t offs[4]; /* what each buffer is reading */
    int64_t next_off;
    int bad;
} chain;

static void resubmit_hook(rec *r, const ovl_completion *c)
{
    chain *ch = r->hook_data;
    uint8_t *buf = c->ctx;
    size_t i = (size_t)(buf - ch->bufs[0]) / 4096;
    if (c->result != 4096 || !matches_pattern(buf, 4096, (uint64_t)ch->offs[i], 14)) ch->bad++;
    if (ch->next_off < (1 << 20)) {
        ch->offs[i] = ch->next_off;
        if (t_submit_read(r->port, (ovl_fd)ch->fd, buf, 4096, ch->next_off, buf, NULL) != OVL_OK)
            ch->bad++;
        ch->next_off += 4096;
    }
}

Test(file_io, callback_resubmits_reads)
{
    rec r;
    rec_init(&r);
    chain ch;
    memset(&ch, 0, sizeof ch);
    ch.fd = temp_file(1 << 20, 14);
    r.hook = resubmit_hook;
    r.hook_data = &ch;
    ovl_port *p = open_port(&r, 4, 0);
    /* four reads in flight; each completion resubmits its buffer. From the
     * first submit on, `ch` belongs to the callback: set it up before. */
    for (int i = 0; i < 4; i++) ch.offs[i] = (int64_t)i * 4096;
    ch.next_off = 4 * 4096;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t_submit_read(p, ch.fd, ch.bufs[i], 4096, (int64_t)i * 4096, ch.bufs[i], NULL),
                     OVL_OK);
    rec_wait(&r, 256); /* 1 MiB in 4 KiB reads; the rec lock orders ch too */
    cr_assert_eq(ch.bad, 0);
    cr_assert_eq(ch.next_off, 1 << 20);
    ovl_stats s = {.size = sizeof s};
    ovl_port_stats(p, &s);
    cr_assert_eq(s.completed, 256u);
    close_clean(p, &r);
    close(ch.fd);
}

Test(file_io, capped_workers_still_do_io)
{
    /* cfg.threads: the pool size on threads, the io-wq cap on io_uring.
     * One worker must still carry many ops. */
    rec r;
    rec_init(&r);
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = 32;
    cfg.threads = 1;
    ovl_port *p = open_port_cfg(&r, &cfg);
    int fd = temp_file(1 << 18, 16);
    static uint8_t bufs[32][8192];
    uint64_t ids[32];
    for (int i = 0; i < 32; i++)
        cr_assert_eq(t_submit_read(p, fd, bufs[i], 8192, (int64_t)i * 8192, NULL, &ids[i]), OVL_OK);
    rec_wait(&r, 32);
    for (int i = 0; i < 32; i++) {
        cr_assert_eq(rec_one(&r, ids[i]).result, 8192);
        cr_assert(matches_pattern(bufs[i], 8192, (uint64_t)i * 8192, 16));
    }
    close_clean(p, &r);
    close(fd);
}

/* Registered fds: every read goes to the file registered under its own fd
 * (64 files, the table's size, each with its own content), with all, half
 * and none of them registered; one more is refused; the bookkeeping errors
 * are the documented ones. On io_uring these reads use fixed files. */
static void read_each(ovl_port *p, rec *r, const int *fds, int n, uint8_t (*bufs)[4096], int round)
{
    ovl_request q[OVL_MAX_REGISTERED_FDS];
    size_t before = rec_count(r), done = 0;
    for (int i = 0; i < n; i++) {
        memset(bufs[i], 0, 4096);
        q[i] = (ovl_request){
            OVL_OP_READ, 0, (ovl_fd)fds[i], bufs[i], 4096, (int64_t)(i % 4) * 4096, bufs[i], 0, 0};
    }
    cr_assert_eq(t_submit_batch(p, q, (size_t)n, &done), OVL_OK);
    rec_wait(r, before + (size_t)n);
    for (int i = 0; i < n; i++) {
        ovl_completion c = rec_one(r, q[i].id);
        cr_assert_eq(c.result, 4096, "round %d file %d: %lld", round, i, (long long)c.result);
        cr_assert(matches_pattern(bufs[i], 4096, (uint64_t)(i % 4) * 4096, 100u + (unsigned)i),
                  "round %d: file %d read another file's bytes", round, i);
    }
}

Test(file_io, registered_fds_read_their_own_files)
{
    rec r;
    rec_init(&r);
    enum { N = OVL_MAX_REGISTERED_FDS };
    ovl_port *p = open_port(&r, N, 0);
    static int fds[N + 1];
    static uint8_t bufs[N][4096];
    for (int i = 0; i <= N; i++) fds[i] = temp_file(4 * 4096, 100u + (unsigned)i);
    for (int i = 0; i < N; i++) cr_assert_eq(ovl_register_fd(p, (ovl_fd)fds[i]), OVL_OK);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)fds[N]), OVL_ENOSPC, "the table is full");
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)fds[3]), OVL_EINVAL, "already registered");
    read_each(p, &r, fds, N, bufs, 0);
    for (int i = 0; i < N; i += 2) cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)fds[i]), OVL_OK);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)fds[N]), OVL_OK, "a freed slot is reused");
    read_each(p, &r, fds, N, bufs, 1);
    for (int i = 1; i < N; i += 2) cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)fds[i]), OVL_OK);
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)fds[N]), OVL_OK);
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)fds[1]), OVL_ENOENT, "not registered any more");
    read_each(p, &r, fds, N, bufs, 2);
    close_clean(p, &r);
    for (int i = 0; i <= N; i++) close(fds[i]);
}

/* Unregistering while reads on the fd are in flight does not disturb them,
 * and a write through a registered fd lands in that file. */
Test(file_io, registered_fd_unregistered_with_ops_in_flight)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, 0);
    int fd = temp_file(FILE_SIZE, 7);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)fd), OVL_OK);
    static uint8_t w[4096], back[4096];
    memset(w, 0xa5, sizeof w);
    uint64_t wid;
    cr_assert_eq(t_submit_write(p, (ovl_fd)fd, w, sizeof w, 8192, NULL, &wid), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, wid).result, (int64_t)sizeof w);
    cr_assert_eq(pread(fd, back, sizeof back, 8192), (long long)sizeof back);
    cr_assert_eq(memcmp(back, w, sizeof w), 0);
    enum { K = 32 };
    static uint8_t bufs[K][4096];
    uint64_t ids[K];
    for (int i = 0; i < K; i++)
        cr_assert_eq(
            t_submit_read(p, (ovl_fd)fd, bufs[i], 4096, (int64_t)(16 + i) * 4096, NULL, &ids[i]),
            OVL_OK);
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)fd), OVL_OK);
    rec_wait(&r, 1 + K);
    for (int i = 0; i < K; i++) {
        cr_assert_eq(rec_one(&r, ids[i]).result, 4096);
        cr_assert(matches_pattern(bufs[i], 4096, (uint64_t)(16 + i) * 4096, 7));
    }
    close_clean(p, &r);
    close(fd);
}

#ifndef _WIN32
/* The documented trap, which also shows that the port really reads through
 * the registered file: once the number names another file (dup2), reads
 * on it still reach the file that was registered until it is unregistered
 * (io_uring's fixed file, the threads backend's own duplicate). An fd that
 * is not open is refused. */
Test(file_io, registered_fd_keeps_its_file_until_unregistered)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    bool uring = true; /* both POSIX backends keep the registered file */
    int a = temp_file(4096, 11), b = temp_file(4096, 12);
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)a), OVL_OK);
    cr_assert_eq(dup2(b, a), a); /* the number a now names file b */
    static uint8_t buf[4096];
    uint64_t id;
    cr_assert_eq(t_submit_read(p, (ovl_fd)a, buf, sizeof buf, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, id).result, 4096);
    cr_assert(matches_pattern(buf, sizeof buf, 0, uring ? 11 : 12), "%s read the wrong file",
              ovl_backend_name(p));
    cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)a), OVL_OK);
    cr_assert_eq(t_submit_read(p, (ovl_fd)a, buf, sizeof buf, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, id).result, 4096);
    cr_assert(matches_pattern(buf, sizeof buf, 0, 12), "after unregistering: the file named now");
    int closed = dup(b);
    cr_assert_geq(closed, 0);
    close(closed); /* a number that is not open */
    cr_assert_eq(ovl_register_fd(p, (ovl_fd)closed), uring ? OVL_EBADF : OVL_OK);
    if (!uring) cr_assert_eq(ovl_unregister_fd(p, (ovl_fd)closed), OVL_OK);
    close_clean(p, &r);
    close(a);
    close(b);
}
#endif
