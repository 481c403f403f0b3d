#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <unistd.h>

#include "preforkd/cpu.h"
#include "preforkd/procfs.h"

static void test_parse_statm(void **state)
{
    (void)state;
    struct pf_memory m;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    assert_int_equal(pf_procfs_parse_statm("1000 200 50 1 0 300 0\n", &m), 0);
    assert_int_equal(m.virt, 1000 * page);
    assert_int_equal(m.rss, 200 * page);
    assert_int_equal(m.shared, 50 * page);
    assert_int_equal(pf_procfs_parse_statm("1000 200", &m), -EINVAL);
    assert_int_equal(pf_procfs_parse_statm("", &m), -EINVAL);
}

static void test_real_processes(void **state)
{
    (void)state;
    struct pf_memory self, by_pid;
    assert_int_equal(pf_procfs_statm(0, &self), 0);
    assert_true(self.rss > 0 && self.rss <= self.virt);
    assert_int_equal(pf_procfs_statm(getpid(), &by_pid), 0);
    assert_true(by_pid.virt > 0);
    assert_int_equal(pf_procfs_statm(0x7ffffff0, &by_pid), -ENOENT);
}

static void test_cpus(void **state)
{
    (void)state;
    uint32_t n = pf_cpu_usable();
    assert_true(n >= 1);
    assert_true((long)n <= sysconf(_SC_NPROCESSORS_ONLN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_statm),
        cmocka_unit_test(test_real_processes),
        cmocka_unit_test(test_cpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
