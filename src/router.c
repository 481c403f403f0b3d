#include "preforkd/router.h"

#include <string.h>

/* The methods a route takes; any other known method there is 405. */
#define PF_GET_HEAD (1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD)

static const struct {
    const char *path;
    uint16_t len;
    enum pf_route route;
    unsigned methods;
} routes[] = {
    {"/", 1, PF_ROUTE_SUM, PF_GET_HEAD},
    {"/health", 7, PF_ROUTE_HEALTH, PF_GET_HEAD},
    {"/heavy", 6, PF_ROUTE_HEAVY, PF_GET_HEAD},
    {"*", 1, PF_ROUTE_SERVER_OPTIONS, 1u << PF_METHOD_OPTIONS},
};

struct pf_route_match pf_router_match(const struct pf_request *req, const char *metrics_path)
{
    struct pf_route_match m = {PF_ROUTE_NONE, 404};
    if (req->path_truncated)
        return m;
    enum pf_route found = PF_ROUTE_NONE;
    unsigned methods = 0;
    if (metrics_path && req->path_len == strlen(metrics_path) &&
        memcmp(req->path, metrics_path, req->path_len) == 0) {
        found = PF_ROUTE_METRICS;
        methods = PF_GET_HEAD;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && found == PF_ROUTE_NONE; i++) {
        if (req->path_len == routes[i].len &&
            memcmp(req->path, routes[i].path, req->path_len) == 0) {
            found = routes[i].route;
            methods = routes[i].methods;
        }
    }
    if (found == PF_ROUTE_NONE)
        return m;
    if (!(methods & 1u << req->method)) {
        m.status = 405;
        return m;
    }
    m.route = found;
    m.status = 200;
    return m;
}
