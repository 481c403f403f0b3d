#include "preforkd/clock.h"

#include <string.h>

static void put2(char **o, int v)
{
    (*o)[0] = (char)('0' + v / 10 % 10);
    (*o)[1] = (char)('0' + v % 10);
    *o += 2;
}

int64_t pf_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pf_clock_mono_precise_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pf_clock_http_date(time_t t, char out[PF_HTTP_DATE_LEN + 1])
{
    /* Fixed English names: strftime's %a/%b follow the locale, HTTP does not. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    char *o = out;
    memcpy(o, days[tm.tm_wday], 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    put2(&o, tm.tm_mday);
    *o++ = ' ';
    memcpy(o, months[tm.tm_mon], 3);
    o += 3;
    *o++ = ' ';
    int y = (tm.tm_year + 1900) % 10000;
    put2(&o, y / 100);
    put2(&o, y % 100);
    *o++ = ' ';
    put2(&o, tm.tm_hour);
    *o++ = ':';
    put2(&o, tm.tm_min);
    *o++ = ':';
    put2(&o, tm.tm_sec);
    memcpy(o, " GMT", 5);
}
