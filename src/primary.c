#include "preforkd/primary.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preforkd/clock.h"
#include "preforkd/control.h"
#include "preforkd/handlers.h"
#include "preforkd/listener.h"
#include "preforkd/log.h"
#include "preforkd/sdnotify.h"
#include "preforkd/stats.h"
#include "preforkd/worker.h"

/* One worker process. A slot of the current generation is served by exactly one
 * "occupant" (not draining, not retiring); during a reload or a recycle a second
 * process runs for the same slot until its replacement is serving. */
enum proc_state { P_STARTING, P_SERVING, P_DRAINING };

struct proc {
    pid_t pid; /* 0: free table entry */
    int ipc_fd;
    uint32_t gen;
    uint32_t slot;
    int board;
    enum proc_state state;
    bool retiring; /* a replacement is starting (recycling) */
    int64_t started_ms;
    int64_t drain_ms;
    int64_t abort_ms; /* watchdog sent SIGABRT at */
    uint64_t request_limit;
};

struct slot {
    int64_t respawn_at_ms;
    uint32_t backoff_ms;
    uint32_t restarts;
    int64_t unserved_since_ms; /* 0 while a worker serves the slot */
    bool covered;              /* other workers accept on its sockets meanwhile */
};

/* A slot without a serving worker for this long gets covered (reuseport): a normal
 * respawn takes a few milliseconds and is not worth the churn. */
#define PF_COVER_AFTER_MS 100

/* The sockets and settings of one generation; old ones live until their last worker
 * has drained. */
struct gen {
    uint32_t id;
    uint32_t nslots; /* its worker count, restored if a reload is abandoned */
    struct pf_config *cfg;
    struct pf_listeners ls;
};

#define MAX_GENS              16
#define PF_HEARTBEAT_FRESH_MS 2000
/* SIGABRT to a hung worker, then SIGKILL this much later if it is still there. */
#define PF_ABORT_GRACE_MS 5000
#define MAX_WAITERS       16

struct primary {
    const char *config_path;
    struct gen *gens[MAX_GENS]; /* gens[0] is the current generation */
    size_t ngens;
    struct slot *slots;
    uint32_t nslots;
    struct proc *procs;
    size_t nprocs;
    struct pf_scoreboard *board;
    int sigfd;
    pid_t pid;
    bool stopping;
    bool reloading;
    bool announced_ready;
    int recycling; /* slot being recycled, or -1 */
    int64_t stop_deadline_ms;
    int64_t reload_started_ms;
    int64_t last_tick_ms;
    int64_t watchdog_interval_ms; /* systemd WatchdogSec/2, 0 when not asked */
    int64_t watchdog_sent_ms;
    uint64_t restarts;
    uint64_t reloads;
    uint32_t next_gen;
    uint32_t seed;
    /* The operator's explicit worker count (-w, then TTIN/TTOU): it outranks the file's
     * `workers:` for the life of the process, as `pm2 scale` outlives `pm2 reload`.
     * 0: none given, the file decides. */
    uint32_t workers_override;
    /* `preforkd reload` commands waiting for the outcome of the reload in progress. */
    pid_t waiters[MAX_WAITERS];
    size_t nwaiters;
#ifdef PF_FAULT_INJECTION
    bool fault_poll, fault_armed;
#endif
    char last_status[200];
};

uint32_t pf_primary_backoff(uint32_t previous_ms, int64_t uptime_ms, uint32_t min_uptime_ms)
{
    if (uptime_ms >= (int64_t)min_uptime_ms)
        return 0;
    if (previous_ms == 0)
        return PF_BACKOFF_FIRST_MS;
    return previous_ms >= PF_BACKOFF_MAX_MS / 2 ? PF_BACKOFF_MAX_MS : previous_ms * 2;
}

static struct gen *cur(struct primary *p)
{
    return p->gens[0];
}
static const struct pf_config *cfg(struct primary *p)
{
    return cur(p)->cfg;
}
static int64_t now_ms(void)
{
    return pf_clock_mono_precise_ms();
}

bool pf_primary_watchdog_vouches(int64_t heartbeat_age_ms, uint32_t worker_timeout_ms)
{
    /* Fresh, or stale but still inside the primary's own escalation (SIGABRT at
     * worker_timeout, SIGKILL a grace later, reaped within another): the primary is
     * doing its job, and systemd killing the whole service would take the healthy
     * workers down too. Past that, the escalation failed and systemd should act. */
    return heartbeat_age_ms < PF_HEARTBEAT_FRESH_MS ||
           heartbeat_age_ms <= (int64_t)worker_timeout_ms + 2 * PF_ABORT_GRACE_MS;
}

