/*
 * ovl.h - overlapped (completion-based) I/O for C, Go and Rust.
 *
 * The one public header of libovl / ovl.dll. Hand-written; includes only
 * <stddef.h> and <stdint.h>. Every struct and signature uses fixed-width
 * types so that bindings need no per-platform declarations.
 *
 * The model is Windows' I/O completion port: you submit a read or a write,
 * hand over a pointer of your own (the *context*) and get back an op id. When
 * the operation finishes, the port's completion thread calls your registered
 * callback with a batch of ovl_completion records, each carrying your context,
 * the op id, the byte count or error.
 *
 * GUARANTEES (each is tested on every backend the host has; see tests/):
 *
 *  1. Exactly once. Every submit that returns OVL_OK produces exactly one
 *     completion, whether the I/O succeeds, fails, is cancelled or the port
 *     is closed. A submit that returns an error produces none and leaves
 *     nothing behind. A thread that exits does not take its I/O with it:
 *     where the OS cancels an op at the exit of the thread that issued it
 *     (io_uring), ovl issues it again, and it completes as if nothing
 *     happened; OVL_ECANCELED only ever answers ovl_cancel or close.
 *  2. Where callbacks run. On the port's completion thread, inside
 *     ovl_poll() / ovl_submit_and_poll() / ovl_close_port() in manual mode,
 *     or inside an ovl_poll(port, 0) or ovl_submit_and_poll(..., 0) that a
 *     thread calls on a port with a completion thread (it then delivers
 *     what is ready on the calling thread); never inside a plain submit,
 *     post or cancel, and never two at once for one port. A callback may
 *     submit, cancel and post on its own port; closing or polling its own
 *     port from inside a callback returns OVL_EDEADLK, also when the
 *     callback is further up the stack (a callback that polled another
 *     port, whose callback then closes or polls the first).
 *  3. Ownership. Buffers and contexts belong to the caller and must stay
 *     valid until that op's completion has been delivered (the callback that
 *     carries it has been entered). ovl never touches them afterwards.
 *  4. Back-pressure. At most `queue_depth` ops (posts included) are in flight
 *     per port; a submit past that fails at once with OVL_EQUEUEFULL. Short
 *     reads and writes are reported as they happened; end of file is a read
 *     completing with result == 0.
 *  5. Thread safety. Any thread may submit, cancel and post concurrently.
 *     fork(): a port belongs to the process that created it. In a child
 *     every call on an inherited port returns OVL_EFORKED, except
 *     ovl_close_port, which frees the child's copy of the port (its memory,
 *     its copies of the port's fds) without touching anything the parent
 *     still uses and returns OVL_OK; nothing a child does with an inherited
 *     port disturbs the parent's. A child may create and use ports of its
 *     own.
 *  6. Bad input returns a documented error code; it never crashes, leaks or
 *     disturbs other in-flight operations (see each function).
 *  7. No hidden allocation on the hot path: ops come from a per-port pool
 *     sized at creation.
 *
 * Error convention: every function returning int32_t returns OVL_OK (0) or a
 * negative OVL_E* code. There is no thread-local "last error".
 */
#ifndef OVL_H
#define OVL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- export macro ------------------------------------------------------ */
/* Building the DLL defines OVL_BUILDING; linking the static archive (tests)
 * defines OVL_STATIC; everyone else gets dllimport on Windows. */
#if defined(_WIN32) || defined(__CYGWIN__)
#  if defined(OVL_BUILDING)
#    define OVL_API __declspec(dllexport)
#  elif defined(OVL_STATIC)
#    define OVL_API
#  else
#    define OVL_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define OVL_API __attribute__((visibility("default")))
#else
#  define OVL_API
#endif

/* ---- version ----------------------------------------------------------- */
/* The version lives here and only here; CMake reads it from these lines. */
#define OVL_VERSION_MAJOR 0
#define OVL_VERSION_MINOR 1
#define OVL_VERSION_PATCH 0
#define OVL_VERSION_HEX ((OVL_VERSION_MAJOR << 16) | (OVL_VERSION_MINOR << 8) | OVL_VERSION_PATCH)

/* OVL_VERSION_HEX of the library actually loaded (compare with the header's
 * to detect a mismatched DLL). Any thread. */
OVL_API uint32_t ovl_version(void);
/* "MAJOR.MINOR.PATCH" of the loaded library; static storage. Any thread. */
OVL_API const char *ovl_version_string(void);

/* ---- error codes --------------------------------------------------------
 * The same numbers on every OS. Append-only: a retired code keeps its number.
 * X(name, value, message). OVL_ERRORS(X) is the single list from which the
 * enum below, ovl_strerror() and ovl_error_name() are generated. */
