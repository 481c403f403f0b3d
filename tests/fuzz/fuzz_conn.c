/* libFuzzer target: a whole connection (parser, router, handlers, responses, buffer
 * management) over a socketpair. The input is written in several pieces, split at each
 * 0xFF marker byte, with the connection's event handler run after every piece, so
 * incremental parsing and pipelining are exercised as on a real socket. An input that
 * begins with 0xFE or 0xFD is a connection on a listener with proxy_protocol v1 or v2:
 * that byte is dropped, and the rest must begin with the PROXY header. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>

#include "preforkd/conn.h"
#include "preforkd/counters.h"
#include "preforkd/static_route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pf_config cfg;
static struct pf_handler_ctx ctx;
static struct pf_router router;
static struct pf_mime mime;
static struct pf_static_route files;
static struct pf_counters_region *counters;
static struct pf_conn conn;
static int ready;

static void add_route(const char *path, enum pf_handler_kind kind, unsigned methods)
{
    struct pf_route_config *r = &cfg.routes[cfg.nroutes++];
    *r = (struct pf_route_config){.kind = kind, .methods = methods};
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->prefix = path[strlen(path) - 1] == '/';
}

/* The routes a configuration can have: the seed's, a static tree, the shared counter,
 * and one that keeps every header field and the body (as a module route does). */
static void setup(void)
{
    pf_config_defaults(&cfg);
    cfg.limits.request_line = 1024;
    cfg.limits.header_block = 4096;
    cfg.limits.headers = 20;
    cfg.limits.body = 65536;
    cfg.routes_configured = true;
    cfg.nroutes = 0;
    unsigned gh = 1u << PF_METHOD_GET | 1u << PF_METHOD_HEAD;
    add_route("/health", PF_HANDLER_HEALTH, gh);
    add_route("/", PF_HANDLER_SUM, gh);
    add_route("/count", PF_HANDLER_COUNT, gh | 1u << PF_METHOD_POST);
    add_route("/static/", PF_HANDLER_STATIC, gh);
    add_route("/keep/", PF_HANDLER_SUM, gh | 1u << PF_METHOD_POST | 1u << PF_METHOD_PUT);
    char dir[] = "/tmp/preforkd-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[128];
    snprintf(path, sizeof(path), "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("<p>static</p>\n", f);
        fclose(f);
    }
    snprintf(cfg.routes[3].root, sizeof(cfg.routes[3].root), "%s", dir);
    snprintf(cfg.routes[3].index, sizeof(cfg.routes[3].index), "index.html");
    pf_handler_ctx_init(&ctx, 1234, 0, 10, 100); /* small loops: fuzz speed */
    pf_router_init(&router, &cfg);
    for (uint32_t i = 0; i < router.n; i++) {
        router.routes[i].fn = pf_handlers_builtin(router.routes[i].kind);
        router.routes[i].keep = pf_handlers_builtin_keep(router.routes[i].kind);
    }
    router.routes[4].keep = PF_HTTP_KEEP_FIELDS | PF_HTTP_KEEP_BODY;
    pf_mime_load(&mime, NULL);
    char err[256];
    if (pf_static_route_open(&files, &cfg.routes[3], &mime, err, sizeof(err)) < 0)
        abort();
    router.routes[3].fn = pf_static_route_handle;
    router.routes[3].state = &files;
    if (pf_counters_new(&counters, 16) < 0)
        abort();
    pf_counters_set_current(counters);
    router.routes[2].state = pf_counter("count");
    ctx.router = &router;
    ctx.counters = counters;
}

static void drain(int fd)
{
    char sink[65536];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        setup();
        ready = 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    struct pf_conn_env env = {.ctx = &ctx, .cfg = &cfg, .drain_idle_ms = 1000};
    pf_conn_init(&conn, sv[0], &cfg, &ctx, 0);
    if (size > 0 && (data[0] == 0xFE || data[0] == 0xFD)) {
        pf_conn_expect_proxy(&conn, data[0] == 0xFE ? PF_PROXY_V1 : PF_PROXY_V2);
        data++;
        size--;
    }
    enum pf_conn_verdict v = PF_CONN_KEEP;
    size_t start = 0;
    for (size_t i = 0; i <= size && v == PF_CONN_KEEP; i++) {
        if (i < size && data[i] != 0xFF)
            continue;
        if (i > start && send(sv[1], data + start, i - start, MSG_NOSIGNAL) < 0)
            break;
        start = i + 1;
        v = pf_conn_on_events(&conn, EPOLLIN | EPOLLOUT, &env);
        drain(sv[1]);
        if (v == PF_CONN_KEEP && conn.wpos < conn.wlen)
            v = pf_conn_on_events(&conn, EPOLLOUT, &env); /* resume after the peer read */
    }
    if (v == PF_CONN_KEEP) {
        /* The peer goes away: EOF and the timers must end the connection cleanly. */
        shutdown(sv[1], SHUT_WR);
        v = pf_conn_on_events(&conn, EPOLLIN | EPOLLRDHUP, &env);
        ctx.now_ms += 60000;
        if (v == PF_CONN_KEEP)
            v = pf_conn_on_tick(&conn, &env);
        ctx.now_ms -= 60000;
    }
    pf_conn_release(&conn);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
