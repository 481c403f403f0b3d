#ifndef PREFORKD_GENERATION_H
#define PREFORKD_GENERATION_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/listener.h"

/* One configuration and the sockets it listens on. A reload makes a new generation:
 * its sockets are the old ones dup()ed where the address stays (never closed, never
 * re-bound, the accept queue carries over) and new ones where it is new. An old
 * generation lives until its last worker has drained. */
struct pf_generation {
    uint32_t id;
    uint32_t nslots;
    struct pf_config *cfg;
    struct pf_listeners ls;
};

#define PF_MAX_GENERATIONS 16

/* gens[0] is the current generation; the rest drain. */
struct pf_generations {
    struct pf_generation *gens[PF_MAX_GENERATIONS];
    size_t n;
};

/* A generation for cfg (copied) with nslots workers. The first (prev NULL) takes the
 * activated_fds sockets systemd passed, if any, else binds; a reload's shares prev's
 * sockets where the address stays. err gets the reason on failure. */
int pf_generation_open(struct pf_generation **out, const struct pf_config *cfg, uint32_t id,
                       uint32_t nslots, const struct pf_generation *prev, int activated_fds,
                       char *err, size_t errlen);
void pf_generation_free(struct pf_generation **g);

struct pf_generation *pf_generations_current(struct pf_generations *list);
struct pf_generation *pf_generations_find(struct pf_generations *list, uint32_t id);
/* Makes g current (the list must have room). */
void pf_generations_push(struct pf_generations *list, struct pf_generation *g);
/* An abandoned reload: the generation behind the current one is current again; the
 * abandoned one stays, second, until its workers are gone. */
void pf_generations_fall_back(struct pf_generations *list);
/* Closes the sockets of every generation but the current one (after promotion: the
 * current one holds dups of the sockets it shares). */
void pf_generations_close_old_sockets(struct pf_generations *list);
/* Frees the old generation id (its workers are gone). */
void pf_generations_drop(struct pf_generations *list, uint32_t id);
void pf_generations_free(struct pf_generations *list);

#endif
