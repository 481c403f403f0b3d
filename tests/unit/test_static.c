#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "preforkd/static.h"

/* ---- a real tree ------------------------------------------------------------------- */

/* base/secret.txt lies beside the root, base/root; every escape aims at it or at
 * /etc/passwd. */
struct tree {
    char base[64];
    char root[80];
    int root_fd;
    bool has_device;
};

static struct tree tree;

static void put(const char *rel, const char *content)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tree.base, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void dir(const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tree.base, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void link_to(const char *target, const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tree.base, rel);
    assert_int_equal(symlink(target, path), 0);
}

static int setup(void **state)
{
    (void)state;
    strcpy(tree.base, "/tmp/pf_static_XXXXXX");
    assert_non_null(mkdtemp(tree.base));
    snprintf(tree.root, sizeof(tree.root), "%s/root", tree.base);
    put("secret.txt", "secret");
    dir("root");
    put("root/a.txt", "alpha");
    put("root/a.txt.gz", "alpha-gz");
    put("root/a b.txt", "spaced");
    put("root/%2e", "literal");
    put("root/100%.txt", "percent");
    dir("root/sub");
    put("root/sub/b.txt", "beta");
    put("root/sub/index.html", "sub index");
    put("root/sub/index.html.gz", "sub index gz");
    dir("root/sub/deeper");
    dir("root/noindex");
    put("root/noindex/c.txt", "gamma");
    dir("root/idx");
    link_to("../a.txt", "root/idx/index.html"); /* an index that is a link in the root */
    link_to("a.txt", "root/link.txt");
    link_to("sub", "root/sublink");
    link_to("../a.txt", "root/sub/back"); /* up and down again, all inside */
    link_to("/etc/passwd", "root/passwd");
    link_to("..", "root/up");
    link_to("../secret.txt", "root/outside");
    link_to("../../secret.txt", "root/sub/escape");
    char abs[160];
    snprintf(abs, sizeof(abs), "%s/a.txt", tree.root);
    link_to(abs, "root/abs"); /* absolute, even to inside the root */
    link_to("loop2", "root/loop1");
    link_to("loop1", "root/loop2");
    char path[256];
    snprintf(path, sizeof(path), "%s/fifo", tree.root);
    assert_int_equal(mkfifo(path, 0644), 0);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", tree.root);
    assert_int_equal(bind(s, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(s);
    /* A device node needs privilege; the case is skipped without it. */
    snprintf(path, sizeof(path), "%s/null", tree.root);
    tree.has_device = mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0;
    tree.root_fd = open(tree.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(tree.root_fd >= 0);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    close(tree.root_fd);
    return nftw(tree.base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* What a raw path comes to: the status, and for 200 the file's content. */
static uint16_t serve(const char *raw, size_t raw_len, char *content, size_t cap, bool *is_index)
{
    char decoded[PF_STATIC_PATH_MAX];
    size_t len;
    int rc = pf_static_check_path(raw, raw_len, decoded, sizeof(decoded), &len);
    if (rc < 0)
        return pf_static_status_for(rc);
    assert_int_equal(strlen(decoded), len);
    struct pf_static_file f;
    rc = pf_static_open(tree.root_fd, decoded, "index.html", &f);
    if (rc < 0) {
        assert_int_equal(f.fd, -1);
        return pf_static_status_for(rc);
    }
    ssize_t n = pread(f.fd, content, cap - 1, 0);
    assert_true(n >= 0);
    content[n] = '\0';
    assert_int_equal((uint64_t)n, f.size);
    *is_index = f.is_index;
    pf_static_close(&f);
    assert_int_equal(f.fd, -1);
    return 200;
}

struct path_case {
    const char *raw;
    uint16_t status;
    const char *content; /* for 200 */
};

/* Every attempt to leave the root or confuse it, and the paths that must still work. */
static const struct path_case path_cases[] = {
    /* Served. */
    {"/a.txt", 200, "alpha"},
    {"/sub/b.txt", 200, "beta"},
    {"/sub/", 200, "sub index"},
    {"/sublink/", 200, "sub index"},
    {"/link.txt", 200, "alpha"},     /* a link within the root */
    {"/sublink/b.txt", 200, "beta"}, /* a directory link within the root */
    {"/sub/back", 200, "alpha"},     /* "../a.txt" from sub/, still beneath */
    {"/idx/", 200, "alpha"},         /* the index itself a link */
    {"/a%20b.txt", 200, "spaced"},   /* an encoded space is a name's */
    {"/%61.txt", 200, "alpha"},      /* an encoded letter */
    {"/%252e", 200, "literal"},      /* decoded once: the name "%2e" */
    {"/100%25.txt", 200, "percent"}, /* an encoded percent */
    /* Redirects to the slash form: directories, and only those. */
    {"/sub", 301, NULL},
    {"/sublink", 301, NULL},
    {"/noindex", 301, NULL},
    /* Forbidden: no index, or not a regular file. */
    {"/", 403, NULL},
    {"/noindex/", 403, NULL},
    {"/fifo", 403, NULL}, /* and the open did not wait for a writer */
    {"/sock", 403, NULL},
    /* Dot segments, plain or encoded, even where they would stay inside. */
    {"/..", 404, NULL},
    {"/../", 404, NULL},
    {"/../secret.txt", 404, NULL},
    {"/../../../../etc/passwd", 404, NULL},
    {"/sub/../a.txt", 404, NULL},
    {"/sub/..", 404, NULL},
    {"/%2e%2e/secret.txt", 404, NULL},
    {"/%2E%2E/secret.txt", 404, NULL},
    {"/.%2e/secret.txt", 404, NULL},
    {"/%2e./secret.txt", 404, NULL},
    {"/sub/%2e%2e/%2e%2e/secret.txt", 404, NULL},
    {"/./a.txt", 404, NULL},
    {"/%2e/a.txt", 404, NULL},
    {"/sub/.", 404, NULL},
    {"/sub/./b.txt", 404, NULL},
    /* Encoded slashes and backslashes, raw or encoded. */
    {"/..%2fsecret.txt", 404, NULL},
    {"/..%2F..%2Fetc%2Fpasswd", 404, NULL},
    {"/sub%2fb.txt", 404, NULL},
    {"/sub%2Fb.txt", 404, NULL},
    {"/..\\secret.txt", 404, NULL},
    {"/sub\\b.txt", 404, NULL},
    {"/..%5csecret.txt", 404, NULL},
    {"/..%5C..%5Csecret.txt", 404, NULL},
    /* Empty segments. */
    {"//", 404, NULL},
    {"//etc/passwd", 404, NULL},
    {"/sub//b.txt", 404, NULL},
    {"/sub/b.txt//", 404, NULL},
    /* Links that leave the root: the kernel refuses them (EXDEV), as if absent. */
    {"/passwd", 404, NULL}, /* to /etc/passwd */
    {"/up", 404, NULL},     /* to "..": no redirect that would confirm it */
    {"/up/", 404, NULL},
    {"/up/secret.txt", 404, NULL},
    {"/up/root/a.txt", 404, NULL}, /* out and back in */
    {"/outside", 404, NULL},       /* to ../secret.txt */
    {"/sub/escape", 404, NULL},    /* to ../../secret.txt */
    {"/abs", 404, NULL},           /* absolute, though to a file inside */
    {"/loop1", 404, NULL},         /* ELOOP */
    /* Names that only look like escapes are names: absent. */
    {"/%252e%252e/secret.txt", 404, NULL},   /* double encoding */
    {"/%c0%ae%c0%ae/secret.txt", 404, NULL}, /* overlong UTF-8 dots are bytes */
    {"/%e2%80%a5/secret.txt", 404, NULL},    /* U+2025 two dot leader */
    {"/..;/a.txt", 404, NULL},               /* Tomcat's path parameter */
    {"/.../a.txt", 404, NULL},
    {"/a.txt/", 404, NULL}, /* a file is not a directory */
    {"/a.txt/..", 404, NULL},
    {"/A.txt", 404, NULL},
    {"/missing", 404, NULL},
    /* Not paths at all. */
    {"", 400, NULL},
    {"a.txt", 400, NULL},
    {"*", 400, NULL},
    {"http://h/a.txt", 400, NULL},
    {"%2fa.txt", 400, NULL},
    {"/a.txt%00", 400, NULL},
    {"/a.txt%00.html", 400, NULL},
    {"/%00/../secret.txt", 400, NULL},
    {"/%0a", 400, NULL},
    {"/%0d%0aSet-Cookie:%20x=1", 400, NULL},
    {"/%09a.txt", 400, NULL},
    {"/%7f", 400, NULL},
    {"/%1b[31m", 400, NULL},
    {"/a\x01", 400, NULL},
    {"/a\x7f", 400, NULL},
    {"/a\r\n", 400, NULL},
    {"/a b.txt", 400, NULL},
    {"/a.txt#frag", 400, NULL},
    {"/%zz", 400, NULL},
    {"/%4", 400, NULL},
    {"/%", 400, NULL},
    {"/a.txt%", 400, NULL},
    {"/%G0", 400, NULL},
    {"/%%32%65", 400, NULL},
    {"/%u002e%u002e/secret.txt", 400, NULL},
    {"/%2", 400, NULL},
};

static void test_paths(void **state)
{
    (void)state;
    size_t count = sizeof(path_cases) / sizeof(path_cases[0]);
    assert_true(count >= 40);
    for (size_t i = 0; i < count; i++) {
        const struct path_case *c = &path_cases[i];
        char content[64] = "";
        bool is_index = false;
        uint16_t status = serve(c->raw, strlen(c->raw), content, sizeof(content), &is_index);
        if (status != c->status)
            fail_msg("case %zu \"%s\": %u, expected %u", i, c->raw, status, c->status);
        if (c->content && strcmp(content, c->content) != 0)
            fail_msg("case %zu \"%s\": served \"%s\"", i, c->raw, content);
        if (status == 200 && is_index != (c->raw[strlen(c->raw) - 1] == '/'))
            fail_msg("case %zu \"%s\": is_index %d", i, c->raw, is_index);
    }
    /* A NUL inside the raw bytes, where strlen would have stopped. */
    char content[64];
    bool is_index;
    assert_int_equal(serve("/a.txt\0.html", 12, content, sizeof(content), &is_index), 400);
    if (tree.has_device)
        assert_int_equal(serve("/null", 5, content, sizeof(content), &is_index), 403);
}

/* The same table through the walk that stands in for a missing openat2. */
static void test_paths_by_walk(void **state)
{
    pf_static_walk_only(true);
    test_paths(state);
    pf_static_walk_only(false);
}

static void test_decoding(void **state)
{
    (void)state;
    char out[32];
    size_t len;
    assert_int_equal(pf_static_check_path("/a%20b/%C3%A9%7e", 16, out, sizeof(out), &len), 0);
    assert_string_equal(out, "/a b/\xc3\xa9~");
    assert_int_equal(len, 8);
    assert_int_equal(pf_static_check_path("/", 1, out, sizeof(out), &len), 0);
    assert_string_equal(out, "/");
    /* Raw non-ASCII bytes are a name's, as sent. */
    assert_int_equal(pf_static_check_path("/\xc3\xa9", 3, out, sizeof(out), &len), 0);
    assert_int_equal(len, 3);
    /* Only raw_len bytes are read. */
    assert_int_equal(pf_static_check_path("/ab/../x", 3, out, sizeof(out), &len), 0);
    assert_string_equal(out, "/ab");
    /* cap holds the NUL too. */
    assert_int_equal(pf_static_check_path("/abc", 4, out, 5, &len), 0);
    assert_int_equal(pf_static_check_path("/abc", 4, out, 4, &len), -ENAMETOOLONG);
    assert_int_equal(pf_static_check_path("/%41%42", 7, out, 4, &len), 0);
    assert_string_equal(out, "/AB");
    assert_int_equal(pf_static_status_for(-ENAMETOOLONG), 414);
    /* A path longer than any the check passes, and a name longer than any file's. */
    char longer[PF_STATIC_PATH_MAX + 8];
    memset(longer, 'a', sizeof(longer));
    longer[0] = '/';
    char content[64];
    bool is_index;
    assert_int_equal(serve(longer, sizeof(longer), content, sizeof(content), &is_index), 414);
    assert_int_equal(serve(longer, 300, content, sizeof(content), &is_index), 414);
}

static void test_open(void **state)
{
    (void)state;
    struct pf_static_file f;
    assert_int_equal(pf_static_open(tree.root_fd, "", "index.html", &f), -EISDIR);
    assert_int_equal(pf_static_open(tree.root_fd, "/sub/", NULL, &f), -EACCES);
    assert_int_equal(pf_static_open(tree.root_fd, "/sub/", "", &f), -EACCES);
    assert_int_equal(pf_static_open(tree.root_fd, "/sub/", "deeper", &f), -EACCES);
    assert_int_equal(pf_static_open(tree.root_fd, "/missing/", "index.html", &f), -ENOENT);
    assert_int_equal(pf_static_open(tree.root_fd, "/missing/", NULL, &f), -ENOENT);
    assert_int_equal(pf_static_open(tree.root_fd, "/up/", NULL, &f), -EXDEV);
    assert_int_equal(pf_static_open(tree.root_fd, "/loop1", NULL, &f), -ELOOP);
    /* An index that leaves the root is refused like any other link. */
    assert_int_equal(pf_static_open(tree.root_fd, "/sub/", "escape", &f), -EXDEV);
    /* The fields, against the kernel's own answer; blocking, close-on-exec. */
    assert_int_equal(pf_static_open(tree.root_fd, "/link.txt", NULL, &f), 0);
    struct stat st;
    char path[160];
    snprintf(path, sizeof(path), "%s/a.txt", tree.root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(f.size, 5);
    assert_int_equal(f.inode, st.st_ino);
    assert_int_equal(f.dev, st.st_dev);
    assert_int_equal(f.mtime.tv_sec, st.st_mtim.tv_sec);
    assert_int_equal(f.mtime.tv_nsec, st.st_mtim.tv_nsec);
    assert_true(f.is_regular);
    assert_false(f.is_index);
    assert_int_equal(fcntl(f.fd, F_GETFL) & (O_NONBLOCK | O_ACCMODE), O_RDONLY);
    assert_true(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
    pf_static_close(&f);
    pf_static_close(&f);
    pf_static_close(NULL);
    /* The file system's own refusal, where it applies (root reads anything). */
    if (geteuid() != 0) {
        put("root/closed.txt", "x");
        snprintf(path, sizeof(path), "%s/closed.txt", tree.root);
        assert_int_equal(chmod(path, 0), 0);
        assert_int_equal(pf_static_open(tree.root_fd, "/closed.txt", NULL, &f), -EACCES);
    }
}

static void test_open_gz(void **state)
{
    (void)state;
    struct pf_static_file gz;
    char buf[32] = "";
    assert_int_equal(pf_static_open_gz(tree.root_fd, "/a.txt", NULL, &gz), 0);
    assert_int_equal(pread(gz.fd, buf, sizeof(buf) - 1, 0), 8);
    assert_string_equal(buf, "alpha-gz");
    assert_false(gz.is_index);
    pf_static_close(&gz);
    assert_int_equal(pf_static_open_gz(tree.root_fd, "/sub/", "index.html", &gz), 0);
    assert_true(gz.is_index);
    assert_int_equal(gz.size, 12);
    pf_static_close(&gz);
    assert_int_equal(pf_static_open_gz(tree.root_fd, "/sub/b.txt", NULL, &gz), -ENOENT);
    assert_int_equal(pf_static_open_gz(tree.root_fd, "/sub/", NULL, &gz), -ENOENT);
    assert_int_equal(gz.fd, -1);
    /* The sibling of a link is looked up by the name asked for, not the target's. */
    assert_int_equal(pf_static_open_gz(tree.root_fd, "/link.txt", NULL, &gz), -ENOENT);
}

static void test_status_for(void **state)
{
    (void)state;
    static const struct {
        int rc;
        uint16_t status;
    } cases[] = {
        {0, 200},       {-EISDIR, 301},  {-EINVAL, 400}, {-EACCES, 403}, {-EPERM, 404},
        {-ENOENT, 404}, {-ENOTDIR, 404}, {-EXDEV, 404},  {-ELOOP, 404},  {-ENAMETOOLONG, 414},
        {-EMFILE, 500}, {-EIO, 500},     {-ENOMEM, 500}, {-100000, 500},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(pf_static_status_for(cases[i].rc), cases[i].status);
}

/* ---- validators and decisions, on plain values -------------------------------------- */

#define MTIME 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOW   (MTIME + 3600)

static const struct pf_static_file file1000 = {
    .fd = -1, .size = 1000, .mtime = {MTIME, 30000000}, .inode = 7, .is_regular = true};
static const struct pf_static_file gz400 = {
    .fd = -1, .size = 400, .mtime = {MTIME, 50000000}, .inode = 8, .is_regular = true};
#define ETAG    "\"2ebc98a1-1c9c380-3e8\""
#define GZ_ETAG "\"2ebc98a1-2faf080-190\""

static void test_etag(void **state)
{
    (void)state;
    char tag[PF_STATIC_ETAG_MAX];
    pf_static_etag(&file1000, tag, sizeof(tag));
    assert_string_equal(tag, ETAG);
    pf_static_etag(&gz400, tag, sizeof(tag));
    assert_string_equal(tag, GZ_ETAG);
    /* Every part counts but the inode. */
    struct pf_static_file f = file1000;
    f.inode = 99;
    pf_static_etag(&f, tag, sizeof(tag));
    assert_string_equal(tag, ETAG);
    f.mtime.tv_nsec++;
    pf_static_etag(&f, tag, sizeof(tag));
    assert_string_equal(tag, "\"2ebc98a1-1c9c381-3e8\"");
    f = file1000;
    f.size = 1001;
    pf_static_etag(&f, tag, sizeof(tag));
    assert_string_equal(tag, "\"2ebc98a1-1c9c380-3e9\"");
    /* The largest values fit. */
    f.mtime = (struct timespec){-1, 999999999};
    f.size = UINT64_MAX;
    pf_static_etag(&f, tag, sizeof(tag));
    assert_string_equal(tag, "\"ffffffffffffffff-3b9ac9ff-ffffffffffffffff\"");
}

static struct pf_static_request request(void)
{
    return (struct pf_static_request){.now = NOW};
}

static struct pf_static_decision decide(const struct pf_static_request *req)
{
    struct pf_static_decision d;
    pf_static_decide(&file1000, req, &d);
    return d;
}

static void test_plain(void **state)
{
    (void)state;
    struct pf_static_request req = request();
    struct pf_static_decision d = decide(&req);
    assert_int_equal(d.status, 200);
    assert_ptr_equal(d.file, &file1000);
    assert_int_equal(d.start, 0);
    assert_int_equal(d.length, 1000);
    assert_string_equal(d.etag, ETAG);
    assert_string_equal(d.last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_string_equal(d.content_range, "");
    assert_false(d.use_gz);
    assert_false(d.vary);
    /* Modified "after" now: Last-Modified says now (RFC 9110 8.8.2.1). */
    req.now = MTIME - 10;
    d = decide(&req);
    assert_string_equal(d.last_modified, "Sun, 06 Nov 1994 08:49:27 GMT");
}

struct condition_case {
    const char *if_none_match;
    const char *if_modified_since;
    uint16_t status;
};

static void test_not_modified(void **state)
{
    (void)state;
    static const struct condition_case cases[] = {
        {ETAG, NULL, 304},                       /* exact */
        {"  " ETAG "  ", NULL, 304},             /* OWS */
        {"\"x\", " ETAG, NULL, 304},             /* a list */
        {"\"x\"," ETAG ",\"y\"", NULL, 304},     /* without spaces */
        {"\"a,b\", " ETAG, NULL, 304},           /* a comma inside a tag */
        {", ," ETAG ",", NULL, 304},             /* empty members */
        {"W/" ETAG, NULL, 304},                  /* weak comparison */
        {"*", NULL, 304},                        /* any */
        {"\"x\"", NULL, 200},                    /* mismatch */
        {"\"2ebc98a1-1c9c380-3e9\"", NULL, 200}, /* another version */
        {"2ebc98a1-1c9c380-3e8", NULL, 200},     /* unquoted */
        {"\"2ebc98a1-1c9c380-3e8", NULL, 200},   /* unterminated */
        {"w/" ETAG, NULL, 200},                  /* W is upper case */
        {"*, \"x\"", NULL, 200},                 /* "*" alone or not */
        {"", NULL, 200},
        {"\"x\"", "Sun, 06 Nov 1994 08:49:37 GMT", 200}, /* If-None-Match decides */
        {NULL, "Sun, 06 Nov 1994 08:49:37 GMT", 304},    /* equal */
        {NULL, "Sun, 06 Nov 1994 08:49:38 GMT", 304},    /* later */
        {NULL, "Sun, 06 Nov 1994 08:49:36 GMT", 200},    /* older */
        {NULL, "Sunday, 06-Nov-94 08:49:37 GMT", 304},   /* RFC 850 */
        {NULL, "Sun Nov  6 08:49:37 1994", 304},         /* asctime */
        {NULL, " Sun, 06 Nov 1994 08:49:37 GMT ", 304},  /* OWS */
        {NULL, "Sun, 06 Nov 1994 09:49:37 GMT", 304},    /* now */
        {NULL, "Sun, 06 Nov 1994 09:49:38 GMT", 200},    /* after now: ignored */
        {NULL, "garbage", 200},
        {NULL, "784111777", 200},
        {NULL, "", 200},
        {NULL, "Sun, 06 Nov 1994 08:49:37 GMT, garbage", 200}, /* several members */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pf_static_request req = request();
        req.if_none_match = cases[i].if_none_match;
        req.if_modified_since = cases[i].if_modified_since;
        req.range = "bytes=0-9"; /* 304 comes before ranges */
        struct pf_static_decision d = decide(&req);
        uint16_t expected = cases[i].status == 200 ? 206 : cases[i].status;
        if (d.status != expected)
            fail_msg("case %zu: %u, expected %u", i, d.status, expected);
        if (d.status == 304) {
            assert_int_equal(d.length, 0);
            assert_string_equal(d.etag, ETAG);
            assert_string_equal(d.content_range, "");
        }
        req.head = true;
        d = decide(&req);
        assert_int_equal(d.status, cases[i].status);
    }
}

static void test_precondition_failed(void **state)
{
    (void)state;
    static const struct {
        const char *if_match;
        const char *if_unmodified_since;
        uint16_t status;
    } cases[] = {
        {ETAG, NULL, 200},
        {"\"x\", " ETAG, NULL, 200},
        {"*", NULL, 200},
        {"\"x\"", NULL, 412},
        {"W/" ETAG, NULL, 412}, /* strong comparison */
        {NULL, "Sun, 06 Nov 1994 08:49:37 GMT", 200},
        {NULL, "Sun, 06 Nov 1994 08:49:36 GMT", 412},
        {NULL, "garbage", 200},
        {ETAG, "Sun, 06 Nov 1994 08:49:36 GMT", 200}, /* If-Match decides */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pf_static_request req = request();
        req.if_match = cases[i].if_match;
        req.if_unmodified_since = cases[i].if_unmodified_since;
        req.if_none_match = ETAG; /* would be 304; 412 comes first */
        struct pf_static_decision d = decide(&req);
        uint16_t expected = cases[i].status == 200 ? 304 : 412;
        if (d.status != expected)
            fail_msg("case %zu: %u, expected %u", i, d.status, expected);
        assert_int_equal(d.length, 0);
    }
}

struct range_case {
    const char *range;
    uint16_t status;
    uint64_t start, length;
    const char *content_range;
};

static void expect_ranges(const struct pf_static_file *f, const struct range_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct range_case *c = &cases[i];
        struct pf_static_request req = request();
        req.range = c->range;
        struct pf_static_decision d;
        pf_static_decide(f, &req, &d);
        if (d.status != c->status || d.start != c->start || d.length != c->length ||
            strcmp(d.content_range, c->content_range) != 0)
            fail_msg("case %zu \"%s\": %u %llu+%llu \"%s\"", i, c->range, d.status,
                     (unsigned long long)d.start, (unsigned long long)d.length, d.content_range);
        /* HEAD never gets a range. */
        req.head = true;
        pf_static_decide(f, &req, &d);
        assert_int_equal(d.status, 200);
        assert_int_equal(d.length, f->size);
    }
}

static void test_ranges(void **state)
{
    (void)state;
    static const struct range_case cases[] = {
        {"bytes=0-99", 206, 0, 100, "bytes 0-99/1000"},
        {"bytes=0-0", 206, 0, 1, "bytes 0-0/1000"},
        {"bytes=999-999", 206, 999, 1, "bytes 999-999/1000"},
        {"bytes=500-", 206, 500, 500, "bytes 500-999/1000"},
        {"bytes=-100", 206, 900, 100, "bytes 900-999/1000"},
        {"bytes=-1", 206, 999, 1, "bytes 999-999/1000"},
        {"bytes=-1000", 206, 0, 1000, "bytes 0-999/1000"},
        {"bytes=-5000", 206, 0, 1000, "bytes 0-999/1000"},      /* suffix clamped */
        {"bytes=990-5000", 206, 990, 10, "bytes 990-999/1000"}, /* end clamped */
        {"bytes=0-99999999999999999999999", 206, 0, 1000, "bytes 0-999/1000"},
        {"Bytes=0-0", 206, 0, 1, "bytes 0-0/1000"}, /* the unit is case-insensitive */
        {" bytes=10-19 ", 206, 10, 10, "bytes 10-19/1000"},
        {"bytes= 10-19", 206, 10, 10, "bytes 10-19/1000"},
        {"bytes=10-19,", 206, 10, 10, "bytes 10-19/1000"}, /* an empty member */
        {"bytes=1000-", 416, 0, 0, "bytes */1000"},
        {"bytes=1000-1000", 416, 0, 0, "bytes */1000"},
        {"bytes=5000-6000", 416, 0, 0, "bytes */1000"},
        {"bytes=99999999999999999999999-", 416, 0, 0, "bytes */1000"},
        {"bytes=-0", 416, 0, 0, "bytes */1000"},
        {"bytes=-000", 416, 0, 0, "bytes */1000"},
        /* Several ranges: the whole file (RFC 9110 14.2 allows ignoring Range). */
        {"bytes=0-1,5-6", 200, 0, 1000, ""},
        {"bytes=0-1, -5", 200, 0, 1000, ""},
        {"bytes=2000-3000,4000-", 200, 0, 1000, ""},
        /* Malformed or another unit: ignored. */
        {"bytes=5-1", 200, 0, 1000, ""},
        {"bytes=", 200, 0, 1000, ""},
        {"bytes=-", 200, 0, 1000, ""},
        {"bytes=a-b", 200, 0, 1000, ""},
        {"bytes=1-2-3", 200, 0, 1000, ""},
        {"bytes=-1-2", 200, 0, 1000, ""},
        {"bytes=0x10-", 200, 0, 1000, ""},
        {"bytes=+1-2", 200, 0, 1000, ""},
        {"bytes=1 -2", 200, 0, 1000, ""},
        {"bytes=1", 200, 0, 1000, ""},
        {"bytes 0-1", 200, 0, 1000, ""},
        {"bytes:0-1", 200, 0, 1000, ""},
        {"items=0-1", 200, 0, 1000, ""},
        {"", 200, 0, 1000, ""},
    };
    expect_ranges(&file1000, cases, sizeof(cases) / sizeof(cases[0]));
    /* An empty file: no byte to start at; no Content-Range that can name zero bytes. */
    static const struct range_case empty[] = {
        {"bytes=0-", 416, 0, 0, "bytes */0"},
        {"bytes=0-0", 416, 0, 0, "bytes */0"},
        {"bytes=-5", 200, 0, 0, ""},
        {"bytes=-0", 416, 0, 0, "bytes */0"},
    };
    struct pf_static_file none = file1000;
    none.size = 0;
    expect_ranges(&none, empty, sizeof(empty) / sizeof(empty[0]));
}

static void test_if_range(void **state)
{
    (void)state;
    static const struct {
        const char *if_range;
        uint16_t status;
    } cases[] = {
        {ETAG, 206},
        {" " ETAG " ", 206},
        {"\"x\"", 200},
        {"W/" ETAG, 200}, /* a weak tag never matches here */
        {"\"x\", " ETAG, 200},
        {"Sun, 06 Nov 1994 08:49:37 GMT", 206}, /* exactly Last-Modified */
        {"Sun Nov  6 08:49:37 1994", 206},
        {"Sun, 06 Nov 1994 08:49:38 GMT", 200}, /* later is not equal */
        {"Sun, 06 Nov 1994 08:49:36 GMT", 200},
        {"garbage", 200},
        {"", 200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pf_static_request req = request();
        req.if_range = cases[i].if_range;
        req.range = "bytes=100-199";
        struct pf_static_decision d = decide(&req);
        if (d.status != cases[i].status)
            fail_msg("case %zu \"%s\": %u", i, cases[i].if_range, d.status);
        assert_int_equal(d.length, d.status == 206 ? 100 : 1000);
        /* Without Range, If-Range means nothing. */
        req.range = NULL;
        d = decide(&req);
        assert_int_equal(d.status, 200);
    }
    /* A failing If-Range also hides an unsatisfiable range: the whole file. */
    struct pf_static_request req = request();
    req.if_range = "\"x\"";
    req.range = "bytes=5000-";
    assert_int_equal(decide(&req).status, 200);
}

static void test_accept_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool gzip;
    } cases[] = {
        {NULL, false},
        {"", false},
        {"gzip", true},
        {"GZIP", true},
        {"x-gzip", true},
        {"gzip, deflate, br", true},
        {"br;q=1, gzip;q=0.001", true},
        {"deflate, br", false},
        {"identity", false},
        {"*", true},
        {"*;q=0", false},
        {"gzip;q=0", false},
        {"gzip;q=0.000", false},
        {"gzip;Q=0", false},
        {"gzip;q=0, *", false}, /* named beats "*" */
        {"*, gzip;q=0", false},
        {"gzip;q=0.5, identity", false}, /* identity preferred */
        {"gzip;q=0.5, *", false},        /* "*" covers identity */
        {"gzip;q=1.0, identity;q=0.5", true},
        {"gzip;q=0.5, identity;q=0.5", true}, /* a tie: the smaller */
        {"gzip, identity;q=0", true},
        {"gzip;q=0.5, *;q=0.1", true},
        {"gzip ; q=0.8", true},
        {"gzip;level=9;q=0.8", true},
        {"gzip;q=abc", false}, /* a malformed weight drops the member */
        {"gzip;q=1.5", false},
        {"gzip;q=0.1234", false},
        {"gzip;q=abc, *", true}, /* and "*" still counts */
        {"gzipx", false},
        {"x gzip", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (pf_static_accepts_gzip(cases[i].value) != cases[i].gzip)
            fail_msg("case %zu \"%s\": expected %d", i, cases[i].value ? cases[i].value : "NULL",
                     cases[i].gzip);
}

static void test_gzip_decision(void **state)
{
    (void)state;
    struct pf_static_request req = request();
    req.gz = &gz400;
    req.accept_encoding = "gzip, br";
    struct pf_static_decision d = decide(&req);
    assert_int_equal(d.status, 200);
    assert_true(d.use_gz);
    assert_true(d.vary);
    assert_ptr_equal(d.file, &gz400);
    assert_int_equal(d.length, 400);
    assert_string_equal(d.etag, GZ_ETAG); /* another representation, another tag */
    /* The gzip representation's ranges and validators are its own. */
    req.range = "bytes=-100";
    d = decide(&req);
    assert_int_equal(d.status, 206);
    assert_int_equal(d.start, 300);
    assert_string_equal(d.content_range, "bytes 300-399/400");
    req.range = NULL;
    req.if_none_match = ETAG;
    assert_int_equal(decide(&req).status, 200);
    req.if_none_match = GZ_ETAG;
    d = decide(&req);
    assert_int_equal(d.status, 304);
    assert_true(d.vary); /* a 304 says Vary as its 200 would */
    /* Not accepted: the file itself, and still Vary. */
    static const char *const refusing[] = {NULL, "identity", "gzip;q=0", "br", "*;q=0"};
    for (size_t i = 0; i < sizeof(refusing) / sizeof(refusing[0]); i++) {
        req = request();
        req.gz = &gz400;
        req.accept_encoding = refusing[i];
        d = decide(&req);
        assert_false(d.use_gz);
        assert_true(d.vary);
        assert_ptr_equal(d.file, &file1000);
        assert_string_equal(d.etag, ETAG);
    }
    /* No sibling: no gzip, no Vary. */
    req = request();
    req.accept_encoding = "gzip";
    d = decide(&req);
    assert_false(d.use_gz);
    assert_false(d.vary);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_paths_by_walk),
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_open_gz),
        cmocka_unit_test(test_status_for),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_not_modified),
        cmocka_unit_test(test_precondition_failed),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_accept_encoding),
        cmocka_unit_test(test_gzip_decision),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
