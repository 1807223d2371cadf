/* test_fork.c - a port belongs to the process that created it. A child of
 * fork() that touches an inherited port gets OVL_EFORKED (close frees its
 * copy), can make ports of its own, and never disturbs the parent's port:
 * the parent's ops complete exactly once and nothing is run twice. The
 * parent is multithreaded and busy while it forks. POSIX only. */
#include "common.h"

#include <sys/stat.h>
#include <sys/wait.h>

#if defined(__SANITIZE_THREAD__)
#  define UNDER_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define UNDER_TSAN 1
#  endif
#endif

static const uint32_t modes[] = {0, OVL_PORT_MANUAL, TEST_SAP};

typedef struct busy {
    ovl_port *p;
    uint32_t flags;
    rec *r;
    atomic_int stop;
    atomic_long accepted;
    pthread_t th[2];
} busy;

/* Posts as fast as the queue allows; on a manual port also delivers. */
static void *busy_main(void *arg)
{
    busy *b = arg;
    while (!atomic_load(&b->stop)) {
        int32_t rc = t_post(b->p, 1, NULL, NULL);
        if (rc == OVL_OK) atomic_fetch_add(&b->accepted, 1);
        else if (rc != OVL_EQUEUEFULL) return (void *)1;
        if (b->flags & OVL_PORT_MANUAL) (void)ovl_poll(b->p, 0);
    }
    return NULL;
}

/* Runs in the child: every check's failure is its line number as the exit
 * status (0: all good). Only async-signal-safe-ish work and ovl calls. */
static int child_checks(ovl_port *p, int pipe_rd, int file_fd)
{
#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if (!(x)) return __LINE__ % 250 + 1;                                                           \
  } while (0)
    char buf[16];
    uint64_t id = 99;
    CHECK(t_post(p, 1, NULL, &id) == OVL_EFORKED);
    CHECK(id == 0);
    CHECK(t_submit_read(p, (ovl_fd)pipe_rd, buf, sizeof buf, OVL_OFFSET_CURRENT, NULL, NULL) ==
          OVL_EFORKED);
    CHECK(t_submit_write(p, (ovl_fd)file_fd, "zz", 2, 0, NULL, NULL) == OVL_EFORKED);
    ovl_request req = {OVL_OP_POST, 0, 0, NULL, 0, 5, NULL, 0, 0};
    size_t done = 7;
    CHECK(t_submit_batch(p, &req, 1, &done) == OVL_EFORKED && done == 0);
    CHECK(ovl_cancel(p, 1) == OVL_EFORKED);
    CHECK(ovl_poll(p, 0) == OVL_EFORKED);
    ovl_stats s = {.size = sizeof s};
    CHECK(ovl_port_stats(p, &s) == OVL_EFORKED);
    CHECK(ovl_register_fd(p, (ovl_fd)file_fd) == OVL_EFORKED);
    CHECK(ovl_close_port(p) == OVL_OK);
    CHECK(ovl_close_port(p) == OVL_ECLOSED);
    CHECK(t_post(p, 1, NULL, NULL) == OVL_ECLOSED);
#ifndef UNDER_TSAN /* TSan forbids new threads after a multithreaded fork */
    /* A port of its own works: read the file's first bytes through it. */
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.flags = OVL_PORT_MANUAL;
    ovl_port *q = NULL;
    CHECK(ovl_create_port(&cfg, &q) == OVL_OK);
    CHECK(q != p);
    uint64_t rid;
    CHECK(t_submit_read(q, (ovl_fd)file_fd, buf, 4, 0, NULL, &rid) == OVL_OK);
    int got = 0;
    for (int i = 0; i < 1000 && got == 0; i++) got = ovl_poll(q, 100);
    CHECK(got == 1);
    CHECK(memcmp(buf, "rec0", 4) == 0);
    CHECK(ovl_close_port(q) == OVL_OK);
#endif
    return 0;
#undef CHECK
}

static void wait_all(busy *b, rec *r, size_t n)
{
    if (!(b->flags & OVL_PORT_MANUAL)) {
        rec_wait(r, n);
        return;
    }
    for (int i = 0; i < WAIT_LIMIT_MS / 10 && rec_count(r) < n; i++) ovl_poll(b->p, 10);
    cr_assert_geq(rec_count(r), n, "completions never came");
}

Test(fork, child_cannot_disturb_the_parents_port)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        rec r;
        rec_init(&r);
        ovl_port *p = open_port(&r, 64, modes[m]);
        busy b = {.p = p, .flags = modes[m], .r = &r};
        /* 64 records written through the port and completed. */
        int fd = temp_file(0, 0);
        char recs[64][16];
        uint64_t wids[64];
        for (int i = 0; i < 64; i++) {
            snprintf(recs[i], sizeof recs[i], "rec%-12d", i);
            /* Full: wait for one more completion than were counted before
             * the try (as rec_wait_id does). A slot is free again before
             * its completion is counted, so every slot the try found taken
             * holds an op still to be counted; counted after the try, the
             * last of them could land in between and be waited for again. */
            int32_t rc;
            for (;;) {
                size_t seen = rec_count(&r);
                rc = t_submit_write(p, (ovl_fd)fd, recs[i], 16, (int64_t)i * 16, NULL, &wids[i]);
                if (rc != OVL_EQUEUEFULL) break;
                wait_all(&b, &r, seen + 1);
            }
            cr_assert_eq(rc, OVL_OK);
        }
        wait_all(&b, &r, 64);
        /* 16 reads parked on an empty pipe across the fork. */
        int pfd[2];
        cr_assert_eq(pipe(pfd), 0);
        char rb[16];
        uint64_t rids[16];
        for (int i = 0; i < 16; i++)
            cr_assert_eq(
                t_submit_read(p, (ovl_fd)pfd[0], &rb[i], 1, OVL_OFFSET_CURRENT, NULL, &rids[i]),
                OVL_OK);
        /* Busy while forking. */
        for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&b.th[i], NULL, busy_main, &b), 0);
        while (atomic_load(&b.accepted) < 100) usleep(100);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) _exit(child_checks(p, pfd[0], fd));
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st), "the child died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        cr_assert_eq(WEXITSTATUS(st), 0, "%s: child check failed near line %d", test_backend(),
                     WEXITSTATUS(st) - 1);
        atomic_store(&b.stop, 1);
        for (int i = 0; i < 2; i++) {
            void *ret;
            pthread_join(b.th[i], &ret);
            cr_assert_null(ret, "a busy thread's post failed");
        }
        /* The parent's port still works: every post and the parked reads
         * complete (one byte each), exactly once (close_check). */
        size_t base = 64 + (size_t)atomic_load(&b.accepted);
        wait_all(&b, &r, base);
        for (int i = 0; i < 16; i++) {
            cr_assert_eq(write(pfd[1], "x", 1), 1);
            wait_all(&b, &r, base + (size_t)i + 1);
        }
        for (int i = 0; i < 16; i++) cr_assert_eq(rec_one(&r, rids[i]).result, 1);
        /* Nothing replays: after truncation and a round trip through the
         * port the file stays empty. */
        cr_assert_eq(ftruncate(fd, 0), 0);
        uint64_t pid2;
        cr_assert_eq(t_post(p, 3, NULL, &pid2), OVL_OK);
        wait_all(&b, &r, base + 17);
        struct stat sb;
        cr_assert_eq(fstat(fd, &sb), 0);
        cr_assert_eq(sb.st_size, 0, "writes ran again after the fork");
        close_clean(p, &r);
        close(fd);
        close(pfd[0]);
        close(pfd[1]);
    }
}
