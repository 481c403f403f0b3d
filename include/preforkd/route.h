#ifndef PREFORKD_ROUTE_H
#define PREFORKD_ROUTE_H

#include "preforkd/config.h"

/* The request counters' route dimension: one row per configured route (their index in
 * pf_config.routes), then the metrics route, then everything else ("other": unknown
 * paths, 405s and rejected requests). */
#define PF_STAT_METRICS PF_MAX_ROUTES
#define PF_STAT_OTHER   (PF_MAX_ROUTES + 1)
#define PF_STAT_ROUTES  (PF_MAX_ROUTES + 2)
#define PF_STAT_CLASSES 5 /* 1xx .. 5xx */

#endif
