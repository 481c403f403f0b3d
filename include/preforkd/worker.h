#ifndef PREFORKD_WORKER_H
#define PREFORKD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/stats.h"

/* Messages on the worker <-> primary IPC socket (SOCK_SEQPACKET, one byte each). */
#define PF_IPC_READY 'R' /* worker -> primary: accepting connections */

/* While draining, a keep-alive connection idle this long is closed; one that sends a
 * request first gets its answer with "Connection: close". Closing idle connections at
 * once would race with requests already on the wire. */
#define PF_DRAIN_IDLE_MS 1000

/* Runs a worker until it is told to stop or its primary goes away; returns the exit
 * status. listen_fds are this slot's listening sockets; ipc_fd is the worker's end of
 * the socketpair whose EOF means the primary is gone. */
int pf_worker_run(const struct pf_config *cfg, uint32_t slot, const int *listen_fds, size_t nlisten,
                  int ipc_fd, struct pf_board_entry *board,
                  const struct pf_board_cluster *cluster);

#endif
