#ifndef PREFORKD_READINESS_H
#define PREFORKD_READINESS_H

#include <stdbool.h>
#include <stdint.h>

/* The service's phase, as a load balancer must see it, and the rules that move it: a
 * graceful stop first spends timeouts.lame_duck not ready (GET /ready answers 503) while
 * still accepting and answering, each answer with `Connection: close`, so that a load
 * balancer's health checks take the instance out before its listeners close; only then
 * does the drain begin. The primary owns the state and publishes it in the scoreboard's
 * cluster block, where workers read it. Pure: `now` is a plain argument (CLOCK_MONOTONIC
 * milliseconds), so the rules are unit-tested with a fake clock
 * (tests/unit/test_readiness.c). */

enum pf_service_state {
    PF_SVC_STARTING,  /* not every worker slot has served yet (before READY=1) */
    PF_SVC_SERVING,   /* every slot has served once; reloads and respawns stay here */
    PF_SVC_LAME_DUCK, /* graceful stop, first phase: not ready, listeners still open */
    PF_SVC_DRAINING,  /* graceful stop: listeners closed, workers finish their requests */
    PF_SVC_STOPPING,  /* fast stop (SIGTERM, SIGINT) */
    PF_SVC_STATES
};

/* What the primary does after an event. */
enum pf_readiness_step {
    PF_STEP_NONE,      /* nothing new */
    PF_STEP_LAME_DUCK, /* the lame duck began: publish the state, tell systemd STOPPING=1 */
    PF_STEP_DRAIN,     /* begin the graceful stop now (close listeners, SIGQUIT workers) */
    PF_STEP_FAST,      /* begin the fast stop now (SIGTERM workers) */
};

struct pf_readiness {
    enum pf_service_state state;
    int64_t lame_duck_until_ms; /* while PF_SVC_LAME_DUCK */
};

/* "starting", "serving", "lame_duck", "draining", "stopping"; "unknown" out of range. */
const char *pf_readiness_state_name(enum pf_service_state s);

void pf_readiness_init(struct pf_readiness *l);
/* Every slot serves for the first time (the primary's READY=1). */
void pf_readiness_serving(struct pf_readiness *l);
/* A stop was asked for: graceful (SIGQUIT) or fast (SIGTERM, SIGINT). A graceful stop
 * of a serving instance with lame_duck_ms > 0 enters the lame duck; one that never
 * served (no load balancer sent it traffic) drains at once. A fast stop overrides a
 * lame duck or a drain; nothing overrides a fast stop, and a second graceful stop
 * changes nothing. */
enum pf_readiness_step pf_readiness_stop(struct pf_readiness *l, bool graceful,
                                         uint32_t lame_duck_ms, int64_t now);
/* From the lame duck on: a stop is under way (no reloads, no worker count changes). */
bool pf_readiness_stopping(const struct pf_readiness *l);
/* Every loop iteration: PF_STEP_DRAIN once the lame duck's deadline has come. */
enum pf_readiness_step pf_readiness_tick(struct pf_readiness *l, int64_t now);
/* How long the loop may sleep before pf_readiness_tick has something to do. */
int64_t pf_readiness_next_ms(const struct pf_readiness *l, int64_t now);

/* Whether the instance should get traffic: serving, and not degraded unless
 * ready_when_degraded (health.ready_when_degraded). */
bool pf_readiness_is_ready(enum pf_service_state s, bool degraded, bool ready_when_degraded);
/* Whether every answer closes its connection: during the lame duck, so that a load
 * balancer's kept-alive connections go and new ones are made to other instances. */
bool pf_readiness_closes_connections(enum pf_service_state s);

#endif
