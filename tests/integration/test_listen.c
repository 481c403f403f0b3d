/* Unix-domain listeners (mode and owner, stale and live socket files, a file that is not a
 * socket, reloads, `preforkd status`, the file removed at a stop) and the PROXY protocol
 * (v1 and v2 headers split over writes, the address they carry in the access log, and
 * connections without a valid header closed with no answer). */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "harness.h"

static const char health_req[] = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

/* Sends data in pieces of `piece` bytes, pausing between them so that the server is
 * likely to read each one on its own (not guaranteed; the parser must not care). */
static void send_split(int fd, const char *data, size_t len, size_t piece)
{
    for (size_t o = 0; o < len; o += piece) {
        send_all(fd, data + o, len - o < piece ? len - o : piece);
        sleep_ms(2);
    }
}

static void path_in(const struct daemon *d, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", d->dir, name);
}

/* ---- unix-domain listeners --------------------------------------------------------- */

static void test_unix_socket_serves_with_mode_and_owner(void **state)
{
    (void)state;
    struct passwd *pw = getpwuid(getuid());
    struct group *gr = getgrgid(getgid());
    assert_non_null(pw);
    assert_non_null(gr);
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "listen:\n  - 127.0.0.1:@PORT@\n"
             "  - {address: unix:@DIR@/http.sock, mode: '0660', owner: %s, group: %s}\n",
             pw->pw_name, gr->gr_name);
    struct daemon d;
    daemon_start(&d, yaml, 2);
    char path[160], buf[4096];
    path_in(&d, "http.sock", path, sizeof(path));
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
    assert_int_equal(st.st_uid, pw->pw_uid);
    assert_int_equal(st.st_gid, gr->gr_gid);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(unix_get(path, health_req, buf, sizeof(buf)), 200);
        assert_non_null(strstr(body_of(buf), "\"status\":\"healthy\""));
    }
    /* Keep-alive and pipelining work as over TCP. */
    int fd = unix_connect(path);
    assert_true(fd >= 0);
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    bool eof;
    size_t n = read_responses(fd, 2, buf, sizeof(buf), &eof);
    assert_int_equal(count_responses(buf, n), 2);
    close(fd);
    daemon_stop(&d);
}

static void test_status_over_unix_and_file_removed_at_stop(void **state)
{
    (void)state;
    struct daemon d;
    /* listen[0] is what `preforkd status` asks: a unix socket that wants PROXY v2. */
    daemon_start(&d,
                 "listen:\n  - {address: unix:@DIR@/s.sock, proxy_protocol: v2}\n"
                 "  - 127.0.0.1:@PORT@\n",
                 2);
    static char out[8192];
    const char *argv[] = {PF_TEST_BINARY, "status", "-c", d.conf, NULL};
    int rc = run_capture(argv, out, sizeof(out));
    if (rc != 0) {
        daemon_dump_log(&d);
        fail_msg("status exited %d: %s", rc, out);
    }
    assert_non_null(strstr(out, "2/2 workers serving"));
    char path[160];
    path_in(&d, "s.sock", path, sizeof(path));
    daemon_stop_keep_dir(&d);
    /* The primary bound it, so its stop removed it. */
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    daemon_remove_dir(&d);
}

/* Runs the daemon on a config in dir that listens on unix:path, expecting it to fail to
 * start: returns its exit status, its output in out. Killed (and the test failed) if it
 * is still running after WAIT_MS. */
