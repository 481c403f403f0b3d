#ifndef PREFORKD_ENV_H
#define PREFORKD_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What the process learns from its environment, read once at start and passed down:
 * nothing below main calls getenv, so every input of a module is in its arguments. */
struct pf_env {
    char notify_socket[108]; /* NOTIFY_SOCKET (sd_notify), "" when not under systemd */
    uint64_t watchdog_usec;  /* WATCHDOG_USEC meant for this process, 0 when none */
    int listen_fds;          /* LISTEN_FDS meant for this process (socket activation) */
    bool journal;            /* JOURNAL_STREAM: stderr is journald, which stamps lines */
    pid_t mainpid;           /* MAINPID, as systemd sets it for ExecReload= */
    const char *handover;    /* PREFORKD_HANDOVER from an old primary (upgrade), or NULL */
};

/* Fills env from get(name) (getenv, or a fake in tests) for process self: LISTEN_FDS
 * and WATCHDOG_USEC count only when their LISTEN_PID / WATCHDOG_PID name self. */
void pf_env_parse(struct pf_env *env, const char *(*get)(const char *name), pid_t self);
/* pf_env_parse(getenv, getpid()), then removes LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES, so that no child takes systemd's sockets for its own. */
void pf_env_read(struct pf_env *env);
/* Frees what pf_env_read kept (the handover description). */
void pf_env_free(struct pf_env *env);

#endif
