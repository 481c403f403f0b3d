#include "preforkd/http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
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

/* RFC 9110 tchar: what a field name may consist of. No space, tab, ':' or control. */
static const char tchar_extra[] = "!#$%&'*+-.^_`|~";

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c && strchr(tchar_extra, c));
}

/* The header fields the glue looks at, by their lower-case names. */
enum pf_http_field {
    PF_FIELD_OTHER,
    PF_FIELD_HOST,
    PF_FIELD_TRANSFER_ENCODING,
    PF_FIELD_EXPECT,
    PF_FIELD_REFERER,
    PF_FIELD_USER_AGENT,
    PF_FIELD_COUNT
};

/* clang-format off */
#define FIELD_NAME(s) {s, sizeof(s) - 1}
/* clang-format on */
static const struct {
    const char *name;
    uint8_t len;
} field_names[PF_FIELD_COUNT] = {
    [PF_FIELD_HOST] = FIELD_NAME("host"),
    [PF_FIELD_TRANSFER_ENCODING] = FIELD_NAME("transfer-encoding"),
    [PF_FIELD_EXPECT] = FIELD_NAME("expect"),
    [PF_FIELD_REFERER] = FIELD_NAME("referer"),
    [PF_FIELD_USER_AGENT] = FIELD_NAME("user-agent"),
};

/* The Host value's check, a byte at a time since a value can arrive in pieces. Host =
 * uri-host [ ":" port ] (RFC 9110 7.2), uri-host = IP-literal / IPv4address / reg-name
 * (RFC 3986 3.2.2). Every IPv4address is also a reg-name, so it needs no rule of its own;
 * an IP-literal must be an IPv6 address: IPvFuture names no version this server knows,
 * which RFC 3986 lets it refuse. An empty value is valid (RFC 9112 3.2: a client sends it
 * when the target URI has no authority), and this server's one site is the default. */
enum host_state {
    HOST_START,
    HOST_NAME,        /* reg-name */
    HOST_PCT1,        /* after '%' */
    HOST_PCT2,        /* after '%' and one hex digit */
    HOST_LITERAL,     /* after '[': collecting the IPv6 address */
    HOST_LITERAL_END, /* after ']' */
    HOST_PORT,        /* after ':' */
    HOST_OWS,         /* trailing spaces and tabs (llhttp strips only leading ones) */
    HOST_BAD,
};

/* unreserved / sub-delims (RFC 3986 2.2, 2.3); pct-encoded is a state of its own. */
static const char reg_name_extra[] = "-._~!$&'()*+,;=";

static bool is_reg_name_char(unsigned char c)
{
    return is_alnum(c) || (c && strchr(reg_name_extra, c));
}

static bool host_ipv6_ok(struct pf_http *h)
{
    struct in6_addr addr;
    h->host_ip[h->host_ip_len] = '\0';
    return h->host_ip_len > 0 && inet_pton(AF_INET6, h->host_ip, &addr) == 1;
}

static bool host_complete(enum host_state st)
{
    return st == HOST_START || st == HOST_NAME || st == HOST_LITERAL_END || st == HOST_PORT ||
           st == HOST_OWS;
}

static enum host_state host_step(struct pf_http *h, enum host_state st, unsigned char c)
{
    if (c == ' ' || c == '\t')
        return host_complete(st) ? HOST_OWS : HOST_BAD;
    switch (st) {
    case HOST_START:
        if (c == '[') {
            h->host_ip_len = 0;
            return HOST_LITERAL;
        }
        /* fall through */
    case HOST_NAME:
        if (c == '%')
            return HOST_PCT1;
        if (c == ':')
            return HOST_PORT;
        return is_reg_name_char(c) ? HOST_NAME : HOST_BAD;
    case HOST_PCT1:
        return is_hex(c) ? HOST_PCT2 : HOST_BAD;
    case HOST_PCT2:
        return is_hex(c) ? HOST_NAME : HOST_BAD;
    case HOST_LITERAL:
        if (c == ']')
            return host_ipv6_ok(h) ? HOST_LITERAL_END : HOST_BAD;
        if (h->host_ip_len == sizeof(h->host_ip) - 1 || !(is_hex(c) || c == ':' || c == '.'))
            return HOST_BAD;
        h->host_ip[h->host_ip_len++] = (char)c;
        return HOST_LITERAL;
    case HOST_LITERAL_END:
        return c == ':' ? HOST_PORT : HOST_BAD;
    case HOST_PORT:
        return is_digit(c) ? HOST_PORT : HOST_BAD;
    default: /* HOST_OWS: nothing but OWS after it; HOST_BAD stays */
        return HOST_BAD;
    }
}

