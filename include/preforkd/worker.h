#ifndef PREFORKD_WORKER_H
#define PREFORKD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/counters.h"
#include "preforkd/scoreboard.h"

#include "preforkd/listener.h"

/* While draining, a keep-alive connection idle this long is closed; one that sends a
 * request first gets its answer with "Connection: close". Closing idle connections at
 * once would race with requests already on the wire. */
#define PF_DRAIN_IDLE_MS 1000

/* This binary's version (PF_VERSION, and a suffix a test build sets). */
const char *pf_build_version(void);

/* A worker's exit status when a module did not load or init (EX_CONFIG). */
#define PF_WORKER_EXIT_MODULE 78

/* Runs a worker until it is told to stop or its primary goes away; returns the exit
 * status. ls is its generation's socket set: it accepts on its slot's sockets, and on
 * another slot's while the primary asks it to cover for that slot (reuseport, slot
 * without a serving worker). ipc_fd is the worker's end of the socketpair whose EOF
 * means the primary is gone. */
int pf_worker_run(const struct pf_config *cfg, uint32_t slot, const struct pf_listeners *ls,
                  int ipc_fd, const struct pf_scoreboard *scoreboard, struct pf_scoreboard_row *row,
                  struct pf_counters_region *counters);

#endif