int pf_primary_watchdog_check(uint64_t watchdog_usec, uint32_t worker_timeout_ms, char *why,
                              size_t cap)
{
    /* Pings go out every WatchdogSec/2 from a loop that wakes at least once a second,
     * so one may be up to a second late: WatchdogSec must exceed two seconds. */
    if (watchdog_usec <= 2000000) {
        snprintf(why, cap,
                 "WatchdogSec=%llums is too short: the primary pings every WatchdogSec/2 from "
                 "a once-a-second loop; use 3s or more",
                 (unsigned long long)(watchdog_usec / 1000));
        return -EINVAL;
    }
    snprintf(why, cap,
             "systemd watchdog every %llu ms; a hung worker is aborted after %u ms "
             "(timeouts.worker) and the pings go on meanwhile; they stop only if a worker "
             "outlives SIGKILL (%u ms)",
             (unsigned long long)(watchdog_usec / 2000), worker_timeout_ms,
             worker_timeout_ms + 2 * PF_ABORT_GRACE_MS);
    return 0;
}

static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                      SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU};

/* ---- the process table ------------------------------------------------------------ */

static struct proc *occupant(struct primary *p, uint32_t slot)
{
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (w->pid && w->gen == cur(p)->id && w->slot == slot && w->state != P_DRAINING &&
            !w->retiring)
            return w;
    }
    return NULL;
}

static struct proc *retiring_of(struct primary *p, uint32_t slot)
{
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (w->pid && w->gen == cur(p)->id && w->slot == slot && w->retiring &&
            w->state != P_DRAINING)
            return w;
    }
    return NULL;
}

static struct proc *new_proc(struct primary *p)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (!p->procs[i].pid)
            return &p->procs[i];
    size_t n = p->nprocs ? p->nprocs * 2 : 16;
    struct proc *t = realloc(p->procs, n * sizeof(*t));
    if (!t)
        return NULL;
    memset(t + p->nprocs, 0, (n - p->nprocs) * sizeof(*t));
    p->procs = t;
    struct proc *w = &p->procs[p->nprocs];
    p->nprocs = n;
    return w;
}

static uint32_t count_procs(struct primary *p, uint32_t gen, bool any_gen)
{
    uint32_t n = 0;
    for (size_t i = 0; i < p->nprocs; i++)
        n += p->procs[i].pid && (any_gen || p->procs[i].gen == gen);
    return n;
}

/* ---- status and sd_notify ------------------------------------------------------------ */

static bool degraded(struct primary *p)
{
    for (uint32_t s = 0; s < p->nslots; s++) {
        struct proc *o = occupant(p, s);
        if (!o || o->state != P_SERVING)
            return true;
    }
    return false;
}

/* A serving worker whose heartbeat is stale (one long request, or a hung loop), or
 * which the watchdog is already killing. */
static bool stuck(const struct primary *p, const struct proc *w, int64_t now)
{
    if (w->abort_ms)
        return true;
    int64_t beat =
        atomic_load_explicit(&p->board->entries[w->board].heartbeat_ms, memory_order_relaxed);
    return w->state == P_SERVING && now - beat >= PF_HEARTBEAT_FRESH_MS;
}

static void notify_status(struct primary *p)
{
    uint32_t up = 0, waiting = 0, hung = 0;
    int64_t now = now_ms();
    for (uint32_t s = 0; s < p->nslots; s++) {
        struct proc *o = occupant(p, s);
        bool is_stuck = o && stuck(p, o, now);
        up += o && o->state == P_SERVING && !is_stuck;
        hung += is_stuck;
        waiting += !o && p->slots[s].backoff_ms;
    }
    uint32_t draining = 0;
    for (size_t i = 0; i < p->nprocs; i++)
        draining += p->procs[i].pid && p->procs[i].state == P_DRAINING;
    struct pf_board_cluster *cl = p->board->cluster;
    atomic_store(&cl->configured, p->nslots);
    atomic_store(&cl->serving, up);
    atomic_store(&cl->degraded, up < p->nslots);
    atomic_store(&cl->generation, cur(p)->id);
    atomic_store(&cl->restarts, p->restarts);
    atomic_store(&cl->reloads, p->reloads);
    char msg[sizeof(p->last_status)];
    snprintf(msg, sizeof(msg),
             "STATUS=%u/%u workers serving, generation %u, %llu restarts, "
             "%llu reloads%s%s%s",
             up, p->nslots, cur(p)->id, (unsigned long long)p->restarts,
             (unsigned long long)p->reloads, draining ? ", draining old workers" : "",
             waiting ? ", degraded: slot in crash backoff" : "",
             hung ? ", degraded: worker stuck (no heartbeat)" : "");
    if (strcmp(msg, p->last_status) != 0) {
        snprintf(p->last_status, sizeof(p->last_status), "%s", msg);
        pf_sdnotify(msg);
    }
}

/* ---- spawning ------------------------------------------------------------------------- */

static void child_main(struct primary *p, struct gen *g, uint32_t slot, int ipc_fd, int board)
{
    /* Every other descriptor the primary holds would keep something alive that should
     * die with it: siblings' IPC ends, the signalfd, other generations' sockets. */
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid && p->procs[i].ipc_fd >= 0)
            close(p->procs[i].ipc_fd);
    close(p->sigfd);
    /* Its own generation's sockets stay: its slot's, and the others' for covering. */
    for (size_t k = 0; k < p->ngens; k++) {
        if (p->gens[k] == g)
            continue;
        struct pf_listeners *ls = &p->gens[k]->ls;
        for (size_t i = 0; i < ls->nfds; i++)
            close(ls->fds[i]);
    }
    /* Ctrl-C reaches the whole process group; stopping is the primary's decision. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigset_t keep;
    sigemptyset(&keep);
    sigaddset(&keep, SIGTERM);
    sigaddset(&keep, SIGQUIT);
    sigaddset(&keep, SIGUSR1);
    sigprocmask(SIG_SETMASK, &keep, NULL); /* the worker reads these from a signalfd */
    if (getppid() != p->pid)
        _exit(1);
    _exit(pf_worker_run(g->cfg, slot, &g->ls, ipc_fd, p->board, &p->board->entries[board]));
}

