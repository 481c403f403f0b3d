/* The primary: worker count, respawn, stop signals, orphans, config validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char buf[1 << 14];

static void test_worker_count_and_names(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 3);
    pid_t w[16];
    assert_int_equal(daemon_workers(&d, w, 16), 3);
    int slots = 0;
    for (int i = 0; i < 3; i++) {
        int s = worker_slot(w[i]);
        assert_true(s >= 0 && s < 3);
        slots |= 1 << s;
    }
    assert_int_equal(slots, 7); /* one worker in each of slots 0, 1, 2 */
    daemon_stop(&d);
}

static void test_kill9_respawns_same_slot_without_backoff(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    sleep_ms(1100); /* past min_uptime (1 s): a healthy worker is replaced without backoff */
    pid_t w[16];
    assert_int_equal(daemon_workers(&d, w, 16), 2);
    pid_t victim = w[0];
    int slot = worker_slot(victim);
    pid_t other = w[1];
    long long t0 = now_ms();
    kill(victim, SIGKILL);
    pid_t fresh = daemon_wait_new_worker(&d, slot, w, 2, WAIT_MS);
    if (!fresh) {
        daemon_dump_log(&d);
        fail_msg("no new worker in slot %d", slot);
    }
    print_message("slot %d: pid %d replaced by %d after %lld ms\n", slot, (int)victim, (int)fresh,
                  now_ms() - t0);
    assert_true(pid_alive(other));
    /* At once: one restart of that slot, no crash-loop backoff. */
    char series[64];
    snprintf(series, sizeof(series), "preforkd_worker_restarts_total{worker=\"%d\"}", slot);
    assert_true(metric_value(d.port, series) == 1);
    assert_true(metric_value(d.port, "preforkd_restarts_total") == 1);
    assert_true(metric_value(d.port, "preforkd_backoffs_total") == 0);
    for (int i = 0; i < 20; i++) {
        http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
        assert_int_equal(status_of(buf), 200);
    }
    /* The cause is only known to the primary, which reports it. */
    assert_true(daemon_log_contains(&d, "killed by signal 9"));
    daemon_stop(&d);
}

static void test_connections_queued_during_replacement_are_served(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    sleep_ms(1100); /* past min_uptime: the successors start without backoff */
    pid_t w[16];
    int n = daemon_workers(&d, w, 16);
    /* Kill every worker, then connect at once: the sockets stay open in the primary,
     * so the connections wait in the accept queues for the successors. */
    for (int i = 0; i < n; i++)
        kill(w[i], SIGKILL);
    enum { C = 20 };
    int fds[C];
    for (int i = 0; i < C; i++) {
        fds[i] = tcp_connect(d.port);
        send_all(fds[i], "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 27);
    }
    for (int i = 0; i < C; i++) {
        bool eof;
        read_responses(fds[i], 1, buf, sizeof(buf), &eof);
        close(fds[i]);
        if (status_of(buf) != 200) {
            daemon_dump_log(&d);
            fail_msg("connection %d got no answer: '%s'", i, buf);
        }
    }
    daemon_stop(&d);
}

static void test_sigterm_exits_0_without_orphans(void **state)
{
    (void)state;
    struct daemon d;
    /* An idle keep-alive connection (which could stay for an hour) must not hold the
     * stop up. */
    daemon_start(&d, "timeouts:\n  keepalive: 1h\n", 2);
    int fd = tcp_connect(d.port);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bool eof;
    read_responses(fd, 1, buf, sizeof(buf), &eof);
    daemon_stop_keep_dir(&d); /* asserts exit 0 and no worker left */
    /* The workers left by themselves: the primary did not have to SIGKILL one at the end
     * of its fast-stop grace, which a worker waiting on the connection would need (the
     * exit status of a worker is known only to the primary, which reports it). */
    if (daemon_log_contains(&d, "did not stop in time")) {
        daemon_dump_log(&d);
        fail_msg("a worker had to be killed: the idle connection held the stop up");
    }
    daemon_remove_dir(&d);
    close(fd);
}

static void test_sigint_also_stops(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 1);
    pid_t w[4];
    assert_int_equal(daemon_workers(&d, w, 4), 1);
    int st = daemon_signal_and_wait(&d, SIGINT, WAIT_MS);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_false(pid_alive(w[0])); /* the primary exits after its last worker */
    daemon_remove_dir(&d);
}

struct busy {
    pid_t pid;
    double cpu0, seconds;
};

/* The process has used `seconds` of CPU since cpu0. */
static bool busy_for(void *arg)
{
    struct busy *b = arg;
    return proc_cpu_seconds(b->pid) >= b->cpu0 + b->seconds;
}

struct pids {
    const pid_t *pid;
    int n;
};

static bool none_alive(void *arg)
{
    struct pids *p = arg;
    for (int i = 0; i < p->n; i++)
        if (pid_alive(p->pid[i]))
            return false;
    return true;
}

