#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "preforkd/primary.h"

static void test_healthy_run_respawns_at_once(void **state)
{
    (void)state;
    assert_int_equal(pf_primary_backoff(0, 5000, 1000), 0);
    /* A long run after a crash loop resets the backoff. */
    assert_int_equal(pf_primary_backoff(PF_BACKOFF_MAX_MS, 1000, 1000), 0);
}

static void test_crash_loop_doubles_to_cap(void **state)
{
    (void)state;
    uint32_t b = 0;
    uint32_t expect[] = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        b = pf_primary_backoff(b, 10, 1000);
        assert_int_equal(b, expect[i]);
    }
}

static void test_min_uptime_zero_never_backs_off(void **state)
{
    (void)state;
    assert_int_equal(pf_primary_backoff(0, 0, 0), 0);
}

/* The issue this rule answers: WatchdogSec=60 and timeouts.worker=30s, a worker hangs;
 * the primary aborts it at +30 s and kills it at +35 s. systemd must not be left
 * without pings meanwhile, or it kills the whole service, healthy workers included. */
static void test_watchdog_vouches_while_the_primary_handles_a_hung_worker(void **state)
{
    (void)state;
    assert_true(pf_primary_watchdog_vouches(0, 30000));
    assert_true(pf_primary_watchdog_vouches(1999, 30000));
    assert_true(pf_primary_watchdog_vouches(2000, 30000));  /* stale: being watched */
    assert_true(pf_primary_watchdog_vouches(31000, 30000)); /* SIGABRT sent */
    assert_true(pf_primary_watchdog_vouches(36000, 30000)); /* SIGKILL sent */
    assert_true(pf_primary_watchdog_vouches(40000, 30000));
    /* Past the primary's escalation the worker outlived SIGKILL: systemd takes over. */
    assert_false(pf_primary_watchdog_vouches(40001, 30000));
    assert_false(pf_primary_watchdog_vouches(3600000, 30000));
}

static void test_watchdog_check(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(pf_primary_watchdog_check(60000000, 30000, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "30000 ms"));
    /* The primary's loop wakes once a second: a ping at WatchdogSec/2 can be a second
     * late, so WatchdogSec must be longer than two seconds. */
    assert_int_equal(pf_primary_watchdog_check(2000000, 30000, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "too short"));
    assert_int_equal(pf_primary_watchdog_check(1000000, 2000, why, sizeof(why)), -EINVAL);
    assert_int_equal(pf_primary_watchdog_check(3000000, 2000, why, sizeof(why)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_run_respawns_at_once),
        cmocka_unit_test(test_crash_loop_doubles_to_cap),
        cmocka_unit_test(test_min_uptime_zero_never_backs_off),
        cmocka_unit_test(test_watchdog_vouches_while_the_primary_handles_a_hung_worker),
        cmocka_unit_test(test_watchdog_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
