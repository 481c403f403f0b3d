#ifndef PREFORKD_HTTP_H
#define PREFORKD_HTTP_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"

enum pf_method {
    PF_METHOD_GET,
    PF_METHOD_HEAD,
    PF_METHOD_OPTIONS,
    PF_METHOD_POST,
    PF_METHOD_PUT,
    PF_METHOD_DELETE,
    PF_METHOD_PATCH,
    PF_METHOD_OTHER, /* any other method llhttp knows */
    PF_METHOD_COUNT
};

/* A request as the router and the handlers see it. The views point into the parser's
 * store and stay valid until the next request starts on the connection. */
struct pf_request {
    enum pf_method method;
    uint8_t http_minor; /* major is always 1 by the time a request is complete */
    bool keep_alive;
    const char *method_name; /* "GET", as llhttp names it */
    const char *target;      /* the request-target as sent */
    uint32_t target_len;
    const char *path; /* origin-form path up to '?' (absolute-form: its path part), or "*" */
    uint32_t path_len;
    const char *query; /* after '?', as sent */
    uint32_t query_len;
    uint32_t nfields; /* header fields kept (when the route asked for them) */
    /* What the route callback decided: a route, its status (200, 404, 405) and the
     * methods to advertise. */
    const void *route;
    uint16_t route_status;
    unsigned route_allow;
};

/* Called once the request-target is complete (the method is known too): routes the
 * request (setting req->route) and returns what its handler will read, so that the
 * parser keeps only that. */
enum { PF_HTTP_KEEP_FIELDS = 1 << 0, PF_HTTP_KEEP_BODY = 1 << 1 };
typedef unsigned (*pf_http_route_fn)(void *ctx, struct pf_request *req);

/* Where a kept header field lies in the store. */
struct pf_http_span {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

enum pf_http_result {
    PF_HTTP_NEED_MORE, /* all input consumed, no complete request yet */
    PF_HTTP_REQUEST,   /* a request is complete in http->req */
    PF_HTTP_ERROR,     /* unusable input: answer http->error_status and close */
    /* The head of a request with "Expect: 100-continue" and a body to come is complete in
     * http->req: answer 100 Continue and feed on, or answer the final status now and
     * close (RFC 9110 10.1.1). */
    PF_HTTP_CONTINUE,
};

struct pf_http {
    llhttp_t parser;
    const struct pf_limits *limits;
    uint32_t target_len;
    uint32_t header_bytes;
    uint32_t header_count;
    uint64_t body_bytes;
    uint16_t error_status;
    bool in_message;
    bool in_body; /* the head is complete; the body (if any) is being read */
    struct pf_request req;
    /* The request's bytes for its handler, in buffers the connection reuses (they grow
     * to the limits at most, and are not freed between requests): the target, then the
     * header fields when kept; the body when kept. */
    char *store;
    uint32_t store_len, store_cap;
    struct pf_http_span *fields;
    uint32_t fields_cap;
    char *body;
    uint64_t body_len, body_cap;
    unsigned keep; /* PF_HTTP_KEEP_* for the request being read */
    bool in_field; /* the last header callback was a value: the next name is a new field */
    uint32_t path_off, query_off;
    pf_http_route_fn route;
    void *route_ctx;
    /* Framing rules llhttp leaves to us (RFC 9112: one request, one meaning). */
    uint8_t host_count;
    uint8_t te_count;
    bool te_coding; /* the Transfer-Encoding value holds more than spaces and tabs */
    /* Expect = #expectation: the list element being read, and what the list holds. */
    uint8_t expect_len; /* its bytes, spaces and tabs inside or after it excepted */
    bool expect_match;  /* every byte so far matches "100-continue" */
    bool expect_after;  /* a space or tab came after its first byte */
    bool expect_continue;
    bool expect_unknown;
    bool head_paused;   /* paused at the end of the head for PF_HTTP_CONTINUE */
    uint8_t host_state; /* where the check of the Host value stands */
    uint8_t host_ip_len;
    char host_ip[46]; /* an IPv6 literal's text, for inet_pton (INET6_ADDRSTRLEN) */
    uint8_t field;    /* enum pf_http_field of the field being read */
    uint8_t name_len;
    char name[20]; /* lower-cased start of the header field being read */
    /* The head scanner's state: it rejects bare LF, bare CR and obs-fold, which llhttp
     * 8 tolerates in places. */
    bool scan_body;
    bool scan_line_start;
    uint8_t scan_prev;
    uint32_t scan_lines;
    uint32_t scan_line_len;
    uint32_t scan_part_len; /* bytes of the request-line part being read */
    uint8_t scan_spaces;    /* in the request line: exactly two, single ones */
    bool has_version;       /* the request-line had an HTTP-version */
    uint8_t scan_major;     /* its major version digit */
    bool judging;           /* llhttp refused the method: the scanner reads on to judge */
    /* For the access log (only when capture is set): bounded copies of two fields. */
    bool capture;
    char *capture_into;
    uint8_t *capture_len;
    uint8_t referer_len;
    uint8_t user_agent_len;
    char referer[120];
    char user_agent[120];
};

/* Starts a parser. route (may be NULL: nothing is kept beyond the target) is called for
 * every request once its target is complete. The parser's buffers are freed by
 * pf_http_free. */
void pf_http_init(struct pf_http *h, const struct pf_limits *limits, pf_http_route_fn route,
                  void *route_ctx);
/* The same for a new connection on a parser used before: its buffers are reused. */
void pf_http_reuse(struct pf_http *h, const struct pf_limits *limits, pf_http_route_fn route,
                   void *route_ctx);
/* Frees the reused buffers (when the connection's memory is given back). */
void pf_http_free(struct pf_http *h);
/* Gives back a kept body buffer larger than keep bytes (between connections). */
void pf_http_trim(struct pf_http *h, uint64_t keep);
/* A kept header field, i < req.nfields. */
void pf_http_field(const struct pf_http *h, uint32_t i, const char **name, uint32_t *name_len,
                   const char **value, uint32_t *value_len);

/* Parses up to one request from data. *used says how many bytes were consumed: on
 * PF_HTTP_REQUEST the bytes up to the end of that request, so the caller feeds the rest
 * again for the next pipelined one. After PF_HTTP_ERROR the parser stays in error. */
enum pf_http_result pf_http_feed(struct pf_http *h, const char *data, size_t len, size_t *used);

/* True between requests: nothing of the next request has arrived yet. */
static inline bool pf_http_idle(const struct pf_http *h)
{
    return !h->in_message;
}

#endif
