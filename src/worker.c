#include "preforkd/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/accesslog.h"
#include "preforkd/clock.h"
#include "preforkd/conn.h"
#include "preforkd/cpu.h"
#include "preforkd/handlers.h"
#include "preforkd/ipc.h"
#include "preforkd/mime.h"
#include "preforkd/modules.h"
#include "preforkd/static_route.h"
#include "preforkd/privdrop.h"
#include "preforkd/redis.h"
#include "preforkd/procfs.h"
#include "preforkd/log.h"
#include "preforkd/version.h"

enum ev_kind { EV_CONN, EV_LISTEN, EV_IPC, EV_SIGNAL, EV_REDIS };

struct ev_source {
    int kind; /* shares its position with pf_conn.kind */
    int fd;
    enum pf_proxy_version proxy; /* EV_LISTEN: the PROXY header its connections begin with */
};
_Static_assert(offsetof(struct ev_source, kind) == offsetof(struct pf_conn, kind),
               "an epoll event's kind is found at the same place in every source");

#define MAX_EVENTS 256
#define CONN_BATCH 16

struct worker {
    const struct pf_config *cfg;
    uint32_t slot;
    int epfd;
    struct ev_source listeners[PF_MAX_LISTEN];
    size_t nlisten;
    struct ev_source ipc;
    struct ev_source sig;
    bool accept_paused;
    bool stop;
    bool drain_requested;
    int64_t last_tick_ms;
    int64_t drain_deadline_ms;
    int64_t resource_warned_ms;
    uint32_t nconns;
    struct pf_conn *live; /* every open connection, for the once-a-second tick */
    struct pf_conn *free_list;
    struct pf_conn **batches; /* every pool allocation, freed when the worker ends */
    size_t nbatches;
    struct pf_handler_ctx ctx;
    struct pf_router router;
    struct pf_modules modules;
    struct pf_mime mime;
    bool mime_loaded;
    struct pf_static_route statics[PF_MAX_ROUTES];
    struct pf_conn_env env;
    struct pf_scoreboard_row *row; /* this worker's row in the scoreboard */
    bool reopen_log;
#ifdef PF_FAULT_INJECTION
    bool fault_alloc;
#endif
    uint64_t requests_at_tick;
    struct pf_access_log *access_log;
    struct pf_redis *redis;        /* shared.backend redis; NULL: memory */
    struct pf_conn *store_replies; /* connections whose store reply came this turn */
    /* Other slots' sockets (reuseport), watched only while covering for that slot. */
    const struct pf_listeners *ls;
    struct ev_source *cover_src; /* [slot * naddrs + addr] */
    bool *covering;
};

static struct pf_conn *conn_get(struct worker *w)
{
#ifdef PF_FAULT_INJECTION
    if (w->fault_alloc)
        return NULL; /* PREFORKD_FAULT=conn-alloc-fails: as if malloc had failed */
#endif
    if (!w->free_list) {
        /* Connections are recycled, never freed: a batch is allocated only when more
         * are open at once than ever before in this worker. */
        struct pf_conn **list = realloc(w->batches, sizeof(*list) * (w->nbatches + 1));
        if (!list)
            return NULL;
        w->batches = list;
        /* Zeroed: a connection's parser buffers start empty and are reused after. */
        struct pf_conn *batch = calloc(CONN_BATCH, sizeof(struct pf_conn));
        if (!batch)
            return NULL;
        w->batches[w->nbatches++] = batch;
        for (int i = 0; i < CONN_BATCH; i++) {
            batch[i].kind = EV_CONN;
            batch[i].next = w->free_list;
            w->free_list = &batch[i];
        }
    }
    struct pf_conn *c = w->free_list;
    w->free_list = c->next;
    c->prev = NULL;
    c->next = w->live;
    if (w->live)
        w->live->prev = c;
    w->live = c;
    w->nconns++;
    return c;
}