/* clang-format off */
#define OVL_ERRORS(X)                                                        \
    X(OK,          0, "success")                                             \
    X(EINVAL,     -1, "invalid argument")                                    \
    X(EBADF,      -2, "bad file descriptor or handle")                       \
    X(ENOMEM,     -3, "out of memory")                                       \
    X(EQUEUEFULL, -4, "queue full: queue_depth operations already in flight")\
    X(ECLOSED,    -5, "port is closed")                                      \
    X(ECANCELED,  -6, "operation cancelled")                                 \
    X(ENOENT,     -7, "no such operation (unknown or already completed id)") \
    X(EDEADLK,    -8, "not allowed from the port's own callback")            \
    X(EUNAVAIL,   -9, "backend not available on this host")                  \
    X(ENOTSUP,   -10, "operation not supported for this handle or backend")  \
    X(EIO,       -11, "input/output error")                                  \
    X(EACCES,    -12, "permission denied")                                   \
    X(ENOSPC,    -13, "no space left on device")                             \
    X(EPIPE,     -14, "broken pipe")                                         \
    X(ECONNRESET,-15, "connection reset by peer")                            \
    X(EAGAIN,    -16, "resource temporarily unavailable")                    \
    X(EINTR,     -17, "interrupted system call")                             \
    X(EFAULT,    -18, "bad address")                                         \
    X(ETOOBIG,   -19, "length exceeds OVL_MAX_IO_SIZE")                      \
    X(EISDIR,    -20, "is a directory")                                      \
    X(EFBIG,     -21, "file too large or offset out of range")               \
    X(EMODE,     -22, "wrong port mode (manual-mode call on a threaded port)")\
    X(EOS,       -23, "other operating-system error (see os_error)")        \
    X(EFORKED,   -24, "port belongs to the parent process (inherited across fork)") \
    X(ETIMEDOUT, -25, "operation timed out")                                 \
    X(ECONNREFUSED, -26, "connection refused")                               \
    X(EADDRINUSE, -27, "address already in use")                             \
    X(ENETUNREACH, -28, "network is unreachable")                            \
    X(EHOSTUNREACH, -29, "no route to host")                                 \
    X(ECONNABORTED, -30, "connection aborted")                               \
    X(ENOTCONN,  -31, "socket is not connected")                             \
    X(EADDRNOTAVAIL, -32, "address not available")                           \
    X(ENOTFOUND, -33, "no such local endpoint (nothing listens on that name)")
/* clang-format on */

#define OVL__ERR_ENUM(name, value, msg) OVL_##name = (value),
enum { OVL_ERRORS(OVL__ERR_ENUM) OVL__ERR_LAST = -33 };
#undef OVL__ERR_ENUM

/* Message for an OVL_E code ("unknown error" for anything else, never NULL).
 * Static storage. Any thread. */
OVL_API const char *ovl_strerror(int32_t code);
/* The code's name, e.g. "OVL_EINVAL" ("OVL_E?" if unknown). Any thread. */
OVL_API const char *ovl_error_name(int32_t code);

/* ---- basic types -------------------------------------------------------- */

/* A file descriptor (POSIX), HANDLE or SOCKET (Windows), widened to 64 bits
 * so that one type serves every platform. On POSIX pass (ovl_fd)fd. */
typedef uint64_t ovl_fd;

/* Offset marker for stream I/O (pipes, sockets, character devices): the
 * read/write happens at the handle's current position / next bytes. */
#define OVL_OFFSET_CURRENT ((int64_t)-1)

/* The largest length a single read or write accepts (Linux's MAX_RW_COUNT,
 * and below Windows' DWORD limit). Larger lengths fail with OVL_ETOOBIG. */
#define OVL_MAX_IO_SIZE 0x7ffff000u

/* Queue-depth bounds (ops in flight per port, posts included). */
#define OVL_DEFAULT_QUEUE_DEPTH 256u
#define OVL_MAX_QUEUE_DEPTH 16384u
/* Most fds one port can have registered at a time (ovl_register_fd). */
#define OVL_MAX_REGISTERED_FDS 64u

/* Op kinds, as reported in ovl_completion.op and ovl_request.op. */
#define OVL_OP_READ 1u
#define OVL_OP_WRITE 2u
#define OVL_OP_FSYNC 3u
#define OVL_OP_POST 4u
#define OVL_OP_ACCEPT 5u       /* a connection from a listening socket */
#define OVL_OP_CONNECT 6u      /* connect a socket to an address */
#define OVL_OP_SHUTDOWN 7u     /* shut down one or both directions */
#define OVL_OP_TIMER 8u        /* completes after a delay */
#define OVL_OP_LOCAL_ACCEPT 9u /* a connection on a local listener */
#define OVL_OP_LOCAL_DIAL 10u  /* connect to a local endpoint by name */

/* ovl_submit_shutdown / ovl_request.flags of OVL_OP_SHUTDOWN. */
#define OVL_SHUT_RD 1u /* no more receives */
#define OVL_SHUT_WR 2u /* no more sends: the peer reads end of file */
#define OVL_SHUT_RDWR 3u

/* A socket address, as the OS's struct sockaddr (sockaddr_in, sockaddr_in6,
 * sockaddr_un; SOCKADDR on Windows) in `data`, `len` bytes long. 136
 * bytes, 8-aligned. */
#define OVL_ADDR_MAX 128u
typedef struct ovl_addr {
    union {
        uint8_t bytes[OVL_ADDR_MAX];
        uint64_t align_;
    } data;
    uint32_t len;      /* bytes of data in use */
    uint32_t reserved; /* 0 */
} ovl_addr;

/* ovl_submit_fsync flags. */
#define OVL_FSYNC_DATA 1u /* data only (fdatasync); default flushes metadata */

/* Backends, for ovl_port_config.backend. */
#define OVL_BACKEND_AUTO 0u    /* io_uring if usable, else threads; IOCP on Windows */
#define OVL_BACKEND_URING 1u   /* Linux io_uring on raw system calls */
#define OVL_BACKEND_THREADS 2u /* POSIX worker pool + readiness (fallback) */
#define OVL_BACKEND_IOCP 3u    /* Windows I/O completion port */

/* ovl_port_config.flags */
#define OVL_PORT_MANUAL 1u /* no completion thread: ovl_poll() delivers */
/* OVL_PORT_INLINE is retired and its bit stays reserved: ovl_create_port
 * refuses it. A submitter that wants what completed inside its submit
 * delivered on its own thread calls ovl_submit_and_poll(..., 0). */
