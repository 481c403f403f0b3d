/* Timeouts and resource limits against the real daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static char buf[1 << 16];

static const char short_timeouts[] = "timeouts:\n"
                                     "  keepalive: 300ms\n"
                                     "  header: 300ms\n"
                                     "  send: 300ms\n";

/* Reads until EOF or error; returns true if that happened within ms. */
static bool closed_within(int fd, int ms)
{
    long long deadline = now_ms() + ms;
    struct timeval tv = {0, 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (now_ms() < deadline) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return true;
    }
    return false;
}

static void test_idle_keepalive_is_closed(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  keepalive: 2s\n", 1);
    int fd = tcp_connect(d.port);
    bool eof;
    /* Kept open after an answer: a second request on it is answered... */
    for (int i = 0; i < 2; i++) {
        send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        size_t n = read_responses(fd, 1, buf, sizeof(buf), &eof);
        assert_int_equal(count_responses(buf, n), 1);
        assert_int_equal(status_of(buf), 200);
        assert_false(eof);
    }
    /* ...and closed once idle past the keep-alive timeout (checked once a second). */
    assert_true(closed_within(fd, WAIT_MS));
    close(fd);
    daemon_stop(&d);
}

static void test_slow_request_head_gets_408(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, short_timeouts, 1);
    int fd = tcp_connect(d.port);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n"); /* never finished */
    bool eof;
    read_responses(fd, 0, buf, sizeof(buf), &eof);
    assert_true(eof);
    assert_int_equal(status_of(buf), 408);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    close(fd);
    /* Trickling bytes does not extend the deadline (slowloris): the 408 comes while the
     * head is still being trickled, a byte every 50 ms (it would take 15 s). */
    fd = tcp_connect(d.port);
    char slow[400];
    int len = snprintf(slow, sizeof(slow), "GET / HTTP/1.1\r\nX-A: %0300d", 0);
    size_t got = 0;
    for (int i = 0; i < len && got == 0; i++) {
        send_all(fd, slow + i, 1);
        sleep_ms(50);
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0)
            got = (size_t)n;
    }
    buf[got] = '\0';
    assert_true(got > 0);
    assert_int_equal(status_of(buf), 408);
    close(fd);
    daemon_stop(&d);
}

static void test_slow_body_gets_408(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  body: 1s\n  body_min_rate: 1KiB\n", 1);
    /* A trickle: 10 bytes every 200 ms of a 100 kB body (slow POST), which would take
     * half an hour; the 408 comes long before. */
    int fd = tcp_connect(d.port);
    send_str(fd, "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    long long t0 = now_ms();
    size_t got = 0;
    while (got == 0 && now_ms() - t0 < WAIT_MS) {
        if (send(fd, "0123456789", 10, MSG_NOSIGNAL) != 10)
            break;
        sleep_ms(200);
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0)
            got = (size_t)n;
    }
    buf[got] = '\0';
    assert_int_equal(status_of(buf), 408);
    close(fd);
    /* A steady upload at a normal rate is not cut off: 64 kB at once. */
    static char body[65536 + 128];
    int n = snprintf(body, sizeof(body),
                     "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 65536\r\n\r\n");
    memset(body + n, 'x', 65536);
    fd = tcp_connect(d.port);
    send_all(fd, body, (size_t)n + 65536);
    bool eof;
    read_responses(fd, 1, buf, sizeof(buf), &eof);
    assert_int_equal(status_of(buf), 404); /* answered: the body was read in time */
    close(fd);
    daemon_stop(&d);
}

/* How many of the slow connections are still waiting: nothing to read (no answer, no
 * close) yet. */
