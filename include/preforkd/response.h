#ifndef PREFORKD_RESPONSE_H
#define PREFORKD_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "preforkd/buf.h"
#include "preforkd/clock.h"

/* Upper bound of any response this server writes; a connection makes sure this much
 * room is free before it builds one. */
#define PF_RESPONSE_MAX 1024

enum {
    PF_RESP_HEAD = 1 << 0,      /* HEAD: headers only, Content-Length of the would-be body */
    PF_RESP_CLOSE = 1 << 1,     /* the connection closes after this response */
    PF_RESP_KEEPALIVE = 1 << 2, /* HTTP/1.0 client asked to keep the connection */
    PF_RESP_ALLOW_GET = 1 << 3, /* 405: advertise the methods that work */
};

/* The header block common to every response, rebuilt once a second for its Date:
 * with the JSON content type, and with Prometheus' text format. */
struct pf_response_cache {
    time_t sec;
    size_t common_len;
    char common[160];
    size_t prom_len;
    char prom[200];
};

enum pf_content { PF_CONTENT_JSON, PF_CONTENT_PROMETHEUS };

void pf_response_cache_tick(struct pf_response_cache *rc, time_t now);
const char *pf_response_reason(uint16_t status);
void pf_response_write(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                       const char *body, size_t body_len, unsigned flags);
/* Status line and headers only, for a body sent from elsewhere. */
void pf_response_write_head(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                            size_t body_len, unsigned flags, enum pf_content content);

#endif
