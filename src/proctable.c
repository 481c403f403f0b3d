#include "preforkd/proctable.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Appends to a caller's action array. A rule changes the table only once its action
 * is emitted, so a full array just leaves the rest for the next call. */
struct out {
    struct pf_action *a;
    size_t n, cap;
};

static bool emit(struct out *o, struct pf_action act)
{
    if (o->n == o->cap)
        return false;
    o->a[o->n++] = act;
    return true;
}

static bool emit_pid(struct out *o, enum pf_action_kind kind, enum pf_action_reason why,
                     const struct pf_proc *w, uint64_t value)
{
    return emit(o, (struct pf_action){.kind = kind,
                                      .why = why,
                                      .pid = w->pid,
                                      .slot = w->slot,
                                      .gen = w->gen,
                                      .value = value});
}

uint32_t pf_proctable_backoff(uint32_t previous_ms, int64_t uptime_ms, uint32_t min_uptime_ms)
{
    if (uptime_ms >= (int64_t)min_uptime_ms)
        return 0;
    if (previous_ms == 0)
        return PF_BACKOFF_FIRST_MS;
    return previous_ms >= PF_BACKOFF_MAX_MS / 2 ? PF_BACKOFF_MAX_MS : previous_ms * 2;
}

bool pf_proctable_vouches(int64_t heartbeat_age_ms, uint32_t worker_timeout_ms)
{
    /* Fresh, or stale but still inside the primary's own escalation: the primary is
     * doing its job, and systemd killing the whole service would take the healthy
     * workers down too. Past that, the escalation failed and systemd should act. */
    return heartbeat_age_ms < PF_HEARTBEAT_FRESH_MS ||
           heartbeat_age_ms <= (int64_t)worker_timeout_ms + 2 * PF_ABORT_GRACE_MS;
}

int pf_proctable_init(struct pf_proctable *t, const struct pf_proctable_rules *rules, uint32_t gen,
                      uint32_t nslots)
{
    *t = (struct pf_proctable){.gen = gen, .rules = *rules, .recycling = -1};
    t->slots = calloc(nslots ? nslots : 1, sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    t->nslots = nslots;
    return 0;
}

void pf_proctable_free(struct pf_proctable *t)
{
    free(t->procs);
    free(t->slots);
    free(t->prev_slots);
    *t = (struct pf_proctable){.recycling = -1};
}

/* ---- lookups --------------------------------------------------------------------------- */

/* The worker that serves (or is starting to serve) a slot of the current generation:
 * exactly one, or none. A recycled worker and its replacement overlap, but the
 * recycled one is `retiring` and no longer the occupant. */
static struct pf_proc *occupant(struct pf_proctable *t, uint32_t slot)
{
    struct pf_proc *found = NULL;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (w->pid && w->gen == t->gen && w->slot == slot && w->state != PF_PROC_DRAINING &&
            !w->retiring) {
            assert(!found); /* one occupant per slot */
            found = w;
        }
    }
    return found;
}

static struct pf_proc *retiring_of(struct pf_proctable *t, uint32_t slot)
{
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (w->pid && w->gen == t->gen && w->slot == slot && w->retiring &&
            w->state != PF_PROC_DRAINING)
            return w;
    }
    return NULL;
}

struct pf_proc *pf_proctable_find(struct pf_proctable *t, pid_t pid)
{
    for (size_t i = 0; i < t->nprocs && pid > 0; i++)
        if (t->procs[i].pid == pid)
            return &t->procs[i];
    return NULL;
}

uint32_t pf_proctable_count(const struct pf_proctable *t, uint32_t gen, bool any_gen)
{
    uint32_t n = 0;
    for (size_t i = 0; i < t->nprocs; i++)
        n += t->procs[i].pid && (any_gen || t->procs[i].gen == gen);
    return n;
}

bool pf_proctable_slot_covered(const struct pf_proctable *t, uint32_t slot)
{
    return slot < t->nslots && t->slots[slot].covered;
}

static bool degraded(struct pf_proctable *t)
{
    for (uint32_t s = 0; s < t->nslots; s++) {
        struct pf_proc *o = occupant(t, s);
        if (!o || o->state != PF_PROC_SERVING)
            return true;
    }
    return false;
}

