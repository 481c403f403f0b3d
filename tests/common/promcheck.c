#include "promcheck.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES   20000
#define MAX_FAMILIES 256

static int bad(char *err, size_t errlen, int line, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t name_len(const char *p, bool metric)
{
    size_t n = 0;
    while (isalpha((unsigned char)p[n]) || p[n] == '_' || (metric && p[n] == ':') ||
           (n > 0 && isdigit((unsigned char)p[n])))
        n++;
    return n;
}

int promcheck(const char *text, size_t len, char *err, size_t errlen)
{
    static char families[MAX_FAMILIES][96];
    static char *series[MAX_SERIES];
    int nfam = 0, nseries = 0, lineno = 0, rc = 0;
    char current[96] = "";
    char done[MAX_FAMILIES][96];
    int ndone = 0;
    if (len == 0 || text[len - 1] != '\n')
        return bad(err, errlen, 0, "the text must end with a newline");
    const char *p = text, *end = text + len;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[1024];
        size_t ll = (size_t)(nl - p);
        lineno++;
        if (ll >= sizeof(line)) {
            rc = bad(err, errlen, lineno, "line too long");
            break;
        }
        memcpy(line, p, ll);
        line[ll] = '\0';
        p = nl + 1;
        if (ll == 0) {
            rc = bad(err, errlen, lineno, "empty line");
            break;
        }
        if (line[0] == '#') {
            char kind[8], name[96], rest[512] = "";
            if (sscanf(line, "# %7s %95s %511[^\n]", kind, name, rest) < 2 ||
                (strcmp(kind, "HELP") && strcmp(kind, "TYPE"))) {
                rc = bad(err, errlen, lineno, "a comment must be HELP or TYPE: %s", line);
                break;
            }
            if (name_len(name, true) != strlen(name)) {
                rc = bad(err, errlen, lineno, "bad metric name '%s'", name);
                break;
            }
            if (strcmp(kind, "TYPE") == 0) {
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
                    strcmp(rest, "summary") && strcmp(rest, "untyped")) {
                    rc = bad(err, errlen, lineno, "unknown type '%s'", rest);
                    break;
                }
                for (int i = 0; i < nfam; i++)
                    if (strcmp(families[i], name) == 0)
                        rc = bad(err, errlen, lineno, "second TYPE for %s", name);
                if (rc)
                    break;
                if (strcmp(rest, "counter") == 0 &&
                    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0)) {
                    rc = bad(err, errlen, lineno, "counter %s does not end in _total", name);
                    break;
                }
                if (nfam == MAX_FAMILIES) {
                    rc = bad(err, errlen, lineno, "too many families");
                    break;
                }
                snprintf(families[nfam], sizeof(families[nfam]), "%s", name);
                nfam++;
            }
            continue;
        }
        /* A sample: name{labels} value */
        size_t n = name_len(line, true);
        if (n == 0) {
            rc = bad(err, errlen, lineno, "a sample must start with a metric name: %s", line);
            break;
        }
        char name[96];
        snprintf(name, sizeof(name), "%.*s", (int)n, line);
        int fam = -1;
        for (int i = 0; i < nfam; i++)
            if (strcmp(families[i], name) == 0)
                fam = i;
        if (fam < 0) {
            rc = bad(err, errlen, lineno, "sample of %s before its TYPE", name);
            break;
        }
        if (strcmp(current, name) != 0) {
            for (int i = 0; i < ndone; i++)
                if (strcmp(done[i], name) == 0)
                    rc = bad(err, errlen, lineno, "samples of %s are not contiguous", name);
            if (rc)
                break;
            if (current[0] && ndone < MAX_FAMILIES)
                snprintf(done[ndone++], sizeof(done[0]), "%s", current);
            snprintf(current, sizeof(current), "%s", name);
        }
        const char *q = line + n;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                size_t ln = name_len(q, false);
                if (ln == 0 || q[ln] != '=' || q[ln + 1] != '"') {
                    rc = bad(err, errlen, lineno, "bad label at '%s'", q);
                    break;
                }
                q += ln + 2;
                while (*q && *q != '"') {
                    if (*q == '\\' && (q[1] == '\\' || q[1] == '"' || q[1] == 'n'))
                        q++;
                    else if (*q == '\\') {
                        rc = bad(err, errlen, lineno, "bad escape in a label value");
                        break;
                    }
                    q++;
                }
                if (rc)
                    break;
                if (*q != '"') {
                    rc = bad(err, errlen, lineno, "unterminated label value");
                    break;
                }
                q++;
                if (*q == ',')
                    q++;
                else if (*q != '}') {
                    rc = bad(err, errlen, lineno, "expected , or } after a label");
                    break;
                }
            }
            if (rc)
                break;
            q++;
        }
        if (*q != ' ') {
            rc = bad(err, errlen, lineno, "expected a space before the value");
            break;
        }
        char *vend;
        strtod(q + 1, &vend);
        if (vend == q + 1 || (*vend && *vend != ' ')) {
            rc = bad(err, errlen, lineno, "bad value '%s'", q + 1);
            break;
        }
        if (*vend == ' ') {
            char *tend;
            strtoll(vend + 1, &tend, 10);
            if (*tend) {
                rc = bad(err, errlen, lineno, "bad timestamp");
                break;
            }
        }
        size_t key = (size_t)(q - line);
        char *s = strndup(line, key);
        for (int i = 0; i < nseries && s; i++)
            if (strcmp(series[i], s) == 0)
                rc = bad(err, errlen, lineno, "series %s appears twice", s);
        if (nseries < MAX_SERIES)
            series[nseries++] = s;
        else
            free(s);
    }
    for (int i = 0; i < nseries; i++)
        free(series[i]);
    return rc;
}

double promsum(const char *text, const char *name, const char *labels)
{
    double sum = -1;
    size_t nl = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (p[0] != '#' && strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            char line[1024];
            snprintf(line, sizeof(line), "%.*s", (int)ll, p);
            bool match = true;
            /* Every wanted label="value" must be among the line's labels. */
            char want[256];
            snprintf(want, sizeof(want), "%s", labels);
            for (char *tok = strtok(want, ","); tok; tok = strtok(NULL, ","))
                match = match && strstr(line, tok);
            if (match) {
                const char *sp = strrchr(line, ' ');
                sum = (sum < 0 ? 0 : sum) + strtod(sp + 1, NULL);
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return sum;
}