static void test_sigquit_finishes_in_flight_requests(void **state)
{
    (void)state;
    struct daemon d;
    /* /heavy made slow enough (~0.1 s of CPU, more in a sanitizer build) to be seen in
     * flight before the signal. */
    daemon_start(&d, "routes:\n  heavy_iterations: 200000000\n", 1);
    pid_t w;
    assert_int_equal(daemon_workers(&d, &w, 1), 1);
    double cpu0 = proc_cpu_seconds(w);
    int fd = tcp_connect(d.port);
    send_str(fd, "GET /heavy HTTP/1.1\r\nHost: t\r\n\r\n");
    /* In flight: the worker is computing it (its CPU time grows), not merely sent. */
    struct busy b = {.pid = w, .cpu0 = cpu0, .seconds = 0.02};
    assert_true(wait_until(busy_for, &b, WAIT_MS));
    kill(d.pid, SIGQUIT);
    bool eof;
    read_responses(fd, 1, buf, sizeof(buf), &eof);
    if (status_of(buf) != 200 || !strstr(buf, "{\"sum\":19999999900000000,"))
        fail_msg("in-flight request lost in graceful stop: '%s'", buf);
    /* Answered before the drain began, it kept the connection; the draining worker
     * then closes it once it has been idle for a second. */
    read_responses(fd, 0, buf, sizeof(buf), &eof);
    close(fd);
    assert_true(eof);
    assert_int_equal(count_responses(buf, strlen(buf)), 0);
    int st = daemon_signal_and_wait(&d, 0, WAIT_MS);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    daemon_remove_dir(&d);
}

static void test_workers_exit_when_primary_dies(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    pid_t w[16];
    int n = daemon_workers(&d, w, 16);
    assert_int_equal(n, 2);
    daemon_signal_and_wait(&d, SIGKILL, WAIT_MS);
    struct pids gone = {.pid = w, .n = n};
    assert_true(wait_until(none_alive, &gone, WAIT_MS));
    daemon_remove_dir(&d);
}

static void test_config_check_mode(void **state)
{
    (void)state;
    const char *good[] = {PF_TEST_BINARY, "-t", "-c", PF_TEST_SOURCE_DIR "/conf/preforkd.yaml",
                          NULL};
    assert_int_equal(run_capture(good, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "configuration is valid"));

    char path[] = "/tmp/preforkd-bad-XXXXXX";
    int fd = mkstemp(path);
    const char *bad = "workers: 2\nlimits:\n  headers: lots\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    const char *check[] = {PF_TEST_BINARY, "-t", "-c", path, NULL};
    assert_int_equal(run_capture(check, buf, sizeof(buf)), 1);
    char want[256];
    snprintf(want, sizeof(want), "%s:3:12: 'limits.headers' must be a non-negative integer", path);
    assert_non_null(strstr(buf, want));
    /* Running (not just checking) a bad file fails the same way and starts nothing. */
    const char *run[] = {PF_TEST_BINARY, "-c", path, NULL};
    assert_int_equal(run_capture(run, buf, sizeof(buf)), 1);
    assert_non_null(strstr(buf, want));
    unlink(path);

    const char *version[] = {PF_TEST_BINARY, "--version", NULL};
    assert_int_equal(run_capture(version, buf, sizeof(buf)), 0);
    assert_true(strncmp(buf, "preforkd ", 9) == 0);
    const char *wflag[] = {
        PF_TEST_BINARY, "-t", "-w", "auto-1", "-c", PF_TEST_SOURCE_DIR "/conf/preforkd.yaml", NULL};
    assert_int_equal(run_capture(wflag, buf, sizeof(buf)), 0);
    const char *wbad[] = {PF_TEST_BINARY, "-t", "-w", "0", NULL};
    assert_int_equal(run_capture(wbad, buf, sizeof(buf)), 1);
}

static void test_port_in_use_fails_cleanly(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 1);
    char path[] = "/tmp/preforkd-clash-XXXXXX";
    int fd = mkstemp(path);
    char conf[64];
    int n = snprintf(conf, sizeof(conf), "listen: 127.0.0.1:%d\nworkers: 1\n", d.port);
    assert_int_equal(write(fd, conf, (size_t)n), n);
    close(fd);
    const char *args[] = {PF_TEST_BINARY, "-c", path, NULL};
    assert_int_equal(run_capture(args, buf, sizeof(buf)), 1);
    assert_non_null(strstr(buf, "Address already in use"));
    unlink(path);
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_count_and_names),
        cmocka_unit_test(test_kill9_respawns_same_slot_without_backoff),
        cmocka_unit_test(test_connections_queued_during_replacement_are_served),
        cmocka_unit_test(test_sigterm_exits_0_without_orphans),
        cmocka_unit_test(test_sigint_also_stops),
        cmocka_unit_test(test_sigquit_finishes_in_flight_requests),
        cmocka_unit_test(test_workers_exit_when_primary_dies),
        cmocka_unit_test(test_config_check_mode),
        cmocka_unit_test(test_port_in_use_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
