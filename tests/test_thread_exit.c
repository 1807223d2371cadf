/* Guarantee 1 across thread exits, for regular files: a read or write whose
 * submitting thread exits at once completes with its data, exactly once.
 * The file is evicted from the page cache first, so the I/O has to wait for
 * the disk: on io_uring a buffered read that waits for a page is finished
 * by task work of the thread whose io_uring_enter issued it, which by then
 * has exited (the kernel fails it with -EFAULT; ovl must issue it again).
 * And the other way round: a read into a bad address still completes with
 * OVL_EFAULT, once, whichever thread issued it. */
#include "common.h"

#include <sys/mman.h>

#define CHUNK (1u << 20)
#define NCHUNKS 24u

typedef struct exiter {
    ovl_port *p;
    ovl_request req;
    int32_t rc;
} exiter;

static void *submit_then_exit(void *arg)
{
    exiter *e = arg;
    size_t done = 0;
    e->rc = t_submit_batch(e->p, &e->req, 1, &done);
    return NULL;
}

/* Wait for n completions: ovl_poll on a manual port, else the callback. */
static void wait_all(ovl_port *p, rec *r, size_t n, uint32_t flags)
{
    if (!(flags & OVL_PORT_MANUAL)) {
        rec_wait(r, n);
        return;
    }
    uint64_t end = (uint64_t)time(NULL) + WAIT_LIMIT_MS / 1000;
    while (rec_count(r) < n) {
        cr_assert_geq(ovl_poll(p, 100), 0);
        cr_assert_lt((uint64_t)time(NULL), end, "waited for %zu completions, got %zu", n,
                     rec_count(r));
    }
}

/* Make every page of fd cold: written back, then dropped from the cache. */
static void evict(int fd)
{
    cr_assert_eq(fdatasync(fd), 0);
    cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
}

/* One thread per op, each gone before anything is waited for. */
static void submit_from_exiting_threads(exiter *ex, size_t n)
{
    pthread_t th[NCHUNKS];
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, submit_then_exit, &ex[i]), 0);
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(ex[i].rc, OVL_OK, "submit: %s", ovl_error_name(ex[i].rc));
    }
}

static void cold_reads(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, flags);
    int fd = temp_file((size_t)CHUNK * NCHUNKS, 41);
    evict(fd);
    uint8_t *buf = malloc((size_t)CHUNK * NCHUNKS);
    cr_assert_not_null(buf);
    exiter ex[NCHUNKS];
    for (uint32_t i = 0; i < NCHUNKS; i++) {
        ovl_request q = {
            OVL_OP_READ, 0, (ovl_fd)fd, buf + (size_t)i * CHUNK, CHUNK, (int64_t)i * CHUNK,
            NULL,        0, 0};
        ex[i] = (exiter){p, q, 1};
    }
    submit_from_exiting_threads(ex, NCHUNKS);
    wait_all(p, &r, NCHUNKS, flags);
    for (uint32_t i = 0; i < NCHUNKS; i++) {
        ovl_completion c = rec_one(&r, ex[i].req.id);
        cr_assert_eq(c.result, (int64_t)CHUNK, "read %u: %lld (%s)", i, (long long)c.result,
                     c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
        cr_assert(matches_pattern(buf + (size_t)i * CHUNK, CHUNK, (uint64_t)i * CHUNK, 41),
                  "read %u: wrong data", i);
    }
    close_clean(p, &r);
    free(buf);
    close(fd);
}

Test(thread_exit, cold_reads_outlive_their_threads) { cold_reads(0); }
Test(thread_exit, cold_reads_outlive_their_threads_sap) { cold_reads(TEST_SAP); }
Test(thread_exit, cold_reads_outlive_their_threads_manual) { cold_reads(OVL_PORT_MANUAL); }

/* Writes that do not start or end on a page boundary into a cold file: the
 * kernel must read the partial pages first. */