static bool slot_served(const struct pf_proctable *t, uint32_t slot)
{
    for (size_t i = 0; i < t->nprocs; i++) {
        const struct pf_proc *w = &t->procs[i];
        if (w->pid && w->gen == t->gen && w->slot == slot && w->state == PF_PROC_SERVING &&
            !w->abort_ms)
            return true;
    }
    return false;
}

static bool is_stuck(const struct pf_proc *w, int64_t now)
{
    return w->abort_ms ||
           (w->state == PF_PROC_SERVING && now - w->heartbeat_ms >= PF_HEARTBEAT_FRESH_MS);
}

void pf_proctable_census(const struct pf_proctable *t, int64_t now, struct pf_census *c)
{
    *c = (struct pf_census){0};
    struct pf_proctable *m = (struct pf_proctable *)t; /* occupant() only reads */
    for (uint32_t s = 0; s < t->nslots; s++) {
        const struct pf_proc *o = occupant(m, s);
        bool stuck = o && is_stuck(o, now);
        c->serving += o && o->state == PF_PROC_SERVING && !stuck;
        c->stuck += stuck;
        c->backoff += !o && t->slots[s].backoff_ms;
    }
    for (size_t i = 0; i < t->nprocs; i++)
        c->draining += t->procs[i].pid && t->procs[i].state == PF_PROC_DRAINING;
    c->degraded = c->serving < t->nslots;
}

/* ---- events ---------------------------------------------------------------------------- */

int pf_proctable_add(struct pf_proctable *t, pid_t pid, uint32_t slot, int row, int ipc_fd,
                     int64_t now, uint64_t request_limit)
{
    assert(pid > 0 && slot < t->nslots);
    struct pf_proc *w = NULL;
    for (size_t i = 0; i < t->nprocs && !w; i++)
        if (!t->procs[i].pid)
            w = &t->procs[i];
    if (!w) {
        size_t n = t->nprocs ? t->nprocs * 2 : 16;
        struct pf_proc *p = realloc(t->procs, n * sizeof(*p));
        if (!p)
            return -ENOMEM;
        memset(p + t->nprocs, 0, (n - t->nprocs) * sizeof(*p));
        t->procs = p;
        w = &t->procs[t->nprocs];
        t->nprocs = n;
    }
    *w = (struct pf_proc){.pid = pid,
                          .gen = t->gen,
                          .slot = slot,
                          .row = row,
                          .ipc_fd = ipc_fd,
                          .state = PF_PROC_STARTING,
                          .started_ms = now,
                          .heartbeat_ms = now,
                          .request_limit = request_limit};
    return 0;
}

void pf_proctable_spawn_failed(struct pf_proctable *t, uint32_t slot, int64_t now)
{
    if (slot >= t->nslots)
        return;
    struct pf_proc *old = retiring_of(t, slot);
    if (old && t->recycling == (int)slot) {
        /* Recycling can wait: the old worker keeps serving. */
        old->retiring = false;
        t->recycling = -1;
        return;
    }
    struct pf_slot *s = &t->slots[slot];
    s->backoff_ms = pf_proctable_backoff(s->backoff_ms, 0, 1);
    s->respawn_at_ms = now + s->backoff_ms;
}

size_t pf_proctable_ready(struct pf_proctable *t, pid_t pid, int64_t now, struct pf_action *out,
                          size_t cap)
{
    struct out o = {out, 0, cap};
    struct pf_proc *w = pf_proctable_find(t, pid);
    if (!w || w->state != PF_PROC_STARTING)
        return 0;
    w->state = PF_PROC_SERVING;
    if (w->heartbeat_ms < now)
        w->heartbeat_ms = now;
    /* A worker that joins while slots are covered covers them too. */
    for (uint32_t s = 0; s < t->nslots && w->gen == t->gen; s++)
        if (t->slots[s].covered && s != w->slot)
            emit(&o,
                 (struct pf_action){.kind = PF_ACT_COVER, .pid = w->pid, .slot = s, .gen = w->gen});
    return o.n;
}

/* The new generation cannot serve: its workers go, and the previous one, which never
 * stopped serving, is current again with its slots as they were. */
