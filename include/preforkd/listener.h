#ifndef PREFORKD_LISTENER_H
#define PREFORKD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"

/* The listening sockets, bound by the primary before any fork and kept open by it for
 * its whole life, so connections queued while a worker is replaced wait for its
 * successor instead of being refused.
 * reuseport: one SO_REUSEPORT socket per slot and address; the kernel spreads new
 *            connections over the slots by hashing.
 * shared:    one socket per address, watched by every worker with EPOLLEXCLUSIVE.
 * Each generation of workers (see primary) has its own set; a reload builds the new set
 * by dup()ing the sockets of the old one where the address stays, so a socket lives on
 * as long as any generation uses it and nothing is ever re-bound. */
struct pf_listeners {
    int *fds; /* [slot * naddrs + addr] for reuseport, [addr] for shared */
    size_t nfds;
    size_t naddrs;
    uint32_t nslots;
    enum pf_balance balance;
    bool activated; /* sockets passed by systemd (LISTEN_FDS) */
    char (*texts)[80];
    uint32_t backlog;
};

/* Binds (or, with prev, reuses prev's sockets for the addresses they share). */
int pf_listeners_open(struct pf_listeners *ls, const struct pf_config *cfg, uint32_t nslots,
                      const struct pf_listeners *prev, char *err, size_t errlen);
/* Takes the nfds sockets systemd passed (fds 3.., LISTEN_FDS), if any: returns 1 when it
 * did, 0 when nfds is 0, negative errno on failure. */
int pf_listeners_from_systemd(struct pf_listeners *ls, int nfds, uint32_t nslots, char *err,
                              size_t errlen);
/* Grows or shrinks the slot count (reuseport: opens or closes the slot's sockets). */
int pf_listeners_set_slots(struct pf_listeners *ls, uint32_t nslots, char *err, size_t errlen);
/* The sockets a slot's worker accepts on; returns how many were written to out. */
size_t pf_listeners_for_slot(const struct pf_listeners *ls, uint32_t slot, int *out);
/* The port actually bound for address i (useful with port 0). */
int pf_listeners_port(const struct pf_listeners *ls, size_t i);
/* For a final stop: the sockets accept no new connection from now on (those already in
 * the accept queues can still be accepted); once closed, connects are refused. Never a
 * connection accepted by the kernel that no worker will take. */
int pf_listeners_refuse_new(const struct pf_listeners *ls);
void pf_listeners_close(struct pf_listeners *ls);
/* An empty set of naddrs addresses and nslots slots (fds all -1), to be filled in. */
int pf_listeners_alloc(struct pf_listeners *ls, size_t naddrs, uint32_t nslots,
                       enum pf_balance balance);

#endif
