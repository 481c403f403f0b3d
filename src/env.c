#include "preforkd/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool number(const char *text, unsigned long long max, unsigned long long *out)
{
    if (!text || !*text)
        return false;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || v > max)
        return false;
    *out = v;
    return true;
}

static bool names_self(const char *pid_text, pid_t self)
{
    unsigned long long v;
    return number(pid_text, 0x7fffffff, &v) && (pid_t)v == self;
}

void pf_env_parse(struct pf_env *env, const char *(*get)(const char *name), pid_t self)
{
    *env = (struct pf_env){0};
    const char *sock = get("NOTIFY_SOCKET");
    if (sock && strlen(sock) < sizeof(env->notify_socket))
        snprintf(env->notify_socket, sizeof(env->notify_socket), "%s", sock);
    unsigned long long v;
    const char *wd_pid = get("WATCHDOG_PID");
    if ((!wd_pid || names_self(wd_pid, self)) && number(get("WATCHDOG_USEC"), UINT64_MAX, &v))
        env->watchdog_usec = v;
    if (names_self(get("LISTEN_PID"), self) && number(get("LISTEN_FDS"), 0x7fffffff, &v))
        env->listen_fds = (int)v;
    env->journal = get("JOURNAL_STREAM") != NULL;
    if (number(get("MAINPID"), 0x7fffffff, &v))
        env->mainpid = (pid_t)v;
    env->handover = get("PREFORKD_HANDOVER");
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

void pf_env_read(struct pf_env *env)
{
    pf_env_parse(env, real_getenv, getpid());
    /* Kept for the life of the process; the variable goes, so no child inherits it. */
    if (env->handover)
        env->handover = strdup(env->handover);
    unsetenv("PREFORKD_HANDOVER");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

void pf_env_free(struct pf_env *env)
{
    free((char *)env->handover);
    env->handover = NULL;
}
