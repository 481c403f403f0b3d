/* One request, one meaning (RFC 9112): a table of raw requests, each with the status it
 * must get and whether the connection must close. A rejected request is answered with
 * Connection: close and nothing after it is ever parsed (no resynchronising). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

enum conn_after { KEEP, CLOSE };

struct smuggle_case {
    const char *name;
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    int status;
    enum conn_after after;
    int second; /* status of a second, pipelined answer; 0: none may come */
};

#define H "Host: a\r\n"
#define G "GET / HTTP/1.1\r\n"

static const struct smuggle_case cases[] = {
    /* Well-formed requests: answered, connection kept. */
    {"plain GET", G H "\r\n", 0, 200, KEEP, 0},
    {"HEAD (closing, so the bodiless answer's end is the stream's)",
     "HEAD / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 0, 200, CLOSE, 0},
    {"Content-Length body", G H "Content-Length: 5\r\n\r\nhello", 0, 200, KEEP, 0},
    {"Content-Length: 0", G H "Content-Length: 0\r\n\r\n", 0, 200, KEEP, 0},
    {"chunked body", G H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 0, 200, KEEP,
     0},
    {"chunked, upper-case hex",
     G H "Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", 0, 200, KEEP, 0},
    {"chunk extension", G H "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n", 0,
     200, KEEP, 0},
    {"trailer field", G H "Transfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n", 0, 200,
     KEEP, 0},
    {"gzip, chunked (chunked last)", G H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0,
     200, KEEP, 0},
    {"Chunked in other case", G H "Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 0, 200, KEEP, 0},
    {"tab inside a value", G H "X-A: a\tb\r\n\r\n", 0, 200, KEEP, 0},
    {"OWS around a value", G "Host:   a  \r\n\r\n", 0, 200, KEEP, 0},
    {"lower-case host", G "host: a\r\n\r\n", 0, 200, KEEP, 0},
    {"empty Host value", G "Host:\r\n\r\n", 0, 200, KEEP, 0},
    {"absolute-form target", "GET http://a/health HTTP/1.1\r\n" H "\r\n", 0, 200, KEEP, 0},
    {"query string", "GET /health?x=1&y=%20 HTTP/1.1\r\n" H "\r\n", 0, 200, KEEP, 0},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 200, KEEP, 0},
    {"unknown path", "GET /nope HTTP/1.1\r\n" H "\r\n", 0, 404, KEEP, 0},
    {"other method", "DELETE / HTTP/1.1\r\n" H "\r\n", 0, 405, KEEP, 0},
    {"two pipelined", G H "\r\n" G H "\r\n", 0, 200, KEEP, 200},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, 200, KEEP, 0},
    {"OPTIONS on a route", "OPTIONS /health HTTP/1.1\r\n" H "\r\n", 0, 405, KEEP, 0},
    /* Expect (RFC 9110 10.1.1). */
    {"Expect 100-continue, no body to come", G H "Expect: 100-continue\r\n\r\n", 0, 200, KEEP, 0},
    {"Expect 100-continue, body already sent",
     "GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello", 0,
     200, KEEP, 0},
    {"Expect 100-continue, 405 known from the head",
     "POST /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", 0,
     405, CLOSE, 0},
    {"Expect 100-continue, 405, body sent anyway",
     "POST /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
     0, 405, CLOSE, 0},
    {"Expect 100-continue, 404 known from the head",
     "GET /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, 404, CLOSE, 0},
    {"Expect 100-continue, body past the limit",
     G H "Expect: 100-continue\r\nContent-Length: 2000000\r\n\r\n", 0, 413, CLOSE, 0},
    {"Expect: foo", G H "Expect: foo\r\n\r\n", 0, 417, CLOSE, 0},
    {"Expect: 100-continue, foo", G H "Expect: 100-continue, foo\r\nContent-Length: 5\r\n\r\n", 0,
     417, CLOSE, 0},
    /* Answered, then closed. */
    {"HTTP/1.0 default close", "GET / HTTP/1.0\r\n\r\n", 0, 200, CLOSE, 0},
    {"Connection: close", G H "Connection: close\r\n\r\n", 0, 200, CLOSE, 0},
    {"HTTP/1.0 with Transfer-Encoding",
     "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 200, CLOSE, 0},
    {"Upgrade: h2c",
     G H "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
         "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
     0, 200, CLOSE, 0},
    {"close, then a smuggled request", G H "Connection: close\r\n\r\n" G H "\r\n", 0, 200, CLOSE,
     0},
    /* Content-Length and Transfer-Encoding disagreements. */
    {"TE then CL", G H "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"CL then TE", G H "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"two Content-Length, same", G H "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 0, 400,
     CLOSE, 0},
    {"two Content-Length, differing", G H "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 0,
     400, CLOSE, 0},
    {"Content-Length list", G H "Content-Length: 5, 5\r\n\r\nhello", 0, 400, CLOSE, 0},
    {"Content-Length +5", G H "Content-Length: +5\r\n\r\nhello", 0, 400, CLOSE, 0},
    {"Content-Length -1", G H "Content-Length: -1\r\n\r\n", 0, 400, CLOSE, 0},
    {"Content-Length 0x5", G H "Content-Length: 0x5\r\n\r\nhello", 0, 400, CLOSE, 0},
    {"Content-Length 5a", G H "Content-Length: 5a\r\n\r\nhello", 0, 400, CLOSE, 0},
    {"Content-Length overflow", G H "Content-Length: 99999999999999999999999\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"Content-Length empty", G H "Content-Length: \r\n\r\n", 0, 400, CLOSE, 0},
    {"TE chunked not last", G H "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 0, 400, CLOSE,
     0},
    {"TE gzip only", G H "Transfer-Encoding: gzip\r\n\r\n", 0, 400, CLOSE, 0},
    {"TE xchunked", G H "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 0, 400, CLOSE, 0},
    {"TE in two fields",
     G H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400, CLOSE,
     0},
    {"TE split over two fields",
     G H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n",
     0, 400, CLOSE, 0},
    /* An empty Transfer-Encoding is still a Transfer-Encoding (RFC 9112 6.1, 6.3). */
    {"empty TE with CL, then a request",
     "GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\n"
     "helloGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
     0, 400, CLOSE, 0},
    {"TE with no value, with CL", G H "Transfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello", 0,
     400, CLOSE, 0},
    {"TE of spaces and tabs, with CL",
     G H "Transfer-Encoding:  \t \r\nContent-Length: 5\r\n\r\nhello", 0, 400, CLOSE, 0},
    {"CL, then an empty TE", G H "Content-Length: 5\r\nTransfer-Encoding: \r\n\r\nhello", 0, 400,
     CLOSE, 0},
    {"empty TE, chunked body", G H "Transfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"empty TE alone", G H "Transfer-Encoding: \r\n\r\n", 0, 400, CLOSE, 0},
    {"empty TE in HTTP/1.0", "GET / HTTP/1.0\r\nTransfer-Encoding: \r\n\r\n", 0, 400, CLOSE, 0},
    {"TE list of nothing", G H "Transfer-Encoding: ,\r\n\r\n", 0, 400, CLOSE, 0},
    /* Field names. */
    {"space before colon", G "Host : a\r\n\r\n", 0, 400, CLOSE, 0},
    {"space before colon on TE", G H "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 0, 400, CLOSE,
     0},
    {"space inside a name", G "Ho st: a\r\n\r\n", 0, 400, CLOSE, 0},
    {"tab before colon", G "Host\t: a\r\n\r\n", 0, 400, CLOSE, 0},
    {"control byte in a name", G H "X\x01Y: 1\r\n\r\n", 0, 400, CLOSE, 0},
    {"empty name", G H ": value\r\n\r\n", 0, 400, CLOSE, 0},
    /* Line folding and line endings. */
    {"obs-fold with space", G H "X-A: a\r\n b\r\n\r\n", 0, 400, CLOSE, 0},
    {"obs-fold with tab", G H "X-A: a\r\n\tb\r\n\r\n", 0, 400, CLOSE, 0},
    {"first header line folded", G "\tHost: a\r\n\r\n", 0, 400, CLOSE, 0},
    {"bare LF after request line", "GET / HTTP/1.1\n" H "\r\n", 0, 400, CLOSE, 0},
    {"bare LF between headers", G "Host: a\nX-A: b\r\n\r\n", 0, 400, CLOSE, 0},
    {"bare LF ending the head", G H "\n", 0, 400, CLOSE, 0},
    {"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 0, 400, CLOSE, 0},
    {"bare CR in a value", G "Host: a\rX-A: b\r\n\r\n", 0, 400, CLOSE, 0},
    {"bare CR in the request line", "GET / HTTP/1.1\r" H "\r\n", 0, 400, CLOSE, 0},
    /* Control bytes. */
    {"NUL in a value", G "Host: a\0b\r\n\r\n", sizeof(G "Host: a\0b\r\n\r\n") - 1, 400, CLOSE, 0},
    {"NUL in the target", "GET /\0 HTTP/1.1\r\n" H "\r\n",
     sizeof("GET /\0 HTTP/1.1\r\n" H "\r\n") - 1, 400, CLOSE, 0},
    {"0x01 in the target", "GET /\x01 HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"DEL in a value", G H "X-A: a\x7f\r\n\r\n", 0, 400, CLOSE, 0},
    {"ESC in a value", G H "X-A: \x1b[31m\r\n\r\n", 0, 400, CLOSE, 0},
    /* Host. */
    {"HTTP/1.1 without Host", G "\r\n", 0, 400, CLOSE, 0},
    {"two Host fields", G "Host: a\r\nHost: b\r\n\r\n", 0, 400, CLOSE, 0},
    {"two Host fields, other case", G "Host: a\r\nhost: a\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host with a slash", "GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host as a list", "GET /health HTTP/1.1\r\nHost: a, b\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host with a space", "GET /health HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host with a non-ASCII byte", "GET /health HTTP/1.1\r\nHost: \xd6 a\r\n\r\n", 0, 400, CLOSE,
     0},
    {"Host with userinfo", G "Host: user@a\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host with a bad port", G "Host: a:b\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host, unbracketed IPv6", G "Host: ::1\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host, bad IPv6 literal", G "Host: [::g]\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host, bad pct-encoding", G "Host: a%zz\r\n\r\n", 0, 400, CLOSE, 0},
    {"Host, name and port", G "Host: example.com:4400\r\n\r\n", 0, 200, KEEP, 0},
    {"Host, IPv4 and port", G "Host: 127.0.0.1:4400\r\n\r\n", 0, 200, KEEP, 0},
    {"Host, IPv6 and port", G "Host: [::1]:4400\r\n\r\n", 0, 200, KEEP, 0},
    /* Chunk framing. */
    {"chunk size not hex", G H "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"negative chunk size", G H "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"chunk size with 0x", G H "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"space after chunk size", G H "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"chunk size overflow",
     G H "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 0, 400,
     CLOSE, 0},
    {"chunk size past limits.body",
     "GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "FFFFFFFFFFFFFFFF\r\nhello",
     0, 413, CLOSE, 0},
    {"chunk size past limits.body, no data", G H "Transfer-Encoding: chunked\r\n\r\n100001\r\n", 0,
     413, CLOSE, 0},
    {"no CRLF after chunk data", G H "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"bare LF after chunk data", G H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"bare LF after chunk size", G H "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 0,
     400, CLOSE, 0},
    {"chunk shorter than its size", G H "Transfer-Encoding: chunked\r\n\r\n5\r\nhel\r\n0\r\n\r\n",
     0, 400, CLOSE, 0},
    /* Request line. */
    {"two spaces after method", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"space after version", "GET / HTTP/1.1 \r\n" H "\r\n", 0, 400, CLOSE, 0},
    /* Methods are case-sensitive tokens: an unknown one is 501 (RFC 9110 9.1). */
    {"lower-case method", "get / HTTP/1.1\r\n" H "\r\n", 0, 501, CLOSE, 0},
    {"unknown method", "FETCH / HTTP/1.1\r\n" H "\r\n", 0, 501, CLOSE, 0},
    {"unknown method FOO", "FOO /health HTTP/1.1\r\nHost: x\r\n\r\n", 0, 501, CLOSE, 0},
    {"known method, a letter more", "GETX / HTTP/1.1\r\n" H "\r\n", 0, 501, CLOSE, 0},
    {"RTSP method", "DESCRIBE / HTTP/1.1\r\n" H "\r\n", 0, 501, CLOSE, 0},
    {"malformed method", "G@T / HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"tab after method", "GET\t/ HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"unknown method, no version", "FOO /\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"lower-case protocol", "GET / http/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 505, CLOSE, 0},
    {"HTTP/3.0", "GET / HTTP/3.0\r\n" H "\r\n", 0, 505, CLOSE, 0},
    {"HTTP/1.x with two digits", "GET / HTTP/1.10\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"HTTP/1.2, answered as 1.1", "GET /health HTTP/1.2\r\nHost: x\r\n\r\n", 0, 200, KEEP, 0},
    {"HTTP/1.9, answered as 1.1", "GET /health HTTP/1.9\r\nHost: x\r\n\r\n", 0, 200, KEEP, 0},
    {"HTTP/1.2 without Host", "GET / HTTP/1.2\r\n\r\n", 0, 400, CLOSE, 0},
    {"no HTTP version", "GET /\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"no HTTP version, no header", "GET /\r\n\r\n", 0, 400, CLOSE, 0},
    {"GET *", "GET * HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"HEAD *", "HEAD * HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"OPTIONS *x", "OPTIONS *x HTTP/1.1\r\n" H "\r\n", 0, 400, CLOSE, 0},
    {"RTSP version", "GET / RTSP/1.0\r\n\r\n", 0, 400, CLOSE, 0},
    {"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 400, CLOSE, 0},
    /* After a good request, a bad one: the first is answered, then 400 and close. */
    {"good, then a smuggling attempt",
     G H "Content-Length: 0\r\n\r\n" G H "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     0, 200, CLOSE, 400},
    {"good, then garbage", G H "\r\nBLAH\r\n\r\n", 0, 200, CLOSE, 400},
    {"bad, then a good one (never resynchronise)", G "Host : a\r\n\r\n" G H "\r\n", 0, 400, CLOSE,
     0},
};

static struct daemon d;

static int start(void **state)
{
    (void)state;
    daemon_start(&d, NULL, 2);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    daemon_stop(&d);
    return 0;
}

static int statuses(const char *buf, size_t len, int *out, int max)
{
    int n = 0;
    for (const char *p = buf; p < buf + len && n < max; p++) {
        p = memmem(p, (size_t)(buf + len - p), "HTTP/1.1 ", 9);
        if (!p)
            break;
        out[n++] = atoi(p + 9);
    }
    return n;
}

static void test_table(void **state)
{
    (void)state;
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    static char buf[1 << 14];
    int failures = 0;
    for (size_t i = 0; i < ncases; i++) {
        const struct smuggle_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->raw);
        int fd = tcp_connect(d.port);
        send_all(fd, c->raw, len);
        bool eof;
        size_t n = read_responses(fd, c->second ? 2 : 1, buf, sizeof(buf), &eof);
        int st[4];
        int k = statuses(buf, n, st, 4);
        bool ok = k >= 1 && st[0] == c->status && (!c->second || (k >= 2 && st[1] == c->second));
        if (c->after == CLOSE) {
            if (!eof)
                read_responses(fd, 0, buf + n, sizeof(buf) - n, &eof);
            /* Nothing beyond the expected answers, and the end of the stream. */
            k = statuses(buf, strlen(buf), st, 4);
            ok = ok && eof && k == (c->second ? 2 : 1);
            ok = ok && (k < 1 || strstr(buf, "Connection: close\r\n") || c->status < 400);
        } else {
            /* Still usable: a follow-up request is answered on the same connection. */
            static const char follow[] = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
            send_all(fd, follow, sizeof(follow) - 1);
            size_t m = read_responses(fd, 1, buf, sizeof(buf), &eof);
            ok = ok && statuses(buf, m, st, 4) == 1 && st[0] == 200;
        }
        close(fd);
        print_message("%s %-45s -> %d %s\n", ok ? "ok  " : "FAIL", c->name, c->status,
                      c->after == CLOSE ? "close" : "keep-alive");
        if (!ok)
            print_message("     got: eof %d, %.120s\n", eof, buf);
        failures += !ok;
    }
    print_message("%zu requests, %d failed\n", ncases, failures);
    assert_true(ncases >= 60);
    assert_int_equal(failures, 0);
    /* The daemon took all of it without a worker dying. */
    assert_true(metric_value(d.port, "preforkd_restarts_total") == 0);
}

/* Reads until the end of a response head ("\r\n\r\n"); returns its length, 0 on EOF or
 * after 5 s. */
static size_t read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    while (len < cap - 1 && !memmem(buf, len, "\r\n\r\n", 4)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, 1, 0); /* a byte at a time: nothing past the head */
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return memmem(buf, len, "\r\n\r\n", 4) ? len : 0;
}

/* A route that will read the body asks for it with 100 Continue, then answers it and
 * keeps the connection. */
static void test_expect_continue(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
    };
    static const char *const bodies[] = {"hello", "5\r\nhello\r\n0\r\n\r\n"};
    static char buf[4096];
    for (size_t i = 0; i < 2; i++) {
        int fd = tcp_connect(d.port);
        send_str(fd, heads[i]);
        assert_int_not_equal(read_head(fd, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
        send_str(fd, bodies[i]);
        bool eof;
        size_t n = read_responses(fd, 1, buf, sizeof(buf), &eof);
        assert_int_equal(status_of(buf), 200);
        assert_int_equal(count_responses(buf, n), 1);
        assert_null(strstr(buf, "Connection: close"));
        /* The connection goes on. */
        send_str(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        n = read_responses(fd, 1, buf, sizeof(buf), &eof);
        assert_int_equal(status_of(buf), 200);
        close(fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table),
                                       cmocka_unit_test(test_expect_continue)};
    return cmocka_run_group_tests(tests, start, stop);
}