static int still_waiting(const int *slow, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        char c;
        k += slow[i] >= 0 && recv(slow[i], &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
             (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return k;
}

static void test_slowloris_does_not_starve_others(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  header: 3s\n", 2);
    enum { SLOW = 200 };
    static int slow[SLOW];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = tcp_connect(d.port);
        send_all(slow[i], "GET / HTTP/1.1\r\nHost: t\r\n", 25);
    }
    /* They trickle a header byte each every 100 ms until the server answers them. Others
     * are served meanwhile: answered while every slow connection is still waiting, not
     * once the slow ones are gone. */
    long long worst = 0, deadline = now_ms() + WAIT_MS;
    int served = 0, served_among_all = 0, answered = 0, open = SLOW;
    while (open > 0 && now_ms() < deadline) {
        for (int i = 0; i < SLOW; i++) {
            if (slow[i] < 0)
                continue;
            char c;
            if (recv(slow[i], &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
                (errno == EAGAIN || errno == EWOULDBLOCK)) {
                send(slow[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                continue;
            }
            /* Answered (or closed): it must be a 408 and the end of the stream. */
            bool eof;
            read_responses(slow[i], 0, buf, sizeof(buf), &eof);
            answered += eof && status_of(buf) == 408;
            close(slow[i]);
            slow[i] = -1;
            open--;
        }
        bool all_before = still_waiting(slow, SLOW) == SLOW;
        long long t0 = now_ms();
        http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
        long long dt = now_ms() - t0;
        assert_int_equal(status_of(buf), 200);
        served_among_all += all_before && still_waiting(slow, SLOW) == SLOW;
        worst = dt > worst ? dt : worst;
        served++;
        sleep_ms(100); /* the trickle's pace */
    }
    print_message("%d slow connections: %d closed with 408; %d normal requests (%d while all %d "
                  "waited), slowest %lld ms\n",
                  SLOW, answered, served, served_among_all, SLOW, worst);
    assert_int_equal(answered, SLOW);
    assert_true(served_among_all >= 1);
    daemon_stop(&d);
}

static void test_client_that_does_not_read_is_dropped(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, short_timeouts, 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    close(fd);
    fd = tcp_connect(d.port);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* 20,000 pipelined requests whose answers (~5 MB) cannot fit the socket buffers. */
    enum { N = 20000 };
    static char batch[N * 34];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(batch + len, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, batch + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    /* The worker drops it after the 300 ms send timeout: then its only connection is
     * the one asking /metrics. */
    assert_true(daemon_wait_metric(&d, "preforkd_connections", 1, 1, WAIT_MS));
    /* Now read everything that is still there: the stream must end early. */
    size_t total = 0;
    ssize_t n;
    tv.tv_sec = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        total += (size_t)n;
    bool ended = n == 0 || errno == ECONNRESET;
    print_message("received %zu bytes before the server dropped the connection\n", total);
    assert_true(ended);
    assert_true(total < (size_t)N * 150);
    close(fd);
    /* Other clients were served all along. */
    http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 200);
    daemon_stop(&d);
}

struct served_on {
    int port;
};

/* A request on a new connection is answered 200. */
static bool served_200(void *arg)
{
    struct served_on *s = arg;
    http_exchange(s->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    if (status_of(buf) != 200 && status_of(buf) != 503)
        fail_msg("want 200 or 503, got '%s'", buf);
    return status_of(buf) == 200;
}

static void test_connection_cap_answers_503(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "limits:\n  connections: 2\n", 1);
    int a = tcp_connect(d.port), b = tcp_connect(d.port);
    send_str(a, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    send_str(b, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bool eof;
    read_responses(a, 1, buf, sizeof(buf), &eof);
    read_responses(b, 1, buf, sizeof(buf), &eof);
    int c = tcp_connect(d.port);
    read_responses(c, 0, buf, sizeof(buf), &eof);
    assert_int_equal(status_of(buf), 503);
    assert_non_null(strstr(buf, "\r\nDate: "));
    assert_true(eof);
    close(c);
    close(a);
    /* Once the worker has seen a close, there is room again: a new client is served
     * (503 until then; each try is closed at once, so it takes no room itself). */
    struct served_on s = {d.port};
    assert_true(wait_until(served_200, &s, WAIT_MS));
    close(b);
    daemon_stop(&d);
}

struct fds {
    pid_t pid;
    int want;
};

/* The process has `want` descriptors open. */
static bool has_fds(void *arg)
{
    struct fds *f = arg;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)f->pid);
    DIR *dp = opendir(path);
    if (!dp)
        return false;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        n += e->d_name[0] != '.';
    closedir(dp);
    return n >= f->want;
}

static void test_out_of_descriptors_does_not_spin(void **state)
{
    (void)state;
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = 24;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0); /* inherited by the daemon */
    struct daemon d;
    daemon_start(&d, NULL, 1);
    setrlimit(RLIMIT_NOFILE, &old);
    pid_t w;
    assert_int_equal(daemon_workers(&d, &w, 1), 1);
    enum { C = 40 };
    int fds[C];
    for (int i = 0; i < C; i++)
        fds[i] = tcp_connect(d.port); /* more than the worker can accept */
    /* The worker holds all the descriptors it may: its next accept fails. */
    struct fds full = {w, 24};
    assert_true(wait_until(has_fds, &full, WAIT_MS));
    /* The operator is told (the warning is the subject here)... */
    assert_true(daemon_wait_log(&d, "pausing accepts", 1, WAIT_MS));
    /* ...and the worker waits without using the CPU: over 1.5 s, a spinning loop would
     * burn as much CPU as it is given; a waiting worker wakes once a second. */
    double cpu0 = proc_cpu_seconds(w);
    sleep_ms(1500);
    double used = proc_cpu_seconds(w) - cpu0;
    print_message("worker CPU over 1.5 s with accepts failing: %.2f s\n", used);
    assert_true(used < 0.3);
    assert_true(pid_alive(w)); /* not killed by it either */
    for (int i = 0; i < C; i++)
        close(fds[i]);
    /* Queued until the worker accepts again (at its next tick, descriptors free). */
    http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 200);
    daemon_stop(&d);
}

static void test_allocation_failure_costs_only_the_connection(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"PREFORKD_FAULT=conn-alloc-fails", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    daemon_start_opts(&d, NULL, 1, &o);
    pid_t before;
    assert_int_equal(daemon_workers(&d, &before, 1), 1);
    for (int i = 0; i < 50; i++) {
        int fd = tcp_connect(d.port);
        send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        bool eof;
        size_t n = read_responses(fd, 0, buf, sizeof(buf), &eof);
        close(fd);
        assert_true(eof);
        assert_int_equal(n, 0); /* the connection is closed, unanswered */
    }
    pid_t after;
    assert_int_equal(daemon_workers(&d, &after, 1), 1);
    assert_int_equal(after, before); /* the worker itself lives on, never replaced */
    assert_true(pid_alive(before));
    /* The warning is the subject here: once, rate-limited, for 50 failures. */
    assert_int_equal(daemon_log_count(&d, "no memory for a connection"), 1);
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_keepalive_is_closed),
        cmocka_unit_test(test_slow_request_head_gets_408),
        cmocka_unit_test(test_slow_body_gets_408),
        cmocka_unit_test(test_slowloris_does_not_starve_others),
        cmocka_unit_test(test_client_that_does_not_read_is_dropped),
        cmocka_unit_test(test_connection_cap_answers_503),
        cmocka_unit_test(test_out_of_descriptors_does_not_spin),
        cmocka_unit_test(test_allocation_failure_costs_only_the_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
