#ifndef PREFORKD_TEST_PROMCHECK_H
#define PREFORKD_TEST_PROMCHECK_H

#include <stddef.h>

/* A strict checker of Prometheus' text exposition format 0.0.4, for the tests (promtool
 * is not in Debian's default install): every line is a HELP, a TYPE or a sample; names
 * and labels are well-formed; each family has one TYPE, before its samples, which are
 * contiguous; counters end in _total; no series appears twice; values are numbers.
 * Returns 0, or -1 with a message naming the line in err. */
int promcheck(const char *text, size_t len, char *err, size_t errlen);

/* The sum of every sample of `name` whose labels contain all of `labels` (a string like
 * "route=\"/\",code=\"2xx\"", or "" for all); -1 when there is none. */
double promsum(const char *text, const char *name, const char *labels);

#endif
