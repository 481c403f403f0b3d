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
#include <sys/wait.h>
#include <unistd.h>

#include "preforkd/clock.h"
#include "preforkd/control.h"
#include "preforkd/env.h"
#include "preforkd/generation.h"
#include "preforkd/handover.h"
#include "preforkd/ipc.h"
#include "preforkd/listener.h"
#include "preforkd/log.h"
#include "preforkd/procfs.h"
#include "preforkd/proctable.h"
#include "preforkd/readiness.h"
#include "preforkd/sdnotify.h"
#include "preforkd/spawn.h"
#include "preforkd/scoreboard.h"

/* The primary's loop: it reads signals and IPC, asks the process table (proctable.c,
 * the rules) what to do, and does it: fork, signal, IPC, sd_notify, logging. */

#define MAX_WAITERS 16
#define ACTIONS     64 /* per call into the table; more come on the next call */

struct primary {
    const char *config_path;
    const struct pf_env *env;
    struct pf_generations gens;
    struct pf_proctable table;
    struct pf_readiness readiness; /* starting, serving, lame duck, draining, stopping */
    struct pf_scoreboard *scoreboard;
    /* The module API's shared counters: made before any fork, kept across every worker's
     * life and every reload. */
    struct pf_counters_region *counters;
    int sigfd;
    pid_t pid;
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
    uint32_t done_pending; /* a promoted generation whose waiters are not answered yet */
    /* Hot upgrade. The old primary: the new one it started (0: none), the pipe on which
     * that one says it serves, its deadline and its `preforkd upgrade` waiters; handed
     * over: it has taken over, this one drains away. The new primary: ready_fd, the
     * pipe to the old one; publish is false until it serves, so that two primaries
     * never write the cluster block at once. */
    char *const *argv;
    char exe[4096];
    pid_t upgrade_pid;
    int upgrade_fd;
    int64_t upgrade_deadline_ms;
    pid_t upgrade_waiters[MAX_WAITERS];
    size_t nupgrade_waiters;
    bool handed_over;
    int ready_fd;
    pid_t old_primary;
    bool publish;
    char last_status[200];
#ifdef PF_FAULT_INJECTION
    bool fault_poll, fault_armed;
#endif
};

static void notify(const struct primary *p, const char *msg)
{
    int rc = pf_sdnotify(p->env->notify_socket, msg);
    if (rc < 0)
        pf_log_warn("sd_notify to %s: %s", p->env->notify_socket, strerror(-rc));
}

static struct pf_generation *cur(struct primary *p)
{
    return pf_generations_current(&p->gens);
}
static const struct pf_config *cfg(struct primary *p)
{
    return cur(p)->cfg;
}
static int64_t now_ms(void)
{
    return pf_clock_mono_precise_ms();
}

