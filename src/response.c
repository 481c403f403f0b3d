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

void pf_response_write_continue(struct pf_buf *out)
{
    pf_buf_put_lit(out, "HTTP/1.1 100 Continue\r\n\r\n");
}
