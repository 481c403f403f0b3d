/* The shared counters' redis backend in the real daemon, against a real redis-server
 * (Debian's, started here on a free port): the count stays exact across workers, a
 * worker killed and a reload; a Redis that stops answering, goes away or comes back late
 * costs only the route that needs it (503 with a JSON body), and the daemon uses it again
 * once it is back. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
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

struct redis {
    pid_t pid;
    int port;
};

/* A raw RESP exchange: the reply's first line (":5", "$1" then the value, "+PONG"). */
static bool redis_cmd(int port, const char *cmd, char *out, size_t cap)
{
    int fd = tcp_connect_quiet(port);
    if (fd < 0)
        return false;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    send_str(fd, cmd);
    size_t len = 0;
    out[0] = '\0';
    while (len < cap - 1) {
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        out[len] = '\0';
        /* A bulk string is whole after its second CRLF; anything else after its first. */
        const char *crlf = strstr(out, "\r\n");
        if (crlf && (out[0] != '$' || out[1] == '-' || strstr(crlf + 2, "\r\n")))
            break;
    }
    close(fd);
    return len > 0;
}

static bool redis_answers(void *arg)
{
    char out[64];
    return redis_cmd(*(int *)arg, "PING\r\n", out, sizeof(out)) && strncmp(out, "+PONG", 5) == 0;
}

static void redis_start(struct redis *r, int port)
{
    r->port = port;
    char portarg[16];
    snprintf(portarg, sizeof(portarg), "%d", port);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        /* No persistence: each start is an empty store, as a test wants. */
        execlp("redis-server", "redis-server", "--port", portarg, "--bind", "127.0.0.1", "--save",
               "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        fprintf(stderr, "redis-server: %s (install the Debian package redis-server)\n",
                strerror(errno));
        _exit(127);
    }
    assert_true(wait_until(redis_answers, &r->port, WAIT_MS));
}

static void redis_kill(struct redis *r)
{
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

/* GET key as a number (-1: no such key). */
static long long redis_get(int port, const char *key)
{
    char cmd[128], out[128];
    snprintf(cmd, sizeof(cmd), "GET %s\r\n", key);
    assert_true(redis_cmd(port, cmd, out, sizeof(out)));
    if (strncmp(out, "$-1", 3) == 0)
        return -1;
    const char *v = strstr(out, "\r\n");
    assert_non_null(v);
    return atoll(v + 2);
}

static const char *shared_yaml(int redis_port, const char *timeout)
{
    static char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "pid_file: @DIR@/preforkd.pid\n"
             "routes:\n"
             "  - {path: /count, handler: count}\n"
             "  - {path: /health, handler: health}\n"
             "  - {path: /, handler: sum}\n"
             "shared: {backend: redis, address: 127.0.0.1:%d, timeout: %s, prefix: 't:'}\n",
             redis_port, timeout);
    return yaml;
}