static int spawn(struct primary *p, uint32_t slot, bool retire_old)
{
    struct gen *g = cur(p);
    struct proc *w = new_proc(p);
    if (!w)
        return -ENOMEM;
    int64_t now = now_ms();
    int board = pf_scoreboard_claim(p->board, 0, slot, g->id, now);
    if (board < 0)
        return -ENOSPC;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int e = errno;
        pf_scoreboard_release(p->board, board);
        return -e;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        pf_scoreboard_release(p->board, board);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(p, g, slot, sv[1], board);
    }
    close(sv[1]);
    atomic_store(&p->board->entries[board].pid, pid);
    const struct pf_config *c = g->cfg;
    *w = (struct proc){.pid = pid,
                       .ipc_fd = sv[0],
                       .gen = g->id,
                       .slot = slot,
                       .board = board,
                       .state = P_STARTING,
                       .started_ms = now};
    if (c->max_requests) {
        /* Jitter spreads the recycling of workers started together, as gunicorn does. */
        p->seed = p->seed * 1103515245u + 12345u;
        w->request_limit =
            c->max_requests +
            (c->max_requests_jitter ? (p->seed >> 8) % (c->max_requests_jitter + 1) : 0);
    }
    pf_log_info("worker slot %u started, pid %d, generation %u%s", slot, (int)pid, g->id,
                retire_old ? " (replacing a worker being recycled)" : "");
    return 0;
}

static void send_drain(struct proc *w, int64_t now)
{
    if (w->state == P_DRAINING)
        return;
    w->state = P_DRAINING;
    w->drain_ms = now;
    kill(w->pid, SIGQUIT);
}

/* ---- generations ---------------------------------------------------------------------- */

static void free_gen(struct gen *g)
{
    pf_listeners_close(&g->ls);
    free(g->cfg);
    free(g);
}

static void collect_old_gens(struct primary *p)
{
    for (size_t k = 1; k < p->ngens;) {
        struct gen *g = p->gens[k];
        if (count_procs(p, g->id, false)) {
            k++;
            continue;
        }
        pf_log_info("generation %u has drained", g->id);
        free_gen(g);
        memmove(&p->gens[k], &p->gens[k + 1], (p->ngens - k - 1) * sizeof(p->gens[0]));
        p->ngens--;
    }
}

static int resize_slots(struct primary *p, uint32_t n)
{
    struct slot *s = realloc(p->slots, sizeof(*s) * (n ? n : 1));
    if (!s)
        return -ENOMEM;
    for (uint32_t i = p->nslots; i < n; i++)
        s[i] = (struct slot){0};
    p->slots = s;
    p->nslots = n;
    cur(p)->nslots = n;
    return 0;
}

/* Answers every `preforkd reload` waiting for the reload in progress. */
static void answer_waiters(struct primary *p, enum pf_control_outcome o, uint32_t detail)
{
    for (size_t i = 0; i < p->nwaiters; i++)
        if (sigqueue(p->waiters[i], PF_CONTROL_REPLY_SIGNAL,
                     (union sigval){.sival_int = pf_control_reply(o, detail)}) < 0)
            pf_log_warn("cannot answer the reload command pid %d: %s", (int)p->waiters[i],
                        strerror(errno));
    p->nwaiters = 0;
}

static void reload_failed(struct primary *p, enum pf_control_outcome o, uint32_t detail)
{
    answer_waiters(p, o, detail);
    /* systemd was told RELOADING=1; READY=1 ends that state whatever the outcome. */
    pf_sdnotify("READY=1");
}

