#ifndef PREFORKD_HTTP_H
#define PREFORKD_HTTP_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "preforkd/config.h"

/* Only the first bytes of the target are kept: enough to route, and any longer path is
 * unknown anyway. Its full length is still counted against limits.request_line. */
#define PF_HTTP_PATH_MAX 64

enum pf_method { PF_METHOD_GET, PF_METHOD_HEAD, PF_METHOD_OPTIONS, PF_METHOD_OTHER };

struct pf_request {
    enum pf_method method;
    uint8_t http_minor; /* major is always 1 by the time a request is complete */
    bool keep_alive;
    bool path_truncated;
    uint16_t path_len;
    char path[PF_HTTP_PATH_MAX]; /* request target up to '?', origin-form; or "*" */
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
    uint16_t raw_len;
    char raw[PF_HTTP_PATH_MAX];
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

void pf_http_init(struct pf_http *h, const struct pf_limits *limits);

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