/* Expect's list, a byte at a time: the only expectation there is, "100-continue", is
 * case-insensitive and takes no parameters (RFC 9110 10.1.1); any other element is one
 * this server cannot meet. Empty elements do not count (RFC 9110 5.6.1). */
static const char expect_100[] = "100-continue";

static void expect_element_start(struct pf_http *h)
{
    h->expect_len = 0;
    h->expect_match = true;
    h->expect_after = false;
}

static void expect_element_end(struct pf_http *h)
{
    if (h->expect_len == 0)
        return;
    if (h->expect_match && h->expect_len == sizeof(expect_100) - 1)
        h->expect_continue = true;
    else
        h->expect_unknown = true;
    expect_element_start(h);
}

static void expect_step(struct pf_http *h, unsigned char c)
{
    if (c == ',') {
        expect_element_end(h);
    } else if (c == ' ' || c == '\t') {
        h->expect_after = h->expect_len > 0;
    } else {
        unsigned char lower = c >= 'A' && c <= 'Z' ? c + 32 : c;
        if (h->expect_after || h->expect_len >= sizeof(expect_100) - 1 ||
            lower != (unsigned char)expect_100[h->expect_len])
            h->expect_match = false;
        if (h->expect_len < UINT8_MAX)
            h->expect_len++;
    }
}

static int on_message_begin(llhttp_t *p)
{
    struct pf_http *h = self(p);
    h->in_message = true;
    h->in_body = false;
    h->host_count = 0;
    h->te_count = 0;
    h->te_coding = false;
    h->expect_continue = false;
    h->expect_unknown = false;
    h->field = PF_FIELD_OTHER;
    h->name_len = 0;
    h->referer_len = 0;
    h->user_agent_len = 0;
    h->capture_into = NULL;
    h->target_len = 0;
    h->header_bytes = 0;
    h->header_count = 0;
    h->body_bytes = 0;
    h->has_version = false;
    h->store_len = 0;
    h->body_len = 0;
    h->keep = 0;
    h->in_field = false;
    h->path_off = h->query_off = 0;
    h->req.nfields = 0;
    h->req.route = NULL;
    h->req.path_len = h->req.query_len = 0;
    return 0;
}

/* Grows a reused buffer to hold need bytes (at most max): doubling, so a connection
 * allocates a few times in its life, not per request. */
