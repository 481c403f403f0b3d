/* The worker's Redis connection (the shared counters' redis backend), with no Redis: the
 * test plays the server itself on a socket of its own (TCP on 127.0.0.1, or a unix
 * socket), reads the commands the module sends and writes replies in Redis' protocol,
 * while it drives the module as a worker does: its epoll, then pf_redis_tick and
 * pf_redis_flush at the end of each turn. Every wait is for something observable, with a
 * generous bound; no duration is asserted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "preforkd/handlers.h"
#include "preforkd/log.h"
#include "preforkd/redis.h"

#define KIND 0x5eed /* what the worker's dispatch would find first in data.ptr */
#define WAIT_MS                                                                                    \
    30000 /* the bound on every wait for something to happen (generous: a loaded machine) */
#define MAX_PEERS 16
#define MAX_REPLY 256

/* ---- the module's side: what the reply callback was told --------------------------- */

struct reply_rec {
    struct pf_defer *d;
    uint32_t seq;
    uint64_t value;
    int err;
};

/* ---- the fake Redis: the connections it accepted and what each sent ----------------- */

struct peer {
    int fd; /* -1: closed by the test */
    char in[16384];
    size_t len;
    int reads; /* reads that returned data */
    bool eof;  /* the module closed its end */
};

struct env {
    int epfd;
    int lfd;      /* the listening socket; -1: none */
    int reserved; /* a bound socket that does not listen (yet): connects are refused */
    int filler;   /* SERVE_QUEUE_FULL: the connection that fills the accept queue */
    char address[128];
    char unix_path[64];
    struct pf_redis *r;
    struct peer peers[MAX_PEERS];
    int npeers;
    int fds_before;
    struct reply_rec replies[MAX_REPLY];
    size_t nreplies;
};

static struct env E;
static struct pf_defer defers[80];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void on_reply(void *owner, struct pf_defer *d, uint32_t seq, uint64_t value, int err)
{
    assert_ptr_equal(owner, &E);
    assert_true(E.nreplies < MAX_REPLY);
    E.replies[E.nreplies++] = (struct reply_rec){.d = d, .seq = seq, .value = value, .err = err};
}

/* Accepts what connects, reads what was sent: never blocks. */
static void server_step(void)
{
    while (E.lfd >= 0) {
        int fd = accept4(E.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            break;
        }
        assert_true(E.npeers < MAX_PEERS);
        struct peer *p = &E.peers[E.npeers++];
        memset(p, 0, sizeof(*p));
        p->fd = fd;
    }
    for (int i = 0; i < E.npeers; i++) {
        struct peer *p = &E.peers[i];
        while (p->fd >= 0 && !p->eof) {
            assert_true(p->len < sizeof(p->in));
            ssize_t n = read(p->fd, p->in + p->len, sizeof(p->in) - p->len);
            if (n > 0) {
                p->len += (size_t)n;
                p->reads++;
            } else if (n == 0 || errno == ECONNRESET) {
                p->eof = true;
            } else {
                assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
                break;
            }
        }
    }
}

/* One turn of a worker's loop (events, then tick and flush), then the server's turn. */
static void pump_once(void)
{
    struct epoll_event ev[8];
    int n = epoll_wait(E.epfd, ev, 8, 10);
    assert_true(n >= 0 || errno == EINTR);
    for (int i = 0; i < n; i++) {
        /* The worker's dispatch reads the kind first, from the pointer it registered. */
        assert_ptr_equal(ev[i].data.ptr, E.r);
        assert_int_equal(*(const int *)ev[i].data.ptr, KIND);
        pf_redis_on_events(E.r, ev[i].events, now_ms());
    }
    pf_redis_tick(E.r, now_ms());
    pf_redis_flush(E.r);
    server_step();
}

static void pump(int ms)
{
    int64_t until = now_ms() + ms;
    while (now_ms() < until)
        pump_once();
}

/* Pumps until cond holds (at most WAIT_MS), then asserts it. */
#define PUMP_UNTIL(cond)                                                                           \
    do {                                                                                           \
        int64_t until_ = now_ms() + WAIT_MS;                                                       \
        while (!(cond) && now_ms() < until_)                                                       \
            pump_once();                                                                           \
        assert_true(cond);                                                                         \
    } while (0)

