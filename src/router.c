#include "preforkd/router.h"

#include <string.h>

/* The methods a route takes; any other known method there is 405. */
#define PF_GET_HEAD (1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD)

const struct pf_route_info pf_routes[PF_ROUTE_COUNT] = {
    [PF_ROUTE_SUM] = {"/", "/", PF_GET_HEAD},
    [PF_ROUTE_HEALTH] = {"/health", "/health", PF_GET_HEAD},
    [PF_ROUTE_HEAVY] = {"/heavy", "/heavy", PF_GET_HEAD},
    [PF_ROUTE_METRICS] = {NULL, "/metrics", PF_GET_HEAD}, /* at metrics.path */
    [PF_ROUTE_NONE] = {NULL, "other", 0},
    [PF_ROUTE_SERVER_OPTIONS] = {"*", "other", 1u << PF_METHOD_OPTIONS},
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
        methods = pf_routes[PF_ROUTE_METRICS].methods;
    }
    for (int r = 0; r < PF_ROUTE_COUNT && found == PF_ROUTE_NONE; r++) {
        const char *path = pf_routes[r].path;
        if (path && req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0) {
            found = (enum pf_route)r;
            methods = pf_routes[r].methods;
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
