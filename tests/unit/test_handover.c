#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "preforkd/handover.h"

static void test_round_trip(void **state)
{
    (void)state;
    struct pf_handover h = {.from = 4242, .ready_fd = 9, .scoreboard_fd = 7, .counters_fd = 8};
    assert_int_equal(pf_listeners_alloc(&h.ls, 2, 2, PF_BALANCE_REUSEPORT), 0);
    int fds[] = {3, 4, 5, 6};
    memcpy(h.ls.fds, fds, sizeof(fds));
    strcpy(h.ls.texts[0], "127.0.0.1:4400");
    strcpy(h.ls.texts[1], "unix:/run/a;b=c.sock"); /* separators inside an address */
    char *text = pf_handover_encode(&h);
    assert_non_null(text);
    struct pf_handover back;
    assert_int_equal(pf_handover_decode(text, &back), 0);
    assert_int_equal(back.from, 4242);
    assert_int_equal(back.ready_fd, 9);
    assert_int_equal(back.scoreboard_fd, 7);
    assert_int_equal(back.counters_fd, 8);
    assert_int_equal(back.ls.balance, PF_BALANCE_REUSEPORT);
    assert_int_equal(back.ls.nslots, 2);
    assert_int_equal(back.ls.naddrs, 2);
    assert_int_equal(back.ls.nfds, 4);
    assert_memory_equal(back.ls.fds, fds, sizeof(fds));
    assert_string_equal(back.ls.texts[1], "unix:/run/a;b=c.sock");
    free(text);
    /* Not ours to close: the descriptors are made up. */
    for (size_t i = 0; i < back.ls.nfds; i++)
        back.ls.fds[i] = h.ls.fds[i] = -1;
    pf_listeners_close(&back.ls);
    pf_listeners_close(&h.ls);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "from=1",
        "from=x;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=odd;activated=0;slots=1;addrs=1;"
        "fds=3;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3,4;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=2;"
        "fds=3,4;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;texts=",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=0;addrs=1;"
        "fds=;texts=a",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pf_handover h;
        if (pf_handover_decode(bad[i], &h) != -EINVAL)
            fail_msg("accepted case %zu: %s", i, bad[i]);
    }
    struct pf_handover h;
    assert_int_equal(pf_handover_decode("from=1;ready=5;scoreboard=-1;counters=-1;balance=shared;"
                                        "activated=1;slots=3;addrs=1;fds=3;texts=systemd fd 3",
                                        &h),
                     0);
    assert_true(h.ls.activated);
    assert_int_equal(h.ls.nfds, 1);
    h.ls.fds[0] = -1;
    pf_listeners_close(&h.ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
