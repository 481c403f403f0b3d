#ifndef PREFORKD_ACCESSLOG_H
#define PREFORKD_ACCESSLOG_H

#include <stdint.h>

#include "preforkd/config.h"
#include "preforkd/handlers.h"
#include "preforkd/http.h"

/* A worker's access log: lines gather in a 64 KiB buffer that is written when nearly
 * full and once a second (no write per request). combined is Apache/nginx's format; json
 * is one object per line. */
struct pf_access_log;

int pf_access_log_open(struct pf_access_log **out, enum pf_access_format format, const char *path,
                       uint32_t slot);
void pf_access_log_write(struct pf_access_log *log, const struct pf_handler_ctx *ctx,
                         const char *peer, const struct pf_http *req, uint16_t status,
                         uint64_t body_bytes);
void pf_access_log_flush(struct pf_access_log *log);
/* After logrotate moved the file (SIGUSR1). */
int pf_access_log_reopen(struct pf_access_log *log);
void pf_access_log_free(struct pf_access_log **log);

#endif
