#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "preforkd/http.h"

static struct pf_limits limits = {.request_line = 8192,
                                  .header_block = 16384,
                                  .headers = 100,
                                  .body = 1 << 20,
                                  .connections = 100};

/* Feeds `text` in chunks of `step` bytes (0: all at once) and describes every outcome,
 * one line each: "GET /path ka" / "HEAD /x close" / "ERR 400". */
static void run(const char *text, size_t len, size_t step, const struct pf_limits *lim, char *out,
                size_t outlen)
{
    struct pf_http h;
    pf_http_init(&h, lim ? lim : &limits, NULL, NULL);
    size_t pos = 0, o = 0;
    out[0] = '\0';
    if (!step)
        step = len;
    while (pos < len) {
        size_t end = pos + step < len ? pos + step : len;
        size_t off = pos;
        while (off < end) {
            size_t used;
            enum pf_http_result r = pf_http_feed(&h, text + off, end - off, &used);
            off += used;
            if (r == PF_HTTP_REQUEST) {
                static const char *const m[] = {"GET",   "HEAD",  "OPTIONS", "OTHER",
                                                "OTHER", "OTHER", "OTHER",   "OTHER"};
                o += (size_t)snprintf(out + o, outlen - o, "%s %.*s %s 1.%u\n", m[h.req.method],
                                      (int)h.req.path_len, h.req.path,
                                      h.req.keep_alive ? "ka" : "close", h.req.http_minor);
            } else if (r == PF_HTTP_ERROR) {
                o += (size_t)snprintf(out + o, outlen - o, "ERR %u\n", h.error_status);
                pf_http_free(&h);
                return;
            } else if (r == PF_HTTP_CONTINUE) {
                o += (size_t)snprintf(out + o, outlen - o, "CONTINUE %.*s\n", (int)h.req.path_len,
                                      h.req.path);
            } else {
                break;
            }
        }
        pos = end;
    }
    if (!pf_http_idle(&h))
        snprintf(out + o, outlen - o, "PARTIAL\n");
    pf_http_free(&h);
}

static void expect_limited(const struct pf_limits *lim, const char *text, size_t step,
                           const char *want)
{
    char got[512];
    run(text, strlen(text), step, lim, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("input: %.80s\nstep %zu: want %sgot %s", text, step, want, got);
}

static void expect(const char *text, const char *want)
{
    expect_limited(&limits, text, 0, want);
}

struct split_case {
    const char *in;
    const char *want;
};

/* Each input, fed in every chunk size from one byte up, must give the same outcome. */
static void expect_at_every_split(const struct split_case *t, size_t n)
{
    char got[512];
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(t[i].in);
        for (size_t step = 1; step <= len; step++) {
            run(t[i].in, len, step, NULL, got, sizeof(got));
            if (strcmp(got, t[i].want) != 0)
                fail_msg("case %zu (%s), step %zu: want %s got %s", i, t[i].in, step, t[i].want,
                         got);
        }
    }
}

#define EXPECT_AT_EVERY_SPLIT(table) expect_at_every_split(table, sizeof(table) / sizeof(table[0]))

