#ifndef PREFORKD_SHM_H
#define PREFORKD_SHM_H

#include <stddef.h>

/* Shared memory that outlives any one process: a memfd sealed at its size (no holder can
 * shrink it and turn the others' accesses into SIGBUS), mapped shared. The scoreboard and
 * the counters are such regions; a hot upgrade hands their descriptors to the new binary,
 * which maps them again here. */

/* A new zeroed region of size bytes named name (close-on-exec): *fd and *mem, or
 * negative errno. */
int pf_shm_new(const char *name, size_t size, int *fd, void **mem);
/* Maps the region behind an inherited fd (which stays the caller's) through a
 * close-on-exec copy: *own_fd, *mem and *size. -EINVAL for a file that is not sealed
 * against shrinking or whose size is outside [min, max]; else negative errno
 * (-EBADF for a bad fd). */
int pf_shm_map(int fd, size_t min, size_t max, int *own_fd, void **mem, size_t *size);
/* Unmaps mem and closes fd (either may be absent: NULL, -1). */
void pf_shm_free(int fd, void *mem, size_t size);

#endif
