/* iocp.c - the Windows backend: one I/O completion port per ovl port,
 * overlapped ReadFile/WriteFile with the OVERLAPPED embedded first in the op
 * (the trick, ovl_internal.h), batches from GetQueuedCompletionStatusEx.
 *
 * Exactly once, on every path. The hard case is an I/O that does NOT return
 * ERROR_IO_PENDING (synchronous success, synchronous EOF, a synchronous
 * failure such as a bad handle). Whether the port then also receives a
 * packet for it depends on FILE_SKIP_COMPLETION_PORT_ON_SUCCESS (which the
 * caller may have set on its own handle; it cannot be read back on every
 * Windows version, nor under wine) and on the kind of failure. So we do not
 * guess: after any non-pending return we post a MARKER packet carrying the
 * same OVERLAPPED. A port's queue is FIFO and a synchronous completion's own
 * packet, if there is one, was queued before ReadFile returned, so it always
 * comes out before our marker. The completion thread swallows that real
 * packet (op->bstate says the result is already known) and delivers the
 * result on the marker, after which no packet can name the op any more, so
 * the core may free and reuse it. Cost: one extra PostQueuedCompletionStatus
 * per synchronous completion; pending I/O (the common case for files) has
 * exactly one packet.
 *
 * Op states (op->bstate, port lock):
 *   PENDING - the OS owns it; its one packet (key KEY_IO) completes it
 *   SYNC    - result known at submit (op->result/os_error); a real packet
 *             may still come and is swallowed; the MARKER completes it
 *   POST    - ovl_post: one packet, key KEY_POST
 *   FSYNC   - FlushFileBuffers on a thread-pool thread (Win32 has no
 *             overlapped flush), which then posts the MARKER
 *   TIMER   - a timer waiting for its deadline (no OS object at all);
 *             expiry or cancel posts the MARKER
 *
 * Sockets: reads and writes on a handle that ovl_associate (or accept) found
 * to be a socket go through WSARecv/WSASend, everything else through
 * ReadFile/WriteFile. Same packets, same exactly-once path; but a socket is
 * not a file everywhere: under wine 8.0 a WriteFile on one that pends
 * completes with status 0 and 0 bytes whatever it sent (see
 * tests/windows/socket_write_probe.c), and on Windows a socket from a
 * non-IFS provider (a layered service provider) is not a file handle at
 * all, so ReadFile/WriteFile fail on it. libuv and Go use the WSA calls
 * for sockets for the same reasons.
 *
 * Connections: accept is AcceptEx on a socket created at submit (same
 * family, type and protocol as the listener), connect is ConnectEx on a
 * socket bound to the wildcard address if the caller left it unbound, both
 * followed by their SO_UPDATE_*_CONTEXT; shutdown is the synchronous
 * shutdown() plus the marker. AcceptEx's socket is owned by the op until
 * its completion is delivered with it, and closed exactly once otherwise.
 *
 * Deadlines (timers, ovl_request.timeout_ns): a binary heap of op indices
 * in the backend state, sized with the pool (no allocation per op), under
 * the port lock. Whoever waits on the port (the completion thread, a
 * manual-mode ovl_poll) waits no longer than the nearest deadline; a submit
 * whose deadline comes before the one the waiter sleeps until wakes it. At
 * expiry a timer posts its marker (result 0) and an I/O op is CancelIoEx'd
 * with a "timed out" mark, so its ERROR_OPERATION_ABORTED packet becomes
 * OVL_ETIMEDOUT, while a packet that reports success (the I/O finished
 * first) keeps its real result: still one packet, so still exactly once.
 *
 * Wine 8.0 facts this is built around (measured; see docs/WINDOWS.md):
 * closing the port handle does not wake GetQueuedCompletionStatusEx, so the
 * thread is stopped with a posted packet; OVERLAPPED_ENTRY.Internal carries
 * only 32 meaningful bits, read as an NTSTATUS; file reads always pend. */
#include "ovl_internal.h"
#include "local.h"

#ifdef _WIN32
/* winsock2.h before anything pulls in the old winsock.h (platform.h's
 * windows.h is lean and does not). */
#  include <winsock2.h>
#  include <ws2tcpip.h>
#  include <mswsock.h>
#  include <stdlib.h>
#  include <string.h>
#  include <winternl.h>

/* The trick, checked: the OVERLAPPED is the op's first member, so the
 * LPOVERLAPPED the port hands back is the op's address. */
_Static_assert(offsetof(ovl__op, os) == 0, "OVERLAPPED must be first in ovl__op");
_Static_assert(sizeof(((ovl__op *)0)->os) >= sizeof(OVERLAPPED),
               "ovl__op.os too small for an OVERLAPPED");
_Static_assert(_Alignof(OVERLAPPED) <= _Alignof(ovl__op), "OVERLAPPED alignment");

/* Completion keys. Handles are associated with KEY_IO; everything we post
 * ourselves carries its own key, so a packet's meaning never depends on
 * guessing from its contents. */
#  define KEY_IO ((ULONG_PTR)0x6f766c31u)     /* "ovl1": I/O on an associated handle */
#  define KEY_MARKER ((ULONG_PTR)0x6f766c32u) /* result known: deliver op->result */
#  define KEY_POST ((ULONG_PTR)0x6f766c33u)   /* ovl_post */
#  define KEY_WAKE ((ULONG_PTR)0x6f766c34u)   /* wake(): NULL overlapped */

enum { B_PENDING = 1, B_SYNC, B_POST, B_FSYNC, B_TIMER, B_DIALWAIT };

/* What an op needs beyond ovl__op, one per pool slot (same index). */
typedef struct opx {
    uint64_t deadline;   /* ns (now_ns clock) while in the heap */
    uint32_t hpos;       /* 1 + its place in the heap; 0: not in it */
    uint32_t timed_out;  /* its deadline passed: a failure is OVL_ETIMEDOUT */
    SOCKET asock;        /* accept: the socket AcceptEx fills, owned by the op
                          until delivered; INVALID_SOCKET otherwise */
    HANDLE pipe;         /* local accept: its pipe instance, owned by the op
                          until delivered; NULL otherwise */
    uint64_t dial_end;   /* local dial: give up busy retries here (0: never) */
    uint32_t backoff_us; /* local dial: the next pause while busy */
} opx;

/* AcceptEx writes both addresses, each with 16 bytes of its own, and wants
 * room for the largest address the provider may return. */
