#ifndef PREFORKD_ROUTE_H
#define PREFORKD_ROUTE_H

#include <stdint.h>

/* The routes the daemon serves: one enum, and one table (pf_routes, in router.c) that
 * the router, the request counters, /metrics and the configuration's checks all read. */
enum pf_route {
    PF_ROUTE_SUM,
    PF_ROUTE_HEALTH,
    PF_ROUTE_HEAVY,
    PF_ROUTE_METRICS,
    PF_ROUTE_NONE,           /* unknown paths and rejected requests: counted as "other" */
    PF_ROUTE_SERVER_OPTIONS, /* OPTIONS *: what the server as a whole allows */
    PF_ROUTE_COUNT
};

/* The request counters' route dimension: every route up to PF_ROUTE_NONE; the others
 * count as PF_ROUTE_NONE. */
#define PF_STAT_ROUTES  (PF_ROUTE_NONE + 1)
#define PF_STAT_CLASSES 5 /* 1xx .. 5xx */

struct pf_route_info {
    const char *path;  /* fixed path, NULL where it is configured (metrics.path) or none */
    const char *label; /* the route="..." label of its counters */
    unsigned methods;  /* 1 << enum pf_method it takes; others are 405 */
};

extern const struct pf_route_info pf_routes[PF_ROUTE_COUNT];

static inline enum pf_route pf_route_stat(enum pf_route r)
{
    return r < PF_STAT_ROUTES ? r : PF_ROUTE_NONE;
}

#endif
