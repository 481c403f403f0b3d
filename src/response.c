#include "preforkd/response.h"

#include <assert.h>
#include <stdio.h>

/* What each block holds besides Server and Date. */
static const char *const block_fields[PF_BLOCK_COUNT] = {
    [PF_BLOCK_JSON] = "Content-Type: application/json\r\n",
    /* A shared cache may store a 200 it was not told about (RFC 9111 3), and would then
     * answer for a health or a set of counters that are no longer true. */
    [PF_BLOCK_JSON_NO_STORE] = "Content-Type: application/json\r\n"
                               "Cache-Control: no-store\r\n",
    [PF_BLOCK_PROMETHEUS] = "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                            "Cache-Control: no-store\r\n",
    [PF_BLOCK_EMPTY] = "",
    [PF_BLOCK_NO_STORE] = "Cache-Control: no-store\r\n",
};

void pf_response_cache_tick(struct pf_response_cache *rc, time_t now)
{
    if (rc->sec == now && rc->block[0].len)
        return;
    char date[PF_HTTP_DATE_LEN + 1];
    pf_clock_http_date(now, date);
    rc->sec = now;
    for (int b = 0; b < PF_BLOCK_COUNT; b++) {
        int n = snprintf(rc->block[b].text, sizeof(rc->block[b].text),
                         "Server: preforkd\r\n"
                         "%s"
                         "Date: %s\r\n"
                         "Content-Length: ",
                         block_fields[b], date);
        assert(n > 0 && (size_t)n < sizeof(rc->block[b].text));
        rc->block[b].len = (size_t)n;
    }
}

