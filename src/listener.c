#include "preforkd/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* Whether a socket file at path has a listener: connect() answers (or its queue is
 * full: EAGAIN on a non-blocking socket) for a live one, ECONNREFUSED for one whose
 * process is gone. 1 live, 0 stale, negative errno when it cannot be told. */
static int unix_live(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
    int rc = connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0 ? 1 : -errno;
    close(fd);
    if (rc == -EAGAIN)
        return 1;
    if (rc == -ECONNREFUSED)
        return 0;
    return rc;
}

/* A user's or group's id by its name; a name made of digits that names nobody is taken
 * as the id itself. */
static int name_to_id(const char *name, bool group, uint32_t *out)
{
    errno = 0;
    const struct passwd *pw = group ? NULL : getpwnam(name);
    const struct group *gr = group ? getgrnam(name) : NULL;
    if (pw || gr) {
        *out = pw ? (uint32_t)pw->pw_uid : (uint32_t)gr->gr_gid;
        return 0;
    }
    int e = errno;
    char *end;
    unsigned long long n = strtoull(name, &end, 10);
    if (end != name && !*end && n < UINT32_MAX) {
        *out = (uint32_t)n;
        return 0;
    }
    return e ? -e : -ENOENT;
}

/* The user and group named in the entry, as ids; -1 where none is named. */
static int resolve_owner(const struct pf_listen_addr *a, uid_t *uid, gid_t *gid, char *why,
                         size_t whylen)
{
    uint32_t id;
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    int rc = a->owner[0] ? name_to_id(a->owner, false, &id) : 0;
    if (rc < 0) {
        snprintf(why, whylen, " (no user '%s')", a->owner);
        return rc;
    }
    if (a->owner[0])
        *uid = (uid_t)id;
    rc = a->group[0] ? name_to_id(a->group, true, &id) : 0;
    if (rc < 0) {
        snprintf(why, whylen, " (no group '%s')", a->group);
        return rc;
    }
    if (a->group[0])
        *gid = (gid_t)id;
    return 0;
}

/* The entry's mode, owner and group, on the socket file at path. */
static int apply_perms(const char *path, const struct pf_listen_addr *a, uid_t uid, gid_t gid,
                       char *why, size_t whylen)
{
    int rc = 0;
    if (a->mode >= 0 && chmod(path, (mode_t)a->mode) < 0) {
        rc = -errno;
        snprintf(why, whylen, " (chmod %04o)", (unsigned)a->mode);
    } else if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0) {
        rc = -errno;
        snprintf(why, whylen, " (chown %s%s%s)", a->owner, a->group[0] ? ":" : "", a->group);
    }
    return rc;
}

/* A reload that keeps a unix address applies its mode, owner and group again, to the
 * file this process bound (not one that was inherited, or replaced since). */
static int reapply_perms(const struct pf_listen_addr *a, const struct pf_listener_addr *la,
                         char *why, size_t whylen)
{
    struct stat st;
    const char *path = ((const struct sockaddr_un *)&a->addr)->sun_path;
    if (!la->unix_owned || lstat(path, &st) < 0 || st.st_dev != la->dev || st.st_ino != la->ino)
        return 0;
    uid_t uid;
    gid_t gid;
    int rc = resolve_owner(a, &uid, &gid, why, whylen);
    return rc < 0 ? rc : apply_perms(path, a, uid, gid, why, whylen);
}

/* Binds a unix-domain socket at the entry's path: a stale socket file is replaced, a live
 * one or anything that is not a socket is an error. Mode and owner are set on the file
 * before listen(), so no client connects before they apply. Records the file's identity
 * in out for removing it at a final stop. */
static int open_unix(const struct pf_listen_addr *a, uint32_t backlog, struct pf_listener_addr *out,
                     char *why, size_t whylen)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&a->addr;
    const char *path = un->sun_path;
    uid_t uid;
    gid_t gid;
    int rc = resolve_owner(a, &uid, &gid, why, whylen);
    if (rc < 0)
        return rc;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(why, whylen, " (the path exists and is not a socket; it is left alone)");
            return -EEXIST;
        }
        rc = unix_live(path);
        if (rc < 0) {
            snprintf(why, whylen, " (cannot tell whether the socket file there is in use)");
            return rc;
        }
        if (rc > 0) {
            snprintf(why, whylen, " (a process is listening on that socket)");
            return -EADDRINUSE;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = -errno;
            snprintf(why, whylen, " (cannot remove the stale socket file there)");
            return rc;
        }
        pf_log_info("%s: replaced a stale socket file (nothing listened on it)", a->text);
    } else if (errno != ENOENT) {
        return -errno;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (const struct sockaddr *)&a->addr, a->addr_len) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    /* From here on the file is ours: on failure it goes with the socket. */
    rc = apply_perms(path, a, uid, gid, why, whylen);
    if (rc < 0)
        goto fail;
    if (lstat(path, &st) < 0 || listen(fd, (int)backlog) < 0) {
        rc = -errno;
        goto fail;
    }
    out->unix_owned = true;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    return fd;
