#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "preforkd/scoreboard.h"

static void test_claim_and_release(void **state)
{
    (void)state;
    struct pf_scoreboard *b = NULL;
    assert_int_equal(pf_scoreboard_new(&b, 3), 0);
    int a = pf_scoreboard_claim(b, 100, 0, 1, 5000);
    int c = pf_scoreboard_claim(b, 101, 1, 1, 5000);
    int d = pf_scoreboard_claim(b, 102, 0, 2, 6000);
    assert_true(a >= 0 && c >= 0 && d >= 0 && a != c && c != d && a != d);
    assert_int_equal(pf_scoreboard_claim(b, 103, 2, 2, 6000), -1); /* full */
    assert_int_equal(atomic_load(&b->rows[d].pid), 102);
    assert_int_equal(atomic_load(&b->rows[d].state), PF_WSTATE_STARTING);
    assert_int_equal(atomic_load(&b->rows[d].heartbeat_ms), 6000);
    pf_count(&b->rows[c].c.accepted, 3);
    pf_scoreboard_release(b, c);
    int e = pf_scoreboard_claim(b, 104, 1, 2, 7000);
    assert_int_equal(e, c);                                   /* the freed entry is reused... */
    assert_int_equal(atomic_load(&b->rows[e].c.accepted), 0); /* ...and starts at zero */
    pf_scoreboard_free(&b);
    assert_null(b);
    pf_scoreboard_free(&b); /* NULL is fine */
}

static void test_counters_add_and_classes(void **state)
{
    (void)state;
    struct pf_counters x = {0}, y = {0};
    pf_count(&x.requests[0][pf_status_class(200)], 7);
    pf_count(&x.requests[PF_STAT_OTHER][pf_status_class(404)], 2);
    pf_count(&x.bytes_out, 1000);
    pf_count(&y.requests[0][pf_status_class(204)], 5);
    pf_count(&y.accepted, 4);
    pf_counters_add(&y, &x);
    assert_int_equal(atomic_load(&y.requests[0][1]), 12);
    assert_int_equal(atomic_load(&y.requests[PF_STAT_OTHER][3]), 2);
    assert_int_equal(atomic_load(&y.bytes_out), 1000);
    assert_int_equal(atomic_load(&y.accepted), 4);
    assert_int_equal(pf_status_class(101), 0);
    assert_int_equal(pf_status_class(503), 4);
    assert_int_equal(pf_status_class(999), 4);
}

static void test_entries_do_not_share_cache_lines(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct pf_scoreboard_row) % 64, 0);
    assert_int_equal(_Alignof(struct pf_scoreboard_row), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_and_release),
        cmocka_unit_test(test_counters_add_and_classes),
        cmocka_unit_test(test_entries_do_not_share_cache_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
