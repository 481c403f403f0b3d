#ifndef PREFORKD_REDIS_H
#define PREFORKD_REDIS_H

#include <stdbool.h>
#include <stdint.h>

/* A worker's connection to Redis, the shared counters' store when shared.backend is
 * redis: hiredis's asynchronous API driven by the worker's own epoll loop (the adapter is
 * here), so no call blocks and no thread is added. Commands are pipelined on the one
 * connection; their replies come back in order, each to the deferred answer that sent it.
 *
 * Failures cost only the routes that need the store: a command not answered within
 * shared.timeout, a lost connection or a refused connect each answer what waits with an
 * error at once, drop the connection, and connect again after a backoff
 * (pf_redis_backoff_ms); while there is no connection, a command fails at once. */

struct pf_defer;
struct pf_redis;

/* Where a reply goes: the deferred answer d, which sent it while its seq was seq (it is
 * stale when d->seq has moved on). err is 0 (value holds the reply), or -ETIMEDOUT,
 * -ECONNRESET (connection lost) or -EPROTO (Redis answered with an error). */
typedef void (*pf_redis_reply_fn)(void *owner, struct pf_defer *d, uint32_t seq, uint64_t value,
                                  int err);

struct pf_redis_options {
    const char *address; /* HOST:PORT, [IPV6]:PORT or unix:/PATH */
    const char *prefix;  /* prepended to a counter's name to make its key */
    uint32_t timeout_ms;
    uint32_t capacity; /* commands that may wait at once; more fail with -ENOBUFS */
    int epfd;          /* the worker's epoll */
    int kind;          /* the value the worker's dispatch finds first in the epoll source */
    pf_redis_reply_fn reply;
    void *owner;
};

/* Starts connecting (non-blocking). 0, or negative errno (a bad address, no memory). */
int pf_redis_new(struct pf_redis **out, const struct pf_redis_options *opt, int64_t now_ms);
/* Frees the connection; whatever waits gets -ECONNRESET first. */
void pf_redis_free(struct pf_redis **r);

/* INCRBY prefix+name delta, its reply to d. 0: queued (it is written by pf_redis_flush,
 * or once a connect under way completes; its deadline runs from now either way);
 * -ENOTCONN: no connection, none being made; -ENOBUFS: capacity commands wait already. */
int pf_redis_incrby(struct pf_redis *r, struct pf_defer *d, const char *name, uint64_t delta,
                    int64_t now_ms);

/* The epoll source's events, at now_ms. */
void pf_redis_on_events(struct pf_redis *r, uint32_t events, int64_t now_ms);
/* At the end of each loop turn: writes the commands queued during it, in one send. */
void pf_redis_flush(struct pf_redis *r);
/* Timeouts and reconnects due by now_ms. */
void pf_redis_tick(struct pf_redis *r, int64_t now_ms);
/* When pf_redis_tick has something to do next; INT64_MAX: nothing. */
int64_t pf_redis_next_deadline(const struct pf_redis *r);
bool pf_redis_connected(const struct pf_redis *r);

/* The wait before connect attempt n + 1 after n failures in a row (n >= 1; a connection
 * counts as a success only once a reply has come on it): 100 ms
 * doubling up to 5 s, so that a store that is down costs a worker a connect attempt now
 * and then, and one that comes back is used again within seconds. */
uint32_t pf_redis_backoff_ms(uint32_t failures);

#endif
