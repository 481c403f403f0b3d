#include "preforkd/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int pf_shm_new(const char *name, size_t size, int *fd, void **mem)
{
    int f = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (f < 0)
        return -errno;
    void *m = MAP_FAILED;
    if (ftruncate(f, (off_t)size) < 0 ||
        fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
        (m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0)) == MAP_FAILED) {
        int e = errno;
        close(f);
        return -e;
    }
    *fd = f;
    *mem = m;
    return 0;
}

int pf_shm_map(int fd, size_t min, size_t max, int *own_fd, void **mem, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    /* Only a region sealed against shrinking is safe to map; a file that cannot be
     * sealed at all (a pipe, say) is not a region either. */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return -EINVAL;
    if (st.st_size < 0 || (size_t)st.st_size < min || (size_t)st.st_size > max)
        return -EINVAL;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        return -errno;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, copy, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(copy);
        return -e;
    }
    *own_fd = copy;
    *mem = m;
    *size = (size_t)st.st_size;
    return 0;
}

void pf_shm_free(int fd, void *mem, size_t size)
{
    if (mem)
        munmap(mem, size);
    if (fd >= 0)
        close(fd);
}
