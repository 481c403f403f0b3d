#include "preforkd/config.h"

#include "preforkd/cpu.h"
#include "preforkd/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

void pf_config_defaults(struct pf_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    pf_config_parse_listen("127.0.0.1:4400", &cfg->listen[0]);
    cfg->nlisten = 1;
    cfg->workers_mode = PF_WORKERS_AUTO;
    pf_config_default_routes(cfg);
    cfg->backlog = 4096;
    cfg->balance = PF_BALANCE_REUSEPORT;
    cfg->keepalive_timeout_ms = 5000;
    cfg->header_timeout_ms = 10000;
    cfg->send_timeout_ms = 10000;
    cfg->body_timeout_ms = 10000;
    cfg->body_min_rate = 1024;
    cfg->shutdown_timeout_ms = 30000;
    cfg->min_uptime_ms = 1000;
    cfg->worker_timeout_ms = 30000;
    cfg->metrics_enabled = true;
    cfg->health_ready_when_degraded = true;
    strcpy(cfg->metrics_path, "/metrics");
    cfg->shared_backend = PF_SHARED_MEMORY;
    strcpy(cfg->shared_address, "127.0.0.1:6379");
    strcpy(cfg->shared_prefix, "preforkd:");
    cfg->shared_timeout_ms = 500;
    cfg->limits.request_line = 8 * 1024;
    cfg->limits.header_block = 16 * 1024;
    cfg->limits.headers = 100;
    cfg->limits.body = 1024 * 1024;
    cfg->limits.connections = 10000;
    cfg->sum_iterations = 100000;
    cfg->heavy_iterations = 1000000;
    cfg->log_level = PF_LOG_INFO;
}

/* ---- value parsers ------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out, const char **rest)
{
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -ERANGE;
    *out = v;
    *rest = end;
    return 0;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul && v > UINT64_MAX / mul)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mul;
};

/* A number followed by one of the suffixes (possibly ""), scaled by its multiplier. */
static int parse_with_units(const char *text, const struct unit *units, size_t n, uint64_t *out)
{
    uint64_t v;
    const char *u;
    int rc = parse_u64(text, &v, &u);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (strcmp(u, units[i].suffix) == 0)
            return scale(v, units[i].mul, out);
    return -EINVAL;
}

int pf_config_parse_duration_ms(const char *text, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), out);
}

int pf_config_parse_size(const char *text, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1},        {"k", 1 << 10},  {"K", 1 << 10},  {"KB", 1 << 10},  {"KiB", 1 << 10},
        {"m", 1 << 20}, {"M", 1 << 20},  {"MB", 1 << 20}, {"MiB", 1 << 20}, {"g", 1 << 30},
        {"G", 1 << 30}, {"GB", 1 << 30}, {"GiB", 1 << 30}};
    return parse_with_units(text, units, sizeof(units) / sizeof(units[0]), out);
}

bool pf_config_listen_is_unix(const struct pf_listen_addr *a)
{
    return a->addr.ss_family == AF_UNIX;
}

/* "unix:/path": an absolute path (the primary, `preforkd status` and a stop must all
 * mean the same file whatever their working directory), no abstract names. */
static int parse_unix(const char *path, struct pf_listen_addr *out)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->addr;
    size_t n = strlen(path);
    if (path[0] != '/' || n >= sizeof(un->sun_path))
        return -EINVAL;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    out->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    snprintf(out->text, sizeof(out->text), "unix:%s", path);
    return 0;
}

int pf_config_parse_store_address(const char *text, char *host, size_t hostcap, int *port)
{
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] != '/' || strlen(text + 5) >= hostcap ||
            strlen(text + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return -EINVAL;
        strcpy(host, text + 5);
        *port = -1;
        return 0;
    }
    const char *start = text, *end;
    const char *colon;
    if (text[0] == '[') {
        end = strchr(text, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        start = text + 1;
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || memchr(text, ':', (size_t)(colon - text)))
            return -EINVAL;
        end = colon;
    }
    size_t hl = (size_t)(end - start);
    if (hl == 0 || hl >= hostcap || strcspn(start, " \t/") < hl)
        return -EINVAL;
    uint64_t p;
    const char *rest;
    if (parse_u64(colon + 1, &p, &rest) || *rest || p == 0 || p > 65535)
        return -EINVAL;
    memcpy(host, start, hl);
    host[hl] = '\0';
    /* A numeric address only: a name would need a resolver call, which blocks, in the
     * worker's loop at every reconnect. */
    struct in6_addr a6;
    if (inet_pton(text[0] == '[' ? AF_INET6 : AF_INET, host, &a6) != 1)
        return -EINVAL;
    *port = (int)p;
    return 0;
}

int pf_config_parse_listen(const char *text, struct pf_listen_addr *out)
{
    char host[64];
    const char *port_s;
    memset(out, 0, sizeof(*out));
    out->proxy = PF_PROXY_OFF;
    out->mode = -1;
    if (strlen(text) >= sizeof(out->text))
        return -EINVAL;
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_s = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            strcpy(host, "*");
            port_s = text;
        } else {
            if ((size_t)(colon - text) >= sizeof(host) || memchr(text, ':', (size_t)(colon - text)))
                return -EINVAL;
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            port_s = colon + 1;
        }
    }
    uint64_t port;
    const char *rest;
    if (parse_u64(port_s, &port, &rest) || *rest || port > 65535)
        return -EINVAL;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->addr;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof(*in4);
        snprintf(out->text, sizeof(out->text), "%s:%u", host, (unsigned)port);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        out->addr_len = sizeof(*in6);
        snprintf(out->text, sizeof(out->text), "[%s]:%u", host, (unsigned)port);
    } else {
        return -EINVAL;
    }
    return 0;
}

