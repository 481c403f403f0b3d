/* Supervision and lifecycle: reloads under load, broken reloads, crash-loop backoff,
 * the hung-worker watchdog, recycling, worker count signals, log reopening, pid file,
 * sd_notify and socket activation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char buf[1 << 14];

static void expect_served(struct daemon *d)
{
    http_exchange(d->port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    if (status_of(buf) != 200) {
        daemon_dump_log(d);
        fail_msg("not served: '%s'", buf);
    }
}

/* What the primary publishes in /metrics, waited for. */
struct cluster_want {
    const struct daemon *d;
    double generation, configured, serving; /* -1: any */
};

static bool cluster_is(void *arg)
{
    struct cluster_want *w = arg;
    /* The generation first: the primary writes it after the serving count, so a
     * serving count read afterwards is at least as new. */
    return (w->generation < 0 ||
            metric_value(w->d->port, "preforkd_generation") == w->generation) &&
           (w->configured < 0 ||
            metric_value(w->d->port, "preforkd_workers_configured") == w->configured) &&
           (w->serving < 0 || metric_value(w->d->port, "preforkd_workers_serving") == w->serving);
}

/* A reload is complete once the new generation serves in every slot. */
static bool wait_generation_serving(const struct daemon *d, int generation, int workers)
{
    struct cluster_want w = {d, generation, workers, workers};
    return wait_until(cluster_is, &w, WAIT_MS);
}

/* Only the given generation's workers are left: every older one has drained away. */
struct only_gen {
    const struct daemon *d;
    int generation, workers;
};

static bool only_generation(void *arg)
{
    struct only_gen *o = arg;
    pid_t w[64];
    if (daemon_workers(o->d, w, 64) != o->workers)
        return false;
    for (int i = 0; i < o->workers; i++) {
        char series[128];
        snprintf(series, sizeof(series), "preforkd_worker_info{pid=\"%d\",generation=\"%d\"}",
                 (int)w[i], o->generation);
        if (metric_value(o->d->port, series) != 1)
            return false;
    }
    return true;
}

static bool wait_only_generation(const struct daemon *d, int generation, int workers)
{
    struct only_gen o = {d, generation, workers};
    return wait_until(only_generation, &o, WAIT_MS);
}

/* Workers seen in the process table that were not there at the start. */
struct newcomers {
    const struct daemon *d;
    pid_t seen[64];
    int nseen, nfirst, want;
};

static void newcomers_init(struct newcomers *n, const struct daemon *d, int want)
{
    *n = (struct newcomers){.d = d, .want = want};
    n->nseen = n->nfirst = daemon_workers(d, n->seen, 64);
}

static bool enough_newcomers(void *arg)
{
    struct newcomers *n = arg;
    pid_t w[64];
    int k = daemon_workers(n->d, w, 64);
    for (int i = 0; i < k && n->nseen < 64; i++) {
        bool known = false;
        for (int j = 0; j < n->nseen; j++)
            known |= n->seen[j] == w[i];
        if (!known)
            n->seen[n->nseen++] = w[i];
    }
    return n->nseen - n->nfirst >= n->want;
}

/* The load generator has had LOAD_STEP more answers since `from`. */
#define LOAD_STEP 50
struct progress {
    struct load *l;
    unsigned long from;
};

static bool load_advanced(void *arg)
{
    struct progress *p = arg;
    return atomic_load(&p->l->ok) >= p->from + LOAD_STEP;
}

struct at_most {
    const struct daemon *d;
    int workers;
};

static bool at_most_workers(void *arg)
{
    struct at_most *a = arg;
    pid_t w[64];
    return daemon_workers(a->d, w, 64) <= a->workers;
}