static void conn_close(struct worker *w, struct pf_conn *c)
{
    close(c->fd); /* also removes it from epoll */
    pf_conn_release(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = w->free_list;
    w->free_list = c;
    w->nconns--;
    atomic_store_explicit(&w->row->connections, w->nconns, memory_order_relaxed);
}

/* Watches (or stops watching) the slot's listening sockets. A socket that cannot be
 * added leaves accepting paused, and the next tick tries again. */
static int set_accepting(struct worker *w, bool on)
{
    int rc = 0;
    for (size_t i = 0; i < w->nlisten; i++) {
        if (on) {
            /* EPOLLEXCLUSIVE wakes one waiting worker per new connection instead of all:
             * no thundering herd on a shared socket, harmless on a per-slot one. */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
                                     .data.ptr = &w->listeners[i]};
            if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->listeners[i].fd, &ev) < 0 && errno != EEXIST)
                rc = -errno;
        } else if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listeners[i].fd, NULL) < 0 &&
                   errno != ENOENT) {
            rc = -errno;
        }
    }
    w->accept_paused = !on || rc < 0;
    return rc;
}

/* Over the connection cap: a 503 built like every other answer (Date included), sent
 * without waiting, then closed. */
static void reject_full(struct worker *w, int fd)
{
    char mem[PF_RESPONSE_MAX];
    struct pf_buf out;
    pf_buf_init(&out, mem, sizeof(mem));
    pf_handlers_error(&w->ctx, 503, &out);
    ssize_t n = send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    close(fd);
}

static void handle_conn(struct worker *w, struct pf_conn *c, uint32_t events)
{
    if (pf_conn_on_events(c, events, &w->env) == PF_CONN_CLOSE)
        conn_close(w, c);
}

/* A reply from the shared store (pf_redis_reply_fn): kept on the connection, taken once
 * this loop turn's events are handled (take_store_replies). */
static void store_reply(void *owner, struct pf_defer *d, uint32_t seq, uint64_t value, int err)
{
    struct worker *w = owner;
    struct pf_conn *c = (struct pf_conn *)((char *)d - offsetof(struct pf_conn, defer));
    if (!c->waiting || c->defer.seq != seq)
        return; /* for a connection closed (and maybe reused) since */
    c->store_seq = seq;
    c->store_value = value;
    c->store_err = err;
    if (!c->store_ready) {
        c->store_ready = true;
        c->store_next = w->store_replies;
        w->store_replies = c;
    }
}

static void take_store_replies(struct worker *w)
{
    while (w->store_replies) {
        struct pf_conn *c = w->store_replies;
        w->store_replies = c->store_next;
        c->store_ready = false;
        if (pf_conn_resume(c, &w->env, c->store_seq, c->store_value, c->store_err) == PF_CONN_CLOSE)
            conn_close(w, c);
    }
}

static void accept_ready(struct worker *w, const struct ev_source *src)
{
    int lfd = src->fd;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of descriptors or memory: stop accepting until the next tick rather
             * than spin on a level-triggered socket that stays readable. */
            if (w->ctx.now_ms - w->resource_warned_ms >= 10000) {
                pf_log_warn("accept: %s; pausing accepts for a second (%u connections open)",
                            strerror(errno), w->nconns);
                w->resource_warned_ms = w->ctx.now_ms;
            }
            if (set_accepting(w, false) < 0)
                pf_log_warn("cannot pause accepting: %s", strerror(errno));
            return;
        }
        if (w->nconns >= w->cfg->limits.connections) {
            reject_full(w, fd);
            continue;
        }
        int one = 1;
        if (peer.ss_family != AF_UNIX)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct pf_conn *c = conn_get(w);
        if (!c) {
            /* Out of memory costs this connection, not the worker. */
            if (w->ctx.now_ms - w->resource_warned_ms >= 10000) {
                pf_log_warn("no memory for a connection; closing it (%u open)", w->nconns);
                w->resource_warned_ms = w->ctx.now_ms;
            }
            close(fd);
            continue;
        }
        pf_conn_init(c, fd, w->cfg, &w->ctx, w->ctx.now_ms);
        pf_conn_set_peer(c, (const struct sockaddr *)&peer, peer_len);
        pf_conn_expect_proxy(c, src->proxy);
        pf_count(&w->row->c.accepted, 1);
        atomic_store_explicit(&w->row->connections, w->nconns, memory_order_relaxed);
        /* Registered once for both directions, edge-triggered: the hot path never
         * calls epoll_ctl again. */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            conn_close(w, c);
            continue;
        }
        handle_conn(w, c, EPOLLIN);
    }
}