static void reload(struct primary *p)
{
    char err[512];
    if (!p->config_path) {
        pf_log_warn("SIGHUP: no configuration file to re-read (started with built-in defaults)");
        answer_waiters(p, PF_CONTROL_NOFILE, 0);
        return;
    }
    if (p->ngens == MAX_GENS) {
        pf_log_error("SIGHUP ignored: %d generations still draining", MAX_GENS - 1);
        answer_waiters(p, PF_CONTROL_BUSY, 0);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    pf_sdnotify(msg);
    struct gen *g = calloc(1, sizeof(*g));
    struct pf_config *c = malloc(sizeof(*c));
    if (!g || !c) {
        free(g);
        free(c);
        pf_log_error("SIGHUP: out of memory; keeping the running configuration");
        reload_failed(p, PF_CONTROL_NOMEM, ENOMEM);
        return;
    }
    int rc = pf_config_load(c, p->config_path, err, sizeof(err));
    if (rc < 0) {
        pf_log_error("reload failed, keeping the running configuration: %s", err);
        free(g);
        free(c);
        reload_failed(p, PF_CONTROL_CONFIG, (uint32_t)-rc);
        return;
    }
    uint32_t n = p->workers_override ? p->workers_override : pf_config_worker_count(c);
    rc = pf_listeners_open(&g->ls, c, n, &cur(p)->ls, err, sizeof(err));
    if (rc < 0) {
        pf_log_error("reload failed, keeping the running configuration: %s", err);
        free(g);
        free(c);
        reload_failed(p, PF_CONTROL_LISTEN, (uint32_t)-rc);
        return;
    }
    struct slot *slots = calloc(n, sizeof(*slots));
    if (!slots) {
        pf_listeners_close(&g->ls);
        free(g);
        free(c);
        pf_log_error("SIGHUP: out of memory; keeping the running configuration");
        reload_failed(p, PF_CONTROL_NOMEM, ENOMEM);
        return;
    }
    g->cfg = c;
    g->id = ++p->next_gen;
    g->nslots = n;
    memmove(&p->gens[1], &p->gens[0], p->ngens * sizeof(p->gens[0]));
    p->gens[0] = g;
    p->ngens++;
    p->reloads++;
    p->reloading = true;
    p->reload_started_ms = now_ms();
    p->recycling = -1;
    pf_log_set_level(c->log_level);
    free(p->slots);
    p->slots = slots;
    p->nslots = n;
    pf_log_info("SIGHUP: configuration reloaded; starting generation %u with %u workers%s", g->id,
                n, p->workers_override ? " (count set by -w or TTIN/TTOU)" : "");
}

/* The new generation cannot serve (a worker died before serving, or it did not serve
 * within timeouts.worker): its workers go, the previous generation stays current and
 * never stopped serving. */
static void abandon_reload(struct primary *p, const char *why)
{
    assert(p->reloading && p->ngens >= 2);
    struct gen *g = cur(p);
    pf_log_error("reload failed: generation %u %s; generation %u keeps serving", g->id, why,
                 p->gens[1]->id);
    int64_t now = now_ms();
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (w->pid && w->gen == g->id) {
            w->state = P_DRAINING;
            w->drain_ms = now;
            kill(w->pid, SIGTERM);
        }
    }
    /* It stays in the list, behind the current one, until its workers are reaped. */
    p->gens[0] = p->gens[1];
    p->gens[1] = g;
    pf_listeners_close(&g->ls);
    p->reloading = false;
    uint32_t n = cur(p)->nslots;
    struct slot *slots = calloc(n, sizeof(*slots));
    if (slots) {
        free(p->slots);
        p->slots = slots;
        p->nslots = n;
    } else {
        /* Keep the larger table: slots past n are then treated as reduced (drained). */
        pf_log_error("out of memory restoring the slot table");
        p->nslots = n < p->nslots ? n : p->nslots;
    }
    pf_log_set_level(cur(p)->cfg->log_level);
    reload_failed(p, PF_CONTROL_WORKERS, 0);
}

/* Once every slot of the current generation serves: drain whatever is older, finish a
 * reload or a recycle. */
static void promote(struct primary *p, int64_t now)
{
    for (uint32_t s = 0; s < p->nslots; s++) {
        struct proc *o = occupant(p, s);
        struct proc *old = retiring_of(p, s);
        if (old && o && o->state == P_SERVING) {
            pf_log_info("worker slot %u pid %d recycled; draining it", s, (int)old->pid);
            send_drain(old, now);
            p->recycling = -1;
        }
    }
    if (degraded(p))
        return;
    uint32_t drained = 0;
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (w->pid && w->gen != cur(p)->id && w->state != P_DRAINING) {
            send_drain(w, now);
            drained++;
        }
        /* Slots beyond a reduced count (SIGTTOU) drain too. */
        if (w->pid && w->gen == cur(p)->id && w->slot >= p->nslots && w->state != P_DRAINING) {
            send_drain(w, now);
            drained++;
        }
    }
    /* Sockets that only older generations use close now, while their draining workers
     * empty the accept queues; shared ones live on in the current generation's dups. */
    for (size_t k = 1; k < p->ngens; k++)
        pf_listeners_close(&p->gens[k]->ls);
    if (p->reloading) {
        p->reloading = false;
        notify_status(p);
        pf_log_info("reload complete: generation %u serving after %lld ms; %u old worker%s "
                    "draining",
                    cur(p)->id, (long long)(now - p->reload_started_ms), drained,
                    drained == 1 ? "" : "s");
        pf_sdnotify("READY=1");
        answer_waiters(p, PF_CONTROL_DONE, cur(p)->id);
    } else if (!p->announced_ready) {
        p->announced_ready = true;
        pf_log_info("all %u workers serving", p->nslots);
        notify_status(p);
        pf_sdnotify("READY=1");
    }
}

