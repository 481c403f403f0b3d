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
    strcpy(h.ls.addrs[0].text, "127.0.0.1:4400");
    strcpy(h.ls.addrs[1].text, "unix:/run/a;b=c.sock"); /* separators inside an address */
    /* The file the old primary bound: the new one removes it at its final stop. */
    h.ls.addrs[1].unix_owned = true;
    h.ls.addrs[1].dev = (dev_t)0xfd01;
    h.ls.addrs[1].ino = (ino_t)123456789012ULL;
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
    assert_string_equal(back.ls.addrs[0].text, "127.0.0.1:4400");
    assert_false(back.ls.addrs[0].unix_owned);
    assert_string_equal(back.ls.addrs[1].text, "unix:/run/a;b=c.sock");
    assert_true(back.ls.addrs[1].unix_owned);
    assert_true(back.ls.addrs[1].dev == (dev_t)0xfd01);
    assert_true(back.ls.addrs[1].ino == (ino_t)123456789012ULL);
    /* proxy_protocol is not handed over: it comes from the new primary's config. */
    assert_int_equal(back.ls.addrs[1].proxy, PF_PROXY_OFF);
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
    /* Each case is valid but for one defect. */
    static const char *const bad[] = {
        "",
        "from=1",
        "from=x;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=-;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=odd;activated=0;slots=1;addrs=1;"
        "fds=3;files=-;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3,4;files=-;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=2;"
        "fds=3,4;files=-,-;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=-;texts=",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=0;addrs=1;"
        "fds=;files=-;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=12;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=12:;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=2;"
        "fds=3,4;files=-;texts=a\x1f"
        "b",
    };
    /* The same text, defect removed, is accepted: the cases above fail for their defect. */
    static const char *const good[] = {
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=1;"
        "fds=3;files=12:34;texts=a",
        "from=1;ready=1;scoreboard=2;counters=3;balance=shared;activated=0;slots=1;addrs=2;"
        "fds=3,4;files=-,-;texts=a\x1f"
        "b",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct pf_handover h;
        if (pf_handover_decode(good[i], &h) != 0)
            fail_msg("refused good case %zu: %s", i, good[i]);
        for (size_t k = 0; k < h.ls.nfds; k++)
            h.ls.fds[k] = -1;
        pf_listeners_close(&h.ls);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pf_handover h;
        if (pf_handover_decode(bad[i], &h) != -EINVAL)
            fail_msg("accepted case %zu: %s", i, bad[i]);
    }
    struct pf_handover h;
    assert_int_equal(
        pf_handover_decode("from=1;ready=5;scoreboard=-1;counters=-1;balance=shared;"
                           "activated=1;slots=3;addrs=1;fds=3;files=-;texts=systemd fd 3",
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