uint32_t pf_config_worker_count(const struct pf_config *cfg)
{
    uint32_t n;
    switch (cfg->workers_mode) {
    case PF_WORKERS_FIXED:
        n = cfg->workers;
        break;
    case PF_WORKERS_AUTO_MINUS_ONE:
        n = pf_cpu_usable() - 1;
        break;
    default:
        n = pf_cpu_usable();
    }
    if (n < 1)
        n = 1;
    return n > PF_MAX_WORKERS ? PF_MAX_WORKERS : n;
}

/* ---- YAML walking --------------------------------------------------------------------- */

struct loader {
    struct pf_config *cfg;
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errlen;
    yaml_mark_t metrics_path_mark; /* where metrics.path was set */
    bool metrics_path_set;
    yaml_mark_t route_handler_mark[PF_MAX_ROUTES];
    char route_module[PF_MAX_ROUTES][32]; /* MODULE of a MODULE.NAME handler, resolved last */
};

static int fail_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct loader *ld, const yaml_node_t *node, const char *fmt, ...)
{
    int n = snprintf(ld->err, ld->errlen, "%s:%zu:%zu: ", ld->name, node->start_mark.line + 1,
                     node->start_mark.column + 1);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

enum key_type {
    T_U32,
    T_U64,
    T_DURATION,
    T_SIZE,
    T_SIZE32,
    T_WORKERS,
    T_BALANCE,
    T_LOGLEVEL,
    T_LISTEN,
    T_SECTION,
    T_STRING,
    T_AFFINITY,
    T_SHARED_BACKEND,
    T_SHARED_ADDRESS,
    T_BOOL,
    T_PATH,
    T_ACCESS_FORMAT,
    T_ROUTES,
    T_MODULES
};

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    uint64_t min, max;
    const struct key *children; /* for T_SECTION, terminated by a NULL name */
};

#define OFF(f) offsetof(struct pf_config, f)

/* The seed's routes, and /ready for load balancers, served when the file has no
 * `routes:` list. */
static const struct {
    const char *path;
    enum pf_handler_kind kind;
} default_routes[] = {
    {"/", PF_HANDLER_SUM},
    {"/health", PF_HANDLER_HEALTH},
    {"/heavy", PF_HANDLER_HEAVY},
    {"/ready", PF_HANDLER_READY},
};

/* The built-in handlers a route may name, by the name it uses. */
static const char *const handler_names[PF_HANDLER_KINDS] = {
    [PF_HANDLER_SUM] = "sum",         [PF_HANDLER_HEALTH] = "health", [PF_HANDLER_HEAVY] = "heavy",
    [PF_HANDLER_METRICS] = "metrics", [PF_HANDLER_STATIC] = "static", [PF_HANDLER_COUNT] = "count",
    [PF_HANDLER_READY] = "ready",     [PF_HANDLER_MODULE] = NULL,
};

const char *pf_config_handler_name(enum pf_handler_kind kind)
{
    return (unsigned)kind < PF_HANDLER_KINDS && handler_names[kind] ? handler_names[kind]
                                                                    : "module";
}

void pf_config_default_routes(struct pf_config *cfg)
{
    cfg->nroutes = 0;
    for (size_t i = 0; i < sizeof(default_routes) / sizeof(default_routes[0]); i++) {
        struct pf_route_config *r = &cfg->routes[cfg->nroutes++];
        *r = (struct pf_route_config){.kind = default_routes[i].kind,
                                      .methods = 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD};
        snprintf(r->path, sizeof(r->path), "%s", default_routes[i].path);
    }
}

