#ifndef PREFORKD_PROCFS_H
#define PREFORKD_PROCFS_H

#include <stdint.h>
#include <sys/types.h>

struct pf_memory {
    uint64_t rss;
    uint64_t virt;
    uint64_t shared;
};

/* Parses "size resident shared ..." (pages) as /proc/PID/statm holds it. */
int pf_procfs_parse_statm(const char *text, struct pf_memory *out);
/* The memory figures of pid (0: this process) from /proc/PID/statm. 0 or negative
 * errno. */
int pf_procfs_statm(pid_t pid, struct pf_memory *out);

#endif
