#ifndef PREFORKD_METRICS_H
#define PREFORKD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preforkd/counters.h"
#include "preforkd/scoreboard.h"

/* Renders the scoreboard (route labels from cfg; NULL: the built-in routes) in Prometheus' text
 * exposition format (version 0.0.4): per worker slot (label worker="N", counters of exited workers
 * folded in so they never go back) and for the whole service. *out is malloc'd; the caller frees
 * it. Returns 0 or negative errno. */
int pf_metrics_render(const struct pf_scoreboard *scoreboard, const struct pf_config *cfg,
                      const struct pf_counters_region *counters, int64_t now_ms, char **out,
                      size_t *len);

/* Every metric family /metrics exposes: one table, keyed by this enum, which the
 * renderer and `preforkd status` (which reads /metrics back) both use. */
enum pf_metric {
    /* per worker slot (label worker="N") */
    PF_M_REQUESTS, /* also labelled route and code */
    PF_M_ACCEPTED,
    PF_M_RECEIVED_BYTES,
    PF_M_SENT_BYTES,
    PF_M_CONNECTIONS,
    PF_M_RSS,
    PF_M_RPS,
    PF_M_WORKER_RESTARTS,
    PF_M_WORKER_UPTIME,
    PF_M_HEARTBEAT_AGE,
    PF_M_WORKER_INFO, /* labels pid, generation, state; value 1 */
    /* the whole service */
    PF_M_CONFIGURED,
    PF_M_SERVING,
    PF_M_DEGRADED,
    PF_M_GENERATION,
    PF_M_RESTARTS,
    PF_M_RELOADS,
    PF_M_BACKOFFS,
    PF_M_UPTIME,
    PF_M_READY, /* 1 while /ready answers 200 */
    PF_M_STATE, /* label state; 1 for the primary's current phase, 0 for the others */
    PF_METRIC_COUNT
};

struct pf_metric_family {
    const char *name;
    const char *type; /* "counter" or "gauge" */
    const char *help;
    bool per_slot;
};

extern const struct pf_metric_family pf_metric_families[PF_METRIC_COUNT];

#endif