#define OVL_PORT_INLINE 2u /* retired: refused with OVL_EINVAL */

/* An opaque port. Created by ovl_create_port, released by ovl_close_port.
 * An ovl_port * is a handle, not an address (never dereference it): a slot
 * in the library's table of ports plus a generation. After close the slot
 * serves later ports under new generations, so a stale handle is always
 * recognised (OVL_ECLOSED) and never reaches another port, and the memory
 * kept for closed ports is bounded by the most ports open at one time (plus
 * a constant), however many were ever created. A value that was never a
 * handle returns OVL_EINVAL. */
typedef struct ovl_port ovl_port;

/* One finished operation, as handed to the callback. 32 bytes on 64-bit. */
typedef struct ovl_completion {
    void *ctx;        /* the caller's context, exactly as submitted */
    uint64_t id;      /* the op id the submit returned (never 0) */
    int64_t result;   /* >= 0: bytes transferred (0 on a read = end of file;
                         for OVL_OP_POST the value given to ovl_post);
                         < 0: an OVL_E code (OVL_ECANCELED if cancelled) */
    uint32_t op;      /* OVL_OP_* of the request */
    int32_t os_error; /* raw errno / GetLastError() behind a negative
                         result, for diagnostics; 0 otherwise */
} ovl_completion;

/* The registered callback. Receives a batch of n >= 1 completions; `items`
 * is borrowed for the duration of the call only. `userdata` is what was
 * registered with it. Runs on the port's completion thread (or inside
 * ovl_poll / ovl_submit_and_poll / ovl_close_port in manual mode, or inside
 * a caller's ovl_poll(port, 0) or ovl_submit_and_poll(..., 0) on a port
 * with a completion thread), never concurrently
 * with another callback of the same port. It may submit, post and cancel on
 * its own port; submits made here are flushed together after the batch (one
 * system call). It must not block for long: it holds up every other
 * completion. */
typedef void (*ovl_callback)(const ovl_completion *items, size_t n, void *userdata);

/* Port configuration: a versioned struct. Fill it with
 * ovl_port_config_init(&cfg, sizeof cfg), then change fields. The library
 * reads only the first `size` bytes, so a program built against an older
 * header keeps working with a newer library. */
/* ovl_port_config.spin_usec: the completion thread never spins. */
#define OVL_SPIN_NONE 0xFFFFFFFFu

typedef struct ovl_port_config {
    uint32_t size;         /* sizeof(ovl_port_config) as the caller knows it */
    uint32_t queue_depth;  /* max ops in flight; default 256, 1..16384 */
    uint32_t backend;      /* OVL_BACKEND_*; default AUTO. The environment
                             variable OVL_BACKEND=uring|threads|iocp|auto
                             overrides AUTO (only AUTO). */
    uint32_t flags;        /* OVL_PORT_* */
    uint32_t threads;      /* worker threads of the threads backend
                             (0 = 4, at most 1024); on io_uring, when not
                             0, the cap on the kernel's io-wq workers per
                             kind (Linux 5.15+; 0 = the kernel default) */
    uint32_t spin_usec;    /* how long the completion thread polls for the
                             next completions before it sleeps: 0 = the
                             library decides (it spins briefly after a
                             batch, only while that finds completions, and
                             never on an idle port); OVL_SPIN_NONE = never;
                             any other value = always that many µs after
                             a batch */
    ovl_callback callback; /* may be NULL and set later with ovl_set_callback */
    void *userdata;        /* passed to callback */
} ovl_port_config;

/* Fill *out with defaults for a struct of `size` bytes (pass sizeof *out).
 * Returns OVL_EINVAL if out is NULL or size is smaller than the first
 * version of the struct. Any thread. */
OVL_API int32_t ovl_port_config_init(ovl_port_config *out, uint32_t size);

/* ---- port lifecycle ----------------------------------------------------- */

/* Create a port. `cfg` may be NULL for defaults; it is read during the call
 * only. On success *out receives the port and, unless OVL_PORT_MANUAL is
 * set, the port's completion thread is running.
 * Errors: OVL_EINVAL (out NULL, bad size/depth/backend number, flags other
 * than OVL_PORT_MANUAL (OVL_PORT_INLINE is retired), or an
 * OVL_BACKEND environment value other than uring|threads|iocp|auto),
 * OVL_EUNAVAIL (an explicitly requested backend the host lacks: no silent
 * substitute; under AUTO a port whose own io_uring ring cannot be set up
 * falls back to threads instead), OVL_ENOMEM, OVL_EAGAIN (a thread could not
 * be started),
 * OVL_EOS (another OS failure creating the kernel objects).
 * Any thread. No completion. */
OVL_API int32_t ovl_create_port(const ovl_port_config *cfg, ovl_port **out);

/* Register (or replace) the batch callback. Takes effect from the next batch;
 * a batch already being delivered finishes with the previous callback.
 * cb == NULL discards later completions (they still count as delivered).
 * Errors: OVL_EINVAL (port NULL), OVL_ECLOSED. Any thread. */
OVL_API int32_t ovl_set_callback(ovl_port *port, ovl_callback cb, void *userdata);

/* Bind a handle to the port. Required on Windows before the first I/O on a
 * HANDLE/SOCKET (it binds it to the completion port: a handle can be bound
 * to one port only, for its lifetime); harmless and optional elsewhere.
 * The fd is borrowed: the caller keeps ownership and must not close it while
 * ops on it are in flight.
 * Errors: OVL_EINVAL, OVL_EBADF, OVL_ECLOSED. Any thread. No completion. */
