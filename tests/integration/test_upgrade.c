/* Hot binary upgrade: SIGUSR2 / `preforkd upgrade` executes the binary on disk again,
 * hands it the listening sockets and the shared memory, and the old primary drains away
 * once the new one serves. Under load nothing fails; a new binary that exits at once or
 * never serves leaves the old one serving; counters go on. */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* The daemon runs from a file in its directory, which a deploy replaces. */
struct deployed {
    struct daemon d;
    char bin[256];
    pid_t primary; /* the current primary: the test's child at first, an orphan later */
};

static void deploy(struct deployed *x, const char *from)
{
    char tmp[300], cmd[2048];
    snprintf(tmp, sizeof(tmp), "%s.new", x->bin);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod +x '%s' && mv '%s' '%s'", from, tmp, tmp, tmp,
             x->bin);
    assert_int_equal(system(cmd), 0);
}

static void start_with(struct deployed *x, const char *yaml, int listen_fd, const char *const *env)
{
    /* Orphans come to the test: the new primary's parent, the old one, exits. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char dir[] = "/tmp/preforkd-upgrade-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(x->bin, sizeof(x->bin), "%s/preforkd", dir);
    deploy(x, PF_TEST_BINARY);
    struct daemon_opts o = {.listen_fd = listen_fd, .binary = x->bin, .env = env};
    daemon_start_opts(&x->d, yaml, 2, &o);
    x->primary = x->d.pid;
}

static void start(struct deployed *x, const char *yaml)
{
    start_with(x, yaml, -1, NULL);
}

static int upgrade(struct deployed *x, char *out, size_t cap)
{
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)x->primary);
    const char *argv[] = {PF_TEST_BINARY, "upgrade", "-c", x->d.conf, "--pid", pid,
                          "--timeout",    "60s",     NULL};
    int rc = run_capture(argv, out, cap);
    if (rc == 0) {
        const char *p = strstr(out, "the new primary pid ");
        assert_non_null(p);
        pid_t old = x->primary;
        x->primary = (pid_t)atoi(p + 20);
        /* The old primary exits once drained; the test reaps it (subreaper). */
        int st;
        long long deadline = now_ms() + WAIT_MS;
        while (waitpid(old, &st, WNOHANG) != old && now_ms() < deadline)
            sleep_ms(10);
    }
    return rc;
}

static const char *health(struct deployed *x, char *buf, size_t cap)
{
    http_exchange(x->d.port, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf,
                  cap);
    return buf;
}