static int grow(char **buf, uint64_t *cap, uint64_t need, uint64_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    uint64_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    if (n > max)
        n = max;
    char *b = realloc(*buf, n);
    if (!b)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

static int store_put(struct pf_http *h, const char *at, size_t len)
{
    uint64_t cap = h->store_cap;
    /* The target and the header block are each limited; the store never needs more. */
    uint64_t max = (uint64_t)h->limits->request_line + h->limits->header_block + 1;
    if (grow(&h->store, &cap, (uint64_t)h->store_len + len, max) < 0)
        return fail(h, h->store_len + len > max ? 431 : 503);
    h->store_cap = (uint32_t)cap;
    memcpy(h->store + h->store_len, at, len);
    h->store_len += (uint32_t)len;
    return 0;
}

/* Points the request's views into the store (again after it may have moved). */
static void set_views(struct pf_http *h)
{
    h->req.target = h->store;
    h->req.path = h->store + h->path_off;
    h->req.query = h->store + h->query_off;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct pf_http *h = self(p);
    h->target_len += (uint32_t)len;
    if (h->target_len > h->limits->request_line)
        return fail(h, 414);
    return store_put(h, at, len);
}

static enum pf_method method_of(uint8_t m)
{
    switch (m) {
    case HTTP_GET:
        return PF_METHOD_GET;
    case HTTP_HEAD:
        return PF_METHOD_HEAD;
    case HTTP_OPTIONS:
        return PF_METHOD_OPTIONS;
    case HTTP_POST:
        return PF_METHOD_POST;
    case HTTP_PUT:
        return PF_METHOD_PUT;
    case HTTP_DELETE:
        return PF_METHOD_DELETE;
    case HTTP_PATCH:
        return PF_METHOD_PATCH;
    default:
        return PF_METHOD_OTHER;
    }
}

/* The target is complete: find the path (absolute-form loses its scheme and authority)
 * and the query, then let the router decide what the request's handler reads. */
static int on_url_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    const char *s = h->store;
    uint32_t n = h->store_len, at = 0;
    if (n >= 7 && (strncmp(s, "http://", 7) == 0 || (n >= 8 && strncmp(s, "https://", 8) == 0))) {
        uint32_t skip = s[4] == 's' ? 8 : 7;
        const char *slash = memchr(s + skip, '/', n - skip);
        const char *q = memchr(s + skip, '?', n - skip);
        if (slash && (!q || slash < q)) {
            at = (uint32_t)(slash - s);
        } else {
            /* "http://host" or "http://host?q": the path is "/"; one byte of room is kept
             * for it past the target (see store_put's max). */
            if (store_put(h, "/", 1) < 0)
                return -1;
            h->path_off = h->store_len - 1;
            h->req.path_len = 1;
            h->query_off = q ? (uint32_t)(q - s) + 1 : 0;
            h->req.query_len = q ? n - h->query_off : 0;
            goto routed;
        }
    }
    h->path_off = at;
    const char *q = memchr(s + at, '?', n - at);
    h->req.path_len = q ? (uint32_t)(q - (s + at)) : n - at;
    h->query_off = q ? (uint32_t)(q - s) + 1 : 0;
    h->req.query_len = q ? n - h->query_off : 0;
routed:
    h->req.target_len = n;
    h->req.method = method_of(p->method);
    h->req.method_name = llhttp_method_name((llhttp_method_t)p->method);
    set_views(h);
    h->keep = h->route ? h->route(h->route_ctx, &h->req) : 0;
    return 0;
}

/* A well-formed version other than 1.x ("HTTP/2.0", "HTTP/3.0") is 505, decided from the
 * version text because llhttp rejects some of them itself; malformed ones are 400. */
static int on_version(llhttp_t *p, const char *at, size_t len)
{
    if (len == 3 && at[0] >= '0' && at[0] <= '9' && at[0] != '1' && at[1] == '.' && at[2] >= '0' &&
        at[2] <= '9')
        return fail(self(p), 505);
    return 0;
}

