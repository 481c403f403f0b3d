#include "preforkd/primary.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preforkd/clock.h"
#include "preforkd/listener.h"
#include "preforkd/log.h"
#include "preforkd/sdnotify.h"
#include "preforkd/worker.h"

struct slot {
    pid_t pid; /* 0 while no worker runs in the slot */
    int ipc_fd;
    bool ready;
    int64_t started_ms;
    int64_t respawn_at_ms;
    uint32_t backoff_ms;
    uint32_t restarts;
};

struct primary {
    const struct pf_config *cfg;
    struct pf_listeners listeners;
    uint32_t nslots;
    struct slot *slots;
    int sigfd;
    pid_t pid;
    bool stopping;
    bool announced_ready;
    int64_t stop_deadline_ms;
    uint64_t restarts;
};

uint32_t pf_primary_backoff(uint32_t previous_ms, int64_t uptime_ms, uint32_t min_uptime_ms)
{
    if (uptime_ms >= (int64_t)min_uptime_ms)
        return 0;
    if (previous_ms == 0)
        return PF_BACKOFF_FIRST_MS;
    return previous_ms >= PF_BACKOFF_MAX_MS / 2 ? PF_BACKOFF_MAX_MS : previous_ms * 2;
}

static const int handled_signals[] = {SIGCHLD, SIGTERM, SIGINT,  SIGQUIT, SIGHUP,
                                      SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU};

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++)
        sigaddset(set, handled_signals[i]);
}

static void child_main(struct primary *p, uint32_t slot, int ipc_fd)
{
    for (uint32_t i = 0; i < p->nslots; i++)
        if (p->slots[i].ipc_fd >= 0)
            close(p->slots[i].ipc_fd); /* else siblings would keep the primary "alive" */
    close(p->sigfd);

    int fds[PF_MAX_LISTEN];
    size_t n = pf_listeners_for_slot(&p->listeners, slot, fds);
    for (size_t i = 0; i < p->listeners.nfds; i++) {
        bool mine = false;
        for (size_t j = 0; j < n; j++)
            mine |= p->listeners.fds[i] == fds[j];
        if (!mine)
            close(p->listeners.fds[i]);
    }
    /* Ctrl-C reaches the whole process group; stopping is the primary's decision. */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t keep;
    sigemptyset(&keep);
    sigaddset(&keep, SIGTERM);
    sigaddset(&keep, SIGQUIT);
    sigprocmask(SIG_SETMASK, &keep, NULL); /* the worker reads these from a signalfd */
    if (getppid() != p->pid)
        _exit(1);
    _exit(pf_worker_run(p->cfg, slot, fds, n, ipc_fd));
}

static int spawn(struct primary *p, uint32_t i)
{
    struct slot *s = &p->slots[i];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(p, i, sv[1]);
    }
    close(sv[1]);
    s->pid = pid;
    s->ipc_fd = sv[0];
    s->ready = false;
    s->started_ms = pf_clock_mono_precise_ms();
    pf_log_info("worker slot %u started, pid %d", i, (int)pid);
    return 0;
}

static void notify_status(struct primary *p)
{
    uint32_t up = 0, waiting = 0;
    for (uint32_t i = 0; i < p->nslots; i++) {
        up += p->slots[i].ready;
        waiting += p->slots[i].pid == 0;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "STATUS=%u/%u workers serving, %llu restarts%s", up, p->nslots,
             (unsigned long long)p->restarts, waiting ? ", degraded (slot in backoff)" : "");
    pf_sdnotify(msg);
}

static void reap(struct primary *p)
{
    int status;
    pid_t pid;
    int64_t now = pf_clock_mono_precise_ms();
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct slot *s = NULL;
        uint32_t i;
        for (i = 0; i < p->nslots; i++) {
            if (p->slots[i].pid == pid) {
                s = &p->slots[i];
                break;
            }
        }
        if (!s)
            continue;
        int64_t uptime = now - s->started_ms;
        char how[48];
        if (WIFSIGNALED(status))
            snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        else
            snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
        s->pid = 0;
        s->ready = false;
        if (s->ipc_fd >= 0) {
            close(s->ipc_fd);
            s->ipc_fd = -1;
        }
        if (p->stopping) {
            pf_log_info("worker slot %u pid %d %s", i, (int)pid, how);
            continue;
        }
        s->restarts++;
        p->restarts++;
        s->backoff_ms = pf_primary_backoff(s->backoff_ms, uptime, p->cfg->min_uptime_ms);
        s->respawn_at_ms = now + s->backoff_ms;
        if (s->backoff_ms)
            pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning in %u ms "
                        "(crash-loop backoff)",
                        i, (int)pid, how, (long long)uptime, s->backoff_ms);
        else
            pf_log_warn("worker slot %u pid %d %s after %lld ms; respawning", i, (int)pid, how,
                        (long long)uptime);
    }
    notify_status(p);
}

static void begin_stop(struct primary *p, int sig)
{
    bool graceful = sig == SIGQUIT;
    if (p->stopping) {
        if (graceful)
            return;
        /* A fast stop overrides a graceful one already under way. */
    }
    p->stopping = true;
    int64_t grace = graceful ? p->cfg->shutdown_timeout_ms : PF_FAST_STOP_MS;
    p->stop_deadline_ms = pf_clock_mono_precise_ms() + grace;
    pf_log_info("%s: %s stop, waiting up to %lld ms for workers", strsignal(sig),
                graceful ? "graceful" : "fast", (long long)grace);
    pf_sdnotify("STOPPING=1");
    for (uint32_t i = 0; i < p->nslots; i++)
        if (p->slots[i].pid > 0)
            kill(p->slots[i].pid, graceful ? SIGQUIT : SIGTERM);
}