/* A final stop; `gone`, when not NULL, is a file the stop must have removed. */
static void stop_removing(struct deployed *x, const char *gone)
{
    kill(x->primary, SIGTERM);
    int st = 0;
    long long deadline = now_ms() + WAIT_MS;
    pid_t r;
    while ((r = waitpid(x->primary, &st, WNOHANG)) != x->primary && now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(r, x->primary);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* No worker of any primary outlives the service. */
    deadline = now_ms() + WAIT_MS;
    while (waitpid(-1, &st, WNOHANG) > 0 || (errno != ECHILD && now_ms() < deadline))
        sleep_ms(10);
    if (gone)
        assert_int_equal(access(gone, F_OK), -1);
    /* Every primary and worker wrote to the one log: a sanitizer's or valgrind's report
     * from any of them (an old primary's leak at its exit, say) fails the test. */
    if (daemon_log_contains(&x->d, "Sanitizer") || daemon_log_contains(&x->d, "runtime error:") ||
        daemon_log_contains(&x->d, "VALGRIND-ERROR")) {
        daemon_dump_log(&x->d);
        fail_msg("sanitizer or valgrind report in the daemon's log");
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%.*s'", x->d.dir, (int)(strrchr(x->bin, '/') - x->bin),
             x->bin);
    assert_int_equal(system(cmd), 0);
}

static void stop(struct deployed *x)
{
    stop_removing(x, NULL);
}

static void test_ten_upgrades_under_load_lose_nothing(void **state)
{
    (void)state;
    struct deployed x;
    start(&x, "pid_file: @DIR@/preforkd.pid\n");
    struct load l;
    load_start(&l, x.d.port, 4, 4);
    char out[4096], buf[4096];
    for (int i = 1; i <= 10; i++) {
        unsigned long before = l.ok;
        long long deadline = now_ms() + WAIT_MS;
        while (l.ok < before + 50 && now_ms() < deadline)
            sleep_ms(5);
        const char *bin = i % 2 ? PF_TEST_BINARY_V2 : PF_TEST_BINARY;
        deploy(&x, bin);
        int rc = upgrade(&x, out, sizeof(out));
        if (rc != 0)
            fail_msg("upgrade %d exited %d: %s", i, rc, out);
        /* The answers now come from the new binary's workers. */
        const char *want = i % 2 ? "+v2\"" : "\"version\":\"0";
        deadline = now_ms() + WAIT_MS;
        while (!strstr(health(&x, buf, sizeof(buf)), want) && now_ms() < deadline)
            sleep_ms(10);
        assert_non_null(strstr(buf, want));
    }
    unsigned long before = l.ok;
    long long deadline = now_ms() + WAIT_MS;
    while (l.ok < before + 50 && now_ms() < deadline)
        sleep_ms(5);
    load_stop(&l);
    printf("10 upgrades under load: %lu requests answered, %lu failed%s%s\n", l.ok, l.failed,
           l.failed ? ": " : "", l.failed ? l.first_error : "");
    assert_int_equal(l.failed, 0);
    stop(&x);
}

static void test_counters_and_figures_go_on(void **state)
{
    (void)state;
    struct deployed x;
    start(&x,
          "routes:\n  - {path: /count, handler: count}\n  - {path: /health, handler: health}\n");
    char buf[4096], out[4096];
    for (int i = 0; i < 5; i++)
        http_exchange(x.d.port, "GET /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf,
                      sizeof(buf));
    assert_string_equal(body_of(buf), "{\"count\":5}");
    double answered =
        metric_value(x.d.port, "preforkd_requests_total{worker=\"0\",route=\"/count\","
                               "code=\"2xx\"}") +
        metric_value(x.d.port, "preforkd_requests_total{worker=\"1\",route=\"/count\","
                               "code=\"2xx\"}");
    assert_true(answered == 5);
    assert_int_equal(upgrade(&x, out, sizeof(out)), 0);
    http_exchange(x.d.port, "GET /count HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", buf,
                  sizeof(buf));
    assert_string_equal(body_of(buf), "{\"count\":6}");
    double after = metric_value(x.d.port, "preforkd_requests_total{worker=\"0\",route=\"/count\","
                                          "code=\"2xx\"}") +
                   metric_value(x.d.port, "preforkd_requests_total{worker=\"1\",route=\"/count\","
                                          "code=\"2xx\"}");
    assert_true(after == 6); /* not back to 1: the request figures went on too */
    assert_true(metric_value(x.d.port, "preforkd_generation") == 2);
    stop(&x);
}

/* A "binary" that is a script: exits at once, or never serves. */
static void deploy_script(struct deployed *x, const char *body)
{
    char path[300], cmd[1024];
    snprintf(path, sizeof(path), "%s.script", x->bin);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "chmod +x '%s' && mv '%s' '%s'", path, path, x->bin);
    assert_int_equal(system(cmd), 0);
}

/* Whether one of pid's children runs a program whose name (comm) is name. */
static bool has_child_named(pid_t pid, const char *name)
{
    pid_t c[64];
    int n = pid_children(pid, c, 64);
    for (int i = 0; i < n; i++) {
        char path[64], comm[32] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)c[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool same = fgets(comm, sizeof(comm), f) && strncmp(comm, name, strlen(name)) == 0 &&
                    (comm[strlen(name)] == '\n' || comm[strlen(name)] == '\0');
        fclose(f);
        if (same)
            return true;
    }
    return false;
}