#  define ADDR_ROOM ((DWORD)sizeof(SOCKADDR_STORAGE) + 16u)
#  define ABUF_SIZE (2u * ADDR_ROOM)

typedef struct iocp {
    HANDLE port;
    OVERLAPPED_ENTRY *entries; /* p->batch_cap of them (completion side) */
    ULONG cap;
    _Atomic int wake_pending; /* at most one wake packet queued */
    _Atomic uint32_t lost;    /* markers that could not be posted */
    /* Deadlines (port lock). */
    opx *x;         /* p->depth of them */
    uint32_t *heap; /* op indices, min-heap on x[].deadline */
    uint32_t nheap;
    uint64_t sleep_until; /* the deadline the waiter sleeps until
                                  (UINT64_MAX: none); 0: nobody sleeps */
    uint64_t qpf;         /* QueryPerformanceFrequency */
    /* AcceptEx address buffers, ABUF_SIZE per pool slot; allocated by the
     * port's first accept (port lock), so ports that never accept do not
     * pay depth * 288 bytes. */
    uint8_t *abuf;
    /* What each associated handle is (port lock): open addressing on the
     * handle value, key 0 empty, never shrunk; an associate overwrites the
     * entry (a handle value reused by a new object is associated again). */
    uintptr_t *hkey;
    uint8_t *hsock;        /* 1: a socket (WSARecv/WSASend) */
    uint32_t hcap, hcount; /* hcap a power of two, or 0 */
} iocp;

NTSYSAPI ULONG NTAPI RtlNtStatusToDosError(NTSTATUS status);

static inline HANDLE fd_handle(ovl_fd fd) { return (HANDLE)(uintptr_t)fd; }

static inline OVERLAPPED *op_ov(ovl__op *op) { return (OVERLAPPED *)(void *)&op->os; }

/* The way back: an LPOVERLAPPED from the port is an op of THIS port only if
 * it points exactly at one of our pool's slots. Anything else (a handle
 * bound to another port by mistake, a foreign PostQueuedCompletionStatus)
 * is ignored rather than trusted. */
static ovl__op *op_from_ov(ovl_port *p, OVERLAPPED *ov)
{
    uintptr_t a = (uintptr_t)ov, base = (uintptr_t)p->ops;
    if (!ov || a < base) return NULL;
    uintptr_t off = a - base;
    if (off % sizeof(ovl__op) != 0 || off / sizeof(ovl__op) >= p->depth) return NULL;
    return &p->ops[off / sizeof(ovl__op)];
}

/* ---- which handles are sockets ------------------------------------------- */

static uint32_t hslot(const iocp *c, uintptr_t h)
{
    uint64_t x = (uint64_t)h * 0x9e3779b97f4a7c15ull;
    uint32_t i = (uint32_t)(x >> 32) & (c->hcap - 1u);
    while (c->hkey[i] && c->hkey[i] != h) i = (i + 1u) & (c->hcap - 1u);
    return i;
}

/* Lock held. Record whether h is a socket; OVL_ENOMEM if the table cannot
 * grow. */
static int32_t hset(iocp *c, uintptr_t h, bool sock)
{
    if ((c->hcount + 1u) * 2u > c->hcap) {
        uint32_t ncap = c->hcap ? c->hcap * 2u : 64u;
        uintptr_t *nk = calloc(ncap, sizeof *nk);
        uint8_t *ns = calloc(ncap, sizeof *ns);
        if (!nk || !ns || ncap < c->hcap) {
            free(nk);
            free(ns);
            return OVL_ENOMEM;
        }
        iocp old = *c;
        c->hkey = nk;
        c->hsock = ns;
        c->hcap = ncap;
        for (uint32_t i = 0; i < old.hcap; i++) {
            if (!old.hkey[i]) continue;
            uint32_t j = hslot(c, old.hkey[i]);
            c->hkey[j] = old.hkey[i];
            c->hsock[j] = old.hsock[i];
        }
        free(old.hkey);
        free(old.hsock);
    }
    uint32_t i = hslot(c, h);
    if (!c->hkey[i]) {
        c->hkey[i] = h;
        c->hcount++;
    }
    c->hsock[i] = sock;
    return OVL_OK;
}

/* Lock held. Was h a socket when it was associated? */
static bool is_socket(const iocp *c, uintptr_t h)
{
    if (!c->hcap) return false;
    uint32_t i = hslot(c, h);
    return c->hkey[i] == h && c->hsock[i];
}

/* ---- result translation ------------------------------------------------- */

/* Lock held. Turn a finished I/O's Win32 error (0 = success) and byte count
 * into the op's result. */
static void set_result(iocp *c, ovl__op *op, DWORD err, DWORD bytes)
{
    op->os_error = 0;
    switch (err) {
    case ERROR_SUCCESS:
    case ERROR_MORE_DATA: /* a message-mode pipe: a short read, as it is */
    case WSAEMSGSIZE:     /* the same, from WSARecv on a datagram socket */
        op->result = (int64_t)bytes;
        return;
    case ERROR_HANDLE_EOF: /* past the end of a file: EOF */ op->result = 0; return;
    case ERROR_BROKEN_PIPE:
    case ERROR_PIPE_NOT_CONNECTED:
        /* A read from a pipe whose writer has gone is end of file, as on
         * POSIX; a write to it is EPIPE. */
        if (op->kind == OVL_OP_READ) {
            op->result = 0;
            return;
        }
        break;
    default: break;
    }
    op->os_error = (int32_t)err;
    if (err == ERROR_INVALID_HANDLE)
        /* The handle itself is gone: that, not the stop, is the news. */
        op->result = OVL_EBADF;
    else if (c->x[op->index].timed_out)
        /* Our CancelIoEx at its deadline stopped it (995, or whatever the
         * driver reports); the deadline came before any cancel request. */
        op->result = OVL_ETIMEDOUT;
    else if (op->cancel_req)
        /* ovl_cancel or close asked for it: 995, or whatever the handle's
         * driver reports when torn down (a socket gives other codes), all
         * mean cancelled. */
        op->result = OVL_ECANCELED;
    else op->result = ovl__win32_to_code(err);
}

/* ---- completion-side helpers ------------------------------------------- */

/* Lock held. The op's result is known: queue the marker that delivers it.
 * See the file comment for why this is never skipped. */