static void set_cover(struct worker *w, uint32_t slot, bool on)
{
    const struct pf_listeners *ls = w->ls;
    if (!w->cover_src || slot >= ls->nslots || slot == w->slot || w->covering[slot] == on ||
        w->env.draining)
        return;
    for (size_t i = 0; i < ls->naddrs; i++) {
        struct ev_source *src = &w->cover_src[slot * ls->naddrs + i];
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = src};
        if (epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, src->fd, on ? &ev : NULL) < 0 &&
            errno != (on ? EEXIST : ENOENT)) {
            /* Covering is help for a neighbour: failing to give it costs no connection of
             * ours, and the slot's own queue waits for its next worker. */
            pf_log_warn("cannot %s covering slot %u: %s", on ? "start" : "stop", slot,
                        strerror(errno));
            return;
        }
    }
    w->covering[slot] = on;
    pf_log_info("%s for slot %u", on ? "covering" : "no longer covering", slot);
}

static void start_drain(struct worker *w)
{
    if (w->env.draining)
        return;
    /* Connections already in the accept queue were promised service: take them before
     * letting go of the sockets (the primary or the next generation still holds them,
     * so later arrivals wait for another worker rather than being refused). */
    if (!w->accept_paused)
        for (size_t i = 0; i < w->nlisten; i++)
            accept_ready(w, &w->listeners[i]);
    pf_log_info("draining %u connection%s", w->nconns, w->nconns == 1 ? "" : "s");
    w->env.draining = true;
    w->drain_deadline_ms = w->ctx.now_ms + w->cfg->shutdown_timeout_ms;
    atomic_store(&w->row->state, PF_WSTATE_DRAINING);
    if (set_accepting(w, false) < 0)
        pf_log_warn("cannot stop watching the listening sockets: %s", strerror(errno));
    for (size_t i = 0; i < w->nlisten; i++)
        close(w->listeners[i].fd);
    w->nlisten = 0;
    if (w->cover_src) {
        for (uint32_t s = 0; s < w->ls->nslots; s++)
            set_cover(w, s, false);
        for (size_t k = 0; k < w->ls->nfds; k++)
            if (w->ls->fds[k] >= 0 && (k / w->ls->naddrs) != w->slot)
                close(w->ls->fds[k]);
        free(w->cover_src);
        free(w->covering);
        w->cover_src = NULL;
        w->covering = NULL;
    }
}

static void handle_signal(struct worker *w)
{
    struct signalfd_siginfo si;
    while (read(w->sig.fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM) {
            w->stop = true;
        } else if (si.ssi_signo == SIGUSR1) {
            w->reopen_log = true;
        } else if (si.ssi_signo == SIGQUIT) {
            /* Acted on after the current batch of events: closing connections now could
             * leave events of theirs in the batch pointing at recycled structs. */
            w->drain_requested = true;
        }
    }
}

static void handle_ipc(struct worker *w)
{
    for (;;) {
        struct pf_ipc_msg msg;
        int rc = pf_ipc_recv(w->ipc.fd, &msg);
        if (rc == 1) {
            if (msg.type == PF_IPC_COVER || msg.type == PF_IPC_UNCOVER)
                set_cover(w, msg.slot, msg.type == PF_IPC_COVER);
            continue;
        }
        if (rc == -EAGAIN)
            return;
        if (rc == -EBADMSG) {
            pf_log_warn("malformed message from the primary; ignored");
            continue;
        }
        pf_log_warn("primary went away; exiting");
        w->stop = true;
        return;
    }
}

static void tick(struct worker *w)
{
    w->last_tick_ms = w->ctx.now_ms;
    struct pf_memory mem;
    if (pf_procfs_statm(0, &mem) == 0)
        atomic_store_explicit(&w->row->rss, mem.rss, memory_order_relaxed);
    atomic_store_explicit(&w->row->rps, w->env.requests - w->requests_at_tick,
                          memory_order_relaxed);
    w->requests_at_tick = w->env.requests;
    if (w->access_log)
        pf_access_log_flush(w->access_log);
    if (w->accept_paused && !w->env.draining) {
        int rc = set_accepting(w, true);
        if (rc < 0)
            pf_log_warn("cannot watch the listening sockets: %s; retrying in a second",
                        strerror(-rc));
    }
    for (struct pf_conn *c = w->live, *next; c; c = next) {
        next = c->next;
        if (pf_conn_on_tick(c, &w->env) == PF_CONN_CLOSE)
            conn_close(w, c);
    }
    if (w->env.draining && w->ctx.now_ms >= w->drain_deadline_ms) {
        pf_log_warn("drain deadline passed with %u connection%s open", w->nconns,
                    w->nconns == 1 ? "" : "s");
        w->stop = true;
    }
}

