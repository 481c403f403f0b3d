/* The built-in static handler against the real daemon, over raw sockets so that no client
 * tidies a path before it is sent: traversal and malformed paths (and that nothing from
 * outside the root ever comes back), validators, conditional and range requests, the
 * precompressed sibling, directories, keep-alive and pipelining, and a slow reader of a
 * large file that must not hold up anyone else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"

/* In every file outside the root; no answer may ever hold it. */
#define SECRET "PF-SECRET-3f9c2d71-outside-the-root"
/* The start of /etc/passwd, which a link in the root points at. */
#define PASSWD "root:x:0:0"

#define HELLO       "hello, world\n"
#define CSS         "body { color: black; }\n"
#define CSS_GZ      "\x1f\x8b\x08\x08 not really gzip, but the bytes of style.css.gz"
#define ROOT_INDEX  "<h1>the root's index</h1>\n"
#define SUB_INDEX   "<h1>sub's index</h1>\n"
#define BIG_SIZE    (1024 * 1024)
#define FIXED_MTIME 1609459200 /* 2021-01-01 00:00:00 UTC */
#define FIXED_HTTP  "Fri, 01 Jan 2021 00:00:00 GMT"
#define HELLO_ETAG  "\"5fee6600-0-d\"" /* SEC-NSEC-SIZE in hex: 13 bytes */

/* The tree served: <base>/www is the root; <base> holds the secrets beside it. */
struct site {
    struct daemon d;
    char base[64];
    char www[96];
};

static void put_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("create %s: %s", path, strerror(errno));
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void put_str(const char *dir, const char *name, const char *text)
{
    put_file(dir, name, text, strlen(text));
}

static void make_dir(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(path, 0755) < 0)
        fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void make_link(const char *dir, const char *name, const char *target)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (symlink(target, path) < 0)
        fail_msg("symlink %s -> %s: %s", path, target, strerror(errno));
}

/* The byte at offset i of big.bin: no period of a power of two, so a misplaced block
 * shows. */
static char big_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

static void put_pattern(const char *dir, const char *name, size_t size)
{
    char *data = malloc(size);
    assert_non_null(data);
    for (size_t i = 0; i < size; i++)
        data[i] = big_byte(i);
    put_file(dir, name, data, size);
    free(data);
}

