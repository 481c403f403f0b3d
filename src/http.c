#include "preforkd/http.h"

#include <string.h>

static struct pf_http *self(llhttp_t *p)
{
    return (struct pf_http *)p->data;
}

static int fail(struct pf_http *h, uint16_t status)
{
    h->error_status = status;
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    struct pf_http *h = self(p);
    h->in_message = true;
    h->target_len = 0;
    h->header_bytes = 0;
    h->header_count = 0;
    h->body_bytes = 0;
    h->raw_len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct pf_http *h = self(p);
    h->target_len += (uint32_t)len;
    if (h->target_len > h->limits->request_line)
        return fail(h, 414);
    size_t room = sizeof(h->raw) - h->raw_len;
    size_t n = len < room ? len : room;
    memcpy(h->raw + h->raw_len, at, n);
    h->raw_len += (uint16_t)n;
    return 0;
}

/* Turns the kept target into a routable path: absolute-form loses its scheme and
 * authority, and the query is dropped. */
static void extract_path(struct pf_http *h)
{
    const char *s = h->raw;
    size_t n = h->raw_len;
    bool truncated = h->target_len > h->raw_len;
    if (n >= 7 && (strncmp(s, "http://", 7) == 0 || (n >= 8 && strncmp(s, "https://", 8) == 0))) {
        size_t skip = s[4] == 's' ? 8 : 7;
        const char *slash = memchr(s + skip, '/', n - skip);
        if (slash) {
            n -= (size_t)(slash - s);
            s = slash;
        } else if (!truncated) {
            s = "/";
            n = 1;
        } else {
            n = 0;
        }
    }
    const char *q = memchr(s, '?', n);
    if (q) {
        n = (size_t)(q - s);
        truncated = false;
    }
    h->req.path_truncated = truncated;
    memmove(h->req.path, s, n);
    h->req.path_len = (uint16_t)n;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    struct pf_http *h = self(p);
    h->header_bytes += (uint32_t)len;
    return h->header_bytes > h->limits->header_block ? fail(h, 431) : 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    /* ": " and CRLF count too, as they do for every server's header buffer. */
    h->header_bytes += 4;
    if (++h->header_count > h->limits->headers || h->header_bytes > h->limits->header_block)
        return fail(h, 431);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    struct pf_http *h = self(p);
    h->header_bytes += (uint32_t)len;
    return h->header_bytes > h->limits->header_block ? fail(h, 431) : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    if (p->http_major != 1)
        return fail(h, 505);
    if (p->content_length > h->limits->body && (p->flags & F_CONTENT_LENGTH))
        return fail(h, 413);
    extract_path(h);
    switch (p->method) {
    case HTTP_GET:
        h->req.method = PF_METHOD_GET;
        break;
    case HTTP_HEAD:
        h->req.method = PF_METHOD_HEAD;
        break;
    default:
        h->req.method = PF_METHOD_OTHER;
    }
    h->req.http_minor = p->http_minor;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    (void)at;
    struct pf_http *h = self(p);
    h->body_bytes += len;
    return h->body_bytes > h->limits->body ? fail(h, 413) : 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    h->in_message = false;
    /* After an upgrade or CONNECT the bytes that follow are not HTTP: answer, then close. */
    h->req.keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void pf_http_init(struct pf_http *h, const struct pf_limits *limits)
{
    memset(h, 0, sizeof(*h));
    h->limits = limits;
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    h->parser.data = h;
}

static uint16_t status_for(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION:
        return 505;
    default:
        return 400;
    }
}

enum pf_http_result pf_http_feed(struct pf_http *h, const char *data, size_t len, size_t *used)
{
    if (h->error_status) {
        *used = 0;
        return PF_HTTP_ERROR;
    }
    llhttp_errno_t e = llhttp_execute(&h->parser, data, len);
    switch (e) {
    case HPE_OK:
        *used = len;
        return PF_HTTP_NEED_MORE;
    case HPE_PAUSED:
        *used = (size_t)(llhttp_get_error_pos(&h->parser) - data);
        llhttp_resume(&h->parser);
        return PF_HTTP_REQUEST;
    case HPE_PAUSED_UPGRADE:
        /* Reached only once the upgrade request was answered and the connection is
         * marked to close; nothing after it is parsed. */
        *used = len;
        return PF_HTTP_NEED_MORE;
    default:
        *used = len;
        if (!h->error_status)
            h->error_status = status_for(e);
        return PF_HTTP_ERROR;
    }
}