OVL_API int32_t ovl_associate(ovl_port *port, ovl_fd fd);

/* Register an fd with the port, for speed: on io_uring, ops that name this
 * fd then use a registered ("fixed") file and skip the kernel's
 * per-operation file lookup and reference counting. The port
 * holds its own reference to the open file until ovl_unregister_fd or
 * ovl_close_port (and, after an unregister, until the ops submitted before
 * it complete): unregister BEFORE closing the fd, or a new file opened
 * later under the same number would be ignored in favour of the old one.
 * Ops in flight are not affected by either call: each executes on the file
 * that was registered when it was submitted. The threads backend keeps its
 * own duplicate of the fd in the same way (so the same rules hold there);
 * on IOCP the fd is only recorded (same bookkeeping, no effect on I/O).
 * Errors: OVL_EINVAL (port NULL, or fd already registered), OVL_EBADF (not
 * a plausible fd; on io_uring, not an open one), OVL_ENOSPC (already
 * OVL_MAX_REGISTERED_FDS registered), OVL_ECLOSED, OVL_EOS. Any thread,
 * including the port's callback. No completion. */
OVL_API int32_t ovl_register_fd(ovl_port *port, ovl_fd fd);

/* Undo ovl_register_fd; later ops on the fd use it directly again.
 * Errors: OVL_EINVAL, OVL_ENOENT (not registered), OVL_ECLOSED. Any thread,
 * including the port's callback. No completion. */
OVL_API int32_t ovl_unregister_fd(ovl_port *port, ovl_fd fd);

/* Stop the port: new submits fail with OVL_ECLOSED, every op in flight is
 * cancelled, every remaining completion is delivered (cancelled ones with
 * OVL_ECANCELED, ops that finished first with their real result), the
 * completion thread is joined and all resources are freed. Returns only when
 * no callback of this port can run any more. In manual mode the remaining
 * completions are delivered from inside this call, on the calling thread.
 * When it returns the port holds no reference to any file: registered fds
 * (ovl_register_fd) and the files of finished ops are released already.
 *
 * Calling it from the port's own callback (or from a callback that runs,
 * on this thread, inside one of the port's callbacks) returns OVL_EDEADLK
 * and leaves the port open. So does a close that could never finish
 * because the port's callback is itself blocked, on another thread, closing
 * or polling a port whose callback is on this thread's stack: of two ports
 * whose callbacks close each other, one close succeeds and the other gets
 * OVL_EDEADLK. A second close that arrives while another is under way waits
 * for it to finish and then returns OVL_ECLOSED; any later call on a closed
 * port (double close, or any other function) returns OVL_ECLOSED: the
 * handle stays safe to pass (see ovl_port). An op that the OS cannot
 * interrupt (a regular-file read already inside a worker thread or the
 * kernel) is waited for. In a child of fork(), on a port of its parent:
 * see guarantee 5.
 * Any thread except the port's own callback. */
OVL_API int32_t ovl_close_port(ovl_port *port);

/* "uring", "threads" or "iocp"; "invalid" for NULL or a value that is not
 * a handle; "closed" once the port's handle slot serves a newer port.
 * Static storage. */
OVL_API const char *ovl_backend_name(const ovl_port *port);

/* Why OVL_BACKEND_AUTO chooses what it chooses on this host, e.g.
 * "io_uring available" or "io_uring_setup failed: EPERM (blocked by seccomp?)".
 * Probes once per process (a throw-away ring), then caches. If out_backend is
 * not NULL it receives the OVL_BACKEND_* auto resolves to (before any
 * OVL_BACKEND environment override). Static storage. Any thread. */
OVL_API const char *ovl_backend_reason(uint32_t *out_backend);

/* ---- submitting ---------------------------------------------------------
 * Common rules for every submit:
 *  - port: OVL_EINVAL if NULL or not a handle, OVL_ECLOSED if closing or
 *    closed, OVL_EFORKED in a child of fork() (guarantee 5).
 *  - fd: values that can never be a handle (a POSIX fd above INT_MAX, a
 *    Windows INVALID_HANDLE_VALUE) fail the submit with OVL_EBADF. Any other
 *    fd the OS rejects is reported in the COMPLETION, on every backend: one
 *    place to handle it. A closed or invalid fd gives OVL_EBADF; one opened
 *    without the access the op needs gives OVL_EBADF on POSIX (EBADF) and
 *    OVL_EACCES on Windows (ERROR_ACCESS_DENIED).
 *  - buf: borrowed until the completion is delivered. NULL with len > 0 is
 *    OVL_EINVAL (also OVL_EINVAL for a NULL request array).
 *  - len: at most OVL_MAX_IO_SIZE, else OVL_ETOOBIG. len == 0 is allowed and
 *    completes at once with result 0 (a closed fd may still give OVL_EBADF).
 *  - Writes never raise SIGPIPE: a write to a pipe without readers or to a
 *    socket whose peer is gone completes OVL_EPIPE (or OVL_ECONNRESET), and
 *    the caller's signal mask, dispositions and pending signals are left as
 *    they were.
 *  - An op works on the file the fd named when the submit call returned
 *    (for a submit made inside a callback on io_uring: when the callback
 *    returned, as its submits are flushed after the batch), even if the
 *    caller then closes the fd or the number is reused while the op is in
 *    flight; a later op on a reused number is unaffected.
 *  - Stream ops never hold a thread of the library hostage: on the threads
 *    backend a blocking fd that offers no non-blocking access at all (a
 *    blocking eventfd write, say) completes OVL_ENOTSUP instead.
 *  - offset: >= 0 for positional I/O (pread/pwrite-like; the handle's file
 *    position is not used or moved), OVL_OFFSET_CURRENT for stream I/O;
 *    any other negative value is OVL_EINVAL; offset + len beyond INT64_MAX
 *    is OVL_EFBIG.
 *  - ctx: opaque to ovl, returned in the completion; may be NULL.
 *  - out_id: may be NULL; receives the op id (never 0), usable with
 *    ovl_cancel until its completion has been delivered.
 *  - OVL_EQUEUEFULL when queue_depth ops are in flight (nothing is queued:
 *    retry after a completion).
 *  - On OVL_OK exactly one completion follows; on error none.
 *  - Any thread, including the port's callback. */

