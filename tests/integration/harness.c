#include "harness.h"

#include "../common/promcheck.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void daemon_dump_log(const struct daemon *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- daemon log %s ----\n", d->log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

int daemon_log_count(const struct daemon *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

bool daemon_wait_log(const struct daemon *d, const char *needle, int count, int ms)
{
    long long deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        if (daemon_log_count(d, needle) >= count)
            return true;
        sleep_ms(10);
    }
    return false;
}

bool daemon_log_contains(const struct daemon *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int daemon_workers(const struct daemon *d, pid_t *out, int max)
{
    return pid_children(d->pid, out, max);
}

int pid_children(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, v;
    while (n < max && fscanf(f, "%d", &v) == 1)
        out[n++] = (pid_t)v;
    fclose(f);
    return n;
}

/* Whether pid holds the socket with inode ino among its descriptors. */
bool pid_holds_socket(pid_t pid, ino_t ino)
{
    char dir[64], want[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)ino);
    DIR *dp = opendir(dir);
    if (!dp)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(dp))) {
        char path[320], target[64];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, want) == 0;
        }
    }
    closedir(dp);
    return found;
}

int worker_slot(pid_t pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int slot = -1;
    if (fgets(comm, sizeof(comm), f) && sscanf(comm, "preforkd-w%d", &slot) != 1)
        slot = -1;
    fclose(f);
    return slot;
}

bool pid_alive(pid_t pid)
{
    /* A zombie still answers kill(0); look at its state instead. */
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool alive = false;
    if (fgets(buf, sizeof(buf), f)) {
        char *p = strrchr(buf, ')');
        alive = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
    }
    fclose(f);
    return alive;
}

void daemon_write_config(struct daemon *d, const char *extra_yaml, int workers)
{
    char text[4096] = "";
    const char *src = extra_yaml ? extra_yaml : "";
    size_t o = 0;
    while (*src && o < sizeof(text) - 100) {
        if (strncmp(src, "@DIR@", 5) == 0) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", d->dir);
            src += 5;
        } else if (strncmp(src, "@PORT@", 6) == 0) {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%d", d->port);
            src += 6;
        } else {
            text[o++] = *src++;
        }
    }
    text[o] = '\0';
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", d->conf);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    /* A test that lists its own addresses says where the harness's port goes. */
    if (strncmp(text, "listen:", 7) == 0 || strstr(text, "\nlisten:"))
        fprintf(f, "workers: %d\n%s", workers, text);
    else
        fprintf(f, "listen: 127.0.0.1:%d\nworkers: %d\n%s", d->port, workers, text);
    fclose(f);
    assert_int_equal(rename(tmp, d->conf), 0); /* never a half-written file on reload */
}

void daemon_start(struct daemon *d, const char *extra_yaml, int workers)
{
    struct daemon_opts none = {.listen_fd = -1};
    daemon_start_opts(d, extra_yaml, workers, &none);
}

static bool env_sets(const char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return true;
    return false;
}

/* A datagram socket for the daemon's sd_notify messages. */
int notify_open(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(fd >= 0 && strlen(path) < sizeof(a.sun_path));
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Collects datagrams for up to ms or until one contains `until`. */
bool notify_collect(int fd, char *all, size_t cap, const char *until, int ms)
{
    long long deadline = now_ms() + ms;
    size_t len = strlen(all);
    while (now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char msg[512];
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        len += (size_t)snprintf(all + len, cap - len, "%s\n--\n", msg);
        if (until && strstr(msg, until))
            return true;
    }
    return until == NULL;
}

/* Reads the sd_notify datagrams that came (waiting up to 20 ms for one); true once
 * READY=1 came after STATUS=N/N workers serving. */
static bool notified_ready(int fd, int workers, char *status, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 20) > 0) {
        char msg[512];
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            return false;
        msg[n] = '\0';
        if (strncmp(msg, "STATUS=", 7) == 0)
            snprintf(status, cap, "%s", msg);
        if (strstr(msg, "READY=1")) {
            char want[64];
            snprintf(want, sizeof(want), "STATUS=%d/%d workers serving", workers, workers);
            if (strncmp(status, want, strlen(want)) != 0)
                fail_msg("READY=1 after '%s', want '%s'", status, want);
            return true;
        }
    }
    return false;
}

