#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "preforkd/router.h"

static struct pf_config cfg;
static struct pf_router router;

static struct pf_route_match match(enum pf_method m, const char *path)
{
    struct pf_request req = {
        .method = m, .keep_alive = true, .path = path, .path_len = (uint32_t)strlen(path)};
    return pf_router_match(&router, &req);
}

static int with_defaults(void **state)
{
    (void)state;
    pf_config_defaults(&cfg);
    pf_router_init(&router, &cfg);
    return 0;
}

static const char *kind_at(enum pf_method m, const char *path)
{
    struct pf_route_match r = match(m, path);
    return r.route ? pf_config_handler_name(r.route->kind) : r.status == 405 ? "405" : "404";
}

static void test_seed_routes(void **state)
{
    (void)state;
    assert_string_equal(kind_at(PF_METHOD_GET, "/"), "sum");
    assert_string_equal(kind_at(PF_METHOD_GET, "/health"), "health");
    assert_string_equal(kind_at(PF_METHOD_HEAD, "/heavy"), "heavy");
    assert_string_equal(kind_at(PF_METHOD_GET, "/metrics"), "metrics");
    static const char *const unknown[] = {"/x", "/healthz", "/health/", "//", "/HEALTH", ""};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_string_equal(kind_at(PF_METHOD_GET, unknown[i]), "404");
    struct pf_route_match m = match(PF_METHOD_POST, "/health");
    assert_int_equal(m.status, 405);
    assert_int_equal(m.allow, 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD);
    assert_int_equal(match(PF_METHOD_OTHER, "/").status, 405);
    assert_int_equal(match(PF_METHOD_POST, "/nope").status, 404);
}

static void test_server_options(void **state)
{
    (void)state;
    struct pf_route_match m = match(PF_METHOD_OPTIONS, "*");
    assert_null(m.route);
    assert_int_equal(m.status, 200);
    assert_int_equal(m.allow, 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD);
    assert_int_equal(match(PF_METHOD_OPTIONS, "/health").status, 405);
}

static void test_metrics_route_is_configurable(void **state)
{
    (void)state;
    pf_config_defaults(&cfg);
    strcpy(cfg.metrics_path, "/internal/stats");
    pf_router_init(&router, &cfg);
    assert_string_equal(kind_at(PF_METHOD_GET, "/internal/stats"), "metrics");
    assert_string_equal(kind_at(PF_METHOD_GET, "/metrics"), "404");
    cfg.metrics_enabled = false;
    pf_router_init(&router, &cfg);
    assert_string_equal(kind_at(PF_METHOD_GET, "/internal/stats"), "404");
    assert_int_equal(pf_router_stat_label(&cfg, 1)[1], 'h');
    assert_string_equal(pf_router_stat_label(&cfg, PF_STAT_OTHER), "other");
}

static void add(const char *path, enum pf_handler_kind kind, unsigned methods)
{
    struct pf_route_config *r = &cfg.routes[cfg.nroutes++];
    *r = (struct pf_route_config){.kind = kind, .methods = methods};
    strcpy(r->path, path);
    size_t n = strlen(path);
    r->prefix = n > 1 && path[n - 1] == '/';
}

static void test_exact_beats_prefix_and_longest_prefix_wins(void **state)
{
    (void)state;
    pf_config_defaults(&cfg);
    cfg.nroutes = 0;
    cfg.routes_configured = true;
    unsigned gh = 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD;
    add("/static/", PF_HANDLER_STATIC, gh);
    add("/static/special.txt", PF_HANDLER_SUM, gh);
    add("/static/deep/", PF_HANDLER_HEAVY, gh);
    add("/count", PF_HANDLER_COUNT, gh | 1u << PF_METHOD_POST);
    pf_router_init(&router, &cfg);
    assert_string_equal(kind_at(PF_METHOD_GET, "/static/a.css"), "static");
    assert_string_equal(kind_at(PF_METHOD_GET, "/static/"), "static");
    assert_string_equal(kind_at(PF_METHOD_GET, "/static"), "404"); /* a prefix needs its / */
    assert_string_equal(kind_at(PF_METHOD_GET, "/static/special.txt"), "sum");
    assert_string_equal(kind_at(PF_METHOD_GET, "/static/deep/x"), "heavy");
    assert_string_equal(kind_at(PF_METHOD_POST, "/count"), "count");
    assert_string_equal(kind_at(PF_METHOD_PUT, "/count"), "405");
    assert_string_equal(kind_at(PF_METHOD_GET, "/"), "404"); /* only what is listed */
    assert_int_equal(match(PF_METHOD_GET, "/static/deep/x").route->stat, 2);
    /* OPTIONS * lists every method some route takes. */
    assert_int_equal(match(PF_METHOD_OPTIONS, "*").allow, gh | 1u << PF_METHOD_POST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_seed_routes, with_defaults),
        cmocka_unit_test_setup(test_server_options, with_defaults),
        cmocka_unit_test(test_metrics_route_is_configurable),
        cmocka_unit_test(test_exact_beats_prefix_and_longest_prefix_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