/* Opens every static route's root, with the media types loaded once for all of them. */
static int worker_static_routes(struct worker *w, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < w->router.n; i++) {
        struct pf_route *rt = &w->router.routes[i];
        if (rt->kind != PF_HANDLER_STATIC)
            continue;
        if (!w->mime_loaded) {
            int mrc = pf_mime_load(&w->mime, NULL);
            if (mrc < 0)
                pf_log_info("no %s (%s): the built-in media types serve", PF_MIME_TYPES_PATH,
                            strerror(-mrc));
            w->mime_loaded = true;
        }
        struct pf_static_route *s = &w->statics[rt->stat];
        int rc = pf_static_route_open(s, rt->cfg, &w->mime, err, errlen);
        if (rc < 0)
            return rc;
        rt->fn = pf_static_route_handle;
        rt->state = s;
    }
    return 0;
}

static void worker_free_routes(struct worker *w)
{
    for (uint32_t i = 0; i < w->router.n; i++)
        if (w->router.routes[i].kind == PF_HANDLER_STATIC &&
            w->router.routes[i].state == &w->statics[w->router.routes[i].stat])
            pf_static_route_close(&w->statics[w->router.routes[i].stat]);
    if (w->mime_loaded)
        pf_mime_free(&w->mime);
    w->mime_loaded = false;
}

static void refresh_clock(struct worker *w)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME_COARSE, &wall);
    pf_handler_ctx_tick(&w->ctx, pf_clock_mono_ms(), wall.tv_sec);
    /* The watchdog's proof of life: a loop stuck in one request stops updating it. */
    pf_scoreboard_heartbeat(w->row, w->ctx.now_ms, w->env.requests);
}

#ifdef PF_FAULT_INJECTION
/* Fault injection, compiled only into the test daemon (preforkd-test, built with
 * PF_FAULT_INJECTION), never into the installed preforkd, where an environment variable
 * must not be able to crash a production worker. PREFORKD_FAULT=exit-at-start:SLOT makes
 * that slot's workers exit with status 3 before serving; PREFORKD_FAULT=conn-alloc-fails
 * makes every connection allocation fail. */
static bool fault_exit_at_start(uint32_t slot)
{
    const char *f = getenv("PREFORKD_FAULT");
    unsigned target;
    return f && sscanf(f, "exit-at-start:%u", &target) == 1 && target == slot;
}

static bool fault_conn_alloc(void)
{
    const char *f = getenv("PREFORKD_FAULT");
    return f && strcmp(f, "conn-alloc-fails") == 0;
}
#endif

static int setup(struct worker *w, const int *listen_fds, const struct pf_listener_addr *addrs,
                 size_t nlisten, int ipc_fd)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
    w->sig.kind = EV_SIGNAL;
    w->sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->sig.fd < 0)
        return -errno;
    w->ipc.kind = EV_IPC;
    w->ipc.fd = ipc_fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->sig};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->sig.fd, &ev) < 0)
        return -errno;
    ev.data.ptr = &w->ipc;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, ipc_fd, &ev) < 0)
        return -errno;
    for (size_t i = 0; i < nlisten; i++) {
        w->listeners[i].kind = EV_LISTEN;
        w->listeners[i].fd = listen_fds[i];
        w->listeners[i].proxy = addrs[i].proxy;
    }
    w->nlisten = nlisten;
    return set_accepting(w, true);
}

int pf_worker_run(const struct pf_config *cfg, uint32_t slot, const struct pf_listeners *ls,
                  int ipc_fd, const struct pf_scoreboard *scoreboard, struct pf_scoreboard_row *row,
                  struct pf_counters_region *counters)
{
    int listen_fds[PF_MAX_LISTEN];
    size_t nlisten = pf_listeners_for_slot(ls, slot, listen_fds);
    char role[32];
    snprintf(role, sizeof(role), "worker %u", slot);
    pf_log_set_role(role);
    /* The name ps, top and the tests see: "preforkd-w3". */
    char comm[16];
    snprintf(comm, sizeof(comm), "preforkd-w%u", slot);
    prctl(PR_SET_NAME, comm);

#ifdef PF_FAULT_INJECTION
    if (fault_exit_at_start(slot)) {
        pf_log_error("PREFORKD_FAULT: exiting at start");
        return 3;
    }
#endif
    if (cfg->affinity_auto) {
        int cpu = pf_cpu_pin_nth(slot);
        if (cpu < 0)
            pf_log_warn("could not pin to a CPU: %s", strerror(-cpu));
        else
            pf_log_debug("pinned to CPU %d", cpu);
    }
    char err[256];
    if (pf_privdrop(cfg->user, cfg->group, err, sizeof(err)) < 0) {
        pf_log_error("%s", err);
        return 1;
    }

