#ifndef PREFORKD_SCOREBOARD_H
#define PREFORKD_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/config.h"
#include "preforkd/route.h"

/* The scoreboard: one MAP_SHARED|MAP_ANONYMOUS region created by the primary before any
 * fork. While a worker runs, it is the only writer of the counters in its row, with
 * relaxed atomic stores to its own cache line: no locks, nothing shared on the hot
 * path. The primary writes a row's identity (claim, pid, release) before the worker
 * starts and after it has exited, folds an exited worker's counters into its slot's
 * retired counters, and writes the cluster block; it reads every row (heartbeats for
 * the watchdog, request counts for recycling). */

enum pf_worker_state {
    PF_WSTATE_FREE,
    PF_WSTATE_STARTING,
    PF_WSTATE_SERVING,
    PF_WSTATE_DRAINING,
    PF_WSTATE_CLAIMED /* taken by a primary, being filled in */
};

struct pf_counters {
    _Atomic uint64_t requests[PF_STAT_ROUTES][PF_STAT_CLASSES];
    _Atomic uint64_t accepted;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
};

struct pf_scoreboard_row {
    _Atomic int32_t pid;
    _Atomic uint32_t state;
    uint32_t slot;
    uint32_t generation;
    _Atomic int64_t started_ms;   /* CLOCK_MONOTONIC, the same clock in every process */
    _Atomic int64_t heartbeat_ms; /* written once per event-loop iteration */
    _Atomic uint64_t requests;    /* all requests answered (recycling reads it) */
    _Atomic uint64_t connections; /* open now */
    _Atomic uint64_t rss;         /* bytes, sampled by the worker once a second */
    _Atomic uint64_t rps;         /* requests answered in the last second */
    _Atomic uint32_t in_route;    /* a module handler is running: its route's index + 1 */
    struct pf_counters c;
} __attribute__((aligned(64)));
/* Each row on cache lines of its own: a worker's stores never share a line with another
 * worker's (no false sharing on the hot path). */
_Static_assert(_Alignof(struct pf_scoreboard_row) == 64 &&
                   sizeof(struct pf_scoreboard_row) % 64 == 0,
               "a scoreboard row spans whole cache lines");

/* Only the owning worker writes its counters, so an increment needs no atomic
 * read-modify-write: a relaxed load and store (plain moves on x86) keep readers from
 * seeing torn values. */
static inline void pf_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Adds src's counters into dst (the primary, folding an exited worker into its slot). */
void pf_counters_add(struct pf_counters *dst, const struct pf_counters *src);
/* The status class index of an HTTP status, 0..4. */
static inline unsigned pf_status_class(unsigned status)
{
    return status >= 100 && status < 600 ? status / 100 - 1 : 4;
}

/* Written by the primary, read by any worker (for /health and /metrics). */
struct pf_scoreboard_cluster {
    /* The layout, checked by a new binary that takes the region over (upgrade). */
    uint64_t magic;
    uint32_t cluster_size, row_size;
    _Atomic int32_t primary_pid;
    _Atomic uint32_t configured;
    _Atomic uint32_t serving;
    _Atomic uint32_t degraded; /* a slot without a serving worker (crash backoff, hung) */
    _Atomic uint32_t state;    /* enum pf_service_state (readiness.h): /ready, lame duck */
    _Atomic uint32_t generation;
    _Atomic int64_t started_ms;
    _Atomic uint64_t restarts;
    _Atomic uint64_t reloads;
    _Atomic uint64_t backoffs;
    _Atomic uint64_t slot_restarts[PF_MAX_WORKERS];
    /* Counters of the slot's workers that have exited, so that a slot's counters only
     * ever grow across restarts, recycling and reloads. */
    struct pf_counters retired[PF_MAX_WORKERS];
} __attribute__((aligned(64)));

#define PF_SCOREBOARD_MAGIC UINT64_C(0x3162726f63736670) /* "pfscorb1" */

struct pf_scoreboard {
    int fd; /* the memfd behind it, handed to a new binary on upgrade */
    uint32_t nrows;
    struct pf_scoreboard_cluster *cluster;
    struct pf_scoreboard_row *rows;
};

/* A new region (a sealed memfd mapped shared: handed over by its fd on upgrade). */
int pf_scoreboard_new(struct pf_scoreboard **out, uint32_t nrows);
/* The region behind fd, made by a binary of this layout; -EPROTO for another layout,
 * -EINVAL for a file that is not a sealed region (see shm.h). */
int pf_scoreboard_from_fd(struct pf_scoreboard **out, int fd);
void pf_scoreboard_free(struct pf_scoreboard **board);
/* A free row for a new worker, claimed for pid; -1 when full. */
int pf_scoreboard_claim(struct pf_scoreboard *board, pid_t pid, uint32_t slot, uint32_t generation,
                        int64_t now_ms);
void pf_scoreboard_release(struct pf_scoreboard *board, int index);

static inline void pf_scoreboard_heartbeat(struct pf_scoreboard_row *e, int64_t now_ms,
                                           uint64_t requests)
{
    atomic_store_explicit(&e->heartbeat_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&e->requests, requests, memory_order_relaxed);
}

#endif
