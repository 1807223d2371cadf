/* local_win.c - local endpoints on Windows: names to pipe names, the
 * listener's pipe instances (created, kept idle, closed) and its security.
 * The ops (ConnectNamedPipe for an accept, CreateFile retried on the
 * deadline heap for a dial) are the IOCP backend's (iocp.c, "Named
 * pipes"), which calls in here for instances.
 *
 * Instances. The first is created at listen with FILE_FLAG_FIRST_PIPE_
 * INSTANCE (a second server on the name fails: OVL_EADDRINUSE). While no
 * accept is in flight exactly one instance waits, idle: a client may
 * connect to it before the next accept, which then finds it connected
 * (ERROR_PIPE_CONNECTED). Each accept in flight holds an instance of its
 * own with a ConnectNamedPipe pending on it (the idle one if there is
 * one, else a new one), so no client ever sits in an instance nobody
 * waits on while accepts wait elsewhere. When the last accept in flight
 * completes with a connection, the next idle instance is created before
 * the connected one is handed out: clients see ERROR_PIPE_BUSY (retry)
 * between two instances, never ERROR_FILE_NOT_FOUND (gone). */
#include "local.h"

#ifdef _WIN32
#  include <sddl.h>
#  include <stdlib.h>
#  include <string.h>

#  define PIPE_PREFIX L"\\\\.\\pipe\\"
#  define WNAME_MAX 300

typedef struct winl {
    wchar_t name[WNAME_MAX];
    DWORD open_mode, pipe_mode, in_size, out_size;
    PSECURITY_DESCRIPTOR sd; /* LocalAlloc'd by the SDDL conversion */
    SECURITY_ATTRIBUTES sa;
    bool created;  /* the first instance exists */
    HANDLE idle;   /* the waiting instance, or NULL (p->lock) */
    uint32_t busy; /* accepts holding an instance (p->lock) */
} winl;

/* A name (ovl.h, "Names") as a pipe name in UTF-16. */
static int32_t resolve(const char *name, wchar_t *out, size_t cap)
{
    size_t n = strnlen(name, OVL__LOCAL_NAME_MAX + 1u);
    if (n == 0 || n > OVL__LOCAL_NAME_MAX) return OVL_EINVAL;
    size_t at = 0;
    if (!(name[0] == '\\' && name[1] == '\\')) {
        /* A plain name: no backslash (the pipe file system's separator). */
        if (strchr(name, '\\')) return OVL_EINVAL;
        wcscpy(out, PIPE_PREFIX);
        at = wcslen(PIPE_PREFIX);
    }
    int w = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, (int)n, out + at,
                                (int)(cap - at - 1u));
    if (w <= 0) return OVL_EINVAL;
    out[at + (size_t)w] = 0;
    /* "\\.\pipe\" alone names no pipe. */
    if (wcslen(out) <= wcslen(PIPE_PREFIX) && _wcsnicmp(out, PIPE_PREFIX, wcslen(PIPE_PREFIX)) == 0)
        return OVL_EINVAL;
    return OVL_OK;
}

uint32_t ovl__local_win_instance(ovl_local *l, void **out)
{
    winl *w = l->os;
    DWORD mode = w->open_mode | (w->created ? 0 : FILE_FLAG_FIRST_PIPE_INSTANCE);
    HANDLE h = CreateNamedPipeW(w->name, mode, w->pipe_mode, PIPE_UNLIMITED_INSTANCES, w->out_size,
                                w->in_size, 0, w->sd ? &w->sa : NULL);
    if (h == INVALID_HANDLE_VALUE) return GetLastError();
    /* Bound to the port: the accept's ConnectNamedPipe and the caller's
     * reads and writes complete there. */
    if (l->p->backend->associate(l->p, (ovl_fd)(uintptr_t)h) != OVL_OK) {
        DWORD e = GetLastError();
        CloseHandle(h);
        return e ? e : ERROR_INVALID_PARAMETER;
    }
    w->created = true;
    *out = h;
    return 0;
}

