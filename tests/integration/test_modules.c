/* Handler modules in the real daemon: the request view and the response writer through
 * a module, a crashing handler, a refused header, every way a module can fail to load
 * (with the old generation still serving), and a reload that swaps a module's code under
 * load. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MOD(name) PF_TEST_MODULES_DIR "/" name ".so"

static const char *get(struct daemon *d, const char *target, char *buf, size_t cap)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", target);
    http_exchange(d->port, req, buf, cap);
    return buf;
}

static const char *routes_yaml(const char *module_path)
{
    static char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "pid_file: @DIR@/preforkd.pid\n"
             "modules:\n"
             "  test:\n"
             "    path: %s\n"
             "    config: {must: pass, nested: {a: 1}}\n"
             "routes:\n"
             "  - {path: /health, handler: health}\n"
             "  - {path: /version, handler: test.version}\n"
             "  - {path: /echo/, handler: test.echo, methods: [GET, POST]}\n"
             "  - {path: /crash, handler: test.crash}\n"
             "  - {path: /inject, handler: test.inject}\n"
             "  - {path: /teapot, handler: test.teapot}\n",
             module_path);
    return yaml;
}

static void test_request_view_and_response_writer(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, routes_yaml(MOD("testmod_v1")), 2);
    char buf[8192];
    assert_string_equal(body_of(get(&d, "/version", buf, sizeof(buf))), "{\"version\":1}");
    /* Everything the view offers, with a body. */
    int fd = tcp_connect(d.port);
    send_str(fd, "POST /echo/a%20b?x=1&q=caf%C3%A9+au+lait HTTP/1.1\r\nHost: t\r\n"
                 "X-Test:  spaced value  \r\nContent-Length: 11\r\n\r\nhello world");
    bool eof;
    assert_true(read_responses(fd, 1, buf, sizeof(buf), &eof) > 0);
    close(fd);
    assert_int_equal(status_of(buf), 200);
    assert_non_null(strstr(buf, "\r\nX-Echo: yes\r\n"));
    assert_non_null(strstr(buf, "\r\nContent-Type: application/json\r\n"));
    const char *want = "{\"method\":\"POST\",\"path\":\"/echo/a b\",\"raw_path\":\"/echo/a%20b\","
                       "\"query\":\"x=1&q=caf%C3%A9+au+lait\",\"q\":\"café au lait\","
                       "\"x_test\":\"spaced value\",\"headers\":3,\"body\":\"hello world\","
                       "\"peer_family\":2,\"worker\":";
    if (strncmp(body_of(buf), want, strlen(want)) != 0)
        fail_msg("echo: %s", body_of(buf));
    const char *slot = body_of(buf) + strlen(want);
    assert_true((slot[0] == '0' || slot[0] == '1') && strcmp(slot + 1, "}") == 0);
    /* A chunked body arrives whole and de-chunked. */
    fd = tcp_connect(d.port);
    send_str(fd, "POST /echo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n");
    assert_true(read_responses(fd, 1, buf, sizeof(buf), &eof) > 0);
    close(fd);
    assert_non_null(strstr(body_of(buf), "\"body\":\"hello!\""));
    /* HEAD: the daemon owns framing: the length of the would-be body, no body. */
    fd = tcp_connect(d.port);
    send_str(fd,
             "HEAD /version HTTP/1.1\r\nHost: t\r\n\r\nGET /version HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(read_responses(fd, 1, buf, sizeof(buf), &eof) > 0);
    close(fd);
    assert_non_null(strstr(buf, "Content-Length: 13\r\n"));
    /* A module's status and Content-Type. */
    get(&d, "/teapot", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 418 \r\n", 15) == 0);
    assert_non_null(strstr(buf, "\r\nContent-Type: text/plain\r\n"));
    assert_null(strstr(buf, "application/json"));
    assert_string_equal(body_of(buf), "short and stout\n");
    /* A method the route does not take. */
    fd = tcp_connect(d.port);
    send_str(fd, "DELETE /echo/x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(read_responses(fd, 1, buf, sizeof(buf), &eof) > 0);
    close(fd);
    assert_int_equal(status_of(buf), 405);
    assert_non_null(strstr(buf, "\r\nAllow: GET, HEAD, POST\r\n"));
    daemon_stop(&d);
}

static void test_header_injection_is_refused(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, routes_yaml(MOD("testmod_v1")), 1);
    char buf[8192];
    get(&d, "/inject", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 500);
    assert_null(strstr(buf, "Set-Cookie"));
    assert_null(strstr(buf, "stolen"));
    assert_null(strstr(buf, "X-Ok")); /* the whole answer is replaced, not half sent */
    /* The worker is fine. */
    assert_string_equal(body_of(get(&d, "/version", buf, sizeof(buf))), "{\"version\":1}");
    daemon_stop(&d);
}

static void test_crashing_handler_takes_down_only_its_worker(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, routes_yaml(MOD("testmod_v1")), 2);
    pid_t before[64];
    int n = daemon_workers(&d, before, 64);
    assert_int_equal(n, 2);
    char buf[8192];
    get(&d, "/crash", buf, sizeof(buf)); /* the connection dies with its worker */
    /* A replacement appears in the dead one's place; the service answers all along. */
    long long deadline = now_ms() + 20000;
    bool replaced = false;
    while (!replaced && now_ms() < deadline) {
        pid_t now[64];
        int m = daemon_workers(&d, now, 64), fresh = 0;
        for (int i = 0; i < m; i++) {
            bool old = false;
            for (int j = 0; j < n; j++)
                old |= now[i] == before[j];
            fresh += !old;
        }
        replaced = m == 2 && fresh == 1;
        assert_string_equal(body_of(get(&d, "/version", buf, sizeof(buf))), "{\"version\":1}");
    }
    assert_true(replaced);
    get(&d, "/metrics", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\npreforkd_restarts_total 1\n"));
    daemon_stop(&d);
}

/* `preforkd -t` on a file whose module cannot be used: exit 1, FILE:LINE:COL and why. */
static void expect_check_fails(struct daemon *d, const char *yaml, const char *line_col,
                               const char *why)
{
    daemon_write_config(d, yaml, 1);
    char out[4096];
    const char *argv[] = {PF_TEST_BINARY, "-t", "-c", d->conf, NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 1);
    char want[256];
    snprintf(want, sizeof(want), "%s:%s:", d->conf, line_col);
    if (!strstr(out, want) || !strstr(out, why))
        fail_msg("expected %s ... %s in: %s", want, why, out);
    /* A reload to the same file fails, and the old generation keeps serving. */
    const char *reload[] = {PF_TEST_BINARY, "reload", "-c", d->conf, "--timeout", "60s", NULL};
    int rc = run_capture(reload, out, sizeof(out));
    if (rc != 1)
        fail_msg("reload exited %d: %s", rc, out);
    char buf[4096];
    assert_string_equal(body_of(get(d, "/version", buf, sizeof(buf))), "{\"version\":1}");
}

static void test_each_load_failure_keeps_the_old_generation(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, routes_yaml(MOD("testmod_v1")), 1);
    char yaml[4096];
    /* The module entry is on line 5 (listen, workers, pid_file, modules, name); the
     * routes' list ends on line 14. */
    snprintf(yaml, sizeof(yaml), "%s", routes_yaml("/nonexistent/mod.so"));
    expect_check_fails(&d, yaml, "5:3", "cannot load");
    expect_check_fails(&d, routes_yaml(MOD("testmod_nodesc")), "5:3", "no preforkd_module");
    expect_check_fails(&d, routes_yaml(MOD("testmod_badapi")), "5:3", "API version");
    expect_check_fails(&d, routes_yaml(MOD("testmod_initfail")), "5:3",
                       "init failed: cannot reach the database");
    /* A handler the module does not have: the route's line. */
    snprintf(yaml, sizeof(yaml), "%s  - {path: /gone, handler: test.nosuch}\n",
             routes_yaml(MOD("testmod_v1")));
    expect_check_fails(&d, yaml, "15:5", "has no handler 'nosuch'");
    /* A module the routes name but the file does not declare: a config error. */
    snprintf(yaml, sizeof(yaml), "%s  - {path: /x, handler: other.h}\n",
             routes_yaml(MOD("testmod_v1")));
    expect_check_fails(&d, yaml, "15", "no module 'other'");
    daemon_stop(&d);
}

