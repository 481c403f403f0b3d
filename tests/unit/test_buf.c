#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "preforkd/buf.h"
#include "preforkd/clock.h"

static void test_u64_to_dec(void **state)
{
    (void)state;
    char d[21];
    size_t n = pf_u64_to_dec(0, d);
    d[n] = '\0';
    assert_string_equal(d, "0");
    n = pf_u64_to_dec(UINT64_MAX, d);
    d[n] = '\0';
    assert_string_equal(d, "18446744073709551615");
    n = pf_u64_to_dec(4999950000ULL, d);
    d[n] = '\0';
    assert_string_equal(d, "4999950000");
}

static void test_put_overflow_is_sticky(void **state)
{
    (void)state;
    char mem[8];
    struct pf_buf b;
    pf_buf_init(&b, mem, sizeof(mem));
    pf_buf_put_lit(&b, "12345");
    assert_false(b.full);
    pf_buf_put_lit(&b, "6789");
    assert_true(b.full);
    assert_int_equal(b.len, 5); /* the piece that did not fit was dropped whole */
    pf_buf_put_lit(&b, "ab");
    assert_int_equal(b.len, 7);
    assert_true(b.full);
    assert_memory_equal(mem, "12345ab", 7);
}

static void test_put_fixed(void **state)
{
    (void)state;
    char mem[64];
    struct pf_buf b;
    pf_buf_init(&b, mem, sizeof(mem));
    pf_buf_put_fixed(&b, 12345, 3);
    pf_buf_put_lit(&b, " ");
    pf_buf_put_fixed(&b, 7, 3);
    pf_buf_put_lit(&b, " ");
    pf_buf_put_fixed(&b, 42, 0);
    assert_int_equal(b.len, strlen("12.345 0.007 42"));
    assert_memory_equal(mem, "12.345 0.007 42", b.len);
}

static void test_http_date(void **state)
{
    (void)state;
    char d[PF_HTTP_DATE_LEN + 1];
    pf_clock_http_date(784111777, d); /* RFC 9110's example */
    assert_string_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    pf_clock_http_date(0, d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    pf_clock_http_date(951782400, d); /* leap day 2000-02-29 */
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT");
}

static void test_mono_clock_advances(void **state)
{
    (void)state;
    int64_t a = pf_clock_mono_precise_ms();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int64_t b = pf_clock_mono_precise_ms();
    assert_true(b - a >= 19);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_to_dec),          cmocka_unit_test(test_put_overflow_is_sticky),
        cmocka_unit_test(test_put_fixed),           cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_mono_clock_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