static void build_tree(struct site *s)
{
    strcpy(s->base, "/tmp/preforkd-files-XXXXXX");
    assert_non_null(mkdtemp(s->base));
    /* mkdtemp's 0700 would do for a daemon of the same user; the tree is world-readable
     * as a deployed one is. */
    assert_int_equal(chmod(s->base, 0755), 0);
    snprintf(s->www, sizeof(s->www), "%s/www", s->base);
    const char *b = s->base, *w = s->www;

    put_str(b, "secret.txt", SECRET "\n");
    make_dir(b, "www2"); /* a sibling whose name the root's is a prefix of */
    put_str(b, "www2/secret.txt", SECRET "\n");
    make_dir(b, "www");
    put_str(w, "index.html", ROOT_INDEX);
    put_str(w, "hello.txt", HELLO);
    char path[512];
    snprintf(path, sizeof(path), "%s/hello.txt", w);
    struct timespec t[2] = {{FIXED_MTIME, 0}, {FIXED_MTIME, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
    put_str(w, "robots.txt", "User-agent: *\n");
    put_str(w, "style.css", CSS);
    put_file(w, "style.css.gz", CSS_GZ, sizeof(CSS_GZ) - 1);
    put_str(w, "data.unknownext", "opaque");
    put_pattern(w, "big.bin", BIG_SIZE);
    make_dir(w, "sub");
    put_str(w, "sub/index.html", SUB_INDEX);
    put_str(w, "sub/page.html", "<p>page</p>\n");
    make_dir(w, "noindex");
    put_str(w, "noindex/file.txt", "listed nowhere\n");
    make_dir(w, "%2e%2e"); /* a name, reached as "%252e%252e" */
    put_str(w, "%2e%2e/decoded.txt", "decoded once\n");
    snprintf(path, sizeof(path), "%s/fifo", w);
    assert_int_equal(mkfifo(path, 0644), 0);

    /* Links that lead out of the root, in every spelling, and a loop: all 404. */
    make_link(w, "passwd", "/etc/passwd");
    make_link(w, "up", "..");
    make_link(w, "secret-rel", "../secret.txt");
    snprintf(path, sizeof(path), "%s/secret.txt", b);
    make_link(w, "secret-abs", path);
    make_link(w, "self-abs", w); /* absolute, even to the root itself */
    make_link(w, "loop1", "loop2");
    make_link(w, "loop2", "loop1");
    /* Links that stay inside it are served. */
    make_link(w, "inside.txt", "hello.txt");
    make_link(w, "sub-link", "sub");
    /* A .gz sibling that leads out of the root is no sibling: the plain file is sent. */
    put_str(w, "leak.txt", "plain leak\n");
    make_link(w, "leak.txt.gz", "../secret.txt");
    put_str(w, "leak2.txt", "plain leak\n");
    make_link(w, "leak2.txt.gz", "/etc/passwd");
    make_dir(w, "leakdir");
    put_str(w, "leakdir/index.html", "plain index\n");
    make_link(w, "leakdir/index.html.gz", "../../secret.txt");
    put_str(w, "empty.txt", "");
}

static void site_start(struct site *s, int workers)
{
    build_tree(s);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "routes:\n"
             "  - {path: /, handler: sum}\n"
             "  - {path: /health, handler: health}\n"
             "  - {path: /static/, handler: static, root: %s, index: index.html}\n"
             "  - {path: /robots.txt, handler: static, root: %s}\n",
             s->www, s->www);
    daemon_start(&s->d, yaml, workers);
}

static void site_stop(struct site *s)
{
    daemon_stop(&s->d);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", s->base);
}

static void assert_no_leak(const char *data, size_t len)
{
    if (memmem(data, len, SECRET, strlen(SECRET)) || memmem(data, len, PASSWD, strlen(PASSWD)))
        fail_msg("an answer holds a file from outside the root:\n%.*s", (int)len, data);
}

/* ---- reading answers --------------------------------------------------------------- */

/* Answers read off one connection, framed as a client must (RFC 9112 6.3): no body after
 * a HEAD or a 304, whatever the Content-Length says. */
struct reader {
    int fd;
    char *buf;
    size_t cap, len, pos; /* pos: where the next answer starts */
    size_t chunk;         /* the most one recv takes (0: all there is room for) */
    int pause_ms;         /* after each recv: a slow reader */
};

struct reply {
    int status;
    char head[4096]; /* the status line and fields, NUL-terminated */
    const char *body;
    size_t body_len; /* the bytes received (Content-Length, or 0) */
};

static void reader_init(struct reader *rd, int fd, size_t cap)
{
    *rd = (struct reader){.fd = fd, .cap = cap};
    rd->buf = malloc(cap);
    assert_non_null(rd->buf);
}

static void reader_free(struct reader *rd)
{
    free(rd->buf);
    close(rd->fd);
}

/* One recv into the buffer within the wait bound; false at EOF, an error or the bound. */
static bool reader_more(struct reader *rd, long long deadline)
{
    long long left = deadline - now_ms();
    struct pollfd p = {.fd = rd->fd, .events = POLLIN};
    if (left <= 0 || rd->len == rd->cap || poll(&p, 1, (int)left) <= 0)
        return false;
    size_t room = rd->cap - rd->len;
    if (rd->chunk && room > rd->chunk)
        room = rd->chunk;
    ssize_t n = recv(rd->fd, rd->buf + rd->len, room, 0);
    if (n <= 0)
        return false;
    rd->len += (size_t)n;
    if (rd->pause_ms)
        sleep_ms(rd->pause_ms);
    return true;
}

/* Reads until at least `want` bytes past the next answer's start are buffered. */
static void reader_fill(struct reader *rd, size_t want)
{
    long long deadline = now_ms() + WAIT_MS;
    while (rd->len - rd->pos < want)
        if (!reader_more(rd, deadline))
            fail_msg("%zu of %zu bytes arrived", rd->len - rd->pos, want);
}

/* The next answer; fails the test when none arrives complete. */
static void reader_next(struct reader *rd, bool head_request, struct reply *out)
{
    if (rd->pos == rd->len)
        rd->pos = rd->len = 0; /* the answers before are done with */
    long long deadline = now_ms() + WAIT_MS;
    const char *end;
    while (!(end = memmem(rd->buf + rd->pos, rd->len - rd->pos, "\r\n\r\n", 4)))
        if (!reader_more(rd, deadline))
            fail_msg("no complete answer head (%zu bytes: %.*s)", rd->len - rd->pos,
                     (int)(rd->len - rd->pos), rd->buf + rd->pos);
    size_t head_len = (size_t)(end - (rd->buf + rd->pos)) + 4;
    assert_true(head_len < sizeof(out->head));
    memcpy(out->head, rd->buf + rd->pos, head_len);
    out->head[head_len] = '\0';
    out->status = status_of(out->head);
    size_t body_len = 0;
    const char *cl = strstr(out->head, "\r\nContent-Length: ");
    if (cl && !head_request && out->status != 304)
        body_len = strtoull(cl + 18, NULL, 10);
    while (rd->len - rd->pos < head_len + body_len)
        if (!reader_more(rd, deadline))
            fail_msg("a %d answer's body: %zu of %zu bytes", out->status,
                     rd->len - rd->pos - head_len, body_len);
    out->body = rd->buf + rd->pos + head_len;
    out->body_len = body_len;
    assert_no_leak(rd->buf + rd->pos, head_len + body_len);
    rd->pos += head_len + body_len;
}

/* The value of a field of head into out; false when absent. */
static bool field(const char *head, const char *name, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *p = strstr(head, key);
    if (!p)
        return false;
    p += strlen(key);
    size_t n = strcspn(p, "\r");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static void assert_field(const char *head, const char *name, const char *want)
{
    char v[2048];
    if (!field(head, name, v, sizeof(v)))
        fail_msg("no %s in:\n%s", name, head);
    if (strcmp(v, want) != 0)
        fail_msg("%s: \"%s\", want \"%s\", in:\n%s", name, v, want, head);
}

static void assert_no_field(const char *head, const char *name)
{
    char v[256];
    if (field(head, name, v, sizeof(v)))
        fail_msg("unexpected %s: %s in:\n%s", name, v, head);
}

static void assert_body(const struct reply *r, const char *want, size_t len)
{
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, want, len);
}

/* The next answer on rd is hello.txt, whole. */
static void next_hello(struct reader *rd)
{
    struct reply r;
    reader_next(rd, false, &r);
    assert_int_equal(r.status, 200);
    assert_body(&r, HELLO, strlen(HELLO));
}

/* No bytes came past the answers read; closes the connection. */
static void reader_done(struct reader *rd)
{
    assert_int_equal(rd->pos, rd->len);
    reader_free(rd);
}

/* A whole 200 answer of put_pattern's bytes. */
static void assert_pattern(const struct reply *r, size_t size)
{
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, size);
    for (size_t i = 0; i < size; i++)
        if (r->body[i] != big_byte(i))
            fail_msg("the body differs from the file at byte %zu of %zu", i, size);
}

