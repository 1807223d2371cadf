/* Guarantee 7: no hidden allocation on the hot path. This executable
 * interposes malloc/calloc/realloc (glibc's __libc_* underneath) and counts
 * calls while a window is open; after a warm-up, submitting and completing
 * thousands of ops (reads, writes, posts, stream ops, cancels) must allocate
 * nothing. Not built with sanitizers, whose allocators reject the
 * interposer (tests/CMakeLists.txt). */
#include "common.h"

#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static atomic_int counting;
static atomic_long allocs;

void *malloc(size_t n)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&allocs, 1);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&allocs, 1);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) atomic_fetch_add(&allocs, 1);
    return __libc_realloc(p, n);
}

static void workload(ovl_port *p, rec *r, int fd, int pfd[2], int rounds)
{
    static uint8_t buf[16][4096];
    for (int k = 0; k < rounds; k++) {
        size_t before = rec_count(r);
        ovl_request q[8];
        for (int i = 0; i < 8; i++) {
            ovl_request x = {OVL_OP_READ,       0,    (ovl_fd)fd, buf[i], 4096,
                             (int64_t)i * 4096, NULL, 0,          0};
            q[i] = x;
        }
        cr_assert_eq(ovl_submit(p, q, 8, NULL), OVL_OK);
        cr_assert_eq(ovl_submit_write(p, fd, buf[8], 4096, 65536, NULL, NULL), OVL_OK);
        cr_assert_eq(ovl_post(p, k, NULL, NULL), OVL_OK);
        ovl_request posts[2] = {{OVL_OP_POST, 0, 0, NULL, 0, k, NULL, 0, 0},
                                {OVL_OP_POST, 0, 0, NULL, 0, -k, NULL, 0, 0}};
        cr_assert_eq(ovl_submit(p, posts, 2, NULL), OVL_OK);
        cr_assert_geq(ovl_poll(p, 0), 0); /* delivery on this thread too */
        uint64_t parked;
        cr_assert_eq(ovl_submit_read(p, pfd[0], buf[9], 16, OVL_OFFSET_CURRENT, NULL, &parked),
                     OVL_OK);
        cr_assert_eq(ovl_submit_write(p, pfd[1], "x", 1, OVL_OFFSET_CURRENT, NULL, NULL), OVL_OK);
        rec_wait(r, before + 14);
        uint64_t idle;
        cr_assert_eq(ovl_submit_read(p, pfd[0], buf[10], 16, OVL_OFFSET_CURRENT, NULL, &idle),
                     OVL_OK);
        cr_assert_eq(ovl_cancel(p, idle), OVL_OK);
        rec_wait(r, before + 15);
    }
}

Test(no_alloc, steady_state_allocates_nothing)
{
    rec r;
    rec_init(&r);
    r.cap = 1 << 16; /* the recorder must not grow inside the window */
    r.items = realloc(r.items, r.cap * sizeof *r.items);
    ovl_port *p = open_port(&r, 64, 0);
    int fd = temp_file(1 << 17, 15);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    workload(p, &r, fd, pfd, 5); /* warm-up: lazily sized tables, TLS */
    atomic_store(&allocs, 0);
    atomic_store(&counting, 1);
    workload(p, &r, fd, pfd, 300);
    atomic_store(&counting, 0);
    long n = atomic_load(&allocs);
    cr_assert_eq(n, 0, "%ld allocations for %d ops", n, 300 * 15);
    close_clean(p, &r);
    close(fd);
    close(pfd[0]);
    close(pfd[1]);
}
