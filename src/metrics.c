#include "preforkd/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preforkd/buf.h"

static const char *const route_names[PF_STAT_ROUTES] = {"/", "/health", "/heavy", "/metrics",
                                                        "other"};
static const char *const state_names[] = {"free", "starting", "serving", "draining"};

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* A slot's figures: its exited workers' counters plus every live process in the slot
 * (an old generation draining and its successor, during a reload or a recycle). */
struct slot_view {
    uint64_t requests[PF_STAT_ROUTES][PF_STAT_CLASSES];
    uint64_t accepted, bytes_in, bytes_out;
    uint64_t connections, rss, rps;
    int64_t oldest_beat_ms; /* the least recent heartbeat of a live process, -1: none */
    const struct pf_board_entry *newest;
};

static void view_slot(const struct pf_scoreboard *b, uint32_t slot, struct slot_view *v)
{
    memset(v, 0, sizeof(*v));
    v->oldest_beat_ms = -1;
    const struct pf_counters *c[PF_MAX_WORKERS + 1];
    size_t n = 0;
    c[n++] = &b->cluster->retired[slot];
    for (uint32_t i = 0; i < b->nentries && n <= PF_MAX_WORKERS; i++) {
        const struct pf_board_entry *e = &b->entries[i];
        if (atomic_load(&e->state) == PF_WSTATE_FREE || e->slot != slot)
            continue;
        c[n++] = &e->c;
        v->connections += load(&e->connections);
        v->rss += load(&e->rss);
        v->rps += load(&e->rps);
        int64_t beat = atomic_load_explicit(&e->heartbeat_ms, memory_order_relaxed);
        if (v->oldest_beat_ms < 0 || beat < v->oldest_beat_ms)
            v->oldest_beat_ms = beat;
        if (!v->newest || e->generation > v->newest->generation ||
            (e->generation == v->newest->generation &&
             atomic_load(&e->started_ms) > atomic_load(&v->newest->started_ms)))
            v->newest = e;
    }
    for (size_t k = 0; k < n; k++) {
        for (int r = 0; r < PF_STAT_ROUTES; r++)
            for (int s = 0; s < PF_STAT_CLASSES; s++)
                v->requests[r][s] += load(&c[k]->requests[r][s]);
        v->accepted += load(&c[k]->accepted);
        v->bytes_in += load(&c[k]->bytes_in);
        v->bytes_out += load(&c[k]->bytes_out);
    }
}

static void family(struct pf_buf *o, const char *name, const char *type, const char *help)
{
    pf_buf_put_lit(o, "# HELP ");
    pf_buf_put_str(o, name);
    pf_buf_put_lit(o, " ");
    pf_buf_put_str(o, help);
    pf_buf_put_lit(o, "\n# TYPE ");
    pf_buf_put_str(o, name);
    pf_buf_put_lit(o, " ");
    pf_buf_put_str(o, type);
    pf_buf_put_lit(o, "\n");
}

/* value / 10^decimals, written with that many decimals. */
static void sample(struct pf_buf *o, const char *name, int slot, uint64_t value, unsigned decimals)
{
    pf_buf_put_str(o, name);
    if (slot >= 0) {
        pf_buf_put_lit(o, "{worker=\"");
        pf_buf_put_u64(o, (uint64_t)slot);
        pf_buf_put_lit(o, "\"}");
    }
    pf_buf_put_lit(o, " ");
    pf_buf_put_fixed(o, value, decimals);
    pf_buf_put_lit(o, "\n");
}