static void abandon(struct pf_proctable *t, enum pf_action_reason why, int64_t now, struct out *o)
{
    assert(t->reloading && t->prev_slots);
    uint32_t failed = t->gen;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (w->pid && w->gen == failed) {
            emit_pid(o, PF_ACT_TERM, why, w, 0);
            w->state = PF_PROC_DRAINING;
            w->drain_ms = now;
        }
    }
    free(t->slots);
    t->slots = t->prev_slots;
    t->nslots = t->prev_nslots;
    t->prev_slots = NULL;
    t->gen = t->prev_gen;
    t->rules = t->prev_rules;
    t->reloading = false;
    emit(o, (struct pf_action){.kind = PF_ACT_ABANDONED,
                               .why = why,
                               .gen = failed,
                               .value = (uint64_t)(now - t->reload_started_ms)});
}

size_t pf_proctable_exited(struct pf_proctable *t, pid_t pid, int64_t now, struct pf_exit *info,
                           struct pf_action *out, size_t cap)
{
    struct out o = {out, 0, cap};
    *info = (struct pf_exit){0};
    struct pf_proc *w = pf_proctable_find(t, pid);
    if (!w)
        return 0;
    info->found = true;
    info->slot = w->slot;
    info->gen = w->gen;
    info->uptime_ms = now - w->started_ms;
    bool failed_reload =
        t->reloading && !t->stopping && w->gen == t->gen && w->state == PF_PROC_STARTING;
    bool was_occupant = !t->stopping && w->gen == t->gen && w->state != PF_PROC_DRAINING &&
                        !w->retiring && w->slot < t->nslots;
    uint32_t slot = w->slot;
    *w = (struct pf_proc){0};
    if (failed_reload) {
        info->abandoned = true;
        abandon(t, PF_WHY_NEW_GEN_DIED, now, &o);
        return o.n;
    }
    if (!was_occupant)
        return 0;
    struct pf_proc *old = retiring_of(t, slot);
    if (old) {
        /* The replacement died before taking over: the old worker stays. */
        old->retiring = false;
        t->recycling = -1;
        info->replacement = true;
        return 0;
    }
    struct pf_slot *s = &t->slots[slot];
    s->restarts++;
    s->backoff_ms = pf_proctable_backoff(s->backoff_ms, info->uptime_ms, t->rules.min_uptime_ms);
    s->respawn_at_ms = now + s->backoff_ms;
    info->counted = true;
    info->backoff_ms = s->backoff_ms;
    return 0;
}

/* ---- decisions ------------------------------------------------------------------------- */

static void respawn(struct pf_proctable *t, int64_t now, struct out *o)
{
    for (uint32_t s = 0; s < t->nslots; s++)
        if (!occupant(t, s) && t->slots[s].respawn_at_ms <= now)
            emit(o, (struct pf_action){
                        .kind = PF_ACT_SPAWN, .why = PF_WHY_CRASHED, .slot = s, .gen = t->gen});
}

/* Once every slot of the current generation serves: drain whatever is older, finish a
 * reload or a recycle. */
static void promote(struct pf_proctable *t, int64_t now, struct out *o)
{
    for (uint32_t s = 0; s < t->nslots; s++) {
        struct pf_proc *w = occupant(t, s);
        struct pf_proc *old = retiring_of(t, s);
        if (old && w && w->state == PF_PROC_SERVING &&
            emit_pid(o, PF_ACT_DRAIN, PF_WHY_RECYCLED, old, 0)) {
            old->state = PF_PROC_DRAINING;
            old->drain_ms = now;
            t->recycling = -1;
        }
    }
    if (degraded(t))
        return;
    uint64_t drained = 0;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (!w->pid || w->state == PF_PROC_DRAINING)
            continue;
        enum pf_action_reason why = w->gen != t->gen       ? PF_WHY_OLD_GEN
                                    : w->slot >= t->nslots ? PF_WHY_FEWER
                                                           : PF_WHY_NONE;
        if (why == PF_WHY_NONE)
            continue;
        if (!emit_pid(o, PF_ACT_DRAIN, why, w, 0))
            return; /* the rest next time; promotion waits for it */
        w->state = PF_PROC_DRAINING;
        w->drain_ms = now;
        drained++;
    }
    if (t->reloading) {
        if (!emit(o, (struct pf_action){.kind = PF_ACT_PROMOTED,
                                        .gen = t->gen,
                                        .value = (uint64_t)(now - t->reload_started_ms)}))
            return;
        t->reloading = false;
        free(t->prev_slots);
        t->prev_slots = NULL;
    } else if (!t->announced_ready &&
               emit(o, (struct pf_action){.kind = PF_ACT_READY, .gen = t->gen, .value = drained})) {
        t->announced_ready = true;
    }
}

