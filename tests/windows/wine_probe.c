/* wine_probe.c - not a test: a stand-alone program that prints how the
 * Windows (or wine) under it completes overlapped I/O on a completion port:
 * which calls return synchronously and whether a packet is queued then.
 * docs/WINDOWS.md quotes its output under wine 8.0. Build and run by hand:
 *   x86_64-w64-mingw32-gcc -o probe.exe tests/windows/wine_probe.c && wine probe.exe */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
static HANDLE port;
static void drain(const char *what, OVERLAPPED *mine)
{
    OVERLAPPED_ENTRY e[8];
    ULONG n = 0;
    PostQueuedCompletionStatus(port, 0, 99, NULL);
    int real = 0;
    for (;;) {
        if (!GetQueuedCompletionStatusEx(port, e, 8, &n, 1000, FALSE)) {
            printf("  %s: timeout\n", what);
            return;
        }
        for (ULONG i = 0; i < n; i++) {
            if (e[i].lpCompletionKey == 99) {
                printf("  -> %s: port packets=%d\n", what, real);
                return;
            }
            if (e[i].lpOverlapped == mine) {
                real++;
                printf("  %s: packet Internal=0x%llx bytes=%lu\n", what,
                       (unsigned long long)e[i].Internal, e[i].dwNumberOfBytesTransferred);
            }
        }
    }
}
int main(void)
{
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    HANDLE s = CreateNamedPipeW(L"\\\\.\\pipe\\probe", PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED,
                                PIPE_TYPE_BYTE, 1, 65536, 65536, 0, NULL);
    HANDLE c = CreateFileW(L"\\\\.\\pipe\\probe", GENERIC_READ | GENERIC_WRITE, 0, NULL,
                           OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    CreateIoCompletionPort(s, port, 1, 0);
    CreateIoCompletionPort(c, port, 2, 0);
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    BOOL ok = WriteFile(c, "abc", 3, NULL, &ov);
    printf("pipe write (no skip): ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("pipe write no-skip", &ov);
    char b[8];
    memset(&ov, 0, sizeof ov);
    ok = ReadFile(s, b, 8, NULL, &ov);
    printf("pipe read with data: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("pipe read", &ov);
    printf("skip mode set: %d\n",
           SetFileCompletionNotificationModes(c, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS));
    memset(&ov, 0, sizeof ov);
    ok = WriteFile(c, "abc", 3, NULL, &ov);
    printf("pipe write (skip): ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("pipe write skip", &ov);
    wchar_t tmp[MAX_PATH], path[MAX_PATH];
    GetTempPathW(MAX_PATH, tmp);
    swprintf(path, MAX_PATH, L"%lsprobe.tmp", tmp);
    HANDLE f = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
                           FILE_FLAG_OVERLAPPED | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    CreateIoCompletionPort(f, port, 3, 0);
    memset(&ov, 0, sizeof ov);
    ov.Offset = 100;
    ok = ReadFile(f, b, 8, NULL, &ov);
    printf("file read past EOF: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("file eof", &ov);
    memset(&ov, 0, sizeof ov);
    ok = WriteFile(f, "hello", 5, NULL, &ov);
    printf("file write: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("file write", &ov);
    memset(&ov, 0, sizeof ov);
    ok = ReadFile(f, b, 5, NULL, &ov);
    printf("file read: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("file read", &ov);
    HANDLE bad = f;
    CloseHandle(f);
    memset(&ov, 0, sizeof ov);
    ok = ReadFile(bad, b, 5, NULL, &ov);
    printf("closed handle read: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("bad handle", &ov);
    CloseHandle(s);
    memset(&ov, 0, sizeof ov);
    ok = WriteFile(c, "x", 1, NULL, &ov);
    printf("write, reader gone: ok=%d err=%lu\n", ok, ok ? 0 : GetLastError());
    drain("epipe", &ov);
    return 0;
}
