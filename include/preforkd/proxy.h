#ifndef PREFORKD_PROXY_H
#define PREFORKD_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer
 * sends before the first request, carrying the client's address. A parser with no
 * state and no descriptors: it is handed the bytes read so far. */
enum pf_proxy_version { PF_PROXY_OFF, PF_PROXY_V1, PF_PROXY_V2 };

/* The longest header we take: v1 is at most 107 bytes by the spec; v2 carries optional
 * TLVs, bounded here so that a header always fits one read buffer. */
#define PF_PROXY_V1_MAX 107
#define PF_PROXY_V2_MAX 1024

struct pf_proxy_addr {
    bool known; /* false: LOCAL, UNKNOWN or UNSPEC (a health check): keep the peer */
    struct sockaddr_storage src;
    socklen_t src_len;
};

/* > 0: a complete, valid header of that many bytes (out filled); 0: a valid prefix,
 * more bytes needed; -EINVAL: not a header of that version, or a malformed one. */
int pf_proxy_parse(enum pf_proxy_version v, const char *buf, size_t len, struct pf_proxy_addr *out);

#endif