static int on_version_complete(llhttp_t *p)
{
    self(p)->has_version = true;
    return p->http_major != 1 ? fail(self(p), 505) : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct pf_http *h = self(p);
    h->header_bytes += (uint32_t)len;
    if (h->header_bytes > h->limits->header_block)
        return fail(h, 431);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        /* "Host : x" would be read as "Host" by some servers and not by others. */
        if (!is_tchar(c))
            return fail(h, 400);
        if (h->name_len < sizeof(h->name))
            h->name[h->name_len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    if (!(h->keep & PF_HTTP_KEEP_FIELDS) || h->in_body)
        return 0;
    if (!h->in_field) {
        /* A new field: one more span than limits.headers, so the 431 comes from the
         * count, not from here. */
        if (h->req.nfields == h->fields_cap) {
            uint32_t cap = h->limits->headers + 1;
            struct pf_http_span *f = realloc(h->fields, sizeof(*f) * cap);
            if (!f)
                return fail(h, 503);
            h->fields = f;
            h->fields_cap = cap;
        }
        if (h->req.nfields == h->fields_cap)
            return fail(h, 431);
        h->fields[h->req.nfields++] =
            (struct pf_http_span){.name_off = h->store_len, .value_off = h->store_len};
        h->in_field = true;
    }
    if (store_put(h, at, len) < 0)
        return -1;
    h->fields[h->req.nfields - 1].name_len += (uint32_t)len;
    h->fields[h->req.nfields - 1].value_off = h->store_len;
    return 0;
}

static enum pf_http_field field_of(const struct pf_http *h)
{
    for (int f = PF_FIELD_OTHER + 1; f < PF_FIELD_COUNT; f++) {
        /* name keeps a longer name's prefix only: a known name must fit with room. */
        assert(field_names[f].len < sizeof(h->name));
        if (h->name_len == field_names[f].len &&
            memcmp(h->name, field_names[f].name, field_names[f].len) == 0)
            return (enum pf_http_field)f;
    }
    return PF_FIELD_OTHER;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    if (h->name_len == 0)
        return fail(h, 400); /* ": value" */
    /* Trailer fields are not merged into the head (RFC 9110 6.5.1): none is looked at. */
    enum pf_http_field f = h->in_body ? PF_FIELD_OTHER : field_of(h);
    h->field = (uint8_t)f;
    switch (f) {
    case PF_FIELD_HOST:
        h->host_count++;
        h->host_state = HOST_START;
        break;
    case PF_FIELD_TRANSFER_ENCODING:
        h->te_count++;
        break;
    case PF_FIELD_EXPECT:
        expect_element_start(h);
        break;
    default:
        break;
    }
    h->capture_into = NULL;
    if (h->capture && f == PF_FIELD_REFERER) {
        h->capture_into = h->referer;
        h->capture_len = &h->referer_len;
    } else if (h->capture && f == PF_FIELD_USER_AGENT) {
        h->capture_into = h->user_agent;
        h->capture_len = &h->user_agent_len;
    }
    h->name_len = 0;
    h->in_field = false;
    /* ": " and CRLF count too, as they do for every server's header buffer. */
    h->header_bytes += 4;
    if (++h->header_count > h->limits->headers || h->header_bytes > h->limits->header_block)
        return fail(h, 431);
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct pf_http *h = self(p);
    switch (h->field) {
    case PF_FIELD_HOST: {
        enum host_state st = h->host_state;
        for (size_t i = 0; i < len && st != HOST_BAD; i++)
            st = host_step(h, st, (unsigned char)at[i]);
        h->host_state = (uint8_t)st;
        break;
    }
    case PF_FIELD_TRANSFER_ENCODING:
        for (size_t i = 0; i < len && !h->te_coding; i++)
            h->te_coding = at[i] != ' ' && at[i] != '\t';
        break;
    case PF_FIELD_EXPECT:
        for (size_t i = 0; i < len; i++)
            expect_step(h, (unsigned char)at[i]);
        break;
    default:
        break;
    }
    if ((h->keep & PF_HTTP_KEEP_FIELDS) && !h->in_body && h->req.nfields) {
        if (store_put(h, at, len) < 0)
            return -1;
        h->fields[h->req.nfields - 1].value_len += (uint32_t)len;
    }
    if (h->capture_into) {
        size_t room = sizeof(h->referer) - *h->capture_len;
        size_t n = len < room ? len : room;
        memcpy(h->capture_into + *h->capture_len, at, n);
        *h->capture_len += (uint8_t)n;
    }
    h->header_bytes += (uint32_t)len;
    return h->header_bytes > h->limits->header_block ? fail(h, 431) : 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    /* An invalid Host value is 400 (RFC 9110 7.2). */
    if (h->field == PF_FIELD_HOST && !host_complete(h->host_state))
        return fail(h, 400);
    if (h->field == PF_FIELD_EXPECT)
        expect_element_end(h);
    if ((h->keep & PF_HTTP_KEEP_FIELDS) && !h->in_body && h->req.nfields) {
        /* Field values exclude trailing whitespace (RFC 9110 5.5); llhttp keeps it. */
        struct pf_http_span *f = &h->fields[h->req.nfields - 1];
        while (f->value_len && (h->store[f->value_off + f->value_len - 1] == ' ' ||
                                h->store[f->value_off + f->value_len - 1] == '\t'))
            f->value_len--;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    /* "GET /" and its end of line: llhttp reads HTTP/0.9, whose request-line has no
     * version; to HTTP/1.1 it is an invalid request-line (RFC 9112 3). */
    if (!h->has_version)
        return fail(h, 400);
    if (p->http_major != 1)
        return fail(h, 505);
    /* HTTP/1.1 needs exactly one Host (RFC 9112 3.2); two could route two ways. */
    if ((p->http_minor >= 1 && h->host_count == 0) || h->host_count > 1)
        return fail(h, 400);
    /* Transfer-Encoding split over several fields hides what the final coding is. One
     * with an empty value (or only spaces and tabs) is present all the same: a list with
     * no coding, so none is chunked, and with Content-Length it is two framings. llhttp
     * sees no Transfer-Encoding there, so the rule is ours (RFC 9112 6.1, 6.3). */
    if (h->te_count > 1 || (h->te_count == 1 && !h->te_coding))
        return fail(h, 400);
    h->in_body = true;
    if (p->content_length > h->limits->body && (p->flags & F_CONTENT_LENGTH))
        return fail(h, 413);
    /* The asterisk-form is "*" alone, and only OPTIONS takes it (RFC 9112 3.2.4); llhttp
     * takes it with any method and "*x" as well. */
    if (h->target_len >= 1 && h->store[0] == '*' &&
        (h->target_len != 1 || p->method != HTTP_OPTIONS))
        return fail(h, 400);
    set_views(h);
    /* A later HTTP/1.x minor version is answered as 1.1, the highest this server speaks
     * (RFC 9110 2.5). */
    h->req.http_minor = p->http_minor > 1 ? 1 : p->http_minor;
    if (h->expect_unknown)
        return fail(h, 417);
    /* 100-continue in HTTP/1.0 is ignored (RFC 9110 10.1.1); without a body to come there
     * is nothing to ask for. */
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    if (h->expect_continue && h->req.http_minor >= 1 && body) {
        h->head_paused = true;
        return HPE_PAUSED;
    }
    return 0;
}

/* Transfer-Encoding in an HTTP/1.0 request: faulty framing (RFC 9112 6.1); the request
 * is answered, then the connection closes. */
static bool faulty_10_framing(const llhttp_t *p)
{
    return p->http_minor == 0 && (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING));
}

/* A chunk's declared size is known before its data: one that takes the body past
 * limits.body is 413 now, rather than once the data has come (or the client stops
 * sending it and the body times out). */
static int on_chunk_header(llhttp_t *p)
{
    struct pf_http *h = self(p);
    assert(h->body_bytes <= h->limits->body); /* on_body stops at the first byte past it */
    return p->content_length > h->limits->body - h->body_bytes ? fail(h, 413) : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct pf_http *h = self(p);
    h->body_bytes += len;
    if (h->body_bytes > h->limits->body)
        return fail(h, 413);
    if (!(h->keep & PF_HTTP_KEEP_BODY))
        return 0;
    /* A declared length is allocated at once; a chunked body grows by doubling. */
    uint64_t want = h->body_len + len;
    if ((p->flags & F_CONTENT_LENGTH) && h->body_len == 0)
        want = h->body_len + len + p->content_length;
    if (grow(&h->body, &h->body_cap, want, h->limits->body ? h->limits->body : 1) < 0 &&
        grow(&h->body, &h->body_cap, h->body_len + len, h->limits->body) < 0)
        return fail(h, 503);
    memcpy(h->body + h->body_len, at, len);
    h->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct pf_http *h = self(p);
    h->in_message = false;
    /* After an upgrade or CONNECT the bytes that follow are not HTTP: answer, then close. */
    h->req.keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && !faulty_10_framing(p);
    h->in_body = false;
    return HPE_PAUSED;
}

static void scan_reset(struct pf_http *h);

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_chunk_header = on_chunk_header,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void pf_http_init(struct pf_http *h, const struct pf_limits *limits, pf_http_route_fn route,
                  void *route_ctx)
{
    memset(h, 0, sizeof(*h));
    pf_http_reuse(h, limits, route, route_ctx);
}

void pf_http_reuse(struct pf_http *h, const struct pf_limits *limits, pf_http_route_fn route,
                   void *route_ctx)
{
    char *store = h->store, *body = h->body;
    uint32_t store_cap = h->store_cap, fields_cap = h->fields_cap;
    uint64_t body_cap = h->body_cap;
    struct pf_http_span *fields = h->fields;
    memset(h, 0, sizeof(*h));
    h->store = store;
    h->store_cap = store_cap;
    h->fields = fields;
    h->fields_cap = fields_cap;
    h->body = body;
    h->body_cap = body_cap;
    h->route = route;
    h->route_ctx = route_ctx;
    h->limits = limits;
    llhttp_init(&h->parser, HTTP_REQUEST, &settings);
    /* llhttp 8 takes only 1.0 and 1.1 of HTTP/1.x, but a 1.x server must take any 1.x
     * (RFC 9110 2.5). This flag lets any digit through llhttp's version check, and only
     * that; on_version and the head scanner apply the exact rule. */
    h->parser.lenient_flags |= LENIENT_VERSION;
    h->parser.data = h;
    scan_reset(h);
}

void pf_http_free(struct pf_http *h)
{
    free(h->store);
    free(h->fields);
    free(h->body);
    h->store = h->body = NULL;
    h->fields = NULL;
    h->store_cap = h->fields_cap = 0;
    h->body_cap = 0;
}

void pf_http_trim(struct pf_http *h, uint64_t keep)
{
    if (h->body_cap > keep) {
        free(h->body);
        h->body = NULL;
        h->body_cap = 0;
    }
}

void pf_http_field(const struct pf_http *h, uint32_t i, const char **name, uint32_t *name_len,
                   const char **value, uint32_t *value_len)
{
    assert(i < h->req.nfields);
    const struct pf_http_span *f = &h->fields[i];
    *name = h->store + f->name_off;
    *name_len = f->name_len;
    *value = h->store + f->value_off;
    *value_len = f->value_len;
}

static uint16_t status_for(llhttp_errno_t e)
{
    (void)e; /* every framing error is the client's: 400 */
    return 400;
}

static enum pf_http_result parse(struct pf_http *h, const char *data, size_t len, size_t *used);

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3): checks one of
 * its bytes other than CR and LF. llhttp reads the version leniently (see pf_http_init)
 * and takes "RTSP/1.0" and "ICE/1.0" as well; the version's syntax is checked here. */
