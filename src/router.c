#include "preforkd/router.h"

#include <string.h>

void pf_router_init(struct pf_router *r, const struct pf_config *cfg)
{
    memset(r, 0, sizeof(*r));
    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        const struct pf_route_config *rc = &cfg->routes[i];
        r->routes[r->n++] = (struct pf_route){.path = rc->path,
                                              .len = (uint32_t)strlen(rc->path),
                                              .prefix = rc->prefix,
                                              .methods = rc->methods,
                                              .kind = rc->kind,
                                              .stat = i,
                                              .cfg = rc};
    }
    if (cfg->metrics_enabled)
        r->routes[r->n++] = (struct pf_route){.path = cfg->metrics_path,
                                              .len = (uint32_t)strlen(cfg->metrics_path),
                                              .methods = 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD,
                                              .kind = PF_HANDLER_METRICS,
                                              .stat = PF_STAT_METRICS};
}

const char *pf_router_stat_label(const struct pf_config *cfg, uint32_t stat)
{
    if (stat < cfg->nroutes)
        return cfg->routes[stat].path;
    return stat == PF_STAT_METRICS ? cfg->metrics_path : "other";
}

struct pf_route_match pf_router_match(const struct pf_router *r, const struct pf_request *req)
{
    struct pf_route_match m = {NULL, 404, 0};
    /* OPTIONS * asks what the server as a whole allows (RFC 9110 9.3.7). */
    if (req->path_len == 1 && req->path[0] == '*') {
        if (req->method != PF_METHOD_OPTIONS)
            return m; /* refused by the parser already */
        m.status = 200;
        for (uint32_t i = 0; i < r->n; i++)
            m.allow |= r->routes[i].methods;
        return m;
    }
    /* An exact path wins; else the longest prefix. */
    const struct pf_route *best = NULL;
    for (uint32_t i = 0; i < r->n; i++) {
        const struct pf_route *rt = &r->routes[i];
        if (!rt->prefix) {
            if (rt->len == req->path_len && memcmp(rt->path, req->path, rt->len) == 0) {
                best = rt;
                break;
            }
        } else if (rt->len <= req->path_len && memcmp(rt->path, req->path, rt->len) == 0 &&
                   (!best || (best->prefix && rt->len > best->len))) {
            best = rt;
        }
    }
    if (!best)
        return m;
    if (!(best->methods & 1u << req->method)) {
        m.status = 405;
        m.allow = best->methods;
        return m;
    }
    m.route = best;
    m.status = 200;
    return m;
}
