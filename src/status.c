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

struct row {
    long slot, pid, generation;
    char state[16];
    double uptime, restarts, rss, conns, requests, rps;
};

struct cluster {
    double configured, serving, degraded, generation, restarts, reloads, uptime;
};

/* Connects to a wildcard listen address through loopback. */
static int connect_to(const struct pf_listen_addr *a)
{
    struct sockaddr_storage ss = a->addr;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        if (in4->sin_addr.s_addr == htonl(INADDR_ANY))
            in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
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

static void parse(char *text, struct row *rows, size_t *nrows, struct cluster *c)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[96];
        long slot = -1;
        const char *w = strstr(line, "{worker=\"");
        if (sscanf(line, "%95[a-z_]", name) != 1)
            continue;
        if (w)
            slot = strtol(w + 9, NULL, 10);
        const char *sp = strrchr(line, ' ');
        double v = sp ? strtod(sp + 1, NULL) : 0;
        if (slot < 0) {
            static const char *names[] = {"preforkd_workers_configured", "preforkd_workers_serving",
                                          "preforkd_degraded",           "preforkd_generation",
                                          "preforkd_restarts_total",     "preforkd_reloads_total",
                                          "preforkd_uptime_seconds"};
            double *fields[] = {&c->configured, &c->serving, &c->degraded, &c->generation,
                                &c->restarts,   &c->reloads, &c->uptime};
            for (size_t i = 0; i < 7; i++)
                if (strcmp(name, names[i]) == 0)
                    *fields[i] = v;
            continue;
        }
        struct row *r = row_for(rows, nrows, slot);
        if (!r)
            continue;
        if (strcmp(name, "preforkd_worker_info") == 0) {
            const char *p = strstr(line, "pid=\"");
            const char *g = strstr(line, "generation=\"");
            const char *s = strstr(line, "state=\"");
            r->pid = p ? strtol(p + 5, NULL, 10) : 0;
            r->generation = g ? strtol(g + 12, NULL, 10) : 0;
            if (s)
                sscanf(s + 7, "%15[a-z]", r->state);
        } else if (strcmp(name, "preforkd_requests_total") == 0) {
            r->requests += v;
        } else if (strcmp(name, "preforkd_worker_uptime_seconds") == 0) {
            r->uptime = v;
        } else if (strcmp(name, "preforkd_worker_restarts_total") == 0) {
            r->restarts = v;
        } else if (strcmp(name, "preforkd_worker_resident_memory_bytes") == 0) {
            r->rss = v;
        } else if (strcmp(name, "preforkd_connections") == 0) {
            r->conns = v;
        } else if (strcmp(name, "preforkd_worker_requests_per_second") == 0) {
            r->rps = v;
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
    static struct row rows[PF_MAX_WORKERS];
    size_t nrows = 0;
    struct cluster c = {0};
    parse(body + 4, rows, &nrows, &c);
    free(resp);

    if (json) {
        printf(
            "{\"address\":\"%s\",\"configured\":%.0f,\"serving\":%.0f,\"degraded\":%s,"
            "\"generation\":%.0f,\"restarts\":%.0f,\"reloads\":%.0f,\"uptime\":%.0f,\"workers\":[",
            where, c.configured, c.serving, c.degraded ? "true" : "false", c.generation, c.restarts,
            c.reloads, c.uptime);
        for (size_t i = 0; i < nrows; i++)
            printf(
                "%s{\"slot\":%ld,\"pid\":%ld,\"generation\":%ld,\"state\":\"%s\",\"uptime\":%.0f,"
                "\"restarts\":%.0f,\"rss\":%.0f,\"connections\":%.0f,\"requests\":%.0f,"
                "\"rps\":%.0f}",
                i ? "," : "", rows[i].slot, rows[i].pid, rows[i].generation, rows[i].state,
                rows[i].uptime, rows[i].restarts, rows[i].rss, rows[i].conns, rows[i].requests,
                rows[i].rps);
        printf("]}\n");
        return 0;
    }
    char up[32];
    human_time(c.uptime, up, sizeof(up));
    printf("preforkd on %s: %.0f/%.0f workers serving%s, generation %.0f, %.0f restarts, "
           "%.0f reloads, up %s\n\n",
           where, c.serving, c.configured, c.degraded ? " (DEGRADED)" : "", c.generation,
           c.restarts, c.reloads, up);
    printf("%-5s %-8s %-9s %-8s %-9s %-9s %-6s %-10s %s\n", "slot", "pid", "state", "uptime",
           "restarts", "rss", "conns", "requests", "req/s");
    for (size_t i = 0; i < nrows; i++) {
        char t[32], rss[32];
        human_time(rows[i].uptime, t, sizeof(t));
        snprintf(rss, sizeof(rss), "%.1f MB", rows[i].rss / 1048576.0);
        printf("%-5ld %-8ld %-9s %-8s %-9.0f %-9s %-6.0f %-10.0f %.0f\n", rows[i].slot, rows[i].pid,
               rows[i].state, t, rows[i].restarts, rss, rows[i].conns, rows[i].requests,
               rows[i].rps);
    }
    return 0;
}