static void server_send(int peer, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(E.peers[peer].fd, s + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

static void server_close(int peer)
{
    close(E.peers[peer].fd);
    E.peers[peer].fd = -1;
}

/* A reserved TCP port on 127.0.0.1: the socket is bound, listening or not. */
static int tcp_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* SERVE_NOTHING: a TCP port bound but not listening; SERVE_UNIX_LATER: a unix socket's
 * path with nothing there (yet); SERVE_QUEUE_FULL: a TCP listener whose accept queue is
 * full (backlog 0, one connection queued), so that a connect's SYN is dropped and the
 * connect stays in flight. */
enum server_mode { SERVE_TCP, SERVE_UNIX, SERVE_NOTHING, SERVE_UNIX_LATER, SERVE_QUEUE_FULL };

static int unix_listen(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    strcpy(su.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&su, sizeof(su)), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static void env_open(enum server_mode mode, uint32_t timeout_ms, uint32_t capacity)
{
    memset(&E, 0, sizeof(E));
    memset(defers, 0, sizeof(defers));
    E.fds_before = count_fds();
    E.lfd = E.reserved = E.filler = -1;
    if (mode == SERVE_UNIX || mode == SERVE_UNIX_LATER) {
        snprintf(E.unix_path, sizeof(E.unix_path), "/tmp/preforkd-redis-%ld.sock", (long)getpid());
        unlink(E.unix_path);
        if (mode == SERVE_UNIX)
            E.lfd = unix_listen(E.unix_path);
        snprintf(E.address, sizeof(E.address), "unix:%s", E.unix_path);
    } else {
        int port;
        int fd = tcp_socket(&port);
        if (mode == SERVE_TCP) {
            assert_int_equal(listen(fd, 16), 0);
            E.lfd = fd;
        } else if (mode == SERVE_QUEUE_FULL) {
            assert_int_equal(listen(fd, 0), 0);
            E.reserved = fd; /* not accepted from until the test says so */
            E.filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            assert_true(E.filler >= 0);
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                     .sin_port = htons((uint16_t)port)};
            assert_int_equal(connect(E.filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
        } else {
            E.reserved = fd; /* bound, not listening: a connect is refused */
        }
        snprintf(E.address, sizeof(E.address), "127.0.0.1:%d", port);
    }
    E.epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(E.epfd >= 0);
    struct pf_redis_options opt = {.address = E.address,
                                   .prefix = "t:",
                                   .timeout_ms = timeout_ms,
                                   .capacity = capacity,
                                   .epfd = E.epfd,
                                   .kind = KIND,
                                   .reply = on_reply,
                                   .owner = &E};
    assert_int_equal(pf_redis_new(&E.r, &opt, now_ms()), 0);
    assert_non_null(E.r);
}

/* Frees the module and the fake server: no descriptor may be left behind. */
static void env_close(void)
{
    pf_redis_free(&E.r);
    assert_null(E.r);
    pf_redis_free(&E.r); /* nothing to free: harmless */
    for (int i = 0; i < E.npeers; i++)
        if (E.peers[i].fd >= 0)
            server_close(i);
    if (E.lfd >= 0)
        close(E.lfd);
    if (E.reserved >= 0)
        close(E.reserved);
    if (E.filler >= 0)
        close(E.filler);
    close(E.epfd);
    if (E.unix_path[0])
        unlink(E.unix_path);
    assert_int_equal(count_fds(), E.fds_before);
}

static void env_connect(void)
{
    PUMP_UNTIL(pf_redis_connected(E.r) && E.npeers == 1);
    /* Connected, nothing waiting: no deadline. */
    assert_true(pf_redis_next_deadline(E.r) == INT64_MAX);
}

/* Pumps until peer has received exactly want (everything sent so far). */
static void expect_received(int peer, const char *want)
{
    size_t wl = strlen(want);
    PUMP_UNTIL(E.peers[peer].len >= wl);
    assert_int_equal(E.peers[peer].len, wl);
    assert_memory_equal(E.peers[peer].in, want, wl);
}

static void peer_consumed(int peer)
{
    E.peers[peer].len = 0;
    E.peers[peer].reads = 0;
}

#define CMD_HITS(n) "*3\r\n$6\r\nINCRBY\r\n$6\r\nt:hits\r\n$1\r\n" #n "\r\n"

/* ---- the cases ------------------------------------------------------------------------ */

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(pf_redis_backoff_ms(1), 100);
    assert_int_equal(pf_redis_backoff_ms(2), 200);
    assert_int_equal(pf_redis_backoff_ms(3), 400);
    assert_int_equal(pf_redis_backoff_ms(4), 800);
    assert_int_equal(pf_redis_backoff_ms(10), 5000);
    assert_int_equal(pf_redis_backoff_ms(1000), 5000);
    assert_int_equal(pf_redis_backoff_ms(UINT32_MAX), 5000);
    uint32_t prev = pf_redis_backoff_ms(1);
    for (uint32_t n = 2; n <= 64; n++) {
        uint32_t b = pf_redis_backoff_ms(n);
        assert_true(b >= prev);
        assert_true(b <= 5000);
        prev = b;
    }
}

static void test_bad_address(void **state)
{
    (void)state;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(epfd >= 0);
    const char *bad[] = {"127.0.0.1", "127.0.0.1:0", "localhost:6379", "unix:relative", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pf_redis_options opt = {.address = bad[i],
                                       .prefix = "t:",
                                       .timeout_ms = 100,
                                       .capacity = 1,
                                       .epfd = epfd,
                                       .kind = KIND,
                                       .reply = on_reply,
                                       .owner = &E};
        struct pf_redis *r = NULL;
        assert_int_equal(pf_redis_new(&r, &opt, now_ms()), -EINVAL);
        assert_null(r);
    }
    close(epfd);
}

static void round_trip(void)
{
    env_connect();
    struct pf_defer *d = &defers[0];
    d->seq = 7;
    assert_int_equal(pf_redis_incrby(E.r, d, "hits", 3, now_ms()), 0);
    /* Queued, not yet written: the end of the loop turn writes it. */
    assert_true(pf_redis_next_deadline(E.r) != INT64_MAX);
    assert_true(pf_redis_next_deadline(E.r) <= now_ms() + 60000);
    expect_received(0, CMD_HITS(3));
    d->seq = 8; /* the defer moved on: the reply still tells the seq it was sent with */
    /* The reply in two pieces: nothing until it is whole. */
    server_send(0, ":4");
    pump(50);
    assert_int_equal(E.nreplies, 0);
    server_send(0, "2\r\n");
    PUMP_UNTIL(E.nreplies == 1);
    assert_ptr_equal(E.replies[0].d, d);
    assert_int_equal(E.replies[0].seq, 7);
    assert_int_equal(E.replies[0].value, 42);
    assert_int_equal(E.replies[0].err, 0);
    assert_true(pf_redis_connected(E.r));
    assert_true(pf_redis_next_deadline(E.r) == INT64_MAX);
    /* A large delta, its decimal digits as they are. */
    assert_int_equal(pf_redis_incrby(E.r, d, "hits", UINT64_C(18446744073709551615), now_ms()), 0);
    expect_received(0, CMD_HITS(3) "*3\r\n$6\r\nINCRBY\r\n$6\r\nt:hits\r\n$20\r\n"
                                   "18446744073709551615\r\n");
    server_send(0, ":9223372036854775807\r\n");
    PUMP_UNTIL(E.nreplies == 2);
    assert_int_equal(E.replies[1].value, INT64_MAX);
    assert_int_equal(E.replies[1].err, 0);
    assert_int_equal(E.replies[1].seq, 8);
    assert_int_equal(E.npeers, 1); /* one connection for all of it */
}

static void test_incrby_round_trip(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 5000, 16);
    round_trip();
    env_close();
}

static void test_unix_socket_round_trip(void **state)
{
    (void)state;
    env_open(SERVE_UNIX, 5000, 16);
    round_trip();
    env_close();
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 5000, 16);
    env_connect();
    for (uint32_t i = 0; i < 3; i++) {
        defers[i].seq = 100 + i;
        assert_int_equal(pf_redis_incrby(E.r, &defers[i], "hits", i + 1, now_ms()), 0);
    }
    /* Nothing is written before the turn ends... */
    usleep(20 * 1000);
    server_step();
    assert_int_equal(E.peers[0].len, 0);
    /* ...and then the three go in one write: in order, in one read. */
    pf_redis_flush(E.r);
    expect_received(0, CMD_HITS(1) CMD_HITS(2) CMD_HITS(3));
    assert_int_equal(E.peers[0].reads, 1);
    server_send(0, ":1\r\n:2\r\n:3\r\n");
    PUMP_UNTIL(E.nreplies == 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_ptr_equal(E.replies[i].d, &defers[i]);
        assert_int_equal(E.replies[i].seq, 100 + i);
        assert_int_equal(E.replies[i].value, i + 1);
        assert_int_equal(E.replies[i].err, 0);
    }
    env_close();
}

static void test_error_reply(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 5000, 16);
    env_connect();
    defers[0].seq = 1;
    assert_int_equal(pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms()), 0);
    expect_received(0, CMD_HITS(1));
    server_send(0, "-ERR wrong\r\n");
    PUMP_UNTIL(E.nreplies == 1);
    assert_ptr_equal(E.replies[0].d, &defers[0]);
    assert_int_equal(E.replies[0].err, -EPROTO);
    assert_int_equal(E.replies[0].value, 0);

    /* Other replies that are not a counter's value: negative, not an integer. */
    peer_consumed(0);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(pf_redis_incrby(E.r, &defers[i], "hits", 1, now_ms()), 0);
    expect_received(0, CMD_HITS(1) CMD_HITS(1) CMD_HITS(1));
    server_send(0, ":-1\r\n+OK\r\n$2\r\n12\r\n");
    PUMP_UNTIL(E.nreplies == 4);
    for (int i = 1; i <= 3; i++) {
        assert_ptr_equal(E.replies[i].d, &defers[i]);
        assert_int_equal(E.replies[i].err, -EPROTO);
    }

    /* The connection stays: an error is Redis' answer, not a failure of the link. */
    assert_true(pf_redis_connected(E.r));
    peer_consumed(0);
    assert_int_equal(pf_redis_incrby(E.r, &defers[4], "hits", 2, now_ms()), 0);
    expect_received(0, CMD_HITS(2));
    server_send(0, ":5\r\n");
    PUMP_UNTIL(E.nreplies == 5);
    assert_int_equal(E.replies[4].value, 5);
    assert_int_equal(E.replies[4].err, 0);
    assert_int_equal(E.npeers, 1);
    env_close();
}

