#include "preforkd/ipc.h"

#include <errno.h>
#include <sys/socket.h>

int pf_ipc_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ? -errno : 0;
}

int pf_ipc_send(int fd, enum pf_ipc_type type, uint32_t slot)
{
    struct pf_ipc_msg m = {.type = (uint8_t)type, .slot = slot};
    ssize_t n = send(fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return -errno;
    return n == (ssize_t)sizeof(m) ? 0 : -EMSGSIZE;
}

int pf_ipc_recv(int fd, struct pf_ipc_msg *m)
{
    for (;;) {
        ssize_t n = recv(fd, m, sizeof(*m), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        if (n == 0)
            return 0;
        return n == (ssize_t)sizeof(*m) ? 1 : -EBADMSG;
    }
}
