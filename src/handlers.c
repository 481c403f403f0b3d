#include "preforkd/handlers.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "preforkd/log.h"
#include "preforkd/metrics.h"
#include "preforkd/procfs.h"
#include "preforkd/readiness.h"
#include "preforkd/redis.h"

static int self_memory(struct pf_memory *out)
{
    return pf_procfs_statm(0, out);
}

void pf_handler_ctx_init(struct pf_handler_ctx *ctx, pid_t pid, int64_t start_ms,
                         uint64_t sum_iterations, uint64_t heavy_iterations)
{
    *ctx = (struct pf_handler_ctx){0};
    ctx->pid = pid;
    ctx->start_ms = start_ms;
    ctx->now_ms = start_ms;
    ctx->sum_iterations = sum_iterations;
    ctx->heavy_iterations = heavy_iterations;
    ctx->memory_sampled_ms = -1;
    ctx->sample_memory = self_memory;
    pf_response_cache_tick(&ctx->responses, time(NULL));
}

void pf_handler_ctx_free(struct pf_handler_ctx *ctx)
{
    free(ctx->body);
    free(ctx->path);
    ctx->body = ctx->path = NULL;
    ctx->body_cap = ctx->path_cap = 0;
}

void pf_handler_ctx_tick(struct pf_handler_ctx *ctx, int64_t now_ms, time_t wall_sec)
{
    ctx->now_ms = now_ms;
    pf_response_cache_tick(&ctx->responses, wall_sec);
}

uint64_t pf_handlers_sum(uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        sum += i;
        /* An empty asm that "may change" sum: without it gcc and clang replace the loop
         * by n*(n-1)/2 or vectorise it, and the route would stop being the seed's
         * one-add-per-iteration CPU work. */
        __asm__ volatile("" : "+r"(sum));
    }
    return sum;
}

/* ---- the response a handler writes -------------------------------------------------- */

/* Grows the worker's body buffer (kept between requests) so that n more bytes fit. */
static bool body_room(struct pf_resp *resp, size_t n)
{
    struct pf_buf *b = &resp->body;
    if (n <= b->cap - b->len)
        return true;
    struct pf_handler_ctx *ctx = resp->ctx;
    size_t need = b->len + n;
    if (need > PF_BODY_MAX) {
        resp->failed = true;
        return false;
    }
    size_t cap = ctx->body_cap ? ctx->body_cap : 4096;
    while (cap < need)
        cap *= 2;
    if (cap > PF_BODY_MAX)
        cap = PF_BODY_MAX;
    char *p = realloc(ctx->body, cap);
    if (!p) {
        resp->failed = true;
        return false;
    }
    ctx->body = p;
    ctx->body_cap = cap;
    b->data = p;
    b->cap = cap;
    return true;
}

void pf_resp_status(struct pf_resp *resp, unsigned status)
{
    if (status >= 100 && status <= 999)
        resp->status = (uint16_t)status;
    else
        resp->failed = true;
}

/* The fields the daemon writes itself: a handler setting one could contradict the
 * framing (RFC 9112 6: Content-Length and Transfer-Encoding decide where the message
 * ends; Connection and friends are hop-by-hop). */
static const char *const owned_fields[] = {
    "content-length", "transfer-encoding", "connection", "date", "server",
    "keep-alive",     "upgrade",           "trailer",    "te"};

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int pf_resp_header(struct pf_resp *resp, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    bool ok = nl > 0;
    for (size_t i = 0; i < nl && ok; i++)
        ok = is_tchar((unsigned char)name[i]);
    /* No CR, LF or NUL (a NUL ends the C string: vl stops there), nor other controls
     * but tab: each would let a value end the field or the head early. */
    for (size_t i = 0; i < vl && ok; i++)
        ok = (unsigned char)value[i] >= ' ' ? value[i] != 0x7f : value[i] == '\t';
    for (size_t i = 0; i < sizeof(owned_fields) / sizeof(owned_fields[0]) && ok; i++)
        ok = strcasecmp(name, owned_fields[i]) != 0;
    if (!ok || resp->fields_len + 4 + nl + vl > sizeof(resp->fields)) {
        pf_log_error("handler refused: header field '%.64s' %s", name,
                     ok ? "does not fit"
                        : "is not allowed (name, value or a field the daemon owns)");
        resp->failed = true;
        return -EINVAL;
    }
    if (strcasecmp(name, "content-type") == 0)
        resp->block = resp->block == PF_BLOCK_JSON_NO_STORE ? PF_BLOCK_NO_STORE : PF_BLOCK_EMPTY;
    char *o = resp->fields + resp->fields_len;
    memcpy(o, "\r\n", 2);
    memcpy(o + 2, name, nl);
    memcpy(o + 2 + nl, ": ", 2);
    memcpy(o + 4 + nl, value, vl);
    resp->fields_len += 4 + nl + vl;
    return 0;
}