static void test_timeout_drops_and_reconnects(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 200, 16);
    env_connect();
    defers[0].seq = 11;
    defers[1].seq = 12;
    assert_int_equal(pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms()), 0);
    assert_int_equal(pf_redis_incrby(E.r, &defers[1], "hits", 2, now_ms()), 0);
    expect_received(0, CMD_HITS(1) CMD_HITS(2));
    /* No answer: both are answered -ETIMEDOUT, in order, and the connection is dropped. */
    PUMP_UNTIL(E.nreplies >= 1);
    assert_int_equal(E.nreplies, 2);
    for (int i = 0; i < 2; i++) {
        assert_ptr_equal(E.replies[i].d, &defers[i]);
        assert_int_equal(E.replies[i].seq, defers[i].seq);
        assert_int_equal(E.replies[i].err, -ETIMEDOUT);
    }
    assert_false(pf_redis_connected(E.r));
    assert_int_equal(pf_redis_incrby(E.r, &defers[2], "hits", 1, now_ms()), -ENOTCONN);
    /* A reconnect is due, within the longest backoff. */
    int64_t due = pf_redis_next_deadline(E.r);
    assert_true(due != INT64_MAX && due <= now_ms() + 5000);
    PUMP_UNTIL(E.peers[0].eof); /* the module closed the connection it gave up on */

    /* Connected again, to a new connection, which works. */
    PUMP_UNTIL(E.npeers == 2 && pf_redis_connected(E.r));
    assert_int_equal(E.nreplies, 2);
    assert_int_equal(pf_redis_incrby(E.r, &defers[3], "hits", 3, now_ms()), 0);
    expect_received(1, CMD_HITS(3));
    server_send(1, ":77\r\n");
    PUMP_UNTIL(E.nreplies == 3);
    assert_ptr_equal(E.replies[2].d, &defers[3]);
    assert_int_equal(E.replies[2].value, 77);
    assert_int_equal(E.replies[2].err, 0);
    /* A late answer on the old connection reaches no one: it is closed. */
    server_send(0, ":1\r\n:2\r\n");
    pump(50);
    assert_int_equal(E.nreplies, 3);
    env_close();
}

