#ifndef PREFORKD_TEST_HARNESS_H
#define PREFORKD_TEST_HARNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Upper bound for waiting until the daemon reaches a state: generous, because a loaded
 * machine (tests/loaded.sh) or valgrind slows everything down. A bound for waiting,
 * never a measurement: no test asserts how long something took. */
#define WAIT_MS 30000

/* A real preforkd process started from the built binary PF_TEST_BINARY on a free loopback
 * port: preforkd-test, which has the PREFORKD_FAULT hooks (test_shipped: preforkd). */
struct daemon {
    pid_t pid;
    int port;
    int exit_status; /* from waitpid, once stopped */
    char dir[64];
    char conf[128];
    char log[128];
};

/* Writes "listen: 127.0.0.1:PORT" plus extra_yaml as the config ("@DIR@" in it becomes
 * the daemon's temporary directory, "@PORT@" its port; extra_yaml with a `listen:` key of
 * its own replaces the harness's line), starts the daemon and waits until `workers`
 * workers serve: the READY=1 datagram on a NOTIFY_SOCKET of the harness's, after a
 * STATUS=N/N workers serving (or, when the test brings its own NOTIFY_SOCKET, /health
 * saying "serving":N,"configured":N). Neither sends a request the counters would see. */
void daemon_start(struct daemon *d, const char *extra_yaml, int workers);

enum daemon_ready {
    DAEMON_READY_SERVING = 0, /* every worker serves (the default) */
    DAEMON_READY_ANSWERING,   /* some worker answers /health, with any status (a daemon
                                 started with a slot that cannot start) */
};

struct daemon_opts {
    const char *const *env; /* "NAME=VALUE" entries added to the daemon's environment */
    int listen_fd;          /* >= 0: passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID */
    const char *wait_for;   /* deprecated (log text is not an API): waits for this log
                               line instead of `ready` */
    enum daemon_ready ready;
    const char *const *args; /* more command-line arguments, NULL-terminated */
    const char *binary;      /* the daemon to run (default PF_TEST_BINARY) */
};
void daemon_start_opts(struct daemon *d, const char *extra_yaml, int workers,
                       const struct daemon_opts *opts);
/* Rewrites the daemon's config file (same "@DIR@", "@PORT@" and listen rules). */
void daemon_write_config(struct daemon *d, const char *extra_yaml, int workers);
/* The log, for tests whose subject is what the daemon logs (format, reopening, the
 * reason it reports); never to learn that something has happened. */
int daemon_log_count(const struct daemon *d, const char *needle);
/* Waits up to ms for the log to hold `count` lines with needle. */
bool daemon_wait_log(const struct daemon *d, const char *needle, int count, int ms);

/* ---- waiting on observable state --------------------------------------------------- */

/* Polls pred(arg) every 10 ms until it holds or ms have passed; returns whether it held. */
bool wait_until(bool (*pred)(void *arg), void *arg, int ms);
/* GET /metrics on port: the value of a series, "name" or "name{label=\"v\",...}" (the
 * sum over every sample whose labels include those given); -1 when there is none or no
 * answer. Each call is one /metrics request, which the counters count. */
double metric_value(int port, const char *series);
/* Waits until min <= metric_value(d->port, series) <= max. */
bool daemon_wait_metric(const struct daemon *d, const char *series, double min, double max, int ms);
/* GET /health into buf; returns the status, or -1 without a complete answer. */
int daemon_health(const struct daemon *d, char *buf, size_t cap);
/* Waits until /health answers with needle in its body (NULL: any answer). */
bool daemon_wait_health(const struct daemon *d, const char *needle, int ms);
/* Waits until the primary has exactly `count` children. */
bool daemon_wait_workers(const struct daemon *d, int count, int ms);
/* Waits for a worker in slot (its name preforkd-wSLOT) whose pid is none of old[];
 * returns it, or 0. */
pid_t daemon_wait_new_worker(const struct daemon *d, int slot, const pid_t *old, int nold, int ms);
/* CPU time (user + system) a process has used, in seconds; -1 when it is gone. */
double proc_cpu_seconds(pid_t pid);

