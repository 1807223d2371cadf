/* local_posix.c - local endpoints on POSIX: names to Unix socket
 * addresses, the listening socket (stale files replaced, live ones left
 * alone, permissions set before anyone can connect), and the socket a
 * dial connects. The ops themselves are the backend's accept, connect and
 * timer (local.c). */
#include "local.h"

#ifndef _WIN32
#  include <errno.h>
#  include <fcntl.h>
#  include <stddef.h>
#  include <stdio.h>
#  include <string.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <sys/un.h>
#  include <unistd.h>

#  include "sys.h"

/* Where a plain name's socket file lives: /tmp/ovl-NAME.sock. */
#  define PLAIN_FMT "/tmp/ovl-%s.sock"

/* A name (see ovl.h, "Names") as a Unix socket address. *is_file: the
 * address is a path in the file system (not Linux's abstract namespace). */
static int32_t resolve(const char *name, struct sockaddr_un *sa, socklen_t *len, bool *is_file)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    *is_file = true;
    size_t n = strnlen(name, OVL__LOCAL_NAME_MAX + 1u);
    if (n == 0 || n > OVL__LOCAL_NAME_MAX) return OVL_EINVAL;
    /* The Windows form names the same endpoint: its plain name. */
    static const char pipe_prefix[] = "\\\\.\\pipe\\";
    if (strncmp(name, pipe_prefix, sizeof pipe_prefix - 1u) == 0) {
        name += sizeof pipe_prefix - 1u;
        n -= sizeof pipe_prefix - 1u;
        if (n == 0 || strchr(name, '/')) return OVL_EINVAL;
    }
    if (strchr(name, '\\')) return OVL_EINVAL;
#  ifdef __linux__
    if (name[0] == '@') {
        /* The abstract namespace: a NUL, then the rest, no terminator. */
        if (n < 2 || n - 1u > sizeof sa->sun_path - 1u) return OVL_EINVAL;
        memcpy(sa->sun_path + 1, name + 1, n - 1u);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        *is_file = false;
        return OVL_OK;
    }
#  endif
    int w;
    if (strchr(name, '/')) {
        w = snprintf(sa->sun_path, sizeof sa->sun_path, "%s", name);
    } else {
        if (n > 200u) return OVL_EINVAL;
        w = snprintf(sa->sun_path, sizeof sa->sun_path, PLAIN_FMT, name);
    }
    if (w < 0 || (size_t)w >= sizeof sa->sun_path) return OVL_EINVAL;
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)w + 1u);
    return OVL_OK;
}

static int32_t errno_code(int e)
{
    int32_t rc = ovl__errno_to_code(e);
    return rc;
}

/* A socket of ours: close-on-exec from the start where the OS can. */
static int unix_socket(bool nonblock)
{
#  ifdef SOCK_CLOEXEC
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
#  else
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s >= 0) {
        (void)fcntl(s, F_SETFD, FD_CLOEXEC);
        if (nonblock) (void)fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    }
    return s;
#  endif
}

/* Whether a server accepts on the socket file at sa (a connect that is
 * not refused: connected, or queued behind a full backlog). */
static bool someone_listens(const struct sockaddr_un *sa, socklen_t len)
{
    int s = unix_socket(true);
    if (s < 0) return true; /* cannot tell: never remove it */
    int r = connect(s, (const struct sockaddr *)sa, len);
    int e = r == 0 ? 0 : errno;
    (void)ovl__sys.close(s);
    return e != ECONNREFUSED && e != ENOENT;
}