void *ovl__local_win_take_idle(ovl_local *l)
{
    winl *w = l->os;
    HANDLE h = w->idle;
    w->idle = NULL;
    return h;
}

bool ovl__local_win_put_idle(ovl_local *l, void *h)
{
    winl *w = l->os;
    if (l->closed || w->idle) return false;
    w->idle = h;
    return true;
}

uint32_t *ovl__local_win_busy(ovl_local *l) { return &((winl *)l->os)->busy; }

int32_t ovl__local_os_listen(ovl_local *l, const char *name, const ovl_local_config *cfg)
{
    winl *w = calloc(1, sizeof *w);
    if (!w) return OVL_ENOMEM;
    l->os = w;
    int32_t rc = resolve(name, w->name, WNAME_MAX);
    if (rc != OVL_OK) return rc;
    if (cfg->sddl) {
        if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(cfg->sddl, SDDL_REVISION_1,
                                                                  &w->sd, NULL))
            return GetLastError() == ERROR_NOT_ENOUGH_MEMORY ? OVL_ENOMEM : OVL_EOS;
        w->sa.nLength = sizeof w->sa;
        w->sa.lpSecurityDescriptor = w->sd;
        w->sa.bInheritHandle = FALSE;
    }
    w->open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED;
    w->pipe_mode = ((cfg->flags & OVL_LOCAL_MESSAGE) ? PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE
                                                     : PIPE_TYPE_BYTE | PIPE_READMODE_BYTE) |
                   PIPE_WAIT |
                   ((cfg->flags & OVL_LOCAL_ALLOW_REMOTE) ? 0 : PIPE_REJECT_REMOTE_CLIENTS);
    w->in_size = cfg->in_buffer ? cfg->in_buffer : 65536u;
    w->out_size = cfg->out_buffer ? cfg->out_buffer : 65536u;
    void *h = NULL;
    uint32_t e = ovl__local_win_instance(l, &h);
    if (e) {
        /* FILE_FLAG_FIRST_PIPE_INSTANCE on a name that exists. */
        if (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) return OVL_EADDRINUSE;
        rc = ovl__win32_to_code(e);
        return rc == OVL_EINVAL || rc == OVL_ENOMEM || rc == OVL_EACCES ? rc : OVL_EOS;
    }
    w->idle = h;
    return OVL_OK;
}

void ovl__local_os_close(ovl_local *l)
{
    winl *w = l->os;
    if (!w) return;
    /* The instances of accepts in flight are closed as their (cancelled)
     * ConnectNamedPipe completes (iocp.c); the idle one now. */
    ovl__mutex_lock(&l->p->lock);
    HANDLE h = w->idle;
    w->idle = NULL;
    ovl__mutex_unlock(&l->p->lock);
    if (h) CloseHandle(h);
}

void ovl__local_os_free(ovl_local *l)
{
    winl *w = l->os;
    if (!w) return;
    if (w->idle) CloseHandle(w->idle);
    if (w->sd) LocalFree(w->sd);
    free(w);
    l->os = NULL;
}

int32_t ovl__local_os_dial_prep(ovl__lx *lx, const char *name)
{
    wchar_t *wn = malloc(WNAME_MAX * sizeof *wn);
    if (!wn) return OVL_ENOMEM;
    int32_t rc = resolve(name, wn, WNAME_MAX);
    if (rc != OVL_OK) {
        free(wn);
        return rc;
    }
    lx->name = wn;
    return OVL_OK;
}

/* The pipe handle is made only when CreateFile succeeds, and is then the
 * completion's result: nothing to drop or adjust. */
void ovl__local_os_dial_drop(ovl__lx *lx) { (void)lx; }
void ovl__local_os_dial_done(ovl__lx *lx) { (void)lx; }

void ovl__local_os_close_conn(ovl_fd h) { CloseHandle((HANDLE)(uintptr_t)h); }

#endif /* _WIN32 */
