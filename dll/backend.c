/* backend.c - which backend a port gets. The one place that knows the
 * candidates: each backend file exports its vtable (NULL where the platform
 * lacks it) with an optional probe; this file holds them in order of
 * preference, reads the OVL_BACKEND override, caches each probe's answer
 * once per process, and gives OVL_BACKEND_AUTO one generic fallback: a
 * candidate that cannot start is skipped for the next, and the reason
 * records why. The rest of the core sees only ovl__backend pointers. */
#include "ovl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In order of preference: the OS's own completion API first, the portable
 * thread pool last (it has no probe: it works wherever it is built). */
static const ovl__backend *const *const candidates[] = {
    &ovl__backend_iocp,
    &ovl__backend_uring,
    &ovl__backend_threads,
};
enum { NCAND = sizeof candidates / sizeof candidates[0] };

/* The probe cache, and AUTO's choice with its reason. */
static ovl__mutex probe_lock = OVL__MUTEX_INITIALIZER;
static signed char probed[NCAND]; /* 0 not yet, 1 usable, -1 not */
static const char *probe_why[NCAND];
static int auto_done;
static const ovl__backend *auto_choice;
static char auto_reason[192];

/* Candidate i's probe, run at most once. Lock held. */
static bool usable(size_t i)
{
    const ovl__backend *b = *candidates[i];
    if (!b) return false;
    if (!probed[i]) {
        const char *why = NULL;
        int32_t rc = b->probe ? b->probe(&why) : OVL_OK;
        probed[i] = rc == OVL_OK ? 1 : -1;
        probe_why[i] = why;
    }
    return probed[i] > 0;
}

static size_t index_of(const ovl__backend *be)
{
    for (size_t i = 0; i < NCAND; i++)
        if (*candidates[i] == be) return i;
    return NCAND;
}

/* The first usable candidate from index `from`, its reason composed in
 * auto_reason: the chosen one's own words when it is the first built in,
 * else why the ones before it were passed over. Lock held. */
static const ovl__backend *choose_from(size_t from)
{
    const char *passed = NULL; /* the first skipped candidate's reason */
    bool any_before = false;
    for (size_t i = from; i < NCAND; i++) {
        if (usable(i)) {
            const ovl__backend *b = *candidates[i];
            if (passed) snprintf(auto_reason, sizeof auto_reason, "%s: using %s", passed, b->name);
            else if (!any_before && probe_why[i])
                snprintf(auto_reason, sizeof auto_reason, "%s", probe_why[i]);
            else
                /* Nothing before it is built for this OS (macOS, the
                 * BSDs): the reason is the OS, not a failed probe. */
                snprintf(auto_reason, sizeof auto_reason,
                         "no completion API on this OS (ovl knows io_uring and IOCP): using %s",
                         b->name);
            return b;
        }
        if (*candidates[i]) {
            any_before = true;
            if (!passed) passed = probe_why[i] ? probe_why[i] : (*candidates[i])->name;
        }
    }
    return NULL;
}

OVL_API const char *ovl_backend_reason(uint32_t *out_backend)
{
    ovl__mutex_lock(&probe_lock);
    if (!auto_done) {
        auto_choice = choose_from(0);
        if (!auto_choice) snprintf(auto_reason, sizeof auto_reason, "no backend usable");
        auto_done = 1;
    }
    if (out_backend) *out_backend = auto_choice ? auto_choice->id : OVL_BACKEND_AUTO;
    ovl__mutex_unlock(&probe_lock);
    return auto_reason; /* written once, before auto_done, under the lock */
}

const ovl__backend *ovl__next_backend(const ovl__backend *be)
{
    size_t i = index_of(be);
    if (i >= NCAND) return NULL;
    ovl__mutex_lock(&probe_lock);
    const ovl__backend *b = NULL;
    for (size_t j = i + 1; j < NCAND && !b; j++)
        if (usable(j)) b = *candidates[j];
    ovl__mutex_unlock(&probe_lock);
    return b;
}

/* Resolve the requested backend: an explicit one (config, or OVL_BACKEND in
 * the environment when the config says AUTO) must be built in and pass its
 * probe; AUTO takes the first usable candidate. */
int32_t ovl__pick_backend(uint32_t want, const ovl__backend **out, bool *is_auto)
{
    *is_auto = false;
    if (want == OVL_BACKEND_AUTO) {
        const char *env = getenv("OVL_BACKEND");
        if (env && *env && strcmp(env, "auto") != 0) {
            /* A name this build does not have is still a known name. */
            static const char *const names[] = {"uring", "threads", "iocp"};
            static const uint32_t ids[] = {OVL_BACKEND_URING, OVL_BACKEND_THREADS,
                                           OVL_BACKEND_IOCP};
            size_t k = 0;
            while (k < 3 && strcmp(env, names[k]) != 0) k++;
            if (k == 3) return OVL_EINVAL;
            want = ids[k];
        }
    }
    if (want == OVL_BACKEND_AUTO) {
        *is_auto = true;
        uint32_t id;
        ovl_backend_reason(&id);
        *out = auto_choice;
        return *out ? OVL_OK : OVL_EUNAVAIL;
    }
    for (size_t i = 0; i < NCAND; i++) {
        const ovl__backend *b = *candidates[i];
        if (!b || b->id != want) continue;
        ovl__mutex_lock(&probe_lock);
        bool ok = usable(i);
        ovl__mutex_unlock(&probe_lock);
        if (!ok) return OVL_EUNAVAIL;
        *out = b;
        return OVL_OK;
    }
    return OVL_EUNAVAIL;
}
