/* Stream fds: pipes and a socketpair with OVL_OFFSET_CURRENT. */
#include "common.h"

#ifndef _WIN32
#  include <signal.h>
#  include <sys/socket.h>
#endif

Test(stream, pipe_read_waits_for_data)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char buf[32] = {0};
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, buf, &id), OVL_OK);
    round_trip(p, &r);
    int c;
    cr_assert_null(rec_find(&r, id, &c), "no data yet, no completion");
    cr_assert_eq(write(fds[1], "hello", 5), 5);
    rec_wait(&r, 2);
    ovl_completion done = rec_one(&r, id);
    cr_assert_eq(done.result, 5);
    cr_assert_eq(done.ctx, buf);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}

Test(stream, pipe_write_then_eof)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    uint64_t w, rd;
    cr_assert_eq(t_submit_write(p, fds[1], "abc", 3, OVL_OFFSET_CURRENT, NULL, &w), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, w).result, 3);
    char back[3];
    cr_assert_eq(read(fds[0], back, 3), 3);
    cr_assert_eq(memcmp(back, "abc", 3), 0);
    char buf[8];
    cr_assert_eq(t_submit_read(p, fds[0], buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, &rd), OVL_OK);
    close(fds[1]);
    rec_wait(&r, 2);
    cr_assert_eq(rec_one(&r, rd).result, 0, "EOF on a pipe is result 0");
    close_clean(p, &r);
    close(fds[0]);
}

Test(stream, pipe_without_reader_is_epipe)
{
#ifndef _WIN32
    signal(SIGPIPE, SIG_IGN);
#endif
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    close(fds[0]);
    uint64_t id;
    cr_assert_eq(t_submit_write(p, fds[1], "x", 1, OVL_OFFSET_CURRENT, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    ovl_completion c = rec_one(&r, id);
    cr_assert_eq(c.result, OVL_EPIPE);
#ifndef _WIN32
    cr_assert_eq(c.os_error, EPIPE);
#endif
    close_clean(p, &r);
    close(fds[1]);
}

#ifndef _WIN32 /* socketpair: tests/windows has the Windows socket cases */
Test(stream, socketpair_both_ways)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 16, 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(ovl_associate(p, sv[0]), OVL_OK);
    cr_assert_eq(ovl_associate(p, sv[1]), OVL_OK);
    char in0[16] = {0}, in1[16] = {0};
    uint64_t r0, r1, w0, w1;
    cr_assert_eq(t_submit_read(p, sv[0], in0, sizeof in0, OVL_OFFSET_CURRENT, NULL, &r0), OVL_OK);
    cr_assert_eq(t_submit_read(p, sv[1], in1, sizeof in1, OVL_OFFSET_CURRENT, NULL, &r1), OVL_OK);
    cr_assert_eq(t_submit_write(p, sv[0], "ping", 4, OVL_OFFSET_CURRENT, NULL, &w0), OVL_OK);
    cr_assert_eq(t_submit_write(p, sv[1], "pong!", 5, OVL_OFFSET_CURRENT, NULL, &w1), OVL_OK);
    rec_wait(&r, 4);
    cr_assert_eq(rec_one(&r, w0).result, 4);
    cr_assert_eq(rec_one(&r, w1).result, 5);
    cr_assert_eq(rec_one(&r, r1).result, 4);
    cr_assert_eq(rec_one(&r, r0).result, 5);
    cr_assert_str_eq(in1, "ping");
    cr_assert_str_eq(in0, "pong!");
    /* peer closes: EOF */
    uint64_t r2;
    cr_assert_eq(t_submit_read(p, sv[0], in0, sizeof in0, OVL_OFFSET_CURRENT, NULL, &r2), OVL_OK);
    shutdown(sv[1], SHUT_WR);
    rec_wait(&r, 5);
    cr_assert_eq(rec_one(&r, r2).result, 0);
    close_clean(p, &r);
    close(sv[0]);
    close(sv[1]);
}

#endif

Test(stream, idle_pipes_do_not_hold_workers)
{
    /* One worker thread for the threads backend: three reads parked on idle
     * pipes must not stop a file read from completing. */
    rec r;
    rec_init(&r);
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.queue_depth = 8;
    cfg.threads = 1;
    ovl_port *p = open_port_cfg(&r, &cfg);
    int pf[3][2];
    char pb[3][4];
    uint64_t pid[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pipe(pf[i]), 0);
        cr_assert_eq(t_submit_read(p, pf[i][0], pb[i], 4, OVL_OFFSET_CURRENT, NULL, &pid[i]),
                     OVL_OK);
    }
    int fd = temp_file(4096, 7);
    char buf[4096];
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fd, buf, sizeof buf, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, id).result, 4096);
    for (int i = 0; i < 3; i++) cr_assert_eq(write(pf[i][1], "go", 2), 2);
    rec_wait(&r, 4);
    for (int i = 0; i < 3; i++) cr_assert_eq(rec_one(&r, pid[i]).result, 2);
    close_clean(p, &r);
    for (int i = 0; i < 3; i++) {
        close(pf[i][0]);
        close(pf[i][1]);
    }
    close(fd);
}