static void test_simple_requests(void **state)
{
    (void)state;
    expect("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / ka 1.1\n");
    expect("HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD /health ka 1.1\n");
    expect("POST /heavy HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "OTHER /heavy ka 1.1\n");
    expect("GET /health?verbose=1&x=/y HTTP/1.1\r\nHost: a\r\n\r\n", "GET /health ka 1.1\n");
    expect("GET http://example.com/heavy?q HTTP/1.1\r\nHost: x\r\n\r\n", "GET /heavy ka 1.1\n");
    expect("GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n", "GET / ka 1.1\n");
}

static void test_connection_semantics(void **state)
{
    (void)state;
    expect("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET / close 1.1\n");
    expect("GET / HTTP/1.0\r\n\r\n", "GET / close 1.0\n");
    expect("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET / ka 1.0\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
           "GET / close 1.1\n");
}

static const char pipeline[] =
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    "GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    "GET /heavy HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n"
    "HEAD /nope?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    "DELETE / HTTP/1.1\r\nHost: a\r\n\r\n"
    "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
static const char pipeline_want[] = "GET / ka 1.1\n"
                                    "GET /health ka 1.1\n"
                                    "GET /heavy ka 1.1\n"
                                    "HEAD /nope ka 1.1\n"
                                    "OTHER / ka 1.1\n"
                                    "GET /health close 1.1\n";

static void test_pipelined_batch_with_bodies(void **state)
{
    (void)state;
    expect(pipeline, pipeline_want);
}

static void test_every_split_gives_the_same_requests(void **state)
{
    (void)state;
    char got[2048];
    size_t len = strlen(pipeline);
    /* One byte at a time, then every other chunk size. */
    for (size_t step = 1; step <= len; step++) {
        run(pipeline, len, step, NULL, got, sizeof(got));
        if (strcmp(got, pipeline_want) != 0)
            fail_msg("step %zu:\n%s", step, got);
    }
}

static void test_split_at_every_position(void **state)
{
    (void)state;
    char got[2048];
    size_t len = strlen(pipeline);
    for (size_t cut = 1; cut < len; cut++) {
        struct pf_http h;
        pf_http_init(&h, &limits, NULL, NULL);
        size_t o = 0, off = 0, ends[2] = {cut, len};
        got[0] = '\0';
        for (int part = 0; part < 2; part++) {
            while (off < ends[part]) {
                size_t used;
                enum pf_http_result r = pf_http_feed(&h, pipeline + off, ends[part] - off, &used);
                off += used;
                if (r != PF_HTTP_REQUEST)
                    break;
                o += (size_t)snprintf(got + o, sizeof(got) - o, "%.*s\n", (int)h.req.path_len,
                                      h.req.path);
            }
        }
        pf_http_free(&h);
        assert_string_equal(got, "/\n/health\n/heavy\n/nope\n/\n/health\n");
    }
}

static void test_partial_request_is_not_idle(void **state)
{
    (void)state;
    expect("GET /hea", "PARTIAL\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /", "GET / ka 1.1\nPARTIAL\n");
}

static void test_malformed(void **state)
{
    (void)state;
    expect("GARBAGE\r\n\r\n", "ERR 400\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", "ERR 400\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", "ERR 400\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ERR 400\n");
    expect("GET / HTTP/1.1\r\nHost: a\r\n\r\n\x01\x02\x03", "GET / ka 1.1\nERR 400\n");
    expect("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "ERR 400\n"); /* a TLS hello */
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "ERR 400\n");
}

static void test_versions(void **state)
{
    (void)state;
    expect("GET / HTTP/2.0\r\n\r\n", "ERR 505\n");
    expect("GET / HTTP/0.9\r\n\r\n", "ERR 505\n");
    expect("GET / HTTP/3.0\r\n\r\n", "ERR 505\n");
    static const struct split_case t[] = {
        /* HTTP/1.x minor versions are answered as 1.1 (RFC 9110 2.5). */
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", "GET / ka 1.1\n"},
        {"GET / HTTP/1.9\r\nHost: a\r\n\r\n", "GET / ka 1.1\n"},
        {"GET / HTTP/1.5\r\nHost: a\r\nConnection: close\r\n\r\n", "GET / close 1.1\n"},
        {"GET / HTTP/1.2\r\n\r\n", "ERR 400\n"}, /* and need a Host, as 1.1 does */
        {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", "ERR 400\n"},
        /* A request-line without HTTP-version is invalid (RFC 9112 3), not HTTP/0.9. */
        {"GET /\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET /\r\n\r\n", "ERR 400\n"},
        {"GET / \r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/\r\nHost: a\r\n\r\n", "ERR 400\n"},
        /* llhttp takes RTSP and ICE versions in a request; HTTP-version is "HTTP/". */
        {"GET / RTSP/1.0\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", "ERR 400\n"},
    };
    EXPECT_AT_EVERY_SPLIT(t);
}

/* RFC 9110 9.1: a method the server does not know, in a well-formed request-line, is 501;
 * RFC 9112 3: a malformed request-line is 400. Methods are case-sensitive tokens. */
static void test_unknown_methods(void **state)
{
    (void)state;
    static const struct split_case t[] = {
        {"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n", "ERR 501\n"},
        {"FOO /health HTTP/1.1\r\n", "ERR 501\n"}, /* decided at the end of its line */
        {"get / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 501\n"},
        {"GETX / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 501\n"},
        {"GE / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 501\n"},
        {"M-SEARCHING * HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 501\n"},
        {"DESCRIBE / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 501\n"}, /* RTSP's, not HTTP's */
        {"FOO http://a/b?c=d HTTP/1.0\r\n\r\n", "ERR 501\n"},
        {"!#$%&'*+-.^_`|~09az / HTTP/1.1\r\n", "ERR 501\n"},
        /* RFC 9112 3: a method longer than any the server implements: 501 at once. */
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ", "ERR 501\n"},
        {"FOO / HTTP/2.0\r\nHost: a\r\n\r\n", "ERR 505\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\nFOO / HTTP/1.1\r\n\r\n", "GET / ka 1.1\nERR 501\n"},
        /* Malformed: 400. */
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO\t/ HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GE(T) / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {" FOO / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO  / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO / HTTP/1.1 \r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO /\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO\r\n\r\n", "ERR 400\n"},
        {"FOO /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO /\xd6 HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO / HTTP/1.1\nHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO / HTTP/1.1\rHost: a\r\n\r\n", "ERR 400\n"},
        {"FOO / RTSP/1.0\r\n\r\n", "ERR 400\n"},
        {"FOO / HTTP/1.10\r\n\r\n", "ERR 400\n"},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "ERR 400\n"},
        /* Methods llhttp knows are routed: 405 or 404 come from the router. */
        {"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", "OTHER / ka 1.1\n"},
    };
    EXPECT_AT_EVERY_SPLIT(t);
    expect("FOO / HTTP/1.", "PARTIAL\n");
}

/* RFC 9112 3.2.4: the asterisk-form is for OPTIONS only; "*" is the whole target. */
static void test_asterisk_form(void **state)
{
    (void)state;
    static const struct split_case t[] = {
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * ka 1.1\n"},
        {"OPTIONS /health HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS /health ka 1.1\n"},
        {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"HEAD * HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "ERR 400\n"},
        {"GET *abc HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"OPTIONS *abc HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"OPTIONS ** HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"OPTIONS *?x HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
    };
    EXPECT_AT_EVERY_SPLIT(t);
}

/* Expect (RFC 9110 10.1.1): 100-continue with a body to come stops at the end of the head
 * so that the caller can answer 100 or the final status; any other expectation is 417. */
static void test_expect(void **state)
{
    (void)state;
#define EXPECT_CL5(v)                                                                              \
    "POST /health HTTP/1.1\r\nHost: a\r\nExpect: " v "\r\nContent-Length: 5\r\n\r\nhello"
    static const struct split_case t[] = {
        {EXPECT_CL5("100-continue"), "CONTINUE /health\nOTHER /health ka 1.1\n"},
        {EXPECT_CL5("100-CONTINUE"), "CONTINUE /health\nOTHER /health ka 1.1\n"},
        {EXPECT_CL5("100-continue  "), "CONTINUE /health\nOTHER /health ka 1.1\n"},
        {EXPECT_CL5(", 100-continue ,"), "CONTINUE /health\nOTHER /health ka 1.1\n"},
        {EXPECT_CL5("100-continue, 100-continue"), "CONTINUE /health\nOTHER /health ka 1.1\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
         "\r\n5\r\nhello\r\n0\r\n\r\n",
         "CONTINUE /\nGET / ka 1.1\n"},
        /* No body to come: nothing to ask for. */
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", "GET / ka 1.1\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
         "GET / ka 1.1\n"},
        /* HTTP/1.0: 100-continue is ignored (RFC 9110 10.1.1). */
        {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
         "OTHER / close 1.0\n"},
        {EXPECT_CL5(""), "OTHER /health ka 1.1\n"},
        /* Expectations this server cannot meet. */
        {EXPECT_CL5("foo"), "ERR 417\n"},
        {EXPECT_CL5("100-continue, foo"), "ERR 417\n"},
        {EXPECT_CL5("100-continues"), "ERR 417\n"},
        {EXPECT_CL5("100-continue x"), "ERR 417\n"},
        {EXPECT_CL5("100-continue;a=b"), "ERR 417\n"},
        {EXPECT_CL5("100"), "ERR 417\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: foo\r\n\r\n", "ERR 417\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n", "ERR 417\n"},
        {"GET / HTTP/1.0\r\nExpect: foo\r\n\r\n", "ERR 417\n"},
        /* A body past the limit is 413 before any 100. */
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n",
         "ERR 413\n"},
    };
#undef EXPECT_CL5
    EXPECT_AT_EVERY_SPLIT(t);
}

static void test_limits(void **state)
{
    (void)state;
    struct pf_limits lim = {
        .request_line = 64, .header_block = 256, .headers = 4, .body = 10, .connections = 1};
    char got[512], req[2048];

    snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 63, 0);
    run(req, strlen(req), 0, &lim, got, sizeof(got));
    /* A 64-byte target is exactly at the limit: accepted. */
    assert_int_equal(strlen(got), strlen("GET ") + 64 + strlen(" ka 1.1\n"));
    assert_true(strncmp(got, "GET /000", 8) == 0);
    snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 64, 0);
    expect_limited(&lim, req, 0, "ERR 414\n");
    /* Same limit when the target arrives a byte at a time. */
    expect_limited(&lim, req, 1, "ERR 414\n");

    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    expect_limited(&lim, req, 0, "GET / ka 1.1\n");
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    expect_limited(&lim, req, 0, "ERR 431\n");

    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n", 300, 0);
    expect_limited(&lim, req, 0, "ERR 431\n");
    expect_limited(&lim, req, 7, "ERR 431\n");

    const char *cl10 = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    expect_limited(&lim, cl10, 0, "GET / ka 1.1\n");
    const char *cl11 = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
    expect_limited(&lim, cl11, 0, "ERR 413\n");
    /* An unknown method's target counts against the same limit. */
    snprintf(req, sizeof(req), "FOO /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 63, 0);
    expect_limited(&lim, req, 0, "ERR 501\n");
    snprintf(req, sizeof(req), "FOO /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 64, 0);
    expect_limited(&lim, req, 0, "ERR 414\n");
    expect_limited(&lim, req, 1, "ERR 414\n");

    const char *chunked =
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n"
        "6\r\nabcdef\r\n0\r\n\r\n";
    expect_limited(&lim, chunked, 0, "ERR 413\n");
    /* A chunk whose declared size is past the limit is 413 before any of its data. */
#define TE_CHUNKED "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    expect_limited(&lim, TE_CHUNKED "b\r\n", 0, "ERR 413\n");
    expect_limited(&lim, TE_CHUNKED "b\r\n", 1, "ERR 413\n");
    expect_limited(&lim, TE_CHUNKED "6\r\nabcdef\r\n5\r\n", 0, "ERR 413\n");
    expect_limited(&lim, TE_CHUNKED "FFFFFFFFFFFFFFFF\r\nhello", 0, "ERR 413\n");
    expect_limited(&lim, TE_CHUNKED "FFFFFFFFFFFFFFFF;x=y\r\nhello", 3, "ERR 413\n");
    expect_limited(&lim, TE_CHUNKED "a\r\n0123456789\r\n0\r\n\r\n", 0, "GET / ka 1.1\n");
    expect_limited(&lim, TE_CHUNKED "6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n", 1, "GET / ka 1.1\n");
    expect(TE_CHUNKED "FFFFFFFFFFFFFFFF\r\nhello", "ERR 413\n");
    expect(TE_CHUNKED "100001\r\n", "ERR 413\n"); /* limits.body is 1 MiB here */
    expect(TE_CHUNKED "100000\r\n", "PARTIAL\n");
#undef TE_CHUNKED
}

static void test_long_query_still_routes(void **state)
{
    (void)state;
    char req[1024], got[256];
    snprintf(req, sizeof(req), "GET /health?%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 500, 0);
    run(req, strlen(req), 0, NULL, got, sizeof(got));
    assert_string_equal(got, "GET /health ka 1.1\n");
    /* A long path is kept whole (up to limits.request_line), not cut. */
    char want[256];
    snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nHost: a\r\n\r\n", 100, 0);
    run(req, strlen(req), 0, NULL, got, sizeof(got));
    snprintf(want, sizeof(want), "GET /%0*d ka 1.1\n", 100, 0);
    assert_string_equal(got, want);
}

static void test_framing_rules_hold_at_every_split(void **state)
{
    (void)state;
    static const struct split_case t[] = {
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", "ERR 400\n"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "ERR 400\n"},
        {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "GET / close 1.0\n"},
        /* Trailer fields are not looked at: not the head's Host, Expect or framing. */
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
         "Host: a/b\r\nExpect: foo\r\nTransfer-Encoding: \r\n\r\n",
         "GET / ka 1.1\n"},
        /* A body may hold bare LFs and leading spaces: only the head is checked. */
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n a\nb\rc"
         "GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
         "GET / ka 1.1\nGET /health ka 1.1\n"},
    };
    EXPECT_AT_EVERY_SPLIT(t);
}

