/* The bad-input table: each case returns its documented code, produces no
 * completion and leaves the other in-flight op (a parked pipe read)
 * undisturbed. */
#include "common.h"

typedef struct fixture {
    rec r;
    ovl_port *p;
    int fds[2];
    char parked_buf[4];
    uint64_t parked;
} fixture;

static void setup_fixture(fixture *f)
{
    rec_init(&f->r);
    f->p = open_port(&f->r, 8, 0);
    cr_assert_eq(pipe(f->fds), 0);
    cr_assert_eq(
        t_submit_read(f->p, f->fds[0], f->parked_buf, 4, OVL_OFFSET_CURRENT, NULL, &f->parked),
        OVL_OK);
}

/* The parked read still works, and the bad calls added nothing. */
static void finish_fixture(fixture *f)
{
    ovl_stats s = {.size = sizeof s};
    cr_assert_eq(ovl_port_stats(f->p, &s), OVL_OK);
    cr_assert_eq(s.submitted, 1u, "bad input was not accepted");
    cr_assert_eq(rec_count(&f->r), 0u, "bad input produced no completion");
    cr_assert_eq(write(f->fds[1], "ok", 2), 2);
    rec_wait(&f->r, 1);
    ovl_completion c = rec_one(&f->r, f->parked);
    cr_assert_eq(c.result, 2);
    cr_assert_eq(memcmp(f->parked_buf, "ok", 2), 0);
    close_clean(f->p, &f->r);
    close(f->fds[0]);
    close(f->fds[1]);
}

Test(bad_input, null_port)
{
    char b[4];
    uint64_t id = 3;
    ovl_fd efd;
    cr_assert_eq(t_submit_read(NULL, 0, b, 4, 0, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    cr_assert_eq(t_submit_write(NULL, 0, b, 4, 0, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(t_submit_fsync(NULL, 0, 0, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(t_submit_batch(NULL, NULL, 1, NULL), OVL_EINVAL);
    cr_assert_eq(t_post(NULL, 0, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(ovl_cancel(NULL, 1), OVL_EINVAL);
    cr_assert_eq(ovl_close_port(NULL), OVL_EINVAL);
    cr_assert_eq(ovl_associate(NULL, 0), OVL_EINVAL);
    cr_assert_eq(ovl_set_callback(NULL, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(ovl_poll(NULL, 0), OVL_EINVAL);
    cr_assert_eq(ovl_port_event(NULL, &efd), OVL_EINVAL);
    cr_assert_eq(ovl_register_fd(NULL, 3), OVL_EINVAL);
    cr_assert_eq(ovl_unregister_fd(NULL, 3), OVL_EINVAL);
}

Test(bad_input, null_buffer_with_length)
{
    fixture f;
    setup_fixture(&f);
    uint64_t id = 1;
    cr_assert_eq(t_submit_read(f.p, f.fds[0], NULL, 4, OVL_OFFSET_CURRENT, NULL, &id), OVL_EINVAL);
    cr_assert_eq(id, 0u);
    cr_assert_eq(t_submit_write(f.p, f.fds[1], NULL, 1, OVL_OFFSET_CURRENT, NULL, NULL),
                 OVL_EINVAL);
    finish_fixture(&f);
}

Test(bad_input, impossible_fd)
{
    fixture f;
    setup_fixture(&f);
    char b[4];
    cr_assert_eq(t_submit_read(f.p, (ovl_fd)-1, b, 4, 0, NULL, NULL), OVL_EBADF);
    cr_assert_eq(t_submit_read(f.p, (ovl_fd)1 << 40, b, 4, 0, NULL, NULL), OVL_EBADF);
    cr_assert_eq(t_submit_fsync(f.p, (ovl_fd)-1, 0, NULL, NULL), OVL_EBADF);
    cr_assert_eq(ovl_associate(f.p, (ovl_fd)-1), OVL_EBADF);
    cr_assert_eq(ovl_register_fd(f.p, (ovl_fd)-1), OVL_EBADF);
    cr_assert_eq(ovl_register_fd(f.p, (ovl_fd)1 << 40), OVL_EBADF);
    cr_assert_eq(ovl_unregister_fd(f.p, (ovl_fd)-1), OVL_ENOENT);
    finish_fixture(&f);
}

Test(bad_input, length_over_the_limit)
{
    fixture f;
    setup_fixture(&f);
    char b[4];
    cr_assert_eq(t_submit_read(f.p, f.fds[0], b, (size_t)OVL_MAX_IO_SIZE + 1, 0, NULL, NULL),
                 OVL_ETOOBIG);
    cr_assert_eq(t_submit_write(f.p, f.fds[1], b, SIZE_MAX, 0, NULL, NULL), OVL_ETOOBIG);
    finish_fixture(&f);
}

Test(bad_input, negative_offset)
{
    fixture f;
    setup_fixture(&f);
    char b[4];
    cr_assert_eq(t_submit_read(f.p, f.fds[0], b, 4, -2, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(t_submit_write(f.p, f.fds[1], b, 4, INT64_MIN, NULL, NULL), OVL_EINVAL);
    cr_assert_eq(t_submit_read(f.p, f.fds[0], b, 4, INT64_MAX - 1, NULL, NULL), OVL_EFBIG);
    finish_fixture(&f);
}

Test(bad_input, bad_requests_in_a_batch)
{
    fixture f;
    setup_fixture(&f);
    char b[4];
    ovl_request q = {99, 0, (ovl_fd)f.fds[0], b, 4, 0, NULL, 0, 0};
    size_t done = 7;
    cr_assert_eq(t_submit_batch(f.p, &q, 1, &done), OVL_EINVAL, "unknown op");
    cr_assert_eq(done, 0u);
    q.op = OVL_OP_POST;
    cr_assert_eq(t_submit_batch(f.p, &q, 1, &done), OVL_EINVAL,
                 "a post with an fd, buffer and length");
    q.op = OVL_OP_READ;
    q.flags = 1;
    cr_assert_eq(t_submit_batch(f.p, &q, 1, &done), OVL_EINVAL, "flags on a read");
    q.op = OVL_OP_FSYNC;
    q.flags = 0x40;
    cr_assert_eq(t_submit_batch(f.p, &q, 1, &done), OVL_EINVAL, "bad fsync flags");
    cr_assert_eq(t_submit_batch(f.p, NULL, 3, &done), OVL_EINVAL);
    finish_fixture(&f);
}

Test(bad_input, cancel_unknown_and_double_close)
{
    fixture f;
    setup_fixture(&f);
    cr_assert_eq(ovl_cancel(f.p, 12345), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(f.p, f.parked + 1), OVL_ENOENT);
    cr_assert_eq(ovl_cancel(f.p, f.parked ^ (1ull << 40)), OVL_ENOENT);
    finish_fixture(&f);
    cr_assert_eq(ovl_close_port(f.p), OVL_ECLOSED, "double close");
}

Test(bad_input, zero_length_with_null_buffer_is_fine)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 4, 0);
    int fd = temp_file(8, 1);
    uint64_t id;
    cr_assert_eq(t_submit_read(p, fd, NULL, 0, 0, NULL, &id), OVL_OK);
    rec_wait(&r, 1);
    cr_assert_eq(rec_one(&r, id).result, 0);
    close_clean(p, &r);
    close(fd);
}
