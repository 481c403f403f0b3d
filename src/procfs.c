#include "preforkd/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int pf_procfs_parse_statm(const char *text, struct pf_memory *out)
{
    unsigned long long size, resident, shared;
    if (sscanf(text, "%llu %llu %llu", &size, &resident, &shared) != 3)
        return -EINVAL;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    out->virt = size * page;
    out->rss = resident * page;
    out->shared = shared * page;
    return 0;
}

int pf_procfs_statm(pid_t pid, struct pf_memory *out)
{
    char path[64], buf[128];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/statm");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return pf_procfs_parse_statm(buf, out);
}