static void assert_big(const struct reply *r)
{
    assert_pattern(r, BIG_SIZE);
}

/* One request on a fresh connection, one answer. */
static void exchange(const struct site *s, const char *request, bool head_request,
                     struct reply *out)
{
    struct reader rd;
    reader_init(&rd, tcp_connect(s->d.port), 2 * BIG_SIZE);
    send_str(rd.fd, request);
    reader_next(&rd, head_request, out);
    /* The body outlives the connection in a copy of its own. */
    static char body[2 * BIG_SIZE];
    memcpy(body, out->body, out->body_len);
    out->body = body;
    reader_free(&rd);
}

static void get(const struct site *s, const char *path, const char *fields, struct reply *out)
{
    static char req[16384];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, fields);
    assert_true(n > 0 && (size_t)n < sizeof(req));
    exchange(s, req, false, out);
}

/* get, then the status checked, and the body when body is not NULL. */
static void expect_get(const struct site *s, const char *path, const char *fields, int status,
                       const char *body, struct reply *out)
{
    get(s, path, fields, out);
    if (out->status != status)
        fail_msg("GET %.120s: %d, want %d:\n%s", path, out->status, status, out->head);
    if (body)
        assert_body(out, body, strlen(body));
}

/* ---- traversal and malformed paths ------------------------------------------------- */

struct attempt {
    const char *target; /* the request-target, sent as is */
    int status;
};

/* static.h: dot segments, encoded slashes, backslashes and empty segments 404 (as does
 * any link that leads out of the root); malformed escapes and controls 400; too long
 * 414; a directory without its slash 301; what is no file 403. */
static const struct attempt attempts[] = {
    /* dot segments, plain and encoded */
    {"/static/../secret.txt", 404},
    {"/static/../../../../../../etc/passwd", 404},
    {"/static/%2e%2e/secret.txt", 404},
    {"/static/%2E%2E/secret.txt", 404},
    {"/static/.%2e/secret.txt", 404},
    {"/static/%2e./secret.txt", 404},
    {"/static/.%2E/www2/secret.txt", 404},
    {"/static/sub/../../secret.txt", 404},
    {"/static/sub/%2e%2e/%2e%2e/secret.txt", 404},
    {"/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404},
    {"/static/sub/..", 404},
    {"/static/sub/%2e%2e", 404},
    {"/static/./hello.txt", 404},
    {"/static/%2e/hello.txt", 404},
    {"/static/sub/.", 404},
    /* encoded slashes and backslashes */
    {"/static/..%2fsecret.txt", 404},
    {"/static/..%2Fsecret.txt", 404},
    {"/static/%2e%2e%2fsecret.txt", 404},
    {"/static/sub%2f..%2f..%2fsecret.txt", 404},
    {"/static/%2fetc%2fpasswd", 404},
    {"/static/sub%2Findex.html", 404},
    {"/static/..%5csecret.txt", 404},
    {"/static/..%5Csecret.txt", 404},
    {"/static/%5c..%5csecret.txt", 404},
    {"/static/..\\secret.txt", 404},
    {"/static/sub\\..\\..\\secret.txt", 404},
    /* empty segments */
    {"/static//secret.txt", 404},
    {"/static//../secret.txt", 404},
    {"/static/sub//index.html", 404},
    /* controls and malformed escapes */
    {"/static/%00", 400},
    {"/static/hello.txt%00.html", 400},
    {"/static/%0a", 400},
    {"/static/%0d%0aX-Injected:%20yes", 400},
    {"/static/%7f", 400},
    {"/static/%", 400},
    {"/static/%2", 400},
    {"/static/%zz", 400},
    {"/static/%%32%65%%32%65/secret.txt", 400},
    {"/static/%u002e%u002e/secret.txt", 400},
    {"/static/../secret.txt /x", 400},  /* a raw space: not one request-target */
    {"/static/..\tsecret.txt", 400},    /* a raw tab */
    {"/static/#/../secret.txt", 400},   /* a raw '#' */
    {"/static/\x01../secret.txt", 400}, /* a raw control */
    /* escapes are decoded once: "%252e%252e" is a name, not ".." */
    {"/static/%252e%252e/secret.txt", 404},
    {"/static/%252e%252e%252fsecret.txt", 404},
    {"/static/%c0%ae%c0%ae/secret.txt", 404}, /* overlong UTF-8 is no dot */
    {"/static/..%c0%afsecret.txt", 404},
    {"/static/.../secret.txt", 404},
    {"/static/..;/secret.txt", 404},
    /* links in the root that lead out of it, a loop, a fifo */
    {"/static/passwd", 404},
    {"/static/up/secret.txt", 404},
    {"/static/up/www2/secret.txt", 404},
    {"/static/up/", 404},
    {"/static/up", 404},
    {"/static/secret-rel", 404},
    {"/static/secret-abs", 404},
    {"/static/self-abs/hello.txt", 404},
    {"/static/loop1", 404},
    {"/static/fifo", 403},
    {"/static/noindex/", 403},
    {"/static/hello.txt/", 404},
    {"/static/sub", 301},
    /* absolute-form targets lose their scheme and authority, and nothing else */
    {"http://x/static/../secret.txt", 404},
    {"http://x/static/%2e%2e/secret.txt", 404},
    {"http://x/static/..%2fsecret.txt", 404},
    {"http://x/static/passwd", 404},
    {"http://x/static/%00", 400},
    {"http://x/../static/secret.txt", 404},
    /* paths that miss the route */
    {"/static%2f..%2fsecret.txt", 404},
    {"/%73tatic/hello.txt", 404},
    {"/static/..", 404},
    {"/static/../", 404},
};

/* Long paths, built at run time: static.h's 4096-byte decoded path and the file system's
 * 255-byte name (414), the 8 KiB request-line (414, from the parser), and a long run of
 * dot segments (404 at the first). */
static void long_target(char *out, size_t cap, const char *prefix, const char *unit, size_t times)
{
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < times; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s", unit);
    assert_true(n < cap);
}

static void expect_status(const struct site *s, const char *target, int want, size_t *sent)
{
    static char req[16384];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                     target);
    assert_true(n > 0 && (size_t)n < sizeof(req));
    static char buf[65536];
    int fd = tcp_connect(s->d.port);
    send_str(fd, req);
    bool eof;
    size_t len = read_responses(fd, 0, buf, sizeof(buf), &eof);
    close(fd);
    assert_no_leak(buf, len);
    if (!eof || status_of(buf) != want)
        fail_msg("GET %.120s: status %d, want %d (closed: %d):\n%s", target, status_of(buf), want,
                 eof, buf);
    (*sent)++;
}