int32_t ovl__local_os_listen(ovl_local *l, const char *name, const ovl_local_config *cfg)
{
    if (cfg->flags & OVL_LOCAL_MESSAGE) return OVL_ENOTSUP;
    if (cfg->sddl) return OVL_ENOTSUP;
    struct sockaddr_un sa;
    socklen_t len;
    bool is_file;
    int32_t rc = resolve(name, &sa, &len, &is_file);
    if (rc != OVL_OK) return rc;
    /* Blocking: only the library accepts on it (see the header's note on
     * blocking listeners and the threads backend). */
    int s = unix_socket(false);
    if (s < 0) return errno_code(errno);
    l->fd = s;
    if (cfg->in_buffer) {
        int v = (int)(cfg->in_buffer > 0x7fffffffu ? 0x7fffffffu : cfg->in_buffer);
        (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (cfg->out_buffer) {
        int v = (int)(cfg->out_buffer > 0x7fffffffu ? 0x7fffffffu : cfg->out_buffer);
        (void)setsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
    for (int tries = 0;; tries++) {
        if (bind(s, (const struct sockaddr *)&sa, len) == 0) break;
        int e = errno;
        if (e != EADDRINUSE || !is_file || tries == 2) return errno_code(e);
        /* A file is in the way. Only a socket file nobody listens on (its
         * server is gone) is ours to replace; a live one, or anything that
         * is not a socket, stays. */
        struct stat st;
        if (lstat(sa.sun_path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode) || someone_listens(&sa, len)) return OVL_EADDRINUSE;
            if (unlink(sa.sun_path) != 0 && errno != ENOENT) return errno_code(errno);
        }
    }
    if (is_file) {
        /* Before listen(): until then a connect is refused, so nobody gets
         * in under the umask's permissions. */
        if (chmod(sa.sun_path, (mode_t)(cfg->mode & 07777u)) != 0) {
            rc = errno_code(errno);
            (void)unlink(sa.sun_path);
            return rc;
        }
        struct stat st;
        if (lstat(sa.sun_path, &st) == 0) {
            l->dev = (uint64_t)st.st_dev;
            l->ino = (uint64_t)st.st_ino;
        }
        l->have_file = true;
        memcpy(l->path, sa.sun_path, sizeof sa.sun_path);
    }
    int backlog = (int)(cfg->backlog > 65535u ? 65535u : cfg->backlog);
    if (listen(s, backlog) != 0) {
        rc = errno_code(errno);
        ovl__local_os_close(l);
        return rc;
    }
    return OVL_OK;
}

void ovl__local_os_close(ovl_local *l)
{
    if (l->have_file) {
        /* Only the file we made: another server may have replaced it. */
        struct stat st;
        if (lstat(l->path, &st) == 0 && (uint64_t)st.st_dev == l->dev &&
            (uint64_t)st.st_ino == l->ino)
            (void)unlink(l->path);
        l->have_file = false;
    }
    if (l->fd >= 0) (void)ovl__sys.close(l->fd);
    l->fd = -1;
}

void ovl__local_os_free(ovl_local *l) { ovl__local_os_close(l); }

int32_t ovl__local_os_dial_prep(ovl__lx *lx, const char *name)
{
    struct sockaddr_un sa;
    socklen_t len;
    bool is_file;
    int32_t rc = resolve(name, &sa, &len, &is_file);
    if (rc != OVL_OK) return rc;
    /* Non-blocking: a full backlog answers EAGAIN at once (a blocking
     * connect would wait in the kernel, on io_uring in an io-wq worker),
     * and the dial pauses on a timer instead. */
    int s = unix_socket(true);
    if (s < 0) {
        int e = errno;
        return e == ENOMEM || e == ENOBUFS ? OVL_ENOMEM : OVL_EOS;
    }
    memset(&lx->addr, 0, sizeof lx->addr);
    memcpy(lx->addr.data.bytes, &sa, len);
    lx->addr.len = (uint32_t)len;
    lx->sock = s;
    return OVL_OK;
}

void ovl__local_os_dial_drop(ovl__lx *lx)
{
    if (lx->sock >= 0) (void)ovl__sys.close((int)lx->sock);
    lx->sock = -1;
}

void ovl__local_os_dial_done(ovl__lx *lx)
{
    /* The caller's connection is blocking, as an accepted one. */
    int fl = fcntl((int)lx->sock, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK)) (void)fcntl((int)lx->sock, F_SETFL, fl & ~O_NONBLOCK);
}

void ovl__local_os_close_conn(ovl_fd h) { (void)ovl__sys.close((int)h); }

#endif /* !_WIN32 */