static void render(const struct pf_scoreboard *b, int64_t now_ms, struct pf_buf *o, uint32_t nslots,
                   struct slot_view *views)
{
    const struct pf_board_cluster *cl = b->cluster;
    family(o, "preforkd_requests_total", "counter",
           "Requests answered, by worker slot, route and status class.");
    for (uint32_t s = 0; s < nslots; s++) {
        for (int r = 0; r < PF_STAT_ROUTES; r++) {
            for (int k = 0; k < PF_STAT_CLASSES; k++) {
                /* Every 2xx series always, the rest once they happened. */
                if (!views[s].requests[r][k] && k != 1)
                    continue;
                pf_buf_put_lit(o, "preforkd_requests_total{worker=\"");
                pf_buf_put_u64(o, s);
                pf_buf_put_lit(o, "\",route=\"");
                pf_buf_put_str(o, route_names[r]);
                pf_buf_put_lit(o, "\",code=\"");
                pf_buf_put_u64(o, (uint64_t)k + 1);
                pf_buf_put_lit(o, "xx\"} ");
                pf_buf_put_u64(o, views[s].requests[r][k]);
                pf_buf_put_lit(o, "\n");
            }
        }
    }
    static const struct {
        const char *name, *type, *help;
        int field;
    } per_slot[] = {
        {"preforkd_connections_accepted_total", "counter", "Connections accepted.", 0},
        {"preforkd_received_bytes_total", "counter", "Bytes read from clients.", 1},
        {"preforkd_sent_bytes_total", "counter", "Bytes written to clients.", 2},
        {"preforkd_connections", "gauge", "Connections open now.", 3},
        {"preforkd_worker_resident_memory_bytes", "gauge", "Resident memory of the slot's workers.",
         4},
        {"preforkd_worker_requests_per_second", "gauge", "Requests answered in the last second.",
         5},
        {"preforkd_worker_restarts_total", "counter",
         "Times the slot's worker was replaced after dying.", 6},
        {"preforkd_worker_uptime_seconds", "gauge",
         "Seconds since the slot's newest worker started.", 7},
        {"preforkd_worker_heartbeat_age_seconds", "gauge",
         "Seconds since the least recent heartbeat of the slot's workers (one busy with a "
         "long request, or hung, stops beating).",
         8},
    };
    for (size_t f = 0; f < sizeof(per_slot) / sizeof(per_slot[0]); f++) {
        family(o, per_slot[f].name, per_slot[f].type, per_slot[f].help);
        for (uint32_t s = 0; s < nslots; s++) {
            const struct slot_view *v = &views[s];
            uint64_t val = 0;
            unsigned decimals = 0;
            switch (per_slot[f].field) {
            case 0:
                val = v->accepted;
                break;
            case 1:
                val = v->bytes_in;
                break;
            case 2:
                val = v->bytes_out;
                break;
            case 3:
                val = v->connections;
                break;
            case 4:
                val = v->rss;
                break;
            case 5:
                val = v->rps;
                break;
            case 6:
                val = load(&cl->slot_restarts[s]);
                break;
            case 7: {
                if (!v->newest)
                    continue;
                int64_t up = now_ms - atomic_load(&v->newest->started_ms);
                val = up > 0 ? (uint64_t)up / 1000 : 0;
                break;
            }
            default: {
                if (v->oldest_beat_ms < 0)
                    continue;
                int64_t age = now_ms - v->oldest_beat_ms;
                val = age > 0 ? (uint64_t)age : 0; /* milliseconds */
                decimals = 3;
            }
            }
            sample(o, per_slot[f].name, (int)s, val, decimals);
        }
    }
    family(o, "preforkd_worker_info", "gauge",
           "The slot's newest worker: pid, generation and state (value always 1).");
    for (uint32_t s = 0; s < nslots; s++) {
        const struct pf_board_entry *e = views[s].newest;
        if (!e)
            continue;
        uint32_t st = atomic_load(&e->state);
        pf_buf_put_lit(o, "preforkd_worker_info{worker=\"");
        pf_buf_put_u64(o, s);
        pf_buf_put_lit(o, "\",pid=\"");
        pf_buf_put_u64(o, (uint64_t)atomic_load(&e->pid));
        pf_buf_put_lit(o, "\",generation=\"");
        pf_buf_put_u64(o, e->generation);
        pf_buf_put_lit(o, "\",state=\"");
        pf_buf_put_str(o, state_names[st < 4 ? st : 0]);
        pf_buf_put_lit(o, "\"} 1\n");
    }
    int64_t up = now_ms - atomic_load(&cl->started_ms);
    static const struct {
        const char *name, *type, *help;
    } global[] = {
        {"preforkd_workers_configured", "gauge", "Worker slots configured."},
        {"preforkd_workers_serving", "gauge", "Worker slots with a serving worker."},
        {"preforkd_degraded", "gauge", "1 while a slot has no serving worker."},
        {"preforkd_generation", "gauge", "Configuration generation (1, plus one per reload)."},
        {"preforkd_restarts_total", "counter", "Workers replaced after dying."},
        {"preforkd_reloads_total", "counter", "Configuration reloads (SIGHUP) applied."},
        {"preforkd_backoffs_total", "counter", "Respawns delayed by crash-loop backoff."},
        {"preforkd_uptime_seconds", "gauge", "Seconds since the primary started."},
    };
    uint64_t vals[] = {atomic_load(&cl->configured),
                       atomic_load(&cl->serving),
                       atomic_load(&cl->degraded) ? 1u : 0u,
                       atomic_load(&cl->generation),
                       load(&cl->restarts),
                       load(&cl->reloads),
                       load(&cl->backoffs),
                       up > 0 ? (uint64_t)up / 1000 : 0};
    for (size_t g = 0; g < sizeof(global) / sizeof(global[0]); g++) {
        family(o, global[g].name, global[g].type, global[g].help);
        sample(o, global[g].name, -1, vals[g], 0);
    }
}

int pf_metrics_render(const struct pf_scoreboard *b, int64_t now_ms, char **out, size_t *len)
{
    /* Slots shown: the configured ones, and any higher slot still draining. */
    uint32_t nslots = atomic_load(&b->cluster->configured);
    for (uint32_t i = 0; i < b->nentries; i++)
        if (atomic_load(&b->entries[i].state) != PF_WSTATE_FREE && b->entries[i].slot >= nslots)
            nslots = b->entries[i].slot + 1;
    if (nslots > PF_MAX_WORKERS)
        nslots = PF_MAX_WORKERS;
    struct slot_view *views = calloc(nslots ? nslots : 1, sizeof(*views));
    if (!views)
        return -ENOMEM;
    for (uint32_t s = 0; s < nslots; s++)
        view_slot(b, s, &views[s]);
    size_t cap = 4096 + (size_t)nslots * 4096;
    for (;;) {
        char *mem = malloc(cap);
        if (!mem) {
            free(views);
            return -ENOMEM;
        }
        struct pf_buf o;
        pf_buf_init(&o, mem, cap);
        render(b, now_ms, &o, nslots, views);
        if (!o.full) {
            *out = mem;
            *len = o.len;
            free(views);
            return 0;
        }
        free(mem);
        cap *= 2;
    }
}
