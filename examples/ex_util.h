/* ex_util.h - the little the examples need besides ovl.h: open a file for
 * overlapped I/O, a clock, a one-shot "done" latch, a fast checksum, temp
 * paths and TCP sockets on loopback. POSIX and Win32 side by side so that
 * the examples themselves stay (nearly) free of #ifdefs. Examples only: not
 * part of the library. */
#ifndef OVL_EX_UTIL_H
#define OVL_EX_UTIL_H

#include "ovl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <winsock2.h> /* before windows.h */
#  include <ws2tcpip.h>
#  include <windows.h>

/* Overlapped I/O needs FILE_FLAG_OVERLAPPED; the handle is then bound to the
 * port with ovl_associate (required on Windows). */
static inline ovl_fd ex_open_read(const char *path)
{
    HANDLE h = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, NULL);
    return h == INVALID_HANDLE_VALUE ? 0 : (ovl_fd)(uintptr_t)h;
}
static inline ovl_fd ex_open_write(const char *path)
{
    HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                           FILE_FLAG_OVERLAPPED, NULL);
    return h == INVALID_HANDLE_VALUE ? 0 : (ovl_fd)(uintptr_t)h;
}
static inline int64_t ex_file_size(ovl_fd fd)
{
    LARGE_INTEGER sz;
    return GetFileSizeEx((HANDLE)(uintptr_t)fd, &sz) ? (int64_t)sz.QuadPart : -1;
}
static inline void ex_close(ovl_fd fd) { CloseHandle((HANDLE)(uintptr_t)fd); }
static inline double ex_now(void)
{
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
static inline unsigned long ex_pid(void) { return (unsigned long)GetCurrentProcessId(); }
static inline const char *ex_tmpdir(void)
{
    static char buf[MAX_PATH + 1];
    DWORD n = GetTempPathA(sizeof buf, buf);
    if (n == 0 || n > MAX_PATH) return ".";
    if (n > 1 && (buf[n - 1] == '\\' || buf[n - 1] == '/')) buf[n - 1] = 0;
    return buf;
}

typedef struct ex_latch {
    CRITICAL_SECTION cs;
    CONDITION_VARIABLE cv;
    int done;
} ex_latch;
static inline void ex_latch_init(ex_latch *l)
{
    InitializeCriticalSection(&l->cs);
    InitializeConditionVariable(&l->cv);
    l->done = 0;
}
static inline void ex_latch_open(ex_latch *l)
{
    EnterCriticalSection(&l->cs);
    l->done = 1;
    WakeAllConditionVariable(&l->cv);
    LeaveCriticalSection(&l->cs);
}
static inline void ex_latch_wait(ex_latch *l)
{
    EnterCriticalSection(&l->cs);
    while (!l->done) SleepConditionVariableCS(&l->cv, &l->cs, INFINITE);
    LeaveCriticalSection(&l->cs);
}
static inline void ex_latch_destroy(ex_latch *l) { DeleteCriticalSection(&l->cs); }

#else /* POSIX */
#  include <errno.h>
#  include <fcntl.h>
#  include <pthread.h>
#  include <sys/stat.h>
#  include <time.h>
#  include <unistd.h>

static inline ovl_fd ex_open_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? (ovl_fd)-1 : (ovl_fd)fd;
}
static inline ovl_fd ex_open_write(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd < 0 ? (ovl_fd)-1 : (ovl_fd)fd;
}
static inline int64_t ex_file_size(ovl_fd fd)
{
    struct stat st;
    return fstat((int)fd, &st) == 0 ? (int64_t)st.st_size : -1;
}
static inline void ex_close(ovl_fd fd) { close((int)fd); }
static inline double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static inline unsigned long ex_pid(void) { return (unsigned long)getpid(); }
static inline const char *ex_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* The main thread waits here until a callback (on the port's completion
 * thread) says the work is finished. */
typedef struct ex_latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} ex_latch;
static inline void ex_latch_init(ex_latch *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->done = 0;
}
static inline void ex_latch_open(ex_latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->done = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}
static inline void ex_latch_wait(ex_latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->done) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}
static inline void ex_latch_destroy(ex_latch *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}
#endif

/* What ex_open_* return on failure, also used for "no file". */
#ifdef _WIN32
#  define EX_NO_FD ((ovl_fd)0)
#else
#  define EX_NO_FD ((ovl_fd)-1)
#endif

/* Which values of ex_open_* mean failure. */
static inline int ex_fd_ok(ovl_fd fd)
{
#ifdef _WIN32
    return fd != 0;
#else
    return fd != (ovl_fd)-1;
#endif
}

/* ---- TCP sockets ---------------------------------------------------------
 * A socket is an ovl_fd on both sides (a POSIX fd, a Windows SOCKET);
 * EX_NO_SOCK is "none" (-1, which is also INVALID_SOCKET). Sockets are
 * blocking as created (Windows' are overlapped, as ovl needs); on Windows
 * every one must be associated with the port before its first op (the
 * accepted ones come associated). */
#define EX_NO_SOCK ((ovl_fd)-1)

