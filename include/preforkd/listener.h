#ifndef PREFORKD_LISTENER_H
#define PREFORKD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/config.h"
#include "preforkd/proxy.h"

/* The listening sockets, bound by the primary before any fork and kept open by it for
 * its whole life, so connections queued while a worker is replaced wait for its
 * successor instead of being refused.
 * reuseport: one SO_REUSEPORT socket per slot and address; the kernel spreads new
 *            connections over the slots by hashing.
 * shared:    one socket per address, watched by every worker with EPOLLEXCLUSIVE.
 * Each generation of workers (see primary) has its own set; a reload builds the new set
 * by dup()ing the sockets of the old one where the address stays, so a socket lives on
 * as long as any generation uses it and nothing is ever re-bound.
 * A unix-domain address has one socket whatever the balance (the kernel has no
 * SO_REUSEPORT groups for AF_UNIX): under reuseport every slot's entry is a dup of it.
 * Its file: a stale one (a socket nobody listens on: connect() is refused) is replaced,
 * a live one is "Address already in use", anything else at the path is left alone and
 * an error. The primary removes the files it bound itself at a final stop
 * (pf_listeners_refuse_new), and only while the path is still that socket; an inherited
 * socket's file (systemd, an upgrade) is never removed. */
struct pf_listener_addr {
    char text[PF_LISTEN_TEXT];   /* the config's text: a reload shares a socket by it */
    enum pf_proxy_version proxy; /* from this generation's config */
    bool unix_owned;             /* a unix socket this process bound: dev/ino of its file */
    dev_t dev;
    ino_t ino;
};

struct pf_listeners {
    int *fds; /* [slot * naddrs + addr] for reuseport, [addr] for shared */
    size_t nfds;
    size_t naddrs;
    uint32_t nslots;
    enum pf_balance balance;
    bool activated;                 /* sockets passed by systemd (LISTEN_FDS) */
    struct pf_listener_addr *addrs; /* [addr] */
    uint32_t backlog;
};

/* Binds (or, with prev, reuses prev's sockets for the addresses they share). */
int pf_listeners_open(struct pf_listeners *ls, const struct pf_config *cfg, uint32_t nslots,
                      const struct pf_listeners *prev, char *err, size_t errlen);
/* Takes the nfds sockets systemd passed (fds 3.., LISTEN_FDS), if any: returns 1 when it
 * did, 0 when nfds is 0, negative errno on failure. A socket bound to the address of one
 * of cfg's listen entries takes that entry's proxy_protocol; any other has it off. */
int pf_listeners_from_systemd(struct pf_listeners *ls, const struct pf_config *cfg, int nfds,
                              uint32_t nslots, char *err, size_t errlen);
/* Grows or shrinks the slot count (reuseport: opens or closes the slot's sockets). */
int pf_listeners_set_slots(struct pf_listeners *ls, uint32_t nslots, char *err, size_t errlen);
/* The sockets a slot's worker accepts on; returns how many were written to out. */
size_t pf_listeners_for_slot(const struct pf_listeners *ls, uint32_t slot, int *out);
/* The port actually bound for address i (useful with port 0); 0 for a unix socket. */
int pf_listeners_port(const struct pf_listeners *ls, size_t i);
/* For a final stop: the sockets accept no new connection from now on (those already in
 * the accept queues can still be accepted); once closed, connects are refused. Never a
 * connection accepted by the kernel that no worker will take. The unix socket files this
 * process bound are removed (a connect then finds no file), each only while its path
 * is still the socket bound. A primary that has handed its sockets to a successor (an
 * upgrade) must not call this: the filter and the removal would hit the successor. */
int pf_listeners_refuse_new(const struct pf_listeners *ls);
/* Closes the sockets; files stay (see pf_listeners_refuse_new). */
void pf_listeners_close(struct pf_listeners *ls);
/* An empty set of naddrs addresses and nslots slots (fds all -1), to be filled in. */
int pf_listeners_alloc(struct pf_listeners *ls, size_t naddrs, uint32_t nslots,
                       enum pf_balance balance);

#endif
