#include "preforkd/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/log.h"

static int open_one(const struct pf_listen_addr *a, uint32_t backlog, int reuseport)
{
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (a->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&a->addr, a->addr_len) < 0)
        goto fail;
    if (listen(fd, (int)backlog) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

/* SO_REUSEPORT lets a second daemon of the same user join our port and silently take
 * half the traffic. Binding once without it first turns that into a clear EADDRINUSE. */
static int probe_free(const struct pf_listen_addr *a)
{
    int fd = open_one(a, 1, 0);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

int pf_listeners_open(struct pf_listeners *ls, const struct pf_config *cfg, uint32_t nslots,
                      char *err, size_t errlen)
{
    memset(ls, 0, sizeof(*ls));
    ls->naddrs = cfg->nlisten;
    ls->nslots = nslots;
    ls->balance = cfg->balance;
    size_t per_addr = cfg->balance == PF_BALANCE_REUSEPORT ? nslots : 1;
    ls->fds = malloc(sizeof(int) * per_addr * cfg->nlisten);
    if (!ls->fds) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        struct pf_listen_addr a = cfg->listen[i];
        if (per_addr > 1 && (rc = probe_free(&a)) < 0)
            goto fail;
        for (size_t s = 0; s < per_addr; s++) {
            int fd = open_one(&a, cfg->backlog, per_addr > 1);
            if (fd < 0) {
                rc = fd;
                goto fail;
            }
            ls->fds[ls->nfds++] = fd;
            /* Port 0 picks a port once; the slot sockets that follow must share it. */
            if (s == 0) {
                socklen_t len = sizeof(a.addr);
                getsockname(fd, (struct sockaddr *)&a.addr, &len);
            }
        }
        int port = a.addr.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&a.addr)->sin_port)
                                               : ntohs(((struct sockaddr_in6 *)&a.addr)->sin6_port);
        pf_log_info("listening on %s (port %d, %s, %zu socket%s)", cfg->listen[i].text, port,
                    cfg->balance == PF_BALANCE_REUSEPORT ? "reuseport" : "shared", per_addr,
                    per_addr > 1 ? "s" : "");
        continue;
    fail:
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen[i].text, strerror(-rc));
        pf_listeners_close(ls);
        return rc;
    }
    return 0;
}

size_t pf_listeners_for_slot(const struct pf_listeners *ls, uint32_t slot, int *out)
{
    for (size_t i = 0; i < ls->naddrs; i++) {
        if (ls->balance == PF_BALANCE_REUSEPORT)
            out[i] = ls->fds[i * ls->nslots + slot];
        else
            out[i] = ls->fds[i];
    }
    return ls->naddrs;
}

void pf_listeners_close(struct pf_listeners *ls)
{
    for (size_t i = 0; i < ls->nfds; i++)
        close(ls->fds[i]);
    free(ls->fds);
    ls->fds = NULL;
    ls->nfds = 0;
}