static void test_traversal_and_malformed_paths(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    size_t sent = 0;
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
        expect_status(&s, attempts[i].target, attempts[i].status, &sent);
    static char target[12000];
    long_target(target, sizeof(target), "/static/", "a", 4100);
    expect_status(&s, target, 414, &sent);
    long_target(target, sizeof(target), "/static/", "a/", 2100);
    expect_status(&s, target, 414, &sent);
    long_target(target, sizeof(target), "/static/", "a", 300);
    expect_status(&s, target, 414, &sent);
    long_target(target, sizeof(target), "/static/", "a", 9000);
    expect_status(&s, target, 414, &sent);
    long_target(target, sizeof(target), "/static/", "../", 1000);
    strcat(target, "etc/passwd");
    expect_status(&s, target, 404, &sent);
    long_target(target, sizeof(target), "/static/", "%2e%2e/", 1000);
    strcat(target, "secret.txt");
    expect_status(&s, target, 404, &sent);
    assert_true(sent >= 40);

    /* What the refusals are not: a literal "%2e%2e" directory, a link inside the root
     * and a directory's redirect are served. */
    struct reply r;
    expect_get(&s, "/static/%252e%252e/decoded.txt", "", 200, "decoded once\n", &r);
    expect_get(&s, "/static/inside.txt", "", 200, HELLO, &r);
    expect_get(&s, "/static/sub", "", 301, NULL, &r);
    assert_field(r.head, "Location", "/static/sub/");
    site_stop(&s);
}

/* ---- files ------------------------------------------------------------------------- */

static void test_file_with_its_headers(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    expect_get(&s, "/static/hello.txt", "", 200, NULL, &r);
    assert_field(r.head, "Content-Type", "text/plain");
    assert_field(r.head, "Content-Length", "13");
    assert_field(r.head, "ETag", HELLO_ETAG);
    assert_field(r.head, "Last-Modified", FIXED_HTTP);
    assert_field(r.head, "Accept-Ranges", "bytes");
    assert_field(r.head, "Vary", "Accept-Encoding"); /* always: a sibling may appear */
    assert_no_field(r.head, "Content-Encoding");
    assert_body(&r, HELLO, strlen(HELLO));

    expect_get(&s, "/static/style.css", "", 200, CSS, &r);
    assert_field(r.head, "Content-Type", "text/css");
    expect_get(&s, "/static/sub/page.html", "", 200, "<p>page</p>\n", &r);
    assert_field(r.head, "Content-Type", "text/html");
    expect_get(&s, "/static/data.unknownext", "", 200, "opaque", &r);
    assert_field(r.head, "Content-Type", "application/octet-stream");
    /* A link within the root has its target's bytes and its own name's type. */
    expect_get(&s, "/static/inside.txt", "", 200, HELLO, &r);
    assert_field(r.head, "Content-Type", "text/plain");
    assert_field(r.head, "ETag", HELLO_ETAG);
    /* An exact static route maps its whole path beneath its root. */
    expect_get(&s, "/robots.txt", "", 200, "User-agent: *\n", &r);
    assert_field(r.head, "Content-Type", "text/plain");
    /* The large file, whole. */
    get(&s, "/static/big.bin", "", &r);
    assert_big(&r);
    site_stop(&s);
}