static struct pf_proctable_rules rules_of(const struct pf_generation *g)
{
    return (struct pf_proctable_rules){.worker_timeout_ms = g->cfg->worker_timeout_ms,
                                       .shutdown_timeout_ms = g->cfg->shutdown_timeout_ms,
                                       .min_uptime_ms = g->cfg->min_uptime_ms,
                                       .max_memory = g->cfg->max_memory,
                                       .cover = g->ls.balance == PF_BALANCE_REUSEPORT};
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

/* ---- status and sd_notify ------------------------------------------------------------ */

static void notify_status(struct primary *p)
{
    struct pf_census c;
    pf_proctable_census(&p->table, now_ms(), &c);
    if (!p->publish)
        return;
    struct pf_scoreboard_cluster *cl = p->scoreboard->cluster;
    atomic_store(&cl->configured, p->table.nslots);
    atomic_store(&cl->serving, c.serving);
    atomic_store(&cl->degraded, c.degraded);
    atomic_store(&cl->state, p->readiness.state);
    atomic_store(&cl->generation, p->table.gen);
    atomic_store(&cl->restarts, p->restarts);
    atomic_store(&cl->reloads, p->reloads);
    char msg[sizeof(p->last_status)];
    snprintf(msg, sizeof(msg),
             "STATUS=%u/%u workers serving, generation %u, %llu restarts, "
             "%llu reloads%s%s%s%s",
             c.serving, p->table.nslots, p->table.gen, (unsigned long long)p->restarts,
             (unsigned long long)p->reloads, c.draining ? ", draining old workers" : "",
             c.backoff ? ", degraded: slot in crash backoff" : "",
             c.stuck ? ", degraded: worker stuck (no heartbeat)" : "",
             p->readiness.state == PF_SVC_LAME_DUCK ? ", lame duck: not ready" : "");
    if (strcmp(msg, p->last_status) != 0) {
        snprintf(p->last_status, sizeof(p->last_status), "%s", msg);
        notify(p, msg);
    }
}

/* Answers each waiting `preforkd reload|upgrade` command (a queued signal), then forgets
 * them. */
static void answer_commands(pid_t *pids, size_t *n, const char *command, enum pf_control_outcome o,
                            uint32_t detail)
{
    for (size_t i = 0; i < *n; i++)
        if (sigqueue(pids[i], PF_CONTROL_REPLY_SIGNAL,
                     (union sigval){.sival_int = pf_control_reply(o, detail)}) < 0)
            pf_log_warn("cannot answer the %s command pid %d: %s", command, (int)pids[i],
                        strerror(errno));
    *n = 0;
}

/* Answers every `preforkd reload` waiting for the reload in progress. */
static void answer_waiters(struct primary *p, enum pf_control_outcome o, uint32_t detail)
{
    answer_commands(p->waiters, &p->nwaiters, "reload", o, detail);
}

static void reload_failed(struct primary *p, enum pf_control_outcome o, uint32_t detail)
{
    answer_waiters(p, o, detail);
    /* systemd was told RELOADING=1; READY=1 ends that state whatever the outcome. */
    notify(p, "READY=1");
}

/* Answers the waiters of a promoted reload once every older worker has let go of the
 * listening sockets (its scoreboard row says draining) or exited. */
static void answer_when_old_let_go(struct primary *p)
{
    if (!p->done_pending)
        return;
    for (size_t i = 0; i < p->table.nprocs; i++) {
        const struct pf_proc *w = &p->table.procs[i];
        if (w->pid && w->gen != p->done_pending &&
            atomic_load(&p->scoreboard->rows[w->row].state) != PF_WSTATE_DRAINING)
            return;
    }
    answer_waiters(p, PF_CONTROL_DONE, p->done_pending);
    p->done_pending = 0;
}

/* ---- hot upgrade ---------------------------------------------------------------------- */

static void answer_upgrade(struct primary *p, enum pf_control_outcome o, uint32_t detail)
{
    answer_commands(p->upgrade_waiters, &p->nupgrade_waiters, "upgrade", o, detail);
}

static void write_pid_file(const char *path);

/* The new primary serves: it tells the old one, becomes systemd's main process and
 * starts publishing the cluster's state. */
static void take_over(struct primary *p)
{
    if (write(p->ready_fd, "R", 1) != 1)
        pf_log_error("cannot tell the old primary pid %d that this one serves: %s",
                     (int)p->old_primary, strerror(errno));
    close(p->ready_fd);
    p->ready_fd = -1;
    p->publish = true;
    if (cfg(p)->pid_file[0])
        write_pid_file(cfg(p)->pid_file);
    char msg[64];
    snprintf(msg, sizeof(msg), "MAINPID=%d", (int)getpid());
    notify(p, msg);
    pf_log_info("upgrade: this binary serves; the old primary pid %d drains and exits",
                (int)p->old_primary);
}

/* SIGUSR2: execute the binary on disk again, handing it every listening socket and the
 * shared memory; this primary serves on until the new one says it serves. */
static void start_upgrade(struct primary *p)
{
    if (p->upgrade_pid || p->handed_over || p->ready_fd >= 0) {
        pf_log_warn("upgrade refused: %s", p->ready_fd >= 0
                                               ? "this primary is itself still taking over"
                                               : "an upgrade is already in progress");
        answer_upgrade(p, PF_CONTROL_BUSY, 0);
        return;
    }
    if (p->table.stopping || p->table.reloading) {
        pf_log_warn("upgrade refused: a %s is in progress", p->table.stopping ? "stop" : "reload");
        answer_upgrade(p, p->table.stopping ? PF_CONTROL_STOPPING : PF_CONTROL_BUSY, 0);
        return;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        pf_log_error("upgrade: pipe: %s", strerror(errno));
        answer_upgrade(p, PF_CONTROL_NOMEM, (uint32_t)errno);
        return;
    }
    struct pf_handover h = {.from = getpid(),
                            .ready_fd = pfd[1],
                            .scoreboard_fd = p->scoreboard->fd,
                            .counters_fd = pf_counters_fd(p->counters),
                            .ls = cur(p)->ls};
    char *spec = pf_handover_encode(&h);
    pid_t pid = spec ? fork() : -1;
    if (pid == 0) {
        /* The new binary keeps exactly what the description names. */
        const struct pf_listeners *ls = &cur(p)->ls;
        for (size_t i = 0; i < ls->nfds; i++)
            fcntl(ls->fds[i], F_SETFD, 0);
        fcntl(pfd[1], F_SETFD, 0);
        fcntl(h.scoreboard_fd, F_SETFD, 0);
        if (h.counters_fd >= 0)
            fcntl(h.counters_fd, F_SETFD, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setenv(PF_HANDOVER_VAR, spec, 1);
        execv(p->exe, p->argv);
        _exit(127);
    }
    int e = errno;
    free(spec);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        pf_log_error("upgrade: cannot start %s: %s", p->exe, strerror(e));
        answer_upgrade(p, PF_CONTROL_NOMEM, (uint32_t)e);
        return;
    }
    p->upgrade_pid = pid;
    p->upgrade_fd = pfd[0];
    p->upgrade_deadline_ms = now_ms() + cfg(p)->worker_timeout_ms;
    pf_log_info("upgrade: started %s as pid %d; serving on until it serves", p->exe, (int)pid);
}

static void upgrade_failed(struct primary *p, const char *why)
{
    pf_log_error("upgrade failed: the new primary pid %d %s; this one keeps serving",
                 (int)p->upgrade_pid, why);
    if (p->upgrade_pid > 0)
        kill(p->upgrade_pid, SIGKILL); /* its workers see their IPC close and exit */
    if (p->upgrade_fd >= 0)
        close(p->upgrade_fd);
    p->upgrade_fd = -1;
    /* upgrade_pid stays until it is reaped, so that a second upgrade waits for that. */
    answer_upgrade(p, PF_CONTROL_WORKERS, 0);
    p->publish = true;
}

static void begin_stop_for(struct primary *p, int sig, bool handing_over);

static void read_upgrade(struct primary *p)
{
    char c;
    ssize_t n = read(p->upgrade_fd, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n == 1 && c == 'R') {
        pid_t new_primary = p->upgrade_pid;
        close(p->upgrade_fd);
        p->upgrade_fd = -1;
        p->handed_over = true;
        p->publish = false;
        pf_log_info("upgrade: the new primary pid %d serves; draining this one", (int)new_primary);
        answer_upgrade(p, PF_CONTROL_DONE, (uint32_t)new_primary);
        begin_stop_for(p, SIGQUIT, true);
        return;
    }
    upgrade_failed(p, "exited before serving");
}

/* ---- performing the table's actions ---------------------------------------------------- */

static int spawn(struct primary *p, uint32_t slot, int64_t now)
{
    struct pf_generation *g = cur(p);
    int row = pf_scoreboard_claim(p->scoreboard, 0, slot, g->id, now);
    if (row < 0)
        return -ENOSPC;
    /* What the child must not keep: siblings' IPC ends, the signalfd, other
     * generations' sockets (its own generation's stay: its slot's, and the others' for
     * covering). */
    size_t n = 1;
    for (size_t i = 0; i < p->table.nprocs; i++)
        n += p->table.procs[i].pid && p->table.procs[i].ipc_fd >= 0;
    for (size_t k = 0; k < p->gens.n; k++)
        if (p->gens.gens[k] != g)
            n += p->gens.gens[k]->ls.nfds;
    int *close_fds = malloc(n * sizeof(int));
    if (!close_fds) {
        pf_scoreboard_release(p->scoreboard, row);
        return -ENOMEM;
    }
    size_t k = 0;
    close_fds[k++] = p->sigfd;
    for (size_t i = 0; i < p->table.nprocs; i++)
        if (p->table.procs[i].pid && p->table.procs[i].ipc_fd >= 0)
            close_fds[k++] = p->table.procs[i].ipc_fd;
    for (size_t j = 0; j < p->gens.n; j++) {
        const struct pf_listeners *ls = &p->gens.gens[j]->ls;
        for (size_t i = 0; p->gens.gens[j] != g && i < ls->nfds; i++)
            if (ls->fds[i] >= 0)
                close_fds[k++] = ls->fds[i];
    }
    assert(k <= n);
    struct pf_spawn s = {.cfg = g->cfg,
                         .ls = &g->ls,
                         .slot = slot,
                         .scoreboard = p->scoreboard,
                         .row = row,
                         .counters = p->counters,
                         .primary = p->pid,
                         .close_fds = close_fds,
                         .nclose = k};
    int ipc_fd;
    pid_t pid = pf_spawn_worker(&s, &ipc_fd);
    free(close_fds);
    if (pid < 0) {
        pf_scoreboard_release(p->scoreboard, row);
        return (int)pid;
    }
    atomic_store(&p->scoreboard->rows[row].pid, pid);
    const struct pf_config *c = g->cfg;
    uint64_t limit = 0;
    if (c->max_requests) {
        /* Jitter spreads the recycling of workers started together, as gunicorn does. */
        p->seed = p->seed * 1103515245u + 12345u;
        limit = c->max_requests +
                (c->max_requests_jitter ? (p->seed >> 8) % (c->max_requests_jitter + 1) : 0);
    }
    int rc = pf_proctable_add(&p->table, pid, slot, row, ipc_fd, now, limit);
    if (rc < 0) {
        /* Unknown to the table, it must not serve: its reaping is then ignored. */
        kill(pid, SIGKILL);
        close(ipc_fd);
        pf_scoreboard_release(p->scoreboard, row);
        return rc;
    }
    return (int)pid;
}

static void send_cover(struct primary *p, const struct pf_action *a)
{
    enum pf_ipc_type type = a->kind == PF_ACT_COVER ? PF_IPC_COVER : PF_IPC_UNCOVER;
    for (size_t i = 0; i < p->table.nprocs; i++) {
        const struct pf_proc *w = &p->table.procs[i];
        bool to = a->pid ? w->pid == a->pid
                         : w->pid && w->gen == p->table.gen && w->slot != a->slot &&
                               w->state == PF_PROC_SERVING;
        if (!to || w->ipc_fd < 0)
            continue;
        int rc = pf_ipc_send(w->ipc_fd, type, a->slot);
        /* A worker that cannot be told is dying: its SIGCHLD follows. */
        if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET)
            pf_log_warn("cannot tell worker pid %d about slot %u: %s", (int)w->pid, a->slot,
                        strerror(-rc));
    }
}