static void cold_writes(uint32_t flags)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 64, flags);
    size_t size = (size_t)CHUNK * (NCHUNKS + 1);
    int fd = temp_file(size, 42);
    evict(fd);
    const uint32_t skew = 100; /* off the page boundaries */
    uint8_t *src = malloc((size_t)CHUNK * NCHUNKS);
    cr_assert_not_null(src);
    for (size_t k = 0; k < (size_t)CHUNK * NCHUNKS; k++) src[k] = pattern_at(k + skew, 43);
    exiter ex[NCHUNKS];
    for (uint32_t i = 0; i < NCHUNKS; i++) {
        ovl_request q = {
            OVL_OP_WRITE, 0, (ovl_fd)fd, src + (size_t)i * CHUNK, CHUNK, (int64_t)i * CHUNK + skew,
            NULL,         0, 0};
        ex[i] = (exiter){p, q, 1};
    }
    submit_from_exiting_threads(ex, NCHUNKS);
    wait_all(p, &r, NCHUNKS, flags);
    for (uint32_t i = 0; i < NCHUNKS; i++) {
        ovl_completion c = rec_one(&r, ex[i].req.id);
        cr_assert_eq(c.result, (int64_t)CHUNK, "write %u: %lld (%s)", i, (long long)c.result,
                     c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
    }
    close_clean(p, &r);
    /* What is on file: the old pattern around the written range, the new
     * one inside it. */
    uint8_t *got = malloc(size);
    cr_assert_not_null(got);
    cr_assert_eq(pread(fd, got, size, 0), (ssize_t)size);
    cr_assert(matches_pattern(got, skew, 0, 42));
    cr_assert(matches_pattern(got + skew, (size_t)CHUNK * NCHUNKS, skew, 43));
    size_t tail = skew + (size_t)CHUNK * NCHUNKS;
    cr_assert(matches_pattern(got + tail, size - tail, tail, 42));
    free(got);
    free(src);
    close(fd);
}

Test(thread_exit, cold_writes_outlive_their_threads) { cold_writes(0); }
Test(thread_exit, cold_writes_outlive_their_threads_sap) { cold_writes(TEST_SAP); }
Test(thread_exit, cold_writes_outlive_their_threads_manual) { cold_writes(OVL_PORT_MANUAL); }

/* A read into memory that is not mapped: OVL_EFAULT, exactly once, from a
 * warm and from a cold file, submitted by this thread or by one that exits
 * at once. (Re-issuing what a thread's exit failed must not turn a genuine
 * EFAULT into a loop or a success.) */
static void bad_address(uint32_t flags, bool cold, bool exiting)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, flags);
    int fd = temp_file(65536, 44);
    if (cold) evict(fd);
    long pg = sysconf(_SC_PAGESIZE);
    void *hole = mmap(NULL, (size_t)pg * 4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(hole, MAP_FAILED);
    ovl_request q = {OVL_OP_READ, 0, (ovl_fd)fd, hole, (uint64_t)pg * 4, 0, NULL, 0, 0};
    exiter ex = {p, q, 1};
    if (exiting) {
        submit_from_exiting_threads(&ex, 1);
    } else {
        submit_then_exit(&ex);
        cr_assert_eq(ex.rc, OVL_OK);
    }
    wait_all(p, &r, 1, flags);
    ovl_completion c = rec_one(&r, ex.req.id);
    cr_assert_eq(c.result, OVL_EFAULT, "%lld (%s)", (long long)c.result,
                 c.result < 0 ? ovl_error_name((int32_t)c.result) : "bytes");
    close_clean(p, &r);
    munmap(hole, (size_t)pg * 4);
    close(fd);
}

Test(thread_exit, bad_address_is_efault_once)
{
    const uint32_t modes[] = {0, TEST_SAP, OVL_PORT_MANUAL};
    for (size_t m = 0; m < 3; m++)
        for (int cold = 0; cold < 2; cold++)
            for (int exiting = 0; exiting < 2; exiting++) bad_address(modes[m], cold, exiting);
}
