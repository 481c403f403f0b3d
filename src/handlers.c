#include "preforkd/handlers.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

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
    ctx->sample_memory = pf_handlers_read_memory;
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

int pf_handlers_read_memory(struct pf_memory *out)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    unsigned long long size, resident, shared;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
        return -1;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    out->virt = size * page;
    out->rss = resident * page;
    out->shared = shared * page;
    return 0;
}

static void health_body(struct pf_handler_ctx *ctx, struct pf_buf *b)
{
    if (ctx->memory_sampled_ms < 0 || ctx->now_ms - ctx->memory_sampled_ms >= 1000) {
        if (ctx->sample_memory(&ctx->memory) == 0)
            ctx->memory_sampled_ms = ctx->now_ms;
    }
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
    if (ctx->cluster) {
        pf_buf_put_lit(b, ",\"cluster\":{\"serving\":");
        pf_buf_put_u64(b, atomic_load_explicit(&ctx->cluster->serving, memory_order_relaxed));
        pf_buf_put_lit(b, ",\"configured\":");
        pf_buf_put_u64(b, atomic_load_explicit(&ctx->cluster->configured, memory_order_relaxed));
        if (atomic_load_explicit(&ctx->cluster->degraded, memory_order_relaxed))
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

enum pf_route pf_handlers_respond(struct pf_handler_ctx *ctx, const struct pf_request *req,
                                  struct pf_buf *out)
{
    char body_mem[512];
    struct pf_buf body;
    pf_buf_init(&body, body_mem, sizeof(body_mem));
    struct pf_route_match m = pf_router_match(req);
    unsigned flags = connection_flags(req);

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
    case PF_ROUTE_HEALTH:
        health_body(ctx, &body);
        break;
    case PF_ROUTE_NONE:
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
    pf_response_write(out, &ctx->responses, m.status, body.data, body.len, flags);
    return m.route;
}

void pf_handlers_error(struct pf_handler_ctx *ctx, uint16_t status, struct pf_buf *out)
{
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%u}",
                     pf_response_reason(status), (unsigned)status);
    pf_response_write(out, &ctx->responses, status, body, (size_t)n, PF_RESP_CLOSE);
}
