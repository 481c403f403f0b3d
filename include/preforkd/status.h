#ifndef PREFORKD_STATUS_H
#define PREFORKD_STATUS_H

/* `preforkd status [-c FILE] [--json]`: a pm2-ls-style table of the worker slots (pid,
 * state, uptime, restarts, RSS, connections, requests, req/s), read from the running
 * daemon's /metrics on its first listen address. Returns the exit status: 0, or 1 with
 * a clear message when no daemon answers. */
int pf_status_main(int argc, char **argv);

#endif
