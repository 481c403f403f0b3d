#ifndef PREFORKD_METRICS_H
#define PREFORKD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/scoreboard.h"

/* Renders the scoreboard in Prometheus' text exposition format (version 0.0.4): per
 * worker slot (label worker="N", counters of exited workers folded in so they never go
 * back) and for the whole service. *out is malloc'd; the caller frees it. Returns 0 or
 * negative errno. */
int pf_metrics_render(const struct pf_scoreboard *scoreboard, int64_t now_ms, char **out,
                      size_t *len);

#endif
