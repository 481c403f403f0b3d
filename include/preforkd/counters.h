#ifndef PREFORKD_COUNTERS_H
#define PREFORKD_COUNTERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/buf.h"

/* The shared counters behind the module API's pf_counter(): named 64-bit counters in one
 * region the primary creates before any fork, so every worker of every generation adds to
 * the same memory, and a worker that crashes loses nothing it had added.
 *
 * The region is a sealed memfd mapped MAP_SHARED (not MAP_ANONYMOUS) so that it can be
 * handed to another process by its file descriptor: pf_counters_fd() gives it, and
 * pf_counters_from_fd() attaches to it after checking the header below. The layout is the
 * contract between binaries: change it only with PF_COUNTERS_VERSION.
 *
 * Entries are never freed: a name, once created, keeps its entry (and its value) for the
 * life of the region. Creation is lock-free (see struct pf_counter); adding and reading
 * are single atomic instructions. */

#define PF_COUNTERS_MAGIC            UINT64_C(0x3172746e63646670) /* "pfdcntr1" in memory */
#define PF_COUNTERS_VERSION          1
#define PF_COUNTERS_DEFAULT_CAPACITY 1024
#define PF_COUNTERS_MAX_CAPACITY     65536
#define PF_COUNTER_NAME_MAX          64 /* bytes, with the NUL: names are 1..63 bytes */

struct pf_counters_header {
    uint64_t magic;       /* PF_COUNTERS_MAGIC */
    uint32_t version;     /* PF_COUNTERS_VERSION */
    uint32_t capacity;    /* entries after the header */
    uint32_t header_size; /* sizeof(struct pf_counters_header) */
    uint32_t entry_size;  /* sizeof(struct pf_counter) */
    uint64_t size;        /* the whole region, in bytes */
} __attribute__((aligned(64)));

/* An entry's state word: the kind in the low 8 bits and, while CLAIMING, the claimer's
 * pid above them, so that a claim left by a process that died before finishing it can be
 * taken over instead of blocking every later lookup. */
enum pf_counter_state { PF_COUNTER_FREE, PF_COUNTER_CLAIMING, PF_COUNTER_READY };

static inline uint64_t pf_counter_state_word(enum pf_counter_state kind, pid_t claimer)
{
    return (uint64_t)(uint32_t)claimer << 8 | (uint64_t)kind;
}

/* One counter (the module API's struct pf_counter). Created FREE -> CLAIMING -> READY by
 * a compare-and-swap on state; name is written by the claimer only and read by others
 * only after an acquire load sees READY, and never changes afterwards. */
struct pf_counter {
    char name[PF_COUNTER_NAME_MAX]; /* NUL-terminated once READY */
    _Atomic uint64_t value;
    _Atomic uint64_t state; /* pf_counter_state_word() */
} __attribute__((aligned(64)));

struct pf_counters_region {
    int fd; /* the memfd (close-on-exec; a hand-over clears the flag on its own) */
    size_t size;
    uint32_t capacity; /* the header's, as checked when mapped */
    struct pf_counters_header *header;
    struct pf_counter *entries;
};

/* A new zeroed region of capacity (1..PF_COUNTERS_MAX_CAPACITY) entries. Returns 0 or
 * negative errno. */
int pf_counters_new(struct pf_counters_region **out, uint32_t capacity);
/* Attaches to the region behind fd (which stays the caller's: the region keeps a
 * duplicate). -EINVAL when fd is not a sealed region of this layout (magic, sizes),
 * -EPROTONOSUPPORT when it is one of another PF_COUNTERS_VERSION. */
int pf_counters_from_fd(struct pf_counters_region **out, int fd);
/* Unmaps and closes this process's view; the memory lives on in every other holder. */
void pf_counters_free(struct pf_counters_region **region);
int pf_counters_fd(const struct pf_counters_region *region);

/* Names are 1..63 bytes of [a-zA-Z0-9_.-]. */
bool pf_counters_name_valid(const char *name);
/* The counter called name, created (at zero) when there is none: concurrent callers in any
 * process get the same entry. Returns 0, or -EINVAL (bad name), -ENOSPC (region full), or
 * -ETIMEDOUT (an entry on the way stayed claimed by a live process for a second). */
int pf_counters_get(struct pf_counters_region *region, const char *name, struct pf_counter **out);
/* The READY counter after *cursor (start with 0), in creation order, advancing *cursor;
 * NULL at the end. */
const struct pf_counter *pf_counters_next(const struct pf_counters_region *region,
                                          uint32_t *cursor);

/* The region that the module API (pf_counter(), which takes no region argument) uses:
 * set by a worker at start, before it loads modules. */
void pf_counters_set_current(struct pf_counters_region *region);

/* Appends the family preforkd_counter_total{name="..."} in Prometheus' text format
 * (HELP and TYPE even with no counters yet). out->full tells that it did not fit. */
void pf_counters_render(const struct pf_counters_region *region, struct pf_buf *out);

#endif
