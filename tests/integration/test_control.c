/* `preforkd reload` (an outcome the caller can trust), the operator's worker count across
 * reloads, a graceful stop that refuses new connections instead of accepting and then
 * resetting them, readiness (GET /ready) and the lame duck before a graceful stop, and
 * `preforkd stop`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <cmocka.h>

#include "harness.h"

static int reload_cmd(const struct daemon *d, char *out, size_t cap)
{
    const char *argv[] = {PF_TEST_BINARY, "reload", "-c", d->conf, "--timeout", "60s", NULL};
    return run_capture(argv, out, cap);
}

static bool contains_pid(const pid_t *set, int n, pid_t pid)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* Waits until the primary's children are exactly `want` processes, none from `old`. */
static bool wait_all_replaced(const struct daemon *d, const pid_t *old, int nold, int want, int ms)
{
    long long deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        pid_t w[64];
        int n = daemon_workers(d, w, 64), fresh = 0;
        for (int i = 0; i < n; i++)
            fresh += !contains_pid(old, nold, w[i]);
        if (n == want && fresh == want)
            return true;
        sleep_ms(20);
    }
    return false;
}

static void expect_served(const struct daemon *d)
{
    char buf[4096];
    for (int i = 0; i < 10; i++) {
        http_exchange(d->port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf,
                      sizeof(buf));
        assert_int_equal(status_of(buf), 200);
    }
}

static void test_reload_command_waits_for_the_new_generation(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 2);
    pid_t old[64];
    int nold = daemon_workers(&d, old, 64);
    assert_int_equal(nold, 2);
    char out[4096];
    int rc = reload_cmd(&d, out, sizeof(out));
    if (rc != 0) {
        daemon_dump_log(&d);
        fail_msg("reload exited %d: %s", rc, out);
    }
    assert_non_null(strstr(out, "generation 2 serves"));
    /* The moment it returns, two workers of the new generation are there and serving
     * (old ones may still be draining). */
    pid_t now[64];
    int n = daemon_workers(&d, now, 64), fresh = 0;
    for (int i = 0; i < n; i++)
        fresh += !contains_pid(old, nold, now[i]);
    assert_int_equal(fresh, 2);
    assert_true(wait_all_replaced(&d, old, nold, 2, 10000));
    expect_served(&d);
    daemon_stop(&d);
}

static void test_reload_command_reports_a_broken_file_and_signals_nothing(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 2);
    pid_t old[64];
    int nold = daemon_workers(&d, old, 64);
    daemon_write_config(&d, "pid_file: @DIR@/preforkd.pid\ntimeouts:\n  header: soon\n", 2);
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 1);
    /* FILE:LINE:COLUMN: message, the same as -t prints. */
    char want[200];
    snprintf(want, sizeof(want), "%s:5:", d.conf);
    if (!strstr(out, want))
        fail_msg("no %s in: %s", want, out);
    assert_non_null(strstr(out, "nothing was reloaded"));
    /* The daemon never saw a signal: same workers, still serving. */
    pid_t now[64];
    assert_int_equal(daemon_workers(&d, now, 64), nold);
    for (int i = 0; i < nold; i++)
        assert_true(contains_pid(old, nold, now[i]));
    expect_served(&d);
    daemon_stop(&d);
}

static void test_reload_command_reports_workers_that_cannot_start(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 2);
    pid_t old[64];
    int nold = daemon_workers(&d, old, 64);
    /* A valid file whose workers cannot start: the access log's directory is missing. */
    daemon_write_config(&d,
                        "pid_file: @DIR@/preforkd.pid\naccess_log:\n  format: combined\n"
                        "  path: @DIR@/missing/access.log\n",
                        2);
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "old workers keep serving"));
    /* The old generation never stopped: the same workers serve. */
    expect_served(&d);
    pid_t now[64];
    int n = daemon_workers(&d, now, 64);
    for (int i = 0; i < nold; i++)
        assert_true(contains_pid(now, n, old[i]));
    /* A good file afterwards reloads normally. */
    daemon_write_config(&d, "pid_file: @DIR@/preforkd.pid\n", 2);
    int rc = reload_cmd(&d, out, sizeof(out));
    if (rc != 0) {
        daemon_dump_log(&d);
        fail_msg("reload exited %d: %s", rc, out);
    }
    assert_true(wait_all_replaced(&d, old, nold, 2, 10000));
    daemon_stop(&d);
}

