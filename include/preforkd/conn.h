#ifndef PREFORKD_CONN_H
#define PREFORKD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "preforkd/config.h"
#include "preforkd/handlers.h"
#include "preforkd/http.h"
#include "preforkd/proxy.h"
#include "preforkd/scoreboard.h"

struct pf_access_log;

/* Read 4 KiB at a time; llhttp is incremental, so this bounds nothing but one read.
 * Responses of one read are gathered in 16 KiB and sent with one send(): enough for
 * ~70 pipelined answers; past that the connection sends and carries on. */
#define PF_CONN_RBUF 4096
#define PF_CONN_WBUF 16384
/* How long a closing connection drains what the client still sends, so the close does not
 * turn into a RST that destroys the response in flight. */
#define PF_CONN_LINGER_MS 2000

enum pf_conn_state { PF_CONN_OPEN, PF_CONN_LINGER };

/* What a connection needs from its worker. */
struct pf_conn_env {
    struct pf_handler_ctx *ctx;
    const struct pf_config *cfg;
    bool draining; /* answer what was read with "close"; close idle connections soon */
    uint32_t drain_idle_ms;
    uint64_t requests;
    struct pf_scoreboard_row *row;    /* this worker's scoreboard row (may be NULL) */
    struct pf_access_log *access_log; /* NULL when off */
};

struct pf_conn {
    int kind; /* first: see the assertion below */
    int fd;
    enum pf_conn_state state;
    bool readable;         /* the socket may hold unread bytes (edge-triggered epoll) */
    bool peer_closed;      /* EPOLLRDHUP seen: read on until 0 */
    bool closing;          /* close once the output is flushed */
    bool linger;           /* the client may still be sending: drain before closing */
    bool waiting;          /* an answer waits for the shared store: nothing more is parsed */
    struct pf_defer defer; /* that answer (its seq outlives the connection's reuse) */
    /* The store's reply, kept until the worker's loop turn ends (a reply is read while
     * other connections' events of the same turn are still to be handled, so the
     * connection is neither answered nor closed from inside it). */
    bool store_ready;
    int store_err;
    uint32_t store_seq;
    uint64_t store_value;
    struct pf_conn *store_next;
    int64_t last_ms;    /* last byte received or sent */
    int64_t request_ms; /* first byte of the request being read */
    int64_t body_ms;    /* head complete, body being read since (0: not yet) */
    struct pf_conn *prev, *next;
    uint32_t rpos, rlen;
    uint32_t wpos, wlen;
    char *ext; /* a large body (/metrics) to send after wbuf, then free */
    size_t ext_len, ext_pos;
    int file_fd; /* a file body (static files) to sendfile after wbuf, then close */
    off_t file_off;
    uint64_t file_left;
    /* Not off: the PROXY header of that version is still to come, before any HTTP; its
     * bytes gather at the start of rbuf, and it must be whole within timeouts.header. */
    enum pf_proxy_version proxy;
    struct sockaddr_storage peer_addr; /* the client: from accept4, or the PROXY header */
    socklen_t peer_len;
    char peer[48]; /* client address as text, kept only for the access log */
    struct pf_http http;
    char rbuf[PF_CONN_RBUF];
    char wbuf[PF_CONN_WBUF];
};

/* The worker's epoll dispatch reads `kind` through a pointer to any event source. */
_Static_assert(offsetof(struct pf_conn, kind) == 0, "kind is the first member of pf_conn");
/* A PROXY header always fits the input buffer, whole. */
_Static_assert(PF_PROXY_V2_MAX <= PF_CONN_RBUF && PF_PROXY_V1_MAX <= PF_CONN_RBUF,
               "a PROXY header fits the input buffer");
/* Answers are built in place: the output buffer always has room for one more. */
_Static_assert(PF_CONN_WBUF >= 2 * PF_RESPONSE_MAX, "the output buffer holds two answers");

enum pf_conn_verdict { PF_CONN_KEEP, PF_CONN_CLOSE };

void pf_conn_init(struct pf_conn *c, int fd, const struct pf_config *cfg,
                  struct pf_handler_ctx *ctx, int64_t now_ms);
/* The client's address (its text too, when the access log wants it). */
void pf_conn_set_peer(struct pf_conn *c, const struct sockaddr *peer, socklen_t len);
/* The connection's listener expects a PROXY header of version v first (off: none). A
 * missing, malformed or truncated one closes the connection without an answer. */
void pf_conn_expect_proxy(struct pf_conn *c, enum pf_proxy_version v);
/* Handles epoll events (EPOLLIN/OUT/RDHUP/ERR/HUP) for the connection. */
enum pf_conn_verdict pf_conn_on_events(struct pf_conn *c, uint32_t events, struct pf_conn_env *env);
/* The shared store's reply for the answer this connection waits for, sent while
 * c->defer.seq was seq (a stale one, for a connection since closed or reused, changes
 * nothing). Finishes the answer and goes on with what follows it. */
enum pf_conn_verdict pf_conn_resume(struct pf_conn *c, struct pf_conn_env *env, uint32_t seq,
                                    uint64_t value, int err);
/* Called about once a second: applies the keep-alive, request-head, send and linger
 * timeouts. */
enum pf_conn_verdict pf_conn_on_tick(struct pf_conn *c, struct pf_conn_env *env);
/* Frees what the connection holds besides its struct (call before recycling it). */
void pf_conn_release(struct pf_conn *c);

#endif
