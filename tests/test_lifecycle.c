/* Port life cycle: version, errors, config, creation and close, stats.
 * Where and when callbacks run is test_delivery.c. */
#include "common.h"

Test(lifecycle, version)
{
    cr_assert_eq(ovl_version(), (uint32_t)OVL_VERSION_HEX);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", OVL_VERSION_MAJOR, OVL_VERSION_MINOR,
             OVL_VERSION_PATCH);
    cr_assert_str_eq(ovl_version_string(), want);
}

Test(lifecycle, error_names_and_messages)
{
    int32_t codes[] = {
#define X(name, value, msg) value,
        OVL_ERRORS(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(codes[i], -(int32_t)i, "codes are dense and stable");
        cr_assert(strlen(ovl_strerror(codes[i])) > 0);
        cr_assert_str_neq(ovl_strerror(codes[i]), "unknown error");
        cr_assert_eq(strncmp(ovl_error_name(codes[i]), "OVL_", 4), 0);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(ovl_strerror(codes[i]), ovl_strerror(codes[j]));
    }
    cr_assert_str_eq(ovl_error_name(OVL_EQUEUEFULL), "OVL_EQUEUEFULL");
    cr_assert_str_eq(ovl_strerror(12345), "unknown error");
    cr_assert_str_eq(ovl_error_name(-999), "OVL_E?");
}

Test(lifecycle, config_init)
{
    ovl_port_config c;
    cr_assert_eq(ovl_port_config_init(NULL, sizeof c), OVL_EINVAL);
    cr_assert_eq(ovl_port_config_init(&c, 4), OVL_EINVAL);
    memset(&c, 0x5a, sizeof c);
    cr_assert_eq(ovl_port_config_init(&c, sizeof c), OVL_OK);
    cr_assert_eq(c.size, sizeof c);
    cr_assert_eq(c.queue_depth, OVL_DEFAULT_QUEUE_DEPTH);
    cr_assert_eq(c.backend, OVL_BACKEND_AUTO);
    cr_assert_eq(c.flags, 0u);
    cr_assert_null(c.callback);
    cr_assert_null(c.userdata);
}

Test(lifecycle, create_rejects_bad_config)
{
    ovl_port *p = (ovl_port *)0x1;
    ovl_port_config c;
    cr_assert_eq(ovl_create_port(NULL, NULL), OVL_EINVAL);
    ovl_port_config_init(&c, sizeof c);
    c.queue_depth = 0;
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EINVAL);
    cr_assert_null(p, "out is cleared on failure");
    c.queue_depth = OVL_MAX_QUEUE_DEPTH + 1;
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EINVAL);
    ovl_port_config_init(&c, sizeof c);
    c.backend = 99;
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EINVAL);
    ovl_port_config_init(&c, sizeof c);
    c.flags = 0x80;
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EINVAL);
    ovl_port_config_init(&c, sizeof c);
    c.size = 8;
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EINVAL);
}

Test(lifecycle, explicit_missing_backend_is_an_error)
{
    /* Asking for a backend this build lacks must not silently give
     * something else: IOCP off Windows, io_uring on Windows. */
    ovl_port_config c;
    ovl_port *p = NULL;
    ovl_port_config_init(&c, sizeof c);
#ifdef _WIN32
    c.backend = OVL_BACKEND_URING;
#else
    c.backend = OVL_BACKEND_IOCP;
#endif
    cr_assert_eq(ovl_create_port(&c, &p), OVL_EUNAVAIL);
    cr_assert_null(p);
}

Test(lifecycle, create_close_and_names)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    const char *name = ovl_backend_name(p);
    const char *want = test_backend();
    if (strcmp(want, "auto") != 0) cr_assert_str_eq(name, want);
    else cr_assert(!strcmp(name, "uring") || !strcmp(name, "threads") || !strcmp(name, "iocp"));
    uint32_t b = 99;
    cr_assert_not_null(ovl_backend_reason(&b));
#ifdef _WIN32
    cr_assert_eq(b, OVL_BACKEND_IOCP);
#else
    cr_assert(b == OVL_BACKEND_URING || b == OVL_BACKEND_THREADS);
#endif
    cr_assert_str_eq(ovl_backend_name(NULL), "invalid");
    close_clean(p, &r);
}

Test(lifecycle, use_after_close_and_double_close)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    close_clean(p, &r);
    char buf[8];
    uint64_t id = 77;
    cr_assert_eq(ovl_close_port(p), OVL_ECLOSED);
    cr_assert_eq(ovl_submit_read(p, 0, buf, sizeof buf, 0, NULL, &id), OVL_ECLOSED);
    cr_assert_eq(id, 0u, "no id for a refused submit");
    cr_assert_eq(ovl_submit_write(p, 1, buf, 1, 0, NULL, NULL), OVL_ECLOSED);
    cr_assert_eq(ovl_submit_fsync(p, 1, 0, NULL, NULL), OVL_ECLOSED);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_ECLOSED);
    cr_assert_eq(ovl_cancel(p, 0x100000001ull), OVL_ECLOSED);
    cr_assert_eq(ovl_set_callback(p, rec_cb, &r), OVL_ECLOSED);
    cr_assert_eq(ovl_associate(p, 3), OVL_ECLOSED);
    cr_assert_eq(ovl_register_fd(p, 3), OVL_ECLOSED);
    cr_assert_eq(ovl_unregister_fd(p, 3), OVL_ECLOSED);
    cr_assert_eq(ovl_poll(p, 0), OVL_ECLOSED);
    cr_assert_eq(ovl_poll(p, 10), OVL_ECLOSED, "closed comes before wrong mode");
    ovl_fd ev;
    cr_assert_eq(ovl_port_event(p, &ev), OVL_ECLOSED);
    cr_assert_eq(ovl_submit_and_poll(p, NULL, 0, NULL, 10), OVL_ECLOSED);
    ovl_request req = {OVL_OP_READ, 0, 0, buf, 1, 0, NULL, 5, 0};
    size_t done = 9;
    cr_assert_eq(ovl_submit(p, &req, 1, &done), OVL_ECLOSED);
    cr_assert_eq(done, 0u);
    cr_assert_eq(req.id, 0u);
    ovl_stats s = {.size = sizeof s};
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK, "stats of a closed port still work");
}

Test(lifecycle, stats_count)
{
    rec r;
    rec_init(&r);
    ovl_port *p = open_port(&r, 8, 0);
    ovl_stats s = {.size = 4};
    cr_assert_eq(ovl_port_stats(p, &s), OVL_EINVAL);
    cr_assert_eq(ovl_port_stats(NULL, &s), OVL_EINVAL);
    cr_assert_eq(ovl_post(p, 1, NULL, NULL), OVL_OK);
    cr_assert_eq(ovl_post(p, 2, NULL, NULL), OVL_OK);
    rec_wait(&r, 2);
    s.size = sizeof s;
    /* the counters are updated before the callback runs */
    cr_assert_eq(ovl_port_stats(p, &s), OVL_OK);
    cr_assert_eq(s.submitted, 2u);
    cr_assert_eq(s.completed, 2u);
    cr_assert_geq(s.batches, 1u);
    cr_assert_eq(s.inflight, 0u);
    close_clean(p, &r);
}