static void test_failed_upgrades_keep_the_old_primary(void **state)
{
    (void)state;
    struct deployed x;
    start(&x, "timeouts:\n  worker: 3s\n");
    pid_t first = x.primary;
    char out[4096], buf[4096];
    /* A binary that exits at once. */
    deploy_script(&x, "exit 3");
    assert_int_equal(upgrade(&x, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "failed"));
    assert_int_equal(x.primary, first);
    assert_int_equal(status_of(health(&x, buf, sizeof(buf))), 200);
    /* One that never serves: given up after timeouts.worker, and a second upgrade
     * meanwhile is refused. */
    deploy_script(&x, "exec sleep 600");
    kill(x.primary, SIGUSR2);
    /* In progress once the primary has a child that is the stuck binary (a second
     * SIGUSR2 before the first is handled would merge with it: no second request). */
    long long deadline = now_ms() + WAIT_MS;
    while (!has_child_named(x.primary, "sleep") && now_ms() < deadline)
        sleep_ms(10);
    assert_true(has_child_named(x.primary, "sleep"));
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)x.primary);
    const char *again[] = {PF_TEST_BINARY, "upgrade", "-c", x.d.conf, "--pid", pid, NULL};
    int rc = run_capture(again, out, sizeof(out));
    if (rc != 1 || !strstr(out, "already in progress"))
        fail_msg("a second upgrade while one is in progress exited %d: %s", rc, out);
    /* The refused one got its answer; the stuck one is given up and killed. */
    deadline = now_ms() + WAIT_MS;
    deploy(&x, PF_TEST_BINARY);
    while ((rc = upgrade(&x, out, sizeof(out))) != 0 && now_ms() < deadline)
        sleep_ms(200); /* "in progress" until the stuck one is given up */
    if (rc != 0)
        fail_msg("the upgrade after a stuck one exited %d: %s", rc, out);
    assert_int_equal(status_of(health(&x, buf, sizeof(buf))), 200);
    stop(&x);
}

/* A unix socket goes over to the new primary as it is: the same file (the old primary,
 * which hands it on, does not remove it), the PROXY setting of the config, and the new
 * primary removes the file at its final stop as the old one would have. */
static void test_unix_socket_and_proxy_setting_go_over(void **state)
{
    (void)state;
    struct deployed x;
    start(&x, "listen:\n  - 127.0.0.1:@PORT@\n"
              "  - {address: unix:@DIR@/http.sock, proxy_protocol: v1}\n");
    char path[300], out[4096], buf[4096];
    snprintf(path, sizeof(path), "%s/http.sock", x.d.dir);
    static const char with_proxy[] = "PROXY TCP4 192.0.2.7 192.0.2.1 4711 80\r\n"
                                     "GET /health HTTP/1.1\r\nHost: t\r\n"
                                     "Connection: close\r\n\r\n";
    static const char without[] = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_int_equal(unix_get(path, with_proxy, buf, sizeof(buf)), 200);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    for (int i = 0; i < 2; i++) {
        deploy(&x, i == 0 ? PF_TEST_BINARY_V2 : PF_TEST_BINARY);
        int rc = upgrade(&x, out, sizeof(out));
        if (rc != 0)
            fail_msg("upgrade %d exited %d: %s", i, rc, out);
        /* The old primary has exited (upgrade() reaped it): the file is still there. */
        assert_int_equal(stat(path, &after), 0);
        assert_true(after.st_ino == before.st_ino && after.st_dev == before.st_dev);
        assert_int_equal(unix_get(path, with_proxy, buf, sizeof(buf)), 200);
        assert_non_null(strstr(buf, i == 0 ? "+v2\"" : "\"version\":\"0"));
        /* Still a PROXY listener: a request without the header gets no answer. */
        assert_int_equal(unix_get(path, without, buf, sizeof(buf)), -1);
        assert_int_equal(buf[0], '\0');
    }
    stop_removing(&x, path);
}