/* Keep-alive clients asking for /version until told to stop; every answer must be a
 * complete 200 from one version or the other. */
struct swap_load {
    int port;
    _Atomic bool stop;
    _Atomic unsigned long ok, failed, v2;
};

static void *swap_client(void *arg)
{
    struct swap_load *l = arg;
    char buf[4096];
    while (!l->stop) {
        int fd = tcp_connect(l->port);
        for (int i = 0; i < 50 && !l->stop; i++) {
            send_str(fd, "GET /version HTTP/1.1\r\nHost: t\r\n\r\n");
            bool eof;
            size_t n = read_responses(fd, 1, buf, sizeof(buf), &eof);
            if (n == 0 || status_of(buf) != 200 ||
                (strcmp(body_of(buf), "{\"version\":1}") != 0 &&
                 strcmp(body_of(buf), "{\"version\":2}") != 0)) {
                if (!l->failed)
                    fprintf(stderr,
                            "first failure: request %d on its connection, %zu bytes, "
                            "eof %d: %.200s\n",
                            i, n, eof, n ? buf : "");
                l->failed++;
                break;
            }
            l->ok++;
            l->v2 += strcmp(body_of(buf), "{\"version\":2}") == 0;
            /* A draining worker's last answer says close: then the next goes elsewhere. */
            if (eof || strstr(buf, "\r\nConnection: close\r\n"))
                break;
        }
        close(fd);
    }
    return NULL;
}