static const struct key timeout_keys[] = {
    {"keepalive", T_DURATION, OFF(keepalive_timeout_ms), 1, 3600000, NULL},
    {"header", T_DURATION, OFF(header_timeout_ms), 1, 3600000, NULL},
    {"send", T_DURATION, OFF(send_timeout_ms), 1, 3600000, NULL},
    {"body", T_DURATION, OFF(body_timeout_ms), 1, 3600000, NULL},
    {"body_min_rate", T_SIZE, OFF(body_min_rate), 1, UINT64_C(1) << 40, NULL},
    {"shutdown", T_DURATION, OFF(shutdown_timeout_ms), 0, 3600000, NULL},
    {"lame_duck", T_DURATION, OFF(lame_duck_ms), 0, 3600000, NULL},
    {"min_uptime", T_DURATION, OFF(min_uptime_ms), 0, 3600000, NULL},
    {"worker", T_DURATION, OFF(worker_timeout_ms), 2000, 3600000, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key limit_keys[] = {
    {"request_line", T_SIZE32, OFF(limits.request_line), 64, 1 << 20, NULL},
    {"header_block", T_SIZE32, OFF(limits.header_block), 256, 1 << 24, NULL},
    {"headers", T_U32, OFF(limits.headers), 1, 10000, NULL},
    {"body", T_SIZE, OFF(limits.body), 0, UINT64_C(1) << 40, NULL},
    {"connections", T_U32, OFF(limits.connections), 1, 1000000, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key route_keys[] = {
    {"sum_iterations", T_U64, OFF(sum_iterations), 0, UINT64_C(1) << 40, NULL},
    {"heavy_iterations", T_U64, OFF(heavy_iterations), 0, UINT64_C(1) << 40, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key recycle_keys[] = {
    {"max_memory", T_SIZE, OFF(max_memory), 0, UINT64_C(1) << 40, NULL},
    {"max_requests", T_U64, OFF(max_requests), 0, UINT64_C(1) << 40, NULL},
    {"max_requests_jitter", T_U64, OFF(max_requests_jitter), 0, UINT64_C(1) << 40, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key metrics_keys[] = {
    {"enabled", T_BOOL, OFF(metrics_enabled), 0, 0, NULL},
    {"path", T_PATH, OFF(metrics_path), 0, sizeof(((struct pf_config *)0)->metrics_path), NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key health_keys[] = {
    {"fail_when_degraded", T_BOOL, OFF(health_fail_when_degraded), 0, 0, NULL},
    {"ready_when_degraded", T_BOOL, OFF(health_ready_when_degraded), 0, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key access_keys[] = {
    {"format", T_ACCESS_FORMAT, 0, 0, 0, NULL},
    {"path", T_STRING, OFF(access_path), 0, sizeof(((struct pf_config *)0)->access_path), NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key shared_keys[] = {
    {"backend", T_SHARED_BACKEND, 0, 0, 0, NULL},
    {"address", T_SHARED_ADDRESS, OFF(shared_address), 0,
     sizeof(((struct pf_config *)0)->shared_address), NULL},
    {"prefix", T_STRING, OFF(shared_prefix), 0, sizeof(((struct pf_config *)0)->shared_prefix),
     NULL},
    {"timeout", T_DURATION, OFF(shared_timeout_ms), 1, 60000, NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static const struct key top_keys[] = {
    {"listen", T_LISTEN, 0, 0, 0, NULL},
    {"workers", T_WORKERS, 0, 1, PF_MAX_WORKERS, NULL},
    {"backlog", T_U32, OFF(backlog), 1, 65535, NULL},
    {"balance", T_BALANCE, 0, 0, 0, NULL},
    {"log_level", T_LOGLEVEL, 0, 0, 0, NULL},
    {"timeouts", T_SECTION, 0, 0, 0, timeout_keys},
    {"limits", T_SECTION, 0, 0, 0, limit_keys},
    {"work", T_SECTION, 0, 0, 0, route_keys},
    {"routes", T_ROUTES, 0, 0, 0, route_keys},
    {"modules", T_MODULES, 0, 0, 0, NULL},
    {"recycle", T_SECTION, 0, 0, 0, recycle_keys},
    {"metrics", T_SECTION, 0, 0, 0, metrics_keys},
    {"health", T_SECTION, 0, 0, 0, health_keys},
    {"access_log", T_SECTION, 0, 0, 0, access_keys},
    {"shared", T_SECTION, 0, 0, 0, shared_keys},
    {"affinity", T_AFFINITY, 0, 0, 0, NULL},
    {"user", T_STRING, OFF(user), 0, sizeof(((struct pf_config *)0)->user), NULL},
    {"group", T_STRING, OFF(group), 0, sizeof(((struct pf_config *)0)->group), NULL},
    {"pid_file", T_STRING, OFF(pid_file), 0, sizeof(((struct pf_config *)0)->pid_file), NULL},
    {"log_file", T_STRING, OFF(log_file), 0, sizeof(((struct pf_config *)0)->log_file), NULL},
    {NULL, 0, 0, 0, 0, NULL}};

static int walk_mapping(struct loader *ld, yaml_node_t *map, const struct key *keys,
                        const char *section);

static int need_scalar(struct loader *ld, yaml_node_t *v, const char *key, const char **out)
{
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(ld, v, "'%s' must be a single value", key);
    *out = (const char *)v->data.scalar.value;
    return 0;
}

/* ---- routes: and modules: ------------------------------------------------------------- */

static bool valid_route_path(const char *s)
{
    if (s[0] != '/')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("?#\\", *p))
            return false;
    return true;
}

bool pf_config_valid_counter_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return false;
    return true;
}

static int copy_scalar(struct loader *ld, yaml_node_t *v, const char *what, char *out, size_t cap)
{
    const char *s = NULL;
    int rc = need_scalar(ld, v, what, &s);
    if (rc)
        return rc;
    if (strlen(s) >= cap)
        return fail_at(ld, v, "'%s' is longer than %zu bytes", what, cap - 1);
    strcpy(out, s);
    return 0;
}

static const char *const method_names[PF_METHOD_COUNT] = {
    [PF_METHOD_GET] = "GET",     [PF_METHOD_HEAD] = "HEAD", [PF_METHOD_OPTIONS] = "OPTIONS",
    [PF_METHOD_POST] = "POST",   [PF_METHOD_PUT] = "PUT",   [PF_METHOD_DELETE] = "DELETE",
    [PF_METHOD_PATCH] = "PATCH", [PF_METHOD_OTHER] = NULL,
};

static int set_methods(struct loader *ld, yaml_node_t *v, unsigned *out)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(ld, v, "'methods' must be a list such as [GET, POST]");
    unsigned m = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        const char *s = NULL;
        int rc = need_scalar(ld, item, "methods", &s);
        if (rc)
            return rc;
        int found = -1;
        for (int k = 0; k < PF_METHOD_COUNT; k++)
            if (method_names[k] && strcmp(s, method_names[k]) == 0)
                found = k;
        if (found < 0)
            return fail_at(ld, item,
                           "unknown method '%s' (GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS)",
                           s);
        m |= 1u << found;
    }
    if (!m)
        return fail_at(ld, v, "'methods' needs at least one method");
    /* HEAD is GET without the body: where GET is served, so is HEAD (RFC 9110 9.3.2). */
    if (m & 1u << PF_METHOD_GET)
        m |= 1u << PF_METHOD_HEAD;
    *out = m;
    return 0;
}

static int set_route(struct loader *ld, yaml_node_t *map, struct pf_route_config *r, size_t index)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(ld, map, "a route must be a mapping with path and handler");
    *r = (struct pf_route_config){.methods = 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD,
                                  .kind = PF_HANDLER_KINDS,
                                  .line = (uint32_t)map->start_mark.line + 1,
                                  .column = (uint32_t)map->start_mark.column + 1};
    yaml_node_t *path_node = NULL, *root_node = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *key = NULL;
        int rc = need_scalar(ld, kn, "route key", &key);
        if (rc)
            return rc;
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *prev = yaml_document_get_node(ld->doc, q->key);
            if (prev->type == YAML_SCALAR_NODE &&
                strcmp((const char *)prev->data.scalar.value, key) == 0)
                return fail_at(ld, kn, "duplicate key 'routes.%s'", key);
        }
        if (strcmp(key, "path") == 0) {
            path_node = vn;
            rc = copy_scalar(ld, vn, "routes.path", r->path, sizeof(r->path));
        } else if (strcmp(key, "handler") == 0) {
            const char *h = NULL;
            if ((rc = need_scalar(ld, vn, "routes.handler", &h)))
                return rc;
            for (int k = 0; k < PF_HANDLER_KINDS; k++)
                if (handler_names[k] && strcmp(h, handler_names[k]) == 0)
                    r->kind = (enum pf_handler_kind)k;
            const char *dot = strchr(h, '.');
            if (r->kind == PF_HANDLER_KINDS && dot && dot > h && dot[1] &&
                (size_t)(dot - h) < sizeof(ld->route_module[0]) &&
                strlen(dot + 1) < sizeof(r->handler)) {
                r->kind = PF_HANDLER_MODULE;
                memcpy(ld->route_module[index], h, (size_t)(dot - h));
                ld->route_module[index][dot - h] = '\0';
                strcpy(r->handler, dot + 1);
                ld->route_handler_mark[index] = vn->start_mark;
            }
            if (r->kind == PF_HANDLER_KINDS || r->kind == PF_HANDLER_METRICS)
                return fail_at(ld, vn,
                               "unknown handler '%s' (sum, health, heavy, ready, static, count, "
                               "or MODULE.HANDLER for a module in 'modules')",
                               h);
        } else if (strcmp(key, "methods") == 0) {
            rc = set_methods(ld, vn, &r->methods);
        } else if (strcmp(key, "root") == 0) {
            root_node = vn;
            rc = copy_scalar(ld, vn, "routes.root", r->root, sizeof(r->root));
        } else if (strcmp(key, "index") == 0) {
            rc = copy_scalar(ld, vn, "routes.index", r->index, sizeof(r->index));
            if (!rc && (strchr(r->index, '/') || strcmp(r->index, "..") == 0))
                return fail_at(ld, vn, "'routes.index' must be a file name such as index.html");
        } else if (strcmp(key, "counter") == 0) {
            rc = copy_scalar(ld, vn, "routes.counter", r->counter, sizeof(r->counter));
            if (!rc && !pf_config_valid_counter_name(r->counter))
                return fail_at(ld, vn, "'routes.counter' must be 1 to 63 of [a-zA-Z0-9_.-]");
        } else {
            return fail_at(ld, kn,
                           "unknown key 'routes.%s' (path, handler, methods, root, index, "
                           "counter)",
                           key);
        }
        if (rc)
            return rc;
    }
    if (!path_node)
        return fail_at(ld, map, "a route needs a 'path'");
    if (r->kind == PF_HANDLER_KINDS)
        return fail_at(ld, map, "a route needs a 'handler'");
    if (!valid_route_path(r->path))
        return fail_at(ld, path_node,
                       "'routes.path' must start with / and hold no spaces, controls, ? # or \\");
    /* A path ending in '/' is a prefix; "/" alone is the exact root, except for a static
     * route, where it serves the whole tree. */
    size_t len = strlen(r->path);
    r->prefix = r->path[len - 1] == '/' && (len > 1 || r->kind == PF_HANDLER_STATIC);
    if (r->kind == PF_HANDLER_STATIC) {
        if (!root_node)
            return fail_at(ld, map, "a static route needs a 'root' directory");
        if (r->root[0] != '/')
            return fail_at(ld, root_node, "'routes.root' must be an absolute path");
    } else if (root_node || r->index[0]) {
        return fail_at(ld, root_node ? root_node : map, "'root' and 'index' are for static routes");
    }
    if (r->kind == PF_HANDLER_COUNT && !r->counter[0])
        strcpy(r->counter, "count");
    else if (r->kind != PF_HANDLER_COUNT && r->counter[0])
        return fail_at(ld, map, "'counter' is for count routes");
    return 0;
}

static int set_routes(struct loader *ld, const struct key *k, yaml_node_t *v)
{
    struct pf_config *cfg = ld->cfg;
    /* The older form, `routes: {sum_iterations, heavy_iterations}`, is `work:` now. */
    if (v->type == YAML_MAPPING_NODE)
        return walk_mapping(ld, v, k->children, "routes");
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(ld, v, "'routes' must be a list of routes");
    cfg->routes_configured = true;
    cfg->nroutes = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        if (cfg->nroutes == PF_MAX_ROUTES)
            return fail_at(ld, item, "at most %d routes", PF_MAX_ROUTES);
        int rc = set_route(ld, item, &cfg->routes[cfg->nroutes], cfg->nroutes);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < cfg->nroutes; j++)
            if (strcmp(cfg->routes[j].path, cfg->routes[cfg->nroutes].path) == 0)
                return fail_at(ld, item, "duplicate route path '%s'",
                               cfg->routes[cfg->nroutes].path);
        cfg->nroutes++;
    }
    return 0;
}

/* Flattens a module's config map: nested keys joined with '.', list items by index. */
static int flatten(struct loader *ld, yaml_node_t *v, char *key, size_t klen)
{
    struct pf_config *cfg = ld->cfg;
    if (v->type == YAML_SCALAR_NODE) {
        if (cfg->nkv == PF_MAX_MODULE_KV)
            return fail_at(ld, v, "at most %d module configuration values in all",
                           PF_MAX_MODULE_KV);
        struct pf_kv *kv = &cfg->module_kv[cfg->nkv];
        const char *s = (const char *)v->data.scalar.value;
        if (klen >= sizeof(kv->key) || strlen(s) >= sizeof(kv->value))
            return fail_at(ld, v,
                           "module configuration key or value too long (%zu and %zu bytes "
                           "at most)",
                           sizeof(kv->key) - 1, sizeof(kv->value) - 1);
        memcpy(kv->key, key, klen);
        kv->key[klen] = '\0';
        strcpy(kv->value, s);
        cfg->nkv++;
        return 0;
    }
    char sub[128];
    if (v->type == YAML_SEQUENCE_NODE) {
        size_t i = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++, i++) {
            int n = snprintf(sub, sizeof(sub), "%.*s%s%zu", (int)klen, key, klen ? "." : "", i);
            int rc = flatten(ld, yaml_document_get_node(ld->doc, *it), sub, (size_t)n);
            if (rc)
                return rc;
        }
        return 0;
    }
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        const char *name = NULL;
        int rc = need_scalar(ld, kn, "module configuration key", &name);
        if (rc)
            return rc;
        int n = snprintf(sub, sizeof(sub), "%.*s%s%s", (int)klen, key, klen ? "." : "", name);
        if (n < 0 || (size_t)n >= sizeof(sub))
            return fail_at(ld, kn, "module configuration key too long");
        rc = flatten(ld, yaml_document_get_node(ld->doc, p->value), sub, (size_t)n);
        if (rc)
            return rc;
    }
    return 0;
}

static int set_modules(struct loader *ld, yaml_node_t *v)
{
    struct pf_config *cfg = ld->cfg;
    if (v->type != YAML_MAPPING_NODE)
        return fail_at(ld, v, "'modules' must map names to {path: FILE.so, config: {...}}");
    cfg->nmodules = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        const char *name = NULL;
        int rc = need_scalar(ld, kn, "module name", &name);
        if (rc)
            return rc;
        if (cfg->nmodules == PF_MAX_MODULES)
            return fail_at(ld, kn, "at most %d modules", PF_MAX_MODULES);
        struct pf_module_config_entry *m = &cfg->modules[cfg->nmodules];
        *m = (struct pf_module_config_entry){.line = (uint32_t)kn->start_mark.line + 1,
                                             .column = (uint32_t)kn->start_mark.column + 1,
                                             .kv_first = cfg->nkv};
        if (strlen(name) >= sizeof(m->name) || !name[0] || strchr(name, '.'))
            return fail_at(ld, kn, "a module name is 1 to %zu bytes without '.'",
                           sizeof(m->name) - 1);
        for (uint32_t j = 0; j < cfg->nmodules; j++)
            if (strcmp(cfg->modules[j].name, name) == 0)
                return fail_at(ld, kn, "duplicate module '%s'", name);
        strcpy(m->name, name);
        if (vn->type != YAML_MAPPING_NODE)
            return fail_at(ld, vn, "module '%s' must be {path: FILE.so, config: {...}}", name);
        bool has_path = false;
        for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
             q++) {
            yaml_node_t *k2 = yaml_document_get_node(ld->doc, q->key);
            yaml_node_t *v2 = yaml_document_get_node(ld->doc, q->value);
            const char *key = NULL;
            if ((rc = need_scalar(ld, k2, "module key", &key)))
                return rc;
            if (strcmp(key, "path") == 0) {
                rc = copy_scalar(ld, v2, "modules.path", m->path, sizeof(m->path));
                has_path = true;
            } else if (strcmp(key, "config") == 0) {
                if (v2->type != YAML_MAPPING_NODE)
                    return fail_at(ld, v2, "'config' must be a mapping");
                char empty[1] = "";
                rc = flatten(ld, v2, empty, 0);
            } else {
                return fail_at(ld, k2, "unknown key 'modules.%s.%s' (path, config)", name, key);
            }
            if (rc)
                return rc;
        }
        if (!has_path || !m->path[0])
            return fail_at(ld, vn, "module '%s' needs a 'path' to its shared object", name);
        m->kv_count = cfg->nkv - m->kv_first;
        cfg->nmodules++;
    }
    return 0;
}

/* After the whole file: what one key says about another. */
static int check_whole(struct loader *ld)
{
    struct pf_config *cfg = ld->cfg;
    if (!cfg->routes_configured)
        pf_config_default_routes(cfg);
    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        struct pf_route_config *r = &cfg->routes[i];
        if (cfg->metrics_enabled && !r->prefix && strcmp(r->path, cfg->metrics_path) == 0) {
            /* Said where metrics.path was set, else at the route. */
            yaml_node_t at = {.start_mark = ld->metrics_path_mark};
            if (!ld->metrics_path_set)
                at.start_mark = (yaml_mark_t){.line = r->line - 1, .column = r->column - 1};
            return fail_at(ld, &at, "'metrics.path' cannot be %s: that route is taken",
                           cfg->metrics_path);
        }
        if (r->kind != PF_HANDLER_MODULE)
            continue;
        uint32_t m = 0;
        while (m < cfg->nmodules && strcmp(cfg->modules[m].name, ld->route_module[i]) != 0)
            m++;
        if (m == cfg->nmodules) {
            yaml_node_t at = {.start_mark = ld->route_handler_mark[i]};
            return fail_at(ld, &at, "handler '%s.%s': no module '%s' in 'modules'",
                           ld->route_module[i], r->handler, ld->route_module[i]);
        }
        r->module = m;
    }
    return 0;
}

_Static_assert(PF_LISTEN_TEXT >= sizeof("unix:") + sizeof(((struct sockaddr_un *)0)->sun_path),
               "a listen address's text holds any socket path");

static int parse_address(struct loader *ld, yaml_node_t *v, struct pf_listen_addr *out)
{
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(ld, v, "a listen address must be a string like 127.0.0.1:4400");
    const char *s = (const char *)v->data.scalar.value;
    if (pf_config_parse_listen(s, out) < 0)
        return fail_at(ld, v,
                       "invalid listen address '%s' (expected HOST:PORT, [IPV6]:PORT, PORT or "
                       "unix:/ABSOLUTE/PATH of at most %zu bytes)",
                       s, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return 0;
}

/* "0660", "660": permission bits in octal, nothing beyond 0777. */
static int parse_mode(const char *s, int32_t *out)
{
    size_t n = strlen(s);
    if (n < 1 || n > 4)
        return -EINVAL;
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -EINVAL;
        m = m * 8 + (uint32_t)(s[i] - '0');
    }
    if (m > 0777)
        return -EINVAL;
    *out = (int32_t)m;
    return 0;
}

/* The keys of a listen entry written as a mapping. */
enum listen_key { LK_ADDRESS, LK_PROXY, LK_MODE, LK_OWNER, LK_GROUP, LK_COUNT };
static const struct {
    const char *name;
    bool unix_only;
} listen_keys[LK_COUNT] = {
    [LK_ADDRESS] = {"address", false}, [LK_PROXY] = {"proxy_protocol", false},
    [LK_MODE] = {"mode", true},        [LK_OWNER] = {"owner", true},
    [LK_GROUP] = {"group", true},
};

static int set_proxy(struct loader *ld, yaml_node_t *v, enum pf_proxy_version *out)
{
    const char *s = NULL;
    int rc = need_scalar(ld, v, "listen.proxy_protocol", &s);
    if (rc)
        return rc;
    if (strcmp(s, "v1") == 0)
        *out = PF_PROXY_V1;
    else if (strcmp(s, "v2") == 0)
        *out = PF_PROXY_V2;
    else if (strcmp(s, "off") == 0)
        *out = PF_PROXY_OFF;
    else
        return fail_at(ld, v, "'listen.proxy_protocol' must be v1, v2 or off, not '%s'", s);
    return 0;
}

/* A user or group name (resolved when the socket is bound, on the machine that binds). */
static int set_name(struct loader *ld, yaml_node_t *v, const char *what, char *out, size_t cap)
{
    int rc = copy_scalar(ld, v, what, out, cap);
    if (rc == 0 && !out[0])
        return fail_at(ld, v, "'%s' must not be empty", what);
    return rc;
}

/* {address: ..., proxy_protocol: v1|v2|off, mode: "0660", owner: NAME, group: NAME} */
static int set_listen_entry(struct loader *ld, yaml_node_t *map, struct pf_listen_addr *out)
{
    yaml_node_t *key[LK_COUNT] = {0}, *val[LK_COUNT] = {0};
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        const char *name = NULL;
        int rc = need_scalar(ld, kn, "listen key", &name);
        if (rc)
            return rc;
        int k = 0;
        while (k < LK_COUNT && strcmp(name, listen_keys[k].name) != 0)
            k++;
        if (k == LK_COUNT)
            return fail_at(ld, kn,
                           "unknown key 'listen.%s' (address, proxy_protocol, mode, owner, group)",
                           name);
        if (key[k])
            return fail_at(ld, kn, "duplicate key 'listen.%s'", name);
        key[k] = kn;
        val[k] = yaml_document_get_node(ld->doc, p->value);
    }
    if (!val[LK_ADDRESS])
        return fail_at(ld, map, "a listen entry needs an 'address'");
    int rc = parse_address(ld, val[LK_ADDRESS], out);
    for (int k = 0; rc == 0 && k < LK_COUNT; k++)
        if (key[k] && listen_keys[k].unix_only && !pf_config_listen_is_unix(out))
            return fail_at(ld, key[k], "'listen.%s' applies only to a unix: address",
                           listen_keys[k].name);
    if (rc == 0 && val[LK_PROXY])
        rc = set_proxy(ld, val[LK_PROXY], &out->proxy);
    if (rc == 0 && val[LK_MODE]) {
        const char *s = NULL;
        rc = need_scalar(ld, val[LK_MODE], "listen.mode", &s);
        if (rc == 0 && parse_mode(s, &out->mode) < 0)
            return fail_at(ld, val[LK_MODE],
                           "'listen.mode' must be octal permissions like 0660, not '%s'", s);
    }
    if (rc == 0 && val[LK_OWNER])
        rc = set_name(ld, val[LK_OWNER], "listen.owner", out->owner, sizeof(out->owner));
    if (rc == 0 && val[LK_GROUP])
        rc = set_name(ld, val[LK_GROUP], "listen.group", out->group, sizeof(out->group));
    return rc;
}

static int set_listen(struct loader *ld, yaml_node_t *v)
{
    struct pf_config *cfg = ld->cfg;
    yaml_node_t *items[PF_MAX_LISTEN];
    size_t n = 0;
    if (v->type == YAML_SCALAR_NODE || v->type == YAML_MAPPING_NODE) {
        items[n++] = v;
    } else if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
            if (n == PF_MAX_LISTEN)
                return fail_at(ld, item, "at most %d listen addresses", PF_MAX_LISTEN);
            items[n++] = item;
        }
        if (n == 0)
            return fail_at(ld, v, "'listen' needs at least one address");
    } else {
        return fail_at(ld, v, "'listen' must be an address or a list of addresses");
    }
    for (size_t i = 0; i < n; i++) {
        int rc = items[i]->type == YAML_MAPPING_NODE
                     ? set_listen_entry(ld, items[i], &cfg->listen[i])
                     : parse_address(ld, items[i], &cfg->listen[i]);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->listen[j].text, cfg->listen[i].text) == 0)
                return fail_at(ld, items[i], "duplicate listen address '%s'", cfg->listen[i].text);
    }
    cfg->nlisten = n;
    return 0;
}