static void read_signals(struct primary *p)
{
    struct signalfd_siginfo si;
    while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap(p);
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            begin_stop(p, (int)si.ssi_signo);
            break;
        default:
            pf_log_info("%s ignored", strsignal((int)si.ssi_signo));
        }
    }
}

static void read_ipc(struct primary *p, uint32_t i)
{
    struct slot *s = &p->slots[i];
    char msg[16];
    ssize_t n = recv(s->ipc_fd, msg, sizeof(msg), MSG_DONTWAIT);
    if (n > 0 && msg[0] == PF_IPC_READY) {
        s->ready = true;
        uint32_t up = 0;
        for (uint32_t j = 0; j < p->nslots; j++)
            up += p->slots[j].ready;
        if (!p->announced_ready && up == p->nslots) {
            p->announced_ready = true;
            pf_log_info("all %u workers serving", p->nslots);
            pf_sdnotify("READY=1");
        }
        notify_status(p);
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        /* The worker is gone; SIGCHLD tells how. Stop polling its end. */
        close(s->ipc_fd);
        s->ipc_fd = -1;
    }
}

static int supervise(struct primary *p)
{
    struct pollfd *pfds = calloc(p->nslots + 1, sizeof(*pfds));
    uint32_t *which = calloc(p->nslots + 1, sizeof(*which));
    if (!pfds || !which) {
        free(pfds);
        free(which);
        return -ENOMEM;
    }
    for (;;) {
        int64_t now = pf_clock_mono_precise_ms();
        int64_t timeout = -1;
        bool any_alive = false;
        for (uint32_t i = 0; i < p->nslots; i++) {
            struct slot *s = &p->slots[i];
            if (s->pid > 0) {
                any_alive = true;
                continue;
            }
            if (p->stopping)
                continue;
            if (s->respawn_at_ms <= now) {
                int rc = spawn(p, i);
                if (rc < 0) {
                    s->backoff_ms = pf_primary_backoff(s->backoff_ms, 0, 1);
                    s->respawn_at_ms = now + s->backoff_ms;
                    pf_log_error("fork for slot %u failed: %s; retrying in %u ms", i, strerror(-rc),
                                 s->backoff_ms);
                } else {
                    any_alive = true;
                    continue;
                }
            }
            int64_t d = s->respawn_at_ms - now;
            if (timeout < 0 || d < timeout)
                timeout = d;
        }
        if (p->stopping) {
            if (!any_alive)
                break;
            if (now >= p->stop_deadline_ms) {
                for (uint32_t i = 0; i < p->nslots; i++) {
                    if (p->slots[i].pid > 0) {
                        pf_log_warn("worker slot %u pid %d did not stop in time; SIGKILL", i,
                                    (int)p->slots[i].pid);
                        kill(p->slots[i].pid, SIGKILL);
                    }
                }
                p->stop_deadline_ms = now + 1000;
            }
            int64_t d = p->stop_deadline_ms - now;
            if (timeout < 0 || d < timeout)
                timeout = d;
        }
        nfds_t n = 0;
        pfds[n++] = (struct pollfd){.fd = p->sigfd, .events = POLLIN};
        for (uint32_t i = 0; i < p->nslots; i++) {
            if (p->slots[i].ipc_fd >= 0) {
                which[n] = i;
                pfds[n++] = (struct pollfd){.fd = p->slots[i].ipc_fd, .events = POLLIN};
            }
        }
        int r = poll(pfds, n, (int)(timeout > 60000 ? 60000 : timeout));
        if (r < 0 && errno != EINTR) {
            pf_log_error("poll: %s", strerror(errno));
            break;
        }
        for (nfds_t k = 1; k < n && r > 0; k++)
            if (pfds[k].revents)
                read_ipc(p, which[k]);
        if (r > 0 && pfds[0].revents)
            read_signals(p);
    }
    free(pfds);
    free(which);
    return 0;
}

int pf_primary_run(const struct pf_config *cfg, uint32_t nworkers)
{
    struct primary p = {.cfg = cfg, .nslots = nworkers, .sigfd = -1, .pid = getpid()};
    int status = 1;
    char err[256];
    sigset_t set;

    signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    p.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (p.sigfd < 0) {
        pf_log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    p.slots = calloc(nworkers, sizeof(*p.slots));
    if (!p.slots)
        goto fail;
    for (uint32_t i = 0; i < nworkers; i++)
        p.slots[i].ipc_fd = -1;
    if (pf_listeners_open(&p.listeners, cfg, nworkers, err, sizeof(err)) < 0) {
        pf_log_error("%s", err);
        goto fail;
    }
    pf_log_info("starting %u worker%s", nworkers, nworkers == 1 ? "" : "s");
    if (supervise(&p) == 0)
        status = 0;
    pf_listeners_close(&p.listeners);
    pf_log_info("stopped");
fail:
    free(p.slots);
    close(p.sigfd);
    return status;
}
