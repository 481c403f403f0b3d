#include "preforkd/scoreboard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int pf_scoreboard_new(struct pf_scoreboard **out, uint32_t nrows)
{
    struct pf_scoreboard *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    size_t size = sizeof(struct pf_scoreboard_cluster) + sizeof(struct pf_scoreboard_row) * nrows;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        int e = errno;
        free(b);
        return -e;
    }
    b->nrows = nrows;
    b->cluster = mem;
    /* Anonymous mappings start zeroed: every row FREE. */
    b->rows = (struct pf_scoreboard_row *)((char *)mem + sizeof(struct pf_scoreboard_cluster));
    *out = b;
    return 0;
}

void pf_scoreboard_free(struct pf_scoreboard **board)
{
    if (!board || !*board)
        return;
    munmap((*board)->cluster, sizeof(struct pf_scoreboard_cluster) +
                                  sizeof(struct pf_scoreboard_row) * (*board)->nrows);
    free(*board);
    *board = NULL;
}

int pf_scoreboard_claim(struct pf_scoreboard *board, pid_t pid, uint32_t slot, uint32_t generation,
                        int64_t now_ms)
{
    for (uint32_t i = 0; i < board->nrows; i++) {
        struct pf_scoreboard_row *e = &board->rows[i];
        if (atomic_load(&e->state) != PF_WSTATE_FREE)
            continue;
        e->slot = slot;
        e->generation = generation;
        atomic_store(&e->started_ms, now_ms);
        atomic_store(&e->heartbeat_ms, now_ms);
        atomic_store(&e->requests, 0);
        atomic_store(&e->connections, 0);
        atomic_store(&e->rss, 0);
        atomic_store(&e->rps, 0);
        atomic_store(&e->in_route, 0);
        memset(&e->c, 0, sizeof(e->c));
        atomic_store(&e->pid, pid);
        atomic_store(&e->state, PF_WSTATE_STARTING);
        return (int)i;
    }
    return -1;
}

void pf_scoreboard_release(struct pf_scoreboard *board, int index)
{
    if (index < 0 || (uint32_t)index >= board->nrows)
        return;
    struct pf_scoreboard_row *e = &board->rows[index];
    atomic_store(&e->pid, 0);
    atomic_store(&e->state, PF_WSTATE_FREE);
}

void pf_counters_add(struct pf_counters *dst, const struct pf_counters *src)
{
    for (int r = 0; r < PF_STAT_ROUTES; r++)
        for (int k = 0; k < PF_STAT_CLASSES; k++)
            pf_count(&dst->requests[r][k], atomic_load(&src->requests[r][k]));
    pf_count(&dst->accepted, atomic_load(&src->accepted));
    pf_count(&dst->bytes_in, atomic_load(&src->bytes_in));
    pf_count(&dst->bytes_out, atomic_load(&src->bytes_out));
}
