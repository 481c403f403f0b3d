#ifndef PREFORKD_PRIMARY_H
#define PREFORKD_PRIMARY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/config.h"

#define PF_BACKOFF_FIRST_MS 100
#define PF_BACKOFF_MAX_MS   30000
#define PF_FAST_STOP_MS     3000

/* Delay before respawning a slot whose worker just died: none after a healthy run (at
 * least min_uptime), else doubling from 100 ms up to 30 s, so a worker that cannot start
 * never turns the primary into a fork loop and the service never gives up. */
uint32_t pf_primary_backoff(uint32_t previous_ms, int64_t uptime_ms, uint32_t min_uptime_ms);

/* Binds (or takes systemd's sockets), forks the workers and supervises them until
 * SIGTERM/SIGINT (fast stop) or SIGQUIT (graceful stop); SIGHUP re-reads config_path
 * (NULL: nothing to reload) and replaces the workers without dropping a connection.
 * Returns the process exit status. */
int pf_primary_run(const struct pf_config *cfg, const char *config_path, uint32_t nworkers);

#endif
