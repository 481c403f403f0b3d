#ifndef PREFORKD_CLOCK_H
#define PREFORKD_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (the coarse clock: a vDSO read, ~4 ms resolution, plenty
 * for timeouts). */
int64_t pf_clock_mono_ms(void);
int64_t pf_clock_mono_precise_ms(void);

/* IMF-fixdate as used by the HTTP Date header: "Sun, 06 Nov 1994 08:49:37 GMT" (29 chars). */
#define PF_HTTP_DATE_LEN 29
void pf_clock_http_date(time_t t, char out[PF_HTTP_DATE_LEN + 1]);
/* Parses the whole of s[0..len) as an HTTP-date in any of the three forms a recipient
 * must accept (RFC 9110 5.6.7): IMF-fixdate, the obsolete RFC 850 form "Sunday,
 * 06-Nov-94 08:49:37 GMT" (its two-digit year taken as the one within 50 years of now)
 * and asctime's "Sun Nov  6 08:49:37 1994". Names are case-sensitive and a date must
 * exist (no 31 Apr). 0 with *out, or -EINVAL. */
int pf_clock_parse_http_date(const char *s, size_t len, time_t now, time_t *out);

#endif