int pf_resp_write(struct pf_resp *resp, const void *data, size_t len)
{
    if (!body_room(resp, len))
        return -ENOMEM;
    pf_buf_put(&resp->body, data, len);
    return 0;
}

int pf_resp_u64(struct pf_resp *resp, uint64_t value)
{
    if (!body_room(resp, 20))
        return -ENOMEM;
    pf_buf_put_u64(&resp->body, value);
    return 0;
}

int pf_resp_json_string(struct pf_resp *resp, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte as \u00XX. */
    if (len > (PF_BODY_MAX - 2) / 6 || !body_room(resp, len * 6 + 2))
        return -ENOMEM;
    struct pf_buf *b = &resp->body;
    pf_buf_put_lit(b, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            pf_buf_put(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pf_buf_put(b, e, 6);
        } else {
            pf_buf_put(b, &s[i], 1);
        }
    }
    pf_buf_put_lit(b, "\"");
    return 0;
}

/* ---- the request a handler reads ----------------------------------------------------- */

struct pf_str pf_req_method(const struct pf_req *req)
{
    const char *m = req->r->method_name ? req->r->method_name : "";
    return (struct pf_str){m, strlen(m)};
}

struct pf_str pf_req_raw_path(const struct pf_req *req)
{
    return (struct pf_str){req->r->path, req->r->path_len};
}

struct pf_str pf_req_query(const struct pf_req *req)
{
    return (struct pf_str){req->r->query, req->r->query_len};
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes in into out (room for len bytes); '+' is a space in a query. -1 for
 * an invalid escape. */
static long decode(const char *in, size_t len, char *out, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') {
            out[o++] = plus && in[i] == '+' ? ' ' : in[i];
            continue;
        }
        if (len - i < 3)
            return -1;
        int a = hexval((unsigned char)in[i + 1]), b = hexval((unsigned char)in[i + 2]);
        if (a < 0 || b < 0)
            return -1;
        out[o++] = (char)(a << 4 | b);
        i += 2;
    }
    return (long)o;
}

struct pf_str pf_req_path(const struct pf_req *creq)
{
    struct pf_req *req = (struct pf_req *)creq; /* the decoded path is cached */
    if (!req->path) {
        struct pf_handler_ctx *ctx = req->ctx;
        size_t need = req->r->path_len + 1;
        if (need > ctx->path_cap) {
            char *p = realloc(ctx->path, need);
            if (!p)
                return (struct pf_str){"", 0};
            ctx->path = p;
            ctx->path_cap = need;
        }
        long n = decode(req->r->path, req->r->path_len, ctx->path, false);
        /* An invalid escape is kept as sent: the path is the client's, not ours. */
        if (n < 0) {
            memcpy(ctx->path, req->r->path, req->r->path_len);
            n = (long)req->r->path_len;
        }
        ctx->path[n] = '\0';
        req->path = ctx->path;
        req->path_len = (size_t)n;
    }
    return (struct pf_str){req->path, req->path_len};
}

