#ifndef PREFORKD_RESPONSE_H
#define PREFORKD_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "preforkd/buf.h"
#include "preforkd/clock.h"

/* Upper bound of any response this server writes; a connection makes sure this much
 * room is free before it builds one. */
#define PF_RESPONSE_MAX 2048

enum {
    PF_RESP_HEAD = 1 << 0,      /* HEAD: headers only, Content-Length of the would-be body */
    PF_RESP_CLOSE = 1 << 1,     /* the connection closes after this response */
    PF_RESP_KEEPALIVE = 1 << 2, /* HTTP/1.0 client asked to keep the connection */
    PF_RESP_ALLOW_GET = 1 << 3, /* 405: advertise the methods that work */
};

/* The fixed header blocks a response starts with, after its status line. */
enum pf_header_block {
    PF_BLOCK_JSON,          /* a JSON body */
    PF_BLOCK_JSON_NO_STORE, /* a JSON body about this moment (/health): no cache stores it */
    PF_BLOCK_PROMETHEUS,    /* Prometheus' text format, not stored either */
    PF_BLOCK_EMPTY,         /* no content, or a Content-Type the handler sets */
    PF_BLOCK_NO_STORE,      /* the same, not stored by caches */
    PF_BLOCK_COUNT
};

/* Every header block, built once a second for its Date (never per response). */
struct pf_response_cache {
    time_t sec;
    struct {
        size_t len;
        char text[200];
    } block[PF_BLOCK_COUNT];
};

void pf_response_cache_tick(struct pf_response_cache *rc, time_t now);
const char *pf_response_reason(uint16_t status);
void pf_response_write(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                       enum pf_header_block block, const char *body, size_t body_len,
                       unsigned flags);
/* Statuses sent without a body or Content-Length: 1xx, 204, 304. */
bool pf_response_bodyless(uint16_t status);
/* The status line and header fields of any answer: the cached block (Server, Date,
 * Content-Type per block), Content-Length (body_len; none when bodyless), the handler's
 * fields ("\r\nName: value" each), Allow (methods as 1 << enum pf_method) and
 * Connection; then the blank line. */
void pf_response_head(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                      enum pf_header_block block, uint64_t body_len, unsigned flags, unsigned allow,
                      const char *fields, size_t fields_len);
/* The interim answer to Expect: 100-continue. */
void pf_response_write_continue(struct pf_buf *out);
/* Status line and headers only, for a body sent from elsewhere. */
void pf_response_write_head(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                            enum pf_header_block block, size_t body_len, unsigned flags);

#endif