/* One GET /count on a fresh connection: its status, the count in *value when 200. */
static int get_count(int port, long long *value, char *buf, size_t cap)
{
    http_exchange(port, "GET /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf, cap);
    int status = status_of(buf);
    if (status == 200 && value)
        *value = atoll(strchr(body_of(buf), ':') + 1);
    return status;
}

/* n requests on keep-alive connections, spread over both workers (a fresh connection per
 * 10 requests, so the kernel's reuseport hash picks again); each must be a 200 with a
 * count, and the counts must all differ. */
static void count_requests(int port, int n, unsigned char *seen, int seen_cap)
{
    char buf[4096];
    for (int i = 0; i < n; i += 10) {
        int fd = tcp_connect(port);
        for (int k = 0; k < 10 && i + k < n; k++) {
            send_str(fd, "GET /count HTTP/1.1\r\nHost: t\r\n\r\n");
            bool eof;
            size_t len = read_responses(fd, 1, buf, sizeof(buf), &eof);
            assert_true(len > 0);
            assert_int_equal(status_of(buf), 200);
            long long v = atoll(strchr(body_of(buf), ':') + 1);
            assert_true(v >= 1 && v <= seen_cap);
            assert_int_equal(seen[v - 1], 0);
            seen[v - 1] = 1;
        }
        close(fd);
    }
}

static void test_count_is_exact_across_workers_kill_and_reload(void **state)
{
    (void)state;
    struct redis r;
    redis_start(&r, free_port());
    struct daemon d;
    daemon_start(&d, shared_yaml(r.port, "2s"), 2);
    enum { N = 300 };
    static unsigned char seen[N];
    memset(seen, 0, sizeof(seen));

    count_requests(d.port, 100, seen, N);
    /* A worker killed between requests: its replacement counts on from Redis. */
    pid_t before[8];
    int n = daemon_workers(&d, before, 8);
    assert_int_equal(n, 2);
    int slot = worker_slot(before[0]);
    assert_true(slot >= 0);
    assert_int_equal(kill(before[0], SIGKILL), 0);
    assert_true(daemon_wait_new_worker(&d, slot, before, n, WAIT_MS) > 0);
    assert_true(daemon_wait_health(&d, "\"serving\":2", WAIT_MS));
    count_requests(d.port, 100, seen, N);
    /* A reload: a new generation of workers, the same store. */
    char out[1024];
    const char *reload[] = {PF_TEST_BINARY, "reload", "-c", d.conf, "--timeout", "60s", NULL};
    int rc = run_capture(reload, out, sizeof(out));
    if (rc != 0)
        fail_msg("reload exited %d: %s", rc, out);
    count_requests(d.port, 100, seen, N);

    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(redis_get(r.port, "t:count"), N);
    daemon_stop(&d);
    redis_kill(&r);
}

struct count_probe {
    int port;
    int want; /* the status /count must give */
};

static bool count_gives(void *arg)
{
    struct count_probe *p = arg;
    char buf[4096];
    return get_count(p->port, NULL, buf, sizeof(buf)) == p->want;
}

/* Redis stops answering (SIGSTOP), then dies, then a new one starts on its port, all
 * under load on /count and on /health: /count answers 503 with a JSON body while there is
 * no store, never anything else; /health never fails; /count is back to 200 after. */
static void test_store_down_and_back_under_load(void **state)
{
    (void)state;
    struct redis r;
    redis_start(&r, free_port());
    struct daemon d;
    daemon_start(&d, shared_yaml(r.port, "300ms"), 2);
    struct load counts, health;
    load_start_path(&counts, d.port, 2, 4, "/count");
    load_start_path(&health, d.port, 1, 2, "/health");
    assert_true(wait_until_count(&counts.ok, 50, WAIT_MS));

    /* Silent: every waiting answer times out into a 503. */
    assert_int_equal(kill(r.pid, SIGSTOP), 0);
    assert_true(wait_until_count(&counts.unavailable, 20, WAIT_MS));
    char buf[4096];
    struct count_probe down = {d.port, 503};
    assert_true(wait_until(count_gives, &down, WAIT_MS));
    get_count(d.port, NULL, buf, sizeof(buf));
    assert_int_equal(status_of(buf), 503);
    assert_non_null(strstr(buf, "Content-Type: application/json"));
    assert_non_null(strstr(buf, "Retry-After: 1"));
    assert_non_null(strstr(body_of(buf), "\"error\":\"shared store unavailable\""));

    /* Gone, then a new, empty one on the same port. */
    kill(r.pid, SIGCONT);
    redis_kill(&r);
    unsigned long ok_before = atomic_load(&counts.ok);
    redis_start(&r, r.port);
    struct count_probe up = {d.port, 200};
    assert_true(wait_until(count_gives, &up, WAIT_MS));
    assert_true(wait_until_count(&counts.ok, ok_before + 50, WAIT_MS));

    load_stop(&counts);
    load_stop(&health);
    if (counts.failed || health.failed)
        fail_msg("/count: %lu failed (%s); /health: %lu failed (%s)", counts.failed,
                 counts.first_error, health.failed, health.first_error);
    assert_true(health.ok > 0);
    assert_int_equal(health.unavailable, 0);
    /* The new store counted what came after it started, and only that. */
    long long v = redis_get(r.port, "t:count");
    assert_true(v >= 50);
    daemon_stop(&d);
    redis_kill(&r);
}

/* No Redis at all when the daemon starts: it starts and serves; /count is a 503 until a
 * Redis appears on the address, then a 200. */
static void test_store_absent_at_start(void **state)
{
    (void)state;
    int rport = free_port();
    struct daemon d;
    daemon_start(&d, shared_yaml(rport, "500ms"), 2);
    char buf[4096];
    assert_int_equal(daemon_health(&d, buf, sizeof(buf)), 200);
    assert_int_equal(get_count(d.port, NULL, buf, sizeof(buf)), 503);
    /* "not connected" between attempts; "connection lost" for a request that came while
     * an attempt was under way (the connect to a closed port is refused a moment later). */
    assert_true(strstr(body_of(buf), "\"reason\":\"not connected\"") ||
                strstr(body_of(buf), "\"reason\":\"connection lost\""));
    struct redis r;
    redis_start(&r, rport);
    struct count_probe up = {d.port, 200};
    assert_true(wait_until(count_gives, &up, WAIT_MS));
    daemon_stop(&d);
    redis_kill(&r);
}

/* A module's counter (examples/hello.c, through pf_counter_add_then) lands in Redis with
 * no change to the module: the request is still readable when the reply comes (the name
 * from the query string is in the answer). */
static void test_module_counts_in_redis(void **state)
{
    (void)state;
    struct redis r;
    redis_start(&r, free_port());
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "modules:\n  hello: {path: %s, config: {greeting: Hi}}\n"
             "routes:\n  - {path: /hello, handler: hello.greet}\n"
             "  - {path: /health, handler: health}\n"
             "shared: {backend: redis, address: 127.0.0.1:%d}\n",
             PF_TEST_HELLO, r.port);
    struct daemon d;
    daemon_start(&d, yaml, 2);
    char buf[4096];
    for (int i = 1; i <= 3; i++) {
        http_exchange(d.port,
                      "GET /hello?name=Ada HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf,
                      sizeof(buf));
        char want[96];
        snprintf(want, sizeof(want), "{\"greeting\":\"Hi, Ada!\",\"visits\":%d}", i);
        assert_string_equal(body_of(buf), want);
    }
    assert_int_equal(redis_get(r.port, "preforkd:hello.visits"), 3);
    daemon_stop(&d);
    redis_kill(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_is_exact_across_workers_kill_and_reload),
        cmocka_unit_test(test_store_down_and_back_under_load),
        cmocka_unit_test(test_store_absent_at_start),
        cmocka_unit_test(test_module_counts_in_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
