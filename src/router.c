#include "preforkd/router.h"

#include <string.h>

static const struct {
    const char *path;
    uint16_t len;
    enum pf_route route;
} routes[] = {
    {"/", 1, PF_ROUTE_SUM},
    {"/health", 7, PF_ROUTE_HEALTH},
    {"/heavy", 6, PF_ROUTE_HEAVY},
};

struct pf_route_match pf_router_match(const struct pf_request *req, const char *metrics_path)
{
    struct pf_route_match m = {PF_ROUTE_NONE, 404};
    if (req->path_truncated)
        return m;
    if (metrics_path && req->path_len == strlen(metrics_path) &&
        memcmp(req->path, metrics_path, req->path_len) == 0) {
        m.route = req->method == PF_METHOD_OTHER ? PF_ROUTE_NONE : PF_ROUTE_METRICS;
        m.status = req->method == PF_METHOD_OTHER ? 405 : 200;
        return m;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (req->path_len == routes[i].len &&
            memcmp(req->path, routes[i].path, req->path_len) == 0) {
            if (req->method == PF_METHOD_OTHER) {
                m.status = 405;
            } else {
                m.route = routes[i].route;
                m.status = 200;
            }
            return m;
        }
    }
    return m;
}
