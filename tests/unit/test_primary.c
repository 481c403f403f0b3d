#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_run_respawns_at_once),
        cmocka_unit_test(test_crash_loop_doubles_to_cap),
        cmocka_unit_test(test_min_uptime_zero_never_backs_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