static void test_reload_command_reports_a_port_in_use(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 1);
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(busy, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(busy, 1), 0);
    socklen_t len = sizeof(a);
    getsockname(busy, (struct sockaddr *)&a, &len);
    /* daemon_write_config puts its own listen line first; a second `listen` key is an
     * error, so write the file by hand. */
    FILE *f = fopen(d.conf, "w");
    assert_non_null(f);
    fprintf(f, "listen: 127.0.0.1:%d\nworkers: 1\npid_file: %s/preforkd.pid\n", ntohs(a.sin_port),
            d.dir);
    fclose(f);
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 1);
    assert_non_null(strstr(out, strerror(EADDRINUSE)));
    close(busy);
    expect_served(&d);
    daemon_stop(&d);
}

static void test_reload_command_needs_a_pid(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 1);
    unsetenv("MAINPID");
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "pid_file"));
    const char *argv[] = {PF_TEST_BINARY, "reload", "-c", d.conf, "--pid", "1x", NULL};
    assert_int_equal(run_capture(argv, out, sizeof(out)), 1);
    daemon_stop(&d);
}

/* The count an operator set at run time (TTIN/TTOU) outranks the file on reload. */
static void test_worker_count_set_by_ttin_survives_reload(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\n", 1);
    kill(d.pid, SIGTTIN);
    long long deadline = now_ms() + 10000;
    pid_t w[64];
    while (daemon_workers(&d, w, 64) != 2 && now_ms() < deadline)
        sleep_ms(20);
    assert_int_equal(daemon_workers(&d, w, 64), 2);
    pid_t before[64];
    int nbefore = daemon_workers(&d, before, 64);
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 0);
    assert_true(wait_all_replaced(&d, before, nbefore, 2, 10000));
    daemon_stop(&d);
}

/* -w on the command line lasts for the process's life, like nginx's -g. */
static void test_worker_count_from_command_line_survives_reload(void **state)
{
    (void)state;
    struct daemon d;
    const char *args[] = {"-w", "2", NULL};
    struct daemon_opts o = {.listen_fd = -1, .args = args};
    daemon_start_opts(&d, "pid_file: @DIR@/preforkd.pid\n", 2, &o);
    daemon_write_config(&d, "pid_file: @DIR@/preforkd.pid\n", 1); /* the file says 1 */
    pid_t before[64];
    int nbefore = daemon_workers(&d, before, 64);
    assert_int_equal(nbefore, 2);
    char out[4096];
    assert_int_equal(reload_cmd(&d, out, sizeof(out)), 0);
    assert_true(wait_all_replaced(&d, before, nbefore, 2, 10000));
    daemon_stop(&d);
}

/* A graceful stop: connections already queued are served, later connects are refused,
 * never accepted and then reset or left unanswered. A slow request keeps the drain open
 * meanwhile. */
