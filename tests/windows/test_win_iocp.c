/* test_win_iocp.c - what only the IOCP backend has to prove: named pipes
 * and sockets as stream handles, positional I/O above 4 GiB, EOF in both
 * forms, the synchronous-completion path with and without
 * FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, a handle the OS rejects at submit,
 * cancel and close with I/O pending. Every test ends with close_clean():
 * nothing in flight, every op delivered exactly once, no stale packet.
 * These tests call ovl_associate themselves (no automatic association). */
#include "../common.h"

#include <mswsock.h>

/* ---- helpers -------------------------------------------------------------- */

static ovl_port *iocp_port(rec *r, uint32_t depth)
{
    rec_init(r);
    ovl_port *p = open_port(r, depth, 0);
    cr_assert_str_eq(ovl_backend_name(p), "iocp");
    return p;
}

static void assoc(ovl_port *p, HANDLE h)
{
    int32_t rc = ovl_associate(p, (ovl_fd)(uintptr_t)h);
    cr_assert_eq(rc, OVL_OK, "ovl_associate: %s", ovl_strerror(rc));
}

/* An overlapped byte-mode named-pipe pair, both ends usable both ways. */
static void duplex_pipe(HANDLE *server, HANDLE *client)
{
    static LONG seq;
    wchar_t name[128];
    swprintf(name, 128, L"\\\\.\\pipe\\ovl-win-%lu-%ld", GetCurrentProcessId(),
             InterlockedIncrement(&seq));
    *server = CreateNamedPipeW(
        name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 65536, 65536, 0, NULL);
    cr_assert_neq(*server, INVALID_HANDLE_VALUE, "CreateNamedPipe: %lu", GetLastError());
    *client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                          FILE_FLAG_OVERLAPPED, NULL);
    cr_assert_neq(*client, INVALID_HANDLE_VALUE, "CreateFile(pipe): %lu", GetLastError());
}

/* A connected TCP pair over loopback; both sockets overlapped (socket()
 * makes overlapped sockets). */
static void tcp_pair(SOCKET *a, SOCKET *b)
{
    WSADATA wsa;
    cr_assert_eq(WSAStartup(MAKEWORD(2, 2), &wsa), 0);
    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    cr_assert_neq(l, INVALID_SOCKET);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(l, 1), 0);
    int len = sizeof sa;
    cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    cr_assert_neq(*a, INVALID_SOCKET);
    cr_assert_eq(connect(*a, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %d",
                 WSAGetLastError());
    *b = accept(l, NULL, NULL);
    cr_assert_neq(*b, INVALID_SOCKET);
    closesocket(l);
}

static HANDLE temp_handle(void)
{
    int fd = mkstemp(NULL);
    cr_assert_geq(fd, 0, "temp file: %lu", GetLastError());
    return (HANDLE)(intptr_t)fd;
}

/* Wait for the completion of `id` and return it (exactly once). */
static ovl_completion wait_id(rec *r, uint64_t id)
{
    rec_wait_id(r, id);
    return rec_one(r, id);
}

/* ---- tests ---------------------------------------------------------------- */

Test(win, backend_is_iocp_and_auto)
{
    uint32_t be = 0;
    const char *why = ovl_backend_reason(&be);
    cr_assert_not_null(why);
    cr_assert_eq(be, OVL_BACKEND_IOCP);
    rec r;
    ovl_port *p = iocp_port(&r, 8);
    ovl_port_config cfg;
    ovl_port_config_init(&cfg, sizeof cfg);
    cfg.backend = OVL_BACKEND_URING;
    ovl_port *q = NULL;
    cr_assert_eq(ovl_create_port(&cfg, &q), OVL_EUNAVAIL);
    cfg.backend = OVL_BACKEND_THREADS;
    cr_assert_eq(ovl_create_port(&cfg, &q), OVL_EUNAVAIL);
    close_clean(p, &r);
}