static void test_reloads_under_load_lose_nothing(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    struct load l;
    load_start(&l, d.port, 4, 4);
    struct progress step = {&l, 0};
    for (int i = 1; i <= 20; i++) {
        /* The load is answered between any two reloads, and at most three old
         * generations are still draining (the primary keeps a bounded number). */
        step.from = atomic_load(&l.ok);
        struct at_most cap = {&d, 8};
        if (!wait_until(load_advanced, &step, WAIT_MS) ||
            !wait_until(at_most_workers, &cap, WAIT_MS)) {
            load_stop(&l);
            daemon_dump_log(&d);
            fail_msg("before reload %d: no progress (%lu answered, %lu failed)", i, l.ok, l.failed);
        }
        kill(d.pid, SIGHUP);
        if (!wait_generation_serving(&d, i + 1, 2)) {
            load_stop(&l);
            daemon_dump_log(&d);
            fail_msg("reload %d did not complete", i);
        }
        sleep_ms(100); /* the pace of the reloads, old generations still draining */
    }
    step.from = atomic_load(&l.ok);
    assert_true(wait_until(load_advanced, &step, WAIT_MS)); /* answered after the last one too */
    load_stop(&l);
    print_message("20 reloads under load: %lu requests answered, %lu failed%s%s\n", l.ok, l.failed,
                  l.failed ? ", first: " : "", l.first_error);
    if (l.failed) {
        daemon_dump_log(&d);
        fail_msg("%lu requests failed across reloads (first: %s)", l.failed, l.first_error);
    }
    assert_true(l.ok >= 21 * LOAD_STEP);
    assert_true(metric_value(d.port, "preforkd_reloads_total") == 20);
    /* Every old generation drains away: only generation 21's two workers remain. */
    assert_true(wait_only_generation(&d, 21, 2));
    /* For the README: SIGHUP to the new generation serving, as the primary logged it. */
    FILE *f = fopen(d.log, "r");
    char line[1024];
    long long t, lo = 1 << 30, hi = 0, sum = 0;
    int n = 0;
    while (f && fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "serving after ");
        if (p && sscanf(p, "serving after %lld ms", &t) == 1) {
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
            sum += t;
            n++;
        }
    }
    if (f)
        fclose(f);
    if (n)
        print_message("SIGHUP to new generation serving: min %lld ms, mean %lld ms, max %lld ms\n",
                      lo, sum / n, hi);
    daemon_stop(&d);
}

static void test_broken_reload_keeps_old_workers(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    pid_t before[8], after[8];
    assert_int_equal(daemon_workers(&d, before, 8), 2);
    daemon_write_config(&d, "timeouts:\n  keepalive: forever\n", 2);
    kill(d.pid, SIGHUP);
    /* The subject: the error an operator reads, with file, line and column. The primary
     * logs it once it has given up the reload, with nothing started. */
    char want[256];
    snprintf(want, sizeof(want), "%s:4:14: 'timeouts.keepalive' must be a duration", d.conf);
    assert_true(daemon_wait_log(&d, want, 1, WAIT_MS));
    assert_true(metric_value(d.port, "preforkd_reloads_total") == 0);
    assert_true(metric_value(d.port, "preforkd_generation") == 1);
    assert_int_equal(daemon_workers(&d, after, 8), 2);
    assert_true((before[0] == after[0] && before[1] == after[1]) ||
                (before[0] == after[1] && before[1] == after[0]));
    expect_served(&d);
    /* A good file afterwards reloads normally. */
    daemon_write_config(&d, NULL, 3);
    kill(d.pid, SIGHUP);
    assert_true(wait_generation_serving(&d, 2, 3));
    assert_true(wait_only_generation(&d, 2, 3));
    daemon_stop(&d);
}

static void test_crash_loop_backs_off_and_others_serve(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"PREFORKD_FAULT=exit-at-start:1", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1, .ready = DAEMON_READY_ANSWERING};
    daemon_start_opts(&d, NULL, 2, &o); /* reuseport: slot 1 has its own accept queue */
    /* 100 + 200 + 400 + 800 ms: four respawns delayed. */
    if (!daemon_wait_metric(&d, "preforkd_backoffs_total", 4, 1e9, WAIT_MS)) {
        daemon_dump_log(&d);
        fail_msg("no crash-loop backoff");
    }
    /* The delays double; only the primary knows them, and it reports them. */
    assert_true(daemon_log_contains(&d, "respawning in 100 ms"));
    assert_true(daemon_log_contains(&d, "respawning in 200 ms"));
    assert_true(daemon_log_contains(&d, "respawning in 400 ms"));
    assert_true(pid_alive(d.pid));
    /* Forks are rate-limited, not a fork loop: every restart of slot 1 (read first) but
     * the one being handled was delayed by a backoff (read second). */
    double restarts = metric_value(d.port, "preforkd_worker_restarts_total{worker=\"1\"}");
    double backoffs = metric_value(d.port, "preforkd_backoffs_total");
    print_message("slot 1: %.0f restarts, %.0f backoffs\n", restarts, backoffs);
    assert_true(restarts >= 4 && backoffs >= restarts - 1);
    assert_true(metric_value(d.port, "preforkd_worker_restarts_total{worker=\"0\"}") == 0);
    /* Slot 1 never serves, yet every connection is answered: slot 0's worker covers its
     * queue. (Without covering, the connections hashed to slot 1 would hang until
     * expect_served gives up.) */
    long long t0 = now_ms();
    for (int i = 0; i < 20; i++)
        expect_served(&d);
    print_message("20 requests during the crash loop took %lld ms\n", now_ms() - t0);
    /* /health tells a load balancer's health check that the service is degraded. */
    http_exchange(d.port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"cluster\":{\"serving\":1,\"configured\":2,\"degraded\":true}"));
    daemon_stop(&d);
}