static void test_server_close_resets_and_reconnects(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 5000, 16);
    env_connect();
    defers[0].seq = 21;
    assert_int_equal(pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms()), 0);
    expect_received(0, CMD_HITS(1));
    server_close(0);
    PUMP_UNTIL(E.nreplies == 1);
    assert_ptr_equal(E.replies[0].d, &defers[0]);
    assert_int_equal(E.replies[0].seq, 21);
    assert_int_equal(E.replies[0].err, -ECONNRESET);
    assert_false(pf_redis_connected(E.r));
    assert_int_equal(pf_redis_incrby(E.r, &defers[1], "hits", 1, now_ms()), -ENOTCONN);
    int64_t due = pf_redis_next_deadline(E.r);
    assert_true(due != INT64_MAX && due <= now_ms() + 5000);

    PUMP_UNTIL(E.npeers == 2 && pf_redis_connected(E.r));
    assert_int_equal(pf_redis_incrby(E.r, &defers[2], "hits", 2, now_ms()), 0);
    expect_received(1, CMD_HITS(2));
    server_send(1, ":5\r\n");
    PUMP_UNTIL(E.nreplies == 2);
    assert_ptr_equal(E.replies[1].d, &defers[2]);
    assert_int_equal(E.replies[1].value, 5);
    assert_int_equal(E.replies[1].err, 0);

    /* Closed while idle: nothing waits, so nothing is answered; it reconnects. */
    server_close(1);
    PUMP_UNTIL(!pf_redis_connected(E.r));
    PUMP_UNTIL(E.npeers == 3 && pf_redis_connected(E.r));
    assert_int_equal(E.nreplies, 2);
    env_close();
}

