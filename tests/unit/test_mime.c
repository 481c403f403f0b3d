#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preforkd/mime.h"

struct lookup_case {
    const char *filename;
    const char *type;
};

static void expect_types(const struct pf_mime *m, const struct lookup_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = pf_mime_lookup(m, cases[i].filename);
        if (strcmp(got, cases[i].type) != 0)
            fail_msg("%s: %s, expected %s", cases[i].filename, got, cases[i].type);
    }
}

/* Writes text to a new temporary file; its path in path (freed by unlink). */
static void write_temp(char *path, const char *text)
{
    strcpy(path, "/tmp/pf_mime_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_file(void **state)
{
    (void)state;
    char path[32];
    write_temp(path, "# a comment line\n"
                     "\n"
                     "text/html\t\thtml HTM\n"
                     "text/x-first\tdup\n"
                     "text/x-second\tdup\n"
                     "application/x-multi  tm.json ok\r\n"
                     "notatype  foo\n"
                     "image/png png   # a trailing comment naming gif\n"
                     "application/x-none\n"
                     "   \t  \n"
                     "application/x-long abcdefghijklmnop\n"
                     "text/plain txt"); /* no newline at the end */
    struct pf_mime m;
    assert_int_equal(pf_mime_load(&m, path), 0);
    unlink(path);
    assert_int_equal(m.count, 6); /* html htm dup ok png txt */
    for (size_t i = 1; i < m.count; i++)
        assert_true(strcmp(m.types[i - 1].ext, m.types[i].ext) < 0);
    static const struct lookup_case cases[] = {
        {"index.html", "text/html"},
        {"INDEX.HTM", "text/html"}, /* case-insensitive both ways */
        {"a.Html", "text/html"},
        {"x.dup", "text/x-first"},         /* the first line wins */
        {"x.ok", "application/x-multi"},   /* after a dotted one */
        {"x.tm.json", "application/json"}, /* last extension; the built-in json */
        {"x.foo", PF_MIME_DEFAULT},        /* not a type/subtype line */
        {"x.png", "image/png"},
        {"x.gif", "image/gif"}, /* the comment was not read; the built-in answers */
        {"x.txt", "text/plain"},
        {"x.css", "text/css"}, /* not in the file: built-in */
        {"x.abcdefghijklmnop", PF_MIME_DEFAULT},
        {"archive.tar.gz", "application/gzip"},
        {"dir.html/file", PF_MIME_DEFAULT}, /* a directory's dot is not the file's */
        {"/a/b/c.html", "text/html"},
        {".profile", PF_MIME_DEFAULT}, /* a leading dot is a hidden file, no extension */
        {"/a/.html", PF_MIME_DEFAULT},
        {"noext", PF_MIME_DEFAULT},
        {"trailing.", PF_MIME_DEFAULT},
        {"", PF_MIME_DEFAULT},
    };
    expect_types(&m, cases, sizeof(cases) / sizeof(cases[0]));
    pf_mime_free(&m);
    assert_null(m.types);
    pf_mime_free(&m); /* twice, and NULL */
    pf_mime_free(NULL);
}

static const struct lookup_case builtin_cases[] = {
    {"a.html", "text/html"},        {"a.css", "text/css"},
    {"a.js", "text/javascript"},    {"a.mjs", "text/javascript"},
    {"a.json", "application/json"}, {"a.txt", "text/plain"},
    {"a.svg", "image/svg+xml"},     {"a.png", "image/png"},
    {"a.JPG", "image/jpeg"},        {"a.gif", "image/gif"},
    {"a.webp", "image/webp"},       {"a.ico", "image/vnd.microsoft.icon"},
    {"a.wasm", "application/wasm"}, {"a.pdf", "application/pdf"},
    {"a.xml", "application/xml"},   {"a.woff2", "font/woff2"},
    {"a.unknown", PF_MIME_DEFAULT},
};

static void test_fallback(void **state)
{
    (void)state;
    struct pf_mime m;
    assert_int_equal(pf_mime_load(&m, "/nonexistent/mime.types"), -ENOENT);
    assert_int_equal(m.count, 0);
    expect_types(&m, builtin_cases, sizeof(builtin_cases) / sizeof(builtin_cases[0]));
    pf_mime_free(&m);
    /* A directory is not a types file; an empty file has no types. Both still answer. */
    assert_int_equal(pf_mime_load(&m, "/tmp"), -EINVAL);
    expect_types(&m, builtin_cases, 3);
    pf_mime_free(&m);
    char path[32];
    write_temp(path, "");
    assert_int_equal(pf_mime_load(&m, path), 0);
    unlink(path);
    expect_types(&m, builtin_cases, sizeof(builtin_cases) / sizeof(builtin_cases[0]));
    pf_mime_free(&m);
    /* A zeroed struct that was never loaded. */
    struct pf_mime none = {0};
    expect_types(&none, builtin_cases, sizeof(builtin_cases) / sizeof(builtin_cases[0]));
    assert_string_equal(pf_mime_lookup(NULL, "a.css"), "text/css");
}

/* Debian's media-types file, where it is installed. */
static void test_system_file(void **state)
{
    (void)state;
    struct pf_mime m;
    int rc = pf_mime_load(&m, NULL);
    if (rc == -ENOENT) {
        pf_mime_free(&m);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_true(m.count > 500);
    for (size_t i = 1; i < m.count; i++)
        assert_true(strcmp(m.types[i - 1].ext, m.types[i].ext) < 0);
    static const struct lookup_case cases[] = {
        {"index.html", "text/html"},    {"style.css", "text/css"},
        {"app.js", "text/javascript"},  {"a.json", "application/json"},
        {"a.png", "image/png"},         {"a.svg", "image/svg+xml"},
        {"a.wasm", "application/wasm"}, {"a.unknownext", PF_MIME_DEFAULT},
    };
    expect_types(&m, cases, sizeof(cases) / sizeof(cases[0]));
    pf_mime_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_system_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
