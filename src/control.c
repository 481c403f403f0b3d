#include "preforkd/control.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preforkd/clock.h"
#include "preforkd/config.h"

static const char *const outcome_text[PF_CONTROL_OUTCOMES] = {
    [PF_CONTROL_DONE] = "the new generation serves",
    [PF_CONTROL_CONFIG] = "the configuration file did not load",
    [PF_CONTROL_LISTEN] = "a listening socket could not be opened",
    [PF_CONTROL_WORKERS] = ("a worker of the new generation died or did not serve in time; "
                            "the old workers keep serving"),
    [PF_CONTROL_BUSY] = "a reload is already in progress",
    [PF_CONTROL_STOPPING] = "the daemon is stopping",
    [PF_CONTROL_NOMEM] = "the primary ran out of memory",
    [PF_CONTROL_NOFILE] = "the daemon runs on built-in defaults: no file to re-read",
};

const char *pf_control_outcome_text(enum pf_control_outcome o)
{
    return (unsigned)o < PF_CONTROL_OUTCOMES ? outcome_text[o] : "unknown outcome";
}

static int parse_pid(const char *text, pid_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || (*end && *end != '\n') || v <= 1 || v > 0x3fffffff)
        return -EINVAL;
    *out = (pid_t)v;
    return 0;
}

static int pid_from_file(const char *path, pid_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char line[32];
    int rc = fgets(line, sizeof(line), f) ? parse_pid(line, out) : -EINVAL;
    fclose(f);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: preforkd reload|upgrade [-c FILE] [--pid PID] [--timeout T]\n"
                 "\n"
                 "Validates FILE (default " PF_DEFAULT_CONFIG "), asks the running primary to\n"
                 "reload it and waits until the new workers serve (exit 0) or the reload\n"
                 "failed (exit 1); upgrade: asks it to execute the binary on disk again and\n"
                 "waits until the new primary serves. The primary is --pid, else $MAINPID\n"
                 "(systemd's ExecReload=), else the pid_file the configuration names. T\n"
                 "defaults to 90s.\n");
}

/* What a control command was given: -c FILE, --pid PID, --timeout T, --graceful. */
struct control_args {
    const char *path;
    const char *pid_arg;
    uint64_t timeout_ms;
    bool graceful;
};

/* Parses cmd's options into a (defaults already there); --graceful only where
 * graceful_ok. Returns -1 to go on, else the exit status: 0 after --help, 2 for a
 * mistake. */
static int parse_args(const char *cmd, int argc, char **argv, void (*help)(FILE *),
                      bool graceful_ok, struct control_args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"pid", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 'T'}, {"graceful", no_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->path = optarg;
            break;
        case 'p':
            a->pid_arg = optarg;
            break;
        case 'T':
            if (pf_config_parse_duration_ms(optarg, &a->timeout_ms) < 0 || a->timeout_ms == 0) {
                fprintf(stderr, "preforkd %s: --timeout: expected a duration such as 30s\n", cmd);
                return 2;
            }
            break;
        case 'g':
            if (!graceful_ok) {
                help(stderr);
                return 2;
            }
            a->graceful = true;
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            help(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "preforkd %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    return -1;
}

/* The primary: --pid, else $MAINPID (systemd's), else the file's pid_file. Says why
 * not and returns negative errno when there is none. */
static int find_primary(const char *cmd, const struct control_args *a, const struct pf_env *env,
                        const char *pid_file, pid_t *pid)
{
    const char *from = a->pid_arg ? "--pid" : env->mainpid ? "$MAINPID" : pid_file;
    int rc;
    if (a->pid_arg) {
        rc = parse_pid(a->pid_arg, pid);
    } else if (env->mainpid) {
        *pid = env->mainpid;
        rc = 0;
    } else if (pid_file[0]) {
        rc = pid_from_file(pid_file, pid);
    } else {
        fprintf(stderr,
                "preforkd %s: cannot tell which process is the primary: give --pid, "
                "or set pid_file in %s\n",
                cmd, a->path);
        return -ENOENT;
    }
    if (rc < 0)
        fprintf(stderr, "preforkd %s: no primary pid from %s: %s\n", cmd, from, strerror(-rc));
    return rc;
}

/* reload and upgrade: a signal with PF_CONTROL_ASK, then the primary's answer. */
struct command {
    const char *name;
    int signal;
};

static int ask(int argc, char **argv, const struct pf_env *env, const struct command *cmd)
{
    struct control_args a = {.path = PF_DEFAULT_CONFIG, .timeout_ms = 90000};
    int rc = parse_args(cmd->name, argc, argv, usage, false, &a);
    if (rc >= 0)
        return rc;
    uint64_t timeout_ms = a.timeout_ms;

    /* The primary re-reads the same file; a file that does not load is reported here,
     * with its line and column, and the daemon is left alone. */
    struct pf_config cfg;
    char err[512];
    if (pf_config_load(&cfg, a.path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\npreforkd %s: configuration invalid; nothing was %s\n", err, cmd->name,
                cmd->signal == SIGHUP ? "reloaded" : "upgraded");
        return 1;
    }
    pid_t pid = 0;
    if (find_primary(cmd->name, &a, env, cfg.pid_file, &pid) < 0)
        return 1;

    /* Blocked before asking, so the answer waits in the queue however fast it comes. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, PF_CONTROL_REPLY_SIGNAL);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        fprintf(stderr, "preforkd %s: sigprocmask: %s\n", cmd->name, strerror(errno));
        return 1;
    }
    if (sigqueue(pid, cmd->signal, (union sigval){.sival_int = PF_CONTROL_ASK}) < 0) {
        fprintf(stderr, "preforkd %s: cannot signal pid %d: %s\n", cmd->name, (int)pid,
                strerror(errno));
        return 1;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t waited =
            (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited >= (int64_t)timeout_ms) {
            fprintf(stderr, "preforkd %s: no outcome from pid %d within %llu ms\n", cmd->name,
                    (int)pid, (unsigned long long)timeout_ms);
            return 1;
        }
        /* Short waits, so a primary that dies meanwhile is noticed. */
        struct timespec slice = {0, 200 * 1000000L};
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &slice);
        if (sig < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, "preforkd %s: sigtimedwait: %s\n", cmd->name, strerror(errno));
                return 1;
            }
            if (kill(pid, 0) < 0 && errno == ESRCH) {
                fprintf(stderr, "preforkd %s: pid %d exited before answering\n", cmd->name,
                        (int)pid);
                return 1;
            }
            continue;
        }
        if (si.si_pid != pid || si.si_code != SI_QUEUE)
            continue;
        int reply = si.si_value.sival_int;
        enum pf_control_outcome o = pf_control_outcome_of(reply);
        uint32_t detail = pf_control_detail_of(reply);
        if (o == PF_CONTROL_DONE) {
            if (cmd->signal == SIGHUP)
                printf("preforkd reload: generation %u serves (pid %d)\n", detail, (int)pid);
            else
                printf("preforkd upgrade: the new primary pid %u serves; pid %d drains and exits\n",
                       detail, (int)pid);
            return 0;
        }
        if ((o == PF_CONTROL_LISTEN || o == PF_CONTROL_CONFIG) && detail)
            fprintf(stderr, "preforkd %s: failed: %s: %s (the daemon's log has details)\n",
                    cmd->name, pf_control_outcome_text(o), strerror((int)detail));
        else
            fprintf(stderr, "preforkd %s: failed: %s (the daemon's log has details)\n", cmd->name,
                    pf_control_outcome_text(o));
        return 1;
    }
}