static void test_nothing_listening(void **state)
{
    (void)state;
    env_open(SERVE_NOTHING, 200, 16);
    /* A command fails at once after the refused connect is seen; one sent while the
     * connect was still in flight is answered with an error. */
    int rc = 0;
    int sent = 0;
    int64_t until = now_ms() + WAIT_MS;
    while (now_ms() < until) {
        rc = pf_redis_incrby(E.r, &defers[sent], "hits", 1, now_ms());
        if (rc == -ENOTCONN)
            break;
        assert_int_equal(rc, 0);
        assert_true(++sent < 40);
        pump_once();
    }
    assert_int_equal(rc, -ENOTCONN);
    assert_false(pf_redis_connected(E.r));
    int64_t due = pf_redis_next_deadline(E.r);
    assert_true(due != INT64_MAX && due <= now_ms() + 5000);
    PUMP_UNTIL(E.nreplies == (size_t)sent);
    for (size_t i = 0; i < E.nreplies; i++)
        assert_true(E.replies[i].err < 0);

    /* Refused again and again, without harm. */
    pump(300);
    assert_false(pf_redis_connected(E.r));
    assert_true(pf_redis_next_deadline(E.r) != INT64_MAX);

    /* The store comes up: it is used again after the backoff. */
    assert_int_equal(listen(E.reserved, 16), 0);
    E.lfd = E.reserved;
    E.reserved = -1;
    PUMP_UNTIL(pf_redis_connected(E.r) && E.npeers == 1);
    size_t before = E.nreplies;
    assert_int_equal(pf_redis_incrby(E.r, &defers[50], "hits", 3, now_ms()), 0);
    expect_received(0, CMD_HITS(3));
    server_send(0, ":1\r\n");
    PUMP_UNTIL(E.nreplies == before + 1);
    assert_ptr_equal(E.replies[before].d, &defers[50]);
    assert_int_equal(E.replies[before].err, 0);
    assert_int_equal(E.replies[before].value, 1);
    env_close();
}