/* reuseport gives each slot its own accept queue; while a slot has no serving worker
 * (crash-loop backoff, a hung worker about to be killed) the serving workers of the
 * other slots accept from its queue too, so no connection waits for the slot. */
static void cover(struct pf_proctable *t, int64_t now, struct out *o)
{
    if (!t->rules.cover || t->reloading)
        return;
    for (uint32_t s = 0; s < t->nslots; s++) {
        struct pf_slot *sl = &t->slots[s];
        bool served = slot_served(t, s);
        if (served)
            sl->unserved_since_ms = 0;
        else if (!sl->unserved_since_ms)
            sl->unserved_since_ms = now;
        bool need = !served && now - sl->unserved_since_ms >= PF_COVER_AFTER_MS;
        if (need != sl->covered &&
            emit(o, (struct pf_action){
                        .kind = need ? PF_ACT_COVER : PF_ACT_UNCOVER, .slot = s, .gen = t->gen}))
            sl->covered = need;
    }
}

size_t pf_proctable_decide(struct pf_proctable *t, int64_t now, struct pf_action *out, size_t cap)
{
    struct out o = {out, 0, cap};
    if (t->stopping) {
        if (now < t->stop_deadline_ms)
            return 0;
        for (size_t i = 0; i < t->nprocs; i++)
            if (t->procs[i].pid && !emit_pid(&o, PF_ACT_KILL, PF_WHY_STOP_TIMEOUT, &t->procs[i], 0))
                return o.n;
        t->stop_deadline_ms = now + PF_KILL_REPEAT_MS;
        return o.n;
    }
    respawn(t, now, &o);
    promote(t, now, &o);
    cover(t, now, &o);
    return o.n;
}

int64_t pf_proctable_next_ms(const struct pf_proctable *t, int64_t now)
{
    int64_t next = INT64_MAX;
    if (t->stopping)
        return t->stop_deadline_ms > now ? t->stop_deadline_ms - now : 0;
    struct pf_proctable *m = (struct pf_proctable *)t; /* occupant() only reads */
    for (uint32_t s = 0; s < t->nslots; s++) {
        const struct pf_slot *sl = &t->slots[s];
        if (!occupant(m, s) && sl->respawn_at_ms - now < next)
            next = sl->respawn_at_ms - now;
        if (t->rules.cover && !sl->covered && sl->unserved_since_ms &&
            sl->unserved_since_ms + PF_COVER_AFTER_MS - now < next)
            next = sl->unserved_since_ms + PF_COVER_AFTER_MS - now;
    }
    return next < 0 ? 0 : next;
}

