#include "preforkd/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preforkd/accesslog.h"
#include "preforkd/log.h"

void pf_conn_init(struct pf_conn *c, int fd, const struct pf_config *cfg,
                  struct pf_handler_ctx *ctx, int64_t now_ms)
{
    c->fd = fd;
    c->state = PF_CONN_OPEN;
    c->readable = true; /* an accepted connection usually has its request queued already */
    c->peer_closed = false;
    c->closing = false;
    c->linger = false;
    c->waiting = false;
    c->last_ms = now_ms;
    c->request_ms = now_ms;
    c->body_ms = 0;
    c->rpos = c->rlen = 0;
    c->wpos = c->wlen = 0;
    c->ext = NULL;
    c->ext_len = c->ext_pos = 0;
    c->file_fd = -1;
    c->file_off = c->file_left = 0;
    c->proxy = PF_PROXY_OFF;
    c->peer_len = 0;
    c->peer[0] = '\0';
    pf_http_reuse(&c->http, &cfg->limits, pf_handlers_route, ctx);
    c->http.capture = cfg->access_format != PF_ACCESS_OFF;
}

void pf_conn_set_peer(struct pf_conn *c, const struct sockaddr *peer, socklen_t len)
{
    if (len > sizeof(c->peer_addr))
        len = sizeof(c->peer_addr);
    memcpy(&c->peer_addr, peer, len);
    c->peer_len = len;
    /* The text is for the access log only: not made when nothing logs it. A unix-domain
     * client has no address: "-" in the log. */
    c->peer[0] = '\0';
    if (!c->http.capture)
        return;
    if (peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, c->peer, sizeof(c->peer));
    else if (peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, c->peer,
                  sizeof(c->peer));
}

void pf_conn_expect_proxy(struct pf_conn *c, enum pf_proxy_version v)
{
    c->proxy = v;
}

static void release_ext(struct pf_conn *c)
{
    free(c->ext);
    c->ext = NULL;
}

static void release_file(struct pf_conn *c)
{
    if (c->file_fd >= 0)
        close(c->file_fd);
    c->file_fd = -1;
    c->file_left = 0;
}

void pf_conn_release(struct pf_conn *c)
{
    /* A reply still to come for this connection finds a seq that moved on. */
    c->defer.seq++;
    c->waiting = false;
    release_ext(c);
    release_file(c);
    /* A large request body's buffer is not kept for the next connection. */
    pf_http_trim(&c->http, 64 * 1024);
}

static bool has_output(const struct pf_conn *c)
{
    return c->wpos < c->wlen || c->ext || c->file_fd >= 0;
}

/* A file body (static files): the kernel copies it from the page cache to the socket. */
static ssize_t send_file(struct pf_conn *c)
{
    size_t chunk = c->file_left < (1u << 30) ? (size_t)c->file_left : (1u << 30);
    ssize_t n = sendfile(c->fd, c->file_fd, &c->file_off, chunk);
    if (n == 0) {
        /* The file shrank under us: the promised length cannot be kept. */
        errno = EIO;
        return -1;
    }
    if (n > 0) {
        c->file_left -= (uint64_t)n;
        if (c->file_left == 0)
            release_file(c);
    }
    return n;
}

/* Sends pending output. 0: all sent; 1: the socket is full (EPOLLOUT will say when to go
 * on); negative: the connection is dead. */
static int flush(struct pf_conn *c, struct pf_conn_env *env)
{
    while (has_output(c)) {
        ssize_t n;
        bool file = c->wpos == c->wlen && !c->ext && c->file_fd >= 0;
        if (file) {
            n = send_file(c);
            if (n > 0) {
                c->last_ms = env->ctx->now_ms;
                if (env->row)
                    pf_count(&env->row->c.bytes_out, (uint64_t)n);
                continue;
            }
        } else if (!c->ext) {
            /* The common case: plain send() is cheaper than sendmsg() for one buffer.
             * When a file follows, MSG_MORE lets the head share a segment with its
             * first bytes (what nginx's tcp_nopush does with TCP_CORK). */
            n = send(c->fd, c->wbuf + c->wpos, c->wlen - c->wpos,
                     MSG_NOSIGNAL | (c->file_fd >= 0 ? MSG_MORE : 0));
        } else {
            struct iovec iov[2];
            int n_iov = 0;
            if (c->wpos < c->wlen)
                iov[n_iov++] = (struct iovec){c->wbuf + c->wpos, c->wlen - c->wpos};
            iov[n_iov++] = (struct iovec){c->ext + c->ext_pos, c->ext_len - c->ext_pos};
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        }
        if (n > 0) {
            c->last_ms = env->ctx->now_ms;
            if (env->row)
                pf_count(&env->row->c.bytes_out, (uint64_t)n);
            size_t left = (size_t)n, head = c->wlen - c->wpos;
            size_t take = left < head ? left : head;
            c->wpos += (uint32_t)take;
            left -= take;
            if (c->ext) {
                c->ext_pos += left;
                if (c->ext_pos == c->ext_len)
                    release_ext(c);
            }
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            return -1;
        }
    }
    c->wpos = c->wlen = 0;
    return 0;
}