int pf_control_reload_main(int argc, char **argv, const struct pf_env *env)
{
    static const struct command reload = {"reload", SIGHUP};
    return ask(argc, argv, env, &reload);
}

int pf_control_upgrade_main(int argc, char **argv, const struct pf_env *env)
{
    static const struct command upgrade = {"upgrade", SIGUSR2};
    return ask(argc, argv, env, &upgrade);
}

static void stop_usage(FILE *out)
{
    fprintf(out, "usage: preforkd stop [--graceful] [-c FILE] [--pid PID] [--timeout T]\n"
                 "\n"
                 "Stops the running primary and waits until it has exited (exit 0), or T\n"
                 "(default 90s) has passed (exit 1; the stop goes on). --graceful: SIGQUIT,\n"
                 "the lame duck (timeouts.lame_duck) then the drain; else SIGTERM, the fast\n"
                 "stop. The primary is --pid, else $MAINPID, else the pid_file of FILE\n"
                 "(default " PF_DEFAULT_CONFIG ").\n");
}

/* Whether pid has exited: gone, or a zombie that its parent has not reaped yet. */
static bool exited(pid_t pid)
{
    if (kill(pid, 0) < 0)
        return errno == ESRCH;
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* "PID (NAME) STATE ...": the name may hold spaces and parentheses. */
    const char *end = strrchr(line, ')');
    return end && end[1] == ' ' && end[2] == 'Z';
}

int pf_control_stop_main(int argc, char **argv, const struct pf_env *env)
{
    struct control_args a = {.path = PF_DEFAULT_CONFIG, .timeout_ms = 90000};
    int rc = parse_args("stop", argc, argv, stop_usage, true, &a);
    if (rc >= 0)
        return rc;
    /* The file is read only for its pid_file. */
    struct pf_config cfg;
    pf_config_defaults(&cfg);
    char err[512];
    if (!a.pid_arg && !env->mainpid && pf_config_load(&cfg, a.path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    pid_t pid = 0;
    if (find_primary("stop", &a, env, cfg.pid_file, &pid) < 0)
        return 1;
    int sig = a.graceful ? SIGQUIT : SIGTERM;
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "preforkd stop: cannot signal pid %d: %s\n", (int)pid, strerror(errno));
        return 1;
    }
    int64_t deadline = pf_clock_mono_precise_ms() + (int64_t)a.timeout_ms;
    while (!exited(pid)) {
        if (pf_clock_mono_precise_ms() >= deadline) {
            fprintf(stderr,
                    "preforkd stop: pid %d has not exited within %llu ms; its stop goes on\n",
                    (int)pid, (unsigned long long)a.timeout_ms);
            return 1;
        }
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    printf("preforkd stop: pid %d has exited (%s stop)\n", (int)pid,
           a.graceful ? "graceful" : "fast");
    return 0;
}
