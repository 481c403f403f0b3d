#ifndef PREFORKD_LISTENER_H
#define PREFORKD_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"

/* The listening sockets, bound by the primary before any fork and kept open by it for
 * its whole life, so connections queued while a worker is replaced wait for its
 * successor instead of being refused.
 * reuseport: one SO_REUSEPORT socket per slot and address; the kernel spreads new
 *            connections over the slots by hashing.
 * shared:    one socket per address, watched by every worker with EPOLLEXCLUSIVE. */
struct pf_listeners {
    int *fds;
    size_t nfds;
    size_t naddrs;
    uint32_t nslots;
    enum pf_balance balance;
};

int pf_listeners_open(struct pf_listeners *ls, const struct pf_config *cfg, uint32_t nslots,
                      char *err, size_t errlen);
/* The sockets a slot's worker accepts on; returns how many were written to out
 * (naddrs at most). */
size_t pf_listeners_for_slot(const struct pf_listeners *ls, uint32_t slot, int *out);
void pf_listeners_close(struct pf_listeners *ls);

#endif
