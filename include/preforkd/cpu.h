#ifndef PREFORKD_CPU_H
#define PREFORKD_CPU_H

#include <stdint.h>

/* CPUs this process may run on: online CPUs, capped by the affinity mask (a container's
 * cpuset, `taskset`, systemd's CPUAffinity=). At least 1. */
uint32_t pf_cpu_usable(void);
/* Pins the calling process to the n-th CPU of its affinity mask (wrapping around), so
 * worker i runs on the i-th allowed CPU. Returns the CPU, or negative errno. */
int pf_cpu_pin_nth(uint32_t n);

#endif