OVL_API int32_t ovl_submit_read(ovl_port *port, ovl_fd fd, void *buf, size_t len, int64_t offset,
                                void *ctx, uint64_t *out_id);

OVL_API int32_t ovl_submit_write(ovl_port *port, ovl_fd fd, const void *buf, size_t len,
                                 int64_t offset, void *ctx, uint64_t *out_id);

/* Flush the file's data (and metadata unless OVL_FSYNC_DATA) to storage.
 * Completion result 0 on success. flags other than OVL_FSYNC_DATA:
 * OVL_EINVAL. */
OVL_API int32_t ovl_submit_fsync(ovl_port *port, ovl_fd fd, uint32_t flags, void *ctx,
                                 uint64_t *out_id);

/* One request of a batch submit. 64 bytes on 64-bit. */
typedef struct ovl_request {
    uint32_t op;    /* OVL_OP_* */
    uint32_t flags; /* OVL_FSYNC_DATA for fsync; OVL_SHUT_* for shutdown;
                         0 otherwise */
    ovl_fd fd;      /* the handle; the listening socket for accept; 0 for
                         a post, a timer or a local op */
    void *buf;      /* read target / write source (const for writes);
                         accept: an ovl_addr * for the peer's address, or
                         NULL; connect: the const ovl_addr * to connect to;
                         local accept: the ovl_local *; local dial: the
                         name (const char *, read during the submit call
                         only); NULL for a post, a timer or a shutdown */
    uint64_t len;   /* read/write length; 0 for the other ops */
    int64_t offset; /* >= 0 or OVL_OFFSET_CURRENT; for OVL_OP_POST the
                         value to deliver as the result (any value), the
                         batch form of ovl_post; 0 for the other ops */
    void *ctx;
    uint64_t id;        /* out: the op id once submitted, 0 if not */
    int64_t timeout_ns; /* > 0: if the op has not completed this long after
                         the submit, it is cancelled and completes with
                         OVL_ETIMEDOUT (an op that finished first, or that
                         the OS cannot interrupt, carries its real result);
                         0: no timeout; < 0: OVL_EINVAL. For OVL_OP_TIMER
                         the delay (> 0); for OVL_OP_LOCAL_DIAL the time
                         it may keep retrying a busy endpoint. Not for
                         posts. */
} ovl_request;

/* Submit n requests with one lock and (io_uring) one system call. Requests
 * are taken in order; on the first one that cannot be submitted the call
 * stops and returns its error code. *out_submitted (may be NULL) receives
 * how many were submitted: exactly those get a completion and an id, the
 * rest have id 0 and get none. n == 0 returns OVL_OK. */
OVL_API int32_t ovl_submit(ovl_port *port, ovl_request *reqs, size_t n, size_t *out_submitted);

/* ---- connections and timers ----------------------------------------------
 * The same rules as the other submits (one completion, cancel, close,
 * back-pressure, bad input); a timeout for any of them goes through
 * ovl_submit's ovl_request.timeout_ns. Sockets are the caller's, created
 * as it likes, blocking or not; on Windows associate them with the port
 * first (ovl_associate). The library leaves their file status flags alone,
 * with one exception: on the threads backend a connect on a blocking
 * socket sets O_NONBLOCK around the connect() call itself and restores the
 * flags at once (POSIX has no other way to start a connect that does not
 * hold a thread). Prefer non-blocking listeners there too: when another
 * thread accepts from the same blocking listener at the same moment, an
 * accept op of the threads backend may wait in accept() for the next
 * connection, and its cancel, its timeout and close wait with it. */

/* Accept a connection on a listening socket. The completion's result is the
 * new connection's handle (>= 0; a POSIX fd or a Windows SOCKET, created
 * close-on-exec, blocking as the OS creates it, on Windows already
 * associated with this port and usable with getpeername & co); it belongs
 * to the caller once delivered (an accepted connection that nobody can
 * receive, because the op was cancelled or the port closed after the OS
 * made it, is closed by the library). `peer` (may be NULL) is borrowed
 * until the completion and receives the peer's address and its length
 * (peer->len on entry is not read).
 * Errors at submit: as every submit; a non-listening socket is reported in
 * the completion (OVL_EINVAL). */
OVL_API int32_t ovl_submit_accept(ovl_port *port, ovl_fd listener, ovl_addr *peer, void *ctx,
                                  uint64_t *out_id);

/* Connect a socket to `addr` (borrowed until the completion; addr->len
 * bytes of sockaddr). Completion result 0 on success; refused is
 * OVL_ECONNREFUSED, and so on (a Unix socket whose listener's backlog is
 * full: OVL_EAGAIN). A connect that is cancelled or times out may leave the
 * socket connecting in the kernel: close it. A NULL addr or a len of 0 or
 * above OVL_ADDR_MAX is OVL_EINVAL at submit. */
