#ifndef PREFORKD_PROCTABLE_H
#define PREFORKD_PROCTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The primary's process table and every rule that decides what happens to a worker:
 * respawn with crash-loop backoff, covering a slot that has no serving worker,
 * promotion of a new generation, recycling, the hung-worker watchdog, drain and stop
 * deadlines, TTIN/TTOU, abandoning a reload. The functions take the table and `now`
 * (CLOCK_MONOTONIC milliseconds, a plain argument) and return actions; they never
 * fork, signal or read a clock, so the rules are unit-tested with a fake clock and no
 * processes (tests/unit/test_proctable.c). The primary's loop performs the actions. */

/* A slot without a serving worker for this long gets covered (reuseport): a normal
 * respawn takes a few milliseconds and is not worth the churn. */
#define PF_COVER_AFTER_MS 100
/* A worker whose heartbeat is this old is busy with one request or hung. */
#define PF_HEARTBEAT_FRESH_MS 2000
/* SIGABRT to a hung worker, then SIGKILL this much later if it is still there. */
#define PF_ABORT_GRACE_MS 5000
/* After a stop's deadline, SIGKILL again this often until every worker is gone. */
#define PF_KILL_REPEAT_MS   1000
#define PF_BACKOFF_FIRST_MS 100
#define PF_BACKOFF_MAX_MS   30000

enum pf_proc_state { PF_PROC_STARTING, PF_PROC_SERVING, PF_PROC_DRAINING };

struct pf_proc {
    pid_t pid; /* 0: free entry */
    uint32_t gen;
    uint32_t slot;
    int row;    /* its row in the scoreboard */
    int ipc_fd; /* the primary's end of its IPC socketpair; the rules never touch it */
    enum pf_proc_state state;
    bool retiring; /* being recycled: its replacement is starting */
    int64_t started_ms;
    int64_t drain_ms;
    int64_t abort_ms; /* the watchdog sent SIGABRT at */
    int64_t kill_ms;  /* SIGKILL sent at */
    uint64_t request_limit;
    /* Sampled by the primary from the scoreboard and /proc before each tick. */
    int64_t heartbeat_ms;
    uint64_t requests;
    uint64_t rss;
};

struct pf_slot {
    int64_t respawn_at_ms;
    uint32_t backoff_ms;
    uint32_t restarts;
    int64_t unserved_since_ms; /* 0 while a worker serves the slot */
    bool covered;              /* other workers accept on its sockets meanwhile */
};

/* The settings the rules use, from the current generation's configuration. */
struct pf_proctable_rules {
    uint32_t worker_timeout_ms;
    uint32_t shutdown_timeout_ms;
    uint32_t min_uptime_ms;
    uint64_t max_memory; /* 0: never recycle for memory */
    bool cover;          /* reuseport: a slot's queue can be covered by other workers */
};

struct pf_proctable {
    struct pf_proc *procs;
    size_t nprocs;
    struct pf_slot *slots;
    uint32_t nslots;
    uint32_t gen; /* the current generation */
    struct pf_proctable_rules rules;
    bool announced_ready;
    bool stopping;
    bool graceful;
    int64_t stop_deadline_ms;
    bool reloading;
    int64_t reload_started_ms;
    uint32_t prev_gen; /* while reloading: the generation to fall back to */
    uint32_t prev_nslots;
    struct pf_slot *prev_slots;
    struct pf_proctable_rules prev_rules;
    int recycling; /* slot being recycled, or -1 */
};

enum pf_action_kind {
    PF_ACT_SPAWN,     /* fork a worker for slot (retire: it replaces a recycled one) */
    PF_ACT_DRAIN,     /* SIGQUIT to pid: stop accepting, finish, exit */
    PF_ACT_TERM,      /* SIGTERM to pid: exit now */
    PF_ACT_ABORT,     /* SIGABRT to pid: hung (no heartbeat for worker_timeout) */
    PF_ACT_KILL,      /* SIGKILL to pid: ignored SIGABRT, or past a deadline */
    PF_ACT_COVER,     /* tell pid (0: every serving worker of the generation but the
                         slot's own) to accept on slot's sockets too */
    PF_ACT_UNCOVER,   /* the same, to stop */
    PF_ACT_READY,     /* first time every slot serves */
    PF_ACT_PROMOTED,  /* the reload to generation gen is complete */
    PF_ACT_ABANDONED, /* the reload to generation gen failed; prev is current again */
};

enum pf_action_reason {
    PF_WHY_NONE,
    PF_WHY_CRASHED,       /* SPAWN: respawn after a death */
    PF_WHY_RECYCLE_REQS,  /* SPAWN retire: served its request limit */
    PF_WHY_RECYCLE_MEM,   /* SPAWN retire: RSS over max_memory */
    PF_WHY_OLD_GEN,       /* DRAIN: an older generation, after promotion */
    PF_WHY_RECYCLED,      /* DRAIN: its replacement serves */
    PF_WHY_FEWER,         /* DRAIN: slot beyond a reduced count (TTOU) */
    PF_WHY_STOP,          /* DRAIN/TERM: the daemon stops */
    PF_WHY_HUNG,          /* ABORT */
    PF_WHY_IGNORED_ABORT, /* KILL */
    PF_WHY_DRAIN_TIMEOUT, /* KILL: draining longer than shutdown_timeout */
    PF_WHY_STOP_TIMEOUT,  /* KILL: the stop's deadline passed */
    PF_WHY_NEW_GEN_DIED,  /* ABANDONED / TERM: a new worker died before serving */
    PF_WHY_NEW_GEN_SLOW,  /* ABANDONED / TERM: not serving within worker_timeout */
};

