#ifndef PREFORKD_ROUTER_H
#define PREFORKD_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/http.h"
#include "preforkd/module.h"
#include "preforkd/route.h"

/* The worker's route table: one entry per configured route (or the seed's three), plus
 * the metrics route. Every entry runs a handler of the one module-API signature, a
 * built-in's or a module's. */
struct pf_route {
    const char *path;
    uint32_t len;
    bool prefix;
    unsigned methods; /* 1 << enum pf_method */
    enum pf_handler_kind kind;
    pf_handler_fn fn;
    void *state;
    unsigned keep; /* PF_HTTP_KEEP_*: what its handler reads of a request */
    uint32_t stat; /* its row in the request counters */
    const struct pf_route_config *cfg;
};

struct pf_router {
    struct pf_route routes[PF_MAX_ROUTES + 1];
    uint32_t n;
};

/* What a request gets: a route (status 200), or 404, or 405 with the methods allowed.
 * OPTIONS * is 200 with no route: the server's methods are in allow. */
struct pf_route_match {
    const struct pf_route *route;
    uint16_t status;
    unsigned allow;
};

/* Builds the table from cfg (the routes must outlive it); handler functions and states
 * are set by the caller (the worker: built-ins and loaded modules). */
void pf_router_init(struct pf_router *r, const struct pf_config *cfg);
struct pf_route_match pf_router_match(const struct pf_router *r, const struct pf_request *req);
/* The label of a counter row: a route's path, the metrics path, or "other". */
const char *pf_router_stat_label(const struct pf_config *cfg, uint32_t stat);

#endif
