#ifndef PREFORKD_CONTROL_H
#define PREFORKD_CONTROL_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "preforkd/env.h"

/* Commands that act on a running primary and report the outcome by exit status, as
 * `systemctl reload` needs (nginx's `-s reload` is fire-and-forget).
 *
 * The protocol is signals only, so it needs no socket, no file and no HTTP listener:
 * the command sends SIGHUP with sigqueue() and PF_CONTROL_ASK as its value; a primary
 * that sees that value (a plain `kill -HUP` carries none) answers the sender's pid with
 * PF_CONTROL_REPLY_SIGNAL once the outcome is known, its value a pf_control_reply. */
#define PF_CONTROL_ASK          0x70666b64 /* "pfkd" */
#define PF_CONTROL_REPLY_SIGNAL (SIGRTMIN + 2)

enum pf_control_outcome {
    PF_CONTROL_DONE = 0,    /* the new generation serves */
    PF_CONTROL_CONFIG = 1,  /* the file did not load */
    PF_CONTROL_LISTEN = 2,  /* a listening socket could not be opened */
    PF_CONTROL_WORKERS = 3, /* a new worker died or did not serve in time */
    PF_CONTROL_BUSY = 4,    /* a reload is already in progress */
    PF_CONTROL_STOPPING = 5,
    PF_CONTROL_NOMEM = 6,
    PF_CONTROL_NOFILE = 7, /* started without a configuration file */
    PF_CONTROL_OUTCOMES
};

/* The reply's value: the outcome, and the errno or generation that explains it. */
static inline int pf_control_reply(enum pf_control_outcome o, uint32_t detail)
{
    return (int)((detail & 0xffffffu) << 8 | (uint32_t)o);
}
static inline enum pf_control_outcome pf_control_outcome_of(int reply)
{
    return (enum pf_control_outcome)((uint32_t)reply & 0xffu);
}
static inline uint32_t pf_control_detail_of(int reply)
{
    return (uint32_t)reply >> 8;
}

/* What an outcome means, for the command's message. */
const char *pf_control_outcome_text(enum pf_control_outcome o);

/* `preforkd reload [-c FILE] [--pid PID] [--timeout T]`: validates FILE, signals the
 * primary (--pid, else $MAINPID as systemd sets it for ExecReload=, else the file's
 * pid_file) and waits until the new generation serves (exit 0) or the reload failed
 * (exit 1, the reason printed). */
int pf_control_reload_main(int argc, char **argv, const struct pf_env *env);
/* `preforkd upgrade [-c FILE] [--pid PID] [--timeout T]`: the same for SIGUSR2, the hot
 * binary upgrade: exit 0 once the new binary's primary serves (its pid printed). */
int pf_control_upgrade_main(int argc, char **argv, const struct pf_env *env);

/* `preforkd stop [--graceful] [-c FILE] [--pid PID] [--timeout T]`: SIGQUIT (graceful:
 * lame duck, then drain) or SIGTERM (fast) to the primary (found as for reload), then
 * waits until it has exited: exit 0, or 1 when T passes first or there is no primary. */
int pf_control_stop_main(int argc, char **argv, const struct pf_env *env);

#endif