int pf_req_query_param(const struct pf_req *req, const char *name, char *out, size_t cap)
{
    const char *q = req->r->query, *end = q + req->r->query_len;
    size_t nl = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        char key[128];
        long kl = (size_t)(ke - q) < sizeof(key) ? decode(q, (size_t)(ke - q), key, true) : -1;
        if (kl == (long)nl && memcmp(key, name, nl) == 0) {
            const char *v = eq ? eq + 1 : pe;
            size_t vl = (size_t)(pe - v);
            if (vl >= cap)
                return -1; /* decoded, it is vl bytes at most: it may fit, but check */
            long n = decode(v, vl, out, true);
            if (n < 0)
                return -1;
            out[n] = '\0';
            return (int)n;
        }
        q = pe + (amp ? 1 : 0);
    }
    return -1;
}

bool pf_req_header(const struct pf_req *req, const char *name, struct pf_str *value)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < req->r->nfields; i++) {
        const char *n, *v;
        uint32_t l, vl;
        pf_http_field(req->http, i, &n, &l, &v, &vl);
        if (l == nl && strncasecmp(n, name, nl) == 0) {
            *value = (struct pf_str){v, vl};
            return true;
        }
    }
    return false;
}

size_t pf_req_header_count(const struct pf_req *req)
{
    return req->r->nfields;
}

void pf_req_header_at(const struct pf_req *req, size_t i, struct pf_str *name, struct pf_str *value)
{
    const char *n = "", *v = "";
    uint32_t l = 0, vl = 0;
    if (i < req->r->nfields)
        pf_http_field(req->http, (uint32_t)i, &n, &l, &v, &vl);
    *name = (struct pf_str){n, l};
    *value = (struct pf_str){v, vl};
}

struct pf_str pf_req_body(const struct pf_req *req)
{
    return (struct pf_str){req->http->body ? req->http->body : "", (size_t)req->http->body_len};
}

const struct sockaddr *pf_req_peer(const struct pf_req *req, socklen_t *len)
{
    *len = req->peer_len;
    return req->peer;
}

unsigned pf_req_worker(const struct pf_req *req)
{
    return req->ctx->slot;
}

/* ---- the built-in handlers ------------------------------------------------------------ */

static bool cluster_degraded(const struct pf_handler_ctx *ctx)
{
    return ctx->scoreboard &&
           atomic_load_explicit(&ctx->scoreboard->cluster->degraded, memory_order_relaxed);
}

/* The primary's phase; outside a daemon (no scoreboard), serving. */
static enum pf_service_state service_state(const struct pf_handler_ctx *ctx)
{
    return ctx->scoreboard ? (enum pf_service_state)atomic_load_explicit(
                                 &ctx->scoreboard->cluster->state, memory_order_relaxed)
                           : PF_SVC_SERVING;
}

static bool ready_now(const struct pf_handler_ctx *ctx)
{
    return pf_readiness_is_ready(service_state(ctx), cluster_degraded(ctx),
                                 ctx->ready_when_degraded);
}

bool pf_handlers_closes_connections(const struct pf_handler_ctx *ctx)
{
    return pf_readiness_closes_connections(service_state(ctx));
}

/* /health answers 503 while degraded when configured to. */
static bool health_fails(const struct pf_handler_ctx *ctx, bool degraded)
{
    return degraded && ctx->fail_when_degraded;
}

static int h_sum(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_buf *b = &resp->body;
    pf_buf_put_lit(b, "{\"sum\":");
    pf_buf_put_u64(b, pf_handlers_sum(req->ctx->sum_iterations));
    pf_buf_put_lit(b, "}");
    return 0;
}

static int h_heavy(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_buf *b = &resp->body;
    pf_buf_put_lit(b, "{\"sum\":");
    pf_buf_put_u64(b, pf_handlers_sum(req->ctx->heavy_iterations));
    pf_buf_put_lit(b, ",\"worker\":");
    pf_buf_put_u64(b, (uint64_t)req->ctx->pid);
    pf_buf_put_lit(b, "}");
    return 0;
}