void daemon_start_opts(struct daemon *d, const char *extra_yaml, int workers,
                       const struct daemon_opts *opts)
{
    memset(d, 0, sizeof(*d));
    strcpy(d->dir, "/tmp/preforkd-test-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->conf, sizeof(d->conf), "%s/preforkd.yaml", d->dir);
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    d->port = free_port();
    if (opts->listen_fd >= 0) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        getsockname(opts->listen_fd, (struct sockaddr *)&a, &len);
        d->port = ntohs(a.sin_port);
    }
    daemon_write_config(d, extra_yaml, workers);
    /* Started means READY=1 on our own NOTIFY_SOCKET, unless the test brings one. */
    char notify_path[128];
    snprintf(notify_path, sizeof(notify_path), "%s/notify", d->dir);
    bool by_notify = !opts->wait_for && opts->ready == DAEMON_READY_SERVING &&
                     !env_sets(opts->env, "NOTIFY_SOCKET");
    int notify_fd = by_notify ? notify_open(notify_path) : -1;

    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        /* If the test process dies, its daemon must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (by_notify)
            setenv("NOTIFY_SOCKET", notify_path, 1);
        for (const char *const *e = opts->env; e && *e; e++)
            putenv((char *)*e);
        if (opts->listen_fd >= 0) {
            dup2(opts->listen_fd, 3);
            char pid[32];
            snprintf(pid, sizeof(pid), "%d", (int)getpid());
            setenv("LISTEN_PID", pid, 1);
            setenv("LISTEN_FDS", "1", 1);
        }
        /* PF_TEST_VALGRIND=1: the daemon runs under memcheck; workers are forked, so
         * they are checked too. Any error is marked in the log for daemon_stop. */
        const char *argv[32];
        size_t n = 0;
        if (getenv("PF_TEST_VALGRIND")) {
            static const char *const vg[] = {"valgrind",
                                             "--quiet",
                                             "--error-exitcode=99",
                                             "--leak-check=full",
                                             "--errors-for-leak-kinds=definite",
                                             "--show-leak-kinds=definite",
                                             "--error-markers=VALGRIND-ERROR,VALGRIND-ERROR-END"};
            for (size_t i = 0; i < sizeof(vg) / sizeof(vg[0]); i++)
                argv[n++] = vg[i];
        }
        argv[n++] = opts->binary ? opts->binary : PF_TEST_BINARY;
        argv[n++] = "-c";
        argv[n++] = d->conf;
        for (const char *const *a = opts->args; a && *a && n < 31; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    long long deadline = now_ms() + (getenv("PF_TEST_VALGRIND") ? 4 : 1) * WAIT_MS;
    char serving[64], status[512] = "", health[4096];
    snprintf(serving, sizeof(serving), "\"cluster\":{\"serving\":%d,\"configured\":%d,", workers,
             workers);
    bool ready = false;
    while (!ready && now_ms() < deadline) {
        if (opts->wait_for)
            ready = daemon_log_contains(d, opts->wait_for);
        else if (by_notify)
            ready = notified_ready(notify_fd, workers, status, sizeof(status));
        else if (opts->ready == DAEMON_READY_ANSWERING)
            ready = daemon_health(d, health, sizeof(health)) > 0;
        else
            ready = daemon_health(d, health, sizeof(health)) > 0 && strstr(health, serving);
        int st;
        if (!ready && waitpid(d->pid, &st, WNOHANG) == d->pid) {
            daemon_dump_log(d);
            fail_msg("daemon exited during start-up (status %d)", st);
        }
        if (!ready && !by_notify)
            sleep_ms(10);
    }
    if (notify_fd >= 0) {
        /* Later messages go nowhere: an unread queue would block the primary's send. */
        close(notify_fd);
        unlink(notify_path);
    }
    if (!ready) {
        daemon_dump_log(d);
        fail_msg("daemon not started (%d workers serving) within %d ms; last STATUS: '%s'", workers,
                 WAIT_MS, status);
    }
}

int daemon_signal_and_wait(struct daemon *d, int sig, int timeout_ms)
{
    kill(d->pid, sig);
    long long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->exit_status = st;
            return st;
        }
        sleep_ms(5);
    }
    return -1;
}

