#include "preforkd/counters.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preforkd/clock.h"
#include "preforkd/log.h"
#include "preforkd/module.h"
#include "preforkd/shm.h"

/* Every worker adds to the same counters at once: each entry on cache lines of its own,
 * so that adds to two counters never bounce one line between cores (false sharing). Two
 * lines per entry (the 64-byte name, then value and state) cost 128 KiB for the default
 * capacity. */
_Static_assert(sizeof(struct pf_counters_header) == 64, "the header fills one cache line");
_Static_assert(_Alignof(struct pf_counter) == 64 && sizeof(struct pf_counter) == 128,
               "a counter spans two whole cache lines");
/* A lock-based atomic would take a lock private to each process: the region needs
 * atomics that are single instructions. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics are lock-free");

/* How long a lookup waits for entries that other processes are claiming. A claim lasts a
 * copy of 64 bytes; one that lasts a second belongs to a stopped process (or to a dead
 * one whose pid was reused). */
#define CLAIM_TIMEOUT_MS 1000
#define STATE_KIND(s)    ((enum pf_counter_state)((s)&0xff))

static size_t region_size(uint32_t capacity)
{
    return sizeof(struct pf_counters_header) + (size_t)capacity * sizeof(struct pf_counter);
}

/* The region over a mapped file (fd and mem are the region's from here on). */
static int wrap(struct pf_counters_region **out, int fd, void *mem, size_t size)
{
    struct pf_counters_region *r = calloc(1, sizeof(*r));
    if (!r) {
        pf_shm_free(fd, mem, size);
        return -ENOMEM;
    }
    r->fd = fd;
    r->size = size;
    r->header = mem;
    r->entries = (struct pf_counter *)((char *)mem + sizeof(struct pf_counters_header));
    *out = r;
    return 0;
}

int pf_counters_new(struct pf_counters_region **out, uint32_t capacity)
{
    if (capacity == 0 || capacity > PF_COUNTERS_MAX_CAPACITY)
        return -EINVAL;
    size_t size = region_size(capacity);
    int fd;
    void *mem;
    int rc = pf_shm_new("preforkd-counters", size, &fd, &mem);
    if (rc == 0)
        rc = wrap(out, fd, mem, size);
    if (rc < 0)
        return rc;
    /* A new memfd reads as zeros: every entry FREE at zero. */
    struct pf_counters_header *h = (*out)->header;
    h->version = PF_COUNTERS_VERSION;
    h->capacity = capacity;
    h->header_size = sizeof(struct pf_counters_header);
    h->entry_size = sizeof(struct pf_counter);
    h->size = size;
    h->magic = PF_COUNTERS_MAGIC;
    (*out)->capacity = capacity;
    return 0;
}

static int check_header(const struct pf_counters_header *h, size_t size)
{
    if (h->magic != PF_COUNTERS_MAGIC)
        return -EINVAL;
    /* Another version may lay out even its header otherwise: nothing more to compare. */
    if (h->version != PF_COUNTERS_VERSION)
        return -EPROTONOSUPPORT;
    if (h->header_size != sizeof(struct pf_counters_header) ||
        h->entry_size != sizeof(struct pf_counter) || h->capacity == 0 ||
        h->capacity > PF_COUNTERS_MAX_CAPACITY || h->size != size ||
        region_size(h->capacity) != size)
        return -EINVAL;
    return 0;
}

int pf_counters_from_fd(struct pf_counters_region **out, int fd)
{
    int own;
    void *mem;
    size_t size;
    int rc = pf_shm_map(fd, sizeof(struct pf_counters_header),
                        region_size(PF_COUNTERS_MAX_CAPACITY), &own, &mem, &size);
    struct pf_counters_region *r = NULL;
    if (rc == 0)
        rc = wrap(&r, own, mem, size);
    if (rc < 0)
        return rc;
    rc = check_header(r->header, r->size);
    if (rc < 0) {
        pf_counters_free(&r);
        return rc;
    }
    /* Checked once and kept here: later writes to the shared header cannot move a bound. */
    r->capacity = r->header->capacity;
    *out = r;
    return 0;
}

void pf_counters_free(struct pf_counters_region **region)
{
    if (!region || !*region)
        return;
    pf_shm_free((*region)->fd, (*region)->header, (*region)->size);
    free(*region);
    *region = NULL;
}

int pf_counters_fd(const struct pf_counters_region *region)
{
    return region->fd;
}