static int h_health(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_handler_ctx *ctx = req->ctx;
    struct pf_buf *b = &resp->body;
    bool degraded = cluster_degraded(ctx);
    resp->block = PF_BLOCK_JSON_NO_STORE;
    if (ctx->memory_sampled_ms < 0 || ctx->now_ms - ctx->memory_sampled_ms >= 1000) {
        if (ctx->sample_memory(&ctx->memory) == 0)
            ctx->memory_sampled_ms = ctx->now_ms;
    }
    if (health_fails(ctx, degraded)) {
        resp->status = 503;
        pf_buf_put_lit(b, "{\"status\":\"degraded\",\"worker\":");
    } else {
        pf_buf_put_lit(b, "{\"status\":\"healthy\",\"worker\":");
    }
    pf_buf_put_u64(b, (uint64_t)ctx->pid);
    pf_buf_put_lit(b, ",\"uptime\":");
    int64_t up = ctx->now_ms - ctx->start_ms;
    pf_buf_put_fixed(b, up > 0 ? (uint64_t)up : 0, 3);
    pf_buf_put_lit(b, ",\"memory\":{\"rss\":");
    pf_buf_put_u64(b, ctx->memory.rss);
    pf_buf_put_lit(b, ",\"virtual\":");
    pf_buf_put_u64(b, ctx->memory.virt);
    pf_buf_put_lit(b, ",\"shared\":");
    pf_buf_put_u64(b, ctx->memory.shared);
    pf_buf_put_lit(b, "}");
    if (ctx->row) {
        pf_buf_put_lit(b, ",\"requests\":");
        pf_buf_put_u64(b, atomic_load_explicit(&ctx->row->requests, memory_order_relaxed));
        pf_buf_put_lit(b, ",\"connections\":");
        pf_buf_put_u64(b, atomic_load_explicit(&ctx->row->connections, memory_order_relaxed));
    }
    if (ctx->scoreboard) {
        const struct pf_scoreboard_cluster *cl = ctx->scoreboard->cluster;
        pf_buf_put_lit(b, ",\"cluster\":{\"serving\":");
        pf_buf_put_u64(b, atomic_load_explicit(&cl->serving, memory_order_relaxed));
        pf_buf_put_lit(b, ",\"configured\":");
        pf_buf_put_u64(b, atomic_load_explicit(&cl->configured, memory_order_relaxed));
        if (degraded)
            pf_buf_put_lit(b, ",\"degraded\":true}");
        else
            pf_buf_put_lit(b, ",\"degraded\":false}");
    }
    if (ctx->version) {
        /* Which binary answers: after a hot upgrade, the new one's. */
        pf_buf_put_lit(b, ",\"version\":\"");
        pf_buf_put_str(b, ctx->version);
        pf_buf_put_lit(b, "\"");
    }
    pf_buf_put_lit(b, "}");
    return 0;
}

/* For load balancers: 200 while this instance should get traffic, else 503 (starting,
 * lame duck, draining, stopping, or degraded unless health.ready_when_degraded). */
static int h_ready(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_handler_ctx *ctx = req->ctx;
    struct pf_buf *b = &resp->body;
    bool ready = ready_now(ctx);
    resp->block = PF_BLOCK_JSON_NO_STORE;
    if (!ready)
        resp->status = 503;
    pf_buf_put_str(b, ready ? "{\"ready\":true,\"state\":\"" : "{\"ready\":false,\"state\":\"");
    pf_buf_put_str(b, pf_readiness_state_name(service_state(ctx)));
    pf_buf_put_str(b, cluster_degraded(ctx) ? "\",\"degraded\":true}" : "\",\"degraded\":false}");
    return 0;
}

static int h_metrics(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)state;
    struct pf_handler_ctx *ctx = req->ctx;
    if (ctx->scoreboard && pf_metrics_render(ctx->scoreboard, ctx->cfg, ctx->counters, ctx->now_ms,
                                             &resp->ext, &resp->ext_len) == 0) {
        resp->block = PF_BLOCK_PROMETHEUS;
        return 0;
    }
    resp->status = 500;
    resp->block = PF_BLOCK_JSON_NO_STORE;
    pf_buf_put_lit(&resp->body, "{\"error\":\"metrics unavailable\"}");
    return 0;
}

/* The seed's counter, correct across workers: one shared counter (the route's `counter:`,
 * looked up when the worker starts) plus one per request. */
