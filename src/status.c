#include "preforkd/status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/config.h"
#include "preforkd/metrics.h"

/* One worker slot, as read back from /metrics: its identity and a value per family. */
struct row {
    long slot, pid, generation;
    char state[16];
    double v[PF_METRIC_COUNT];
};

enum col_format { COL_COUNT, COL_TIME, COL_MEGABYTES };

/* The table's columns after slot, pid and state: one per family shown, in order. */
static const struct column {
    const char *title; /* in the table */
    const char *key;   /* in --json */
    int width;
    enum pf_metric metric;
    enum col_format format;
} columns[] = {
    {"uptime", "uptime", 8, PF_M_WORKER_UPTIME, COL_TIME},
    {"restarts", "restarts", 9, PF_M_WORKER_RESTARTS, COL_COUNT},
    {"rss", "rss", 9, PF_M_RSS, COL_MEGABYTES},
    {"conns", "connections", 6, PF_M_CONNECTIONS, COL_COUNT},
    {"requests", "requests", 10, PF_M_REQUESTS, COL_COUNT},
    {"req/s", "rps", 0, PF_M_RPS, COL_COUNT},
};

/* The service-wide figures, in the summary line and in --json. */
static const struct {
    const char *key;
    enum pf_metric metric;
    bool boolean; /* true/false in --json */
} service[] = {
    {"ready", PF_M_READY, true},
    {"configured", PF_M_CONFIGURED, false},
    {"serving", PF_M_SERVING, false},
    {"degraded", PF_M_DEGRADED, true},
    {"generation", PF_M_GENERATION, false},
    {"restarts", PF_M_RESTARTS, false},
    {"reloads", PF_M_RELOADS, false},
    {"uptime", PF_M_UPTIME, false},
};

/* Connects to a listen address: a wildcard one through loopback, a unix one by its path.
 * A listener that expects a PROXY header gets one that names no client (v2 LOCAL, v1
 * UNKNOWN), as a balancer's own health check does. */
static int connect_to(const struct pf_listen_addr *a)
{
    struct sockaddr_storage ss = a->addr;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        if (in4->sin_addr.s_addr == htonl(INADDR_ANY))
            in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, a->addr_len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    static const char v1[] = "PROXY UNKNOWN\r\n";
    static const char v2[16] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
    const char *hdr = a->proxy == PF_PROXY_V1 ? v1 : a->proxy == PF_PROXY_V2 ? v2 : NULL;
    size_t len = a->proxy == PF_PROXY_V1 ? sizeof(v1) - 1 : sizeof(v2);
    if (hdr && send(fd, hdr, len, MSG_NOSIGNAL) != (ssize_t)len) {
        int e = errno ? errno : EIO;
        close(fd);
        return -e;
    }
    return fd;
}

static char *fetch(int fd, const char *path, size_t *len)
{
    char req[160];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return NULL;
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    while (buf) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 3000) <= 0)
            break;
        if (used + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + used, cap - used - 1, 0);
        if (r <= 0)
            break;
        used += (size_t)r;
    }
    if (buf)
        buf[used] = '\0';
    *len = used;
    return buf;
}

static struct row *row_for(struct row *rows, size_t *nrows, long slot)
{
    for (size_t i = 0; i < *nrows; i++)
        if (rows[i].slot == slot)
            return &rows[i];
    if (*nrows == PF_MAX_WORKERS)
        return NULL;
    struct row *r = &rows[(*nrows)++];
    memset(r, 0, sizeof(*r));
    r->slot = slot;
    strcpy(r->state, "-");
    return r;
}

static int family_of(const char *name)
{
    for (int m = 0; m < PF_METRIC_COUNT; m++)
        if (strcmp(name, pf_metric_families[m].name) == 0)
            return m;
    return -1;
}

/* state: the primary's phase, from the preforkd_state sample whose value is 1. */
static void parse(char *text, struct row *rows, size_t *nrows, double *cluster, char *state)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[96];
        long slot = -1;
        const char *w = strstr(line, "{worker=\"");
        if (sscanf(line, "%95[a-z_]", name) != 1)
            continue;
        int m = family_of(name);
        if (m < 0)
            continue;
        if (w)
            slot = strtol(w + 9, NULL, 10);
        const char *sp = strrchr(line, ' ');
        double v = sp ? strtod(sp + 1, NULL) : 0;
        if (m == PF_M_STATE) {
            const char *st = strstr(line, "state=\"");
            if (st && v == 1)
                sscanf(st + 7, "%15[a-z_]", state);
            continue;
        }
        if (!pf_metric_families[m].per_slot) {
            cluster[m] = v;
            continue;
        }
        struct row *r = slot >= 0 ? row_for(rows, nrows, slot) : NULL;
        if (!r)
            continue;
        if (m == PF_M_WORKER_INFO) {
            const char *p = strstr(line, "pid=\"");
            const char *g = strstr(line, "generation=\"");
            const char *st = strstr(line, "state=\"");
            r->pid = p ? strtol(p + 5, NULL, 10) : 0;
            r->generation = g ? strtol(g + 12, NULL, 10) : 0;
            if (st)
                sscanf(st + 7, "%15[a-z]", r->state);
        } else {
            r->v[m] += v; /* requests come as one series per route and status class */
        }
    }
}

