#ifndef PREFORKD_BUF_H
#define PREFORKD_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A fixed-capacity output buffer. Appends past capacity set `full` and are dropped, so a
 * caller checks once after building a whole response instead of after every piece. */
struct pf_buf {
    char *data;
    size_t len;
    size_t cap;
    bool full;
};

static inline void pf_buf_init(struct pf_buf *b, char *data, size_t cap)
{
    b->data = data;
    b->len = 0;
    b->cap = cap;
    b->full = false;
}

static inline void pf_buf_put(struct pf_buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        b->full = true;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

#define pf_buf_put_lit(b, s) pf_buf_put((b), (s), sizeof(s) - 1)

static inline void pf_buf_put_str(struct pf_buf *b, const char *s)
{
    pf_buf_put(b, s, strlen(s));
}

/* Writes the decimal digits of v into out (at least 20 bytes); returns their count. */
size_t pf_u64_to_dec(uint64_t v, char *out);

void pf_buf_put_u64(struct pf_buf *b, uint64_t v);
/* v / 10^decimals printed with that many decimals, e.g. (12345, 3) -> "12.345". */
void pf_buf_put_fixed(struct pf_buf *b, uint64_t v, unsigned decimals);

#endif
