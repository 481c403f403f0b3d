#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "preforkd/env.h"

static const char *const *vars;

static const char *fake(const char *name)
{
    size_t n = strlen(name);
    for (const char *const *v = vars; *v; v++)
        if (strncmp(*v, name, n) == 0 && (*v)[n] == '=')
            return *v + n + 1;
    return NULL;
}

static void test_systemd_variables_for_this_process(void **state)
{
    (void)state;
    static const char *const env[] = {"NOTIFY_SOCKET=/run/systemd/notify",
                                      "WATCHDOG_USEC=60000000",
                                      "WATCHDOG_PID=42",
                                      "LISTEN_PID=42",
                                      "LISTEN_FDS=2",
                                      "JOURNAL_STREAM=8:1234",
                                      "MAINPID=40",
                                      NULL};
    vars = env;
    struct pf_env e;
    pf_env_parse(&e, fake, 42);
    assert_string_equal(e.notify_socket, "/run/systemd/notify");
    assert_int_equal(e.watchdog_usec, 60000000);
    assert_int_equal(e.listen_fds, 2);
    assert_true(e.journal);
    assert_int_equal(e.mainpid, 40);
    /* Meant for another process (a parent's, inherited): ignored. */
    pf_env_parse(&e, fake, 43);
    assert_int_equal(e.watchdog_usec, 0);
    assert_int_equal(e.listen_fds, 0);
    assert_string_equal(e.notify_socket, "/run/systemd/notify");
}

static void test_absent_and_malformed(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    vars = none;
    struct pf_env e;
    pf_env_parse(&e, fake, 42);
    assert_string_equal(e.notify_socket, "");
    assert_int_equal(e.watchdog_usec, 0);
    assert_int_equal(e.listen_fds, 0);
    assert_false(e.journal);
    assert_int_equal(e.mainpid, 0);
    static const char *const bad[] = {"WATCHDOG_USEC=60s", "LISTEN_PID=42", "LISTEN_FDS=two",
                                      "MAINPID=-1", NULL};
    vars = bad;
    pf_env_parse(&e, fake, 42);
    assert_int_equal(e.watchdog_usec, 0);
    assert_int_equal(e.listen_fds, 0);
    assert_int_equal(e.mainpid, 0);
    /* WATCHDOG_USEC without WATCHDOG_PID is for whoever reads it. */
    static const char *const wd[] = {"WATCHDOG_USEC=3000000", NULL};
    vars = wd;
    pf_env_parse(&e, fake, 7);
    assert_int_equal(e.watchdog_usec, 3000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_systemd_variables_for_this_process),
        cmocka_unit_test(test_absent_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
