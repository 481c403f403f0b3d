#ifndef PREFORKD_CONFIG_H
#define PREFORKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "preforkd/log.h"
#include "preforkd/paths.h" /* PF_DEFAULT_CONFIG */
#include "preforkd/proxy.h" /* enum pf_proxy_version */

#define PF_MAX_LISTEN    16
#define PF_MAX_WORKERS   1024
#define PF_MAX_ROUTES    64
#define PF_MAX_MODULES   16
#define PF_MAX_MODULE_KV 256

enum pf_workers_mode { PF_WORKERS_AUTO, PF_WORKERS_AUTO_MINUS_ONE, PF_WORKERS_FIXED };
enum pf_balance { PF_BALANCE_REUSEPORT, PF_BALANCE_SHARED };
enum pf_access_format { PF_ACCESS_OFF, PF_ACCESS_COMBINED, PF_ACCESS_JSON };
/* Where the shared counters live: this host's shared memory, or a Redis server that
 * several hosts share. */
enum pf_shared_backend { PF_SHARED_MEMORY, PF_SHARED_REDIS };

/* "unix:" and a socket path (sun_path holds 107 bytes and its NUL). */
#define PF_LISTEN_TEXT 128

/* One entry of `listen:`: a TCP address, or a unix-domain socket's path. */
struct pf_listen_addr {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[PF_LISTEN_TEXT];   /* canonical: "127.0.0.1:4400", "[::1]:80", "unix:/run/x.sock" */
    enum pf_proxy_version proxy; /* a PROXY header precedes each connection's first byte */
    /* unix only: applied to the socket file after bind (-1 / "": as bind() made it) */
    int32_t mode;
    char owner[64];
    char group[64];
};

struct pf_limits {
    uint32_t request_line; /* bytes of the request target; over it: 414 */
    uint32_t header_block; /* bytes of all header fields and values; over it: 431 */
    uint32_t headers;      /* number of header fields; over it: 431 */
    uint64_t body;         /* request body bytes; over it: 413 */
    uint32_t connections;  /* open connections per worker */
};

/* What a route runs: a built-in handler, or a module's. */
enum pf_handler_kind {
    PF_HANDLER_SUM,
    PF_HANDLER_HEALTH,
    PF_HANDLER_HEAVY,
    PF_HANDLER_METRICS,
    PF_HANDLER_STATIC,
    PF_HANDLER_COUNT,
    PF_HANDLER_READY,
    PF_HANDLER_MODULE,
    PF_HANDLER_KINDS
};

/* One entry of `routes:`. */
struct pf_route_config {
    char path[256];
    bool prefix;      /* a path ending in '/' (other than "/" itself) */
    unsigned methods; /* 1 << enum pf_method; default GET and HEAD */
    enum pf_handler_kind kind;
    uint32_t module;       /* PF_HANDLER_MODULE: index into modules[] */
    char handler[64];      /* PF_HANDLER_MODULE: the handler's name in the module */
    char root[256];        /* static: the directory served */
    char index[64];        /* static: the file a directory answers with ("" none) */
    char counter[64];      /* count: the shared counter's name (default "count") */
    uint32_t line, column; /* in the file: errors found when a module loads name it */
};

/* One entry of `modules:`, and its free-form `config:` map, flattened into module_kv. */
struct pf_module_config_entry {
    char name[32];
    char path[256];
    uint32_t kv_first, kv_count;
    uint32_t line, column;
};

struct pf_kv {
    char key[64];
    char value[192];
};