void daemon_stop(struct daemon *d)
{
    daemon_stop_keep_dir(d);
    daemon_remove_dir(d);
}

void daemon_remove_dir(struct daemon *d)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", d->dir);
}

void daemon_stop_keep_dir(struct daemon *d)
{
    pid_t w[64];
    int n = daemon_workers(d, w, 64);
    int st = daemon_signal_and_wait(d, SIGTERM, WAIT_MS);
    if (st < 0) {
        daemon_dump_log(d);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        fail_msg("daemon did not exit within %d ms of SIGTERM", WAIT_MS);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        daemon_dump_log(d);
        fail_msg("daemon exit status %d, want a clean exit 0", st);
    }
    /* Under ASan/UBSan a worker's report would otherwise pass unnoticed while its
     * successor keeps serving. */
    if (daemon_log_contains(d, "Sanitizer") || daemon_log_contains(d, "runtime error:") ||
        daemon_log_contains(d, "VALGRIND-ERROR")) {
        daemon_dump_log(d);
        fail_msg("sanitizer or valgrind report in the daemon's log");
    }
    for (int i = 0; i < n; i++) {
        if (pid_alive(w[i])) {
            daemon_dump_log(d);
            fail_msg("worker %d outlived its primary", (int)w[i]);
        }
    }
}