static void post_marker(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    op->bstate = B_SYNC;
    for (int i = 0; i < 100; i++) {
        if (PostQueuedCompletionStatus(c->port, 0, KEY_MARKER, op_ov(op))) return;
        /* Only fails when the kernel is out of nonpaged pool. */
        Sleep(1);
    }
    /* Give up: the op stays in flight, close will wait for it forever.
     * Counted so that a test or a debugger can see it happened. */
    atomic_fetch_add(&c->lost, 1);
}

static VOID CALLBACK fsync_work(PTP_CALLBACK_INSTANCE inst, PVOID arg);

/* ---- deadlines ---------------------------------------------------------- */

/* A monotonic clock in ns. QueryPerformanceCounter, not GetTickCount64:
 * the tick is 10-16 ms, coarser than the timers people set. */
static uint64_t now_ns(const iocp *c)
{
    LARGE_INTEGER t;
    QueryPerformanceCounter(&t);
    uint64_t v = (uint64_t)t.QuadPart;
    return v / c->qpf * 1000000000u + v % c->qpf * 1000000000u / c->qpf;
}

static bool before(const iocp *c, uint32_t a, uint32_t b)
{
    return c->x[a].deadline < c->x[b].deadline;
}

static void heap_set(iocp *c, uint32_t pos, uint32_t idx)
{
    c->heap[pos] = idx;
    c->x[idx].hpos = pos + 1u;
}

static void heap_up(iocp *c, uint32_t pos)
{
    uint32_t idx = c->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1u) / 2u;
        if (!before(c, idx, c->heap[parent])) break;
        heap_set(c, pos, c->heap[parent]);
        pos = parent;
    }
    heap_set(c, pos, idx);
}

static void heap_down(iocp *c, uint32_t pos)
{
    uint32_t idx = c->heap[pos];
    for (;;) {
        uint32_t l = 2u * pos + 1u, m = l;
        if (l >= c->nheap) break;
        if (l + 1u < c->nheap && before(c, c->heap[l + 1u], c->heap[l])) m = l + 1u;
        if (!before(c, c->heap[m], idx)) break;
        heap_set(c, pos, c->heap[m]);
        pos = m;
    }
    heap_set(c, pos, idx);
}

/* Lock held. Start op's deadline, timeout_ns from now; wake the waiter if
 * it sleeps past it. The heap holds at most one entry per pool slot, so it
 * never overflows. */
static void deadline_add(ovl_port *p, ovl__op *op);

/* Lock held. Take op out of the heap if it is there. */
static void deadline_del(iocp *c, ovl__op *op)
{
    uint32_t pos = c->x[op->index].hpos;
    if (!pos) return;
    pos--;
    c->x[op->index].hpos = 0;
    uint32_t last = c->heap[--c->nheap];
    if (pos == c->nheap) return;
    heap_set(c, pos, last);
    heap_up(c, pos);
    heap_down(c, c->x[last].hpos - 1u);
}

/* ---- connections -------------------------------------------------------- */

/* The process must have called WSAStartup before any Winsock call of ours
 * works; a caller with sockets has, but a bad handle passed to accept by a
 * program without sockets would otherwise read WSANOTINITIALISED instead
 * of "not a socket". One reference, kept for the life of the process. */
static ovl__once wsa_once = OVL__ONCE_INIT;
static void wsa_start(void)
{
    WSADATA w;
    (void)WSAStartup(MAKEWORD(2, 2), &w);
}

/* The Winsock extension functions, loaded through the first socket that
 * needs them (as Go's runtime does): the base provider's entry points serve
 * every IFS socket. A race loads the same pointer twice, harmlessly. */
static void *_Atomic fn_acceptex, *_Atomic fn_connectex, *_Atomic fn_sockaddrs;

static void *ext_fn(SOCKET s, void *_Atomic *slot, GUID guid, DWORD *err)
{
    void *fn = atomic_load(slot);
    if (fn) return fn;
    DWORD got = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &fn, sizeof fn, &got,
                 NULL, NULL) != 0 ||
        !fn) {
        *err = (DWORD)WSAGetLastError();
        if (!*err) *err = WSAEOPNOTSUPP;
        return NULL;
    }
    atomic_store(slot, fn);
    return fn;
}

static uint8_t *abuf_of(iocp *c, const ovl__op *op)
{
    return c->abuf + (size_t)op->index * ABUF_SIZE;
}

/* Lock held. AcceptEx finished with err (0: a connection is in x->asock):
 * finish it into op->result, or close the socket (exactly once: here). */
static void finish_accept(iocp *c, ovl__op *op, DWORD err)
{
    opx *x = &c->x[op->index];
    SOCKET s = x->asock, l = (SOCKET)op->fd;
    x->asock = INVALID_SOCKET;
    /* Without SO_UPDATE_ACCEPT_CONTEXT the new socket knows neither its
     * addresses nor its listener's options: getpeername and shutdown fail
     * on it. */
    if (!err &&
        setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&l, sizeof l) != 0)
        err = (DWORD)WSAGetLastError();
    if (err) {
        closesocket(s);
        set_result(c, op, err, 0);
        return;
    }
    ovl_addr *peer = op->buf;
    if (peer) {
        memset(peer, 0, sizeof *peer);
        struct sockaddr *la = NULL, *ra = NULL;
        int llen = 0, rlen = 0;
        DWORD e2 = 0;
        LPFN_GETACCEPTEXSOCKADDRS get = (LPFN_GETACCEPTEXSOCKADDRS)ext_fn(
            l, &fn_sockaddrs, (GUID)WSAID_GETACCEPTEXSOCKADDRS, &e2);
        if (get) {
            get(abuf_of(c, op), 0, ADDR_ROOM, ADDR_ROOM, &la, &llen, &ra, &rlen);
        }
        if (ra && rlen > 0) {
            if ((uint32_t)rlen > OVL_ADDR_MAX) rlen = OVL_ADDR_MAX;
            memcpy(peer->data.bytes, ra, (size_t)rlen);
            peer->len = (uint32_t)rlen;
        } else {
            int n = OVL_ADDR_MAX;
            if (getpeername(s, (struct sockaddr *)peer->data.bytes, &n) == 0)
                peer->len = (uint32_t)n;
        }
    }
    /* The caller's now (once delivered): a SOCKET is a handle, and handles
     * have 32 significant bits, so it is never negative here. */
    op->result = (int64_t)s;
    op->os_error = 0;
}

