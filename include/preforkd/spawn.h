#ifndef PREFORKD_SPAWN_H
#define PREFORKD_SPAWN_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/config.h"
#include "preforkd/counters.h"
#include "preforkd/listener.h"
#include "preforkd/scoreboard.h"

/* The signals the primary reads from its signalfd (blocked in every thread), from the
 * one table of signal dispositions that also sets up each worker. */
void pf_spawn_primary_signals(sigset_t *set);

/* What a new worker needs; close_fds lists the primary's descriptors the child must not
 * keep (siblings' IPC ends, the signalfd, other generations' sockets): each would keep
 * something alive that should die with its owner. */
struct pf_spawn {
    const struct pf_config *cfg;
    const struct pf_listeners *ls; /* its generation's sockets */
    uint32_t slot;
    struct pf_scoreboard *scoreboard;
    int row; /* its row in the scoreboard */
    struct pf_counters_region *counters;
    pid_t primary;
    const int *close_fds;
    size_t nclose;
};

/* Forks a worker: in the child, closes what it must not hold, sets the worker's signal
 * dispositions and runs pf_worker_run(); never returns there. In the primary, returns
 * the pid and the primary's end of the IPC socketpair in *ipc_fd, or negative errno. */
pid_t pf_spawn_worker(const struct pf_spawn *s, int *ipc_fd);

#endif