/* A connect that fails at once (no socket at the path): the same, without a connect in
 * flight. */
static void test_unix_socket_appears(void **state)
{
    (void)state;
    env_open(SERVE_UNIX_LATER, 200, 16);
    assert_false(pf_redis_connected(E.r));
    assert_int_equal(pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms()), -ENOTCONN);
    int64_t due = pf_redis_next_deadline(E.r);
    assert_true(due != INT64_MAX && due <= now_ms() + 5000);
    pump(250); /* a few more attempts */
    assert_false(pf_redis_connected(E.r));
    assert_int_equal(E.nreplies, 0);

    E.lfd = unix_listen(E.unix_path);
    PUMP_UNTIL(pf_redis_connected(E.r) && E.npeers == 1);
    assert_int_equal(pf_redis_incrby(E.r, &defers[1], "hits", 2, now_ms()), 0);
    expect_received(0, CMD_HITS(2));
    server_send(0, ":3\r\n");
    PUMP_UNTIL(E.nreplies == 1);
    assert_ptr_equal(E.replies[0].d, &defers[1]);
    assert_int_equal(E.replies[0].value, 3);
    assert_int_equal(E.replies[0].err, 0);
    env_close();
}

/* A connect that never completes: the module's SYN is dropped by a full accept queue. */
static void test_connect_timeout(void **state)
{
    (void)state;
    env_open(SERVE_QUEUE_FULL, 200, 16);
    /* The attempt is given up on at its deadline, and another is scheduled. */
    int64_t first = pf_redis_next_deadline(E.r);
    assert_true(first != INT64_MAX && first <= now_ms() + 200);
    PUMP_UNTIL(pf_redis_next_deadline(E.r) > first);
    assert_false(pf_redis_connected(E.r));

    /* A command taken while a connect is in flight waits to be sent once connected; the
     * connect's deadline answers it. */
    defers[0].seq = 5;
    int rc = -ENOTCONN;
    int64_t until = now_ms() + WAIT_MS;
    while (rc == -ENOTCONN && now_ms() < until) {
        pump_once();
        rc = pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms());
    }
    assert_int_equal(rc, 0);
    assert_false(pf_redis_connected(E.r));
    assert_true(pf_redis_next_deadline(E.r) != INT64_MAX);
    PUMP_UNTIL(E.nreplies == 1);
    assert_ptr_equal(E.replies[0].d, &defers[0]);
    assert_int_equal(E.replies[0].seq, 5);
    assert_int_equal(E.replies[0].err, -ETIMEDOUT);
    assert_false(pf_redis_connected(E.r));
    assert_int_equal(pf_redis_incrby(E.r, &defers[1], "hits", 1, now_ms()), -ENOTCONN);
    int64_t due = pf_redis_next_deadline(E.r);
    assert_true(due != INT64_MAX && due <= now_ms() + 5000);

    /* Room in the queue again: a later attempt connects. */
    close(E.filler);
    E.filler = -1;
    int q = accept4(E.reserved, NULL, NULL, SOCK_CLOEXEC);
    assert_true(q >= 0);
    close(q);
    E.lfd = E.reserved;
    E.reserved = -1;
    PUMP_UNTIL(pf_redis_connected(E.r) && E.npeers >= 1);
    int last = E.npeers - 1; /* an attempt given up on may have been queued before it */
    assert_int_equal(pf_redis_incrby(E.r, &defers[2], "hits", 2, now_ms()), 0);
    expect_received(last, CMD_HITS(2));
    server_send(last, ":8\r\n");
    PUMP_UNTIL(E.nreplies == 2);
    assert_ptr_equal(E.replies[1].d, &defers[2]);
    assert_int_equal(E.replies[1].value, 8);
    assert_int_equal(E.replies[1].err, 0);
    env_close();
}

