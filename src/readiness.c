#include "preforkd/readiness.h"

#include <stddef.h>

static const char *const state_names[PF_SVC_STATES] = {
    [PF_SVC_STARTING] = "starting",   [PF_SVC_SERVING] = "serving",
    [PF_SVC_LAME_DUCK] = "lame_duck", [PF_SVC_DRAINING] = "draining",
    [PF_SVC_STOPPING] = "stopping",
};

const char *pf_readiness_state_name(enum pf_service_state s)
{
    return (unsigned)s < PF_SVC_STATES ? state_names[s] : "unknown";
}

void pf_readiness_init(struct pf_readiness *l)
{
    *l = (struct pf_readiness){.state = PF_SVC_STARTING};
}

void pf_readiness_serving(struct pf_readiness *l)
{
    if (l->state == PF_SVC_STARTING)
        l->state = PF_SVC_SERVING;
}

enum pf_readiness_step pf_readiness_stop(struct pf_readiness *l, bool graceful,
                                         uint32_t lame_duck_ms, int64_t now)
{
    if (!graceful) {
        if (l->state == PF_SVC_STOPPING)
            return PF_STEP_NONE;
        l->state = PF_SVC_STOPPING;
        return PF_STEP_FAST;
    }
    if (l->state != PF_SVC_STARTING && l->state != PF_SVC_SERVING)
        return PF_STEP_NONE; /* already stopping, gracefully or not */
    if (l->state == PF_SVC_SERVING && lame_duck_ms) {
        l->state = PF_SVC_LAME_DUCK;
        l->lame_duck_until_ms = now + lame_duck_ms;
        return PF_STEP_LAME_DUCK;
    }
    l->state = PF_SVC_DRAINING;
    return PF_STEP_DRAIN;
}

bool pf_readiness_stopping(const struct pf_readiness *l)
{
    return l->state == PF_SVC_LAME_DUCK || l->state == PF_SVC_DRAINING ||
           l->state == PF_SVC_STOPPING;
}

enum pf_readiness_step pf_readiness_tick(struct pf_readiness *l, int64_t now)
{
    if (l->state != PF_SVC_LAME_DUCK || now < l->lame_duck_until_ms)
        return PF_STEP_NONE;
    l->state = PF_SVC_DRAINING;
    return PF_STEP_DRAIN;
}

int64_t pf_readiness_next_ms(const struct pf_readiness *l, int64_t now)
{
    if (l->state != PF_SVC_LAME_DUCK)
        return INT64_MAX;
    return l->lame_duck_until_ms > now ? l->lame_duck_until_ms - now : 0;
}

bool pf_readiness_is_ready(enum pf_service_state s, bool degraded, bool ready_when_degraded)
{
    return s == PF_SVC_SERVING && (!degraded || ready_when_degraded);
}

bool pf_readiness_closes_connections(enum pf_service_state s)
{
    return s == PF_SVC_LAME_DUCK;
}
