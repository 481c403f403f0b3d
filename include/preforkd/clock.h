#ifndef PREFORKD_CLOCK_H
#define PREFORKD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC (the coarse clock: a vDSO read, ~4 ms resolution, plenty
 * for timeouts). */
int64_t pf_clock_mono_ms(void);
int64_t pf_clock_mono_precise_ms(void);

/* IMF-fixdate as used by the HTTP Date header: "Sun, 06 Nov 1994 08:49:37 GMT" (29 chars). */
#define PF_HTTP_DATE_LEN 29
void pf_clock_http_date(time_t t, char out[PF_HTTP_DATE_LEN + 1]);

#endif
