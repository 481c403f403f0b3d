#include "preforkd/buf.h"

size_t pf_u64_to_dec(uint64_t v, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void pf_buf_put_u64(struct pf_buf *b, uint64_t v)
{
    char d[20];
    pf_buf_put(b, d, pf_u64_to_dec(v, d));
}

void pf_buf_put_fixed(struct pf_buf *b, uint64_t v, unsigned decimals)
{
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++)
        scale *= 10;
    pf_buf_put_u64(b, v / scale);
    if (!decimals)
        return;
    char frac[20];
    uint64_t f = v % scale;
    for (unsigned i = decimals; i > 0; i--) {
        frac[i - 1] = (char)('0' + f % 10);
        f /= 10;
    }
    pf_buf_put_lit(b, ".");
    pf_buf_put(b, frac, decimals);
}
