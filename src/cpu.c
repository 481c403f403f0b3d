#include "preforkd/cpu.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

uint32_t pf_cpu_usable(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    uint32_t n = online > 0 ? (uint32_t)online : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int allowed = CPU_COUNT(&set);
        if (allowed > 0 && (uint32_t)allowed < n)
            n = (uint32_t)allowed;
    }
    return n;
}

int pf_cpu_pin_nth(uint32_t n)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
        return -errno;
    int count = CPU_COUNT(&allowed);
    if (count <= 0)
        return -EINVAL;
    int want = (int)(n % (uint32_t)count);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || want-- > 0)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof(one), &one) < 0)
            return -errno;
        return cpu;
    }
    return -EINVAL;
}