bool pf_counters_name_valid(const char *name)
{
    if (!name || !name[0])
        return false;
    for (size_t i = 0; name[i]; i++) {
        char c = name[i];
        if (i == PF_COUNTER_NAME_MAX - 1)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool claimer_alive(uint64_t state)
{
    pid_t pid = (pid_t)(uint32_t)(state >> 8);
    /* EPERM: alive, under another user (the primary, after the workers dropped root). A
     * pid that is no pid (a corrupt word) counts as alive: waited for, never taken. */
    return pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH;
}

/* One pause while another process claims an entry: a few yields (a claim is a 64-byte
 * copy), then naps of a millisecond; -ETIMEDOUT once the lookup has waited
 * CLAIM_TIMEOUT_MS in all. */
static int wait_for_claim(int64_t *deadline, unsigned *round)
{
    if (*round == 0)
        *deadline = pf_clock_mono_ms() + CLAIM_TIMEOUT_MS;
    else if (pf_clock_mono_ms() > *deadline)
        return -ETIMEDOUT;
    if ((*round)++ < 64)
        sched_yield();
    else
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return 0;
}

/* Creation protocol. Entries are claimed in index order and never freed, so every entry
 * before the first FREE one is CLAIMING or READY, and a lookup of a name stops at the
 * first FREE entry, which it claims (FREE -> CLAIMING by compare-and-swap), names, and
 * publishes (READY, release). Two processes creating the same name both reach the same
 * first FREE entry: one wins the swap, the other waits for READY and finds the name
 * there. A lookup waits for every CLAIMING entry on its way, since that entry may be
 * getting its name; a claim whose process died is taken over by the same swap. */
int pf_counters_get(struct pf_counters_region *region, const char *name, struct pf_counter **out)
{
    if (!pf_counters_name_valid(name))
        return -EINVAL;
    const uint64_t mine = pf_counter_state_word(PF_COUNTER_CLAIMING, getpid());
    int64_t deadline = 0;
    unsigned round = 0;
    for (uint32_t i = 0; i < region->capacity; i++) {
        struct pf_counter *e = &region->entries[i];
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        while (STATE_KIND(s) != PF_COUNTER_READY) {
            if (STATE_KIND(s) == PF_COUNTER_FREE ||
                (STATE_KIND(s) == PF_COUNTER_CLAIMING && !claimer_alive(s))) {
                /* On failure s is reloaded (acquire: a READY seen there has its name). */
                if (atomic_compare_exchange_strong_explicit(
                        &e->state, &s, mine, memory_order_acquire, memory_order_acquire)) {
                    /* Nobody reads the name before READY; a dead claimer's bytes go. */
                    memset(e->name, 0, sizeof(e->name));
                    memcpy(e->name, name, strlen(name));
                    atomic_store_explicit(&e->state, pf_counter_state_word(PF_COUNTER_READY, 0),
                                          memory_order_release);
                    *out = e;
                    return 0;
                }
                continue;
            }
            int rc = wait_for_claim(&deadline, &round);
            if (rc < 0)
                return rc;
            s = atomic_load_explicit(&e->state, memory_order_acquire);
        }
        if (strncmp(e->name, name, PF_COUNTER_NAME_MAX) == 0) {
            *out = e;
            return 0;
        }
    }
    return -ENOSPC;
}

const struct pf_counter *pf_counters_next(const struct pf_counters_region *region, uint32_t *cursor)
{
    while (*cursor < region->capacity) {
        const struct pf_counter *e = &region->entries[(*cursor)++];
        uint64_t s = atomic_load_explicit(&e->state, memory_order_acquire);
        if (STATE_KIND(s) == PF_COUNTER_READY)
            return e;
        if (STATE_KIND(s) == PF_COUNTER_FREE) { /* nothing is claimed past the first */
            *cursor = region->capacity;
            break;
        }
    }
    return NULL;
}

/* The module API's functions take no context argument (a handler has none to pass), so,
 * like the log's level, the region they use is the one process-wide global here. */
static struct pf_counters_region *current;

void pf_counters_set_current(struct pf_counters_region *region)
{
    current = region;
}

struct pf_counter *pf_counter(const char *name)
{
    struct pf_counter *c = NULL;
    int rc = current ? pf_counters_get(current, name, &c) : -ENXIO;
    if (rc == 0)
        return c;
    const char *why = rc == -EINVAL      ? "names are 1 to 63 bytes of [a-zA-Z0-9_.-]"
                      : rc == -ENOSPC    ? "every shared counter is taken"
                      : rc == -ETIMEDOUT ? "another process held an entry on the way"
                                         : "no shared counters in this process";
    /* The name as far as it is printable: a refused one may hold anything. */
    char shown[PF_COUNTER_NAME_MAX];
    size_t n = 0;
    for (; name && name[n] && n < sizeof(shown) - 1; n++)
        shown[n] = name[n] >= ' ' && name[n] <= '~' && name[n] != '"' ? name[n] : '?';
    shown[n] = '\0';
    pf_log_error("counter \"%s\" refused: %s", shown, why);
    return NULL;
}

uint64_t pf_counter_add(struct pf_counter *counter, uint64_t delta)
{
    assert(counter);
    return atomic_fetch_add_explicit(&counter->value, delta, memory_order_relaxed) + delta;
}

uint64_t pf_counter_value(const struct pf_counter *counter)
{
    assert(counter);
    return atomic_load_explicit(&counter->value, memory_order_relaxed);
}

/* A label value in the exposition format: backslash, quote and newline escaped. Names
 * made here never hold them, but a region handed over from another binary might. */
static void put_label_value(struct pf_buf *o, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '"'  ? "\\\""
                          : s[i] == '\n' ? "\\n"
                                         : NULL;
        if (!esc)
            continue;
        pf_buf_put(o, s + run, i - run);
        pf_buf_put(o, esc, 2);
        run = i + 1;
    }
    pf_buf_put(o, s + run, len - run);
}

void pf_counters_render(const struct pf_counters_region *region, struct pf_buf *out)
{
    pf_buf_put_lit(out, "# HELP preforkd_counter_total Shared counters that handlers and "
                        "modules add to, by name.\n"
                        "# TYPE preforkd_counter_total counter\n");
    uint32_t cursor = 0;
    for (const struct pf_counter *c; (c = pf_counters_next(region, &cursor));) {
        pf_buf_put_lit(out, "preforkd_counter_total{name=\"");
        put_label_value(out, c->name, strnlen(c->name, PF_COUNTER_NAME_MAX));
        pf_buf_put_lit(out, "\"} ");
        pf_buf_put_u64(out, pf_counter_value(c));
        pf_buf_put_lit(out, "\n");
    }
}
