#ifndef PREFORKD_HANDLERS_H
#define PREFORKD_HANDLERS_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "preforkd/buf.h"
#include "preforkd/counters.h"
#include "preforkd/http.h"
#include "preforkd/module.h"
#include "preforkd/procfs.h"
#include "preforkd/response.h"
#include "preforkd/router.h"
#include "preforkd/scoreboard.h"

/* A handler's body is built in one per-worker buffer that grows to this at most. */
#define PF_BODY_MAX (16u << 20)
/* A file body this small is copied after its head rather than sent with sendfile. */
#define PF_FILE_INLINE_MAX (8u << 10)
/* Header fields a handler may add, in all. */
#define PF_RESP_FIELDS_MAX 1024

/* Per-worker state the handlers read: identity, clocks, route work sizes, the
 * once-a-second memory sample, and the buffers a response is built in. Owned by the
 * worker; no fds. */
struct pf_handler_ctx {
    pid_t pid;
    unsigned slot;
    int64_t start_ms;
    int64_t now_ms;
    uint64_t sum_iterations;
    uint64_t heavy_iterations;
    struct pf_response_cache responses;
    int64_t memory_sampled_ms;
    struct pf_memory memory;
    /* The scoreboard (NULL outside a daemon): the cluster's state for /health, every
     * worker's counters for /metrics, this worker's own row. */
    const struct pf_scoreboard *scoreboard;
    struct pf_scoreboard_row *row;
    const struct pf_config *cfg; /* route labels for /metrics (NULL: none) */
    bool fail_when_degraded;
    bool ready_when_degraded;
    const struct pf_router *router;
    const char *version;                 /* the binary's, for /health (NULL: not shown) */
    struct pf_counters_region *counters; /* the shared counters (NULL outside a daemon) */
    struct pf_redis *redis; /* shared.backend redis: the worker's connection; NULL: memory */
    /* Reads the process's memory figures; a function pointer so tests can fake it. */
    int (*sample_memory)(struct pf_memory *out);
    char *body; /* the response body buffer, grown up to PF_BODY_MAX */
    size_t body_cap;
    char *path; /* a request's decoded path, when a handler asks for it */
    size_t path_cap;
};

/* The request as the module API reads it (module.h's struct pf_req). */
struct pf_req {
    struct pf_handler_ctx *ctx;
    const struct pf_http *http;
    const struct pf_request *r;
    const struct sockaddr *peer;
    socklen_t peer_len;
    const char *path; /* decoded, once asked for */
    size_t path_len;
};

/* An answer that waits for the shared store (pf_counter_add_then with the redis backend):
 * one per connection, since a connection answers in order and parses nothing more until
 * it is complete. seq tells a late reply for a connection that has since closed (or moved
 * on) from the one it waits for. */
struct pf_defer {
    uint32_t seq;
    pf_counter_then_fn then;
    void *state;
};

/* The response a handler writes (module.h's struct pf_resp). */
struct pf_resp {
    struct pf_handler_ctx *ctx;
    uint16_t status;
    enum pf_header_block block;
    char fields[PF_RESP_FIELDS_MAX]; /* "\r\nName: value" each */
    size_t fields_len;
    struct pf_buf body;
    bool failed;    /* a refused header or a body past PF_BODY_MAX: the answer is a 500 */
    unsigned allow; /* methods for an Allow field (405, OPTIONS) */
    char *ext;      /* a body built elsewhere (malloc'd; /metrics), instead of body */
    size_t ext_len;
    int file_fd; /* a file body (static): sent with sendfile after the head; -1 none */
    uint64_t file_off, file_len;
    const struct pf_req *req; /* the request it answers, for pf_counter_add_then */
    struct pf_defer *defer;   /* where a deferred answer waits (NULL: it cannot) */
    bool deferred;            /* the answer comes later, from the shared store's reply */
};

void pf_handler_ctx_init(struct pf_handler_ctx *ctx, pid_t pid, int64_t start_ms,
                         uint64_t sum_iterations, uint64_t heavy_iterations);
void pf_handler_ctx_free(struct pf_handler_ctx *ctx);
/* Advances the clocks; refreshes the Date header when the second changes. */
void pf_handler_ctx_tick(struct pf_handler_ctx *ctx, int64_t now_ms, time_t wall_sec);

/* sum of 0..n-1, computed by really looping: this is the seed's CPU-bound work. */
uint64_t pf_handlers_sum(uint64_t n);

/* The built-in handler of a kind (module handlers come from their modules). */
pf_handler_fn pf_handlers_builtin(enum pf_handler_kind kind);
/* What a built-in of that kind reads of a request (PF_HTTP_KEEP_*). */
unsigned pf_handlers_builtin_keep(enum pf_handler_kind kind);

/* What an answer was, for the counters and the access log, and what the connection
 * sends after the head in out: ext (malloc'd, the connection frees it) or a file. */
struct pf_answer {
    uint32_t stat; /* the counters' route row */
    uint16_t status;
    uint64_t body_bytes;
    char *ext;
    size_t ext_len;
    int file_fd;
    uint64_t file_off, file_len;
    bool deferred; /* nothing was written: the answer waits in defer for the store */
};

/* Answers one parsed request: the head (and a body that fits) into out, which has at
 * least PF_RESPONSE_MAX bytes free; a larger body into answer->ext. Or, when the handler
 * waits for the shared store, writes nothing and sets answer->deferred: the connection
 * then calls pf_handlers_resume with the store's reply. */
void pf_handlers_respond(struct pf_handler_ctx *ctx, const struct pf_http *http,
                         const struct sockaddr *peer, socklen_t peer_len, struct pf_defer *defer,
                         struct pf_buf *out, struct pf_answer *answer);
/* Finishes a deferred answer with the store's reply: value, or err (negative errno) for
 * a store that failed or was too slow, which answers 503. As pf_handlers_respond, and it
 * may defer again. */
void pf_handlers_resume(struct pf_handler_ctx *ctx, const struct pf_http *http,
                        const struct sockaddr *peer, socklen_t peer_len, struct pf_defer *defer,
                        uint64_t value, int err, struct pf_buf *out, struct pf_answer *answer);
/* True when req's route will answer it with success, so its body is worth asking for
 * (Expect: 100-continue); false when the final status is known from the head alone. */
bool pf_handlers_takes_body(const struct pf_handler_ctx *ctx, const struct pf_request *req);
/* Whether every answer now closes its connection: the primary's lame duck, read from the
 * scoreboard (never outside a daemon). */
bool pf_handlers_closes_connections(const struct pf_handler_ctx *ctx);
/* An error answer (400, 408, 413, 414, 417, 431, 501, 503, 505) that closes the
 * connection. */
void pf_handlers_error(struct pf_handler_ctx *ctx, uint16_t status, struct pf_buf *out);
/* The route callback for the parser: matches req and says what its handler reads. */
unsigned pf_handlers_route(void *ctx, struct pf_request *req);

#endif