static void test_hung_worker_is_killed_and_replaced(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d,
                 "balance: shared\ntimeouts:\n  worker: 2s\n"
                 "routes:\n  heavy_iterations: 100000000000\n",
                 2);
    struct newcomers n;
    newcomers_init(&n, &d, 1);
    assert_int_equal(n.nfirst, 2);
    int fd = tcp_connect(d.port);
    send_str(fd, "GET /heavy HTTP/1.1\r\nHost: t\r\n\r\n"); /* hours of work */
    /* The stuck worker is replaced: a new one, the old one gone, a restart counted. */
    if (!wait_until(enough_newcomers, &n, WAIT_MS) || !daemon_wait_workers(&d, 2, WAIT_MS)) {
        daemon_dump_log(&d);
        fail_msg("the hung worker was not replaced");
    }
    assert_false(pid_alive(n.seen[0]) && pid_alive(n.seen[1]));
    assert_true(metric_value(d.port, "preforkd_restarts_total") == 1);
    /* How it ended is known only to the primary, which reports it: SIGABRT from the
     * watchdog. */
    assert_true(daemon_log_contains(&d, "(no heartbeat; worker_timeout 2000 ms): sending SIGABRT"));
    assert_true(daemon_log_contains(&d, "killed by signal 6"));
    close(fd);
    expect_served(&d);
    daemon_stop(&d);
}

static void test_max_requests_recycling_loses_nothing(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "recycle:\n  max_requests: 300\n  max_requests_jitter: 50\n", 2);
    struct newcomers n;
    newcomers_init(&n, &d, 4);
    assert_int_equal(n.nfirst, 2);
    struct load l;
    load_start(&l, d.port, 2, 2);
    /* Four recycles: four workers that were not there at the start. */
    bool recycled = wait_until(enough_newcomers, &n, WAIT_MS);
    load_stop(&l);
    print_message("recycling under load: %lu answered, %lu failed, %d new workers\n", l.ok,
                  l.failed, n.nseen - n.nfirst);
    if (!recycled || l.failed) {
        daemon_dump_log(&d);
        fail_msg("recycled: %d, failed requests: %lu (%s)", recycled, l.failed, l.first_error);
    }
    /* Replaced while alive (recycled), not after dying. */
    assert_true(metric_value(d.port, "preforkd_restarts_total") == 0);
    assert_true(daemon_wait_workers(&d, 2, WAIT_MS));
    pid_t now[8];
    daemon_workers(&d, now, 8);
    assert_true(now[0] != n.seen[0] && now[0] != n.seen[1]);
    daemon_stop(&d);
}

static void test_reload_to_a_new_port(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    int old_port = d.port;
    /* A port that is free now: bind, read it, release. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(probe, (struct sockaddr *)&a, &len);
    close(probe);
    d.port = ntohs(a.sin_port);
    daemon_write_config(&d, NULL, 2);
    kill(d.pid, SIGHUP);
    assert_true(wait_generation_serving(&d, 2, 2));
    expect_served(&d); /* the new port serves */
    /* The old port is released once its generation is gone. */
    assert_true(wait_only_generation(&d, 2, 2));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in o = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)old_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(connect(fd, (struct sockaddr *)&o, sizeof(o)) < 0 && errno == ECONNREFUSED);
    close(fd);
    daemon_stop(&d);
}

static void test_max_memory_recycles(void **state)
{
    (void)state;
    struct daemon d;
    /* Every worker uses more than 1 MiB, so each is recycled in turn, one at a time. */
    daemon_start(&d, "recycle:\n  max_memory: 1MiB\n", 2);
    struct newcomers n;
    newcomers_init(&n, &d, 2);
    assert_true(wait_until(enough_newcomers, &n, WAIT_MS));
    assert_true(metric_value(d.port, "preforkd_restarts_total") == 0); /* none died */
    /* The reason, which only the primary knows, as it reports it. */
    assert_true(daemon_log_contains(&d, "over max_memory 1048576"));
    expect_served(&d);
    daemon_stop(&d);
}

