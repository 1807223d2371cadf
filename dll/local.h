/* local.h - local endpoints (ovl_local_*): what the common part (local.c),
 * the platform parts (local_posix.c, local_win.c) and the IOCP backend
 * share. See docs/DESIGN.md, "Local endpoints".
 *
 * A local op is an ordinary op of the port's pool with a side record (an
 * ovl__lx, one per pool slot, allocated with the port's first local op).
 * How it runs depends on the backend:
 *  - POSIX (uring, threads): the core turns it into the backend's own ops.
 *    A local accept IS an accept on the listening Unix socket; a dial is a
 *    connect on a socket the library made, and, while the listener's
 *    backlog is full (EAGAIN), a timer between two attempts: the op's
 *    kind changes from stage to stage under the same token, and
 *    ovl__local_settle, on the delivery side, starts the next stage or
 *    ends the op. The caller sees one op, one completion.
 *  - Windows (iocp, local_native): the backend runs OVL_OP_LOCAL_ACCEPT
 *    (ConnectNamedPipe on a pipe instance) and OVL_OP_LOCAL_DIAL
 *    (CreateFile, retried from the backend's deadline heap while the pipe
 *    is busy) itself; the core only keeps the listener referenced.
 */
#ifndef OVL_LOCAL_H
#define OVL_LOCAL_H

#include "ovl_internal.h"

#define OVL__LOCAL_MAGIC 0x6f766c4cu /* "ovlL" */
#define OVL__LOCAL_DEAD 0x64656164u  /* a freed listener, for a debugger */

/* Longest name accepted (bytes of UTF-8, before the platform's prefix). */
#define OVL__LOCAL_NAME_MAX 256u

struct ovl_local {
    uint32_t magic;
    uint32_t refs;  /* the caller's (until ovl_local_close) and one per
                           op in flight on it (p->lock) */
    bool closed;    /* ovl_local_close was called (p->lock) */
    ovl_port *port; /* the port's handle */
    ovl_port *p;    /* its struct (never freed, so always lockable) */
    uint32_t flags; /* ovl_local_config.flags */
    uint32_t in_buffer, out_buffer;
    /* POSIX */
    int fd;            /* the listening socket */
    bool have_file;    /* created a socket file, to remove at close */
    uint64_t dev, ino; /* that file, as created */
    char path[112];    /* its path */
    /* Windows (local_win.c) */
    void *os;
};

/* The side record of a local op (one per pool slot; ukind 0: not local). */
typedef struct ovl__lx {
    ovl_local *owner;    /* accept: the listener (holds a reference) */
    uint32_t ukind;      /* OVL_OP_LOCAL_*: what the caller submitted */
    uint32_t backoff_us; /* dial: the next pause while busy */
    int64_t sock;        /* POSIX dial: the socket, -1 when none */
    uint64_t deadline;   /* dial: ovl__now_us() limit, 0: none */
    void *name;          /* Windows dial: the pipe's name (UTF-16, malloc) */
    ovl_addr addr;       /* POSIX dial: the sockaddr_un */
} ovl__lx;

/* Dial back-off while the endpoint is busy (microseconds). */
#define OVL__DIAL_BACKOFF_MIN_US 1000u
#define OVL__DIAL_BACKOFF_MAX_US 10000u

/* local.c: the core's hooks (port lock held). */
int32_t ovl__local_check(ovl_port *p, const ovl_request *r);
int32_t ovl__local_start(ovl_port *p, ovl__op *op, const ovl_request *r);
bool ovl__local_settle(ovl_port *p, ovl__op *op, ovl__event *ev);
/* The side record of op, or NULL if op is not a local op. */
static inline ovl__lx *ovl__local_lx(ovl_port *p, const ovl__op *op)
{
    ovl__lx *t = p->local;
    return t && t[op->index].ukind ? &t[op->index] : NULL;
}
/* Drop one reference to l (p->lock held); frees it at zero. */
void ovl__local_unref(ovl_local *l);

/* The platform part (local_posix.c / local_win.c). */
int32_t ovl__local_os_listen(ovl_local *l, const char *name, const ovl_local_config *cfg);
/* After the listener's accepts were cancelled: stop listening (no lock). */
void ovl__local_os_close(ovl_local *l);
/* Free what a listener's struct holds (the last reference went). */
void ovl__local_os_free(ovl_local *l);
/* Prepare a dial of `name` into lx (a socket, the address; or the native
 * name): OVL_OK or the submit's error. */
int32_t ovl__local_os_dial_prep(ovl__lx *lx, const char *name);
/* Release what a dial that ends without a connection holds. */
void ovl__local_os_dial_drop(ovl__lx *lx);
/* A dialed socket is connected: make it the caller's (POSIX). */
void ovl__local_os_dial_done(ovl__lx *lx);
/* Close a connection nobody can receive. */
void ovl__local_os_close_conn(ovl_fd h);

#ifdef _WIN32
/* local_win.c, for iocp.c (port lock held): a new instance of l's pipe,
 * associated with the port (FILE_FLAG_FIRST_PIPE_INSTANCE the first
 * time). Returns the Win32 error (0 on success). */
uint32_t ovl__local_win_instance(ovl_local *l, void **out);
/* The listener's idle instance (one waits while no accept is in flight),
 * taken (NULL if none) or given back. */
void *ovl__local_win_take_idle(ovl_local *l);
bool ovl__local_win_put_idle(ovl_local *l, void *h);
/* How many accepts of l have a pipe instance now (p->lock). */
uint32_t *ovl__local_win_busy(ovl_local *l);
#endif

#endif /* OVL_LOCAL_H */