static void send_ipc(struct proc *w, uint8_t type, uint32_t slot)
{
    struct pf_ipc_msg m = {.type = type, .slot = slot};
    if (w->ipc_fd >= 0)
        send(w->ipc_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static bool slot_served(struct primary *p, uint32_t slot)
{
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (w->pid && w->gen == cur(p)->id && w->slot == slot && w->state == P_SERVING &&
            !w->abort_ms)
            return true;
    }
    return false;
}

/* reuseport gives each slot its own accept queue; while a slot has no serving worker
 * (crash-loop backoff, a hung worker about to be killed) the serving workers of the
 * other slots accept from its queue too, so no connection waits for the slot. */
static void update_covers(struct primary *p, int64_t now)
{
    if (cur(p)->ls.balance != PF_BALANCE_REUSEPORT || p->reloading || p->stopping)
        return;
    for (uint32_t s = 0; s < p->nslots; s++) {
        struct slot *sl = &p->slots[s];
        bool served = slot_served(p, s);
        if (served)
            sl->unserved_since_ms = 0;
        else if (!sl->unserved_since_ms)
            sl->unserved_since_ms = now;
        bool need = !served && now - sl->unserved_since_ms >= PF_COVER_AFTER_MS;
        if (need == sl->covered)
            continue;
        sl->covered = need;
        pf_log_info("slot %u %s", s,
                    need ? "has no serving worker: the other workers cover its sockets"
                         : "is served again: covering ends");
        for (size_t i = 0; i < p->nprocs; i++) {
            struct proc *w = &p->procs[i];
            if (w->pid && w->gen == cur(p)->id && w->slot != s && w->state == P_SERVING)
                send_ipc(w, need ? PF_IPC_COVER : PF_IPC_UNCOVER, s);
        }
    }
}

static void set_worker_count(struct primary *p, uint32_t n)
{
    char err[256];
    if (n < 1 || n > PF_MAX_WORKERS || n == p->nslots)
        return;
    if (pf_listeners_set_slots(&cur(p)->ls, n, err, sizeof(err)) < 0) {
        pf_log_error("cannot change the worker count: %s", err);
        return;
    }
    uint32_t old = p->nslots;
    if (resize_slots(p, n) < 0) {
        pf_log_error("cannot change the worker count: out of memory");
        if (pf_listeners_set_slots(&cur(p)->ls, old, err, sizeof(err)) < 0)
            pf_log_error("cannot restore the listening sockets: %s", err);
        return;
    }
    p->workers_override = n;
    pf_log_info("worker count %u -> %u", old, n);
    if (n < old) {
        int64_t now = now_ms();
        for (size_t i = 0; i < p->nprocs; i++) {
            struct proc *w = &p->procs[i];
            if (w->pid && w->gen == cur(p)->id && w->slot >= n)
                send_drain(w, now);
        }
    }
}

/* ---- events --------------------------------------------------------------------------- */

static void reap(struct primary *p)
{
    int status;
    pid_t pid;
    int64_t now = now_ms();
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct proc *w = NULL;
        for (size_t i = 0; i < p->nprocs && !w; i++)
            if (p->procs[i].pid == pid)
                w = &p->procs[i];
        if (!w)
            continue;
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        else
            snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
        int64_t uptime = now - w->started_ms;
        bool failed_reload =
            p->reloading && !p->stopping && w->gen == cur(p)->id && w->state == P_STARTING;
        bool was_occupant = !p->stopping && w->gen == cur(p)->id && w->state != P_DRAINING &&
                            !w->retiring && w->slot < p->nslots;
        uint32_t slot = w->slot, gen = w->gen;
        if (w->ipc_fd >= 0)
            close(w->ipc_fd);
        /* Its counters live on in the slot's, so /metrics never goes backwards. */
        if (slot < PF_MAX_WORKERS)
            pf_counters_add(&p->board->cluster->retired[slot], &p->board->entries[w->board].c);
        pf_scoreboard_release(p->board, w->board);
        *w = (struct proc){0};
        if (failed_reload) {
            char why[160];
            snprintf(why, sizeof(why), "worker slot %u pid %d %s before serving", slot, (int)pid,
                     how);
            abandon_reload(p, why);
            continue;
        }
        if (!was_occupant) {
            pf_log_info("worker slot %u pid %d (generation %u) %s", slot, (int)pid, gen, how);
            continue;
        }
        struct proc *old = retiring_of(p, slot);
        if (old) {
            /* The replacement died before taking over: the old worker stays. */
            old->retiring = false;
            p->recycling = -1;
            pf_log_warn("replacement for slot %u pid %d %s; keeping pid %d", slot, (int)pid, how,
                        (int)old->pid);
            continue;
        }
        struct slot *s = &p->slots[slot];
        s->restarts++;
        p->restarts++;
        pf_count(&p->board->cluster->slot_restarts[slot], 1);
        s->backoff_ms = pf_primary_backoff(s->backoff_ms, uptime, cfg(p)->min_uptime_ms);
        if (s->backoff_ms)
            pf_count(&p->board->cluster->backoffs, 1);
        s->respawn_at_ms = now + s->backoff_ms;
        if (s->backoff_ms)
            pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning in %u ms "
                        "(crash-loop backoff)",
                        slot, (int)pid, how, (long long)uptime, s->backoff_ms);
        else
            pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning", slot, (int)pid, how,
                        (long long)uptime);
    }
    collect_old_gens(p);
    notify_status(p);
}

