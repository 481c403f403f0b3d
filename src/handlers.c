#include "preforkd/handlers.h"

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>

#include "preforkd/metrics.h"
#include "preforkd/procfs.h"
#include <stdio.h>
#include <unistd.h>

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

static bool cluster_degraded(const struct pf_handler_ctx *ctx)
{
    return ctx->scoreboard &&
           atomic_load_explicit(&ctx->scoreboard->cluster->degraded, memory_order_relaxed);
}

/* /health answers 503 while degraded when configured to. */
static bool health_fails(const struct pf_handler_ctx *ctx, bool degraded)
{
    return degraded && ctx->fail_when_degraded;
}

static void health_body(struct pf_handler_ctx *ctx, struct pf_buf *b, bool degraded)
{
    if (ctx->memory_sampled_ms < 0 || ctx->now_ms - ctx->memory_sampled_ms >= 1000) {
        if (ctx->sample_memory(&ctx->memory) == 0)
            ctx->memory_sampled_ms = ctx->now_ms;
    }
    if (health_fails(ctx, degraded))
        pf_buf_put_lit(b, "{\"status\":\"degraded\",\"worker\":");
    else
        pf_buf_put_lit(b, "{\"status\":\"healthy\",\"worker\":");
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
    pf_buf_put_lit(b, "}");
}

static unsigned connection_flags(const struct pf_request *req)
{
    if (!req->keep_alive)
        return PF_RESP_CLOSE;
    return req->http_minor == 0 ? PF_RESP_KEEPALIVE : 0;
}

void pf_handlers_respond(struct pf_handler_ctx *ctx, const struct pf_request *req,
                         struct pf_buf *out, struct pf_answer *answer)
{
    char body_mem[512];
    struct pf_buf body;
    pf_buf_init(&body, body_mem, sizeof(body_mem));
    struct pf_route_match m = pf_router_match(req, ctx->metrics_path);
    unsigned flags = connection_flags(req);
    uint16_t status = m.status;
    enum pf_header_block block = PF_BLOCK_JSON;
    *answer = (struct pf_answer){.route = pf_route_stat(m.route)};

    switch (m.route) {
    case PF_ROUTE_SUM:
        pf_buf_put_lit(&body, "{\"sum\":");
        pf_buf_put_u64(&body, pf_handlers_sum(ctx->sum_iterations));
        pf_buf_put_lit(&body, "}");
        break;
    case PF_ROUTE_HEAVY:
        pf_buf_put_lit(&body, "{\"sum\":");
        pf_buf_put_u64(&body, pf_handlers_sum(ctx->heavy_iterations));
        pf_buf_put_lit(&body, ",\"worker\":");
        pf_buf_put_u64(&body, (uint64_t)ctx->pid);
        pf_buf_put_lit(&body, "}");
        break;
    case PF_ROUTE_HEALTH: {
        bool degraded = cluster_degraded(ctx);
        if (health_fails(ctx, degraded))
            status = 503;
        health_body(ctx, &body, degraded);
        block = PF_BLOCK_JSON_NO_STORE;
        break;
    }
    case PF_ROUTE_METRICS:
        if (ctx->scoreboard &&
            pf_metrics_render(ctx->scoreboard, ctx->now_ms, &answer->ext, &answer->ext_len) == 0) {
            /* The head goes in out; the text follows from its own buffer. */
            flags |= req->method == PF_METHOD_HEAD ? PF_RESP_HEAD : 0;
            pf_response_write_head(out, &ctx->responses, 200, PF_BLOCK_PROMETHEUS, answer->ext_len,
                                   flags);
            answer->status = 200;
            answer->body_bytes = req->method == PF_METHOD_HEAD ? 0 : answer->ext_len;
            if (req->method == PF_METHOD_HEAD) {
                free(answer->ext);
                answer->ext = NULL;
                answer->ext_len = 0;
            }
            return;
        }
        status = 500;
        pf_buf_put_lit(&body, "{\"error\":\"metrics unavailable\"}");
        block = PF_BLOCK_JSON_NO_STORE;
        break;
    case PF_ROUTE_SERVER_OPTIONS:
        /* What works on this server's resources; no content (RFC 9110 9.3.7). */
        flags |= PF_RESP_ALLOW_GET;
        block = PF_BLOCK_EMPTY;
        break;
    case PF_ROUTE_NONE:
    case PF_ROUTE_COUNT:
        assert(m.route != PF_ROUTE_COUNT);
        if (m.status == 405) {
            pf_buf_put_lit(&body, "{\"error\":\"method not allowed\"}");
            flags |= PF_RESP_ALLOW_GET;
        } else {
            pf_buf_put_lit(&body, "{\"error\":\"not found\"}");
        }
        break;
    }
    if (req->method == PF_METHOD_HEAD)
        flags |= PF_RESP_HEAD;
    pf_response_write(out, &ctx->responses, status, block, body.data, body.len, flags);
    answer->status = status;
    answer->body_bytes = req->method == PF_METHOD_HEAD ? 0 : body.len;
}

bool pf_handlers_takes_body(const struct pf_handler_ctx *ctx, const struct pf_request *req)
{
    struct pf_route_match m = pf_router_match(req, ctx->metrics_path);
    if (m.route == PF_ROUTE_HEALTH)
        return !health_fails(ctx, cluster_degraded(ctx));
    return m.status == 200;
}

void pf_handlers_error(struct pf_handler_ctx *ctx, uint16_t status, struct pf_buf *out)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%u}",
                     pf_response_reason(status), (unsigned)status);
    pf_response_write(out, &ctx->responses, status, PF_BLOCK_JSON, body, (size_t)n, PF_RESP_CLOSE);
}