static void test_affinity_pins_each_worker(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "affinity: auto\n", 2);
    pid_t w[4];
    assert_int_equal(daemon_workers(&d, w, 4), 2);
    char lists[2][64];
    for (int i = 0; i < 2; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)w[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        lists[i][0] = '\0';
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Cpus_allowed_list: %63s", lists[i]) == 1)
                break;
        fclose(f);
        assert_null(strchr(lists[i], ',')); /* one CPU, */
        assert_null(strchr(lists[i], '-'));
    }
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
        assert_string_not_equal(lists[0], lists[1]); /* a different one each */
    daemon_stop(&d);
}

static void test_workers_drop_privileges(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "user: nobody\n", 1);
    pid_t w;
    assert_int_equal(daemon_workers(&d, &w, 1), 1);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)w);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned uid = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %u", &uid) == 1)
            break;
    fclose(f);
    /* As root the worker runs as nobody; as anyone else the setting cannot apply. */
    if (geteuid() == 0)
        assert_int_equal(uid, 65534);
    else
        assert_int_equal(uid, geteuid());
    expect_served(&d);
    daemon_stop(&d);
}

static void test_ttin_ttou(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, NULL, 2);
    kill(d.pid, SIGTTIN);
    struct cluster_want three = {&d, 1, 3, 3};
    assert_true(wait_until(cluster_is, &three, WAIT_MS));
    assert_true(daemon_wait_workers(&d, 3, WAIT_MS));
    kill(d.pid, SIGTTOU);
    struct cluster_want two = {&d, 1, 2, 2};
    assert_true(wait_until(cluster_is, &two, WAIT_MS));
    assert_true(daemon_wait_workers(&d, 2, WAIT_MS));
    for (int i = 0; i < 10; i++)
        expect_served(&d);
    daemon_stop(&d);
}

static bool file_exists(void *path)
{
    return access(path, F_OK) == 0;
}

static void test_usr1_reopens_log_and_pid_file(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "log_file: @DIR@/daemon.log\npid_file: @DIR@/preforkd.pid\n", 1);
    char pidfile[160], moved[160];
    snprintf(pidfile, sizeof(pidfile), "%s/preforkd.pid", d.dir);
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_int_equal(pid, d.pid);

    snprintf(moved, sizeof(moved), "%s.1", d.log); /* what logrotate does */
    assert_int_equal(rename(d.log, moved), 0);
    kill(d.pid, SIGUSR1);
    /* The primary reopens first, then tells the workers: the file is there again. */
    assert_true(wait_until(file_exists, d.log, WAIT_MS));
    kill(d.pid, SIGTTIN); /* something new to log */
    /* The subject: new lines go to the new file. */
    assert_true(daemon_wait_log(&d, "worker count 1 -> 2", 1, WAIT_MS));
    assert_true(daemon_wait_log(&d, "worker slot 1 started", 1, WAIT_MS));
    int st = daemon_signal_and_wait(&d, SIGTERM, WAIT_MS);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(access(pidfile, F_OK), -1); /* removed on exit */
    daemon_remove_dir(&d);
}

/* ---- sd_notify --------------------------------------------------------------------------- */

/* A daemon whose NOTIFY_SOCKET is a datagram socket of the test's, with a 3 s systemd
 * watchdog asked for. */
struct notified {
    char path[64];
    char env_sock[96];
    int fd;
    struct daemon d;
};