static int count_then(void *state, const struct pf_req *req, struct pf_resp *resp, uint64_t value)
{
    (void)state;
    (void)req;
    pf_buf_put_lit(&resp->body, "{\"count\":");
    pf_buf_put_u64(&resp->body, value);
    pf_buf_put_lit(&resp->body, "}");
    resp->block = PF_BLOCK_JSON_NO_STORE;
    return 0;
}

/* In the store shared.backend names: this host's memory, or Redis for several hosts. */
static int h_count(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    (void)req;
    return pf_counter_add_then(resp, state, 1, count_then, NULL);
}

static const struct {
    pf_handler_fn fn;
    unsigned keep;
} builtins[PF_HANDLER_KINDS] = {
    [PF_HANDLER_SUM] = {h_sum, 0},
    [PF_HANDLER_HEALTH] = {h_health, 0},
    [PF_HANDLER_HEAVY] = {h_heavy, 0},
    [PF_HANDLER_METRICS] = {h_metrics, 0},
    [PF_HANDLER_STATIC] = {NULL, PF_HTTP_KEEP_FIELDS},
    [PF_HANDLER_COUNT] = {h_count, 0},
    [PF_HANDLER_READY] = {h_ready, 0},
    [PF_HANDLER_MODULE] = {NULL, PF_HTTP_KEEP_FIELDS | PF_HTTP_KEEP_BODY},
};

pf_handler_fn pf_handlers_builtin(enum pf_handler_kind kind)
{
    return (unsigned)kind < PF_HANDLER_KINDS ? builtins[kind].fn : NULL;
}

unsigned pf_handlers_builtin_keep(enum pf_handler_kind kind)
{
    return (unsigned)kind < PF_HANDLER_KINDS ? builtins[kind].keep : 0;
}

/* ---- answering ------------------------------------------------------------------------ */

unsigned pf_handlers_route(void *vctx, struct pf_request *req)
{
    struct pf_handler_ctx *ctx = vctx;
    struct pf_route_match m = pf_router_match(ctx->router, req);
    req->route = m.route;
    req->route_status = m.status;
    req->route_allow = m.allow;
    return m.route ? m.route->keep : 0;
}

static unsigned connection_flags(const struct pf_request *req)
{
    if (!req->keep_alive)
        return PF_RESP_CLOSE;
    return req->http_minor == 0 ? PF_RESP_KEEPALIVE : 0;
}

/* A fresh response for the request: the worker's body buffer, nothing written yet.
 * false when that buffer cannot be had (the answer is then a 503 already). */
static bool begin(struct pf_handler_ctx *ctx, struct pf_resp *resp, struct pf_buf *out,
                  struct pf_answer *answer)
{
    *resp = (struct pf_resp){.ctx = ctx, .status = 200, .block = PF_BLOCK_JSON, .file_fd = -1};
    if (!ctx->body && !body_room(resp, 4096)) {
        pf_handlers_error(ctx, 503, out);
        *answer = (struct pf_answer){.stat = PF_STAT_OTHER, .status = 503, .file_fd = -1};
        return false;
    }
    pf_buf_init(&resp->body, ctx->body, ctx->body_cap);
    return true;
}

/* After a route's handler (or its continuation) returned rc: a refused answer becomes a
 * plain 500. */
static void settle(struct pf_handler_ctx *ctx, const struct pf_route *route, int rc,
                   struct pf_resp *resp)
{
    if (rc != 0 && resp->status == 200)
        resp->status = 500;
    if (resp->failed) {
        /* A handler that tried to write what cannot be sent gets a plain 500. */
        pf_log_error("route %s: the handler's answer was refused; answering 500", route->path);
        free(resp->ext);
        if (resp->file_fd >= 0)
            resp->file_fd = -1; /* owned by the handler's state */
        *resp = (struct pf_resp){.ctx = ctx, .status = 500, .block = PF_BLOCK_JSON, .file_fd = -1};
        pf_buf_init(&resp->body, ctx->body, ctx->body_cap);
        pf_buf_put_lit(&resp->body, "{\"error\":\"Internal Server Error\",\"status\":500}");
    }
}

