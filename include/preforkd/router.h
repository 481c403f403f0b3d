#ifndef PREFORKD_ROUTER_H
#define PREFORKD_ROUTER_H

#include <stdint.h>

#include "preforkd/http.h"
#include "preforkd/route.h"

struct pf_route_match {
    enum pf_route route; /* PF_ROUTE_NONE when status is not 200 */
    uint16_t status;     /* 200, 404 (unknown path) or 405 (known path, other method) */
};

/* metrics_path: where /metrics is served, or NULL when it is disabled. */
struct pf_route_match pf_router_match(const struct pf_request *req, const char *metrics_path);

#endif