/* Lock held. Start an AcceptEx on the listener op->fd. */
static void start_accept(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    SOCKET l = (SOCKET)op->fd;
    DWORD err = 0;
    ovl__once_run(&wsa_once, wsa_start);
    if (!c->abuf && !(c->abuf = malloc((size_t)p->depth * ABUF_SIZE))) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        goto fail;
    }
    /* The new socket must match the listener's provider: same family, type
     * and protocol (an IPv6 listener gets an IPv6 socket). Reading them
     * also tells a non-socket apart (WSAENOTSOCK). */
    WSAPROTOCOL_INFOW info;
    int ilen = sizeof info;
    if (getsockopt(l, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info, &ilen) != 0) {
        err = (DWORD)WSAGetLastError();
        goto fail;
    }
    /* Windows fails AcceptEx on a socket that is not listening with
     * WSAEINVAL, but wine 8 leaves it pending for ever: ask first, so that
     * the header's promise (OVL_EINVAL in the completion) holds on both. */
    BOOL listening = FALSE;
    int blen = sizeof listening;
    if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, (char *)&listening, &blen) != 0) {
        err = (DWORD)WSAGetLastError();
        goto fail;
    }
    if (!listening) {
        err = WSAEINVAL;
        goto fail;
    }
    /* Only now: on a handle that is not a socket, wine's WSAIoctl says
     * WSAEOPNOTSUPP where the checks above say WSAENOTSOCK (OVL_EBADF). */
    LPFN_ACCEPTEX acceptex = (LPFN_ACCEPTEX)ext_fn(l, &fn_acceptex, (GUID)WSAID_ACCEPTEX, &err);
    if (!acceptex) goto fail;
    /* Not inheritable (the POSIX backends accept close-on-exec); old
     * Windows 7 without SP1 refuses the flag, then clear it afterwards. */
    SOCKET s = WSASocketW(info.iAddressFamily, info.iSocketType, info.iProtocol, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) {
        s = WSASocketW(info.iAddressFamily, info.iSocketType, info.iProtocol, NULL, 0,
                       WSA_FLAG_OVERLAPPED);
        if (s != INVALID_SOCKET) SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
    }
    if (s == INVALID_SOCKET) {
        err = (DWORD)WSAGetLastError();
        goto fail;
    }
    /* Bound to this port now, so the caller gets a socket ready for
     * ovl_submit_read/write (the header says so). */
    if (!CreateIoCompletionPort((HANDLE)s, c->port, KEY_IO, 0)) {
        err = GetLastError();
        closesocket(s);
        goto fail;
    }
    if (hset(c, (uintptr_t)s, true) != OVL_OK) {
        err = ERROR_NOT_ENOUGH_MEMORY;
        closesocket(s);
        goto fail;
    }
    x->asock = s;
    memset(op_ov(op), 0, sizeof(OVERLAPPED));
    DWORD got = 0;
    BOOL ok = acceptex(l, s, abuf_of(c, op), 0, ADDR_ROOM, ADDR_ROOM, &got, op_ov(op));
    err = ok ? 0 : (DWORD)WSAGetLastError();
    if (err == ERROR_IO_PENDING) {
        op->bstate = B_PENDING;
        return;
    }
    /* Synchronous: a connection was waiting, or the listener is bad. Any
     * real packet is swallowed ahead of the marker (file comment). */
    finish_accept(c, op, err);
    post_marker(p, op);
    return;
fail:
    set_result(c, op, err, 0);
    post_marker(p, op);
}

/* Lock held. ConnectEx finished with err: SO_UPDATE_CONNECT_CONTEXT makes
 * the socket a normal connected one (getpeername, shutdown work). */
static void finish_connect(iocp *c, ovl__op *op, DWORD err)
{
    if (!err && setsockopt((SOCKET)op->fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
        err = (DWORD)WSAGetLastError();
    set_result(c, op, err, 0);
}

/* Lock held. Start a ConnectEx on op->fd to the ovl_addr in op->buf. */
static void start_connect(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    SOCKET s = (SOCKET)op->fd;
    const ovl_addr *a = op->buf;
    const struct sockaddr *to = (const struct sockaddr *)(const void *)a->data.bytes;
    DWORD err = 0;
    ovl__once_run(&wsa_once, wsa_start);
    /* The socket's own family (for the bind below); reading it also tells
     * a handle that is not a socket apart (WSAENOTSOCK, so OVL_EBADF: wine's
     * getsockname and WSAIoctl answer WSAEOPNOTSUPP there). */
    WSAPROTOCOL_INFOW info;
    int ilen = sizeof info;
    if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info, &ilen) != 0) {
        err = (DWORD)WSAGetLastError();
        goto fail;
    }
    /* ConnectEx refuses an unbound socket (WSAEINVAL); connect() would
     * bind it implicitly, so do what it does: the wildcard address of the
     * socket's family, any port. getsockname fails with WSAEINVAL exactly
     * when the socket is unbound. */
    SOCKADDR_STORAGE ss;
    int slen = sizeof ss;
    if (getsockname(s, (struct sockaddr *)&ss, &slen) != 0) {
        err = (DWORD)WSAGetLastError();
        if (err != WSAEINVAL) goto fail;
        memset(&ss, 0, sizeof ss);
        ss.ss_family = (short)info.iAddressFamily;
        if (info.iAddressFamily == AF_INET) slen = sizeof(struct sockaddr_in);
        else if (info.iAddressFamily == AF_INET6) slen = sizeof(struct sockaddr_in6);
        else {
            err = WSAEAFNOSUPPORT;
            goto fail;
        }
        if (bind(s, (struct sockaddr *)&ss, slen) != 0) {
            err = (DWORD)WSAGetLastError();
            goto fail;
        }
    }
    LPFN_CONNECTEX connectex =
        (LPFN_CONNECTEX)ext_fn(s, &fn_connectex, (GUID)WSAID_CONNECTEX, &err);
    if (!connectex) goto fail;
    memset(op_ov(op), 0, sizeof(OVERLAPPED));
    BOOL ok = connectex(s, to, (int)a->len, NULL, 0, NULL, op_ov(op));
    err = ok ? 0 : (DWORD)WSAGetLastError();
    if (err == ERROR_IO_PENDING) {
        op->bstate = B_PENDING;
        return;
    }
    finish_connect(c, op, err);
    post_marker(p, op);
    return;
fail:
    set_result(c, op, err, 0);
    post_marker(p, op);
}