/* A keep-alive load generator: `threads` threads, each keeping `conns` connections
 * busy with GET / one after another. A request counts as failed when it gets no
 * complete 200 answer (connect error, reset, EOF, no answer within WAIT_MS, wrong body). */
struct load {
    int port;
    const char *path; /* "/" unless load_start_path: then any 200 counts as ok, a 503 as
                         unavailable (the route's store is down), anything else failed */
    _Atomic unsigned long unavailable;
    int threads;
    int conns;
    _Atomic bool stop;
    _Atomic unsigned long ok;
    _Atomic unsigned long failed;
    char first_error[160];
    void *impl;
};
void load_start(struct load *l, int port, int threads, int conns);
void load_start_path(struct load *l, int port, int threads, int conns, const char *path);
void load_stop(struct load *l);
/* Waits until *counter (a load's ok or unavailable, say) reaches min. */
bool wait_until_count(_Atomic unsigned long *counter, unsigned long min, int ms);
/* SIGTERM, then asserts exit status 0, no sanitizer or valgrind report in the log and
 * that no worker outlived the primary; removes the daemon's directory. */
void daemon_stop(struct daemon *d);
/* daemon_stop without the removal, for a test that reads the log afterwards; then
 * daemon_remove_dir. */
void daemon_stop_keep_dir(struct daemon *d);
void daemon_remove_dir(struct daemon *d);
/* Sends sig, waits up to timeout_ms for the exit; returns the wait status or -1. */
int daemon_signal_and_wait(struct daemon *d, int sig, int timeout_ms);
void daemon_dump_log(const struct daemon *d);
bool daemon_log_contains(const struct daemon *d, const char *needle);

/* The primary's children; returns how many. */
int daemon_workers(const struct daemon *d, pid_t *out, int max);
/* The slot from the worker's process name "preforkd-wN", or -1. */
/* A datagram socket bound at path, for a daemon's sd_notify messages (NOTIFY_SOCKET). */
int notify_open(const char *path);
/* Appends the datagrams that come on fd to all ("MSG\n--\n" each) for up to ms, or
 * until one contains `until`: true then (or, with until NULL, at the end). */
bool notify_collect(int fd, char *all, size_t cap, const char *until, int ms);
/* The children of pid (any process: a primary started by an upgrade, say). */
int pid_children(pid_t pid, pid_t *out, int max);
/* Whether pid holds the socket with inode ino among its descriptors. */
bool pid_holds_socket(pid_t pid, ino_t ino);
int worker_slot(pid_t pid);
bool pid_alive(pid_t pid);

/* Runs argv (argv[0] is the path), stdout and stderr captured into out; returns the
 * exit status, or -1 when it did not exit normally. */
int run_capture(const char *const argv[], char *out, size_t cap);

/* A loopback port free at the moment of the call. */
int free_port(void);
int tcp_connect(int port);
/* A connection to a loopback port, or -1 (no test failure). */
int tcp_connect_quiet(int port);
void send_all(int fd, const char *data, size_t len);
/* send_all of a whole C string: no hand-counted lengths. */
void send_str(int fd, const char *s);
/* Reads until `count` complete responses (by Content-Length; count 0: until EOF) have
 * arrived, EOF or WAIT_MS without them; returns bytes read. *eof tells whether the server
 * closed. */
size_t read_responses(int fd, int count, char *buf, size_t cap, bool *eof);
/* One request on a fresh connection; returns the whole raw response. */
size_t http_exchange(int port, const char *request, char *buf, size_t cap);
const char *body_of(const char *response);
/* A connection to a unix socket, or -errno (no test failure). */
int unix_connect(const char *path);
/* The whole exchange of one request on a fresh unix connection: the status (-1 when no
 * answer came: buf is then empty), or -errno when the connect failed. */
int unix_get(const char *path, const char *request, char *buf, size_t cap);
int status_of(const char *response);
/* Counts complete responses in buf. */
int count_responses(const char *buf, size_t len);
long long now_ms(void);
void sleep_ms(int ms);

#endif
