/* Observability against the real daemon: /metrics (exact counts, format, monotonic
 * across a crash, moved and disabled), /health when degraded, `preforkd status`, the
 * access log, journald log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/promcheck.h"
#include "harness.h"

static char buf[1 << 18];

static const char *scrape(struct daemon *d, const char *path)
{
    char req[128];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    size_t n = http_exchange(d->port, req, buf, sizeof(buf));
    if (status_of(buf) != 200)
        return NULL;
    const char *body = body_of(buf);
    char err[256];
    if (promcheck(body, n - (size_t)(body - buf), err, sizeof(err)) < 0)
        fail_msg("/metrics is not valid exposition text: %s", err);
    return body;
}

static void get(struct daemon *d, const char *path, int times)
{
    char req[128];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    for (int i = 0; i < times; i++)
        http_exchange(d->port, req, buf, sizeof(buf));
}

static void test_counters_add_up_exactly(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    get(&d, "/", 137);
    get(&d, "/health", 23);
    get(&d, "/nope", 11);
    for (int i = 0; i < 4; i++)
        http_exchange(d.port, "GARBAGE\r\n\r\n", buf, sizeof(buf));
    const char *m = scrape(&d, "/metrics");
    assert_non_null(m);
    assert_true(promsum(m, "preforkd_requests_total", "route=\"/\",code=\"2xx\"") == 137);
    assert_true(promsum(m, "preforkd_requests_total", "route=\"/health\",code=\"2xx\"") == 23);
    assert_true(promsum(m, "preforkd_requests_total", "route=\"other\",code=\"4xx\"") == 15);
    /* 175 connections above, plus the scrape's own. */
    assert_true(promsum(m, "preforkd_connections_accepted_total", "") == 176);
    assert_true(promsum(m, "preforkd_workers_serving", "") == 2);
    assert_true(promsum(m, "preforkd_sent_bytes_total", "") > 137 * 18);
    /* Both workers took part (reuseport spreads 176 connections). */
    assert_true(promsum(m, "preforkd_requests_total", "worker=\"0\"") > 0);
    assert_true(promsum(m, "preforkd_requests_total", "worker=\"1\"") > 0);

    /* A worker is killed: its slot's counters carry on from where they were. */
    double slot0 = promsum(m, "preforkd_requests_total", "worker=\"0\",route=\"/\"");
    pid_t w[4];
    int n = daemon_workers(&d, w, 4);
    pid_t victim = worker_slot(w[0]) == 0 ? w[0] : w[1];
    assert_int_equal(n, 2);
    sleep_ms(1100); /* past min_uptime: replaced at once */
    kill(victim, SIGKILL);
    /* The primary folds the victim's counters into the slot before it forks the
     * successor: once that is in the process table, the figures are final. */
    assert_true(daemon_wait_new_worker(&d, 0, w, 2, WAIT_MS) > 0);
    m = scrape(&d, "/metrics");
    assert_non_null(m);
    assert_true(promsum(m, "preforkd_requests_total", "worker=\"0\",route=\"/\"") == slot0);
    assert_true(promsum(m, "preforkd_requests_total", "route=\"/\",code=\"2xx\"") == 137);
    assert_true(promsum(m, "preforkd_worker_restarts_total", "worker=\"0\"") == 1);
    assert_true(promsum(m, "preforkd_restarts_total", "") == 1);
    assert_true(promsum(m, "preforkd_requests_total", "route=\"/metrics\",code=\"2xx\"") == 1);
    daemon_stop(&d);
}

static void test_metrics_moved_and_disabled(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "metrics:\n  path: /internal/metrics\n", 1);
    http_exchange(d.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 404);
    assert_non_null(scrape(&d, "/internal/metrics"));
    assert_non_null(strstr(buf, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    daemon_stop(&d);
    daemon_start(&d, "metrics:\n  enabled: false\n", 1);
    http_exchange(d.port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 404);
    daemon_stop(&d);
}

static void test_health_503_when_degraded(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"PREFORKD_FAULT=exit-at-start:1", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1, .ready = DAEMON_READY_ANSWERING};
    daemon_start_opts(&d, "health:\n  fail_when_degraded: true\n", 2, &o);
    /* Degraded as the primary sees it (slot 1 has no serving worker); slot 0 covers
     * slot 1's queue, so every request reaches a worker. */
    assert_true(daemon_wait_metric(&d, "preforkd_degraded", 1, 1, WAIT_MS));
    http_exchange(d.port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 503);
    assert_true(strncmp(body_of(buf), "{\"status\":\"degraded\",", 21) == 0);
    assert_non_null(strstr(buf, "\"degraded\":true}"));
    const char *m = scrape(&d, "/metrics");
    assert_true(promsum(m, "preforkd_degraded", "") == 1);
    assert_true(promsum(m, "preforkd_backoffs_total", "") >= 1);
    daemon_stop(&d);
}