#ifdef _WIN32
/* WSAStartup, once before any socket call. 0 on success. */
static inline int ex_net_init(void)
{
    WSADATA w;
    return WSAStartup(MAKEWORD(2, 2), &w);
}
static inline ovl_fd ex_tcp_socket(void)
{
    /* Overlapped (IOCP needs it) and not inherited by child processes. */
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    return s == INVALID_SOCKET ? EX_NO_SOCK : (ovl_fd)s;
}
static inline void ex_sock_close(ovl_fd s) { closesocket((SOCKET)s); }
/* The last socket call's failure, as perror() prints it on POSIX. */
static inline void ex_sock_perror(const char *what)
{
    fprintf(stderr, "%s: winsock error %d\n", what, WSAGetLastError());
}
#else
#  include <arpa/inet.h>
#  include <netinet/in.h>
#  include <sys/socket.h>

/* Strict C on the BSDs and macOS hides it (a BSD name, not POSIX's). */
#  ifndef INADDR_LOOPBACK
#    define INADDR_LOOPBACK 0x7f000001u
#  endif

static inline int ex_net_init(void) { return 0; }
/* Close-on-exec (macOS has no SOCK_CLOEXEC). */
static inline ovl_fd ex_tcp_socket(void)
{
#  ifdef SOCK_CLOEXEC
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
#  else
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
#  endif
    return fd < 0 ? EX_NO_SOCK : (ovl_fd)fd;
}
static inline void ex_sock_close(ovl_fd s) { close((int)s); }
static inline void ex_sock_perror(const char *what) { perror(what); }
#endif

/* A TCP listener on 127.0.0.1, an ephemeral port, with the given backlog;
 * its address (to connect to) in *at. EX_NO_SOCK on failure (errno /
 * WSAGetLastError() tell why). */
static inline ovl_fd ex_tcp_listener(int backlog, ovl_addr *at)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(at, 0, sizeof *at);
    socklen_t alen = (socklen_t)sizeof at->data;
    ovl_fd l = ex_tcp_socket();
    if (l == EX_NO_SOCK) return EX_NO_SOCK;
#ifdef _WIN32
    SOCKET s = (SOCKET)l;
#else
    int s = (int)l;
#endif
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, backlog) != 0 ||
        getsockname(s, (struct sockaddr *)(void *)at->data.bytes, &alen) != 0) {
#ifdef _WIN32
        int err = WSAGetLastError();
        closesocket(s);
        WSASetLastError(err);
#else
        int err = errno;
        close(s);
        errno = err;
#endif
        return EX_NO_SOCK;
    }
    at->len = (uint32_t)alen;
    return l;
}

#ifndef _WIN32
/* A connected pair of stream sockets (POSIX only: ovl_echo's default mode
 * is not run on Windows, see there). 0 on success. */
static inline int ex_stream_pair(ovl_fd sv[2])
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return -1;
    sv[0] = (ovl_fd)fds[0];
    sv[1] = (ovl_fd)fds[1];
    return 0;
}
#endif

/* The half-close (no more sends: the peer reads end of file). */
static inline int ex_sock_shutdown_wr(ovl_fd s)
{
#ifdef _WIN32
    return shutdown((SOCKET)s, SD_SEND);
#else
    return shutdown((int)s, SHUT_WR);
#endif
}

/* The port number of an IPv4 ovl_addr. */
static inline unsigned ex_addr_port(const ovl_addr *a)
{
    return ntohs(((const struct sockaddr_in *)(const void *)a->data.bytes)->sin_port);
}

/* ---- checksum -------------------------------------------------------------
 * FNV-1a's xor-multiply step over 64-bit little-endian words (then bytes for
 * the tail): not cryptographic, but fast enough to run inside a callback and
 * it catches any reordered, missing or corrupted block. */
#define EX_HASH_INIT 0xcbf29ce484222325ull
#define EX_HASH_PRIME 0x100000001b3ull

static inline uint64_t ex_hash(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = 0;
        for (int k = 7; k >= 0; k--) w = (w << 8) | p[i + (size_t)k];
        h = (h ^ w) * EX_HASH_PRIME;
    }
    for (; i < len; i++) h = (h ^ p[i]) * EX_HASH_PRIME;
    return h;
}

/* Deterministic pseudo-random bytes (xorshift64*) for generated test data. */
static inline void ex_fill(uint64_t *state, void *buf, size_t len)
{
    unsigned char *p = buf;
    uint64_t x = *state;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        for (size_t k = 0; k < 8 && i + k < len; k++) p[i + k] = (unsigned char)(v >> (8 * k));
    }
    *state = x;
}

/* Parse "123", "64k", "32M", "1G" (binary units). Returns 0 on error. */
static inline uint64_t ex_parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
    default: break;
    }
    return *end ? 0 : (uint64_t)v;
}

static inline double ex_mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* One line describing the port, printed by every example. */
static inline void ex_print_backend(const char *prog, ovl_port *port)
{
    uint32_t auto_choice;
    const char *why = ovl_backend_reason(&auto_choice);
    printf("%s: ovl %s, backend %s (auto: %s)\n", prog, ovl_version_string(),
           ovl_backend_name(port), why);
}

static inline void ex_print_stats(const char *prog, ovl_port *port)
{
    ovl_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    if (ovl_port_stats(port, &st) != OVL_OK) return;
    printf("%s: port stats: %llu ops submitted, %llu completed in %llu "
           "callback batches (%.1f per batch), %llu backend syscalls\n",
           prog, (unsigned long long)st.submitted, (unsigned long long)st.completed,
           (unsigned long long)st.batches,
           st.batches ? (double)st.completed / (double)st.batches : 0.0,
           (unsigned long long)st.syscalls);
}

/* Exit code for "this backend is not available here" (ctest SKIP). */
#define EX_EXIT_SKIP 77

#endif /* OVL_EX_UTIL_H */