static int run_failing(const char *dir, const char *path, char *out, size_t cap)
{
    char conf[160];
    snprintf(conf, sizeof(conf), "%s/preforkd.yaml", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "listen: unix:%s\nworkers: 1\n", path);
    fclose(f);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        execl(PF_TEST_BINARY, PF_TEST_BINARY, "-c", conf, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    long long deadline = now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t n = read(p[0], out + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(p[0]);
    int st;
    pid_t got;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
        sleep_ms(5);
    if (got != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("the daemon did not exit: %s", out);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A directory of the test's own, made before any daemon runs in it. */
static void own_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/preforkd-unix-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int bind_unix(const char *path, bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (listening)
        assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static void test_stale_socket_file_is_replaced(void **state)
{
    (void)state;
    char dir[64], path[128], yaml[256], buf[4096];
    own_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/stale.sock", dir);
    close(bind_unix(path, false)); /* left behind by a process that is gone */
    assert_int_equal(unix_connect(path), -ECONNREFUSED);
    snprintf(yaml, sizeof(yaml), "listen:\n  - 127.0.0.1:@PORT@\n  - unix:%s\n", path);
    struct daemon d;
    daemon_start(&d, yaml, 1);
    assert_int_equal(unix_get(path, health_req, buf, sizeof(buf)), 200);
    daemon_stop(&d);
    remove_dir(dir);
}

static void test_live_socket_fails_the_start(void **state)
{
    (void)state;
    char dir[64], path[128], out[4096];
    own_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/live.sock", dir);
    int live = bind_unix(path, true);
    assert_int_equal(run_failing(dir, path, out, sizeof(out)), 1);
    char want[256];
    snprintf(want, sizeof(want),
             "cannot listen on unix:%s: Address already in use (a process is listening on that "
             "socket)",
             path);
    if (!strstr(out, want))
        fail_msg("no '%s' in: %s", want, out);
    /* The other process's socket is untouched: still there, still answering. */
    int fd = unix_connect(path);
    assert_true(fd >= 0);
    close(fd);
    close(live);
    remove_dir(dir);
}

static void test_regular_file_is_refused_and_kept(void **state)
{
    (void)state;
    char dir[64], path[128], out[4096];
    own_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/data", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("precious\n", f);
    fclose(f);
    assert_int_equal(run_failing(dir, path, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "File exists (the path exists and is not a socket; it is left "
                                "alone)"));
    char content[64] = "";
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(content, sizeof(content), f));
    fclose(f);
    assert_string_equal(content, "precious\n");
    remove_dir(dir);
}

/* Connects to the unix socket over and over, each time one request, until told to stop. */
struct prober {
    const char *path;
    _Atomic bool stop;
    _Atomic unsigned long ok, failed;
    char first_error[128];
};

static void *probe_main(void *arg)
{
    struct prober *p = arg;
    char buf[4096];
    while (!atomic_load(&p->stop)) {
        int rc = unix_get(p->path, health_req, buf, sizeof(buf));
        if (rc == 200) {
            atomic_fetch_add(&p->ok, 1);
        } else if (atomic_fetch_add(&p->failed, 1) == 0) {
            snprintf(p->first_error, sizeof(p->first_error), "%s",
                     rc < 0 ? strerror(-rc) : "no 200 answer");
        }
    }
    return NULL;
}

static void test_reload_keeps_the_unix_socket(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d, "listen:\n  - 127.0.0.1:@PORT@\n  - unix:@DIR@/r.sock\n", 2);
    char path[160];
    path_in(&d, "r.sock", path, sizeof(path));
    struct stat before, after;
    assert_int_equal(lstat(path, &before), 0);
    struct prober p = {.path = path};
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, probe_main, &p), 0);
    /* The same address, now with a mode: the socket stays, the mode is applied. */
    daemon_write_config(&d,
                        "listen:\n  - 127.0.0.1:@PORT@\n"
                        "  - {address: unix:@DIR@/r.sock, mode: '0600'}\n",
                        2);
    char out[4096], pid[16];
    snprintf(pid, sizeof(pid), "%d", (int)d.pid);
    const char *argv[] = {PF_TEST_BINARY, "reload", "-c", d.conf, "--pid", pid,
                          "--timeout",    "60s",    NULL};
    int rc = run_capture(argv, out, sizeof(out));
    /* A few more requests after it, on the new generation. */
    unsigned long at_reload = atomic_load(&p.ok);
    long long deadline = now_ms() + WAIT_MS;
    while (atomic_load(&p.ok) < at_reload + 20 && now_ms() < deadline)
        sleep_ms(5);
    atomic_store(&p.stop, true);
    pthread_join(tid, NULL);
    if (rc != 0) {
        daemon_dump_log(&d);
        fail_msg("reload exited %d: %s", rc, out);
    }
    if (atomic_load(&p.failed)) {
        daemon_dump_log(&d);
        fail_msg("%lu of %lu connections failed during the reload; first: %s",
                 atomic_load(&p.failed), atomic_load(&p.failed) + atomic_load(&p.ok),
                 p.first_error);
    }
    assert_true(atomic_load(&p.ok) >= at_reload + 20);
    assert_int_equal(lstat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino); /* never re-bound */
    assert_int_equal(after.st_mode & 07777, 0600);
    daemon_stop(&d);
}

/* ---- PROXY protocol ------------------------------------------------------------------ */

static const char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 PROXY header for TCP over IPv6 from src:sport; returns its length. */
static size_t v2_tcp6(char *out, const char *src, uint16_t sport)
{
    memcpy(out, v2_sig, 12);
    out[12] = 0x21; /* version 2, PROXY */
    out[13] = 0x21; /* AF_INET6, STREAM */
    out[14] = 0;
    out[15] = 36;
    struct in6_addr a, dst;
    assert_int_equal(inet_pton(AF_INET6, src, &a), 1);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &dst), 1);
    memcpy(out + 16, &a, 16);
    memcpy(out + 32, &dst, 16);
    uint16_t sp = htons(sport), dp = htons(443);
    memcpy(out + 48, &sp, 2);
    memcpy(out + 50, &dp, 2);
    return 52;
}