static void signal_worker(const struct pf_action *a, int sig)
{
    if (kill(a->pid, sig) < 0 && errno != ESRCH)
        pf_log_error("cannot signal worker pid %d: %s", (int)a->pid, strerror(errno));
}

static void perform(struct primary *p, const struct pf_action *a, int64_t now)
{
    const struct pf_config *c = cfg(p);
    switch (a->kind) {
    case PF_ACT_SPAWN: {
        bool retire = a->why == PF_WHY_RECYCLE_REQS || a->why == PF_WHY_RECYCLE_MEM;
        if (a->why == PF_WHY_RECYCLE_REQS)
            pf_log_info("recycling worker slot %u pid %d: served %llu requests", a->slot,
                        (int)a->pid, (unsigned long long)a->value);
        else if (a->why == PF_WHY_RECYCLE_MEM)
            pf_log_info("recycling worker slot %u pid %d: RSS %llu bytes over max_memory %llu",
                        a->slot, (int)a->pid, (unsigned long long)a->value,
                        (unsigned long long)c->max_memory);
        int rc = spawn(p, a->slot, now);
        if (rc < 0) {
            pf_proctable_spawn_failed(&p->table, a->slot, now);
            pf_log_error("fork for slot %u failed: %s; retrying in %u ms", a->slot, strerror(-rc),
                         p->table.slots[a->slot].backoff_ms);
            break;
        }
        pf_log_info("worker slot %u started, pid %d, generation %u%s", a->slot, rc, p->table.gen,
                    retire ? " (replacing a worker being recycled)" : "");
        break;
    }
    case PF_ACT_DRAIN:
        if (a->why == PF_WHY_RECYCLED)
            pf_log_info("worker slot %u pid %d recycled; draining it", a->slot, (int)a->pid);
        signal_worker(a, SIGQUIT);
        break;
    case PF_ACT_TERM:
        signal_worker(a, SIGTERM);
        break;
    case PF_ACT_ABORT:
        pf_log_error("worker slot %u pid %d stuck for %llu ms (no heartbeat; "
                     "worker_timeout %u ms): sending SIGABRT",
                     a->slot, (int)a->pid, (unsigned long long)a->value, c->worker_timeout_ms);
        signal_worker(a, SIGABRT);
        break;
    case PF_ACT_KILL:
        if (a->why == PF_WHY_IGNORED_ABORT)
            pf_log_error("worker slot %u pid %d ignored SIGABRT; SIGKILL", a->slot, (int)a->pid);
        else if (a->why == PF_WHY_DRAIN_TIMEOUT)
            pf_log_warn("worker slot %u pid %d still draining after %u ms; SIGKILL", a->slot,
                        (int)a->pid, c->shutdown_timeout_ms);
        else
            pf_log_warn("worker slot %u pid %d did not stop in time; SIGKILL", a->slot,
                        (int)a->pid);
        signal_worker(a, SIGKILL);
        break;
    case PF_ACT_COVER:
    case PF_ACT_UNCOVER:
        if (!a->pid)
            pf_log_info("slot %u %s", a->slot,
                        a->kind == PF_ACT_COVER
                            ? "has no serving worker: the other workers cover its sockets"
                            : "is served again: covering ends");
        send_cover(p, a);
        break;
    case PF_ACT_READY:
        pf_log_info("all %u workers serving", p->table.nslots);
        if (p->ready_fd >= 0)
            take_over(p);
        pf_readiness_serving(&p->readiness);
        notify_status(p);
        notify(p, "READY=1");
        break;
    case PF_ACT_PROMOTED: {
        /* Sockets that only older generations use close now, while their draining
         * workers empty the accept queues; shared ones live on in the current
         * generation's dups. */
        pf_generations_close_old_sockets(&p->gens);
        uint32_t draining = 0;
        for (size_t i = 0; i < p->table.nprocs; i++)
            draining += p->table.procs[i].pid && p->table.procs[i].gen != a->gen;
        notify_status(p);
        pf_log_info("reload complete: generation %u serving after %llu ms; %u old worker%s "
                    "draining",
                    a->gen, (unsigned long long)a->value, draining, draining == 1 ? "" : "s");
        notify(p, "READY=1");
        /* `preforkd reload` hears of it once the old workers no longer take connections
         * (see answer_when_old_let_go): only then does every new request meet the new
         * configuration. */
        p->done_pending = a->gen;
        break;
    }
    case PF_ACT_ABANDONED:
        pf_generations_fall_back(&p->gens);
        pf_log_set_level(cfg(p)->log_level);
        pf_log_error("reload failed: generation %u %s; generation %u keeps serving", a->gen,
                     a->why == PF_WHY_NEW_GEN_DIED ? "lost a worker before it served"
                                                   : "did not serve within timeouts.worker",
                     p->table.gen);
        reload_failed(p, PF_CONTROL_WORKERS, 0);
        break;
    }
}