static int set_value(struct loader *ld, const struct key *k, const char *path, yaml_node_t *v)
{
    struct pf_config *cfg = ld->cfg;
    char *field = (char *)cfg + k->offset;
    const char *s = NULL;
    uint64_t num;
    const char *rest;
    int rc;

    if (k->type == T_SECTION) {
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(ld, v, "'%s' must be a mapping of keys", path);
        return walk_mapping(ld, v, k->children, path);
    }
    if (k->type == T_LISTEN)
        return set_listen(ld, v);
    if (k->type == T_ROUTES)
        return set_routes(ld, k, v);
    if (k->type == T_MODULES)
        return set_modules(ld, v);
    if ((rc = need_scalar(ld, v, path, &s)))
        return rc;

    switch (k->type) {
    case T_WORKERS:
        if (strcmp(s, "auto") == 0) {
            cfg->workers_mode = PF_WORKERS_AUTO;
            return 0;
        }
        if (strcmp(s, "auto-1") == 0) {
            cfg->workers_mode = PF_WORKERS_AUTO_MINUS_ONE;
            return 0;
        }
        if (parse_u64(s, &num, &rest) || *rest)
            return fail_at(ld, v, "'workers' must be auto, auto-1 or a positive integer, not '%s'",
                           s);
        if (num < k->min || num > k->max)
            return fail_at(ld, v, "'workers' must be between %" PRIu64 " and %" PRIu64, k->min,
                           k->max);
        cfg->workers_mode = PF_WORKERS_FIXED;
        cfg->workers = (uint32_t)num;
        return 0;
    case T_BALANCE:
        if (strcmp(s, "reuseport") == 0)
            cfg->balance = PF_BALANCE_REUSEPORT;
        else if (strcmp(s, "shared") == 0)
            cfg->balance = PF_BALANCE_SHARED;
        else
            return fail_at(ld, v, "'balance' must be reuseport or shared, not '%s'", s);
        return 0;
    case T_STRING:
        if (strlen(s) >= k->max)
            return fail_at(ld, v, "'%s' is longer than %" PRIu64 " bytes", path, k->max - 1);
        strcpy(field, s);
        return 0;
    case T_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)
            *(bool *)field = true;
        else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)
            *(bool *)field = false;
        else
            return fail_at(ld, v, "'%s' must be true or false, not '%s'", path, s);
        return 0;
    case T_PATH:
        if (s[0] != '/' || strlen(s) >= k->max || strpbrk(s, "?# \t"))
            return fail_at(ld, v, "'%s' must be a path like /metrics (at most %" PRIu64 " bytes)",
                           path, k->max - 1);
        ld->metrics_path_mark = v->start_mark;
        ld->metrics_path_set = true;
        strcpy(field, s);
        return 0;
    case T_ACCESS_FORMAT:
        if (strcmp(s, "off") == 0)
            cfg->access_format = PF_ACCESS_OFF;
        else if (strcmp(s, "combined") == 0)
            cfg->access_format = PF_ACCESS_COMBINED;
        else if (strcmp(s, "json") == 0)
            cfg->access_format = PF_ACCESS_JSON;
        else
            return fail_at(ld, v, "'%s' must be off, combined or json, not '%s'", path, s);
        return 0;
    case T_AFFINITY:
        if (strcmp(s, "auto") == 0)
            cfg->affinity_auto = true;
        else if (strcmp(s, "none") == 0)
            cfg->affinity_auto = false;
        else
            return fail_at(ld, v, "'affinity' must be none or auto, not '%s'", s);
        return 0;
    case T_SHARED_BACKEND:
        if (strcmp(s, "memory") == 0)
            cfg->shared_backend = PF_SHARED_MEMORY;
        else if (strcmp(s, "redis") == 0)
            cfg->shared_backend = PF_SHARED_REDIS;
        else
            return fail_at(ld, v, "'%s' must be memory or redis, not '%s'", path, s);
        return 0;
    case T_SHARED_ADDRESS: {
        char host[256];
        int port;
        if (strlen(s) >= k->max || pf_config_parse_store_address(s, host, sizeof(host), &port) < 0)
            return fail_at(ld, v,
                           "'%s' must be IPV4:PORT, [IPV6]:PORT or unix:/ABSOLUTE/PATH, not '%s'",
                           path, s);
        strcpy(field, s);
        return 0;
    }
    case T_LOGLEVEL:
        if (pf_log_level_parse(s, &cfg->log_level) < 0)
            return fail_at(ld, v, "'log_level' must be error, warn, info or debug, not '%s'", s);
        return 0;
    case T_U32:
    case T_U64:
        if (parse_u64(s, &num, &rest) || *rest)
            return fail_at(ld, v, "'%s' must be a non-negative integer, not '%s'", path, s);
        break;
    case T_DURATION:
        if (pf_config_parse_duration_ms(s, &num))
            return fail_at(ld, v, "'%s' must be a duration like 5s or 500ms, not '%s'", path, s);
        break;
    case T_SIZE:
    case T_SIZE32:
        if (pf_config_parse_size(s, &num))
            return fail_at(ld, v, "'%s' must be a size like 512, 8k or 1MiB, not '%s'", path, s);
        break;
    default:
        return fail_at(ld, v, "internal: unhandled key type");
    }
    if (num < k->min || num > k->max)
        return fail_at(ld, v, "'%s' must be between %" PRIu64 " and %" PRIu64 "%s, not '%s'", path,
                       k->min, k->max, k->type == T_DURATION ? " ms" : "", s);
    if (k->type == T_U64 || k->type == T_SIZE)
        memcpy(field, &num, sizeof(uint64_t));
    else {
        uint32_t v32 = (uint32_t)num;
        memcpy(field, &v32, sizeof(v32));
    }
    return 0;
}