/* Lock held. shutdown() never blocks; its result goes out as a marker. */
static void start_shutdown(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    ovl__once_run(&wsa_once, wsa_start);
    /* OVL_SHUT_RD/WR/RDWR are 1/2/3; SD_RECEIVE/SEND/BOTH are 0/1/2. */
    int how = (int)op->flags - 1;
    SOCKET s = (SOCKET)op->fd;
    DWORD err = shutdown(s, how) == 0 ? 0 : (DWORD)WSAGetLastError();
    if (err == WSAEOPNOTSUPP) {
        /* Wine's answer for a handle that is not a socket (Windows says
         * WSAENOTSOCK): find out which, on this failure path only. */
        int type, tlen = sizeof type;
        if (getsockopt(s, SOL_SOCKET, SO_TYPE, (char *)&type, &tlen) != 0)
            err = (DWORD)WSAGetLastError();
    }
    set_result(c, op, err, 0);
    post_marker(p, op);
}

/* ---- the backend -------------------------------------------------------- */

static int32_t w_init(ovl_port *p)
{
    iocp *c = calloc(1, sizeof *c);
    if (!c) return OVL_ENOMEM;
    c->cap = (ULONG)p->batch_cap;
    c->entries = calloc(c->cap, sizeof *c->entries);
    c->x = calloc(p->depth, sizeof *c->x);
    c->heap = calloc(p->depth, sizeof *c->heap);
    if (!c->entries || !c->x || !c->heap) {
        free(c->entries);
        free(c->x);
        free(c->heap);
        free(c);
        return OVL_ENOMEM;
    }
    for (uint32_t i = 0; i < p->depth; i++) c->x[i].asock = INVALID_SOCKET;
    LARGE_INTEGER f;
    QueryPerformanceFrequency(&f); /* never fails since Windows XP */
    c->qpf = (uint64_t)f.QuadPart;
    atomic_init(&c->wake_pending, 0);
    atomic_init(&c->lost, 0);
    /* One completion thread (or one ovl_poll caller) dequeues: concurrency 1. */
    c->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!c->port) {
        DWORD e = GetLastError();
        free(c->entries);
        free(c->x);
        free(c->heap);
        free(c);
        int32_t rc = ovl__win32_to_code(e);
        return rc == OVL_ENOMEM ? rc : OVL_EOS;
    }
    p->be = c;
    return OVL_OK;
}

static void w_destroy(ovl_port *p)
{
    iocp *c = p->be;
    if (!c) return;
    /* Every op has completed, so no accept socket is left; this only
     * matters if a marker was lost (see post_marker). */
    for (uint32_t i = 0; i < p->depth; i++) {
        if (c->x[i].asock != INVALID_SOCKET) closesocket(c->x[i].asock);
        if (c->x[i].pipe) CloseHandle(c->x[i].pipe);
    }
    CloseHandle(c->port);
    free(c->entries);
    free(c->x);
    free(c->heap);
    free(c->abuf);
    free(c->hkey);
    free(c->hsock);
    free(c);
}

static int32_t w_associate(ovl_port *p, ovl_fd fd)
{
    iocp *c = p->be;
    /* A socket or not, asked once here rather than at every read/write:
     * getsockopt fails (WSAENOTSOCK) on anything else. */
    ovl__once_run(&wsa_once, wsa_start);
    int type, tlen = sizeof type;
    bool sock = getsockopt((SOCKET)(uintptr_t)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &tlen) == 0;
    /* ovl never changes the handle's notification modes: the handle is
     * borrowed, and FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, once set, can never
     * be cleared. Both modes work (see the file comment). */
    if (!CreateIoCompletionPort(fd_handle(fd), c->port, KEY_IO, 0)) {
        DWORD e = GetLastError();
        /* ERROR_INVALID_PARAMETER: already bound to a port (this one or
         * another), or not a handle that supports completion ports. */
        int32_t rc = ovl__win32_to_code(e);
        return rc == OVL_EBADF || rc == OVL_EINVAL ? rc : OVL_EINVAL;
    }
    /* Bound for good now; if the table cannot record it, its I/O still
     * works through ReadFile/WriteFile on IFS sockets (all but wine's). */
    (void)hset(c, (uintptr_t)fd, sock);
    return OVL_OK;
}

/* Lock held: start one read or write. */
static void start_rw(ovl_port *p, ovl__op *op)
{
    OVERLAPPED *ov = op_ov(op);
    memset(ov, 0, sizeof *ov);
    if (op->offset >= 0) {
        /* Positional: the full 64-bit offset (files above 4 GiB). */
        ov->Offset = (DWORD)((uint64_t)op->offset & 0xffffffffu);
        ov->OffsetHigh = (DWORD)((uint64_t)op->offset >> 32);
    }
    /* OVL_OFFSET_CURRENT: pipes and sockets ignore the offset. An overlapped
     * regular file has no current position; it is read at offset 0. */
    if (op->len == 0) {
        /* Defined as an immediate result 0 on every backend; a zero-byte
         * pipe or socket read would otherwise wait for data. */
        op->result = 0;
        op->os_error = 0;
        post_marker(p, op);
        return;
    }
    DWORD err, bytes = 0;
    if (is_socket(p->be, (uintptr_t)op->fd)) {
        /* A socket: WSARecv/WSASend (the file comment says why). On an
         * immediate success the count comes back in `bytes`, and the
         * packet, if one follows, is swallowed as for ReadFile. EOF is
         * what ReadFile gives too: success with 0 bytes, at once or in
         * the packet. The receive flags go in as 0 and what comes back is
         * not used: MSG_PARTIAL is only set for message-oriented
         * protocols that deliver partial messages; a datagram cut to the
         * buffer is WSAEMSGSIZE, kept as a short read of the count that
         * was copied (set_result; no test sends datagrams yet). */
        SOCKET s = (SOCKET)(uintptr_t)op->fd;
        WSABUF wb = {(ULONG)op->len, (CHAR *)op->buf};
        DWORD flags = 0;
        int r = op->kind == OVL_OP_READ ? WSARecv(s, &wb, 1, &bytes, &flags, ov, NULL)
                                        : WSASend(s, &wb, 1, &bytes, 0, ov, NULL);
        err = r == 0 ? ERROR_SUCCESS : (DWORD)WSAGetLastError(); /* WSA_IO_PENDING is 997 */
        if (err != ERROR_SUCCESS && err != WSAEMSGSIZE) bytes = 0;
    } else {
        HANDLE h = fd_handle(op->fd);
        /* lpNumberOf... is NULL: with an OVERLAPPED the count is only
         * trustworthy in the OVERLAPPED itself (InternalHigh). */
        BOOL ok = op->kind == OVL_OP_READ ? ReadFile(h, op->buf, (DWORD)op->len, NULL, ov)
                                          : WriteFile(h, op->buf, (DWORD)op->len, NULL, ov);
        err = ok ? ERROR_SUCCESS : GetLastError();
        /* ov->InternalHigh holds the byte count of a synchronous success. */
        if (ok) bytes = (DWORD)ov->InternalHigh;
    }
    if (err == ERROR_IO_PENDING) {
        op->bstate = B_PENDING;
        return;
    }
    /* Synchronous: success, EOF or failure. */
    set_result(p->be, op, err, bytes);
    post_marker(p, op);
}

