/* libFuzzer target: a whole connection (parser, router, handlers, responses, buffer
 * management) over a socketpair. The input is written in several pieces, split at each
 * 0xFF marker byte, with the connection's event handler run after every piece, so
 * incremental parsing and pipelining are exercised as on a real socket. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/conn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pf_config cfg;
static struct pf_handler_ctx ctx;
static struct pf_conn conn;
static int ready;

static void drain(int fd)
{
    char sink[65536];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        pf_config_defaults(&cfg);
        cfg.limits.request_line = 1024;
        cfg.limits.header_block = 4096;
        cfg.limits.headers = 20;
        cfg.limits.body = 65536;
        pf_handler_ctx_init(&ctx, 1234, 0, 10, 100); /* small loops: fuzz speed */
        ready = 1;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    struct pf_conn_env env = {.ctx = &ctx, .cfg = &cfg, .drain_idle_ms = 1000};
    pf_conn_init(&conn, sv[0], &cfg, 0);
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
