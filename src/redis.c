#include "preforkd/redis.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "preforkd/config.h"
#include "preforkd/handlers.h"
#include "preforkd/log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   5000

/* One command on the wire, waiting for its reply: replies come in the order commands were
 * sent, so the oldest is at head and its deadline is the earliest. */
struct waiting {
    struct pf_defer *d;
    uint32_t seq;
    int64_t deadline_ms;
};

struct pf_redis {
    int kind; /* first: the worker's epoll dispatch reads it */
    int epfd;
    char host[256];
    int port; /* -1: host is a unix socket's path */
    char address[256];
    char prefix[64];
    uint32_t timeout_ms;
    pf_redis_reply_fn reply;
    void *owner;

    redisAsyncContext *ac; /* NULL: not connected, reconnect_at says when to try */
    bool connected;        /* the connect completed */
    int64_t connect_deadline_ms;
    int64_t reconnect_at_ms;
    uint32_t failures; /* connects failed or connections lost in a row */
    bool down_logged;  /* this outage was logged (once, not per attempt) */
    int fail_err;      /* what the replies of a connection we drop now tell */
    int64_t now_ms;    /* the worker's clock at the last call: callbacks have no time */

    /* The adapter's state: what hiredis asked for, what epoll has. */
    bool want_read, want_write, out_armed;
    uint32_t registered; /* the epoll mask the fd has; 0: not in epoll */

    struct waiting *ring;
    uint32_t cap, head, count;
};

uint32_t pf_redis_backoff_ms(uint32_t failures)
{
    if (failures == 0)
        return 0;
    uint64_t ms = BACKOFF_FIRST_MS;
    for (uint32_t i = 1; i < failures && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BACKOFF_MAX_MS ? (uint32_t)ms : BACKOFF_MAX_MS;
}

static void unwatch(struct pf_redis *r);

/* ---- the hiredis adapter: the worker's epoll instead of an event library ------------- */

static void update_epoll(struct pf_redis *r)
{
    if (!r->ac)
        return;
    uint32_t mask = (r->want_read ? EPOLLIN : 0) | (r->out_armed ? EPOLLOUT : 0);
    if (mask == r->registered)
        return;
    struct epoll_event ev = {.events = mask, .data.ptr = r};
    int op = r->registered == 0 ? EPOLL_CTL_ADD : mask == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(r->epfd, op, r->ac->c.fd, &ev) < 0) {
        /* Only for a descriptor epoll cannot watch, which a socket always can: say so;
         * the command deadline then drops the connection. */
        pf_log_error("redis: epoll_ctl: %s", strerror(errno));
        return;
    }
    r->registered = mask;
}

static void ev_add_read(void *p)
{
    struct pf_redis *r = p;
    r->want_read = true;
    update_epoll(r);
}

static void ev_del_read(void *p)
{
    struct pf_redis *r = p;
    r->want_read = false;
    update_epoll(r);
}

/* Not a system call: the commands of one loop turn are written together at its end
 * (pf_redis_flush), and EPOLLOUT is watched only while the socket is full. */
static void ev_add_write(void *p)
{
    struct pf_redis *r = p;
    r->want_write = true;
}

static void ev_del_write(void *p)
{
    struct pf_redis *r = p;
    r->want_write = false;
    if (r->out_armed) {
        r->out_armed = false;
        update_epoll(r);
    }
}

static void ev_cleanup(void *p)
{
    struct pf_redis *r = p;
    unwatch(r);
    r->want_read = r->want_write = r->out_armed = false;
}

/* ---- the connection ------------------------------------------------------------------ */

/* Out of the worker's epoll now, while the descriptor is still ours to name: a close()
 * alone would leave it there if some other process held a copy. */
static void unwatch(struct pf_redis *r)
{
    if (r->ac && r->registered) {
        struct epoll_event ev = {0};
        if (epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->ac->c.fd, &ev) < 0)
            pf_log_error("redis: epoll_ctl: %s", strerror(errno));
    }
    r->registered = 0;
}

