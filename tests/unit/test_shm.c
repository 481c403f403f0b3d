/* Sealed shared memory: what the scoreboard and the counters are made of, and what a new
 * binary maps again after an upgrade. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preforkd/shm.h"

static void test_new_is_sealed_zeroed_and_shared(void **state)
{
    (void)state;
    int fd;
    void *mem;
    assert_int_equal(pf_shm_new("test", 8192, &fd, &mem), 0);
    int seals = fcntl(fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_true((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
                (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    assert_int_equal(ftruncate(fd, 4096), -1); /* no holder can shrink it */
    assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    const uint8_t *b = mem;
    for (size_t i = 0; i < 8192; i++)
        assert_int_equal(b[i], 0);
    /* Mapped again through the descriptor (as after an upgrade): the same memory. */
    int own;
    void *again;
    size_t size;
    assert_int_equal(pf_shm_map(fd, 8192, 8192, &own, &again, &size), 0);
    assert_int_equal(size, 8192);
    assert_true(own != fd && own >= 3);
    assert_true((fcntl(own, F_GETFD) & FD_CLOEXEC) != 0);
    memcpy(mem, "shared", 7);
    assert_string_equal((const char *)again, "shared");
    pf_shm_free(own, again, size);
    pf_shm_free(fd, mem, 8192);
}

static void test_map_refuses_what_is_not_a_region(void **state)
{
    (void)state;
    int own;
    void *mem;
    size_t size;
    /* Not sealed: it could shrink under us (SIGBUS). */
    int loose = memfd_create("loose", MFD_CLOEXEC);
    assert_true(loose >= 0);
    assert_int_equal(ftruncate(loose, 4096), 0);
    assert_int_equal(pf_shm_map(loose, 0, SIZE_MAX, &own, &mem, &size), -EINVAL);
    close(loose);
    /* Sealed, but of a size outside the bounds. */
    int fd;
    void *m;
    assert_int_equal(pf_shm_new("test", 4096, &fd, &m), 0);
    assert_int_equal(pf_shm_map(fd, 4097, SIZE_MAX, &own, &mem, &size), -EINVAL);
    assert_int_equal(pf_shm_map(fd, 0, 4095, &own, &mem, &size), -EINVAL);
    assert_int_equal(pf_shm_map(fd, 4096, 4096, &own, &mem, &size), 0);
    pf_shm_free(own, mem, size);
    pf_shm_free(fd, m, 4096);
    /* Not a memfd at all. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pf_shm_map(p[0], 0, SIZE_MAX, &own, &mem, &size), -EINVAL);
    close(p[0]);
    close(p[1]);
    assert_int_equal(pf_shm_map(-1, 0, SIZE_MAX, &own, &mem, &size), -EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_sealed_zeroed_and_shared),
        cmocka_unit_test(test_map_refuses_what_is_not_a_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
