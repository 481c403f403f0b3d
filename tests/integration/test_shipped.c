/* The preforkd that is installed and packaged has no fault injection: PREFORKD_FAULT is
 * compiled only into preforkd-test, the daemon the other integration tests start. Here
 * PF_TEST_BINARY is the shipped preforkd and PF_FAULT_BINARY is preforkd-test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char buf[4096];

/* Whether the file at path holds the bytes of needle anywhere. */
static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    char *data = malloc((size_t)size);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    assert_int_equal(fclose(f), 0);
    bool found = memmem(data, (size_t)size, needle, strlen(needle)) != NULL;
    free(data);
    return found;
}

static void test_shipped_binary_has_no_fault_code(void **state)
{
    (void)state;
    /* The fault hooks read the variable by name; without them the name is not there. */
    assert_true(file_contains(PF_FAULT_BINARY, "PREFORKD_FAULT")); /* the check can see it */
    assert_false(file_contains(PF_TEST_BINARY, "PREFORKD_FAULT"));
}

static void test_crash_at_start_is_ignored(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"PREFORKD_FAULT=exit-at-start:0", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    daemon_start_opts(&d, NULL, 2, &o); /* returns once both workers serve */
    http_exchange(d.port, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 200);
    assert_non_null(strstr(buf, "\"degraded\":false}"));
    assert_false(daemon_log_contains(&d, "PREFORKD_FAULT"));
    assert_false(daemon_log_contains(&d, "respawning"));
    daemon_stop(&d);
}

static void test_allocation_fault_is_ignored(void **state)
{
    (void)state;
    struct daemon d;
    const char *env[] = {"PREFORKD_FAULT=conn-alloc-fails", NULL};
    struct daemon_opts o = {.env = env, .listen_fd = -1};
    daemon_start_opts(&d, NULL, 1, &o);
    http_exchange(d.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf));
    assert_int_equal(status_of(buf), 200);
    assert_string_equal(body_of(buf), "{\"sum\":4999950000}");
    assert_false(daemon_log_contains(&d, "no memory for a connection"));
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_binary_has_no_fault_code),
        cmocka_unit_test(test_crash_at_start_is_ignored),
        cmocka_unit_test(test_allocation_fault_is_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