static const struct {
    uint16_t status;
    const char *line; /* complete status line, CRLF included */
    const char *reason;
} statuses[] = {
    {200, "HTTP/1.1 200 OK\r\n", "OK"},
    {201, "HTTP/1.1 201 Created\r\n", "Created"},
    {202, "HTTP/1.1 202 Accepted\r\n", "Accepted"},
    {204, "HTTP/1.1 204 No Content\r\n", "No Content"},
    {206, "HTTP/1.1 206 Partial Content\r\n", "Partial Content"},
    {301, "HTTP/1.1 301 Moved Permanently\r\n", "Moved Permanently"},
    {302, "HTTP/1.1 302 Found\r\n", "Found"},
    {303, "HTTP/1.1 303 See Other\r\n", "See Other"},
    {304, "HTTP/1.1 304 Not Modified\r\n", "Not Modified"},
    {307, "HTTP/1.1 307 Temporary Redirect\r\n", "Temporary Redirect"},
    {308, "HTTP/1.1 308 Permanent Redirect\r\n", "Permanent Redirect"},
    {401, "HTTP/1.1 401 Unauthorized\r\n", "Unauthorized"},
    {403, "HTTP/1.1 403 Forbidden\r\n", "Forbidden"},
    {409, "HTTP/1.1 409 Conflict\r\n", "Conflict"},
    {410, "HTTP/1.1 410 Gone\r\n", "Gone"},
    {412, "HTTP/1.1 412 Precondition Failed\r\n", "Precondition Failed"},
    {415, "HTTP/1.1 415 Unsupported Media Type\r\n", "Unsupported Media Type"},
    {416, "HTTP/1.1 416 Range Not Satisfiable\r\n", "Range Not Satisfiable"},
    {422, "HTTP/1.1 422 Unprocessable Content\r\n", "Unprocessable Content"},
    {429, "HTTP/1.1 429 Too Many Requests\r\n", "Too Many Requests"},
    {502, "HTTP/1.1 502 Bad Gateway\r\n", "Bad Gateway"},
    {504, "HTTP/1.1 504 Gateway Timeout\r\n", "Gateway Timeout"},
    {400, "HTTP/1.1 400 Bad Request\r\n", "Bad Request"},
    {404, "HTTP/1.1 404 Not Found\r\n", "Not Found"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\n", "Method Not Allowed"},
    {408, "HTTP/1.1 408 Request Timeout\r\n", "Request Timeout"},
    {413, "HTTP/1.1 413 Content Too Large\r\n", "Content Too Large"},
    {414, "HTTP/1.1 414 URI Too Long\r\n", "URI Too Long"},
    {417, "HTTP/1.1 417 Expectation Failed\r\n", "Expectation Failed"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n", "Request Header Fields Too Large"},
    {500, "HTTP/1.1 500 Internal Server Error\r\n", "Internal Server Error"},
    {501, "HTTP/1.1 501 Not Implemented\r\n", "Not Implemented"},
    {503, "HTTP/1.1 503 Service Unavailable\r\n", "Service Unavailable"},
    {505, "HTTP/1.1 505 HTTP Version Not Supported\r\n", "HTTP Version Not Supported"},
};

static size_t status_index(uint16_t status)
{
    size_t n = sizeof(statuses) / sizeof(statuses[0]), fallback = n;
    for (size_t i = 0; i < n; i++) {
        if (statuses[i].status == status)
            return i;
        if (statuses[i].status == 500)
            fallback = i; /* a status without an entry is a bug of ours */
    }
    assert(fallback < n);
    return fallback;
}

const char *pf_response_reason(uint16_t status)
{
    return statuses[status_index(status)].reason;
}

void pf_response_write_head(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                            enum pf_header_block block, size_t body_len, unsigned flags)
{
    assert(block < PF_BLOCK_COUNT);
    pf_buf_put_str(out, statuses[status_index(status)].line);
    pf_buf_put(out, rc->block[block].text, rc->block[block].len);
    pf_buf_put_u64(out, body_len);
    if (flags & PF_RESP_ALLOW_GET)
        pf_buf_put_lit(out, "\r\nAllow: GET, HEAD");
    if (flags & PF_RESP_CLOSE)
        pf_buf_put_lit(out, "\r\nConnection: close");
    else if (flags & PF_RESP_KEEPALIVE)
        pf_buf_put_lit(out, "\r\nConnection: keep-alive");
    pf_buf_put_lit(out, "\r\n\r\n");
}

void pf_response_write(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                       enum pf_header_block block, const char *body, size_t body_len,
                       unsigned flags)
{
    pf_response_write_head(out, rc, status, block, body_len, flags);
    if (!(flags & PF_RESP_HEAD))
        pf_buf_put(out, body, body_len);
}

bool pf_response_bodyless(uint16_t status)
{
    return status < 200 || status == 204 || status == 304;
}

static const char *const method_names[] = {"GET", "HEAD",   "OPTIONS", "POST",
                                           "PUT", "DELETE", "PATCH"};

/* The status line of any status: one from the table, else one with an empty reason
 * (RFC 9112 4: the reason-phrase may be empty). */
static void status_line(struct pf_buf *out, uint16_t status)
{
    size_t n = sizeof(statuses) / sizeof(statuses[0]);
    for (size_t i = 0; i < n; i++) {
        if (statuses[i].status == status) {
            pf_buf_put_str(out, statuses[i].line);
            return;
        }
    }
    pf_buf_put_lit(out, "HTTP/1.1 ");
    pf_buf_put_u64(out, status);
    pf_buf_put_lit(out, " \r\n");
}

void pf_response_head(struct pf_buf *out, const struct pf_response_cache *rc, uint16_t status,
                      enum pf_header_block block, uint64_t body_len, unsigned flags, unsigned allow,
                      const char *fields, size_t fields_len)
{
    assert(block < PF_BLOCK_COUNT);
    status_line(out, status);
    static const char cl[] = "\r\nContent-Length: ";
    if (pf_response_bodyless(status)) {
        /* No body and no Content-Length (RFC 9110 8.6): the block up to its Date line. */
        assert(rc->block[block].len > sizeof(cl) - 1);
        pf_buf_put(out, rc->block[block].text, rc->block[block].len - (sizeof(cl) - 1));
    } else {
        pf_buf_put(out, rc->block[block].text, rc->block[block].len);
        pf_buf_put_u64(out, body_len);
    }
    pf_buf_put(out, fields, fields_len);
    if (allow) {
        pf_buf_put_lit(out, "\r\nAllow: ");
        bool first = true;
        for (size_t m = 0; m < sizeof(method_names) / sizeof(method_names[0]); m++) {
            if (!(allow & 1u << m))
                continue;
            if (!first)
                pf_buf_put_lit(out, ", ");
            pf_buf_put_str(out, method_names[m]);
            first = false;
        }
    }
    if (flags & PF_RESP_CLOSE)
        pf_buf_put_lit(out, "\r\nConnection: close");
    else if (flags & PF_RESP_KEEPALIVE)
        pf_buf_put_lit(out, "\r\nConnection: keep-alive");
    pf_buf_put_lit(out, "\r\n\r\n");
}

void pf_response_write_continue(struct pf_buf *out)
{
    pf_buf_put_lit(out, "HTTP/1.1 100 Continue\r\n\r\n");
}
