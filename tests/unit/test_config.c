#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "preforkd/config.h"
#include "preforkd/http.h"
#include "preforkd/cpu.h"

static int load(struct pf_config *cfg, const char *text, char *err, size_t errlen)
{
    return pf_config_load_string(cfg, "t.yaml", text, strlen(text), err, errlen);
}

static void expect_error(const char *text, const char *message)
{
    struct pf_config cfg;
    char err[256] = "";
    assert_true(load(&cfg, text, err, sizeof(err)) < 0);
    if (strcmp(err, message) != 0)
        fail_msg("config:\n%s\nexpected: %s\n     got: %s", text, message, err);
}

static void test_defaults(void **state)
{
    (void)state;
    struct pf_config cfg;
    pf_config_defaults(&cfg);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:4400");
    assert_int_equal(cfg.workers_mode, PF_WORKERS_AUTO);
    assert_int_equal(cfg.balance, PF_BALANCE_REUSEPORT);
    assert_int_equal(cfg.sum_iterations, 100000);
    assert_int_equal(cfg.heavy_iterations, 1000000);
    assert_int_equal(cfg.limits.request_line, 8192);
    assert_int_equal(cfg.limits.header_block, 16384);
}

static void test_shipped_config_is_valid_and_matches_defaults(void **state)
{
    (void)state;
    struct pf_config cfg, def;
    char err[256] = "";
    int rc = pf_config_load(&cfg, PF_TEST_SOURCE_DIR "/conf/preforkd.yaml", err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    pf_config_defaults(&def);
    /* The shipped file documents the defaults; it must not drift from them. Only the
     * name of the file it came from differs. */
    assert_string_equal(cfg.file, PF_TEST_SOURCE_DIR "/conf/preforkd.yaml");
    memcpy(def.file, cfg.file, sizeof(def.file));
    assert_memory_equal(&cfg, &def, sizeof(cfg));
}

static void test_full_file(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    const char *text = "listen:\n"
                       "  - 127.0.0.1:8080\n"
                       "  - '[::1]:8081'\n"
                       "  - '*:8082'\n"
                       "workers: 3\n"
                       "backlog: 128\n"
                       "balance: shared\n"
                       "log_level: debug\n"
                       "timeouts:\n"
                       "  keepalive: 750ms\n"
                       "  header: 2s\n"
                       "  send: 1m\n"
                       "  shutdown: 0\n"
                       "  lame_duck: 5s\n"
                       "health:\n"
                       "  ready_when_degraded: false\n"
                       "limits:\n"
                       "  request_line: 1k\n"
                       "  header_block: 2KiB\n"
                       "  headers: 10\n"
                       "  body: 1M\n"
                       "  connections: 50\n"
                       "routes:\n"
                       "  sum_iterations: 10\n"
                       "  heavy_iterations: 100\n";
    int rc = load(&cfg, text, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.nlisten, 3);
    assert_string_equal(cfg.listen[1].text, "[::1]:8081");
    assert_string_equal(cfg.listen[2].text, "0.0.0.0:8082");
    assert_int_equal(cfg.workers_mode, PF_WORKERS_FIXED);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(pf_config_worker_count(&cfg), 3);
    assert_int_equal(cfg.backlog, 128);
    assert_int_equal(cfg.balance, PF_BALANCE_SHARED);
    assert_int_equal(cfg.log_level, PF_LOG_DEBUG);
    assert_int_equal(cfg.keepalive_timeout_ms, 750);
    assert_int_equal(cfg.header_timeout_ms, 2000);
    assert_int_equal(cfg.send_timeout_ms, 60000);
    assert_int_equal(cfg.shutdown_timeout_ms, 0);
    assert_int_equal(cfg.lame_duck_ms, 5000);
    assert_false(cfg.health_ready_when_degraded);
    assert_int_equal(cfg.limits.request_line, 1024);
    assert_int_equal(cfg.limits.header_block, 2048);
    assert_int_equal(cfg.limits.headers, 10);
    assert_int_equal(cfg.limits.body, 1 << 20);
    assert_int_equal(cfg.limits.connections, 50);
    assert_int_equal(cfg.sum_iterations, 10);
    assert_int_equal(cfg.heavy_iterations, 100);
}

static void test_supervision_keys(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    const char *text = "timeouts:\n  worker: 5s\n"
                       "recycle:\n  max_memory: 256MB\n  max_requests: 1000\n"
                       "  max_requests_jitter: 50\n"
                       "affinity: auto\nuser: www-data\ngroup: www-data\n"
                       "pid_file: /run/preforkd.pid\nlog_file: /var/log/preforkd.log\n";
    int rc = load(&cfg, text, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.worker_timeout_ms, 5000);
    assert_int_equal(cfg.max_memory, 256ULL << 20);
    assert_int_equal(cfg.max_requests, 1000);
    assert_int_equal(cfg.max_requests_jitter, 50);
    assert_true(cfg.affinity_auto);
    assert_string_equal(cfg.user, "www-data");
    assert_string_equal(cfg.group, "www-data");
    assert_string_equal(cfg.pid_file, "/run/preforkd.pid");
    assert_string_equal(cfg.log_file, "/var/log/preforkd.log");
}

static void test_listen_scalar_and_empty_file(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, "listen: 9000\n", err, sizeof(err)), 0);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].text, "0.0.0.0:9000");
    assert_int_equal(load(&cfg, "", err, sizeof(err)), 0);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:4400");
    assert_int_equal(load(&cfg, "# only a comment\n", err, sizeof(err)), 0);
}