static bool scan_request_line(struct pf_http *h, unsigned char c)
{
    if (c == ' ') {
        /* Exactly one space between the parts: none leading, doubled or after the version. */
        if (h->scan_part_len == 0 || ++h->scan_spaces > 2)
            return false;
        h->scan_part_len = 0;
        return true;
    }
    uint32_t at = h->scan_part_len++;
    if (h->scan_spaces == 0)
        return is_tchar(c); /* method = token */
    if (h->scan_spaces == 1)
        return c > ' ' && c < 0x7f; /* a URI: visible ASCII (llhttp checks its forms) */
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT */
    if (at < 5)
        return c == (unsigned char)"HTTP/"[at];
    if (at == 5)
        h->scan_major = c;
    if (at == 6)
        return c == '.';
    return (at == 5 || at == 7) && is_digit(c);
}

/* Checks the line structure of a request head, a byte at a time: every line ends in CRLF
 * (no bare LF, no bare CR), no header line starts with a space or tab (obs-fold), and the
 * request-line is well-formed. Returns false on a violation. */
static bool scan_byte(struct pf_http *h, unsigned char c)
{
    if (h->scan_prev == '\r' && c != '\n')
        return false;
    if (c == '\n') {
        if (h->scan_prev != '\r')
            return false;
        /* The request-line ends with all three parts, the version complete. */
        if (h->scan_lines == 0 && h->scan_line_len > 0 &&
            (h->scan_spaces != 2 || h->scan_part_len != sizeof("HTTP/1.1") - 1))
            return false;
        if (h->scan_line_len == 0 && h->scan_lines > 0)
            h->scan_body = true;
        else if (h->scan_line_len > 0)
            h->scan_lines++;
        h->scan_line_len = 0;
        h->scan_line_start = true;
    } else if (c != '\r') {
        if (h->scan_line_start && h->scan_lines > 0 && (c == ' ' || c == '\t'))
            return false;
        if (h->scan_lines == 0 && !scan_request_line(h, c))
            return false;
        h->scan_line_start = false;
        h->scan_line_len++;
    }
    h->scan_prev = c;
    return true;
}

