#include "preforkd/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

static const char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A port: 1 to 5 digits, no leading zero (the spec's "0" aside), at most 65535. */
static bool parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Splits "a b c d" (single spaces) into exactly four fields. */
static bool fields4(const char *s, size_t n, const char *f[4], size_t flen[4])
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        if (k == 4 || i == start)
            return false;
        f[k] = s + start;
        flen[k++] = i - start;
        start = i + 1;
    }
    return k == 4;
}

static int parse_v1(const char *buf, size_t len, struct pf_proxy_addr *out)
{
    static const char prefix[] = "PROXY ";
    size_t cmp = len < 6 ? len : 6;
    if (memcmp(buf, prefix, cmp) != 0)
        return -EINVAL;
    const char *end = NULL;
    for (size_t i = 0; i + 1 < len && i + 2 <= PF_PROXY_V1_MAX; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n') {
            end = buf + i;
            break;
        }
        if (buf[i] == '\r' || buf[i] == '\n' || buf[i] == '\0')
            return -EINVAL;
    }
    if (!end) {
        if (len >= PF_PROXY_V1_MAX || (len > 0 && buf[len - 1] != '\r' && memchr(buf, '\n', len)))
            return -EINVAL;
        return 0;
    }
    size_t total = (size_t)(end - buf) + 2;
    const char *p = buf + 6;
    size_t n = (size_t)(end - p);
    *out = (struct pf_proxy_addr){0};
    /* "UNKNOWN" may be followed by anything up to the CRLF; the peer address stays. */
    if (n >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (n == 7 || p[7] == ' '))
        return (int)total;
    int family;
    if (n > 5 && memcmp(p, "TCP4 ", 5) == 0)
        family = AF_INET;
    else if (n > 5 && memcmp(p, "TCP6 ", 5) == 0)
        family = AF_INET6;
    else
        return -EINVAL;
    const char *f[4];
    size_t fl[4];
    if (!fields4(p + 5, n - 5, f, fl))
        return -EINVAL;
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    if (fl[0] >= sizeof(src) || fl[1] >= sizeof(dst))
        return -EINVAL;
    memcpy(src, f[0], fl[0]);
    src[fl[0]] = '\0';
    memcpy(dst, f[1], fl[1]);
    dst[fl[1]] = '\0';
    uint16_t sport, dport;
    if (!parse_port(f[2], fl[2], &sport) || !parse_port(f[3], fl[3], &dport))
        return -EINVAL;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->src;
        struct in_addr d;
        if (inet_pton(AF_INET, src, &a->sin_addr) != 1 || inet_pton(AF_INET, dst, &d) != 1)
            return -EINVAL;
        a->sin_family = AF_INET;
        a->sin_port = htons(sport);
        out->src_len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->src;
        struct in6_addr d;
        if (inet_pton(AF_INET6, src, &a->sin6_addr) != 1 || inet_pton(AF_INET6, dst, &d) != 1)
            return -EINVAL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(sport);
        out->src_len = sizeof(*a);
    }
    out->known = true;
    return (int)total;
}

static int parse_v2(const char *buf, size_t len, struct pf_proxy_addr *out)
{
    size_t cmp = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, cmp) != 0)
        return -EINVAL;
    if (len < 16)
        return 0;
    const uint8_t *b = (const uint8_t *)buf;
    uint8_t version = b[12] >> 4, command = b[12] & 0x0f;
    if (version != 2 || command > 1)
        return -EINVAL;
    size_t body = (size_t)b[14] << 8 | b[15];
    size_t total = 16 + body;
    if (total > PF_PROXY_V2_MAX)
        return -EINVAL;
    uint8_t family = b[13] >> 4, transport = b[13] & 0x0f;
    if (family > 3 || transport > 2)
        return -EINVAL;
    /* The address block must be there whole before anything is taken from it. */
    size_t need = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
    if (body < need)
        return -EINVAL;
    if (len < total)
        return 0;
    *out = (struct pf_proxy_addr){0};
    /* LOCAL (the balancer's own health check) and anything but TCP keep the peer. */
    if (command == 0 || transport != 1 || (family != 1 && family != 2))
        return (int)total;
    const uint8_t *a = b + 16;
    if (family == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&s->sin_port, a + 8, 2);
        out->src_len = sizeof(*s);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        s->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        out->src_len = sizeof(*s);
    }
    out->known = true;
    return (int)total;
}

int pf_proxy_parse(enum pf_proxy_version v, const char *buf, size_t len, struct pf_proxy_addr *out)
{
    switch (v) {
    case PF_PROXY_V1:
        return parse_v1(buf, len, out);
    case PF_PROXY_V2:
        return parse_v2(buf, len, out);
    default:
        return -EINVAL;
    }
}
