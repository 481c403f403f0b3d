#include "preforkd/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/log.h"

static int open_one(const struct sockaddr_storage *addr, socklen_t len, uint32_t backlog,
                    int reuseport)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (addr->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (bind(fd, (const struct sockaddr *)addr, len) < 0)
        goto fail;
    if (listen(fd, (int)backlog) < 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}

static int fd_at(const struct pf_listeners *ls, uint32_t slot, size_t addr)
{
    return ls->balance == PF_BALANCE_REUSEPORT ? ls->fds[slot * ls->naddrs + addr] : ls->fds[addr];
}

/* The address a socket is bound to, for binding a slot's socket to the same place
 * (with port 0 the kernel chose the port once). */
static socklen_t bound_addr(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);
    if (getsockname(fd, (struct sockaddr *)ss, &len) < 0)
        return 0;
    return len;
}

int pf_listeners_port(const struct pf_listeners *ls, size_t i)
{
    struct sockaddr_storage ss;
    if (i >= ls->naddrs || !bound_addr(fd_at(ls, 0, i), &ss))
        return -1;
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int pf_listeners_alloc(struct pf_listeners *ls, size_t naddrs, uint32_t nslots,
                       enum pf_balance balance)
{
    memset(ls, 0, sizeof(*ls));
    ls->naddrs = naddrs;
    ls->nslots = nslots;
    ls->balance = balance;
    size_t n = balance == PF_BALANCE_REUSEPORT ? naddrs * nslots : naddrs;
    ls->fds = malloc(sizeof(int) * (n ? n : 1));
    ls->texts = calloc(naddrs ? naddrs : 1, sizeof(*ls->texts));
    if (!ls->fds || !ls->texts) {
        free(ls->fds);
        free(ls->texts);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ls->fds[i] = -1;
    ls->nfds = n;
    return 0;
}

int pf_listeners_open(struct pf_listeners *ls, const struct pf_config *cfg, uint32_t nslots,
                      const struct pf_listeners *prev, char *err, size_t errlen)
{
    if (prev && prev->activated) {
        /* Sockets from systemd stay what they are across reloads. */
        if (pf_listeners_alloc(ls, prev->naddrs, nslots, prev->balance) < 0)
            goto oom;
        ls->activated = true;
        for (size_t i = 0; i < prev->naddrs; i++) {
            ls->fds[i] = fcntl(prev->fds[i], F_DUPFD_CLOEXEC, 0);
            if (ls->fds[i] < 0) {
                int e = errno;
                snprintf(err, errlen, "cannot share socket %s: %s", prev->texts[i], strerror(e));
                pf_listeners_close(ls);
                return -e;
            }
            memcpy(ls->texts[i], prev->texts[i], sizeof(ls->texts[i]));
        }
        return 0;
    }
    if (pf_listeners_alloc(ls, cfg->nlisten, nslots, cfg->balance) < 0)
        goto oom;
    ls->backlog = cfg->backlog;
    int rc = 0;
    bool reuseport = cfg->balance == PF_BALANCE_REUSEPORT;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct pf_listen_addr *a = &cfg->listen[i];
        snprintf(ls->texts[i], sizeof(ls->texts[i]), "%s", a->text);
        /* The same address in the previous set: share its sockets. */
        ssize_t same = -1;
        for (size_t j = 0; prev && j < prev->naddrs; j++)
            if (strcmp(prev->texts[j], a->text) == 0)
                same = (ssize_t)j;
        if (same >= 0 && prev->balance != cfg->balance) {
            snprintf(err, errlen, "balance cannot change while %s stays bound; restart instead",
                     a->text);
            rc = -EINVAL;
            goto fail;
        }
        struct sockaddr_storage ss = a->addr;
        socklen_t sslen = a->addr_len;
        uint32_t nsock = reuseport ? nslots : 1;
        for (uint32_t s = 0; s < nsock; s++) {
            int fd;
            if (same >= 0 && (!reuseport || s < prev->nslots)) {
                fd = fcntl(fd_at(prev, s, (size_t)same), F_DUPFD_CLOEXEC, 0);
                if (fd < 0) {
                    rc = -errno;
                    goto fail;
                }
                /* listen() again applies a changed backlog. */
                if (listen(fd, (int)cfg->backlog) < 0) {
                    rc = -errno;
                    close(fd);
                    goto fail;
                }
            } else {
                /* SO_REUSEPORT lets a second daemon of the same user join a port and
                 * silently take part of its traffic; binding once without it first
                 * turns that into a clear EADDRINUSE. */
                if (reuseport && same < 0 && s == 0) {
                    int probe = open_one(&ss, sslen, 1, 0);
                    if (probe < 0) {
                        rc = probe;
                        goto fail;
                    }
                    sslen = bound_addr(probe, &ss); /* fixes port 0 for the whole group */
                    close(probe);
                } else if (same >= 0 && s > 0) {
                    sslen = bound_addr(fd_at(ls, 0, i), &ss);
                }
                fd = open_one(&ss, sslen, cfg->backlog, reuseport);
                if (fd < 0) {
                    rc = fd;
                    goto fail;
                }
                if (s == 0)
                    sslen = bound_addr(fd, &ss);
            }
            ls->fds[reuseport ? s * ls->naddrs + i : i] = fd;
        }
        if (same < 0)
            pf_log_info("listening on %s (port %d, %s)", a->text, pf_listeners_port(ls, i),
                        reuseport ? "reuseport" : "shared");
        continue;
    fail:
        snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(-rc));
        pf_listeners_close(ls);
        return rc;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

int pf_listeners_from_systemd(struct pf_listeners *ls, int n, uint32_t nslots, char *err,
                              size_t errlen)
{
    if (n == 0)
        return 0;
    if (n < 0 || n > PF_MAX_LISTEN) {
        snprintf(err, errlen, "LISTEN_FDS=%d: expected 1 to %d sockets", n, PF_MAX_LISTEN);
        return -EINVAL;
    }
    /* One socket per address, shared by all workers: systemd binds it once. */
    if (pf_listeners_alloc(ls, (size_t)n, nslots, PF_BALANCE_SHARED) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ls->activated = true;
    for (int i = 0; i < n; i++) {
        int fd = 3 + i;
        int type = 0;
        socklen_t tl = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
            snprintf(err, errlen, "LISTEN_FDS: fd %d is not a stream socket", fd);
            pf_listeners_close(ls);
            return -EINVAL;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        ls->fds[i] = fd;
        snprintf(ls->texts[i], sizeof(ls->texts[i]), "systemd fd %d", fd);
        pf_log_info("listening on socket fd %d from systemd (port %d, shared)", fd,
                    pf_listeners_port(ls, (size_t)i));
    }
    return 1;
}

int pf_listeners_set_slots(struct pf_listeners *ls, uint32_t nslots, char *err, size_t errlen)
{
    if (ls->balance != PF_BALANCE_REUSEPORT) {
        ls->nslots = nslots;
        return 0;
    }
    size_t n = (size_t)nslots * ls->naddrs;
    if (nslots < ls->nslots) {
        for (size_t k = n; k < ls->nfds; k++)
            close(ls->fds[k]);
        ls->nfds = n;
        ls->nslots = nslots;
        return 0;
    }
    int *fds = realloc(ls->fds, sizeof(int) * (n ? n : 1));
    if (!fds) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ls->fds = fds;
    for (uint32_t s = ls->nslots; s < nslots; s++) {
        for (size_t i = 0; i < ls->naddrs; i++) {
            struct sockaddr_storage ss;
            socklen_t len = bound_addr(ls->fds[i], &ss);
            int fd = open_one(&ss, len, ls->backlog, 1);
            if (fd < 0) {
                snprintf(err, errlen, "cannot add a socket on %s: %s", ls->texts[i], strerror(-fd));
                return fd;
            }
            ls->fds[ls->nfds++] = fd;
        }
        ls->nslots = s + 1;
    }
    return 0;
}

size_t pf_listeners_for_slot(const struct pf_listeners *ls, uint32_t slot, int *out)
{
    for (size_t i = 0; i < ls->naddrs; i++)
        out[i] = fd_at(ls, slot, i);
    return ls->naddrs;
}

int pf_listeners_refuse_new(const struct pf_listeners *ls)
{
    /* Sockets systemd passed stay as they are: systemd keeps them and queues
     * connections for the next start, which is what socket activation is for. */
    if (ls->activated)
        return 0;
    /* A one-instruction classic BPF program, "return 0": every packet that would reach
     * the listening socket (a SYN, or the last ACK of a handshake) is dropped, so no
     * new connection can join an accept queue, while connections already queued are
     * sockets of their own and unaffected. The client retries its SYN, and by then the
     * socket is closed and the kernel refuses it. */
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    const struct sock_fprog prog = {.len = 1, .filter = drop_all};
    int rc = 0;
    for (size_t i = 0; i < ls->nfds; i++)
        if (ls->fds[i] >= 0 &&
            setsockopt(ls->fds[i], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
            rc = -errno;
    return rc;
}

void pf_listeners_close(struct pf_listeners *ls)
{
    for (size_t i = 0; i < ls->nfds; i++)
        if (ls->fds[i] >= 0)
            close(ls->fds[i]);
    free(ls->fds);
    free(ls->texts);
    ls->fds = NULL;
    ls->texts = NULL;
    ls->nfds = 0;
}