OVL_API int32_t ovl_submit_connect(ovl_port *port, ovl_fd sock, const ovl_addr *addr, void *ctx,
                                   uint64_t *out_id);

/* Shut down one or both directions of a connected socket (how: OVL_SHUT_*;
 * anything else is OVL_EINVAL). OVL_SHUT_WR is the half-close a protocol
 * uses to end its request: the peer's reads then return 0. Result 0. */
OVL_API int32_t ovl_submit_shutdown(ovl_port *port, ovl_fd sock, uint32_t how, void *ctx,
                                    uint64_t *out_id);

/* A timer: completes with result 0 after delay_ns (> 0, else OVL_EINVAL),
 * or with OVL_ECANCELED if cancelled first. Counts against queue_depth
 * until delivered. */
OVL_API int32_t ovl_submit_timer(ovl_port *port, int64_t delay_ns, void *ctx, uint64_t *out_id);

/* Post a user completion (like PostQueuedCompletionStatus): it arrives in a
 * callback batch with op OVL_OP_POST, result `value` (any value, delivered
 * verbatim) and ctx. Counts against queue_depth until delivered. Useful to
 * run work on the completion thread or to wake a thread in ovl_poll. */
OVL_API int32_t ovl_post(ovl_port *port, int64_t value, void *ctx, uint64_t *out_id);

/* ---- local endpoints -------------------------------------------------------
 * One listener and one dialer for local IPC, the same code on every
 * platform: a named pipe on Windows, a stream Unix socket elsewhere.
 *
 * Names. One portable form, UTF-8, NUL-terminated:
 *  - a plain name ("myservice": no '/' and no '\\', at most 200 bytes)
 *    is \\.\pipe\myservice on Windows and the socket file
 *    /tmp/ovl-myservice.sock on POSIX;
 *  - "\\.\pipe\NAME" is accepted everywhere: on Windows it is the pipe as
 *    it is, on POSIX it is the plain name NAME, so one string serves both;
 *  - native names: on Windows any name that starts with two backslashes
 *    (\\.\pipe\x, \\server\pipe\x) is used as it is; on POSIX a name with
 *    a '/' is a socket path as it is (relative to the working directory
 *    unless it starts with '/'), and on Linux a name that starts with '@'
 *    is "@" + NAME in the abstract namespace (no file at all).
 * A name that fits none of these, is empty, or is too long for the
 * platform (a socket path has 107 bytes, a pipe name 256 characters) is
 * OVL_EINVAL.
 *
 * A connection (accepted or dialed) is a handle the caller owns once its
 * completion is delivered: on POSIX a connected stream Unix socket
 * (close-on-exec, blocking, as an accepted connection), on Windows an
 * overlapped pipe handle already associated with the port (do not
 * ovl_associate it again). Read, write and (POSIX) shutdown it with the
 * usual submits on the same port; close it with close() / CloseHandle().
 * Reading after the peer has gone is end of file (result 0) everywhere. */

/* An opaque local listener, from ovl_local_listen, freed by ovl_local_close
 * (after which the pointer must not be passed again, as after free()). */
typedef struct ovl_local ovl_local;

/* ovl_local_config.flags */
/* OVL_LOCAL_MESSAGE, Windows: a message-mode pipe (each write is one
 * message; default byte mode); POSIX: OVL_ENOTSUP at listen.
 * OVL_LOCAL_ALLOW_REMOTE, Windows: let remote clients connect (default:
 * PIPE_REJECT_REMOTE_CLIENTS); POSIX: no effect (Unix sockets are local). */
#define OVL_LOCAL_MESSAGE 1u      /* message-mode pipe (Windows) */
#define OVL_LOCAL_ALLOW_REMOTE 2u /* remote clients may connect (Windows) */

/* Listener options: a versioned struct like ovl_port_config. Fill it with
 * ovl_local_config_init(&cfg, sizeof cfg), then change fields. 32 bytes on
 * 64-bit. */
typedef struct ovl_local_config {
    uint32_t size;       /* sizeof(ovl_local_config) as the caller knows it */
    uint32_t flags;      /* OVL_LOCAL_* */
    uint32_t mode;       /* POSIX: permission bits of the socket file
                             (default 0600: its owner only; 0666 lets every
                             user connect); ignored for abstract names and
                             on Windows */
    uint32_t backlog;    /* POSIX: listen() backlog, as given (default 128;
                             0 lets one client wait on Linux); Windows:
                             ignored (an instance waits per accept in flight) */
    uint32_t in_buffer;  /* bytes of the pipe's input buffer (Windows,
                             default 65536) or the socket's SO_RCVBUF (POSIX,
                             0: the system's default) */
    uint32_t out_buffer; /* likewise the output buffer / SO_SNDBUF */
    const char *sddl;    /* Windows: the pipe's security descriptor as an
                             SDDL string, e.g. "D:P(A;;GA;;;AU)" (NULL: the
                             system's default, full control for SYSTEM,
                             administrators and the creator); read during
                             ovl_local_listen only. POSIX: must be NULL
                             (else OVL_ENOTSUP): use mode */
} ovl_local_config;

/* Fill *out with defaults for a struct of `size` bytes (pass sizeof *out).
 * OVL_EINVAL if out is NULL or size is smaller than the first version.
 * Any thread. */
OVL_API int32_t ovl_local_config_init(ovl_local_config *out, uint32_t size);