static void count(struct pf_conn *c, struct pf_conn_env *env, uint32_t route, uint16_t status,
                  uint64_t body_bytes)
{
    env->requests++;
    if (env->row)
        pf_count(&env->row->c.requests[route][pf_status_class(status)], 1);
    if (env->access_log)
        pf_access_log_write(env->access_log, env->ctx, c->peer, &c->http, status, body_bytes);
}

static void answer_error(struct pf_conn *c, struct pf_conn_env *env, uint16_t status)
{
    struct pf_buf out;
    /* Error answers come last on a connection, so dropping queued output to make room
     * cannot happen: there is always PF_RESPONSE_MAX free (see parse_input). */
    pf_buf_init(&out, c->wbuf + c->wlen, PF_CONN_WBUF - c->wlen);
    pf_handlers_error(env->ctx, status, &out);
    if (!out.full)
        c->wlen += (uint32_t)out.len;
    c->closing = true;
    c->linger = true;
    count(c, env, PF_STAT_OTHER, status, 0);
}

/* Takes an answer that pf_handlers_respond or pf_handlers_resume wrote at c->wlen. */
static void take_answer(struct pf_conn *c, struct pf_conn_env *env, const struct pf_buf *out,
                        struct pf_answer *answer)
{
    struct pf_request *req = &c->http.req;
    if (answer->deferred) {
        /* Nothing written: the store's reply finishes it (pf_conn_resume). */
        c->waiting = true;
        return;
    }
    if (out->full) {
        /* Only a body that could not be buffered anywhere: nothing of it is sent. */
        free(answer->ext);
        if (answer->file_fd >= 0)
            close(answer->file_fd);
        count(c, env, answer->stat, 500, 0);
        c->closing = true;
        return;
    }
    c->wlen += (uint32_t)out->len;
    c->ext = answer->ext;
    c->ext_len = answer->ext_len;
    c->ext_pos = 0;
    if (answer->file_fd >= 0) {
        c->file_fd = answer->file_fd;
        c->file_off = (off_t)answer->file_off;
        c->file_left = answer->file_len;
        if (c->file_left == 0)
            release_file(c);
    }
    count(c, env, answer->stat, answer->status, answer->body_bytes);
    if (!req->keep_alive) {
        c->closing = true;
        /* Bytes after a "close" request are never read: drain them. */
        c->linger = c->rpos < c->rlen || !c->peer_closed;
    }
    /* The next request, if any, starts now. */
    c->request_ms = env->ctx->now_ms;
    c->body_ms = 0;
}

/* Answers the request in c->http.req. */
static void answer_request(struct pf_conn *c, struct pf_conn_env *env)
{
    struct pf_buf out;
    pf_buf_init(&out, c->wbuf + c->wlen, PF_CONN_WBUF - c->wlen);
    struct pf_answer answer;
    pf_handlers_respond(env->ctx, &c->http, (const struct sockaddr *)&c->peer_addr, c->peer_len,
                        &c->defer, &out, &answer);
    take_answer(c, env, &out, &answer);
}

/* The head of a request with Expect: 100-continue is here and its body is to come (RFC
 * 9110 10.1.1). */
static void answer_expectation(struct pf_conn *c, struct pf_conn_env *env)
{
    if (!pf_handlers_takes_body(env->ctx, &c->http.req)) {
        /* The final status is known already: send it now rather than ask for a body only
         * to drop it. Whether the client sends the body anyway cannot be known, so the
         * connection closes, and the lingering close drains what comes. */
        c->http.req.keep_alive = false;
        answer_request(c, env);
        return;
    }
    /* Ask for the body, unless some of it is here already: that client did not wait. */
    if (c->rpos == c->rlen) {
        struct pf_buf out;
        pf_buf_init(&out, c->wbuf + c->wlen, PF_CONN_WBUF - c->wlen);
        pf_response_write_continue(&out);
        c->wlen += (uint32_t)out.len;
    }
    c->body_ms = env->ctx->now_ms;
}

