#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "preforkd/primary.h"

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
        cmocka_unit_test(test_watchdog_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
