/* compat.h - force-included (gcc -include) into every test file of the
 * Windows build, before anything else. It gives the shared tests in tests/
 * the few POSIX calls they use on the fds they create, implemented over
 * Win32 HANDLEs that ovl can use for overlapped I/O:
 *   pipe()      an overlapped named-pipe pair (fds[0] reads, fds[1] writes)
 *   mkstemp()   an overlapped temp file, deleted on close (unlink: no-op)
 *   read/write/pread/pwrite/close   blocking helpers on those HANDLEs
 * A HANDLE is kept in an int: Windows guarantees that handles have only 32
 * significant bits (for 32/64-bit interop), and the tests cast to ovl_fd.
 *
 * ovl_associate is required on Windows and the shared tests do not call it
 * (it is optional elsewhere), so the submit functions are wrapped to
 * associate the handle first; a repeated association fails harmlessly with
 * ERROR_INVALID_PARAMETER and is ignored. Tests under tests/windows call
 * ovl_associate themselves. Helper I/O sets the low bit of hEvent so that
 * it never queues a packet to an ovl port (it would count as stale). */
#ifndef OVL_TESTS_WINDOWS_COMPAT_H
#define OVL_TESTS_WINDOWS_COMPAT_H

#ifndef _WIN32
#  error "tests/windows/compat.h is for the Windows build only"
#endif

#ifndef WIN32_LEAN_AND_MEAN
#  define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

/* Everything that declares the names redefined below, first. */
#include <io.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <ovl.h>

/* rand_r is POSIX; the same LCG as glibc's TYPE_0 generator is enough. */
static inline int crs_rand_r(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (int)((*seed / 65536u) % 32768u);
}
#define rand_r(s) crs_rand_r(s)

static inline HANDLE crs_h(int fd) { return (HANDLE)(intptr_t)fd; }

/* One blocking overlapped read or write at `off` (-1: stream). Returns
 * bytes, 0 at EOF / broken pipe, -1 on error. */
static inline long long crs_io(int fd, void *buf, size_t n, long long off, int wr)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ev) return -1;
    if (off >= 0) {
        ov.Offset = (DWORD)((unsigned long long)off & 0xffffffffu);
        ov.OffsetHigh = (DWORD)((unsigned long long)off >> 32);
    }
    /* Low bit set: no completion packet to the port the handle is bound to. */
    ov.hEvent = (HANDLE)((uintptr_t)ev | 1);
    DWORD got = 0;
    BOOL ok = wr ? WriteFile(crs_h(fd), buf, (DWORD)n, NULL, &ov)
                 : ReadFile(crs_h(fd), buf, (DWORD)n, NULL, &ov);
    DWORD err = ok ? 0 : GetLastError();
    if (err == ERROR_IO_PENDING) {
        WaitForSingleObject(ev, INFINITE);
        err = 0;
    }
    if (!err) {
        ok = GetOverlappedResult(crs_h(fd), &ov, &got, FALSE);
        err = ok ? 0 : GetLastError();
    }
    CloseHandle(ev);
    if (!err) return (long long)got;
    if (!wr && (err == ERROR_HANDLE_EOF || err == ERROR_BROKEN_PIPE)) return 0;
    return -1;
}

static inline int crs_pipe(int fds[2])
{
    static volatile LONG seq;
    wchar_t name[128];
    swprintf(name, 128, L"\\\\.\\pipe\\ovl-test-%lu-%ld", GetCurrentProcessId(),
             InterlockedIncrement(&seq));
    HANDLE r = CreateNamedPipeW(
        name, PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
        PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 65536, 65536, 0, NULL);
    if (r == INVALID_HANDLE_VALUE) return -1;
    HANDLE w = CreateFileW(name, GENERIC_WRITE | FILE_READ_ATTRIBUTES, 0, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, NULL);
    if (w == INVALID_HANDLE_VALUE) {
        CloseHandle(r);
        return -1;
    }
    fds[0] = (int)(intptr_t)r;
    fds[1] = (int)(intptr_t)w;
    return 0;
}

