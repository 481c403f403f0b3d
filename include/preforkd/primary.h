#ifndef PREFORKD_PRIMARY_H
#define PREFORKD_PRIMARY_H

#include <stdbool.h>
#include <stddef.h>
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

/* Whether the primary may send systemd WATCHDOG=1 while a worker's heartbeat is this
 * old: yes while it is fresh or the primary's own escalation for it (SIGABRT at
 * worker_timeout, SIGKILL later) is still under way. */
bool pf_primary_watchdog_vouches(int64_t heartbeat_age_ms, uint32_t worker_timeout_ms);
/* Checks systemd's WATCHDOG_USEC against the primary's cadence and the worker timeout:
 * 0 with a description of how they work together, or -EINVAL with why they cannot,
 * written into why. */
int pf_primary_watchdog_check(uint64_t watchdog_usec, uint32_t worker_timeout_ms, char *why,
                              size_t cap);

/* Binds (or takes systemd's sockets), forks the workers and supervises them until
 * SIGTERM/SIGINT (fast stop) or SIGQUIT (graceful stop); SIGHUP re-reads config_path
 * (NULL: nothing to reload) and replaces the workers without dropping a connection.
 * workers_override (from -w; 0 for none) outranks the file's `workers:` across reloads.
 * Returns the process exit status. */
int pf_primary_run(const struct pf_config *cfg, const char *config_path, uint32_t workers_override);

#endif