static void test_not_modified(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    get(&s, "/static/hello.txt", "", &r);
    char etag[64];
    assert_true(field(r.head, "ETag", etag, sizeof(etag)));

    /* Each 304 is followed on the same connection by a pipelined request, answered in
     * order: the 304 carried no body to throw the framing off. */
    struct reader rd;
    reader_init(&rd, tcp_connect(s.d.port), 64 * 1024);
    char req[1024];
    snprintf(req, sizeof(req),
             "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: %s\r\n\r\n"
             "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"x\", W/%s\r\n\r\n"
             "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: " FIXED_HTTP
             "\r\n\r\n"
             "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n"
             "If-Modified-Since: Thu, 31 Dec 2020 23:59:59 GMT\r\n\r\n"
             "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"other\"\r\n"
             "If-Modified-Since: " FIXED_HTTP "\r\n\r\n"
             "GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
             etag, etag);
    send_str(rd.fd, req);
    /* If-None-Match: the tag from the first answer, then in a list, weakly compared. */
    for (int i = 0; i < 2; i++) {
        reader_next(&rd, false, &r);
        assert_int_equal(r.status, 304);
        assert_no_field(r.head, "Content-Length");
        assert_no_field(r.head, "Content-Type"); /* no content, no media type */
        assert_field(r.head, "ETag", etag);
        assert_field(r.head, "Last-Modified", FIXED_HTTP);
    }
    /* If-Modified-Since: the Last-Modified date itself; an earlier one is modified. */
    reader_next(&rd, false, &r);
    assert_int_equal(r.status, 304);
    assert_field(r.head, "ETag", etag);
    next_hello(&rd);
    /* If-None-Match decides alone when both are sent (RFC 9110 13.1.3). */
    next_hello(&rd);
    reader_next(&rd, false, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(memmem(r.body, r.body_len, "\"healthy\"", 9));
    reader_done(&rd);
    site_stop(&s);
}

static void test_ranges_and_head(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    static const struct {
        const char *range;
        const char *content_range;
        const char *bytes;
    } ranges[] = {
        {"bytes=0-3", "bytes 0-3/13", "hell"},
        {"bytes=5-", "bytes 5-12/13", ", world\n"},
        {"bytes=-4", "bytes 9-12/13", "rld\n"},
        {"bytes=7-100", "bytes 7-12/13", "world\n"}, /* the end clamped to the size */
        {"bytes=12-12", "bytes 12-12/13", "\n"},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        char fields[128];
        snprintf(fields, sizeof(fields), "Range: %s\r\n", ranges[i].range);
        expect_get(&s, "/static/hello.txt", fields, 206, NULL, &r);
        assert_field(r.head, "Content-Range", ranges[i].content_range);
        assert_field(r.head, "Accept-Ranges", "bytes");
        assert_field(r.head, "ETag", HELLO_ETAG);
        assert_body(&r, ranges[i].bytes, strlen(ranges[i].bytes));
    }
    /* Unsatisfiable: the first byte at or past the end, or a suffix of none. */
    static const char *const unsatisfiable[] = {"bytes=13-", "bytes=100-200", "bytes=-0"};
    for (size_t i = 0; i < 3; i++) {
        char fields[128];
        snprintf(fields, sizeof(fields), "Range: %s\r\n", unsatisfiable[i]);
        expect_get(&s, "/static/hello.txt", fields, 416, NULL, &r);
        assert_field(r.head, "Content-Range", "bytes */13");
        assert_field(r.head, "Content-Length", "0");
        assert_no_field(r.head, "Content-Type");
    }
    /* Several ranges, another unit, a malformed one: the whole file. */
    static const char *const whole[] = {"bytes=0-1,3-4", "items=0-3", "bytes=3-1"};
    for (size_t i = 0; i < 3; i++) {
        char fields[128];
        snprintf(fields, sizeof(fields), "Range: %s\r\n", whole[i]);
        expect_get(&s, "/static/hello.txt", fields, 200, NULL, &r);
        assert_no_field(r.head, "Content-Range");
        assert_body(&r, HELLO, strlen(HELLO));
    }
    /* An empty file: no bytes; a range from its first byte cannot be satisfied, and a
     * suffix range is ignored (no Content-Range can name zero bytes). */
    expect_get(&s, "/static/empty.txt", "", 200, NULL, &r);
    assert_field(r.head, "Content-Length", "0");
    expect_get(&s, "/static/empty.txt", "Range: bytes=0-\r\n", 416, NULL, &r);
    assert_field(r.head, "Content-Range", "bytes */0");
    expect_get(&s, "/static/empty.txt", "Range: bytes=-5\r\n", 200, NULL, &r);
    assert_field(r.head, "Content-Length", "0");
    /* A range of the large file, from the middle. */
    expect_get(&s, "/static/big.bin", "Range: bytes=600000-600099\r\n", 206, NULL, &r);
    assert_field(r.head, "Content-Range", "bytes 600000-600099/1048576");
    assert_int_equal(r.body_len, 100);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(r.body[i], big_byte(600000 + i));
    /* If-Range: a matching tag or date keeps the range; anything else sends the whole. */
    expect_get(&s, "/static/hello.txt", "Range: bytes=0-3\r\nIf-Range: " HELLO_ETAG "\r\n", 206,
               NULL, &r);
    assert_body(&r, "hell", 4);
    expect_get(&s, "/static/hello.txt", "Range: bytes=0-3\r\nIf-Range: " FIXED_HTTP "\r\n", 206,
               NULL, &r);
    expect_get(&s, "/static/hello.txt", "Range: bytes=0-3\r\nIf-Range: \"stale\"\r\n", 200, HELLO,
               &r);
    /* If-Match: 412 unless it matches. */
    expect_get(&s, "/static/hello.txt", "If-Match: \"stale\"\r\n", 412, NULL, &r);
    assert_field(r.head, "Content-Length", "0");
    assert_no_field(r.head, "Content-Type");
    expect_get(&s, "/static/hello.txt", "If-Match: " HELLO_ETAG "\r\n", 200, NULL, &r);
    /* If-Match compares strongly: a weak tag never matches. */
    expect_get(&s, "/static/hello.txt", "If-Match: W/" HELLO_ETAG "\r\n", 412, NULL, &r);
    expect_get(&s, "/static/hello.txt", "Range: bytes=0-3\r\nIf-Range: W/" HELLO_ETAG "\r\n", 200,
               HELLO, &r);
    /* If-Unmodified-Since: 412 when the file changed after the date. */
    expect_get(&s, "/static/hello.txt", "If-Unmodified-Since: Thu, 31 Dec 2020 23:59:59 GMT\r\n",
               412, NULL, &r);
    expect_get(&s, "/static/hello.txt", "If-Unmodified-Since: " FIXED_HTTP "\r\n", 200, HELLO, &r);
    /* If-Modified-Since in the future is ignored. */
    expect_get(&s, "/static/hello.txt", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n", 200,
               HELLO, &r);

    /* HEAD: the whole file's length and no body (nor a range: GET's only). A pipelined
     * request after it is answered next, where a body would have been. */
    struct reader rd;
    reader_init(&rd, tcp_connect(s.d.port), 64 * 1024);
    send_str(rd.fd, "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "HEAD /static/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n"
                    "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    reader_next(&rd, true, &r);
    assert_int_equal(r.status, 200);
    assert_field(r.head, "Content-Length", "1048576");
    assert_field(r.head, "Content-Type", "application/octet-stream");
    reader_next(&rd, true, &r);
    assert_int_equal(r.status, 200);
    assert_field(r.head, "Content-Length", "13");
    assert_field(r.head, "ETag", HELLO_ETAG);
    assert_no_field(r.head, "Content-Range");
    next_hello(&rd);
    reader_done(&rd);
    site_stop(&s);
}

static void test_directories(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    expect_get(&s, "/static/sub", "", 301, NULL, &r);
    assert_field(r.head, "Location", "/static/sub/");
    expect_get(&s, "/static/sub/", "", 200, NULL, &r);
    assert_field(r.head, "Content-Type", "text/html");
    assert_body(&r, SUB_INDEX, strlen(SUB_INDEX));
    /* The root itself, and a directory reached through a link inside the root. */
    expect_get(&s, "/static/", "", 200, ROOT_INDEX, &r);
    expect_get(&s, "/static/sub-link", "", 301, NULL, &r);
    assert_field(r.head, "Location", "/static/sub-link/");
    expect_get(&s, "/static/sub-link/", "", 200, SUB_INDEX, &r);
    /* No index: not listed. */
    expect_get(&s, "/static/noindex/", "", 403, NULL, &r);
    expect_get(&s, "/static/noindex", "", 301, NULL, &r);
    assert_field(r.head, "Location", "/static/noindex/");
    expect_get(&s, "/static/noindex/file.txt", "", 200, NULL, &r);
    site_stop(&s);
}

static void test_precompressed_sibling(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    expect_get(&s, "/static/style.css", "Accept-Encoding: gzip, deflate\r\n", 200, NULL, &r);
    assert_field(r.head, "Content-Encoding", "gzip");
    assert_field(r.head, "Content-Type", "text/css"); /* the file's, not gzip's */
    assert_field(r.head, "Vary", "Accept-Encoding");
    assert_body(&r, CSS_GZ, sizeof(CSS_GZ) - 1);
    char gz_etag[64], plain_etag[64];
    assert_true(field(r.head, "ETag", gz_etag, sizeof(gz_etag)));

    /* Without gzip, or with gzip refused: the plain file, and still Vary. */
    static const char *const plain[] = {"", "Accept-Encoding: identity\r\n",
                                        "Accept-Encoding: gzip;q=0, identity\r\n"};
    for (size_t i = 0; i < 3; i++) {
        expect_get(&s, "/static/style.css", plain[i], 200, NULL, &r);
        assert_no_field(r.head, "Content-Encoding");
        assert_field(r.head, "Vary", "Accept-Encoding");
        assert_field(r.head, "Content-Type", "text/css");
        assert_body(&r, CSS, strlen(CSS));
    }
    assert_true(field(r.head, "ETag", plain_etag, sizeof(plain_etag)));
    assert_string_not_equal(gz_etag, plain_etag); /* two representations, two tags */
    /* A range applies to the representation sent: the .gz bytes. */
    expect_get(&s, "/static/style.css", "Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n", 206, NULL,
               &r);
    assert_field(r.head, "Content-Encoding", "gzip");
    assert_body(&r, "\x1f\x8b", 2);
    /* Its tag revalidates the gzip answer. */
    char fields[256];
    snprintf(fields, sizeof(fields), "Accept-Encoding: gzip\r\nIf-None-Match: %s\r\n", gz_etag);
    expect_get(&s, "/static/style.css", fields, 304, NULL, &r);
    assert_field(r.head, "ETag", gz_etag);
    assert_field(r.head, "Vary", "Accept-Encoding");
    assert_no_field(r.head, "Content-Type");
    /* A sibling that leads out of the root is none: the plain file. */
    static const struct {
        const char *path, *body;
    } leaks[] = {
        {"/static/leak.txt", "plain leak\n"},
        {"/static/leak2.txt", "plain leak\n"},
        {"/static/leakdir/", "plain index\n"},
    };
    for (size_t i = 0; i < sizeof(leaks) / sizeof(leaks[0]); i++) {
        expect_get(&s, leaks[i].path, "Accept-Encoding: gzip\r\n", 200, NULL, &r);
        assert_no_field(r.head, "Content-Encoding");
        assert_body(&r, leaks[i].body, strlen(leaks[i].body));
    }
    /* The sibling may also be asked for by its own name. */
    expect_get(&s, "/static/style.css.gz", "", 200, NULL, &r);
    assert_no_field(r.head, "Content-Encoding");
    assert_body(&r, CSS_GZ, sizeof(CSS_GZ) - 1);
    site_stop(&s);
}

/* A directory's redirect repeats the path as sent; one too long for the answer's fields
 * (PF_RESP_FIELDS_MAX) is refused as too long a URI, not failed as a 500. */
static void test_long_directory_redirect(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    char name[241], path[1024];
    memset(name, 'd', 240);
    name[240] = '\0';
    make_dir(s.www, name);
    snprintf(path, sizeof(path), "%s/%s", name, name);
    make_dir(s.www, path);
    snprintf(path, sizeof(path), "%s/%s/index.html", name, name);
    put_str(s.www, path, "deep\n");
    /* Spelled plainly: 489 bytes, redirected. */
    static char target[2048];
    snprintf(target, sizeof(target), "/static/%s/%s", name, name);
    struct reply r;
    expect_get(&s, target, "", 301, NULL, &r);
    strcat(target, "/");
    assert_field(r.head, "Location", target);
    /* Every byte escaped: 1449 bytes, still the same directory. */
    long_target(target, sizeof(target), "/static/", "%64", 240);
    long_target(target + strlen(target), sizeof(target) - strlen(target), "/", "%64", 240);
    expect_get(&s, target, "", 414, NULL, &r);
    strcat(target, "/");
    expect_get(&s, target, "", 200, "deep\n", &r);
    assert_false(daemon_log_contains(&s.d, "handler refused"));
    site_stop(&s);
}

/* Several lines of one field are one list (RFC 9110 5.3), not the first line alone. */
static void test_repeated_field_lines(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reply r;
    expect_get(&s, "/static/hello.txt",
               "If-None-Match: \"other\"\r\nIf-None-Match: " HELLO_ETAG "\r\n", 304, NULL, &r);
    expect_get(&s, "/static/hello.txt", "If-Match: \"other\"\r\nIf-Match: " HELLO_ETAG "\r\n", 200,
               HELLO, &r);
    expect_get(&s, "/static/style.css", "Accept-Encoding: identity\r\nAccept-Encoding: gzip\r\n",
               200, CSS_GZ, &r);
    assert_field(r.head, "Content-Encoding", "gzip");
    /* Two Range lines are no single range: the whole file. */
    expect_get(&s, "/static/hello.txt", "Range: bytes=0-1\r\nRange: bytes=3-4\r\n", 200, HELLO, &r);
    site_stop(&s);
}

/* ---- connections ------------------------------------------------------------------- */

/* The most the kernel buffers for a TCP socket's output (net.ipv4.tcp_wmem's maximum): a
 * file longer than that and the receiver's window, to a client that reads slowly, cannot
 * leave the worker in one sendfile call, so its partial writes are resumed on EPOLLOUT. */
static size_t send_buffer_max(void)
{
    size_t low, def, max = 4u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        if (fscanf(f, "%zu %zu %zu", &low, &def, &max) != 3)
            max = 4u << 20;
        fclose(f);
    }
    return max;
}

/* Others are answered meanwhile, by the same (only) worker. */
static void assert_others_served(const struct site *s)
{
    for (int i = 0; i < 3; i++) {
        char buf[4096];
        http_exchange(s->d.port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
        assert_int_equal(status_of(buf), 200);
        struct reply r;
        get(s, "/static/hello.txt", "", &r);
        assert_body(&r, HELLO, strlen(HELLO));
    }
}

static void test_slow_reader_does_not_hold_up_others(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1); /* one worker: the same process serves every client */
    size_t huge = send_buffer_max() + BIG_SIZE;
    put_pattern(s.www, "huge.bin", huge);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096; /* before connect: the window offered is small from the start */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)s.d.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct reader rd;
    reader_init(&rd, fd, 2 * huge + 65536);

    /* 1 MiB, 4 KiB at a time with a pause after each. */
    rd.chunk = 4096;
    rd.pause_ms = 2;
    send_str(fd, "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    reader_fill(&rd, 64 * 1024); /* mid-transfer */
    assert_others_served(&s);
    struct reply r;
    reader_next(&rd, false, &r);
    assert_big(&r);

    /* A file the worker cannot hand to the kernel at once, and a request sent on the
     * same connection while it is on its way: both whole, in order. */
    rd.pause_ms = 0;
    send_str(fd, "GET /static/huge.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    reader_fill(&rd, 256 * 1024);
    send_str(fd, "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_others_served(&s);
    reader_next(&rd, false, &r);
    assert_pattern(&r, huge);
    next_hello(&rd);

    /* Pipelined at once: the large file and a small one. */
    send_str(fd, "GET /static/huge.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    reader_next(&rd, false, &r);
    assert_pattern(&r, huge);
    next_hello(&rd);
    reader_done(&rd);
    site_stop(&s);
}

static void test_pipelined_large_and_small(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reader rd;
    reader_init(&rd, tcp_connect(s.d.port), 4 * 1024 * 1024);
    send_str(rd.fd, "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n"
                    "GET /static/sub/ HTTP/1.1\r\nHost: t\r\n\r\n");
    struct reply r;
    reader_next(&rd, false, &r);
    assert_big(&r);
    next_hello(&rd);
    reader_next(&rd, false, &r);
    assert_int_equal(r.status, 206);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(r.body[i], big_byte(BIG_SIZE - 5 + i));
    reader_next(&rd, false, &r);
    assert_body(&r, SUB_INDEX, strlen(SUB_INDEX));
    reader_done(&rd);
    site_stop(&s);
}

static void test_keepalive(void **state)
{
    (void)state;
    struct site s;
    site_start(&s, 1);
    struct reader rd;
    reader_init(&rd, tcp_connect(s.d.port), 256 * 1024);
    static const struct {
        const char *request;
        int status;
        const char *body;
    } steps[] = {
        {"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200, HELLO},
        {"GET /static/missing.txt HTTP/1.1\r\nHost: t\r\n\r\n", 404, NULL},
        {"GET /static/sub HTTP/1.1\r\nHost: t\r\n\r\n", 301, NULL},
        {"GET /static/sub/ HTTP/1.1\r\nHost: t\r\n\r\n", 200, SUB_INDEX},
        {"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: " HELLO_ETAG "\r\n\r\n", 304,
         NULL},
        {"GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\n", 206, "hell"},
        {"GET /static/noindex/ HTTP/1.1\r\nHost: t\r\n\r\n", 403, NULL},
        {"GET /static/%2e%2e/secret.txt HTTP/1.1\r\nHost: t\r\n\r\n", 404, NULL},
        {"GET /static/style.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n", 200, CSS_GZ},
        {"GET /robots.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200, "User-agent: *\n"},
    };
    /* One after another, each answered before the next is sent. */
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        send_str(rd.fd, steps[i].request);
        struct reply r;
        reader_next(&rd, false, &r);
        if (r.status != steps[i].status)
            fail_msg("step %zu: %d, want %d:\n%s", i, r.status, steps[i].status, r.head);
        assert_no_field(r.head, "Connection");
        if (steps[i].body)
            assert_body(&r, steps[i].body, strlen(steps[i].body));
    }
    /* The connection is still there: a last request with "close" ends it. */
    send_str(rd.fd, "GET /static/hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct reply r;
    reader_next(&rd, false, &r);
    assert_int_equal(r.status, 200);
    assert_field(r.head, "Connection", "close");
    struct pollfd p = {.fd = rd.fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
    assert_int_equal(recv(rd.fd, rd.buf, rd.cap, 0), 0); /* the server's close */
    reader_free(&rd);
    site_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traversal_and_malformed_paths),
        cmocka_unit_test(test_file_with_its_headers),
        cmocka_unit_test(test_not_modified),
        cmocka_unit_test(test_ranges_and_head),
        cmocka_unit_test(test_directories),
        cmocka_unit_test(test_precompressed_sibling),
        cmocka_unit_test(test_long_directory_redirect),
        cmocka_unit_test(test_repeated_field_lines),
        cmocka_unit_test(test_slow_reader_does_not_hold_up_others),
        cmocka_unit_test(test_pipelined_large_and_small),
        cmocka_unit_test(test_keepalive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
