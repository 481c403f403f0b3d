#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preforkd/ipc.h"

static void test_round_trip_and_eof(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(pf_ipc_pair(sv), 0);
    struct pf_ipc_msg m;
    assert_int_equal(pf_ipc_recv(sv[0], &m), -EAGAIN);
    assert_int_equal(pf_ipc_send(sv[1], PF_IPC_READY, 0), 0);
    assert_int_equal(pf_ipc_send(sv[0], PF_IPC_COVER, 7), 0);
    assert_int_equal(pf_ipc_recv(sv[0], &m), 1);
    assert_int_equal(m.type, PF_IPC_READY);
    assert_int_equal(pf_ipc_recv(sv[1], &m), 1);
    assert_int_equal(m.type, PF_IPC_COVER);
    assert_int_equal(m.slot, 7);
    /* A datagram of another size (a peer of another version) is refused, not misread. */
    assert_int_equal(send(sv[1], "R", 1, 0), 1);
    assert_int_equal(pf_ipc_recv(sv[0], &m), -EBADMSG);
    close(sv[1]);
    assert_int_equal(pf_ipc_recv(sv[0], &m), 0); /* the peer is gone */
    assert_int_equal(pf_ipc_send(sv[0], PF_IPC_UNCOVER, 1), -EPIPE);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_eof),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
