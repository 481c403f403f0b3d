#include "preforkd/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preforkd/buf.h"

#define LOG_BUF        65536
#define LINE_MAX_BYTES 2048

struct pf_access_log {
    enum pf_access_format format;
    int fd;
    bool own_fd;
    uint32_t slot;
    char path[256];
    time_t stamp_sec;
    char stamp[40];
    size_t stamp_len;
    size_t len;
    char buf[LOG_BUF];
};

static int open_path(struct pf_access_log *l)
{
    if (!l->path[0]) {
        l->fd = STDERR_FILENO;
        l->own_fd = false;
        return 0;
    }
    int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    l->fd = fd;
    l->own_fd = true;
    return 0;
}

int pf_access_log_open(struct pf_access_log **out, enum pf_access_format format, const char *path,
                       uint32_t slot)
{
    struct pf_access_log *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->format = format;
    l->slot = slot;
    l->stamp_sec = -1;
    snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
    int rc = open_path(l);
    if (rc < 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void pf_access_log_flush(struct pf_access_log *l)
{
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(l->fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a full disk loses log lines, never requests */
        off += (size_t)n;
    }
    l->len = 0;
}

int pf_access_log_reopen(struct pf_access_log *l)
{
    pf_access_log_flush(l);
    if (l->own_fd)
        close(l->fd);
    return open_path(l);
}

void pf_access_log_free(struct pf_access_log **l)
{
    if (!l || !*l)
        return;
    pf_access_log_flush(*l);
    if ((*l)->own_fd)
        close((*l)->fd);
    free(*l);
    *l = NULL;
}

/* The time, formatted once a second. */
static void stamp(struct pf_access_log *l, time_t now)
{
    if (now == l->stamp_sec)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    l->stamp_len = strftime(
        l->stamp, sizeof(l->stamp),
        l->format == PF_ACCESS_JSON ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
    l->stamp_sec = now;
}

/* Escapes what a terminal or a log parser could misread: quotes, backslashes, control
 * and non-ASCII bytes (\xHH in combined, as nginx does; \u00HH in JSON). */
static void put_escaped(struct pf_buf *b, const char *s, size_t n, bool json)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            pf_buf_put(b, &s[i], 1);
        } else if (json && (c == '"' || c == '\\')) {
            char e[2] = {'\\', (char)c};
            pf_buf_put(b, e, 2);
        } else if (json) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pf_buf_put(b, e, 6);
        } else {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            pf_buf_put(b, e, 4);
        }
    }
}

/* A log line shows at most this much of a request-target. */
#define PF_ACCESS_TARGET_MAX 1024

static void put_target(struct pf_buf *b, const struct pf_http *h, bool json)
{
    uint32_t n = h->target_len < h->store_len ? h->target_len : h->store_len;
    if (n > PF_ACCESS_TARGET_MAX)
        n = PF_ACCESS_TARGET_MAX;
    put_escaped(b, h->store ? h->store : "", n, json);
    if (h->target_len > n)
        pf_buf_put_lit(b, "...");
}

void pf_access_log_write(struct pf_access_log *l, const struct pf_handler_ctx *ctx,
                         const char *peer, const struct pf_http *h, uint16_t status,
                         uint64_t body_bytes)
{
    if (l->len > LOG_BUF - LINE_MAX_BYTES)
        pf_access_log_flush(l);
    stamp(l, ctx->responses.sec);
    struct pf_buf b;
    pf_buf_init(&b, l->buf + l->len, LINE_MAX_BYTES);
    const char *method = llhttp_method_name((llhttp_method_t)h->parser.method);
    char version[4] = {(char)('0' + h->parser.http_major % 10), '.',
                       (char)('0' + h->parser.http_minor % 10), 0};
    const char *who = peer && peer[0] ? peer : "-";
    if (l->format == PF_ACCESS_JSON) {
        pf_buf_put_lit(&b, "{\"time\":\"");
        pf_buf_put(&b, l->stamp, l->stamp_len);
        pf_buf_put_lit(&b, "\",\"remote\":\"");
        pf_buf_put_str(&b, who);
        pf_buf_put_lit(&b, "\",\"method\":\"");
        pf_buf_put_str(&b, method);
        pf_buf_put_lit(&b, "\",\"target\":\"");
        put_target(&b, h, true);
        pf_buf_put_lit(&b, "\",\"protocol\":\"HTTP/");
        pf_buf_put_str(&b, version);
        pf_buf_put_lit(&b, "\",\"status\":");
        pf_buf_put_u64(&b, status);
        pf_buf_put_lit(&b, ",\"bytes\":");
        pf_buf_put_u64(&b, body_bytes);
        pf_buf_put_lit(&b, ",\"referer\":\"");
        put_escaped(&b, h->referer, h->referer_len, true);
        pf_buf_put_lit(&b, "\",\"user_agent\":\"");
        put_escaped(&b, h->user_agent, h->user_agent_len, true);
        pf_buf_put_lit(&b, "\",\"worker\":");
        pf_buf_put_u64(&b, l->slot);
        pf_buf_put_lit(&b, ",\"pid\":");
        pf_buf_put_u64(&b, (uint64_t)ctx->pid);
        pf_buf_put_lit(&b, "}\n");
    } else {
        pf_buf_put_str(&b, who);
        pf_buf_put_lit(&b, " - - [");
        pf_buf_put(&b, l->stamp, l->stamp_len);
        pf_buf_put_lit(&b, "] \"");
        pf_buf_put_str(&b, method);
        pf_buf_put_lit(&b, " ");
        put_target(&b, h, false);
        pf_buf_put_lit(&b, " HTTP/");
        pf_buf_put_str(&b, version);
        pf_buf_put_lit(&b, "\" ");
        pf_buf_put_u64(&b, status);
        pf_buf_put_lit(&b, " ");
        pf_buf_put_u64(&b, body_bytes);
        pf_buf_put_lit(&b, " \"");
        if (h->referer_len)
            put_escaped(&b, h->referer, h->referer_len, false);
        else
            pf_buf_put_lit(&b, "-");
        pf_buf_put_lit(&b, "\" \"");
        if (h->user_agent_len)
            put_escaped(&b, h->user_agent, h->user_agent_len, false);
        else
            pf_buf_put_lit(&b, "-");
        pf_buf_put_lit(&b, "\"\n");
    }
    if (!b.full)
        l->len += b.len;
}