int run_capture(const char *const argv[], char *out, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(p[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A connection to the loopback port, or -1 (no test failure). */
static int connect_quiet(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        fail_msg("connect to port %d: %s", port, strerror(errno));
    return fd;
}

void send_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            fail_msg("send: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
}

void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

int count_responses(const char *buf, size_t len)
{
    int count = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *end = memmem(buf + pos, len - pos, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head_len = (size_t)(end - (buf + pos)) + 4;
        const char *cl = memmem(buf + pos, head_len, "Content-Length: ", 16);
        if (!cl)
            break;
        size_t body = (size_t)strtoul(cl + 16, NULL, 10);
        if (pos + head_len + body > len)
            break;
        pos += head_len + body;
        count++;
    }
    return count;
}

static size_t read_within(int fd, int count, char *buf, size_t cap, bool *eof, int ms)
{
    size_t len = 0;
    long long deadline = now_ms() + ms;
    *eof = false;
    while (len < cap - 1) {
        if (count > 0 && count_responses(buf, len) >= count)
            break;
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            *eof = true;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

size_t read_responses(int fd, int count, char *buf, size_t cap, bool *eof)
{
    return read_within(fd, count, buf, cap, eof, WAIT_MS);
}

size_t http_exchange(int port, const char *request, char *buf, size_t cap)
{
    int fd = tcp_connect(port);
    send_all(fd, request, strlen(request));
    bool eof;
    size_t n = read_responses(fd, 1, buf, cap, &eof);
    close(fd);
    return n;
}

const char *body_of(const char *response)
{
    const char *p = strstr(response, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* A connection to a unix socket, or -errno (no test failure). */
int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(fd >= 0 && strlen(path) < sizeof(a.sun_path));
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* The whole exchange of one request on a fresh unix connection; returns the status. */
int unix_get(const char *path, const char *request, char *buf, size_t cap)
{
    int fd = unix_connect(path);
    if (fd < 0)
        return fd;
    send_str(fd, request);
    bool eof;
    read_responses(fd, 1, buf, cap, &eof);
    close(fd);
    return status_of(buf);
}

int status_of(const char *response)
{
    int s = 0;
    if (sscanf(response, "HTTP/1.1 %d ", &s) != 1)
        return -1;
    return s;
}

/* ---- waiting on observable state ---------------------------------------------------- */

bool wait_until(bool (*pred)(void *arg), void *arg, int ms)
{
    long long deadline = now_ms() + ms;
    for (;;) {
        if (pred(arg))
            return true;
        if (now_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

/* GET path on a fresh connection, waiting up to ms for the answer; returns its status,
 * or -1 (no connection, no complete answer). */
static int http_get(int port, const char *path, char *buf, size_t cap, int ms)
{
    int fd = connect_quiet(port);
    if (fd < 0)
        return -1;
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    bool eof;
    buf[0] = '\0';
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req)) {
        size_t n = read_within(fd, 1, buf, cap, &eof, ms);
        if (count_responses(buf, n) < 1)
            buf[0] = '\0';
    }
    close(fd);
    return buf[0] ? status_of(buf) : -1;
}

double metric_value(int port, const char *series)
{
    enum { CAP = 1 << 18 };
    char *buf = malloc(CAP);
    assert_non_null(buf);
    char name[128], labels[256] = "";
    size_t nl = strcspn(series, "{");
    snprintf(name, sizeof(name), "%.*s", (int)nl, series);
    if (series[nl] == '{')
        snprintf(labels, sizeof(labels), "%.*s", (int)strcspn(series + nl + 1, "}"),
                 series + nl + 1);
    double v = -1;
    if (http_get(port, "/metrics", buf, CAP, 10000) == 200)
        v = promsum(body_of(buf), name, labels);
    free(buf);
    return v;
}

bool daemon_wait_metric(const struct daemon *d, const char *series, double min, double max, int ms)
{
    long long deadline = now_ms() + ms;
    double v;
    for (;;) {
        v = metric_value(d->port, series);
        if (v >= min && v <= max)
            return true;
        if (now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    print_message("%s is %g after %d ms, want %g..%g\n", series, v, ms, min, max);
    return false;
}

int daemon_health(const struct daemon *d, char *buf, size_t cap)
{
    /* Short: a connection queued behind a slot that is not served yet is retried. */
    return http_get(d->port, "/health", buf, cap, 2000);
}

bool daemon_wait_health(const struct daemon *d, const char *needle, int ms)
{
    long long deadline = now_ms() + ms;
    char buf[4096];
    for (;;) {
        if (daemon_health(d, buf, sizeof(buf)) > 0 && (!needle || strstr(body_of(buf), needle)))
            return true;
        if (now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    print_message("/health never said '%s' within %d ms; last: %s\n", needle ? needle : "", ms,
                  buf);
    return false;
}

bool daemon_wait_workers(const struct daemon *d, int count, int ms)
{
    long long deadline = now_ms() + ms;
    pid_t w[256];
    for (;;) {
        if (daemon_workers(d, w, 256) == count)
            return true;
        if (now_ms() >= deadline)
            return false;
        sleep_ms(10);
    }
}

pid_t daemon_wait_new_worker(const struct daemon *d, int slot, const pid_t *old, int nold, int ms)
{
    long long deadline = now_ms() + ms;
    pid_t w[256];
    for (;;) {
        int n = daemon_workers(d, w, 256);
        for (int i = 0; i < n; i++) {
            bool known = false;
            for (int k = 0; k < nold; k++)
                known |= w[i] == old[k];
            if (!known && worker_slot(w[i]) == slot)
                return w[i];
        }
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(5);
    }
}

double proc_cpu_seconds(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    unsigned long ut, st;
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- load generator ------------------------------------------------------------------ */

struct load_thread {
    struct load *l;
    pthread_t tid;
};

static void load_fail(struct load *l, const char *what)
{
    if (atomic_fetch_add(&l->failed, 1) == 0)
        snprintf(l->first_error, sizeof(l->first_error), "%s", what);
}

static int load_connect(int port)
{
    int fd = connect_quiet(port);
    if (fd < 0)
        return -1;
    /* A request with no answer within WAIT_MS counts as failed, as read_responses waits. */
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void *load_main(void *arg)
{
    struct load_thread *t = arg;
    struct load *l = t->l;
    int fds[16];
    for (int i = 0; i < l->conns; i++)
        fds[i] = -1;
    char req[256];
    int reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: load\r\n\r\n",
                          l->path ? l->path : "/");
    assert_true(reqlen > 0 && (size_t)reqlen < sizeof(req));
    char buf[2048];
    while (!atomic_load(&l->stop)) {
        for (int i = 0; i < l->conns && !atomic_load(&l->stop); i++) {
            if (fds[i] < 0 && (fds[i] = load_connect(l->port)) < 0) {
                load_fail(l, "connect failed");
                sleep_ms(10);
                continue;
            }
            if (send(fds[i], req, (size_t)reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
                load_fail(l, "send failed");
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            size_t len = 0;
            bool done = false;
            ssize_t last = 1;
            while (!done && len < sizeof(buf) - 1) {
                ssize_t n = recv(fds[i], buf + len, sizeof(buf) - 1 - len, 0);
                if (n < 0 && errno == EINTR)
                    continue; /* a signal to the test process, not an answer */
                if (n <= 0) {
                    last = n;
                    break;
                }
                len += (size_t)n;
                done = count_responses(buf, len) >= 1;
            }
            buf[len] = '\0';
            if (!done) {
                char what[160];
                snprintf(what, sizeof(what), "no complete answer (%zu bytes: %.60s) %s", len, buf,
                         last == 0 ? "the server closed" : strerror(errno));
                load_fail(l, what);
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            if (l->path && status_of(buf) == 503) {
                atomic_fetch_add(&l->unavailable, 1);
            } else if (status_of(buf) != 200 ||
                       (!l->path && strcmp(body_of(buf), "{\"sum\":4999950000}") != 0)) {
                char what[160];
                snprintf(what, sizeof(what), "wrong answer: %.120s", buf);
                load_fail(l, what);
            } else {
                atomic_fetch_add(&l->ok, 1);
            }
            if (strstr(buf, "Connection: close\r\n")) {
                close(fds[i]);
                fds[i] = -1;
            }
        }
    }
    for (int i = 0; i < l->conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return NULL;
}

void load_start(struct load *l, int port, int threads, int conns)
{
    load_start_path(l, port, threads, conns, NULL);
}

void load_start_path(struct load *l, int port, int threads, int conns, const char *path)
{
    memset(l, 0, sizeof(*l));
    l->path = path;
    l->port = port;
    l->threads = threads;
    l->conns = conns > 16 ? 16 : conns;
    struct load_thread *t = calloc((size_t)threads, sizeof(*t));
    l->impl = t;
    for (int i = 0; i < threads; i++) {
        t[i].l = l;
        assert_int_equal(pthread_create(&t[i].tid, NULL, load_main, &t[i]), 0);
    }
}

struct count_wait {
    _Atomic unsigned long *counter;
    unsigned long min;
};

static bool count_reached(void *arg)
{
    struct count_wait *w = arg;
    return atomic_load(w->counter) >= w->min;
}

bool wait_until_count(_Atomic unsigned long *counter, unsigned long min, int ms)
{
    struct count_wait w = {counter, min};
    return wait_until(count_reached, &w, ms);
}

int tcp_connect_quiet(int port)
{
    return connect_quiet(port);
}

void load_stop(struct load *l)
{
    atomic_store(&l->stop, true);
    struct load_thread *t = l->impl;
    for (int i = 0; i < l->threads; i++)
        pthread_join(t[i].tid, NULL);
    free(t);
    l->impl = NULL;
}
