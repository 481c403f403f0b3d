#ifndef PREFORKD_STATS_H
#define PREFORKD_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/* The scoreboard: one MAP_SHARED|MAP_ANONYMOUS region created by the primary before any
 * fork. Each worker process owns one entry and writes only that entry, with relaxed
 * atomic stores to its own cache line: no locks, nothing shared on the hot path. The
 * primary reads every entry (heartbeats for the watchdog, request counts for
 * recycling). */

enum pf_worker_state { PF_WSTATE_FREE, PF_WSTATE_STARTING, PF_WSTATE_SERVING, PF_WSTATE_DRAINING };

struct pf_board_entry {
    _Atomic int32_t pid;
    _Atomic uint32_t state;
    uint32_t slot;
    uint32_t generation;
    _Atomic int64_t started_ms;   /* CLOCK_MONOTONIC, the same clock in every process */
    _Atomic int64_t heartbeat_ms; /* written once per event-loop iteration */
    _Atomic uint64_t requests;
    _Atomic uint64_t connections;
} __attribute__((aligned(64)));

/* Written by the primary, read by any worker (for /health). */
struct pf_board_cluster {
    _Atomic uint32_t configured;
    _Atomic uint32_t serving;
    _Atomic uint32_t degraded; /* a slot without a serving worker (crash backoff, hung) */
    _Atomic uint32_t generation;
    _Atomic uint64_t restarts;
    _Atomic uint64_t reloads;
} __attribute__((aligned(64)));

struct pf_scoreboard {
    uint32_t nentries;
    struct pf_board_cluster *cluster;
    struct pf_board_entry *entries;
};

int pf_scoreboard_new(struct pf_scoreboard **out, uint32_t nentries);
void pf_scoreboard_free(struct pf_scoreboard **board);
/* A free entry for a new worker, claimed for pid; -1 when full. */
int pf_scoreboard_claim(struct pf_scoreboard *board, pid_t pid, uint32_t slot, uint32_t generation,
                        int64_t now_ms);
void pf_scoreboard_release(struct pf_scoreboard *board, int index);

static inline void pf_board_heartbeat(struct pf_board_entry *e, int64_t now_ms, uint64_t requests)
{
    atomic_store_explicit(&e->heartbeat_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&e->requests, requests, memory_order_relaxed);
}

#endif