static void perform_all(struct primary *p, const struct pf_action *acts, size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++)
        perform(p, &acts[i], now);
}

/* ---- events --------------------------------------------------------------------------- */

static void reload(struct primary *p)
{
    char err[512];
    if (!p->config_path) {
        pf_log_warn("SIGHUP: no configuration file to re-read (started with built-in defaults)");
        answer_waiters(p, PF_CONTROL_NOFILE, 0);
        return;
    }
    if (p->gens.n == PF_MAX_GENERATIONS) {
        pf_log_error("SIGHUP ignored: %d generations still draining", PF_MAX_GENERATIONS - 1);
        answer_waiters(p, PF_CONTROL_BUSY, 0);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify(p, msg);
    struct pf_config *c = malloc(sizeof(*c));
    if (!c) {
        pf_log_error("SIGHUP: out of memory; keeping the running configuration");
        reload_failed(p, PF_CONTROL_NOMEM, ENOMEM);
        return;
    }
    int rc = pf_config_load(c, p->config_path, err, sizeof(err));
    if (rc < 0) {
        free(c);
        pf_log_error("reload failed, keeping the running configuration: %s", err);
        reload_failed(p, PF_CONTROL_CONFIG, (uint32_t)-rc);
        return;
    }
    uint32_t n = p->workers_override ? p->workers_override : pf_config_worker_count(c);
    struct pf_generation *g;
    rc = pf_generation_open(&g, c, p->next_gen + 1, n, cur(p), 0, err, sizeof(err));
    free(c);
    if (rc < 0) {
        pf_log_error("reload failed, keeping the running configuration: %s", err);
        reload_failed(p, rc == -ENOMEM ? PF_CONTROL_NOMEM : PF_CONTROL_LISTEN, (uint32_t)-rc);
        return;
    }
    struct pf_proctable_rules r = rules_of(g);
    rc = pf_proctable_begin_reload(&p->table, g->id, n, &r, now_ms());
    if (rc < 0) {
        pf_generation_free(&g);
        pf_log_error("SIGHUP: out of memory; keeping the running configuration");
        reload_failed(p, PF_CONTROL_NOMEM, ENOMEM);
        return;
    }
    pf_generations_push(&p->gens, g);
    p->next_gen = g->id;
    p->reloads++;
    pf_log_set_level(g->cfg->log_level);
    pf_log_info("SIGHUP: configuration reloaded; starting generation %u with %u workers%s", g->id,
                n, p->workers_override ? " (count set by -w or TTIN/TTOU)" : "");
}

static void set_worker_count(struct primary *p, uint32_t n)
{
    char err[256];
    if (n < 1 || n > PF_MAX_WORKERS || n == p->table.nslots)
        return;
    struct pf_generation *g = cur(p);
    uint32_t old = p->table.nslots;
    int rc = pf_listeners_set_slots(&g->ls, n, err, sizeof(err));
    if (rc < 0) {
        pf_log_error("cannot change the worker count: %s", err);
        return;
    }
    struct pf_action acts[ACTIONS];
    size_t nacts;
    rc = pf_proctable_set_slots(&p->table, n, now_ms(), acts, ACTIONS, &nacts);
    if (rc < 0) {
        pf_log_error("cannot change the worker count: %s", strerror(-rc));
        if (pf_listeners_set_slots(&g->ls, old, err, sizeof(err)) < 0)
            pf_log_error("cannot restore the listening sockets: %s", err);
        return;
    }
    g->nslots = n;
    p->workers_override = n;
    pf_log_info("worker count %u -> %u", old, n);
    perform_all(p, acts, nacts, now_ms());
}

static void reap(struct primary *p)
{
    int status;
    pid_t pid;
    int64_t now = now_ms();
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == p->upgrade_pid) {
            p->upgrade_pid = 0;
            if (p->upgrade_fd >= 0) {
                char why[96];
                snprintf(why, sizeof(why), "%s %d before serving",
                         WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                p->upgrade_pid = pid; /* named in the message */
                upgrade_failed(p, why);
                p->upgrade_pid = 0;
            }
            continue;
        }
        struct pf_proc *w = pf_proctable_find(&p->table, pid);
        if (!w)
            continue;
        char how[64];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        else
            snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
        /* A module handler it died in is named, so the log points at the code. */
        uint32_t in_route = atomic_load(&p->scoreboard->rows[w->row].in_route);
        const struct pf_generation *wg = pf_generations_find(&p->gens, w->gen);
        if (in_route && wg && in_route - 1 < wg->cfg->nroutes) {
            const struct pf_route_config *rc = &wg->cfg->routes[in_route - 1];
            pf_log_error("worker slot %u pid %d %s in route %s (handler %s.%s)", w->slot, (int)pid,
                         how, rc->path, wg->cfg->modules[rc->module].name, rc->handler);
        }
        if (w->ipc_fd >= 0)
            close(w->ipc_fd);
        /* Its counters live on in the slot's, so /metrics never goes backwards. */
        if (w->slot < PF_MAX_WORKERS)
            pf_counters_add(&p->scoreboard->cluster->retired[w->slot],
                            &p->scoreboard->rows[w->row].c);
        pf_scoreboard_release(p->scoreboard, w->row);
        struct pf_exit e;
        struct pf_action acts[ACTIONS];
        size_t n = pf_proctable_exited(&p->table, pid, now, &e, acts, ACTIONS);
        if (e.counted) {
            p->restarts++;
            pf_count(&p->scoreboard->cluster->slot_restarts[e.slot], 1);
            if (e.backoff_ms) {
                pf_count(&p->scoreboard->cluster->backoffs, 1);
                pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning in %u ms "
                            "(crash-loop backoff)",
                            e.slot, (int)pid, how, (long long)e.uptime_ms, e.backoff_ms);
            } else {
                pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning", e.slot, (int)pid,
                            how, (long long)e.uptime_ms);
            }
        } else if (e.replacement) {
            pf_log_warn("replacement for slot %u pid %d %s; the recycled worker stays", e.slot,
                        (int)pid, how);
        } else {
            pf_log_info("worker slot %u pid %d (generation %u) %s", e.slot, (int)pid, e.gen, how);
        }
        perform_all(p, acts, n, now);
    }
    for (size_t k = 1; k < p->gens.n;) {
        uint32_t id = p->gens.gens[k]->id;
        if (pf_proctable_count(&p->table, id, false)) {
            k++;
            continue;
        }
        pf_log_info("generation %u has drained", id);
        pf_generations_drop(&p->gens, id);
    }
    notify_status(p);
}

