#include "preforkd/spawn.h"

#include <errno.h>
#include <unistd.h>

#include "preforkd/ipc.h"
#include "preforkd/worker.h"

/* Every signal either process cares about, and what each does with it. */
enum disposition {
    D_DEFAULT, /* the kernel's default action */
    D_IGNORE,
    D_READ, /* blocked, read from the process's signalfd */
};

static const struct {
    int sig;
    enum disposition primary, worker;
} signals[] = {
    {SIGCHLD, D_READ, D_DEFAULT}, /* the primary reaps */
    {SIGTERM, D_READ, D_READ},    /* fast stop */
    {SIGQUIT, D_READ, D_READ},    /* graceful stop / drain */
    {SIGUSR1, D_READ, D_READ},    /* reopen logs */
    /* Ctrl-C reaches the whole process group; stopping is the primary's decision. */
    {SIGINT, D_READ, D_IGNORE},
    {SIGHUP, D_READ, D_IGNORE},  /* reload: the primary's */
    {SIGUSR2, D_READ, D_IGNORE}, /* reserved */
    {SIGTTIN, D_READ, D_IGNORE}, /* worker count: the primary's */
    {SIGTTOU, D_READ, D_IGNORE},
    {SIGPIPE, D_IGNORE, D_IGNORE}, /* a closed peer is an EPIPE, not a death */
};

void pf_spawn_primary_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        if (signals[i].primary == D_READ)
            sigaddset(set, signals[i].sig);
        else if (signals[i].primary == D_IGNORE)
            signal(signals[i].sig, SIG_IGN);
    }
}

static void worker_signals(void)
{
    sigset_t keep;
    sigemptyset(&keep);
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        switch (signals[i].worker) {
        case D_READ:
            sigaddset(&keep, signals[i].sig);
            break;
        case D_IGNORE:
            signal(signals[i].sig, SIG_IGN);
            break;
        case D_DEFAULT:
            signal(signals[i].sig, SIG_DFL);
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &keep, NULL); /* the worker reads these from a signalfd */
}

pid_t pf_spawn_worker(const struct pf_spawn *s, int *ipc_fd)
{
    int sv[2];
    int rc = pf_ipc_pair(sv);
    if (rc < 0)
        return rc;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        for (size_t i = 0; i < s->nclose; i++)
            close(s->close_fds[i]);
        worker_signals();
        /* The primary died between fork and here: nobody would supervise this worker. */
        if (getppid() != s->primary)
            _exit(1);
        _exit(pf_worker_run(s->cfg, s->slot, s->ls, sv[1], s->scoreboard,
                            &s->scoreboard->rows[s->row], s->counters));
    }
    close(sv[1]);
    *ipc_fd = sv[0];
    return pid;
}
