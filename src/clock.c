#include "preforkd/clock.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* Fixed English names: strftime's %a/%b follow the locale, HTTP does not. */
static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const long_days[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

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

/* A cursor over the date being parsed; every step consumes what it matched or fails. */
struct scan {
    const char *p, *end;
};

static bool take(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

static bool take_digits(struct scan *s, int n, int *v)
{
    if (s->end - s->p < n)
        return false;
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
        *v = *v * 10 + (s->p[i] - '0');
    }
    s->p += n;
    return true;
}

static bool take_month(struct scan *s, int *mon)
{
    for (int i = 0; i < 12; i++)
        if (take(s, months[i])) {
            *mon = i;
            return true;
        }
    return false;
}

/* time-of-day = hour ":" minute ":" second; 60 is a leap second (5.6.7). */
static bool take_time(struct scan *s, struct tm *tm)
{
    return take_digits(s, 2, &tm->tm_hour) && take(s, ":") && take_digits(s, 2, &tm->tm_min) &&
           take(s, ":") && take_digits(s, 2, &tm->tm_sec) && tm->tm_hour < 24 && tm->tm_min < 60 &&
           tm->tm_sec <= 60;
}

static bool date_exists(int year, int mon, int mday)
{
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mday >= 1 && mday <= month_days[mon] && (mon != 1 || mday <= 28 || leap);
}

int pf_clock_parse_http_date(const char *text, size_t len, time_t now, time_t *out)
{
    struct scan s = {text, text + len};
    struct tm tm = {0};
    int year = 0;
    int wday = -1;
    for (int i = 0; i < 7 && wday < 0; i++)
        if (take(&s, long_days[i]))
            wday = i;
    if (wday >= 0) {
        /* rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT */
        int yy;
        if (!(take(&s, ", ") && take_digits(&s, 2, &tm.tm_mday) && take(&s, "-") &&
              take_month(&s, &tm.tm_mon) && take(&s, "-") && take_digits(&s, 2, &yy) &&
              take(&s, " ") && take_time(&s, &tm) && take(&s, " GMT")))
            return -EINVAL;
        /* The year within 50 years of now, either way. */
        struct tm now_tm;
        gmtime_r(&now, &now_tm);
        int now_year = now_tm.tm_year + 1900;
        year = now_year - now_year % 100 + yy;
        if (year > now_year + 50)
            year -= 100;
        else if (year <= now_year - 50)
            year += 100;
    } else {
        for (int i = 0; i < 7 && wday < 0; i++)
            if (take(&s, days[i]))
                wday = i;
        if (wday < 0)
            return -EINVAL;
        if (take(&s, ", ")) {
            /* IMF-fixdate = day-name "," SP day SP month SP year SP time-of-day SP GMT */
            if (!(take_digits(&s, 2, &tm.tm_mday) && take(&s, " ") && take_month(&s, &tm.tm_mon) &&
                  take(&s, " ") && take_digits(&s, 4, &year) && take(&s, " ") &&
                  take_time(&s, &tm) && take(&s, " GMT")))
                return -EINVAL;
        } else {
            /* asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day
             * SP year */
            if (!(take(&s, " ") && take_month(&s, &tm.tm_mon) && take(&s, " ")))
                return -EINVAL;
            if (!(take(&s, " ") ? take_digits(&s, 1, &tm.tm_mday)
                                : take_digits(&s, 2, &tm.tm_mday)))
                return -EINVAL;
            if (!(take(&s, " ") && take_time(&s, &tm) && take(&s, " ") &&
                  take_digits(&s, 4, &year)))
                return -EINVAL;
        }
    }
    if (s.p != s.end || !date_exists(year, tm.tm_mon, tm.tm_mday))
        return -EINVAL;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return 0;
}
