#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "preforkd/clock.h"

/* RFC 9110 5.6.7's example instant, Sun, 06 Nov 1994 08:49:37 GMT. */
#define EXAMPLE 784111777
/* 2025-01-01T00:00:00Z, a "now" for the two-digit years. */
#define NOW_2025 1735689600

static int parse(const char *s, time_t now, time_t *t)
{
    return pf_clock_parse_http_date(s, strlen(s), now, t);
}

static void test_format(void **state)
{
    (void)state;
    char out[PF_HTTP_DATE_LEN + 1];
    pf_clock_http_date(EXAMPLE, out);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    pf_clock_http_date(0, out);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void test_three_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT",  /* IMF-fixdate */
        "Sunday, 06-Nov-94 08:49:37 GMT", /* obsolete RFC 850 */
        "Sun Nov  6 08:49:37 1994",       /* asctime */
        "Sun Nov 06 08:49:37 1994",       /* asctime, 2DIGIT day */
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        time_t t = 0;
        assert_int_equal(parse(forms[i], NOW_2025, &t), 0);
        assert_int_equal(t, EXAMPLE);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    static const time_t instants[] = {0, EXAMPLE, 951782400 /* 29 Feb 2000 */, NOW_2025,
                                      253402300799 /* 31 Dec 9999 23:59:59 */};
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        char text[PF_HTTP_DATE_LEN + 1];
        time_t t = -1;
        pf_clock_http_date(instants[i], text);
        assert_int_equal(parse(text, NOW_2025, &t), 0);
        assert_int_equal(t, instants[i]);
    }
}

static void test_two_digit_years(void **state)
{
    (void)state;
    time_t t;
    /* 2094 would be 69 years ahead of 2025: the past's 1994. */
    assert_int_equal(parse("Sunday, 06-Nov-94 08:49:37 GMT", NOW_2025, &t), 0);
    assert_int_equal(t, EXAMPLE);
    /* From 2060, 2094 is 34 years ahead and so taken as 2094. */
    time_t now_2060 = 2840140800;
    assert_int_equal(parse("Saturday, 06-Nov-94 08:49:37 GMT", now_2060, &t), 0);
    char text[PF_HTTP_DATE_LEN + 1];
    pf_clock_http_date(t, text);
    assert_string_equal(text, "Sat, 06 Nov 2094 08:49:37 GMT");
    /* "25" in 2025 is this year. */
    assert_int_equal(parse("Wednesday, 01-Jan-25 00:00:00 GMT", NOW_2025, &t), 0);
    assert_int_equal(t, NOW_2025);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37 UTC",    /* only GMT */
        "Sun, 06 Nov 1994 08:49:37",        /* no zone */
        "Sun, 06 Nov 1994 08:49:37 GMT ",   /* trailing space: the caller trims */
        "sun, 06 Nov 1994 08:49:37 GMT",    /* names are case-sensitive */
        "Sun, 06 nov 1994 08:49:37 GMT",    /* month names too */
        "Sum, 06 Nov 1994 08:49:37 GMT",    /* no such day */
        "Sun, 6 Nov 1994 08:49:37 GMT",     /* 2DIGIT day */
        "Sun, 06 Nov 94 08:49:37 GMT",      /* 4DIGIT year */
        "Sun, 06 Nov 1994 8:49:37 GMT",     /* 2DIGIT hour */
        "Sun, 06 Nov 1994 24:00:00 GMT",    /* hour */
        "Sun, 06 Nov 1994 08:60:00 GMT",    /* minute */
        "Sun, 06 Nov 1994 08:49:61 GMT",    /* second */
        "Sun, 31 Apr 1994 08:49:37 GMT",    /* no 31 April */
        "Sun, 29 Feb 1900 08:49:37 GMT",    /* 1900 is not a leap year */
        "Sun, 00 Nov 1994 08:49:37 GMT",    /* day 0 */
        "Sun,06 Nov 1994 08:49:37 GMT",     /* SP */
        "Sun, 06-Nov-1994 08:49:37 GMT",    /* RFC 850 separators, 4-digit year */
        "Sunday, 06 Nov 1994 08:49:37 GMT", /* long name, IMF body */
        "Sun, 06-Nov-94 08:49:37 GMT",      /* short name, RFC 850 body */
        "Sun Nov 6 08:49:37 1994",          /* asctime: a single-digit day has two SP */
        "Sun Nov  6 08:49:37 94",           /* asctime: 4DIGIT year */
        "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", /* two dates */
        "784111777",
        "-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t;
        int rc = parse(bad[i], NOW_2025, &t);
        if (rc != -EINVAL)
            fail_msg("case %zu accepted (%d): %s", i, rc, bad[i]);
    }
    /* Only len bytes are read: the date followed by anything is parsed as its prefix. */
    time_t t;
    const char *longer = "Sun, 06 Nov 1994 08:49:37 GMTxyz";
    assert_int_equal(pf_clock_parse_http_date(longer, PF_HTTP_DATE_LEN, NOW_2025, &t), 0);
    assert_int_equal(t, EXAMPLE);
    assert_int_equal(pf_clock_parse_http_date(longer, PF_HTTP_DATE_LEN - 1, NOW_2025, &t), -EINVAL);
    /* 29 February in a leap year exists. */
    assert_int_equal(parse("Tue, 29 Feb 2000 00:00:00 GMT", NOW_2025, &t), 0);
    assert_int_equal(t, 951782400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),     cmocka_unit_test(test_three_forms),
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_two_digit_years),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
