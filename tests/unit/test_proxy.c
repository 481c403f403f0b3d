#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "preforkd/proxy.h"

/* Every proper prefix of a valid header asks for more; the whole of it parses, and so
 * does the header followed by a request. */
static void expect_valid(enum pf_proxy_version v, const char *hdr, size_t len,
                         struct pf_proxy_addr *out)
{
    char buf[2048];
    for (size_t i = 0; i < len; i++)
        assert_int_equal(pf_proxy_parse(v, hdr, i, out), 0);
    assert_int_equal(pf_proxy_parse(v, hdr, len, out), (int)len);
    memcpy(buf, hdr, len);
    memcpy(buf + len, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(pf_proxy_parse(v, buf, len + 16, out), (int)len);
}

static void test_v1(void **state)
{
    (void)state;
    struct pf_proxy_addr a;
    const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    expect_valid(PF_PROXY_V1, h, strlen(h), &a);
    assert_true(a.known);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a.src;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 56324);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0xC0000207);
    h = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 80\r\n";
    expect_valid(PF_PROXY_V1, h, strlen(h), &a);
    assert_int_equal(a.src.ss_family, AF_INET6);
    h = "PROXY UNKNOWN\r\n";
    expect_valid(PF_PROXY_V1, h, strlen(h), &a);
    assert_false(a.known);
    h = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    expect_valid(PF_PROXY_V1, h, strlen(h), &a);
    assert_false(a.known);
}

static void test_v1_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",                     /* no header at all */
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* case matters */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a field missing */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* one too many */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    /* double space */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",       /* not an address */
        "PROXY TCP4 ::1 ::1 1 2\r\n",             /* v6 in TCP4 */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",     /* v4 in TCP6 */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",   /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",    /* sign */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* protocol */
        "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",    /* bare CR */
    };
    struct pf_proxy_addr a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = pf_proxy_parse(PF_PROXY_V1, bad[i], strlen(bad[i]), &a);
        if (rc != -EINVAL)
            fail_msg("case %zu accepted (%d): %s", i, rc, bad[i]);
    }
    /* Longer than 107 bytes without a CRLF: not a header. */
    char longer[200];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "PROXY TCP4 ", 11);
    assert_int_equal(pf_proxy_parse(PF_PROXY_V1, longer, PF_PROXY_V1_MAX - 1, &a), 0);
    assert_int_equal(pf_proxy_parse(PF_PROXY_V1, longer, PF_PROXY_V1_MAX, &a), -EINVAL);
    /* A v2 header on a v1 listener and the reverse. */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V1, "\r\n\r\n\0\r\nQUIT\n", 12, &a), -EINVAL);
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, "PROXY ", 6, &a), -EINVAL);
}

static size_t v2(uint8_t *b, uint8_t cmd, uint8_t fam, const void *addr, size_t alen, size_t tlv)
{
    static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(b, sig, 12);
    b[12] = cmd;
    b[13] = fam;
    b[14] = (uint8_t)((alen + tlv) >> 8);
    b[15] = (uint8_t)(alen + tlv);
    if (alen)
        memcpy(b + 16, addr, alen);
    memset(b + 16 + alen, 0, tlv);
    return 16 + alen + tlv;
}

static void test_v2(void **state)
{
    (void)state;
    uint8_t b[1200];
    struct pf_proxy_addr a;
    const uint8_t v4[12] = {192, 0, 2, 7, 198, 51, 100, 1, 0xDC, 0x04, 0x01, 0xBB};
    size_t n = v2(b, 0x21, 0x11, v4, sizeof(v4), 0);
    expect_valid(PF_PROXY_V2, (const char *)b, n, &a);
    const struct sockaddr_in *in = (const struct sockaddr_in *)&a.src;
    assert_true(a.known);
    assert_int_equal(ntohs(in->sin_port), 56324);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0xC0000207);
    /* With TLVs after the addresses. */
    n = v2(b, 0x21, 0x11, v4, sizeof(v4), 20);
    expect_valid(PF_PROXY_V2, (const char *)b, n, &a);
    uint8_t v6[36] = {0x20, 0x01, 0x0d, 0xb8};
    v6[15] = 1;
    v6[32] = 0x30;
    v6[33] = 0x39;
    n = v2(b, 0x21, 0x21, v6, sizeof(v6), 0);
    expect_valid(PF_PROXY_V2, (const char *)b, n, &a);
    assert_int_equal(a.src.ss_family, AF_INET6);
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)&a.src)->sin6_port), 12345);
    /* LOCAL: the balancer's own check; the peer address stays. */
    n = v2(b, 0x20, 0x00, NULL, 0, 0);
    expect_valid(PF_PROXY_V2, (const char *)b, n, &a);
    assert_false(a.known);
    /* UDP over IPv4: taken, but not a client address of ours. */
    n = v2(b, 0x21, 0x12, v4, sizeof(v4), 0);
    expect_valid(PF_PROXY_V2, (const char *)b, n, &a);
    assert_false(a.known);
}

static void test_v2_malformed(void **state)
{
    (void)state;
    uint8_t b[1200];
    struct pf_proxy_addr a;
    const uint8_t v4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    size_t n = v2(b, 0x11, 0x11, v4, sizeof(v4), 0); /* version 1 */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, n, &a), -EINVAL);
    n = v2(b, 0x22, 0x11, v4, sizeof(v4), 0); /* command 2 */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, n, &a), -EINVAL);
    n = v2(b, 0x21, 0x11, v4, 8, 0); /* IPv4 block too short */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, n, &a), -EINVAL);
    n = v2(b, 0x21, 0x41, v4, sizeof(v4), 0); /* family 4 */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, n, &a), -EINVAL);
    n = v2(b, 0x21, 0x11, v4, sizeof(v4), 1100); /* longer than we take */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, 16, &a), -EINVAL);
    n = v2(b, 0x21, 0x11, v4, sizeof(v4), 0);
    b[5] = 'X'; /* signature */
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, n, &a), -EINVAL);
    assert_int_equal(pf_proxy_parse(PF_PROXY_V2, (const char *)b, 6, &a), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_v2_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