static void begin_stop(struct primary *p, int sig)
{
    begin_stop_for(p, sig, false);
}

/* A stop; handing_over: the new binary has taken over (upgrade), so the sockets live
 * on in it: no refusing filter on them, and systemd is not told the service stops. */
static void begin_stop_for(struct primary *p, int sig, bool handing_over)
{
    bool graceful = sig == SIGQUIT;
    if (p->table.stopping && (graceful || !p->table.graceful))
        return; /* a fast stop may override a graceful one, not the reverse */
    int64_t grace = graceful ? cfg(p)->shutdown_timeout_ms : PF_FAST_STOP_MS;
    pf_log_info("%s: %s stop, waiting up to %lld ms for workers", strsignal(sig),
                graceful ? "graceful" : "fast", (long long)grace);
    if (!handing_over)
        notify(p, "STOPPING=1");
    answer_waiters(p, PF_CONTROL_STOPPING, 0);
    if (p->upgrade_pid && !p->handed_over)
        upgrade_failed(p, "was stopped with this primary");
    /* The primary's copies of the listening sockets would keep accepting into queues
     * that no worker will read once the workers have let go of theirs; a client would
     * get a connection, then a reset at exit. The sockets stop taking connections now;
     * the workers accept what is queued and close theirs; later connects are
     * refused. */
    for (size_t k = 0; k < p->gens.n; k++) {
        int rc = handing_over ? 0 : pf_listeners_refuse_new(&p->gens.gens[k]->ls);
        if (rc < 0)
            pf_log_warn("cannot stop the listening sockets taking connections: %s", strerror(-rc));
        pf_listeners_close(&p->gens.gens[k]->ls);
    }
    struct pf_action acts[ACTIONS];
    size_t n;
    int64_t now = now_ms();
    /* Every worker is told, however many: the table marks those it has told. */
    do {
        n = pf_proctable_stop(&p->table, graceful, (uint32_t)grace, now, acts, ACTIONS);
        perform_all(p, acts, n, now);
    } while (n == ACTIONS);
}

