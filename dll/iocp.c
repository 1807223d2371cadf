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
 *
 * Wine 8.0 facts this is built around (measured; see docs/WINDOWS.md):
 * closing the port handle does not wake GetQueuedCompletionStatusEx, so the
 * thread is stopped with a posted packet; OVERLAPPED_ENTRY.Internal carries
 * only 32 meaningful bits, read as an NTSTATUS; file reads always pend. */
#include "ovl_internal.h"

#ifdef _WIN32
#include <stdlib.h>
#include <string.h>
#include <winternl.h>

/* The trick, checked: the OVERLAPPED is the op's first member, so the
 * LPOVERLAPPED the port hands back is the op's address. */
_Static_assert(offsetof(ovl__op, os) == 0, "OVERLAPPED must be first in ovl__op");
_Static_assert(sizeof(((ovl__op *)0)->os) >= sizeof(OVERLAPPED),
               "ovl__op.os too small for an OVERLAPPED");
_Static_assert(_Alignof(OVERLAPPED) <= _Alignof(ovl__op), "OVERLAPPED alignment");

/* Completion keys. Handles are associated with KEY_IO; everything we post
 * ourselves carries its own key, so a packet's meaning never depends on
 * guessing from its contents. */
#define KEY_IO     ((ULONG_PTR)0x6f766c31u) /* "ovl1": I/O on an associated handle */
#define KEY_MARKER ((ULONG_PTR)0x6f766c32u) /* result known: deliver op->result */
#define KEY_POST   ((ULONG_PTR)0x6f766c33u) /* ovl_post */
#define KEY_WAKE   ((ULONG_PTR)0x6f766c34u) /* wake(): NULL overlapped */

enum { B_PENDING = 1, B_SYNC, B_POST, B_FSYNC };

typedef struct iocp {
    HANDLE port;
    OVERLAPPED_ENTRY *entries; /* p->batch_cap of them (completion side) */
    ULONG cap;
    _Atomic int wake_pending;  /* at most one wake packet queued */
    _Atomic uint32_t lost;     /* markers that could not be posted */
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
    if (off % sizeof(ovl__op) != 0 || off / sizeof(ovl__op) >= p->depth)
        return NULL;
    return &p->ops[off / sizeof(ovl__op)];
}

/* ---- result translation ------------------------------------------------- */

/* Lock held. Turn a finished I/O's Win32 error (0 = success) and byte count
 * into the op's result. */
static void set_result(ovl__op *op, DWORD err, DWORD bytes)
{
    op->os_error = 0;
    switch (err) {
    case ERROR_SUCCESS:
    case ERROR_MORE_DATA: /* a message-mode pipe: a short read, as it is */
        op->result = (int64_t)bytes;
        return;
    case ERROR_HANDLE_EOF: /* past the end of a file: EOF */
        op->result = 0;
        return;
    case ERROR_BROKEN_PIPE:
    case ERROR_PIPE_NOT_CONNECTED:
        /* A read from a pipe whose writer has gone is end of file, as on
         * POSIX; a write to it is EPIPE. */
        if (op->kind == OVL_OP_READ) {
            op->result = 0;
            return;
        }
        break;
    default:
        break;
    }
    op->os_error = (int32_t)err;
    if (op->cancel_req && err != ERROR_INVALID_HANDLE)
        /* ovl_cancel or close asked for it: 995, or whatever the handle's
         * driver reports when torn down (a socket gives other codes), all
         * mean cancelled. */
        op->result = OVL_ECANCELED;
    else
        op->result = ovl__win32_to_code(err);
}

/* ---- completion-side helpers ------------------------------------------- */

/* Lock held. The op's result is known: queue the marker that delivers it.
 * See the file comment for why this is never skipped. */
static void post_marker(ovl_port *p, ovl__op *op)
{
    iocp *c = p->be;
    op->bstate = B_SYNC;
    for (int i = 0; i < 100; i++) {
        if (PostQueuedCompletionStatus(c->port, 0, KEY_MARKER, op_ov(op)))
            return;
        /* Only fails when the kernel is out of nonpaged pool. */
        Sleep(1);
    }
    /* Give up: the op stays in flight, close will wait for it forever.
     * Counted so that a test or a debugger can see it happened. */
    atomic_fetch_add(&c->lost, 1);
}