static void begin_stop(struct primary *p, int sig)
{
    bool graceful = sig == SIGQUIT;
    if (p->stopping && graceful)
        return; /* a fast stop may override a graceful one, not the reverse */
    p->stopping = true;
    int64_t grace = graceful ? cfg(p)->shutdown_timeout_ms : PF_FAST_STOP_MS;
    p->stop_deadline_ms = now_ms() + grace;
    pf_log_info("%s: %s stop, waiting up to %lld ms for workers", strsignal(sig),
                graceful ? "graceful" : "fast", (long long)grace);
    pf_sdnotify("STOPPING=1");
    answer_waiters(p, PF_CONTROL_STOPPING, 0);
    /* The primary's copies of the listening sockets would keep accepting into queues
     * that no worker will read once the workers have let go of theirs; a client would
     * get a connection, then a reset at exit. The sockets stop taking connections now;
     * the workers accept what is queued and close theirs; later connects are
     * refused. */
    for (size_t k = 0; k < p->ngens; k++) {
        int rc = pf_listeners_refuse_new(&p->gens[k]->ls);
        if (rc < 0)
            pf_log_warn("cannot stop the listening sockets taking connections: %s", strerror(-rc));
        pf_listeners_close(&p->gens[k]->ls);
    }
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid)
            kill(p->procs[i].pid, graceful ? SIGQUIT : SIGTERM);
}

static void read_signals(struct primary *p)
{
    struct signalfd_siginfo si;
    while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(p);
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            begin_stop(p, (int)si.ssi_signo);
            break;
        case SIGHUP: {
            bool asked = si.ssi_code == SI_QUEUE && si.ssi_int == PF_CONTROL_ASK;
            if (asked && p->nwaiters < MAX_WAITERS)
                p->waiters[p->nwaiters++] = (pid_t)si.ssi_pid;
            if (p->stopping) {
                answer_waiters(p, PF_CONTROL_STOPPING, 0);
            } else if (p->reloading) {
                /* One reload at a time: a second would start workers of a third
                 * generation before the second has shown it can serve. The waiter is
                 * answered with the outcome of the reload in progress. */
                pf_log_warn("SIGHUP: generation %u is still starting; this reload waits for "
                            "its outcome",
                            cur(p)->id);
            } else {
                reload(p);
            }
            break;
        }
        case SIGUSR1:
            pf_log_info("SIGUSR1: reopening log files");
            if (cfg(p)->log_file[0] && pf_log_reopen(cfg(p)->log_file) < 0)
                pf_log_error("cannot reopen %s", cfg(p)->log_file);
            for (size_t i = 0; i < p->nprocs; i++)
                if (p->procs[i].pid)
                    kill(p->procs[i].pid, SIGUSR1);
            break;
        case SIGTTIN:
        case SIGTTOU:
            if (p->reloading)
                pf_log_warn("%s ignored: a reload is in progress", strsignal((int)si.ssi_signo));
            else if (!p->stopping)
                set_worker_count(p, si.ssi_signo == SIGTTIN ? p->nslots + 1 : p->nslots - 1);
            break;
        default:
#ifdef PF_FAULT_INJECTION
            p->fault_armed = si.ssi_signo == SIGUSR2;
#endif
            pf_log_info("%s ignored", strsignal((int)si.ssi_signo));
        }
    }
}

static void read_ipc(struct primary *p, struct proc *w)
{
    char msg[16];
    ssize_t n = recv(w->ipc_fd, msg, sizeof(msg), MSG_DONTWAIT);
    if (n > 0 && msg[0] == PF_IPC_READY) {
        if (w->state == P_STARTING) {
            w->state = P_SERVING;
            /* A worker that joins while slots are covered covers them too. */
            for (uint32_t s = 0; s < p->nslots && w->gen == cur(p)->id; s++)
                if (p->slots[s].covered && s != w->slot)
                    send_ipc(w, PF_IPC_COVER, s);
        }
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        /* The worker is gone; SIGCHLD tells how. Stop polling its end. */
        close(w->ipc_fd);
        w->ipc_fd = -1;
    }
}