    struct worker w = {.cfg = cfg, .slot = slot, .epfd = -1, .row = row};
#ifdef PF_FAULT_INJECTION
    w.fault_alloc = fault_conn_alloc();
#endif
    w.env.drain_idle_ms = PF_DRAIN_IDLE_MS;
    pf_handler_ctx_init(&w.ctx, getpid(), pf_clock_mono_ms(), cfg->sum_iterations,
                        cfg->heavy_iterations);
    w.ctx.scoreboard = scoreboard;
    w.ctx.row = row;
    w.ctx.fail_when_degraded = cfg->health_fail_when_degraded;
    w.ctx.ready_when_degraded = cfg->health_ready_when_degraded;
    w.ctx.cfg = cfg;
    w.ctx.slot = slot;
    pf_router_init(&w.router, cfg);
    w.ctx.router = &w.router;
    w.ctx.version = pf_build_version();
    w.ctx.counters = counters;
    /* The module API's pf_counter() finds the region here; so does the count route. */
    pf_counters_set_current(counters);
    for (uint32_t i = 0; i < w.router.n; i++) {
        struct pf_route *rt = &w.router.routes[i];
        rt->fn = pf_handlers_builtin(rt->kind);
        rt->keep = pf_handlers_builtin_keep(rt->kind);
    }
    /* After the privilege drop: a module runs as the worker's user from its first
     * instruction. A module that does not load or init ends this worker before it
     * serves; in a reload, that abandons the new generation. */
    for (uint32_t i = 0; i < w.router.n; i++) {
        struct pf_route *rt = &w.router.routes[i];
        if (rt->kind == PF_HANDLER_COUNT && !(rt->state = pf_counter(rt->cfg->counter))) {
            pf_log_error("route %s: no shared counter '%s' (the region is full)", rt->path,
                         rt->cfg->counter);
            pf_handler_ctx_free(&w.ctx);
            return PF_WORKER_EXIT_MODULE;
        }
    }
    char merr[1024];
    if (worker_static_routes(&w, merr, sizeof(merr)) < 0) {
        pf_log_error("%s", merr);
        worker_free_routes(&w);
        pf_handler_ctx_free(&w.ctx);
        return PF_WORKER_EXIT_MODULE;
    }
    if (pf_modules_load(&w.modules, cfg, &w.router, merr, sizeof(merr)) < 0) {
        pf_log_error("%s", merr);
        pf_handler_ctx_free(&w.ctx);
        return PF_WORKER_EXIT_MODULE;
    }
    for (uint32_t i = 0; i < w.router.n; i++) {
        if (!w.router.routes[i].fn) {
            pf_log_error("route %s: handler '%s' is not available in this build",
                         w.router.routes[i].path, pf_config_handler_name(w.router.routes[i].kind));
            pf_modules_unload(&w.modules);
            worker_free_routes(&w);
            pf_handler_ctx_free(&w.ctx);
            return PF_WORKER_EXIT_MODULE;
        }
    }
    w.env.row = row;
    if (cfg->access_format != PF_ACCESS_OFF) {
        int arc = pf_access_log_open(&w.access_log, cfg->access_format, cfg->access_path, slot);
        if (arc < 0) {
            pf_log_error("cannot open the access log %s: %s", cfg->access_path, strerror(-arc));
            return 1;
        }
        w.env.access_log = w.access_log;
    }
    w.env.ctx = &w.ctx;
    w.env.cfg = cfg;
    refresh_clock(&w);
    w.last_tick_ms = w.ctx.now_ms;