/* Turns buffered input into responses until the input is used up, the output buffer
 * needs flushing, or the connection is to close. */
static void parse_input(struct pf_conn *c, struct pf_conn_env *env)
{
    while (c->rpos < c->rlen && !c->closing && !c->waiting) {
        /* Answers go out in order: nothing more until a large body has been sent. */
        if (c->ext || c->file_fd >= 0 || PF_CONN_WBUF - c->wlen < PF_RESPONSE_MAX)
            return;
        size_t used;
        enum pf_http_result r = pf_http_feed(&c->http, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
        c->rpos += (uint32_t)used;
        if (r == PF_HTTP_NEED_MORE) {
            if (c->http.in_body && !c->body_ms)
                c->body_ms = env->ctx->now_ms;
            return;
        }
        if (r == PF_HTTP_ERROR) {
            pf_log_debug("fd %d: bad request, answering %u", c->fd, c->http.error_status);
            answer_error(c, env, c->http.error_status);
            return;
        }
        if (r == PF_HTTP_CONTINUE) {
            answer_expectation(c, env);
            continue;
        }
        /* While draining, the last request already read is answered with "close"; in
         * the primary's lame duck, every request. */
        if ((env->draining && c->rpos == c->rlen) || pf_handlers_closes_connections(env->ctx))
            c->http.req.keep_alive = false;
        answer_request(c, env);
    }
}

static enum pf_conn_verdict start_close(struct pf_conn *c, struct pf_conn_env *env)
{
    if (!c->linger)
        return PF_CONN_CLOSE;
    /* Half-close so the client sees the end of our answer, then read until it closes. */
    if (shutdown(c->fd, SHUT_WR) < 0)
        return PF_CONN_CLOSE;
    c->state = PF_CONN_LINGER;
    c->last_ms = env->ctx->now_ms;
    return PF_CONN_KEEP;
}

static enum pf_conn_verdict drain_linger(struct pf_conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return PF_CONN_KEEP;
        return PF_CONN_CLOSE;
    }
}

/* The connection's main loop: one read, every response it completes, one send; again
 * while the socket may hold more. */
/* The PROXY header at the start of rbuf: 1 when it is whole (consumed, the peer taken
 * from it), 0 when more is needed, -1 when it is missing or malformed. */
static int read_proxy(struct pf_conn *c)
{
    struct pf_proxy_addr pa;
    int n = pf_proxy_parse(c->proxy, c->rbuf, c->rlen, &pa);
    if (n < 0 || (n == 0 && c->rlen == PF_CONN_RBUF))
        return -1;
    if (n == 0)
        return 0;
    c->rpos = (uint32_t)n;
    c->proxy = PF_PROXY_OFF;
    /* LOCAL, UNKNOWN and non-TCP headers carry no client: the connection's own stays. */
    if (pa.known)
        pf_conn_set_peer(c, (const struct sockaddr *)&pa.src, pa.src_len);
    return 1;
}

/* A connection that does not begin with the PROXY header its listener requires gets no
 * answer: whoever sent it is not the balancer, or not one speaking that version. The
 * close is lingering, so the client sees an orderly end rather than a reset. */
static enum pf_conn_verdict refuse_proxy(struct pf_conn *c, struct pf_conn_env *env)
{
    pf_log_debug("fd %d: no valid PROXY header; closing without an answer", c->fd);
    c->proxy = PF_PROXY_OFF;
    c->rpos = c->rlen = 0;
    c->closing = true;
    c->linger = true;
    return start_close(c, env);
}

