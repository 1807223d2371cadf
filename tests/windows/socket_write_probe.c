/* socket_write_probe.c - not a test: raw Win32, no ovl. One loopback TCP
 * pair on a completion port; side A keeps one 64 KiB write and one read in
 * flight, side B echoes; every completion is taken from its packet (as Go's
 * runtime does) and every byte read back is checked in order. Run once with
 * WriteFile/ReadFile on the sockets and once with WSASend/WSARecv, and
 * print, per write that went pending, the packet's byte count.
 * docs/WINDOWS.md quotes its output under wine 8.0. Build and run by hand:
 *   x86_64-w64-mingw32-gcc -Wall -Wextra -o probe.exe \
 *       tests/windows/socket_write_probe.c -lws2_32 && wine probe.exe */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 65536u
#define TOTAL (8u << 20)

static unsigned char *src, rbuf[CHUNK], bbuf[CHUNK];
static OVERLAPPED aw, ar, bw, br;
static int use_wsa;

/* TRUE: completed at once; FALSE: GetLastError() says why (997 pending). */
static BOOL xfer(int write, SOCKET s, void *buf, DWORD n, OVERLAPPED *ov)
{
    memset(ov, 0, sizeof *ov);
    if (!use_wsa)
        return write ? WriteFile((HANDLE)s, buf, n, NULL, ov)
                     : ReadFile((HANDLE)s, buf, n, NULL, ov);
    WSABUF wb = {n, buf};
    DWORD got = 0, fl = 0;
    int r = write ? WSASend(s, &wb, 1, &got, 0, ov, NULL) : WSARecv(s, &wb, 1, &got, &fl, ov, NULL);
    if (r == 0) return TRUE;
    SetLastError((DWORD)WSAGetLastError());
    return FALSE;
}

static int start(int write, SOCKET s, void *buf, DWORD n, OVERLAPPED *ov)
{
    BOOL ok = xfer(write, s, buf, n, ov);
    DWORD e = ok ? 0 : GetLastError();
    if (!ok && e != ERROR_IO_PENDING) {
        printf("  %s failed: %lu\n", write ? "write" : "read", e);
        exit(1);
    }
    return ok;
}

static void run(int wsa)
{
    use_wsa = wsa;
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    SOCKET l = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof sa;
    bind(l, (struct sockaddr *)&sa, len);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&sa, &len);
    SOCKET a = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    connect(a, (struct sockaddr *)&sa, len);
    SOCKET b = accept(l, NULL, NULL);
    closesocket(l);
    CreateIoCompletionPort((HANDLE)a, port, 1, 0);
    CreateIoCompletionPort((HANDLE)b, port, 2, 0);

    size_t sent = 0, got = 0, wlen = 0, bpend = 0, bat = 0;
    unsigned writes = 0, pending = 0, zero = 0, shown = 0;
    int a_sync = 0, bad = 0;
    printf("%s:\n", wsa ? "WSASend/WSARecv" : "WriteFile/ReadFile");
    start(0, b, bbuf, CHUNK, &br);
    start(0, a, rbuf, CHUNK, &ar);
#define A_WRITE()                                                                                  \
  do {                                                                                             \
    wlen = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;                                            \
    writes++;                                                                                      \
    a_sync = start(1, a, src + sent, (DWORD)wlen, &aw);                                            \
    if (!a_sync) pending++;                                                                        \
  } while (0)
    A_WRITE();
    while (got < TOTAL && !bad) {
        OVERLAPPED_ENTRY e[16];
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(port, e, 16, &n, 5000, FALSE)) {
            printf("  stuck: %zu sent, %zu read back\n", sent, got);
            exit(1);
        }
        for (ULONG i = 0; i < n && !bad; i++) {
            OVERLAPPED *ov = e[i].lpOverlapped;
            DWORD bytes = e[i].dwNumberOfBytesTransferred;
            if ((unsigned)e[i].Internal) {
                printf("  packet status 0x%x\n", (unsigned)e[i].Internal);
                exit(1);
            }
            if (ov == &aw) {
                if (!a_sync && shown++ < 4)
                    printf("  write %u (%zu bytes at %zu) pending, then packet: status 0, "
                           "%lu bytes (OVERLAPPED.InternalHigh %lu)\n",
                           writes, wlen, sent, bytes, (unsigned long)aw.InternalHigh);
                if (bytes == 0) zero++;
                sent += bytes;
                if (sent < TOTAL) A_WRITE();
            } else if (ov == &ar) {
                if (memcmp(rbuf, src + got, bytes) != 0) {
                    size_t k = 0;
                    while (rbuf[k] == src[got + k]) k++;
                    printf("  stream differs at byte %zu\n", got + k);
                    bad = 1;
                    break;
                }
                got += bytes;
                if (got < TOTAL) start(0, a, rbuf, CHUNK, &ar);
            } else if (ov == &br) {
                bpend = bytes;
                bat = 0;
                start(1, b, bbuf, (DWORD)bpend, &bw);
            } else if (ov == &bw) {
                bat += bytes;
                bpend -= bytes;
                if (bpend) start(1, b, bbuf + bat, (DWORD)bpend, &bw);
                else start(0, b, bbuf, CHUNK, &br);
            }
        }
    }
    printf("  %u writes, %u pending, %u completed with status 0 and 0 bytes; %zu bytes "
           "back %s\n",
           writes, pending, zero, got, bad ? "OUT OF ORDER" : "in order");
    closesocket(a);
    closesocket(b);
    CloseHandle(port);
}

int main(void)
{
    WSADATA w;
    WSAStartup(MAKEWORD(2, 2), &w);
    src = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        src[i] = (unsigned char)((i * 0x9e3779b97f4a7c15ull + 7) >> 56);
    run(0);
    run(1);
    return 0;
}
