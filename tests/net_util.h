/* net_util.h - POSIX socket set-up shared by the connection tests
 * (test_connect.c, test_timeouts.c): loopback listeners of each family, a
 * TCP socket, a connected TCP pair, all made with plain system calls and
 * asserted. Include after common.h. Not for the Windows suite (see
 * tests/windows/test_win_net.c for its WinSock equivalents). */
#ifndef OVL_TEST_NET_UTIL_H
#define OVL_TEST_NET_UTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

/* A blocking TCP socket (AF_INET), close-on-exec. */
static inline int tcp_socket(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    return s;
}

static inline bool have_ipv6_loopback(void)
{
    int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

/* A listening socket on a loopback address (AF_INET, AF_INET6) or a fresh
 * Unix path (AF_UNIX), its address in *out. */
static inline int listener(int family, int backlog, ovl_addr *out)
{
    static _Atomic unsigned unix_seq;
    memset(out, 0, sizeof *out);
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    if (family == AF_INET) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_loopback;
        cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "/tmp/ovl-conn-%d-%u", (int)getpid(),
                 atomic_fetch_add(&unix_seq, 1));
        unlink(a.sun_path);
        cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    }
    socklen_t len = OVL_ADDR_MAX;
    cr_assert_eq(getsockname(s, (struct sockaddr *)out->data.bytes, &len), 0);
    out->len = len;
    if (backlog >= 0) cr_assert_eq(listen(s, backlog), 0);
    return s;
}

static inline void listener_close(int s, const ovl_addr *a)
{
    const struct sockaddr *sa = (const struct sockaddr *)a->data.bytes;
    if (sa->sa_family == AF_UNIX) unlink(((const struct sockaddr_un *)a->data.bytes)->sun_path);
    close(s);
}

static inline int family_of(const ovl_addr *a)
{
    return ((const struct sockaddr *)a->data.bytes)->sa_family;
}

/* A connected TCP pair on 127.0.0.1 made with plain system calls. */
static inline void tcp_pair(int fds[2])
{
    ovl_addr a;
    int l = listener(AF_INET, 4, &a);
    fds[0] = tcp_socket();
    cr_assert_eq(connect(fds[0], (struct sockaddr *)a.data.bytes, a.len), 0);
    fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(fds[1], 0);
    close(l);
}

#endif /* OVL_TEST_NET_UTIL_H */