static void human_time(double s, char *out, size_t cap)
{
    long t = (long)s;
    if (t < 60)
        snprintf(out, cap, "%lds", t);
    else if (t < 3600)
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else
        snprintf(out, cap, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
}

int pf_status_main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool json = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
        if (o == 'c')
            path = optarg;
        else if (o == 'j')
            json = true;
        else {
            fprintf(o == 'h' ? stdout : stderr, "usage: preforkd status [-c FILE] [--json]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    struct pf_config cfg;
    char err[512];
    if (pf_config_load_default(&cfg, &path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (!cfg.metrics_enabled) {
        fprintf(stderr,
                "preforkd status: the metrics route is disabled in %s (metrics.enabled); "
                "status reads it\n",
                path ? path : "the configuration");
        return 1;
    }
    const char *where = cfg.listen[0].text;
    int fd = connect_to(&cfg.listen[0]);
    if (fd < 0) {
        fprintf(stderr,
                "preforkd status: no preforkd is answering on %s (%s); is it running%s%s?\n", where,
                strerror(-fd), path ? " with " : "", path ? path : "");
        return 1;
    }
    size_t len;
    char *resp = fetch(fd, cfg.metrics_path, &len);
    close(fd);
    char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;
    if (!resp || strncmp(resp, "HTTP/1.1 200", 12) != 0 || !body) {
        fprintf(stderr, "preforkd status: %s did not answer %s like preforkd does\n", where,
                cfg.metrics_path);
        free(resp);
        return 1;
    }
    struct row *rows = calloc(PF_MAX_WORKERS, sizeof(*rows));
    if (!rows) {
        fprintf(stderr, "preforkd status: out of memory\n");
        free(resp);
        return 1;
    }
    size_t nrows = 0;
    double c[PF_METRIC_COUNT] = {0};
    char state[16] = "unknown";
    parse(body + 4, rows, &nrows, c, state);
    free(resp);

    if (json) {
        printf("{\"address\":\"%s\",\"state\":\"%s\"", where, state);
        for (size_t k = 0; k < sizeof(service) / sizeof(service[0]); k++) {
            double v = c[service[k].metric];
            if (service[k].boolean)
                printf(",\"%s\":%s", service[k].key, v ? "true" : "false");
            else
                printf(",\"%s\":%.0f", service[k].key, v);
        }
        printf(",\"workers\":[");
        for (size_t i = 0; i < nrows; i++) {
            printf("%s{\"slot\":%ld,\"pid\":%ld,\"generation\":%ld,\"state\":\"%s\"", i ? "," : "",
                   rows[i].slot, rows[i].pid, rows[i].generation, rows[i].state);
            for (size_t k = 0; k < sizeof(columns) / sizeof(columns[0]); k++)
                printf(",\"%s\":%.0f", columns[k].key, rows[i].v[columns[k].metric]);
            printf("}");
        }
        printf("]}\n");
        free(rows);
        return 0;
    }
    char up[32];
    human_time(c[PF_M_UPTIME], up, sizeof(up));
    printf("preforkd on %s: %s (%s), %.0f/%.0f workers serving%s, generation %.0f, "
           "%.0f restarts, %.0f reloads, up %s\n\n",
           where, state, c[PF_M_READY] ? "ready" : "not ready", c[PF_M_SERVING], c[PF_M_CONFIGURED],
           c[PF_M_DEGRADED] ? " (DEGRADED)" : "", c[PF_M_GENERATION], c[PF_M_RESTARTS],
           c[PF_M_RELOADS], up);
    printf("%-5s %-8s %-9s", "slot", "pid", "state");
    for (size_t k = 0; k < sizeof(columns) / sizeof(columns[0]); k++)
        printf(" %-*s", columns[k].width, columns[k].title);
    printf("\n");
    for (size_t i = 0; i < nrows; i++) {
        printf("%-5ld %-8ld %-9s", rows[i].slot, rows[i].pid, rows[i].state);
        for (size_t k = 0; k < sizeof(columns) / sizeof(columns[0]); k++) {
            char cell[32];
            double v = rows[i].v[columns[k].metric];
            if (columns[k].format == COL_TIME)
                human_time(v, cell, sizeof(cell));
            else if (columns[k].format == COL_MEGABYTES)
                snprintf(cell, sizeof(cell), "%.1f MB", v / 1048576.0);
            else
                snprintf(cell, sizeof(cell), "%.0f", v);
            printf(" %-*s", columns[k].width, cell);
        }
        printf("\n");
    }
    free(rows);
    return 0;
}
