#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "preforkd/response.h"

/* One answer written with the cache of 784111777 (Sun, 06 Nov 1994 08:49:37 GMT). */
static void expect_bytes(enum pf_header_block block, const char *body, const char *want)
{
    struct pf_response_cache rc = {0};
    pf_response_cache_tick(&rc, 784111777);
    char mem[PF_RESPONSE_MAX];
    struct pf_buf b;
    pf_buf_init(&b, mem, sizeof(mem));
    pf_response_write(&b, &rc, 200, block, body, strlen(body), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(mem, want, b.len);
}

static void test_exact_bytes(void **state)
{
    (void)state;
    expect_bytes(PF_BLOCK_JSON, "{\"a\":1}",
                 "HTTP/1.1 200 OK\r\n"
                 "Server: preforkd\r\n"
                 "Content-Type: application/json\r\n"
                 "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                 "Content-Length: 7\r\n"
                 "\r\n"
                 "{\"a\":1}");
    expect_bytes(PF_BLOCK_JSON_NO_STORE, "{}",
                 "HTTP/1.1 200 OK\r\n"
                 "Server: preforkd\r\n"
                 "Content-Type: application/json\r\n"
                 "Cache-Control: no-store\r\n"
                 "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                 "Content-Length: 2\r\n"
                 "\r\n"
                 "{}");
    expect_bytes(PF_BLOCK_EMPTY, "",
                 "HTTP/1.1 200 OK\r\n"
                 "Server: preforkd\r\n"
                 "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                 "Content-Length: 0\r\n"
                 "\r\n");
}

static void test_flags(void **state)
{
    (void)state;
    struct pf_response_cache rc = {0};
    pf_response_cache_tick(&rc, 0);
    char mem[PF_RESPONSE_MAX];
    struct pf_buf b;
    pf_buf_init(&b, mem, sizeof(mem));
    pf_response_write(&b, &rc, 405, PF_BLOCK_JSON, "xyz", 3,
                      PF_RESP_HEAD | PF_RESP_CLOSE | PF_RESP_ALLOW_GET);
    mem[b.len] = '\0';
    assert_true(strncmp(mem, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    assert_non_null(
        strstr(mem, "\r\nContent-Length: 3\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n"));
    assert_null(strstr(mem, "xyz")); /* HEAD: no body */
    pf_buf_init(&b, mem, sizeof(mem));
    pf_response_write(&b, &rc, 200, PF_BLOCK_EMPTY, "", 0, PF_RESP_KEEPALIVE);
    mem[b.len] = '\0';
    assert_non_null(strstr(mem, "Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    /* /metrics' head: its body follows from elsewhere; no cache stores it. */
    pf_buf_init(&b, mem, sizeof(mem));
    pf_response_write_head(&b, &rc, 200, PF_BLOCK_PROMETHEUS, 5, 0);
    mem[b.len] = '\0';
    assert_non_null(strstr(mem, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                                "Cache-Control: no-store\r\n"));
    assert_non_null(strstr(mem, "\r\nContent-Length: 5\r\n\r\n"));
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(pf_response_reason(404), "Not Found");
    assert_string_equal(pf_response_reason(431), "Request Header Fields Too Large");
    assert_string_equal(pf_response_reason(599), "Internal Server Error");
}

static void test_date_changes_once_a_second(void **state)
{
    (void)state;
    struct pf_response_cache rc = {0};
    pf_response_cache_tick(&rc, 1000);
    assert_non_null(strstr(rc.block[0].text, "00:16:40 GMT"));
    /* Within the same second the blocks are not rebuilt: marks written into them
     * survive another tick (a rebuild would produce the same bytes and go unseen). */
    for (int b = 0; b < PF_BLOCK_COUNT; b++)
        memset(rc.block[b].text, 'x', 8);
    pf_response_cache_tick(&rc, 1000);
    for (int b = 0; b < PF_BLOCK_COUNT; b++)
        assert_int_equal(rc.block[b].text[0], 'x');
    /* The next second rebuilds them all. */
    pf_response_cache_tick(&rc, 1001);
    for (int b = 0; b < PF_BLOCK_COUNT; b++)
        assert_non_null(strstr(rc.block[b].text, "00:16:41 GMT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_date_changes_once_a_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