static uint64_t rss_of(pid_t pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Once a second: the hung-worker watchdog, drain deadlines, recycling, systemd's
 * watchdog ping. */
static void tick(struct primary *p, int64_t now)
{
    const struct pf_config *c = cfg(p);
    bool vouch = true;
    if (p->reloading && now - p->reload_started_ms > (int64_t)c->worker_timeout_ms) {
        char why[96];
        snprintf(why, sizeof(why), "did not serve within timeouts.worker (%u ms)",
                 c->worker_timeout_ms);
        abandon_reload(p, why);
        c = cfg(p);
    }
    for (size_t i = 0; i < p->nprocs; i++) {
        struct proc *w = &p->procs[i];
        if (!w->pid)
            continue;
        int64_t beat =
            atomic_load_explicit(&p->board->entries[w->board].heartbeat_ms, memory_order_relaxed);
        int64_t age = now - beat;
        if (w->state != P_STARTING && !pf_primary_watchdog_vouches(age, c->worker_timeout_ms))
            vouch = false;
        if (w->abort_ms) {
            if (now - w->abort_ms >= PF_ABORT_GRACE_MS) {
                pf_log_error("worker slot %u pid %d ignored SIGABRT; SIGKILL", w->slot,
                             (int)w->pid);
                kill(w->pid, SIGKILL);
            }
            continue;
        }
        if (w->state != P_STARTING && age > (int64_t)c->worker_timeout_ms) {
            pf_log_error("worker slot %u pid %d stuck for %lld ms (no heartbeat; "
                         "worker_timeout %u ms): sending SIGABRT",
                         w->slot, (int)w->pid, (long long)age, c->worker_timeout_ms);
            kill(w->pid, SIGABRT);
            w->abort_ms = now;
            continue;
        }
        if (w->state == P_DRAINING && now - w->drain_ms > (int64_t)c->shutdown_timeout_ms &&
            !p->stopping) {
            pf_log_warn("worker slot %u pid %d still draining after %u ms; SIGKILL", w->slot,
                        (int)w->pid, c->shutdown_timeout_ms);
            kill(w->pid, SIGKILL);
        }
        if (w->state != P_SERVING || w->retiring || w->gen != cur(p)->id || p->recycling >= 0 ||
            p->reloading || p->stopping)
            continue;
        uint64_t reqs =
            atomic_load_explicit(&p->board->entries[w->board].requests, memory_order_relaxed);
        uint64_t rss = c->max_memory ? rss_of(w->pid) : 0;
        const char *why = NULL;
        char reason[96];
        if (w->request_limit && reqs >= w->request_limit) {
            snprintf(reason, sizeof(reason), "served %llu requests (limit %llu)",
                     (unsigned long long)reqs, (unsigned long long)w->request_limit);
            why = reason;
        } else if (c->max_memory && rss > c->max_memory) {
            snprintf(reason, sizeof(reason), "RSS %llu bytes over max_memory %llu",
                     (unsigned long long)rss, (unsigned long long)c->max_memory);
            why = reason;
        }
        if (why) {
            /* One slot at a time: its replacement starts now, and the old worker drains
             * only once the replacement is serving. */
            pf_log_info("recycling worker slot %u pid %d: %s", w->slot, (int)w->pid, why);
            w->retiring = true;
            p->recycling = (int)w->slot;
            if (spawn(p, w->slot, true) < 0) {
                w->retiring = false;
                p->recycling = -1;
            }
        }
    }
    notify_status(p);
    /* WATCHDOG=1 vouches for the workers, not just for the primary's timer. */
    if (p->watchdog_interval_ms && vouch && now - p->watchdog_sent_ms >= p->watchdog_interval_ms) {
        pf_sdnotify("WATCHDOG=1");
        p->watchdog_sent_ms = now;
    }
}

/* Returns 0 after a stop, negative errno when the primary itself failed. */
static int supervise(struct primary *p)
{
    struct pollfd *pfds = NULL;
    struct proc **which = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        int64_t now = now_ms();
        int64_t timeout = 1000 - (now - p->last_tick_ms);
        if (timeout <= 0) {
            tick(p, now);
            p->last_tick_ms = now;
            timeout = 1000;
        }
        if (!p->stopping) {
            for (uint32_t s = 0; s < p->nslots; s++) {
                if (occupant(p, s))
                    continue;
                struct slot *sl = &p->slots[s];
                if (sl->respawn_at_ms <= now) {
                    int err = spawn(p, s, false);
                    if (err < 0) {
                        sl->backoff_ms = pf_primary_backoff(sl->backoff_ms, 0, 1);
                        sl->respawn_at_ms = now + sl->backoff_ms;
                        pf_log_error("fork for slot %u failed: %s; retrying in %u ms", s,
                                     strerror(-err), sl->backoff_ms);
                    } else {
                        continue;
                    }
                }
                if (sl->respawn_at_ms - now < timeout)
                    timeout = sl->respawn_at_ms - now;
            }
            promote(p, now);
            update_covers(p, now);
            for (uint32_t s = 0; s < p->nslots; s++)
                if (!p->slots[s].covered && p->slots[s].unserved_since_ms &&
                    p->slots[s].unserved_since_ms + PF_COVER_AFTER_MS - now < timeout)
                    timeout = p->slots[s].unserved_since_ms + PF_COVER_AFTER_MS - now;
        } else {
            if (!count_procs(p, 0, true))
                break;
            if (now >= p->stop_deadline_ms) {
                for (size_t i = 0; i < p->nprocs; i++) {
                    if (p->procs[i].pid) {
                        pf_log_warn("worker slot %u pid %d did not stop in time; SIGKILL",
                                    p->procs[i].slot, (int)p->procs[i].pid);
                        kill(p->procs[i].pid, SIGKILL);
                    }
                }
                p->stop_deadline_ms = now + 1000;
            }
            if (p->stop_deadline_ms - now < timeout)
                timeout = p->stop_deadline_ms - now;
        }
        if (p->nprocs + 1 > cap) {
            cap = p->nprocs + 1;
            struct pollfd *np = realloc(pfds, cap * sizeof(*pfds));
            struct proc **nw = realloc(which, cap * sizeof(*which));
            if (np)
                pfds = np;
            if (nw)
                which = nw;
            if (!np || !nw) {
                pf_log_error("out of memory for the poll set");
                rc = -ENOMEM;
                break;
            }
        }
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = p->sigfd, .events = POLLIN};
        for (size_t i = 0; i < p->nprocs; i++) {
            if (p->procs[i].pid && p->procs[i].ipc_fd >= 0) {
                which[n] = &p->procs[i];
                pfds[n++] = (struct pollfd){.fd = p->procs[i].ipc_fd, .events = POLLIN};
            }
        }
        int r = poll(pfds, n, (int)(timeout < 0 ? 0 : timeout));
#ifdef PF_FAULT_INJECTION
        /* PREFORKD_FAULT=primary-poll-fails (test daemon only): poll fails after a
         * SIGUSR2, to show that a failing primary exits non-zero. */
        if (p->fault_poll && p->fault_armed) {
            r = -1;
            errno = EIO;
        }
#endif
        if (r < 0 && errno != EINTR) {
            rc = -errno;
            pf_log_error("poll: %s", strerror(errno));
            break;
        }
        /* IPC first: a worker's last message must be read before its SIGCHLD frees the
         * table entry the pointer refers to. */
        for (nfds_t k = 1; k < n && r > 0; k++)
            if (pfds[k].revents && which[k]->pid && which[k]->ipc_fd == pfds[k].fd)
                read_ipc(p, which[k]);
        if (r > 0 && pfds[0].revents)
            read_signals(p);
    }
    free(pfds);
    free(which);
    return rc;
}