struct pf_action {
    enum pf_action_kind kind;
    enum pf_action_reason why;
    pid_t pid;
    uint32_t slot;
    uint32_t gen;
    uint64_t value; /* age, RSS, requests or count that explains it */
};

/* What a worker's death meant, for the log and the counters. */
struct pf_exit {
    bool found;
    uint32_t slot;
    uint32_t gen;
    int64_t uptime_ms;
    bool counted;        /* a serving slot lost its worker: a restart */
    uint32_t backoff_ms; /* respawn delay for the slot (0: at once) */
    bool replacement;    /* a recycling replacement died; the old worker stays */
    bool abandoned;      /* it failed a reload, which is abandoned */
};

/* What systemd's STATUS= and /health report. */
struct pf_census {
    uint32_t serving; /* slots with a serving, not stuck, worker */
    uint32_t stuck;   /* slots whose worker has a stale heartbeat or is being killed */
    uint32_t backoff; /* slots waiting in crash-loop backoff */
    uint32_t draining;
    bool degraded; /* a slot without a serving worker */
};

int pf_proctable_init(struct pf_proctable *t, const struct pf_proctable_rules *rules, uint32_t gen,
                      uint32_t nslots);
void pf_proctable_free(struct pf_proctable *t);

/* Delay before respawning a slot whose worker just died: none after a healthy run (at
 * least min_uptime), else doubling from 100 ms up to 30 s, so a worker that cannot start
 * never turns the primary into a fork loop and the service never gives up. */
uint32_t pf_proctable_backoff(uint32_t previous_ms, int64_t uptime_ms, uint32_t min_uptime_ms);
/* Whether systemd's WATCHDOG=1 may be sent while a worker's heartbeat is this old: yes
 * while it is fresh or the primary's own escalation for it (SIGABRT at worker_timeout,
 * SIGKILL a grace later, reaped within another) is still under way. */
bool pf_proctable_vouches(int64_t heartbeat_age_ms, uint32_t worker_timeout_ms);

/* Records a forked worker of the current generation (after PF_ACT_SPAWN). */
int pf_proctable_add(struct pf_proctable *t, pid_t pid, uint32_t slot, int row, int ipc_fd,
                     int64_t now, uint64_t request_limit);
/* fork failed for slot: it is retried after a backoff. */
void pf_proctable_spawn_failed(struct pf_proctable *t, uint32_t slot, int64_t now);
struct pf_proc *pf_proctable_find(struct pf_proctable *t, pid_t pid);
/* The worker reported that it serves; actions: the covers it should join. */
size_t pf_proctable_ready(struct pf_proctable *t, pid_t pid, int64_t now, struct pf_action *out,
                          size_t cap);
/* The worker was reaped; its entry is freed. Actions: those of an abandoned reload. */
size_t pf_proctable_exited(struct pf_proctable *t, pid_t pid, int64_t now, struct pf_exit *info,
                           struct pf_action *out, size_t cap);

/* Every loop iteration: respawns that are due, promotion, recycling hand-over,
 * covering, a stop's deadline. */
size_t pf_proctable_decide(struct pf_proctable *t, int64_t now, struct pf_action *out, size_t cap);
/* Once a second, after the samples were refreshed: the reload deadline, the hung-worker
 * watchdog, drain deadlines, recycling. *vouch: whether WATCHDOG=1 may be sent. */
size_t pf_proctable_tick(struct pf_proctable *t, int64_t now, bool *vouch, struct pf_action *out,
                         size_t cap);
/* How long the loop may sleep before pf_proctable_decide has something to do. */
int64_t pf_proctable_next_ms(const struct pf_proctable *t, int64_t now);

/* A reload: gen with nslots becomes current; the old one serves until it is promoted. */
int pf_proctable_begin_reload(struct pf_proctable *t, uint32_t gen, uint32_t nslots,
                              const struct pf_proctable_rules *rules, int64_t now);
/* TTIN/TTOU: the current generation's worker count. Actions: drains for slots beyond. */
int pf_proctable_set_slots(struct pf_proctable *t, uint32_t n, int64_t now, struct pf_action *out,
                           size_t cap, size_t *nout);
/* A stop: every worker is told (SIGQUIT graceful, else SIGTERM); killed after the
 * deadline. */
size_t pf_proctable_stop(struct pf_proctable *t, bool graceful, uint32_t grace_ms, int64_t now,
                         struct pf_action *out, size_t cap);
uint32_t pf_proctable_count(const struct pf_proctable *t, uint32_t gen, bool any_gen);
void pf_proctable_census(const struct pf_proctable *t, int64_t now, struct pf_census *c);
bool pf_proctable_slot_covered(const struct pf_proctable *t, uint32_t slot);

#endif
