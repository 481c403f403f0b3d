#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preforkd/accesslog.h"

static char path[64];

static int setup(void **state)
{
    (void)state;
    strcpy(path, "/tmp/preforkd-access-XXXXXX");
    int fd = mkstemp(path);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

/* Parses req; *h shares the parser's buffers, which the next call frees. */
static void parse(struct pf_http *h, const char *req)
{
    static const struct pf_limits lim = {8192, 16384, 100, 1 << 20, 10};
    static struct pf_http last;
    pf_http_free(&last);
    pf_http_init(&last, &lim, NULL, NULL);
    last.capture = true;
    size_t used;
    assert_int_equal(pf_http_feed(&last, req, strlen(req), &used), PF_HTTP_REQUEST);
    *h = last;
}

static char *slurp(void)
{
    static char text[8192];
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

static void test_combined(void **state)
{
    (void)state;
    struct pf_handler_ctx ctx;
    pf_handler_ctx_init(&ctx, 77, 0, 1, 1);
    pf_handler_ctx_tick(&ctx, 0, 784111777);
    struct pf_access_log *log;
    assert_int_equal(pf_access_log_open(&log, PF_ACCESS_COMBINED, path, 3), 0);
    struct pf_http h;
    parse(&h, "GET /health?x=1 HTTP/1.1\r\nHost: a\r\nReferer: http://r/\r\n"
              "User-Agent: evil\"\\agent\r\n\r\n");
    pf_access_log_write(log, &ctx, "10.0.0.7", &h, 200, 123);
    assert_string_equal(slurp(), ""); /* buffered: no write per request */
    pf_access_log_flush(log);
    assert_string_equal(slurp(), "10.0.0.7 - - [06/Nov/1994:08:49:37 +0000] \"GET /health?x=1 "
                                 "HTTP/1.1\" 200 123 \"http://r/\" \"evil\\x22\\x5cagent\"\n");
    pf_access_log_free(&log);
}

static void test_json_and_reopen(void **state)
{
    (void)state;
    struct pf_handler_ctx ctx;
    pf_handler_ctx_init(&ctx, 77, 0, 1, 1);
    pf_handler_ctx_tick(&ctx, 0, 784111777);
    struct pf_access_log *log;
    assert_int_equal(pf_access_log_open(&log, PF_ACCESS_JSON, path, 1), 0);
    struct pf_http h;
    parse(&h, "DELETE /x HTTP/1.0\r\nUser-Agent: a\xe9z\r\n\r\n");
    pf_access_log_write(log, &ctx, "::1", &h, 405, 30);
    /* logrotate moves the file; after the reopen the next lines land in a new one. */
    char moved[80];
    snprintf(moved, sizeof(moved), "%s.1", path);
    rename(path, moved);
    assert_int_equal(pf_access_log_reopen(log), 0);
    pf_access_log_write(log, &ctx, "::1", &h, 405, 30);
    pf_access_log_free(&log);
    const char *want =
        "{\"time\":\"1994-11-06T08:49:37Z\",\"remote\":\"::1\",\"method\":\"DELETE\","
        "\"target\":\"/x\",\"protocol\":\"HTTP/1.0\",\"status\":405,\"bytes\":30,"
        "\"referer\":\"\",\"user_agent\":\"a\\u00e9z\",\"worker\":1,\"pid\":77}\n";
    assert_string_equal(slurp(), want);
    FILE *f = fopen(moved, "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(moved);
    assert_string_equal(line, want); /* the line written before the reopen */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_combined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_and_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