/* SIGQUIT, SIGTERM, SIGINT: the readiness rules say whether the lame duck comes first
 * (graceful, with timeouts.lame_duck) or the stop begins now. */
static void stop(struct primary *p, int sig)
{
    uint32_t lame_duck = cfg(p)->lame_duck_ms;
    switch (pf_readiness_stop(&p->readiness, sig == SIGQUIT, lame_duck, now_ms())) {
    case PF_STEP_LAME_DUCK:
        pf_log_info("%s: graceful stop; lame duck for %u ms first: not ready, still "
                    "serving, every answer closes its connection",
                    strsignal(sig), lame_duck);
        notify(p, "STOPPING=1");
        answer_waiters(p, PF_CONTROL_STOPPING, 0);
        notify_status(p);
        break;
    case PF_STEP_DRAIN:
    case PF_STEP_FAST:
        begin_stop(p, sig);
        notify_status(p);
        break;
    case PF_STEP_NONE:
        break;
    }
}

static bool stopping(const struct primary *p)
{
    return p->table.stopping || pf_readiness_stopping(&p->readiness);
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
            stop(p, (int)si.ssi_signo);
            break;
        case SIGHUP: {
            bool asked = si.ssi_code == SI_QUEUE && si.ssi_int == PF_CONTROL_ASK;
            if (p->done_pending) {
                /* The previous reload is complete; its waiters need not wait for this. */
                answer_waiters(p, PF_CONTROL_DONE, p->done_pending);
                p->done_pending = 0;
            }
            if (asked && p->nwaiters < MAX_WAITERS)
                p->waiters[p->nwaiters++] = (pid_t)si.ssi_pid;
            if (stopping(p)) {
                answer_waiters(p, PF_CONTROL_STOPPING, 0);
            } else if (p->table.reloading) {
                /* One reload at a time: a second would start workers of a third
                 * generation before the second has shown it can serve. The waiter is
                 * answered with the outcome of the reload in progress. */
                pf_log_warn("SIGHUP: generation %u is still starting; this reload waits for "
                            "its outcome",
                            p->table.gen);
            } else {
                reload(p);
            }
            break;
        }
        case SIGUSR1:
            pf_log_info("SIGUSR1: reopening log files");
            if (cfg(p)->log_file[0] && pf_log_reopen(cfg(p)->log_file) < 0)
                pf_log_error("cannot reopen %s", cfg(p)->log_file);
            for (size_t i = 0; i < p->table.nprocs; i++)
                if (p->table.procs[i].pid && kill(p->table.procs[i].pid, SIGUSR1) < 0 &&
                    errno != ESRCH)
                    pf_log_error("cannot signal worker pid %d: %s", (int)p->table.procs[i].pid,
                                 strerror(errno));
            break;
        case SIGTTIN:
        case SIGTTOU:
            if (p->table.reloading)
                pf_log_warn("%s ignored: a reload is in progress", strsignal((int)si.ssi_signo));
            else if (!stopping(p))
                set_worker_count(p, si.ssi_signo == SIGTTIN ? p->table.nslots + 1
                                                            : p->table.nslots - 1);
            break;
        case SIGUSR2: {
#ifdef PF_FAULT_INJECTION
            if (p->fault_poll) {
                p->fault_armed = true; /* PREFORKD_FAULT=primary-poll-fails */
                break;
            }
#endif
            bool asked = si.ssi_code == SI_QUEUE && si.ssi_int == PF_CONTROL_ASK;
            if (asked && p->nupgrade_waiters < MAX_WAITERS)
                p->upgrade_waiters[p->nupgrade_waiters++] = (pid_t)si.ssi_pid;
            start_upgrade(p);
            break;
        }
        default:
            pf_log_info("%s ignored", strsignal((int)si.ssi_signo));
        }
    }
}

static void read_ipc(struct primary *p, size_t i)
{
    struct pf_proc *w = &p->table.procs[i];
    for (;;) {
        struct pf_ipc_msg m;
        int rc = pf_ipc_recv(w->ipc_fd, &m);
        if (rc == -EAGAIN)
            return;
        if (rc == 1 && m.type == PF_IPC_READY) {
            struct pf_action acts[ACTIONS];
            size_t n = pf_proctable_ready(&p->table, w->pid, now_ms(), acts, ACTIONS);
            perform_all(p, acts, n, now_ms());
            continue;
        }
        if (rc > 0 || rc == -EBADMSG) {
            pf_log_warn("unexpected message from worker pid %d; ignored", (int)w->pid);
            continue;
        }
        /* The worker is gone; SIGCHLD tells how. Stop polling its end. */
        close(w->ipc_fd);
        w->ipc_fd = -1;
        return;
    }
}