/* Scans the head in data; stops at the empty line that ends it: the body is llhttp's
 * (strict mode checks chunk framing). */
static bool scan_head(struct pf_http *h, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !h->scan_body; i++)
        if (!scan_byte(h, (unsigned char)data[i]))
            return false;
    return true;
}

/* Longer than any method llhttp knows (GET_PARAMETER, 13 bytes). */
#define PF_HTTP_METHOD_MAX 16

/* llhttp stops at the first byte of a method it does not know, so what the rest of the
 * request-line looks like decides the answer: a well-formed line is 501 (RFC 9110 9.1:
 * the method is not implemented), or 505 with another major version; a malformed one is
 * 400 (RFC 9112 3). Reads up to the end of the request-line. Nothing after it is parsed:
 * the answer closes the connection. */
static enum pf_http_result judge_request_line(struct pf_http *h, const char *data, size_t len,
                                              size_t *used)
{
    *used = len;
    uint16_t status = 0;
    for (size_t i = 0; i < len && !status; i++) {
        if (!scan_byte(h, (unsigned char)data[i]))
            status = 400;
        else if (h->scan_lines > 0)
            status = h->scan_major == '1' ? 501 : 505;
        else if (h->scan_spaces == 0 && h->scan_part_len > PF_HTTP_METHOD_MAX)
            status = 501; /* RFC 9112 3: longer than any method implemented */
        else if (h->scan_spaces == 1 && h->scan_part_len > h->limits->request_line)
            status = 414;
    }
    if (!status)
        return PF_HTTP_NEED_MORE;
    h->judging = false;
    h->error_status = status;
    return PF_HTTP_ERROR;
}