/* Create a local listener on `port` (cfg may be NULL for the defaults;
 * name and cfg are read during the call only). On success *out receives
 * the listener, already listening: a client may connect before the first
 * accept is submitted (the accept then completes at once with it).
 * Windows: the first pipe instance is created with
 * FILE_FLAG_FIRST_PIPE_INSTANCE, so a second listener on the same name,
 * in this process or another, fails with OVL_EADDRINUSE. POSIX: a socket
 * file left behind by a server that is gone (nobody accepts on it) is
 * replaced; one that a live server listens on gives OVL_EADDRINUSE, and so
 * does a path that exists and is not a socket (never removed). Permissions
 * (mode) are set before the socket starts listening.
 * Errors: OVL_EINVAL (NULL port, name or out; bad name; cfg->size too
 * small; unknown flags), OVL_ECLOSED, OVL_EFORKED, OVL_ENOTSUP (an option
 * the platform lacks, see the config; a backend without connection ops),
 * OVL_EADDRINUSE, OVL_EACCES (no permission for the path or the pipe),
 * OVL_ENOMEM, OVL_EOS (another OS failure, e.g. a bad SDDL string).
 * Any thread, including the port's callback. No completion. */
OVL_API int32_t ovl_local_listen(ovl_port *port, const char *name, const ovl_local_config *cfg,
                                 ovl_local **out);

/* Accept one connection on a local listener, on the listener's port. The
 * completion (op OVL_OP_LOCAL_ACCEPT) carries the connected handle as its
 * result (>= 0); it is the caller's once delivered (one that nobody can
 * receive, because the port has no callback, is closed by the library).
 * Several accepts may be in flight at once; each completes with its own
 * connection. A client that connected and left before its accept: on
 * Windows it gives no completion of its own (ERROR_NO_DATA, answered with
 * DisconnectNamedPipe and a new wait, never a busy loop) and the accept
 * waits for the next client; on POSIX the kernel still hands over that
 * connection, whose first read is end of file.
 * A timeout goes through ovl_submit (OVL_OP_LOCAL_ACCEPT, buf = the
 * listener, timeout_ns). Errors at submit: as every submit, OVL_EINVAL for
 * a NULL listener; OVL_ECLOSED if the listener or its port is closed.
 * Any thread, including the port's callback. */
OVL_API int32_t ovl_submit_local_accept(ovl_local *listener, void *ctx, uint64_t *out_id);

/* Connect to the local endpoint `name` (see Names; read during the call
 * only). One completion (op OVL_OP_LOCAL_DIAL): the connected handle
 * (>= 0, the caller's once delivered), or:
 *   OVL_ENOTFOUND  nothing listens on that name (no pipe; no socket file,
 *                  or a stale one), at once, without waiting;
 *   OVL_ETIMEDOUT  the endpoint stayed busy (Windows: every pipe instance
 *                  taken, ERROR_PIPE_BUSY; POSIX: the listener's backlog
 *                  full) for timeout_ns; while busy the dial tries again
 *                  with a short back-off (1 ms doubling to 10 ms) on the
 *                  port's own timers: no thread waits for it;
 *   OVL_ECANCELED  ovl_cancel or close of the port;
 *   OVL_EACCES     the endpoint refused this user (permissions, SDDL);
 *   another code   for other OS failures.
 * timeout_ns 0 retries a busy endpoint until cancelled; < 0 is OVL_EINVAL.
 * The library owns the connection until the completion is delivered and
 * closes it itself on any failure or cancel. Errors at submit: as every
 * submit, OVL_EINVAL for a bad name, OVL_ENOTSUP for a backend without
 * connection ops, OVL_EOS (or OVL_ENOMEM) when no socket can be created.
 * Any thread, including the port's callback. */
OVL_API int32_t ovl_submit_local_dial(ovl_port *port, const char *name, int64_t timeout_ns,
                                      void *ctx, uint64_t *out_id);

/* Close a listener: the accepts in flight on it complete, once, with
 * OVL_ECANCELED (one whose connection had already been made carries it,
 * as any op that finished first), no new accept is accepted
 * (OVL_ECLOSED), no client can connect any more, and on POSIX the socket
 * file it created is removed (unless another server has replaced it
 * meanwhile). Returns without waiting for those completions; the
 * listener's memory is freed once they are delivered. Connections already
 * handed out are the caller's and stay open. The listener may outlive its
 * port (close the port first, then the listener, or the other way round).
 * Errors: OVL_EINVAL (NULL or not a listener). Any thread, including the
 * port's callback. No completion. */
OVL_API int32_t ovl_local_close(ovl_local *listener);

/* Request cancellation of op `id`. Returns OVL_OK if the op was in flight: its
 * one completion still follows, with OVL_ECANCELED if it was stopped, or with
 * its real result if it had already finished or was inside a call that the OS
 * cannot interrupt (a regular-file pread in a worker thread, say). Returns
 * OVL_ENOENT if the id is unknown, is another port's, or its completion has
 * already been delivered (or is being delivered), OVL_ECLOSED after close.
 * An id is only ever valid on the port that issued it. Any thread,
 * including the port's callback. No completion of its own. */
OVL_API int32_t ovl_cancel(ovl_port *port, uint64_t id);

/* ---- manual mode -------------------------------------------------------- */