static void test_graceful_stop_refuses_new_connections(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  header: 30s\n", 2);
    int slow = tcp_connect(d.port);
    send_str(slow, "GET / HTTP/1.1\r\nHost: t\r\n"); /* the head is not finished */
    kill(d.pid, SIGQUIT);
    int refused = 0, answered = 0;
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)d.port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            assert_int_equal(errno, ECONNREFUSED);
            refused++;
            close(fd);
            sleep_ms(5);
            continue;
        }
        send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        char buf[4096];
        bool eof;
        size_t n = read_responses(fd, 1, buf, sizeof(buf), &eof);
        close(fd);
        if (n == 0 || status_of(buf) != 200) {
            daemon_dump_log(&d);
            fail_msg("connection %d was accepted during the stop but not answered (%zu bytes)", i,
                     n);
        }
        answered++;
        sleep_ms(5);
    }
    /* The stop closed the listeners while the slow request still held the drain open. */
    assert_true(refused > 0);
    send_str(slow, "\r\n");
    char buf[4096];
    bool eof;
    assert_true(read_responses(slow, 1, buf, sizeof(buf), &eof) > 0);
    assert_int_equal(status_of(buf), 200);
    close(slow);
    int st = daemon_signal_and_wait(&d, 0, 20000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("stop: %d connects refused, %d answered\n", refused, answered);
}

/* GET path on a fresh connection: the status, or -1 when the connect was refused. */
static int try_get(int port, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED)
            fail_msg("connect to port %d: %s", port, strerror(e));
        return -1;
    }
    char req[160];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    send_str(fd, req);
    bool eof;
    size_t n = read_responses(fd, 1, buf, cap, &eof);
    close(fd);
    buf[n < cap ? n : cap - 1] = '\0';
    return n ? status_of(buf) : 0;
}

