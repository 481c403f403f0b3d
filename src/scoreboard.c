#include "preforkd/scoreboard.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "preforkd/shm.h"

static size_t board_size(uint32_t nrows)
{
    return sizeof(struct pf_scoreboard_cluster) + sizeof(struct pf_scoreboard_row) * nrows;
}

/* The board over a mapped region (fd and mem are the board's from here on). */
static int wrap(struct pf_scoreboard **out, int fd, void *mem, uint32_t nrows)
{
    struct pf_scoreboard *b = calloc(1, sizeof(*b));
    if (!b) {
        pf_shm_free(fd, mem, board_size(nrows));
        return -ENOMEM;
    }
    b->fd = fd;
    b->nrows = nrows;
    b->cluster = mem;
    b->rows = (struct pf_scoreboard_row *)((char *)mem + sizeof(struct pf_scoreboard_cluster));
    *out = b;
    return 0;
}

int pf_scoreboard_new(struct pf_scoreboard **out, uint32_t nrows)
{
    int fd;
    void *mem;
    int rc = pf_shm_new("preforkd-scoreboard", board_size(nrows), &fd, &mem);
    if (rc == 0)
        rc = wrap(out, fd, mem, nrows);
    if (rc < 0)
        return rc;
    /* A new file reads as zeros: every row FREE. */
    (*out)->cluster->magic = PF_SCOREBOARD_MAGIC;
    (*out)->cluster->cluster_size = sizeof(struct pf_scoreboard_cluster);
    (*out)->cluster->row_size = sizeof(struct pf_scoreboard_row);
    return 0;
}

int pf_scoreboard_from_fd(struct pf_scoreboard **out, int fd)
{
    size_t head = sizeof(struct pf_scoreboard_cluster), row = sizeof(struct pf_scoreboard_row);
    int own;
    void *mem;
    size_t size;
    int rc = pf_shm_map(fd, 0, SIZE_MAX, &own, &mem, &size);
    if (rc < 0)
        return rc;
    if (size < head || (size - head) % row != 0 || (size - head) / row > UINT32_MAX) {
        pf_shm_free(own, mem, size);
        return -EPROTO;
    }
    rc = wrap(out, own, mem, (uint32_t)((size - head) / row));
    if (rc < 0)
        return rc;
    const struct pf_scoreboard_cluster *c = (*out)->cluster;
    if (c->magic != PF_SCOREBOARD_MAGIC || c->cluster_size != head || c->row_size != row) {
        pf_scoreboard_free(out);
        return -EPROTO;
    }
    return 0;
}

void pf_scoreboard_free(struct pf_scoreboard **board)
{
    if (!board || !*board)
        return;
    pf_shm_free((*board)->fd, (*board)->cluster, board_size((*board)->nrows));
    free(*board);
    *board = NULL;
}

int pf_scoreboard_claim(struct pf_scoreboard *board, pid_t pid, uint32_t slot, uint32_t generation,
                        int64_t now_ms)
{
    for (uint32_t i = 0; i < board->nrows; i++) {
        struct pf_scoreboard_row *e = &board->rows[i];
        /* Two primaries share the rows for a moment during an upgrade: a row is taken
         * with a compare-and-swap, never by two. */
        uint32_t free_state = PF_WSTATE_FREE;
        if (!atomic_compare_exchange_strong(&e->state, &free_state, PF_WSTATE_CLAIMED))
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
            atomic_fetch_add(&dst->requests[r][k], atomic_load(&src->requests[r][k]));
    /* Atomic additions: during an upgrade both primaries fold exited workers in. */
    atomic_fetch_add(&dst->accepted, atomic_load(&src->accepted));
    atomic_fetch_add(&dst->bytes_in, atomic_load(&src->bytes_in));
    atomic_fetch_add(&dst->bytes_out, atomic_load(&src->bytes_out));
}
