#ifndef PREFORKD_PRIMARY_H
#define PREFORKD_PRIMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/config.h"
#include "preforkd/env.h"

#define PF_FAST_STOP_MS 3000

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
int pf_primary_run(const struct pf_config *cfg, const char *config_path, uint32_t workers_override,
                   const struct pf_env *env, char *const *argv);

#endif