static enum pf_conn_verdict run(struct pf_conn *c, struct pf_conn_env *env)
{
    for (;;) {
        if (c->proxy != PF_PROXY_OFF) {
            int r = read_proxy(c);
            if (r < 0)
                return refuse_proxy(c, env);
            if (r == 0)
                goto read; /* its bytes stay in rbuf; the next ones join them */
        }
        parse_input(c, env);
        if (has_output(c)) {
            int f = flush(c, env);
            if (f < 0)
                return PF_CONN_CLOSE;
            if (f > 0)
                return PF_CONN_KEEP;
        }
        if (c->waiting)
            return PF_CONN_KEEP; /* what follows is read once the store has answered */
        if (c->closing)
            return start_close(c, env);
        if (c->rpos < c->rlen)
            continue; /* stopped for output room, which is free again */
    read:
        if (!c->readable)
            return PF_CONN_KEEP;

        /* The clock of the request head starts with its first byte, but a PROXY header
         * still to come is part of what timeouts.header bounds: it starts at accept. */
        if (c->proxy == PF_PROXY_OFF && pf_http_idle(&c->http))
            c->request_ms = env->ctx->now_ms;
        uint32_t keep = c->proxy != PF_PROXY_OFF ? c->rlen : 0;
        c->rpos = 0;
        c->rlen = keep;
        ssize_t n = recv(c->fd, c->rbuf + keep, PF_CONN_RBUF - keep, 0);
        if (n > 0) {
            c->rlen = keep + (uint32_t)n;
            c->last_ms = env->ctx->now_ms;
            if (env->row)
                pf_count(&env->row->c.bytes_in, (uint64_t)n);
            /* Edge-triggered epoll reports every new arrival, so a short read means the
             * socket is empty now: skip the read that would only say EAGAIN. Not after
             * EPOLLRDHUP, whose FIN is only seen as a read of 0. */
            if ((size_t)n < PF_CONN_RBUF - keep && !c->peer_closed)
                c->readable = false;
        } else if (n == 0) {
            return PF_CONN_CLOSE;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->readable = false;
            return PF_CONN_KEEP;
        } else if (errno != EINTR) {
            return PF_CONN_CLOSE;
        }
    }
}

enum pf_conn_verdict pf_conn_on_events(struct pf_conn *c, uint32_t events, struct pf_conn_env *env)
{
    if (events & EPOLLERR)
        return PF_CONN_CLOSE;
    if (c->state == PF_CONN_LINGER)
        return drain_linger(c);
    if (events & (EPOLLIN | EPOLLHUP))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP)) {
        c->readable = true;
        c->peer_closed = true;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && !has_output(c))
        return PF_CONN_KEEP; /* a writable edge with nothing to write */
    return run(c, env);
}

enum pf_conn_verdict pf_conn_resume(struct pf_conn *c, struct pf_conn_env *env, uint32_t seq,
                                    uint64_t value, int err)
{
    if (!c->waiting || c->defer.seq != seq || c->state != PF_CONN_OPEN)
        return PF_CONN_KEEP;
    c->waiting = false;
    c->defer.seq++;
    struct pf_buf out;
    pf_buf_init(&out, c->wbuf + c->wlen, PF_CONN_WBUF - c->wlen);
    struct pf_answer answer;
    pf_handlers_resume(env->ctx, &c->http, (const struct sockaddr *)&c->peer_addr, c->peer_len,
                       &c->defer, value, err, &out, &answer);
    take_answer(c, env, &out, &answer);
    return run(c, env);
}

enum pf_conn_verdict pf_conn_on_tick(struct pf_conn *c, struct pf_conn_env *env)
{
    int64_t now = env->ctx->now_ms;
    const struct pf_config *cfg = env->cfg;
    if (c->state == PF_CONN_LINGER)
        return now - c->last_ms >= PF_CONN_LINGER_MS ? PF_CONN_CLOSE : PF_CONN_KEEP;
    if (c->waiting)
        return PF_CONN_KEEP; /* the store's reply or shared.timeout ends it */
    if (c->proxy != PF_PROXY_OFF)
        /* No header, or not all of it, since the accept: closed, no answer. */
        return now - c->request_ms >= cfg->header_timeout_ms ? refuse_proxy(c, env) : PF_CONN_KEEP;
    if (has_output(c))
        /* The client stopped reading our answers. */
        return now - c->last_ms >= cfg->send_timeout_ms ? PF_CONN_CLOSE : PF_CONN_KEEP;
    if (!pf_http_idle(&c->http) || c->rpos < c->rlen) {
        /* The head must arrive within timeouts.header. A body gets timeouts.body plus a
         * second per body_min_rate bytes received: a slow-but-steady upload passes, a
         * trickle (slow POST attack) does not. */
        int64_t deadline = c->request_ms + cfg->header_timeout_ms;
        if (c->body_ms)
            deadline = c->body_ms + cfg->body_timeout_ms +
                       (int64_t)(c->http.body_bytes * 1000 / cfg->body_min_rate);
        if (now < deadline)
            return PF_CONN_KEEP;
        answer_error(c, env, 408);
        /* Best effort: the answer goes out now or not at all. */
        if (flush(c, env) != 0)
            return PF_CONN_CLOSE;
        return start_close(c, env);
    }
    uint32_t idle_limit = cfg->keepalive_timeout_ms;
    if (env->draining && env->drain_idle_ms < idle_limit)
        idle_limit = env->drain_idle_ms;
    return now - c->last_ms >= idle_limit ? PF_CONN_CLOSE : PF_CONN_KEEP;
}
