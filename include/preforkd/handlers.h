#ifndef PREFORKD_HANDLERS_H
#define PREFORKD_HANDLERS_H

#include <stdint.h>
#include <sys/types.h>

#include "preforkd/buf.h"
#include "preforkd/http.h"
#include "preforkd/procfs.h"
#include "preforkd/response.h"
#include "preforkd/router.h"
#include "preforkd/scoreboard.h"

/* Per-worker state the handlers read: identity, clocks, route work sizes and the
 * once-a-second memory sample. Owned by the worker; no fds. */
struct pf_handler_ctx {
    pid_t pid;
    int64_t start_ms;
    int64_t now_ms;
    uint64_t sum_iterations;
    uint64_t heavy_iterations;
    struct pf_response_cache responses;
    int64_t memory_sampled_ms;
    struct pf_memory memory;
    /* The scoreboard (NULL outside a daemon): the cluster's state for /health, every
     * worker's counters for /metrics, this worker's own entry. */
    const struct pf_scoreboard *scoreboard;
    const struct pf_scoreboard_row *row;
    const char *metrics_path; /* NULL: /metrics disabled */
    bool fail_when_degraded;
    /* Reads the process's memory figures; a function pointer so tests can fake it. */
    int (*sample_memory)(struct pf_memory *out);
};

void pf_handler_ctx_init(struct pf_handler_ctx *ctx, pid_t pid, int64_t start_ms,
                         uint64_t sum_iterations, uint64_t heavy_iterations);
/* Advances the clocks; refreshes the Date header when the second changes. */
void pf_handler_ctx_tick(struct pf_handler_ctx *ctx, int64_t now_ms, time_t wall_sec);

/* sum of 0..n-1, computed by really looping: this is the seed's CPU-bound work. */
uint64_t pf_handlers_sum(uint64_t n);

/* What an answer was, for the counters and the access log. A large body (/metrics)
 * comes separately in ext (malloc'd, the caller sends it after out and frees it). */
struct pf_answer {
    enum pf_route route; /* counted as pf_route_stat(route) */
    uint16_t status;
    uint64_t body_bytes;
    char *ext;
    size_t ext_len;
};

/* Answers one parsed request into out (which has PF_RESPONSE_MAX bytes free). */
void pf_handlers_respond(struct pf_handler_ctx *ctx, const struct pf_request *req,
                         struct pf_buf *out, struct pf_answer *answer);
/* True when req's route will answer it with success, so its body is worth asking for
 * (Expect: 100-continue); false when the final status is known from the head alone. */
bool pf_handlers_takes_body(const struct pf_handler_ctx *ctx, const struct pf_request *req);
/* An error answer (400, 408, 413, 414, 417, 431, 501, 503, 505) that closes the
 * connection. */
void pf_handlers_error(struct pf_handler_ctx *ctx, uint16_t status, struct pf_buf *out);

#endif
