#include "preforkd/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum pf_log_level log_level = PF_LOG_INFO;
static char log_role[32] = "primary";
static bool log_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pf_log_set_level(enum pf_log_level level)
{
    log_level = level;
}

enum pf_log_level pf_log_get_level(void)
{
    return log_level;
}

void pf_log_set_journal(bool journal)
{
    log_journal = journal;
}

void pf_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

int pf_log_level_parse(const char *name, enum pf_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum pf_log_level)i;
            return 0;
        }
    }
    return -1;
}

void pf_log(enum pf_log_level level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[1024];
    size_t n = 0;
    /* journald stamps lines itself and reads "<N>" as the priority. */
    if (log_journal) {
        static const int prio[] = {3, 4, 6, 7};
        n = (size_t)snprintf(line, sizeof(line), "<%d>", prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] %s pid %d: ", level_names[level],
                          log_role, (int)getpid());
    if (n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + (size_t)m;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so lines of several processes never interleave. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

int pf_log_reopen(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = dup2(fd, STDERR_FILENO) < 0 ? -errno : 0;
    close(fd);
    return rc;
}