static void test_reload_swaps_module_code_under_load(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 2);
    /* The module lives at one path; a deploy replaces the file, then reloads. */
    char path[256], tmp[300], cmd[1024];
    snprintf(path, sizeof(path), "%s/app.so", d.dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", MOD("testmod_v1"), path);
    assert_int_equal(system(cmd), 0);
    daemon_write_config(&d, routes_yaml(path), 2);
    char out[4096];
    const char *reload[] = {PF_TEST_BINARY, "reload", "-c", d.conf, "--timeout", "60s", NULL};
    assert_int_equal(run_capture(reload, out, sizeof(out)), 0);
    struct swap_load l = {.port = d.port};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, swap_client, &l);
    long long deadline = now_ms() + 10000;
    while (l.ok < 200 && now_ms() < deadline)
        sleep_ms(10);
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && mv '%s' '%s'", MOD("testmod_v2"), tmp, tmp, path);
    assert_int_equal(system(cmd), 0); /* an atomic replace, as a package manager does */
    int rc = run_capture(reload, out, sizeof(out));
    deadline = now_ms() + 10000;
    unsigned long v2_seen = l.v2;
    while (l.v2 < v2_seen + 200 && now_ms() < deadline)
        sleep_ms(10);
    l.stop = true;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    if (rc != 0)
        fail_msg("reload exited %d: %s", rc, out);
    char buf[4096];
    assert_string_equal(body_of(get(&d, "/version", buf, sizeof(buf))), "{\"version\":2}");
    printf("module swap under load: %lu answered, %lu failed, %lu from the new code\n", l.ok,
           l.failed, l.v2);
    assert_int_equal(l.failed, 0);
    assert_true(l.v2 > 0);
    daemon_stop(&d);
}

static void test_example_module(void **state)
{
    (void)state;
    struct daemon d;
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "modules:\n  hello:\n    path: %s\n    config: {greeting: Hi}\n"
             "routes:\n  - {path: /hello, handler: hello.greet}\n",
             PF_TEST_HELLO);
    daemon_start(&d, yaml, 2);
    char buf[4096];
    assert_string_equal(body_of(get(&d, "/hello?name=Ada", buf, sizeof(buf))),
                        "{\"greeting\":\"Hi, Ada!\",\"visits\":1}");
    assert_string_equal(body_of(get(&d, "/hello", buf, sizeof(buf))),
                        "{\"greeting\":\"Hi, world!\",\"visits\":2}");
    /* A name that needs JSON escaping stays a string. */
    assert_string_equal(body_of(get(&d, "/hello?name=%22%0A", buf, sizeof(buf))),
                        "{\"greeting\":\"Hi, \\\"\\u000a!\",\"visits\":3}");
    daemon_stop(&d);
}

/* The seed guide's counter, correct across workers: N requests spread over every worker,
 * workers killed between them, the count ends at exactly N. */
static void test_count_route_is_exact_across_workers_and_kills(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d,
                 "routes:\n  - {path: /count, handler: count}\n"
                 "  - {path: /health, handler: health}\n",
                 2);
    char buf[4096];
    const int n = 1200;
    for (int i = 1; i <= n; i++) {
        if (i % 300 == 0) {
            /* Between requests, so none is in flight: a worker dies, another replaces it. */
            pid_t w[64];
            int m = daemon_workers(&d, w, 64);
            assert_true(m > 0);
            kill(w[i / 300 % m], SIGKILL);
        }
        /* A fresh connection each time, so reuseport spreads them over the workers. */
        get(&d, "/count", buf, sizeof(buf));
        if (status_of(buf) != 200) {
            /* The connection met the killed worker: the same request again. */
            i--;
            sleep_ms(20);
            continue;
        }
        char want[64];
        snprintf(want, sizeof(want), "{\"count\":%d}", i);
        if (strcmp(body_of(buf), want) != 0)
            fail_msg("request %d: %s", i, body_of(buf));
    }
    static char metrics[1 << 17];
    get(&d, "/metrics", metrics, sizeof(metrics));
    char want[96];
    snprintf(want, sizeof(want), "\npreforkd_counter_total{name=\"count\"} %d\n", n);
    if (!strstr(metrics, want))
        fail_msg("no %s in /metrics", want + 1);
    /* Spread over both slots (reuseport hashes each new connection). */
    for (int slot = 0; slot < 2; slot++) {
        char series[96];
        snprintf(series, sizeof(series),
                 "preforkd_requests_total{worker=\"%d\",route=\"/count\",code=\"2xx\"} ", slot);
        const char *at = strstr(metrics, series);
        assert_non_null(at);
        assert_true(atol(at + strlen(series)) > 0);
    }
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_view_and_response_writer),
        cmocka_unit_test(test_header_injection_is_refused),
        cmocka_unit_test(test_crashing_handler_takes_down_only_its_worker),
        cmocka_unit_test(test_each_load_failure_keeps_the_old_generation),
        cmocka_unit_test(test_reload_swaps_module_code_under_load),
        cmocka_unit_test(test_example_module),
        cmocka_unit_test(test_count_route_is_exact_across_workers_and_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