/* Once a second: samples each worker's heartbeat, request count and RSS for the rules,
 * then the hung-worker watchdog, deadlines, recycling, systemd's watchdog ping. */
static void tick(struct primary *p, int64_t now)
{
    if (p->upgrade_fd >= 0 && now >= p->upgrade_deadline_ms)
        upgrade_failed(p, "did not serve within timeouts.worker");
    bool sample_rss = cfg(p)->max_memory != 0;
    for (size_t i = 0; i < p->table.nprocs; i++) {
        struct pf_proc *w = &p->table.procs[i];
        if (!w->pid)
            continue;
        const struct pf_scoreboard_row *e = &p->scoreboard->rows[w->row];
        w->heartbeat_ms = atomic_load_explicit(&e->heartbeat_ms, memory_order_relaxed);
        w->requests = atomic_load_explicit(&e->requests, memory_order_relaxed);
        struct pf_memory m;
        if (sample_rss && pf_procfs_statm(w->pid, &m) == 0)
            w->rss = m.rss;
    }
    bool vouch;
    struct pf_action acts[ACTIONS];
    size_t n = pf_proctable_tick(&p->table, now, &vouch, acts, ACTIONS);
    perform_all(p, acts, n, now);
    notify_status(p);
    /* WATCHDOG=1 vouches for the workers, not just for the primary's timer. */
    if (p->watchdog_interval_ms && vouch && now - p->watchdog_sent_ms >= p->watchdog_interval_ms) {
        notify(p, "WATCHDOG=1");
        p->watchdog_sent_ms = now;
    }
}