fail:
    unlink(path);
    close(fd);
    return rc;
}

/* Removes a unix socket file this process bound, if the path is still that file: never
 * one another process has bound since, nor anything else put there. */
static void unlink_owned(const struct pf_listener_addr *a)
{
    struct stat st;
    const char *path = a->text + 5; /* "unix:" */
    if (!a->unix_owned || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != a->dev ||
        st.st_ino != a->ino)
        return;
    if (unlink(path) < 0 && errno != ENOENT)
        pf_log_warn("cannot remove the socket file %s: %s", path, strerror(errno));
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
    if (ss.ss_family == AF_UNIX)
        return 0;
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* "listening on 127.0.0.1:4400 (port 4400, reuseport)", "... unix:/run/x.sock (shared)". */
static void log_listening(const struct pf_listeners *ls, size_t i, const char *what,
                          const char *how)
{
    int port = pf_listeners_port(ls, i);
    const char *proxy = ls->addrs[i].proxy == PF_PROXY_V1   ? ", PROXY v1"
                        : ls->addrs[i].proxy == PF_PROXY_V2 ? ", PROXY v2"
                                                            : "";
    if (port > 0 || strncmp(ls->addrs[i].text, "unix:", 5) != 0)
        pf_log_info("listening on %s (port %d, %s%s)", what, port, how, proxy);
    else
        pf_log_info("listening on %s (%s%s)", what, how, proxy);
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
    ls->addrs = calloc(naddrs ? naddrs : 1, sizeof(*ls->addrs));
    if (!ls->fds || !ls->addrs) {
        free(ls->fds);
        free(ls->addrs);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ls->fds[i] = -1;
    ls->nfds = n;
    return 0;
}

/* The config entry a socket is bound to, found by its bound address; NULL if none. */
static const struct pf_listen_addr *entry_of(int fd, const struct pf_config *cfg)
{
    struct sockaddr_storage ss;
    socklen_t len = bound_addr(fd, &ss);
    for (size_t i = 0; len && i < cfg->nlisten; i++) {
        const struct pf_listen_addr *a = &cfg->listen[i];
        if (a->addr.ss_family != ss.ss_family)
            continue;
        if (ss.ss_family == AF_UNIX &&
            strcmp(((const struct sockaddr_un *)&ss)->sun_path,
                   ((const struct sockaddr_un *)&a->addr)->sun_path) == 0)
            return a;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *x = (const struct sockaddr_in *)&ss,
                                     *y = (const struct sockaddr_in *)&a->addr;
            if (x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr)
                return a;
        }
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&ss,
                                      *y = (const struct sockaddr_in6 *)&a->addr;
            if (x->sin6_port == y->sin6_port &&
                memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0)
                return a;
        }
    }
    return NULL;
}

/* Sockets passed by systemd: their proxy_protocol comes from the entry with their
 * address, if cfg has one. */
static void activated_proxy(struct pf_listeners *ls, size_t i, const struct pf_config *cfg)
{
    const struct pf_listen_addr *a = cfg ? entry_of(ls->fds[i], cfg) : NULL;
    ls->addrs[i].proxy = a ? a->proxy : PF_PROXY_OFF;
}

/* One address's sockets (one, or one per slot for reuseport), bound or shared with prev's
 * (same: its index there, or -1). */
