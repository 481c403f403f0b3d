#include "preforkd/handover.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "from=P;ready=F;scoreboard=F;counters=F;balance=B;activated=A;slots=N;addrs=N;
 *  fds=F,F,...;files=-,D:I,...;texts=T\x1fT..." -- files: per address, the device and
 * inode of a unix socket file the old primary bound ("-": none), so that the new one
 * removes it at its final stop as the old one would have; the texts last: an address
 * may hold any byte but NUL and the separator. */
char *pf_handover_encode(const struct pf_handover *h)
{
    const struct pf_listeners *ls = &h->ls;
    size_t cap = 256 + ls->nfds * 12 + ls->naddrs * (sizeof(ls->addrs[0].text) + 48);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = (size_t)snprintf(out, cap,
                                "from=%d;ready=%d;scoreboard=%d;counters=%d;balance=%s;"
                                "activated=%d;slots=%u;addrs=%zu;fds=",
                                (int)h->from, h->ready_fd, h->scoreboard_fd, h->counters_fd,
                                ls->balance == PF_BALANCE_REUSEPORT ? "reuseport" : "shared",
                                ls->activated ? 1 : 0, ls->nslots, ls->naddrs);
    for (size_t i = 0; i < ls->nfds && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? "," : "", ls->fds[i]);
    n += (size_t)snprintf(out + n, cap - n, ";files=");
    for (size_t i = 0; i < ls->naddrs && n < cap; i++) {
        const struct pf_listener_addr *a = &ls->addrs[i];
        if (a->unix_owned)
            n += (size_t)snprintf(out + n, cap - n, "%s%ju:%ju", i ? "," : "", (uintmax_t)a->dev,
                                  (uintmax_t)a->ino);
        else
            n += (size_t)snprintf(out + n, cap - n, "%s-", i ? "," : "");
    }
    n += (size_t)snprintf(out + n, cap - n, ";texts=");
    for (size_t i = 0; i < ls->naddrs && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "\x1f" : "", ls->addrs[i].text);
    if (n >= cap) {
        free(out);
        return NULL;
    }
    return out;
}

static int field(const char **p, const char *name, long *v)
{
    size_t n = strlen(name);
    if (strncmp(*p, name, n) != 0 || (*p)[n] != '=')
        return -EINVAL;
    char *end;
    errno = 0;
    *v = strtol(*p + n + 1, &end, 10);
    if (errno || end == *p + n + 1 || *end != ';')
        return -EINVAL;
    *p = end + 1;
    return 0;
}

int pf_handover_decode(const char *text, struct pf_handover *h)
{
    *h = (struct pf_handover){.ready_fd = -1, .scoreboard_fd = -1, .counters_fd = -1};
    const char *p = text;
    long from, ready, sb, counters, activated, slots, addrs;
    if (field(&p, "from", &from) || field(&p, "ready", &ready) || field(&p, "scoreboard", &sb) ||
        field(&p, "counters", &counters))
        return -EINVAL;
    enum pf_balance balance;
    if (strncmp(p, "balance=reuseport;", 18) == 0) {
        balance = PF_BALANCE_REUSEPORT;
        p += 18;
    } else if (strncmp(p, "balance=shared;", 15) == 0) {
        balance = PF_BALANCE_SHARED;
        p += 15;
    } else {
        return -EINVAL;
    }
    if (field(&p, "activated", &activated) || field(&p, "slots", &slots) ||
        field(&p, "addrs", &addrs) || from <= 0 || slots < 1 || slots > PF_MAX_WORKERS ||
        addrs < 1 || addrs > PF_MAX_LISTEN)
        return -EINVAL;
    if (strncmp(p, "fds=", 4) != 0)
        return -EINVAL;
    p += 4;
    if (pf_listeners_alloc(&h->ls, (size_t)addrs, (uint32_t)slots, balance) < 0)
        return -ENOMEM;
    h->ls.activated = activated != 0;
    for (size_t i = 0; i < h->ls.nfds; i++) {
        char *end;
        long fd = strtol(p, &end, 10);
        char want = i + 1 < h->ls.nfds ? ',' : ';';
        if (end == p || *end != want || fd < 0 || fd > 1 << 20)
            goto bad;
        h->ls.fds[i] = (int)fd;
        p = end + 1;
    }
    if (strncmp(p, "files=", 6) != 0)
        goto bad;
    p += 6;
    for (size_t i = 0; i < h->ls.naddrs; i++) {
        char want = i + 1 < h->ls.naddrs ? ',' : ';';
        struct pf_listener_addr *a = &h->ls.addrs[i];
        if (*p == '-') {
            p++;
        } else {
            char *end;
            errno = 0;
            uintmax_t dev = strtoumax(p, &end, 10);
            if (errno || end == p || *end != ':')
                goto bad;
            p = end + 1;
            uintmax_t ino = strtoumax(p, &end, 10);
            if (errno || end == p)
                goto bad;
            p = end;
            a->unix_owned = true;
            a->dev = (dev_t)dev;
            a->ino = (ino_t)ino;
        }
        if (*p != want)
            goto bad;
        p++;
    }
    if (strncmp(p, "texts=", 6) != 0)
        goto bad;
    p += 6;
    for (size_t i = 0; i < h->ls.naddrs; i++) {
        const char *sep = strchr(p, '\x1f');
        size_t n = sep ? (size_t)(sep - p) : strlen(p);
        char *dst = h->ls.addrs[i].text;
        if (n == 0 || n >= sizeof(h->ls.addrs[i].text) || (i + 1 < h->ls.naddrs) != (sep != NULL))
            goto bad;
        memcpy(dst, p, n);
        dst[n] = '\0';
        p += n + (sep ? 1 : 0);
    }
    h->from = (pid_t)from;
    h->ready_fd = (int)ready;
    h->scoreboard_fd = (int)sb;
    h->counters_fd = (int)counters;
    return 0;
bad:
    /* The descriptors are not ours to close on a malformed description. */
    for (size_t i = 0; i < h->ls.nfds; i++)
        h->ls.fds[i] = -1;
    pf_listeners_close(&h->ls);
    return -EINVAL;
}