Test(win, named_pipe_pending_read_then_sync_write, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 16);
    HANDLE s, c;
    duplex_pipe(&s, &c);
    assoc(p, s);
    assoc(p, c);

    char in[16] = {0};
    uint64_t rid, wid;
    /* Nothing written yet: the read must pend. */
    cr_assert_eq(
        ovl_submit_read(p, (ovl_fd)(uintptr_t)s, in, sizeof in, OVL_OFFSET_CURRENT, in, &rid),
        OVL_OK);
    /* A pipe write with room in the buffer completes synchronously (on
     * Windows and wine): the marker path. */
    cr_assert_eq(
        ovl_submit_write(p, (ovl_fd)(uintptr_t)c, "hello", 5, OVL_OFFSET_CURRENT, NULL, &wid),
        OVL_OK);
    ovl_completion w = wait_id(&r, wid);
    cr_assert_eq(w.result, 5);
    cr_assert_eq(w.op, OVL_OP_WRITE);
    ovl_completion rd = wait_id(&r, rid);
    cr_assert_eq(rd.result, 5);
    cr_assert_eq(rd.ctx, in);
    cr_assert_eq(memcmp(in, "hello", 5), 0);

    /* And the other direction. */
    cr_assert_eq(
        ovl_submit_write(p, (ovl_fd)(uintptr_t)s, "world!", 6, OVL_OFFSET_CURRENT, NULL, &wid),
        OVL_OK);
    cr_assert_eq(
        ovl_submit_read(p, (ovl_fd)(uintptr_t)c, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
        OVL_OK);
    cr_assert_eq(wait_id(&r, wid).result, 6);
    cr_assert_eq(wait_id(&r, rid).result, 6);
    cr_assert_eq(memcmp(in, "world!", 6), 0);
    close_clean(p, &r);
    CloseHandle(s);
    CloseHandle(c);
}

/* Many synchronous writes: every one exactly once, no stale packet, with
 * the port's own packet arriving (default) or skipped (skip mode). */
static void sync_writes(bool skip)
{
    rec r;
    ovl_port *p = iocp_port(&r, 64);
    HANDLE s, c;
    duplex_pipe(&s, &c);
    assoc(p, s);
    assoc(p, c);
    if (skip) {
        cr_assert(SetFileCompletionNotificationModes(c, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                            FILE_SKIP_SET_EVENT_ON_HANDLE),
                  "SetFileCompletionNotificationModes: %lu", GetLastError());
    }
    enum { N = 200 };
    static char msg[N][8];
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(msg[i], sizeof msg[i], "m%06d", i);
        int32_t rc;
        /* Back-pressure is the documented answer when the completion
         * thread lags (a loaded machine): back off, then retry. */
        for (int tries = 0;
             (rc = ovl_submit_write(p, (ovl_fd)(uintptr_t)c, msg[i], 8, OVL_OFFSET_CURRENT, NULL,
                                    &ids[i])) == OVL_EQUEUEFULL &&
             tries < WAIT_LIMIT_MS;
             tries++)
            Sleep(1);
        cr_assert_eq(rc, OVL_OK);
        /* Drain as we go so the pipe buffer never fills. */
        char back[8];
        cr_assert_eq(read((int)(intptr_t)s, back, 8), 8);
        cr_assert_eq(memcmp(back, msg[i], 8), 0);
    }
    rec_wait(&r, N);
    for (int i = 0; i < N; i++) cr_assert_eq(rec_one(&r, ids[i]).result, 8);
    close_clean(p, &r);
    CloseHandle(s);
    CloseHandle(c);
}

Test(win, sync_completion_without_skip_mode, .timeout = 60) { sync_writes(false); }
Test(win, sync_completion_with_skip_on_success, .timeout = 60) { sync_writes(true); }

/* A port, a named-pipe pair with the server end bound to it, and a read
 * pending on that end (nothing has been written). */
static ovl_port *port_with_pending_read(rec *r, HANDLE *s, HANDLE *c, char *b, size_t n,
                                        uint64_t *id)
{
    ovl_port *p = iocp_port(r, 8);
    duplex_pipe(s, c);
    assoc(p, *s);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)*s, b, n, OVL_OFFSET_CURRENT, NULL, id),
                 OVL_OK);
    return p;
}

Test(win, pipe_eof_when_writer_closes, .timeout = 30)
{
    rec r;
    HANDLE s, c;
    char b[8];
    uint64_t id;
    ovl_port *p = port_with_pending_read(&r, &s, &c, b, sizeof b, &id);
    CloseHandle(c); /* pending read -> ERROR_BROKEN_PIPE -> EOF */
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, 0, "pending read at writer close: %lld (%s), os %d", (long long)x.result,
                 ovl_strerror((int32_t)x.result), x.os_error);
    /* A read after the writer is gone fails at once: synchronous EOF. */
    cr_assert_eq(
        ovl_submit_read(p, (ovl_fd)(uintptr_t)s, b, sizeof b, OVL_OFFSET_CURRENT, NULL, &id),
        OVL_OK);
    cr_assert_eq(wait_id(&r, id).result, 0);
    close_clean(p, &r);
    CloseHandle(s);
}