static int open_addr(struct pf_listeners *ls, size_t i, const struct pf_config *cfg,
                     const struct pf_listeners *prev, ssize_t same, char *why, size_t whylen)
{
    const struct pf_listen_addr *a = &cfg->listen[i];
    bool reuseport = cfg->balance == PF_BALANCE_REUSEPORT;
    bool is_unix = pf_config_listen_is_unix(a);
    struct sockaddr_storage ss = a->addr;
    socklen_t sslen = a->addr_len;
    uint32_t nsock = reuseport ? ls->nslots : 1;
    if (is_unix && same >= 0) {
        int rc = reapply_perms(a, &ls->addrs[i], why, whylen);
        if (rc < 0)
            return rc;
    }
    for (uint32_t s = 0; s < nsock; s++) {
        int fd;
        if (same >= 0 && (!reuseport || s < prev->nslots)) {
            fd = fcntl(fd_at(prev, s, (size_t)same), F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                return -errno;
            /* listen() again applies a changed backlog. */
            if (listen(fd, (int)cfg->backlog) < 0) {
                int e = errno;
                close(fd);
                return -e;
            }
        } else if (is_unix && s > 0) {
            /* One socket per unix address: each slot gets a dup of it. */
            fd = fcntl(fd_at(ls, 0, i), F_DUPFD_CLOEXEC, 0);
            if (fd < 0)
                return -errno;
        } else if (is_unix) {
            fd = open_unix(a, cfg->backlog, &ls->addrs[i], why, whylen);
            if (fd < 0)
                return fd;
        } else {
            /* SO_REUSEPORT lets a second daemon of the same user join a port and
             * silently take part of its traffic; binding once without it first
             * turns that into a clear EADDRINUSE. */
            if (reuseport && same < 0 && s == 0) {
                int probe = open_one(&ss, sslen, 1, 0);
                if (probe < 0)
                    return probe;
                sslen = bound_addr(probe, &ss); /* fixes port 0 for the whole group */
                close(probe);
            } else if (same >= 0 && s > 0) {
                sslen = bound_addr(fd_at(ls, 0, i), &ss);
            }
            fd = open_one(&ss, sslen, cfg->backlog, reuseport);
            if (fd < 0)
                return fd;
            if (s == 0)
                sslen = bound_addr(fd, &ss);
        }
        ls->fds[reuseport ? s * ls->naddrs + i : i] = fd;
    }
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
                snprintf(err, errlen, "cannot share socket %s: %s", prev->addrs[i].text,
                         strerror(e));
                pf_listeners_close(ls);
                return -e;
            }
            ls->addrs[i] = prev->addrs[i];
            activated_proxy(ls, i, cfg);
        }
        return 0;
    }
    if (pf_listeners_alloc(ls, cfg->nlisten, nslots, cfg->balance) < 0)
        goto oom;
    ls->backlog = cfg->backlog;
    bool reuseport = cfg->balance == PF_BALANCE_REUSEPORT;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct pf_listen_addr *a = &cfg->listen[i];
        struct pf_listener_addr *la = &ls->addrs[i];
        snprintf(la->text, sizeof(la->text), "%s", a->text);
        la->proxy = a->proxy;
        /* The same address in the previous set: share its sockets (and its file). */
        ssize_t same = -1;
        for (size_t j = 0; prev && j < prev->naddrs; j++)
            if (strcmp(prev->addrs[j].text, a->text) == 0)
                same = (ssize_t)j;
        char why[160] = "";
        int rc;
        if (same >= 0 && prev->balance != cfg->balance) {
            snprintf(err, errlen, "balance cannot change while %s stays bound; restart instead",
                     a->text);
            rc = -EINVAL;
        } else {
            if (same >= 0) {
                la->unix_owned = prev->addrs[same].unix_owned;
                la->dev = prev->addrs[same].dev;
                la->ino = prev->addrs[same].ino;
            }
            rc = open_addr(ls, i, cfg, prev, same, why, sizeof(why));
            if (rc < 0)
                snprintf(err, errlen, "cannot listen on %s: %s%s", a->text, strerror(-rc), why);
        }
        if (rc < 0) {
            /* Files bound by this call go with it; shared ones stay with prev. */
            for (size_t k = 0; k <= i; k++) {
                bool shared = false;
                for (size_t j = 0; prev && j < prev->naddrs; j++)
                    shared |= strcmp(prev->addrs[j].text, ls->addrs[k].text) == 0;
                if (!shared)
                    unlink_owned(&ls->addrs[k]);
            }
            pf_listeners_close(ls);
            return rc;
        }
        if (same < 0)
            log_listening(ls, i, a->text,
                          reuseport && !pf_config_listen_is_unix(a) ? "reuseport" : "shared");
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

int pf_listeners_from_systemd(struct pf_listeners *ls, const struct pf_config *cfg, int n,
                              uint32_t nslots, char *err, size_t errlen)
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
        snprintf(ls->addrs[i].text, sizeof(ls->addrs[i].text), "systemd fd %d", fd);
        activated_proxy(ls, (size_t)i, cfg);
        char what[64];
        snprintf(what, sizeof(what), "socket fd %d from systemd", fd);
        log_listening(ls, (size_t)i, what, "shared");
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
            /* A unix address has one socket: the new slot shares it. */
            int fd = ss.ss_family == AF_UNIX ? fcntl(ls->fds[i], F_DUPFD_CLOEXEC, 0)
                                             : open_one(&ss, len, ls->backlog, 1);
            if (fd < 0 && ss.ss_family == AF_UNIX)
                fd = -errno;
            if (fd < 0) {
                snprintf(err, errlen, "cannot add a socket on %s: %s", ls->addrs[i].text,
                         strerror(-fd));
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
    /* A unix socket's connections do not pass a socket filter: removing its file is what
     * stops new ones (connect() then fails with ENOENT), while those queued are taken. */
    for (size_t i = 0; ls->addrs && i < ls->naddrs; i++)
        unlink_owned(&ls->addrs[i]);
    return rc;
}

void pf_listeners_close(struct pf_listeners *ls)
{
    for (size_t i = 0; i < ls->nfds; i++)
        if (ls->fds[i] >= 0)
            close(ls->fds[i]);
    free(ls->fds);
    free(ls->addrs);
    ls->fds = NULL;
    ls->addrs = NULL;
    ls->nfds = 0;
    ls->naddrs = 0;
}