/* Frames resp as the answer to r: the head into out, and the body after it. */
static void finish(struct pf_handler_ctx *ctx, const struct pf_request *r, struct pf_resp *resp,
                   struct pf_buf *out, struct pf_answer *answer)
{
    unsigned flags = connection_flags(r);
    bool head = r->method == PF_METHOD_HEAD;
    if (head)
        flags |= PF_RESP_HEAD;
    uint64_t len = resp->ext ? resp->ext_len : resp->file_fd >= 0 ? resp->file_len : resp->body.len;
    pf_response_head(out, &ctx->responses, resp->status, resp->block, len, flags, resp->allow,
                     resp->fields, resp->fields_len);
    answer->status = resp->status;
    bool bodyless = head || pf_response_bodyless(resp->status);
    answer->body_bytes = bodyless ? 0 : len;
    if (bodyless) {
        free(resp->ext);
        if (resp->file_fd >= 0)
            close(resp->file_fd);
        return;
    }
    if (resp->ext) {
        answer->ext = resp->ext;
        answer->ext_len = resp->ext_len;
    } else if (resp->file_fd >= 0 && resp->file_len <= PF_FILE_INLINE_MAX &&
               resp->file_len <= out->cap - out->len &&
               pread(resp->file_fd, out->data + out->len, resp->file_len, (off_t)resp->file_off) ==
                   (ssize_t)resp->file_len) {
        /* A small file goes out in the same send as its head: one read instead of a
         * second system call to the socket and a second segment. */
        out->len += resp->file_len;
        close(resp->file_fd);
    } else if (resp->file_fd >= 0) {
        answer->file_fd = resp->file_fd;
        answer->file_off = resp->file_off;
        answer->file_len = resp->file_len;
    } else if (resp->body.len <= out->cap - out->len) {
        pf_buf_put(out, resp->body.data, resp->body.len);
    } else {
        /* Larger than the connection's buffer has room for: sent after it. */
        answer->ext = malloc(resp->body.len);
        if (answer->ext) {
            memcpy(answer->ext, resp->body.data, resp->body.len);
            answer->ext_len = resp->body.len;
        } else {
            pf_log_error("no memory for a %zu-byte answer; closing the connection", resp->body.len);
            out->full = true;
        }
    }
}

/* The store failed or was too slow: the route cannot answer, the others go on. */
static void store_error(struct pf_resp *resp, int err)
{
    resp->status = 503;
    resp->block = PF_BLOCK_JSON_NO_STORE;
    resp->fields_len = 0;
    pf_resp_header(resp, "Retry-After", "1");
    resp->body.len = 0;
    pf_buf_put_lit(&resp->body, "{\"error\":\"shared store unavailable\",\"reason\":\"");
    pf_buf_put_str(&resp->body, err == -ETIMEDOUT  ? "timeout"
                                : err == -ENOTCONN ? "not connected"
                                : err == -ENOBUFS  ? "too many waiting"
                                : err == -EPROTO   ? "store error"
                                                   : "connection lost");
    pf_buf_put_lit(&resp->body, "\",\"status\":503}");
}

int pf_counter_add_then(struct pf_resp *resp, struct pf_counter *counter, uint64_t delta,
                        pf_counter_then_fn then, void *state)
{
    struct pf_handler_ctx *ctx = resp->ctx;
    if (resp->deferred || !then || !counter) {
        pf_log_error("handler refused: pf_counter_add_then without a counter or a "
                     "continuation, or twice for one answer");
        resp->failed = true;
        return -EINVAL;
    }
    if (!ctx->redis || !resp->defer)
        return then(state, resp->req, resp, pf_counter_add(counter, delta));
    int rc = pf_redis_incrby(ctx->redis, resp->defer, counter->name, delta, ctx->now_ms);
    if (rc < 0) {
        store_error(resp, rc);
        return 0;
    }
    resp->defer->then = then;
    resp->defer->state = state;
    resp->deferred = true;
    return 0;
}

/* Which route a worker that dies now was in (a module's code runs): the primary reads it
 * to say so. */
static void mark_route(struct pf_handler_ctx *ctx, const struct pf_route *route, bool in)
{
    if (route->kind == PF_HANDLER_MODULE && ctx->row)
        atomic_store_explicit(&ctx->row->in_route, in ? route->stat + 1 : 0, memory_order_relaxed);
}