Test(win, pipe_write_without_reader_is_epipe, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 8);
    HANDLE s, c;
    duplex_pipe(&s, &c);
    assoc(p, c);
    CloseHandle(s);
    uint64_t id;
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)(uintptr_t)c, "x", 1, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_OK);
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EPIPE, "%s", ovl_strerror((int32_t)x.result));
    cr_assert_neq(x.os_error, 0);
    close_clean(p, &r);
    CloseHandle(c);
}

Test(win, socket_stream_both_ways_and_eof, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 16);
    SOCKET a, b;
    tcp_pair(&a, &b);
    assoc(p, (HANDLE)a);
    assoc(p, (HANDLE)b);
    char in[64] = {0};
    uint64_t rid, wid;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)b, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
                 OVL_OK);
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)a, "over tcp", 8, OVL_OFFSET_CURRENT, NULL, &wid),
                 OVL_OK);
    cr_assert_eq(wait_id(&r, wid).result, 8);
    ovl_completion x = wait_id(&r, rid);
    cr_assert_gt(x.result, 0);
    cr_assert_leq(x.result, 8);
    size_t got = (size_t)x.result;
    while (got < 8) { /* a stream may split; read the rest */
        cr_assert_eq(ovl_submit_read(p, (ovl_fd)b, in + got, sizeof in - got, OVL_OFFSET_CURRENT,
                                     NULL, &rid),
                     OVL_OK);
        x = wait_id(&r, rid);
        cr_assert_gt(x.result, 0);
        got += (size_t)x.result;
    }
    cr_assert_eq(memcmp(in, "over tcp", 8), 0);

    /* Orderly shutdown by the peer: a read completes with 0 (EOF). */
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)b, in, sizeof in, OVL_OFFSET_CURRENT, NULL, &rid),
                 OVL_OK);
    cr_assert_eq(shutdown(a, SD_SEND), 0);
    x = wait_id(&r, rid);
    cr_assert_eq(x.result, 0, "%lld %s os %d", (long long)x.result, ovl_strerror((int32_t)x.result),
                 x.os_error);
    close_clean(p, &r);
    closesocket(a);
    closesocket(b);
}

Test(win, file_offsets_above_4gib, .timeout = 60)
{
    rec r;
    ovl_port *p = iocp_port(&r, 16);
    HANDLE h = temp_handle();
    assoc(p, h);
    const int64_t hi_off = (5ll << 30) + 12345; /* needs OffsetHigh */
    const int64_t edge = (4ll << 30) - 3;       /* straddles 2^32 */
    static char w1[4096], w2[64], b1[4096], b2[64];
    for (size_t i = 0; i < sizeof w1; i++) w1[i] = (char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof w2; i++) w2[i] = (char)(0xa0 + i);
    uint64_t i1, i2;
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)(uintptr_t)h, w1, sizeof w1, hi_off, NULL, &i1),
                 OVL_OK);
    cr_assert_eq(ovl_submit_write(p, (ovl_fd)(uintptr_t)h, w2, sizeof w2, edge, NULL, &i2), OVL_OK);
    cr_assert_eq(wait_id(&r, i1).result, (int64_t)sizeof w1);
    cr_assert_eq(wait_id(&r, i2).result, (int64_t)sizeof w2);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b1, sizeof b1, hi_off, NULL, &i1),
                 OVL_OK);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b2, sizeof b2, edge, NULL, &i2), OVL_OK);
    cr_assert_eq(wait_id(&r, i1).result, (int64_t)sizeof b1);
    cr_assert_eq(wait_id(&r, i2).result, (int64_t)sizeof b2);
    cr_assert_eq(memcmp(b1, w1, sizeof w1), 0);
    cr_assert_eq(memcmp(b2, w2, sizeof w2), 0);
    /* The low 32 bits alone (hi_off & 0xffffffff) hold zeros: a truncated
     * offset would have read those. */
    char chk[16];
    cr_assert_eq(pread((int)(intptr_t)h, chk, sizeof chk, hi_off), 16);
    cr_assert_eq(memcmp(chk, w1, 16), 0);
    /* Past the end above 4 GiB: EOF, and a read across the end is short. */
    int64_t end = hi_off + (int64_t)sizeof w1;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b2, sizeof b2, end, NULL, &i1), OVL_OK);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b2, sizeof b2, end - 10, NULL, &i2),
                 OVL_OK);
    cr_assert_eq(wait_id(&r, i1).result, 0);
    cr_assert_eq(wait_id(&r, i2).result, 10);
    close_clean(p, &r);
    CloseHandle(h);
}

