#include "preforkd/static_route.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "preforkd/static.h"

int pf_static_route_open(struct pf_static_route *s, const struct pf_route_config *cfg,
                         const struct pf_mime *mime, char *err, size_t errlen)
{
    s->cfg = cfg;
    s->mime = mime;
    s->root_fd = open(cfg->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "route %s: root %s: %s", cfg->path, cfg->root, strerror(e));
        return -e;
    }
    return 0;
}

void pf_static_route_close(struct pf_static_route *s)
{
    if (s->root_fd >= 0)
        close(s->root_fd);
    s->root_fd = -1;
}

/* A request field as a C string for the decision: all its field lines, joined with ", "
 * as static.h asks (RFC 9110 5.3); NULL when absent or too long to be a validator, which
 * then does not match: the whole file is sent. */
static const char *field(const struct pf_req *req, const char *name, char *buf, size_t cap)
{
    size_t name_len = strlen(name), len = 0, lines = 0;
    for (size_t i = 0; i < pf_req_header_count(req); i++) {
        struct pf_str n, v;
        pf_req_header_at(req, i, &n, &v);
        if (n.len != name_len || strncasecmp(n.ptr, name, name_len) != 0)
            continue;
        size_t sep = lines++ ? 2 : 0;
        if (len + sep + v.len >= cap)
            return NULL;
        memcpy(buf + len, ", ", sep);
        memcpy(buf + len + sep, v.ptr, v.len);
        len += sep + v.len;
    }
    if (!lines)
        return NULL;
    buf[len] = '\0';
    return buf;
}

static void error_body(struct pf_resp *resp, uint16_t status)
{
    resp->status = status;
    pf_buf_put_lit(&resp->body, "{\"error\":\"");
    pf_buf_put_str(&resp->body, pf_response_reason(status));
    pf_buf_put_lit(&resp->body, "\",\"status\":");
    pf_buf_put_u64(&resp->body, status);
    pf_buf_put_lit(&resp->body, "}");
}

int pf_static_route_handle(void *state, const struct pf_req *req, struct pf_resp *resp)
{
    const struct pf_static_route *s = state;
    const struct pf_request *r = req->r;
    /* A prefix route maps the rest of the path beneath its root (nginx's alias); an
     * exact route maps its whole path (nginx's root). */
    const char *raw = r->path;
    size_t raw_len = r->path_len;
    if (s->cfg->prefix) {
        size_t strip = strlen(s->cfg->path) - 1; /* keep the slash */
        raw += strip;
        raw_len -= strip;
    }
    char rel[PF_STATIC_PATH_MAX];
    size_t rel_len;
    int rc = pf_static_check_path(raw, raw_len, rel, sizeof(rel), &rel_len);
    struct pf_static_file f = {.fd = -1}, gz = {.fd = -1};
    const char *index = s->cfg->index[0] ? s->cfg->index : NULL;
    if (rc == 0)
        rc = pf_static_open(s->root_fd, rel, index, &f);
    if (rc == -EISDIR) {
        /* A directory named without its slash: where it is (RFC 9110 15.4.2). The path
         * as sent may be longer than the answer's fields hold (escapes take three bytes
         * each): pf_resp_header would refuse it and log a 500 any client can cause. */
        static const char key[] = "\r\nLocation: ";
        char loc[PF_RESP_FIELDS_MAX];
        if (r->path_len + 1 > PF_RESP_FIELDS_MAX - (sizeof(key) - 1)) {
            error_body(resp, 414);
            return 0;
        }
        snprintf(loc, sizeof(loc), "%.*s/", (int)r->path_len, r->path);
        error_body(resp, 301);
        pf_resp_header(resp, "Location", loc);
        return 0;
    }
    if (rc < 0) {
        error_body(resp, pf_static_status_for(rc));
        return 0;
    }
    char ae[256], inm[512], ims[64], im[512], ius[64], ir[128], range[128];
    struct pf_static_request sr = {
        .now = req->ctx->responses.sec,
        .head = r->method == PF_METHOD_HEAD,
        .if_match = field(req, "If-Match", im, sizeof(im)),
        .if_none_match = field(req, "If-None-Match", inm, sizeof(inm)),
        .if_modified_since = field(req, "If-Modified-Since", ims, sizeof(ims)),
        .if_unmodified_since = field(req, "If-Unmodified-Since", ius, sizeof(ius)),
        .if_range = field(req, "If-Range", ir, sizeof(ir)),
        .range = field(req, "Range", range, sizeof(range)),
        .accept_encoding = field(req, "Accept-Encoding", ae, sizeof(ae)),
    };
    /* The precompressed sibling is looked for only when the client takes gzip: one
     * system call less for the others. Every answer says Vary: Accept-Encoding (as
     * nginx's gzip_vary does), so a cache keys by it whether or not a sibling exists. */
    if (sr.accept_encoding && pf_static_accepts_gzip(sr.accept_encoding) &&
        pf_static_open_gz(s->root_fd, rel, index, &gz) == 0)
        sr.gz = &gz;
    struct pf_static_decision d;
    pf_static_decide(&f, &sr, &d);
    resp->status = d.status;
    /* 304, 412 and 416 carry no content, so no media type (static.h; RFC 9110 15.4.5). */
    resp->block = PF_BLOCK_EMPTY;
    pf_resp_header(resp, "ETag", d.etag);
    pf_resp_header(resp, "Last-Modified", d.last_modified);
    pf_resp_header(resp, "Vary", "Accept-Encoding");
    if (d.status == 200 || d.status == 206) {
        /* The media type of the name asked for (or its index), also when gzip is sent. */
        const char *name = f.is_index ? index : rel;
        pf_resp_header(resp, "Content-Type", pf_mime_lookup(s->mime, name));
        pf_resp_header(resp, "Accept-Ranges", "bytes");
        if (d.use_gz)
            pf_resp_header(resp, "Content-Encoding", "gzip");
    }
    if (d.content_range[0])
        pf_resp_header(resp, "Content-Range", d.content_range);
    if ((d.status == 200 || d.status == 206) && d.length) {
        /* The chosen file goes to the connection, which closes it once sent. */
        struct pf_static_file *chosen = d.use_gz ? &gz : &f;
        resp->file_fd = chosen->fd;
        resp->file_off = d.start;
        resp->file_len = d.length;
        chosen->fd = -1;
    }
    pf_static_close(&f);
    pf_static_close(&gz);
    return 0;
}