/* Whether the answer now waits for the store. One that deferred and was then refused is
 * answered 500 at once, and the reply already on the wire must not finish the next
 * request on this connection instead: its seq moves on, so the reply finds it stale. */
static bool deferred(const struct pf_resp *resp, struct pf_defer *defer, struct pf_answer *answer)
{
    if (resp->deferred && resp->failed)
        defer->seq++;
    if (!resp->deferred || resp->failed)
        return false;
    answer->deferred = true;
    return true;
}

void pf_handlers_respond(struct pf_handler_ctx *ctx, const struct pf_http *http,
                         const struct sockaddr *peer, socklen_t peer_len, struct pf_defer *defer,
                         struct pf_buf *out, struct pf_answer *answer)
{
    const struct pf_request *r = &http->req;
    const struct pf_route *route = r->route;
    struct pf_resp resp;
    if (!begin(ctx, &resp, out, answer))
        return;
    *answer = (struct pf_answer){.stat = route ? route->stat : PF_STAT_OTHER, .file_fd = -1};
    if (route) {
        struct pf_req req = {.ctx = ctx, .http = http, .r = r, .peer = peer, .peer_len = peer_len};
        resp.req = &req;
        resp.defer = defer;
        mark_route(ctx, route, true);
        int rc = route->fn(route->state, &req, &resp);
        mark_route(ctx, route, false);
        if (deferred(&resp, defer, answer))
            return;
        settle(ctx, route, rc, &resp);
    } else if (r->route_status == 200) {
        /* OPTIONS *: what works on this server's resources; no content (RFC 9110 9.3.7). */
        resp.block = PF_BLOCK_EMPTY;
        resp.allow = r->route_allow;
    } else {
        resp.status = r->route_status;
        resp.allow = r->route_allow;
        if (resp.status == 405)
            pf_buf_put_lit(&resp.body, "{\"error\":\"method not allowed\"}");
        else
            pf_buf_put_lit(&resp.body, "{\"error\":\"not found\"}");
    }
    finish(ctx, r, &resp, out, answer);
}

void pf_handlers_resume(struct pf_handler_ctx *ctx, const struct pf_http *http,
                        const struct sockaddr *peer, socklen_t peer_len, struct pf_defer *defer,
                        uint64_t value, int err, struct pf_buf *out, struct pf_answer *answer)
{
    const struct pf_request *r = &http->req;
    const struct pf_route *route = r->route;
    assert(route); /* only a route's handler defers */
    struct pf_resp resp;
    if (!begin(ctx, &resp, out, answer))
        return;
    *answer = (struct pf_answer){.stat = route->stat, .file_fd = -1};
    int rc = 0;
    if (err) {
        store_error(&resp, err);
    } else {
        struct pf_req req = {.ctx = ctx, .http = http, .r = r, .peer = peer, .peer_len = peer_len};
        resp.req = &req;
        resp.defer = defer;
        mark_route(ctx, route, true);
        rc = defer->then(defer->state, &req, &resp, value);
        mark_route(ctx, route, false);
        if (deferred(&resp, defer, answer))
            return;
    }
    settle(ctx, route, rc, &resp);
    finish(ctx, r, &resp, out, answer);
}

bool pf_handlers_takes_body(const struct pf_handler_ctx *ctx, const struct pf_request *req)
{
    const struct pf_route *route = req->route;
    if (!route)
        return false;
    if (route->kind == PF_HANDLER_HEALTH)
        return !health_fails(ctx, cluster_degraded(ctx));
    if (route->kind == PF_HANDLER_READY)
        return ready_now(ctx);
    return true;
}

void pf_handlers_error(struct pf_handler_ctx *ctx, uint16_t status, struct pf_buf *out)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%u}",
                     pf_response_reason(status), (unsigned)status);
    pf_response_head(out, &ctx->responses, status, PF_BLOCK_JSON, (size_t)n, PF_RESP_CLOSE, 0, "",
                     0);
    pf_buf_put(out, body, (size_t)n);
}