static inline int crs_mkstemp(char *tmpl)
{
    static volatile LONG seq;
    wchar_t dir[MAX_PATH], path[MAX_PATH + 64];
    if (!GetTempPathW(MAX_PATH, dir)) return -1;
    swprintf(path, MAX_PATH + 64, L"%lsovl-test-%lu-%ld.tmp", dir, GetCurrentProcessId(),
             InterlockedIncrement(&seq));
    HANDLE h = CreateFileW(
        path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        NULL, CREATE_NEW,
        FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE | FILE_FLAG_OVERLAPPED, NULL);
    if (h == INVALID_HANDLE_VALUE) return -1;
    (void)tmpl;
    return (int)(intptr_t)h;
}

static inline int crs_unlink(const char *path)
{
    (void)path; /* the file is FILE_FLAG_DELETE_ON_CLOSE */
    return 0;
}

static inline long long crs_read(int fd, void *b, size_t n) { return crs_io(fd, b, n, -1, 0); }
static inline long long crs_write(int fd, const void *b, size_t n)
{
    return crs_io(fd, (void *)(uintptr_t)b, n, -1, 1);
}
static inline long long crs_pread(int fd, void *b, size_t n, long long off)
{
    return crs_io(fd, b, n, off, 0);
}
static inline long long crs_pwrite(int fd, const void *b, size_t n, long long off)
{
    return crs_io(fd, (void *)(uintptr_t)b, n, off, 1);
}
static inline int crs_close(int fd) { return CloseHandle(crs_h(fd)) ? 0 : -1; }

#define pipe(fds) crs_pipe(fds)
#define mkstemp(t) crs_mkstemp(t)
#define unlink(p) crs_unlink(p)
#define read(fd, b, n) crs_read(fd, b, n)
#define write(fd, b, n) crs_write(fd, b, n)
#define pread(fd, b, n, o) crs_pread(fd, b, n, o)
#define pwrite(fd, b, n, o) crs_pwrite(fd, b, n, o)
#define close(fd) crs_close(fd)

/* ---- automatic ovl_associate for the shared tests ----------------------- */

static inline void crs_assoc(ovl_port *p, ovl_fd fd)
{
    if (p) (void)(ovl_associate)(p, fd);
}

static inline int32_t crs_ovl_submit(ovl_port *p, ovl_request *reqs, size_t n, size_t *out)
{
    for (size_t i = 0; reqs && i < n; i++) crs_assoc(p, reqs[i].fd);
    return (ovl_submit)(p, reqs, n, out);
}

static inline int32_t crs_ovl_submit_and_poll(ovl_port *p, ovl_request *reqs, size_t n, size_t *out,
                                              int32_t timeout_ms)
{
    for (size_t i = 0; reqs && i < n; i++) crs_assoc(p, reqs[i].fd);
    return (ovl_submit_and_poll)(p, reqs, n, out, timeout_ms);
}

#ifndef OVL_TEST_NO_AUTO_ASSOCIATE
#  define ovl_submit_read(p, fd, ...)                                                              \
    (crs_assoc((p), (ovl_fd)(fd)), (ovl_submit_read)((p), (fd), __VA_ARGS__))
#  define ovl_submit_write(p, fd, ...)                                                             \
    (crs_assoc((p), (ovl_fd)(fd)), (ovl_submit_write)((p), (fd), __VA_ARGS__))
#  define ovl_submit_fsync(p, fd, ...)                                                             \
    (crs_assoc((p), (ovl_fd)(fd)), (ovl_submit_fsync)((p), (fd), __VA_ARGS__))
#  define ovl_submit(p, r, n, o) crs_ovl_submit(p, r, n, o)
/* tests/common.h's "sap" wrappers submit through it. */
#  define ovl_submit_and_poll(p, r, n, o, t) crs_ovl_submit_and_poll(p, r, n, o, t)
#endif

#endif /* OVL_TESTS_WINDOWS_COMPAT_H */