/* Returns 0 after a stop, negative errno when the primary itself failed. */
static int supervise(struct primary *p)
{
    struct pollfd *pfds = NULL;
    size_t *which = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        int64_t now = now_ms();
        if (now - p->last_tick_ms >= 1000) {
            tick(p, now);
            p->last_tick_ms = now;
        }
        if (pf_readiness_tick(&p->readiness, now) == PF_STEP_DRAIN) {
            begin_stop(p, SIGQUIT); /* the lame duck is over */
            notify_status(p);
        }
        struct pf_action acts[ACTIONS];
        size_t n;
        do {
            n = pf_proctable_decide(&p->table, now, acts, ACTIONS);
            perform_all(p, acts, n, now);
        } while (n == ACTIONS);
        if (p->table.stopping && !pf_proctable_count(&p->table, 0, true))
            break;
        answer_when_old_let_go(p);
        int64_t timeout = 1000 - (now - p->last_tick_ms);
        if (p->done_pending && timeout > 10)
            timeout = 10; /* nothing wakes the primary when a worker starts draining */
        int64_t next = pf_proctable_next_ms(&p->table, now);
        if (next < timeout)
            timeout = next;
        next = pf_readiness_next_ms(&p->readiness, now);
        if (next < timeout)
            timeout = next;
        if (p->table.nprocs + 2 > cap) {
            cap = p->table.nprocs + 2;
            struct pollfd *np = realloc(pfds, cap * sizeof(*pfds));
            if (np)
                pfds = np;
            size_t *nw = realloc(which, cap * sizeof(*which));
            if (nw)
                which = nw;
            if (!np || !nw) {
                pf_log_error("out of memory for the poll set");
                rc = -ENOMEM;
                break;
            }
        }
        nfds_t nfds = 0;
        pfds[nfds++] = (struct pollfd){.fd = p->sigfd, .events = POLLIN};
        /* The new primary's pipe (upgrade), or a placeholder poll ignores. */
        pfds[nfds++] = (struct pollfd){.fd = p->upgrade_fd, .events = POLLIN};
        for (size_t i = 0; i < p->table.nprocs; i++) {
            if (p->table.procs[i].pid && p->table.procs[i].ipc_fd >= 0) {
                which[nfds] = i;
                pfds[nfds++] = (struct pollfd){.fd = p->table.procs[i].ipc_fd, .events = POLLIN};
            }
        }
        int r = poll(pfds, nfds, (int)(timeout < 0 ? 0 : timeout));
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
         * table entry. */
        for (nfds_t k = 2; k < nfds && r > 0; k++) {
            const struct pf_proc *w = &p->table.procs[which[k]];
            if (pfds[k].revents && w->pid && w->ipc_fd == pfds[k].fd)
                read_ipc(p, which[k]);
        }
        if (r > 0 && p->upgrade_fd >= 0 && pfds[1].revents)
            read_upgrade(p);
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
                   uint32_t workers_override, const struct pf_env *env, char *const *argv)
{
    uint32_t nworkers = workers_override ? workers_override : pf_config_worker_count(config);
    struct primary p = {.config_path = config_path,
                        .env = env,
                        .argv = argv,
                        .upgrade_fd = -1,
                        .ready_fd = -1,
                        .publish = true,
                        .workers_override = workers_override,
                        .sigfd = -1,
                        .pid = getpid(),
                        .next_gen = 1,
                        .seed = (uint32_t)getpid()};
    pf_readiness_init(&p.readiness);
    int status = 1;
    char err[256];
    sigset_t set;

    pf_spawn_primary_signals(&set);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        pf_log_error("sigprocmask: %s", strerror(errno));
        return 1;
    }
    p.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p.sigfd < 0) {
        pf_log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    /* The binary on disk, for an upgrade: resolved now, while its path still names it. */
    ssize_t xl = readlink("/proc/self/exe", p.exe, sizeof(p.exe) - 1);
    p.exe[xl > 0 ? xl : 0] = '\0';
    struct pf_handover h = {.ready_fd = -1, .scoreboard_fd = -1, .counters_fd = -1};
    if (env->handover) {
        if (pf_handover_decode(env->handover, &h) < 0) {
            pf_log_error("upgrade: cannot read %s from the old primary", PF_HANDOVER_VAR);
            goto fail;
        }
        p.ready_fd = h.ready_fd;
        p.old_primary = h.from;
        p.publish = false;
        fcntl(h.ready_fd, F_SETFD, FD_CLOEXEC);
        for (size_t i = 0; i < h.ls.nfds; i++)
            fcntl(h.ls.fds[i], F_SETFD, FD_CLOEXEC);
        pf_log_info("upgrade: taking over from pid %d (%zu sockets)", (int)h.from, h.ls.nfds);
    }
    struct pf_generation *g;
    /* Taking over: the old primary's sockets stand as the previous generation's, so
     * those of the addresses configured are dup()ed, never re-bound. */
    struct pf_generation inherited = {.ls = h.ls};
    int grc = pf_generation_open(&g, config, 1, nworkers, env->handover ? &inherited : NULL,
                                 env->listen_fds, err, sizeof(err));
    if (env->handover)
        pf_listeners_close(&h.ls);
    if (grc < 0) {
        pf_log_error("%s", err);
        goto fail;
    }
    pf_generations_push(&p.gens, g);
    struct pf_proctable_rules r = rules_of(g);
    if (pf_proctable_init(&p.table, &r, g->id, nworkers) < 0) {
        pf_log_error("out of memory for %u worker slots", nworkers);
        goto fail;
    }
    /* Counters and request figures carry on across an upgrade: the same memory. */
    int crc = h.counters_fd >= 0 ? pf_counters_from_fd(&p.counters, h.counters_fd) : -ENOENT;
    if (h.counters_fd >= 0)
        close(h.counters_fd);
    if (crc < 0 && h.counters_fd >= 0)
        pf_log_warn("upgrade: the old primary's counters are of another layout (%s); "
                    "starting new ones",
                    strerror(-crc));
    if (crc < 0)
        crc = pf_counters_new(&p.counters, PF_COUNTERS_DEFAULT_CAPACITY);
    if (crc < 0) {
        pf_log_error("cannot make the shared counters: %s", strerror(-crc));
        goto fail;
    }
    int src =
        h.scoreboard_fd >= 0 ? pf_scoreboard_from_fd(&p.scoreboard, h.scoreboard_fd) : -ENOENT;
    if (h.scoreboard_fd >= 0)
        close(h.scoreboard_fd);
    if (src == 0) {
        const struct pf_scoreboard_cluster *cl = p.scoreboard->cluster;
        p.restarts = atomic_load(&cl->restarts);
        p.reloads = atomic_load(&cl->reloads);
        /* Generations go on counting, so /metrics never sees one number twice. */
        uint32_t next = atomic_load(&cl->generation) + 1;
        g->id = next;
        p.next_gen = next;
        p.table.gen = next;
    } else {
        if (h.scoreboard_fd >= 0)
            pf_log_warn("upgrade: the old scoreboard is of another layout; starting a new one");
        /* Room for every slot twice over (reloads, recycling) plus SIGTTIN growth. */
        if (pf_scoreboard_new(&p.scoreboard, 2 * PF_MAX_WORKERS + 64) < 0) {
            pf_log_error("cannot map the scoreboard");
            goto fail;
        }
    }
    if (p.publish) {
        atomic_store(&p.scoreboard->cluster->primary_pid, getpid());
        atomic_store(&p.scoreboard->cluster->started_ms, now_ms());
        atomic_store(&p.scoreboard->cluster->configured, nworkers);
    }
    if (env->watchdog_usec) {
        p.watchdog_interval_ms = (int64_t)(env->watchdog_usec / 2000);
        char why[256];
        if (pf_primary_watchdog_check(env->watchdog_usec, g->cfg->worker_timeout_ms, why,
                                      sizeof(why)) < 0)
            pf_log_warn("%s", why);
        else
            pf_log_info("%s", why);
    }
#ifdef PF_FAULT_INJECTION
    const char *fault = getenv("PREFORKD_FAULT");
    p.fault_poll = fault && strcmp(fault, "primary-poll-fails") == 0;
#endif
    /* A new primary writes the pid file once it serves (take_over): until then the old
     * one is the service. */
    if (g->cfg->pid_file[0] && !env->handover)
        write_pid_file(g->cfg->pid_file);
    p.last_tick_ms = now_ms();
    pf_log_info("starting %u worker%s", nworkers, nworkers == 1 ? "" : "s");
    int rc = supervise(&p);
    if (rc == 0)
        status = 0;
    else
        pf_log_error("the primary failed: %s; its workers exit with it", strerror(-rc));
    /* After a hand-over the pid file names the new primary. */
    if (cfg(&p)->pid_file[0] && !p.handed_over)
        unlink(cfg(&p)->pid_file);
    if (p.upgrade_fd >= 0)
        close(p.upgrade_fd);
    if (p.ready_fd >= 0)
        close(p.ready_fd);
    pf_log_info("stopped");
fail:
    pf_generations_free(&p.gens);
    pf_proctable_free(&p.table);
    pf_scoreboard_free(&p.scoreboard);
    pf_counters_free(&p.counters);
    close(p.sigfd);
    return status;
}