/* Lines of the access log that contain needle. */
static int access_lines(const struct daemon *d, const char *needle)
{
    char path[160], line[1024];
    path_in(d, "access.log", path, sizeof(path));
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

static bool wait_access_lines(const struct daemon *d, const char *needle, int count)
{
    long long deadline = now_ms() + WAIT_MS;
    while (access_lines(d, needle) < count) {
        if (now_ms() >= deadline)
            return false;
        sleep_ms(20);
    }
    return true;
}

static void test_proxy_headers_split_over_writes(void **state)
{
    (void)state;
    int v2_port = free_port(); /* besides the harness's */
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "listen:\n  - 127.0.0.1:@PORT@\n"
             "  - {address: unix:@DIR@/v1.sock, proxy_protocol: v1}\n"
             "  - {address: 127.0.0.1:%d, proxy_protocol: v2}\n"
             "access_log:\n  format: json\n  path: @DIR@/access.log\n",
             v2_port);
    struct daemon d;
    daemon_start(&d, yaml, 2);
    char path[160], buf[8192];
    path_in(&d, "v1.sock", path, sizeof(path));
    bool eof;

    /* v1 over unix, a few bytes per write, then two requests on the connection: the
     * header comes once, before the first. */
    int fd = unix_connect(path);
    assert_true(fd >= 0);
    static const char v1[] = "PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\r\n";
    send_split(fd, v1, strlen(v1), 5);
    static const char two[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_split(fd, two, strlen(two), 17);
    size_t n = read_responses(fd, 2, buf, sizeof(buf), &eof);
    assert_int_equal(count_responses(buf, n), 2);
    assert_int_equal(status_of(buf), 200);
    close(fd);

    /* v2 over TCP: the 16-byte head split inside the signature, then the address block. */
    fd = tcp_connect(v2_port);
    char v2[64];
    size_t len = v2_tcp6(v2, "2001:db8::7", 40001);
    send_all(fd, v2, 1);
    sleep_ms(2);
    send_all(fd, v2 + 1, 11);
    sleep_ms(2);
    send_all(fd, v2 + 12, 4);
    sleep_ms(2);
    send_split(fd, v2 + 16, len - 16, 7);
    send_str(fd, health_req);
    n = read_responses(fd, 1, buf, sizeof(buf), &eof);
    assert_int_equal(count_responses(buf, n), 1);
    assert_int_equal(status_of(buf), 200);
    close(fd);

    /* v2 LOCAL (a balancer's health check), header and request in one write: the
     * connection's own address stays. */
    fd = tcp_connect(v2_port);
    char local[16 + sizeof(health_req)];
    memcpy(local, v2_sig, 12);
    local[12] = 0x20;
    local[13] = local[14] = local[15] = 0;
    memcpy(local + 16, health_req, sizeof(health_req) - 1);
    send_all(fd, local, 16 + sizeof(health_req) - 1);
    n = read_responses(fd, 1, buf, sizeof(buf), &eof);
    assert_int_equal(status_of(buf), 200);
    close(fd);

    /* The access log names the client the header carried (flushed about once a second). */
    assert_true(wait_access_lines(&d, "\"remote\":\"203.0.113.7\"", 2));
    assert_true(wait_access_lines(&d, "\"remote\":\"2001:db8::7\"", 1));
    assert_true(wait_access_lines(&d, "\"remote\":\"127.0.0.1\"", 1));
    daemon_stop(&d);
}

/* Sends data, then expects the server to close without a byte of answer. */
static void expect_closed_silently(int fd, const char *data, size_t len, const char *what)
{
    if (len)
        send_all(fd, data, len);
    char buf[4096];
    bool eof;
    size_t n = read_responses(fd, 0, buf, sizeof(buf), &eof);
    if (n != 0 || !eof)
        fail_msg("%s: %zu bytes answered (%.80s), closed: %d", what, n, buf, eof);
    close(fd);
}

static void test_proxy_header_missing_malformed_or_truncated(void **state)
{
    (void)state;
    struct daemon d;
    daemon_start(&d,
                 "listen:\n  - 127.0.0.1:@PORT@\n"
                 "  - {address: unix:@DIR@/v1.sock, proxy_protocol: v1}\n"
                 "  - {address: unix:@DIR@/v2.sock, proxy_protocol: v2}\n"
                 "timeouts:\n  header: 1s\n",
                 1);
    char p1[160], p2[160], buf[4096];
    path_in(&d, "v1.sock", p1, sizeof(p1));
    path_in(&d, "v2.sock", p2, sizeof(p2));
    expect_closed_silently(unix_connect(p1), health_req, strlen(health_req), "v1, no header");
    expect_closed_silently(unix_connect(p2), health_req, strlen(health_req), "v2, no header");
    static const char bad_port[] = "PROXY TCP4 203.0.113.7 192.0.2.1 4x 80\r\nGET / HTTP/1.1\r\n";
    expect_closed_silently(unix_connect(p1), bad_port, strlen(bad_port), "v1, bad port");
    static const char bad_family[] = "PROXY TCP5 203.0.113.7 192.0.2.1 1 80\r\n";
    expect_closed_silently(unix_connect(p1), bad_family, strlen(bad_family), "v1, bad family");
    static const char v1_on_v2[] = "PROXY TCP4 203.0.113.7 192.0.2.1 1 80\r\n";
    expect_closed_silently(unix_connect(p2), v1_on_v2, strlen(v1_on_v2), "v1 header on v2");
    char v2[64];
    size_t len = v2_tcp6(v2, "2001:db8::7", 1);
    v2[12] = 0x31; /* version 3 */
    expect_closed_silently(unix_connect(p2), v2, len, "v2, version 3");
    /* Truncated: the rest never comes; the header timeout (1 s) closes them. */
    expect_closed_silently(unix_connect(p1), "PROXY TCP4 203.0.113.7 ", 23, "v1, truncated");
    v2_tcp6(v2, "2001:db8::7", 1);
    expect_closed_silently(unix_connect(p2), v2, 20, "v2, truncated");
    /* Nothing at all within the header timeout: closed too. */
    expect_closed_silently(unix_connect(p2), NULL, 0, "v2, silent");
    /* The worker is fine, and a good header still works. */
    int fd = unix_connect(p1);
    assert_true(fd >= 0);
    send_str(fd, "PROXY UNKNOWN\r\n");
    send_str(fd, health_req);
    bool eof;
    read_responses(fd, 1, buf, sizeof(buf), &eof);
    assert_int_equal(status_of(buf), 200);
    close(fd);
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_socket_serves_with_mode_and_owner),
        cmocka_unit_test(test_status_over_unix_and_file_removed_at_stop),
        cmocka_unit_test(test_stale_socket_file_is_replaced),
        cmocka_unit_test(test_live_socket_fails_the_start),
        cmocka_unit_test(test_regular_file_is_refused_and_kept),
        cmocka_unit_test(test_reload_keeps_the_unix_socket),
        cmocka_unit_test(test_proxy_headers_split_over_writes),
        cmocka_unit_test(test_proxy_header_missing_malformed_or_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