struct pf_config {
    struct pf_listen_addr listen[PF_MAX_LISTEN];
    size_t nlisten;
    enum pf_workers_mode workers_mode;
    uint32_t workers; /* for PF_WORKERS_FIXED */
    uint32_t backlog;
    enum pf_balance balance;
    uint32_t keepalive_timeout_ms;
    uint32_t header_timeout_ms;
    uint32_t send_timeout_ms;
    uint32_t body_timeout_ms; /* a request body gets this long, ... */
    uint64_t body_min_rate;   /* ... plus one second per this many bytes received */
    uint32_t shutdown_timeout_ms;
    uint32_t lame_duck_ms; /* graceful stop: not ready, still serving, this long first */
    uint32_t min_uptime_ms;
    uint32_t worker_timeout_ms; /* heartbeat older than this: the worker is hung */
    uint64_t max_memory;        /* recycle a worker whose RSS exceeds this; 0: never */
    uint64_t max_requests;      /* recycle a worker after this many requests; 0: never */
    uint64_t max_requests_jitter;
    bool affinity_auto; /* pin worker i to the i-th allowed CPU */
    char user[64];      /* drop workers to this user (and its group) when root */
    char group[64];
    char pid_file[256];
    char log_file[256]; /* empty: stderr */
    bool metrics_enabled;
    char metrics_path[64];
    bool health_fail_when_degraded;  /* /health answers 503 while degraded */
    bool health_ready_when_degraded; /* /ready answers 200 while degraded */
    enum pf_access_format access_format;
    char access_path[256]; /* empty: stderr */
    enum pf_shared_backend shared_backend;
    char shared_address[256];   /* redis: HOST:PORT or unix:/PATH */
    char shared_prefix[64];     /* redis: prepended to every counter's name to make its key */
    uint32_t shared_timeout_ms; /* redis: an answer later than this is an error (503) */
    struct pf_limits limits;
    uint64_t sum_iterations;
    uint64_t heavy_iterations;
    /* `routes:` as a list; without it (routes_configured false) the seed's routes: / sum,
     * /health, /heavy, and /ready. The metrics route is metrics.path either way. */
    bool routes_configured;
    uint32_t nroutes;
    struct pf_route_config routes[PF_MAX_ROUTES];
    uint32_t nmodules;
    struct pf_module_config_entry modules[PF_MAX_MODULES];
    uint32_t nkv;
    struct pf_kv module_kv[PF_MAX_MODULE_KV];
    char file[256]; /* the file it was loaded from, for messages ("" built-in) */
    enum pf_log_level log_level;
};

/* Fills cfg with the documented defaults. */
void pf_config_defaults(struct pf_config *cfg);
/* The seed's routes (/, /health, /heavy) and /ready, which a file without `routes:`
 * serves. */
void pf_config_default_routes(struct pf_config *cfg);
/* "sum", "static", ...; "module" for a module's handler. */
const char *pf_config_handler_name(enum pf_handler_kind kind);
/* A shared counter's name: 1 to 63 of [a-zA-Z0-9_.-]. */
bool pf_config_valid_counter_name(const char *name);

/* Loads and validates a YAML file over the defaults. On failure returns a negative errno
 * and writes "FILE:LINE:COLUMN: message" into err. */
int pf_config_load(struct pf_config *cfg, const char *path, char *err, size_t errlen);
/* The command-line rule: *path if given, else PF_DEFAULT_CONFIG if it exists
 * (*path is then set to it), else the built-in defaults (*path stays NULL). */
int pf_config_load_default(struct pf_config *cfg, const char **path, char *err, size_t errlen);
/* Same, from a buffer; `name` stands in for the file name in messages. */
int pf_config_load_string(struct pf_config *cfg, const char *name, const char *text, size_t len,
                          char *err, size_t errlen);

/* "127.0.0.1:4400", "[::1]:80", "*:8080", ":8080", "8080", "unix:/absolute/path".
 * Fills the address and text; proxy off, mode -1, no owner or group. */
int pf_config_parse_listen(const char *text, struct pf_listen_addr *out);
/* Whether the entry is a unix-domain socket. */
bool pf_config_listen_is_unix(const struct pf_listen_addr *a);
/* "30s", "500ms", "2m", "1h"; a bare number means seconds. */
int pf_config_parse_duration_ms(const char *text, uint64_t *out);
/* A store's address (shared.address): "IPV4:PORT" or "[IPV6]:PORT" gives host and port
 * (1..65535); "unix:/ABSOLUTE/PATH" gives the path in host and port -1. 0 or -EINVAL. */
int pf_config_parse_store_address(const char *text, char *host, size_t hostcap, int *port);
/* "512", "8k", "8KiB", "16KB", "1M", "1MiB", "1G": binary multiples. */
int pf_config_parse_size(const char *text, uint64_t *out);

/* Workers to run: the configured count, or pf_cpu_usable() (online CPUs capped by the
 * affinity mask), minus one for auto-1, at least 1. */
uint32_t pf_config_worker_count(const struct pf_config *cfg);

#endif