static int run_status(const char *conf, bool json, char *out, size_t cap)
{
    const char *argv[] = {PF_TEST_BINARY, "status", "-c", conf, json ? "--json" : NULL, NULL};
    return run_capture(argv, out, cap);
}

static void test_status_command(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    get(&d, "/", 5);
    static char out[8192];
    assert_int_equal(run_status(d.conf, false, out, sizeof(out)), 0);
    print_message("%s", out);
    assert_non_null(strstr(out, ": serving (ready), 2/2 workers serving"));
    assert_non_null(strstr(out, "slot  pid      state     uptime   restarts  rss"));
    pid_t w[4];
    assert_int_equal(daemon_workers(&d, w, 4), 2);
    for (int i = 0; i < 2; i++) {
        char row[64];
        snprintf(row, sizeof(row), "%-5d %-8d serving", worker_slot(w[i]), (int)w[i]);
        assert_non_null(strstr(out, row));
    }
    assert_int_equal(run_status(d.conf, true, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"serving\":2,"));
    assert_non_null(strstr(out, "\"state\":\"serving\",\"ready\":true,"));
    char pid[32];
    snprintf(pid, sizeof(pid), "\"pid\":%d,", (int)w[0]);
    assert_non_null(strstr(out, pid));
    char conf[128];
    snprintf(conf, sizeof(conf), "%s", d.conf);
    char copy[160];
    snprintf(copy, sizeof(copy), "/tmp/preforkd-status-%d.yaml", (int)getpid());
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", conf, copy);
    assert_int_equal(system(cmd), 0);
    daemon_stop(&d);
    /* No daemon: a clear message and status 1. */
    assert_int_equal(run_status(copy, false, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "no preforkd is answering on 127.0.0.1:"));
    unlink(copy);
}

static void test_access_log(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "access_log:\n  format: combined\n  path: @DIR@/access.log\n", 2);
    get(&d, "/", 20);
    get(&d, "/nope", 3);
    char path[160];
    snprintf(path, sizeof(path), "%s/access.log", d.dir);
    /* Written from the worker's buffer about once a second, not per request. */
    long long t0 = now_ms();
    int lines = 0, ok200 = 0, ok404 = 0;
    while (now_ms() - t0 < WAIT_MS && lines < 23) {
        sleep_ms(100);
        FILE *f = fopen(path, "r");
        lines = ok200 = ok404 = 0;
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            lines++;
            ok200 += strncmp(line, "127.0.0.1 - - [", 15) == 0 &&
                     strstr(line, "] \"GET / HTTP/1.1\" 200 18 \"-\" \"-\"\n") != NULL;
            ok404 += strstr(line, "\"GET /nope HTTP/1.1\" 404 21 ") != NULL;
        }
        if (f)
            fclose(f);
    }
    assert_int_equal(lines, 23);
    assert_int_equal(ok200, 20);
    assert_int_equal(ok404, 3);
    daemon_stop(&d);
}

static void test_journald_priority_prefixes(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"JOURNAL_STREAM=8:12345", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    daemon_start_opts(&d, NULL, 1, &o);
    FILE *f = fopen(d.log, "r");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        n++;
        /* "<6>[info] worker 0 pid 123: ..." : priority instead of a timestamp. */
        assert_true(line[0] == '<' && line[2] == '>');
        assert_non_null(strstr(line, " pid "));
    }
    fclose(f);
    assert_true(n >= 3);
    assert_true(daemon_log_contains(&d, "<6>[info] primary pid"));
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_add_up_exactly),
        cmocka_unit_test(test_metrics_moved_and_disabled),
        cmocka_unit_test(test_health_503_when_degraded),
        cmocka_unit_test(test_status_command),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_journald_priority_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