struct wa {
    int fd;
    const char *b;
    size_t n;
};

static void *writer(void *arg)
{
    struct wa *a = arg;
    size_t off = 0;
    while (off < a->n) {
        ssize_t w = write(a->fd, a->b + off, a->n - off > 5000 ? 5000 : a->n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    return NULL;
}

Test(stream, many_sequential_reads_keep_order_of_bytes)
{
    /* One read at a time on a pipe: concatenated results equal the stream. */
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 4, 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    static char src[100000];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (char)pattern_at(i, 8);
    pthread_t th;
    struct wa a = {fds[1], src, sizeof src};
    cr_assert_eq(pthread_create(&th, NULL, writer, &a), 0);
    static char dst[sizeof src];
    size_t got = 0;
    while (got < sizeof src) {
        uint64_t id;
        size_t before = rec_count(&r);
        cr_assert_eq(t_submit_read(p, fds[0], dst + got,
                                   sizeof src - got < 7777 ? sizeof src - got : 7777,
                                   OVL_OFFSET_CURRENT, NULL, &id),
                     OVL_OK);
        rec_wait(&r, before + 1);
        ovl_completion c = rec_one(&r, id);
        cr_assert_gt(c.result, 0);
        got += (size_t)c.result;
    }
    pthread_join(th, NULL);
    cr_assert_eq(memcmp(src, dst, sizeof src), 0);
    close_clean(p, &r);
    close(fds[0]);
    close(fds[1]);
}

#ifndef _WIN32
/* io_uring cancels a request when the thread whose io_uring_enter issued it
 * exits. A thread that submits a read on an empty pipe and then ends must
 * not take the read with it: the library issues it again, and it completes
 * with the data that comes later (never an OVL_ECANCELED nobody asked for).
 * In the mode under test, and with the read submitted through
 * ovl_submit_and_poll on a port with a completion thread. */
typedef struct exiting_submitter {
    ovl_port *p;
    int fd;
    uint8_t *buf;
    uint64_t id;
    int32_t rc;
} exiting_submitter;

static void *submit_and_exit(void *arg)
{
    exiting_submitter *e = arg;
    e->rc = t_submit_read(e->p, (ovl_fd)e->fd, e->buf, 5, OVL_OFFSET_CURRENT, NULL, &e->id);
    return NULL;
}

static void read_outlives_its_thread(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    static uint8_t buf[8];
    exiting_submitter e = {p, pfd[0], buf, 0, 1};
    pthread_t th;
    pthread_create(&th, NULL, submit_and_exit, &e);
    pthread_join(th, NULL); /* the submitting thread is gone */
    cr_assert_eq(e.rc, OVL_OK);
    /* A post round trip: the port has seen the exit's cancellation, if any. */
    round_trip(p, &r);
    cr_assert_eq(write(pfd[1], "hello", 5), 5);
    rec_wait(&r, 2);
    ovl_completion c = rec_one(&r, e.id);
    cr_assert_eq(c.result, 5, "%lld (%s)", (long long)c.result,
                 c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close_clean(p, &r);
    close(pfd[0]);
    close(pfd[1]);
}

Test(stream, read_outlives_the_thread_that_submitted_it) { read_outlives_its_thread(0); }
Test(stream, read_outlives_the_thread_that_submitted_it_sap) { read_outlives_its_thread(TEST_SAP); }
#endif