Test(win, file_eof_and_zero_length, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 16);
    HANDLE h = temp_handle();
    assoc(p, h);
    cr_assert_eq(pwrite((int)(intptr_t)h, "0123456789", 10, 0), 10);
    char b[32];
    uint64_t at_end, across, beyond, zero;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b, sizeof b, 10, NULL, &at_end), OVL_OK);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b, sizeof b, 4, NULL, &across), OVL_OK);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b, sizeof b, 1 << 30, NULL, &beyond),
                 OVL_OK);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, NULL, 0, 0, NULL, &zero), OVL_OK);
    cr_assert_eq(wait_id(&r, at_end).result, 0);
    cr_assert_eq(wait_id(&r, across).result, 6);
    cr_assert_eq(wait_id(&r, beyond).result, 0);
    cr_assert_eq(wait_id(&r, zero).result, 0);
    uint64_t fs;
    cr_assert_eq(ovl_submit_fsync(p, (ovl_fd)(uintptr_t)h, 0, NULL, &fs), OVL_OK);
    ovl_completion f = wait_id(&r, fs);
    cr_assert_eq(f.result, 0, "fsync: %s os %d", ovl_strerror((int32_t)f.result), f.os_error);
    cr_assert_eq(f.op, OVL_OP_FSYNC);
    close_clean(p, &r);
    CloseHandle(h);
}

Test(win, handle_rejected_at_submit_completes_with_ebadf, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 8);
    HANDLE h = temp_handle();
    CloseHandle(h); /* a plausible value that is no longer a handle */
    char b[8];
    uint64_t id;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b, sizeof b, 0, NULL, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_EBADF, "%s os %d", ovl_strerror((int32_t)x.result), x.os_error);
    cr_assert_eq(x.os_error, ERROR_INVALID_HANDLE);
    cr_assert_eq(ovl_associate(p, (ovl_fd)(uintptr_t)h), OVL_EBADF);
    close_clean(p, &r);
}

Test(win, cancel_pending_pipe_read, .timeout = 30)
{
    rec r;
    HANDLE s, c;
    char b[8];
    uint64_t id;
    ovl_port *p = port_with_pending_read(&r, &s, &c, b, sizeof b, &id);
    cr_assert_eq(ovl_cancel(p, id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, OVL_ECANCELED, "%s", ovl_strerror((int32_t)x.result));
    cr_assert_eq(ovl_cancel(p, id), OVL_ENOENT);
    /* The pipe still works afterwards. */
    cr_assert_eq(
        ovl_submit_read(p, (ovl_fd)(uintptr_t)s, b, sizeof b, OVL_OFFSET_CURRENT, NULL, &id),
        OVL_OK);
    cr_assert_eq(write((int)(intptr_t)c, "ok", 2), 2);
    cr_assert_eq(wait_id(&r, id).result, 2);
    close_clean(p, &r);
    CloseHandle(s);
    CloseHandle(c);
}

Test(win, close_with_pipe_and_socket_reads_pending, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 32);
    HANDLE s[4], c[4];
    SOCKET a, b;
    tcp_pair(&a, &b);
    assoc(p, (HANDLE)b);
    static char buf[8][16];
    uint64_t ids[8];
    for (int i = 0; i < 4; i++) {
        duplex_pipe(&s[i], &c[i]);
        assoc(p, s[i]);
        cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)s[i], buf[i], 16, OVL_OFFSET_CURRENT,
                                     NULL, &ids[i]),
                     OVL_OK);
    }
    for (int i = 4; i < 8; i++)
        cr_assert_eq(ovl_submit_read(p, (ovl_fd)b, buf[i], 16, OVL_OFFSET_CURRENT, NULL, &ids[i]),
                     OVL_OK);
    uint64_t post;
    cr_assert_eq(ovl_post(p, 42, NULL, &post), OVL_OK);
    cr_assert_eq(ovl_close_port(p), OVL_OK);
    for (int i = 0; i < 8; i++) {
        ovl_completion x = rec_one(&r, ids[i]);
        cr_assert_eq(x.result, OVL_ECANCELED, "op %d: %s os %d", i, ovl_strerror((int32_t)x.result),
                     x.os_error);
    }
    cr_assert_eq(rec_one(&r, post).result, 42);
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    cr_assert_eq(ovl_port_stats(p, &st), OVL_OK);
    cr_assert_eq(st.inflight, 0u);
    cr_assert_eq(st.stale, 0u);
    cr_assert_eq(st.submitted, st.completed);
    rec_free(&r);
    for (int i = 0; i < 4; i++) {
        CloseHandle(s[i]);
        CloseHandle(c[i]);
    }
    closesocket(a);
    closesocket(b);
}

