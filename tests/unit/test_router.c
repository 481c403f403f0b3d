#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "preforkd/router.h"

static struct pf_route_match match(enum pf_method m, const char *path, bool truncated)
{
    struct pf_request req = {.method = m, .keep_alive = true, .path_truncated = truncated};
    req.path_len = (uint16_t)strlen(path);
    memcpy(req.path, path, req.path_len);
    return pf_router_match(&req, "/metrics");
}

static void test_routes(void **state)
{
    (void)state;
    struct pf_route_match m = match(PF_METHOD_GET, "/", false);
    assert_int_equal(m.route, PF_ROUTE_SUM);
    assert_int_equal(m.status, 200);
    assert_int_equal(match(PF_METHOD_GET, "/health", false).route, PF_ROUTE_HEALTH);
    assert_int_equal(match(PF_METHOD_HEAD, "/heavy", false).route, PF_ROUTE_HEAVY);
}

static void test_unknown_paths(void **state)
{
    (void)state;
    const char *paths[] = {"", "/h", "/healthz", "/health/", "/HEALTH", "//", "/heav", "/heavy2"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct pf_route_match m = match(PF_METHOD_GET, paths[i], false);
        assert_int_equal(m.status, 404);
        assert_int_equal(m.route, PF_ROUTE_NONE);
    }
    /* A truncated path can never be one of ours, even if its kept prefix looks like it. */
    assert_int_equal(match(PF_METHOD_GET, "/health", true).status, 404);
}

static void test_other_methods(void **state)
{
    (void)state;
    struct pf_route_match m = match(PF_METHOD_OTHER, "/health", false);
    assert_int_equal(m.status, 405);
    assert_int_equal(m.route, PF_ROUTE_NONE);
    assert_int_equal(match(PF_METHOD_OTHER, "/missing", false).status, 404);
    assert_int_equal(match(PF_METHOD_OPTIONS, "/health", false).status, 405);
    assert_int_equal(match(PF_METHOD_OPTIONS, "/missing", false).status, 404);
}

/* OPTIONS * asks about the server as a whole (RFC 9110 9.3.7). */
static void test_server_options(void **state)
{
    (void)state;
    struct pf_route_match m = match(PF_METHOD_OPTIONS, "*", false);
    assert_int_equal(m.status, 200);
    assert_int_equal(m.route, PF_ROUTE_SERVER_OPTIONS);
    /* The parser answers "*" with any other method 400; the router never routes it. */
    assert_int_equal(match(PF_METHOD_GET, "*", false).status, 405);
    assert_int_equal(match(PF_METHOD_OPTIONS, "/metrics", false).status, 405);
}

static void test_metrics_route_is_configurable(void **state)
{
    (void)state;
    struct pf_request req = {.method = PF_METHOD_GET, .keep_alive = true};
    memcpy(req.path, "/metrics", 8);
    req.path_len = 8;
    assert_int_equal(pf_router_match(&req, "/metrics").route, PF_ROUTE_METRICS);
    assert_int_equal(pf_router_match(&req, NULL).status, 404);              /* disabled */
    assert_int_equal(pf_router_match(&req, "/internal/stats").status, 404); /* moved */
    memcpy(req.path, "/internal/stats", 15);
    req.path_len = 15;
    assert_int_equal(pf_router_match(&req, "/internal/stats").route, PF_ROUTE_METRICS);
    req.method = PF_METHOD_OTHER;
    assert_int_equal(pf_router_match(&req, "/internal/stats").status, 405);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),         cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_other_methods),  cmocka_unit_test(test_metrics_route_is_configurable),
        cmocka_unit_test(test_server_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