/* Deliver completions on the calling thread.
 *
 * Manual mode (OVL_PORT_MANUAL): waits up to timeout_ms (-1 = forever, 0 =
 * don't wait) for at least one completion, then delivers the available ones
 * through the callback, in batches, up to about queue_depth per call (so a
 * callback that submits again for every completion, whose reads may
 * complete at once, cannot keep one call going for ever: call ovl_poll in
 * a loop). Calls from several threads are
 * serialized (callbacks never overlap); with timeout_ms == 0 a call that
 * finds another thread delivering returns 0 at once instead of waiting for
 * it; that thread then looks once more, without waiting, before it lets go
 * of delivery, so what was ready when this call returned is delivered
 * (an outside poller whose wake-up led to this call needs no retry). A
 * posted completion wakes a waiting ovl_poll.
 *
 * A port with a completion thread, timeout_ms == 0: if the completion
 * thread is not delivering at that moment, the call delivers one batch of
 * the completions that are ready now on the calling thread, then flushes
 * the submits its callbacks made; otherwise it returns 0 at once, and the
 * completion thread delivers them as usual. Called right after a submit,
 * it takes completions that finished inside the submit itself (io_uring
 * page-cache reads and posts do) on the calling thread instead of handing
 * them to the completion thread (ovl_submit_and_poll does both in one
 * call). On the threads and IOCP backends the completion thread holds
 * delivery while it waits, so the call there mostly returns 0.
 *
 * A port with a completion thread, timeout_ms != 0: the calling thread
 * takes delivery over from the completion thread (waiting for it to finish
 * the batch it is delivering) and then behaves as in manual mode: it waits
 * up to timeout_ms for at least one completion and delivers on this
 * thread; the completion thread takes delivery back when the call
 * returns. Completions the completion thread delivered before the call
 * took over are not waited for, so with ops submitted earlier prefer a
 * finite timeout, or ovl_submit_and_poll, which takes over before it
 * submits.
 *
 * Returns how many completions were delivered (0 on timeout or none) or a
 * negative code: OVL_EDEADLK from inside the port's callback (or a
 * callback that runs inside it on this thread), or when the wait could
 * never end (see ovl_close_port), OVL_ECLOSED (also when the port is
 * closed while the call waits), OVL_EINVAL. */
OVL_API int32_t ovl_poll(ovl_port *port, int32_t timeout_ms);

/* Submit n requests as ovl_submit does, then deliver on the calling thread
 * as ovl_poll(port, timeout_ms) does: the shape of liburing's
 * io_uring_submit_and_wait. On an io_uring port whose delivery is free
 * (manual) or taken over (a port with a completion thread, timeout_ms !=
 * 0), the submission and the wait are one system call. On a port with a
 * completion thread this is the call for a submitter that wants its
 * completions delivered on its own thread: with timeout_ms 0 what
 * completes inside its submit; with a timeout, delivery is taken over
 * before the submit (see ovl_poll), so what this call submits is
 * delivered by it or is still in flight when it returns, and a submitter
 * that would otherwise sleep until its I/O completes waits here instead,
 * with no hand-off between threads. The callback may run inside this
 * call, so do not make it while holding a lock the callback takes. What
 * the call does not deliver, the completion thread does. Returns how many
 * completions were delivered (>= 0), or a negative code: the submit's
 * error (*out_submitted, which may be NULL, says how many requests were
 * submitted; those complete later, nothing is delivered by this call), or
 * ovl_poll's (OVL_EDEADLK from inside the port's callback, where a plain
 * ovl_submit is the call to make). n == 0 only polls. Any thread. */
OVL_API int32_t ovl_submit_and_poll(ovl_port *port, ovl_request *reqs, size_t n,
                                    size_t *out_submitted, int32_t timeout_ms);

/* Manual mode: a handle another event loop can wait on (epoll, kqueue, Go's
 * poller, tokio's AsyncFd): it becomes readable when completions may be
 * ready; then call ovl_poll(port, 0). Readable is a hint, never a loss: it
 * is always readable while completions wait, but an ovl_poll that
 * delivered some may leave it readable (resetting it would cost a system
 * call on every call of the fast path); the ovl_poll that then finds
 * nothing resets it. It is not signalled for what a thread reaps inside
 * ovl_poll / ovl_submit_and_poll (io_uring: any completion that call
 * delivers, such as a page-cache read done inside its own submit; threads:
 * one that arrives while the call sleeps waiting for it, and, for an
 * ovl_submit_and_poll with a timeout that found delivery free, one that
 * arrives between its submit and its wait); what such a call leaves
 * undelivered signals it by the time the call returns. On Linux an
 * eventfd. Borrowed: valid
 * until ovl_close_port; do not close it or read from it.
 * Errors: OVL_EINVAL, OVL_EMODE (not manual), OVL_ECLOSED, OVL_ENOTSUP
 * (backend without one: IOCP in this version). */
OVL_API int32_t ovl_port_event(ovl_port *port, ovl_fd *out);

/* ---- introspection ------------------------------------------------------ */

/* Counters of a port, for tests, benchmarks and leak checks. Versioned like
 * the config: set `size` to sizeof(ovl_stats) before the call. */
typedef struct ovl_stats {
    uint32_t size;
    uint32_t inflight;  /* ops submitted, completion not yet delivered */
    uint64_t submitted; /* ops accepted since creation (posts included) */
    uint64_t completed; /* completions delivered */
    uint64_t cancels;   /* cancellation requests accepted */
    uint64_t batches;   /* callback invocations */
    uint64_t stale;     /* OS completions for unknown/stale ops (ignored;
                                always 0 unless something is badly wrong) */
    uint64_t syscalls;  /* enter/wait system calls made by the backend */
} ovl_stats;

/* Snapshot the counters. Works on a closed port too (its final figures),
 * until its handle slot serves a newer port (then OVL_ECLOSED).
 * Errors: OVL_EINVAL (not a handle, NULL out, size too small), OVL_ECLOSED,
 * OVL_EFORKED. Any thread. */
OVL_API int32_t ovl_port_stats(const ovl_port *port, ovl_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* OVL_H */