static void w_wake(ovl_port *p);

static void deadline_add(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    x->deadline = now_ns(c) + (uint64_t)op->timeout_ns; /* < 2^63 + 2^63 */
    c->heap[c->nheap] = op->index;
    c->nheap++;
    heap_up(c, c->nheap - 1u);
    /* The waiter computed its sleep from an older nearest deadline. The
     * wake packet stays queued if it has not gone to sleep yet, so this
     * cannot be missed. */
    if (c->sleep_until && x->deadline < c->sleep_until) w_wake(p);
}

/* Lock held. Put op in the heap with an explicit deadline (ns). */
static void deadline_at(ovl_port *p, ovl__op *op, uint64_t at)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    x->deadline = at;
    c->heap[c->nheap] = op->index;
    c->nheap++;
    heap_up(c, c->nheap - 1u);
    if (c->sleep_until && x->deadline < c->sleep_until) w_wake(p);
}

/* ---- named pipes (local endpoints; see local_win.c) ----------------------
 * Accept: ConnectNamedPipe, overlapped, on an instance the op holds (the
 * listener's idle one, or a new one). ERROR_PIPE_CONNECTED (the client
 * came first) is a connection at once; ERROR_NO_DATA (it came and left)
 * is answered with DisconnectNamedPipe and a new ConnectNamedPipe on the
 * same instance: each round consumes one departed client, so it is never
 * a busy loop. When the last accept in flight gets its connection, the
 * listener's next idle instance is created before the connected one is
 * handed out.
 * Dial: CreateFile with FILE_FLAG_OVERLAPPED. ERROR_PIPE_BUSY (every
 * instance taken) parks the op in the deadline heap for a short pause
 * (1 ms doubling to 10 ms, never past the dial's own timeout) and the
 * waiter of the port tries again when it expires: no thread sleeps for
 * the dial. ERROR_FILE_NOT_FOUND: nothing listens, OVL_ENOTFOUND at once. */

static bool connect_pipe(ovl_port *p, ovl__op *op);

/* Lock held. The op's ConnectNamedPipe finished with err. Returns false if
 * the op goes on (its client had left: it waits for the next one). */
static bool finish_pipe_accept(ovl_port *p, ovl__op *op, DWORD err)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    ovl_local *l = ovl__local_lx(p, op)->owner;
    HANDLE h = x->pipe;
    if (err == ERROR_NO_DATA && !op->cancel_req && !x->timed_out && !l->closed) {
        /* Its client left: wait for the next one. Either way nothing is
         * delivered now (a finish posts its marker). */
        DisconnectNamedPipe(h);
        (void)connect_pipe(p, op);
        return false;
    }
    x->pipe = NULL;
    uint32_t *busy = ovl__local_win_busy(l);
    (*busy)--;
    if (err == 0 || err == ERROR_PIPE_CONNECTED) {
        /* Someone must be waiting before this one is handed out. */
        if (*busy == 0 && !l->closed) {
            void *next = NULL;
            if (ovl__local_win_instance(l, &next) == 0 && !ovl__local_win_put_idle(l, next))
                CloseHandle(next);
        }
        op->result = (int64_t)(uintptr_t)h;
        op->os_error = 0;
        return true;
    }
    /* No connection: the instance still listens (a cancelled
     * ConnectNamedPipe leaves it so) and waits as the idle one if none
     * does; else it goes. */
    if (*busy != 0 || !ovl__local_win_put_idle(l, h)) CloseHandle(h);
    set_result(c, op, err, 0);
    return true;
}

/* Lock held. Start (or restart) the ConnectNamedPipe of op on x->pipe.
 * Returns true if the op finished (its marker is posted). */
static bool connect_pipe(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    HANDLE h = c->x[op->index].pipe;
    for (;;) {
        memset(op_ov(op), 0, sizeof(OVERLAPPED));
        BOOL ok = ConnectNamedPipe(h, op_ov(op));
        DWORD err = ok ? 0 : GetLastError();
        if (err == ERROR_IO_PENDING) {
            op->bstate = B_PENDING;
            return false;
        }
        if (err == ERROR_NO_DATA) {
            /* A client that connected and left: it is gone, wait again. */
            DisconnectNamedPipe(h);
            continue;
        }
        finish_pipe_accept(p, op, err);
        post_marker(p, op);
        return true;
    }
}

/* Lock held. */
static void start_pipe_accept(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    ovl_local *l = op->buf;
    void *h = ovl__local_win_take_idle(l);
    if (!h) {
        uint32_t e = ovl__local_win_instance(l, &h);
        if (e) {
            set_result(c, op, e, 0);
            post_marker(p, op);
            return;
        }
    }
    (*ovl__local_win_busy(l))++;
    c->x[op->index].pipe = h;
    op->fd = (ovl_fd)(uintptr_t)h; /* what cancel_io stops */
    (void)connect_pipe(p, op);
}