size_t pf_proctable_tick(struct pf_proctable *t, int64_t now, bool *vouch, struct pf_action *out,
                         size_t cap)
{
    struct out o = {out, 0, cap};
    *vouch = true;
    if (t->reloading && !t->stopping &&
        now - t->reload_started_ms > (int64_t)t->rules.worker_timeout_ms)
        abandon(t, PF_WHY_NEW_GEN_SLOW, now, &o);
    const struct pf_proctable_rules *r = &t->rules;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (!w->pid)
            continue;
        int64_t age = now - w->heartbeat_ms;
        if (w->state != PF_PROC_STARTING && !pf_proctable_vouches(age, r->worker_timeout_ms))
            *vouch = false;
        if (w->abort_ms) {
            if (!w->kill_ms && now - w->abort_ms >= PF_ABORT_GRACE_MS &&
                emit_pid(&o, PF_ACT_KILL, PF_WHY_IGNORED_ABORT, w, (uint64_t)age))
                w->kill_ms = now;
            continue;
        }
        if (w->state != PF_PROC_STARTING && age > (int64_t)r->worker_timeout_ms) {
            if (emit_pid(&o, PF_ACT_ABORT, PF_WHY_HUNG, w, (uint64_t)age))
                w->abort_ms = now;
            continue;
        }
        if (w->state == PF_PROC_DRAINING && !t->stopping && !w->kill_ms &&
            now - w->drain_ms > (int64_t)r->shutdown_timeout_ms) {
            if (emit_pid(&o, PF_ACT_KILL, PF_WHY_DRAIN_TIMEOUT, w, (uint64_t)(now - w->drain_ms)))
                w->kill_ms = now;
            continue;
        }
        /* Recycling: one slot at a time; its replacement starts now, and the old worker
         * drains only once the replacement serves (see promote). */
        if (w->state != PF_PROC_SERVING || w->retiring || w->gen != t->gen || t->recycling >= 0 ||
            t->reloading || t->stopping)
            continue;
        enum pf_action_reason why = PF_WHY_NONE;
        uint64_t value = 0;
        if (w->request_limit && w->requests >= w->request_limit) {
            why = PF_WHY_RECYCLE_REQS;
            value = w->requests;
        } else if (r->max_memory && w->rss > r->max_memory) {
            why = PF_WHY_RECYCLE_MEM;
            value = w->rss;
        }
        if (why != PF_WHY_NONE && emit_pid(&o, PF_ACT_SPAWN, why, w, value)) {
            w->retiring = true;
            t->recycling = (int)w->slot;
        }
    }
    return o.n;
}

/* ---- changes of plan ------------------------------------------------------------------- */

int pf_proctable_begin_reload(struct pf_proctable *t, uint32_t gen, uint32_t nslots,
                              const struct pf_proctable_rules *rules, int64_t now)
{
    assert(!t->reloading && !t->stopping);
    struct pf_slot *slots = calloc(nslots ? nslots : 1, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    t->prev_slots = t->slots;
    t->prev_nslots = t->nslots;
    t->prev_gen = t->gen;
    t->prev_rules = t->rules;
    t->slots = slots;
    t->nslots = nslots;
    t->gen = gen;
    t->rules = *rules;
    t->reloading = true;
    t->reload_started_ms = now;
    t->recycling = -1;
    /* A recycle under way in the old generation ends with it. */
    for (size_t i = 0; i < t->nprocs; i++)
        t->procs[i].retiring = false;
    return 0;
}

int pf_proctable_set_slots(struct pf_proctable *t, uint32_t n, int64_t now, struct pf_action *out,
                           size_t cap, size_t *nout)
{
    struct out o = {out, 0, cap};
    *nout = 0;
    if (t->reloading || t->stopping)
        return -EBUSY;
    if (n == 0 || n == t->nslots)
        return -EINVAL;
    struct pf_slot *s = realloc(t->slots, sizeof(*s) * n);
    if (!s)
        return -ENOMEM;
    for (uint32_t i = t->nslots; i < n; i++)
        s[i] = (struct pf_slot){0};
    t->slots = s;
    t->nslots = n;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (w->pid && w->gen == t->gen && w->slot >= n && w->state != PF_PROC_DRAINING &&
            emit_pid(&o, PF_ACT_DRAIN, PF_WHY_FEWER, w, 0)) {
            w->state = PF_PROC_DRAINING;
            w->drain_ms = now;
        }
    }
    if (t->recycling >= (int)n)
        t->recycling = -1;
    *nout = o.n;
    return 0;
}

size_t pf_proctable_stop(struct pf_proctable *t, bool graceful, uint32_t grace_ms, int64_t now,
                         struct pf_action *out, size_t cap)
{
    struct out o = {out, 0, cap};
    if (t->stopping && (graceful || !t->graceful))
        return 0; /* a fast stop may override a graceful one, not the reverse */
    t->stopping = true;
    t->graceful = graceful;
    t->stop_deadline_ms = now + grace_ms;
    for (size_t i = 0; i < t->nprocs; i++) {
        struct pf_proc *w = &t->procs[i];
        if (w->pid && emit_pid(&o, graceful ? PF_ACT_DRAIN : PF_ACT_TERM, PF_WHY_STOP, w, 0) &&
            w->state != PF_PROC_DRAINING) {
            w->state = PF_PROC_DRAINING;
            w->drain_ms = now;
        }
    }
    return o.n;
}