/* A method llhttp refused: one it does not know at all, or one of RTSP's, which it parses
 * in a request and refuses once it sees the HTTP version. */
static bool method_unknown(const llhttp_t *p, llhttp_errno_t e)
{
    if (e == HPE_INVALID_METHOD)
        return true;
    if (e != HPE_INVALID_CONSTANT)
        return false;
    switch (p->method) {
#define PF_HTTP_METHOD_CASE(num, name, string) case num:
        HTTP_METHOD_MAP(PF_HTTP_METHOD_CASE)
#undef PF_HTTP_METHOD_CASE
        return false;
    default:
        return true;
    }
}

static void scan_reset(struct pf_http *h)
{
    h->scan_body = false;
    h->scan_line_start = true;
    h->scan_prev = 0;
    h->scan_lines = 0;
    h->scan_line_len = 0;
    h->scan_part_len = 0;
    h->scan_spaces = 0;
}

enum pf_http_result pf_http_feed(struct pf_http *h, const char *data, size_t len, size_t *used)
{
    if (h->judging)
        return judge_request_line(h, data, len, used);
    if (h->error_status) {
        *used = 0;
        return PF_HTTP_ERROR;
    }
    enum pf_http_result r = parse(h, data, len, used);
    if (h->judging)
        return judge_request_line(h, data, len, used);
    if (r != PF_HTTP_ERROR && !scan_head(h, data, *used)) {
        h->error_status = 400;
        return PF_HTTP_ERROR;
    }
    if (r == PF_HTTP_REQUEST)
        scan_reset(h);
    return r;
}

static enum pf_http_result parse(struct pf_http *h, const char *data, size_t len, size_t *used)
{
    llhttp_errno_t e = llhttp_execute(&h->parser, data, len);
    switch (e) {
    case HPE_OK:
        *used = len;
        return PF_HTTP_NEED_MORE;
    case HPE_PAUSED: {
        /* Paused at the end of the head (Expect) or of the message. */
        bool head = h->head_paused;
        h->head_paused = false;
        *used = (size_t)(llhttp_get_error_pos(&h->parser) - data);
        llhttp_resume(&h->parser);
        return head ? PF_HTTP_CONTINUE : PF_HTTP_REQUEST;
    }
    case HPE_PAUSED_UPGRADE:
        /* Reached only once the upgrade request was answered and the connection is
         * marked to close; nothing after it is parsed. */
        *used = len;
        return PF_HTTP_NEED_MORE;
    default:
        *used = len;
        if (!h->error_status && method_unknown(&h->parser, e)) {
            h->judging = true; /* see judge_request_line */
            return PF_HTTP_NEED_MORE;
        }
        if (!h->error_status)
            h->error_status = status_for(e);
        return PF_HTTP_ERROR;
    }
}