/* Lock held. One CreateFile; busy: pause on the heap. */
static void try_dial(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    HANDLE h =
        CreateFileW((const wchar_t *)op->buf, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                    FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (h != INVALID_HANDLE_VALUE) {
        if (!CreateIoCompletionPort(h, c->port, KEY_IO, 0)) {
            DWORD e = GetLastError();
            CloseHandle(h);
            set_result(c, op, e, 0);
            post_marker(p, op);
            return;
        }
        /* A message-mode server: read messages too. */
        DWORD fl = 0;
        if (GetNamedPipeInfo(h, &fl, NULL, NULL, NULL) && (fl & PIPE_TYPE_MESSAGE)) {
            DWORD m = PIPE_READMODE_MESSAGE;
            SetNamedPipeHandleState(h, &m, NULL, NULL);
        }
        op->result = (int64_t)(uintptr_t)h;
        op->os_error = 0;
        post_marker(p, op);
        return;
    }
    DWORD err = GetLastError();
    if (err == ERROR_PIPE_BUSY) {
        uint64_t now = now_ns(c);
        if (x->dial_end && now >= x->dial_end) {
            op->result = OVL_ETIMEDOUT;
            op->os_error = (int32_t)err;
            post_marker(p, op);
            return;
        }
        uint64_t at = now + (uint64_t)x->backoff_us * 1000u;
        if (x->dial_end && at > x->dial_end) at = x->dial_end;
        if (x->backoff_us < OVL__DIAL_BACKOFF_MAX_US) x->backoff_us *= 2u;
        if (x->backoff_us > OVL__DIAL_BACKOFF_MAX_US) x->backoff_us = OVL__DIAL_BACKOFF_MAX_US;
        op->bstate = B_DIALWAIT;
        memset(op_ov(op), 0, sizeof(OVERLAPPED));
        deadline_at(p, op, at);
        return;
    }
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) {
        op->result = OVL_ENOTFOUND;
        op->os_error = (int32_t)err;
    } else {
        set_result(c, op, err, 0);
    }
    post_marker(p, op);
}

static void start_dial(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    opx *x = &c->x[op->index];
    x->backoff_us = OVL__DIAL_BACKOFF_MIN_US;
    x->dial_end = op->timeout_ns > 0 ? now_ns(c) + (uint64_t)op->timeout_ns : 0;
    try_dial(p, op);
}

static void w_submit(ovl_port *p, ovl__op **ops, size_t n)
{
    iocp *c = p->be;
    for (size_t i = 0; i < n; i++) {
        ovl__op *op = ops[i];
        c->x[op->index].timed_out = 0;
        switch (op->kind) {
        case OVL_OP_READ:
        case OVL_OP_WRITE: start_rw(p, op); break;
        case OVL_OP_FSYNC:
            /* Win32 has no overlapped flush and FlushFileBuffers blocks, so
             * it runs on the system thread pool, which then posts the
             * marker. The callback gets the op; the port handle it posts to
             * rides in the op's idle OVERLAPPED (a posted packet never reads
             * the OVERLAPPED it carries). */
            op->bstate = B_FSYNC;
            memset(op_ov(op), 0, sizeof(OVERLAPPED));
            op_ov(op)->hEvent = c->port;
            if (!TrySubmitThreadpoolCallback(fsync_work, op, NULL)) {
                DWORD e = GetLastError();
                if (!e) e = ERROR_NOT_ENOUGH_MEMORY;
                op->result = ovl__win32_to_code(e);
                op->os_error = (int32_t)e;
                post_marker(p, op);
            }
            break;
        case OVL_OP_ACCEPT: start_accept(p, op); break;
        case OVL_OP_CONNECT: start_connect(p, op); break;
        case OVL_OP_SHUTDOWN: start_shutdown(p, op); break;
        case OVL_OP_LOCAL_ACCEPT: start_pipe_accept(p, op); break;
        case OVL_OP_LOCAL_DIAL: start_dial(p, op); break;
        case OVL_OP_TIMER:
            /* Nothing in the OS: the deadline heap is the timer. */
            op->bstate = B_TIMER;
            memset(op_ov(op), 0, sizeof(OVERLAPPED));
            deadline_add(p, op);
            break;
        default: /* OVL_OP_POST: one packet straight back */
            op->bstate = B_POST;
            memset(op_ov(op), 0, sizeof(OVERLAPPED));
            if (!PostQueuedCompletionStatus(c->port, 0, KEY_POST, op_ov(op)))
                post_marker(p, op); /* same packet, retried */
            break;
        }
        /* A timeout only means something for I/O the OS still owns: one
         * that finished at submit has its result, and an fsync cannot be
         * interrupted (it keeps its real result, as the header allows). A
         * dial keeps its own (dial_end). */
        if (op->timeout_ns > 0 && op->bstate == B_PENDING && op->kind != OVL_OP_LOCAL_DIAL)
            deadline_add(p, op);
    }
}

/* A thread-pool thread: flush, record the result, post the marker. No lock:
 * nobody else touches the op until the marker is dequeued, and posting is a
 * full barrier between these writes and the completion thread's reads. */
static VOID CALLBACK fsync_work(PTP_CALLBACK_INSTANCE inst, PVOID arg)
{
    (void)inst;
    ovl__op *op = arg;
    HANDLE port = op_ov(op)->hEvent;
    /* OVL_FSYNC_DATA has no cheaper Win32 form: both flush everything. */
    DWORD e = FlushFileBuffers(fd_handle(op->fd)) ? ERROR_SUCCESS : GetLastError();
    op->result = e ? ovl__win32_to_code(e) : 0;
    op->os_error = (int32_t)e;
    for (int i = 0; i < 100; i++) {
        if (PostQueuedCompletionStatus(port, 0, KEY_MARKER, op_ov(op))) return;
        Sleep(1);
    }
}

/* Lock held. Stop the OS's part of an I/O op; its one packet follows. For
 * an accept that is the listener's AcceptEx with this OVERLAPPED only.
 * ERROR_NOT_FOUND means the I/O is finishing anyway: its packet comes. */
static void cancel_io(ovl__op *op) { CancelIoEx(fd_handle(op->fd), op_ov(op)); }

static void w_cancel(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    /* Cancelled before its deadline: the deadline no longer applies. */
    deadline_del(c, op);
    /* Only I/O the OS still owns can be stopped, and a timer. A SYNC op's
     * result is already final; an fsync inside FlushFileBuffers cannot be
     * interrupted (it completes with its real result, as the header
     * allows). */
    if (op->bstate == B_PENDING) {
        cancel_io(op);
    } else if (op->bstate == B_TIMER || op->bstate == B_DIALWAIT) {
        op->result = OVL_ECANCELED;
        op->os_error = 0;
        post_marker(p, op);
    }
}

