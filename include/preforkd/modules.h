#ifndef PREFORKD_MODULES_H
#define PREFORKD_MODULES_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/module.h"
#include "preforkd/router.h"

/* The handler modules of a configuration, loaded into a worker (after fork, after the
 * privilege drop): dlopen, descriptor and API-version check, init with the module's
 * config map; fini and dlclose when the worker ends. */
struct pf_loaded_module {
    void *dl;
    const struct pf_module *desc;
    void *state;
    bool initialised;
};

struct pf_modules {
    struct pf_loaded_module m[PF_MAX_MODULES];
    uint32_t n;
};

/* Loads every module of cfg and points the router's module routes at their handlers.
 * On failure returns negative errno with "FILE:LINE:COLUMN: message" in err, naming the
 * configuration entry at fault (the module, or the route naming a missing handler). */
int pf_modules_load(struct pf_modules *mods, const struct pf_config *cfg, struct pf_router *router,
                    char *err, size_t errlen);
void pf_modules_unload(struct pf_modules *mods);
/* The same load, then unload, in a child process, so that a module's crash or a
 * global side effect stays there: `preforkd -t` and the primary's start use it.
 * Returns 0, or -EINVAL with the message in err. */
int pf_modules_check(const struct pf_config *cfg, char *err, size_t errlen);

#endif
