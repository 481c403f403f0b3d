/* `preforkd reload` (an outcome the caller can trust), the operator's worker count across
 * reloads, and a graceful stop that refuses new connections instead of accepting and then
 * resetting them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        cmocka_unit_test(test_failing_primary_exits_non_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