Test(win, back_pressure_and_posts, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 4);
    HANDLE s, c;
    duplex_pipe(&s, &c);
    assoc(p, s);
    char b[4][4];
    uint64_t ids[4], id;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(
            ovl_submit_read(p, (ovl_fd)(uintptr_t)s, b[i], 4, OVL_OFFSET_CURRENT, NULL, &ids[i]),
            OVL_OK);
    cr_assert_eq(ovl_post(p, 1, NULL, &id), OVL_EQUEUEFULL);
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)s, b[0], 4, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_EQUEUEFULL);
    cr_assert_eq(write((int)(intptr_t)c, "aaaabbbbccccdddd", 16), 16);
    rec_wait(&r, 4);
    for (int i = 0; i < 4; i++) cr_assert_eq(rec_one(&r, ids[i]).result, 4);
    cr_assert_eq(ovl_post(p, -77, &r, &id), OVL_OK);
    ovl_completion x = wait_id(&r, id);
    cr_assert_eq(x.result, -77);
    cr_assert_eq(x.op, OVL_OP_POST);
    cr_assert_eq(x.ctx, &r);
    close_clean(p, &r);
    CloseHandle(s);
    CloseHandle(c);
}

Test(win, manual_mode_poll_and_no_event_handle, .timeout = 30)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, OVL_PORT_MANUAL);
    ovl_fd ev;
    cr_assert_eq(ovl_port_event(p, &ev), OVL_ENOTSUP);
    cr_assert_eq(ovl_poll(p, 0), 0);
    uint64_t id;
    cr_assert_eq(ovl_post(p, 5, NULL, &id), OVL_OK);
    cr_assert_eq(ovl_poll(p, 5000), 1);
    cr_assert_eq(rec_one(&r, id).result, 5);
    HANDLE s, c;
    duplex_pipe(&s, &c);
    assoc(p, s);
    char b[4];
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)s, b, 4, OVL_OFFSET_CURRENT, NULL, &id),
                 OVL_OK);
    cr_assert_eq(ovl_poll(p, 0), 0);
    cr_assert_eq(write((int)(intptr_t)c, "abcd", 4), 4);
    int32_t n = 0;
    while (n == 0) n = ovl_poll(p, 5000);
    cr_assert_eq(n, 1);
    cr_assert_eq(rec_one(&r, id).result, 4);
    close_clean(p, &r);
    CloseHandle(s);
    CloseHandle(c);
}

Test(win, associate_twice_is_an_error_and_io_still_works, .timeout = 30)
{
    rec r;
    ovl_port *p = iocp_port(&r, 8);
    HANDLE h = temp_handle();
    assoc(p, h);
    cr_assert_eq(ovl_associate(p, (ovl_fd)(uintptr_t)h), OVL_EINVAL);
    cr_assert_eq(pwrite((int)(intptr_t)h, "abc", 3, 0), 3);
    char b[3];
    uint64_t id;
    cr_assert_eq(ovl_submit_read(p, (ovl_fd)(uintptr_t)h, b, 3, 0, NULL, &id), OVL_OK);
    cr_assert_eq(wait_id(&r, id).result, 3);
    close_clean(p, &r);
    CloseHandle(h);
}