static int walk_mapping(struct loader *ld, yaml_node_t *map, const struct key *keys,
                        const char *section)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(ld, kn, "keys must be plain names");
        const char *name = (const char *)kn->data.scalar.value;
        char path[96];
        snprintf(path, sizeof(path), "%s%s%s", section ? section : "", section ? "." : "", name);
        const struct key *k = keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (!k->name)
            return fail_at(ld, kn, "unknown key '%s'", path);
        /* A repeated key is almost always a mistake; YAML libraries silently keep one. */
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *prev = yaml_document_get_node(ld->doc, q->key);
            if (prev->type == YAML_SCALAR_NODE &&
                strcmp((const char *)prev->data.scalar.value, name) == 0)
                return fail_at(ld, kn, "duplicate key '%s'", path);
        }
        int rc = set_value(ld, k, path, vn);
        if (rc)
            return rc;
    }
    return 0;
}

int pf_config_load_string(struct pf_config *cfg, const char *name, const char *text, size_t len,
                          char *err, size_t errlen)
{
    struct pf_config tmp;
    pf_config_defaults(&tmp);
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -EINVAL;
    struct loader ld = {.cfg = &tmp, .doc = &doc, .name = name, .err = err, .errlen = errlen};

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: cannot initialise the YAML parser", name);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m = parser.context ? &parser.context_mark : &parser.problem_mark;
        if (parser.problem_mark.line || parser.problem_mark.column)
            m = &parser.problem_mark;
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", name, m->line + 1,
                 m->column + 1, parser.problem ? parser.problem : "unknown error",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = 0; /* an empty file means all defaults */
    } else if (root->type != YAML_MAPPING_NODE) {
        rc = fail_at(&ld, root, "the configuration must be a mapping of keys");
    } else {
        rc = walk_mapping(&ld, root, top_keys, NULL);
    }
    if (rc == 0)
        rc = check_whole(&ld);
    if (rc == 0)
        snprintf(tmp.file, sizeof(tmp.file), "%s", name);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc == 0)
        *cfg = tmp;
    return rc;
}

int pf_config_load(struct pf_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s:0:0: cannot open: %s", path, strerror(e));
        return -e;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > (1 << 20)) {
                snprintf(err, errlen, "%s:0:0: file larger than 1 MiB", path);
                rc = -EFBIG;
                goto fail;
            }
            char *n = realloc(text, cap);
            if (!n) {
                rc = -ENOMEM;
                snprintf(err, errlen, "%s:0:0: out of memory", path);
                goto fail;
            }
            text = n;
        }
        size_t r = fread(text + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s:0:0: read error", path);
        goto fail;
    }
    rc = pf_config_load_string(cfg, path, text, len, err, errlen);
fail:
    free(text);
    fclose(f);
    return rc;
}

int pf_config_load_default(struct pf_config *cfg, const char **path, char *err, size_t errlen)
{
    pf_config_defaults(cfg);
    if (!*path && access(PF_DEFAULT_CONFIG, F_OK) == 0)
        *path = PF_DEFAULT_CONFIG;
    return *path ? pf_config_load(cfg, *path, err, errlen) : 0;
}
