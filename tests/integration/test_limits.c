/* Timeouts and resource limits against the real daemon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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
    daemon_start(&d, short_timeouts, 1);
    int fd = tcp_connect(d.port);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bool eof;
    read_responses(fd, 1, buf, sizeof(buf), &eof);
    assert_int_equal(status_of(buf), 200);
    /* 300 ms timeout, checked once a second: closed within about 1.3 s. */
    long long t0 = now_ms();
    assert_true(closed_within(fd, 3000));
    assert_true(now_ms() - t0 >= 250);
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
    /* Trickling bytes does not extend the deadline (slowloris). */
    fd = tcp_connect(d.port);
    long long t0 = now_ms();
    const char *slow =
        "GET / HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    size_t got = 0;
    for (const char *p = slow; *p && got == 0; p++) {
        send_all(fd, p, 1);
        sleep_ms(50);
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0)
            got = (size_t)n;
    }
    buf[got] = '\0';
    assert_true(got > 0);
    assert_int_equal(status_of(buf), 408);
    assert_true(now_ms() - t0 < 2500);
    close(fd);
    daemon_stop(&d);
}

static void test_slow_body_gets_408(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  body: 1s\n  body_min_rate: 1KiB\n", 1);
    /* A trickle: 10 bytes every 200 ms of a 100 kB body (slow POST). */
    int fd = tcp_connect(d.port);
    send_str(fd, "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    long long t0 = now_ms();
    size_t got = 0;
    while (got == 0 && now_ms() - t0 < 5000) {
        if (send(fd, "0123456789", 10, MSG_NOSIGNAL) != 10)
            break;
        sleep_ms(200);
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (n > 0)
            got = (size_t)n;
    }
    buf[got] = '\0';
    assert_int_equal(status_of(buf), 408);
    assert_true(now_ms() - t0 < 3500);
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

static void test_slowloris_does_not_starve_others(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "timeouts:\n  header: 1s\n", 2);
    enum { SLOW = 200 };
    static int slow[SLOW];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = tcp_connect(d.port);
        send_all(slow[i], "GET / HTTP/1.1\r\nHost: t\r\n", 25);
    }
    /* While they trickle a header byte each every 100 ms, others are served at once. */
    long long worst = 0, t_start = now_ms();
    int served = 0;
    while (now_ms() - t_start < 2500) {
        for (int i = 0; i < SLOW; i++)
            if (slow[i] >= 0 && send(slow[i], "X", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
                close(slow[i]);
                slow[i] = -1; /* the server let go of it */
            }
        long long t0 = now_ms();
        http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
        long long dt = now_ms() - t0;
        assert_int_equal(status_of(buf), 200);
        worst = dt > worst ? dt : worst;
        served++;
        sleep_ms(100);
    }
    /* Every slow connection got its 408 and was closed within the header timeout and
     * the tick that follows it. */
    int answered = 0;
    for (int i = 0; i < SLOW; i++) {
        if (slow[i] < 0) {
            answered++;
            continue;
        }
        bool eof;
        read_responses(slow[i], 0, buf, sizeof(buf), &eof);
        answered += eof && status_of(buf) == 408;
        close(slow[i]);
    }
    print_message("%d slow connections: %d closed with 408; %d normal requests, slowest %lld ms\n",
                  SLOW, answered, served, worst);
    assert_int_equal(answered, SLOW);
    assert_true(worst < 500);
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
    sleep_ms(2500); /* past the 300 ms send timeout and the next tick */
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
    sleep_ms(100);
    http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 200);
    close(b);
    daemon_stop(&d);
}

static double worker_cpu_seconds(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    unsigned long ut, st;
    char *p = strrchr(line, ')');
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
                     2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
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
    sleep_ms(200);
    double cpu0 = worker_cpu_seconds(w);
    sleep_ms(1500);
    double used = worker_cpu_seconds(w) - cpu0;
    print_message("worker CPU over 1.5 s with accepts failing: %.2f s\n", used);
    assert_true(used < 0.3); /* a spinning loop would burn ~1.5 s */
    assert_true(daemon_log_contains(&d, "pausing accepts"));
    assert_true(pid_alive(w)); /* not killed by it either */
    for (int i = 0; i < C; i++)
        close(fds[i]);
    sleep_ms(1200); /* connections closed by peers, accepting resumed at the tick */
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
    assert_int_equal(after, before); /* the worker itself lives on */
    assert_false(daemon_log_contains(&d, "respawning"));
    assert_int_equal(daemon_log_count(&d, "no memory for a connection"), 1); /* rate-limited */
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
