#ifndef PREFORKD_HANDOVER_H
#define PREFORKD_HANDOVER_H

#include <stddef.h>
#include <sys/types.h>

#include "preforkd/listener.h"

/* What an old primary hands to the new binary it executes (hot upgrade): its listening
 * sockets (never closed, never re-bound: their accept queues carry on), the shared
 * memory (scoreboard, counters) and the pipe on which the new primary says it serves.
 * All of it travels as inherited descriptors, described in one environment variable,
 * PREFORKD_HANDOVER, which this module writes and reads. */
#define PF_HANDOVER_VAR "PREFORKD_HANDOVER"

struct pf_handover {
    pid_t from;        /* the old primary */
    int ready_fd;      /* write "R" here once every worker serves */
    int scoreboard_fd; /* -1: none */
    int counters_fd;   /* -1: none */
    struct pf_listeners ls;
};

/* The variable's value for h (malloc'd; NULL when out of memory). */
char *pf_handover_encode(const struct pf_handover *h);
/* Reads a value: h->ls is allocated (its descriptors are the inherited ones). 0, or
 * -EINVAL for a malformed value. */
int pf_handover_decode(const char *text, struct pf_handover *h);

#endif
