#ifndef PREFORKD_LOG_H
#define PREFORKD_LOG_H

#include <stdbool.h>

enum pf_log_level { PF_LOG_ERROR, PF_LOG_WARN, PF_LOG_INFO, PF_LOG_DEBUG };

/* The log is process-wide state by nature (one stderr per process), so it is the one
 * module with a private global rather than a struct passed around. */
void pf_log_set_level(enum pf_log_level level);
enum pf_log_level pf_log_get_level(void);
/* Who is speaking: "primary" or "worker 3"; set once after fork. */
void pf_log_set_role(const char *role);
/* stderr goes to journald (JOURNAL_STREAM): lines carry "<N>" priorities, no time. */
void pf_log_set_journal(bool journal);
int pf_log_level_parse(const char *name, enum pf_log_level *out);
/* Points stderr at path (appending): at start-up, and again on SIGUSR1 after logrotate
 * moved the file. Returns 0 or negative errno. */
int pf_log_reopen(const char *path);

void pf_log(enum pf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pf_log_error(...) pf_log(PF_LOG_ERROR, __VA_ARGS__)
#define pf_log_warn(...)  pf_log(PF_LOG_WARN, __VA_ARGS__)
#define pf_log_info(...)  pf_log(PF_LOG_INFO, __VA_ARGS__)
#define pf_log_debug(...)                                                                          \
    do {                                                                                           \
        if (pf_log_get_level() >= PF_LOG_DEBUG)                                                    \
            pf_log(PF_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
