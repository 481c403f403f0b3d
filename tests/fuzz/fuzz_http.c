/* libFuzzer target: bytes straight into the request parsing layer. Every input is also
 * fed in two pieces (split where its first byte says), since the parser keeps state
 * across reads. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "preforkd/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct pf_limits limits = {
    .request_line = 1024, .header_block = 4096, .headers = 20, .body = 65536, .connections = 1};

/* Paths under /k keep their header fields and body, as a module's route does. */
static unsigned route(void *ctx, struct pf_request *req)
{
    (void)ctx;
    return req->path_len >= 2 && req->path[1] == 'k' ? PF_HTTP_KEEP_FIELDS | PF_HTTP_KEEP_BODY : 0;
}

/* Every kept field lies within the store, and the body within its limit. */
static void check_kept(const struct pf_http *h)
{
    for (uint32_t i = 0; i < h->req.nfields; i++) {
        const char *name, *value;
        uint32_t nl, vl;
        pf_http_field(h, i, &name, &nl, &value, &vl);
        if (name < h->store || name + nl > h->store + h->store_len || value < h->store ||
            value + vl > h->store + h->store_len || nl == 0)
            __builtin_trap();
    }
    if (h->body_len > limits.body)
        __builtin_trap();
}

static void feed(const char *p, size_t n, size_t cut)
{
    struct pf_http h;
    pf_http_init(&h, &limits, route, NULL);
    size_t ends[2] = {cut < n ? cut : n, n}, off = 0;
    for (int part = 0; part < 2; part++) {
        while (off < ends[part]) {
            size_t used = 0;
            enum pf_http_result r = pf_http_feed(&h, p + off, ends[part] - off, &used);
            if (used > ends[part] - off)
                __builtin_trap(); /* the parser claimed bytes it was not given */
            off += used;
            if (r == PF_HTTP_ERROR) {
                if (h.error_status < 400 || h.error_status > 599)
                    __builtin_trap();
                pf_http_free(&h);
                return;
            }
            if (r == PF_HTTP_REQUEST && h.req.path_len + h.req.query_len > h.req.target_len + 1)
                __builtin_trap(); /* the views lie within the target */
            if (r == PF_HTTP_REQUEST)
                check_kept(&h);
            if (r == PF_HTTP_CONTINUE && used == 0)
                __builtin_trap(); /* the end of a head takes at least its last byte */
            if (r == PF_HTTP_NEED_MORE)
                break;
        }
        off = ends[part];
    }
    pf_http_free(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    feed((const char *)data, size, size);
    if (size > 1)
        feed((const char *)data + 1, size - 1, data[0] % size);
    return 0;
}
