/* backend.c - which backend a port gets: the candidates compiled into this
 * build, the OVL_BACKEND override, and the once-per-process probe behind
 * OVL_BACKEND_AUTO and ovl_backend_reason(). */
#include "ovl_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- backend selection -------------------------------------------------- */

static const ovl__backend *backend_by_id(uint32_t id)
{
    switch (id) {
    case OVL_BACKEND_URING: return ovl__backend_uring;
    case OVL_BACKEND_THREADS: return ovl__backend_threads;
    case OVL_BACKEND_IOCP: return ovl__backend_iocp;
    default: return NULL;
    }
}

static ovl__mutex probe_lock = OVL__MUTEX_INITIALIZER;
static int probe_done;
static uint32_t probe_choice;
static const char *probe_reason;

OVL_API const char *ovl_backend_reason(uint32_t *out_backend)
{
    ovl__mutex_lock(&probe_lock);
    if (!probe_done) {
        if (ovl__backend_iocp) {
            probe_choice = OVL_BACKEND_IOCP;
            probe_reason = "Windows: I/O completion port";
        } else if (ovl__backend_uring &&
                   ovl__uring_probe(&probe_reason) == OVL_OK) {
            probe_choice = OVL_BACKEND_URING;
        } else {
            /* Neither Linux nor Windows (macOS, the BSDs): the reason is
             * the OS, not a failed probe, and says so in the same form as
             * the uring probe's "...: using threads". */
            if (!ovl__backend_uring)
                probe_reason = "no completion API on this OS (ovl knows "
                               "io_uring and IOCP): using threads";
            probe_choice = OVL_BACKEND_THREADS;
        }
        probe_done = 1;
    }
    if (out_backend) *out_backend = probe_choice;
    const char *r = probe_reason;
    ovl__mutex_unlock(&probe_lock);
    return r;
}

/* Resolve the requested backend: an explicit one (config, or OVL_BACKEND in
 * the environment when the config says AUTO) must exist; AUTO probes. */
int32_t ovl__pick_backend(uint32_t want, const ovl__backend **out,
                            bool *is_auto)
{
    *is_auto = false;
    if (want == OVL_BACKEND_AUTO) {
        const char *env = getenv("OVL_BACKEND");
        if (env && *env) {
            if (!strcmp(env, "uring")) want = OVL_BACKEND_URING;
            else if (!strcmp(env, "threads")) want = OVL_BACKEND_THREADS;
            else if (!strcmp(env, "iocp")) want = OVL_BACKEND_IOCP;
            else if (strcmp(env, "auto") != 0) return OVL_EINVAL;
        }
    }
    if (want == OVL_BACKEND_AUTO) {
        *is_auto = true;
        ovl_backend_reason(&want);
        *out = backend_by_id(want);
        return *out ? OVL_OK : OVL_EUNAVAIL;
    }
    const ovl__backend *b = backend_by_id(want);
    if (!b) return OVL_EUNAVAIL;
    if (want == OVL_BACKEND_URING) {
        const char *why;
        if (ovl__uring_probe(&why) != OVL_OK) return OVL_EUNAVAIL;
    }
    *out = b;
    return OVL_OK;
}

