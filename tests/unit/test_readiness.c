/* The readiness rules with a fake clock: the service's phase (starting, serving, lame
 * duck, draining, stopping), when a graceful stop's lame duck ends, which stop overrides
 * which, and what /ready says in each phase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "preforkd/readiness.h"

static struct pf_readiness serving(void)
{
    struct pf_readiness r;
    pf_readiness_init(&r);
    assert_int_equal(r.state, PF_SVC_STARTING);
    pf_readiness_serving(&r);
    assert_int_equal(r.state, PF_SVC_SERVING);
    return r;
}

static void test_names(void **state)
{
    (void)state;
    static const char *const want[PF_SVC_STATES] = {"starting", "serving", "lame_duck", "draining",
                                                    "stopping"};
    for (int s = 0; s < PF_SVC_STATES; s++)
        assert_string_equal(pf_readiness_state_name((enum pf_service_state)s), want[s]);
    assert_string_equal(pf_readiness_state_name(PF_SVC_STATES), "unknown");
}

static void test_lame_duck_then_drain_on_the_deadline(void **state)
{
    (void)state;
    struct pf_readiness r = serving();
    int64_t now = 1000;
    assert_int_equal(pf_readiness_next_ms(&r, now), INT64_MAX); /* nothing to wait for */
    assert_int_equal(pf_readiness_stop(&r, true, 2000, now), PF_STEP_LAME_DUCK);
    assert_int_equal(r.state, PF_SVC_LAME_DUCK);
    assert_true(pf_readiness_stopping(&r));
    assert_true(pf_readiness_closes_connections(r.state));
    assert_false(pf_readiness_is_ready(r.state, false, true));
    /* Not a millisecond early. */
    assert_int_equal(pf_readiness_next_ms(&r, now), 2000);
    now += 1999;
    assert_int_equal(pf_readiness_tick(&r, now), PF_STEP_NONE);
    assert_int_equal(pf_readiness_next_ms(&r, now), 1);
    /* A second SIGQUIT changes nothing: the deadline stays. */
    assert_int_equal(pf_readiness_stop(&r, true, 2000, now), PF_STEP_NONE);
    now += 1;
    assert_int_equal(pf_readiness_next_ms(&r, now), 0);
    assert_int_equal(pf_readiness_tick(&r, now), PF_STEP_DRAIN);
    assert_int_equal(r.state, PF_SVC_DRAINING);
    assert_false(pf_readiness_closes_connections(r.state)); /* the workers' drain does that */
    /* Once. */
    assert_int_equal(pf_readiness_tick(&r, now + 5000), PF_STEP_NONE);
    assert_int_equal(pf_readiness_next_ms(&r, now), INT64_MAX);
}

static void test_a_late_loop_drains_at_once(void **state)
{
    (void)state;
    struct pf_readiness r = serving();
    assert_int_equal(pf_readiness_stop(&r, true, 500, 0), PF_STEP_LAME_DUCK);
    assert_int_equal(pf_readiness_next_ms(&r, 9000), 0); /* never negative */
    assert_int_equal(pf_readiness_tick(&r, 9000), PF_STEP_DRAIN);
}

static void test_no_lame_duck_configured_drains_at_once(void **state)
{
    (void)state;
    struct pf_readiness r = serving();
    assert_int_equal(pf_readiness_stop(&r, true, 0, 100), PF_STEP_DRAIN);
    assert_int_equal(r.state, PF_SVC_DRAINING);
    assert_true(pf_readiness_stopping(&r));
    assert_int_equal(pf_readiness_tick(&r, 100000), PF_STEP_NONE);
}

/* An instance that never served was never taken into a load balancer's rotation (/ready
 * said 503 all along): there is nothing to wait for. */
static void test_a_starting_instance_skips_the_lame_duck(void **state)
{
    (void)state;
    struct pf_readiness r;
    pf_readiness_init(&r);
    assert_false(pf_readiness_stopping(&r));
    assert_int_equal(pf_readiness_stop(&r, true, 5000, 0), PF_STEP_DRAIN);
    assert_int_equal(r.state, PF_SVC_DRAINING);
    /* And the first READY after that does not bring it back. */
    pf_readiness_serving(&r);
    assert_int_equal(r.state, PF_SVC_DRAINING);
}

static void test_sigterm_overrides_and_is_final(void **state)
{
    (void)state;
    /* During the lame duck. */
    struct pf_readiness r = serving();
    assert_int_equal(pf_readiness_stop(&r, true, 5000, 0), PF_STEP_LAME_DUCK);
    assert_int_equal(pf_readiness_stop(&r, false, 5000, 10), PF_STEP_FAST);
    assert_int_equal(r.state, PF_SVC_STOPPING);
    assert_int_equal(pf_readiness_tick(&r, 6000), PF_STEP_NONE); /* no drain afterwards */
    assert_int_equal(pf_readiness_next_ms(&r, 6000), INT64_MAX);
    /* Nothing overrides a fast stop, not even another one. */
    assert_int_equal(pf_readiness_stop(&r, false, 0, 20), PF_STEP_NONE);
    assert_int_equal(pf_readiness_stop(&r, true, 0, 20), PF_STEP_NONE);
    assert_int_equal(r.state, PF_SVC_STOPPING);
    /* During a drain. */
    r = serving();
    assert_int_equal(pf_readiness_stop(&r, true, 0, 0), PF_STEP_DRAIN);
    assert_int_equal(pf_readiness_stop(&r, false, 0, 1), PF_STEP_FAST);
    /* SIGTERM never has a lame duck, whatever is configured. */
    r = serving();
    assert_int_equal(pf_readiness_stop(&r, false, 5000, 0), PF_STEP_FAST);
    assert_int_equal(r.state, PF_SVC_STOPPING);
}

static void test_ready_rule(void **state)
{
    (void)state;
    for (int s = 0; s < PF_SVC_STATES; s++) {
        bool serving_now = s == PF_SVC_SERVING;
        assert_int_equal(pf_readiness_is_ready((enum pf_service_state)s, false, false),
                         serving_now);
        assert_int_equal(pf_readiness_is_ready((enum pf_service_state)s, false, true), serving_now);
        /* Degraded: ready only where configured so. */
        assert_false(pf_readiness_is_ready((enum pf_service_state)s, true, false));
        assert_int_equal(pf_readiness_is_ready((enum pf_service_state)s, true, true), serving_now);
        assert_int_equal(pf_readiness_closes_connections((enum pf_service_state)s),
                         s == PF_SVC_LAME_DUCK);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lame_duck_then_drain_on_the_deadline),
        cmocka_unit_test(test_a_late_loop_drains_at_once),
        cmocka_unit_test(test_no_lame_duck_configured_drains_at_once),
        cmocka_unit_test(test_a_starting_instance_skips_the_lame_duck),
        cmocka_unit_test(test_sigterm_overrides_and_is_final),
        cmocka_unit_test(test_ready_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