/* Waits until GET /ready answers with needle in its body. */
static bool wait_ready_body(const struct daemon *d, const char *needle, char *buf, size_t cap)
{
    long long deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        if (try_get(d->port, "/ready", buf, cap) > 0 && strstr(body_of(buf), needle))
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool closes(const char *response)
{
    const char *end = strstr(response, "\r\n\r\n");
    const char *c = strstr(response, "\r\nConnection: close\r\n");
    return c && end && c < end;
}

/* /ready is 200 while serving, and 503 while degraded when health.ready_when_degraded is
 * false; /health stays 200 (health.fail_when_degraded is false). */
static void test_ready_while_serving_and_degraded(void **state)
{
    (void)state;
    /* Slot 2 cannot start: SIGTTIN makes the instance degraded after it has served. One
     * shared socket, so that no connection waits in a queue of slot 2's own (workers
     * forked before SIGTTIN do not hold it, so they cannot cover it). */
    const char *env[] = {"PREFORKD_FAULT=exit-at-start:2", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    struct daemon d;
    daemon_start_opts(&d, "balance: shared\nhealth:\n  ready_when_degraded: false\n", 2, &o);
    char buf[4096];
    assert_int_equal(try_get(d.port, "/ready", buf, sizeof(buf)), 200);
    assert_string_equal(body_of(buf), "{\"ready\":true,\"state\":\"serving\",\"degraded\":false}");
    assert_non_null(strstr(buf, "\r\nCache-Control: no-store\r\n"));
    assert_false(closes(buf));
    assert_true(daemon_wait_metric(&d, "preforkd_ready", 1, 1, WAIT_MS));
    assert_true(daemon_wait_metric(&d, "preforkd_state{state=\"serving\"}", 1, 1, WAIT_MS));
    kill(d.pid, SIGTTIN);
    assert_true(daemon_wait_metric(&d, "preforkd_degraded", 1, 1, WAIT_MS));
    assert_int_equal(try_get(d.port, "/ready", buf, sizeof(buf)), 503);
    assert_string_equal(body_of(buf), "{\"ready\":false,\"state\":\"serving\",\"degraded\":true}");
    assert_true(metric_value(d.port, "preforkd_ready") == 0);
    assert_int_equal(try_get(d.port, "/health", buf, sizeof(buf)), 200);
    daemon_stop(&d);
}

/* SIGQUIT with timeouts.lame_duck: first not ready while still accepting and answering,
 * each answer with Connection: close; then the drain, where connects are refused. Every
 * check of the lame duck is bracketed by /ready answers that say lame_duck, so none
 * depends on how long anything took. */
static void test_lame_duck_before_a_graceful_stop(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  lame_duck: 2s\n", 2);
    static char buf[8192], out[8192];
    /* A load balancer's kept-alive connection, opened while serving. */
    int kept = tcp_connect(d.port);
    send_str(kept, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bool eof;
    assert_true(read_responses(kept, 1, buf, sizeof(buf), &eof) > 0);
    assert_int_equal(status_of(buf), 200);
    assert_false(closes(buf));

    kill(d.pid, SIGQUIT);
    if (!wait_ready_body(&d, "\"state\":\"lame_duck\"", buf, sizeof(buf))) {
        daemon_dump_log(&d);
        fail_msg("/ready never said lame_duck; last answer: %s", buf);
    }
    assert_int_equal(status_of(buf), 503);
    assert_string_equal(body_of(buf),
                        "{\"ready\":false,\"state\":\"lame_duck\",\"degraded\":false}");
    /* A new connection is accepted and answered, with Connection: close. */
    static char fresh[4096];
    int fresh_status = try_get(d.port, "/", fresh, sizeof(fresh));
    /* The kept-alive connection's next request too, and then it is closed. */
    send_str(kept, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    static char again[4096];
    size_t n = read_responses(kept, 1, again, sizeof(again), &eof);
    again[n] = '\0';
    char tail[16];
    bool kept_closed = recv(kept, tail, sizeof(tail), 0) == 0;
    close(kept);
    /* `preforkd status` says so too. */
    const char *argv[] = {PF_TEST_BINARY, "status", "-c", d.conf, "--json", NULL};
    int status_rc = run_capture(argv, out, sizeof(out));
    /* Still the lame duck now, so it was all along. */
    if (try_get(d.port, "/ready", buf, sizeof(buf)) != 503 ||
        !strstr(body_of(buf), "\"state\":\"lame_duck\"")) {
        daemon_dump_log(&d);
        fail_msg("the lame duck (2 s) ended before its checks were done: %s", buf);
    }
    assert_int_equal(fresh_status, 200);
    assert_true(closes(fresh));
    assert_string_equal(body_of(fresh), "{\"sum\":4999950000}");
    assert_int_equal(status_of(again), 200);
    assert_true(closes(again));
    assert_true(kept_closed);
    assert_int_equal(status_rc, 0);
    if (!strstr(out, "\"state\":\"lame_duck\",\"ready\":false,"))
        fail_msg("status --json: %s", out);

    /* Then the drain: the listeners close, and connects are refused. */
    long long deadline = now_ms() + WAIT_MS;
    int st = -1;
    while (now_ms() < deadline && try_get(d.port, "/", buf, sizeof(buf)) != -1)
        sleep_ms(10);
    st = daemon_signal_and_wait(&d, 0, WAIT_MS);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        daemon_dump_log(&d);
        fail_msg("after the lame duck: exit status %d", st);
    }
    assert_true(daemon_log_contains(&d, "lame duck"));
    daemon_remove_dir(&d);
}

/* Whether pid has exited (and waits to be reaped), without reaping it. */
static bool has_exited(pid_t pid)
{
    siginfo_t si = {0};
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

static int stop_cmd(const char *const *args, char *out, size_t cap)
{
    const char *argv[16] = {PF_TEST_BINARY, "stop"};
    size_t n = 2;
    while (*args && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    return run_capture(argv, out, cap);
}

/* `preforkd stop` returns once the primary has exited: 0; 1 when it has not in time. */
static void test_stop_command(void **state)
{
    (void)state;
    char out[4096];
    struct daemon d;
    /* Graceful, the primary from the file's pid_file, through a lame duck. */
    daemon_start(&d, "pid_file: @DIR@/preforkd.pid\ntimeouts:\n  lame_duck: 500ms\n", 2);
    unsetenv("MAINPID");
    const char *graceful[] = {"--graceful", "-c", d.conf, "--timeout", "60s", NULL};
    int rc = stop_cmd(graceful, out, sizeof(out));
    if (rc != 0) {
        daemon_dump_log(&d);
        fail_msg("stop --graceful exited %d: %s", rc, out);
    }
    assert_non_null(strstr(out, "has exited (graceful stop)"));
    assert_true(has_exited(d.pid));
    assert_true(daemon_log_contains(&d, "lame duck"));
    daemon_stop(&d); /* reaps it: exit status 0, no worker left */

    /* Fast, by --pid. */
    daemon_start(&d, NULL, 1);
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)d.pid);
    const char *fast[] = {"--pid", pid, NULL};
    assert_int_equal(stop_cmd(fast, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "has exited (fast stop)"));
    assert_true(has_exited(d.pid));
    assert_false(daemon_log_contains(&d, "lame duck"));
    daemon_stop(&d);

    /* A process that ignores both signals: exit 1 once --timeout has passed. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t stubborn = fork();
    if (stubborn == 0) {
        signal(SIGTERM, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    char x;
    assert_int_equal(read(ready[0], &x, 1), 1);
    snprintf(pid, sizeof(pid), "%d", (int)stubborn);
    const char *slow[] = {"--graceful", "--pid", pid, "--timeout", "200ms", NULL};
    assert_int_equal(stop_cmd(slow, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "has not exited"));
    kill(stubborn, SIGKILL);
    waitpid(stubborn, NULL, 0);
    close(ready[0]);
    close(ready[1]);

    /* No way to tell the primary: exit 1, saying what to give. */
    const char *none[] = {"-c", PF_TEST_SOURCE_DIR "/conf/preforkd.yaml", NULL};
    assert_int_equal(stop_cmd(none, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "pid_file"));
}

/* A primary that fails (here poll, by fault injection) exits non-zero, so that systemd's
 * Restart=on-failure restarts it, and its workers go with it. */
static void test_failing_primary_exits_non_zero(void **state)
{
    (void)state;
    const char *env[] = {"PREFORKD_FAULT=primary-poll-fails", NULL};
    struct daemon_opts o = {.listen_fd = -1, .env = env};
    struct daemon d;
    daemon_start_opts(&d, NULL, 2, &o);
    pid_t w[64];
    int n = daemon_workers(&d, w, 64);
    assert_int_equal(n, 2);
    int st = daemon_signal_and_wait(&d, SIGUSR2, 20000); /* arms the fault */
    if (st < 0) {
        daemon_dump_log(&d);
        kill(d.pid, SIGKILL);
        fail_msg("the primary did not exit");
    }
    assert_true(WIFEXITED(st));
    assert_int_not_equal(WEXITSTATUS(st), 0);
    /* No worker outlives it: they see their IPC sockets close. */
    long long deadline = now_ms() + 10000;
    int alive = n;
    while (alive > 0 && now_ms() < deadline) {
        alive = 0;
        for (int i = 0; i < n; i++)
            alive += pid_alive(w[i]);
        sleep_ms(20);
    }
    assert_int_equal(alive, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_command_waits_for_the_new_generation),
        cmocka_unit_test(test_reload_command_reports_a_broken_file_and_signals_nothing),
        cmocka_unit_test(test_reload_command_reports_workers_that_cannot_start),
        cmocka_unit_test(test_reload_command_reports_a_port_in_use),
        cmocka_unit_test(test_reload_command_needs_a_pid),
        cmocka_unit_test(test_worker_count_set_by_ttin_survives_reload),
        cmocka_unit_test(test_worker_count_from_command_line_survives_reload),
        cmocka_unit_test(test_graceful_stop_refuses_new_connections),
        cmocka_unit_test(test_ready_while_serving_and_degraded),
        cmocka_unit_test(test_lame_duck_before_a_graceful_stop),
        cmocka_unit_test(test_stop_command),
        cmocka_unit_test(test_failing_primary_exits_non_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