static void write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        pf_log_warn("cannot write pid file %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

int pf_primary_run(const struct pf_config *config, const char *config_path,
                   uint32_t workers_override)
{
    uint32_t nworkers = workers_override ? workers_override : pf_config_worker_count(config);
    struct primary p = {.config_path = config_path,
                        .workers_override = workers_override,
                        .sigfd = -1,
                        .pid = getpid(),
                        .recycling = -1,
                        .seed = (uint32_t)getpid()};
    int status = 1;
    char err[256];
    sigset_t set;

    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
        sigaddset(&set, handled_signals[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    p.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p.sigfd < 0) {
        pf_log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    struct gen *g = calloc(1, sizeof(*g));
    struct pf_config *c = malloc(sizeof(*c));
    if (!g || !c) {
        free(g);
        free(c);
        goto fail;
    }
    *c = *config;
    g->cfg = c;
    g->id = p.next_gen = 1;
    p.gens[0] = g;
    p.ngens = 1;
    int act = pf_listeners_from_systemd(&g->ls, nworkers, err, sizeof(err));
    if (act == 0)
        act = pf_listeners_open(&g->ls, c, nworkers, NULL, err, sizeof(err));
    if (act < 0) {
        pf_log_error("%s", err);
        goto fail;
    }
    /* Room for every slot twice over (reloads, recycling) plus SIGTTIN growth. */
    if (pf_scoreboard_new(&p.board, 2 * PF_MAX_WORKERS + 64) < 0) {
        pf_log_error("cannot map the scoreboard");
        goto fail;
    }
    if (resize_slots(&p, nworkers) < 0) {
        pf_log_error("out of memory for %u worker slots", nworkers);
        goto fail;
    }
    atomic_store(&p.board->cluster->primary_pid, getpid());
    atomic_store(&p.board->cluster->started_ms, now_ms());
    atomic_store(&p.board->cluster->configured, nworkers);
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wd_pid = getenv("WATCHDOG_PID");
    if (wd && (!wd_pid || (pid_t)atol(wd_pid) == getpid())) {
        p.watchdog_interval_ms = atoll(wd) / 2000;
        char why[256];
        if (pf_primary_watchdog_check((uint64_t)atoll(wd), c->worker_timeout_ms, why, sizeof(why)) <
            0)
            pf_log_warn("%s", why);
        else
            pf_log_info("%s", why);
    }
#ifdef PF_FAULT_INJECTION
    const char *fault = getenv("PREFORKD_FAULT");
    p.fault_poll = fault && strcmp(fault, "primary-poll-fails") == 0;
#endif
    if (c->pid_file[0])
        write_pid_file(c->pid_file);
    p.last_tick_ms = now_ms();
    pf_log_info("starting %u worker%s", nworkers, nworkers == 1 ? "" : "s");
    int rc = supervise(&p);
    if (rc == 0)
        status = 0;
    else
        pf_log_error("the primary failed: %s; its workers exit with it", strerror(-rc));
    if (cur(&p)->cfg->pid_file[0])
        unlink(cur(&p)->cfg->pid_file);
    pf_log_info("stopped");
fail:
    for (size_t k = 0; k < p.ngens; k++)
        free_gen(p.gens[k]);
    free(p.slots);
    free(p.procs);
    pf_scoreboard_free(&p.board);
    close(p.sigfd);
    return status;
}
