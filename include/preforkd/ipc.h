#ifndef PREFORKD_IPC_H
#define PREFORKD_IPC_H

#include <stdint.h>

/* The primary <-> worker channel: one SOCK_SEQPACKET socketpair per worker, one
 * fixed-size message per datagram, the same struct on both sides. Its EOF is how a
 * worker learns that its primary is gone (haproxy's mworker does the same). */
enum pf_ipc_type {
    PF_IPC_READY = 'R',   /* worker -> primary: accepting connections */
    PF_IPC_COVER = 'C',   /* primary -> worker: also accept on this slot's sockets */
    PF_IPC_UNCOVER = 'U', /* primary -> worker: that slot has a worker again */
};

struct pf_ipc_msg {
    uint8_t type; /* enum pf_ipc_type */
    uint8_t pad[3];
    uint32_t slot;
};
_Static_assert(sizeof(struct pf_ipc_msg) == 8, "one IPC message is 8 bytes on both sides");

/* A close-on-exec socketpair: sv[0] for the primary, sv[1] for the worker. */
int pf_ipc_pair(int sv[2]);
/* Sends one message without blocking: 0 or negative errno. */
int pf_ipc_send(int fd, enum pf_ipc_type type, uint32_t slot);
/* Receives one message without blocking: 1 with *m filled, 0 when the peer is gone,
 * -EAGAIN when none is waiting, -EBADMSG for a datagram of the wrong size, else
 * negative errno. */
int pf_ipc_recv(int fd, struct pf_ipc_msg *m);

#endif