static void test_workers_modes(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    uint32_t cpus = pf_cpu_usable();
    assert_true(cpus >= 1);
    assert_true(cpus <= (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(load(&cfg, "workers: auto\n", err, sizeof(err)), 0);
    assert_int_equal(pf_config_worker_count(&cfg), cpus);
    assert_int_equal(load(&cfg, "workers: auto-1\n", err, sizeof(err)), 0);
    assert_int_equal(cfg.workers_mode, PF_WORKERS_AUTO_MINUS_ONE);
    assert_int_equal(pf_config_worker_count(&cfg), cpus > 1 ? cpus - 1 : 1);
}

static void test_errors_have_file_line_column(void **state)
{
    (void)state;
    expect_error("workers: 2\nbogus: 1\n", "t.yaml:2:1: unknown key 'bogus'");
    expect_error("timeouts:\n  keepalive: 5s\n  idle: 3s\n",
                 "t.yaml:3:3: unknown key 'timeouts.idle'");
    expect_error("workers: many\n",
                 "t.yaml:1:10: 'workers' must be auto, auto-1 or a positive integer, not 'many'");
    expect_error("workers: 0\n", "t.yaml:1:10: 'workers' must be between 1 and 1024");
    expect_error("workers: -3\n",
                 "t.yaml:1:10: 'workers' must be auto, auto-1 or a positive integer, not '-3'");
    expect_error("backlog: 70000\n",
                 "t.yaml:1:10: 'backlog' must be between 1 and 65535, not '70000'");
    expect_error("backlog: [1, 2]\n", "t.yaml:1:10: 'backlog' must be a single value");
    expect_error("timeouts:\n  header: soon\n",
                 "t.yaml:2:11: 'timeouts.header' must be a duration like 5s or 500ms, not 'soon'");
    expect_error("timeouts:\n  header: 0\n",
                 "t.yaml:2:11: 'timeouts.header' must be between 1 and 3600000 ms, not '0'");
    expect_error("limits:\n  body: 3 MB\n",
                 "t.yaml:2:9: 'limits.body' must be a size like 512, 8k or 1MiB, not '3 MB'");
    expect_error("limits: 5\n", "t.yaml:1:9: 'limits' must be a mapping of keys");
    expect_error("balance: random\n",
                 "t.yaml:1:10: 'balance' must be reuseport or shared, not 'random'");
    expect_error("log_level: loud\n",
                 "t.yaml:1:12: 'log_level' must be error, warn, info or debug, not 'loud'");
    expect_error("listen:\n  - 127.0.0.1:4400\n  - 127.0.0.1:99999\n",
                 "t.yaml:3:5: invalid listen address '127.0.0.1:99999' (expected HOST:PORT, "
                 "[IPV6]:PORT, PORT or unix:/ABSOLUTE/PATH of at most 107 bytes)");
    expect_error("listen:\n  - 1.2.3.4:5\n  - 1.2.3.4:5\n",
                 "t.yaml:3:5: duplicate listen address '1.2.3.4:5'");
    expect_error("listen: []\n", "t.yaml:1:9: 'listen' needs at least one address");
    expect_error("workers: 2\nworkers: 3\n", "t.yaml:2:1: duplicate key 'workers'");
    expect_error("- a\n- b\n", "t.yaml:1:1: the configuration must be a mapping of keys");
    expect_error("affinity: all\n", "t.yaml:1:11: 'affinity' must be none or auto, not 'all'");
    expect_error("timeouts:\n  worker: 1s\n",
                 "t.yaml:2:11: 'timeouts.worker' must be between 2000 and 3600000 ms, not '1s'");
    expect_error(
        "recycle:\n  max_memory: lots\n",
        "t.yaml:2:15: 'recycle.max_memory' must be a size like 512, 8k or 1MiB, not 'lots'");
    expect_error("user: [a]\n", "t.yaml:1:7: 'user' must be a single value");
    char longname[400];
    snprintf(longname, sizeof(longname), "pid_file: /%0300d\n", 0);
    expect_error(longname, "t.yaml:1:11: 'pid_file' is longer than 255 bytes");
    expect_error("routes:\n  sum_iterations: 1e9\n",
                 "t.yaml:2:19: 'routes.sum_iterations' must be a non-negative integer, not '1e9'");
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    assert_true(load(&cfg, "workers: 2\nlisten: [a, b\n", err, sizeof(err)) < 0);
    assert_true(strncmp(err, "t.yaml:3:1: YAML syntax error: ", 31) == 0 ||
                strncmp(err, "t.yaml:2:", 9) == 0);
    assert_non_null(strstr(err, "YAML syntax error"));
    assert_true(load(&cfg, "a: b: c\n", err, sizeof(err)) < 0);
    assert_true(strncmp(err, "t.yaml:1:", 9) == 0);
}

static void test_failed_load_leaves_config_untouched(void **state)
{
    (void)state;
    struct pf_config cfg, before;
    char err[256];
    pf_config_defaults(&cfg);
    cfg.workers = 77;
    before = cfg;
    assert_true(load(&cfg, "workers: 3\nnope: 1\n", err, sizeof(err)) < 0);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_missing_file(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256];
    assert_true(pf_config_load(&cfg, "/nonexistent/preforkd.yaml", err, sizeof(err)) < 0);
    assert_string_equal(err,
                        "/nonexistent/preforkd.yaml:0:0: cannot open: No such file or directory");
}

static void test_value_parsers(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(pf_config_parse_duration_ms("5", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(pf_config_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(pf_config_parse_duration_ms("2h", &v), 0);
    assert_int_equal(v, 7200000);
    assert_true(pf_config_parse_duration_ms("5 s", &v) < 0);
    assert_true(pf_config_parse_duration_ms("s", &v) < 0);
    assert_true(pf_config_parse_duration_ms("99999999999999999999999", &v) < 0);
    assert_int_equal(pf_config_parse_size("8k", &v), 0);
    assert_int_equal(v, 8192);
    assert_int_equal(pf_config_parse_size("1GiB", &v), 0);
    assert_int_equal(v, 1 << 30);
    assert_true(pf_config_parse_size("1T", &v) < 0);
    assert_true(pf_config_parse_size("-1", &v) < 0);
    assert_true(pf_config_parse_size("18446744073709551615G", &v) < 0);

    struct pf_listen_addr a;
    assert_int_equal(pf_config_parse_listen("[::]:80", &a), 0);
    assert_int_equal(a.addr.ss_family, AF_INET6);
    assert_int_equal(pf_config_parse_listen(":81", &a), 0);
    assert_string_equal(a.text, "0.0.0.0:81");
    assert_int_equal(pf_config_parse_listen("10.1.2.3:0", &a), 0);
    assert_true(pf_config_parse_listen("localhost:80", &a) < 0);
    assert_true(pf_config_parse_listen("1.2.3.4", &a) < 0);
    assert_true(pf_config_parse_listen("::1:80", &a) < 0);
    assert_true(pf_config_parse_listen("[::1]80", &a) < 0);
    assert_true(pf_config_parse_listen("1.2.3.4:", &a) < 0);
}

static void test_routes_and_modules(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    const char *text = "modules:\n"
                       "  greet:\n"
                       "    path: /usr/lib/g.so\n"
                       "    config: {text: Hi, list: [a, b], deep: {x: 1}}\n"
                       "routes:\n"
                       "  - {path: /, handler: sum}\n"
                       "  - {path: /files/, handler: static, root: /srv, index: index.html}\n"
                       "  - {path: /count, handler: count, methods: [POST]}\n"
                       "  - {path: /hi, handler: greet.hello, methods: [GET, PUT]}\n"
                       "  - {path: /, handler: static, root: /srv}\n";
    assert_true(load(&cfg, text, err, sizeof(err)) < 0); /* "/" twice */
    assert_non_null(strstr(err, "t.yaml:10:5: duplicate route path '/'"));
    text = "modules:\n"
           "  greet:\n"
           "    path: /usr/lib/g.so\n"
           "    config: {text: Hi, list: [a, b], deep: {x: 1}}\n"
           "routes:\n"
           "  - {path: /, handler: sum}\n"
           "  - {path: /files/, handler: static, root: /srv, index: index.html}\n"
           "  - {path: /count, handler: count, methods: [POST]}\n"
           "  - {path: /hi, handler: greet.hello, methods: [GET, PUT]}\n";
    if (load(&cfg, text, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_true(cfg.routes_configured);
    assert_int_equal(cfg.nroutes, 4);
    assert_int_equal(cfg.routes[0].kind, PF_HANDLER_SUM);
    assert_false(cfg.routes[0].prefix); /* "/" alone is exact... */
    assert_true(cfg.routes[1].prefix);
    assert_string_equal(cfg.routes[1].root, "/srv");
    assert_int_equal(cfg.routes[2].methods, 1u << PF_METHOD_POST);
    assert_string_equal(cfg.routes[2].counter, "count"); /* the default name */
    assert_int_equal(cfg.routes[3].kind, PF_HANDLER_MODULE);
    assert_int_equal(cfg.routes[3].module, 0);
    assert_string_equal(cfg.routes[3].handler, "hello");
    /* GET brings HEAD. */
    assert_int_equal(cfg.routes[3].methods,
                     1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD | 1u << PF_METHOD_PUT);
    assert_int_equal(cfg.routes[3].line, 9);
    assert_int_equal(cfg.nmodules, 1);
    assert_string_equal(cfg.modules[0].name, "greet");
    assert_int_equal(cfg.modules[0].kv_count, 4);
    assert_string_equal(cfg.module_kv[cfg.modules[0].kv_first + 1].key, "list.0");
    assert_string_equal(cfg.module_kv[cfg.modules[0].kv_first + 3].key, "deep.x");
    /* ...but a static "/" serves the whole tree. */
    assert_true(
        load(&cfg, "routes:\n  - {path: /, handler: static, root: /srv}\n", err, sizeof(err)) == 0);
    assert_true(cfg.routes[0].prefix);
    /* Without routes: the seed's three, and /ready. */
    assert_true(load(&cfg, "workers: 1\n", err, sizeof(err)) == 0);
    assert_false(cfg.routes_configured);
    assert_int_equal(cfg.nroutes, 4);
    assert_string_equal(cfg.routes[1].path, "/health");
    assert_string_equal(cfg.routes[3].path, "/ready");
    assert_int_equal(cfg.routes[3].kind, PF_HANDLER_READY);
    /* The older place of the work sizes still works. */
    assert_true(load(&cfg, "routes:\n  sum_iterations: 7\n", err, sizeof(err)) == 0);
    assert_int_equal(cfg.sum_iterations, 7);
    assert_int_equal(cfg.nroutes, 4);
}

static void test_route_errors(void **state)
{
    (void)state;
    expect_error("routes:\n  - {path: /x}\n", "t.yaml:2:5: a route needs a 'handler'");
    expect_error("routes:\n  - {handler: sum}\n", "t.yaml:2:5: a route needs a 'path'");
    expect_error("routes:\n  - {path: x, handler: sum}\n",
                 "t.yaml:2:12: 'routes.path' must start with / and hold no spaces, controls, ? # "
                 "or \\");
    expect_error("routes:\n  - {path: /x, handler: nope}\n",
                 "t.yaml:2:25: unknown handler 'nope' (sum, health, heavy, ready, static, count, "
                 "or MODULE.HANDLER for a module in 'modules')");
    expect_error("routes:\n  - {path: /x, handler: m.h}\n",
                 "t.yaml:2:25: handler 'm.h': no module 'm' in 'modules'");
    expect_error("routes:\n  - {path: /x/, handler: static}\n",
                 "t.yaml:2:5: a static route needs a 'root' directory");
    expect_error("routes:\n  - {path: /x/, handler: static, root: rel}\n",
                 "t.yaml:2:40: 'routes.root' must be an absolute path");
    expect_error("routes:\n  - {path: /x, handler: sum, methods: [FETCH]}\n",
                 "t.yaml:2:40: unknown method 'FETCH' (GET, HEAD, POST, PUT, DELETE, PATCH or "
                 "OPTIONS)");
    expect_error("routes:\n  - {path: /metrics, handler: sum}\n",
                 "t.yaml:2:5: 'metrics.path' cannot be /metrics: that route is taken");
    expect_error("routes:\n  - {path: /x, handler: count, counter: 'a b'}\n",
                 "t.yaml:2:41: 'routes.counter' must be 1 to 63 of [a-zA-Z0-9_.-]");
    expect_error("modules:\n  m: {config: {}}\n",
                 "t.yaml:2:6: module 'm' needs a 'path' to its shared object");
    expect_error("modules:\n  a.b: {path: /x.so}\n",
                 "t.yaml:2:3: a module name is 1 to 31 bytes without '.'");
}

static void test_listen_entries(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    const char *text = "listen:\n"
                       "  - 127.0.0.1:8080\n"
                       "  - unix:/run/preforkd/plain.sock\n"
                       "  - {address: '[::1]:8443', proxy_protocol: v2}\n"
                       "  - address: unix:/run/preforkd/http.sock\n"
                       "    proxy_protocol: v1\n"
                       "    mode: 0660\n"
                       "    owner: www-data\n"
                       "    group: '1234'\n"
                       "  - {address: '8081', proxy_protocol: off}\n"
                       "  - {address: unix:/run/x.sock, mode: '600'}\n";
    int rc = load(&cfg, text, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.nlisten, 6);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:8080");
    assert_int_equal(cfg.listen[0].proxy, PF_PROXY_OFF);
    assert_int_equal(cfg.listen[0].mode, -1);
    assert_string_equal(cfg.listen[1].text, "unix:/run/preforkd/plain.sock");
    assert_true(pf_config_listen_is_unix(&cfg.listen[1]));
    assert_false(pf_config_listen_is_unix(&cfg.listen[0]));
    const struct sockaddr_un *un = (const struct sockaddr_un *)&cfg.listen[1].addr;
    assert_string_equal(un->sun_path, "/run/preforkd/plain.sock");
    assert_int_equal(cfg.listen[1].addr_len,
                     offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
    assert_int_equal(cfg.listen[1].mode, -1);
    assert_string_equal(cfg.listen[1].owner, "");
    assert_string_equal(cfg.listen[2].text, "[::1]:8443");
    assert_int_equal(cfg.listen[2].proxy, PF_PROXY_V2);
    assert_string_equal(cfg.listen[3].text, "unix:/run/preforkd/http.sock");
    assert_int_equal(cfg.listen[3].proxy, PF_PROXY_V1);
    assert_int_equal(cfg.listen[3].mode, 0660);
    assert_string_equal(cfg.listen[3].owner, "www-data");
    assert_string_equal(cfg.listen[3].group, "1234");
    assert_string_equal(cfg.listen[4].text, "0.0.0.0:8081");
    assert_int_equal(cfg.listen[4].proxy, PF_PROXY_OFF);
    assert_int_equal(cfg.listen[5].mode, 0600);
    /* A single mapping, not in a list. */
    rc = load(&cfg, "listen: {address: unix:/a.sock, proxy_protocol: v2}\n", err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    assert_int_equal(cfg.nlisten, 1);
    assert_int_equal(cfg.listen[0].proxy, PF_PROXY_V2);
}

static void test_listen_entry_errors(void **state)
{
    (void)state;
    expect_error("listen:\n  - {address: 127.0.0.1:80, proxy: v1}\n",
                 "t.yaml:2:29: unknown key 'listen.proxy' "
                 "(address, proxy_protocol, mode, owner, group)");
    expect_error("listen:\n  - {proxy_protocol: v1}\n",
                 "t.yaml:2:5: a listen entry needs an 'address'");
    expect_error("listen:\n  - {address: 127.0.0.1:80, mode: '0660'}\n",
                 "t.yaml:2:29: 'listen.mode' applies only to a unix: address");
    expect_error("listen:\n  - {address: 127.0.0.1:80, owner: www}\n",
                 "t.yaml:2:29: 'listen.owner' applies only to a unix: address");
    expect_error("listen:\n  - {address: unix:/a.sock, mode: '0860'}\n",
                 "t.yaml:2:35: 'listen.mode' must be octal permissions like 0660, not '0860'");
    expect_error("listen:\n  - {address: unix:/a.sock, mode: '1777'}\n",
                 "t.yaml:2:35: 'listen.mode' must be octal permissions like 0660, not '1777'");
    expect_error("listen:\n  - {address: unix:/a.sock, proxy_protocol: v3}\n",
                 "t.yaml:2:45: 'listen.proxy_protocol' must be v1, v2 or off, not 'v3'");
    expect_error("listen:\n  - {address: unix:/a.sock, group: ''}\n",
                 "t.yaml:2:36: 'listen.group' must not be empty");
    expect_error("listen:\n  - {address: unix:/a.sock, address: unix:/b.sock}\n",
                 "t.yaml:2:29: duplicate key 'listen.address'");
    expect_error("listen:\n  - {address: [a]}\n",
                 "t.yaml:2:15: a listen address must be a string like 127.0.0.1:4400");
    expect_error("listen:\n  - unix:run/x.sock\n",
                 "t.yaml:2:5: invalid listen address 'unix:run/x.sock' (expected HOST:PORT, "
                 "[IPV6]:PORT, PORT or unix:/ABSOLUTE/PATH of at most 107 bytes)");
    expect_error("listen:\n  - 'unix:'\n",
                 "t.yaml:2:5: invalid listen address 'unix:' (expected HOST:PORT, "
                 "[IPV6]:PORT, PORT or unix:/ABSOLUTE/PATH of at most 107 bytes)");
    expect_error("listen:\n  - unix:/a.sock\n  - {address: unix:/a.sock, proxy_protocol: v1}\n",
                 "t.yaml:3:5: duplicate listen address 'unix:/a.sock'");
    expect_error("listen:\n  - [unix:/a.sock]\n",
                 "t.yaml:2:5: a listen address must be a string like 127.0.0.1:4400");
    /* The longest path sun_path holds, and one byte more. */
    char text[300];
    snprintf(text, sizeof(text), "listen: unix:/%0106d\n", 0);
    struct pf_config cfg;
    char err[256];
    if (load(&cfg, text, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    snprintf(text, sizeof(text), "listen: unix:/%0107d\n", 0);
    assert_true(load(&cfg, text, err, sizeof(err)) < 0);
    assert_true(strncmp(err, "t.yaml:1:9: invalid listen address", 34) == 0);
}

static void test_shared_store(void **state)
{
    (void)state;
    struct pf_config cfg;
    char err[256] = "";
    assert_int_equal(load(&cfg, "", err, sizeof(err)), 0);
    assert_int_equal(cfg.shared_backend, PF_SHARED_MEMORY);
    assert_int_equal(cfg.shared_timeout_ms, 500);
    assert_string_equal(cfg.shared_prefix, "preforkd:");
    assert_int_equal(load(&cfg,
                          "shared: {backend: redis, address: '[::1]:6380', timeout: 2s, "
                          "prefix: 'app:'}\n",
                          err, sizeof(err)),
                     0);
    assert_int_equal(cfg.shared_backend, PF_SHARED_REDIS);
    assert_string_equal(cfg.shared_address, "[::1]:6380");
    assert_int_equal(cfg.shared_timeout_ms, 2000);
    assert_string_equal(cfg.shared_prefix, "app:");
    assert_int_equal(
        load(&cfg, "shared: {address: unix:/run/redis/redis.sock}\n", err, sizeof(err)), 0);

    char host[256];
    int port;
    assert_int_equal(pf_config_parse_store_address("10.0.0.5:6379", host, sizeof(host), &port), 0);
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 6379);
    assert_int_equal(pf_config_parse_store_address("unix:/tmp/r.sock", host, sizeof(host), &port),
                     0);
    assert_string_equal(host, "/tmp/r.sock");
    assert_int_equal(port, -1);
    static const char *const bad[] = {"redis.example:6379", "10.0.0.5", "10.0.0.5:0",
                                      "10.0.0.5:70000",     ":6379",    "[::1]6379",
                                      "unix:rel",           "::1:6379", "10.0.0.5:63x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pf_config_parse_store_address(bad[i], host, sizeof(host), &port), -EINVAL);

    expect_error("shared: {backend: etcd}\n",
                 "t.yaml:1:19: 'shared.backend' must be memory or redis, not 'etcd'");
    expect_error("shared:\n  address: redis.local:6379\n",
                 "t.yaml:2:12: 'shared.address' must be IPV4:PORT, [IPV6]:PORT or "
                 "unix:/ABSOLUTE/PATH, not 'redis.local:6379'");
    expect_error("shared: {timeout: 0}\n",
                 "t.yaml:1:19: 'shared.timeout' must be between 1 and 60000 ms, not '0'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_modules),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_config_is_valid_and_matches_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_supervision_keys),
        cmocka_unit_test(test_listen_scalar_and_empty_file),
        cmocka_unit_test(test_workers_modes),
        cmocka_unit_test(test_errors_have_file_line_column),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_failed_load_leaves_config_untouched),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_listen_entries),
        cmocka_unit_test(test_listen_entry_errors),
        cmocka_unit_test(test_shared_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