    w.ls = ls;
    if (ls->balance == PF_BALANCE_REUSEPORT && ls->nslots > 1) {
        w.cover_src = calloc(ls->nfds, sizeof(*w.cover_src));
        w.covering = calloc(ls->nslots, sizeof(*w.covering));
        if (!w.cover_src || !w.covering) {
            free(w.cover_src);
            w.cover_src = NULL;
        }
        for (size_t k = 0; w.cover_src && k < ls->nfds; k++)
            w.cover_src[k] = (struct ev_source){
                .kind = EV_LISTEN, .fd = ls->fds[k], .proxy = ls->addrs[k % ls->naddrs].proxy};
    }
    int rc = setup(&w, listen_fds, ls->addrs, nlisten, ipc_fd);
    if (rc < 0) {
        pf_log_error("worker setup failed: %s", strerror(-rc));
        return 1;
    }
    if (cfg->shared_backend == PF_SHARED_REDIS) {
        /* Every open connection may wait for one reply, and a closed one may still have
         * one on the wire. */
        struct pf_redis_options ro = {.address = cfg->shared_address,
                                      .prefix = cfg->shared_prefix,
                                      .timeout_ms = cfg->shared_timeout_ms,
                                      .capacity = 2 * cfg->limits.connections,
                                      .epfd = w.epfd,
                                      .kind = EV_REDIS,
                                      .reply = store_reply,
                                      .owner = &w};
        rc = pf_redis_new(&w.redis, &ro, w.ctx.now_ms);
        if (rc < 0) {
            pf_log_error("redis %s: %s", cfg->shared_address, strerror(-rc));
            return 1;
        }
        w.ctx.redis = w.redis;
    }
    atomic_store(&row->state, PF_WSTATE_SERVING);
    rc = pf_ipc_send(ipc_fd, PF_IPC_READY, slot);
    if (rc < 0) {
        pf_log_error("cannot tell the primary that this worker serves: %s", strerror(-rc));
        return 1;
    }
    pf_log_debug("serving");

    struct epoll_event events[MAX_EVENTS];
    while (!w.stop) {
        int64_t wait = 1000 - (w.ctx.now_ms - w.last_tick_ms);
        if (w.redis) {
            int64_t due = pf_redis_next_deadline(w.redis) - w.ctx.now_ms;
            if (due < wait)
                wait = due;
        }
        int n = epoll_wait(w.epfd, events, MAX_EVENTS, wait < 0 ? 0 : (int)wait);
        refresh_clock(&w);
        for (int i = 0; i < n; i++) {
            struct ev_source *src = events[i].data.ptr;
            switch (src->kind) {
            case EV_CONN:
                handle_conn(&w, (struct pf_conn *)src, events[i].events);
                break;
            case EV_LISTEN:
                if (!w.env.draining)
                    accept_ready(&w, src);
                break;
            case EV_IPC:
                handle_ipc(&w);
                break;
            case EV_SIGNAL:
                handle_signal(&w);
                break;
            case EV_REDIS:
                pf_redis_on_events(w.redis, events[i].events, w.ctx.now_ms);
                break;
            }
        }
        if (w.redis) {
            pf_redis_tick(w.redis, w.ctx.now_ms);
            /* A write that fails in the flush answers what waited at once (its replies
             * come as errors): taken now, not after the next wait. */
            do {
                take_store_replies(&w);
                pf_redis_flush(w.redis);
            } while (w.store_replies);
        }
        if (w.drain_requested)
            start_drain(&w);
        if (w.reopen_log) {
            w.reopen_log = false;
            if (cfg->log_file[0] && pf_log_reopen(cfg->log_file) < 0)
                pf_log_error("cannot reopen %s", cfg->log_file);
            if (w.access_log && pf_access_log_reopen(w.access_log) < 0)
                pf_log_error("cannot reopen the access log %s", cfg->access_path);
        }
        if (w.ctx.now_ms - w.last_tick_ms >= 1000)
            tick(&w);
        if (w.env.draining && w.nconns == 0)
            break;
    }
    pf_log_debug("exiting after %llu requests", (unsigned long long)w.env.requests);
    while (w.live)
        conn_close(&w, w.live);
    pf_redis_free(&w.redis); /* after the connections: a reply left finds none waiting */
    for (size_t i = 0; i < w.nbatches; i++) {
        for (int k = 0; k < CONN_BATCH; k++)
            pf_http_free(&w.batches[i][k].http);
        free(w.batches[i]);
    }
    free(w.batches);
    pf_modules_unload(&w.modules);
    worker_free_routes(&w);
    pf_handler_ctx_free(&w.ctx);
    free(w.cover_src);
    free(w.covering);
    pf_access_log_free(&w.access_log);
    close(w.sig.fd);
    close(w.epfd);
    return 0;
}

const char *pf_build_version(void)
{
#ifndef PF_VERSION_SUFFIX
#define PF_VERSION_SUFFIX ""
#endif
    return PF_VERSION PF_VERSION_SUFFIX;
}
