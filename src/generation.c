#include "preforkd/generation.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pf_generation_open(struct pf_generation **out, const struct pf_config *cfg, uint32_t id,
                       uint32_t nslots, const struct pf_generation *prev, int activated_fds,
                       char *err, size_t errlen)
{
    struct pf_generation *g = calloc(1, sizeof(*g));
    struct pf_config *c = malloc(sizeof(*c));
    if (!g || !c) {
        free(g);
        free(c);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *c = *cfg;
    g->cfg = c;
    g->id = id;
    g->nslots = nslots;
    int rc = prev ? 0 : pf_listeners_from_systemd(&g->ls, c, activated_fds, nslots, err, errlen);
    if (rc == 0)
        rc = pf_listeners_open(&g->ls, c, nslots, prev ? &prev->ls : NULL, err, errlen);
    if (rc < 0) {
        free(c);
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void pf_generation_free(struct pf_generation **g)
{
    if (!*g)
        return;
    pf_listeners_close(&(*g)->ls);
    free((*g)->cfg);
    free(*g);
    *g = NULL;
}

struct pf_generation *pf_generations_current(struct pf_generations *list)
{
    assert(list->n > 0);
    return list->gens[0];
}

struct pf_generation *pf_generations_find(struct pf_generations *list, uint32_t id)
{
    for (size_t k = 0; k < list->n; k++)
        if (list->gens[k]->id == id)
            return list->gens[k];
    return NULL;
}

void pf_generations_push(struct pf_generations *list, struct pf_generation *g)
{
    assert(list->n < PF_MAX_GENERATIONS);
    memmove(&list->gens[1], &list->gens[0], list->n * sizeof(list->gens[0]));
    list->gens[0] = g;
    list->n++;
}

void pf_generations_fall_back(struct pf_generations *list)
{
    assert(list->n >= 2);
    struct pf_generation *g = list->gens[0];
    list->gens[0] = list->gens[1];
    list->gens[1] = g;
    pf_listeners_close(&g->ls);
}

void pf_generations_close_old_sockets(struct pf_generations *list)
{
    for (size_t k = 1; k < list->n; k++)
        pf_listeners_close(&list->gens[k]->ls);
}

void pf_generations_drop(struct pf_generations *list, uint32_t id)
{
    for (size_t k = 1; k < list->n; k++) {
        if (list->gens[k]->id != id)
            continue;
        pf_generation_free(&list->gens[k]);
        memmove(&list->gens[k], &list->gens[k + 1], (list->n - k - 1) * sizeof(list->gens[0]));
        list->n--;
        return;
    }
}

void pf_generations_free(struct pf_generations *list)
{
    for (size_t k = 0; k < list->n; k++)
        pf_generation_free(&list->gens[k]);
    list->n = 0;
}