/* A socket systemd passed (LISTEN_FDS) goes over as it is (puma #1775 closed it on a
 * restart): after each upgrade the new primary and its workers hold that very socket,
 * which still serves. */
static void test_socket_from_systemd_goes_over(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 64), 0);
    struct stat sb;
    assert_int_equal(fstat(lfd, &sb), 0);
    struct deployed x;
    start_with(&x, NULL, lfd, NULL);
    close(lfd); /* from here on only the daemon holds it */
    char out[4096], buf[4096];
    for (int i = 0; i < 2; i++) {
        deploy(&x, i == 0 ? PF_TEST_BINARY_V2 : PF_TEST_BINARY);
        int rc = upgrade(&x, out, sizeof(out));
        if (rc != 0)
            fail_msg("upgrade %d exited %d: %s", i, rc, out);
        assert_true(pid_holds_socket(x.primary, sb.st_ino));
        pid_t w[8];
        long long deadline = now_ms() + WAIT_MS;
        int n;
        while ((n = pid_children(x.primary, w, 8)) < 2 && now_ms() < deadline)
            sleep_ms(10);
        assert_int_equal(n, 2);
        for (int k = 0; k < n; k++)
            assert_true(pid_holds_socket(w[k], sb.st_ino));
        assert_int_equal(status_of(health(&x, buf, sizeof(buf))), 200);
        assert_non_null(strstr(buf, i == 0 ? "+v2\"" : "\"version\":\"0"));
    }
    stop(&x);
}

/* Under systemd the new primary becomes the main process: it sends MAINPID= with its
 * pid before READY=1 (systemd follows it; NotifyAccess=all in the unit); the old one,
 * handing over, never says STOPPING=1 (the service does not stop); the new one does at
 * its own stop. */
static void test_systemd_follows_the_new_primary(void **state)
{
    (void)state;
    char sock[64], env_sock[96];
    snprintf(sock, sizeof(sock), "/tmp/preforkd-notify-upgrade-%d", (int)getpid());
    int fd = notify_open(sock);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock);
    const char *env[] = {env_sock, NULL};
    struct deployed x;
    start_with(&x, NULL, -1, env);
    static char all[1 << 14];
    all[0] = '\0';
    assert_true(notify_collect(fd, all, sizeof(all), "READY=1", WAIT_MS));
    pid_t old = x.primary;
    char out[4096];
    all[0] = '\0';
    int rc = upgrade(&x, out, sizeof(out));
    if (rc != 0)
        fail_msg("upgrade exited %d: %s", rc, out);
    assert_true(x.primary != old);
    /* The old primary has exited (upgrade() reaped it): all it sent is queued. */
    notify_collect(fd, all, sizeof(all), NULL, 200);
    char mainpid[48];
    snprintf(mainpid, sizeof(mainpid), "MAINPID=%d", (int)x.primary);
    const char *m = strstr(all, mainpid);
    if (!m || !strstr(m, "READY=1") || strstr(all, "STOPPING=1"))
        fail_msg("want %s, then READY=1, and no STOPPING=1; got:\n%s", mainpid, all);
    stop(&x);
    bool stopping = notify_collect(fd, all, sizeof(all), "STOPPING=1", WAIT_MS);
    close(fd);
    unlink(sock);
    assert_true(stopping);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_upgrades_under_load_lose_nothing),
        cmocka_unit_test(test_counters_and_figures_go_on),
        cmocka_unit_test(test_failed_upgrades_keep_the_old_primary),
        cmocka_unit_test(test_unix_socket_and_proxy_setting_go_over),
        cmocka_unit_test(test_socket_from_systemd_goes_over),
        cmocka_unit_test(test_systemd_follows_the_new_primary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