static void lost(struct pf_redis *r, int64_t now_ms, const char *why)
{
    unwatch(r);
    r->ac = NULL; /* hiredis frees it */
    r->connected = false;
    r->registered = 0;
    r->want_read = r->want_write = r->out_armed = false;
    r->failures++;
    r->reconnect_at_ms = now_ms + pf_redis_backoff_ms(r->failures);
    if (!r->down_logged) {
        pf_log_warn("redis %s: %s; routes that need it answer 503 until it is back", r->address,
                    why);
        r->down_logged = true;
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct pf_redis *r = ac->ev.data;
    if (status != REDIS_OK) {
        lost(r, r->now_ms, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    r->connected = true;
    /* failures goes back to 0 at the first reply, not here: a Redis that accepts and
     * then hangs or closes is tried again with the growing backoff. */
    if (r->down_logged)
        pf_log_info("redis %s: connected again", r->address);
    r->down_logged = false;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct pf_redis *r = ac->ev.data;
    if (r->ac != ac)
        return; /* we dropped it ourselves, and said so */
    lost(r, r->now_ms, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    struct pf_redis *r = ac->ev.data;
    assert(r->count > 0); /* one ring entry per command sent */
    struct waiting w = r->ring[r->head];
    r->head = (r->head + 1) & (r->cap - 1);
    r->count--;
    const redisReply *rep = reply;
    if (!rep)
        r->reply(r->owner, w.d, w.seq, 0, r->fail_err ? r->fail_err : -ECONNRESET);
    else if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0) {
        r->failures = 0;
        r->reply(r->owner, w.d, w.seq, (uint64_t)rep->integer, 0);
    } else {
        pf_log_warn("redis %s: unexpected reply%s%.*s", r->address,
                    rep->type == REDIS_REPLY_ERROR ? ": " : "",
                    rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 0, rep->str ? rep->str : "");
        r->reply(r->owner, w.d, w.seq, 0, -EPROTO);
    }
}

static void connect_now(struct pf_redis *r, int64_t now_ms)
{
    redisAsyncContext *ac =
        r->port < 0 ? redisAsyncConnectUnix(r->host) : redisAsyncConnect(r->host, r->port);
    if (!ac) {
        r->failures++;
        r->reconnect_at_ms = now_ms + pf_redis_backoff_ms(r->failures);
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        r->ac = NULL;
        lost(r, now_ms, why);
        return;
    }
    /* hiredis makes its socket without close-on-exec; every other descriptor of a worker
     * has it, and a module that starts a program must not pass this one on. */
    if (fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC) < 0)
        pf_log_warn("redis: cannot set close-on-exec: %s", strerror(errno));
    r->ac = ac;
    r->connected = false;
    r->fail_err = 0;
    r->connect_deadline_ms = now_ms + r->timeout_ms;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* hiredis has asked for write readiness to learn when the connect completes: that
     * one is waited for in epoll, not tried at the end of the turn. */
    r->want_read = true;
    r->out_armed = true;
    update_epoll(r);
}

/* Drops the connection now: everything waiting is answered with err. */
static void drop(struct pf_redis *r, int err, int64_t now_ms, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    r->fail_err = err;
    lost(r, now_ms, why); /* r->ac = NULL first: on_disconnect then knows it was us */
    redisAsyncFree(ac);   /* calls on_reply with NULL for each waiting command */
    r->fail_err = 0;
}

int pf_redis_new(struct pf_redis **out, const struct pf_redis_options *opt, int64_t now_ms)
{
    struct pf_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->kind = opt->kind;
    r->epfd = opt->epfd;
    if (pf_config_parse_store_address(opt->address, r->host, sizeof(r->host), &r->port) < 0) {
        free(r);
        return -EINVAL;
    }
    snprintf(r->address, sizeof(r->address), "%s", opt->address);
    snprintf(r->prefix, sizeof(r->prefix), "%s", opt->prefix);
    r->timeout_ms = opt->timeout_ms;
    r->reply = opt->reply;
    r->owner = opt->owner;
    uint32_t cap = 64;
    while (cap < opt->capacity && cap < (1u << 20))
        cap *= 2;
    r->cap = cap;
    r->ring = calloc(cap, sizeof(*r->ring));
    if (!r->ring) {
        free(r);
        return -ENOMEM;
    }
    r->now_ms = now_ms;
    connect_now(r, now_ms);
    *out = r;
    return 0;
}

void pf_redis_free(struct pf_redis **rp)
{
    struct pf_redis *r = *rp;
    if (!r)
        return;
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        unwatch(r);
        r->ac = NULL;
        r->fail_err = -ECONNRESET;
        redisAsyncFree(ac);
    }
    free(r->ring);
    free(r);
    *rp = NULL;
}

bool pf_redis_connected(const struct pf_redis *r)
{
    return r->ac && r->connected;
}

int pf_redis_incrby(struct pf_redis *r, struct pf_defer *d, const char *name, uint64_t delta,
                    int64_t now_ms)
{
    r->now_ms = now_ms;
    if (!r->ac)
        return -ENOTCONN;
    if (r->count == r->cap)
        return -ENOBUFS;
    /* The command in Redis' protocol, built here rather than by hiredis' printf-like
     * formatter. */
    char cmd[256], num[24];
    int nl = snprintf(num, sizeof(num), "%" PRIu64, delta);
    size_t kl = strlen(r->prefix) + strlen(name);
    int n = snprintf(cmd, sizeof(cmd), "*3\r\n$6\r\nINCRBY\r\n$%zu\r\n%s%s\r\n$%d\r\n%s\r\n", kl,
                     r->prefix, name, nl, num);
    assert(n > 0 && (size_t)n < sizeof(cmd)); /* prefix < 64, name < 64 bytes */
    if (redisAsyncFormattedCommand(r->ac, on_reply, NULL, cmd, (size_t)n) != REDIS_OK)
        return -ENOTCONN;
    r->ring[(r->head + r->count) & (r->cap - 1)] =
        (struct waiting){.d = d, .seq = d->seq, .deadline_ms = now_ms + r->timeout_ms};
    r->count++;
    return 0;
}

void pf_redis_on_events(struct pf_redis *r, uint32_t events, int64_t now_ms)
{
    r->now_ms = now_ms; /* a connection lost here schedules its reconnect from now */
    if (r->ac && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (r->out_armed || !r->connected))
        redisAsyncHandleWrite(r->ac); /* may free r->ac: the callbacks say so */
    if (r->ac && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(r->ac);
}

void pf_redis_flush(struct pf_redis *r)
{
    if (!r->ac || !r->want_write || r->out_armed || !r->connected)
        return;
    redisAsyncHandleWrite(r->ac);
    if (r->ac && r->want_write && !r->out_armed) {
        /* The socket is full: the rest goes when epoll says it can. */
        r->out_armed = true;
        update_epoll(r);
    }
}

void pf_redis_tick(struct pf_redis *r, int64_t now_ms)
{
    r->now_ms = now_ms;
    if (!r->ac) {
        if (now_ms >= r->reconnect_at_ms)
            connect_now(r, now_ms);
        return;
    }
    if (!r->connected && now_ms >= r->connect_deadline_ms) {
        drop(r, -ETIMEDOUT, now_ms, "connect timed out");
        return;
    }
    if (r->count && now_ms >= r->ring[r->head].deadline_ms)
        drop(r, -ETIMEDOUT, now_ms, "no reply within shared.timeout");
}

int64_t pf_redis_next_deadline(const struct pf_redis *r)
{
    if (!r->ac)
        return r->reconnect_at_ms;
    int64_t t = INT64_MAX;
    if (!r->connected)
        t = r->connect_deadline_ms;
    if (r->count && r->ring[r->head].deadline_ms < t)
        t = r->ring[r->head].deadline_ms;
    return t;
}