/* Lock held. Act on every deadline that has passed; returns how many. */
static size_t expire(ovl_port *p, uint64_t now)
{
    iocp *c = p->be;
    size_t fired = 0;
    while (c->nheap && c->x[c->heap[0]].deadline <= now) {
        ovl__op *op = &p->ops[c->heap[0]];
        deadline_del(c, op);
        fired++;
        if (op->bstate == B_TIMER) {
            op->result = 0;
            op->os_error = 0;
            post_marker(p, op);
        } else if (op->bstate == B_DIALWAIT) {
            try_dial(p, op); /* the pause is over: busy again parks it again */
        } else if (op->bstate == B_PENDING) {
            /* Its packet decides: aborted means timed out, anything else
             * (it finished first) is its real result. */
            c->x[op->index].timed_out = 1;
            cancel_io(op);
        }
    }
    return fired;
}

/* Lock held. Fire what is due, then how long a wait that the caller allows
 * timeout_ms (-1: for ever) may sleep before the next deadline. */
static DWORD arm(ovl_port *p, int32_t timeout_ms)
{
    iocp *c = p->be;
    DWORD ms = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    uint64_t until = UINT64_MAX;
    if (c->nheap) {
        uint64_t now = now_ns(c);
        expire(p, now);
        if (c->nheap) {
            until = c->x[c->heap[0]].deadline;
            /* Rounded up: waking before the deadline would only spin. */
            uint64_t left = (until - now + 999999u) / 1000000u;
            if (left < ms) ms = (DWORD)left; /* INFINITE is above any left we use */
        }
    }
    c->sleep_until = ms == 0 ? 0 : until;
    return ms;
}

static void w_kick(ovl_port *p, bool from_cb)
{
    /* Submit already handed every op to the OS under the lock; nothing is
     * batched here. */
    (void)p;
    (void)from_cb;
}

static void w_wake(ovl_port *p)
{
    iocp *c = p->be;
    int expected = 0;
    if (atomic_compare_exchange_strong(&c->wake_pending, &expected, 1)) {
        if (!PostQueuedCompletionStatus(c->port, 0, KEY_WAKE, NULL))
            atomic_store(&c->wake_pending, 0);
    }
}

static size_t w_wait(ovl_port *p, int32_t timeout_ms, ovl__event *out, size_t cap)
{
    iocp *c = p->be;
    ULONG got = 0;
    ULONG want = cap < c->cap ? (ULONG)cap : c->cap;
    ovl__mutex_lock(&p->lock);
    DWORD ms = arm(p, timeout_ms);
    ovl__mutex_unlock(&p->lock);
    atomic_fetch_add(&p->syscalls, 1);
    BOOL ok = GetQueuedCompletionStatusEx(c->port, c->entries, want, &got, ms, FALSE);
    if (!ok) {
        /* WAIT_TIMEOUT (the port cannot be gone before destroy). If it was
         * a deadline's, act on it now and take what that queued (a timer's
         * marker) in the same call. */
        ovl__mutex_lock(&p->lock);
        c->sleep_until = 0;
        size_t fired = c->nheap ? expire(p, now_ns(c)) : 0;
        ovl__mutex_unlock(&p->lock);
        if (!fired) return 0;
        atomic_fetch_add(&p->syscalls, 1);
        if (!GetQueuedCompletionStatusEx(c->port, c->entries, want, &got, 0, FALSE)) return 0;
    }
    size_t n = 0;
    ovl__mutex_lock(&p->lock);
    c->sleep_until = 0;
    for (ULONG i = 0; i < got; i++) {
        OVERLAPPED_ENTRY *e = &c->entries[i];
        ULONG_PTR key = e->lpCompletionKey;
        if (key == KEY_WAKE) {
            atomic_store(&c->wake_pending, 0);
            continue;
        }
        ovl__op *op = op_from_ov(p, e->lpOverlapped);
        if (!op || op->state != OVL__OP_INFLIGHT) {
            /* Not ours, or already delivered: let the core count it as
             * stale (token 0 never names an op). */
            ovl__event *ev = &out[n++];
            ev->token = 0;
            ev->result = 0;
            ev->os_error = 0;
            continue;
        }
        if (key == KEY_IO) {
            if (op->bstate != B_PENDING) {
                /* The port's own packet for a synchronous completion (no
                 * FILE_SKIP_COMPLETION_PORT_ON_SUCCESS on this handle): the
                 * marker behind it delivers the result. */
                continue;
            }
            /* Finished before its deadline: the deadline is moot. */
            deadline_del(c, op);
            /* Wine sets only the low 32 bits of Internal: read it as the
             * 32-bit NTSTATUS it is. */
            NTSTATUS st = (NTSTATUS)(uint32_t)e->Internal;
            DWORD err = st == 0 ? ERROR_SUCCESS : RtlNtStatusToDosError(st);
            if (op->kind == OVL_OP_ACCEPT) finish_accept(c, op, err);
            else if (op->kind == OVL_OP_CONNECT) finish_connect(c, op, err);
            else if (op->kind == OVL_OP_LOCAL_ACCEPT) {
                if (!finish_pipe_accept(p, op, err)) continue; /* waits again */
            } else set_result(c, op, err, e->dwNumberOfBytesTransferred);
        } else if (key != KEY_MARKER && key != KEY_POST) {
            continue; /* an unknown key on our port: ignore */
        }
        /* KEY_MARKER / KEY_POST: op->result is final (the core substitutes
         * the posted value for posts). */
        ovl__event *ev = &out[n++];
        ev->token = ovl__op_token(op);
        ev->result = op->result;
        ev->os_error = op->result < 0 ? op->os_error : 0;
    }
    ovl__mutex_unlock(&p->lock);
    return n;
}

static void w_close_handle(ovl_fd h, uint32_t kind)
{
    if (kind == OVL_OP_ACCEPT) closesocket((SOCKET)(uintptr_t)h);
    else CloseHandle((HANDLE)(uintptr_t)h); /* a pipe */
}

/* Every Windows this builds for has completion ports. */
static int32_t w_probe(const char **reason)
{
    *reason = "Windows: I/O completion port";
    return OVL_OK;
}

static const ovl__backend iocp_backend = {
    .name = "iocp",
    .id = OVL_BACKEND_IOCP,
    .probe = w_probe,
    .net_ops = true,
    .timeouts = true,
    .local_native = true,
    .init = w_init,
    .submit = w_submit,
    .cancel = w_cancel,
    .kick = w_kick,
    .wait = w_wait,
    .wake = w_wake,
    .associate = w_associate,
    .destroy = w_destroy,
    .close_handle = w_close_handle,
};
const ovl__backend *const ovl__backend_iocp = &iocp_backend;

#else
const ovl__backend *const ovl__backend_iocp = NULL;
#endif /* _WIN32 */