static void test_capacity(void **state)
{
    (void)state;
    env_open(SERVE_TCP, 5000, 3); /* rounded up to 64 */
    env_connect();
    /* A few first, answered, so that the full ring below wraps around. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(pf_redis_incrby(E.r, &defers[70], "hits", 1, now_ms()), 0);
    PUMP_UNTIL(E.peers[0].len == 10 * strlen(CMD_HITS(1)));
    for (int i = 0; i < 10; i++)
        server_send(0, ":0\r\n");
    PUMP_UNTIL(E.nreplies == 10);
    E.nreplies = 0;
    peer_consumed(0);

    for (uint32_t i = 0; i < 64; i++) {
        defers[i].seq = 1000 + i;
        assert_int_equal(pf_redis_incrby(E.r, &defers[i], "hits", 1, now_ms()), 0);
    }
    assert_int_equal(pf_redis_incrby(E.r, &defers[64], "hits", 1, now_ms()), -ENOBUFS);
    PUMP_UNTIL(E.peers[0].len == 64 * strlen(CMD_HITS(1)));
    assert_int_equal(pf_redis_incrby(E.r, &defers[64], "hits", 1, now_ms()), -ENOBUFS);
    for (int i = 0; i < 64; i++) {
        char s[32];
        snprintf(s, sizeof(s), ":%d\r\n", i + 1);
        server_send(0, s);
    }
    PUMP_UNTIL(E.nreplies == 64);
    for (uint32_t i = 0; i < 64; i++) {
        assert_ptr_equal(E.replies[i].d, &defers[i]);
        assert_int_equal(E.replies[i].seq, 1000 + i);
        assert_int_equal(E.replies[i].value, i + 1);
        assert_int_equal(E.replies[i].err, 0);
    }
    /* Room again. */
    assert_int_equal(pf_redis_incrby(E.r, &defers[64], "hits", 1, now_ms()), 0);
    env_close();
    assert_int_equal(E.nreplies, 65);
    assert_int_equal(E.replies[64].err, -ECONNRESET);
}

static void test_free_answers_waiting(void **state)
{
    (void)state;
    /* Sent and waiting for replies. */
    env_open(SERVE_TCP, 5000, 16);
    env_connect();
    for (uint32_t i = 0; i < 3; i++) {
        defers[i].seq = 300 + i;
        assert_int_equal(pf_redis_incrby(E.r, &defers[i], "hits", 1, now_ms()), 0);
    }
    expect_received(0, CMD_HITS(1) CMD_HITS(1) CMD_HITS(1));
    /* Queued in this turn, not yet written. */
    defers[3].seq = 303;
    assert_int_equal(pf_redis_incrby(E.r, &defers[3], "hits", 1, now_ms()), 0);
    env_close();
    assert_int_equal(E.nreplies, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_ptr_equal(E.replies[i].d, &defers[i]);
        assert_int_equal(E.replies[i].seq, 300 + i);
        assert_int_equal(E.replies[i].err, -ECONNRESET);
    }

    /* Still connecting: the command waits for the connection, and is answered too. */
    env_open(SERVE_TCP, 5000, 16);
    int rc = pf_redis_incrby(E.r, &defers[0], "hits", 1, now_ms());
    assert_true(rc == 0 || rc == -ENOTCONN);
    env_close();
    assert_int_equal(E.nreplies, rc == 0 ? 1 : 0);
    if (rc == 0)
        assert_int_equal(E.replies[0].err, -ECONNRESET);
}

int main(void)
{
    pf_log_set_level(PF_LOG_ERROR); /* the module's warnings about the outages made here */
    signal(SIGPIPE, SIG_IGN);       /* as in a worker: a closed peer is an EPIPE */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_incrby_round_trip),
        cmocka_unit_test(test_unix_socket_round_trip),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_timeout_drops_and_reconnects),
        cmocka_unit_test(test_server_close_resets_and_reconnects),
        cmocka_unit_test(test_nothing_listening),
        cmocka_unit_test(test_unix_socket_appears),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_free_answers_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