static VOID CALLBACK fsync_work(PTP_CALLBACK_INSTANCE inst, PVOID arg);

/* ---- the backend -------------------------------------------------------- */

static int32_t w_init(ovl_port *p)
{
    iocp *c = calloc(1, sizeof *c);
    if (!c) return OVL_ENOMEM;
    c->cap = (ULONG)p->batch_cap;
    c->entries = calloc(c->cap, sizeof *c->entries);
    if (!c->entries) {
        free(c);
        return OVL_ENOMEM;
    }
    atomic_init(&c->wake_pending, 0);
    atomic_init(&c->lost, 0);
    /* One completion thread (or one ovl_poll caller) dequeues: concurrency 1. */
    c->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!c->port) {
        DWORD e = GetLastError();
        free(c->entries);
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
    CloseHandle(c->port);
    free(c->entries);
    free(c);
}

static int32_t w_associate(ovl_port *p, ovl_fd fd)
{
    iocp *c = p->be;
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
    BOOL ok;
    HANDLE h = fd_handle(op->fd);
    /* lpNumberOf... is NULL: with an OVERLAPPED the count is only
     * trustworthy in the OVERLAPPED itself (InternalHigh). */
    if (op->kind == OVL_OP_READ)
        ok = ReadFile(h, op->buf, (DWORD)op->len, NULL, ov);
    else
        ok = WriteFile(h, op->buf, (DWORD)op->len, NULL, ov);
    DWORD err = ok ? ERROR_SUCCESS : GetLastError();
    if (err == ERROR_IO_PENDING) {
        op->bstate = B_PENDING;
        return;
    }
    /* Synchronous: success, EOF or failure. ov->InternalHigh holds the byte
     * count of a synchronous success. */
    set_result(op, err, ok ? (DWORD)ov->InternalHigh : 0);
    post_marker(p, op);
}

static void w_submit(ovl_port *p, ovl__op **ops, size_t n)
{
    iocp *c = p->be;
    for (size_t i = 0; i < n; i++) {
        ovl__op *op = ops[i];
        switch (op->kind) {
        case OVL_OP_READ:
        case OVL_OP_WRITE:
            start_rw(p, op);
            break;
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
        default: /* OVL_OP_POST: one packet straight back */
            op->bstate = B_POST;
            memset(op_ov(op), 0, sizeof(OVERLAPPED));
            if (!PostQueuedCompletionStatus(c->port, 0, KEY_POST, op_ov(op)))
                post_marker(p, op); /* same packet, retried */
            break;
        }
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

static void w_cancel(ovl_port *p, ovl__op *op)
{
    (void)p;
    /* Only I/O the OS still owns can be stopped. A SYNC op's result is
     * already final; an fsync inside FlushFileBuffers cannot be interrupted
     * (it completes with its real result, as the header allows).
     * ERROR_NOT_FOUND means the I/O is finishing anyway: its packet comes. */
    if (op->bstate == B_PENDING)
        CancelIoEx(fd_handle(op->fd), op_ov(op));
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
    atomic_fetch_add(&p->syscalls, 1);
    if (!GetQueuedCompletionStatusEx(c->port, c->entries, want, &got,
                                     timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms,
                                     FALSE)) {
        /* WAIT_TIMEOUT, or the port is gone (cannot happen before destroy). */
        return 0;
    }
    size_t n = 0;
    ovl__mutex_lock(&p->lock);
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
            /* Wine sets only the low 32 bits of Internal: read it as the
             * 32-bit NTSTATUS it is. */
            NTSTATUS st = (NTSTATUS)(uint32_t)e->Internal;
            DWORD err = st == 0 ? ERROR_SUCCESS : RtlNtStatusToDosError(st);
            set_result(op, err, e->dwNumberOfBytesTransferred);
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

static const ovl__backend iocp_backend = {
    .name = "iocp", .id = OVL_BACKEND_IOCP, .init = w_init,
    .submit = w_submit, .cancel = w_cancel, .kick = w_kick, .wait = w_wait,
    .wake = w_wake, .associate = w_associate, .destroy = w_destroy,
};
const ovl__backend *const ovl__backend_iocp = &iocp_backend;

#else
const ovl__backend *const ovl__backend_iocp = NULL;
#endif /* _WIN32 */