/* A Transfer-Encoding field is present whatever its value (RFC 9112 6.1, 6.3): an empty
 * one, or one of only spaces and tabs, is a coding list without a final chunked. */
static void test_empty_transfer_encoding(void **state)
{
    (void)state;
    static const struct split_case t[] = {
        {"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\n"
         "helloGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
         "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello",
         "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t \r\nContent-Length: 5\r\n\r\nhello",
         "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: \r\n\r\nhello",
         "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
         "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.0\r\nTransfer-Encoding: \r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n",
         "ERR 400\n"},
        /* The neighbours that stay as they were. */
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", "ERR 400\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n",
         "GET / ka 1.1\n"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-Transfer-Encoding: \r\nContent-Length: 1\r\n\r\nx",
         "GET / ka 1.1\n"},
    };
    EXPECT_AT_EVERY_SPLIT(t);
}

/* RFC 9110 7.2, RFC 9112 3.2: Host = uri-host [ ":" port ] (RFC 3986): a reg-name, an
 * IPv4 address (which is also a reg-name) or a bracketed IPv6 address; anything else is
 * 400. */
static void test_host_values(void **state)
{
    (void)state;
#define HOST(v) "GET / HTTP/1.1\r\nHost: " v "\r\n\r\n"
    static const struct split_case t[] = {
        {HOST("a/b"), "ERR 400\n"},
        {HOST("a, b"), "ERR 400\n"},
        {HOST("a b"), "ERR 400\n"},
        {HOST("\xd6 a"), "ERR 400\n"},
        {HOST("\xd6"), "ERR 400\n"},
        {HOST("a\tb"), "ERR 400\n"},
        {HOST("user@a"), "ERR 400\n"},
        {HOST("a?b"), "ERR 400\n"},
        {HOST("a#b"), "ERR 400\n"},
        {HOST("a\\b"), "ERR 400\n"},
        {HOST("a:b"), "ERR 400\n"},
        {HOST("a:80:90"), "ERR 400\n"},
        {HOST("a:8 0"), "ERR 400\n"},
        {HOST("a%zz"), "ERR 400\n"},
        {HOST("a%4"), "ERR 400\n"},
        {HOST("::1"), "ERR 400\n"},
        {HOST("[::1"), "ERR 400\n"},
        {HOST("[::1]x"), "ERR 400\n"},
        {HOST("[::1]]"), "ERR 400\n"},
        {HOST("[]"), "ERR 400\n"},
        {HOST("[zz::1]"), "ERR 400\n"},
        {HOST("[1.2.3.4]"), "ERR 400\n"},
        {HOST("[::1]:8a"), "ERR 400\n"},
        {HOST("[v1.a]"), "ERR 400\n"}, /* IPvFuture: no version this server knows */
        {HOST("[1:2:3:4:5:6:7:8:9]"), "ERR 400\n"},
        {HOST("[0000000000000000000000000000000000000000000000000001::]"), "ERR 400\n"},
        {"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", "ERR 400\n"},
        /* Valid. */
        {HOST("a"), "GET / ka 1.1\n"},
        {HOST("Example.COM"), "GET / ka 1.1\n"},
        {HOST("example.com.:8080"), "GET / ka 1.1\n"},
        {HOST("xn--bcher-kva.example"), "GET / ka 1.1\n"},
        {HOST("127.0.0.1"), "GET / ka 1.1\n"},
        {HOST("127.0.0.1:4400"), "GET / ka 1.1\n"},
        {HOST("[::1]"), "GET / ka 1.1\n"},
        {HOST("[::1]:4400"), "GET / ka 1.1\n"},
        {HOST("[2001:DB8::ffff:192.0.2.1]"), "GET / ka 1.1\n"},
        {HOST("a%2Db"), "GET / ka 1.1\n"},
        {HOST("a-b_c~d!$&'()*+,;=e"), "GET / ka 1.1\n"}, /* unreserved and sub-delims */
        {HOST("a:"), "GET / ka 1.1\n"},                  /* port = *DIGIT */
        {HOST("a  "), "GET / ka 1.1\n"},                 /* trailing OWS is not the value */
        /* Empty: a client sends it when the target URI has no authority (RFC 9112 3.2);
         * this server has one site, so its default authority applies (RFC 9112 3.3). */
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET / ka 1.1\n"},
        {HOST(""), "GET / ka 1.1\n"},
        {"GET / HTTP/1.0\r\nHost: a:80\r\n\r\n", "GET / close 1.0\n"},
    };
#undef HOST
    EXPECT_AT_EVERY_SPLIT(t);
}

static void test_error_is_sticky(void **state)
{
    (void)state;
    struct pf_http h;
    size_t used;
    pf_http_init(&h, &limits, NULL, NULL);
    assert_int_equal(pf_http_feed(&h, "BAD\r\n\r\n", 7, &used), PF_HTTP_ERROR);
    assert_int_equal(pf_http_feed(&h, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 18, &used),
                     PF_HTTP_ERROR);
    assert_int_equal(used, 0);
    pf_http_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_requests),
        cmocka_unit_test(test_connection_semantics),
        cmocka_unit_test(test_pipelined_batch_with_bodies),
        cmocka_unit_test(test_every_split_gives_the_same_requests),
        cmocka_unit_test(test_split_at_every_position),
        cmocka_unit_test(test_partial_request_is_not_idle),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_unknown_methods),
        cmocka_unit_test(test_asterisk_form),
        cmocka_unit_test(test_expect),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_long_query_still_routes),
        cmocka_unit_test(test_framing_rules_hold_at_every_split),
        cmocka_unit_test(test_empty_transfer_encoding),
        cmocka_unit_test(test_host_values),
        cmocka_unit_test(test_error_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
