#include "preforkd/metrics.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preforkd/buf.h"
#include "preforkd/readiness.h"
#include "preforkd/router.h"

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
    const struct pf_scoreboard_row *newest;
};

static void view_slot(const struct pf_scoreboard *b, uint32_t slot, struct slot_view *v)
{
    memset(v, 0, sizeof(*v));
    v->oldest_beat_ms = -1;
    const struct pf_counters *c[PF_MAX_WORKERS + 1];
    size_t n = 0;
    c[n++] = &b->cluster->retired[slot];
    for (uint32_t i = 0; i < b->nrows && n <= PF_MAX_WORKERS; i++) {
        const struct pf_scoreboard_row *e = &b->rows[i];
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

/* clang-format off */
const struct pf_metric_family pf_metric_families[PF_METRIC_COUNT] = {
    [PF_M_REQUESTS] = {"preforkd_requests_total", "counter",
        "Requests answered, by worker slot, route and status class.", true},
    [PF_M_ACCEPTED] = {"preforkd_connections_accepted_total", "counter",
        "Connections accepted.", true},
    [PF_M_RECEIVED_BYTES] = {"preforkd_received_bytes_total", "counter",
        "Bytes read from clients.", true},
    [PF_M_SENT_BYTES] = {"preforkd_sent_bytes_total", "counter",
        "Bytes written to clients.", true},
    [PF_M_CONNECTIONS] = {"preforkd_connections", "gauge", "Connections open now.", true},
    [PF_M_RSS] = {"preforkd_worker_resident_memory_bytes", "gauge",
        "Resident memory of the slot's workers.", true},
    [PF_M_RPS] = {"preforkd_worker_requests_per_second", "gauge",
        "Requests answered in the last second.", true},
    [PF_M_WORKER_RESTARTS] = {"preforkd_worker_restarts_total", "counter",
        "Times the slot's worker was replaced after dying.", true},
    [PF_M_WORKER_UPTIME] = {"preforkd_worker_uptime_seconds", "gauge",
        "Seconds since the slot's newest worker started.", true},
    [PF_M_HEARTBEAT_AGE] = {"preforkd_worker_heartbeat_age_seconds", "gauge",
        "Seconds since the least recent heartbeat of the slot's workers (one busy with a "
        "long request, or hung, stops beating).", true},
    [PF_M_WORKER_INFO] = {"preforkd_worker_info", "gauge",
        "The slot's newest worker: pid, generation and state (value always 1).", true},
    [PF_M_CONFIGURED] = {"preforkd_workers_configured", "gauge", "Worker slots configured.",
        false},
    [PF_M_SERVING] = {"preforkd_workers_serving", "gauge",
        "Worker slots with a serving worker.", false},
    [PF_M_DEGRADED] = {"preforkd_degraded", "gauge", "1 while a slot has no serving worker.",
        false},
    [PF_M_GENERATION] = {"preforkd_generation", "gauge",
        "Configuration generation (1, plus one per reload).", false},
    [PF_M_RESTARTS] = {"preforkd_restarts_total", "counter", "Workers replaced after dying.",
        false},
    [PF_M_RELOADS] = {"preforkd_reloads_total", "counter",
        "Configuration reloads (SIGHUP) applied.", false},
    [PF_M_BACKOFFS] = {"preforkd_backoffs_total", "counter",
        "Respawns delayed by crash-loop backoff.", false},
    [PF_M_UPTIME] = {"preforkd_uptime_seconds", "gauge", "Seconds since the primary started.",
        false},
    [PF_M_READY] = {"preforkd_ready", "gauge",
        "1 while the instance should get traffic (GET /ready answers 200).", false},
    [PF_M_STATE] = {"preforkd_state", "gauge",
        "The primary's phase: 1 for the current state (starting, serving, lame_duck, "
        "draining, stopping), 0 for the others.", false},
};
/* clang-format on */

static void family(struct pf_buf *o, enum pf_metric m)
{
    const struct pf_metric_family *f = &pf_metric_families[m];
    pf_buf_put_lit(o, "# HELP ");
    pf_buf_put_str(o, f->name);
    pf_buf_put_lit(o, " ");
    pf_buf_put_str(o, f->help);
    pf_buf_put_lit(o, "\n# TYPE ");
    pf_buf_put_str(o, f->name);
    pf_buf_put_lit(o, " ");
    pf_buf_put_str(o, f->type);
    pf_buf_put_lit(o, "\n");
}

/* value / 10^decimals, written with that many decimals. */
static void sample(struct pf_buf *o, enum pf_metric m, int slot, uint64_t value, unsigned decimals)
{
    pf_buf_put_str(o, pf_metric_families[m].name);
    if (slot >= 0) {
        pf_buf_put_lit(o, "{worker=\"");
        pf_buf_put_u64(o, (uint64_t)slot);
        pf_buf_put_lit(o, "\"}");
    }
    pf_buf_put_lit(o, " ");
    pf_buf_put_fixed(o, value, decimals);
    pf_buf_put_lit(o, "\n");
}

static uint64_t seconds_since(int64_t now_ms, int64_t then_ms)
{
    return now_ms > then_ms ? (uint64_t)(now_ms - then_ms) / 1000 : 0;
}

/* A per-slot family's value for slot s; false when the slot has none to show. */
static bool slot_value(enum pf_metric m, const struct slot_view *v,
                       const struct pf_scoreboard_cluster *cl, uint32_t s, int64_t now_ms,
                       uint64_t *val, unsigned *decimals)
{
    *decimals = 0;
    switch (m) {
    case PF_M_ACCEPTED:
        *val = v->accepted;
        return true;
    case PF_M_RECEIVED_BYTES:
        *val = v->bytes_in;
        return true;
    case PF_M_SENT_BYTES:
        *val = v->bytes_out;
        return true;
    case PF_M_CONNECTIONS:
        *val = v->connections;
        return true;
    case PF_M_RSS:
        *val = v->rss;
        return true;
    case PF_M_RPS:
        *val = v->rps;
        return true;
    case PF_M_WORKER_RESTARTS:
        *val = load(&cl->slot_restarts[s]);
        return true;
    case PF_M_WORKER_UPTIME:
        if (!v->newest)
            return false;
        *val = seconds_since(now_ms, atomic_load(&v->newest->started_ms));
        return true;
    case PF_M_HEARTBEAT_AGE:
        if (v->oldest_beat_ms < 0)
            return false;
        *val = now_ms > v->oldest_beat_ms ? (uint64_t)(now_ms - v->oldest_beat_ms) : 0;
        *decimals = 3; /* milliseconds, shown as seconds */
        return true;
    default:
        assert(!"not a plain per-slot family");
        return false;
    }
}

static uint64_t service_value(enum pf_metric m, const struct pf_scoreboard_cluster *cl,
                              const struct pf_config *cfg, int64_t now_ms)
{
    switch (m) {
    case PF_M_CONFIGURED:
        return atomic_load(&cl->configured);
    case PF_M_SERVING:
        return atomic_load(&cl->serving);
    case PF_M_DEGRADED:
        return atomic_load(&cl->degraded) ? 1u : 0u;
    case PF_M_GENERATION:
        return atomic_load(&cl->generation);
    case PF_M_RESTARTS:
        return load(&cl->restarts);
    case PF_M_RELOADS:
        return load(&cl->reloads);
    case PF_M_BACKOFFS:
        return load(&cl->backoffs);
    case PF_M_UPTIME:
        return seconds_since(now_ms, atomic_load(&cl->started_ms));
    case PF_M_READY:
        return pf_readiness_is_ready((enum pf_service_state)atomic_load(&cl->state),
                                     atomic_load(&cl->degraded), cfg->health_ready_when_degraded);
    default:
        assert(!"not a service family");
        return 0;
    }
}

static void render_requests(struct pf_buf *o, const struct pf_config *cfg, uint32_t nslots,
                            const struct slot_view *views)
{
    family(o, PF_M_REQUESTS);
    for (uint32_t s = 0; s < nslots; s++) {
        for (int r = 0; r < PF_STAT_ROUTES; r++) {
            /* Rows of routes this configuration does not have stay out. */
            if ((uint32_t)r >= cfg->nroutes && r < PF_STAT_METRICS)
                continue;
            for (int k = 0; k < PF_STAT_CLASSES; k++) {
                /* Every 2xx series always, the rest once they happened. */
                if (!views[s].requests[r][k] && k != 1)
                    continue;
                pf_buf_put_lit(o, "preforkd_requests_total{worker=\"");
                pf_buf_put_u64(o, s);
                pf_buf_put_lit(o, "\",route=\"");
                pf_buf_put_str(o, pf_router_stat_label(cfg, (uint32_t)r));
                pf_buf_put_lit(o, "\",code=\"");
                pf_buf_put_u64(o, (uint64_t)k + 1);
                pf_buf_put_lit(o, "xx\"} ");
                pf_buf_put_u64(o, views[s].requests[r][k]);
                pf_buf_put_lit(o, "\n");
            }
        }
    }
}

static void render_info(struct pf_buf *o, uint32_t nslots, const struct slot_view *views)
{
    family(o, PF_M_WORKER_INFO);
    for (uint32_t s = 0; s < nslots; s++) {
        const struct pf_scoreboard_row *e = views[s].newest;
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
}

/* One sample per state, as an enum is exposed to Prometheus: the current one is 1. */
static void render_state(struct pf_buf *o, const struct pf_scoreboard_cluster *cl)
{
    family(o, PF_M_STATE);
    uint32_t now = atomic_load(&cl->state);
    for (uint32_t st = 0; st < PF_SVC_STATES; st++) {
        pf_buf_put_lit(o, "preforkd_state{state=\"");
        pf_buf_put_str(o, pf_readiness_state_name((enum pf_service_state)st));
        pf_buf_put_str(o, st == now ? "\"} 1\n" : "\"} 0\n");
    }
}

static void render(const struct pf_scoreboard *b, const struct pf_config *cfg, int64_t now_ms,
                   struct pf_buf *o, uint32_t nslots, struct slot_view *views)
{
    const struct pf_scoreboard_cluster *cl = b->cluster;
    for (int m = 0; m < PF_METRIC_COUNT; m++) {
        if (m == PF_M_REQUESTS) {
            render_requests(o, cfg, nslots, views);
        } else if (m == PF_M_WORKER_INFO) {
            render_info(o, nslots, views);
        } else if (m == PF_M_STATE) {
            render_state(o, cl);
        } else if (pf_metric_families[m].per_slot) {
            family(o, (enum pf_metric)m);
            for (uint32_t s = 0; s < nslots; s++) {
                uint64_t val;
                unsigned decimals;
                if (slot_value((enum pf_metric)m, &views[s], cl, s, now_ms, &val, &decimals))
                    sample(o, (enum pf_metric)m, (int)s, val, decimals);
            }
        } else {
            family(o, (enum pf_metric)m);
            sample(o, (enum pf_metric)m, -1, service_value((enum pf_metric)m, cl, cfg, now_ms), 0);
        }
    }
}

int pf_metrics_render(const struct pf_scoreboard *b, const struct pf_config *cfg,
                      const struct pf_counters_region *counters, int64_t now_ms, char **out,
                      size_t *len)
{
    static struct pf_config defaults;
    if (!cfg) {
        /* Tests render without a daemon's configuration: the built-in routes' labels. */
        if (!defaults.nroutes)
            pf_config_defaults(&defaults);
        cfg = &defaults;
    }
    /* Slots shown: the configured ones, and any higher slot still draining. */
    uint32_t nslots = atomic_load(&b->cluster->configured);
    for (uint32_t i = 0; i < b->nrows; i++)
        if (atomic_load(&b->rows[i].state) != PF_WSTATE_FREE && b->rows[i].slot >= nslots)
            nslots = b->rows[i].slot + 1;
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
        render(b, cfg, now_ms, &o, nslots, views);
        if (counters)
            pf_counters_render(counters, &o);
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
