#ifndef PREFORKD_STATIC_ROUTE_H
#define PREFORKD_STATIC_ROUTE_H

#include "preforkd/config.h"
#include "preforkd/handlers.h"
#include "preforkd/mime.h"

/* The built-in `static` handler: a route's root directory served with the static
 * module's rules (static.h) and the worker's media types (mime.h). */
struct pf_static_route {
    int root_fd; /* O_PATH: everything is opened beneath it */
    const struct pf_route_config *cfg;
    const struct pf_mime *mime;
};

/* Opens the route's root; negative errno with the reason in err. */
int pf_static_route_open(struct pf_static_route *s, const struct pf_route_config *cfg,
                         const struct pf_mime *mime, char *err, size_t errlen);
void pf_static_route_close(struct pf_static_route *s);
/* The handler (state: a struct pf_static_route). */
int pf_static_route_handle(void *state, const struct pf_req *req, struct pf_resp *resp);

#endif