static void start_notified(struct notified *n, const char *tag, const char *yaml, int workers)
{
    snprintf(n->path, sizeof(n->path), "/tmp/preforkd-notify-%s-%d", tag, (int)getpid());
    n->fd = notify_open(n->path);
    snprintf(n->env_sock, sizeof(n->env_sock), "NOTIFY_SOCKET=%s", n->path);
    const char *env[] = {n->env_sock, "WATCHDOG_USEC=3000000", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    daemon_start_opts(&n->d, yaml, workers, &o);
}

static void close_notified(struct notified *n)
{
    close(n->fd);
    unlink(n->path);
}

static void test_sd_notify_protocol(void **state)
{
    (void)state;
    static struct notified n;
    static char all[1 << 14];
    all[0] = '\0';
    start_notified(&n, "proto", NULL, 2);
    int fd = n.fd;
    struct daemon d = n.d;
    assert_true(notify_collect(fd, all, sizeof(all), "READY=1", WAIT_MS));
    assert_true(notify_collect(fd, all, sizeof(all), "WATCHDOG=1", WAIT_MS));
    assert_non_null(strstr(all, "STATUS=2/2 workers serving"));
    kill(d.pid, SIGHUP);
    assert_true(notify_collect(fd, all, sizeof(all), "RELOADING=1", WAIT_MS));
    assert_non_null(strstr(all, "MONOTONIC_USEC="));
    assert_true(notify_collect(fd, all, sizeof(all), "READY=1", WAIT_MS));
    kill(d.pid, SIGTERM);
    bool stopping = notify_collect(fd, all, sizeof(all), "STOPPING=1", WAIT_MS);
    int st;
    waitpid(d.pid, &st, 0);
    close_notified(&n);
    if (!stopping)
        fail_msg("no STOPPING=1; got:\n%s", all);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    daemon_remove_dir(&d);
}

/* The case systemd's watchdog once got wrong: a worker hangs and the primary is about
 * to replace it. It is doing its job, so WATCHDOG=1 goes on (systemd would otherwise
 * kill the whole service, healthy workers included), and STATUS= says a worker is
 * stuck rather than "1/1 workers serving". */
static void test_watchdog_pings_go_on_while_a_hung_worker_is_replaced(void **state)
{
    (void)state;
    static struct notified n;
    static char all[1 << 15];
    all[0] = '\0';
    /* Two workers sharing one queue: the one not stuck answers /metrics. */
    start_notified(&n, "wd",
                   "balance: shared\ntimeouts:\n  worker: 6s\n"
                   "routes:\n  heavy_iterations: 100000000000\n",
                   2);
    int fd = n.fd;
    struct daemon d = n.d;
    assert_true(notify_collect(fd, all, sizeof(all), "WATCHDOG=1", WAIT_MS));
    pid_t before[2];
    assert_int_equal(daemon_workers(&d, before, 2), 2);
    int c = tcp_connect(d.port);
    send_str(c, "GET /heavy HTTP/1.1\r\nHost: t\r\n\r\n"); /* hours of work */
    bool stuck = notify_collect(fd, all, sizeof(all), "worker stuck", WAIT_MS);
    /* From the moment it is reported stuck until it is replaced, the pings go on. */
    all[0] = '\0';
    long long deadline = now_ms() + WAIT_MS;
    bool replaced = false;
    while (!replaced && now_ms() < deadline) {
        notify_collect(fd, all, sizeof(all), NULL, 100);
        pid_t now[8];
        int m = daemon_workers(&d, now, 8);
        for (int i = 0; i < m; i++)
            replaced |= now[i] != before[0] && now[i] != before[1];
    }
    bool pinged = strstr(all, "WATCHDOG=1") != NULL;
    close(c);
    daemon_stop(&d);
    close_notified(&n);
    assert_true(stuck);
    assert_true(replaced);
    assert_true(pinged);
}

static void test_socket_activation(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 64), 0);
    struct daemon_opts o = {.listen_fd = lfd};
    struct daemon d;
    daemon_start_opts(&d, NULL, 2, &o);
    /* Every worker listens on the very socket it was given, not one of its own. */
    struct stat sb;
    assert_int_equal(fstat(lfd, &sb), 0);
    pid_t w[4];
    assert_int_equal(daemon_workers(&d, w, 4), 2);
    for (int i = 0; i < 2; i++)
        assert_true(pid_holds_socket(w[i], sb.st_ino));
    close(lfd);
    for (int i = 0; i < 10; i++)
        expect_served(&d);
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reloads_under_load_lose_nothing),
        cmocka_unit_test(test_broken_reload_keeps_old_workers),
        cmocka_unit_test(test_crash_loop_backs_off_and_others_serve),
        cmocka_unit_test(test_hung_worker_is_killed_and_replaced),
        cmocka_unit_test(test_max_requests_recycling_loses_nothing),
        cmocka_unit_test(test_reload_to_a_new_port),
        cmocka_unit_test(test_max_memory_recycles),
        cmocka_unit_test(test_affinity_pins_each_worker),
        cmocka_unit_test(test_workers_drop_privileges),
        cmocka_unit_test(test_ttin_ttou),
        cmocka_unit_test(test_usr1_reopens_log_and_pid_file),
        cmocka_unit_test(test_sd_notify_protocol),
        cmocka_unit_test(test_watchdog_pings_go_on_while_a_hung_worker_is_replaced),
        cmocka_unit_test(test_socket_activation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
